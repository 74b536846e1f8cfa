"""Training: rolling cutoffs -> stacked training set -> tier scheme, value and churn models -> test-cutoff backtest
beside the naive baseline -> a production refit on the newest label windows -> one MLflow run with the registered
pyfunc.

Time layout (all dates are midnight cutoffs, windows half-open):

    data start ... [train cutoffs, step_days apart] ... validation cutoff | test cutoff | data end
                                                      <- horizon ->       <- horizon ->

The test cutoff is ``data end - horizon`` (or configured) so its label window is the last horizon of data. Every
training cutoff's label window ends at or before the test cutoff, so nothing of the test horizon is trained on.
The latest training cutoff is the validation cutoff for early stopping and probability calibration.

The model evaluated on the test cutoff is not the one registered: settings chosen, the trees are refitted with the
same settings on the production cutoffs (the same steps, the newest being ``data end - horizon``, so its labels
end at the data end) and the BTYD part is fitted on the feature rows at the data end (it needs no labels). The
test metrics come from the evaluation model, which never saw the test window.

Short histories: with less than ``min_history_days + 2 * horizon`` days there is no room for a held-out test
window; the model is then fitted on the production cutoffs alone (one label window is enough: the models are
BTYD-led without a validation cutoff) and the run says what was dropped. Less than ``min_history_days + horizon``
days is refused (:class:`~tiercast.features.cutoff_plan.HistoryTooShortError`). The cutoffs come from
:mod:`tiercast.features.cutoff_plan`.
"""

from __future__ import annotations

import copy
import functools
import tempfile
from dataclasses import dataclass, field, replace
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from tiercast.features.contract import DRIFT_SCORE_COLUMNS, spend_column
from tiercast.features.cutoff_plan import CutoffPlan, plan_cutoffs
from tiercast.features.errors import InsufficientDataError
from tiercast.features.labels import build_labels
from tiercast.features.training_set import LABEL_FILL
from tiercast.models.baselines import NaiveBaseline
from tiercast.models.drift import AGE_COLUMNS, DriftProfile
from tiercast.models.evaluation import churn_metrics, tier_metrics, value_metrics
from tiercast.models.gbm.churn import ChurnModel
from tiercast.models.gbm.value import ValueModel
from tiercast.models.scorer import TiercastScorer, pyfunc_spec
from tiercast.models.segments import BehaviorSegments
from tiercast.pipeline.config import Config
from tiercast.pipeline.engine.rows import CutoffRows, features_on
from tiercast.pipeline.engine.session import engine_resident
from tiercast.pipeline.ingest.loader import Transactions, load_transactions
from tiercast.pipeline.jobs.comparisons import comparison_predictions
from tiercast.pipeline.jobs.model_fit import fit_models, tier_scheme
from tiercast.pipeline.terminal import phase, phased
from tiercast.pipeline.tracking import plots
from tiercast.pipeline.tracking.registry import EvaluationWindow
from tiercast.pipeline.tracking.runs import (
    flatten,
    git_commit,
    library_versions,
    model_pip_requirements,
    run_owner_tags,
    setup_mlflow,
)


@dataclass
class TrainResult:
    run_id: str
    experiment_id: str
    model_name: str
    model_version: str
    scorer: TiercastScorer
    plan: CutoffPlan
    test_metrics: dict[str, dict[str, float]]
    tiers: list[dict[str, Any]]
    n_train_rows: int
    n_test_rows: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}/{self.model_version}"


def evaluate(
    scorer: TiercastScorer,
    baseline: NaiveBaseline,
    test: pd.DataFrame,
    horizon_days: int,
    others: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    """Test-cutoff metrics of tiercast and the naive baseline (value, churn, tiers vs persistence), plus value and
    churn metrics of ``others`` ((value, churn) predictions per method, e.g. the BTYD baselines and the plain GBM),
    and the per-customer predictions behind them (no ids) for plots."""
    scores = scorer.score(test)
    y_value = test["future_value"].to_numpy(dtype=float)
    y_churn = test["churned"].to_numpy(dtype=int)
    preds = pd.DataFrame(
        {
            "actual_value": y_value,
            "churned": y_churn,
            "tiercast_value": scores["predicted_value"].to_numpy(),
            "naive_value": baseline.predict_value(test, horizon_days),
            "tiercast_churn": scores["churn_probability"].to_numpy(),
            "naive_churn": baseline.predict_churn(test, horizon_days),
            "current_tier": scores["current_tier"].to_numpy(),
            "predicted_tier": scores["predicted_tier"].to_numpy(),
            "realized_tier": scorer.scheme.assign(np.clip(y_value, 0.0, None)),
        }
    )
    order = list(scorer.scheme.names_)
    metrics = {}
    for name, tier_col in (("tiercast", "predicted_tier"), ("naive", "current_tier")):
        metrics[name] = {
            **value_metrics(y_value, preds[f"{name}_value"].to_numpy()),
            **churn_metrics(y_churn, preds[f"{name}_churn"].to_numpy()),
            "mean_churn_probability": float(preds[f"{name}_churn"].mean()),
            "realized_churn": float(y_churn.mean()),
            **{
                f"tier_{k}": v
                for k, v in tier_metrics(preds["realized_tier"].to_numpy(), preds[tier_col].to_numpy(), order).items()
            },
        }
    for name, (value, churn) in (others or {}).items():
        metrics[name] = {**value_metrics(y_value, np.asarray(value)), **churn_metrics(y_churn, np.asarray(churn))}
    return metrics, preds


def log_plots(scorer: TiercastScorer, preds: pd.DataFrame) -> None:
    """Gain, decile, calibration, Pareto, migration and importance plots of the test cutoff, as run artifacts."""
    figures = {
        "gain_curve.png": plots.gain_curve(
            preds["actual_value"].to_numpy(), {m: preds[f"{m}_value"].to_numpy() for m in ("tiercast", "naive")}
        ),
        "decile_chart.png": plots.decile_chart(preds["actual_value"].to_numpy(), preds["tiercast_value"].to_numpy()),
        "calibration_curve.png": plots.calibration_curve(
            preds["churned"].to_numpy(), {m: preds[f"{m}_churn"].to_numpy() for m in ("tiercast",)}
        ),
        "pareto_curve.png": plots.pareto_curve(preds["actual_value"].to_numpy()),
        "tier_shares.png": plots.tier_bars(
            scorer.scheme.names_, preds["realized_tier"], preds["actual_value"].to_numpy()
        ),
        "tier_migration.png": plots.migration_heatmap(
            preds["current_tier"], preds["predicted_tier"], scorer.scheme.names_
        ),
        "importance_value.png": plots.feature_importance(
            list(scorer.value_model.feature_names_in_),
            scorer.value_model.feature_importances_,
            "Value model: feature importance",
        ),
        "importance_churn.png": plots.feature_importance(
            list(scorer.churn_model.feature_names_in_),
            scorer.churn_model.feature_importances_,
            "Churn model: feature importance",
        ),
    }
    for name, fig in figures.items():
        mlflow.log_figure(fig, f"plots/{name}")
        plots.close(fig)


MIN_CUSTOMERS = 20  # at the validation cutoff: fewer cannot be split into tiers and scored with any confidence
MIN_BUYERS = 10  # customers with a purchase in a training label window: the value model's positive labels
CHURN_RATE_BOUNDS = (0.03, 0.97)  # outside them the churn label is nearly one class


def check_trainable(train: pd.DataFrame, plan: CutoffPlan, config: Config) -> None:
    """Refuse, naming what is missing, a training set the models cannot learn from: too few customers, (almost)
    no purchases in the label windows (only one-time buyers), a churn label of one class, or a single tier."""
    h = config.horizon_days
    val_rows = train[train["cutoff"] == plan.validation]
    n_customers = int(val_rows["customer_id"].nunique())
    if n_customers < MIN_CUSTOMERS:
        raise InsufficientDataError(
            f"too few customers: {n_customers} have a history at the validation cutoff {plan.validation.date()}, "
            f"need at least {MIN_CUSTOMERS}; use more customers' transactions"
        )
    buyers = int((train["future_value"] > 0).sum())
    if buyers < MIN_BUYERS:
        raise InsufficientDataError(
            f"too few repeat buyers: {buyers} customer-cutoff(s) with a purchase in the {h}-day label windows "
            f"(need {MIN_BUYERS}); the data looks like one-time buyers only: use a longer history or horizon_days"
        )
    rate = float(train["churned"].mean())
    lo, hi = CHURN_RATE_BOUNDS
    if rate > hi:
        raise InsufficientDataError(
            f"degenerate churn label: {rate:.1%} of customers make no purchase within horizon_days={h} "
            f"(above {hi:.0%}); use a longer horizon_days"
        )
    if rate < lo:
        raise InsufficientDataError(
            f"degenerate churn label: only {rate:.1%} of customers make no purchase within horizon_days={h} "
            f"(below {lo:.0%}); use a shorter horizon_days"
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
        segments=BehaviorSegments(random_state=config.seed).fit(rows[features]),
    )


def fit_scorer(train: pd.DataFrame, plan: CutoffPlan, config: Config, versions: dict[str, str]) -> TiercastScorer:
    """Fit the tier scheme and both models on the stacked training cutoffs (settings chosen on the validation
    cutoff): the model the test cutoff evaluates. Refused by :func:`check_trainable` when it cannot be learned."""
    check_trainable(train, plan, config)
    value_model, churn_model = fit_models(train, plan.validation, config)
    val_rows = train[train["cutoff"] == plan.validation]
    return _assemble(value_model, churn_model, val_rows, train["future_value"].to_numpy(dtype=float), config, versions)


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
    cols = [*scorer.feature_names, "cutoff"]
    h = config.horizon_days
    value_model.refit(production[cols], production["future_value"], label_days=h).fit_btyd_at(now)
    churn_model.refit(production[cols], production["churned"], label_days=h).fit_btyd_at(now)
    realized = production["future_value"].to_numpy(dtype=float)
    # tiers, drift references and segments from the newest training cutoff, as the evaluated model's come from
    # its validation cutoff: drift then measures the change since the newest rows the model learned from
    newest = production[production["cutoff"] == production["cutoff"].max()]
    return _assemble(value_model, churn_model, newest, realized, config, versions)


def _features_at(con: Any, tx: Any, cutoff: pd.Timestamp, config: Config, satisfaction: Any = None) -> pd.DataFrame:
    """Feature rows at ``cutoff`` (the training sample of customers when one is configured), at most
    ``engine.training_max_rows_per_cutoff`` of them (a value-stratified sample drawn in the engine)."""
    return features_on(
        con,
        tx,
        cutoff=cutoff,
        windows_days=config.features.windows_days,
        horizon_days=config.horizon_days,
        satisfaction=satisfaction,
        sample=config.engine.training_sample_customers,
        seed=config.seed,
        max_rows=config.engine.training_max_rows_per_cutoff,
    )


def sampling_log(sets: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Rows per cutoff before and after the per-cutoff cap, per training set (counts only, never customer ids)."""
    out: dict[str, Any] = {}
    for name, frame in sets.items():
        counts = frame.attrs.get("sampling", [])
        out[name] = [{**c, "cutoff": str(pd.Timestamp(c["cutoff"]).date())} for c in counts]
    return out


def sampling_params(log: dict[str, Any], cap: int | None) -> dict[str, Any]:
    """MLflow params summarizing :func:`sampling_log`: the cap, and per set the cutoffs sampled and the rows before
    and after."""
    params: dict[str, Any] = {"sampling.max_rows_per_cutoff": cap if cap is not None else "none"}
    for name, rows in log.items():
        params[f"sampling.{name}.cutoffs_sampled"] = sum(r["rows_after"] < r["rows_before"] for r in rows)
        params[f"sampling.{name}.rows_before"] = sum(r["rows_before"] for r in rows)
        params[f"sampling.{name}.rows_after"] = sum(r["rows_after"] for r in rows)
    return params


def _window_from(
    con: Any,
    tx: Any,
    evaluated: TiercastScorer,
    test_window: EvaluationWindow | None,
    start: pd.Timestamp,
    *,
    plan: CutoffPlan,
    config: Config,
    satisfaction: Any = None,
) -> EvaluationWindow | None:
    """Feature rows at ``start`` with labels over ``[start, data end)`` (at most a horizon), scored by the
    evaluation model (trained on labels ending by the test cutoff): the window a promotion compares the champion
    on when the champion's own labels end at ``start``. The test window itself when ``start`` is the test cutoff;
    None when no day of data is left after ``start``."""
    if test_window is not None and start == test_window.cutoff:
        return test_window
    if plan.test is not None and start < plan.test:
        raise ValueError(f"window start {start.date()} is before the test cutoff {plan.test.date()}")
    days = min(config.horizon_days, (plan.data_end - start).days)
    if days <= 0:
        return None
    rows = _features_at(con, tx, start, config, satisfaction)
    labels = build_labels(tx, cutoff=start, horizon_days=days, con=con)
    rows = rows.merge(labels, on="customer_id", how="left", validate="one_to_one")
    rows = rows.fillna({col: value for col, value in LABEL_FILL.items()})
    scores = btyd_at(evaluated, rows).score(rows)
    return EvaluationWindow(
        cutoff=start,
        label_days=days,
        rows=rows,
        predicted_value=scores["predicted_value"].to_numpy(),
        churn_probability=scores["churn_probability"].to_numpy(),
    )


@phased
def train(config: Config, data: Transactions | None = None) -> TrainResult:
    """Run the backtest-and-train job and record it in MLflow; the production refit is registered.

    Features and labels run on ``data``'s engine (DuckDB or Spark; :func:`~tiercast.pipeline.ingest.loader.
    load_transactions` of ``config`` when None), with the customer-level extras (satisfaction) exactly as in the
    backtest; the stacked training set — every customer, or ``engine.training_sample_customers`` of them — is
    collected here for the model fit.
    """
    data = data if data is not None else load_transactions(config)
    con, tx = data.con, engine_resident(data.con, data.table)
    plan = plan_cutoffs(*data.bounds, config.cutoff_rules())
    fingerprint = dict(data.fingerprint)
    satisfaction = data.engine_satisfaction()
    windows = config.features.windows_days
    h = config.horizon_days
    common = {
        "horizon_days": h,
        "windows_days": windows,
        "sample": config.engine.training_sample_customers,
        "seed": config.seed,
        "satisfaction": satisfaction,
        "max_rows_per_cutoff": config.engine.training_max_rows_per_cutoff,
    }
    held_out = plan.test if plan.test is not None else plan.data_end
    phase(f"features and labels at {len(plan.train)} training cutoffs")
    rows = CutoffRows(con, tx, **common)  # a cutoff shared by the training, test and production sets is built once
    train_set = rows.training_set(cutoffs=list(plan.train), data_end=held_out, holdout_start=held_out)
    versions = library_versions()
    phase("fitting the value and churn models")
    evaluated = fit_scorer(train_set, plan, config, versions)
    metrics: dict[str, dict[str, float]] = {}
    test_set = train_set.iloc[:0].copy()
    test_set.attrs = {"sampling": []}
    preds = None
    window: EvaluationWindow | None = None
    if plan.test is not None:
        phase(f"testing at {plan.test.date()} beside the baselines")
        test_set = rows.training_set(cutoffs=[plan.test], data_end=plan.data_end)
        baseline = NaiveBaseline().fit(train_set, train_set["future_value"], train_set["churned"])
        others = comparison_predictions(train_set, test_set, plan.validation, config)
        metrics, preds = evaluate(btyd_at(evaluated, test_set), baseline, test_set, h, others)
        window = EvaluationWindow(
            cutoff=plan.test,
            label_days=h,
            rows=test_set,
            predicted_value=preds["tiercast_value"].to_numpy(),
            churn_probability=preds["tiercast_churn"].to_numpy(),
        )
    phase(f"refitting on the newest label windows (to {plan.data_end.date()})")
    production = rows.training_set(cutoffs=list(plan.production), data_end=plan.data_end)
    now = _features_at(con, tx, plan.data_end, config, satisfaction)
    scorer = refit_for_production(evaluated, production, now, config, versions)

    phase("logging the run to MLflow and registering the model")
    experiment_id = setup_mlflow(config)
    with mlflow.start_run(experiment_id=experiment_id, tags=run_owner_tags()) as run:
        mlflow.log_params(flatten("", config.model_dump(mode="json")))
        mlflow.log_params(
            {
                "cutoffs.train_resolved": ",".join(str(c.date()) for c in plan.train),
                "cutoffs.test_resolved": str(plan.test.date()) if plan.test is not None else "none",
                "production.train_cutoffs": ",".join(str(c.date()) for c in plan.production),
                "production.labels_end": str(plan.data_end.date()),
                "production.btyd_cutoff": str(plan.data_end.date()),
                "value_model.n_trees": scorer.value_model.n_trees_,
                "churn_model.n_trees": scorer.churn_model.n_trees_,
                "value_model.blend_weight": getattr(scorer.value_model, "weight_", 1.0),
                "churn_model.blend_weight": getattr(scorer.churn_model, "weight_", 1.0),
                "value_model.btyd": str(getattr(scorer.value_model, "btyd_", None)),
                "churn_model.btyd": str(getattr(scorer.churn_model, "btyd_", None)),
                "tiers.k_resolved": scorer.scheme.k_,
                "n_features": len(scorer.feature_names),
            }
        )
        mlflow.set_tags(
            {
                **{f"version.{k}": v for k, v in versions.items()},
                "git_commit": git_commit() or "none",
                "tiercast.job": "train",
                **({"tiercast.notes": " | ".join(plan.notes)} if plan.notes else {}),
            }
        )
        mlflow.set_tags({f"data.{k}": str(v) for k, v in fingerprint.items()})
        for model_name, values in metrics.items():
            mlflow.log_metrics({f"test.{model_name}.{k}": float(v) for k, v in values.items() if np.isfinite(v)})
        mlflow.log_metrics(
            {"train_rows": len(train_set), "test_rows": len(test_set), "production_rows": len(production)}
        )
        sampled = sampling_log({"train": train_set, "test": test_set, "production": production, "scoring_fit": now})
        mlflow.log_params(sampling_params(sampled, config.engine.training_max_rows_per_cutoff))
        mlflow.log_dict(sampled, "sampling.json")
        if preds is not None:
            log_plots(evaluated, preds)
        mlflow.log_dict(
            {
                "tiers": scorer.scheme.describe(),
                "features": list(scorer.feature_names),
                "evaluation": {
                    "train_cutoffs": [str(c.date()) for c in plan.train],
                    "test_cutoff": str(plan.test.date()) if plan.test is not None else None,
                },
                "production": {
                    "train_cutoffs": [str(c.date()) for c in plan.production],
                    "labels_end": str(plan.data_end.date()),
                    "btyd_cutoff": str(plan.data_end.date()),
                },
                "notes": list(plan.notes),
            },
            "scheme.json",
        )

        with tempfile.TemporaryDirectory() as tmp:
            info = mlflow.pyfunc.log_model(
                name="model",
                pip_requirements=model_pip_requirements(),
                registered_model_name=config.mlflow.registered_model,
                **pyfunc_spec(scorer, now, tmp),
            )
        version = str(info.registered_model_version)
    return TrainResult(
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        model_name=config.mlflow.registered_model,
        model_version=version,
        scorer=scorer,
        plan=plan,
        test_metrics=metrics,
        tiers=scorer.scheme.describe(),
        n_train_rows=len(train_set),
        n_test_rows=len(test_set),
        extra={
            "evaluated": evaluated,
            "production_rows": len(production),
            "window": window,
            "window_from": functools.partial(
                _window_from, con, tx, evaluated, window, plan=plan, config=config, satisfaction=satisfaction
            ),
        },
    )
