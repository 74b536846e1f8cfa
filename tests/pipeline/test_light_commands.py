"""The commands that need no model (at-risk on scores with their horizon, validate) start without importing MLflow,
scikit-learn or LightGBM: on a slow machine those imports alone took 6-7 s of `at-risk`'s 9 s."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("mlflow", "sklearn", "lightgbm")

# Runs one command line as `tiercast` does and prints the heavy modules it imported, as JSON.
_PROBE = """
import json, sys
from tiercast.pipeline.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def _heavy_imports(*args: str, cwd: Path) -> list[str]:
    probe = _PROBE.format(heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", probe, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "current_tier": ["platinum", "gold", "lead", "gold"],
            "predicted_tier": ["platinum", "lead", "lead", "gold"],
            "predicted_value": [900.0, 300.0, 50.0, 800.0],
            "churn_probability": [0.6, 0.8, 0.9, 0.1],
            "value_at_risk": [540.0, 240.0, 45.0, 80.0],
            "current_value": [1000.0, 400.0, 0.0, 500.0],
            "churn_band": ["medium", "high", "high", "low"],
            "horizon_days": [90] * 4,
            "model_name": ["tiercast"] * 4,
            "model_version": ["1"] * 4,
            "cutoff": pd.to_datetime(["2011-01-01"] * 4),
        }
    )


def test_at_risk_on_scores_imports_no_model_library(tmp_path):
    """Also: without a config the list covers the top tiers as `run` lists them, never the lowest (lead: c)."""
    _scores().to_parquet(tmp_path / "scores.parquet", index=False)
    assert _heavy_imports("at-risk", "--scores", "scores.parquet", "--out", "list.csv", cwd=tmp_path) == []
    listed = pd.read_csv(tmp_path / "list.csv")
    assert listed["customer_id"].tolist() == ["a", "b"] and listed["horizon_days"].tolist() == [90, 90]


def test_validate_imports_no_model_library(tmp_path):
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "timestamp": ["2011-01-03", "2011-02-03", "2011-01-05"],
            "order_id": ["1", "2", "3"],
            "amount": [10.0, 12.5, 7.0],
        }
    )
    tx.to_csv(tmp_path / "tx.csv", index=False)
    config = {"data": {"transactions": {"path": "tx.csv"}, "quarantine_path": "quarantine.parquet"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert _heavy_imports("validate", "--config", "config.yaml", cwd=tmp_path) == []
