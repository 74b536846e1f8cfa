"""What the public estimators promise at their edges: horizon overrides with seasonal levels, label checks, empty
and mismatched inputs, Arrow-backed columns, one-cutoff BTYD refits and refund-only customers in BTYD inputs."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from tiercast.features.contract import CUTOFF
from tiercast.models.btyd.forecast import BTYDForecaster, btyd_features
from tiercast.models.btyd.stacker import btyd_inputs
from tiercast.models.gbm.churn import ChurnModel
from tiercast.models.gbm.value import ValueModel

HORIZON = 60
LABELS = ["future_value", "churned"]
# one thread and few trees: the contracts, not the fit quality, are under test
FAST = {"params": {"n_jobs": 1}, "n_estimators": 20, "early_stopping_rounds": 5, "random_state": 0}


def feature_rows(n: int, seed: int, cutoff: pd.Timestamp) -> pd.DataFrame:
    """One cutoff's feature rows with BTYD inputs and a year of order windows (so the seasonal index of the 90-day
    horizon, 365 - 275, is defined), plus labels that follow purchase rate and recency."""
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(30.0, 700.0, n)
    repeat = rng.poisson(3.0, n).astype(float)
    span = np.where(repeat > 0, rng.uniform(0.2, 1.0, n) * tenure, 0.0)
    year = rng.poisson(4.0, n)
    rate = (repeat + 1.0) / tenure * np.exp(-(tenure - span) / 150.0)
    orders = rng.poisson(rate * HORIZON)
    repeat_spend = np.where(repeat > 0, rng.lognormal(3.0, 0.5, n), 0.0)
    return pd.DataFrame(
        {
            CUTOFF: cutoff,
            "recency_days": tenure - span,
            "repeat_purchase_days": repeat,
            "first_to_last_days": span,
            "tenure_days": tenure,
            "repeat_spend_mean": repeat_spend,
            "day_spend_mean": (repeat * repeat_spend + rng.lognormal(3.0, 0.5, n)) / (repeat + 1.0),
            "orders_365d": year.astype(float),
            "orders_275d": rng.binomial(year, 0.7).astype(float),
            "future_value": orders * rng.lognormal(3.0, 0.5, n),
            "churned": (orders == 0).astype(float),
        }
    )


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Three training cutoffs 90 days apart, the validation cutoff and the test cutoff (labels dropped later)."""
    cuts = [pd.Timestamp("2023-01-01") + pd.Timedelta(days=90 * k) for k in range(5)]
    rows = [feature_rows(250, k, c) for k, c in enumerate(cuts)]
    return pd.concat(rows[:3], ignore_index=True), rows[3], rows[4]


def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=LABELS)


def fit(cls: type, frames: tuple, label: str, **kw: object) -> ValueModel | ChurnModel:
    train, val, _ = frames
    return cls(horizon_days=HORIZON, **FAST, **kw).fit(features(train), train[label], features(val), val[label])


@pytest.fixture(scope="module")
def value_model(frames) -> ValueModel:
    return fit(ValueModel, frames, "future_value")


@pytest.fixture(scope="module")
def churn_model(frames) -> ChurnModel:
    return fit(ChurnModel, frames, "churned")


def test_horizon_override_without_a_seasonal_level_is_refused(value_model, churn_model, frames):
    X = features(frames[2])
    assert sorted(value_model.stacker_.season_level_) == [90] == sorted(churn_model.stacker_.season_level_)
    for call in (
        lambda h: value_model.predict(X, horizon_days=h),
        lambda h: churn_model.predict_proba(X, horizon_days=h),
        lambda h: churn_model.decision_function(X, horizon_days=h),
    ):
        with pytest.raises(ValueError, match=r"horizon_days=91 .*\[60, 90\]"):
            call(91)
        np.testing.assert_array_equal(call(HORIZON), call(None))  # the trained horizon, as without the override
        assert np.isfinite(call(90)).all()  # a stored level: kept
    with pytest.raises(ValueError, match="horizon_days=61"):  # refused on no rows too
        value_model.predict(X.iloc[:0], horizon_days=61)
    assert value_model.stacker_.level_horizons() == [90]


def test_horizon_override_without_seasonal_levels_keeps_working(frames):
    X = features(frames[2])
    model = fit(ValueModel, frames, "future_value", seasonal=False)
    assert model.stacker_.season_level_ == {}
    preds = [model.predict(X, horizon_days=h).sum() for h in (60, 61, 90, 91)]
    assert preds == sorted(preds)


def test_btyd_features_give_one_row_per_input_row_with_a_repeated_index(frames):
    train = features(frames[0])
    ids = pd.Index([f"c{i % 250}" for i in range(len(train))], name="customer_id")  # repeats over the cutoffs
    by_position = btyd_features(train, HORIZON)
    by_customer = btyd_features(train.set_axis(ids), HORIZON)
    assert by_customer.index.equals(ids)
    np.testing.assert_array_equal(by_customer.to_numpy(), by_position.to_numpy())
    shuffled = train.sample(frac=1.0, random_state=0)
    np.testing.assert_array_equal(btyd_features(shuffled, HORIZON).to_numpy(), by_position.loc[shuffled.index])


@pytest.mark.parametrize(
    ("cls", "label", "bad", "message"),
    [
        (ValueModel, "future_value", np.nan, "y has 2 of 750 labels missing or infinite, e.g. nan"),
        (ValueModel, "future_value", np.inf, "missing or infinite, e.g. inf"),
        (ChurnModel, "churned", np.nan, "missing or infinite"),
        (ChurnModel, "churned", 0.5, "y has 2 of 750 labels other than 0/1 .*, e.g. 0.5"),
        (ChurnModel, "churned", 2.0, "other than 0/1"),
    ],
)
def test_bad_labels_are_refused_before_fitting(frames, cls, label, bad, message):
    train, val, _ = frames
    y = train[label].copy()
    y.iloc[[3, 7]] = bad
    with pytest.raises(ValueError, match=message):
        cls(horizon_days=HORIZON, **FAST).fit(features(train), y, features(val), val[label])
    y_val = val[label].copy()
    y_val.iloc[0] = bad
    with pytest.raises(ValueError, match="y_val has 1 of 250"):
        cls(horizon_days=HORIZON, **FAST).fit(features(train), train[label], features(val), y_val)


@pytest.mark.parametrize(("cls", "label"), [(ValueModel, "future_value"), (ChurnModel, "churned")])
def test_empty_and_mismatched_inputs_get_clear_errors(frames, cls, label):
    train, val, _ = frames
    X, y = features(train), train[label]
    with pytest.raises(ValueError, match="X has 0 rows"):
        cls(horizon_days=HORIZON, **FAST).fit(X.iloc[:0], y.iloc[:0])
    with pytest.raises(ValueError, match="y has 747 values, X has 750 rows"):
        cls(horizon_days=HORIZON, **FAST).fit(X, y.iloc[:-3], features(val), val[label])
    with pytest.raises(ValueError, match="y_val has 249 values, X_val has 250 rows"):
        cls(horizon_days=HORIZON, **FAST).fit(X, y, features(val), val[label].iloc[1:])


def test_predicting_no_rows_gives_empty_arrays(value_model, churn_model, frames):
    none = features(frames[2]).iloc[:0]
    assert value_model.predict(none).shape == (0,)
    assert churn_model.predict_proba(none).shape == (0, 2)
    assert churn_model.decision_function(none).shape == (0,)
    assert churn_model.predict(none).shape == (0,)
    with pytest.raises(ValueError, match="lack columns"):
        value_model.predict(none.drop(columns="recency_days"))


def test_arrow_backed_features_give_the_float64_predictions(value_model, frames):
    train, val, test = frames
    arrow = lambda f: features(f).astype({c: "double[pyarrow]" for c in features(f).columns if c != CUTOFF})  # noqa: E731
    X = features(test)
    np.testing.assert_array_equal(value_model.predict(arrow(test)), value_model.predict(X))
    refitted = ValueModel(horizon_days=HORIZON, **FAST).fit(
        arrow(train), train["future_value"], arrow(val), val["future_value"]
    )
    np.testing.assert_array_equal(refitted.predict(X), value_model.predict(X))


def test_fit_btyd_at_refuses_rows_of_several_cutoffs(value_model, frames):
    train, _, test = frames
    model = copy.deepcopy(value_model)  # the fixture's BTYD part stays as fitted
    with pytest.raises(ValueError, match="rows of 3 cutoffs .*pass the rows of one cutoff"):
        model.fit_btyd_at(features(train))
    assert model.fit_btyd_at(features(test)).predict(features(test)).shape == (len(test),)


def test_btyd_forecaster_reads_refund_only_customers_as_no_purchase_yet(frames):
    X = features(frames[2]).copy()
    refunds_only = X.index[X["repeat_purchase_days"] == 0][:5]
    # undefined, as the features may leave them
    X.loc[refunds_only, ["first_to_last_days", "repeat_spend_mean", "day_spend_mean"]] = np.nan
    filled = btyd_inputs(X)
    fitted = BTYDForecaster().fit(X)
    np.testing.assert_array_equal(fitted.predict_value(X, HORIZON), fitted.predict_value(filled, HORIZON))
    reference = BTYDForecaster().fit(filled)  # what the pipeline fits: inputs filled already
    assert fitted.count_model_.params_ == reference.count_model_.params_
    np.testing.assert_array_equal(fitted.predict_churn(X, HORIZON), reference.predict_churn(filled, HORIZON))
    assert btyd_features(X, HORIZON).notna().all().all()
