"""build_features: accepted inputs, output layout, errors."""

from __future__ import annotations

import re

import ibis
import numpy as np
import pandas as pd
import pytest

from tiercast.features.build import build_features, feature_names, feature_table
from tiercast.features.labels import build_labels

TX = pd.DataFrame(
    {
        "customer_id": ["b", "a", "a", "b"],
        "timestamp": pd.to_datetime(["2023-01-05", "2023-02-01", "2023-03-01", "2023-03-02"]),
        "amount": [10.0, 20.0, -5.0, 7.5],
        "order_id": ["1", "2", "3", "4"],
        "channel": ["web", "store", "store", "app"],
    }
)
CUTOFF = pd.Timestamp("2023-04-01")


@pytest.fixture(scope="module")
def con():
    return ibis.duckdb.connect()


def test_default_columns_in_order(con):
    f = build_features(TX, cutoff=CUTOFF, con=con)
    names = feature_names(windows_days=(30, 90, 180, 365), horizon_days=90, optional=["channel"])
    assert f.columns.tolist() == names
    assert names[:3] == ["customer_id", "recency_days", "tenure_days"]
    # 275 = 365 - horizon: with the 365-day window it gives last year's window of the next horizon
    orders = ["orders_30d", "orders_90d", "orders_180d", "orders_275d", "orders_365d"]
    assert [c for c in names if c.startswith("orders_")] == orders
    assert "spend_275d" not in feature_names(windows_days=(30, 90), horizon_days=90)
    assert f["customer_id"].tolist() == ["a", "b"]
    assert f["n_channels"].tolist() == [1.0, 2.0]


def test_horizon_adds_a_window(con):
    f = build_features(TX, cutoff=CUTOFF, windows_days=(30,), horizon_days=45, con=con)
    assert {"orders_30d", "spend_30d", "orders_45d", "spend_45d"} <= set(f.columns)
    assert "orders_90d" not in f.columns


def test_ibis_table_and_pandas_agree(con):
    from_pandas = build_features(TX, cutoff=CUTOFF, con=con)
    from_ibis = build_features(ibis.memtable(TX), cutoff=CUTOFF, con=con)
    without_con = build_features(TX, cutoff=CUTOFF)
    pd.testing.assert_frame_equal(from_pandas, from_ibis)
    pd.testing.assert_frame_equal(from_pandas, without_con)


def test_parquet_table_on_its_backend(tmp_path):
    path = tmp_path / "tx.parquet"
    TX.to_parquet(path)
    con = ibis.duckdb.connect()
    f = build_features(con.read_parquet(str(path)), cutoff=CUTOFF)  # runs on the table's own backend
    pd.testing.assert_frame_equal(f, build_features(TX, cutoff=CUTOFF))


def test_non_string_ids_are_cast(con):
    tx = TX.assign(customer_id=[2, 1, 1, 2], order_id=[1, 2, 3, 4])
    f = build_features(tx, cutoff=CUTOFF, con=con)
    assert f["customer_id"].tolist() == ["1", "2"]
    assert pd.api.types.is_string_dtype(f["customer_id"])


def test_no_history_gives_empty_frame_with_columns(con):
    f = build_features(TX, cutoff="2022-01-01", con=con)
    assert f.empty
    assert f.columns.tolist() == feature_names(windows_days=(30, 90, 180, 365), horizon_days=90, optional=["channel"])
    assert all(f[c].dtype == np.float64 for c in f.columns[1:])
    assert build_labels(TX, cutoff="2024-01-01", horizon_days=30, con=con).empty


def test_missing_column_is_a_clear_error(con):
    with pytest.raises(ValueError, match="order_id"):
        build_features(TX.drop(columns="order_id"), cutoff=CUTOFF, con=con)


def test_time_zone_aware_timestamps_are_refused(con):
    with pytest.raises(ValueError, match="naive"):
        build_features(TX.assign(timestamp=TX["timestamp"].dt.tz_localize("UTC")), cutoff=CUTOFF, con=con)


def test_cutoff_is_required():
    with pytest.raises(TypeError):
        build_features(TX)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        build_features(TX, CUTOFF)  # type: ignore[misc]


def test_bad_windows_are_refused(con):
    with pytest.raises(ValueError, match="positive"):
        build_features(TX, cutoff=CUTOFF, windows_days=(0, 30), con=con)


def test_plan_is_two_aggregations_and_one_window():
    # The cost model of the feature query: lines -> orders and orders -> customers aggregations, one window over
    # orders, and no count(DISTINCT) for purchase days. Guards against a refactor that quietly adds passes.
    t = ibis.table({"customer_id": "string", "timestamp": "timestamp", "amount": "float64", "order_id": "string"})
    sql = ibis.to_sql(feature_table(t, cutoff=CUTOFF), dialect="duckdb").upper()
    assert sql.count("GROUP BY") == 2
    assert "COUNT(DISTINCT" not in sql
    windows = set(re.findall(r"OVER \((.*?)\)", " ".join(sql.split())))
    assert len(windows) == 1, windows  # lag and rank share one partition / order


def test_satisfaction_without_scores_is_a_clear_error(con):
    sat = pd.DataFrame({"customer_id": ["a"], "timestamp": [CUTOFF]})
    with pytest.raises(ValueError, match="satisfaction reviews lack required columns \\['review_score'\\]"):
        build_features(TX, cutoff=CUTOFF, satisfaction=sat, con=con)
