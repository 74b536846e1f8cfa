"""Spark benchmark: the same Ibis feature expressions on Spark ``local[N]`` against embedded DuckDB, on one Parquet
file of synthetic transactions (10M lines by default). Not part of ``make bench`` (the Spark run takes minutes):

    .venv/bin/python -m tiercast.benchmarks.bench_spark --out benchmarks/results   # writes spark.json

Each measurement runs in a fresh process, like a batch job. Spark: start a local session (JVM start reported
separately), read the Parquet file, build the features at the cutoff and collect them to pandas — the output of
``build_features``, so both engines do the same work; the DuckDB side is the feature benchmark's ``tiercast`` run.
CPU time and peak memory of the Spark run include the JVM (read from ``/proc`` before the session stops). The
outputs are compared column by column (1e-9).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from tiercast.benchmarks.bench_features import (
    HORIZON_DAYS,
    WINDOWS_DAYS,
    compare,
    measure,
    run_worker,
)
from tiercast.features.contract import CUTOFF, TRANSACTION_COLUMNS

DEFAULT_MASTER = "local[2]"
DEFAULT_CONF = {
    "spark.driver.memory": "6g",  # local mode: driver and executors share this one JVM heap
    "spark.sql.shuffle.partitions": "16",  # a few tasks per core; adaptive execution merges small ones
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the JVM that pyspark starts is one), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _proc_usage(pids: Sequence[int]) -> tuple[float, float]:
    """(CPU seconds, peak RSS MB) summed over ``pids``."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu = peak = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / tick
            with open(f"/proc/{pid}/status") as fh:
                hwm = [line for line in fh if line.startswith("VmHWM:")]
            peak += int(hwm[0].split()[1]) / 1024 if hwm else 0.0
        except OSError:
            continue
    return cpu, peak


def _spark_worker(path: str, cutoff: str, out: str | None, master: str, conf: dict[str, str]) -> dict:
    from tiercast.features.build import build_features
    from tiercast.pipeline.engine.config import EngineConfig
    from tiercast.pipeline.engine.session import connect, session_of

    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    con = connect(EngineConfig(kind="spark", spark_master=master, spark_app_name="tiercast-bench", spark_conf=conf))
    session_of(con).sparkContext.setLogLevel("ERROR")
    session_seconds = time.perf_counter() - start
    tx = con.read_parquet(path).select(*TRANSACTION_COLUMNS)
    df = build_features(tx, cutoff=cutoff, windows_days=WINDOWS_DAYS, horizon_days=HORIZON_DAYS, con=con)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    jvm_cpu, jvm_peak = _proc_usage(_descendants(os.getpid()))
    session_of(con).stop()
    if out:
        df.to_parquet(out)
    python_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "impl": "spark",
        "master": master,
        "seconds": seconds,
        "session_start_seconds": session_seconds,
        "features_seconds": seconds - session_seconds,
        "cpu_seconds": python_cpu + jvm_cpu,
        "jvm_cpu_seconds": jvm_cpu,
        "peak_rss_mb": after.ru_maxrss / 1024 + jvm_peak,
        "jvm_peak_rss_mb": jvm_peak,
        "rows": len(df),
    }


def measure_spark(path: str | Path, *, cutoff: str, master: str, conf: dict[str, str], out: Path | None) -> dict:
    """One Spark measurement in a fresh Python process (and so a fresh JVM)."""
    cmd = [sys.executable, "-m", "tiercast.benchmarks.bench_spark", "worker", str(path), "--cutoff", cutoff]
    cmd += ["--master", master, "--conf", json.dumps(conf)]
    if out is not None:
        cmd += ["--worker-out", str(out)]
    return run_worker(cmd, "spark")


def run(
    path: str | Path,
    *,
    cutoff: str,
    repeats: int = 1,
    master: str = DEFAULT_MASTER,
    conf: dict[str, str] | None = None,
) -> dict:
    """``repeats`` alternating runs of Spark and DuckDB; medians, the Spark / DuckDB ratio and the agreement."""
    conf = {**DEFAULT_CONF, **(conf or {})}
    runs: dict[str, list[dict]] = {"spark": [], "duckdb": []}
    with tempfile.TemporaryDirectory() as tmp:
        outputs = {name: Path(tmp) / f"{name}.parquet" for name in runs}
        for i in range(repeats):
            last = i == repeats - 1
            runs["duckdb"].append(measure("tiercast", path, cutoff=cutoff, out=outputs["duckdb"] if last else None))
            spark_out = outputs["spark"] if last else None
            runs["spark"].append(measure_spark(path, cutoff=cutoff, master=master, conf=conf, out=spark_out))
        check = compare(pd.read_parquet(outputs["duckdb"]), pd.read_parquet(outputs["spark"]), rtol=1e-9, atol=1e-9)

    def summary(rs: list[dict]) -> dict:
        keys = [k for k in rs[0] if k.endswith("seconds")]
        return {
            **{f"median_{k}": statistics.median(r[k] for r in rs) for k in keys},
            "seconds": [round(r["seconds"], 3) for r in rs],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
            "rows": rs[0]["rows"],
        }

    spark, duck = summary(runs["spark"]), summary(runs["duckdb"])
    return {
        CUTOFF: cutoff,
        "repeats": repeats,
        "spark_master": master,
        "spark_conf": conf,
        "spark": spark,
        "duckdb": duck,
        "ratio_spark_to_duckdb": spark["median_seconds"] / duck["median_seconds"],
        "ratio_spark_features_to_duckdb": spark["median_features_seconds"] / duck["median_seconds"],
        "cpu_ratio_spark_to_duckdb": spark["median_cpu_seconds"] / duck["median_cpu_seconds"],
        "agreement": check,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """``worker PATH --cutoff ...``: one Spark measurement (used by :func:`run`); anything else runs the spark
    benchmark through the common runner (``--out``, ``--transactions``, ``--repeats``...)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["worker"]:
        from tiercast.benchmarks import run as runner

        runner.main(["--only", "spark", "--repeats", "1", *argv])
        return
    worker = argparse.ArgumentParser(description="one Spark measurement")
    worker.add_argument("path")
    worker.add_argument("--cutoff", required=True)
    worker.add_argument("--master", default=DEFAULT_MASTER)
    worker.add_argument("--conf", default="{}")
    worker.add_argument("--worker-out")
    args = worker.parse_args(argv[1:])
    print(json.dumps(_spark_worker(args.path, args.cutoff, args.worker_out, args.master, json.loads(args.conf))))


if __name__ == "__main__":
    main()
