"""The ingestion of a ``data:`` file on Spark: the rows are read, judged, counted and split by Spark; the accepted
rows stay a Spark table (cached) the features read; only the counts and the quarantined rows reach the driver.

The steps, as DuckDB's ingestion (:mod:`tiercast.pipeline.ingest.sql`) takes them:

1. Read the file and number its rows (:func:`tiercast.pipeline.ingest.spark_source.open_raw`; CSV or Parquet), with
   the same one-line errors: missing or empty file, header without rows, bytes that are not UTF-8, a line with
   more fields than the header, a missing mapped column (with the delimiter hint).
2. Parse the mapped columns as Spark expressions (:mod:`tiercast.pipeline.ingest.spark_source`) and mark exact
   copies of earlier rows.
3. Judge every row with the shared Ibis rules (:func:`tiercast.pipeline.ingest.row_rules.reason`), compiled for
   Spark; the judged rows (canonical columns and reason) are cached on the executors.
4. Count the rows per reason in Spark (read = accepted + quarantined, checked); fail the file when no value of the
   timestamp or a number column parses, naming the column and its first values.
5. The quarantine: the source rows as read with ``source_row`` and ``reason``, in source order (the same columns,
   types and reasons as DuckDB's), collected and written by :meth:`SparkIngest.write_quarantine` atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from tiercast.features.contract import AMOUNT, CATEGORY, CHANNEL, CUSTOMER_ID, ORDER_ID, PRODUCT_ID, QUANTITY, TIMESTAMP
from tiercast.pipeline.engine.session import session_of
from tiercast.pipeline.ingest import notices
from tiercast.pipeline.ingest import spark_source as sp
from tiercast.pipeline.ingest.common import AMBIGUOUS, REASONS, InputError, SourceTally
from tiercast.pipeline.ingest.notices import PADDED
from tiercast.pipeline.ingest.raw import ROW
from tiercast.pipeline.ingest.row_rules import DUPLICATE, PRICE, RuleSet, good_number, reason
from tiercast.pipeline.ingest.sql import CANONICAL

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from tiercast.pipeline.ingest.sources import TransactionSource

REASON = "reason"
SOURCE_ROW = "source_row"
SOURCE_FILE = "source_file"
OFFSET = "_tc_offset"  # the timestamp carries a UTC offset or zone (converted)
_TEXT_FIELDS = (CUSTOMER_ID, ORDER_ID, PRODUCT_ID, CATEGORY, CHANNEL)


def reads(src: TransactionSource) -> bool:
    """Whether Spark reads ``src`` itself: a CSV file with a one-character delimiter, or a Parquet file. (Other
    sources — whitespace-separated text, DuckDB and PostgreSQL tables — are small and read on the driver.)"""
    from tiercast.pipeline.ingest.sources import WHITESPACE

    fmt = src.resolved_format()
    return fmt == "parquet" or (fmt == "csv" and src.delimiter != WHITESPACE)


@dataclass(eq=False)
class SparkIngest(SourceTally):
    """The outcome of :func:`ingest`: counts, the judged rows (cached on Spark) and the source as read."""

    con: ibis.BaseBackend
    raw: sp.SparkRaw
    judged: ir.Table  # ROW, the canonical columns and reason (NULL: accepted)
    columns: tuple[str, ...]  # canonical columns of the accepted rows
    reasons: dict[str, int] = field(default_factory=dict)
    #: first and last time of the accepted rows (counted with the reasons); None without accepted rows
    bounds: tuple[pd.Timestamp, pd.Timestamp] | None = None

    @property
    def accepted(self) -> ir.Table:
        """The accepted rows, canonical columns, as a table on Spark (not collected)."""
        return self.judged.filter(self.judged[REASON].isnull()).select(*self.columns)

    @cached_property
    def quarantine(self) -> pa.Table:
        """The quarantined rows as read, then ``source_row`` and ``reason``, in source order; columns named
        ``source_row`` or ``reason`` in the source become ``src_source_row`` / ``src_reason``. From several files,
        ``source_file`` before ``source_row`` (the data row in that file), as DuckDB's quarantine."""
        ours = (SOURCE_FILE, SOURCE_ROW, REASON) if self.raw.files else (SOURCE_ROW, REASON)
        names = {c: f"src_{c}" if c in ours else c for c in self.raw.columns}
        text = self.raw.csv_path is not None  # CSV cells are never NULL (empty text), as in DuckDB's reader
        schema = pa.schema(
            [
                *(pa.field(names[c], self.raw.arrow_types.get(c, pa.string()), not text) for c in self.raw.columns),
                *([pa.field(SOURCE_FILE, pa.string())] if self.raw.files else []),
                pa.field(SOURCE_ROW, pa.int64()),
                pa.field(REASON, pa.string(), nullable=False),
            ]
        )
        if not self.n_quarantined:
            return schema.empty_table()
        view = ibis.util.gen_name("tiercast_raw")
        self.raw.df.createOrReplaceTempView(view)
        raw = self.con.table(view)
        bad = self.judged.filter(self.judged[REASON].notnull()).select(ROW, REASON)
        joined = raw.join(bad, ROW)
        rows = joined.select(
            *(joined[c].name(names[c]) for c in self.raw.columns), joined[ROW].name(SOURCE_ROW), joined[REASON]
        ).order_by(SOURCE_ROW)
        table = self.con.to_pyarrow(rows)
        if self.raw.files:  # the file each row came from (the last to start at or before it), its row there
            at = table.column(SOURCE_ROW).to_numpy()
            starts = np.array([first for _, first in self.raw.files], dtype="int64")
            which = np.searchsorted(starts, at, side="right") - 1
            file = pa.array([self.raw.files[i][0] for i in which], type=pa.string())
            pos = table.schema.get_field_index(SOURCE_ROW)
            table = table.set_column(pos, SOURCE_ROW, pa.array(at - starts[which])).add_column(pos, SOURCE_FILE, file)
        return pa.table([_cast(table.column(i), f.type) for i, f in enumerate(schema)], schema=schema)

    def write_quarantine(self, path: str | os.PathLike[str]) -> Path:
        """Write the quarantine to Parquet atomically (a temporary file in the same folder, then renamed)."""
        import pyarrow.parquet as pq

        from tiercast.pipeline.writers.files import atomic_output

        with atomic_output(path) as tmp:
            pq.write_table(self.quarantine, tmp)
        return Path(path)


def _cast(values: pa.ChunkedArray, to: pa.DataType) -> pa.ChunkedArray:
    """A collected column in the file's own type (nanosecond timestamps come back from Spark as integers)."""
    if values.type == to:
        return values
    try:
        return values.cast(to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return values


def ingest(con: ibis.BaseBackend, src: TransactionSource, run_date: pd.Timestamp | None) -> SparkIngest:
    """Read ``src`` with the Spark session of ``con`` and judge every row; see the module docstring. Raises
    :class:`InputError` for unreadable sources, a missing mapped column or a column where no value parses."""
    from tiercast.pipeline.ingest.readers import check_timestamp_format, require_source_columns

    check_timestamp_format(src.timestamp_format, src.describe(), src.columns.timestamp)
    raw = sp.open_raw(session_of(con), src)
    mapped = src.columns.source_columns()
    require_source_columns(
        pd.DataFrame(columns=list(raw.columns)), mapped, raw.where, raw.csv_path, src.delimiter, "columns."
    )
    rules = RuleSet.of(src, mapped, run_date)
    parsed = _parsed(raw, src, mapped, rules)
    view = ibis.util.gen_name("tiercast_parsed")
    parsed.createOrReplaceTempView(view)
    t = con.table(view)
    columns = tuple(c for c in CANONICAL if c in t.columns)
    marks = [c for c in (OFFSET, PADDED) if c in t.columns]
    judged = t.select(ROW, *columns, reason(t, rules).name(REASON), *marks).cache()
    ts = judged[TIMESTAMP]
    counts = con.execute(
        judged.group_by(REASON).aggregate(
            n=judged.count(), first=ts.min(), last=ts.max(), **_notice_counts(judged, signs=_signs_read(mapped))
        )
    )
    by_reason = {str(r): int(n) for r, n in zip(counts[REASON], counts["n"], strict=True) if pd.notna(r)}
    if int(counts["n"].sum()) != raw.n_read:
        raise RuntimeError(f"{raw.where}: row accounting broken: judged {int(counts['n'].sum())} != read {raw.n_read}")
    result = SparkIngest(con, raw, judged, columns, {r: by_reason[r] for r in REASONS if r in by_reason})
    good = counts[counts[REASON].isna()]
    if len(good):
        result.bounds = pd.Timestamp(good["first"].iloc[0]), pd.Timestamp(good["last"].iloc[0])
    _require_parsed(result, src, mapped, any_time=bool(counts["first"].notna().any()))
    _notify(result, counts, src, mapped)
    if result.reasons.get("non_numeric_amount"):
        _notify_grouped_numbers(result, src, mapped)
    return result


_SIGNS = "_tc_signs"  # the count of rows with a negative quantity but a positive amount


def _signs_read(mapped: dict[str, str]) -> bool:
    """Whether quantity and amount are both read from the file (with a unit price the amount takes the quantity's
    sign, so they cannot disagree)."""
    return QUANTITY in mapped and AMOUNT in mapped


def _notice_counts(judged: ir.Table, *, signs: bool) -> dict[str, ir.IntegerScalar]:
    """Rows whose timestamp was converted from a UTC offset, rows whose customer id had surrounding whitespace
    (left once trimmed) and, with ``signs``, rows with a negative quantity but a positive amount, as counts beside
    the reasons' (no further pass)."""
    counts = {OFFSET: judged[TIMESTAMP].count(where=judged[OFFSET])}
    if PADDED in judged.columns:
        counts[PADDED] = judged[PADDED].count(where=judged[CUSTOMER_ID] != "")
    if signs:
        counts[_SIGNS] = judged[AMOUNT].count(where=(judged[QUANTITY] < 0) & (judged[AMOUNT] > 0))
    return counts


def _notify(result: SparkIngest, counts: pd.DataFrame, src: TransactionSource, mapped: dict[str, str]) -> None:
    """The notices of DuckDB's ingestion (:mod:`tiercast.pipeline.ingest.notices`), from the same counts, and the
    customer ids differing only in letter case (one more Spark query, over the cached judged rows)."""
    n_offset = int(counts[OFFSET].sum())
    if n_offset:
        notices.warn(notices.offset_message(result.source, mapped[TIMESTAMP], n_offset, src.timezone))
    if PADDED in counts.columns and int(counts[PADDED].sum()):
        notices.warn(_padded_ids(result, mapped[CUSTOMER_ID]).message(result.source, mapped[CUSTOMER_ID]))
    cased = notices.case_variants_ibis(result.con, result.accepted.select(id=CUSTOMER_ID))
    if cased is not None:
        notices.warn(cased.message(result.source, mapped[CUSTOMER_ID]))
    accepted = counts[counts[REASON].isna()]
    if _SIGNS in counts.columns and len(accepted) and int(accepted[_SIGNS].iloc[0]):  # then one query for an example
        n, order = notices.opposite_signs_ibis(result.con, result.accepted)
        notices.warn(notices.signs_message(result.source, mapped[QUANTITY], mapped[AMOUNT], n, order))


def _notify_grouped_numbers(result: SparkIngest, src: TransactionSource, mapped: dict[str, str]) -> None:
    """DuckDB's notice per text number column whose value looks like a number with thousands separators
    ('1,161.52') on rows quarantined as ``non_numeric_amount``, with its first such value (by source row): one
    Spark pass over those rows."""
    from tiercast.pipeline.ingest.parsing import grouped_number_pattern
    from tiercast.pipeline.ingest.readers import grouped_numbers_message

    raw, con = result.raw, result.con
    kinds = {f: sp.kind(raw.df.schema[mapped[f]].dataType) for f in (AMOUNT, QUANTITY, "unit_price") if f in mapped}
    fields = [f for f, k in kinds.items() if k == "text"]
    if not fields:
        return
    view = ibis.util.gen_name("tiercast_numbers")
    columns = [sp.text(sp.col(mapped[f]), "text", src.na_values).alias(f) for f in fields]
    raw.df.select(ROW, *columns).createOrReplaceTempView(view)
    texts = con.table(view)
    bad = result.judged.filter(result.judged[REASON] == "non_numeric_amount").select(ROW)
    rows = texts.semi_join(bad, ROW)
    pattern = f"^(?:{grouped_number_pattern(src.decimal)})$"
    grouped = {f: rows[f].re_search(pattern) for f in fields}
    found = con.execute(
        rows.aggregate(
            **{f"n_{f}": rows.count(where=grouped[f]) for f in fields},
            **{f"e_{f}": rows[f].argmin(rows[ROW], where=grouped[f]) for f in fields},
        )
    )
    for f in fields:
        n = int(found[f"n_{f}"].iloc[0])
        if n:
            notices.warn(grouped_numbers_message(raw.where, mapped[f], n, str(found[f"e_{f}"].iloc[0])))


def _padded_ids(result: SparkIngest, column: str) -> notices.PaddedIds:
    """:func:`tiercast.pipeline.ingest.notices.padded_ids` on Spark: the padded rows' raw and parsed ids from the
    judged rows, the ids also spelt without whitespace from one scan of the raw id column."""
    j, con = result.judged, result.con
    p = j.filter(j[PADDED].notnull() & (j[CUSTOMER_ID] != "")).select(raw=j[PADDED], id=j[CUSTOMER_ID])
    view = ibis.util.gen_name("tiercast_ids")
    result.raw.df.select(sp.col(column).cast("string").alias("v")).createOrReplaceTempView(view)
    return notices.padded_ids_ibis(con, p, con.table(view))


def _parsed(raw: sp.SparkRaw, src: TransactionSource, mapped: dict[str, str], rules: RuleSet) -> DataFrame:
    """The parsed rows: :data:`ROW`, the canonical fields, ``_price`` and ``_duplicate`` (see
    :mod:`tiercast.pipeline.ingest.row_rules`)."""
    from pyspark.sql import functions as F

    kinds = {c: sp.kind(raw.df.schema[c].dataType) for c in raw.columns}
    cell = {f: sp.col(c) for f, c in mapped.items()}
    out: dict[str, Column] = {}
    for f in _TEXT_FIELDS:
        if f in mapped:
            out[f] = sp.text(cell[f], kinds[mapped[f]], src.na_values, is_id=f in (CUSTOMER_ID, ORDER_ID))
    ts_col = mapped[TIMESTAMP]
    formats = _guessed_formats(raw, src) if kinds[ts_col] == "text" and src.timestamp_format is None else []
    out[TIMESTAMP] = sp.timestamp(cell[TIMESTAMP], kinds[ts_col], raw.arrow_types.get(ts_col), src, formats)
    out[AMBIGUOUS] = sp.ambiguous_timestamp(cell[TIMESTAMP], kinds[ts_col], src)
    out[OFFSET] = sp.offset(cell[TIMESTAMP], kinds[ts_col], raw.arrow_types.get(ts_col), src)
    if (padded := sp.padded(cell[CUSTOMER_ID], kinds[mapped[CUSTOMER_ID]])) is not None:
        out[PADDED] = padded
    numbers = {
        f: sp.number(cell[f], kinds[mapped[f]], src.decimal, src.na_values)
        for f in (AMOUNT, QUANTITY, "unit_price")
        if f in mapped
    }
    if rules.unit_price:
        out[AMOUNT], out[PRICE] = numbers[QUANTITY] * numbers["unit_price"], numbers["unit_price"]
    else:
        out[AMOUNT] = numbers[AMOUNT]
    if QUANTITY in numbers:
        out[QUANTITY] = numbers[QUANTITY]
    parsed = raw.df.select(ROW, *(e.alias(f) for f, e in out.items()))
    if ORDER_ID not in mapped:
        parsed = parsed.withColumn(ORDER_ID, sp.synthetic_order_id())
    copies = sp.duplicate_rows(raw) if rules.duplicates else None
    if copies is not None:
        parsed = parsed.join(F.broadcast(copies), ROW, "left")
        return parsed.withColumn(DUPLICATE, F.coalesce(F.col(DUPLICATE), F.lit(False)))
    return parsed.withColumn(DUPLICATE, F.lit(False)) if rules.duplicates else parsed


def _guessed_formats(raw: sp.SparkRaw, src: TransactionSource) -> list[str]:
    """The timestamp formats guessed from the first 200 distinct texts, in order of first appearance."""
    from pyspark.sql import functions as F

    from tiercast.pipeline.ingest.parsing import guess_formats

    column = raw.columns[raw.columns.index(src.columns.timestamp)]
    kind = sp.kind(raw.df.schema[column].dataType)
    texts = raw.df.select(sp.text(sp.col(column), kind, src.na_values).alias("t"), ROW).filter(F.col("t").isNotNull())
    first = texts.groupBy("t").agg(F.min(ROW).alias("first")).orderBy("first").limit(200).collect()
    return guess_formats(pd.Series([r["t"] for r in first], dtype="str"))


def _require_parsed(result: SparkIngest, src: TransactionSource, mapped: dict[str, str], *, any_time: bool) -> None:
    """A column where no row parses means a wrong mapping or format, not bad rows: fail the file (only possible
    when every row was rejected by that rule or an earlier one, so the exact check runs only then). ``any_time``:
    some row's timestamp parsed."""
    r, n = result.reasons, result.n_read
    before_ts = sum(r.get(k, 0) for k in ("missing_customer", "ambiguous_timestamp", "unparseable_timestamp"))
    if before_ts == n and not any_time:
        _fail_column(result.raw, mapped[TIMESTAMP], TIMESTAMP, src.timestamp_format, src)
    if before_ts + r.get("non_numeric_amount", 0) < n:
        return
    view = ibis.util.gen_name("tiercast_numbers")
    kinds = {c: sp.kind(result.raw.df.schema[c].dataType) for c in result.raw.columns}
    fields = [f for f in (AMOUNT, QUANTITY, "unit_price") if f in mapped]
    exprs = [sp.number(sp.col(mapped[f]), kinds[mapped[f]], src.decimal, src.na_values).alias(f) for f in fields]
    result.raw.df.select(*exprs).createOrReplaceTempView(view)
    numbers = result.con.table(view)
    for f in fields:
        if not result.con.execute(numbers.filter(good_number(numbers[f])).count()):
            _fail_column(result.raw, mapped[f], "number", None, src)


def _fail_column(raw: sp.SparkRaw, column: str, kind: str, fmt: str | None, src: TransactionSource) -> None:
    """Raise the error of a column where no value parses, from its first 20 distinct values, as DuckDB's ingestion
    words it (:func:`~tiercast.pipeline.ingest.readers.unreadable_column`: epoch numbers, thousands separators)."""
    from pyspark.sql import functions as F

    from tiercast.pipeline.ingest.readers import unreadable_column

    values = raw.df.groupBy(sp.col(column).cast("string").alias("v")).agg(F.min(ROW).alias("first"))
    first = values.orderBy("first").limit(20).collect()
    texts = ["nan" if row["v"] is None else str(row["v"]) for row in first]
    raise InputError(unreadable_column(raw.where, column, kind, fmt, raw.n_read, texts, src.decimal, src.na_values))
