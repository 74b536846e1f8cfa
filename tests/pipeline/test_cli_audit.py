"""Command-line defects found by reading the docs against the code: object-store URIs given as ``--out`` on Spark,
a folder of Parquet parts as ``at-risk --scores``, ``--predictions`` checked when the command line is read and
written only with the other outputs, and ``at-risk --run-date``."""

from __future__ import annotations

import errno
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.pipeline.cli_harness import assert_clean_failure, invoke, snapshot, temporaries
from tests.pipeline.test_cli_errors import retail_sample, small_config
from tests.pipeline.test_loader import _csv, _write_config
from tiercast.features.contract import (
    CHURN_BAND,
    CHURN_PROBABILITY,
    CURRENT_TIER,
    CUSTOMER_ID,
    CUTOFF,
    MODEL_NAME,
    MODEL_VERSION,
    PREDICTED_TIER,
    PREDICTED_VALUE,
    REASON_COLUMNS,
    TIMESTAMP,
    VALUE_AT_RISK,
)


def _scores(n: int = 40, cutoff: str = "2010-12-10", ids: list[str] | None = None) -> pd.DataFrame:
    """A scores frame as `tiercast score` writes it (the pyramid tiers, the default churn bands)."""
    rng = np.random.default_rng(0)
    ids = ids or [f"c{i:03d}" for i in range(n)]
    tiers = np.array(["platinum", "gold", "iron", "lead"])[np.arange(len(ids)) % 4]
    churn = rng.uniform(0, 1, len(ids))
    value = rng.uniform(10, 500, len(ids))
    return pd.DataFrame(
        {
            CUSTOMER_ID: ids,
            CURRENT_TIER: tiers,
            PREDICTED_TIER: tiers,
            PREDICTED_VALUE: value,
            CHURN_PROBABILITY: churn,
            VALUE_AT_RISK: value * churn,
            "current_value": value / 2,
            CHURN_BAND: np.where(churn >= 0.7, "high", np.where(churn >= 0.4, "medium", "low")),
            MODEL_NAME: "tiercast",
            MODEL_VERSION: "1",
            CUTOFF: pd.Timestamp(cutoff),
            "horizon_days": 90,
        }
    )


# ------------------------------------------------------------------------------ --out URIs (Spark only)


@pytest.fixture
def spark_stubs(tmp_path, monkeypatch) -> dict[str, object]:
    """The Spark writers of `features` and `score` and the data and model loading stubbed: what each writer was
    given lands in the returned dict (no Spark session needed)."""
    import tiercast.pipeline.cli.data as data_cli
    import tiercast.pipeline.cli.jobs as jobs_cli
    import tiercast.pipeline.engine.writes as writes
    import tiercast.pipeline.jobs.spark_score as spark_score
    import tiercast.pipeline.tracking.runs as runs

    seen: dict[str, object] = {}
    data = types.SimpleNamespace(
        data_start=pd.Timestamp("2009-12-01"),
        data_end=pd.Timestamp("2010-12-10"),
        con=None,
        table=None,
        satisfaction=None,
        engine_satisfaction=lambda: None,
    )
    monkeypatch.setattr(writes, "write_features", lambda con, table, out, **kw: seen.setdefault("features", out))
    monkeypatch.setattr(spark_score, "score_to_folder", lambda con, m, table, out, **kw: seen.setdefault("score", out))
    scheme = types.SimpleNamespace(names_=["platinum", "gold", "iron", "lead"])  # the config's tiers
    model = types.SimpleNamespace(name="tiercast", version="1", scorer=types.SimpleNamespace(scheme=scheme))
    monkeypatch.setattr(spark_score, "resolve_spark_model", lambda uri: model)
    monkeypatch.setattr(runs, "setup_mlflow", lambda cfg, create=True: "0")
    monkeypatch.setattr(data_cli, "load_data", lambda cfg, run_date=None: data)
    monkeypatch.setattr(jobs_cli, "load_data", lambda cfg, run_date=None: data)
    monkeypatch.setattr(jobs_cli, "warn_if_trained_past", lambda *a: None)
    spec = types.SimpleNamespace(windows_days=(30,), horizon_days=90)
    monkeypatch.setattr(jobs_cli, "_model_features", lambda cfg, scorer: spec)
    small_config(tmp_path, tmp_path / "never_read.parquet")
    return seen


@pytest.mark.parametrize("uri", ["s3a://lake/tiercast/out", "hdfs://namenode:8020/lake/out/", "gs://b/x"])
def test_a_uri_out_reaches_the_spark_writer_as_typed(tmp_path, spark_stubs, uri):
    features = ("features", "--config", "config.yaml", "--engine", "spark", "--cutoff", "2010-06-01", "--out", uri)
    result = invoke(*features, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert spark_stubs["features"] == uri
    score = ("score", "--config", "config.yaml", "--engine", "spark", "--model", "models:/tiercast@champion")
    result = invoke(*score, "--cutoff", "2010-12-10", "--out", uri, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert spark_stubs["score"] == uri
    assert not any(tmp_path.glob("*:*")), "a URI was written as a local path"


@pytest.mark.parametrize(
    "args",
    [
        ("features", "--config", "config.yaml", "--cutoff", "2010-06-01"),
        ("score", "--config", "config.yaml", "--model", "models:/tiercast@champion"),
    ],
    ids=["features", "score"],
)
def test_a_uri_out_on_duckdb_is_one_line_before_any_work(tmp_path, args):
    small_config(tmp_path, retail_sample(tmp_path / "sample.parquet", every=23))
    before = snapshot(tmp_path)
    result = invoke(*args, "--out", "s3a://lake/tiercast/f.parquet", cwd=tmp_path)
    assert_clean_failure(result, "--out s3a://lake/tiercast/f.parquet", "--engine spark")
    assert snapshot(tmp_path) == before and not (tmp_path / "s3a:").exists()


# ---------------------------------------------------------------------- at-risk --scores: a folder of parts


def _parts(folder: Path, frame: pd.DataFrame, n: int = 2) -> Path:
    """``frame`` written as ``n`` Parquet parts in ``folder``, with the bookkeeping files Spark leaves beside them."""
    folder.mkdir(parents=True)
    for i, part in enumerate(np.array_split(np.arange(len(frame)), n)):
        frame.iloc[part].to_parquet(folder / f"part-{i:05d}.snappy.parquet", index=False)
        (folder / f".part-{i:05d}.snappy.parquet.crc").write_bytes(b"crc")
    (folder / "_SUCCESS").write_bytes(b"")
    return folder


def test_at_risk_reads_a_partition_folder_as_the_file_of_the_same_rows(tmp_path):
    scores = _scores()
    scores.to_parquet(tmp_path / "scores.parquet", index=False)
    folder = _parts(tmp_path / "scores" / "cutoff_date=2010-12-10", scores)
    for name, given in (("file.csv", "scores.parquet"), ("folder.csv", str(folder.relative_to(tmp_path)))):
        result = invoke("at-risk", "--scores", given, "--out", name, cwd=tmp_path)
        assert result.code == 0, result.stderr
    from_file, from_folder = pd.read_csv(tmp_path / "file.csv"), pd.read_csv(tmp_path / "folder.csv")
    assert len(from_folder) > 0
    pd.testing.assert_frame_equal(from_folder, from_file)


@pytest.mark.parametrize("case", ["empty", "text", "not_scores", "two_cutoffs"])
def test_a_scores_folder_that_is_not_one_partition_of_scores_is_one_line(tmp_path, case):
    folder = tmp_path / "scores"
    needles = {
        "empty": "a folder without Parquet files",
        "text": "not a folder of Parquet files",
        "not_scores": "missing columns",
        "two_cutoffs": "holds the scores of 2 cutoffs",
    }[case]
    if case == "empty":
        folder.mkdir()
        (folder / "_SUCCESS").write_bytes(b"")
    elif case == "text":
        folder.mkdir()
        (folder / "part-0.txt").write_text("customer_id,current_tier\n")
    elif case == "not_scores":
        _parts(folder, pd.DataFrame({"x": [1, 2, 3]}))
    else:
        _parts(folder / "cutoff_date=2010-09-10", _scores(cutoff="2010-09-10"), n=1)
        _parts(folder / "cutoff_date=2010-12-10", _scores(), n=1)
    result = invoke("at-risk", "--scores", "scores", "--out", "list.csv", cwd=tmp_path)
    assert_clean_failure(result, "--scores scores", needles)
    assert not (tmp_path / "list.csv").exists()


# -------------------------------------------------------------- --predictions: checked first, written last


@pytest.mark.parametrize(
    ("given", "needles"),
    [
        ("outputs", ("--predictions", "outputs is a folder")),
        ("afile/p.parquet", ("--predictions afile: is a file",)),
        ("preds.csv", ("--predictions", "written as Parquet; give it a .parquet name")),
    ],
    ids=["folder", "through_a_file", "not_a_parquet_name"],
)
def test_an_unwritable_backtest_predictions_is_refused_before_any_work(tmp_path, given, needles):
    small_config(tmp_path, retail_sample(tmp_path / "sample.parquet", every=23))
    (tmp_path / "outputs").mkdir()
    (tmp_path / "afile").write_text("a file")
    (tmp_path / "table.csv").write_text("OLD\n")
    args = ("backtest", "--config", "config.yaml", "--n-tests", "1", "--n-boot", "0", "--out", "table.csv")
    result = invoke(*args, "--predictions", given, cwd=tmp_path)
    assert_clean_failure(result, *needles)
    assert "reading" not in result.stderr  # refused before the data were read
    assert (tmp_path / "table.csv").read_text() == "OLD\n"
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "out").exists()


def test_a_folder_as_benchmark_predictions_is_refused_before_any_work(tmp_path):
    (tmp_path / "outputs").mkdir()
    result = invoke("benchmark", "cdnow", "--data", "missing.txt", "--predictions", "outputs", cwd=tmp_path)
    assert_clean_failure(result, "--predictions", "outputs is a folder")


def test_backtest_replaces_no_output_and_logs_no_run_when_one_output_cannot_be_written(tmp_path, monkeypatch):
    """The predictions fail to write (a full disk): the table file keeps its content and no MLflow run is logged."""
    import tiercast.pipeline.cli.jobs as jobs_cli
    import tiercast.pipeline.jobs.backtest as backtest_job
    import tiercast.pipeline.jobs.predictions as predictions_job

    logged = []

    def full_disk(frame: pd.DataFrame, path: Path) -> Path:
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    table = pd.DataFrame({"test_cutoff": pd.Series(dtype="datetime64[ns]"), "method": pd.Series(dtype="str")})
    monkeypatch.setattr(jobs_cli, "load_data", lambda cfg, run_date=None: None)
    monkeypatch.setattr(backtest_job, "run_backtest", lambda *a, **kw: (table, pd.DataFrame()))
    monkeypatch.setattr(backtest_job, "log_backtest", lambda *a: logged.append(a) or "run")
    monkeypatch.setattr(predictions_job, "write_predictions", full_disk)
    small_config(tmp_path, tmp_path / "never_read.parquet")
    (tmp_path / "table.csv").write_text("OLD\n")
    args = ("backtest", "--config", "config.yaml", "--out", "table.csv", "--predictions", "preds.parquet")
    assert_clean_failure(invoke(*args, cwd=tmp_path), "preds.parquet: no space left")
    assert (tmp_path / "table.csv").read_text() == "OLD\n"
    assert not (tmp_path / "preds.parquet").exists() and temporaries(tmp_path) == []
    assert logged == []


# ---------------------------------------------------------------------------------------- at-risk --run-date


def _dated_project(tmp_path: Path) -> Path:
    """A config over five dated rows of customers a and b, and their scores at 2010-02-01 (listed: platinum, high
    churn)."""
    rows = ["a,2010-01-01,5", "a,2010-01-15,4", "a,2010-03-01,6", "b,2010-01-05,7", "b,2099-01-01,7"]
    _write_config(tmp_path, _csv(tmp_path, rows))
    scores = _scores(ids=["a", "b"], cutoff="2010-02-01")
    scores[[CURRENT_TIER, PREDICTED_TIER, CHURN_BAND]] = ["platinum", "platinum", "high"]
    scores[CHURN_PROBABILITY] = 0.9
    scores.to_parquet(tmp_path / "scores.parquet", index=False)
    return tmp_path


@pytest.mark.parametrize(("run_date", "future_rows"), [(None, 1), ("2010-02-01", 2)])
def test_at_risk_reads_the_data_as_of_its_run_date(tmp_path, monkeypatch, run_date, future_rows):
    """The reasons' data are read as of --run-date: the rows after it are quarantined as future_timestamp."""
    import tiercast.pipeline.jobs.score as score_job
    import tiercast.pipeline.tracking.runs as runs

    read_until = []

    def explain(tx: pd.DataFrame, ids: pd.Series, **kw: object) -> pd.DataFrame:
        read_until.append(tx[TIMESTAMP].max())
        return pd.DataFrame({c: [""] * len(ids) for c in REASON_COLUMNS})

    monkeypatch.setattr(score_job, "explain_customers", explain)
    monkeypatch.setattr(runs, "setup_mlflow", lambda cfg, create=True: "0")
    project = _dated_project(tmp_path)
    flag = ("--run-date", run_date) if run_date else ()
    args = ("at-risk", "--scores", "scores.parquet", "--config", "config.yaml", "--out", "list.csv", *flag)
    result = invoke(*args, cwd=project)
    assert result.code == 0, result.stderr
    quarantine = pd.read_parquet(project / "out" / "quarantine.parquet")
    assert quarantine["reason"].tolist() == ["future_timestamp"] * future_rows
    assert read_until == [pd.Timestamp("2010-01-15" if run_date else "2010-03-01")]
    assert len(pd.read_csv(project / "list.csv")) == 2


def test_at_risk_run_date_without_a_config_is_one_line(tmp_path):
    _scores().to_parquet(tmp_path / "scores.parquet", index=False)
    result = invoke("at-risk", "--scores", "scores.parquet", "--run-date", "2010-02-01", cwd=tmp_path)
    assert_clean_failure(result, "--run-date needs --config")
    assert not (tmp_path / "outputs").exists()


RUN_DATE_COMMANDS = [
    ("validate",),
    ("features", "--cutoff", "2010-06-01"),
    ("train",),
    ("run",),
    ("score",),
    ("monitor", "--from", "2010-03", "--to", "2010-04"),
    ("tiers",),
    ("backtest",),
]


@pytest.mark.parametrize("args", RUN_DATE_COMMANDS, ids=[a[0] for a in RUN_DATE_COMMANDS])
def test_a_run_date_that_is_not_a_date_is_one_line_before_any_work(tmp_path, args):
    """``--run-date garbage`` is refused when the command line is read, on every command that has the option."""
    small_config(tmp_path, tmp_path / "never_read.parquet")
    result = invoke(args[0], "--config", "config.yaml", *args[1:], "--run-date", "garbage", cwd=tmp_path)
    assert_clean_failure(result, "--run-date", "'garbage' is not a date")
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("given", "needle"),
    [("2010-03-01", "month must be YYYY-MM, got '2010-03-01'; e.g. 2010-03"), ("2010-13", "not a month: '2010-13'")],
)
def test_a_monitor_month_that_is_not_yyyy_mm_is_one_line_before_any_work(tmp_path, given, needle):
    """``monitor --from`` / ``--to`` are checked when the command line is read: the data is never opened."""
    small_config(tmp_path, tmp_path / "never_read.parquet")
    for args in (("--from", given, "--to", "2010-04"), ("--from", "2010-03", "--to", given)):
        result = invoke("monitor", "--config", "config.yaml", *args, cwd=tmp_path)
        assert_clean_failure(result, f"Invalid value for '{args[0] if args[1] == given else args[2]}'", needle)
        assert not (tmp_path / "out").exists()
