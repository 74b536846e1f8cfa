"""Custom tier names against the model that carries them: ``score`` refuses a config whose tiers are not the model's
(its playbook would give every customer the default action), and ``report`` tells the at-risk lists of two
registered models apart by the model name the list carries. One ``tiercast run`` serves the module."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.pipeline.cli_harness import assert_clean_failure, invoke, snapshot
from tests.pipeline.test_cli_errors import retail_sample, small_config

NAMES = ["Très Or", "silver star", "bronze", "lead ✗"]
VIP = {"action": "VIP call", "channel": "phone", "current_tiers": NAMES[:2], "churn_bands": ["medium", "high"]}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project after one `tiercast run` with custom tier names and a rule on them: tiercast version 1."""
    folder = tmp_path_factory.mktemp("custom_tiers")
    data = retail_sample(folder / "sample.parquet")
    small_config(folder, data, tiers={"names": NAMES}, playbook={"rules": [VIP]})
    result = invoke("run", "--config", "config.yaml", cwd=folder)
    assert result.code == 0, result.stderr
    return folder


def _variant(folder: Path, name: str, **changes: object) -> str:
    """config.yaml with ``changes`` (None removes a key), written as ``name``."""
    cfg = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    cfg.update(changes)
    cfg = {key: value for key, value in cfg.items() if value is not None}
    (folder / name).write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return name


# ----------------------------------------------------------------------------------------------- score


@pytest.mark.parametrize(
    ("changes", "theirs"),
    [
        ({"tiers": None, "playbook": None}, "platinum, gold, iron, lead"),  # the default tiers and playbook rules
        (
            {
                "tiers": {"names": ["gold", "silver", "bronze", "tin"]},
                "playbook": {"rules": [{**VIP, "current_tiers": ["gold"]}]},
            },
            "gold, silver, bronze, tin",
        ),
        ({"tiers": {"names": [NAMES[1], NAMES[0], *NAMES[2:]]}}, "silver star, Très Or"),  # the same names reordered
    ],
    ids=["default-playbook", "renamed-with-rules", "reordered"],
)
def test_score_refuses_a_config_whose_tiers_are_not_the_models(project, changes, theirs):
    config = _variant(project, "renamed.yaml", **changes)
    before = snapshot(project)
    result = invoke(
        "score", "--config", config, "--model", "models:/tiercast/1", "--out", "out/renamed.parquet", cwd=project
    )
    line = assert_clean_failure(result, "--model models:/tiercast/1", f"--config {config}", theirs, "tiers.names")
    assert "retrain" in line and "Très Or" in line
    assert snapshot(project) == before


def test_score_with_the_training_config_gives_the_playbooks_actions(project):
    result = invoke(
        "score", "--config", "config.yaml", "--model", "models:/tiercast/1", "--out", "out/s.parquet", cwd=project
    )
    assert result.code == 0, result.stderr
    scores = pd.read_parquet(project / "out" / "s.parquet")
    vip = scores["current_tier"].isin(NAMES[:2]) & scores["churn_band"].isin(["medium", "high"])
    assert vip.any() and (scores.loc[vip, "action"] == "VIP call").all()


# ----------------------------------------------------------------------------------------------- report's list


def _report(project: Path, listed: pd.DataFrame, name: str) -> tuple[str, list[str]]:
    """The report page on the list ``listed`` (written to out/NAME.csv) and the notes it printed."""
    path = project / "out" / f"{name}.csv"
    listed.to_csv(path, index=False)
    result = invoke(
        "report", "--config", "config.yaml", "--out", f"out/{name}.html", "--at-risk", str(path), cwd=project
    )
    assert result.code == 0, result.stderr
    notes = [ln for ln in result.stdout.splitlines() if ln.startswith("note:")]
    return (project / "out" / f"{name}.html").read_text(encoding="utf-8"), notes


def test_at_risk_list_carries_the_model_name_last(project):
    listed = pd.read_csv(project / "out" / "at_risk.csv", dtype=str, keep_default_na=False)
    assert list(listed.columns[-3:]) == ["model_version", "cutoff", "model_name"]
    assert set(listed["model_name"]) == {"tiercast"} and "segment_key" not in listed.columns


def test_report_leaves_out_the_list_of_another_registered_model_with_the_same_version(project):
    listed = pd.read_csv(project / "out" / "at_risk.csv", dtype=str, keep_default_na=False)
    assert set(listed["model_version"]) == {"1"}
    page, notes = _report(project, listed.assign(model_name="shopb"), "shopb_list")
    assert "Top " not in page and f"<td>{listed['customer_id'].iloc[0]}</td>" not in page
    assert len(notes) == 1, notes
    assert "model version 1 of shopb" in notes[0] and "registered version 1 of tiercast" in notes[0]


def test_report_matches_a_list_without_model_name_on_the_version(project):
    listed = pd.read_csv(project / "out" / "at_risk.csv", dtype=str, keep_default_na=False)
    page, notes = _report(project, listed.drop(columns="model_name", errors="ignore"), "old_list")
    assert not notes
    heading = next(h for h in re.findall(r"<h2>(.*?)</h2>", page) if "customers at risk" in h)
    assert heading.startswith("Top ") and "model version 1 at cutoff" in heading
