"""The CLI with ``--engine spark``: run (train on Spark-built features, score), score with the model's spark_udf
into a partitioned folder, backtest, and get what the DuckDB path gives (with the same registered model)."""

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tiercast.features.contract import SCORE_COLUMNS
from tiercast.pipeline.cli import app

pytestmark = pytest.mark.spark
ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "data" / "online_retail_ii" / "online_retail_ii.parquet"
runner = CliRunner()


@pytest.fixture(scope="module")
def project(spark_con, spark_engine, tmp_path_factory):
    """A config over about 200 Online Retail II customers, with the test session's Spark settings."""
    tmp = tmp_path_factory.mktemp("spark-cli")
    raw = pd.read_parquet(BUNDLED)
    ids = raw["Customer ID"].dropna().drop_duplicates().sort_values()
    raw[raw["Customer ID"].isin(ids.iloc[::23])].to_parquet(tmp / "sample.parquet", index=False)
    engine = spark_engine.model_dump(mode="json", exclude_none=True)
    engine["kind"] = "duckdb"  # the --engine flag switches it
    cfg = {
        "base": str(ROOT / "configs" / "online_retail_ii.yaml"),
        "data": {
            "transactions": {"path": str(tmp / "sample.parquet")},
            "quarantine_path": str(tmp / "out" / "quarantine.parquet"),
        },
        # few cutoffs (each a Spark query): what is compared is the engines' results, not the cutoff plan. Steps of
        # one horizon: the validation cutoff's earlier training cutoff is the other one (30-day steps need 4).
        "cutoffs": {"n_train": 2, "n_validation": 1, "span_year": False, "step_days": 90},
        "models": {"n_estimators": 60, "early_stopping_rounds": 10, "param_grid": "none"},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}"},
        "engine": engine,
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    mp = pytest.MonkeyPatch()
    mp.chdir(tmp)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield tmp, path
    mp.undo()


def _with_outputs(cfg: Path, out: Path) -> Path:
    """A copy of the config writing its outputs and quarantine under ``out``."""
    raw = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    raw["outputs"] = {"dir": str(out)}
    raw["data"]["quarantine_path"] = str(out / "quarantine.parquet")
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _same_frames(a: pd.DataFrame, b: pd.DataFrame, key: list[str]) -> None:
    a = a.sort_values(key).reset_index(drop=True)
    b = b.sort_values(key).reset_index(drop=True)
    assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
    for col in a.columns:
        if pd.api.types.is_float_dtype(a[col]):
            pd.testing.assert_series_equal(a[col], b[col], check_dtype=False, rtol=1e-9, atol=1e-9)
        else:
            assert a[col].astype(str).tolist() == b[col].astype(str).tolist(), col


@pytest.fixture(scope="module")
def runs(project):
    """`tiercast run` on Spark (training on Spark-built features, then scoring), then on DuckDB, each writing its
    outputs in its own folder: engine -> that folder."""
    tmp, cfg = project
    folders = {}
    for engine in ("spark", "duckdb"):
        out = tmp / f"run_{engine}"
        result = runner.invoke(app, ["run", "--config", str(_with_outputs(cfg, out)), "--engine", engine])
        assert result.exit_code == 0, result.output + repr(result.exception)
        folders[engine] = out
    return folders


def test_run_on_spark_gives_the_duckdb_scores(runs):
    scores = {}
    for engine, out in runs.items():
        assert (out / "at_risk.csv").is_file() and (out / "drift.csv").is_file()
        scores[engine] = pd.read_parquet(out / "scores.parquet")
    cols = ["customer_id", *SCORE_COLUMNS]  # not model_version: each run registers its own
    _same_frames(scores["spark"][cols], scores["duckdb"][cols], ["customer_id"])


def test_score_on_spark_with_the_spark_trained_model_matches_the_duckdb_path(project, runs):
    """The model the Spark run trained and registered, scored by its spark_udf into a partitioned folder and by
    the local scorer: the same scores, and the same at-risk list read from the partition folder as from the file."""
    tmp, cfg = project
    (version,) = pd.read_parquet(runs["spark"] / "scores.parquet")["model_version"].astype(str).unique()
    model = f"models:/tiercast/{version}"
    cutoff = "2010-12-10"
    folder = tmp / "scores_spark"
    args = ["score", "--config", str(cfg), "--model", model, "--cutoff", cutoff]
    result = runner.invoke(app, [*args, "--engine", "spark", "--out", str(folder)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    partition = folder / f"cutoff_date={cutoff}"
    assert partition.is_dir() and any(partition.glob("*.parquet"))
    on_spark = pd.read_parquet(partition).sort_values("customer_id").reset_index(drop=True)

    local_out = tmp / "scores_local.parquet"
    result = runner.invoke(app, [*args, "--out", str(local_out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    local = pd.read_parquet(local_out).sort_values("customer_id").reset_index(drop=True)

    assert on_spark["customer_id"].tolist() == local["customer_id"].tolist()
    for col in SCORE_COLUMNS:
        if pd.api.types.is_float_dtype(local[col]):
            pd.testing.assert_series_equal(on_spark[col], local[col], check_dtype=False, rtol=1e-9, atol=1e-9)
        else:
            assert on_spark[col].astype(str).tolist() == local[col].astype(str).tolist(), col

    lists = {}  # `tiercast at-risk` reads the partition Spark wrote (part files, _SUCCESS, .crc) as the local file
    for name, scores in (("spark", partition), ("local", local_out)):
        result = runner.invoke(app, ["at-risk", "--scores", str(scores), "--out", str(tmp / f"at_risk_{name}.csv")])
        assert result.exit_code == 0, result.output + repr(result.exception)
        lists[name] = pd.read_csv(tmp / f"at_risk_{name}.csv")
    assert list(lists["spark"].columns) == list(lists["local"].columns)
    assert lists["spark"]["customer_id"].tolist() == lists["local"]["customer_id"].tolist() != []


def test_backtest_on_spark_gives_the_duckdb_predictions(project):
    tmp, cfg = project
    preds = {}
    for engine in ("spark", "duckdb"):
        path = tmp / f"backtest_{engine}.parquet"
        args = ["backtest", "--config", str(cfg), "--engine", engine, "--n-tests", "1", "--n-boot", "0"]
        result = runner.invoke(app, [*args, "--predictions", str(path)])
        assert result.exit_code == 0, result.output + repr(result.exception)
        preds[engine] = pd.read_parquet(path)
    _same_frames(preds["spark"], preds["duckdb"], ["cutoff", "method", "customer_id"])
