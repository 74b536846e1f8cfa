"""Feature-build benchmark: tiercast's ``build_features`` against a hand-written single-query DuckDB SQL reference.

Both read the same Parquet file in the same run and return a pandas frame. Each measurement runs in a fresh
subprocess, so the peak memory (``ru_maxrss``) is that run's alone and no cache carries over; runs alternate between
the two implementations and the medians of wall time and of CPU time (user + system, all threads) are reported. On
a shared machine wall time swings with other load; CPU time is the steadier comparison. The outputs of the last
runs are compared column by column on the features both compute, so the timing compares equal work.

The reference is written the way a competent engineer would by hand: one query, float sums, distinct purchase days
flagged in the gap window (no ``count(DISTINCT)``), windowed spend summed per line. tiercast computes more (exact
decimal sums, BTYD summary, spend trend) but sums windows per order, keeping its large lines -> orders aggregation
narrower; its window pass carries fewer columns too.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tiercast.features.contract import CUSTOMER_ID, CUTOFF

WINDOWS_DAYS = (30, 90, 180, 365)
HORIZON_DAYS = 90

_REFERENCE_SQL = """
WITH lines AS (
    SELECT customer_id, order_id, "timestamp" AS ts, amount
    FROM read_parquet('{path}')
    WHERE "timestamp" < TIMESTAMP '{cutoff}'
),
orders AS (
    -- rounded: a float sum leaves residues like 1.8e-15 on a fully refunded order, which "net > 0" would count
    SELECT customer_id, order_id, min(ts) AS ts, round(sum(amount), 6) AS net,
           sum(amount) FILTER (WHERE amount > 0) AS gross,
           -sum(amount) FILTER (WHERE amount < 0) AS refunded,
           count(*) FILTER (WHERE amount < 0) AS refund_lines,
           {order_windows}
    FROM lines
    GROUP BY customer_id, order_id
),
days AS (
    SELECT *, net > 0 AS is_purchase, date_diff('day', DATE '1970-01-01', ts::DATE) AS day
    FROM orders
),
flagged AS (
    SELECT *,
           is_purchase AND day IS DISTINCT FROM lag(day) OVER w AS new_day,
           CASE WHEN is_purchase AND day <> lag(day) OVER w THEN day - lag(day) OVER w END AS gap
    FROM days
    WINDOW w AS (PARTITION BY customer_id, is_purchase ORDER BY day)
),
customers AS (
    SELECT customer_id,
           date_diff('microsecond', coalesce(max(ts) FILTER (WHERE is_purchase), max(ts)),
                     TIMESTAMP '{cutoff}') / 86400e6 AS recency_days,
           date_diff('microsecond', min(ts), TIMESTAMP '{cutoff}') / 86400e6 AS tenure_days,
           count(*) FILTER (WHERE is_purchase)::DOUBLE AS frequency_orders,
           count(*) FILTER (WHERE new_day)::DOUBLE AS purchase_days,
           sum(net) AS monetary_total,
           avg(net) FILTER (WHERE is_purchase) AS monetary_mean_order,
           max(net) FILTER (WHERE is_purchase) AS monetary_max_order,
           {customer_windows},
           avg(gap) AS gap_mean_days,
           stddev_samp(gap) AS gap_std_days,
           count(*) FILTER (WHERE refund_lines > 0)::DOUBLE AS refund_count,
           coalesce(sum(refunded), 0) / nullif(sum(gross), 0) AS refund_share
    FROM flagged
    GROUP BY customer_id
)
SELECT *, recency_days / gap_mean_days AS overdue_ratio
FROM customers
ORDER BY customer_id
"""


def reference_sql(path: str | Path, *, cutoff: str, windows_days: Sequence[int] = WINDOWS_DAYS) -> str:
    """The reference query for a Parquet file, cutoff and windows."""
    windows = sorted({*windows_days, HORIZON_DAYS})
    since = "ts >= TIMESTAMP '{c}' - INTERVAL {w} DAY"
    order_windows = ",\n           ".join(
        f"sum(amount) FILTER (WHERE {since.format(c=cutoff, w=w)}) AS spend_{w}" for w in windows
    )
    customer_windows = ",\n           ".join(
        f"count(*) FILTER (WHERE is_purchase AND {since.format(c=cutoff, w=w)})::DOUBLE AS orders_{w}d, "
        f"coalesce(sum(spend_{w}), 0) AS spend_{w}d"
        for w in windows
    )
    return _REFERENCE_SQL.format(
        path=str(path).replace("'", "''"),
        cutoff=cutoff,
        order_windows=order_windows,
        customer_windows=customer_windows,
    )


def run_reference(path: str | Path, *, cutoff: str) -> pd.DataFrame:
    import duckdb

    con = duckdb.connect()
    return con.sql(reference_sql(path, cutoff=cutoff)).to_arrow_table().to_pandas()


def run_tiercast(path: str | Path, *, cutoff: str) -> pd.DataFrame:
    import ibis

    from tiercast.features.build import build_features
    from tiercast.features.contract import TRANSACTION_COLUMNS

    con = ibis.duckdb.connect()
    tx = con.read_parquet(str(path)).select(*TRANSACTION_COLUMNS)
    return build_features(tx, cutoff=cutoff, windows_days=WINDOWS_DAYS, horizon_days=HORIZON_DAYS, con=con)


IMPLEMENTATIONS = {"reference": run_reference, "tiercast": run_tiercast}


def _worker(impl: str, path: str, cutoff: str, out: str | None) -> dict:
    """Run one implementation once in this process; the JSON it prints is the measurement."""
    if impl == "tiercast":  # import outside the timed region, like the reference's duckdb import
        import tiercast.features.build  # noqa: F401
    import duckdb  # noqa: F401

    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    df = IMPLEMENTATIONS[impl](path, cutoff=cutoff)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    if out:
        df.to_parquet(out)
    return {
        "impl": impl,
        "seconds": seconds,
        # CPU time of all threads: far less sensitive than wall time to other load on a shared machine.
        "cpu_seconds": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "peak_rss_mb": after.ru_maxrss / 1024,
        "baseline_rss_mb": before.ru_maxrss / 1024,
        "rows": len(df),
    }


def run_worker(cmd: list[str], what: str) -> dict:
    """Run a benchmark worker command in a fresh process; its last stdout line is its JSON result."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} benchmark run failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(impl: str, path: str | Path, *, cutoff: str, out: Path | None = None) -> dict:
    """One measurement of ``impl`` in a fresh Python process."""
    cmd = [sys.executable, "-m", "tiercast.benchmarks.bench_features", impl, str(path), "--cutoff", cutoff]
    if out is not None:
        cmd += ["--out", str(out)]
    return run_worker(cmd, impl)


def compare(reference: pd.DataFrame, tiercast: pd.DataFrame, *, rtol: float = 1e-9, atol: float = 1e-6) -> dict:
    """Per shared column: number of customers whose values differ beyond tolerance (NaN == NaN)."""
    if not reference[CUSTOMER_ID].equals(tiercast[CUSTOMER_ID]):
        raise AssertionError("reference and tiercast return different customers or order")
    shared = [c for c in reference.columns if c != CUSTOMER_ID and c in tiercast.columns]
    mismatches = {}
    for col in shared:
        ref, got = reference[col].to_numpy(float), tiercast[col].to_numpy(float)
        mismatches[col] = int((~np.isclose(ref, got, rtol=rtol, atol=atol, equal_nan=True)).sum())
    return {"columns": shared, "mismatches": mismatches, "agree": not any(mismatches.values())}


def run(path: str | Path, *, cutoff: str, repeats: int = 3) -> dict:
    """Alternate ``repeats`` runs of each implementation; medians, ratio, peak memory and the agreement check."""
    runs: dict[str, list[dict]] = {name: [] for name in IMPLEMENTATIONS}
    with tempfile.TemporaryDirectory() as tmp:
        outputs = {name: Path(tmp) / f"{name}.parquet" for name in IMPLEMENTATIONS}
        for i in range(repeats):
            for name in IMPLEMENTATIONS:
                last = i == repeats - 1
                runs[name].append(measure(name, path, cutoff=cutoff, out=outputs[name] if last else None))
        check = compare(pd.read_parquet(outputs["reference"]), pd.read_parquet(outputs["tiercast"]))
    summary = {
        name: {
            "median_seconds": statistics.median(r["seconds"] for r in rs),
            "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in rs),
            "seconds": [round(r["seconds"], 3) for r in rs],
            "cpu_seconds": [round(r["cpu_seconds"], 3) for r in rs],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
            "baseline_rss_mb": max(r["baseline_rss_mb"] for r in rs),
            "rows": rs[0]["rows"],
        }
        for name, rs in runs.items()
    }
    ratio = summary["tiercast"]["median_seconds"] / summary["reference"]["median_seconds"]
    cpu_ratio = summary["tiercast"]["median_cpu_seconds"] / summary["reference"]["median_cpu_seconds"]
    return {
        CUTOFF: cutoff,
        "repeats": repeats,
        **summary,
        "ratio_tiercast_to_reference": ratio,
        "cpu_ratio_tiercast_to_reference": cpu_ratio,
        "agreement": check,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One feature-build measurement (used by run()).")
    parser.add_argument("impl", choices=sorted(IMPLEMENTATIONS))
    parser.add_argument("path")
    parser.add_argument("--cutoff", required=True)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    print(json.dumps(_worker(args.impl, args.path, args.cutoff, args.out)))


if __name__ == "__main__":
    main()
