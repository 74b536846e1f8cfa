"""Rewrite the README's Results section from ``benchmarks/results/*.json`` (run by ``make bench`` after the runs).

Only the text between the ``<!-- results:start -->`` and ``<!-- results:end -->`` markers changes, so the figures in
the README are always the ones in the result files.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from tiercast.benchmarks.readme_worlds import synthetic_section

START, END = "<!-- results:start -->", "<!-- results:end -->"


def _load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _machine(r: dict) -> str:
    m = r.get("machine", {})
    load = m.get("load_average") or ["?"]
    load_1m = f"{load[0]:.1f}" if isinstance(load[0], float) else load[0]
    return f"{m.get('cpu_count', '?')} cores, load {load_1m} at start, {r.get('started', '?')[:10]}"


def _features(r: dict) -> list[str]:
    ref, tc = r["reference"], r["tiercast"]
    return [
        f"**Feature build** ({r['data']['transactions']:,} synthetic transactions, {tc['rows']:,} customers; "
        f"{r['repeats']} runs each in a fresh process, {_machine(r)}):",
        "",
        "| | median wall s | median CPU s | peak memory |",
        "|---|---:|---:|---:|",
        f"| hand-written DuckDB SQL (reference) | {ref['median_seconds']:.2f} | {ref['median_cpu_seconds']:.2f} | "
        f"{ref['peak_rss_mb'] / 1024:.2f} GB |",
        f"| tiercast `build_features` | {tc['median_seconds']:.2f} | {tc['median_cpu_seconds']:.2f} | "
        f"{tc['peak_rss_mb'] / 1024:.2f} GB |",
        f"| ratio tiercast / reference | {r['ratio_tiercast_to_reference']:.2f} | "
        f"{r['cpu_ratio_tiercast_to_reference']:.2f} | |",
        "",
    ]


def _scoring(r: dict) -> list[str]:
    tc = r["tiercast"]
    lines = [
        f"**Batch scoring** ({r['customers']:,} customers from {r['data']['transactions']:,} transactions; "
        f"{r['repeats']} runs in a fresh process, {_machine(r)}): features + chunked pyfunc scores + the top "
        f"{r['at_risk_listed']} at-risk customers with reasons.",
        "",
        "| phase | median s |",
        "|---|---:|",
        *(
            f"| {label} | {tc[f'median_{key}_seconds']:.2f} |"
            for key, label in (
                ("load_model", "load the pyfunc"),
                ("features", "features"),
                ("scores", "scores (pyfunc, chunked)"),
                ("at_risk_with_reasons", "at-risk list with reasons"),
                ("total", "**total**"),
            )
        ),
        "",
        f"Peak memory {tc['peak_rss_mb'] / 1024:.2f} GB. The scoring step takes "
        f"{r['ratio_scores_to_booster_predict']:.2f}x the bare LightGBM boosters' prediction time on the same rows.",
        "",
    ]
    everyone = r.get("reasons_everyone")
    if everyone:
        lines += [
            f"Reasons for every customer (`tiercast score --reasons`, TreeSHAP on all {everyone['customers']:,} rows, "
            f"one run): scores with reasons {everyone['scores_with_reasons']:.1f} s, "
            f"{everyone['total']:.1f} s in all, peak memory {everyone['peak_rss_mb'] / 1024:.2f} GB.",
            "",
        ]
    return lines


def _quality(r: dict) -> list[str]:
    methods = r["methods"]
    lines = [
        f"**Model quality on {r.get('title', 'CDNOW')}** ({r.get('description', '')}):",
        "",
        "| method | nGini | Spearman | MAE | top-10% | predicted / actual total | churn AUC | PR AUC | Brier |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in methods.items():
        v, c = m["value"], m["churn"]
        lines.append(
            f"| {name} | {v['normalized_gini']:.3f} | {v['spearman']:.3f} | {v['mae']:.1f} | {v['top10_capture']:.3f} "
            f"| {v['predicted_total'] / v['actual_total']:.3f} | {c['roc_auc']:.3f} | {c['pr_auc']:.3f} | "
            f"{c['brier']:.3f} |"
        )
    lines.append("")
    t, tc = r.get("targets"), methods.get("tiercast")
    if t and tc:
        v, c = tc["value"], tc["churn"]
        err = v["predicted_total"] / v["actual_total"] - 1
        checks = [
            (f"nGini >= {t.get('normalized_gini_min')}", v["normalized_gini"] >= t.get("normalized_gini_min", -1)),
            (f"Spearman >= {t.get('spearman_min')}", v["spearman"] >= t.get("spearman_min", -1)),
            (f"ROC AUC >= {t.get('roc_auc_min')}", c["roc_auc"] >= t.get("roc_auc_min", -1)),
            (f"Brier <= {t.get('brier_max')}", c["brier"] <= t.get("brier_max", 2)),
            (
                f"total within {t.get('total_rel_error_max', 0):.0%} (is {err:+.1%})",
                abs(err) <= t.get("total_rel_error_max", 9),
            ),
        ]
        keys = ("normalized_gini_min", "spearman_min", "roc_auc_min", "brier_max", "total_rel_error_max")
        checks = [ck for ck, key in zip(checks, keys, strict=True) if key in t]
        lines += [
            "Targets for tiercast: " + "; ".join(f"{label} {'met' if ok else '**missed**'}" for label, ok in checks),
            "",
        ]
    for metric, c in r.get("comparison", {}).items():
        ci = "" if c.get("lo") is None else f" (95% paired bootstrap {c['lo']:+.4f} to {c['hi']:+.4f})"
        lines.append(f"- tiercast minus {c['vs']}, {metric.replace('_', ' ')}: {c['diff']:+.4f}{ci}")
    return [*lines, ""]


def _ceiling(r: dict) -> list[str]:
    from tiercast.benchmarks.quality.cdnow import TARGETS

    t = TARGETS  # the current targets (a stored result may hold older ones)
    seeds = r["seeds"]
    lines = [
        "**Ceiling estimate for the CDNOW holdout**: an oracle fitted on the holdout's own outcomes "
        f"({r['n_folds']}-fold cross-validation over the {r['n_customers']:,} customers, the best of the parameter "
        f"grid per metric; mean and range over {len(seeds)} fold seed(s)). It knows the scored horizon and the "
        "holdout's level, which no method trained before 1997-10-01 can; Spearman is the better of a spend and a "
        "spend-rank regressor. An estimate, not a bound:",
        "",
        "| oracle inputs | columns | nGini | Spearman | churn AUC | Brier | predicted / actual total |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(x: dict, key: str, digits: int = 3) -> str:
        mean, lo, hi = x["mean"][key], x["low"][key], x["high"][key]
        return f"{mean:.{digits}f}" if len(seeds) == 1 else f"{mean:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"

    for name, x in r["inputs"].items():
        lines.append(
            f"| {name} | {x['n_columns']} | {cell(x, 'normalized_gini')} | {cell(x, 'spearman')} | "
            f"{cell(x, 'roc_auc')} | {cell(x, 'brier')} | {x['low']['total_ratio_min']:.2f} to "
            f"{x['high']['total_ratio_max']:.2f} |"
        )

    def target(key: str, fmt: str) -> str:
        return fmt.format(t[key]) if key in t else "-"

    lines += [
        f"| target for tiercast | | {target('normalized_gini_min', '>= {}')} | {target('spearman_min', '>= {}')} | "
        f"{target('roc_auc_min', '>= {}')} | {target('brier_max', '<= {}')} | "
        f"{target('total_rel_error_max', 'within {:.0%}')} |",
        "",
    ]
    return lines


def _backtest(r: dict) -> list[str]:
    rows = r["rows"]
    cutoffs = sorted({x["test_cutoff"] for x in rows})
    methods = list(dict.fromkeys(x["method"] for x in rows))
    cell = {(x["test_cutoff"], x["method"]): x for x in rows}
    lines = [
        f"**Backtest on {r['title']}** (`tiercast backtest --config {r['config']}`; {r['horizon_days']}-day horizon; "
        f"normalized Gini / churn ROC AUC per test cutoff):",
        "",
        "| method | " + " | ".join(cutoffs) + " |",
        "|---|" + "---:|" * len(cutoffs),
    ]
    for m in methods:
        vals = [cell.get((c, m)) for c in cutoffs]
        lines.append(
            f"| {m} | "
            + " | ".join("-" if v is None else f"{v['normalized_gini']:.3f} / {v['roc_auc']:.3f}" for v in vals)
            + " |"
        )
    lines.append("")
    for c in cutoffs:
        t = cell.get((c, "tiercast"))
        if t and t.get("gini_vs"):
            lines.append(
                f"- {c}: tiercast minus {t['gini_vs']} nGini {t['gini_diff']:+.3f} "
                f"[{t['gini_lo']:+.3f}, {t['gini_hi']:+.3f}]; minus {t['auc_vs']} ROC AUC {t['auc_diff']:+.4f} "
                f"[{t['auc_lo']:+.4f}, {t['auc_hi']:+.4f}] (95% paired bootstrap)"
            )
    calibrated = [m for m in ("bgnbd_gg", "tiercast") if any("realized_churn" in cell.get((c, m), {}) for c in cutoffs)]
    if calibrated:
        lines += [
            "",
            "Calibration per test cutoff (Brier; mean churn probability vs realized churn; predicted / actual total):",
            "",
            "| method | " + " | ".join(cutoffs) + " |",
            "|---|" + "---:|" * len(cutoffs),
        ]
        for m in calibrated:
            vals = [cell.get((c, m)) for c in cutoffs]
            lines.append(
                f"| {m} | "
                + " | ".join(
                    "-"
                    if v is None
                    else f"{v['brier']:.3f}; {v['mean_churn_probability']:.2f} vs {v['realized_churn']:.2f}; "
                    f"{v['predicted_total'] / v['actual_total']:.2f}"
                    for v in vals
                )
                + " |"
            )
    return [*lines, ""]


def _spark(r: dict) -> list[str]:
    s, d = r["spark"], r["duckdb"]
    return [
        f"**Spark vs DuckDB** ({r['data']['transactions']:,} synthetic transactions, {d['rows']:,} customers; "
        f"Spark `{r['spark_master']}`, {r['repeats']} run(s) each in a fresh process, {_machine(r)}):",
        "",
        "| | wall s | CPU s | peak memory |",
        "|---|---:|---:|---:|",
        f"| DuckDB `build_features` | {d['median_seconds']:.1f} | {d['median_cpu_seconds']:.1f} | "
        f"{d['peak_rss_mb'] / 1024:.2f} GB |",
        f"| Spark (of which JVM start {s['median_session_start_seconds']:.1f} s) | {s['median_seconds']:.1f} | "
        f"{s['median_cpu_seconds']:.1f} | {s['peak_rss_mb'] / 1024:.2f} GB |",
        f"| ratio Spark / DuckDB | {r['ratio_spark_to_duckdb']:.1f} | {r['cpu_ratio_spark_to_duckdb']:.1f} | |",
        "",
    ]


def _minute(stamp: str | None) -> str:
    return str(stamp)[:16].replace("T", " ") if stamp else "?"


def _measured_again(r: dict, steps: list[str]) -> list[str]:
    """Which figures of a merged scale result come from which run: each merge names what it still provides (a later
    merge of the same size and command replaces it), and the full run is named for what is left of it."""
    from tiercast.benchmarks.bench_scale import label

    provider: dict[tuple[str, str], int] = {}
    for i, again in enumerate(r.get("merged", [])):
        provider |= {(size, step): i for size, done in again["measured"].items() for step in done}
    lines = []
    for i, again in enumerate(r.get("merged", [])):
        kept = {size: [s for s in done if provider[(size, s)] == i] for size, done in again["measured"].items()}
        sizes = ", ".join(f"{size} ({', '.join(done)})" for size, done in kept.items() if done)
        if sizes:
            commit = str(again.get("git_commit") or "?")[:7]
            lines += ["", f"Measured again at {commit} (started {_minute(again.get('started'))}): {sizes}."]
    measured = {(label(s["transactions"]), step) for s in r["sizes"] for step in steps if s.get(step) is not None}
    if lines and measured - set(provider):
        lines += ["", f"The other figures are from the run started {_minute(r.get('base_started'))}."]
    return lines


def _scale(r: dict) -> list[str]:
    from tiercast.benchmarks.bench_scale import COMMANDS, QUERY, label, targets_met

    steps = [c for c in (*r.get("commands", COMMANDS), QUERY)]
    loads = sorted({round(s[step]["load_average_before"][0], 1) for s in r["sizes"] for step in steps if step in s})
    lines = [
        "**Scale** (`benchmarks/bench_scale.py`: synthetic transactions in one Parquet file, customers = "
        "transactions / 10; each command a fresh process of the installed `tiercast` CLI with a config written for "
        f"the file, beside the hand-written DuckDB feature query in a fresh Python; {_machine(r)}, 1-minute load "
        f"{loads[0]:.1f} to {loads[-1]:.1f} during the run; `{r.get('uptime') or '?'}` at the end). Wall s / CPU s "
        "(user + system) / peak memory; the last figure is wall time over the query's at that size:"
        if loads
        else "**Scale**:",
        "",
        "| size | " + " | ".join("query" if s == QUERY else f"`{s}`" for s in steps) + " |",
        "|---|" + "---:|" * len(steps),
    ]
    for s in r["sizes"]:
        query = s.get(QUERY, {}).get("wall_seconds")
        cells = []
        for step in steps:
            m = s.get(step)
            if m is None:
                cells.append("-")
                continue
            ratio = f" / {m['wall_seconds'] / query:,.1f}x" if query and step != QUERY else ""
            cells.append(
                f"{m['wall_seconds']:,.1f} / {m['cpu_seconds']:,.1f} / {m['peak_rss_mb'] / 1024:.2f} GB{ratio}"
            )
        lines.append(f"| {label(s['transactions'])} ({s['customers']:,} customers) | " + " | ".join(cells) + " |")
    lines += _measured_again(r, steps)
    lines += [
        "",
        "![time against size](benchmarks/results/scale.png)",
        "",
        "Targets: "
        + "; ".join(
            f"{name}: {'not measured' if ok is None else ('met' if ok else '**missed**')}"
            + ("" if ok is None else f" ({got})")
            for name, ok, got in targets_met(r)
        ),
        "",
    ]
    return lines


SECTIONS: dict[str, Callable[[dict], list[str]]] = {
    "cdnow": _quality,
    "cdnow_ceiling": _ceiling,
    "cdnow_rehearsal": _quality,
    "backtest_online_retail": _backtest,
    "backtest_synthetic_retailer": synthetic_section,
    "features": _features,
    "scoring": _scoring,
    "spark": _spark,
    "scale": _scale,
}


def render(results: Path) -> str:
    lines = ["Regenerated by `make bench` from `benchmarks/results/*.json`.", ""]
    for name, fn in SECTIONS.items():
        r = _load(results, name)
        if r is not None:
            lines += fn(r)
    return "\n".join(lines).rstrip() + "\n"


def update_readme(readme: Path, results: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{readme}: missing {START} / {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{render(results)}{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    update_readme(args.readme, args.results)


if __name__ == "__main__":
    main()
