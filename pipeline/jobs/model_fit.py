"""Fitting the value and churn models of a config on a stacked training set (shared by training and backtests)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tiercast.features.contract import feature_columns
from tiercast.features.cutoff_plan import validation_cutoffs
from tiercast.models.gbm.churn import ChurnModel
from tiercast.models.gbm.lgbm import DEFAULT_GRID
from tiercast.models.gbm.value import ValueModel
from tiercast.models.tiers.scheme import TierScheme
from tiercast.pipeline.config import Config

__all__ = ["fit_models", "model_kwargs", "tier_scheme"]


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
    train: pd.DataFrame, validation: pd.Timestamp, config: Config, *, stacked: bool = True
) -> tuple[ValueModel, ChurnModel]:
    """Fit the value and churn models on a stacked training set (rows of ``build_training_set``), the rows of the
    ``validation`` cutoff and up to ``cutoffs.n_validation - 1`` earlier ones choosing settings
    (:func:`validation_cutoffs`; scores averaged over them). The cutoff column goes in as the groups (BTYD
    features are fitted per cutoff; settings are chosen on training rows whose label windows end by each
    validation cutoff). With one training cutoff the stacked models are BTYD-led."""
    features = feature_columns(train)
    cols = [*features, "cutoff"]
    h = config.horizon_days
    kw = model_kwargs(config, stacked=stacked)
    is_val = (train["cutoff"] == validation).to_numpy()
    if not is_val.any():
        raise ValueError(f"validation cutoff {validation} is not a training cutoff")
    if is_val.all() and not stacked:
        raise ValueError("a plain GBM needs at least two training cutoffs (one to fit, one to validate)")
    if is_val.all():
        # one training label window: nothing can show that trees beat the BTYD model, so the models are
        # BTYD-led, their level fitted on that window
        rows = train
        value = ValueModel(**kw["value"]).fit(rows[cols], rows["future_value"], label_days=h)
        churn = ChurnModel(**kw["churn"]).fit(rows[cols], rows["churned"], label_days=h)
        return value, churn
    val_cuts = validation_cutoffs(train["cutoff"], validation, h, config.cutoffs.n_validation)
    is_val = train["cutoff"].isin(val_cuts).to_numpy()
    fit_rows, val_rows = train.loc[~is_val], train.loc[is_val]
    common = {"label_days": h, "val_label_days": h, "val_cutoff": validation}
    value = ValueModel(**kw["value"]).fit(
        fit_rows[cols], fit_rows["future_value"], val_rows[cols], val_rows["future_value"], **common
    )
    churn = ChurnModel(**kw["churn"]).fit(
        fit_rows[cols], fit_rows["churned"], val_rows[cols], val_rows["churned"], **common
    )
    return value, churn


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
