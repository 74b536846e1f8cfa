"""Features, labels and training sets built on Spark equal DuckDB's: on the hand-computed fixture and on 100k
synthetic transactions read from a date-partitioned Parquet folder (floats within 1e-9)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.features.test_hand_computed import CUTOFF, EXPECTED, HORIZON, SATISFACTION, TX, WINDOWS
from tests.spark.conftest import SYN_CUTOFF, SYN_HORIZON, SYN_WINDOWS, assert_same
from tiercast.features.build import build_features, execute
from tiercast.features.labels import build_labels
from tiercast.features.training_set import build_training_set
from tiercast.pipeline.engine.rows import build_training_set_on
from tiercast.pipeline.engine.sampling import Sampling
from tiercast.pipeline.engine.writes import PARTITION_COLUMN, write_features
from tiercast.pipeline.ingest.engine_tables import read_transactions_table

pytestmark = pytest.mark.spark

# -- the hand-computed fixture ----------------------------------------------------------------------------------------


def test_hand_fixture_features(spark_con):
    got = build_features(
        TX, cutoff=CUTOFF, windows_days=WINDOWS, horizon_days=HORIZON, satisfaction=SATISFACTION, con=spark_con
    )
    want = build_features(TX, cutoff=CUTOFF, windows_days=WINDOWS, horizon_days=HORIZON, satisfaction=SATISFACTION)
    assert_same(got, want)
    for col, values in EXPECTED.items():  # and both equal the numbers worked out by hand
        np.testing.assert_allclose(got[col].to_numpy(), values, rtol=1e-12, err_msg=col)


def test_hand_fixture_labels_and_training_set(spark_con):
    assert_same(
        build_labels(TX, cutoff=CUTOFF, horizon_days=HORIZON, con=spark_con),
        build_labels(TX, cutoff=CUTOFF, horizon_days=HORIZON),
    )
    kwargs = dict(cutoffs=[CUTOFF], horizon_days=HORIZON, windows_days=WINDOWS, data_end="2024-03-01")
    got = build_training_set(TX, con=spark_con, **kwargs)
    want = build_training_set(TX, **kwargs)
    assert got["cutoff"].tolist() == want["cutoff"].tolist()
    assert_same(got.drop(columns="cutoff"), want.drop(columns="cutoff"))


def test_microsecond_timestamps_round_trip(spark_con):
    """A purchase 1 microsecond before the cutoff is seen, one at the cutoff is not; recency is exact."""
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "timestamp": pd.to_datetime(
                ["2024-01-01 00:00:00", "2023-12-31 23:59:59.999999", "2023-03-26 01:30:00"], format="ISO8601"
            ),
            "amount": [5.0, 7.25, 3.0],
            "order_id": ["o1", "o2", "o3"],
        }
    ).astype({"timestamp": "datetime64[us]"})
    got = build_features(tx, cutoff="2024-01-01", windows_days=(30,), horizon_days=30, con=spark_con)
    want = build_features(tx, cutoff="2024-01-01", windows_days=(30,), horizon_days=30)
    assert_same(got, want)
    assert got["recency_days"].iloc[0] == 1 / 86_400_000_000
    assert got["monetary_total"].tolist() == [7.25, 3.0]


# -- 100k synthetic transactions in a date-partitioned Parquet folder --------------------------------------------------


def test_100k_features_equal(spark_con, spark_features_100k, duck_features_100k):
    got = execute(spark_features_100k.order_by("customer_id"), spark_con)
    want = duck_features_100k
    assert {"n_products", "n_categories", "n_channels"} <= set(want.columns)
    assert len(want) > 5_000
    assert_same(got, want)


def test_100k_labels_equal(spark_con, duck_con, partitioned_tx):
    end = SYN_CUTOFF + pd.Timedelta(days=SYN_HORIZON)

    def labels(con):
        tx = read_transactions_table(con, partitioned_tx, until=end)
        return build_labels(tx, cutoff=SYN_CUTOFF, horizon_days=SYN_HORIZON, con=con)

    assert_same(labels(spark_con), labels(duck_con))


def test_100k_sampled_training_set_equal(spark_con, duck_con, partitioned_tx):
    kwargs = dict(
        cutoffs=["2023-04-01", SYN_CUTOFF],
        horizon_days=SYN_HORIZON,
        windows_days=SYN_WINDOWS,
        data_end="2024-01-01",
        sample=2_000,
        seed=3,
    )
    got, got_sampling = build_training_set_on(spark_con, read_transactions_table(spark_con, partitioned_tx), **kwargs)
    want, want_sampling = build_training_set_on(duck_con, read_transactions_table(duck_con, partitioned_tx), **kwargs)
    assert got_sampling == want_sampling == Sampling()  # no per-cutoff cap
    assert got["customer_id"].nunique() == want["customer_id"].nunique() <= 2_000
    assert want["customer_id"].nunique() > 1_500  # most sampled customers have history before the first cutoff
    assert got["cutoff"].tolist() == want["cutoff"].tolist()
    assert_same(got.drop(columns="cutoff"), want.drop(columns="cutoff"))


def test_features_written_as_partitioned_parquet(spark_con, duck_con, partitioned_tx, duck_features_100k, tmp_path):
    """Both engines write the ``cutoff_date=YYYY-MM-DD`` partition with the rows of build_features; writing a
    cutoff replaces that partition's old files and leaves the other partitions alone."""
    want = duck_features_100k
    for name, con in (("spark", spark_con), ("duckdb", duck_con)):
        stale, other = tmp_path / name / "cutoff_date=2023-07-01", tmp_path / name / "cutoff_date=2023-04-01"
        for folder in (stale, other):
            folder.mkdir(parents=True)
            want.head(3).to_parquet(folder / "old.parquet")
        tx = read_transactions_table(con, partitioned_tx, until=SYN_CUTOFF)
        written = write_features(
            con, tx, tmp_path / name, cutoff=SYN_CUTOFF, windows_days=SYN_WINDOWS, horizon_days=SYN_HORIZON
        )
        assert written == f"{tmp_path / name}/{PARTITION_COLUMN}=2023-07-01"
        assert not (stale / "old.parquet").exists() and (other / "old.parquet").exists()
        got = pd.read_parquet(written).sort_values("customer_id", ignore_index=True)
        assert (got["cutoff"] == SYN_CUTOFF).all()
        assert_same(got[list(want.columns)], want)
