"""Rich console summaries of ingestion and of the main job."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rich.console import Console
from rich.table import Table

from tiercast.features.contract import CHURN_BAND, CHURN_PROBABILITY, CURRENT_TIER, PREDICTED_TIER, TIER
from tiercast.pipeline.cli.base import shell_command
from tiercast.pipeline.terminal import print_table

if TYPE_CHECKING:
    from tiercast.pipeline.ingest.loader import Transactions
    from tiercast.pipeline.jobs.run import RunOutcome
    from tiercast.pipeline.jobs.train import TrainResult
    from tiercast.pipeline.tracking.registry import PromotionDecision

_METRICS = (
    ("normalized_gini", "value: normalized Gini"),
    ("spearman", "value: Spearman"),
    ("mae", "value: MAE"),
    ("top10_capture", "value: top-10% capture"),
    ("predicted_total", "value: predicted total"),
    ("actual_total", "value: actual total"),
    ("roc_auc", "churn: ROC AUC"),
    ("pr_auc", "churn: PR AUC"),
    ("brier", "churn: Brier"),
    ("tier_accuracy", "tier: accuracy"),
    ("tier_macro_f1", "tier: macro-F1"),
    ("tier_quadratic_kappa", "tier: weighted kappa"),
)


def print_ingest(console: Console, data: Transactions, quarantine_path: Path, seconds: float | None = None) -> None:
    console.print(f"input: {data.source}{_files_read(data.source)}")
    table = Table(title="Ingestion", show_header=True)
    table.add_column("rows")
    table.add_column("count", justify="right")
    table.add_row("read", f"{data.n_read:,}")
    table.add_row("accepted", f"{data.n_accepted:,}")
    table.add_row("quarantined", f"{data.n_quarantined:,}")
    for reason, count in sorted(data.reasons.items(), key=lambda kv: -kv[1]):
        table.add_row(f"  {reason}", f"{count:,}")
    if "data_customers" in data.fingerprint:
        table.add_row("customers", f"{data.fingerprint['data_customers']:,}")
    reviews = _review_rows(data)
    for label, count in reviews:
        table.add_row(label, f"{count:,}")
    print_table(console, table)
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    console.print(f"quarantine -> {quarantine_path}{took}")
    if reviews:
        beside = quarantine_path.with_name(f"{quarantine_path.stem}_satisfaction{quarantine_path.suffix}")
        console.print(f"review quarantine -> {beside}")


def _files_read(source: str) -> str:
    """`` (12 files)`` for a folder or pattern source, empty for one file or a database."""
    from tiercast.pipeline.ingest.paths import is_pattern, source_files

    path = Path(source)
    if "://" in source or not (is_pattern(source) or path.is_dir()):  # a database URL may hold a '?'
        return ""
    n = len(source_files(path))
    return f" ({n:,} file{'s' if n != 1 else ''})"


def _review_rows(data: Transactions) -> list[tuple[str, int]]:
    """The reviews' own accounting (Olist with reviews): read, accepted, quarantined by reason. Empty without
    reviews. The reviews are a separate file with their own quarantine, so they get their own lines: a share of
    rejected reviews under the quarantine limit would otherwise pass unmentioned."""
    from tiercast.pipeline.ingest.common import SATISFACTION_REASONS

    ingest = data.ingest
    quarantine = data.satisfaction_quarantine
    if quarantine is None and ingest is not None:
        quarantine = ingest.satisfaction_quarantine
    if quarantine is None or data.satisfaction is None:
        return []
    rejected = len(quarantine)
    rows = [("reviews read", len(data.satisfaction) + rejected), ("reviews accepted", len(data.satisfaction))]
    rows.append(("reviews quarantined", rejected))
    counts = quarantine["reason"].value_counts() if rejected else pd.Series(dtype="int64")
    rows += [(f"  {r}", int(counts[r])) for r in SATISFACTION_REASONS if r in counts.index]
    return rows


def _fmt(value: float | None) -> str:
    if value is None or value != value:  # missing, or NaN (undefined: an AUC over one churn class)
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3f}"


def print_run(console: Console, outcome: RunOutcome) -> None:
    print_ingest(console, outcome.data, outcome.quarantine_path)
    trained = outcome.trained
    print_cutoffs(console, trained)

    scores = outcome.scores
    tiers = Table(title=f"Tiers at {outcome.score_cutoff.date()} ({len(scores):,} customers)")
    for col in ("tier", "from value", "customers", "share", "revenue share (last horizon)", "predicted"):
        tiers.add_column(col, justify="right" if col != "tier" else "left")
    revenue = scores.groupby(CURRENT_TIER)["current_value"].sum()
    total = float(revenue.clip(lower=0).sum()) or 1.0
    for row in trained.tiers:
        name = row[TIER]
        in_tier = scores[CURRENT_TIER] == name
        tiers.add_row(
            name,
            f"{row['min_value']:,.0f}",
            f"{int(in_tier.sum()):,}",
            f"{in_tier.mean():.1%}",
            f"{max(float(revenue.get(name, 0.0)), 0.0) / total:.1%}",
            f"{int((scores[PREDICTED_TIER] == name).sum()):,}",
        )
    print_table(console, tiers)

    console.print(f"scores   -> {outcome.scores_path} ({_rows(len(scores))}, model {trained.model_uri})")
    listed = outcome.at_risk
    bands = listed_bands(listed)
    nobody = "no customer of the listed tiers in the listed churn bands"
    what = f"{_rows(len(listed))}, churn {bands}" if len(listed) else nobody
    money = f"{listed['currency'].iloc[0]} " if len(listed) and "currency" in listed.columns else ""
    console.print(
        f"at risk  -> {outcome.at_risk_path} ({what}; {money}value over the next {trained.scorer.horizon_days} days)",
        highlight=False,
    )
    print_drift(console, outcome.drift, outcome.drift_path)
    print_training(console, trained, outcome.promotion, show_cutoffs=False)


def listed_bands(listed: pd.DataFrame) -> str:
    """The churn bands of an at-risk list, lowest risk first ('medium/high'), whatever band its ranking by value at
    risk put first."""
    if not len(listed):
        return ""
    return "/".join(listed.groupby(CHURN_BAND)[CHURN_PROBABILITY].min().sort_values().index)


def print_cutoffs(console: Console, trained: TrainResult) -> None:
    plan = trained.plan
    test = plan.test.date() if plan.test is not None else "none"
    console.print(
        f"cutoffs: train {', '.join(str(c.date()) for c in plan.train)} (validation {plan.validation.date()}); "
        f"test {test}; {trained.n_train_rows:,} training rows, {trained.n_test_rows:,} test rows; "
        f"registered model refitted on {', '.join(str(c.date()) for c in plan.production)} "
        f"(labels and BTYD to {plan.data_end.date()})"
    )


def print_training(
    console: Console, trained: TrainResult, promotion: PromotionDecision, show_cutoffs: bool = True
) -> None:
    """Test metrics beside the baseline, where the run is, and what the registry did."""
    import mlflow  # here, not at the top: `tiercast validate` prints its ingestion summary without MLflow

    if show_cutoffs:
        print_cutoffs(console, trained)
    plan = trained.plan
    for note in plan.notes:
        console.print(f"[yellow]notice[/]: {note}", highlight=False)
    if plan.test is None or not trained.test_metrics:
        console.print("test metrics: none (no held-out test window)", highlight=False)
    else:
        print_table(console, _metrics_table(trained))

    uri = mlflow.get_tracking_uri()
    console.print(f"MLflow   -> run {trained.run_id} in {uri}")
    console.print(
        f"registry -> {trained.model_name} version {promotion.version} is @{promotion.alias} ({promotion.reason})"
    )
    if uri.startswith("sqlite:"):
        ui = shell_command(mlflow_executable(), "ui", "--backend-store-uri", uri)
        console.print(f"           open the UI with: {ui}", highlight=False, markup=False, soft_wrap=True)


def _metrics_table(trained: TrainResult) -> Table:
    """The test metrics of tiercast and the baselines, one column each."""
    from tiercast.pipeline.jobs.comparisons import METHOD_LABELS

    assert trained.plan.test is not None
    metrics = Table(title=f"Test cutoff {trained.plan.test.date()}: next {trained.scorer.horizon_days} days")
    metrics.add_column("metric")
    for name in trained.test_metrics:
        metrics.add_column(METHOD_LABELS.get(name, name), justify="right")
    for key, label in _METRICS:
        metrics.add_row(label, *(_fmt(trained.test_metrics[m].get(key)) for m in trained.test_metrics))
    return metrics


def mlflow_executable() -> str:
    """The ``mlflow`` command of the environment tiercast runs in (beside its Python: a venv's need not be on
    PATH), relative to the working folder when inside it, as the user would type it."""
    exe = Path(sys.executable).with_name("mlflow")
    if not exe.exists():
        return shutil.which("mlflow") or "mlflow"
    try:
        return str(Path(".") / exe.relative_to(Path.cwd())) if exe.parent != Path.cwd() else "./mlflow"
    except ValueError:
        return str(exe)


def _rows(n: int) -> str:
    return "1 row" if n == 1 else f"{n:,} rows"


def print_drift(console: Console, drift: pd.DataFrame, path: Path) -> None:
    """One line per drifting feature or score (PSI over the threshold) against the training reference."""
    from tiercast.models.drift import FEW_ROWS  # here: it imports scikit-learn, which validate and init never need

    if drift.empty:
        console.print(f"drift    -> {path} (the model has no training reference)")
        return
    warn = drift[drift["status"] == "warn"].sort_values("psi", ascending=False)
    few = int((drift["status"] == FEW_ROWS).sum())
    noise = f"; {few} more over it on too few customers to tell from sampling noise" if few else ""
    console.print(f"drift    -> {path} ({len(warn)} of {len(drift)} columns over the PSI threshold{noise})")
    for row in warn.itertuples(index=False):
        console.print(
            f"  [yellow]warning[/]: {row.kind} {row.column} PSI {row.psi:.2f} (largest move in bin {row.bin}: "
            f"{row.expected_share:.0%} at training -> {row.actual_share:.0%} now)",
            highlight=False,
        )
