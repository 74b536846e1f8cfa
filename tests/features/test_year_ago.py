"""The year-ago summary (:data:`~tiercast.features.contract.YEAR_AGO_COLUMNS`): each customer's BTYD summary as it
stood 365 days before the cutoff, worked out by hand on a 4-customer fixture and checked against the features built
at that earlier cutoff.

Cutoff C = 2024-01-01, a year back Y = 2023-01-01 (2023 is not a leap year), windows (30, 365) + horizon 60.
"""

from __future__ import annotations

import math

import ibis
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tiercast.features.build import build_features
from tiercast.features.contract import YEAR_AGO_COLUMNS

C = pd.Timestamp("2024-01-01")
Y = pd.Timestamp("2023-01-01")
NaN = math.nan

# fmt: off
ROWS = [
    # P: purchase days 2022-03-01, 2022-06-01 (two orders), 2022-12-31 before Y; one exactly at Y and one after
    ("P", "2022-03-01 00:00", 40.0, "P1"),
    ("P", "2022-06-01 09:00", 30.0, "P2"),
    ("P", "2022-06-01 17:00", 10.0, "P3"),
    ("P", "2022-12-31 12:00", 50.0, "P4"),
    ("P", "2023-01-01 00:00", 70.0, "P5"),   # = Y: not before it
    ("P", "2023-02-01 00:00", 20.0, "P6"),
    # Q: first transaction after Y: no summary a year ago
    ("Q", "2023-03-01 00:00", 15.0, "Q1"),
    # R: only a refund before Y, then a purchase
    ("R", "2022-05-01 00:00", -10.0, "R1"),
    ("R", "2023-05-01 00:00", 25.0, "R2"),
    # S: one purchase before Y
    ("S", "2022-10-01 00:00", 25.0, "S1"),
]
# fmt: on

TX = pd.DataFrame(
    {
        "customer_id": [r[0] for r in ROWS],
        "timestamp": pd.to_datetime([r[1] for r in ROWS]),
        "amount": [r[2] for r in ROWS],
        "order_id": [r[3] for r in ROWS],
    }
)

EXPECTED = pd.DataFrame(
    {
        # P: 3 purchase days before Y -> 2 repeat days; last 2022-12-31 12:00 - first 2022-03-01 = 305.5 days;
        # repeat spend (30 + 10 + 50) / 2 days. R: a customer a year ago without a purchase (the BTYD convention of
        # the current summary: 0 repeat days, span undefined, repeat spend 0). S: one purchase day. Spend per purchase
        # day, the first included: P (40 + 30 + 10 + 50) / 3 days, R none (0), S 25.
        "year_ago_repeat_purchase_days": [2.0, NaN, 0.0, 0.0],
        "year_ago_first_to_last_days": [305.5, NaN, NaN, 0.0],
        "year_ago_repeat_spend_mean": [45.0, NaN, 0.0, 0.0],
        "year_ago_day_spend_mean": [130.0 / 3.0, NaN, 0.0, 25.0],
    },
    index=pd.Index(["P", "Q", "R", "S"], name="customer_id"),
)


def test_year_ago_summary_is_hand_computed():
    got = build_features(TX, cutoff=C, windows_days=(30, 365), horizon_days=60).set_index("customer_id")
    pd.testing.assert_frame_equal(got[list(YEAR_AGO_COLUMNS)], EXPECTED)
    # what followed a year ago, [Y, Y + 60 days): P's order at Y and its 20 on 2023-02-01 (window features)
    assert got.loc["P", "spend_365d"] - got.loc["P", "spend_305d"] == 90.0


def test_year_ago_summary_only_with_a_year_window_and_a_horizon_under_half_a_year():
    assert not set(YEAR_AGO_COLUMNS) & set(build_features(TX, cutoff=C, windows_days=(30, 180), horizon_days=60))
    assert not set(YEAR_AGO_COLUMNS) & set(build_features(TX, cutoff=C, windows_days=(30, 365), horizon_days=200))


CON = ibis.duckdb.connect()
DAY = pd.Timedelta(days=1)
BASE = pd.Timestamp("2021-01-01")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["c1", "c2", "c3"]),
            st.integers(0, 800 * 24),  # hours from BASE
            st.integers(-3000, 9000),
        ),
        min_size=1,
        max_size=40,
    ),
    cutoff_day=st.integers(380, 820),
)
def test_year_ago_summary_is_the_summary_at_the_cutoff_a_year_back(rows, cutoff_day):
    """Point in time: the year-ago columns at C are the current summary columns built at C - 365 days, for every
    customer with a transaction by then (NaN for the others), whatever happens after C - 365. The lines of an
    order share its time here (an order id whose lines come months apart nets them all at C, as every order
    feature does, but not at C - 365)."""
    tx = pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "timestamp": pd.Series([BASE + pd.Timedelta(hours=r[1]) for r in rows], dtype="datetime64[us]"),
            "amount": [r[2] / 100 for r in rows],
            "order_id": [f"{r[0]}-{r[1]}" for r in rows],  # lines of a customer at one time are one order
        }
    )
    cutoff = BASE + cutoff_day * DAY + pd.Timedelta(hours=5)
    now = build_features(tx, cutoff=cutoff, windows_days=(365,), horizon_days=30, con=CON).set_index("customer_id")
    then = build_features(tx, cutoff=cutoff - 365 * DAY, windows_days=(365,), horizon_days=30, con=CON)
    then = then.set_index("customer_id")
    assert now.loc[~now.index.isin(then.index), list(YEAR_AGO_COLUMNS)].isna().all().all()
    summary = ("repeat_purchase_days", "first_to_last_days", "repeat_spend_mean", "day_spend_mean")
    for col, was in zip(YEAR_AGO_COLUMNS, summary, strict=True):
        np.testing.assert_allclose(now.loc[then.index, col], then[was], rtol=1e-9, atol=1e-9, err_msg=col)
