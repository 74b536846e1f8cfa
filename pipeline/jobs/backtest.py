"""Backtest: every model and baseline on the same test cutoffs, in one table.

Time layout per test cutoff T (the training pipeline's, :func:`~tiercast.features.cutoff_plan.plan_cutoffs` with
``test_cutoff = T``)::

    ... [training cutoffs, step_days apart] ... validation cutoff = T - horizon | T | T + horizon

Every training label window ends at or before T, so nothing of the test horizon is trained on (checked again
here with the leakage guard). The test cutoffs are ``model.backtest_n_tests`` cutoffs ``cutoffs.step_days``
apart, the latest being the training pipeline's test cutoff; a test cutoff leaving no training cutoff is
skipped (with one, ``tiercast`` is BTYD-led and ``lgbm``, which needs a validation cutoff, is left out).

Methods (all scored on the same customers — everyone with history before T — against ``[T, T + horizon)``):

* ``naive``: spend of the last horizon-length window; churn from recency (a logistic calibration on the training
  cutoffs' labels);
* ``rfm``: mean training label of the customer's RFM quintile cell;
* ``bgnbd_gg`` / ``paretonbd_gg``: BG/NBD or Pareto/NBD x Gamma-Gamma fitted on the features at T (label-free,
  so leak-free): expected spend, and P(no purchase in the horizon);
* ``lgbm``: the value and churn GBMs on the feature set alone (no BTYD stacking), settings chosen on the
  validation cutoff — the plain leak-free LightGBM;
* ``tiercast``: the shipped models — the GBMs stacked on the configured BTYD model and blended with it
  (:mod:`tiercast.models.gbm.stacked`).

For ``tiercast`` rows the table also holds paired-bootstrap intervals over customers of "tiercast minus the best
baseline" (the baseline with the best point value at that cutoff) for normalized Gini and ROC AUC.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tiercast.features.contract import CHURNED, CUTOFF, FUTURE_VALUE
from tiercast.features.cutoff_plan import CutoffPlan, HistoryTooShortError, rolling_test_plans
from tiercast.features.errors import InsufficientDataError
from tiercast.features.training_set import check_cutoffs
from tiercast.models.baselines import CellMeanBaseline, NaiveBaseline
from tiercast.models.btyd.forecast import fit_forecaster
from tiercast.models.btyd.stacker import btyd_inputs
from tiercast.models.evaluation import churn_metrics, normalized_gini, paired_bootstrap, roc_auc, value_metrics
from tiercast.pipeline.config import Config
from tiercast.pipeline.engine.rows import build_training_set_on
from tiercast.pipeline.ingest.loader import Transactions, load_transactions
from tiercast.pipeline.jobs.model_fit import LabelsAt, check_trainable, fit_models, labels_from, model_kwargs
from tiercast.pipeline.jobs.predictions import predictions_frame

__all__ = [
    "BASELINES",
    "METHODS",
    "MODELS",
    "backtest_metrics",
    "baseline_predictions",
    "fit_models",
    "log_backtest",
    "model_kwargs",
    "run_backtest",
    "score_methods",
]

BASELINES: tuple[str, ...] = ("naive", "rfm", "bgnbd_gg", "paretonbd_gg")
MODELS: tuple[str, ...] = ("lgbm", "tiercast")
METHODS: tuple[str, ...] = BASELINES + MODELS
VALUE_METRICS = (
    "normalized_gini",
    "spearman",
    "mae",
    "rmse",
    "top10_capture",
    "top20_capture",
    "predicted_total",
    "actual_total",
)
CHURN_METRICS = ("roc_auc", "pr_auc", "brier", "mean_churn_probability", "realized_churn")

Predictions = dict[str, tuple[np.ndarray, np.ndarray]]


def baseline_predictions(train: pd.DataFrame, test: pd.DataFrame, horizon_days: int) -> Predictions:
    """(value, churn) predictions of every baseline for the test rows; label-using baselines learn from
    ``train`` (training cutoffs only), BTYD baselines fit on the test cutoff's own features (no labels)."""
    out: Predictions = {}
    naive = NaiveBaseline().fit(train, train[FUTURE_VALUE], train[CHURNED])
    out["naive"] = (naive.predict_value(test, horizon_days), naive.predict_churn(test, horizon_days))
    rfm = CellMeanBaseline().fit(train, train[FUTURE_VALUE], train[CHURNED])
    out["rfm"] = (rfm.predict_value(test, horizon_days), rfm.predict_churn(test, horizon_days))
    inputs = btyd_inputs(test)
    for name, model in (("bgnbd_gg", "bgnbd"), ("paretonbd_gg", "paretonbd")):
        b = fit_forecaster(inputs, model=model)
        out[name] = (b.predict_value(inputs, horizon_days), b.predict_churn(inputs, horizon_days))
    return out


def _boot(metric, y: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    if n_boot <= 0:
        return {"diff": float(metric(y, a) - metric(y, b)), "lo": np.nan, "hi": np.nan}
    return paired_bootstrap(metric, y, a, b, n_boot=n_boot, seed=seed)


def score_methods(
    test: pd.DataFrame, preds: Predictions, *, n_boot: int = 500, seed: int = 0, model: str = "tiercast"
) -> pd.DataFrame:
    """One row per method: value and churn metrics on the test rows; on ``model``'s row also the paired bootstrap
    of ``model`` minus the best baseline (by point value among :data:`BASELINES` present) for normalized Gini
    (``gini_diff``, ``gini_lo``, ``gini_hi``, ``gini_vs``) and ROC AUC (``auc_*``)."""
    y = test[FUTURE_VALUE].to_numpy(dtype=float)
    churned = test[CHURNED].to_numpy(dtype=int)
    rows = []
    for name, (value, churn) in preds.items():
        rows.append(
            {
                "method": name,
                **value_metrics(y, value),
                **churn_metrics(churned, churn),
                "mean_churn_probability": float(np.mean(churn)),
                "realized_churn": float(np.mean(churned)),
            }
        )
    table = pd.DataFrame(rows)
    if model in preds:
        base = table[table["method"].isin(BASELINES)]
        if len(base):
            i = table.index[table["method"] == model][0]
            for key, metric, col, idx in (
                ("gini", normalized_gini, "normalized_gini", 0),
                ("auc", roc_auc, "roc_auc", 1),
            ):
                if base[col].isna().all():  # undefined at this cutoff (e.g. churn of one class): nothing to compare
                    continue
                best = base.loc[base[col].idxmax(), "method"]
                target = y if idx == 0 else churned
                res = _boot(metric, target, preds[model][idx], preds[best][idx], n_boot, seed)
                table.loc[i, [f"{key}_vs", f"{key}_diff", f"{key}_lo", f"{key}_hi"]] = [
                    best,
                    res["diff"],
                    res["lo"],
                    res["hi"],
                ]
    return table


def run_backtest(
    config: Config,
    data: Transactions | None = None,
    *,
    n_tests: int | None = None,
    n_boot: int | None = None,
    methods: Sequence[str] = METHODS,
    return_predictions: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Run every method on every test cutoff; one row per (test cutoff, method).

    Columns: ``test_cutoff``, ``validation_cutoff``, ``n_train_cutoffs``, ``n_customers``, ``method``, the value
    metrics (:data:`VALUE_METRICS`), the churn metrics (:data:`CHURN_METRICS`) and, on ``tiercast`` rows, the
    paired-bootstrap comparison with the best baseline (``gini_vs``, ``gini_diff``, ``gini_lo``, ``gini_hi``,
    ``auc_vs``, ``auc_diff``, ``auc_lo``, ``auc_hi``), and ``plan_note``: the test cutoff's plan notes (e.g. the
    models are the BTYD model alone, or settings chosen on cut label windows; empty when none). ``n_tests`` /
    ``n_boot`` default to ``config.models.backtest_n_tests`` / ``backtest_n_boot``. ``return_predictions`` returns
    ``(table, predictions)``: the per-customer predictions of every method at every test cutoff with the realized
    labels (:func:`tiercast.pipeline.jobs.predictions.predictions_frame`).
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(METHODS)}")
    data = data if data is not None else load_transactions(config)
    n_tests = config.models.backtest_n_tests if n_tests is None else n_tests
    n_boot = config.models.backtest_n_boot if n_boot is None else n_boot
    h = config.horizon_days
    plans = rolling_test_plans(*data.bounds, config.cutoff_rules(), n_tests)
    if not plans:
        raise HistoryTooShortError("no test cutoff leaves a training cutoff; shorten horizon_days or cutoffs.step_days")
    for plan in plans:  # the leakage guard, per test cutoff: training labels end by the test cutoff
        check_cutoffs(plan.train, horizon_days=h, data_end=plan.test, holdout_start=plan.test)
    cutoffs = sorted({c for p in plans for c in (*p.train, p.test)})
    frame, _ = build_training_set_on(  # no per-cutoff cap here: its Sampling is empty
        data.con,
        data.table,
        cutoffs=cutoffs,
        horizon_days=h,
        windows_days=config.features.windows_days,
        data_end=plans[-1].data_end,
        satisfaction=data.engine_satisfaction(),
    )
    tables, predictions = [], []
    for plan in plans:
        train = frame[frame[CUTOFF].isin(plan.train)].reset_index(drop=True)
        test = frame[frame[CUTOFF] == plan.test].reset_index(drop=True)
        preds = _method_predictions(train, test, plan, config, methods, labels_from(data.con, data.table))
        if return_predictions:
            predictions.append(predictions_frame(test, preds, cutoff=plan.test))
        tables.append(_described(score_methods(test, preds, n_boot=n_boot, seed=config.seed), plan, len(test)))
    table = pd.concat(tables, ignore_index=True)
    if return_predictions:
        return table, pd.concat(predictions, ignore_index=True)
    return table


def _described(table: pd.DataFrame, plan: CutoffPlan, n_customers: int) -> pd.DataFrame:
    """One test cutoff's scores with the columns that say what they were measured on: the cutoffs, the customers
    and the plan's notes (how the cutoff's settings were chosen, when not the usual way)."""
    table.insert(0, "n_customers", n_customers)
    table.insert(0, "n_train_cutoffs", len(plan.train))
    table.insert(0, "validation_cutoff", plan.validation)
    table.insert(0, "test_cutoff", plan.test)
    table["plan_note"] = " | ".join(plan.notes)
    return table


def _method_predictions(
    train: pd.DataFrame,
    test: pd.DataFrame,
    plan: CutoffPlan,
    config: Config,
    methods: Sequence[str],
    labels_at: LabelsAt | None = None,
) -> Predictions:
    """(value, churn) predictions of each method at one test cutoff, in the order of ``methods`` (``labels_at``:
    label windows shorter than the horizon for ``tiercast``, see :func:`fit_models`)."""
    preds: Predictions = {}
    if {"lgbm", "tiercast"} & set(methods):
        check_trainable(train, plan, config)  # the models' refusal, as in training: one line, not a GBM error
    if set(methods) & set(BASELINES):
        base = baseline_predictions(train, test, config.horizon_days)
        preds.update({k: v for k, v in base.items() if k in methods})
    for name, stacked in (("lgbm", False), ("tiercast", True)):
        if name in methods and (stacked or len(plan.train) > 1):  # a plain GBM needs a validation cutoff
            try:
                value, churn = fit_models(train, plan.validation, config, stacked=stacked, labels_at=labels_at)
            except InsufficientDataError:  # the plain GBM, on a churn label of one class
                continue
            # the BTYD part fitted at the test cutoff (label-free, as the BTYD baselines and the production
            # refit at the data end)
            value, churn = value.fit_btyd_at(test), churn.fit_btyd_at(test)
            preds[name] = (value.predict(test), churn.predict_proba(test)[:, 1])
    return {k: preds[k] for k in methods if k in preds}


def backtest_metrics(table: pd.DataFrame) -> dict[str, float]:
    """MLflow metrics of a backtest table: ``cutoff_<date>.<method>.<metric>`` for every cutoff, ``mean.`` over
    cutoffs, and ``test.<method>.<metric>`` for the latest cutoff (what ``tiercast compare`` reads)."""
    keys = [*VALUE_METRICS, *CHURN_METRICS, *[c for c in table.columns if c[:4] in ("gini", "auc_")]]
    keys = [k for k in dict.fromkeys(keys) if k in table.columns and not k.endswith("_vs")]
    latest = table["test_cutoff"].max()
    out: dict[str, float] = {}
    for row in table.itertuples(index=False):
        rec = row._asdict()
        day = pd.Timestamp(rec["test_cutoff"]).date()
        for k in keys:
            v = rec.get(k)
            if isinstance(v, int | float) and np.isfinite(v):
                out[f"cutoff_{day}.{rec['method']}.{k}"] = float(v)
                if rec["test_cutoff"] == latest:
                    out[f"test.{rec['method']}.{k}"] = float(v)
    means = table.groupby("method", sort=False)[[k for k in keys if k in VALUE_METRICS + CHURN_METRICS]].mean()
    for method, row in means.iterrows():
        out.update({f"mean.{method}.{k}": float(v) for k, v in row.items() if np.isfinite(v)})
    return out


def log_backtest(config: Config, data: Transactions, table: pd.DataFrame) -> str:
    """Record a backtest as one MLflow run (config, versions, data fingerprint, metrics per method and cutoff,
    the table and per-cutoff plots); returns the run id."""
    import mlflow

    from tiercast.pipeline.tracking import plots
    from tiercast.pipeline.tracking.runs import log_run_context, log_table, setup_mlflow

    experiment_id = setup_mlflow(config)
    fingerprint = dict(data.fingerprint)
    with mlflow.start_run(experiment_id=experiment_id, run_name="backtest") as run:
        log_run_context(config, job="backtest", fingerprint=fingerprint)
        cutoffs = sorted(pd.to_datetime(table["test_cutoff"].unique()))
        mlflow.log_params(
            {
                "cutoffs.test_resolved": str(cutoffs[-1].date()),
                "backtest.test_cutoffs": ",".join(str(c.date()) for c in cutoffs),
                "backtest.methods": ",".join(table["method"].unique()),
            }
        )
        mlflow.log_metrics(backtest_metrics(table))
        log_table(table, "backtest.csv")
        calib = table.assign(
            total_ratio=table["predicted_total"] / table["actual_total"],
            churn_gap=table["mean_churn_probability"] - table["realized_churn"],
        )
        for metric, title in (
            ("normalized_gini", "Normalized Gini"),
            ("roc_auc", "Churn ROC AUC"),
            ("brier", "Churn Brier score"),
            ("total_ratio", "Predicted / actual total"),
            ("churn_gap", "Mean churn probability minus realized churn"),
        ):
            fig = plots.metric_by_cutoff(calib, metric, f"{title} by test cutoff")
            mlflow.log_figure(fig, f"plots/backtest_{metric}.png")
            plots.close(fig)
    return run.info.run_id
