"""Fitting the value and churn models of a config on a stacked training set, checking first that it can be learned
from, and assembling the scorer around them (shared by training, backtests and the tier study)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from tiercast.features.contract import (
    CHURNED,
    CUSTOMER_ID,
    CUTOFF,
    DRIFT_SCORE_COLUMNS,
    FUTURE_VALUE,
    LABEL_DAYS,
    feature_columns,
    spend_column,
)
from tiercast.features.cutoff_plan import CutoffPlan, short_windows, validation_cutoffs
from tiercast.features.errors import InsufficientDataError
from tiercast.features.labels import build_labels
from tiercast.features.training_set import LABEL_FILL
from tiercast.models.drift import AGE_COLUMNS, DriftProfile
from tiercast.models.gbm.churn import ChurnModel
from tiercast.models.gbm.lgbm import DEFAULT_GRID
from tiercast.models.gbm.value import ValueModel
from tiercast.models.scorer import TiercastScorer
from tiercast.models.segments import BehaviorSegments
from tiercast.models.tiers.scheme import TierScheme
from tiercast.pipeline.config import Config

__all__ = ["LabelsAt", "behavior_segments", "fit_models", "labels_from", "model_kwargs", "tier_scheme"]

#: The labels of ``[cutoff, cutoff + days)`` per customer (the columns of :func:`build_labels`): how a job gives
#: the models label windows shorter than the horizon (:func:`fit_models`).
LabelsAt = Callable[[pd.Timestamp, int], pd.DataFrame]


def labels_from(con: Any, tx: Any) -> LabelsAt:
    """:data:`LabelsAt` reading the transactions ``tx`` on the engine ``con``."""
    return lambda cutoff, days: build_labels(tx, cutoff=cutoff, horizon_days=days, con=con)


def _grid(config: Config) -> tuple[dict[str, Any], ...] | None:
    g = config.models.param_grid
    if g == "default":
        return DEFAULT_GRID
    if g == "none":
        return None
    return tuple(g)


def model_kwargs(config: Config, *, stacked: bool = True) -> dict[str, dict[str, Any]]:
    """Constructor keyword arguments of the value and churn models for a config (``{"value": ..., "churn": ...}``).

    ``stacked=False`` gives the plain GBMs (no BTYD features, offset or blend) with the same settings search.
    """
    m = config.models
    common: dict[str, Any] = {
        "n_estimators": m.n_estimators,
        "early_stopping_rounds": m.early_stopping_rounds,
        "random_state": config.seed,
        "horizon_days": config.horizon_days if stacked else None,
        "btyd": m.btyd if stacked else None,
        "blend": m.blend,
        "param_grid": _grid(config),
        "purge": m.purge,
        "seasonal": m.seasonal,
        "btyd_level": m.btyd_level,
    }
    churn = {"params": m.churn_params, "calibration": m.churn_calibration, **common}
    return {"value": {"params": m.value_params, **common}, "churn": churn}


def fit_models(
    train: pd.DataFrame,
    validation: pd.Timestamp,
    config: Config,
    *,
    stacked: bool = True,
    labels_at: LabelsAt | None = None,
) -> tuple[ValueModel, ChurnModel]:
    """Fit the value and churn models on a stacked training set (rows of ``build_training_set``), the rows of the
    ``validation`` cutoff and up to ``cutoffs.n_validation - 1`` earlier ones choosing settings
    (:func:`validation_cutoffs`; scores averaged over them). The cutoff column goes in as the groups (BTYD
    features are fitted per cutoff; settings are chosen on training rows whose label windows end by each
    validation cutoff). With one training cutoff the stacked models are BTYD-led; when no training label window
    ends by the validation cutoff, settings are chosen on windows cut to end by it (:func:`short_windows`, their
    labels from ``labels_at``), else (no ``labels_at``, or too short a history) the models are BTYD-led too."""
    features = feature_columns(train)
    cols = [*features, CUTOFF]
    h = config.horizon_days
    kw = model_kwargs(config, stacked=stacked)
    is_val = (train[CUTOFF] == validation).to_numpy()
    if not is_val.any():
        raise ValueError(f"validation cutoff {validation} is not a training cutoff")
    if is_val.all() and not stacked:
        raise ValueError("a plain GBM needs at least two training cutoffs (one to fit, one to validate)")
    one_class, notice = churn_label_notice(train, validation, h)
    if one_class and not stacked:
        raise InsufficientDataError(f"a plain GBM needs both churn classes: {notice}")
    if notice is not None and stacked:
        warnings.warn(notice, stacklevel=2)
    if is_val.all() or one_class:
        # one training label window, or a churn label of one class: nothing can show that trees beat the BTYD
        # model, so the models are BTYD-led, their level fitted on those windows
        rows = train
        value = ValueModel(**kw["value"]).fit(rows[cols], rows[FUTURE_VALUE], label_days=h)
        churn = ChurnModel(**kw["churn"]).fit(rows[cols], rows[CHURNED], label_days=h)
        return value, churn
    # short_windows is empty where a horizon-length label window ends by the validation cutoff already
    cut = short_windows(train[CUTOFF], validation, h, config.cutoffs.n_validation) if stacked and labels_at else []
    if cut:
        return _fit_on_short_windows(train, cut, labels_at, config)
    val_cuts = validation_cutoffs(train[CUTOFF], validation, h, config.cutoffs.n_validation)
    is_val = train[CUTOFF].isin(val_cuts).to_numpy()
    fit_rows, val_rows = train.loc[~is_val], train.loc[is_val]
    common = {LABEL_DAYS: h, "val_label_days": h, "val_cutoff": validation}
    value = ValueModel(**kw["value"]).fit(
        fit_rows[cols], fit_rows[FUTURE_VALUE], val_rows[cols], val_rows[FUTURE_VALUE], **common
    )
    churn = ChurnModel(**kw["churn"]).fit(
        fit_rows[cols], fit_rows[CHURNED], val_rows[cols], val_rows[CHURNED], **common
    )
    return value, churn


def _fit_on_short_windows(
    train: pd.DataFrame,
    cut: list[tuple[pd.Timestamp, list[tuple[pd.Timestamp, int]]]],
    labels_at: LabelsAt,
    config: Config,
) -> tuple[ValueModel, ChurnModel]:
    """Settings chosen with trees fitted on label windows cut to end by each validation cutoff (one rolling-origin
    fold per validation cutoff of ``cut``), then the trees refitted on ``train``'s horizon-length windows with
    those settings: a history too short to separate horizon-length windows from the validation still gets a
    time-separated choice (the BTYD offset carries the horizon, so the trees learn a correction that transfers)."""
    h = config.horizon_days
    cols = [*feature_columns(train), CUTOFF]
    blocks, labels = [], list(LABEL_FILL)
    for fold, (v, windows) in enumerate(cut):
        for c, days in windows:
            if c + pd.Timedelta(days=days) > v:  # the leakage guard: a window passing the validation cutoff
                raise ValueError(f"label window {c.date()} + {days} days passes the validation cutoff {v.date()}")
            rows = train.loc[train[CUTOFF] == c].drop(columns=labels)
            rows = rows.merge(labels_at(c, days)[[CUSTOMER_ID, *labels]], on=CUSTOMER_ID, how="left", validate="1:1")
            blocks.append(rows.fillna(LABEL_FILL).assign(**{LABEL_DAYS: float(days), "_fold": fold}))
    fit_rows = pd.concat(blocks, ignore_index=True)
    val_cuts = [v for v, _ in cut]
    val_rows = train.loc[train[CUTOFF].isin(val_cuts)].reset_index(drop=True)
    folds = [((fit_rows["_fold"] == i).to_numpy(), (val_rows[CUTOFF] == v).to_numpy()) for i, v in enumerate(val_cuts)]
    kw = model_kwargs(config)
    fitted = []
    for cls, target, params in ((ValueModel, FUTURE_VALUE, kw["value"]), (ChurnModel, CHURNED, kw["churn"])):
        model = cls(**params).fit(
            fit_rows[cols],
            fit_rows[target],
            val_rows[cols],
            val_rows[target],
            label_days=fit_rows[LABEL_DAYS].to_numpy(),
            val_label_days=h,
            val_cutoff=val_cuts[-1],
            folds=folds if len(folds) > 1 else None,
        )
        fitted.append(model.refit(train[cols], train[target], label_days=h))
    return fitted[0], fitted[1]


def tier_scheme(config: Config) -> TierScheme:
    """The (unfitted) tier scheme of a config's ``tiers:`` section."""
    t = config.tiers
    return TierScheme(
        names=t.tier_names(),
        k=t.k,
        k_max=t.k_max,
        min_share=t.min_share,
        silhouette_tolerance=t.silhouette_tolerance,
        random_state=config.seed,
    )


MIN_CUSTOMERS = 20  # at the validation cutoff: fewer cannot be split into tiers and scored with any confidence
MIN_BUYERS = 10  # customers with a purchase in a training label window: the value model's positive labels
CHURN_RATE_BOUNDS = (0.03, 0.97)  # outside them the churn label is nearly one class


def churn_label_notice(train: pd.DataFrame, validation: pd.Timestamp, horizon_days: int) -> tuple[bool, str | None]:
    """Whether the churn label leaves trees nothing to learn or validate (one class over the training rows or at the
    validation cutoff: the models are then BTYD-led, as the BTYD model needs no labels), and the notice for a label
    of (nearly) one class (outside :data:`CHURN_RATE_BOUNDS`; None inside). A shop of one-time buyers (the Olist
    sample: 99.7% buy nothing again within 90 days) still trains, the validation deciding whether trees add to
    the BTYD model; one where every customer buys in every window gets the BTYD model alone."""
    rate = float(train[CHURNED].mean())
    one_class = train[CHURNED].nunique() < 2 or train.loc[train[CUTOFF] == validation, CHURNED].nunique() < 2
    lo, hi = CHURN_RATE_BOUNDS
    if lo <= rate <= hi and not one_class:
        return False, None
    share = f"{rate:.1%} of the training label windows' customers make no purchase within horizon_days={horizon_days}"
    if one_class:
        return True, f"{share}: a churn label of one class, so the value and churn models are the BTYD model alone"
    other = int(round(min(rate, 1 - rate) * len(train)))
    return False, (
        f"{share}: a churn label of nearly one class ({other:,} customer-windows of the other); the validation "
        "decides whether trees add to the BTYD model, and churn metrics rest on few customers"
    )


def check_trainable(train: pd.DataFrame, plan: CutoffPlan, config: Config) -> None:
    """Refuse, naming what is missing, a training set the models cannot learn from: too few customers, (almost)
    no purchases in the label windows (only one-time buyers), or a single tier. A churn label of (nearly) one
    class is not refused (:func:`churn_label_notice`)."""
    h = config.horizon_days
    val_rows = train[train[CUTOFF] == plan.validation]
    n_customers = int(val_rows[CUSTOMER_ID].nunique())
    if n_customers < MIN_CUSTOMERS:
        raise InsufficientDataError(
            f"too few customers: {n_customers} have a history at the validation cutoff {plan.validation.date()}, "
            f"need at least {MIN_CUSTOMERS}; use more customers' transactions"
        )
    buyers = int((train[FUTURE_VALUE] > 0).sum())
    if buyers < MIN_BUYERS:
        purchases, refunds = (int(val_rows[c].sum()) for c in ("frequency_orders", "refund_count"))
        if refunds > purchases:
            raise InsufficientDataError(
                f"no purchases to learn from: before the validation cutoff {plan.validation.date()}, {purchases:,} "
                f"order(s) net above zero against {refunds:,} with refund lines, and {buyers} customer-cutoff(s) buy "
                f"in the {h}-day label windows: are the amounts' signs flipped (sales negative)?"
            )
        raise InsufficientDataError(
            f"too few repeat buyers: {buyers} customer-cutoff(s) with a purchase in the {h}-day label windows "
            f"(need {MIN_BUYERS}); the data looks like one-time buyers only: use a longer history or horizon_days"
        )
    current = val_rows[spend_column(h)].to_numpy(dtype=float)
    if len(np.unique(current[current > 0])) < 2:
        raise InsufficientDataError(
            f"one tier only: fewer than two distinct spend levels over the {h} days before the validation cutoff "
            f"{plan.validation.date()}; use more customers or a longer horizon_days"
        )


def _assemble(
    value_model: ValueModel,
    churn_model: ChurnModel,
    rows: pd.DataFrame,
    realized: np.ndarray,
    config: Config,
    versions: dict[str, str],
) -> TiercastScorer:
    """A scorer around fitted models: the tier scheme, drift references and segments fitted on ``rows`` (one
    cutoff's feature rows, like a scoring population); predicted-tier shares from ``realized`` label values."""
    features = list(value_model.input_features_)
    current_col = spend_column(config.horizon_days)
    scheme = tier_scheme(config).fit(np.clip(rows[current_col].to_numpy(dtype=float), 0.0, None))
    # Predicted tiers fill the shares customers actually reach over a horizon (more of them lapse to the bottom
    # tier than the current window shows), learned from the training cutoffs' realized labels.
    scheme.fit_predictions(value_model.predict(rows[features]), realized=np.clip(realized, 0.0, None))
    scorer = TiercastScorer(
        scheme=scheme,
        value_model=value_model,
        churn_model=churn_model,
        feature_names=tuple(features),
        current_value_column=current_col,
        horizon_days=config.horizon_days,
        versions=versions,
    )
    return replace(
        scorer,
        feature_profile=DriftProfile(relative_columns=AGE_COLUMNS).fit(rows, features),
        score_profile=DriftProfile().fit(scorer.score(rows), DRIFT_SCORE_COLUMNS),
        segments=behavior_segments(rows[features], config.seed),
    )


def behavior_segments(rows: pd.DataFrame, seed: int) -> BehaviorSegments | None:
    """Behavioral segments fitted on ``rows``, or None with a warning when the customers cannot be segmented (too
    few, or too alike for every segment to hold its minimum share): segments key playbook rules and describe the
    tiers, so a small shop still trains, scores and studies its tiers without them."""
    try:
        return BehaviorSegments(random_state=seed).fit(rows)
    except InsufficientDataError as err:
        warnings.warn(
            f"no behavioral segments ({err}): scores carry no segment, and playbook rules naming segments match no "
            "customer",
            stacklevel=2,
        )
        return None


def fit_scorer(
    train: pd.DataFrame,
    plan: CutoffPlan,
    config: Config,
    versions: dict[str, str],
    labels_at: LabelsAt | None = None,
) -> TiercastScorer:
    """Fit the tier scheme and both models on the stacked training cutoffs (settings chosen on the validation
    cutoff; ``labels_at``: see :func:`fit_models`): the model the test cutoff evaluates. Refused by
    :func:`check_trainable` when it cannot be learned."""
    check_trainable(train, plan, config)
    value_model, churn_model = fit_models(train, plan.validation, config, labels_at=labels_at)
    val_rows = train[train[CUTOFF] == plan.validation]
    return _assemble(value_model, churn_model, val_rows, train[FUTURE_VALUE].to_numpy(dtype=float), config, versions)


def btyd_at(scorer: TiercastScorer, rows: pd.DataFrame) -> TiercastScorer:
    """``scorer`` with the BTYD part of its models fitted on ``rows`` (the feature rows of the cutoff scored;
    labels are not read), as the production refit fits it at the data end. ``scorer`` is left unchanged."""
    value_model, churn_model = copy.deepcopy(scorer.value_model), copy.deepcopy(scorer.churn_model)
    return replace(scorer, value_model=value_model.fit_btyd_at(rows), churn_model=churn_model.fit_btyd_at(rows))


def refit_for_production(
    scorer: TiercastScorer,
    production: pd.DataFrame,
    now: pd.DataFrame,
    config: Config,
    versions: dict[str, str],
) -> TiercastScorer:
    """The registered model: ``scorer``'s models with their chosen settings (parameters, tree counts, blend
    weights, calibration) refitted on the ``production`` cutoffs (the newest label window ends at the data end),
    and their BTYD part fitted on ``now`` (feature rows at the data end). ``scorer`` is left unchanged."""
    value_model, churn_model = copy.deepcopy(scorer.value_model), copy.deepcopy(scorer.churn_model)
    # every feature column, not only the trees' inputs: the BTYD part reads the year-ago summary for its level
    cols = [*feature_columns(production), CUTOFF]
    h = config.horizon_days
    value_model.refit(production[cols], production[FUTURE_VALUE], label_days=h).fit_btyd_at(now)
    churn_model.refit(production[cols], production[CHURNED], label_days=h).fit_btyd_at(now)
    realized = production[FUTURE_VALUE].to_numpy(dtype=float)
    # tiers, drift references and segments from the newest training cutoff, as the evaluated model's come from
    # its validation cutoff: drift then measures the change since the newest rows the model learned from
    newest = production[production[CUTOFF] == production[CUTOFF].max()]
    return _assemble(value_model, churn_model, newest, realized, config, versions)
