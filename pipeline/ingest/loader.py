"""The one way every command obtains its transactions: :func:`load_transactions`.

It reads the configured source once and runs the row rules where the rows will be used:

* a file or table of ``data:`` on DuckDB: the rules as DuckDB SQL in the engine's own connection
  (:mod:`tiercast.pipeline.ingest.sql`); the accepted rows stay a view there, never collected;
* a CSV or Parquet file of ``data:`` on Spark: read by Spark, the rules as Spark expressions (the shared Ibis rules
  of :mod:`tiercast.pipeline.ingest.row_rules` compiled for Spark, :mod:`tiercast.pipeline.ingest.spark_ingest`);
  the accepted rows stay a cached Spark table, and only the counts and the quarantined rows reach the driver;
* the Olist layout, and on Spark the small sources read on the driver (whitespace-separated text, DuckDB and
  PostgreSQL tables): :func:`tiercast.pipeline.ingest.transactions.read_transactions` (rules, quarantine,
  accounting, collected), the accepted frame then shipped to the engine;
* the table the engine reads itself (``engine.transactions``).

It writes or holds the quarantine and returns one frozen :class:`Transactions`: the accepted rows as a table on the
configured engine (DuckDB or Spark), the connection, the accounting, the data bounds, the fingerprint and the
customer-level extras (satisfaction). Commands take that object and nothing else, so ``validate``, ``features``,
``train``, ``backtest``, ``tiers``, ``monitor``, ``score`` and ``run`` see the same rows, the same run date and the
same satisfaction signals on either engine.

Run date: rows dated after it are quarantined as ``future_timestamp``. It is ``data.run_date`` (a date; rows on
later days are future) or, unset, the current time in the source's time zone; a run date in the data's past
(backtests of old files) is set in config or with ``--run-date``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from tiercast.features.build import as_table, build_features, feature_query
from tiercast.features.contract import CUSTOMER_ID, ORDER_ID, TIMESTAMP
from tiercast.pipeline.config import Config
from tiercast.pipeline.engine.session import connect, is_spark, to_engine_table
from tiercast.pipeline.ingest.common import REASONS, InputError, ReasonTally
from tiercast.pipeline.ingest.engine_tables import engine_transactions, history_of
from tiercast.pipeline.ingest.fingerprint import LazyMapping, data_fingerprint
from tiercast.pipeline.ingest.sources import TransactionSource
from tiercast.pipeline.writers.files import HeldOutputs, quarantine_writer

if TYPE_CHECKING:
    from tiercast.pipeline.ingest.rules import IngestResult
    from tiercast.pipeline.ingest.spark_ingest import SparkIngest
    from tiercast.pipeline.ingest.sql import EngineIngest

__all__ = ["Transactions", "features_at", "from_ingest", "load_transactions", "resolve_run_date", "write_features_at"]


@dataclass(frozen=True, eq=False)
class Transactions(ReasonTally):
    """Accepted transactions on the engine, with everything a command needs to know about how they were read."""

    table: ir.Table
    con: ibis.BaseBackend
    source: str
    n_read: int
    reasons: Mapping[str, int]
    data_start: pd.Timestamp
    data_end: pd.Timestamp
    fingerprint: Mapping[str, Any]
    run_date: pd.Timestamp | None = None
    satisfaction: pd.DataFrame | None = None
    #: the rejected rows of ``data.reviews`` (with ``source_row`` and ``reason``); None without that file
    satisfaction_quarantine: pd.DataFrame | None = None
    #: the row-level ingestion (accepted frame, quarantine rows) when ``data:`` was read; None for engine tables
    ingest: IngestResult | None = field(default=None, repr=False)
    held_quarantine: HeldOutputs | None = field(default=None, repr=False)

    @property
    def bounds(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """First day of the history and the midnight after its last day (exclusive end): the first and last
        transaction, except that the history starts after rows isolated before a year without transactions
        (placeholder dates) and ends before a handful of rows after a long empty stretch (mistyped dates); those
        rows stay accepted (:mod:`tiercast.pipeline.ingest.history`), and the isolated ones are left out of
        ``table`` and :attr:`accepted`."""
        return self.data_start, self.data_end

    @cached_property
    def accepted(self) -> pd.DataFrame:
        """The accepted rows as a pandas frame (for the in-memory steps: tier studies, monitors, explanations),
        sorted by timestamp, customer and order."""
        if self.ingest is not None:
            frame = self.ingest.accepted
            return (
                frame
                if frame.empty or frame[TIMESTAMP].min() >= self.data_start
                else frame[frame[TIMESTAMP] >= self.data_start]
            )
        return self.con.execute(self.table.order_by([TIMESTAMP, CUSTOMER_ID, ORDER_ID]))

    def engine_satisfaction(self) -> ir.Table | None:
        """The satisfaction frame as a table on the engine (None without reviews)."""
        return None if self.satisfaction is None else to_engine_table(self.con, self.satisfaction)


def resolve_run_date(config: Config, run_date: str | dt.date | pd.Timestamp | None = None) -> pd.Timestamp:
    """The last instant a row may carry (naive, in the source's zone): the end of ``run_date`` / ``data.run_date``
    when given, else now."""
    day = run_date if run_date is not None else config.data.run_date
    if day is not None:
        ts = pd.Timestamp(day)
        if ts.tzinfo is not None:
            ts = ts.tz_convert(config.data.timezone or "UTC").tz_localize(None)
        if ts == ts.normalize():  # a date: the whole day is in the past
            ts = ts + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
        return ts
    return pd.Timestamp.now(tz=config.data.timezone or "UTC").tz_localize(None)


def from_ingest(config: Config, ingest: IngestResult, *, run_date: pd.Timestamp | None = None) -> Transactions:
    """:class:`Transactions` over an already read (or in-memory) ingestion result, on ``config.engine``."""
    con = connect(config.engine)
    accepted = ingest.accepted
    if accepted.empty:
        raise InputError(f"{ingest.source}: no accepted rows ({ingest.n_read:,} read, all quarantined)")
    table = as_table(to_engine_table(con, accepted))
    table, start, end = _bounds(con, table, config, ingest.source)
    return Transactions(
        table=table,
        con=con,
        source=ingest.source,
        n_read=ingest.n_read,
        reasons=MappingProxyType(ingest.reason_counts() if len(ingest.quarantine) else {}),
        data_start=start,
        data_end=end,
        fingerprint=MappingProxyType(
            data_fingerprint(
                ingest.source,
                n_read=ingest.n_read,
                n_accepted=len(accepted),
                n_quarantined=len(ingest.quarantine),
                customers=int(accepted[CUSTOMER_ID].nunique()),
                first=accepted[TIMESTAMP].min(),
                last=accepted[TIMESTAMP].max(),
            )
        ),
        run_date=run_date,
        satisfaction=ingest.satisfaction,
        ingest=ingest,
    )


def load_transactions(
    config: Config, *, run_date: str | dt.date | pd.Timestamp | None = None, write: bool = True, hold: bool = False
) -> Transactions:
    """Read the configured transactions once (see the module docstring); the quarantine is written (``write``)
    even when the run then fails on ``data.max_quarantine_share``, so the rejected rows can be inspected; ``hold``:
    it is held (``held_quarantine``) for the caller's ``on_success`` block, and dropped if the read fails."""
    run = resolve_run_date(config, run_date)
    if config.engine.transactions is not None:
        data = _from_engine_table(config, run)
        return data if config.data.reviews is None else _with_reviews(data, config, run, None, write=write)
    held = HeldOutputs()  # stays empty unless ``hold``
    save = quarantine_writer(config.data.quarantine_path, held if hold else None, write=write)
    try:
        data = _read_source(config, run, save)
        if config.data.reviews is not None:
            data = _with_reviews(data, config, run, held if hold else None, write=write)
    except BaseException:
        held.discard()
        raise
    return replace(data, held_quarantine=held) if write and hold else data


def _with_reviews(
    data: Transactions, config: Config, run: pd.Timestamp, held: HeldOutputs | None, *, write: bool
) -> Transactions:
    """``data`` with the satisfaction frame of ``data.reviews``; their rejected rows are written beside the
    transactions' quarantine (``<stem>_satisfaction``, as the Olist layout's reviews), also when too many of them
    fail the read (:func:`check_quarantine_share`, section ``reviews``)."""
    from tiercast.pipeline.ingest.reviews import read_reviews
    from tiercast.pipeline.ingest.rules import check_quarantine_share
    from tiercast.pipeline.writers.files import write_parquet

    src = config.data.reviews
    assert src is not None
    accepted, quarantine = read_reviews(src, timezone=config.data.timezone, run_date=run)
    if write:
        path = config.data.quarantine_path
        beside = path.with_name(f"{path.stem}_satisfaction{path.suffix}")
        write_parquet(quarantine, held.path_for(beside) if held is not None else beside)
    n_read, limit = len(accepted) + len(quarantine), config.data.max_quarantine_share
    check_quarantine_share(quarantine, n_read, str(src.path), limit, None, section="reviews")  # type: ignore[arg-type]
    return replace(data, satisfaction=accepted, satisfaction_quarantine=quarantine)


def _read_source(config: Config, run: pd.Timestamp, save: Callable[[Any], None]) -> Transactions:
    """The ``data:`` source read on the engine or on the driver, the quarantine given to ``save``."""
    if isinstance(config.data.source, TransactionSource) and _engine_reads(config):
        return _from_source_on_engine(config, run, save=save)
    from tiercast.pipeline.ingest.transactions import read_transactions

    try:
        ingest = read_transactions(config.data, run_date=run)
    except InputError as err:
        save(err.result)  # the rows set aside, when they were read
        raise
    save(ingest)
    return from_ingest(config, ingest, run_date=run)


def _engine_reads(config: Config) -> bool:
    """Whether the engine runs the row rules over the source itself: always on DuckDB; on Spark for CSV and
    Parquet files (:func:`tiercast.pipeline.ingest.spark_ingest.reads`)."""
    if config.engine.kind == "duckdb":
        return True
    from tiercast.pipeline.ingest.spark_ingest import reads

    return reads(config.data.source)  # type: ignore[arg-type]


def _from_source_on_engine(config: Config, run: pd.Timestamp, *, save: Callable[[Any], None]) -> Transactions:
    """The rules run on the engine: in its own DuckDB (:mod:`tiercast.pipeline.ingest.sql`), the accepted rows a
    view there, or on Spark (:mod:`tiercast.pipeline.ingest.spark_ingest`), the accepted rows a cached Spark table;
    the features read them where they are, nothing but counts and the quarantine is collected."""
    from tiercast.pipeline.ingest.common import check_share

    con = connect(config.engine)
    result: EngineIngest | SparkIngest | None = None
    try:
        result = _ingest_on(con, config.data.source, run)  # type: ignore[arg-type]
        check_share(result.reasons, result.n_read, result.source, config.data.max_quarantine_share, result)
    except InputError as err:
        save(err.result)  # the rows set aside, when they were read
        raise
    save(result)
    if not result.n_accepted:
        raise InputError(f"{result.source}: no accepted rows ({result.n_read:,} read, all quarantined)")
    table, (first, last), count_customers = _accepted_on(con, result)
    source = result.source
    table, start, end = _bounds(con, table, config, source)

    def fingerprint() -> dict[str, Any]:
        customers = count_customers()
        return data_fingerprint(
            source,
            n_read=result.n_read,
            n_accepted=result.n_accepted,
            n_quarantined=result.n_quarantined,
            customers=int(customers),
            first=first,
            last=last,
        )

    return Transactions(
        table=table,
        con=con,
        source=result.source,
        n_read=result.n_read,
        reasons=MappingProxyType(result.reason_counts()),
        data_start=start,
        data_end=end,
        fingerprint=LazyMapping(fingerprint),
        run_date=run,
    )


def _bounds(
    con: ibis.BaseBackend, table: ir.Table, config: Config, source: str
) -> tuple[ir.Table, pd.Timestamp, pd.Timestamp]:
    """The rows the commands work on and :meth:`Transactions.bounds`, with the notices on the rows' dates, order
    ids and customer ids. Rows isolated before the history's start (a placeholder or mistyped date: 1970, or 2003
    for 2023) stay accepted but are left out of the rows: in the features they would make the customer's tenure
    decades long and drag an order whose other lines are recent back to their date (its first time)."""
    found = history_of(
        con,
        table,
        source=source,
        column=_source_column(config, TIMESTAMP),  # type: ignore[arg-type]  # every source maps the timestamp
        order_column=_source_column(config, ORDER_ID),
        customer_column=_source_column(config, CUSTOMER_ID),
    )
    return found.rows_of(table), found.start, found.end


def _source_column(config: Config, field: str) -> str | None:
    """The source column ``field`` is read from (named in the notices); None for order ids made from the times
    (no such column), and for the Olist layout's order ids (an order there has one purchase time)."""
    if config.engine.transactions is not None:
        mapping = config.engine.transactions.columns
        return field if mapping is None else getattr(mapping, field)
    src = config.data.source
    if isinstance(src, TransactionSource):
        return getattr(src.columns, field)
    return {TIMESTAMP: src.timestamp, CUSTOMER_ID: src.customer_key}.get(field)  # Olist: orders and customers


def _ingest_on(con: ibis.BaseBackend, src: TransactionSource, run: pd.Timestamp) -> EngineIngest | SparkIngest:
    if is_spark(con):
        from tiercast.pipeline.ingest.spark_ingest import ingest as spark_ingest

        return spark_ingest(con, src, run)
    from tiercast.pipeline.ingest.sql import ingest

    return ingest(con.con, src, run)  # type: ignore[attr-defined]


def _accepted_on(
    con: ibis.BaseBackend, result: EngineIngest | SparkIngest
) -> tuple[ir.Table, tuple[pd.Timestamp, pd.Timestamp], Callable[[], int]]:
    """The accepted rows as a table on the engine, their first and last time, and a count of their customers."""
    from tiercast.pipeline.ingest.sql import TRANSACTIONS

    if is_spark(con):
        table = as_table(result.accepted)  # type: ignore[union-attr,arg-type]
        return table, result.bounds, lambda: int(con.execute(table[CUSTOMER_ID].nunique()))  # type: ignore[union-attr,return-value]
    first, last = con.con.execute(f"SELECT min(timestamp), max(timestamp) FROM {TRANSACTIONS}").fetchall()[0]  # type: ignore[attr-defined]

    def customers() -> int:
        return int(con.con.execute(f"SELECT count(DISTINCT customer_id) FROM {TRANSACTIONS}").fetchall()[0][0])  # type: ignore[attr-defined]

    return as_table(con.table(TRANSACTIONS)), (pd.Timestamp(first), pd.Timestamp(last)), customers


def _from_engine_table(config: Config, run: pd.Timestamp) -> Transactions:
    source = config.engine.transactions
    assert source is not None
    con = connect(config.engine)
    table, counts = engine_transactions(con, config.engine, run_date=run)
    table, start, end = _bounds(con, table, config, source.path)
    reasons = {r: counts.reasons[r] for r in REASONS if r in counts.reasons} if counts is not None else {}
    fingerprint = {
        "data_path": source.path,
        "data_rows_read": counts.n_read if counts is not None else None,
        "data_rows_accepted": counts.n_accepted if counts is not None else None,
        "data_rows_quarantined": counts.n_quarantined if counts is not None else None,
        "data_first_day": str(start.date()),
        "data_end": str(end.date()),
    }
    return Transactions(
        table=table,
        con=con,
        source=source.path,
        n_read=counts.n_read if counts is not None else 0,
        reasons=MappingProxyType(reasons),
        data_start=start,
        data_end=end,
        fingerprint=MappingProxyType(fingerprint),
        run_date=run,
    )


def write_features_at(data: Transactions, config: Config, cutoff: pd.Timestamp, path: str | Path) -> tuple[int, int]:
    """The rows of :func:`features_at` written to Parquet at ``path`` (atomically) by the engine itself: DuckDB's
    COPY streams the query's result into the file, so the feature frame never exists in pandas. Returns (rows,
    features)."""
    import pyarrow.parquet as pq

    from tiercast.pipeline.writers.files import atomic_output, fsync_file

    expr = feature_query(
        data.table,
        cutoff=cutoff,
        windows_days=config.features.windows_days,
        horizon_days=config.horizon_days,
        satisfaction=data.engine_satisfaction(),
    )
    with atomic_output(path) as tmp:
        data.con.to_parquet(expr, tmp)
        fsync_file(tmp)
    return pq.ParquetFile(path).metadata.num_rows, len(expr.columns) - 1


def features_at(data: Transactions, config: Config, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Point-in-time feature rows of every customer of ``data`` at ``cutoff``, with the config's windows, horizon
    and the satisfaction signals: the feature build that scoring, ``features`` and ``run`` share."""
    return build_features(
        data.table,
        cutoff=cutoff,
        windows_days=config.features.windows_days,
        horizon_days=config.horizon_days,
        satisfaction=data.engine_satisfaction(),
        con=data.con,
    )
