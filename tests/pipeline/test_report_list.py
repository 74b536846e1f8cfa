"""Reading a trained store: the report lists only the at-risk list of the model version its run registered,
``compare`` lists finished training runs, and a vanished artifact folder is named by ``score``, ``monitor`` and
``report`` instead of a silent fallback or an empty MLflow message. One ``tiercast run`` serves the module."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from tests.pipeline.cli_harness import assert_clean_failure, invoke
from tests.pipeline.test_cli_errors import retail_sample, small_config


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder after one `tiercast run`: version 1 @champion, out/at_risk.csv made by it."""
    folder = tmp_path_factory.mktemp("report_list")
    small_config(folder, retail_sample(folder / "sample.parquet"))
    result = invoke("run", "--config", "config.yaml", cwd=folder)
    assert result.code == 0, result.stderr
    return folder


def _headings(page: Path) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", page.read_text(encoding="utf-8"))


@contextmanager
def _artifacts_gone(folder: Path) -> Iterator[None]:
    """The MLflow artifact folder moved away (it looks like clutter beside outputs/), put back afterwards."""
    (folder / "mlruns").rename(folder / "mlruns.gone")
    try:
        yield
    finally:
        (folder / "mlruns.gone").rename(folder / "mlruns")


# ----------------------------------------------------------------------------------------------- report's list


def test_report_heading_names_the_lists_model_version_and_cutoff(project):
    listed = pd.read_csv(project / "out" / "at_risk.csv", dtype=str)
    result = invoke("report", "--config", "config.yaml", "--out", "out/r.html", cwd=project)
    assert result.code == 0, result.stderr
    heading = next(h for h in _headings(project / "out" / "r.html") if "customers at risk" in h)
    assert f"model version 1 at cutoff {listed['cutoff'].iloc[0]}" in heading
    assert "note:" not in result.stdout


def test_report_leaves_out_a_list_made_by_another_model_version(project):
    listed = pd.read_csv(project / "out" / "at_risk.csv", dtype=str, keep_default_na=False)
    other = project / "out" / "at_risk_other.csv"
    listed.assign(model_version="7").to_csv(other, index=False)
    result = invoke(
        "report", "--config", "config.yaml", "--out", "out/r_other.html", "--at-risk", str(other), cwd=project
    )
    assert result.code == 0, result.stderr
    page = (project / "out" / "r_other.html").read_text(encoding="utf-8")
    assert "Customers at risk" in page and "Top " not in page
    assert f"<td>{listed['customer_id'].iloc[0]}</td>" not in page
    assert "holds the list of model version 7" in page and "registered version 1" in page
    notes = [ln for ln in result.stdout.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "model version 7" in notes[0] and "--at-risk FILE" in notes[0], result.stdout


# ----------------------------------------------------------------------------------------------- compare


def test_compare_by_default_skips_a_killed_training_run(project):
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiercast")
    killed = client.create_run(exp.experiment_id)
    client.log_param(killed.info.run_id, "cutoffs.train_resolved", "2010-01-01")
    client.set_terminated(killed.info.run_id, status=RunStatus.to_string(RunStatus.FAILED))
    result = invoke("compare", "--config", "config.yaml", cwd=project)
    assert result.code == 0, result.stderr
    assert killed.info.run_id[:8] not in result.stdout
    (trained,) = client.search_model_versions("name='tiercast'")
    assert trained.run_id[:8] in result.stdout


# ----------------------------------------------------------------------------------------------- artifacts gone


def test_a_vanished_artifact_folder_is_named_not_papered_over(project):
    with _artifacts_gone(project):
        scored = invoke("score", "--config", "config.yaml", "--model", "models:/tiercast@champion", cwd=project)
        monitored = invoke("monitor", "--config", "config.yaml", "--from", "2010-09", "--to", "2010-09", cwd=project)
        reported = invoke("report", "--config", "config.yaml", "--out", "out/r_gone.html", cwd=project)
    where = (project / "mlruns").as_uri()
    line = assert_clean_failure(scored, "tiercast version 1", "cannot be loaded", where)
    assert "No such artifact: ''" not in line
    assert_clean_failure(monitored, "champion", "tiercast version 1", "cannot be loaded", where)
    assert reported.code == 0, reported.stderr
    notes = [ln for ln in reported.stdout.splitlines() if ln.startswith("note:")]
    assert any("Tiers section" in n and str(project / "mlruns") in n for n in notes), reported.stdout
    assert any("Plots section" in n for n in notes), reported.stdout
    assert "Tiers" in _headings(project / "out" / "r_gone.html")
