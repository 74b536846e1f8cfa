"""The history the commands plan their cutoffs in, and the notices on dates that look wrong, from one count of rows per
calendar day (:func:`per_day`: one engine pass; only the counts, a few thousand days even for 30M rows, are
collected).

The history runs from the first to the last day with a transaction, except that

* rows dated before a gap of more than :data:`MAX_EMPTY_DAYS` days without transactions (a placeholder date such as
  1970-01-01) do not start it: it starts after the gap (:func:`isolated_rows`);
* a handful of rows dated after an empty stretch longer than any the history shows (a mistyped date, a month or a
  year off) do not end it: it ends before the stretch (:func:`stray_rows`).

Both kinds of rows stay accepted (counted in the accounting), and a notice names them. The span the cutoffs, label
windows and the scoring date are placed in changes; the isolated early rows are also left out of the rows the
commands work on (:mod:`tiercast.pipeline.ingest.loader`): in the features a 1970 row would make its customer's
tenure decades long. Stray late rows are seen by the features of cutoffs after them, as any row. An empty stretch inside
the history much longer than usual for the data (a failed export) changes nothing but gets a notice
(:func:`missing_days`), as do order ids whose lines lie days apart (:func:`reused_orders_on`), amounts that are
mostly negative (:func:`negative_amounts_message`) and a customer id standing for no customer, such as WooCommerce's
0 for guests (:func:`placeholder_customer_on`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from tiercast.features.contract import AMOUNT, CUSTOMER_ID, ORDER_ID, TIMESTAMP
from tiercast.pipeline.ingest.common import PLACEHOLDER_CUSTOMER_IDS

#: More days than this without any transaction (from any customer) split the data: rows dated before such a gap
#: are isolated (a placeholder date such as 1970-01-01), and the history the commands plan on starts after it.
MAX_EMPTY_DAYS = 365
#: Rows after the history's last day are stray only when they are at most this many and at most this share of all.
MAX_STRAY_ROWS, MAX_STRAY_SHARE = 5, 0.01
#: ... and only after more than this many empty days (and more than any empty stretch inside the history).
MIN_STRAY_EMPTY_DAYS = 30
#: An empty stretch inside the history gets a notice from this many days on, when also at least
#: :data:`MISSING_FACTOR` times the :data:`USUAL_QUANTILE` quantile of the history's empty stretches.
MIN_MISSING_DAYS, MISSING_FACTOR, USUAL_QUANTILE = 28, 4, 0.95
#: Above this share of accepted rows with a negative amount, the signs look flipped (sales exported as negative).
MAX_NEGATIVE_SHARE = 0.5
#: Lines of one (customer, order id) further apart than this are taken for two purchases sharing an id.
MAX_ORDER_SPAN_DAYS = 1


def per_day(con: ibis.BaseBackend, tx: ir.Table) -> pd.DataFrame:
    """Rows per calendar day (``n``) and, of them, rows with a negative amount (``negative``): one engine pass."""
    day = tx[TIMESTAMP].date().name("day")
    return con.execute(tx.group_by(day).aggregate(n=tx.count(), negative=(tx[AMOUNT] < 0).sum()))


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n:,} days"


def _dates(days: pd.Series) -> str:
    return ", ".join(str(d.date()) for d in days)


@dataclass(frozen=True)
class IsolatedRows:
    """The rows dated before the last gap of more than :data:`MAX_EMPTY_DAYS` days without transactions."""

    n: int  # rows before the gap
    earliest: pd.Timestamp  # first day of data
    empty_days: int  # days in the gap, none with a transaction
    start: pd.Timestamp  # first day after the gap: where the history starts

    def message(self, source: str, column: str) -> str:
        """The one-line notice: where, how many rows, how long a gap, the earliest day and the new history start."""
        lie = "1 row lies" if self.n == 1 else f"{self.n:,} rows lie"
        return (
            f"{source}, column {column}: {lie} before a gap of {self.empty_days:,} days without transactions "
            f"(earliest {self.earliest.date()}): a placeholder date? history starts at {self.start.date()}, and "
            f"{'that row is' if self.n == 1 else 'those rows are'} left out of the features"
        )


@dataclass(frozen=True)
class StrayRows:
    """The few rows dated after the history's last day and an empty stretch longer than any inside the history."""

    n: int  # rows after the stretch
    days: tuple[pd.Timestamp, ...]  # their days
    empty_days: int  # days in the stretch, none with a transaction
    last: pd.Timestamp  # last day before the stretch: where the history ends

    def message(self, source: str, column: str) -> str:
        """The one-line notice: where, how many rows, their days, the gap, the new history end and what to do."""
        lie, kept, its, it = ("1 row lies", "the row stays", "its date", "it")
        if self.n > 1:
            lie, kept, its, it = f"{self.n:,} rows lie", "the rows stay", "their dates", "them"
        return (
            f"{source}, column {column}: {lie} after a gap of {self.empty_days:,} days without transactions "
            f"({_dates(pd.Series(self.days))}): a mistyped date? history ends at {self.last.date()}; {kept} "
            f"accepted (check {its}, or set data.run_date to quarantine {it})"
        )


@dataclass(frozen=True)
class MissingDays:
    """The longest empty stretch inside the history much longer than the data's usual ones (:func:`missing_days`)."""

    first: pd.Timestamp  # first empty day
    empty_days: int  # days in the stretch
    usual: int  # the USUAL_QUANTILE quantile of the history's empty stretches, in days
    more: int = 0  # further such stretches

    def message(self, source: str, column: str) -> str:
        last = self.first + pd.Timedelta(days=self.empty_days - 1)
        more = f"; {self.more} more such {'stretch' if self.more == 1 else 'stretches'}" if self.more else ""
        usual = f"is usually at most {_days(self.usual)} without one" if self.usual else "has one nearly every day"
        return (
            f"{source}, column {column}: no transactions on the {self.empty_days:,} days from {self.first.date()} "
            f"to {last.date()}, where the data otherwise {usual}{more}: missing data, such as a failed export? "
            "cutoffs and label windows over these days count no purchases"
        )


@dataclass(frozen=True)
class History:
    """The history's first day and exclusive end, and what moved them or looks missing in it."""

    start: pd.Timestamp
    end: pd.Timestamp  # the midnight after the history's last day
    isolated: IsolatedRows | None = None
    stray: StrayRows | None = None
    missing: MissingDays | None = None

    def rows_of(self, tx: ir.Table) -> ir.Table:
        """The rows of ``tx`` the commands work on: all but the isolated early rows (left out of the features)."""
        return tx if self.isolated is None else tx.filter(tx[TIMESTAMP] >= self.start)

    def messages(self, source: str, column: str) -> list[str]:
        found = (self.isolated, self.stray, self.missing)
        return [f.message(source, column) for f in found if f is not None]


@dataclass(frozen=True)
class _Days:
    """Days with transactions in order, the rows on each, and the empty days before each (0 before the first)."""

    days: pd.Series
    n: np.ndarray
    empty: np.ndarray

    @classmethod
    def of(cls, counts: pd.DataFrame) -> _Days:
        """From per-day counts (columns ``day`` and ``n``) in any order, the days as dates or timestamps."""
        counts = counts.sort_values("day")
        days = pd.to_datetime(counts["day"]).reset_index(drop=True)
        empty = (days.diff().dt.days.fillna(1) - 1).to_numpy(dtype="int64")
        return cls(days, counts["n"].to_numpy(dtype="int64"), empty)

    def start_before(self, stop: int, max_empty_days: int = MAX_EMPTY_DAYS) -> int:
        """Index of the first day of the history among the days before ``stop``: after the last gap of more than
        ``max_empty_days`` days, else the first day."""
        gaps = np.flatnonzero(self.empty[:stop] > max_empty_days)
        return int(gaps[-1]) if gaps.size else 0


def isolated_rows(counts: pd.DataFrame, max_empty_days: int = MAX_EMPTY_DAYS) -> IsolatedRows | None:
    """The rows before the last gap of more than ``max_empty_days`` days without any transaction (columns ``day``
    and ``n`` of :func:`per_day`), None without such a gap; rows after the history's end (:func:`stray_rows`)
    are left out."""
    d = _Days.of(counts)
    return _isolated(d, d.start_before(_stray_index(d), max_empty_days))


def _isolated(d: _Days, start: int) -> IsolatedRows | None:
    if not start:
        return None
    return IsolatedRows(int(d.n[:start].sum()), d.days.iloc[0], int(d.empty[start]), d.days.iloc[start])


def isolated_rows_on(
    con: ibis.BaseBackend, tx: ir.Table, *, max_empty_days: int = MAX_EMPTY_DAYS
) -> IsolatedRows | None:
    """:func:`isolated_rows` of ``tx``, counted by the engine."""
    return isolated_rows(per_day(con, tx), max_empty_days)


def stray_rows(counts: pd.DataFrame) -> StrayRows | None:
    """The rows after the history's last day (columns ``day`` and ``n`` of :func:`per_day`), None when there are
    none: the last rows, at most :data:`MAX_STRAY_ROWS` and :data:`MAX_STRAY_SHARE` of all, when they follow more
    than :data:`MIN_STRAY_EMPTY_DAYS` empty days and a stretch longer than every empty stretch inside the history
    (from its start, :func:`isolated_rows`, to them).

    Why: the data never paused like this while the business ran, and a handful of rows is not the business
    resuming, so the rows are most likely mistyped dates (a month or a year off). Ending the history at them would
    put the scoring date and the last label windows in the empty stretch (one test-window purchase, tiers collapsed);
    ending it before them costs only their handful of purchases in the label windows, and as soon as more rows
    follow the stretch they are no longer few, and the history ends at them again."""
    d = _Days.of(counts)
    return _stray(d, _stray_index(d))


def _stray(d: _Days, stop: int) -> StrayRows | None:
    if stop == len(d.n):
        return None
    return StrayRows(int(d.n[stop:].sum()), tuple(d.days.iloc[stop:]), int(d.empty[stop]), d.days.iloc[stop - 1])


def _stray_index(d: _Days) -> int:
    """Index of the first stray day (:func:`stray_rows`), the number of days when there is none: the earliest day
    qualifying, so that every stray day is left out."""
    total = int(d.n.sum())
    after = total - np.cumsum(d.n) + d.n  # rows on the day and after it
    for j in np.flatnonzero(after <= min(MAX_STRAY_ROWS, MAX_STRAY_SHARE * total)):
        inside = d.empty[d.start_before(j) + 1 : j]
        if j and d.empty[j] > MIN_STRAY_EMPTY_DAYS and d.empty[j] > inside.max(initial=0):
            return int(j)
    return len(d.n)


def missing_days(counts: pd.DataFrame) -> MissingDays | None:
    """The longest empty stretch inside the history (days with no transaction between two that have one) of at
    least :data:`MIN_MISSING_DAYS` days and at least :data:`MISSING_FACTOR` times the :data:`USUAL_QUANTILE`
    quantile of its empty stretches (zero between consecutive days), with the number of further such stretches.

    Why: weekends, a week closed at Christmas or a quiet summer fortnight are under four weeks, so the floor keeps
    them quiet; the factor scales to sparse data (a shop selling every ten days is quiet for a month by chance). If
    quiet days came independently, empty stretches would be geometric, and one at least four times the 95% quantile
    would have a chance of 0.05**4 (about 6e-6), so even thousands of stretches give a false notice in under 1% of
    histories."""
    d = _Days.of(counts)
    stop = _stray_index(d)
    return _missing(d, d.start_before(stop), stop)


def _missing(d: _Days, start: int, stop: int) -> MissingDays | None:
    inside = d.empty[start + 1 : stop]
    if not inside.size:
        return None
    usual = int(np.quantile(inside, USUAL_QUANTILE, method="higher"))
    hits = np.flatnonzero(inside >= max(MIN_MISSING_DAYS, MISSING_FACTOR * usual)) + start + 1
    if not hits.size:
        return None
    longest = int(hits[np.argmax(d.empty[hits])])
    first = d.days.iloc[longest - 1] + pd.Timedelta(days=1)
    return MissingDays(first, int(d.empty[longest]), usual, int(hits.size - 1))


def history(counts: pd.DataFrame) -> History:
    """The history of per-day counts (columns ``day`` and ``n``, at least one day): see the module docstring."""
    d = _Days.of(counts)
    stop = _stray_index(d)
    start = d.start_before(stop)
    return History(
        start=d.days.iloc[start],
        end=d.days.iloc[stop - 1] + pd.Timedelta(days=1),
        isolated=_isolated(d, start),
        stray=_stray(d, stop),
        missing=_missing(d, start, stop),
    )


def negative_amounts_message(counts: pd.DataFrame, source: str) -> str | None:
    """The notice when most accepted rows have a negative amount (refunds): in retail data refunds are a minority,
    so a majority says the export's signs are flipped, which no model can learn from. None otherwise."""
    n, negative = int(counts["n"].sum()), int(counts["negative"].fillna(0).sum())
    if n == 0 or negative / n <= MAX_NEGATIVE_SHARE:
        return None
    return (
        f"{source}: {negative:,} of {n:,} accepted rows ({negative / n:.0%}) have a negative amount, read as "
        "refunds: are the amounts' signs flipped (sales exported as negative)?"
    )


def history_on(
    con: ibis.BaseBackend,
    tx: ir.Table,
    *,
    source: str,
    column: str = TIMESTAMP,
    order_column: str | None = None,
    customer_column: str | None = None,
) -> History | None:
    """:func:`history` of ``tx`` (None without rows), counted by the engine in one pass, with a warning per
    finding (isolated early rows, stray late rows, missing days, mostly negative amounts). With ``order_column``
    (the source column of the order ids; None when orders are made from the times) one more pass looks for order
    ids whose lines lie days apart (:func:`reused_orders_on`); with ``customer_column`` (the source column of the
    customer ids) one more looks for a no-customer placeholder id (:func:`placeholder_customer_on`)."""
    counts = per_day(con, tx)
    if (flipped := negative_amounts_message(counts, source)) is not None:
        warnings.warn(flipped, stacklevel=2)
    found = history(counts) if len(counts) else None
    for message in found.messages(source, column) if found is not None else []:
        warnings.warn(message, stacklevel=2)
    if found is not None:  # only the rows the commands use are checked
        tx = found.rows_of(tx)
    if order_column is not None and (reused := reused_orders_on(con, tx)) is not None:
        warnings.warn(reused.message(source, order_column), stacklevel=2)
    if customer_column is not None and (placeholder := placeholder_customer_on(con, tx)) is not None:
        warnings.warn(placeholder.message(source, customer_column), stacklevel=2)
    return found


#: The spellings of :data:`PLACEHOLDER_CUSTOMER_IDS` looked for: lower case, upper case, capitalized.
_PLACEHOLDER_SPELLINGS = sorted({f(v) for v in PLACEHOLDER_CUSTOMER_IDS for f in (str.lower, str.upper, str.title)})


@dataclass(frozen=True)
class PlaceholderCustomer:
    """The accepted rows whose customer id is a no-customer placeholder (:data:`PLACEHOLDER_CUSTOMER_IDS`), for
    the id holding most of them."""

    customer: str
    n: int  # rows of that id
    share: float  # of all accepted rows
    others: int  # rows of other placeholder ids

    def message(self, source: str, column: str) -> str:
        more = f" (and {self.others:,} rows of other such ids)" if self.others else ""
        return (
            f"{source}, column {column}: {self.n:,} rows ({self.share:.1%}) have customer id {self.customer!r}{more}, "
            "which looks like a placeholder for sales without a customer (guest checkouts, walk-in sales): they "
            "count as one customer; map a column that tells those customers apart, or leave them out of the export"
        )


def placeholder_customer_on(con: ibis.BaseBackend, tx: ir.Table) -> PlaceholderCustomer | None:
    """:class:`PlaceholderCustomer` of ``tx``, None when no accepted row has such an id. Accepted ids are trimmed
    already, and an exact match against a few spellings is a lookup where lower-casing every id is a string
    operation per row (10M rows on DuckDB: 0.01 s against 0.7 s); all rows are counted only when some are found."""
    hit = tx.filter(tx[CUSTOMER_ID].cast("string").isin(_PLACEHOLDER_SPELLINGS))
    per_id = con.execute(hit.group_by(CUSTOMER_ID).aggregate(n=hit.count()).order_by([ibis.desc("n"), CUSTOMER_ID]))
    if per_id.empty:
        return None
    total = int(con.execute(tx.count()))
    top = per_id.iloc[0]
    n = int(top["n"])
    return PlaceholderCustomer(str(top[CUSTOMER_ID]), n, n / total, int(per_id["n"].sum()) - n)


@dataclass(frozen=True)
class ReusedOrders:
    """Orders (customer, order id) whose lines lie more than :data:`MAX_ORDER_SPAN_DAYS` apart, and the one
    spanning longest."""

    n: int
    customer: str
    order: str
    first: pd.Timestamp
    last: pd.Timestamp

    def message(self, source: str, column: str) -> str:
        ids = "1 order id of a customer has" if self.n == 1 else f"{self.n:,} order ids of a customer have"
        return (
            f"{source}, column {column}: {ids} lines more than {MAX_ORDER_SPAN_DAYS} day apart (e.g. customer "
            f"{self.customer!r}, order {self.order!r}: {self.first.date()} to {self.last.date()}): order numbers "
            "reused or restarted? each such order is counted once, at its first time"
        )


def reused_orders_on(con: ibis.BaseBackend, tx: ir.Table) -> ReusedOrders | None:
    """The orders whose lines lie more than :data:`MAX_ORDER_SPAN_DAYS` apart, None when there are none.

    The features make one purchase of the lines of one (customer, order id), at their earliest time, so a later
    purchase reusing an id (numbers restarting per store or per year) vanishes into the earlier one. Lines of one
    order are written together, seconds or hours apart; a day apart they are two purchases (or an order amended
    days later, which is counted at its first time too). One pass grouping the lines by order; the example (the
    longest span) is looked up only when there are such orders."""
    g = tx.group_by([CUSTOMER_ID, ORDER_ID]).aggregate(t0=tx[TIMESTAMP].min(), t1=tx[TIMESTAMP].max())
    g = g.mutate(span=g.t1.delta(g.t0, unit="second"))
    spread = g.filter(g.span > MAX_ORDER_SPAN_DAYS * 86_400)
    n = int(con.execute(spread.count()))
    if not n:
        return None
    top = con.execute(spread.order_by([ibis.desc("span"), CUSTOMER_ID, ORDER_ID]).limit(1))
    example = top.iloc[0]
    return ReusedOrders(n, str(example[CUSTOMER_ID]), str(example[ORDER_ID]), example["t0"], example["t1"])
