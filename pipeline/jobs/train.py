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

import functools
import tempfile
from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from tiercast.features.contract import CHURN_PROBABILITY, CHURNED, CUSTOMER_ID, CUTOFF, FUTURE_VALUE, PREDICTED_VALUE
from tiercast.features.cutoff_plan import CutoffPlan, plan_cutoffs
from tiercast.features.labels import build_labels
from tiercast.features.training_set import LABEL_FILL
from tiercast.models.baselines import NaiveBaseline
from tiercast.models.scorer import TiercastScorer, pyfunc_spec
from tiercast.pipeline.config import Config
from tiercast.pipeline.engine.rows import CutoffRows, features_on
from tiercast.pipeline.engine.sampling import Sampling
from tiercast.pipeline.engine.session import engine_resident
from tiercast.pipeline.ingest.loader import Transactions, load_transactions
from tiercast.pipeline.jobs.comparisons import comparison_predictions
from tiercast.pipeline.jobs.holdout import evaluate, log_plots
from tiercast.pipeline.jobs.model_fit import btyd_at, fit_scorer, labels_from, refit_for_production
from tiercast.pipeline.terminal import phase, phased
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


def _features_at(
    con: Any, tx: Any, cutoff: pd.Timestamp, config: Config, satisfaction: Any = None
) -> tuple[pd.DataFrame, Sampling]:
    """Feature rows at ``cutoff`` (the training sample of customers when one is configured), at most
    ``engine.training_max_rows_per_cutoff`` of them (a value-stratified sample drawn in the engine), and what the
    cap did."""
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


def sampling_log(sets: dict[str, Sampling]) -> dict[str, Any]:
    """Rows per cutoff before and after the per-cutoff cap, per training set (counts only, never customer ids)."""
    out: dict[str, Any] = {}
    for name, sampling in sets.items():
        out[name] = [{**c, CUTOFF: str(pd.Timestamp(c[CUTOFF]).date())} for c in sampling.records()]
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
    rows, _ = _features_at(con, tx, start, config, satisfaction)
    labels = build_labels(tx, cutoff=start, horizon_days=days, con=con)
    rows = rows.merge(labels, on=CUSTOMER_ID, how="left", validate="one_to_one")
    rows = rows.fillna({col: value for col, value in LABEL_FILL.items()})
    scores = btyd_at(evaluated, rows).score(rows)
    return EvaluationWindow(
        cutoff=start,
        label_days=days,
        rows=rows,
        predicted_value=scores[PREDICTED_VALUE].to_numpy(),
        churn_probability=scores[CHURN_PROBABILITY].to_numpy(),
    )


@dataclass
class _Fitted:
    """The models and rows of one training job, before it is logged."""

    evaluated: TiercastScorer
    scorer: TiercastScorer
    train_set: pd.DataFrame
    test_set: pd.DataFrame
    production: pd.DataFrame
    now: pd.DataFrame
    metrics: dict[str, dict[str, float]]
    preds: pd.DataFrame | None
    window: EvaluationWindow | None
    #: What the per-cutoff cap did to each set of rows: train, test, production, scoring_fit (``now``).
    sampling: dict[str, Sampling]


@phased
def train(config: Config, data: Transactions | None = None) -> TrainResult:
    """Run the backtest-and-train job and record it in MLflow; the production refit is registered.

    Features and labels run on ``data``'s engine (DuckDB or Spark; :func:`~tiercast.pipeline.ingest.loader.
    load_transactions` of ``config`` when None), with the customer-level extras (satisfaction) exactly as in the
    backtest; the stacked training set — every customer, or ``engine.training_sample_customers`` of them — is
    collected here for the model fit.
    """
    if data is None:  # the quarantine is put in place once the training has succeeded
        from tiercast.pipeline.writers.files import on_success

        data = load_transactions(config, hold=True)
        with on_success(data.held_quarantine):
            return train(config, data)
    con, tx = data.con, engine_resident(data.con, data.table)
    plan = plan_cutoffs(*data.bounds, config.cutoff_rules())
    fingerprint = dict(data.fingerprint)
    satisfaction = data.engine_satisfaction()
    versions = library_versions()
    fitted = _fit_and_test(con, tx, plan, config, satisfaction, versions)
    phase("logging the run to MLflow and registering the model")
    run_id, experiment_id, version = _log_training_run(config, plan, fitted, versions, fingerprint)
    return TrainResult(
        run_id=run_id,
        experiment_id=experiment_id,
        model_name=config.mlflow.registered_model,
        model_version=version,
        scorer=fitted.scorer,
        plan=plan,
        test_metrics=fitted.metrics,
        tiers=fitted.scorer.scheme.describe(),
        n_train_rows=len(fitted.train_set),
        n_test_rows=len(fitted.test_set),
        extra={
            "evaluated": fitted.evaluated,
            "production_rows": len(fitted.production),
            "window": fitted.window,
            "window_from": functools.partial(
                _window_from,
                con,
                tx,
                fitted.evaluated,
                fitted.window,
                plan=plan,
                config=config,
                satisfaction=satisfaction,
            ),
        },
    )


@phased
def _fit_and_test(
    con: Any, tx: Any, plan: CutoffPlan, config: Config, satisfaction: Any, versions: dict[str, str]
) -> _Fitted:
    """Fit on the training cutoffs, test beside the baselines, refit on the newest label windows."""
    h = config.horizon_days
    common = {
        "horizon_days": h,
        "windows_days": config.features.windows_days,
        "sample": config.engine.training_sample_customers,
        "seed": config.seed,
        "satisfaction": satisfaction,
        "max_rows_per_cutoff": config.engine.training_max_rows_per_cutoff,
    }
    held_out = plan.test if plan.test is not None else plan.data_end
    phase(f"features and labels at {len(plan.train)} training cutoffs")
    rows = CutoffRows(con, tx, **common)  # a cutoff shared by the training, test and production sets is built once
    train_set, train_sampling = rows.training_set(cutoffs=list(plan.train), data_end=held_out, holdout_start=held_out)
    phase("fitting the value and churn models")
    evaluated = fit_scorer(train_set, plan, config, versions, labels_from(con, tx))
    metrics: dict[str, dict[str, float]] = {}
    test_set, test_sampling = train_set.iloc[:0].copy(), Sampling()
    preds = None
    window: EvaluationWindow | None = None
    if plan.test is not None:
        phase(f"testing at {plan.test.date()} beside the baselines")
        test_set, test_sampling = rows.training_set(cutoffs=[plan.test], data_end=plan.data_end)
        baseline = NaiveBaseline().fit(train_set, train_set[FUTURE_VALUE], train_set[CHURNED])
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
    production, production_sampling = rows.training_set(cutoffs=list(plan.production), data_end=plan.data_end)
    now, now_sampling = _features_at(con, tx, plan.data_end, config, satisfaction)
    scorer = refit_for_production(evaluated, production, now, config, versions)
    sampling = {"train": train_sampling, "test": test_sampling, "production": production_sampling}
    sampling["scoring_fit"] = now_sampling
    return _Fitted(evaluated, scorer, train_set, test_set, production, now, metrics, preds, window, sampling)


def _log_training_run(
    config: Config, plan: CutoffPlan, fitted: _Fitted, versions: dict[str, str], fingerprint: dict[str, Any]
) -> tuple[str, str, str]:
    """One MLflow run: config, resolved cutoffs and model settings, test metrics, sampling, plots, the scheme
    and the registered pyfunc. Returns the run id, the experiment id and the registered version."""
    scorer = fitted.scorer
    experiment_id = setup_mlflow(config)
    with mlflow.start_run(experiment_id=experiment_id, tags=run_owner_tags()) as run:
        mlflow.log_params(flatten("", config.model_dump(mode="json")))
        mlflow.log_params(_run_params(plan, scorer))
        mlflow.set_tags(
            {
                **{f"version.{k}": v for k, v in versions.items()},
                "git_commit": git_commit() or "none",
                "tiercast.job": "train",
                **({"tiercast.notes": " | ".join(plan.notes)} if plan.notes else {}),
            }
        )
        mlflow.set_tags({f"data.{k}": str(v) for k, v in fingerprint.items()})
        for model_name, values in fitted.metrics.items():
            mlflow.log_metrics({f"test.{model_name}.{k}": float(v) for k, v in values.items() if np.isfinite(v)})
        sets = {"train": fitted.train_set, "test": fitted.test_set, "production": fitted.production}
        mlflow.log_metrics({f"{name}_rows": len(rows) for name, rows in sets.items()})
        mlflow.log_metrics(_btyd_choice_metrics(scorer))
        sampled = sampling_log(fitted.sampling)
        mlflow.log_params(sampling_params(sampled, config.engine.training_max_rows_per_cutoff))
        mlflow.log_dict(sampled, "sampling.json")
        if fitted.preds is not None:
            log_plots(fitted.evaluated, fitted.preds)
        mlflow.log_dict(_scheme_record(plan, scorer), "scheme.json")
        with tempfile.TemporaryDirectory() as tmp:
            info = mlflow.pyfunc.log_model(
                name="model",
                pip_requirements=model_pip_requirements(),
                registered_model_name=config.mlflow.registered_model,
                **pyfunc_spec(scorer, fitted.now, tmp),
            )
    return run.info.run_id, experiment_id, str(info.registered_model_version)


def _run_params(plan: CutoffPlan, scorer: TiercastScorer) -> dict[str, Any]:
    """The resolved cutoffs and the settings the models chose, as run parameters."""
    return {
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
        "value_model.btyd_spend": str(getattr(scorer.value_model, "spend_", None)),
        "tiers.k_resolved": scorer.scheme.k_,
        "n_features": len(scorer.feature_names),
    }


def _btyd_choice_metrics(scorer: TiercastScorer) -> dict[str, float]:
    """With ``models.btyd: auto``, what each model's choice of BTYD model was made on: every candidate's
    validation nGini for the value model (``value_model.btyd_ngini.paretonbd``, ...) and log loss of P(no purchase)
    for the churn model (``churn_model.btyd_log_loss.paretonbd``, ...)."""
    models = {"value_model": ("btyd_ngini", scorer.value_model), "churn_model": ("btyd_log_loss", scorer.churn_model)}
    return {
        f"{part}.{metric}.{name}": float(score)
        for part, (metric, model) in models.items()
        for name, score in (getattr(model, "btyd_scores_", None) or {}).items()
    }


def _scheme_record(plan: CutoffPlan, scorer: TiercastScorer) -> dict[str, Any]:
    """``scheme.json`` of the run: tiers, features, and the cutoffs of the evaluation and production fits."""
    return {
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
    }
