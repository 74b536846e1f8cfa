"""The runs of an experiment as ``compare``, ``report`` and ``promote`` find them: the side-by-side table of test
metrics, why a run has none, and the latest finished training run."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tiercast.pipeline.tracking.registry import COMPARE_METRICS

TRAINING_PARAM = "cutoffs.train_resolved"  # logged by training runs only; backtests and benchmarks log no model
#: The search filter of the finished training runs (the runs that log a model).
FINISHED_TRAINING = f"params.`{TRAINING_PARAM}` LIKE '%' and attributes.status = 'FINISHED'"


@dataclass(frozen=True)
class RunComparison:
    """The rows ``compare`` prints, and why each listed run without test metrics has none (by its shown id)."""

    table: pd.DataFrame
    no_test: dict[str, str]


def compare_runs(experiment: str, run_ids: list[str] | None = None, last: int = 5) -> RunComparison:
    """One row per run and model (tiercast and each baseline) with the test metrics, newest run first: the given
    runs, else the ``last`` finished training runs (a killed or failed run would take a slot and show nothing); a
    run without test metrics (no held-out test window) is one row of missing metrics, and why is in ``no_test``."""
    client = MlflowClient()
    if run_ids:
        runs = [client.get_run(r) for r in run_ids]
    else:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return RunComparison(pd.DataFrame(), {})
        runs = client.search_runs(
            [exp.experiment_id],
            filter_string=FINISHED_TRAINING,
            order_by=["attributes.start_time DESC"],
            max_results=last,
        )
    rows, no_test = [], {}
    for run in runs:
        models = sorted(
            {k.split(".")[1] for k in run.data.metrics if k.startswith("test.")}, key=lambda m: m != "tiercast"
        )
        if not models:
            no_test[run.info.run_id[:8]] = _why_no_test_metrics(run)
        for model in models or ["tiercast" if TRAINING_PARAM in run.data.params else "-"]:
            row = {
                "run": run.info.run_id[:8],
                "started": pd.Timestamp(run.info.start_time, unit="ms").strftime("%Y-%m-%d %H:%M"),
                "test cutoff": run.data.params.get("cutoffs.test_resolved", "?"),
                "model": model,
            }
            for key, label in COMPARE_METRICS:
                row[label] = run.data.metrics.get(f"test.{model}.{key}")
            rows.append(row)
    return RunComparison(pd.DataFrame(rows), no_test)


def _why_no_test_metrics(run: Run) -> str:
    """Why a run logged no test metrics: the training's note on its test window, else what the run's state says."""
    notes = [n.strip() for n in run.data.tags.get("tiercast.notes", "").split(" | ") if "test" in n]
    if notes:
        return "; ".join(notes)
    if run.info.status != "FINISHED":
        return f"no test metrics: the run is {run.info.status.lower()}"
    if run.data.params.get("cutoffs.test_resolved") == "none":
        return "no test metrics: its history left no held-out test window"
    return "no test metrics: it logged none (not a training or backtest run)"


def is_finished_training_run(run_id: str) -> bool:
    """Whether ``run_id`` is a training run that finished (the runs that log a model)."""
    run = MlflowClient().get_run(run_id)
    return TRAINING_PARAM in run.data.params and run.info.status == "FINISHED"


def latest_training_run(experiment: str) -> str | None:
    """Id of the newest finished training run of an experiment, or None. Training runs are the ones that log their
    training cutoffs (``cutoffs.train_resolved``); backtests and benchmarks do not. A run that failed or was
    killed midway is never the latest."""
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=FINISHED_TRAINING,
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None
