"""The history's notices on Spark: stray rows after the end, a missing month inside and a reused order id give the
bounds and the notices DuckDB gives (the checks are Ibis queries over the accepted rows, compiled for either)."""

from __future__ import annotations

import warnings

import ibis
import ibis.expr.types as ir
import pandas as pd
import pytest

from tests.pipeline.test_history_gaps import DAILY, _table
from tiercast.pipeline.engine.session import to_engine_table
from tiercast.pipeline.ingest.engine_tables import data_bounds_on

pytestmark = pytest.mark.spark


def _bounds(con: ibis.BaseBackend, t: ir.Table) -> tuple[tuple[pd.Timestamp, pd.Timestamp], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bounds = data_bounds_on(con, t, source="x.csv", column="date", order_column="order")
    return bounds, [str(w.message) for w in caught if w.category is UserWarning]


def test_spark_gives_the_history_and_notices_of_duckdb(spark_con) -> None:
    times = [t for t in DAILY if not t.startswith("2023-03")] + ["2023-09-19 10:00:00"]
    orders = [f"o{i}" for i in range(len(times))]
    orders[5] = "o0"  # the id of the first day's order again, five days later
    frame = _table(times, orders=orders, customers=["c1"] * len(times))
    want = _bounds(ibis.duckdb.connect(), frame)
    assert want[0] == (pd.Timestamp("2023-01-01"), pd.Timestamp("2023-07-01"))
    assert [t.split(":")[1][:14] for t in want[1]] == [" 1 row lies af", " no transactio", " 1 order id of"]
    assert _bounds(spark_con, to_engine_table(spark_con, frame.execute())) == want
