"""training_set: the leakage guard, rolling cutoffs and the stacked layout."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest

from tiercast.features.build import build_features
from tiercast.features.labels import build_labels
from tiercast.features.training_set import (
    LeakageError,
    build_training_set,
    check_cutoffs,
    rolling_cutoffs,
)

TX = pd.DataFrame(
    {
        "customer_id": ["a", "a", "b", "b", "c"],
        "timestamp": pd.to_datetime(["2023-01-05", "2023-03-01", "2023-02-10", "2023-04-20", "2023-03-15"]),
        "amount": [10.0, 20.0, 5.0, 7.5, 40.0],
        "order_id": ["1", "2", "3", "4", "5"],
    }
)


@pytest.fixture(scope="module")
def con():
    return ibis.duckdb.connect()


def test_rolling_cutoffs_oldest_first():
    got = rolling_cutoffs(last_cutoff="2023-04-01", step_days=30, count=3)
    assert got == [pd.Timestamp("2023-01-31"), pd.Timestamp("2023-03-02"), pd.Timestamp("2023-04-01")]
    assert rolling_cutoffs(last_cutoff="2023-04-01", step_days=7, count=1) == [pd.Timestamp("2023-04-01")]
    with pytest.raises(ValueError):
        rolling_cutoffs(last_cutoff="2023-04-01", step_days=0, count=3)


def test_refuses_label_window_past_data_end(con):
    with pytest.raises(LeakageError, match="data_end"):
        build_training_set(TX, cutoffs=["2023-03-01", "2023-04-01"], horizon_days=30, data_end="2023-04-30", con=con)
    # LeakageError is a ValueError, so callers catching ValueError see it too.
    with pytest.raises(ValueError, match="2023-04-01"):
        check_cutoffs(["2023-04-01"], horizon_days=30, data_end="2023-04-30")


def test_refuses_label_window_into_holdout():
    with pytest.raises(LeakageError, match="holdout_start"):
        check_cutoffs(["2023-02-01"], horizon_days=30, data_end="2023-12-31", holdout_start="2023-03-01")


def test_label_window_may_end_exactly_at_the_limit():
    # [2023-03-01, 2023-03-31) ends at data_end / holdout_start: half-open, nothing leaks.
    assert check_cutoffs(["2023-03-01"], horizon_days=30, data_end="2023-03-31", holdout_start="2023-03-31") == [
        pd.Timestamp("2023-03-01")
    ]


@pytest.mark.parametrize(
    ("cutoffs", "horizon"),
    [([], 30), (["2023-02-01", "2023-02-01"], 30), (["2023-02-01"], 0)],
    ids=["none", "duplicate", "horizon"],
)
def test_rejects_bad_requests(cutoffs, horizon):
    with pytest.raises(ValueError):
        check_cutoffs(cutoffs, horizon_days=horizon, data_end="2023-12-31")


def test_stacks_features_and_labels(con):
    cutoffs = ["2023-03-01", "2023-02-01"]  # unsorted on purpose
    ts = build_training_set(TX, cutoffs=cutoffs, horizon_days=30, windows_days=(30,), data_end="2023-05-01", con=con)
    assert ts.columns[:2].tolist() == ["customer_id", "cutoff"]
    assert ts.columns[-3:].tolist() == ["future_value", "future_orders", "churned"]
    assert ts["cutoff"].dtype == "datetime64[us]"
    # 2023-02-01: only a has history; 2023-03-01: a and b (c starts 2023-03-15).
    assert list(zip(ts["cutoff"].astype(str), ts["customer_id"], strict=True)) == [
        ("2023-02-01", "a"),
        ("2023-03-01", "a"),
        ("2023-03-01", "b"),
    ]
    # a's 2023-03-01 order (20) is in both label windows, [02-01, 03-03) and [03-01, 03-31): the feature side of
    # cutoff 03-01 does not see it (timestamp < cutoff). b buys next on 04-20, outside [03-01, 03-31): churned, 0.
    np.testing.assert_array_equal(ts["future_value"], [20.0, 20.0, 0.0])
    np.testing.assert_array_equal(ts["churned"], [0.0, 0.0, 1.0])

    # Each block equals the separate builders, joined.
    block = ts[ts["cutoff"] == pd.Timestamp("2023-03-01")].drop(columns="cutoff").reset_index(drop=True)
    feats = build_features(TX, cutoff="2023-03-01", windows_days=(30,), horizon_days=30, con=con)
    labels = build_labels(TX, cutoff="2023-03-01", horizon_days=30, con=con)
    joined = feats.merge(labels, on="customer_id", how="left").fillna(
        {"future_value": 0.0, "future_orders": 0.0, "churned": 1.0}
    )
    pd.testing.assert_frame_equal(block, joined)
