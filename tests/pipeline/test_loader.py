"""The one transactions loader: run dates, wide amounts, quarantine on failure, satisfaction reaching training."""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tests.models.test_stacking import simulate_transactions
from tiercast.pipeline.cli import app
from tiercast.pipeline.config import load_config
from tiercast.pipeline.ingest.common import InputError
from tiercast.pipeline.ingest.loader import from_ingest, load_transactions, resolve_run_date
from tiercast.pipeline.ingest.rules import IngestResult
from tiercast.pipeline.jobs.train import train

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _write_config(tmp: Path, data: Path, **extra) -> Path:
    cfg = {
        "base": "default",
        "data": {
            "transactions": {"path": str(data), "columns": {"customer_id": "c", "timestamp": "ts", "amount": "amt"}},
            "quarantine_path": str(tmp / "out" / "quarantine.parquet"),
            **extra,
        },
        "mlflow": {"tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}"},
        "outputs": {"dir": str(tmp / "out")},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _csv(tmp: Path, rows: list[str]) -> Path:
    path = tmp / "tx.csv"
    path.write_text("c,ts,amt\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_rows_after_the_run_date_are_quarantined_by_default_and_by_flag(tmp_path: Path) -> None:
    data = _csv(tmp_path, ["a,2010-01-01,5", "a,2010-01-15,4", "a,2010-03-01,6", "b,2099-01-01,7"])
    config = load_config(_write_config(tmp_path, data))
    loaded = load_transactions(config)  # run date: now
    assert loaded.reasons == {"future_timestamp": 1}
    assert loaded.n_read == loaded.n_accepted + loaded.n_quarantined == 4
    assert loaded.data_end == pd.Timestamp("2010-03-02")  # 2099 is not the data end
    early = load_transactions(config, run_date="2010-02-01")
    assert early.reasons == {"future_timestamp": 2}
    assert early.data_end == pd.Timestamp("2010-01-16")


def test_a_run_date_keeps_its_whole_day(tmp_path: Path) -> None:
    data = _csv(tmp_path, ["a,2010-01-01 23:59:59,5", "a,2010-01-02 00:00:00,6"])
    config = load_config(_write_config(tmp_path, data, run_date="2010-01-01"))
    assert resolve_run_date(config) == pd.Timestamp("2010-01-01 23:59:59.999999")
    assert load_transactions(config).reasons == {"future_timestamp": 1}


@pytest.mark.parametrize("command", ["validate", "score", "features"])
def test_every_command_quarantines_future_rows(tmp_path: Path, command: str) -> None:
    data = _csv(tmp_path, ["a,2010-01-01,5", "b,2099-01-01,7"])
    cfg = _write_config(tmp_path, data)
    args = {
        "validate": ["validate", "--config", str(cfg)],
        "features": ["features", "--config", str(cfg), "--cutoff", "2010-02-01", "--out", str(tmp_path / "f.pq")],
        "score": ["score", "--config", str(cfg), "--model", "models:/none@champion", "--out", str(tmp_path / "s.pq")],
    }[command]
    if command == "score":  # a store to look for the model in: without one, score stops before reading the data
        from tiercast.pipeline.tracking.runs import setup_mlflow

        setup_mlflow(load_config(cfg))
    runner.invoke(app, args)  # score fails later (no such model); the ingestion has run by then
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    assert quarantine["reason"].tolist() == ["future_timestamp"]
    assert quarantine["c"].tolist() == ["b"]


def test_quarantine_is_written_when_the_share_is_exceeded(tmp_path: Path) -> None:
    data = _csv(tmp_path, ["a,2010-01-01,5", ",2010-01-02,6", ",2010-01-03,7"])
    cfg = _write_config(tmp_path, data, max_quarantine_share=0.5)
    with pytest.raises(InputError, match="above max_quarantine_share"):
        load_transactions(load_config(cfg))
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    assert quarantine["reason"].tolist() == ["missing_customer", "missing_customer"]
    result = runner.invoke(app, ["validate", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "max_quarantine_share" in result.output


def test_huge_amounts_build_features(tmp_path: Path) -> None:
    data = _csv(tmp_path, ["a,2010-01-01,1e12", "a,2010-01-05,2.5e15", "b,2010-01-02,3", "c,2010-01-03,1e30"])
    cfg = _write_config(tmp_path, data)
    out = tmp_path / "f.parquet"
    result = runner.invoke(app, ["features", "--config", str(cfg), "--cutoff", "2010-02-01", "--out", str(out)])
    assert result.exit_code == 0, result.output
    feats = pd.read_parquet(out).set_index("customer_id")
    assert feats.loc["a", "monetary_total"] == pytest.approx(1e12 + 2.5e15)
    assert list(feats.index) == ["a", "b"]  # 1e30 is beyond an exact money sum: quarantined, not summed
    assert pd.read_parquet(tmp_path / "out" / "quarantine.parquet")["reason"].tolist() == ["non_numeric_amount"]


def _reviews(tx: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One review a week after each customer's first two orders, scores 1-5 (complaints at 1-2)."""
    rng = np.random.default_rng(seed)
    firsts = tx.sort_values("timestamp").groupby("customer_id").head(2)
    score = rng.integers(1, 6, len(firsts))
    return pd.DataFrame(
        {
            "customer_id": firsts["customer_id"].to_numpy(),
            "timestamp": (firsts["timestamp"] + pd.Timedelta(days=7)).to_numpy(),
            "review_score": score.astype("int64"),
            "is_complaint": score <= 2,
        }
    )


def test_olist_training_uses_the_review_features(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = load_config(
        ROOT / "configs" / "olist.yaml",
        overrides={
            "horizon_days": 60,
            "features": {"windows_days": [30, 90]},
            "cutoffs": {"step_days": 30, "n_train": 3, "min_history_days": 30},
            "models": {"n_estimators": 40, "early_stopping_rounds": 10, "param_grid": "none"},
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        },
    )
    tx = simulate_transactions(n_customers=300, seed=5)
    ingest = IngestResult(
        accepted=tx, quarantine=pd.DataFrame(), n_read=len(tx), source="synthetic", satisfaction=_reviews(tx)
    )
    trained = train(config, from_ingest(config, ingest))
    review = {"review_count", "review_score_mean", "complaint_count"}
    assert review <= set(trained.scorer.feature_names)
    signature = mlflow.models.get_model_info(trained.model_uri).signature
    assert review <= set(signature.inputs.input_names())


def test_a_zero_quantity_line_is_a_zero_amount(tmp_path: Path) -> None:
    """With quantity x unit price, a line of 0 x 10.00 is quarantined as `zero_price`, as an amount of 0 is."""
    data = tmp_path / "tx.csv"
    lines = ["a,2010-01-01,2,5.0", "a,2010-01-02,0,10.0", "b,2010-01-03,1,0", "b,2010-01-04,1,3.5"]
    lines.append("c,2010-01-05,-1,2.0")
    data.write_text("c,ts,q,p\n" + "\n".join(lines) + "\n", encoding="utf-8")
    cfg = _write_config(tmp_path, data)
    raw = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    raw["data"]["transactions"]["columns"] = {"customer_id": "c", "timestamp": "ts", "quantity": "q", "unit_price": "p"}
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = load_transactions(load_config(cfg))
    assert result.reasons == {"zero_price": 2} and result.n_read == 5
    assert result.accepted["amount"].tolist() == [10.0, 3.5, -2.0]


@pytest.mark.parametrize(
    ("rows", "hint"),
    [
        (["a,2010-01-01,5"] + ["b,2010-01-02,6"] * 3, "set transactions.duplicates: keep"),
        (["a,2010-01-01,5", ",2010-01-02,6", ",2010-01-03,7"], "filled on every line"),
    ],
)
def test_a_failed_read_says_which_setting_its_top_reason_depends_on(tmp_path: Path, rows: list[str], hint: str):
    cfg = _write_config(tmp_path, _csv(tmp_path, rows), max_quarantine_share=0.25)
    result = runner.invoke(app, ["validate", "--config", str(cfg)])
    assert result.exit_code == 2 and hint in " ".join(result.output.split()), result.output
