"""as_of: the one cutoff filter, half-open windows, cutoff parsing."""

from __future__ import annotations

import datetime as dt

import ibis
import pandas as pd
import pytest

from tiercast.features import as_of

TIMES = pd.to_datetime(
    ["2024-01-01 00:00:00", "2024-01-01 23:59:59.999999", "2024-01-02 00:00:00", "2024-01-03 00:00:00"],
    format="ISO8601",
)


@pytest.fixture(scope="module")
def table():
    return ibis.memtable(pd.DataFrame({"timestamp": TIMES, "i": range(len(TIMES))}))


def rows(expr) -> list[int]:
    return sorted(expr.to_pyarrow().column("i").to_pylist())


def test_before_is_strict(table):
    assert rows(as_of.before(table, cutoff="2024-01-02")) == [0, 1]
    assert rows(as_of.before(table, cutoff="2024-01-01")) == []


def test_window_is_half_open(table):
    assert rows(as_of.window(table, start="2024-01-01", end="2024-01-02")) == [0, 1]
    assert rows(as_of.window(table, start="2024-01-02", end="2024-01-03")) == [2]
    assert rows(as_of.window(table, start="2024-01-02", end="2024-01-02")) == []
    with pytest.raises(ValueError, match="before its start"):
        as_of.window(table, start="2024-01-03", end="2024-01-02")


def test_cutoff_is_keyword_only(table):
    with pytest.raises(TypeError):
        as_of.before(table, "2024-01-02")  # type: ignore[misc]


@pytest.mark.parametrize(
    "value", ["2024-01-02", dt.date(2024, 1, 2), dt.datetime(2024, 1, 2), pd.Timestamp("2024-01-02")]
)
def test_to_cutoff_accepts_dates(value):
    assert as_of.to_cutoff(value) == pd.Timestamp("2024-01-02")


@pytest.mark.parametrize(
    "value", [pd.Timestamp("2024-01-02", tz="UTC"), pd.NaT, pd.Timestamp("2024-01-02") + pd.Timedelta(1, "ns")]
)
def test_to_cutoff_rejects(value):
    with pytest.raises(ValueError):
        as_of.to_cutoff(value)


def test_days_between_is_microsecond_exact():
    t = ibis.memtable(pd.DataFrame({"a": pd.to_datetime(["2024-01-01 06:00"]), "b": pd.to_datetime(["2023-12-31"])}))
    got = as_of.days_between(t.a, t.b).name("d").as_table().to_pyarrow().column("d").to_pylist()
    assert got == [1.25]
