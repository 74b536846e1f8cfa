"""Transactions read by the engine itself (``engine.transactions``), not through pandas.

A Parquet file or a folder of Parquet files, optionally Hive-partitioned by the transaction date
(``.../date=2024-01-31/part-0.parquet``), or a Delta table (Spark with delta-spark on the cluster; DuckDB with its
``delta`` extension). Columns are mapped with the same :class:`~tiercast.pipeline.ingest.sources.ColumnMapping` as
file sources. The rows are expected to be canonical already (the full row rules of ``data:`` run as DuckDB SQL on
one machine, :mod:`tiercast.pipeline.ingest.sql`); :func:`quarantine_invalid` still counts and sets aside the rows
the features cannot use (missing ids, times or amounts), so none is dropped silently.

Values the engines would otherwise read differently from each other, or silently wrongly, are made canonical as the
single-table ingestion makes them, with its notices (:mod:`tiercast.pipeline.ingest.notices`): text timestamps
with a UTC offset and time-zone-aware columns are converted to the source's zone (``timezone``, set from
``data.timezone``; UTC when unset) as naive local times, naive times are taken as written, and customer ids are
trimmed of surrounding whitespace. The rows concerned are counted in the quarantine's one counting pass; the trimmed
ids' spellings are looked up only when there are such rows.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd

from tiercast.features import as_of
from tiercast.features.build import (
    as_table,
)
from tiercast.features.contract import AMOUNT, CUSTOMER_ID, OPTIONAL_TRANSACTION_COLUMNS, ORDER_ID, TIMESTAMP
from tiercast.pipeline.engine.config import EngineConfig, EngineError, TableSource
from tiercast.pipeline.engine.session import is_spark, to_engine_table
from tiercast.pipeline.engine.writes import write_partitioned
from tiercast.pipeline.ingest import notices
from tiercast.pipeline.ingest.common import ReasonTally
from tiercast.pipeline.ingest.engine_values import (
    MARKS,
    OFFSET,
    ToZone,
    local_timestamp,
    to_zone,
    trimmed_id,
    zoned_columns,
)
from tiercast.pipeline.ingest.history import History, history_on
from tiercast.pipeline.ingest.notices import PADDED
from tiercast.pipeline.ingest.sources import ColumnMapping

# --------------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------------


def _parquet_glob(path: str) -> str:
    """DuckDB reads a folder through a recursive glob; files and globs are passed as they are."""
    if any(ch in path for ch in "*?[") or not Path(path).is_dir():
        return path
    return path.rstrip("/") + "/**/*.parquet"


def _read_raw(con: ibis.BaseBackend, source: TableSource) -> ir.Table:
    if source.format == "delta":
        return con.read_delta(source.path)
    if is_spark(con):
        return con.read_parquet(source.path)
    return con.read_parquet(_parquet_glob(source.path), hive_partitioning=True)


def _map_columns(
    t: ir.Table, mapping: ColumnMapping | None, zoned: Collection[str] = (), to_zone: ToZone | None = None
) -> ir.Table:
    """Source columns renamed to canonical fields; amount = quantity x unit_price when so mapped; without an order
    column, the lines of one customer at one instant form one order (``<customer_id>@<microseconds since 1970>``).
    Timestamps become naive times of the source's zone and customer ids are trimmed (:func:`local_timestamp`,
    :func:`trimmed_id`), with their marks (:data:`OFFSET`, :data:`PADDED`); ``zoned``: the source's
    time-zone-aware columns; ``to_zone``: :func:`to_zone`."""
    if mapping is None:
        cols: dict[str, ir.Value] = {c: t[c] for c in t.columns}
        ts_source = TIMESTAMP
    else:
        src = mapping.source_columns()
        missing = sorted({c for c in src.values() if c not in t.columns})
        if missing:
            raise EngineError(f"transactions lack mapped column(s) {missing}; found {list(t.columns)}")
        cols = {field: t[col] for field, col in src.items() if field not in (AMOUNT, "unit_price")}
        if mapping.amount is not None:
            cols[AMOUNT] = t[mapping.amount].cast("float64")
        else:
            cols[AMOUNT] = t[mapping.quantity].cast("float64") * t[mapping.unit_price].cast("float64")
        ts_source = mapping.timestamp
    if TIMESTAMP in cols:
        cols[TIMESTAMP], cols[OFFSET] = local_timestamp(cols[TIMESTAMP], zoned=ts_source in zoned, to_zone=to_zone)
    if CUSTOMER_ID in cols:
        cols[CUSTOMER_ID], cols[PADDED] = trimmed_id(cols[CUSTOMER_ID])
    if mapping is not None and mapping.order_id is None:  # exact to the microsecond and the same text on every engine
        micros = cols[TIMESTAMP].cast(TIMESTAMP).delta(ibis.timestamp("1970-01-01 00:00:00"), unit="microsecond")
        cols[ORDER_ID] = cols[CUSTOMER_ID].cast("string") + "@" + micros.cast("string")
    return t.select(**cols)


def read_transactions_table(
    con: ibis.BaseBackend, source: TableSource, *, until: as_of.TimeLike | None = None
) -> ir.Table:
    """The source as a canonical Ibis transaction table on ``con`` (see :func:`tiercast.features.build.as_table`).

    ``until``: the exclusive end of the times the computation needs (the cutoff for features, cutoff + horizon for
    labels); with ``source.partition_column`` the partitions of later dates are not read at all. Timestamps with a
    UTC offset or zone are converted to ``source.timezone`` (UTC when unset) and customer ids trimmed (see the module
    docstring).
    """
    return as_table(_read_marked(con, source, until=until))


def _read_marked(con: ibis.BaseBackend, source: TableSource, *, until: as_of.TimeLike | None = None) -> ir.Table:
    """:func:`read_transactions_table` with the marks :func:`quarantine_invalid` counts for its notices."""
    t = _read_raw(con, source)
    zoned = zoned_columns(con, t)
    if until is not None and source.partition_column is not None:
        part = source.partition_column
        if part not in t.columns:
            raise EngineError(f"partition_column {part!r} is not a column of {source.path}; found {list(t.columns)}")
        last_day = as_of.to_cutoff(until).date()  # a time < until falls on a date <= until's date
        if source.timezone is not None:  # a time converted to a zone west of UTC may fall a day before its UTC date
            last_day += datetime.timedelta(days=1)
        t = t.filter(t[part].cast("date") <= ibis.date(last_day))
    mapped = _map_columns(t, source.columns, zoned, to_zone(con, source.timezone))
    marks = [c for c in MARKS if c in mapped.columns]
    return as_table(mapped, optional=(*OPTIONAL_TRANSACTION_COLUMNS, *marks))


@dataclass(frozen=True)
class QuarantineCounts(ReasonTally):
    """Rows read, accepted and set aside per reason by :func:`quarantine_invalid` (accepted + set aside == read)."""

    n_read: int
    reasons: dict[str, int]

    @property
    def share(self) -> float:
        return self.n_quarantined / self.n_read if self.n_read else 0.0


def _reason(t: ir.Table, run_date: pd.Timestamp | None = None) -> ir.StringValue:
    """The first rule a canonical row breaks (as in :mod:`tiercast.pipeline.ingest.transactions`), NULL for a good
    row; rows after ``run_date`` are ``future_timestamp``."""
    amount = t.amount

    def blank(s: ir.StringValue) -> ir.BooleanValue:  # a regex: ibis' strip() compiles wrongly for Spark's trim
        return s.isnull() | s.re_search(r"^\s*$")

    rules = [
        ("missing_customer", blank(t.customer_id)),
        ("unparseable_timestamp", t.timestamp.isnull()),
        ("non_numeric_amount", amount.isnull() | amount.isnan() | amount.isinf() | (amount.abs() >= 1e24)),
        ("missing_order_id", blank(t.order_id)),
    ]
    if run_date is not None:
        rules.append(("future_timestamp", t.timestamp > ibis.literal(run_date.to_pydatetime(), type=TIMESTAMP)))
    case = ibis.cases(*[(cond, ibis.literal(name)) for name, cond in rules], else_=ibis.null("string"))
    return case


def quarantine_invalid(
    con: ibis.BaseBackend, t: ir.Table, source: TableSource, *, run_date: pd.Timestamp | None = None
) -> tuple[ir.Table, QuarantineCounts]:
    """Count (one pass) the rows the features cannot use, write them with their reason to
    ``source.quarantine_path`` (partitioned Parquet), and return the good rows and the counts.

    When ``t`` carries the marks of the engine's reading (:data:`OFFSET`, :data:`PADDED`), the same pass counts
    the converted timestamps and trimmed ids, which get the single-table ingestion's notices; the marks are dropped.
    Raises :class:`EngineError` when the share set aside exceeds ``source.max_quarantine_share``.
    """
    marks = [c for c in MARKS if c in t.columns]
    flagged = t.mutate(reason=_reason(t, run_date))
    counts = flagged.group_by("reason").aggregate(n=flagged.count(), **_mark_counts(flagged))
    rows = con.execute(counts)
    n_read = int(rows["n"].sum())
    reasons = {str(r): int(n) for r, n in zip(rows["reason"], rows["n"], strict=True) if r is not None and pd.notna(r)}
    result = QuarantineCounts(n_read=n_read, reasons=reasons)
    assert result.n_accepted + result.n_quarantined == result.n_read
    _notify(con, t, rows, source)
    if result.n_quarantined and source.quarantine_path is not None:
        bad = flagged.filter(flagged.reason.notnull()).drop(*marks)
        write_partitioned(con, bad, source.quarantine_path, partition_by=("reason",))
    if result.share > source.max_quarantine_share:
        raise EngineError(
            f"{source.path}: {result.n_quarantined:,} of {n_read:,} rows ({result.share:.1%}) cannot be used "
            f"({reasons}); more than max_quarantine_share {source.max_quarantine_share:.1%}"
        )
    good = flagged.filter(flagged.reason.isnull()).drop("reason") if result.n_quarantined else t
    return good.drop(*marks), result


def _mark_counts(t: ir.Table) -> dict[str, ir.IntegerScalar]:
    """Rows whose timestamp was converted from a zone, and rows whose customer id was trimmed (and is not blank),
    as counts beside the reasons'."""
    counts = {}
    if OFFSET in t.columns:
        counts[OFFSET] = t[TIMESTAMP].count(where=t[OFFSET])
    if PADDED in t.columns:
        counts[PADDED] = t[PADDED].count(where=t[CUSTOMER_ID] != "")
    return counts


def _notify(con: ibis.BaseBackend, t: ir.Table, counts: pd.DataFrame, source: TableSource) -> None:
    """The notices of the single-table ingestion (:mod:`tiercast.pipeline.ingest.notices`), naming the source
    column: timestamps converted from a zone, customer ids trimmed (their spellings counted only then)."""
    mapping = source.columns
    n_offset = int(counts[OFFSET].sum()) if OFFSET in counts.columns else 0
    if n_offset:
        column = mapping.timestamp if mapping is not None else TIMESTAMP
        notices.warn(notices.offset_message(source.path, column, n_offset, source.timezone))
    n_padded = int(counts[PADDED].sum()) if PADDED in counts.columns else 0
    if n_padded:
        column = mapping.customer_id if mapping is not None else CUSTOMER_ID
        notices.warn(_padded_ids(con, t, n_padded).message(source.path, column))


def _padded_ids(con: ibis.BaseBackend, t: ir.Table, n: int) -> notices.PaddedIds:
    """:class:`~tiercast.pipeline.ingest.notices.PaddedIds` of the ``n`` rows of ``t`` whose customer id was
    trimmed: their raw spellings per id, and whether the id is also spelt without whitespace (a row not trimmed)."""
    p = t.filter(t[PADDED].notnull() & (t[CUSTOMER_ID] != "")).select(raw=t[PADDED], id=t[CUSTOMER_ID])
    unpadded = t.filter(t[PADDED].isnull() & t[CUSTOMER_ID].notnull()).select(v=t[CUSTOMER_ID])
    return notices.padded_ids_ibis(con, p, unpadded, n)


def engine_transactions(
    con: ibis.BaseBackend,
    engine: EngineConfig,
    *,
    accepted: pd.DataFrame | None = None,
    until: as_of.TimeLike | None = None,
    run_date: pd.Timestamp | None = None,
) -> tuple[ir.Table, QuarantineCounts | None]:
    """The transactions a command works on, as a table on ``con``: ``engine.transactions`` read by the engine
    (partitions up to ``until``, unusable rows set aside by :func:`quarantine_invalid`), else the ``accepted``
    frame of the pandas ingestion (``data:``), shipped to the engine as it is. Rows after ``run_date`` are set
    aside as ``future_timestamp``."""
    if engine.transactions is None:
        if accepted is None:
            raise EngineError("no transactions: set engine.transactions or pass the ingested frame")
        return as_table(to_engine_table(con, accepted)), None
    t = _read_marked(con, engine.transactions, until=until)
    return quarantine_invalid(con, t, engine.transactions, run_date=run_date)


def data_bounds_on(con: ibis.BaseBackend, tx: ir.Table, **where: str | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First day of the history and the midnight after its last day (:func:`history_of`, with the same keywords)."""
    found = history_of(con, tx, **where)  # type: ignore[arg-type]
    return found.start, found.end


def history_of(
    con: ibis.BaseBackend,
    tx: ir.Table,
    *,
    source: str = "transactions",
    column: str = TIMESTAMP,
    order_column: str | None = None,
    customer_column: str | None = None,
) -> History:
    """The history of ``tx`` counted by the engine (:func:`tiercast.pipeline.ingest.history.history_on`: isolated
    early rows and stray late rows, which stay accepted, do not stretch it), with its notices."""
    found = history_on(
        con, tx, source=source, column=column, order_column=order_column, customer_column=customer_column
    )
    if found is None:
        raise EngineError("no transactions to work on")
    return found
