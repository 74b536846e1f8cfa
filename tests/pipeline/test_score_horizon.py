"""Scoring uses the model's horizon and feature windows, whatever the config says, and says so."""

import warnings

import pandas as pd
import pytest

from tiercast.features.build import feature_names
from tiercast.models.scorer import FeatureSchemaError, TiercastScorer
from tiercast.pipeline.jobs.at_risk_list import scores_horizon, team_list
from tiercast.pipeline.jobs.score import scoring_features


def _scorer(horizon: int, windows: tuple[int, ...]) -> TiercastScorer:
    """A scorer whose inputs are the features of ``windows`` and ``horizon`` (no fitted models: not scored)."""
    names = feature_names(windows_days=windows, horizon_days=horizon)[1:]
    return TiercastScorer(None, None, None, tuple(names), f"spend_{horizon}d", horizon)  # type: ignore[arg-type]


def test_a_config_horizon_the_model_was_not_trained_with_gives_a_note():
    scorer = _scorer(90, (30, 90, 180))
    spec = scoring_features(scorer, horizon_days=30, windows_days=(30, 90, 180))
    assert (spec.horizon_days, spec.windows_days) == (90, (30, 90, 180))
    assert spec.note == (
        "the model predicts 90 days (trained with horizon_days 90, windows 30/90/180); "
        "the config's horizon_days 30 is not used for scoring"
    )
    assert scoring_features(scorer, horizon_days=90, windows_days=(30, 180)).note is None  # the horizon is added


def test_default_windows_give_the_model_its_own_seasonal_window():
    scorer = _scorer(90, (30, 90, 180, 365))
    spec = scoring_features(scorer, horizon_days=30, windows_days=(30, 90, 180, 365))
    assert spec.windows_days == (30, 90, 180, 275, 365) and spec.horizon_days == 90
    assert "windows 30/90/180/365)" in spec.note and "windows_days" not in spec.note
    both = scoring_features(scorer, horizon_days=30, windows_days=(30, 60)).note
    assert both.endswith("the config's horizon_days 30 and windows_days 30/60 are not used for scoring")


def test_missing_window_columns_name_the_model_horizon():
    scorer = _scorer(90, (30, 90, 180, 365))
    built_for_30 = pd.DataFrame(columns=feature_names(windows_days=(30, 90, 180, 365), horizon_days=30), dtype=float)
    with pytest.raises(FeatureSchemaError) as err:
        scorer.check_schema(built_for_30)
    assert str(err.value) == (
        "feature rows lack 2 column(s) the model needs: orders_275d, spend_275d (the model predicts 90 days, "
        "trained with horizon_days 90, windows 30/90/180/365: build the features with that horizon and those "
        "windows, or retrain with the config's horizon_days and windows_days)"
    )


def test_the_at_risk_list_states_the_scores_horizon():
    ranked = pd.DataFrame({"customer_id": ["a", "b"], "horizon_days": [90, 90]})
    said = "model's 90-day predictions: the list says horizon_days 90, not the config's 30"
    with pytest.warns(UserWarning, match=said):
        listed = team_list(ranked, horizon_days=30, currency="EUR")
    assert set(listed["horizon_days"]) == {90}
    assert scores_horizon(ranked) == 90
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(team_list(ranked, horizon_days=90, currency=None)["horizon_days"]) == {90}
        # scores written without the column: the horizon given
        unstated = ranked.drop(columns="horizon_days")
        assert set(team_list(unstated, horizon_days=30, currency=None)["horizon_days"]) == {30}
    assert scores_horizon(unstated) is None
