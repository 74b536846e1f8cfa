"""Model quality where the answer is known: ``tiercast backtest`` on the synthetic retailers of
:mod:`tiercast.benchmarks.retailer`, beside the fitted BTYD models and the true-parameter model.

For each world the transactions and a tiercast config are written to the data folder, the backtest runs as the
user runs it (:func:`tiercast.pipeline.jobs.backtest.run_backtest` on the config, ingestion included), and its
per-customer predictions are joined with the true-parameter Pareto/NBD x Gamma-Gamma prediction of each customer
(``true_btyd``). Per test cutoff and method: normalized Gini, churn ROC AUC, Brier, mean churn probability vs
realized churn and predicted / actual total; paired-bootstrap intervals over customers of tiercast minus the best
fitted BTYD model and of tiercast minus the true model. The checks are the targets for these worlds: on pure BTYD
worlds tiercast within noise of the truth (no interval wholly below zero); with a December peak the fourth
quarter's total within 15%; and the general bar (at or above the best BTYD by point, no interval wholly below
zero, Brier at or below BG/NBD's, mean churn within 0.05 of realized, totals within 0.85-1.15).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tiercast.benchmarks.retailer import WORLDS, World, true_predictions, write_world
from tiercast.features.contract import CHURN_PROBABILITY, CHURNED, CUSTOMER_ID, CUTOFF, PREDICTED_VALUE
from tiercast.models.evaluation import brier, normalized_gini, paired_bootstrap, roc_auc

__all__ = ["BTYD_METHODS", "TRUE", "result_of", "row_checks", "run", "run_world", "world_checks"]

TRUE = "true_btyd"
BTYD_METHODS = ("bgnbd_gg", "paretonbd_gg")
PEAK_QUARTER_START = (10, 1)  # a test window starting on 1 October covers the December quarter


def _finite(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _metrics(part: pd.DataFrame) -> dict[str, float | None]:
    y, p = part["realized_value"].to_numpy(float), part[PREDICTED_VALUE].to_numpy(float)
    c, q = part[CHURNED].to_numpy(int), part[CHURN_PROBABILITY].to_numpy(float)
    return {
        "normalized_gini": _finite(normalized_gini(y, p)),
        "roc_auc": _finite(roc_auc(c, q)),
        "brier": _finite(brier(c, q)),
        "mean_churn_probability": float(q.mean()),
        "realized_churn": float(c.mean()),
        "predicted_total": float(p.sum()),
        "actual_total": float(y.sum()),
    }


def _with_truth(world: World, tx: pd.DataFrame, preds: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """The predictions with the true model's rows added for the same customers at every cutoff."""
    parts = [preds]
    for cutoff, rows in preds[preds["method"] == "tiercast"].groupby(CUTOFF):
        truth = true_predictions(world, tx, cutoff=cutoff, horizon_days=horizon_days).reindex(rows[CUSTOMER_ID])
        if truth.isna().any().any():
            raise ValueError(f"{world.name} {cutoff}: customers without a history for the true model")
        parts.append(
            rows.assign(
                method=TRUE,
                predicted_value=truth["expected_value"].to_numpy(),
                churn_probability=truth["p_no_purchase"].to_numpy(),
            )
        )
    return pd.concat(parts, ignore_index=True)


def _compare(a: pd.DataFrame, b: pd.DataFrame, n_boot: int, seed: int) -> dict[str, dict[str, float | None]]:
    """Paired bootstrap of method a minus method b (rows aligned by customer) for nGini and ROC AUC."""
    a, b = a.set_index(CUSTOMER_ID), b.set_index(CUSTOMER_ID).loc[a[CUSTOMER_ID]]
    out = {}
    for key, fn, target, col in (
        ("normalized_gini", normalized_gini, "realized_value", PREDICTED_VALUE),
        ("roc_auc", roc_auc, CHURNED, CHURN_PROBABILITY),
    ):
        y = a[target].to_numpy()
        res = paired_bootstrap(fn, y, a[col].to_numpy(), b[col].to_numpy(), n_boot=n_boot, seed=seed)
        out[key] = {k: _finite(res[k]) for k in ("diff", "lo", "hi")}
    return out


#: Metrics of the same ranking computed from different scores differ by float rounding (1e-16 on an AUC); a point
#: estimate within this of the best BTYD model's is a tie, not a loss.
ROUNDING = 1e-12


def _check(values: dict[str, Any], ok: bool) -> dict[str, Any]:
    return {"met": bool(ok), "values": values}


def row_checks(world: World, rows: list[dict[str, Any]], method: str = "tiercast") -> dict[str, Any]:
    """The targets read from the per-cutoff rows alone (no bootstrap), for ``method``: the December quarter's
    total, the point estimates against the best fitted BTYD model, Brier, mean churn and totals. Applied to the
    true-parameter model they show which targets the model that made the data meets on the same customers."""
    by = {(r[CUTOFF], r["method"]): r for r in rows}
    own = {c: by[(c, method)] for c in sorted({r[CUTOFF] for r in rows}) if (c, method) in by}
    checks: dict[str, Any] = {}
    if world.season and world.backtest.horizon_days <= 92:  # a window starting 1 October is the peak quarter
        peak = [c for c in own if (pd.Timestamp(c).month, pd.Timestamp(c).day) == PEAK_QUARTER_START]
        vals = {c: own[c]["predicted_total"] / own[c]["actual_total"] for c in peak}
        checks["December quarter's total within 15%"] = _check(
            vals, bool(peak) and all(0.85 <= v <= 1.15 for v in vals.values())
        )
    best = {
        c: {m: max(by[(c, b)][m] for b in BTYD_METHODS) for m in ("normalized_gini", "roc_auc")} for c in own
    }  # fmt: skip
    checks[POINT_CHECK] = _check(
        {c: {m: own[c][m] - best[c][m] for m in best[c]} for c in own},
        all(own[c][m] >= best[c][m] - ROUNDING for c in own for m in best[c]),
    )
    checks["Brier at or below BG/NBD's"] = _check(
        {c: own[c]["brier"] - by[(c, "bgnbd_gg")]["brier"] for c in own},
        all(own[c]["brier"] <= by[(c, "bgnbd_gg")]["brier"] for c in own),
    )
    vals = {c: own[c]["mean_churn_probability"] - own[c]["realized_churn"] for c in own}
    checks["|mean churn probability - realized| <= 0.05"] = _check(vals, all(abs(v) <= 0.05 for v in vals.values()))
    vals = {c: own[c]["predicted_total"] / own[c]["actual_total"] for c in own}
    checks["predicted / actual total within 0.85-1.15"] = _check(vals, all(0.85 <= v <= 1.15 for v in vals.values()))
    return checks


POINT_CHECK = "nGini and AUC at or above the best fitted BTYD at every cutoff (point estimates)"


def world_checks(world: World, rows: list[dict[str, Any]], comparisons: list[dict[str, Any]]) -> dict[str, Any]:
    """The targets for a world, each with the measured values and whether it is met at every cutoff: the row
    checks of tiercast (:func:`row_checks`) and the paired-bootstrap ones."""
    comp = {c[CUTOFF]: c for c in comparisons}
    rowwise = row_checks(world, rows)
    checks: dict[str, Any] = {}
    if not world.season:
        vals = {c: comp[c]["vs_true"] for c in comp}
        checks["matches the true model within noise (no nGini / AUC interval of tiercast - true wholly below 0)"] = (
            _check(vals, all(v[m]["hi"] is not None and v[m]["hi"] >= 0 for v in vals.values() for m in v))
        )
    for name, value in rowwise.items():
        checks[name] = value
        if name == POINT_CHECK:
            vals = {c: comp[c]["vs_best_btyd"] for c in comp}
            checks["no cutoff where tiercast - best BTYD is wholly below 0 (nGini, AUC)"] = _check(
                vals,
                all(
                    v[m]["hi"] is not None and v[m]["hi"] >= 0
                    for v in vals.values()
                    for m in ("normalized_gini", "roc_auc")
                ),
            )
    return checks


def run_world(
    world: World, data_dir: Path, *, n_boot: int = 500, config_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Backtest one world and compare every method with the truth; the JSON-ready result. ``config_overrides``
    change the written config's settings (e.g. fewer trees in tests)."""
    from tiercast.pipeline.config import load_config
    from tiercast.pipeline.ingest.loader import load_transactions
    from tiercast.pipeline.jobs.backtest import run_backtest

    _, config_path = write_world(world, data_dir)
    config = load_config(config_path, overrides=config_overrides)
    started = time.perf_counter()
    data = load_transactions(config)
    table, preds = run_backtest(config, data, n_boot=0, return_predictions=True)
    seconds = time.perf_counter() - started
    preds = _with_truth(world, data.accepted, preds, config.horizon_days)
    rows, comparisons = [], []
    for cutoff, at in preds.groupby(CUTOFF, sort=True):
        day = str(pd.Timestamp(cutoff).date())
        by_method = {m: part for m, part in at.groupby("method", sort=False)}
        for method, part in by_method.items():
            rows.append({CUTOFF: day, "method": method, **_metrics(part)})
        if "tiercast" not in by_method:
            continue
        gini = {b: normalized_gini(by_method[b]["realized_value"], by_method[b][PREDICTED_VALUE]) for b in BTYD_METHODS}
        auc = {b: roc_auc(by_method[b][CHURNED], by_method[b][CHURN_PROBABILITY]) for b in BTYD_METHODS}
        best_gini, best_auc = max(gini, key=gini.get), max(auc, key=auc.get)
        vs_gini = _compare(by_method["tiercast"], by_method[best_gini], n_boot, world.seed)["normalized_gini"]
        vs_auc = _compare(by_method["tiercast"], by_method[best_auc], n_boot, world.seed)["roc_auc"]
        comparisons.append(
            {
                CUTOFF: day,
                "vs_best_btyd": {
                    "normalized_gini": {"vs": best_gini, **vs_gini},
                    "roc_auc": {"vs": best_auc, **vs_auc},
                },
                "vs_true": _compare(by_method["tiercast"], by_method[TRUE], n_boot, world.seed),
            }
        )
    model_rows = table[table["method"] == "tiercast"]
    return {
        "world": world.model_dump(mode="json"),
        "config": str(config_path),
        "horizon_days": config.horizon_days,
        "n_customers": int(data.accepted[CUSTOMER_ID].nunique()),
        "n_transactions": int(len(data.accepted)),
        "n_train_cutoffs": [int(v) for v in model_rows["n_train_cutoffs"]],
        "backtest_seconds": round(seconds, 1),
        "rows": rows,
        "comparisons": comparisons,
        "checks": world_checks(world, rows, comparisons),
    }


def run(data_dir: Path, names: Sequence[str] | None = None, *, n_boot: int = 500) -> dict[str, Any]:
    """Every world (or the named ones); ``{"title", "description", "worlds": {name: result}}``."""
    worlds = {n: run_world(WORLDS[n], Path(data_dir) / "retailer", n_boot=n_boot) for n in (names or WORLDS)}
    return result_of(worlds, n_boot=n_boot)


def result_of(worlds: dict[str, dict[str, Any]], *, n_boot: int = 500) -> dict[str, Any]:
    """The benchmark result of worlds run by :func:`run_world` (one each, e.g. in separate processes)."""
    return {
        "title": "synthetic retailers with known truth",
        "description": (
            "`tiercast backtest` on the worlds of `tiercast.benchmarks.retailer` (Pareto/NBD customers, acquisition "
            "cohorts, Gamma-Gamma spend; a December peak where named), beside BG/NBD and Pareto/NBD x Gamma-Gamma "
            f"fitted at each cutoff and the true-parameter model ({TRUE}); {n_boot} paired-bootstrap replicates"
        ),
        "worlds": worlds,
    }


def summary_frame(result: dict[str, Any]) -> pd.DataFrame:
    """All worlds' rows in one frame (world, cutoff, method, metrics), for a quick look."""
    return pd.DataFrame([{"world": n, **r} for n, w in result["worlds"].items() for r in w["rows"]])


if __name__ == "__main__":  # a quick look at one world: python -m tiercast.benchmarks.bench_retailer NAME
    import json
    import sys

    res = run(Path("benchmarks/data"), sys.argv[1:] or None, n_boot=200)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary_frame(res).round(3).to_string(index=False))
    print(json.dumps({n: w["checks"] for n, w in res["worlds"].items()}, indent=1, default=str)[:5000])
