"""File checks and the pandas readers of whole sources (whitespace text, PostgreSQL, Olist CSV tables), with the
one-line errors naming the file and the problem."""

from __future__ import annotations

import csv
import gzip
import re
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from tiercast.features.contract import TIMESTAMP
from tiercast.pipeline.ingest.common import InputError, unparseable_column
from tiercast.pipeline.ingest.parsing import grouped_number_pattern
from tiercast.pipeline.ingest.paths import GZIP_SUFFIX
from tiercast.pipeline.ingest.sources import DEFAULT_NA_VALUES, WHITESPACE, TransactionSource

_CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
#: Numbers in a timestamp column that are instants in another unit, by magnitude: (low, high, what they look like,
#: how to convert them). Not read: the unit cannot be told from the values alone with certainty (seconds or
#: milliseconds, Excel's 1900 or 1904 day count), and a wrong guess would shift every date silently.
_NUMERIC_DATES = (
    (1e8, 1e10, "Unix epoch seconds", "pandas.to_datetime(values, unit='s')"),
    (1e11, 1e13, "Unix epoch milliseconds", "pandas.to_datetime(values, unit='ms')"),
    (
        2e4,
        8e4,
        "Excel serial day numbers",
        "pandas.to_datetime(values, unit='D', origin='1899-12-30'), or format the column as dates before exporting",
    ),
)
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
#: What to do about numbers written with thousands separators (no setting reads them).
_NO_GROUPING = "export the column without them"


def check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (0 bytes)")


#: The first bytes of every gzip stream.
GZIP_MAGIC = b"\x1f\x8b"


def gzipped(path: Path) -> bool:
    """Whether a text file is gzip-compressed, told by its name (``.gz``) as DuckDB, pandas and Spark tell it; a
    name and content that disagree fail here, naming the file: read by the name, gzip bytes would be parsed as
    text (Spark) and plain text fail to unpack."""
    with open(path, "rb") as fh:
        packed = fh.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    named = path.suffix.lower() == GZIP_SUFFIX
    if packed and not named:
        raise InputError(f"{path}: gzip-compressed but not named .gz; rename it to {path.name}{GZIP_SUFFIX}")
    if named and not packed:
        raise InputError(f"{path}: named {GZIP_SUFFIX} but not gzip-compressed; rename it without {GZIP_SUFFIX}")
    return packed


@contextmanager
def open_bytes(path: Path) -> Iterator[BinaryIO]:
    """The file's bytes, unpacked when it is gzip-compressed (:func:`gzipped`); a damaged or truncated gzip
    stream fails with one line naming the file."""
    try:
        with gzip.open(path, "rb") if gzipped(path) else open(path, "rb") as fh:
            yield fh  # type: ignore[misc]
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise InputError(f"{path}: cannot unpack the gzip file ({err}); is it complete?") from None


def check_utf8(path: Path, chunk_size: int = 1 << 22) -> None:
    """Fail on the first byte sequence that is not UTF-8, naming its byte offset and line (of the unpacked text
    for a ``.gz`` file); bounded memory. Reading a gzip file to its end also finds a damaged or truncated one."""
    offset = 0  # bytes before `buf`
    lines = 0  # newlines before `buf`
    carry = b""
    with open_bytes(path) as fh:
        while True:
            chunk = fh.read(chunk_size)
            buf = carry + chunk
            if not buf:
                return
            try:
                buf.decode("utf-8")
                carry = b""
                good = len(buf)
            except UnicodeDecodeError as err:
                if chunk and err.reason == "unexpected end of data":
                    good = err.start  # a character split across chunks: finish it with the next chunk
                    carry = buf[good:]
                else:
                    pos = offset + err.start
                    line = lines + buf.count(b"\n", 0, err.start) + 1
                    raise InputError(
                        f"{path}: not valid UTF-8: byte 0x{buf[err.start]:02x} at byte offset {pos} (line {line}); "
                        "re-save the file as UTF-8"
                    ) from None
            lines += buf.count(b"\n", 0, good)
            offset += good
            if not chunk:
                return


def header_line(path: Path) -> str:
    with open_bytes(path) as fh:
        head = fh.read(1 << 16)
    return head.decode("utf-8", errors="replace").lstrip("\ufeff").splitlines()[0] if head.strip() else ""


def header_names(path: Path, delimiter: str) -> list[str]:
    """The header's column names as written (quoted fields unquoted, blanks empty); fails on duplicates."""
    line = header_line(path)
    if not line.strip():
        raise InputError(f"{path}: file is empty (no header line)")
    names = line.split() if delimiter == WHITESPACE else next(csv.reader([line], delimiter=delimiter, quotechar='"'))
    check_unique_columns(names, str(path))
    return names


def check_unique_columns(names: list[str], where: str) -> None:
    """Fail when two columns share a name, compared ignoring case (DuckDB and Spark do not tell 'amount' from
    'Amount'): whichever the mapping used, one of the two would be read silently. Checked for every column, mapped
    or not, so the error does not depend on the mapping."""
    seen: dict[str, list[str]] = {}
    for name in names:
        if name:  # blank names are numbered ('Unnamed: i'), never equal
            seen.setdefault(name.casefold(), []).append(name)
    repeated = [" = ".join(repr(n) for n in dict.fromkeys(group)) for group in seen.values() if len(group) > 1]
    if repeated:
        raise InputError(
            f"{where}: duplicate column name {', '.join(repeated)} (names are compared ignoring case); rename or drop "
            "the repeated columns"
        )


def check_timestamp_format(fmt: str | None, where: str, column: str, setting: str = "timestamp_format") -> None:
    """Fail up front when ``timestamp_format`` (or the ``setting`` giving ``fmt``) is no strptime format pandas reads
    (e.g. '%s' or '%Q': epoch values have no directive here), rather than on the first value parsed; every engine
    parses with it."""
    if fmt is None:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            pd.to_datetime(pd.Series(["0"]), format=fmt, errors="coerce")
    except (ValueError, re.error) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        epoch = (
            "; epoch numbers are not read: convert the column to dates first (e.g. pandas.to_datetime(values, "
            "unit='s'))"
            if re.search(r"%[sQ]", fmt)
            else ""
        )
        raise InputError(
            f"{where}: column {column!r}: {setting} {fmt!r} is not a usable strptime format ({detail}); use "
            f"directives such as %Y %m %d %H %M %S, e.g. '%d/%m/%Y %H:%M'{epoch}"
        ) from None


def delimiter_hint(path: Path | None, delimiter: str) -> str:
    """' — the header looks ';'-separated ...' when another delimiter is likelier than the configured one."""
    if path is None or delimiter == WHITESPACE:
        return ""
    header = header_line(path)
    counts = {d: header.count(d) for d in _CANDIDATE_DELIMITERS if d != delimiter}
    best = max(counts, key=lambda d: counts[d]) if counts else None
    if best is None or counts[best] == 0 or header.count(delimiter) >= counts[best]:
        return ""
    return (
        f"; wrong delimiter? read with {delimiter!r}, but the header has {counts[best]} {best!r} "
        f"(set delimiter: {best!r})"
    )


def read_csv_source(path: Path, delimiter: str) -> pd.DataFrame:
    path = Path(path)
    check_file(path)
    check_utf8(path)
    sep = r"\s+" if delimiter == WHITESPACE else delimiter
    try:
        df = pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
            engine="c",
        )
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: file is empty (no header line)") from None
    except pd.errors.ParserError as err:
        raise InputError(f"{path}: cannot parse as delimited text: {err}{delimiter_hint(path, delimiter)}") from None
    if header_line(path).strip():  # pandas numbers repeated names ('amount.1'): fail on them instead
        header_names(path, delimiter)
    if df.empty:
        raise InputError(f"{path}: header but no data rows (columns: {list(df.columns)})")
    return df


def read_parquet_source(path: Path) -> pd.DataFrame:
    path = Path(path)
    check_file(path)
    try:
        df = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        raise InputError(f"{path}: not a readable Parquet file ({type(err).__name__}: {err})") from None
    if df.empty:
        raise InputError(f"{path}: no data rows (columns: {list(df.columns)})")
    return df.reset_index(drop=True)


def read_duckdb_source(src: TransactionSource) -> pd.DataFrame:
    import duckdb

    path = Path(src.path)
    check_file(path)
    if src.table is not None:
        name = ".".join('"' + part.replace('"', '""') + '"' for part in src.table.split("."))
        sql = f"SELECT * FROM {name}"
    else:
        sql = src.query  # type: ignore[assignment]
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as err:
        raise InputError(f"{path}: not a readable DuckDB database ({err})") from None
    try:
        df = con.sql(sql).df()
    except duckdb.Error as err:
        raise InputError(f"{src.describe()}: query failed: {err}") from None
    finally:
        con.close()
    if df.empty:
        raise InputError(f"{src.describe()}: no data rows (columns: {list(df.columns)})")
    return df


def read_postgres_source(src: TransactionSource) -> pd.DataFrame:
    """A PostgreSQL table or query through Ibis's postgres backend (``pip install "tiercast[postgres]"``)."""
    import ibis

    try:
        con = ibis.connect(str(src.url).replace("postgres://", "postgresql://", 1))
    except Exception as err:  # driver and connection errors differ; the message names the source
        raise InputError(f"{src.describe()}: cannot connect ({str(err).splitlines()[0]})") from None
    try:
        if src.table is not None:
            *schema, name = src.table.split(".")
            df = con.table(name, database=schema[0] if schema else None).to_pandas()
        else:
            df = _postgres_query(con, str(src.query))
    except Exception as err:
        raise InputError(f"{src.describe()}: query failed: {str(err).splitlines()[0]}") from None
    finally:
        con.disconnect()
    if df.empty:
        raise InputError(f"{src.describe()}: no data rows (columns: {list(df.columns)})")
    return df


def _postgres_query(con, query: str) -> pd.DataFrame:
    """The rows of a SELECT, through the backend's cursor (exact NUMERIC values become floats)."""
    from decimal import Decimal

    with con.raw_sql(query) as cur:
        rows = cur.fetchall()
        names = [d.name for d in cur.description]
    df = pd.DataFrame.from_records(rows, columns=names)
    for col in df.columns:
        if df[col].dtype == object and df[col].map(lambda v: isinstance(v, Decimal)).any():
            df[col] = df[col].map(lambda v: float(v) if isinstance(v, Decimal) else v)
    return df


def require_source_columns(
    df: pd.DataFrame, mapping: dict[str, str], where: str, path: Path | None, delimiter: str, prefix: str
) -> None:
    missing = [(field_, col) for field_, col in mapping.items() if col not in df.columns]
    if not missing:
        return
    names = ", ".join(f"{col!r} ({prefix}{field_})" if field_ != col else repr(col) for field_, col in missing)
    found = [str(c) for c in df.columns]
    hint = delimiter_hint(path, delimiter) if len(found) == 1 and path is not None else ""
    if len(found) == 1 and path is not None and not hint and len(mapping) > 1:
        hint = f"; only one column was read with delimiter {delimiter!r}: wrong delimiter?"
    raise InputError(f"{where}: missing column {names}; columns found: {found}{hint}")


def require_some_values(parsed: pd.Series, raw: pd.Series, where: str, column: str, kind: str, fmt: str | None) -> None:
    """A column where no row parses means a wrong mapping or format, not bad rows: fail the file."""
    if parsed.notna().any():
        return
    values = list(pd.unique(raw.astype("str"))[:20])
    raise InputError(unreadable_column(where, column, kind, fmt, len(raw), values))


def numeric_dates_advice(values: list[str]) -> str | None:
    """What plain numbers in a timestamp column look like (epoch seconds or milliseconds, Excel serial days) and how
    to convert them, when every value is a number in one of those ranges; else None."""
    if not values or not all(_PLAIN_NUMBER.fullmatch(v) for v in values):
        return None
    numbers = [abs(float(v)) for v in values]
    for low, high, what, how in _NUMERIC_DATES:
        if all(low <= v < high for v in numbers):
            return f"they look like {what}, which no timestamp_format reads; convert them to dates first (e.g. {how})"
    return None


def unreadable_column(
    where: str,
    column: str,
    kind: str,
    fmt: str | None,
    n_rows: int,
    values: list[str],
    decimal: str = ".",
    na_values: tuple[str, ...] = DEFAULT_NA_VALUES,
) -> str:
    """The error for a column where no row parses (``values``: its first distinct texts): a timestamp column of
    plain numbers says what they look like (epoch seconds, Excel serial days: no ``timestamp_format`` reads them)
    or that the column may be the wrong one; a number column with thousands separators says so."""
    examples = [repr(v) for v in values[:3]]
    present = [v.strip() for v in values if v.strip() not in (*na_values, "nan")]
    if kind == TIMESTAMP and present and all(_PLAIN_NUMBER.fullmatch(v) for v in present):
        head = f"{where}: column {column!r} holds numbers, not timestamps ({n_rows:,} rows; e.g. {', '.join(examples)})"
        if (advice := numeric_dates_advice(present)) is not None:
            return f"{head}: {advice}"
        if fmt is None:
            return (
                f"{head}: is it the timestamp column? (numbers are read as dates only with a timestamp_format, e.g. "
                "'%Y%m%d' for 20230105)"
            )
    message = unparseable_column(where, column, kind, fmt, n_rows, examples)
    grouped = next((v for v in values if re.fullmatch(grouped_number_pattern(decimal), v)), None)
    if kind == "number" and grouped is not None:
        message += f"; values such as {grouped!r} have thousands separators, which are not read: {_NO_GROUPING}"
    return message


def grouped_numbers_message(source: str, column: str, n: int, example: str) -> str:
    """Rows quarantined as ``non_numeric_amount`` whose value in ``column`` looks like a number with thousands
    separators."""
    what, verb = ("1 row", "looks like a number") if n == 1 else (f"{n:,} rows", "look like numbers")
    return (
        f"{source}: {what} of column {column!r} {verb} with thousands separators (e.g. {example!r}), quarantined as "
        f"non_numeric_amount (thousands separators are not read: {_NO_GROUPING})"
    )
