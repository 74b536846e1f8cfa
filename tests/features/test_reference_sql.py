"""Features against an independent implementation: the benchmark's hand-written DuckDB SQL, on synthetic data.

Also covers the synthetic generator and the ``tiercast-bench gen`` command the benchmark relies on.
"""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tiercast.benchmarks import bench_features
from tiercast.benchmarks.cli import app
from tiercast.benchmarks.synthetic import generate_transactions, write_transactions


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    return write_transactions(tmp_path_factory.mktemp("bench") / "tx.parquet", 30_000, 2_000, seed=3)


@pytest.mark.parametrize("cutoff", ["2023-06-15", "2024-01-01"])
def test_features_agree_with_sql_reference(parquet, cutoff):
    reference = bench_features.run_reference(parquet, cutoff=cutoff)
    tiercast = bench_features.run_tiercast(parquet, cutoff=cutoff)
    check = bench_features.compare(reference, tiercast)
    assert check["agree"], check["mismatches"]
    assert len(check["columns"]) >= 20


def test_generator_shape_and_determinism():
    df = generate_transactions(5_000, 400, seed=1)
    assert len(df) == 5_000
    assert df.columns.tolist() == [
        "customer_id", "timestamp", "amount", "order_id", "quantity", "product_id", "category", "channel",
    ]  # fmt: skip
    assert df["timestamp"].dtype == "datetime64[us]" and df["amount"].dtype == np.float64
    assert df["customer_id"].nunique() == 400
    assert df["timestamp"].is_monotonic_increasing
    assert 0.01 < (df["amount"] < 0).mean() < 0.10  # a few percent refund lines
    assert df.groupby("order_id")["customer_id"].nunique().max() == 1  # an order belongs to one customer
    assert df.groupby("order_id").size().max() > 1  # multi-line orders exist
    pd.testing.assert_frame_equal(df, generate_transactions(5_000, 400, seed=1))
    assert not df.equals(generate_transactions(5_000, 400, seed=2))


def test_heavy_tailed_frequencies():
    df = generate_transactions(50_000, 5_000, seed=0)
    orders = df.groupby("customer_id")["order_id"].nunique()
    assert orders.min() >= 1
    assert orders.quantile(0.99) > 5 * orders.median()


def test_cli_gen(tmp_path):
    out = tmp_path / "g.parquet"
    result = CliRunner().invoke(
        app, ["gen", "--transactions", "2000", "--customers", "100", "--seed", "4", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    table = ibis.duckdb.connect().read_parquet(str(out))
    assert table.count().to_pyarrow().as_py() == 2000
