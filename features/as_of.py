"""Point-in-time handling: the one place where tiercast compares transaction times with a cutoff.

Features see ``timestamp < cutoff``; labels see ``cutoff <= timestamp < cutoff + horizon``. Every window is
half-open ``[start, end)``. Keeping all time predicates here makes leakage reviewable in one file, and the cutoff is
keyword-only and required everywhere: nothing defaults to the last date in the data.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir
import pandas as pd

from tiercast.features.contract import TIMESTAMP

TimeLike = str | dt.datetime | dt.date | pd.Timestamp

_MICROS_PER_DAY = 86_400_000_000
_EPOCH_DAY = ibis.date(1970, 1, 1)


def to_cutoff(value: TimeLike) -> pd.Timestamp:
    """Parse a cutoff into a naive ``pd.Timestamp`` (microsecond precision); reject time zones and NaT."""
    ts = pd.Timestamp(value)
    if ts is pd.NaT or pd.isna(ts):
        raise ValueError("cutoff must be a date or datetime, got NaT")
    if ts.tzinfo is not None:
        raise ValueError(f"cutoff must be naive (transaction times are naive local times), got {ts}")
    if ts.nanosecond:
        raise ValueError(f"cutoff must have at most microsecond precision, got {ts}")
    return ts


def shift_days(cutoff: TimeLike, days: float) -> pd.Timestamp:
    """``cutoff + days`` as a timestamp (negative days go back in time)."""
    return to_cutoff(cutoff) + pd.Timedelta(days=days)


def _literal(value: TimeLike) -> ir.TimestampScalar:
    return ibis.literal(to_cutoff(value).to_pydatetime(), type=TIMESTAMP)


def is_before(ts: ir.TimestampValue, *, cutoff: TimeLike) -> ir.BooleanValue:
    """``ts < cutoff``."""
    return ts < _literal(cutoff)


def is_within(ts: ir.TimestampValue, *, start: TimeLike, end: TimeLike) -> ir.BooleanValue:
    """``start <= ts < end`` (half-open)."""
    return (ts >= _literal(start)) & (ts < _literal(end))


def is_since(ts: ir.TimestampValue, *, start: TimeLike) -> ir.BooleanValue:
    """``ts >= start``: for conditional aggregates over rows that :func:`before` has already cut at the cutoff."""
    return ts >= _literal(start)


def before(t: ir.Table, *, cutoff: TimeLike) -> ir.Table:
    """Rows of ``t`` with ``timestamp < cutoff``: everything a feature at ``cutoff`` may see."""
    return t.filter(is_before(t.timestamp, cutoff=cutoff))


def window(t: ir.Table, *, start: TimeLike, end: TimeLike) -> ir.Table:
    """Rows of ``t`` with ``start <= timestamp < end``."""
    start_ts, end_ts = to_cutoff(start), to_cutoff(end)
    if end_ts < start_ts:
        raise ValueError(f"window end {end_ts} is before its start {start_ts}")
    return t.filter(is_within(t.timestamp, start=start_ts, end=end_ts))


def days_until(ts: ir.TimestampValue, *, cutoff: TimeLike) -> ir.FloatingValue:
    """Days (float, microsecond-exact) from ``ts`` to ``cutoff``."""
    return days_between(_literal(cutoff), ts)


def days_between(later: ir.TimestampValue, earlier: ir.TimestampValue) -> ir.FloatingValue:
    """``later - earlier`` in days as a float (microsecond-exact integer difference, then one division)."""
    return later.delta(earlier, unit="microsecond").cast("float64") / _MICROS_PER_DAY


def day_number(ts: ir.TimestampValue) -> ir.IntegerValue:
    """Calendar day of ``ts`` as an integer (days since 1970-01-01), so day gaps are plain integer differences."""
    return ts.date().delta(_EPOCH_DAY, unit="day")
