"""The README's section on the synthetic retailers (``backtest_synthetic_retailer.json``): per world, the
methods' metrics per test cutoff, the paired-bootstrap comparisons, the targets, and the same targets applied to
the true-parameter model."""

from __future__ import annotations

from collections.abc import Callable

from tiercast.benchmarks.bench_retailer import POINT_CHECK, TRUE, row_checks
from tiercast.benchmarks.retailer import World
from tiercast.features.contract import CUTOFF


def _world_note(w: dict) -> str:
    world = w["world"]
    cohorts = world["cohorts"]
    acquired = (
        f"acquired {cohorts[0]['start']} + {cohorts[0]['days']} days"
        if len(cohorts) == 1
        else f"{len(cohorts)} cohorts from {cohorts[0]['start']} to {cohorts[-1]['start']}"
    )
    season = (
        "season " + ", ".join(f"month {m} x{f}" for m, f in sorted(world["season"].items(), key=lambda kv: int(kv[0])))
        if world["season"]
        else "no season"
    )
    return (
        f"{w['n_customers']:,} customers ({acquired}), {w['n_transactions']:,} purchases to {world['end']}, {season}; "
        f"{w['horizon_days']}-day horizon"
    )


def _method_rows(cell: dict, cutoffs: list[str], methods: list[str], fmt: Callable[[dict], str]) -> list[str]:
    """One table row per method with ``fmt`` of its result at each cutoff ("-" where it has none)."""
    return [
        f"| {m} | " + " | ".join("-" if (c, m) not in cell else fmt(cell[(c, m)]) for c in cutoffs) + " |"
        for m in methods
    ]


def synthetic_section(r: dict) -> list[str]:
    lines = [f"**Backtest on {r['title']}** ({r['description']}).", ""]
    shown = ("bgnbd_gg", "paretonbd_gg", "lgbm", "tiercast", "true_btyd")
    for name, w in r["worlds"].items():
        rows = w["rows"]
        cutoffs = sorted({x[CUTOFF] for x in rows})
        cell = {(x[CUTOFF], x["method"]): x for x in rows}
        methods = [m for m in shown if any((c, m) in cell for c in cutoffs)]
        head = ["| method | " + " | ".join(cutoffs) + " |", "|---|" + "---:|" * len(cutoffs)]
        lines += [
            f"*World `{name}`*: {_world_note(w)}. Normalized Gini / churn ROC AUC per test cutoff:",
            "",
            *head,
            *_method_rows(cell, cutoffs, methods, lambda v: f"{v['normalized_gini']:.3f} / {v['roc_auc']:.3f}"),
            "",
            "Brier; mean churn probability vs realized; predicted / actual total:",
            "",
            *head,
            *_method_rows(
                cell,
                cutoffs,
                [m for m in methods if m in ("bgnbd_gg", "tiercast", "true_btyd")],
                lambda v: (
                    f"{v['brier']:.3f}; {v['mean_churn_probability']:.2f} vs {v['realized_churn']:.2f}; "
                    f"{v['predicted_total'] / v['actual_total']:.2f}"
                ),
            ),
            "",
        ]
        for c in w["comparisons"]:
            b, t = c["vs_best_btyd"], c["vs_true"]
            g, a = b["normalized_gini"], b["roc_auc"]
            lines.append(
                f"- {c[CUTOFF]}: tiercast minus {g['vs']} nGini {g['diff']:+.4f} [{g['lo']:+.4f}, {g['hi']:+.4f}], "
                f"minus {a['vs']} AUC {a['diff']:+.4f} [{a['lo']:+.4f}, {a['hi']:+.4f}]; minus the true model nGini "
                f"{t['normalized_gini']['diff']:+.4f} [{t['normalized_gini']['lo']:+.4f}, "
                f"{t['normalized_gini']['hi']:+.4f}], AUC {t['roc_auc']['diff']:+.4f} [{t['roc_auc']['lo']:+.4f}, "
                f"{t['roc_auc']['hi']:+.4f}]"
            )
        lines += [
            "",
            "Targets: " + "; ".join(f"{k} **{'met' if v['met'] else 'missed'}**" for k, v in w["checks"].items()),
            "",
            _truth_on_checks(w),
            "",
        ]
    return lines


def _truth_on_checks(w: dict) -> str:
    """The targets read from the table, applied to the true-parameter model: which of them the model that made
    the data meets on the same customers (for the point estimates, its worst gap to the best fitted BTYD)."""
    checks = row_checks(World.model_validate(w["world"]), w["rows"], TRUE)
    parts = []
    for name, check in checks.items():
        text = f"{name} {'met' if check['met'] else '**missed**'}"
        if name == POINT_CHECK and not check["met"]:
            worst = {m: min(v[m] for v in check["values"].values()) for m in ("normalized_gini", "roc_auc")}
            text += f" (worst nGini {worst['normalized_gini']:+.4f}, AUC {worst['roc_auc']:+.4f})"
        parts.append(text)
    return f"The true-parameter model ({TRUE}) on the targets read from these tables: " + "; ".join(parts)
