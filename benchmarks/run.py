"""Run the benchmarks and write one JSON file per benchmark: ``python -m tiercast.benchmarks.run --out DIR``.

A benchmark is a function ``(RunOptions) -> dict`` registered in :data:`BENCHMARKS`; its result is written to
``DIR/<name>.json`` together with the machine description, so figures are never separated from where they ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pyarrow.parquet as pq

from tiercast.benchmarks import bench_features, bench_scale, bench_scoring
from tiercast.benchmarks.synthetic import SPAN_DAYS, START, write_transactions

DEFAULT_DATA_DIR = Path("benchmarks/data")
ONLINE_RETAIL_CONFIG = Path("configs/online_retail_ii.yaml")


@dataclass(frozen=True)
class RunOptions:
    out: Path
    transactions: int = 10_000_000
    customers: int = 1_000_000
    seed: int = 0
    repeats: int = 3
    data_dir: Path = DEFAULT_DATA_DIR
    scale_sizes: tuple[int, ...] = bench_scale.DEFAULT_SIZES


def synthetic_data(opts: RunOptions) -> Path:
    """The synthetic Parquet file for these options, generated on first use."""
    path = opts.data_dir / f"synthetic_{opts.transactions}_{opts.customers}_s{opts.seed}.parquet"
    if not path.exists():
        start = time.perf_counter()
        write_transactions(path, opts.transactions, opts.customers, opts.seed)
        print(f"generated {path} in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    return path


def _synthetic(opts: RunOptions) -> tuple[Path, str, dict]:
    """The synthetic file, the cutoff at the end of its period and the data note of a result."""
    path = synthetic_data(opts)
    cutoff = str(START.astype("datetime64[D]") + SPAN_DAYS)
    data = {
        "path": str(path),
        "transactions": pq.ParquetFile(path).metadata.num_rows,
        "customers_requested": opts.customers,
        "seed": opts.seed,
    }
    return path, cutoff, data


def features_benchmark(opts: RunOptions) -> dict:
    """build_features vs the SQL reference on the synthetic data, cutoff at the end of the generated period."""
    path, cutoff, data = _synthetic(opts)
    return {**bench_features.run(path, cutoff=cutoff, repeats=opts.repeats), "data": data}


def scoring_benchmark(opts: RunOptions) -> dict:
    """Batch scoring of every customer (features + scores + at-risk list with reasons) on the synthetic data."""
    path, cutoff, data = _synthetic(opts)
    return {**bench_scoring.run(path, cutoff=cutoff, repeats=opts.repeats), "data": data}


def spark_benchmark(opts: RunOptions) -> dict:
    """Features on Spark local[2] vs DuckDB on the synthetic data (needs the ``spark`` extra and Java 17+)."""
    from tiercast.benchmarks import bench_spark

    path, cutoff, data = _synthetic(opts)
    return {**bench_spark.run(path, cutoff=cutoff, repeats=opts.repeats), "data": data}


def cdnow_benchmark(opts: RunOptions) -> dict:
    """Model quality on the standard CDNOW split (the bundled file): tiercast against the published baselines."""
    from tiercast.benchmarks.quality.cdnow import run_cdnow_benchmark
    from tiercast.benchmarks.quality.cdnow_data import DEFAULT_PATH

    result = run_cdnow_benchmark(DEFAULT_PATH, seed=42).to_dict()  # `tiercast benchmark cdnow`'s default seed
    split = result["split"]
    result["title"] = "CDNOW"
    result["description"] = (
        f"all {split['n_customers']:,} customers; calibration {split['calibration'][0]}..{split['calibration'][1]}, "
        f"holdout {split['holdout'][0]}..{split['holdout'][1]}; tiercast trained only on calibration data"
    )
    return result


def cdnow_rehearsal_benchmark(opts: RunOptions) -> dict:
    """The CDNOW protocol inside the calibration period (a 92-day holdout), where design alternatives are judged."""
    from tiercast.benchmarks.quality.cdnow import run_cdnow_benchmark
    from tiercast.benchmarks.quality.cdnow_data import DEFAULT_PATH

    result = run_cdnow_benchmark(DEFAULT_PATH, seed=42, split="rehearsal").to_dict()
    split = result["split"]
    result["title"] = "the CDNOW rehearsal split"
    result["description"] = (
        f"`tiercast benchmark cdnow --split rehearsal`; calibration {split['calibration'][0]}.."
        f"{split['calibration'][1]}, holdout {split['holdout'][0]}..{split['holdout'][1]}, inside the standard "
        "calibration period"
    )
    return result


def cdnow_ceiling_benchmark(opts: RunOptions) -> dict:
    """An oracle fitted on the CDNOW holdout's own labels (cross-validated): an estimate of the benchmark's
    ceiling, over three fold seeds."""
    from tiercast.benchmarks.quality.ceiling import run_cdnow_ceiling

    return run_cdnow_ceiling()


def backtest_benchmark(opts: RunOptions) -> dict:
    """Model quality on Online Retail II: ``tiercast backtest`` with the bundled config (every method, several test
    cutoffs, paired-bootstrap intervals against the best baseline)."""
    from tiercast.pipeline.config import load_config
    from tiercast.pipeline.jobs.backtest import run_backtest

    config = load_config(ONLINE_RETAIL_CONFIG)
    table = run_backtest(config)
    table = table.assign(
        test_cutoff=table["test_cutoff"].dt.date.astype(str),
        validation_cutoff=table["validation_cutoff"].dt.date.astype(str),
    )
    return {
        "title": "Online Retail II",
        "config": str(ONLINE_RETAIL_CONFIG),
        "horizon_days": config.horizon_days,
        "rows": json.loads(table.to_json(orient="records")),
    }


def retailer_benchmark(opts: RunOptions) -> dict:
    """Model quality where the truth is known: ``tiercast backtest`` on the synthetic retailers (pure BTYD, a
    December peak, a 600-customer sample) beside the fitted and the true-parameter BTYD models."""
    from tiercast.benchmarks import bench_retailer

    return bench_retailer.run(opts.data_dir)


def scale_benchmark(opts: RunOptions) -> dict:
    """``tiercast validate / features / run / score`` as a user runs them at each scale size (default 1M, 10M and
    30M transactions), beside the hand-written DuckDB feature query; the plot goes next to the result."""
    scale = bench_scale.ScaleOptions(sizes=opts.scale_sizes, data_dir=opts.data_dir, seed=opts.seed)
    result = bench_scale.run(scale, progress=lambda s: print(s, file=sys.stderr, flush=True))
    bench_scale.plot(result, opts.out / "scale.png")
    return result


BENCHMARKS: dict[str, Callable[[RunOptions], dict]] = {
    "cdnow": cdnow_benchmark,
    "cdnow_ceiling": cdnow_ceiling_benchmark,
    "cdnow_rehearsal": cdnow_rehearsal_benchmark,
    "backtest_online_retail": backtest_benchmark,
    "backtest_synthetic_retailer": retailer_benchmark,
    "features": features_benchmark,
    "scoring": scoring_benchmark,
    "spark": spark_benchmark,
    "scale": scale_benchmark,
}


def machine_info() -> dict:
    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    mem_gb = None
    try:
        with open("/proc/meminfo") as fh:
            mem_gb = round(int(fh.readline().split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_gb": mem_gb,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "packages": {
            p: version(p) for p in ("duckdb", "ibis-framework", "pandas", "pyarrow", "numpy", "lightgbm", "pyspark")
        },
    }


def run(opts: RunOptions, names: Sequence[str] | None = None) -> dict[str, Path]:
    """Run the named benchmarks (all by default); returns the JSON file written for each."""
    opts.out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in names or BENCHMARKS:
        started = time.strftime("%Y-%m-%dT%H:%M:%S")
        machine = machine_info()  # before the run: its load average is the machine's state at the start
        result = {"benchmark": name, "started": started, **BENCHMARKS[name](opts), "machine": machine}
        path = opts.out / f"{name}.json"
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")
        written[name] = path
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--transactions", type=int, default=RunOptions.transactions)
    parser.add_argument("--customers", type=int, default=None, help="default: transactions / 10")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument(
        "--scale-sizes",
        default=os.environ.get(bench_scale.SIZES_ENV),
        help=f"transactions per scale run, e.g. 1M,10M (default 1M,10M,30M; env {bench_scale.SIZES_ENV})",
    )
    args = parser.parse_args(argv)
    opts = RunOptions(
        out=args.out,
        transactions=args.transactions,
        customers=args.customers or max(1, args.transactions // 10),
        seed=args.seed,
        repeats=args.repeats,
        data_dir=args.data_dir,
        scale_sizes=bench_scale.parse_sizes(args.scale_sizes),
    )
    for name, path in run(opts, args.only).items():
        print(f"{name}: {path}")
        print(path.read_text())


if __name__ == "__main__":
    main()
