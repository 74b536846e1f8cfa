"""The CDNOW benchmark in MLflow: a result as one run (split and settings as parameters, metrics per method, the
JSON and the gain and calibration curves), and its per-customer predictions as the long predictions table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tiercast.benchmarks.quality.cdnow import METHODS, BenchmarkResult
from tiercast.benchmarks.quality.cdnow_data import read_cdnow
from tiercast.features.contract import CHURNED, CUSTOMER_ID, FUTURE_VALUE, TIMESTAMP
from tiercast.pipeline.jobs.predictions import predictions_frame


def cdnow_predictions(result: BenchmarkResult) -> pd.DataFrame:
    """The per-customer predictions of a result run with ``return_predictions`` as the long table of
    :mod:`tiercast.pipeline.jobs.predictions` (one row per customer x method, cutoff = the holdout start)."""
    wide = result.predictions
    preds = {m: (wide[f"{m}_value"].to_numpy(), wide[f"{m}_churn"].to_numpy()) for m in METHODS}
    return predictions_frame(wide, preds, cutoff=pd.Timestamp(result.split["holdout"][0]))


def benchmark_metrics(result: BenchmarkResult) -> dict[str, float]:
    """MLflow metrics of a benchmark result: ``test.<method>.<metric>`` and ``comparison.<metric>.{diff,lo,hi}``."""
    out: dict[str, float] = {}
    for name, m in result.methods.items():
        for side in ("value", "churn"):
            out.update({f"test.{name}.{k}": v for k, v in m[side].items() if v is not None})
    for metric, c in result.comparison.items():
        out.update({f"comparison.{metric}.{k}": c[k] for k in ("diff", "lo", "hi") if c[k] is not None})
    return out


def log_cdnow_benchmark(
    config: Any, data_path: str | Path, result: BenchmarkResult, transactions: pd.DataFrame | None = None
) -> str:
    """Record a benchmark result as one MLflow run in ``config``'s store (split and model settings as params,
    metrics per method, the JSON and a gain curve); returns the run id."""
    import mlflow

    from tiercast.pipeline.ingest.fingerprint import data_fingerprint
    from tiercast.pipeline.tracking import plots
    from tiercast.pipeline.tracking.runs import flatten, log_run_context, setup_mlflow

    experiment_id = setup_mlflow(config)
    tx = read_cdnow(data_path) if transactions is None else transactions
    fingerprint = data_fingerprint(
        data_path,
        n_read=len(tx),
        n_accepted=len(tx),
        n_quarantined=0,
        customers=int(tx[CUSTOMER_ID].nunique()),
        first=tx[TIMESTAMP].min(),
        last=tx[TIMESTAMP].max(),
    )
    split_name = result.split["name"]
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"benchmark-cdnow-{split_name}") as run:
        log_run_context(config, job="benchmark-cdnow", fingerprint=fingerprint)
        mlflow.set_tag("tiercast.benchmark_split", split_name)
        split = {k: v for k, v in result.split.items() if k not in ("training_cutoffs", "validation_cutoffs")}
        mlflow.log_param("benchmark.split.validation_cutoffs", ",".join(result.split["validation_cutoffs"]))
        mlflow.log_params(flatten("benchmark", {"split": split, "tiercast_model": result.tiercast_model}))
        mlflow.log_param("cutoffs.test_resolved", result.split["holdout"][0])
        mlflow.log_metrics(benchmark_metrics(result))
        mlflow.log_dict(result.to_dict(), "benchmark_cdnow.json")
        preds = result.predictions
        if preds is not None:
            fig = plots.gain_curve(preds[FUTURE_VALUE].to_numpy(), {m: preds[f"{m}_value"].to_numpy() for m in METHODS})
            mlflow.log_figure(fig, "plots/gain_curve.png")
            plots.close(fig)
            fig = plots.calibration_curve(
                preds[CHURNED].to_numpy(), {m: preds[f"{m}_churn"].to_numpy() for m in METHODS}
            )
            mlflow.log_figure(fig, "plots/calibration_curve.png")
            plots.close(fig)
    return run.info.run_id
