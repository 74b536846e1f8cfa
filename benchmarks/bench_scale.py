"""Scale benchmark: the ``tiercast`` commands as a user runs them, at growing sizes, beside a hand-written query.

At each size (transactions; customers = transactions / 10) a synthetic Parquet file is read by fresh processes of
the installed ``tiercast`` CLI with a config written for it: ``validate``, ``features`` (at the data end), ``run``
(ingest, train with backtest, register, score everyone, at-risk list) and ``score`` (the champion of that run),
and, as the yardstick, the hand-written DuckDB feature query of :mod:`tiercast.benchmarks.bench_features` in a
fresh Python process. Each measurement is the child's own: wall time, CPU time (user + system of the child and the
processes it waited for) and peak resident memory (``ru_maxrss``), from ``os.wait4`` on that child alone. Every
command must succeed and write its outputs, or the benchmark fails.

Sizes: ``--scale-sizes 1M,10M`` on ``python -m tiercast.benchmarks.bench_scale`` or the ``TIERCAST_SCALE_SIZES``
environment variable (read by ``make bench`` too); default 1M, 10M and 30M transactions. ``--commands features``
measures only those commands beside the query; ``--merge`` merges that into the ``scale.json`` already in ``--out``
(:mod:`tiercast.benchmarks.scale_merge`). A log-log plot of time against size is written next to the result.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from tiercast.benchmarks.bench_features import reference_sql
from tiercast.benchmarks.synthetic import SPAN_DAYS, START, write_transactions
from tiercast.features.contract import AMOUNT, CATEGORY, CHANNEL, CUSTOMER_ID, ORDER_ID, PRODUCT_ID, QUANTITY, TIMESTAMP

DEFAULT_SIZES: tuple[int, ...] = (1_000_000, 10_000_000, 30_000_000)
SIZES_ENV = "TIERCAST_SCALE_SIZES"
COMMANDS: tuple[str, ...] = ("validate", "features", "run", "score")
QUERY = "query"

#: What the targets ask: ``run`` at 10M within 5 minutes and 6 GB, ``score`` at 10M within a minute, and 30M within
#: 3.5 times the 10M time (cost growing linearly); ``features`` at 10M within twice the hand-written query's wall
#: time of the same run, and under 2 GB.
TARGETS: dict[str, float] = {
    "size": 10_000_000,
    "run_seconds_max": 300.0,
    "run_peak_gb_max": 6.0,
    "score_seconds_max": 60.0,
    "growth_size": 30_000_000,
    "growth_ratio_max": 3.5,
    "features_query_ratio_max": 2.0,
    "features_peak_gb_max": 2.0,
}

_SUFFIX = {"": 1, "k": 1_000, "m": 1_000_000}


def parse_size(text: str) -> int:
    """``"30M"``, ``"20k"`` or ``"1000000"`` as a number of transactions."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 1M, 20k, 500000)")
    n = int(float(m[1]) * _SUFFIX[m[2].lower()])
    if n < 1_000:
        raise ValueError(f"size {text!r}: at least 1,000 transactions")
    return n


def parse_sizes(text: str | None) -> tuple[int, ...]:
    """Comma-separated sizes (``"1M,10M"``), ascending; the default sizes when ``text`` is empty."""
    if not text or not text.strip():
        return DEFAULT_SIZES
    return tuple(sorted({parse_size(part) for part in text.split(",") if part.strip()}))


def label(n: int) -> str:
    """A size as people write it: 20k, 1M, 2.5M."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:g}M"
    return f"{n / 1_000:g}k"


# --------------------------------------------------------------------------------------------------------------------
# One measured child process
# --------------------------------------------------------------------------------------------------------------------


def measure(cmd: Sequence[str], *, cwd: Path, log: Path) -> dict:
    """Run ``cmd`` in a fresh process (output to ``log``) and return its wall time, CPU time and peak memory.

    ``os.wait4`` gives the resource usage of that child alone (with the children it waited for), so a
    measurement never carries the peak of an earlier, larger one. Raises RuntimeError when the command fails."""
    load_before = os.getloadavg()
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{tail}")
    return {
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: kilobytes
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


# --------------------------------------------------------------------------------------------------------------------
# The config a user would write for the synthetic file
# --------------------------------------------------------------------------------------------------------------------


def data_end() -> str:
    """The day after the synthetic period (the scoring and feature cutoff)."""
    return str(START.astype("datetime64[D]") + SPAN_DAYS)


def write_config(data: Path, work: Path) -> Path:
    """A config for the synthetic Parquet file: its columns mapped one to one, outputs, quarantine and the MLflow
    store inside ``work``; a run date at the data end, so no row is in the future."""
    columns = (CUSTOMER_ID, TIMESTAMP, AMOUNT, ORDER_ID, QUANTITY, PRODUCT_ID, CATEGORY, CHANNEL)
    config = {
        "base": "default",
        "data": {
            "transactions": {"path": str(data.resolve()), "columns": {c: c for c in columns}},
            "quarantine_path": str(work / "out" / "quarantine.parquet"),
            "run_date": data_end(),
        },
        "outputs": {"dir": str(work / "out")},
        "mlflow": {"tracking_uri": f"sqlite:///{(work / 'mlflow.db').resolve()}"},
    }
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def tiercast_cli() -> list[str]:
    """The installed ``tiercast`` command (next to this interpreter), as a user runs it."""
    exe = Path(sys.executable).with_name("tiercast")
    if not exe.is_file():
        raise RuntimeError(f"the tiercast command is not installed next to {sys.executable}")
    return [str(exe)]


def command_lines(config: Path, work: Path) -> dict[str, list[str]]:
    """The command line of each measured step (the query runs the reference SQL in a fresh interpreter)."""
    cli, cfg = tiercast_cli(), ["--config", str(config)]
    return {
        "validate": [*cli, "validate", *cfg],
        "features": [*cli, "features", *cfg, "--cutoff", data_end(), "--out", str(work / "out" / "features.parquet")],
        "run": [*cli, "run", *cfg],
        "score": [
            *cli,
            "score",
            *cfg,
            "--model",
            "models:/tiercast@champion",
            "--out",
            str(work / "out" / "scored.parquet"),
        ],
    }


def query_line(data: Path, work: Path) -> list[str]:
    """The hand-written DuckDB feature query over the file, collected to pandas and written, in a fresh Python."""
    sql = work / "reference.sql"
    sql.write_text(reference_sql(data.resolve(), cutoff=data_end()), encoding="utf-8")
    code = (
        "import sys, duckdb; "
        "df = duckdb.connect().sql(open(sys.argv[1]).read()).to_arrow_table().to_pandas(); "
        "df.to_parquet(sys.argv[2])"
    )
    return [sys.executable, "-c", code, str(sql), str(work / "out" / "reference.parquet")]


#: Outputs each command must leave (relative to the work folder).
OUTPUTS: dict[str, tuple[str, ...]] = {
    "validate": ("out/quarantine.parquet",),
    "features": ("out/features.parquet",),
    "run": ("out/scores.parquet", "out/at_risk.csv", "out/drift.csv"),
    "score": ("out/scored.parquet",),
    QUERY: ("out/reference.parquet",),
}


def _rows(path: Path) -> int | None:
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    with open(path, "rb") as fh:
        return max(sum(1 for _ in fh) - 1, 0)


def check_outputs(step: str, work: Path) -> dict[str, int | None]:
    """Rows of each output ``step`` must write; RuntimeError when one is missing."""
    found = {}
    for rel in OUTPUTS.get(step, ()):
        path = work / rel
        if not path.is_file():
            raise RuntimeError(f"{step} wrote no {rel}")
        found[rel.removeprefix("out/")] = _rows(path)
    return found


# --------------------------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleOptions:
    sizes: tuple[int, ...] = DEFAULT_SIZES
    data_dir: Path = Path("benchmarks/data")
    seed: int = 0
    commands: tuple[str, ...] = COMMANDS


def data_file(data_dir: Path, n: int, seed: int = 0) -> Path:
    """The synthetic file of ``n`` transactions (``n // 10`` customers), generated on first use.

    Generated in a spawned process: a child's ``ru_maxrss`` starts from its parent's high-water mark (Linux keeps
    it across exec), so generating in this process would raise every later command's measured peak memory."""
    path = data_dir / f"synthetic_{n}_{max(1, n // 10)}_s{seed}.parquet"
    if not path.exists():
        proc = multiprocessing.get_context("spawn").Process(
            target=write_transactions, args=(path, n, max(1, n // 10), seed)
        )
        proc.start()
        proc.join()
        if proc.exitcode != 0 or not path.exists():
            raise RuntimeError(f"generating {path} failed (exit code {proc.exitcode})")
    return path


def run_size(
    n: int, opts: ScaleOptions, *, work: Path, progress: Callable[[str], None] = lambda s: None
) -> dict[str, object]:
    """The query, then every command, at one size (in that order: the query's time is taken next to ``validate``
    and ``features``, whose ratios to it are the targets, so a change of the machine's load during the long ``run``
    does not enter them; ``score`` needs ``run``'s champion)."""
    data = data_file(opts.data_dir, n, opts.seed)
    work.mkdir(parents=True, exist_ok=True)
    (work / "out").mkdir(exist_ok=True)
    config = write_config(data, work)
    lines = {**command_lines(config, work), QUERY: query_line(data, work)}
    result: dict[str, object] = {
        "transactions": pq.ParquetFile(data).metadata.num_rows,
        "customers": max(1, n // 10),
        "path": str(data),
    }
    for step in (QUERY, *opts.commands):
        progress(f"{label(n)} {step} ...")
        m = measure(lines[step], cwd=work, log=work / f"{step}.log")
        m["outputs"] = check_outputs(step, work)
        result[step] = m
        progress(f"{label(n)} {step}: {m['wall_seconds']:.1f} s wall, {m['peak_rss_mb'] / 1024:.2f} GB")
    return result


def run(opts: ScaleOptions, *, work_dir: Path | None = None, progress: Callable[[str], None] = lambda s: None) -> dict:
    """The benchmark at every size; the result document (JSON-ready)."""
    sizes: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="tiercast-scale-", dir=work_dir) as tmp:
        for n in opts.sizes:
            sizes.append(run_size(n, opts, work=Path(tmp) / label(n), progress=progress))
    return {
        "sizes": sizes,
        "commands": list(opts.commands),
        "reference": "hand-written DuckDB feature query (benchmarks/bench_features.py), collected to pandas",
        "targets": TARGETS,
        "uptime": _output(["uptime"]),
        "git_commit": _output(["git", "rev-parse", "HEAD"]),
    }


def _output(cmd: list[str]) -> str | None:
    """What ``cmd`` prints (``uptime``; ``git rev-parse HEAD``, the commit measured), None when it cannot run."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip() or None
    except OSError:
        return None


# --------------------------------------------------------------------------------------------------------------------
# Targets and plot, from the numbers
# --------------------------------------------------------------------------------------------------------------------


def _at(result: dict, n: float) -> dict | None:
    return next((s for s in result["sizes"] if s["transactions"] == n), None)


def targets_met(result: dict) -> list[tuple[str, bool | None, str]]:
    """(target, met / missed / None when not measured, the measured figure) for each target."""
    t = {**TARGETS, **result.get("targets", {})}
    at, grown = _at(result, t["size"]), _at(result, t["growth_size"])
    size, big = label(int(t["size"])), label(int(t["growth_size"]))
    out: list[tuple[str, bool | None, str]] = []

    def add(name: str, got: float | None, limit: float, unit: str) -> None:
        if got is None:
            out.append((name, None, "not measured"))
        else:
            out.append((name, got <= limit, f"{got:,.1f} {unit}"))

    run_ = at.get("run") if at else None
    score = at.get("score") if at else None
    add(f"`run` at {size} within {t['run_seconds_max']:.0f} s", run_ and run_["wall_seconds"],
        t["run_seconds_max"], "s")  # fmt: skip
    add(f"`run` at {size} within {t['run_peak_gb_max']:.0f} GB", run_ and run_["peak_rss_mb"] / 1024,
        t["run_peak_gb_max"], "GB")  # fmt: skip
    add(f"`score` at {size} within {t['score_seconds_max']:.0f} s", score and score["wall_seconds"],
        t["score_seconds_max"], "s")  # fmt: skip
    growth = None
    if run_ and grown and grown.get("run"):
        growth = grown["run"]["wall_seconds"] / run_["wall_seconds"]
    add(f"`run` at {big} within {t['growth_ratio_max']:g}x its {size} time", growth, t["growth_ratio_max"], "x")
    if "features_query_ratio_max" in t:
        feats, query = (at.get("features"), at.get(QUERY)) if at else (None, None)
        ratio = feats["wall_seconds"] / query["wall_seconds"] if feats and query else None
        limit = t["features_query_ratio_max"]
        add(f"`features` at {size} within {limit:g}x the query's time", ratio, limit, "x")
        add(f"`features` at {size} under {t['features_peak_gb_max']:g} GB", feats and feats["peak_rss_mb"] / 1024,
            t["features_peak_gb_max"], "GB")  # fmt: skip
    return out


def plot(result: dict, path: Path) -> Path:
    """Wall time against transactions, log-log, one line per command and the query; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    steps = [*result["commands"], QUERY]
    for step in steps:
        pts = [(s["transactions"], s[step]["wall_seconds"]) for s in result["sizes"] if step in s]
        if pts:
            xs, ys = zip(*pts, strict=True)
            style = {"linestyle": "--", "color": "black"} if step == QUERY else {}
            ax.plot(xs, ys, marker="o", label="hand-written query" if step == QUERY else f"tiercast {step}", **style)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("transactions (customers = transactions / 10)")
    ax.set_ylabel("wall time, s")
    ax.set_title("tiercast commands against data size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The scale benchmark alone; writes scale.json and scale.png.")
    parser.add_argument("--scale-sizes", default=os.environ.get(SIZES_ENV), help="e.g. 1M,10M (default 1M,10M,30M)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--data-dir", type=Path, default=Path("benchmarks/data"))
    parser.add_argument(
        "--commands",
        default=",".join(COMMANDS),
        help="the commands to measure beside the query, e.g. features for a quick look (default: all; the results "
        "of a partial run leave the other targets unmeasured)",
    )
    parser.add_argument("--merge", action="store_true", help="merge into OUT/scale.json (benchmarks/scale_merge.py)")
    args = parser.parse_args(argv)
    commands = tuple(c.strip() for c in args.commands.split(",") if c.strip())
    unknown = sorted(set(commands) - set(COMMANDS))
    if unknown:
        parser.error(f"unknown commands {unknown}; choose from {', '.join(COMMANDS)}")
    if "score" in commands and "run" not in commands:
        parser.error("score needs run (it scores with the champion run registers)")
    opts = ScaleOptions(sizes=parse_sizes(args.scale_sizes), data_dir=args.data_dir, commands=commands)
    from tiercast.benchmarks.run import machine_info  # here: run.py imports this module

    started, machine = time.strftime("%Y-%m-%dT%H:%M:%S"), machine_info()  # the machine's state at the start
    result = run(opts, progress=lambda s: print(s, file=sys.stderr, flush=True))
    result = {"benchmark": "scale", "started": started, **result, "machine": machine}
    if args.merge:
        from tiercast.benchmarks.scale_merge import merge_into

        result = merge_into(args.out / "scale.json", result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / "scale.png")
    print(args.out / "scale.json")


if __name__ == "__main__":
    main()
