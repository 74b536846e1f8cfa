"""The CLI end to end on a small sample of the bundled Online Retail II data."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from tiercast.features.contract import SCORE_COLUMNS
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
    # Behavioral segments and the playbook action for every customer.
    assert scores["segment"].notna().all() and scores["segment"].nunique() >= 2
    assert scores["action"].notna().all() and "VIP retention call" in set(scores["action"])
    assert scores["churn_probability"].between(0, 1).all()
    for needle in ("read", "quarantined", "customers", "normalized Gini", "ROC AUC", "scores", "MLflow", "BG/NBD x GG"):
        assert needle in output
    # MLflow's own chatter (INFO lines, registry messages, the CloudPickle warning) stays out without --verbose.
    assert "Successfully registered" not in output and "INFO mlflow" not in output and "CloudPickle" not in output


def test_drift_against_the_training_reference_is_written(demo_run):
    tmp, _, output = demo_run
    drift = pd.read_csv(tmp / "out" / "drift.csv")
    assert {"predicted_value", "churn_probability", "recency_days", "tenure_days"} <= set(drift["column"])
    assert set(drift["kind"]) == {"feature", "score"}
    assert drift["psi"].ge(0).all()
    # Customers age between the training reference and scoring; tenure is compared as a share of the history's
    # length, so a growing history does not raise the warning on every run.
    assert drift.set_index("column").loc["tenure_days", "status"] == "ok"
    assert "feature tenure_days PSI" not in output


def test_model_version_is_registered(demo_run):
    tmp, _, _ = demo_run
    scores = pd.read_parquet(tmp / "out" / "scores.parquet")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    (version,) = scores["model_version"].unique()
    mv = client.get_model_version(scores["model_name"].iloc[0], version)
    run = client.get_run(mv.run_id)
    assert "test.tiercast.normalized_gini" in run.data.metrics
    assert "test.naive.roc_auc" in run.data.metrics
    # The comparisons a user asks first, on the same test customers.
    for method in ("bgnbd_gg", "paretonbd_gg", "lgbm"):
        assert {f"test.{method}.normalized_gini", f"test.{method}.roc_auc"} <= set(run.data.metrics), method
    assert int(run.data.tags["data.data_rows_read"]) > 0
    # models.btyd: auto -- the base each model stacks on, and the validation scores it was chosen on: the log loss
    # of P(no purchase) for churn, the ranking of spend for value
    for part in ("value_model", "churn_model"):
        assert run.data.params[f"{part}.btyd"] in ("paretonbd", "bgnbd")
    losses = {m: run.data.metrics[f"churn_model.btyd_log_loss.{m}"] for m in ("paretonbd", "bgnbd")}
    assert all(0 < loss < 1 for loss in losses.values()), losses
    ginis = {m: run.data.metrics[f"value_model.btyd_ngini.{m}"] for m in ("paretonbd", "bgnbd")}
    assert all(0 < g < 1 for g in ginis.values()), ginis
    assert run.data.params["value_model.btyd_spend"] in ("repeat", "all")


def test_quarantine_plus_accepted_is_rows_read(demo_run, sample):
    tmp, _, output = demo_run
    quarantine = pd.read_parquet(tmp / "out" / "quarantine.parquet")
    assert len(quarantine) > 0 and quarantine["reason"].notna().all()
    assert (quarantine["reason"] == "missing_customer").sum() >= 500


def test_at_risk_list_is_ranked_within_top_tiers(demo_run):
    tmp, _, output = demo_run
    ranked = pd.read_csv(tmp / "out" / "at_risk.csv", dtype={"customer_id": str}, keep_default_na=False)
    assert 0 < len(ranked) <= 50
    assert set(ranked["current_tier"]) <= {"platinum", "gold"}
    assert np.all(np.diff(ranked["value_at_risk"].to_numpy()) <= 0)
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    # Only customers a team should call: churn risk medium or high (the default bands are >= 0.4).
    assert set(ranked["churn_band"]) <= {"medium", "high"}
    assert (ranked["churn_probability"] >= 0.4).all()
    scores = pd.read_parquet(tmp / "out" / "scores.parquet")
    eligible = scores[scores["current_tier"].isin(["platinum", "gold"]) & (scores["churn_probability"] >= 0.4)]
    assert len(ranked) == min(50, len(eligible))
    # Money rounded, currency and horizon stated, no bookkeeping columns.
    assert (ranked["value_at_risk"] == ranked["value_at_risk"].round(0)).all()
    assert set(ranked["currency"]) == {"GBP"} and set(ranked["horizon_days"]) == {90}
    assert "segment_key" not in ranked.columns and ranked.columns[-1] == "model_name"
    reasons = ranked["churn_reasons"][ranked["churn_reasons"] != ""]
    assert len(reasons) > 0 and reasons.str.startswith("raises churn risk: ").all()
    assert not reasons.str.contains("no refunds so far|for 0 days|spend 0\\b").any()
    assert "GBP value over the next 90 days" in output


def test_a_model_trained_with_other_library_versions_says_so_in_one_line(demo_run, monkeypatch):
    from tiercast.pipeline.jobs import score

    tmp, cfg, _ = demo_run
    ref = pd.read_parquet(tmp / "out" / "scores.parquet")
    here = {**score.library_versions(), "lightgbm": "0.0.1"}
    monkeypatch.setattr(score, "library_versions", lambda: here)
    version = ref["model_version"].iloc[0]
    out = tmp / "other_versions.parquet"
    model = f"models:/tiercast/{version}"
    result = runner.invoke(app, ["score", "--config", str(cfg), "--model", model, "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the notice is one line, wrapped at the terminal's width
    assert text.count("was trained with") == 1
    trained = ref_version("lightgbm")
    assert f"tiercast version {version} was trained with lightgbm {trained} (here 0.0.1): its scores" in text
    pd.testing.assert_frame_equal(pd.read_parquet(out), ref)  # a note, not a refusal


def ref_version(library: str) -> str:
    from importlib.metadata import version

    return version(library)


def test_score_and_at_risk_commands_reuse_the_registered_model(demo_run):
    tmp, cfg, _ = demo_run
    ref = pd.read_parquet(tmp / "out" / "scores.parquet")
    version = ref["model_version"].iloc[0]
    out = tmp / "rescored.parquet"
    result = runner.invoke(
        app, ["score", "--config", str(cfg), "--model", f"models:/tiercast/{version}", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "was trained with" not in result.output  # the same libraries as the training run
    pd.testing.assert_frame_equal(pd.read_parquet(out), ref)
    lst = tmp / "list.csv"
    result = runner.invoke(
        app, ["at-risk", "--scores", str(out), "--tiers", "platinum", "--top", "5", "--out", str(lst)]
    )
    assert result.exit_code == 0, result.output
    assert "no reasons" in result.output
    assert set(pd.read_csv(lst)["current_tier"]) <= {"platinum"}
    result = runner.invoke(
        app,
        ["at-risk", "--scores", str(out), "--tiers", "platinum", "--top", "5", "--out", str(lst), "--config", str(cfg)],
    )
    assert result.exit_code == 0, result.output
    listed = pd.read_csv(lst, dtype={"customer_id": str}, keep_default_na=False)
    # The same customers get the same reasons as in the list the main job wrote.
    main_list = pd.read_csv(tmp / "out" / "at_risk.csv", dtype={"customer_id": str}, keep_default_na=False)
    merged = listed.merge(main_list, on="customer_id", suffixes=("", "_main"))
    assert len(merged) > 0
    assert (merged["churn_reasons"] == merged["churn_reasons_main"]).all()
    # reasons name what raises a customer's risk above the average; the top platinum customers may have none when
    # the churn model is close to the BTYD model (a small sample), the list as a whole has some
    assert (main_list["churn_reasons"] != "").any()
    # Without --tiers / --top the config's at-risk settings apply: the same list as the main job's.
    result = runner.invoke(app, ["at-risk", "--scores", str(out), "--out", str(lst), "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    same = pd.read_csv(lst, dtype={"customer_id": str}, keep_default_na=False)
    assert list(same["customer_id"]) == list(main_list["customer_id"])


def test_tiers_command_prints_the_study(demo_run):
    """`tiercast tiers` end to end: the scheme, the tiers, predicted vs realized tiers, stability and the schemes."""
    tmp, cfg, _ = demo_run
    small = tmp / "tiers.yaml"  # the study's wiring is under test, not the fits: few trees
    small.write_text(yaml.safe_dump({"base": str(cfg), "models": {"n_estimators": 60}}), encoding="utf-8")
    result = runner.invoke(app, ["tiers", "--config", str(small), "--n-tests", "1", "--n-boot", "2"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    text = " ".join(result.output.split())
    for part in ("scheme fitted at", "Predicted vs realized tier", "stability: bootstrap ARI", "Tier schemes"):
        assert part in text, part


def test_unknown_engine_flag_is_a_config_error(demo_run):
    _, cfg, _ = demo_run
    result = runner.invoke(app, ["train", "--config", str(cfg), "--engine", "flink"])
    assert result.exit_code == 2 and "engine" in result.output


def test_missing_input_file_exits_2_with_one_line(tmp_path):
    cfg = _config(tmp_path, tmp_path / "nope.parquet")
    result = runner.invoke(app, ["validate", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "nope.parquet" in result.output
    assert not (tmp_path / "out" / "quarantine.parquet").exists()


FRESH_PROCESS = """
import sys, mlflow, pandas as pd
from tiercast.features.build import build_features
from tiercast.pipeline.config import load_config
from tiercast.pipeline.ingest.transactions import read_transactions
cfg = load_config(sys.argv[1])
mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
model = mlflow.pyfunc.load_model("models:/tiercast@champion")
tx = read_transactions(cfg.data).accepted
cutoff = pd.Timestamp(sys.argv[2])
features = build_features(tx, cutoff=cutoff, windows_days=cfg.features.windows_days, horizon_days=cfg.horizon_days)
scores = model.predict(features)
scores.insert(0, "customer_id", features["customer_id"].to_numpy())
scores.to_parquet(sys.argv[3], index=False)
"""


def test_champion_in_a_fresh_process_reproduces_the_scores(demo_run):
    import subprocess
    import sys

    tmp, cfg, _ = demo_run
    ref = pd.read_parquet(tmp / "out" / "scores.parquet")
    out = tmp / "fresh.parquet"
    cutoff = str(ref["cutoff"].iloc[0].date())
    subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(cfg), cutoff, str(out)], check=True, cwd=tmp)
    fresh = pd.read_parquet(out)
    cols = ["customer_id", *SCORE_COLUMNS]
    pd.testing.assert_frame_equal(fresh[cols], ref[cols])


def test_train_compare_promote_and_report(demo_run):
    tmp, cfg, _ = demo_run
    result = runner.invoke(app, ["train", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    # Same data, same config, same seed: identical metrics, so the new version cannot beat the champion.
    assert "@challenger" in result.output and "does not beat the champion" in result.output
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("tiercast").experiment_id], order_by=["attributes.start_time DESC"]
    )
    newest = runs[0].info.run_id
    for key in ("normalized_gini", "roc_auc", "brier"):
        assert runs[0].data.metrics[f"test.tiercast.{key}"] == runs[1].data.metrics[f"test.tiercast.{key}"]
    # ... and the retrained model scores every customer as the first one did
    first = pd.read_parquet(tmp / "out" / "scores.parquet")
    (retrained,) = client.search_model_versions(f"run_id='{newest}'")
    assert int(retrained.version) > int(first["model_version"].iloc[0])
    rescored = tmp / "retrained_scores.parquet"
    model = f"models:/tiercast/{retrained.version}"
    result = runner.invoke(app, ["score", "--config", str(cfg), "--model", model, "--out", str(rescored)])
    assert result.exit_code == 0, result.output
    cols = ["customer_id", *SCORE_COLUMNS, "current_value", "cutoff"]
    pd.testing.assert_frame_equal(pd.read_parquet(rescored)[cols], first[cols])
    artifacts = {a.path for a in client.list_artifacts(newest, "plots")}
    assert {"plots/gain_curve.png", "plots/calibration_curve.png", "plots/tier_migration.png"} <= artifacts
    # No customer ids in params, metrics or tags.
    ids = set(pd.read_parquet(tmp / "out" / "scores.parquet")["customer_id"])
    logged = {*runs[0].data.params.values(), *runs[0].data.tags.values(), *runs[0].data.metrics}
    assert not ids & logged

    result = runner.invoke(app, ["compare", "--config", str(cfg), "--last", "3"])
    assert result.exit_code == 0, result.output
    assert "tiercast" in result.output and "naive" in result.output and newest[:8] in result.output
    assert all(m in result.output for m in ("bgnbd_gg", "paretonbd_gg", "lgbm"))
    assert "nan" not in result.output  # a metric a method has not (the baselines' tier kappa) shows as "-"

    forced = runner.invoke(app, ["promote", "--config", str(cfg), "--run", newest, "--force"])
    assert forced.exit_code == 0, forced.output
    champion = client.get_model_version_by_alias("tiercast", "champion")
    assert champion.run_id == newest
    assert client.get_model_version("tiercast", champion.version).tags["promotion"] == "forced"

    html_path = tmp / "report.html"
    result = runner.invoke(app, ["report", "--config", str(cfg), "--run", newest, "--out", str(html_path)])
    assert result.exit_code == 0, result.output
    page = html_path.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") >= 6
    assert all(f"<th>{m}</th>" in page for m in ("BG/NBD x GG", "Pareto/NBD x GG", "plain LightGBM"))
    # out/at_risk.csv is the list the last `run` made, with an earlier version than this run's: no rows, a note
    (listed,) = pd.read_csv(tmp / "out" / "at_risk.csv", dtype={"model_version": str})["model_version"].unique()
    assert client.get_model_version("tiercast", listed).run_id != newest
    assert f"holds the list of model version {listed}" in page and "<th>churn risk</th>" not in page
    assert "note: at-risk list left out" in result.output
    listed_run = client.get_model_version("tiercast", listed).run_id
    result = runner.invoke(app, ["report", "--config", str(cfg), "--run", listed_run, "--out", str(html_path)])
    assert result.exit_code == 0, result.output
    page = html_path.read_text(encoding="utf-8")
    assert f"customers at risk, model version {listed} at cutoff" in page
    assert "(GBP, value over the next 90 days)" in page
    assert ">nan<" not in page and "<th>churn risk</th>" in page


def test_backtest_command_prints_table_and_logs_a_run(demo_run):
    tmp, cfg, _ = demo_run
    out = tmp / "backtest.csv"
    result = runner.invoke(
        app,
        ["backtest", "--config", str(cfg), "--n-tests", "2", "--n-boot", "50", "--out", str(out)]
        + ["--predictions", str(tmp / "backtest_predictions.parquet")],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    table = pd.read_csv(out)
    preds = pd.read_parquet(tmp / "backtest_predictions.parquet")
    assert list(preds.columns) == [
        "customer_id", "cutoff", "method", "predicted_value", "churn_probability", "realized_value", "churned"
    ]  # fmt: skip
    assert len(preds) == table.drop_duplicates("test_cutoff")["n_customers"].sum() * 6
    totals = preds.groupby(["cutoff", "method"])["realized_value"].sum().groupby("cutoff").unique()
    for cutoff, total in totals.items():
        assert total == pytest.approx(table.loc[pd.to_datetime(table["test_cutoff"]) == cutoff, "actual_total"].iloc[0])
    assert table["test_cutoff"].nunique() == 2
    assert set(table["method"]) == {"naive", "rfm", "bgnbd_gg", "paretonbd_gg", "lgbm", "tiercast"}
    assert "paired bootstrap" in result.output and "Test cutoff" in result.output
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    run = client.search_runs(
        [client.get_experiment_by_name("tiercast").experiment_id], order_by=["attributes.start_time DESC"]
    )[0]
    assert run.info.run_id in result.output and run.data.tags["tiercast.job"] == "backtest"
    latest = table[table["test_cutoff"] == table["test_cutoff"].max()].set_index("method")
    for method in ("tiercast", "paretonbd_gg"):
        assert run.data.metrics[f"test.{method}.normalized_gini"] == pytest.approx(
            latest.loc[method, "normalized_gini"]
        )
    assert len([k for k in run.data.metrics if k.startswith("cutoff_")]) > 2 * 6 * 10
    assert "data.data_sha256" in run.data.tags and "version.lightgbm" in run.data.tags
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)} | {
        a.path for a in client.list_artifacts(run.info.run_id, "plots")
    }
    assert {"backtest.csv", "plots/backtest_normalized_gini.png", "plots/backtest_roc_auc.png"} <= artifacts
    ids = set(pd.read_parquet(tmp / "out" / "scores.parquet")["customer_id"])
    assert not ids & {*run.data.params.values(), *run.data.tags.values(), *run.data.metrics}


def test_benchmark_cdnow_command_writes_json_and_logs_a_run(demo_run):
    tmp, cfg, _ = demo_run
    out = tmp / "cdnow.json"
    data = ROOT / "data" / "cdnow" / "CDNOW_master.txt"
    args = ["benchmark", "cdnow", "--data", str(data), "--config", str(cfg), "--json", str(out)]
    preds_path = tmp / "cdnow_predictions.parquet"
    result = runner.invoke(app, [*args, "--sample-every", "20", "--n-boot", "20", "--predictions", str(preds_path)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    doc = json.loads(out.read_text())
    preds = pd.read_parquet(preds_path)
    assert (
        len(preds) == doc["split"]["n_customers"] * 4 and preds["customer_id"].nunique() == doc["split"]["n_customers"]
    )
    assert (preds["cutoff"] == pd.Timestamp("1997-10-01")).all()
    for method, part in preds.groupby("method"):
        assert part["predicted_value"].sum() == pytest.approx(doc["methods"][method]["value"]["predicted_total"])
        assert part["realized_value"].sum() == pytest.approx(doc["methods"][method]["value"]["actual_total"])
    assert set(doc["methods"]) == {"naive", "bgnbd_gg", "paretonbd_gg", "tiercast"}
    assert set(doc["methods"]["tiercast"]["churn"]) == {"roc_auc", "pr_auc", "brier"}
    assert "target normalized Gini" in result.output
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    run = client.search_runs(
        [client.get_experiment_by_name("tiercast").experiment_id], order_by=["attributes.start_time DESC"]
    )[0]
    assert run.data.tags["tiercast.job"] == "benchmark-cdnow"
    tc = doc["methods"]["tiercast"]
    assert run.data.metrics["test.tiercast.roc_auc"] == pytest.approx(tc["churn"]["roc_auc"])
    assert run.data.metrics["test.tiercast.normalized_gini"] == pytest.approx(tc["value"]["normalized_gini"])
    assert {"plots/gain_curve.png", "plots/calibration_curve.png"} <= {
        a.path for a in client.list_artifacts(run.info.run_id, "plots")
    }


def test_benchmark_cdnow_rehearsal_split_has_no_targets(demo_run):
    tmp, cfg, _ = demo_run
    out = tmp / "rehearsal.json"
    data = ROOT / "data" / "cdnow" / "CDNOW_master.txt"
    mine = tmp / "bgnbd.yaml"  # the config's model settings are the ones benchmarked
    models = {"btyd": "bgnbd", "seasonal": False, "btyd_level": False}
    mine.write_text(yaml.safe_dump({"base": str(cfg), "models": models}), encoding="utf-8")
    args = [
        "benchmark",
        "cdnow",
        "--data",
        str(data),
        "--config",
        str(mine),
        "--json",
        str(out),
        "--split",
        "rehearsal",
    ]
    # the split's wiring is under test, not the fit: a small sample (every 20th customer) suffices
    result = runner.invoke(app, [*args, "--sample-every", "20", "--n-boot", "0"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    doc = json.loads(out.read_text())
    assert {k: doc["tiercast_model"][k] for k in models} == models
    assert doc["split"]["name"] == "rehearsal" and doc["split"]["holdout"] == ["1997-07-01", "1997-09-30"]
    assert doc["targets"] == {} and "target" not in result.output
    assert "rehearsal split" in result.output


def test_benchmark_cdnow_split_choices_are_the_splits():
    from tiercast.benchmarks.quality.cdnow_data import SPLITS
    from tiercast.pipeline.cli.benchmark import SplitName

    assert {s.value for s in SplitName} == set(SPLITS)


def test_benchmark_cdnow_unknown_split_exits_2():
    result = runner.invoke(app, ["benchmark", "cdnow", "--split", "holdout"])
    assert result.exit_code == 2 and "--split" in result.output


def test_benchmark_cdnow_missing_file_exits_2(tmp_path):
    result = runner.invoke(app, ["benchmark", "cdnow", "--data", str(tmp_path / "nope.txt")])
    assert result.exit_code == 2 and "nope.txt" in result.output


# `tiercast score` in a child process whose os.replace stalls (a slow rename), so the test can kill it while the
# scores are written but not yet in place; the flag file says it got there.
STALLED_SCORE = """
import os, sys, time
real_replace = os.replace
def stalled(src, dst):
    if os.fspath(dst) == sys.argv[2]:  # the scores file (other outputs are renamed as usual)
        open(sys.argv[1], "w").close()
        time.sleep(120)
    real_replace(src, dst)
os.replace = stalled
from tiercast.pipeline.cli import app
app(sys.argv[3:], prog_name="tiercast")
"""


def test_rerun_is_byte_identical_and_a_killed_score_leaves_no_partial_file(demo_run):
    import signal
    import subprocess
    import sys
    import time

    tmp, cfg, _ = demo_run
    # a month before the run's scoring date: --cutoff, or the config's score.cutoff (as `run` uses it) when not given
    cutoff = str((pd.read_parquet(tmp / "out" / "scores.parquet")["cutoff"].iloc[0] - pd.Timedelta(days=30)).date())
    args = ["score", "--config", str(cfg), "--model", "models:/tiercast@champion", "--cutoff", cutoff]
    first, second = tmp / "kill" / "first.parquet", tmp / "kill" / "second.parquet"
    configured = tmp / "score_cutoff.yaml"
    configured.write_text(yaml.safe_dump({"base": str(cfg), "score": {"cutoff": cutoff}}), encoding="utf-8")
    for out, given in ((first, args), (second, ["score", "--config", str(configured), "--model", args[4]])):
        result = runner.invoke(app, [*given, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert f"scoring cutoff {cutoff} is before the end of the data" in " ".join(result.output.split())
    assert first.read_bytes() == second.read_bytes()
    assert str(pd.read_parquet(second)["cutoff"].iloc[0].date()) == cutoff

    before = second.read_bytes()
    flag = tmp / "kill" / "in_rename"
    proc = subprocess.Popen(
        [sys.executable, "-c", STALLED_SCORE, str(flag), str(second), *args, "--out", str(second)],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flag.exists(), "the child never reached the rename"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # The killed writer's scores never reached the target: the previous file is intact, the complete but
    # unrenamed temporary sits beside it.
    assert second.read_bytes() == before
    leftovers = list(second.parent.glob(".second.parquet.*.tmp"))
    assert len(leftovers) == 1
    # The next run replaces the file and clears the dead writer's temporary.
    result = runner.invoke(app, [*args, "--out", str(second)])
    assert result.exit_code == 0, result.output
    assert second.read_bytes() == before
    assert not list(second.parent.glob("*.tmp"))


def test_report_defaults_to_the_latest_training_run(demo_run):
    tmp, cfg, _ = demo_run
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name("tiercast").experiment_id
    later = client.create_run(experiment_id, tags={"tiercast.job": "backtest"})  # newer, but not a training run
    client.set_terminated(later.info.run_id)
    runs = client.search_runs([experiment_id], order_by=["attributes.start_time DESC"])
    assert runs[0].info.run_id == later.info.run_id
    latest_train = next(r for r in runs if r.data.tags.get("tiercast.job") == "train").info.run_id
    html_path = tmp / "latest.html"
    result = runner.invoke(app, ["report", "--config", str(cfg), "--out", str(html_path)])
    assert result.exit_code == 0, result.output
    assert f"tiercast run {latest_train[:8]}" in html_path.read_text(encoding="utf-8")


def test_score_into_duckdb_and_postgresql_tables(demo_run, postgres_url):
    from tiercast.pipeline.writers.tables import parse_table_target, read_table

    tmp, cfg, _ = demo_run
    ref = pd.read_parquet(tmp / "out" / "scores.parquet")
    model = f"models:/tiercast/{ref['model_version'].iloc[0]}"
    cutoff = ref["cutoff"].iloc[0]
    earlier = cutoff - pd.Timedelta(days=30)
    for target in (f"duckdb://{tmp}/warehouse.duckdb::scores", f"{postgres_url}::retention.scores"):
        # a first write at an earlier cutoff, then the scores of the run's cutoff replace it
        for when in (earlier, cutoff):
            result = runner.invoke(
                app, ["score", "--config", str(cfg), "--model", model, "--out", target, "--cutoff", str(when.date())]
            )
            assert result.exit_code == 0, result.output + repr(result.exception)
        assert "table retention.scores" in result.output or "table scores" in result.output
        # the drift CSV is named after the database, schema and table: tables of two schemas keep a file each
        assert (tmp / "out" / parse_table_target(target).drift_file_name).is_file()
        back = read_table(parse_table_target(target)).sort_values("customer_id").reset_index(drop=True)
        want = ref.sort_values("customer_id").reset_index(drop=True)
        assert len(back) == len(want) > 0
        assert set(back["cutoff"]) == {cutoff} and set(back["model_version"]) == {want["model_version"].iloc[0]}
        cols = ["customer_id", *SCORE_COLUMNS, "current_value", "action", "model_name"]
        pd.testing.assert_frame_equal(back[cols], want[cols], check_dtype=False)
        print(f"{target.split('::')[0].split(':')[0]}: {len(back):,} rows read back")


def test_score_into_a_malformed_table_target_is_a_one_line_error(demo_run):
    tmp, cfg, _ = demo_run
    result = runner.invoke(
        app, ["score", "--config", str(cfg), "--model", "models:/tiercast@champion", "--out", "duckdb://x.duckdb"]
    )
    assert result.exit_code == 2 and "::TABLE" in result.output and "Traceback" not in result.output


def test_score_with_another_config_horizon_uses_the_model_horizon(demo_run):
    """A config whose horizon_days differs from the model's: `score` notes it and scores as the run did (the model's
    horizon and windows); `at-risk` lists the same customers, with the same reasons, labelled with the model's
    horizon."""
    tmp, cfg, _ = demo_run
    ref = pd.read_parquet(tmp / "out" / "scores.parquet")
    other = tmp / "h30.yaml"
    other.write_text(yaml.safe_dump({"base": str(cfg), "horizon_days": 30}), encoding="utf-8")
    out = tmp / "h30_scores.parquet"
    model = f"models:/tiercast/{ref['model_version'].iloc[0]}"
    result = runner.invoke(app, ["score", "--config", str(other), "--model", model, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (
        "note: the model predicts 90 days (trained with horizon_days 90, windows 30/90/180/365); the config's "
        "horizon_days 30 is not used for scoring" in " ".join(result.output.split())
    )
    scores = pd.read_parquet(out)
    pd.testing.assert_frame_equal(scores, ref)
    assert set(scores["horizon_days"]) == {90}
    lst = tmp / "h30_list.csv"
    result = runner.invoke(app, ["at-risk", "--scores", str(out), "--out", str(lst), "--config", str(other)])
    assert result.exit_code == 0, result.output
    listed = pd.read_csv(lst, dtype={"customer_id": str}, keep_default_na=False)
    main_list = pd.read_csv(tmp / "out" / "at_risk.csv", dtype={"customer_id": str}, keep_default_na=False)
    assert set(listed["horizon_days"]) == {90}
    assert list(listed["customer_id"]) == list(main_list["customer_id"])
    assert list(listed["churn_reasons"]) == list(main_list["churn_reasons"])
