"""Read transaction sources into the canonical transaction frame, with a quarantine for every rejected row.

:func:`read_transactions` reads the source configured in ``data:`` (CSV / whitespace text, Parquet, a DuckDB table or
query, or the Olist multi-table layout), maps its columns, applies the row rules below, validates the accepted rows
once against :data:`tiercast.features.schemas.TRANSACTIONS`, and returns an :class:`IngestResult` in which
``len(accepted) + len(quarantine) == n_read`` (checked, not assumed). It writes nothing; :func:`write_quarantine`
does, atomically.

Row rules — each rejected row gets exactly one reason, the FIRST that applies, in this order (:data:`REASONS`):

1. ``unknown_order``         (Olist) the item's order is not in the orders table
2. ``canceled_order``        (Olist) the order's status is in ``canceled_statuses``
3. ``missing_customer``      customer id empty / a missing-value marker (``na_values``), or not in customers (Olist)
4. ``ambiguous_timestamp``   no ``timestamp_format`` is set and the text timestamp is a day-month date (01/12/2009,
                             1.12.09, 01-12-2009 10:00: :data:`~tiercast.pipeline.ingest.common.DAY_MONTH_PATTERN`):
                             day-first or month-first is never guessed; set ``timestamp_format``
5. ``unparseable_timestamp`` timestamp missing or not parseable with ``timestamp_format`` (or ISO 8601 / guessed)
6. ``non_numeric_amount``    amount, quantity or unit price (Olist: price or freight) missing, non-numeric, infinite
                             or of magnitude 1e24 or more (:data:`MAX_ABS_NUMBER`); with ``decimal: ','`` a text
                             with a '.' is non-numeric (12.345 is not read as 12.345, no thousands mark is guessed)
7. ``missing_order_id``      the order id column is mapped but empty on this row
8. ``non_product_code``      product_id is one of ``non_product_codes`` (postage, fees, manual adjustments...)
9. ``zero_price``            amount == 0, or unit price <= 0; off with ``zero_amounts: keep``
10. ``future_timestamp``     timestamp after ``run_date`` (only when ``run_date`` is given)
11. ``duplicate``            an exact copy of an earlier source line (all source columns equal): the first copy is
                             kept, later ones quarantined; off with ``duplicates: keep``
12. ``schema``               anything else the pandera schema rejects

Duplicates come after the content rules, so an exact copy of a rejected line gets the same reason as the original.
Refunds and cancellations (negative amounts, Online Retail's "C..." invoices) are kept as negative amounts; refunds
with no earlier purchase (see :func:`~tiercast.pipeline.ingest.rules.count_orphan_refunds`) are kept too and counted in
``IngestResult.orphan_refunds``.

Whole-file problems raise :class:`InputError` (one line naming the file and the problem) before anything is written:
missing / empty file, header without rows, missing mapped column (listing the columns found), two columns of one
name (compared ignoring case, mapped or not), a probable wrong delimiter, bytes that are not UTF-8 (with byte offset
and line), a ``timestamp_format`` that is no strptime format (e.g. '%s'), no parseable timestamp or numeric amount
at all, and a quarantined share above ``data.max_quarantine_share``.

Canonical frame (``accepted``): ``customer_id`` (str, stripped; integral floats such as 13085.0 become "13085";
leading zeros kept), ``timestamp`` (naive ``datetime64[us]``, local time of ``timezone``), ``amount`` (float64),
``order_id`` (str; without a mapped order column, ``"<customer_id>@<timestamp>"`` so the lines one customer bought
at one instant form one order), then ``quantity`` (float64), ``product_id``, ``category``, ``channel`` when mapped.
Rows sorted by timestamp, customer_id, order_id, then source row; index reset.

Values kept but read differently from the file are told in a one-line notice naming the source, the column and the
rows (a warning, :mod:`~tiercast.pipeline.ingest.notices`): timestamps with a UTC offset or zone, converted to
``timezone`` (UTC when unset), and customer ids trimmed of surrounding whitespace, with the raw spellings that became
one id (' 123', '123 ' and '123' are one customer). Ids differing only in letter case are kept as they are (two
customers), with a notice naming how many ids and rows, and a pair.

Quarantine frame: the source columns as read (Olist: the item columns plus the joined order status, customer key
and order timestamp), then ``source_row`` (0-based data row in the source; the header is not a row) and ``reason``.
A source column named ``source_row`` or ``reason`` is kept as ``src_source_row`` / ``src_reason``."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from tiercast.features.contract import AMOUNT, QUANTITY, TIMESTAMP
from tiercast.features.schemas import TRANSACTIONS
from tiercast.pipeline.ingest.olist import read_olist
from tiercast.pipeline.ingest.parsing import (
    TS_UNIT,
)
from tiercast.pipeline.ingest.raw import ROW, run
from tiercast.pipeline.ingest.rules import (
    IngestResult,
    check_quarantine_share,
    ingest_result,
    naive_run_date,
    schema_failures,
)
from tiercast.pipeline.ingest.sources import DataConfig, OlistSource, TransactionSource
from tiercast.pipeline.ingest.sql import BAD, EngineIngest
from tiercast.pipeline.writers.files import write_parquet

# --------------------------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------------------------


def read_transactions(data: DataConfig, *, run_date: pd.Timestamp | None = None) -> IngestResult:
    """Read the configured source into accepted canonical lines and a quarantine; see the module docstring.

    ``run_date``: lines after it are quarantined as ``future_timestamp`` (a tz-aware value is converted to the
    configured zone). Raises :class:`InputError` for unreadable sources and when the quarantined share exceeds
    ``data.max_quarantine_share``.
    """
    src = data.source
    run = naive_run_date(run_date, src.timezone)
    olist = isinstance(src, OlistSource)
    result = read_olist(src, run) if olist else _read_single(src, run)
    section = "olist" if olist else "transactions"  # where the settings its hints name are
    check_quarantine_share(
        result.quarantine, result.n_read, result.source, data.max_quarantine_share, result, section=section
    )
    if result.satisfaction_quarantine is not None:
        check_quarantine_share(
            result.satisfaction_quarantine,
            len(result.satisfaction) + len(result.satisfaction_quarantine),  # type: ignore[arg-type]
            str(src.reviews) if olist else result.source,
            data.max_quarantine_share,
            result,
            section=section,
            reviews=olist,
        )
    return result


def write_quarantine(result: IngestResult | EngineIngest, path: str | os.PathLike[str]) -> Path:
    """Write the quarantine (possibly empty) to Parquet atomically; returns ``path``.

    For Olist sources with reviews, rejected review rows go next to it as ``<stem>_satisfaction<suffix>``.
    """
    path = Path(path)
    if isinstance(result, EngineIngest):
        return result.write_quarantine(path)
    if result.satisfaction_quarantine is not None:
        write_parquet(result.satisfaction_quarantine, path.with_name(f"{path.stem}_satisfaction{path.suffix}"))
    return write_parquet(result.quarantine, path)


# --------------------------------------------------------------------------------------------------------------------
# Single-table sources
# --------------------------------------------------------------------------------------------------------------------


def _read_single(src: TransactionSource, run_date: pd.Timestamp | None) -> IngestResult:
    """The rules run as DuckDB SQL (:mod:`tiercast.pipeline.ingest.sql`); the accepted rows are then collected
    sorted and checked once against :data:`TRANSACTIONS` (rows it rejects get reason ``schema``)."""
    import duckdb

    from tiercast.pipeline.ingest.sql import ingest

    con = duckdb.connect()
    try:
        return _collect(ingest(con, src, run_date))
    finally:
        con.close()


def _collect(engine: EngineIngest) -> IngestResult:
    con = engine.con
    accepted = con.execute(engine.accepted_sql(ordered=True, with_row=True)).df()
    accepted.index = accepted.pop(ROW).to_numpy()
    dtypes = {TIMESTAMP: TS_UNIT, AMOUNT: "float64", QUANTITY: "float64"}
    accepted = accepted.astype({c: dtypes.get(c, "str") for c in accepted.columns})
    failed = schema_failures(accepted, TRANSACTIONS)
    if len(failed):
        run(con, f"DELETE FROM {BAD} WHERE list_contains(?::BIGINT[], {ROW})", [failed.tolist()])
        run(con, f"INSERT INTO {BAD} ({ROW}, reason) SELECT unnest(?::BIGINT[]), 'schema'", [failed.tolist()])
        accepted = accepted.drop(index=failed)
    quarantine = con.execute(engine.quarantine_sql()).df()
    where = engine.source
    return ingest_result(
        accepted.reset_index(drop=True), quarantine, engine.n_read, where, details={f"rows:{where}": engine.n_read}
    )
