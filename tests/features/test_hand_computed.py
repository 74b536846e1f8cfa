"""Every feature family and the labels on a 5-customer fixture, with the expected numbers worked out by hand.

Cutoff C = 2024-01-01 00:00, windows (30, 90) + horizon 60 -> windows 30, 60, 90 days, starting
2023-12-02, 2023-11-02 and 2023-10-03. Spend trend: recent = [2023-11-02, C), previous = [2023-09-03, 2023-11-02).
Label window [C, C + 60 days) = [2024-01-01, 2024-03-01).
"""

from __future__ import annotations

import math

import ibis
import numpy as np
import pandas as pd
import pytest

from tiercast.features.build import build_features
from tiercast.features.labels import build_labels
from tiercast.features.training_set import build_training_set

CUTOFF = pd.Timestamp("2024-01-01")
WINDOWS = (30, 90)
HORIZON = 60
NaN = math.nan

# fmt: off
ROWS = [
    # customer, timestamp, amount, order, product, category
    # A: four purchases on three days; a refund line inside order A2.
    ("A", "2023-06-01 12:00", 30.0, "A1", "p1", "k1"),
    ("A", "2023-06-01 12:00", 20.0, "A1", "p2", "k1"),   # A1 net 50
    ("A", "2023-09-10 12:00", 40.0, "A2", "p1", "k1"),
    ("A", "2023-09-10 12:00", -10.0, "A2", "p3", "k2"),  # A2 net 30, has a refund line
    ("A", "2023-09-10 18:00", 20.0, "A3", "p4", "k2"),   # A3 net 20, same day as A2
    ("A", "2023-12-19 00:00", 60.0, "A4", "p1", "k1"),   # A4 net 60
    ("A", "2024-01-15 00:00", 25.0, "A5", "p1", "k1"),   # label window
    ("A", "2024-03-01 00:00", 99.0, "A6", "p1", "k1"),   # = C + 60 days: outside the label window
    # B: one purchase, half a day before the cutoff.
    ("B", "2023-12-31 12:00", 100.0, "B1", "p5", "k3"),
    # C: refunds only.
    ("C", "2023-11-01 06:00", -15.0, "C1", "p1", "k1"),
    ("C", "2024-01-10 00:00", -5.0, "C2", "p1", "k1"),   # label window: a refund, no purchase
    # D: a purchase, a return order, an order netting to 0 (not a purchase), another purchase.
    ("D", "2023-10-15 00:00", 80.0, "D1", "p6", "k3"),
    ("D", "2023-11-20 00:00", -80.0, "D2", "p6", "k3"),
    ("D", "2023-12-01 00:00", 10.0, "D3", "p7", "k3"),
    ("D", "2023-12-01 00:00", -10.0, "D3", "p7", "k3"),
    ("D", "2023-12-25 00:00", 30.0, "D4", "p8", "k4"),
    ("D", "2024-02-20 00:00", 10.0, "D5", "p1", "k1"),   # label window: one purchase of two lines
    ("D", "2024-02-20 00:00", 5.0, "D5", "p2", "k1"),
    # E: first transaction exactly at the cutoff: no features, but a label.
    ("E", "2024-01-01 00:00", 50.0, "E1", "p1", "k1"),
]
# fmt: on

TX = pd.DataFrame(
    {
        "customer_id": [r[0] for r in ROWS],
        "timestamp": pd.to_datetime([r[1] for r in ROWS]),
        "amount": [r[2] for r in ROWS],
        "order_id": [r[3] for r in ROWS],
        "product_id": [r[4] for r in ROWS],
        "category": [r[5] for r in ROWS],
    }
)

SATISFACTION = pd.DataFrame(
    {
        "customer_id": ["A", "A", "A", "D", "Z"],
        "timestamp": pd.to_datetime(["2023-06-05", "2023-09-15", "2024-01-05", "2023-11-21", "2023-05-01"]),
        "review_score": [4.0, 2.0, 1.0, 1.0, 5.0],
        "is_complaint": [False, True, True, True, False],
    }
)

# Expected features, customers A, B, C, D (E has nothing before the cutoff).
EXPECTED = {
    # A: last purchase 2023-12-19 00:00 -> 13 days. B: 2023-12-31 12:00 -> 0.5.
    # C has no purchase: last transaction 2023-11-01 06:00 -> Nov 1 to Jan 1 is 61 days, minus 0.25 -> 60.75.
    # D: last purchase 2023-12-25 -> 7.
    "recency_days": [13.0, 0.5, 60.75, 7.0],
    # A: first 2023-06-01 12:00; Jun 1 -> Jan 1 = 30+31+31+30+31+30+31 = 214 days, minus 0.5 -> 213.5.
    # D: Oct 15 -> Jan 1 = 17 (rest of Oct) + 30 + 31 = 78.
    "tenure_days": [213.5, 0.5, 60.75, 78.0],
    # A: A1..A4 all net > 0. D: D1 (80) and D4 (30); D2 (-80) and D3 (0) are not purchases.
    "frequency_orders": [4.0, 1.0, 0.0, 2.0],
    # A: Jun 1, Sep 10 (A2 and A3), Dec 19. D: Oct 15, Dec 25.
    "purchase_days": [3.0, 1.0, 0.0, 2.0],
    "repeat_purchase_days": [2.0, 0.0, 0.0, 1.0],
    # A: Dec 19 00:00 - Jun 1 12:00 = (214 - 13) - 0.5 = 200.5. B: 0. C: no purchase. D: Oct 15 -> Dec 25 = 71.
    "first_to_last_days": [200.5, 0.0, NaN, 71.0],
    # A: day spends 50 (first), 30 + 20 = 50, 60 -> (50 + 60) / 2 = 55. D: first day 80, then 30 -> 30.
    "repeat_spend_mean": [55.0, 0.0, 0.0, 30.0],
    # every purchase day: A (50 + 50 + 60) / 3. B: its one day. C: no purchase day. D: (80 + 30) / 2.
    "day_spend_mean": [160.0 / 3.0, 100.0, 0.0, 55.0],
    # A: 50 + 30 + 20 + 60. D: 80 - 80 + 0 + 30.
    "monetary_total": [160.0, 100.0, -15.0, 30.0],
    # A: 160 / 4. D: (80 + 30) / 2.
    "monetary_mean_order": [40.0, 100.0, NaN, 55.0],
    "monetary_max_order": [60.0, 100.0, NaN, 80.0],
    # 30d from 2023-12-02: A4; B1; nothing for C; D4 (purchase, 30).
    "orders_30d": [1.0, 1.0, 0.0, 1.0],
    "spend_30d": [60.0, 100.0, 0.0, 30.0],
    # 60d from 2023-11-02: A4; B1; C1 (Nov 1) is outside; D2 (-80), D3 (0), D4 (30): one purchase, net -50.
    "orders_60d": [1.0, 1.0, 0.0, 1.0],
    "spend_60d": [60.0, 100.0, 0.0, -50.0],
    # 90d from 2023-10-03: A4; B1; C1 (-15); all of D: purchases D1, D4, net 30.
    "orders_90d": [1.0, 1.0, 0.0, 2.0],
    "spend_90d": [60.0, 100.0, -15.0, 30.0],
    # A: gaps Jun 1 -> Sep 10 = 29 + 31 + 31 + 10 = 101, Sep 10 -> Dec 19 = 20 + 31 + 30 + 19 = 100.
    # D: one gap of 71.
    "gap_mean_days": [100.5, NaN, NaN, 71.0],
    # A: sample std of (101, 100) = sqrt(0.5^2 + 0.5^2) = sqrt(0.5). D: one gap -> undefined.
    "gap_std_days": [math.sqrt(0.5), NaN, NaN, NaN],
    # recency / gap mean: A 13 / 100.5, D 7 / 71.
    "overdue_ratio": [13.0 / 100.5, NaN, NaN, 7.0 / 71.0],
    # (recent - previous) / (recent + previous), each floored at 0.
    # A: recent 60, previous A2 + A3 = 50 -> 10 / 110. B: 100 vs 0 -> 1.
    # C: recent 0, previous -15 -> 0 -> both 0 -> 0. D: recent -50 -> 0, previous D1 = 80 -> -1.
    "spend_trend": [10.0 / 110.0, 1.0, 0.0, -1.0],
    # Orders with a refund line: A2; none; C1; D2 and D3.
    "refund_count": [1.0, 0.0, 1.0, 2.0],
    "refund_amount": [10.0, 0.0, 15.0, 90.0],
    # refunded / gross positive: A 10 / (30+20+40+20+60 = 170); C has no gross -> NaN; D 90 / (80+10+30).
    "refund_share": [10.0 / 170.0, 0.0, NaN, 0.75],
    # Distinct products / categories on lines with amount > 0.
    # A: p1, p2, p4 (p3 is the refund line); k1, k2. C: none. D: p6, p7, p8; k3, k4.
    "n_products": [3.0, 1.0, 0.0, 3.0],
    "n_categories": [2.0, 1.0, 0.0, 2.0],
}

# Labels in [2024-01-01, 2024-03-01): A5 (25); C2 (-5, no purchase); D5 (10 + 5); E1 (50, exactly at C).
# A6 at 2024-03-01 is outside; B has nothing, so no row.
EXPECTED_LABELS = pd.DataFrame(
    {
        "customer_id": ["A", "C", "D", "E"],
        "future_value": [25.0, -5.0, 15.0, 50.0],
        "future_orders": [1.0, 0.0, 1.0, 1.0],
        "churned": [0.0, 1.0, 0.0, 0.0],
    }
)


@pytest.fixture(scope="module")
def con():
    return ibis.duckdb.connect()


@pytest.fixture(scope="module")
def features(con) -> pd.DataFrame:
    return build_features(TX, cutoff=CUTOFF, windows_days=WINDOWS, horizon_days=HORIZON, con=con)


def test_rows_and_types(features):
    assert features["customer_id"].tolist() == ["A", "B", "C", "D"]
    assert features.columns[0] == "customer_id"
    assert pd.api.types.is_string_dtype(features["customer_id"])
    assert all(features[c].dtype == np.float64 for c in features.columns[1:])
    assert set(EXPECTED) <= set(features.columns)
    assert "n_channels" not in features.columns  # no channel column in the data


@pytest.mark.parametrize(
    "family",
    [
        ["recency_days", "tenure_days"],
        ["frequency_orders", "purchase_days", "monetary_total", "monetary_mean_order", "monetary_max_order"],
        ["repeat_purchase_days", "first_to_last_days", "repeat_spend_mean", "day_spend_mean"],
        ["orders_30d", "spend_30d", "orders_60d", "spend_60d", "orders_90d", "spend_90d"],
        ["gap_mean_days", "gap_std_days", "overdue_ratio"],
        ["spend_trend"],
        ["refund_count", "refund_amount", "refund_share"],
        ["n_products", "n_categories"],
    ],
    ids=["recency-tenure", "rfm", "btyd", "windows", "gaps", "trend", "refunds", "breadth"],
)
def test_feature_family(features, family):
    for col in family:
        np.testing.assert_allclose(features[col].to_numpy(), EXPECTED[col], rtol=1e-12, err_msg=col)


def test_labels(con):
    labels = build_labels(TX, cutoff=CUTOFF, horizon_days=HORIZON, con=con)
    pd.testing.assert_frame_equal(labels, EXPECTED_LABELS, check_dtype=False)
    assert all(labels[c].dtype == np.float64 for c in ("future_value", "future_orders", "churned"))


def test_satisfaction(con):
    # A: reviews before C are 4 and 2 (the 2024-01-05 one is after) -> mean 3, one complaint.
    # D: one review of 1, a complaint. B, C: none. Z is not a customer with transactions: dropped.
    f = build_features(
        TX, cutoff=CUTOFF, windows_days=WINDOWS, horizon_days=HORIZON, satisfaction=SATISFACTION, con=con
    )
    assert f["customer_id"].tolist() == ["A", "B", "C", "D"]
    np.testing.assert_allclose(f["review_count"], [2.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(f["review_score_mean"], [3.0, NaN, NaN, 1.0])
    np.testing.assert_allclose(f["complaint_count"], [1.0, 0.0, 0.0, 1.0])


def test_satisfaction_without_complaints(con):
    sat = SATISFACTION.drop(columns="is_complaint")
    f = build_features(TX, cutoff=CUTOFF, windows_days=WINDOWS, horizon_days=HORIZON, satisfaction=sat, con=con)
    assert "complaint_count" not in f.columns
    np.testing.assert_allclose(f["review_score_mean"], [3.0, NaN, NaN, 1.0])


def test_training_set_fills_customers_without_future(con):
    ts = build_training_set(
        TX, cutoffs=[CUTOFF], horizon_days=HORIZON, windows_days=WINDOWS, data_end="2024-03-01", con=con
    )
    assert ts["customer_id"].tolist() == ["A", "B", "C", "D"]  # E has no features at C: not a training row
    assert ts.columns[:2].tolist() == ["customer_id", "cutoff"]
    # B bought nothing in the label window: value 0, no orders, churned.
    np.testing.assert_allclose(ts["future_value"], [25.0, 0.0, -5.0, 15.0])
    np.testing.assert_allclose(ts["future_orders"], [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(ts["churned"], [0.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(ts["recency_days"], EXPECTED["recency_days"])


def test_earlier_cutoff_by_hand(con):
    # At 2023-09-10 12:00 only A1 and D has nothing; A2 (12:00 exactly) is excluded, so A has one purchase.
    f = build_features(TX, cutoff="2023-09-10 12:00", windows_days=(30,), horizon_days=30, con=con)
    assert f["customer_id"].tolist() == ["A"]
    row = f.iloc[0]
    # Jun 1 12:00 -> Sep 10 12:00 = 29 + 31 + 31 + 9 = 101 days.
    assert row["recency_days"] == 101.0 and row["tenure_days"] == 101.0
    assert row["frequency_orders"] == 1.0 and row["monetary_total"] == 50.0
    assert row["orders_30d"] == 0.0 and row["spend_30d"] == 0.0
    assert math.isnan(row["gap_mean_days"])
