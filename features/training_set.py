"""Training sets over rolling cutoffs: features at each cutoff joined with the labels of its horizon, stacked.

The leakage guard refuses, before any computation, a cutoff whose label window ``[cutoff, cutoff + horizon)``
reaches past the end of the data (its labels would be truncated, so customers would look churned) or into the
holdout (the test period would leak into training).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import ibis
import ibis.expr.types as ir
import pandas as pd

from tiercast.features import as_of
from tiercast.features.build import DEFAULT_WINDOWS_DAYS, Frame, as_table, feature_table
from tiercast.features.contract import CHURNED, CUSTOMER_ID, CUTOFF, FUTURE_ORDERS, FUTURE_VALUE
from tiercast.features.cutoff_queries import run_at_cutoffs
from tiercast.features.labels import label_table

LABEL_FILL = {FUTURE_VALUE: 0.0, FUTURE_ORDERS: 0.0, CHURNED: 1.0}


class LeakageError(ValueError):
    """A cutoff's label window passes the end of the data or the start of the holdout."""


def rolling_cutoffs(*, last_cutoff: as_of.TimeLike, step_days: int, count: int) -> list[pd.Timestamp]:
    """``count`` cutoffs ``step_days`` apart ending at ``last_cutoff``, oldest first."""
    if step_days <= 0 or count <= 0:
        raise ValueError(f"step_days and count must be positive, got {step_days} and {count}")
    last = as_of.to_cutoff(last_cutoff)
    return [last - pd.Timedelta(days=step_days * k) for k in range(count - 1, -1, -1)]


def check_cutoffs(
    cutoffs: Iterable[as_of.TimeLike],
    *,
    horizon_days: int,
    data_end: as_of.TimeLike,
    holdout_start: as_of.TimeLike | None = None,
) -> list[pd.Timestamp]:
    """Parsed, sorted cutoffs; raises LeakageError if a label window ends after ``data_end`` (exclusive end of the
    data) or after ``holdout_start``, ValueError for no cutoffs, duplicates or a non-positive horizon."""
    if int(horizon_days) <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    parsed = sorted(as_of.to_cutoff(c) for c in cutoffs)
    if not parsed:
        raise ValueError("no cutoffs given")
    if len(set(parsed)) != len(parsed):
        raise ValueError(f"duplicate cutoffs: {[str(c) for c in parsed]}")
    horizon = pd.Timedelta(days=int(horizon_days))
    limits = [("data_end", as_of.to_cutoff(data_end))]
    if holdout_start is not None:
        limits.append(("holdout_start", as_of.to_cutoff(holdout_start)))
    for name, limit in limits:
        bad = [str(c) for c in parsed if c + horizon > limit]
        if bad:
            raise LeakageError(
                f"label window [cutoff, cutoff + {int(horizon_days)} days) passes {name}={limit} "
                f"for cutoffs {bad}; the latest allowed cutoff is {limit - horizon}"
            )
    return parsed


def build_training_set(
    tx: Frame,
    *,
    cutoffs: Iterable[as_of.TimeLike],
    horizon_days: int,
    windows_days: Iterable[int] = DEFAULT_WINDOWS_DAYS,
    data_end: as_of.TimeLike,
    holdout_start: as_of.TimeLike | None = None,
    satisfaction: Frame | None = None,
    con: ibis.BaseBackend | None = None,
    sample_rows: Callable[[ir.Table, pd.Timestamp], ir.Table] | None = None,
) -> pd.DataFrame:
    """Features at each cutoff left-joined with that cutoff's labels, stacked, sorted by (cutoff, customer_id).

    Columns: ``customer_id``, ``cutoff`` (datetime64[us]), the feature columns of
    :func:`tiercast.features.build.build_features`, then ``future_value``, ``future_orders``, ``churned``.
    Customers without a transaction in the label window get future_value 0, future_orders 0, churned 1.
    ``data_end`` is the exclusive end of the data; see :func:`check_cutoffs` for the leakage guard.
    ``sample_rows(rows, cutoff)``, when given, selects from each cutoff's labelled rows in the engine, before they
    are collected (e.g. a per-cutoff cap on the training rows).
    """
    parsed = check_cutoffs(cutoffs, horizon_days=horizon_days, data_end=data_end, holdout_start=holdout_start)
    if con is None and isinstance(tx, pd.DataFrame):
        con = ibis.duckdb.connect()
    t = as_table(tx)
    if isinstance(satisfaction, pd.DataFrame):
        satisfaction = ibis.memtable(satisfaction)  # registered once, reused by every cutoff

    def rows_at(cutoff: pd.Timestamp) -> ir.Table:
        rows = labelled_rows(
            t, cutoff=cutoff, horizon_days=horizon_days, windows_days=windows_days, satisfaction=satisfaction
        )
        return rows if sample_rows is None else sample_rows(rows, cutoff)

    return collect_at_cutoffs(con if con is not None else t._find_backend(use_default=True), rows_at, parsed)


def labelled_rows(
    t: ir.Table,
    *,
    cutoff: pd.Timestamp,
    horizon_days: int,
    windows_days: Iterable[int] = DEFAULT_WINDOWS_DAYS,
    satisfaction: ir.Table | None = None,
    values_of: ir.Table | None = None,
) -> ir.Table:
    """One cutoff's rows of :func:`build_training_set` as an expression (without the ``cutoff`` column, unordered):
    the features of a canonical table ``t`` left-joined with the labels, filled for customers without any
    (``values_of``: see :func:`~tiercast.features.build.feature_table`)."""
    feats = feature_table(
        t,
        cutoff=cutoff,
        windows_days=windows_days,
        horizon_days=horizon_days,
        satisfaction=satisfaction,
        values_of=values_of,
    )
    labels = label_table(t, cutoff=cutoff, horizon_days=horizon_days)
    joined = feats.left_join(labels, CUSTOMER_ID).drop("customer_id_right")
    return joined.mutate(**{col: joined[col].coalesce(v) for col, v in LABEL_FILL.items()})


def collect_at_cutoffs(
    con: ibis.BaseBackend, rows_at: Callable[[pd.Timestamp], ir.Table], cutoffs: list[pd.Timestamp]
) -> pd.DataFrame:
    """``rows_at(cutoff)`` run on ``con`` for each cutoff (:func:`~tiercast.features.cutoff_queries.run_at_cutoffs`),
    sorted by customer_id within each, with the ``cutoff`` column second, stacked in the order of ``cutoffs``."""
    ordered = lambda cutoff: rows_at(cutoff).order_by(CUSTOMER_ID)  # noqa: E731 - one line, used once
    tables = zip(cutoffs, run_at_cutoffs(con, ordered, cutoffs), strict=True)
    return pd.concat([with_cutoff_column(table.to_pandas(), cutoff) for cutoff, table in tables], ignore_index=True)


def with_cutoff_column(df: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """One cutoff's collected rows with the ``cutoff`` column second (datetime64[us]), as training sets hold it."""
    df.insert(1, CUTOFF, pd.Series(cutoff, index=df.index, dtype="datetime64[us]"))
    return df
