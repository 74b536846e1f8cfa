"""Model registry rules: which version is ``champion``, and side-by-side comparison of runs.

A version becomes champion only when its run beats the current champion's run on the primary test metrics
(value: normalized Gini; churn: ROC AUC) measured on the same data and test cutoff; otherwise it is tagged
``challenger``. ``force`` overrides, and the override is recorded on the version.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

PRIMARY_METRICS: tuple[str, ...] = ("test.tiercast.normalized_gini", "test.tiercast.roc_auc")
COMPARABLE_TAGS: tuple[str, ...] = ("data.data_sha256", "data.data_rows_accepted")
COMPARE_METRICS: tuple[tuple[str, str], ...] = (
    ("normalized_gini", "nGini"),
    ("spearman", "Spearman"),
    ("top10_capture", "top10"),
    ("mae", "MAE"),
    ("roc_auc", "AUC"),
    ("pr_auc", "PR AUC"),
    ("brier", "Brier"),
    ("tier_quadratic_kappa", "tier kappa"),
)


@dataclass(frozen=True)
class PromotionDecision:
    version: str
    alias: str
    reason: str


def _champion(client: MlflowClient, name: str):
    try:
        return client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        return None


def _comparable(a: Run, b: Run) -> str | None:
    """Why two runs' test metrics cannot be compared, or None when they can."""
    for tag in COMPARABLE_TAGS:
        if a.data.tags.get(tag) != b.data.tags.get(tag):
            return f"different input data ({tag})"
    pa, pb = a.data.params.get("cutoffs.test_resolved"), b.data.params.get("cutoffs.test_resolved")
    if pa != pb:
        return f"different test cutoffs ({pa} vs {pb})"
    return None


def beats(candidate: Run, champion: Run) -> tuple[bool, str]:
    """Not worse on any primary metric and better on at least one, on comparable data."""
    why_not = _comparable(candidate, champion)
    if why_not:
        return False, f"not comparable with the champion: {why_not}"
    diffs = {
        m: candidate.data.metrics.get(m, float("nan")) - champion.data.metrics.get(m, float("nan"))
        for m in PRIMARY_METRICS
    }
    text = ", ".join(f"{m.split('.')[-1]} {d:+.4f}" for m, d in diffs.items())
    if any(pd.isna(d) for d in diffs.values()):
        return False, f"missing primary metrics ({text})"
    if all(d >= 0 for d in diffs.values()) and any(d > 0 for d in diffs.values()):
        return True, f"beats the champion: {text}"
    return False, f"does not beat the champion: {text}"


def version_of_run(client: MlflowClient, name: str, run_id: str) -> str:
    """The registered version logged by ``run_id`` (registering the run's model if it has none)."""
    versions = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    if versions:
        return str(max(int(v.version) for v in versions))
    return str(mlflow.register_model(f"runs:/{run_id}/model", name).version)


def promote(name: str, run_id: str, *, force: bool = False) -> PromotionDecision:
    """Register the run's model (if needed) and move ``champion`` to it when it wins (or ``force``)."""
    client = MlflowClient()
    version = version_of_run(client, name, run_id)
    current = _champion(client, name)
    if current is None:
        ok, reason = True, "no champion yet"
    elif current.version == version:
        return PromotionDecision(version, "champion", "already the champion")
    else:
        ok, reason = beats(client.get_run(run_id), client.get_run(current.run_id))
        if not ok and force:
            ok, reason = True, f"forced: {reason}"
            client.set_model_version_tag(name, version, "promotion", "forced")
    alias = "champion" if ok else "challenger"
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    return PromotionDecision(version, alias, reason)


def compare_runs(experiment: str, run_ids: list[str] | None = None, last: int = 5) -> pd.DataFrame:
    """One row per run and model (tiercast and each baseline) with the test metrics, newest run first."""
    client = MlflowClient()
    if run_ids:
        runs = [client.get_run(r) for r in run_ids]
    else:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return pd.DataFrame()
        runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=last)
    rows = []
    for run in runs:
        models = sorted(
            {k.split(".")[1] for k in run.data.metrics if k.startswith("test.")}, key=lambda m: m != "tiercast"
        )
        for model in models:
            row = {
                "run": run.info.run_id[:8],
                "started": pd.Timestamp(run.info.start_time, unit="ms").strftime("%Y-%m-%d %H:%M"),
                "test cutoff": run.data.params.get("cutoffs.test_resolved", "?"),
                "model": model,
            }
            for key, label in COMPARE_METRICS:
                row[label] = run.data.metrics.get(f"test.{model}.{key}")
            rows.append(row)
    return pd.DataFrame(rows)


def latest_training_run(experiment: str) -> str | None:
    """Id of the newest training run of an experiment, or None. Training runs are the ones that log their
    training cutoffs (``cutoffs.train_resolved``); backtests and benchmarks do not."""
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string="params.`cutoffs.train_resolved` LIKE '%'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None
