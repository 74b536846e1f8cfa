"""A query compiled once and run at many cutoffs gives what building and compiling it at each cutoff gives."""

from __future__ import annotations

from collections import OrderedDict

import ibis
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tiercast.features import cutoff_queries
from tiercast.features.build import as_table
from tiercast.features.cutoff_queries import CutoffQuery, SQLTemplate, run_at_cutoffs
from tiercast.features.training_set import labelled_rows

BASE = pd.Timestamp("2023-01-01")


def test_template_moves_every_timestamp_by_the_change_of_cutoff():
    sql = (
        "SELECT 1 WHERE ts < MAKE_TIMESTAMP(2023, 3, 1, 0, 0, 0.0) AND ts >= MAKE_TIMESTAMP(2023, 1, 30, 0, 0, 0.0) "
        "AND key = '0:2023-03-01T00:00:00:' AND n > 2023"
    )
    template = SQLTemplate(sql, pd.Timestamp("2023-03-01"))
    assert template.shifts == [(pd.Timedelta(0), False), (pd.Timedelta(days=-30), False), (pd.Timedelta(0), True)]
    assert template.at(pd.Timestamp("2023-03-01")) == sql
    assert template.at(pd.Timestamp("2024-02-29 13:05:07.25")) == (
        "SELECT 1 WHERE ts < MAKE_TIMESTAMP(2024, 2, 29, 13, 5, 7.25) "
        "AND ts >= MAKE_TIMESTAMP(2024, 1, 30, 13, 5, 7.25) "
        "AND key = '0:2024-02-29T13:05:07.250000:' AND n > 2023"
    )


def _transactions(n: int = 240) -> pd.DataFrame:
    """Six customers' lines over 400 days, with products, categories and channels (the breadth counts)."""
    i = pd.RangeIndex(n)
    return pd.DataFrame(
        {
            "customer_id": (i % 6).astype(str).map("c{}".format),
            "order_id": (i // 2).astype(str),
            "timestamp": BASE + pd.to_timedelta(i * 400 * 1440 // n, unit="min") + pd.to_timedelta(i % 5, unit="h"),
            "amount": ((i * 37) % 90 - 15).astype(float),
            "product_id": (i % 11).astype(str),
            "category": (i % 4).astype(str).map("k{}".format),
            "channel": (i % 3).astype(str).map("web{}".format),
        }
    )


CON = ibis.duckdb.connect()
TX = as_table(_transactions())


def _rows(horizon: int) -> callable:
    return lambda cutoff: labelled_rows(TX, cutoff=cutoff, horizon_days=horizon, windows_days=(30, 365)).order_by(
        "customer_id"
    )


# Each example compiles the query once per cutoff to compare (about 0.4 s each): a few examples, few cutoffs.
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    days=st.lists(st.integers(30, 330), min_size=3, max_size=4, unique=True),
    micros=st.integers(0, 86_400_000_000 - 1),
    horizon=st.sampled_from([1, 30, 90]),
)
def test_rows_at_every_cutoff_equal_their_own_build_and_sql(days, micros, horizon):
    cutoffs = [BASE + pd.Timedelta(days=d, microseconds=micros) for d in days]
    build = _rows(horizon)
    query = CutoffQuery(CON, build)
    got = [query.at(cutoff) for cutoff in cutoffs]
    assert query._trusted is not None  # the cutoffs after the second ran the template
    _, template = query._trusted
    for cutoff in cutoffs:
        assert template.at(cutoff) == CON.compile(build(cutoff))
    assert got[-1].equals(CON.to_pyarrow(build(cutoffs[-1])))  # run from the template as Ibis runs its own SQL


def test_a_timestamp_not_tied_to_the_cutoff_refuses_the_template():
    fixed = ibis.literal(pd.Timestamp("2023-06-01").to_pydatetime(), type="timestamp")

    def build(cutoff: pd.Timestamp) -> ibis.Table:
        before = TX.filter(TX.timestamp < ibis.literal(cutoff.to_pydatetime(), type="timestamp"))
        return before.filter(before.timestamp >= fixed).group_by("customer_id").aggregate(n=ibis._.count())

    cutoffs = [BASE + pd.Timedelta(days=d) for d in (200, 230, 260, 300)]
    query = CutoffQuery(CON, build)
    got = [query.at(c).sort_by("customer_id") for c in cutoffs]
    assert query._trusted is None and query._refused
    assert [g.to_pydict() for g in got] == [
        CON.to_pyarrow(build(c)).sort_by("customer_id").to_pydict() for c in cutoffs
    ]
    assert got[0]["n"].to_pylist() != got[-1]["n"].to_pylist()  # the cutoffs do give different rows


def test_a_rebuilt_query_reuses_the_checked_template(monkeypatch):
    monkeypatch.setattr(cutoff_queries, "_TRUSTED", OrderedDict())  # nothing checked yet in this process
    con = ibis.duckdb.connect()
    rows = _rows(30)
    built = []

    def build(cutoff: pd.Timestamp) -> ibis.Table:
        built.append(cutoff)
        return rows(cutoff)

    first = [BASE + pd.Timedelta(days=d) for d in (100, 130)]
    assert len(list(run_at_cutoffs(con, build, first))) == 2 and built == first  # checked at the second
    later = [BASE + pd.Timedelta(days=d) for d in (160, 190, 220)]
    got = list(run_at_cutoffs(con, build, later))
    assert built == [*first, later[0]]  # the first of the later cutoffs, to find the template; none after
    assert all(g.equals(con.to_pyarrow(rows(c))) for g, c in zip(got, later, strict=True))
    # the next job of the process, on a connection of its own: the template is found at its first cutoff
    other = ibis.duckdb.connect()
    built.clear()
    got = list(run_at_cutoffs(other, build, later))
    assert built == [later[0]]
    assert all(g.equals(other.to_pyarrow(rows(c))) for g, c in zip(got, later, strict=True))


def test_templates_differing_only_in_their_distances_from_the_cutoff_are_not_the_same():
    """A window's length may appear in the SQL only as a timestamp: the distances are part of the key."""
    cutoff = pd.Timestamp("2023-03-01")
    sql = "SELECT 1 WHERE ts >= MAKE_TIMESTAMP({}, 0, 0, 0.0) AND ts < MAKE_TIMESTAMP(2023, 3, 1, 0, 0, 0.0)"
    thirty, ninety = (SQLTemplate(sql.format(start), cutoff) for start in ("2023, 1, 30", "2022, 11, 30"))
    assert thirty.parts == ninety.parts and thirty.key != ninety.key
    assert SQLTemplate(sql.format("2023, 1, 30"), cutoff).key == thirty.key
