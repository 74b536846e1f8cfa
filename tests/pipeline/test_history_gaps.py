"""Dates that look wrong in otherwise good data: a handful of stray rows after the data's end (the history ends before
them, the rows stay accepted), an empty stretch of weeks inside the history (a failed export), and an order id of one
customer reused on a later date. Each gets a one-line notice; weekends and a closed week do not."""

from __future__ import annotations

import warnings
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd
import pytest
import yaml

from tiercast.features.contract import AMOUNT, CUSTOMER_ID, ORDER_ID, TIMESTAMP
from tiercast.pipeline.config import load_config
from tiercast.pipeline.ingest.engine_tables import data_bounds_on
from tiercast.pipeline.ingest.history import (
    MissingDays,
    PlaceholderCustomer,
    StrayRows,
    history,
    missing_days,
    placeholder_customer_on,
    reused_orders_on,
    stray_rows,
)
from tiercast.pipeline.ingest.loader import load_transactions

#: Half a year with one transaction a day: 181 rows, so one row is well under 1% of them.
DAILY = [str(d) for d in pd.date_range("2023-01-01", "2023-06-30")]


def _counts(times: list[str]) -> pd.DataFrame:
    """Rows per day, as the engine counts them."""
    day = pd.to_datetime(pd.Series(times), format="ISO8601").dt.normalize()
    return day.value_counts().rename_axis("day").reset_index(name="n")


def _table(times: list[str], orders: list[str] | None = None, customers: list[str] | None = None) -> ir.Table:
    n = len(times)
    frame = pd.DataFrame(
        {
            CUSTOMER_ID: customers or [f"c{i % 3}" for i in range(n)],
            TIMESTAMP: pd.to_datetime(times, format="ISO8601"),
            AMOUNT: [10.0] * n,
            ORDER_ID: orders or [f"o{i}" for i in range(n)],
        }
    )
    return ibis.memtable(frame)


def _bounds(times: list[str], **kw: list[str]) -> tuple[tuple[pd.Timestamp, pd.Timestamp], list[str]]:
    """The bounds computed by DuckDB and the texts of the warnings issued on the way."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bounds = data_bounds_on(
            ibis.duckdb.connect(), _table(times, **kw), source="x.csv", column="date", order_column="order"
        )
    return bounds, [str(w.message) for w in caught if w.category is UserWarning]


def test_one_stray_row_after_the_end_ends_the_history_before_it_with_a_notice() -> None:
    bounds, texts = _bounds([*DAILY, "2023-09-19 10:00:00"])
    assert bounds == (pd.Timestamp("2023-01-01"), pd.Timestamp("2023-07-01"))
    assert texts == [
        "x.csv, column date: 1 row lies after a gap of 80 days without transactions (2023-09-19): a mistyped date? "
        "history ends at 2023-06-30; the row stays accepted (check its date, or set data.run_date to quarantine it)"
    ]


def test_stray_rows_on_several_days_are_all_left_after_the_end() -> None:
    times = [*DAILY * 3, "2023-08-15 09:00:00", "2023-08-15 17:00:00", "2023-10-02 12:00:00"]  # 3 of 546 rows
    assert stray_rows(_counts(times)) == StrayRows(
        n=3,
        days=(pd.Timestamp("2023-08-15"), pd.Timestamp("2023-10-02")),
        empty_days=45,
        last=pd.Timestamp("2023-06-30"),
    )
    assert "3 rows lie after a gap of 45 days without transactions (2023-08-15, 2023-10-02)" in (
        stray_rows(_counts(times)).message("x.csv", "date")
    )


@pytest.mark.parametrize(
    ("tail", "stray"),
    [
        (["2023-07-31"], False),  # exactly 30 empty days: not more than MIN_STRAY_EMPTY_DAYS
        (["2023-08-01"], True),  # 31
        (["2023-09-01"] * 5, True),  # five rows: still a handful (and under 1% of 548)
        (["2023-09-01"] * 6, False),  # six rows are more than a handful: the business goes on there
    ],
)
def test_stray_rows_need_a_long_gap_and_a_handful_of_rows(tail: list[str], stray: bool) -> None:
    assert (stray_rows(_counts([*DAILY * 3, *tail])) is not None) is stray


def test_no_stray_rows_when_the_history_itself_pauses_as_long() -> None:
    closed = [t for t in DAILY if not "2023-03-01" <= t < "2023-04-10"]  # 40 empty days inside
    assert stray_rows(_counts([*closed, "2023-08-05"])) is None  # 35 empty days before it
    assert stray_rows(_counts([*closed, "2023-08-15"])) is not None  # 45
    assert stray_rows(_counts(DAILY[:60] + ["2023-06-01"])) is None  # one row of 61 is more than 1%


def test_a_stray_row_a_year_late_neither_starts_nor_ends_the_history() -> None:
    """Before the trailing rule, a row more than a year after the data made all the data 'isolated early rows'."""
    bounds, texts = _bounds(["1970-01-01 00:00:00", *DAILY, "2025-01-01 00:00:00"])
    assert bounds == (pd.Timestamp("2023-01-01"), pd.Timestamp("2023-07-01"))
    assert texts == [
        "x.csv, column date: 1 row lies before a gap of 19,357 days without transactions (earliest 1970-01-01): a "
        "placeholder date? history starts at 2023-01-01, and that row is left out of the features",
        "x.csv, column date: 1 row lies after a gap of 550 days without transactions (2025-01-01): a mistyped date? "
        "history ends at 2023-06-30; the row stays accepted (check its date, or set data.run_date to quarantine it)",
    ]


def test_a_missing_month_inside_the_history_gets_a_notice() -> None:
    times = [t for t in DAILY if not t.startswith("2023-03")]
    bounds, texts = _bounds(times)
    assert bounds == (pd.Timestamp("2023-01-01"), pd.Timestamp("2023-07-01"))  # nothing moves
    assert texts == [
        "x.csv, column date: no transactions on the 31 days from 2023-03-01 to 2023-03-31, where the data otherwise "
        "has one nearly every day: missing data, such as a failed export? cutoffs and label windows over these days "
        "count no purchases"
    ]


def test_missing_days_need_four_weeks() -> None:
    assert missing_days(_counts([t for t in DAILY if not "2023-03-01" <= t < "2023-03-28"])) is None  # 27 days
    found = missing_days(_counts([t for t in DAILY if not "2023-03-01" <= t < "2023-03-29"]))
    assert found == MissingDays(pd.Timestamp("2023-03-01"), 28, 0)


def test_sundays_and_a_closed_christmas_week_give_no_notice() -> None:
    days = pd.date_range("2022-06-01", "2023-06-30")
    open_days = [
        d for d in days if d.dayofweek != 6 and not pd.Timestamp("2022-12-24") <= d <= pd.Timestamp("2023-01-02")
    ]
    assert _bounds([str(d) for d in open_days]) == ((pd.Timestamp("2022-06-01"), pd.Timestamp("2023-07-01")), [])


def test_sparse_data_needs_a_longer_gap() -> None:
    """Sales every ten days: 29 empty days are within four times the usual stretch (9 days), 69 are not."""
    every_10 = [str(d) for d in pd.date_range("2021-01-01", "2023-12-31", freq="10D")]
    assert missing_days(_counts([t for t in every_10 if not "2022-03-01" <= t < "2022-03-25"])) is None
    found = missing_days(_counts([t for t in every_10 if not "2022-03-01" <= t < "2022-05-01"]))
    assert (found.empty_days, found.usual, found.more) == (69, 9, 0)
    assert "where the data otherwise is usually at most 9 days without one" in found.message("x", "d")


def test_history_reports_the_longest_of_several_missing_stretches() -> None:
    times = [t for t in DAILY if not (t.startswith("2023-02") or t.startswith("2023-04") or t[:7] == "2023-05")]
    found = history(_counts(times))
    assert found.missing == MissingDays(pd.Timestamp("2023-04-01"), 61, 0, more=1)
    assert found.messages("x", "d")[0].endswith(
        "one nearly every day; 1 more such stretch: missing data, such as a failed export? cutoffs and label windows "
        "over these days count no purchases"
    )


def test_an_order_id_reused_on_a_later_date_gets_a_notice() -> None:
    times = ["2023-03-08 10:00:00", "2023-03-08 10:00:05", "2023-12-20 10:00:00", "2023-12-21 09:00:00"]
    orders, customers = ["O5", "O5", "O5", "O6"], ["C1", "C1", "C1", "C2"]
    found = reused_orders_on(ibis.duckdb.connect(), _table(times, orders, customers))
    assert found is not None
    assert found.message("x.csv", "order") == (
        "x.csv, column order: 1 order id of a customer has lines more than 1 day apart (e.g. customer 'C1', order "
        "'O5': 2023-03-08 to 2023-12-20): order numbers reused or restarted? each such order is counted once, at its "
        "first time"
    )


def test_an_order_over_midnight_or_one_id_for_two_customers_is_no_reuse() -> None:
    times = ["2023-03-08 23:50:00", "2023-03-09 00:10:00", "2023-03-10 08:00:00", "2023-03-11 08:00:00"]
    table = _table(times, ["O1", "O1", "O2", "O2"], ["C1", "C1", "C1", "C2"])  # lines of O2: two customers
    assert reused_orders_on(ibis.duckdb.connect(), table) is None
    exactly_a_day = _table(["2023-03-08 10:00:00", "2023-03-09 10:00:00"], ["O1", "O1"], ["C1", "C1"])
    assert reused_orders_on(ibis.duckdb.connect(), exactly_a_day) is None


def test_load_transactions_keeps_stray_rows_and_names_reused_orders(tmp_path: Path) -> None:
    lines = [f"c{i % 7},{t},10,o{i}" for i, t in enumerate(DAILY)] + ["c0,2023-09-19 10:00,5,o0"]
    data = tmp_path / "tx.csv"
    data.write_text("c,ts,amt,ord\n" + "\n".join(lines) + "\n", encoding="utf-8")
    columns = {"customer_id": "c", "timestamp": "ts", "amount": "amt", "order_id": "ord"}
    cfg = {
        "base": "default",
        "data": {
            "transactions": {"path": str(data), "columns": columns},
            "quarantine_path": str(tmp_path / "out" / "quarantine.parquet"),
            "run_date": "2023-12-31",
        },
        "outputs": {"dir": str(tmp_path / "out")},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_transactions(load_config(tmp_path / "config.yaml"))
    texts = [str(w.message) for w in caught if w.category is UserWarning]
    assert loaded.bounds == (pd.Timestamp("2023-01-01"), pd.Timestamp("2023-07-01"))
    assert loaded.n_accepted == 182 and not loaded.reasons  # the stray row is accepted, not quarantined
    assert "tx.csv, column ts: 1 row lies after a gap of 80 days without transactions (2023-09-19)" in texts[0]
    assert "tx.csv, column ord: 1 order id of a customer has lines more than 1 day apart" in texts[1]
    assert "customer 'c0', order 'o0': 2023-01-01 to 2023-09-19" in texts[1]
    assert len(texts) == 2


def test_a_placeholder_customer_id_gets_a_notice() -> None:
    """WooCommerce's 0 for guest checkouts (and a till's GUEST, in lower, upper or capitalized spelling) would make
    one huge customer."""
    times = DAILY[:10]
    customers = ["0", "0", "0", "C1", "Guest", "C2", "0", "C10", "WALK-IN", "C3"]
    found = placeholder_customer_on(ibis.duckdb.connect(), _table(times, customers=customers))
    assert found == PlaceholderCustomer("0", 4, 0.4, others=2)
    assert found.message("x.csv", "cust") == (
        "x.csv, column cust: 4 rows (40.0%) have customer id '0' (and 2 rows of other such ids), which looks like a "
        "placeholder for sales without a customer (guest checkouts, walk-in sales): they count as one customer; map "
        "a column that tells those customers apart, or leave them out of the export"
    )
    ordinary = ["C0", "10", "-10"] * 3 + ["guest42"]
    assert placeholder_customer_on(ibis.duckdb.connect(), _table(times, customers=ordinary)) is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data_bounds_on(
            ibis.duckdb.connect(), _table(times, customers=customers), source="x.csv", customer_column="cust"
        )
    assert [str(w.message) for w in caught if w.category is UserWarning] == [found.message("x.csv", "cust")]
