"""The engine-specific half of the Spark ingestion (:mod:`tiercast.pipeline.ingest.spark_ingest`): reading a
``data:`` file with Spark, numbering its rows, and parsing its columns as Spark expressions with the semantics of the
DuckDB parsers (:mod:`tiercast.pipeline.ingest.columns`).

What differs from DuckDB, and why it is here rather than in the shared Ibis rules:

* Readers. CSV is read by Spark's CSV reader with every column as text, the header named as DuckDB's ingestion
  names it, quoted line breaks allowed (``multiLine``: one task per file) and empty fields as empty text, like
  DuckDB's ``force_not_null``. One spare column catches a line with more fields than the header: the one-line error
  names it (``line N``), as DuckDB's reader does. Parquet is read by Spark; nanosecond timestamps (which Spark
  refuses) are read as integers (``spark.sql.legacy.parquet.nanosAsLong``, set on the session for its remaining
  reads) and converted, their types taken from the file's footer. Other source kinds are not read here.
* Source row numbers. Parquet: Spark's ``_metadata.row_index`` (the row in the file), the row count from the
  footer. CSV has no row index: each row's scan partition and position in it (``spark_partition_id``,
  ``monotonically_increasing_id``) are turned into the 0-based data row with the partitions' row counts, one pass
  that also counts the rows and finds lines with too many fields (the header is read as the first record).
* Unicode trimming: Python's ``str.strip()`` characters as a regular-expression class (DuckDB uses ``trim`` with
  the characters).
* Text timestamps: parsed by :func:`tiercast.pipeline.ingest.parsing.parse_timestamps` in a vectorised pandas UDF,
  on each Arrow batch's distinct texts, with the configured format or the formats guessed on the driver from the
  first 200 distinct texts (as DuckDB's ingestion guesses them); typed timestamps are converted by expressions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tiercast.features.contract import CUSTOMER_ID, TIMESTAMP
from tiercast.pipeline.ingest.common import DAY_MONTH_PATTERN, INTEGRAL_ID_LIMIT, InputError, number_pattern
from tiercast.pipeline.ingest.raw import _PANDAS_INDEX, ROW, _header_names
from tiercast.pipeline.ingest.readers import check_file, check_unique_columns, check_utf8, delimiter_hint
from tiercast.pipeline.ingest.row_rules import BLANK_CLASS, DUPLICATE

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from tiercast.pipeline.ingest.sources import TransactionSource

_EXTRA = "__extra_field"
_NANOS_AS_LONG = "spark.sql.legacy.parquet.nanosAsLong"


def col(name: str) -> Column:
    """A column by its exact name (dots and spaces included)."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


@dataclass(frozen=True)
class SparkRaw:
    """The source as read: its columns (as the source types them) and :data:`ROW`, with the file's own Arrow
    types (Parquet) for the quarantine, and the number of data rows."""

    df: DataFrame
    columns: tuple[str, ...]
    arrow_types: dict[str, pa.DataType]
    n_read: int
    where: str
    csv_path: Path | None = None
    #: read from a folder or pattern: each file and the :data:`ROW` its rows start at (files without rows left out)
    files: tuple[tuple[str, int], ...] = ()


def open_raw(spark: SparkSession, src: TransactionSource) -> SparkRaw:
    """Read ``src`` (CSV with a one-character delimiter, or Parquet; a folder's or pattern's files one by one,
    their rows numbered on in file order) with Spark and number its rows; raises :class:`InputError` for unreadable
    files, as the DuckDB reader."""
    from tiercast.pipeline.ingest.paths import NO_FILES
    from tiercast.pipeline.ingest.raw import same_columns

    where, files = src.describe(), src.files()
    if not files:
        raise InputError(f"{where}: {NO_FILES}")
    csv = src.resolved_format() == "csv"  # once: for a folder without a suffix it lists the files
    parts = [_open_file(spark, path, src, csv=csv) for path in files]
    first = parts[0]
    same_columns([list(p.columns) for p in parts], files)
    for path, part in zip(files[1:], parts[1:], strict=True):
        if part.arrow_types != first.arrow_types:
            differ = [c for c in first.columns if part.arrow_types.get(c) != first.arrow_types.get(c)]
            raise InputError(f"{path}: its column types differ from {files[0]}'s ({differ}); every file needs the same")
    df, starts, n = first.df, [], 0
    for i, (path, part) in enumerate(zip(files, parts, strict=True)):
        if part.n_read:
            starts.append((str(path), n))
        if i:
            df = df.unionByName(part.df.withColumn(ROW, col(ROW) + n))
        n += part.n_read
    if n == 0:
        what = "header but no data rows" if first.csv_path is not None else "no data rows"
        raise InputError(f"{where}: {what} (columns: {list(first.columns)})")
    starts_of_files = tuple(starts) if src.several() else ()
    return SparkRaw(df, first.columns, first.arrow_types, n, where, first.csv_path, starts_of_files)


def _open_file(spark: SparkSession, path: Path, src: TransactionSource, *, csv: bool) -> SparkRaw:
    """One file read and its rows numbered from 0 (zero rows allowed: a folder's empty part)."""
    check_file(path)
    arrow_types: dict[str, pa.DataType] = {}
    if csv:
        check_utf8(path)
        df, columns = _read_csv(spark, path, src.delimiter), tuple(_header_names(path, src.delimiter))
        df, n, extra_row = _number_rows(df, _EXTRA)
        if extra_row is not None:
            raise InputError(
                f"{path}: cannot parse as delimited text in line {extra_row + 2}: expected {len(columns)} fields, "
                f"saw more{delimiter_hint(path, src.delimiter)}"
            )
    else:
        df, n, arrow_types = _read_parquet(spark, path)
        columns = tuple(arrow_types)
    return SparkRaw(df, columns, arrow_types, n, str(path), path if csv else None)


def _read_parquet(spark: SparkSession, path: Path) -> tuple[DataFrame, int, dict[str, pa.DataType]]:
    """The file's columns and :data:`ROW` (Spark's row index in the file), its number of rows and its Arrow types
    (both from the footer, read on the driver)."""
    from pyspark.sql import functions as F

    try:
        meta = pq.ParquetFile(path)
        schema, n = meta.schema_arrow, meta.metadata.num_rows
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        first = str(err).splitlines()[0] if str(err) else ""
        raise InputError(f"{path}: not a readable Parquet file ({type(err).__name__}: {first})") from None
    columns = [n for n in schema.names if not _PANDAS_INDEX.fullmatch(n)]
    check_unique_columns(columns, str(path))
    arrow_types = {c: schema.field(c).type for c in columns}
    if any(pa.types.is_timestamp(t) and t.unit == "ns" for t in arrow_types.values()):
        spark.conf.set(_NANOS_AS_LONG, "true")
    df = spark.read.parquet(str(path)).select(*(col(c) for c in columns), F.col("_metadata.row_index").alias(ROW))
    return df, n, arrow_types


def _read_csv(spark: SparkSession, path: Path, delimiter: str) -> DataFrame:
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    names = _header_names(path, delimiter)
    schema = StructType([StructField(f"_c{i}", StringType()) for i in range(len(names))])
    schema = schema.add(StructField(_EXTRA, StringType()))
    df = spark.read.csv(  # the header is read as a record (source row -1), so Spark does not check it
        str(path),
        schema=schema,
        header=False,
        sep=delimiter,
        quote='"',
        escape='"',
        multiLine=True,
        mode="PERMISSIVE",
        encoding="UTF-8",
    )
    cells = [F.coalesce(F.col(f"_c{i}"), F.lit("")).alias(n) for i, n in enumerate(names)]
    return df.select(*cells, F.col(_EXTRA))


def _number_rows(df: DataFrame, extra: str) -> tuple[DataFrame, int, int | None]:
    """``df`` with :data:`ROW`, the number of rows, and the first row whose ``extra`` column is set (or None);
    the first record is the header: dropped, and the data rows numbered from 0."""
    from pyspark.sql import functions as F

    tagged = df.select("*", F.spark_partition_id().alias("_pid"), F.monotonically_increasing_id().alias("_mid"))
    flagged = F.when(F.col(extra).isNotNull(), F.col("_mid"))
    parts = tagged.groupBy("_pid").agg(F.count(F.lit(1)).alias("n"), F.min(flagged).alias("bad")).collect()
    counts = {int(r["_pid"]): (int(r["n"]), r["bad"]) for r in parts}
    offsets, first_bad, total = [], None, -1
    for pid in range(max(counts, default=-1) + 1):
        n, bad = counts.get(pid, (0, None))
        if bad is not None and first_bad is None:
            first_bad = total + int(bad) - (pid << 33)
        offsets.append(total)
        total += n
    start = F.element_at(F.array(*(F.lit(o) for o in offsets or [0])), F.col("_pid") + 1)
    row = (start + F.col("_mid") - F.shiftleft(F.col("_pid").cast("long"), 33)).cast("long").alias(ROW)
    keep = [col(c) for c in df.columns if c != extra]
    numbered = tagged.select(*keep, row)
    return numbered.filter(F.col(ROW) >= 0), max(total, 0), first_bad


# --------------------------------------------------------------------------------------------------------------------
# Column parsers: the semantics of tiercast.pipeline.ingest.columns, as Spark expressions
# --------------------------------------------------------------------------------------------------------------------


def kind(spark_type) -> str:
    """'float', 'int', 'bool', 'tz', 'ts', 'date' or 'text' for a Spark column type (as columns.kind)."""
    from pyspark.sql import types as T

    if isinstance(spark_type, (T.DoubleType, T.FloatType, T.DecimalType)):
        return "float"
    if isinstance(spark_type, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
        return "int"
    kinds = {T.BooleanType: "bool", T.TimestampType: "tz", T.TimestampNTZType: "ts", T.DateType: "date"}
    return next((k for t, k in kinds.items() if isinstance(spark_type, t)), "text")


def text(c: Column, k: str, na_values: tuple[str, ...], *, is_id: bool = False) -> Column:
    """Stripped text, missing markers NULL; integral floats without '.0', NaN / infinite floats NULL; for ids,
    text such as '13085.0' becomes '13085'."""
    from pyspark.sql import functions as F

    if k == "float":
        v = c.cast("double")
        integral = (v == F.floor(v)) & (F.abs(v) < INTEGRAL_ID_LIMIT)
        finite = ~F.isnan(v) & (F.abs(v) != float("inf"))
        return F.when(~finite, F.lit(None)).when(integral, v.cast("long").cast("string")).otherwise(v.cast("string"))
    if k == "int":
        return c.cast("string")
    if k == "bool":
        return F.when(c, F.lit("True")).when(~c, F.lit("False"))
    v = c.cast("string")

    def finish(x: Column) -> Column:  # missing markers, then a float id's '.0'
        x = F.when(~x.isin(*na_values), x) if na_values else x
        return F.when(x.contains("."), F.regexp_replace(x, r"^(\p{Nd}+)\.0*$", "$1")).otherwise(x) if is_id else x

    # The regular expression only where an end may be blank (an ASCII character below '!', or text with a
    # non-ASCII character), as DuckDB's ingestion runs its trim; each branch finishes its own value, so Spark does
    # not compute the stripped value for every row to share it between the tests.
    ends = _ends_maybe_blank(v)
    stripped = F.regexp_replace(v, f"^{BLANK_CLASS}+|{BLANK_CLASS}+$", "")
    return F.when(ends, finish(stripped)).otherwise(finish(v))


def _ends_maybe_blank(v: Column) -> Column:
    """TRUE when the first or last character may be one ``str.strip()`` removes (ASCII below '!', or text with a
    non-ASCII character): cheap tests standing in for the regular expression, as DuckDB's ``_ends_maybe_blank``."""
    from pyspark.sql import functions as F

    return (v < "!") | (F.substring(v, -1, 1) < "!") | (F.octet_length(v) != F.length(v))


def number(c: Column, k: str, decimal: str, na_values: tuple[str, ...]) -> Column:
    """DOUBLE value, NULL where missing or not a number (non-finite values stay, and are judged bad)."""
    from pyspark.sql import functions as F

    if k in ("float", "int"):
        return c.cast("double")
    if k == "bool":
        return F.lit(None).cast("double")
    t = text(c, k, na_values)
    value = F.regexp_replace(t, ",", ".") if decimal == "," else t
    return F.when(t.rlike(f"^(?:{number_pattern(decimal)})$"), value.try_cast("double"))


def timestamp(c: Column, k: str, arrow_type: pa.DataType | None, src: TransactionSource, formats: list[str]) -> Column:
    """Naive timestamp in the source's zone (NULL where unparseable), as columns.timestamp."""
    from pyspark.sql import functions as F

    tz = src.timezone or "UTC"
    if arrow_type is not None and pa.types.is_timestamp(arrow_type) and arrow_type.unit == "ns":
        instant = F.timestamp_micros(F.floor(c.cast("decimal(20,0)") / 1000).cast("long"))
        return (F.from_utc_timestamp(instant, tz) if arrow_type.tz else instant).cast("timestamp_ntz")
    if k == "tz":
        return F.from_utc_timestamp(c, tz).cast("timestamp_ntz")
    if k in ("ts", "date"):
        return c.cast("timestamp_ntz")
    return _parse_text_timestamps(text(c, k, src.na_values), src.timestamp_format, src.timezone, formats)


def ambiguous_timestamp(c: Column, k: str, src: TransactionSource) -> Column:
    """TRUE where a text timestamp is a day-month date and no format is set (never guessed), as DuckDB's
    ingestion marks it."""
    from pyspark.sql import functions as F

    if k != "text" or src.timestamp_format is not None:
        return F.lit(False)
    return F.coalesce(text(c, k, src.na_values).rlike(f"^(?:{DAY_MONTH_PATTERN})$"), F.lit(False))


def offset(c: Column, k: str, arrow_type: pa.DataType | None, src: TransactionSource) -> Column:
    """TRUE where the timestamp carries a UTC offset or zone, so :func:`timestamp` converts it (as DuckDB's ingestion
    counts them): a tz-aware column, or a text with an offset after the time (every text when the format reads a
    zone)."""
    from pyspark.sql import functions as F

    from tiercast.pipeline.ingest.parsing import _TZ_SUFFIX

    fmt = src.timestamp_format
    if arrow_type is not None and pa.types.is_timestamp(arrow_type) and arrow_type.unit == "ns":
        return F.lit(arrow_type.tz is not None)
    if k != "text":
        return F.lit(k == "tz")
    if fmt is not None:
        return F.lit("%z" in fmt or "%Z" in fmt)
    return F.coalesce(text(c, k, src.na_values).rlike(_TZ_SUFFIX), F.lit(False))


def padded(c: Column, k: str) -> Column | None:
    """The raw text where its first or last character is one ``str.strip()`` removes, else NULL (None for typed
    columns): the customer ids trimmed, as DuckDB's ingestion marks them. The regular expression runs only where an
    end may be blank, as in :func:`text`."""
    from pyspark.sql import functions as F

    if k != "text":
        return None
    v = c.cast("string")
    return F.when(_ends_maybe_blank(v), F.when(v.rlike(f"^{BLANK_CLASS}|{BLANK_CLASS}$"), v))


def _parse_text_timestamps(t: Column, fmt: str | None, tz: str | None, formats: list[str]) -> Column:
    from pyspark.sql.functions import pandas_udf

    from tiercast.pipeline.ingest.parsing import TS_UNIT, _per_distinct, parse_timestamps

    @pandas_udf("timestamp_ntz")  # type: ignore[call-overload]
    def parse(values: pd.Series) -> pd.Series:
        return _per_distinct(
            values, lambda u: parse_timestamps(u, fmt, tz, formats=formats), np.datetime64("NaT", "us"), TS_UNIT
        )

    return parse(t)


def synthetic_order_id() -> Column:
    """'<customer_id>@<timestamp>' (date only at midnight, to the second when whole), as DuckDB's ingestion."""
    from pyspark.sql import functions as F

    ts = F.col(TIMESTAMP)
    text = (
        F.when(ts == F.date_trunc("day", ts), F.date_format(ts, "yyyy-MM-dd"))
        .when(ts == F.date_trunc("second", ts), F.date_format(ts, "yyyy-MM-dd'T'HH:mm:ss"))
        .otherwise(F.date_format(ts, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"))
    )
    return F.concat(F.col(CUSTOMER_ID), F.lit("@"), text)


def duplicate_rows(raw: SparkRaw) -> DataFrame | None:
    """Rows (:data:`ROW`) repeating an earlier row in every source column, or None when no two rows share a hash:
    rows are hashed, and only rows sharing a hash are compared column by column (as DuckDB's ingestion finds
    them)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cells = [col(c) for c in raw.columns]
    hashed = raw.df.select(ROW, *cells, F.xxhash64(*cells).alias("_h"))
    shared = hashed.groupBy("_h").count().filter(F.col("count") > 1).select("_h").cache()
    if not shared.take(1):  # a file without repeated lines: no second pass
        shared.unpersist()
        return None
    # the shared hashes are few (one per repeated line): sent to every task, so the rows are not shuffled to meet them
    candidates = hashed.join(F.broadcast(shared), "_h", "left_semi")
    order = Window.partitionBy(*(col(c) for c in raw.columns)).orderBy(ROW)
    copies = candidates.select(ROW, F.row_number().over(order).alias("_k")).filter(F.col("_k") > 1)
    return copies.select(ROW, F.lit(True).alias(DUPLICATE))
