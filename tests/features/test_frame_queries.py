"""Features of pandas frames on one connection: the query is compiled twice per shape of frame, and every call gives
what building and compiling it for that frame and cutoff gives."""

from __future__ import annotations

from collections import OrderedDict

import ibis
import pandas as pd
import pytest

from tiercast.features import frame_queries
from tiercast.features.build import as_table, build_features
from tiercast.features.frame_queries import run_on_frame

BASE = pd.Timestamp("2023-01-01")


def _frame(seed: int, n: int = 120) -> pd.DataFrame:
    i = pd.RangeIndex(n)
    return pd.DataFrame(
        {
            "customer_id": ((i * (seed + 3)) % 7).astype(str).map("c{}".format),
            "order_id": (i // 2).astype(str),
            "timestamp": BASE + pd.to_timedelta((i * (200 + seed)) % 300, unit="D") + pd.to_timedelta(i % 5, unit="h"),
            "amount": ((i * (37 + seed)) % 90 - 15).astype(float),
            "product_id": (i % 11).astype(str),
        }
    )


@pytest.fixture
def compiles(monkeypatch):
    """A connection of its own, nothing checked yet in the process, and the number of SQL compilations made."""
    monkeypatch.setattr(frame_queries, "_SHAPES", OrderedDict())
    con = ibis.duckdb.connect()
    count = {"n": 0}
    compile_ = con.compile

    def counted(expr, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003 - Ibis' signature
        count["n"] += 1
        return compile_(expr, *args, **kwargs)

    monkeypatch.setattr(con, "compile", counted)
    return con, count


def test_frames_of_one_shape_compile_twice_and_each_gets_its_own_features(compiles):
    con, count = compiles
    cutoffs = [BASE + pd.Timedelta(days=d) for d in (100, 160, 220)]
    for seed in (0, 1):
        frame = _frame(seed)
        for cutoff in cutoffs:
            got = build_features(frame, cutoff=cutoff, windows_days=(30, 90), horizon_days=60, con=con)
            alone = build_features(frame, cutoff=cutoff, windows_days=(30, 90), horizon_days=60)  # its own build
            pd.testing.assert_frame_equal(got, alone)
    assert count["n"] == 2  # the first two calls; the four others ran the checked template


def test_another_shape_or_setting_is_compiled_on_its_own(compiles):
    con, count = compiles
    frame = _frame(0)
    first, second = BASE + pd.Timedelta(days=150), BASE + pd.Timedelta(days=200)
    for cutoff in (first, second):
        build_features(frame, cutoff=cutoff, windows_days=(30,), horizon_days=60, con=con)
    assert count["n"] == 2
    without_product = frame.drop(columns="product_id")
    got = build_features(without_product, cutoff=first, windows_days=(30,), horizon_days=60, con=con)
    assert count["n"] == 3 and "n_products" not in got.columns  # not the SQL of the frame with products
    alone = build_features(without_product, cutoff=first, windows_days=(30,), horizon_days=60)
    pd.testing.assert_frame_equal(got, alone)
    longer = build_features(frame, cutoff=first, windows_days=(30,), horizon_days=90, con=con)
    assert count["n"] == 4 and "orders_90d" in longer.columns


def test_a_literal_not_tied_to_the_cutoff_refuses_the_template(compiles):
    con, count = compiles
    fixed = BASE + pd.Timedelta(days=40)  # a timestamp the cutoff does not move: the SQL is no template

    def rows(table: ibis.Table):
        def build(cutoff: pd.Timestamp) -> ibis.Table:
            kept = table.filter((table["timestamp"] < cutoff) & (table["timestamp"] >= ibis.timestamp(fixed)))
            return kept.aggregate(n=kept.count())

        return build

    cutoffs = [BASE + pd.Timedelta(days=d) for d in (100, 160, 220)]
    for cutoff in cutoffs:
        table = as_table(_frame(0))
        got = run_on_frame(con, table, ("rows since a fixed day",), rows(table), cutoff).to_pandas()
        expected = int(((_frame(0)["timestamp"] < cutoff) & (_frame(0)["timestamp"] >= fixed)).sum())
        assert got["n"].tolist() == [expected]
    assert count["n"] == 3  # refused after the second call: every call compiled
