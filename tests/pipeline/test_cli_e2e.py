"""The CLI end to end on a small sample of the bundled Online Retail II data."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from tiercast.models.scorer import SCORE_COLUMNS
from tiercast.pipeline.cli import app

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "data" / "online_retail_ii" / "online_retail_ii.parquet"
runner = CliRunner()


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """About 400 customers' invoice lines plus some lines without a customer id, as a Parquet file."""
    raw = pd.read_parquet(BUNDLED)
    ids = raw["Customer ID"].dropna().drop_duplicates().sort_values()
    keep = ids.iloc[::11]
    part = pd.concat([raw[raw["Customer ID"].isin(keep)], raw[raw["Customer ID"].isna()].head(500)])
    path = tmp_path_factory.mktemp("data") / "sample.parquet"
    part.sort_index().to_parquet(path, index=False)
    return path


def _config(tmp: Path, data: Path) -> Path:
    cfg = {
        "base": str(ROOT / "configs" / "online_retail_ii.yaml"),
        "data": {"transactions": {"path": str(data)}, "quarantine_path": str(tmp / "out" / "quarantine.parquet")},
        "cutoffs": {"n_train": 4},
        "models": {"n_estimators": 300, "early_stopping_rounds": 30},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}"},
        "outputs": {"dir": str(tmp / "out"), "at_risk_tiers": ["platinum", "gold"], "at_risk_top": 50},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def demo_run(sample, tmp_path_factory, monkeypatch_module):
    tmp = tmp_path_factory.mktemp("run")
    monkeypatch_module.chdir(tmp)  # the artifact folder of the sqlite store lands here
    monkeypatch_module.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = _config(tmp, sample)
    result = runner.invoke(app, ["run", "--config", str(cfg)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return tmp, cfg, result.output


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_run_writes_scores_for_every_customer(demo_run, sample):
    tmp, _, output = demo_run
    scores = pd.read_parquet(tmp / "out" / "scores.parquet")
    raw = pd.read_parquet(sample)
    quarantine = pd.read_parquet(tmp / "out" / "quarantine.parquet")
    accepted_ids = set(
        raw.drop(index=quarantine["source_row"].to_numpy())["Customer ID"].dropna().astype(int).astype(str)
    )
    assert scores["customer_id"].is_unique
    assert set(scores["customer_id"]) == accepted_ids
    assert not scores[list(SCORE_COLUMNS)].isna().any().any()
    assert (scores["value_at_risk"] >= 0).all()
    assert scores["churn_probability"].between(0, 1).all()
    for needle in ("read", "quarantined", "customers", "normalized Gini", "ROC AUC", "scores", "MLflow"):
        assert needle in output


def test_model_version_is_registered(demo_run):
    tmp, _, _ = demo_run
    scores = pd.read_parquet(tmp / "out" / "scores.parquet")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    (version,) = scores["model_version"].unique()
    mv = client.get_model_version(scores["model_name"].iloc[0], version)
    run = client.get_run(mv.run_id)
    assert "test.tiercast.normalized_gini" in run.data.metrics
    assert "test.naive.roc_auc" in run.data.metrics
    assert int(run.data.tags["data.data_rows_read"]) > 0


def test_quarantine_plus_accepted_is_rows_read(demo_run, sample):
    tmp, _, output = demo_run
    quarantine = pd.read_parquet(tmp / "out" / "quarantine.parquet")
    assert len(quarantine) > 0 and quarantine["reason"].notna().all()
    assert (quarantine["reason"] == "missing_customer").sum() >= 500


def test_at_risk_list_is_ranked_within_top_tiers(demo_run):
    tmp, _, _ = demo_run
    ranked = pd.read_csv(tmp / "out" / "at_risk.csv", dtype={"customer_id": str})
    assert 0 < len(ranked) <= 50
    assert set(ranked["current_tier"]) <= {"platinum", "gold"}
    assert np.all(np.diff(ranked["value_at_risk"].to_numpy()) <= 0)
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))


def test_second_run_gives_identical_scores(demo_run):
    tmp, cfg, _ = demo_run
    first = pd.read_parquet(tmp / "out" / "scores.parquet")
    result = runner.invoke(app, ["run", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    second = pd.read_parquet(tmp / "out" / "scores.parquet")
    cols = ["customer_id", *SCORE_COLUMNS, "current_value", "cutoff"]
    pd.testing.assert_frame_equal(first[cols], second[cols])
    assert int(second["model_version"].iloc[0]) == int(first["model_version"].iloc[0]) + 1


def test_score_and_at_risk_commands_reuse_the_registered_model(demo_run):
    tmp, cfg, _ = demo_run
    ref = pd.read_parquet(tmp / "out" / "scores.parquet")
    version = ref["model_version"].iloc[0]
    out = tmp / "rescored.parquet"
    result = runner.invoke(
        app, ["score", "--config", str(cfg), "--model", f"models:/tiercast/{version}", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(pd.read_parquet(out), ref)
    lst = tmp / "list.csv"
    result = runner.invoke(
        app, ["at-risk", "--scores", str(out), "--tiers", "platinum", "--top", "5", "--out", str(lst)]
    )
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(lst)["current_tier"]) <= {"platinum"}


def test_missing_input_file_exits_2_with_one_line(tmp_path):
    cfg = _config(tmp_path, tmp_path / "nope.parquet")
    result = runner.invoke(app, ["validate", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "nope.parquet" in result.output
    assert not (tmp_path / "out" / "quarantine.parquet").exists()
