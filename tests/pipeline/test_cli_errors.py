"""Every way a user can get the command line wrong ends in one line and exit 2; nothing a failing command does changes
or leaves partial output files. The cases run the ``tiercast`` command line in this process (:func:`invoke`, the
same error boundary); a few run the real ``tiercast`` command in a subprocess (:func:`cli`) for the process's own
contract: its exit code, one line on stderr, and the traceback only under ``--debug``."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tests.pipeline.cli_harness import assert_clean_failure, cli, invoke, snapshot, temporaries
from tiercast.pipeline.cli import app

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "data" / "online_retail_ii" / "online_retail_ii.parquet"


def small_config(folder: Path, data: Path, **extra) -> Path:
    """A quick training config on ``data`` (Online Retail II columns) with its store in ``folder``."""
    cfg = {
        "base": str(ROOT / "configs" / "online_retail_ii.yaml"),
        "data": {"transactions": {"path": str(data)}, "quarantine_path": "out/quarantine.parquet"},
        "cutoffs": {"n_train": 4},
        "models": {"n_estimators": 60, "early_stopping_rounds": 10, "param_grid": "none"},
        "mlflow": {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}"},
        "outputs": {"dir": "out", "at_risk_top": 50},
        **extra,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def retail_sample(path: Path, every: int = 11) -> Path:
    raw = pd.read_parquet(BUNDLED)
    ids = raw["Customer ID"].dropna().drop_duplicates().sort_values().iloc[::every]
    raw[raw["Customer ID"].isin(ids)].to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder after one `tiercast run`: a store with a champion, scores, lists."""
    folder = tmp_path_factory.mktemp("project")
    small_config(folder, retail_sample(folder / "sample.parquet"))
    result = invoke("run", "--config", "config.yaml", cwd=folder)
    assert result.code == 0, result.stderr
    return folder


# ----------------------------------------------------------------------------------------------- arguments


def test_negative_top_is_an_error_not_everyone_but_the_last(project):
    before = snapshot(project)
    result = cli("at-risk", "--scores", "out/scores.parquet", "--top", "-5", "--out", "out/list.csv", cwd=project)
    assert_clean_failure(result, "--top")
    assert snapshot(project) == before


@pytest.mark.parametrize(
    ("cutoff", "needle"),
    [
        ("yesterday", "not a date"),
        ("2010-02-30", "not a date that exists"),
        ("2010-06-01T00:00:00+02:00", "time zone"),
        ("2010-06-01 12:00", "time of day"),
    ],
)
def test_bad_cutoff_is_refused_at_parse_time(project, cutoff, needle):
    result = invoke("features", "--config", "config.yaml", "--cutoff", cutoff, "--out", "out/f.parquet", cwd=project)
    assert_clean_failure(result, "--cutoff", needle)
    assert not (project / "out" / "f.parquet").exists()


@pytest.mark.parametrize(
    ("uri", "needles"),
    [
        ("models:/tiercast", ("--model", "models:/NAME/VERSION")),
        ("modls:/tiercast@champion", ("--model", "not a registered-model URI")),
        ("models:/tiercast@nope", ("no alias @nope", "@champion")),
        ("models:/nope@champion", ("no registered model 'nope'", "tiercast")),
        ("models:/tiercast/99", ("no version 99",)),
    ],
)
def test_bad_model_uri_is_one_line(project, uri, needles):
    before = snapshot(project)
    result = invoke("score", "--config", "config.yaml", "--model", uri, cwd=project)
    assert_clean_failure(result, *needles)
    assert snapshot(project) == before


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("promote", "--config", "config.yaml", "--run", "0123456789abcdef0123456789abcdef"), "--run"),
        (("compare", "--config", "config.yaml", "0123456789abcdef0123456789abcdef"), "error: run"),
        (
            ("report", "--config", "config.yaml", "--run", "0123456789abcdef0123456789abcdef", "--out", "out/r.html"),
            "--run",
        ),
    ],
    ids=["promote", "compare", "report"],
)
def test_unknown_run_id_is_one_line(project, args, named):
    result = invoke(*args, cwd=project)
    assert_clean_failure(result, f"{named} 0123456789abcdef0123456789abcdef", "no such run")
    assert not (project / "out" / "r.html").exists()


def _runs(project: Path) -> tuple[Any, str, str]:
    """A client on the project's store, the experiment id and the id of its training run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiercast").experiment_id
    version = client.get_model_version_by_alias("tiercast", "champion")
    return client, experiment, version.run_id


def test_the_run_id_compare_shows_names_the_run(project):
    """The 8 characters `compare` shows (or any longer unique prefix) name a run for promote, report and compare."""
    _, _, run_id = _runs(project)
    shown = run_id[:8]
    assert shown in invoke("compare", "--config", "config.yaml", cwd=project).stdout
    result = invoke("promote", "--config", "config.yaml", "--run", shown, cwd=project)
    assert result.code == 0 and "already the champion" in result.stdout, result.stderr
    result = invoke("compare", "--config", "config.yaml", run_id[:12].upper(), cwd=project)
    assert result.code == 0 and shown in result.stdout, result.stderr
    assert_clean_failure(
        invoke("compare", "--config", "config.yaml", run_id[:5], cwd=project),
        f"run {run_id[:5]}: no such run", "needs 8 characters or more", "tiercast compare --config config.yaml",
    )  # fmt: skip


def test_a_run_id_prefix_of_several_runs_lists_them(project, monkeypatch):
    from tiercast.pipeline.tracking import runs

    _, _, run_id = _runs(project)
    other = run_id[:8] + "f" * 24
    monkeypatch.setattr(runs, "runs_starting_with", lambda experiment, prefix: [run_id, other])
    result = invoke("report", "--config", "config.yaml", "--run", run_id[:8], "--out", "out/r.html", cwd=project)
    assert_clean_failure(result, f"--run {run_id[:8]}: the start of 2 run ids ({run_id}, {other})", "give more")
    assert not (project / "out" / "r.html").exists()


def test_compare_lists_a_run_without_test_metrics_and_says_why(project):
    """A training run on a history too short to hold out a test window is listed with `-` and a note."""
    client, experiment, _ = _runs(project)
    why = "214 days of history leave no held-out test window (that needs 240): no test metrics"
    run = client.create_run(experiment, tags={"tiercast.notes": why})
    client.log_param(run.info.run_id, "cutoffs.train_resolved", "2023-08-04")
    client.log_param(run.info.run_id, "cutoffs.test_resolved", "none")
    client.log_metric(run.info.run_id, "train_rows", 100.0)
    client.set_terminated(run.info.run_id)
    for args in ((), (run.info.run_id[:8],)):
        result = invoke("compare", "--config", "config.yaml", *args, cwd=project)
        assert result.code == 0, result.stderr
        row = next(ln for ln in result.stdout.splitlines() if run.info.run_id[:8] in ln)
        assert "none" in row and "tiercast" in row and row.count(" - ") >= 8, row
        assert f"note: run {run.info.run_id[:8]}: {why}" in " ".join(result.stdout.split())


def test_at_risk_with_a_config_of_other_tier_names_is_an_error_not_every_tier(project):
    """Scores of a pyramid model (platinum/gold/...) with an abc config: no tier of the config is in the scores."""
    (project / "abc.yaml").write_text(
        yaml.safe_dump(
            {
                "base": "config.yaml",
                "tiers": {"preset": "abc"},
                "playbook": {
                    "rules": [{"action": "call", "channel": "phone", "current_tiers": ["A"], "churn_bands": ["high"]}]
                },
            }
        )
    )
    args = ("at-risk", "--scores", "out/scores.parquet", "--config", "abc.yaml", "--out", "out/abc.csv")
    result = invoke(*args, cwd=project)
    assert_clean_failure(
        result,
        "--scores out/scores.parquet: its tiers are platinum, gold",
        "the tiers of --config abc.yaml are A, B, C",
        "--tiers platinum,gold",
    )
    assert not (project / "out" / "abc.csv").exists()


def test_out_that_is_a_folder_is_refused(project):
    (project / "a_folder").mkdir(exist_ok=True)
    result = invoke(
        "score", "--config", "config.yaml", "--model", "models:/tiercast@champion", "--out", "a_folder", cwd=project
    )
    assert_clean_failure(result, "--out a_folder", "folder")
    result = invoke("at-risk", "--scores", "out/scores.parquet", "--out", "a_folder", cwd=project)
    assert_clean_failure(result, "--out", "a_folder is a folder")


def test_at_risk_out_must_be_a_csv_name(project):
    result = invoke("at-risk", "--scores", "out/scores.parquet", "--out", "out/list.parquet", cwd=project)
    assert_clean_failure(result, "--out out/list.parquet", "written as CSV; give it a .csv name")
    assert not (project / "out" / "list.parquet").exists()


@pytest.mark.parametrize("name", ["config.yaml", "out/at_risk.csv", "out/quarantine.parquet", "missing.parquet"])
def test_scores_that_are_not_a_scores_parquet(project, name):
    result = invoke("at-risk", "--scores", name, "--out", "out/list.csv", cwd=project)
    assert_clean_failure(result, "--scores", name)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_config_is_one_line(project, tmp_path):
    cfg = tmp_path / "locked.yaml"
    cfg.write_text((project / "config.yaml").read_text())
    cfg.chmod(0)
    assert_clean_failure(invoke("validate", "--config", str(cfg), cwd=project), "locked.yaml", "permission")


def test_no_arguments_prints_help():
    result = cli("--help", cwd=ROOT)
    assert result.code == 0 and "Usage" in result.stdout


# -------------------------------------------------------------------------------------------------- config


def _validate(folder: Path, config: Path):
    return invoke("validate", "--config", str(config), cwd=folder)


def test_base_cycle_is_one_line_naming_the_files(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    assert_clean_failure(_validate(tmp_path, tmp_path / "a.yaml"), "cycle", "a.yaml", "b.yaml")


def test_in_a_real_process_a_failure_is_one_line_and_debug_adds_the_traceback(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    before = snapshot(tmp_path)
    assert_clean_failure(cli("validate", "--config", "a.yaml", cwd=tmp_path), "cycle", "a.yaml", "b.yaml")
    debug = cli("--debug", "validate", "--config", "a.yaml", cwd=tmp_path)
    assert debug.code == 2 and "Traceback" in debug.stderr, debug.stderr
    after = cli("validate", "--config", "a.yaml", "--debug", cwd=tmp_path)  # where the hint's reader adds it
    assert after.code == 2 and "Traceback" in after.stderr and "No such option" not in after.stderr, after.stderr
    last = debug.stderr.rstrip().splitlines()[-1]
    assert last.startswith("error:") and "cycle" in last, debug.stderr
    assert snapshot(tmp_path) == before


def test_config_that_is_a_folder(tmp_path):
    (tmp_path / "cfg").mkdir()
    assert_clean_failure(_validate(tmp_path, tmp_path / "cfg"), "--config", "directory")


def test_config_base_that_is_a_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "c.yaml").write_text("base: sub\n")
    assert_clean_failure(_validate(tmp_path, tmp_path / "c.yaml"), "sub")


def test_non_utf8_config(tmp_path):
    (tmp_path / "c.yaml").write_bytes(b"base: default\n# caf\xe9\n")
    assert_clean_failure(_validate(tmp_path, tmp_path / "c.yaml"), "c.yaml", "UTF-8")


def test_huge_horizon_names_the_file_that_holds_it(project, tmp_path):
    (tmp_path / "base.yaml").write_text((project / "config.yaml").read_text())
    (tmp_path / "base.yaml").write_text(
        (project / "config.yaml").read_text() + "horizon_days: 99999999999\n", encoding="utf-8"
    )
    (tmp_path / "child.yaml").write_text("base: base.yaml\nseed: 7\n")
    line = assert_clean_failure(_validate(project, tmp_path / "child.yaml"), "horizon_days", "less than or equal")
    assert "base.yaml" in line and "child.yaml" not in line


# ------------------------------------------------------------------------------------------ degenerate data


def _tx_config(folder: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(folder / "tx.csv", index=False)
    cfg = {
        "base": "default",
        "data": {
            "transactions": {
                "path": "tx.csv",
                "columns": {"customer_id": "customer_id", "timestamp": "timestamp", "amount": "amount"},
            },
            "quarantine_path": "out/quarantine.parquet",
        },
        "models": {"n_estimators": 50, "param_grid": "none"},
        "mlflow": {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}"},
        "outputs": {"dir": "out"},
    }
    (folder / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return folder / "c.yaml"


def _weekly(customers: int, start: str, end: str, every: str) -> pd.DataFrame:
    rows = [
        (f"c{i}", t, 10.0 + i)
        for i in range(customers)
        for t in pd.date_range(start, end, freq=every, inclusive="left")
    ]
    return pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])


rng = np.random.default_rng(0)
DEGENERATE = {
    "two_rows": (
        pd.DataFrame({"customer_id": ["a", "b"], "timestamp": ["2010-01-01", "2010-02-01"], "amount": [1.0, 2.0]}),
        ("days",),
    ),
    "one_day": (
        pd.DataFrame({"customer_id": [f"c{i}" for i in range(300)], "timestamp": "2010-01-01", "amount": 5.0}),
        ("days",),
    ),
    "one_customer": (_weekly(1, "2009-01-01", "2011-01-01", "7D"), ("too few customers", "1 ")),
    "one_time_buyers": (
        pd.DataFrame(
            {
                "customer_id": [f"c{i}" for i in range(1500)],
                "timestamp": pd.Timestamp("2009-01-01") + pd.to_timedelta(rng.integers(0, 720, 1500), unit="D"),
                "amount": rng.gamma(2.0, 10.0, 1500),
            }
        ),
        ("repeat buyers",),
    ),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
def test_degenerate_data_is_refused_naming_what_is_missing(tmp_path, case):
    frame, needles = DEGENERATE[case]
    _tx_config(tmp_path, frame)
    run = cli if case == "two_rows" else invoke  # one case through the real command, in its own process
    result = run("run", "--config", "c.yaml", cwd=tmp_path)
    assert_clean_failure(result, *needles)
    assert not (tmp_path / "out" / "scores.parquet").exists()


def test_a_churn_label_of_one_class_trains_the_btyd_model_alone(tmp_path):
    """Everyone buys every 5 days: no customer churns in any window. Not refused: the models are the BTYD model
    (which needs no labels), a warning says so, the churn AUCs of the test window are undefined ('-'), and the
    backtest runs without the plain GBM (nothing to validate it on)."""
    _tx_config(tmp_path, _weekly(150, "2009-01-01", "2011-01-01", "5D"))
    result = invoke("run", "--config", "c.yaml", cwd=tmp_path)
    assert result.code == 0, result.stderr
    warned = [ln for ln in result.stderr.splitlines() if "a churn label of one class" in ln]
    assert len(warned) == 1 and "0.0% of the training label windows' customers" in warned[0]
    assert "value and churn models are the BTYD model alone" in warned[0]
    auc = next(ln for ln in result.stdout.splitlines() if "churn: ROC AUC" in ln)
    assert auc.replace("│", " ").split()[3:] == ["-"] * 4  # tiercast, naive, BG/NBD, Pareto/NBD; no plain GBM
    scores = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    assert len(scores) == 150 and scores["churn_probability"].between(0, 1).all()
    assert scores["churn_probability"].max() < 0.05  # the BTYD model: buyers every 5 days do not lapse in 90
    table = tmp_path / "bt.csv"
    result = invoke("backtest", "--config", "c.yaml", "--n-tests", "1", "--out", str(table), cwd=tmp_path)
    assert result.code == 0, result.stderr
    rows = pd.read_csv(table)
    assert "lgbm" not in set(rows["method"]) and rows["roc_auc"].isna().all() and rows["brier"].notna().all()


@pytest.mark.parametrize("command", ["backtest", "tiers"])
def test_degenerate_data_is_refused_by_the_other_training_commands(tmp_path, command):
    frame, needles = DEGENERATE["one_customer"]
    _tx_config(tmp_path, frame)
    result = invoke(command, "--config", "c.yaml", cwd=tmp_path)
    assert_clean_failure(result, *needles)


# --------------------------------------------------------------------------------- faults, in the process

runner = CliRunner()


def test_score_failing_after_scoring_leaves_the_previous_output(project, monkeypatch):
    """A failure after the scores are computed (here: drift) must not replace a good scores file."""
    from tiercast.models.scorer import TiercastScorer

    monkeypatch.chdir(project)
    out = project / "out" / "scores.parquet"
    before = out.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("drift failed")

    monkeypatch.setattr(TiercastScorer, "drift", broken)
    result = runner.invoke(
        app, ["score", "--config", "config.yaml", "--model", "models:/tiercast@champion", "--out", str(out)]
    )
    assert result.exit_code == 1
    assert "unexpected RuntimeError: drift failed" in result.output and "--debug" in result.output
    assert "Traceback" not in result.output
    assert out.read_bytes() == before
    assert not temporaries(project / "out")
    result = runner.invoke(
        app,
        ["--debug", "score", "--config", "config.yaml", "--model", "models:/tiercast@champion", "--out", str(out)],
    )
    assert result.exit_code == 1 and "Traceback" in result.output and "drift failed" in result.output


def test_full_disk_is_one_line_and_keeps_the_previous_file(project, monkeypatch):
    import pandas as pd

    monkeypatch.chdir(project)
    out = project / "out" / "scores.parquet"
    before = out.read_bytes()

    def full(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PAR1")  # a partial write, then the device is full
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    result = runner.invoke(
        app, ["score", "--config", "config.yaml", "--model", "models:/tiercast@champion", "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no space left" in lines[0], result.output
    assert out.read_bytes() == before and not temporaries(project / "out")


def test_stdout_to_a_file_gets_each_line_when_printed():
    """A log file or pipe gets each line as it is printed, not when the command ends."""
    import io

    from tiercast.pipeline.cli.base import line_buffered

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    line_buffered(stream)
    stream.write("ingest: 8,372 rows\n")
    assert raw.getvalue() == b"ingest: 8,372 rows\n"
    line_buffered(io.StringIO())  # a stream that cannot be reconfigured is left as it is


def test_warnings_are_one_line_notices(project, monkeypatch):
    import warnings

    from tiercast.pipeline.cli import base as cli_module

    monkeypatch.chdir(project)

    original = cli_module.load_config

    def noisy(*args, **kwargs):
        warnings.warn("something odd\nsecond line", UserWarning, stacklevel=1)
        return original(*args, **kwargs)

    monkeypatch.setattr(cli_module, "load_config", noisy)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        result = runner.invoke(app, ["validate", "--config", "config.yaml"])
    assert result.exit_code == 0, result.output
    notices = [ln for ln in result.output.splitlines() if "something odd" in ln]
    assert notices == ["warning: something odd second line"]
    assert ".py" not in "".join(notices)


def test_a_run_without_a_model_cannot_be_promoted(project):
    """A backtest or benchmark run logs no model: promoting one is refused before anything is registered."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiercast")
    run = client.create_run(experiment.experiment_id)
    client.set_terminated(run.info.run_id)
    before = len(client.search_model_versions("name='tiercast'"))
    result = invoke("promote", "--config", "config.yaml", "--run", run.info.run_id, cwd=project)
    assert_clean_failure(result, f"--run {run.info.run_id}: not a finished training run", "tiercast train")
    assert len(client.search_model_versions("name='tiercast'")) == before


def test_a_scoring_cutoff_before_the_data_is_one_line(project):
    args = ("score", "--config", "config.yaml", "--model", "models:/tiercast@champion", "--out", "out/s.parquet")
    result = invoke(*args, "--cutoff", "2009-12-01", cwd=project)
    assert_clean_failure(result, "--cutoff 2009-12-01: no purchase before it (the data starts 2009-12-01)")
    assert not (project / "out" / "s.parquet").exists()


def test_scores_and_features_are_not_written_under_another_format_s_name(project):
    for args in (
        ("score", "--config", "config.yaml", "--model", "models:/tiercast@champion", "--out", "out/s.csv"),
        ("features", "--config", "config.yaml", "--cutoff", "2010-06-01", "--out", "out/f.csv"),
    ):
        assert_clean_failure(invoke(*args, cwd=project), "--out out/", "written as Parquet; give it a .parquet name")
    assert not (project / "out" / "s.csv").exists() and not (project / "out" / "f.csv").exists()


def test_an_output_path_through_a_file_is_one_line(project):
    (project / "afile").write_text("not a folder")
    result = invoke(
        "score", "--config", "config.yaml", "--model", "models:/tiercast@champion", "--out", "afile/s.parquet",
        cwd=project,
    )  # fmt: skip
    assert_clean_failure(result, "afile: a file of that name is in the way")
    assert (project / "afile").read_text() == "not a folder"


def test_an_outputs_dir_that_is_a_file_is_refused_before_reading(tmp_path):
    small_config(tmp_path, tmp_path / "never_read.parquet", outputs={"dir": "taken"})
    (tmp_path / "taken").write_text("a file")
    result = invoke("run", "--config", "config.yaml", cwd=tmp_path)
    assert_clean_failure(result, "outputs.dir taken: is a file")
    assert not (tmp_path / "mlflow.db").exists()


def test_compare_in_a_fresh_store_is_one_line_with_exit_2(tmp_path):
    small_config(tmp_path, tmp_path / "never_read.parquet")
    assert_clean_failure(invoke("compare", "--config", "config.yaml", cwd=tmp_path), "no runs in experiment")


def test_ctrl_c_inside_a_query_is_an_interruption_not_an_unexpected_error(project, monkeypatch):
    """DuckDB turns Ctrl-C during a query into its own error; the command ends as interrupted (exit 130)."""
    from tiercast.pipeline.cli import base as cli_module

    def interrupted(*args, **kwargs):
        raise RuntimeError("Query interrupted")

    monkeypatch.setattr(cli_module, "load_config", interrupted)
    result = invoke("validate", "--config", "config.yaml", cwd=project)
    assert_clean_failure(result, "interrupted", code=130)


# ------------------------------------------------------------------------------------ what the model keeps


def test_registered_model_keeps_no_customer_rows(project):
    scores = pd.read_parquet(project / "out" / "scores.parquet")
    examples = [p for p in (project / "mlruns").rglob("*example*.json")]
    assert examples
    ids = set(scores["customer_id"].astype(str))
    for path in examples:
        data = json.loads(path.read_text())
        assert "customer_id" not in json.dumps(data)
        text = path.read_text()
        assert not any(f'"{cid}"' in text for cid in ids)


# ------------------------------------------------------------------------------------- the failure classes


def test_every_failure_a_user_can_fix_is_one_line_and_others_are_unexpected():
    """The error boundary tells fixable failures by class (and subclass) without importing their modules."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, RESOURCE_DOES_NOT_EXIST

    from tiercast.features.errors import InsufficientDataError
    from tiercast.models.playbook import PlaybookError
    from tiercast.models.scorer import FeatureSchemaError
    from tiercast.pipeline.cli.base import expected_failure
    from tiercast.pipeline.config import ConfigError
    from tiercast.pipeline.engine.config import EngineError
    from tiercast.pipeline.ingest.common import InputError
    from tiercast.pipeline.jobs.monitor import MonitorError
    from tiercast.pipeline.jobs.score import ModelNotFoundError
    from tiercast.pipeline.writers.tables import TableTargetError

    fixable = (InputError, FeatureSchemaError, ConfigError, MonitorError, EngineError, PlaybookError)
    for cls in (*fixable, TableTargetError, ModelNotFoundError):
        assert expected_failure(cls("what went wrong")) == "what went wrong", cls
        sub = type("Narrower", (cls,), {"__module__": cls.__module__})
        assert expected_failure(sub("narrower")) == "narrower", cls
    assert expected_failure(InsufficientDataError("3 customers")) == "not enough data: 3 customers"
    gone = MlflowException("Registered Model with name=x not found", error_code=RESOURCE_DOES_NOT_EXIST)
    assert expected_failure(gone) == "MLflow: Registered Model with name=x not found"
    assert expected_failure(MlflowException("server down", error_code=INTERNAL_ERROR)) is None
    assert expected_failure(ValueError("what went wrong")) is None
    assert expected_failure(type("InputError", (Exception,), {})("not ours")) is None


# ------------------------------------------------------------------------ quarantine, default outputs, notices


@pytest.mark.parametrize("command", ["run", "train"])
def test_a_run_interrupted_after_ingestion_leaves_the_previous_quarantine(project, monkeypatch, command):
    """Ctrl-C during training: the quarantine read at ingestion is not put in place (validate writes it at once)."""
    from tiercast.pipeline.jobs import run as run_module

    quarantine = project / "out" / "quarantine.parquet"
    good = quarantine.read_bytes()
    pd.DataFrame({"source_row": [0], "reason": ["earlier"]}).to_parquet(quarantine, index=False)
    previous = quarantine.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "train", interrupted)
    try:
        result = invoke(command, "--config", "config.yaml", cwd=project)
        assert result.code == 130, result.stderr
        assert quarantine.read_bytes() == previous
        assert not temporaries(project / "out")
    finally:
        quarantine.write_bytes(good)


def _elsewhere(project: Path, tmp_path: Path) -> Path:
    """The project's config with its outputs.dir in ``tmp_path / "elsewhere"``."""
    path = tmp_path / "elsewhere.yaml"
    path.write_text(
        yaml.safe_dump({"base": str(project / "config.yaml"), "outputs": {"dir": str(tmp_path / "elsewhere")}}),
        encoding="utf-8",
    )
    return path


def test_outputs_default_into_the_config_s_outputs_dir(project, tmp_path):
    config = str(_elsewhere(project, tmp_path))
    scores = project / "out" / "scores.parquet"
    assert invoke("at-risk", "--scores", str(scores), "--config", config, cwd=project).code == 0
    assert invoke("report", "--config", config, cwd=project).code == 0
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == ["at_risk.csv", "report.html"]
    stray = tmp_path / "stray"
    stray.mkdir()
    assert invoke("at-risk", "--scores", str(scores), cwd=stray).code == 0  # without a config: ./outputs
    assert (stray / "outputs" / "at_risk.csv").is_file()


def test_score_and_monitor_default_into_outputs_dir_and_warn_of_a_cutoff_the_model_has_seen_past(project, tmp_path):
    config = str(_elsewhere(project, tmp_path))
    model = ("--model", "models:/tiercast@champion")
    result = invoke("score", "--config", config, *model, "--cutoff", "2010-06-01", cwd=project)
    assert result.code == 0, result.stderr
    (warning,) = [ln for ln in result.stderr.splitlines() if "scoring cutoff" in ln]
    assert warning.startswith("warning: scoring cutoff 2010-06-01 is before the end of the data tiercast version")
    assert "(2010-12-10)" in warning
    assert (tmp_path / "elsewhere" / "scores.parquet").is_file()
    result = invoke("monitor", "--config", config, "--from", "2010-09", "--to", "2010-09", cwd=project)
    assert result.code == 0, result.stderr
    assert (tmp_path / "elsewhere" / "monitor.parquet").is_file()
    assert not (project / "outputs").exists()


def test_scoring_at_the_model_s_data_end_gives_no_warning(project):
    result = invoke("score", "--config", "config.yaml", "--model", "models:/tiercast@champion", cwd=project)
    assert result.code == 0, result.stderr
    assert "scoring cutoff" not in result.stderr


def test_training_without_a_test_window_prints_no_empty_metrics_table():
    from types import SimpleNamespace

    from rich.console import Console

    from tiercast.pipeline.cli.summary import print_training

    plan = SimpleNamespace(test=None, notes=("180 days of history leave no held-out test window",))
    trained = SimpleNamespace(plan=plan, test_metrics={}, run_id="abc", model_name="tiercast")
    promotion = SimpleNamespace(version="1", alias="champion", reason="first version")
    console = Console(record=True, width=120)
    print_training(console, trained, promotion, show_cutoffs=False)
    text = console.export_text()
    assert "test metrics: none (no held-out test window)" in text
    assert "metric" not in text.replace("test metrics", "") and "━" not in text and "│" not in text


def test_top_level_help_says_what_tiercast_does():
    result = invoke("--help", cwd=ROOT)
    assert result.code == 0
    assert "command line (typer)" not in result.stdout and "``" not in result.stdout
    assert "churn risk and ranked retention lists" in " ".join(result.stdout.split())
