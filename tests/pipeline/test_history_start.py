"""The history start is not moved by a few isolated early rows (placeholder dates such as 1970-01-01): rows before a
gap of more than a year without transactions stay accepted, the history starts after the gap, and a notice says so.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd
import pytest
import yaml

from tests.pipeline.test_loader import _csv, _write_config
from tiercast.features.contract import AMOUNT, CUSTOMER_ID, ORDER_ID, TIMESTAMP
from tiercast.pipeline.config import load_config
from tiercast.pipeline.ingest.engine_tables import data_bounds_on
from tiercast.pipeline.ingest.history import MAX_EMPTY_DAYS, IsolatedRows, isolated_rows, isolated_rows_on
from tiercast.pipeline.ingest.loader import features_at, load_transactions

#: A continuous year of daily data: the part of the history the planner should see.
DAILY = [str(d) for d in pd.date_range("2009-12-01", "2010-12-09", freq="7D")] + ["2010-12-09 15:30:00"]


def _table(times: list[str], amounts: list[float] | None = None) -> ir.Table:
    n = len(times)
    frame = pd.DataFrame(
        {
            CUSTOMER_ID: [f"c{i % 3}" for i in range(n)],
            TIMESTAMP: pd.to_datetime(times, format="ISO8601"),
            AMOUNT: [10.0] * n if amounts is None else amounts,
            ORDER_ID: [f"o{i}" for i in range(n)],
        }
    )
    return ibis.memtable(frame)


def _bounds(
    times: list[str], amounts: list[float] | None = None
) -> tuple[tuple[pd.Timestamp, pd.Timestamp], list[str]]:
    """The bounds computed by DuckDB and the texts of the warnings issued on the way."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bounds = data_bounds_on(ibis.duckdb.connect(), _table(times, amounts), source="x.csv", column="date")
    return bounds, [str(w.message) for w in caught if w.category is UserWarning]


def test_no_gap_gives_the_min_and_max_days_and_no_warning() -> None:
    assert _bounds(DAILY) == ((pd.Timestamp("2009-12-01"), pd.Timestamp("2010-12-10")), [])
    assert isolated_rows_on(ibis.duckdb.connect(), _table(DAILY)) is None


def test_one_1970_row_starts_the_history_after_the_gap_with_a_notice() -> None:
    bounds, texts = _bounds(["1970-01-01 00:00:00", *DAILY])
    assert bounds == (pd.Timestamp("2009-12-01"), pd.Timestamp("2010-12-10"))
    assert texts == [
        "x.csv, column date: 1 row lies before a gap of 14,578 days without transactions (earliest 1970-01-01): "
        "a placeholder date? history starts at 2009-12-01, and that row is left out of the features"
    ]


def test_a_gap_of_exactly_the_limit_is_not_isolated() -> None:
    first = pd.Timestamp("2009-12-01") - pd.Timedelta(days=MAX_EMPTY_DAYS + 1)  # MAX_EMPTY_DAYS empty days between
    bounds, texts = _bounds([str(first), *DAILY])
    assert bounds == (first, pd.Timestamp("2010-12-10"))
    assert texts == [  # not isolated: an empty stretch inside the history, far longer than the weekly ones
        "x.csv, column date: no transactions on the 365 days from 2008-12-01 to 2009-11-30, where the data otherwise "
        "is usually at most 6 days without one: missing data, such as a failed export? cutoffs and label windows "
        "over these days count no purchases"
    ]
    one_more = first - pd.Timedelta(days=1)
    bounds, texts = _bounds([str(one_more), *DAILY])
    assert bounds[0] == pd.Timestamp("2009-12-01")
    assert f"gap of {MAX_EMPTY_DAYS + 1} days" in texts[0]


def test_several_early_rows_before_the_last_gap_are_counted() -> None:
    early = ["1970-01-01 00:00:00", "1970-01-01 08:00:00", "1999-12-31 23:59:59", "2000-01-01 10:00:00"]
    isolated = isolated_rows_on(ibis.duckdb.connect(), _table([*early, *DAILY]))
    assert isolated == IsolatedRows(
        n=4,
        earliest=pd.Timestamp("1970-01-01"),
        empty_days=(pd.Timestamp("2009-12-01") - pd.Timestamp("2000-01-01")).days - 1,
        start=pd.Timestamp("2009-12-01"),
    )
    assert "4 rows lie before a gap" in isolated.message("x.csv", "date")


def test_day_counts_may_come_unsorted_as_dates() -> None:
    """Engines return the per-day counts in any order, the days as dates or timestamps."""
    per_day = pd.DataFrame({"day": [dt.date(2011, 1, 5), dt.date(2008, 1, 1), dt.date(2011, 1, 1)], "n": [2, 3, 1]})
    assert isolated_rows(per_day) == IsolatedRows(3, pd.Timestamp("2008-01-01"), 1095, pd.Timestamp("2011-01-01"))
    assert isolated_rows(per_day, max_empty_days=1095) is None


def test_load_transactions_keeps_the_rows_accepted_but_out_of_the_features(tmp_path: Path) -> None:
    rows = ["a,1970-01-01,1", "a,2010-01-01,5", "b,2010-01-15,4", "a,2010-03-01,6"]
    config = load_config(_write_config(tmp_path, _csv(tmp_path, rows), run_date="2010-12-31"))
    notice = (
        r"tx\.csv, column ts: 1 row lies before a gap of 14,609 days .* history starts at 2010-01-01, and that row "
        "is left out of the features"
    )
    with pytest.warns(UserWarning, match=notice):
        loaded = load_transactions(config)
    assert loaded.bounds == (pd.Timestamp("2010-01-01"), pd.Timestamp("2010-03-02"))
    assert loaded.n_accepted == 4 and not loaded.reasons  # the early row is accepted, not quarantined
    assert int(loaded.con.execute(loaded.table.count())) == 3
    assert list(loaded.accepted[TIMESTAMP].dt.year) == [2010, 2010, 2010]
    features = features_at(loaded, config, pd.Timestamp("2010-03-02")).set_index(CUSTOMER_ID)
    assert features.loc["a", "tenure_days"] == pytest.approx(60.0)  # from 2010-01-01, not 1970
    assert features.loc["a", "monetary_total"] == pytest.approx(11.0)


def test_a_mistyped_line_does_not_drag_its_order_back(tmp_path: Path) -> None:
    """One line of a recent order typed 2003 for 2023: the order stays a purchase of its other lines' day (the
    features count an order at its first line's time), and the customer's tenure starts with the real history."""
    days = pd.date_range("2022-07-01", "2023-06-20", periods=60)
    rows = [f"c{i % 5},{day},10,o{i}" for i, day in enumerate(days)]
    rows += ["c0,2023-06-25 14:00,30,o99", "c0,2003-06-25 14:00,20,o99"]
    data = tmp_path / "tx.csv"
    data.write_text("c,ts,amt,ord\n" + "\n".join(rows) + "\n", encoding="utf-8")
    path = _write_config(tmp_path, data, run_date="2023-06-30")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["data"]["transactions"]["columns"]["order_id"] = "ord"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    config = load_config(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_transactions(config)
    (notice,) = [str(w.message) for w in caught if w.category is UserWarning]  # no reused order id: 2003 is out
    assert "1 row lies before a gap of 6,945 days" in notice
    features = features_at(loaded, config, pd.Timestamp("2023-06-30")).set_index(CUSTOMER_ID)
    assert features.loc["c0", "recency_days"] == pytest.approx(4 + 10 / 24)  # 2023-06-25 14:00
    assert features.loc["c0", "tenure_days"] == pytest.approx(364.0)  # from 2022-07-01
    assert features.loc["c0", "monetary_total"] == pytest.approx(12 * 10 + 30)


def test_mostly_negative_amounts_are_named_as_flipped_signs() -> None:
    n = len(DAILY)
    _, texts = _bounds(DAILY, [-10.0] * (n - 2) + [5.0, 5.0])
    assert texts == [
        f"x.csv: {n - 2:,} of {n:,} accepted rows ({(n - 2) / n:.0%}) have a negative amount, read as refunds: are "
        "the amounts' signs flipped (sales exported as negative)?"
    ]
    # refunds as a minority (half is not a majority) are ordinary retail data: no notice
    half = n // 2
    assert _bounds(DAILY, [-10.0] * half + [10.0] * (n - half))[1] == []
