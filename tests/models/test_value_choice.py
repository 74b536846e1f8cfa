"""The BTYD part of the stacked value model (:mod:`tiercast.models.btyd.value_choice`): every purchase day where
the first purchase says what later ones will be, repeat days only where it does not; the count model that ranks
spend; and the choices carried by the model into prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tiercast.features.contract import CUTOFF
from tiercast.models.btyd import value_choice
from tiercast.models.btyd.forecast import BTYDForecaster
from tiercast.models.btyd.stacker import BTYD_MODELS
from tiercast.models.btyd.value_choice import choose_spend, choose_value_btyd
from tiercast.models.evaluation import normalized_gini
from tiercast.models.gbm.value import ValueModel

HORIZON = 90
CUT = pd.Timestamp("2023-06-01")


def feature_rows(n: int, seed: int, *, first_like_the_rest: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """One cutoff's BTYD summary of customers with their own spend level, and their spend in the next 90 days.

    With ``first_like_the_rest`` the first purchase is drawn from the customer's own spend level, as the later ones
    are; otherwise it is the price of whatever they happened to buy first, unrelated to what they spend later."""
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(60.0, 700.0, n)
    rate = rng.gamma(0.7, 1 / 40.0, n)  # purchase days per day
    repeat = rng.poisson(rate * tenure * 0.5).astype(float)
    span = np.where(repeat > 0, rng.uniform(0.3, 1.0, n) * tenure, 0.0)
    level = rng.gamma(2.0, 25.0, n)  # the customer's mean spend per purchase
    repeat_spend = np.where(repeat > 0, level * rng.gamma(20.0, 1 / 20.0, n), 0.0)
    first = level * rng.gamma(20.0, 1 / 20.0, n) if first_like_the_rest else rng.gamma(0.5, 100.0, n)
    future = rng.poisson(rate * HORIZON) * level
    X = pd.DataFrame(
        {
            CUTOFF: CUT,
            "repeat_purchase_days": repeat,
            "first_to_last_days": span,
            "tenure_days": tenure,
            "repeat_spend_mean": repeat_spend,
            "day_spend_mean": (repeat * repeat_spend + first) / (repeat + 1.0),
        }
    )
    return X, future


def _choose(X: pd.DataFrame, y: np.ndarray) -> tuple[str, dict[str, float]]:
    groups = np.full(len(X), CUT)
    return choose_spend(
        X, y, groups, model="bgnbd", label_days=np.full(len(X), HORIZON), time_unit_days=7.0, seasonal=False
    )


def test_every_purchase_day_where_the_first_purchase_is_like_the_others():
    X, y = feature_rows(3000, 0, first_like_the_rest=True)
    spend, gain = _choose(X, y)
    assert spend == "all" and gain["lo"] > 0 and gain["diff"] > 0


def test_repeat_days_where_the_first_purchase_says_nothing_of_the_next():
    X, y = feature_rows(3000, 0, first_like_the_rest=False)
    spend, gain = _choose(X, y)
    assert spend == "repeat" and gain["diff"] < 0
    # the comparison is on the BTYD model's own value predictions: "all" does rank these rows worse
    every = BTYDForecaster("bgnbd", spend="all").fit(X).predict_value(X, HORIZON)
    repeat = BTYDForecaster("bgnbd").fit(X).predict_value(X, HORIZON)
    assert normalized_gini(y, every) < normalized_gini(y, repeat)


def test_no_choice_without_the_column_or_a_spend_to_rank():
    X, y = feature_rows(400, 1, first_like_the_rest=True)
    assert _choose(X.drop(columns="day_spend_mean"), y) == ("repeat", {})
    assert _choose(X, np.zeros(len(X))) == ("repeat", {})
    with pytest.raises(ValueError, match="value has 3 values"):
        _choose(X, y[:3])


def test_the_value_model_predicts_with_the_convention_it_chose():
    """Fitted on earlier cutoffs and validated on a later one, the value model reads every purchase day in a shop
    where the first purchase tells, keeps it when its BTYD part is refitted at the scoring cutoff, and a fixed
    ``spend="repeat"`` reads repeat days only."""
    train, y_train = feature_rows(1500, 2, first_like_the_rest=True)
    val, y_val = feature_rows(1500, 3, first_like_the_rest=True)
    train[CUTOFF], val[CUTOFF] = CUT - pd.Timedelta(days=180), CUT
    kw = {"horizon_days": HORIZON, "btyd": "bgnbd", "seasonal": False, "n_estimators": 5, "params": {"n_jobs": 1}}
    model = ValueModel(**kw).fit(train, y_train, val, y_val)
    assert model.spend_ == "all" and model.spend_gain_["lo"] > 0
    scored = val.drop(columns=CUTOFF)
    model.fit_btyd_at(scored)
    assert model.stacker_.btyd_.spend == "all"
    fixed = ValueModel(**kw, spend="repeat").fit(train, y_train, val, y_val)
    assert fixed.spend_ == "repeat" and fixed.spend_gain_ == {} and fixed.stacker_.btyd_.spend == "repeat"


def test_the_value_model_keeps_pareto_nbd_unless_another_ranks_spend_clearly_better(monkeypatch):
    """Each candidate's nGini on the rows is reported; Pareto/NBD, the first, is kept on a tie or a small lead of
    BG/NBD, and BG/NBD taken where it ranks the spend better beyond the bootstrap's noise."""
    X, y = feature_rows(2000, 4, first_like_the_rest=True)
    groups, days = np.full(len(X), CUT), np.full(len(X), HORIZON)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=len(X))

    def fake(rows, g, label_days, *, model, **kw):  # BG/NBD: the realized spend itself, Pareto/NBD: noise
        return y + 1e-3 * noise if model == "bgnbd" else np.exp(noise)

    monkeypatch.setattr(value_choice, "_value_predictions", fake)
    best, scores = choose_value_btyd(X, y, groups, label_days=days, time_unit_days=7.0)
    assert best == "bgnbd" and set(scores) == set(BTYD_MODELS) and scores["bgnbd"] > scores["paretonbd"]
    monkeypatch.setattr(value_choice, "_value_predictions", lambda rows, g, label_days, **kw: y + 1e-3 * noise)
    assert choose_value_btyd(X, y, groups, label_days=days, time_unit_days=7.0)[0] == "paretonbd"
    assert choose_value_btyd(X, np.zeros(len(X)), groups, label_days=days, time_unit_days=7.0) == ("paretonbd", {})
