"""Promotion of monthly retrains: train, append a month, retrain; the retrain is compared with the champion
re-evaluated on the retrain's test window."""

from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from tiercast.pipeline.cli import app

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "data" / "online_retail_ii" / "online_retail_ii.parquet"
runner = CliRunner()
MONTH_END = pd.Timestamp("2010-11-10")  # the first training sees data up to here; the retrains one month more

#: A deliberately crippled model: no buy-till-you-die part and trees that cannot split (constant predictions).
CRIPPLED = {
    "btyd": None,
    "blend": False,
    "param_grid": "none",
    "value_params": {"min_child_samples": 1_000_000},
    "churn_params": {"min_child_samples": 1_000_000},
}


def _write_config(tmp: Path, name: str, data: Path, models: dict | None = None) -> Path:
    cfg = {
        "base": str(ROOT / "configs" / "online_retail_ii.yaml"),
        "data": {"transactions": {"path": str(data)}, "quarantine_path": str(tmp / name / "quarantine.parquet")},
        "cutoffs": {"n_train": 4},
        # one setting (no grid search): what is compared is a champion and a retrain, not how settings are chosen
        "models": {"n_estimators": 300, "early_stopping_rounds": 30, "param_grid": "none", **(models or {})},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}"},
        "outputs": {"dir": str(tmp / name), "at_risk_top": 20},  # few reasons to explain in `run`
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Every 11th customer's lines (about 400 customers): up to MONTH_END, and the same with the next month."""
    tmp = tmp_path_factory.mktemp("promotion")
    raw = pd.read_parquet(BUNDLED)
    ids = raw["Customer ID"].dropna().drop_duplicates().sort_values()
    part = raw[raw["Customer ID"].isin(ids.iloc[::11])]
    month = tmp / "until_month.parquet"
    part[part["InvoiceDate"] < MONTH_END].to_parquet(month, index=False)
    appended = tmp / "with_next_month.parquet"
    part.to_parquet(appended, index=False)
    return tmp, month, appended


def _train(cfg: Path, command: str = "train") -> str:
    result = runner.invoke(app, [command, "--config", str(cfg)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_retrain_on_a_new_month_is_promoted_unless_worse(store, monkeypatch):
    tmp, month, appended = store
    monkeypatch.chdir(tmp)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store_uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store_uri, registry_uri=store_uri)  # not a registry left by another test

    _train(_write_config(tmp, "first", month))
    first = client.get_model_version_by_alias("tiercast", "champion")

    # The month appended, a crippled model: worse on the new window, stays challenger; `run` writes its scores and
    # says that they are a challenger's and how to score with the champion.
    crippled_cfg = _write_config(tmp, "crippled", appended, CRIPPLED)
    output = _train(crippled_cfg, "run")
    assert "@challenger" in output
    assert client.get_model_version_by_alias("tiercast", "champion").version == first.version
    crippled = client.get_model_version_by_alias("tiercast", "challenger")
    note = " ".join(output.split())
    assert f"note: the scores are version {crippled.version}'s, which stays @challenger (" in note
    assert "`tiercast score --model models:/tiercast@champion` scores with the champion" in note
    scores = pd.read_parquet(tmp / "crippled" / "scores.parquet")
    assert scores["model_version"].unique().tolist() == [str(crippled.version)]
    run = client.get_run(crippled.run_id)
    m, tags = run.data.metrics, run.data.tags
    assert tags["promotion.champion_version"] == str(first.version) and tags["promotion.not_worse"] == "false"
    assert (
        m["promotion.normalized_gini.hi"] < -m["promotion.margin"] or m["promotion.roc_auc.hi"] < -m["promotion.margin"]
    )
    for key in ("normalized_gini", "roc_auc"):
        assert m[f"promotion.{key}.lo"] <= m[f"promotion.{key}.mean_diff"] <= m[f"promotion.{key}.hi"]
        assert m[f"promotion.{key}.diff"] == pytest.approx(
            m[f"promotion.{key}.challenger"] - m[f"promotion.{key}.champion"]
        )
    # The champion's labels end inside the retrain's 90-day test window: both are judged on the month neither saw.
    first_end = pd.read_parquet(month)["InvoiceDate"].max().normalize() + pd.Timedelta(days=1)
    new_end = pd.read_parquet(appended)["InvoiceDate"].max().normalize() + pd.Timedelta(days=1)
    assert tags["promotion.window_cutoff"] == str(first_end.date())
    assert m["promotion.window_days"] == (new_end - first_end).days == 30
    print("crippled:", {k: round(v, 4) for k, v in m.items() if k.startswith("promotion.")})
    # Asked again later, `tiercast promote` reuses the comparison logged against this champion.
    again = runner.invoke(app, ["promote", "--config", str(crippled_cfg), "--run", crippled.run_id])
    assert again.exit_code == 0, again.output
    assert "@challenger" in again.output and "worse by more than" in again.output

    # The month appended, the usual model: not worse than the champion on its window, becomes champion.
    output = _train(_write_config(tmp, "retrain", appended))
    assert "@champion" in output, output
    # another file than the champion's: the reason names both, in case it is another shop's
    assert f"its data file is not the champion's ({month} -> {appended})" in " ".join(output.split()), output
    champion = client.get_model_version_by_alias("tiercast", "champion")
    assert int(champion.version) > int(crippled.version)
    run = client.get_run(champion.run_id)
    m, tags = run.data.metrics, run.data.tags
    assert tags["promotion.champion_version"] == str(first.version) and tags["promotion.not_worse"] == "true"
    for key in ("normalized_gini", "roc_auc"):
        assert m[f"promotion.{key}.hi"] >= -m["promotion.margin"]
    assert tags["promotion.window_cutoff"] == str(first_end.date())
    assert 0 < m["promotion.window_customers"] <= run.data.metrics["production_rows"]
    print("retrain:", {k: round(v, 4) for k, v in m.items() if k.startswith("promotion.")})
    assert client.get_model_version("tiercast", champion.version).tags["promotion_reason"].startswith("not worse")


@pytest.mark.parametrize(("alias", "expected"), [("champion", None), ("challenger", "version 2's, which stays")])
def test_run_notes_scores_of_a_challenger(alias, expected):
    from tiercast.pipeline.jobs.run import challenger_note
    from tiercast.pipeline.tracking.registry import PromotionDecision

    note = challenger_note("tiercast", PromotionDecision("2", alias, "does not beat the champion"))
    assert note is None if expected is None else expected in note and "models:/tiercast@champion" in note


def test_a_retrain_the_champion_cannot_be_compared_with_names_the_way_to_promote_it(store, monkeypatch):
    """A 60-day model forced to champion cannot score the 90-day retrain's rows: the retrain stays challenger (no
    comparison shows it is not worse), and the reason says how to make it the champion."""
    tmp, month, appended = store
    own = tmp / "horizons"  # a store of its own
    own.mkdir()
    monkeypatch.chdir(own)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    quick = {"n_estimators": 60, "early_stopping_rounds": 10}
    trial = _write_config(own, "trial60", month, quick)
    raw = yaml.safe_load(trial.read_text(encoding="utf-8"))
    trial.write_text(yaml.safe_dump({**raw, "horizon_days": 60}), encoding="utf-8")
    _train(trial)
    store_uri = f"sqlite:///{own / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store_uri, registry_uri=store_uri)
    assert str(client.get_model_version_by_alias("tiercast", "champion").version) == "1"
    output = " ".join(_train(_write_config(own, "monthly", appended, quick)).split())
    retrain = client.get_model_version_by_alias("tiercast", "challenger")
    assert "champion v1 cannot score the new rows (" in output and "so the two are not compared" in output
    assert f"`tiercast promote --run {retrain.run_id} --force`" in output
