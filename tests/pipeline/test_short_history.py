"""Short histories end to end: six months with a 90-day horizon train and score; shorter is refused in one line."""

from pathlib import Path

import pandas as pd
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from tiercast.pipeline.cli import app

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "data" / "online_retail_ii" / "online_retail_ii.parquet"
runner = CliRunner()


def _write(tmp: Path, first: str, last: str) -> Path:
    """Every 7th customer's invoice lines dated from ``first`` to before ``last`` (Online Retail II)."""
    raw = pd.read_parquet(BUNDLED)
    ids = raw["Customer ID"].dropna().drop_duplicates().sort_values().iloc[::7]
    when = pd.to_datetime(raw["InvoiceDate"])
    part = raw[raw["Customer ID"].isin(ids) & (when >= first) & (when < last)]
    path = tmp / "short.parquet"
    part.to_parquet(path, index=False)
    cfg = {
        "base": str(ROOT / "configs" / "online_retail_ii.yaml"),
        "horizon_days": 90,
        "cutoffs": {"min_history_days": 60},
        "data": {"transactions": {"path": str(path)}, "quarantine_path": str(tmp / "out" / "quarantine.parquet")},
        "models": {"n_estimators": 200, "early_stopping_rounds": 20},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}"},
        "outputs": {"dir": str(tmp / "out"), "at_risk_top": 50},
    }
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return config


def test_six_months_with_a_90_day_horizon_trains_and_scores(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = _write(tmp_path, "2010-06-01", "2010-12-01")
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "notice" in result.output and "no held-out test window" in result.output
    scores = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    assert len(scores) > 100 and scores["churn_probability"].between(0, 1).all()
    run = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").search_runs(["1"])[0]
    # the registered model's newest label window ends at the data end (the last invoice is on 2010-11-30)
    assert run.data.params["production.train_cutoffs"].split(",")[-1] == "2010-09-02"
    assert run.data.params["production.btyd_cutoff"] == "2010-12-01"


def test_too_short_history_exits_2_naming_the_length_needed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _write(tmp_path, "2010-09-01", "2010-12-01")
    result = runner.invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "needs at least 150 days" in lines[0], result.output
