"""The scale benchmark's plumbing at a tiny size: sizes, the config it writes, one measured child, outputs, targets
computed from the numbers, the plot and the README table (the real commands run only in `make bench`)."""

import json
import sys

import pandas as pd
import pytest

from tiercast.benchmarks import bench_scale
from tiercast.benchmarks.readme import render
from tiercast.pipeline.config import load_config


def test_sizes_parse_with_suffixes_and_default():
    assert bench_scale.parse_sizes("10M, 1M,20k") == (20_000, 1_000_000, 10_000_000)
    assert bench_scale.parse_sizes(None) == bench_scale.DEFAULT_SIZES == (1_000_000, 10_000_000, 30_000_000)
    assert bench_scale.parse_sizes("2.5M") == (2_500_000,)
    assert [bench_scale.label(n) for n in (20_000, 1_000_000, 2_500_000)] == ["20k", "1M", "2.5M"]
    with pytest.raises(ValueError, match="not a size"):
        bench_scale.parse_sizes("lots")


def test_tiny_size_config_query_and_measurement(tmp_path):
    data = bench_scale.data_file(tmp_path / "data", 20_000)
    assert data.name == "synthetic_20000_2000_s0.parquet"
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    config = load_config(bench_scale.write_config(data, work))
    assert config.data.transactions.path == data.resolve()
    assert config.outputs.dir == work / "out"
    assert str(config.data.run_date) == bench_scale.data_end() == "2024-01-01"
    lines = bench_scale.command_lines(work / "config.yaml", work)
    assert lines["run"][1:] == ["run", "--config", str(work / "config.yaml")]
    assert lines["score"][lines["score"].index("--model") + 1] == "models:/tiercast@champion"

    m = bench_scale.measure(bench_scale.query_line(data, work), cwd=work, log=work / "query.log")
    assert m["wall_seconds"] > 0 and m["cpu_seconds"] > 0 and m["peak_rss_mb"] > 10
    assert len(m["load_average_before"]) == 3
    rows = bench_scale.check_outputs(bench_scale.QUERY, work)
    assert rows == {"reference.parquet": len(pd.read_parquet(work / "out" / "reference.parquet"))}
    assert 1_000 < rows["reference.parquet"] <= 2_000
    with pytest.raises(RuntimeError, match="wrote no out/scores.parquet"):
        bench_scale.check_outputs("run", work)


def test_a_failing_command_fails_the_benchmark(tmp_path):
    with pytest.raises(RuntimeError, match="exit code 3"):
        bench_scale.measure([sys.executable, "-c", "raise SystemExit(3)"], cwd=tmp_path, log=tmp_path / "x.log")


def _step(wall: float, gb: float = 1.0, load: float = 2.0) -> dict:
    return {
        "wall_seconds": wall,
        "cpu_seconds": wall * 1.5,
        "peak_rss_mb": gb * 1024,
        "load_average_before": [load, load, load],
        "load_average_after": [load, load, load],
        "outputs": {},
    }


def _result(run_10m: float, run_30m: float | None, score_10m: float = 30.0) -> dict:
    def size(n: int, run: float, score: float) -> dict:
        steps = {"validate": _step(run / 10), "features": _step(run / 20), "run": _step(run, 5.0)}
        return {"transactions": n, "customers": n // 10, **steps, "score": _step(score), "query": _step(run / 100)}

    sizes = [size(1_000_000, run_10m / 10, score_10m / 10), size(10_000_000, run_10m, score_10m)]
    if run_30m is not None:
        sizes.append(size(30_000_000, run_30m, score_10m * 3))
    return {"sizes": sizes, "commands": list(bench_scale.COMMANDS), "targets": bench_scale.TARGETS, "uptime": "up"}


def test_targets_come_from_the_numbers():
    met = {name: ok for name, ok, _ in bench_scale.targets_met(_result(250.0, 800.0))}
    assert list(met.values()) == [True, True, True, True, False, True]  # features: 5x the query
    missed = dict((name, ok) for name, ok, _ in bench_scale.targets_met(_result(320.0, 1200.0, score_10m=61.0)))
    assert list(missed.values()) == [False, True, False, False, False, True]
    unmeasured = bench_scale.targets_met(_result(250.0, None))
    assert unmeasured[3][1] is None and unmeasured[3][2] == "not measured"
    quick = _result(250.0, None)
    quick["sizes"][1]["features"] = _step(5.0, gb=2.5)  # 2x the query (2.5 s), over 2 GB
    got = {name: (ok, figure) for name, ok, figure in bench_scale.targets_met(quick)}
    assert got["`features` at 10M within 2x the query's time"] == (True, "2.0 x")
    assert got["`features` at 10M under 2 GB"] == (False, "2.5 GB")


def test_plot_and_readme_table(tmp_path):
    r = {"benchmark": "scale", "started": "2026-12-04T15:00:00", **_result(250.0, None)}
    r["machine"] = {"cpu_count": 2, "load_average": [2.0, 2.0, 2.0]}
    png = bench_scale.plot(r, tmp_path / "scale.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "scale.json").write_text(json.dumps(r))
    text = render(tmp_path)
    assert "| size | `validate` | `features` | `run` | `score` | query |" in text
    assert "| 10M (1,000,000 customers) | 25.0 / 37.5 / 1.00 GB / 10.0x |" in text
    assert "250.0 / 375.0 / 5.00 GB / 100.0x" in text
    assert "![time against size](benchmarks/results/scale.png)" in text
    assert "`run` at 10M within 300 s: met (250.0 s)" in text
    assert "`run` at 30M within 3.5x its 10M time: not measured" in text


def test_merge_replaces_what_a_partial_run_measured_and_keeps_the_rest(tmp_path):
    from tiercast.benchmarks.scale_merge import merge, merge_into

    full = {**_result(250.0, 800.0), "started": "2026-12-04T03:00:00"}
    partial = {
        "benchmark": "scale",
        "sizes": [{"transactions": 10_000_000, "customers": 1_000_000, "features": _step(4.0), "query": _step(3.0)}],
        "commands": ["features"],
        "uptime": "later",
        "git_commit": "abc",
    }
    merged = merge(full, partial)
    ten = merged["sizes"][1]
    assert ten["features"]["wall_seconds"] == 4.0 and ten["query"]["wall_seconds"] == 3.0  # the new run's pair
    assert ten["run"] == full["sizes"][1]["run"] and merged["sizes"][2] == full["sizes"][2]  # the rest kept
    assert merged["commands"] == list(bench_scale.COMMANDS) and merged["uptime"] == "later"
    assert merged["merged"] == [
        {"git_commit": "abc", "started": None, "uptime": "later", "measured": {"10M": ["query", "features"]}}
    ]
    assert merged["base_started"] == "2026-12-04T03:00:00"
    again = merge(merged, {**partial, "started": "2026-12-06T05:00:00", "git_commit": "def4567890"})
    assert again["base_started"] == "2026-12-04T03:00:00" and len(again["merged"]) == 2  # still the full run's
    from tiercast.benchmarks.readme import SECTIONS

    text = "\n".join(SECTIONS["scale"](again))
    flat = " ".join(text.split())
    # the first merge measured nothing the second did not measure again: only the second is named
    assert "Measured again at def4567 (started 2026-12-06 05:00): 10M (query, features)." in flat
    assert "Measured again at abc" not in flat
    assert "The other figures are from the run started 2026-12-04 03:00." in flat
    every = {**again, "merged": [*again["merged"], {"git_commit": "0123456789", "started": "2026-12-07T01:00:00"}]}
    every["merged"][-1]["measured"] = {label: ["query", *bench_scale.COMMANDS] for label in ("1M", "10M", "30M")}
    flat = " ".join("\n".join(SECTIONS["scale"](every)).split())
    assert "Measured again at 0123456 (started 2026-12-07 01:00): 1M (query, validate" in flat
    assert "def4567" not in flat and "The other figures" not in flat  # nothing left of the full run
    assert full["sizes"][1]["features"]["wall_seconds"] == 12.5  # the inputs are not modified
    path = tmp_path / "scale.json"
    assert merge_into(path, partial) == partial  # nothing to merge into yet
    path.write_text(json.dumps(full))
    assert merge_into(path, partial) == merged
