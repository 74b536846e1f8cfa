"""Reasons for listed customers rebuilt from the data: a customer without rows in it gets empty reasons and a notice,
not a KeyError that loses the whole list."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from tiercast.features.build import feature_names
from tiercast.features.contract import CHURN_REASONS, VALUE_REASONS
from tiercast.models.scorer import TiercastScorer
from tiercast.pipeline.jobs import score
from tiercast.pipeline.jobs.score import LoadedModel, explain_customers

WINDOWS, HORIZON = (30, 90), 90


class _ReasonsByRecency:
    """A pyfunc stand-in whose reasons name each row's recency: which rows were explained, in which order."""

    def __init__(self, scorer: TiercastScorer) -> None:
        self.scorer = scorer

    def unwrap_python_model(self) -> SimpleNamespace:
        return SimpleNamespace(scorer=self.scorer)

    def predict(self, frame: pd.DataFrame, params: dict) -> pd.DataFrame:
        assert params == {"reasons": True}
        text = [f"recency {r:g}" for r in frame["recency_days"]]
        return pd.DataFrame({CHURN_REASONS: text, VALUE_REASONS: text})


@pytest.fixture
def model(monkeypatch) -> LoadedModel:
    names = tuple(feature_names(windows_days=WINDOWS, horizon_days=HORIZON)[1:])
    scorer = TiercastScorer(None, None, None, names, f"spend_{HORIZON}d", HORIZON)  # type: ignore[arg-type]
    loaded = LoadedModel(pyfunc=_ReasonsByRecency(scorer), name="tiercast", version="3")  # type: ignore[arg-type]
    monkeypatch.setattr(score, "load_model", lambda uri: loaded)
    return loaded


def test_listed_customers_missing_from_the_data_get_empty_reasons_and_a_notice(model):
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "c"],
            "timestamp": pd.to_datetime(["2011-01-01", "2011-01-21", "2011-01-11"]),
            "order_id": ["1", "2", "3"],
            "amount": [10.0, 20.0, 5.0],
        }
    )
    listed = pd.Series(["c", "b", "a"])  # b was scored, then erased from the data
    kw = {"model_uri": "models:/tiercast/3", "windows_days": WINDOWS, "horizon_days": HORIZON}
    with pytest.warns(UserWarning) as caught:
        reasons = explain_customers(tx, listed, cutoff=pd.Timestamp("2011-02-01"), **kw)
    assert [str(w.message) for w in caught if "listed customers" in str(w.message)] == [
        "1 of the 3 listed customers (e.g. 'b') have no transaction before 2011-02-01 in the data read: their "
        "reasons are left empty (is it the data the scores were made from?)"
    ]
    assert reasons[CHURN_REASONS].tolist() == ["recency 21", "", "recency 11"]
    assert reasons.index.tolist() == [0, 1, 2]
