"""Console rendering of result tables (rich)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from tiercast.features.contract import PREDICTED_VALUE, TIER
from tiercast.pipeline.cli.base import console
from tiercast.pipeline.jobs.results import MonitorRun, TierStudy
from tiercast.pipeline.terminal import print_table

if TYPE_CHECKING:
    from tiercast.benchmarks.quality.cdnow import BenchmarkResult


def _cell(v: object) -> str:
    if isinstance(v, float):
        return "-" if v != v else f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def show_frame(frame: pd.DataFrame, title: str, index: bool = False) -> None:
    """A frame as a rich table (numbers right-aligned) on the command's console."""
    frame = frame.reset_index() if index else frame
    table = Table(title=title)
    for col in frame.columns:
        table.add_column(str(col), justify="right" if pd.api.types.is_numeric_dtype(frame[col]) else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    print_table(console, table)


def _monitor_cell(value: object, kind: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "pct":
        return f"{float(value):.1%}"
    if kind == "money":
        return f"{float(value):,.0f}"
    return str(value)


_DISPLAY = (
    ("month", "month", "str"),
    (TIER, "tier", "str"),
    ("customers", "customers", "int"),
    ("retention_rate", "retention", "pct"),
    ("orders", "orders", "int"),
    ("revenue", "revenue", "money"),
    ("revenue_share", "share", "pct"),
    ("avg_ticket", "avg ticket", "money"),
    (PREDICTED_VALUE, "pred. value", "money"),
    ("realized_value", "real. value", "money"),
    ("predicted_churn", "pred. churn", "pct"),
    ("realized_churn", "real. churn", "pct"),
)


def print_monitor(console: Console, frame: pd.DataFrame, run: MonitorRun) -> None:
    """The monitor frame as a rich table (prediction columns only when there are predictions), then the notes."""
    shown = [d for d in _DISPLAY if not (d[0].startswith("predicted") and frame[d[0]].isna().all())]
    table = Table(title=f"Tiers per month — scheme {run.tier_scheme}")
    for _, header, kind in shown:
        table.add_column(header, justify="left" if kind == "str" else "right")
    for i, rec in enumerate(frame.to_dict("records")):
        last_of_month = i + 1 == len(frame) or frame["month"].iat[i + 1] != rec["month"]
        table.add_row(*(_monitor_cell(rec[col], kind) for col, _, kind in shown), end_section=last_of_month)
    print_table(console, table)
    for note in run.notes:
        console.print(f"note: {note}", highlight=False)


def print_tier_study(console: Console, study: TierStudy) -> None:
    """The tier study: the fitted scheme, tiers, predicted vs realized tiers, migrations, stability, the
    alternative schemes and the behavioral segments."""
    last = study.test_cutoffs[-1]
    cutoffs = ", ".join(str(c) for c in study.test_cutoffs)
    sil = ", ".join(f"k={k}: {s:.3f}" for k, s in study.scheme.silhouette_by_k.items())
    console.print(f"scheme fitted at {study.validation_cutoff} (k={study.scheme.k}; silhouette {sil})")
    show_frame(study.tiers.drop(columns=["orders"]), f"Tiers at {last} (current tier)")
    show_frame(study.tier_metrics, f"Predicted vs realized tier, {study.horizon_days}-day horizon ({cutoffs})")
    show_frame(study.tier_differences.drop(columns=["n_boot"]), "Predicted minus persistence, 95% CI")
    show_frame(study.migration_counts, "Migration current -> predicted (customers)", index=True)
    show_frame(study.migration_revenue, "Migration current -> predicted (predicted value)", index=True)
    boot, cons = study.bootstrap, study.consecutive
    console.print(
        f"stability: bootstrap ARI mean {boot['ari'].mean():.3f} (min {boot['ari'].min():.3f}), "
        f"boundary drift {boot['boundary_drift'].mean():.1%}; consecutive cutoffs ARI mean {cons['ari'].mean():.3f} "
        f"(min {cons['ari'].min():.3f}), boundary drift {cons['boundary_drift'].mean():.1%}"
    )
    show_frame(cons, "Refits at consecutive cutoffs (assigning the latest customers)")
    show_frame(
        _scheme_table(study.schemes),
        "Tier schemes: shares at the latest cutoff; metrics averaged over the test cutoffs",
    )
    if len(study.segments):  # none when the customers could not be segmented (a warning said so)
        z = [c for c in study.segments.columns if c.startswith("z_")]
        show_frame(study.segments.drop(columns=z), f"Behavioral segments at {last}")
        show_frame(study.segment_tiers, "Segment x current tier (customers)", index=True)


def _scheme_table(frame: pd.DataFrame) -> pd.DataFrame:
    schemes = frame.drop(columns=["tiers"])
    for col in ("shares", "revenue_shares"):
        schemes[col] = schemes[col].map(lambda s: " / ".join(f"{x:.0%}" for x in s))
    schemes.columns = [
        c.replace("persistence_", "pers ").replace("predicted_", "pred ").replace("_ari", " ARI").replace("_", " ")
        for c in schemes.columns
    ]
    return schemes


def print_cdnow(console: Console, result: BenchmarkResult) -> None:
    """A CDNOW benchmark result: every method's metrics, tiercast's paired comparisons, the targets."""
    rows = [{"method": name, **m["value"], **m["churn"]} for name, m in result.methods.items()]
    frame = pd.DataFrame(rows)
    cols = ["method", "normalized_gini", "spearman", "mae", "rmse", "top10_capture", "predicted_total"]
    sp = result.split
    title = f"CDNOW {sp['name']} split, holdout {'..'.join(sp['holdout'])} ({sp['n_customers']:,} customers)"
    show_frame(frame[[*cols, "roc_auc", "pr_auc", "brier"]], title)
    for metric, c in result.comparison.items():
        ci = "" if c["lo"] is None else f" [{c['lo']:+.4f}, {c['hi']:+.4f}]"
        console.print(f"  tiercast - {c['vs']}: {metric} {c['diff']:+.4f}{ci}", highlight=False)
    # the targets belong to the standard split; a rehearsal has none
    checks = _cdnow_checks(result.targets, result.methods["tiercast"]) if result.targets else []
    for label, value, target, ok in checks:
        console.print(f"  target {label} {target}: {value:.4f} {'met' if ok else 'MISSED'}", highlight=False)


def _cdnow_checks(t: dict[str, float], tc: dict[str, dict[str, float]]) -> list[tuple[str, float, str, bool]]:
    """(label, measured, target, met) for each of the CDNOW targets
    (:data:`~tiercast.benchmarks.quality.cdnow.TARGETS`)."""
    total_err = tc["value"]["predicted_total"] / tc["value"]["actual_total"] - 1
    measured = {
        "normalized_gini_min": ("normalized Gini", tc["value"]["normalized_gini"]),
        "spearman_min": ("Spearman", tc["value"]["spearman"]),
        "roc_auc_min": ("ROC AUC", tc["churn"]["roc_auc"]),
        "brier_max": ("Brier", tc["churn"]["brier"]),
        "total_rel_error_max": ("total error", total_err),
    }
    checks = []
    for key, target in t.items():
        label, value = measured[key]
        if key == "total_rel_error_max":
            checks.append((label, value, f"within +-{target:.0%}", abs(value) <= target))
        elif key.endswith("_min"):
            checks.append((label, value, f">= {target}", value >= target))
        else:
            checks.append((label, value, f"<= {target}", value <= target))
    return checks


def backtest_bootstrap_line(r: pd.Series) -> str:
    """tiercast minus the best baselines at one test cutoff (nGini; ROC AUC where the test window's churn label has
    both classes), with their 95% paired-bootstrap intervals."""
    text = f"  tiercast - {r['gini_vs']}: nGini {r['gini_diff']:+.3f} [{r['gini_lo']:+.3f}, {r['gini_hi']:+.3f}]"
    if isinstance(r.get("auc_vs"), str):
        text += f"; tiercast - {r['auc_vs']}: ROC AUC {r['auc_diff']:+.4f} [{r['auc_lo']:+.4f}, {r['auc_hi']:+.4f}]"
    return text + " (95% paired bootstrap)"
