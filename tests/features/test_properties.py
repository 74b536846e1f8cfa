"""Property tests: point in time, row-order independence, no mutation, and agreement with a plain pandas oracle."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tiercast.features.build import build_features
from tiercast.features.labels import build_labels
from tiercast.features.training_set import build_training_set

BASE = pd.Timestamp("2023-01-01")
DAY = pd.Timedelta(days=1)
WINDOWS = (7, 30)
# Each build compiles an Ibis expression (~0.1-0.2 s), so example counts are kept small to hold the suite near 30 s.
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

CON = ibis.duckdb.connect()  # one connection for the module: hypothesis calls the builders many times


def line(min_step: int, max_step: int) -> st.SearchStrategy[tuple]:
    """(customer, half-hour steps from BASE, cents, order, product). Few ids, so orders span lines and days."""
    return st.tuples(
        st.sampled_from(["c1", "c2", "c3", "c4"]),
        st.integers(min_step, max_step),
        st.integers(-4000, 12000),
        st.sampled_from([f"o{i}" for i in range(8)]),
        st.sampled_from(["p1", "p2", "p3"]),
    )


def frame(rows: list[tuple], origin: pd.Timestamp = BASE) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype="str"),
            "timestamp": pd.Series([origin + pd.Timedelta(minutes=30 * r[1]) for r in rows], dtype="datetime64[us]"),
            "amount": pd.Series([r[2] / 100 for r in rows], dtype="float64"),
            "order_id": pd.Series([r[3] for r in rows], dtype="str"),
            "product_id": pd.Series([r[4] for r in rows], dtype="str"),
        }
    )


STEPS_PER_DAY = 48
history = st.lists(line(0, 300 * STEPS_PER_DAY), min_size=1, max_size=30)
cutoffs = st.integers(20, 320).map(lambda d: BASE + d * DAY + pd.Timedelta(hours=7))
horizons = st.sampled_from([1, 30, 90])


def features(tx: pd.DataFrame, cutoff: pd.Timestamp, horizon: int) -> pd.DataFrame:
    return build_features(tx, cutoff=cutoff, windows_days=WINDOWS, horizon_days=horizon, con=CON)


def labels(tx: pd.DataFrame, cutoff: pd.Timestamp, horizon: int) -> pd.DataFrame:
    return build_labels(tx, cutoff=cutoff, horizon_days=horizon, con=CON)


@SETTINGS
@given(rows=history, extra=st.lists(line(0, 200 * STEPS_PER_DAY), max_size=15), cutoff=cutoffs, horizon=horizons)
def test_transactions_at_or_after_cutoff_change_no_feature(rows, extra, cutoff, horizon):
    tx = frame(rows)
    later = frame(extra, origin=cutoff)  # step 0 lands exactly on the cutoff; order ids may repeat earlier ones
    before = features(tx, cutoff, horizon)
    after = features(pd.concat([tx, later], ignore_index=True), cutoff, horizon)
    pd.testing.assert_frame_equal(before, after, check_exact=True)


@SETTINGS
@given(
    rows=history,
    extra=st.lists(line(-100 * STEPS_PER_DAY, 200 * STEPS_PER_DAY), max_size=15),
    cutoff=cutoffs,
    horizon=horizons,
)
def test_labels_only_see_their_window(rows, extra, cutoff, horizon):
    tx = frame(rows)
    end = cutoff + horizon * DAY
    outside = frame(extra, origin=end)  # at or after cutoff + horizon ...
    outside = outside.assign(  # ... or, for negative steps, before the cutoff
        timestamp=outside["timestamp"].where(outside["timestamp"] >= end, outside["timestamp"] - horizon * DAY)
    )
    assert not ((outside["timestamp"] >= cutoff) & (outside["timestamp"] < end)).any()
    before = labels(tx, cutoff, horizon)
    after = labels(pd.concat([tx, outside], ignore_index=True), cutoff, horizon)
    pd.testing.assert_frame_equal(before, after, check_exact=True)


@settings(SETTINGS, max_examples=20)
@given(rows=history, seed=st.integers(0, 2**32 - 1), cutoff=cutoffs, horizon=horizons)
def test_row_order_does_not_matter(rows, seed, cutoff, horizon):
    tx = frame(rows)
    shuffled = tx.iloc[np.random.default_rng(seed).permutation(len(tx))].reset_index(drop=True)
    pd.testing.assert_frame_equal(features(tx, cutoff, horizon), features(shuffled, cutoff, horizon), check_exact=True)
    pd.testing.assert_frame_equal(labels(tx, cutoff, horizon), labels(shuffled, cutoff, horizon), check_exact=True)


@settings(SETTINGS, max_examples=5)
@given(rows=history, cutoff=cutoffs)
def test_inputs_are_not_mutated(rows, cutoff):
    tx = frame(rows).iloc[::-1]  # a non-default index too
    sat = pd.DataFrame({"customer_id": ["c1", "c2"], "timestamp": [BASE, BASE + 400 * DAY], "review_score": [4.0, 1.0]})
    tx_copy, sat_copy = tx.copy(deep=True), sat.copy(deep=True)
    features(tx, cutoff, 30)
    labels(tx, cutoff, 30)
    build_features(tx, cutoff=cutoff, satisfaction=sat, con=CON)
    build_training_set(tx, cutoffs=[cutoff], horizon_days=30, data_end=cutoff + 30 * DAY, satisfaction=sat, con=CON)
    pd.testing.assert_frame_equal(tx, tx_copy, check_exact=True)
    pd.testing.assert_frame_equal(sat, sat_copy, check_exact=True)


# --- a plain pandas oracle, written independently of the Ibis definitions (loops are fine in a test) -------------


def _orders(lines: pd.DataFrame) -> pd.DataFrame:
    cents = (lines["amount"] * 100).round().astype("int64")  # exact, as the data are whole cents
    return (
        lines.assign(cents=cents, gross=cents.clip(lower=0), refund_line=cents < 0)
        .groupby(["customer_id", "order_id"], as_index=False)
        .agg(ts=("timestamp", "min"), net=("cents", "sum"), gross=("gross", "sum"), refund=("refund_line", "any"))
    )


def oracle_features(tx: pd.DataFrame, cutoff: pd.Timestamp, horizon: int) -> pd.DataFrame:
    lines = tx[tx["timestamp"] < cutoff]
    orders = _orders(lines)
    out = []
    for cid, o in orders.groupby("customer_id"):
        buys = o[o["net"] > 0]
        last = buys["ts"].max() if len(buys) else o["ts"].max()
        days = sorted(buys["ts"].dt.normalize().unique())
        day_spend = buys.groupby(buys["ts"].dt.normalize())["net"].sum().sort_index() / 100
        gaps = np.diff(np.array(days, dtype="datetime64[D]").astype("int64")).astype(float)
        row = {
            "customer_id": cid,
            "recency_days": (cutoff - last) / DAY,
            "tenure_days": (cutoff - o["ts"].min()) / DAY,
            "frequency_orders": float(len(buys)),
            "purchase_days": float(len(days)),
            "repeat_purchase_days": float(max(len(days) - 1, 0)),
            "first_to_last_days": (buys["ts"].max() - buys["ts"].min()) / DAY if len(buys) else np.nan,
            "repeat_spend_mean": day_spend.iloc[1:].mean() if len(days) > 1 else 0.0,
            "day_spend_mean": day_spend.mean() if len(days) else 0.0,
            "monetary_total": o["net"].sum() / 100,
            "monetary_mean_order": buys["net"].mean() / 100 if len(buys) else np.nan,
            "monetary_max_order": buys["net"].max() / 100 if len(buys) else np.nan,
            "gap_mean_days": gaps.mean() if len(gaps) else np.nan,
            "gap_std_days": gaps.std(ddof=1) if len(gaps) > 1 else np.nan,
            "refund_count": float(o["refund"].sum()),
            "refund_amount": (o["gross"].sum() - o["net"].sum()) / 100,
            "refund_share": (o["gross"].sum() - o["net"].sum()) / o["gross"].sum() if o["gross"].sum() else np.nan,
            "n_products": float(
                lines.loc[(lines["customer_id"] == cid) & (lines["amount"] > 0), "product_id"].nunique()
            ),
        }
        row["overdue_ratio"] = row["recency_days"] / row["gap_mean_days"]
        for w in sorted({*WINDOWS, horizon}):
            inside = o["ts"] >= cutoff - w * DAY
            row[f"orders_{w}d"] = float((inside & (o["net"] > 0)).sum())
            row[f"spend_{w}d"] = o.loc[inside, "net"].sum() / 100
        previous = (o["ts"] >= cutoff - 2 * horizon * DAY) & (o["ts"] < cutoff - horizon * DAY)
        recent, prev = max(row[f"spend_{horizon}d"], 0.0), max(o.loc[previous, "net"].sum() / 100, 0.0)
        row["spend_trend"] = (recent - prev) / (recent + prev) if recent + prev > 0 else 0.0
        out.append(row)
    return pd.DataFrame(out, columns=None if out else ["customer_id"])


def oracle_labels(tx: pd.DataFrame, cutoff: pd.Timestamp, horizon: int) -> pd.DataFrame:
    inside = tx[(tx["timestamp"] >= cutoff) & (tx["timestamp"] < cutoff + horizon * DAY)]
    orders = _orders(inside)
    g = orders.assign(buy=orders["net"] > 0).groupby("customer_id")
    out = pd.DataFrame({"future_value": g["net"].sum() / 100, "future_orders": g["buy"].sum().astype(float)})
    out["churned"] = (out["future_orders"] == 0).astype(float)
    return out.reset_index()


@SETTINGS
@given(rows=st.lists(line(0, 300 * STEPS_PER_DAY), min_size=1, max_size=40), cutoff=cutoffs, horizon=horizons)
def test_matches_pandas_oracle(rows, cutoff, horizon):
    tx = frame(rows)
    got = features(tx, cutoff, horizon)
    want = oracle_features(tx, cutoff, horizon)
    assert got["customer_id"].tolist() == sorted(want["customer_id"])
    want = want.set_index("customer_id").loc[got["customer_id"]]
    for col in want.columns:
        np.testing.assert_allclose(got[col].to_numpy(), want[col].to_numpy(), rtol=1e-9, atol=1e-9, err_msg=col)
    assert ((got["spend_trend"] >= -1) & (got["spend_trend"] <= 1)).all()

    got_l = labels(tx, cutoff, horizon)
    want_l = oracle_labels(tx, cutoff, horizon)
    assert got_l["customer_id"].tolist() == want_l["customer_id"].tolist()
    for col in ("future_value", "future_orders", "churned"):
        np.testing.assert_allclose(got_l[col].to_numpy(), want_l[col].to_numpy(), rtol=1e-9, atol=1e-9, err_msg=col)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_timestamp_unit_does_not_matter(unit):
    rows = [("c1", 10, 500, "o1", "p1"), ("c1", 100, 700, "o2", "p2"), ("c2", 3000, -200, "o3", "p1")]
    tx = frame(rows)
    cutoff = BASE + 100 * DAY
    want = features(tx, cutoff, 30)
    got = features(tx.astype({"timestamp": f"datetime64[{unit}]"}), cutoff, 30)
    pd.testing.assert_frame_equal(want, got, check_exact=True)
