"""Training: rolling cutoffs -> stacked training set -> tier scheme, value and churn models -> test-cutoff backtest
beside the naive baseline -> one MLflow run with the registered pyfunc.

Time layout (all dates are midnight cutoffs, windows half-open):

    data start ... [train cutoffs, step_days apart] ... validation cutoff | test cutoff | data end
                                                      <- horizon ->       <- horizon ->

The test cutoff is ``data end - horizon`` (or configured) so its label window is the last horizon of data. Every
training cutoff's label window ends at or before the test cutoff, so nothing of the test horizon is trained on.
The latest training cutoff is the validation cutoff for early stopping and probability calibration.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from tiercast.models.baselines import NaiveBaseline
from tiercast.models.drift import DriftProfile
from tiercast.models.evaluation import churn_metrics, tier_metrics, value_metrics
from tiercast.models.scorer import TiercastScorer, pyfunc_spec
from tiercast.models.segments import BehaviorSegments
from tiercast.pipeline import plots
from tiercast.pipeline.config import Config
from tiercast.pipeline.engine import (
    build_training_set_on,
    connect,
    data_bounds_on,
    engine_transactions,
    to_engine_table,
)
from tiercast.pipeline.io import IngestResult
from tiercast.pipeline.model_fit import feature_columns, fit_models, tier_scheme
from tiercast.pipeline.tracking import (
    data_fingerprint,
    flatten,
    git_commit,
    library_versions,
    model_pip_requirements,
    setup_mlflow,
)

DRIFT_SCORE_COLUMNS = ("predicted_value", "churn_probability")


@dataclass(frozen=True)
class CutoffPlan:
    """The cutoffs of one training run."""

    data_start: pd.Timestamp
    data_end: pd.Timestamp
    train: tuple[pd.Timestamp, ...]
    test: pd.Timestamp

    @property
    def validation(self) -> pd.Timestamp:
        return self.train[-1]


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


def data_bounds(tx: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First day of data and the midnight after the last transaction (the exclusive end of the data)."""
    return tx["timestamp"].min().normalize(), tx["timestamp"].max().normalize() + pd.Timedelta(days=1)


def plan_cutoffs(tx: pd.DataFrame, config: Config) -> CutoffPlan:
    """Choose test and rolling training cutoffs from the data's span and the config."""
    return plan_cutoffs_between(*data_bounds(tx), config)


def plan_cutoffs_between(start: pd.Timestamp, end: pd.Timestamp, config: Config) -> CutoffPlan:
    """:func:`plan_cutoffs` for data from the day ``start`` to the exclusive end ``end``."""
    horizon = pd.Timedelta(days=config.horizon_days)
    c = config.cutoffs
    test = pd.Timestamp(c.test_cutoff) if c.test_cutoff else end - horizon
    if test + horizon > end:
        raise ValueError(f"test cutoff {test.date()} + {config.horizon_days} days passes the data end {end.date()}")
    last_train = test - horizon
    earliest = start + pd.Timedelta(days=c.min_history_days)
    train = [last_train - pd.Timedelta(days=c.step_days * i) for i in range(c.n_train)]
    train = sorted(t for t in train if t >= earliest)
    if len(train) < 2:
        raise ValueError(
            f"only {len(train)} training cutoff(s) fit between {earliest.date()} and {last_train.date()}: "
            "need at least two (one to fit, one to validate); shorten horizon_days or cutoffs.step_days"
        )
    return CutoffPlan(data_start=start, data_end=end, train=tuple(train), test=test)


def evaluate(
    scorer: TiercastScorer, baseline: NaiveBaseline, test: pd.DataFrame, horizon_days: int
) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    """Test-cutoff metrics of tiercast and the naive baseline (value, churn, tiers vs persistence), and the
    per-customer predictions behind them (no ids) for plots."""
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
            **{
                f"tier_{k}": v
                for k, v in tier_metrics(preds["realized_tier"].to_numpy(), preds[tier_col].to_numpy(), order).items()
            },
        }
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


def fit_scorer(train: pd.DataFrame, plan: CutoffPlan, config: Config, versions: dict[str, str]) -> TiercastScorer:
    """Fit the tier scheme and both models on the stacked training cutoffs."""
    features = feature_columns(train)
    value_model, churn_model = fit_models(train, plan.validation, config)
    val_rows = train[train["cutoff"] == plan.validation]

    current_col = f"spend_{config.horizon_days}d"
    scheme = tier_scheme(config).fit(np.clip(val_rows[current_col].to_numpy(dtype=float), 0.0, None))
    # Predicted tiers fill the shares customers actually reach over a horizon (more of them lapse to the bottom
    # tier than the current window shows), learned from the training cutoffs' realized labels.
    realized = np.clip(train["future_value"].to_numpy(dtype=float), 0.0, None)
    scheme.fit_predictions(value_model.predict(val_rows[features]), realized=realized)
    scorer = TiercastScorer(
        scheme=scheme,
        value_model=value_model,
        churn_model=churn_model,
        feature_names=tuple(features),
        current_value_column=current_col,
        horizon_days=config.horizon_days,
        versions=versions,
    )
    # Drift references: the validation cutoff is one row per customer at one cutoff, like a scoring population.
    return replace(
        scorer,
        feature_profile=DriftProfile().fit(val_rows, features),
        score_profile=DriftProfile().fit(scorer.score(val_rows), DRIFT_SCORE_COLUMNS),
        segments=BehaviorSegments(random_state=config.seed).fit(val_rows[features]),
    )


def train(config: Config, ingest: IngestResult | None) -> TrainResult:
    """Run the backtest-and-train job and record it in MLflow; the fitted pyfunc is registered.

    Features and labels run on ``config.engine`` (DuckDB or Spark); the stacked training set — every customer, or
    ``engine.training_sample_customers`` of them — is collected here for the model fit. ``ingest`` is the pandas
    ingestion of ``data:``; None when ``engine.transactions`` names a table the engine reads itself.
    """
    con = connect(config.engine)
    if ingest is not None:
        tx = to_engine_table(con, ingest.accepted)
        plan = plan_cutoffs(ingest.accepted, config)
        fingerprint = data_fingerprint(
            ingest.source, n_read=ingest.n_read, accepted=ingest.accepted, n_quarantined=len(ingest.quarantine)
        )
    else:
        tx, counts = engine_transactions(con, config.engine)
        plan = plan_cutoffs_between(*data_bounds_on(con, tx), config)
        fingerprint = {
            "data_path": config.engine.transactions.path,
            "data_rows_read": counts.n_read,
            "data_rows_accepted": counts.n_accepted,
            "data_rows_quarantined": counts.n_quarantined,
            "data_first_day": str(plan.data_start.date()),
            "data_end": str(plan.data_end.date()),
        }
    windows = config.features.windows_days
    h = config.horizon_days
    common = {
        "horizon_days": h,
        "windows_days": windows,
        "sample": config.engine.training_sample_customers,
        "seed": config.seed,
    }
    train_set = build_training_set_on(
        con, tx, cutoffs=list(plan.train), data_end=plan.test, holdout_start=plan.test, **common
    )
    test_set = build_training_set_on(con, tx, cutoffs=[plan.test], data_end=plan.data_end, **common)
    versions = library_versions()
    scorer = fit_scorer(train_set, plan, config, versions)
    baseline = NaiveBaseline().fit(train_set, train_set["future_value"], train_set["churned"])
    metrics, preds = evaluate(scorer, baseline, test_set, h)

    experiment_id = setup_mlflow(config)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params(flatten("", config.model_dump(mode="json")))
        mlflow.log_params(
            {
                "cutoffs.train_resolved": ",".join(str(c.date()) for c in plan.train),
                "cutoffs.test_resolved": str(plan.test.date()),
                "value_model.n_trees": scorer.value_model.n_trees_,
                "churn_model.n_trees": scorer.churn_model.n_trees_,
                "tiers.k_resolved": scorer.scheme.k_,
                "n_features": len(scorer.feature_names),
            }
        )
        mlflow.set_tags(
            {
                **{f"version.{k}": v for k, v in versions.items()},
                "git_commit": git_commit() or "none",
                "tiercast.job": "train",
            }
        )
        mlflow.set_tags({f"data.{k}": str(v) for k, v in fingerprint.items()})
        for model_name, values in metrics.items():
            mlflow.log_metrics({f"test.{model_name}.{k}": float(v) for k, v in values.items() if np.isfinite(v)})
        mlflow.log_metrics({"train_rows": len(train_set), "test_rows": len(test_set)})
        log_plots(scorer, preds)
        mlflow.log_dict({"tiers": scorer.scheme.describe(), "features": list(scorer.feature_names)}, "scheme.json")

        with tempfile.TemporaryDirectory() as tmp:
            info = mlflow.pyfunc.log_model(
                name="model",
                pip_requirements=model_pip_requirements(),
                registered_model_name=config.mlflow.registered_model,
                **pyfunc_spec(scorer, test_set.head(5), tmp),
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
    )
