"""The at-risk settings checked against what the scores and the tiers can hold: churn bands of a config that are
not the scores' bands, tiers a fixed ``tiers.k`` never makes, and band selections that keep no band."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.pipeline.cli_harness import assert_clean_failure, invoke
from tests.pipeline.test_cli_audit import _scores
from tests.pipeline.test_loader import _csv, _write_config
from tiercast.features.contract import CHURN_BAND, CHURN_PROBABILITY, CURRENT_TIER, PREDICTED_TIER, REASON_COLUMNS
from tiercast.pipeline.config import ConfigError, load_config

DEMO = "configs/demo.yaml"


def _project(tmp_path: Path, scores: pd.DataFrame, reasons: bool = True, **config: object) -> Path:
    """A config (the default preset over a tiny CSV, ``config`` merged at the top level) and ``scores``, with
    reasons unless told (then at-risk needs no model)."""
    path = _write_config(tmp_path, _csv(tmp_path, ["a,2010-01-01,5"]))
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump({**raw, **config}), encoding="utf-8")
    scores = scores.assign(**{c: "" for c in REASON_COLUMNS}) if reasons else scores
    scores.to_parquet(tmp_path / "scores.parquet", index=False)
    return tmp_path


def _at_risk(project: Path, *extra: str):
    return invoke(
        "at-risk", "--scores", "scores.parquet", "--config", "config.yaml", "--out", "list.csv", *extra, cwd=project
    )


# ------------------------------------------------------------------------- a config with other churn bands


def test_at_risk_config_with_other_band_names_is_one_line(tmp_path):
    """Renamed bands selected nobody: an empty list with exit 0, as if no customer were at risk."""
    bands = {"ok": 0.0, "watch": 0.3, "danger": 0.6}
    project = _project(tmp_path, _scores(), playbook={"churn_bands": bands, "rules": []})
    line = assert_clean_failure(_at_risk(project), "its churn bands are low, medium, high", "ok, watch, danger")
    assert "--churn-bands medium,high" in line
    assert not (project / "list.csv").exists()
    result = _at_risk(project, "--churn-bands", "medium")  # the way out the error names
    assert result.code == 0, result.stderr
    assert set(pd.read_csv(project / "list.csv")[CHURN_BAND]) == {"medium"}


def test_at_risk_config_band_nobody_is_in_is_no_error(tmp_path):
    """The scores' bands are the config's, but no customer of the listed tiers is at medium or high risk: an empty
    list, without the hint to pass the --config that was given."""
    scores = _scores()
    scores[CHURN_PROBABILITY] = 0.1
    scores[CHURN_BAND] = "low"
    result = _at_risk(_project(tmp_path, scores, reasons=False))
    assert result.code == 0, result.stderr
    assert "0 customers at risk (churn medium/high)" in result.stdout
    assert "pass --config" not in result.stdout
    assert pd.read_csv(tmp_path / "list.csv").empty


# ---------------------------------------------------------------------------------- tiers a fixed k never makes


@pytest.mark.parametrize(
    ("k", "listed", "never", "made"),
    [(3, ["platinum", "iron"], "['iron']", "['platinum', 'gold', 'lead']"), (2, ["gold"], "['gold']", None)],
)
def test_at_risk_tiers_a_fixed_k_never_makes_are_refused(k, listed, never, made):
    """k=3 of the pyramid names is platinum, gold, lead: iron's customers were silently left off the list (k=2 and
    gold: an empty list)."""
    overrides = {"tiers": {"k": k}, "outputs": {"at_risk_tiers": listed}, "playbook": {"rules": []}}
    with pytest.raises(ConfigError, match="outputs.at_risk_tiers") as e:
        load_config(DEMO, overrides=overrides)
    assert f"tier(s) {never} never exist" in str(e.value)
    assert f"tiers.k={k} makes the tiers {made or ['platinum', 'lead']}" in str(e.value)
    assert "\n" not in str(e.value)
    assert load_config(DEMO, overrides={**overrides, "tiers": {"k": None}}).outputs.at_risk_tiers == tuple(listed)


def test_validate_refuses_a_tier_a_fixed_k_never_makes_in_one_line(tmp_path):
    project = _project(tmp_path, _scores(), tiers={"k": 3}, outputs={"at_risk_tiers": ["iron"]})
    assert_clean_failure(invoke("validate", "--config", "config.yaml", cwd=project), "config.yaml", "at_risk_tiers")


@pytest.mark.parametrize("k", [2, 3, 4])
def test_possible_names_are_the_names_the_scheme_gives(k):
    from tiercast.models.tiers.scheme import names_for_k

    overrides = {"tiers": {"k": k}, "playbook": {"rules": []}, "outputs": {"at_risk_tiers": None}}
    tiers = load_config(DEMO, overrides=overrides).tiers
    assert tiers.possible_names() == names_for_k(tiers.tier_names(), k)
    assert load_config(DEMO).tiers.possible_names() == tiers.tier_names()


# ------------------------------------------------------------------------------- band selections that keep none


def test_an_empty_band_selection_means_the_default_as_for_the_tiers():
    """`at_risk_churn_bands: []` listed nobody, while `at_risk_tiers: []` means the default tiers."""
    cfg = load_config(DEMO, overrides={"outputs": {"at_risk_churn_bands": [], "at_risk_tiers": []}})
    assert cfg.outputs.churn_bands(cfg.playbook) == ("medium", "high")
    assert cfg.outputs.tiers_listed(("platinum", "gold", "lead")) == ("platinum", "gold")


def test_a_single_band_without_a_band_selection_is_refused():
    """Every band but the lowest of a single band is none: the list was always empty, "no customer at risk"."""
    single = {"playbook": {"churn_bands": {"any_risk": 0.0}, "rules": []}}
    for outputs in ({}, {"at_risk_churn_bands": []}):
        with pytest.raises(ConfigError, match=r"outputs\.at_risk_churn_bands: .*one band only \(any_risk\)") as e:
            load_config(DEMO, overrides={**single, "outputs": outputs})
        assert "at_risk_churn_bands: [any_risk]" in str(e.value)
    cfg = load_config(DEMO, overrides={**single, "outputs": {"at_risk_churn_bands": ["any_risk"]}})
    assert cfg.outputs.churn_bands(cfg.playbook) == ("any_risk",)


def test_at_risk_without_config_on_single_band_scores_says_no_band_is_listed(tmp_path):
    scores = _scores()
    scores[CHURN_BAND] = "any_risk"
    scores[[CURRENT_TIER, PREDICTED_TIER]] = scores[[CURRENT_TIER, PREDICTED_TIER]].astype(str)
    scores.to_parquet(tmp_path / "scores.parquet", index=False)
    result = invoke("at-risk", "--scores", "scores.parquet", "--out", "list.csv", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert "0 customers at risk (no churn band above the lowest in the scores (any_risk)" in result.stdout
    result = invoke("at-risk", "--scores", "scores.parquet", "--out", "list.csv", "--churn-bands", ",", cwd=tmp_path)
    assert_clean_failure(result, "--churn-bands ','", "names no band")
