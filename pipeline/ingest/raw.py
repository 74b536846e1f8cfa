"""The source as read, as a DuckDB relation: every source column as the source types it, plus ``__row`` (the 0-based
data row; the header is not a row). CSV files are read by DuckDB's ``read_csv`` with every column as text (what
pandas' ``dtype=str`` read gave), Parquet by ``read_parquet``; whitespace-separated text, DuckDB databases and
PostgreSQL are read whole into a frame first (small sources; their readers' semantics are pandas' or the
database's) and registered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from tiercast.pipeline.ingest.common import InputError
from tiercast.pipeline.ingest.readers import (
    check_file,
    check_unique_columns,
    check_utf8,
    delimiter_hint,
    header_names,
    read_csv_source,
    read_duckdb_source,
    read_postgres_source,
)
from tiercast.pipeline.ingest.sources import WHITESPACE, TransactionSource

RAW = "_tc_raw"
ROW = "__row"
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")


def run(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> None:
    """Execute a statement and finish its result (DuckDB refuses other work on a connection with one pending)."""
    con.execute(sql, params or []).fetchall()


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class RawSource:
    """The registered relation :data:`RAW`: source column name -> DuckDB type, and the number of data rows."""

    columns: dict[str, str]
    n_read: int
    where: str
    csv_path: Path | None = None


def open_raw(con: duckdb.DuckDBPyConnection, src: TransactionSource) -> RawSource:
    """Register the source as :data:`RAW` on ``con``; raises :class:`InputError` for unreadable sources."""
    fmt = src.resolved_format()
    if fmt == "csv" and src.delimiter != WHITESPACE:
        _read_csv_duckdb(con, Path(src.path), src.delimiter)  # type: ignore[arg-type]
    elif fmt == "parquet":
        _read_parquet_duckdb(con, Path(src.path))  # type: ignore[arg-type]
    else:
        if fmt == "csv":
            df = read_csv_source(src.path, src.delimiter)  # type: ignore[arg-type]
        elif fmt == "postgres":
            df = read_postgres_source(src)
        else:
            df = read_duckdb_source(src)
        check_unique_columns([str(c) for c in df.columns], src.describe())
        df = df.reset_index(drop=True)
        df[ROW] = np.arange(len(df), dtype="int64")
        con.register("_tc_frame", df)
        run(con, f"CREATE OR REPLACE VIEW {RAW} AS SELECT * FROM _tc_frame")
    described = con.execute(f"DESCRIBE {RAW}").fetchall()
    columns = {str(r[0]): str(r[1]) for r in described if r[0] != ROW}
    n = int(con.execute(f"SELECT count(*) FROM {RAW}").fetchall()[0][0])  # type: ignore[index]
    where = src.describe()
    if n == 0:
        what = "header but no data rows" if fmt == "csv" else "no data rows"
        raise InputError(f"{where}: {what} (columns: {list(columns)})")
    return RawSource(columns, n, where, Path(src.path) if fmt == "csv" else None)  # type: ignore[arg-type]


def _header_names(path: Path, delimiter: str) -> list[str]:
    """Column names as pandas names them: quoted fields unquoted, blanks 'Unnamed: i'; repeated names fail
    (:func:`~tiercast.pipeline.ingest.readers.check_unique_columns`)."""
    return [name or f"Unnamed: {i}" for i, name in enumerate(header_names(path, delimiter))]


def _read_csv_duckdb(con: duckdb.DuckDBPyConnection, path: Path, delimiter: str) -> None:
    check_file(path)
    check_utf8(path)
    names = _header_names(path, delimiter)
    columns = "{" + ", ".join(f"{lit(n)}: 'VARCHAR'" for n in names) + "}"
    options = (
        f"columns={columns}, auto_detect=false, header=true, skip=0, delim={lit(delimiter)}, quote='\"', "
        f"escape='\"', null_padding=true, force_not_null=[{', '.join(lit(n) for n in names)}]"
    )
    for parallel in ("true", "false"):  # quoted line breaks with null padding need the serial reader
        try:
            run(
                con,
                f"CREATE OR REPLACE TABLE _tc_csv AS SELECT * FROM read_csv({lit(str(path))}, {options}, "
                f"parallel={parallel})",
            )
            break
        except duckdb.Error as err:
            text = str(err)
            if parallel == "true" and "parallel" in text:
                continue
            line = re.search(r"Line: (\d+)", text)
            found = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
            detail = f"expected {found[1]} fields, saw {found[2]}" if found else text.splitlines()[0]
            where = f" in line {line[1]}" if line else ""
            raise InputError(
                f"{path}: cannot parse as delimited text{where}: {detail}{delimiter_hint(path, delimiter)}"
            ) from None
    # A table keeps the file's row order; its rowid is the 0-based data row.
    run(con, f"CREATE OR REPLACE VIEW {RAW} AS SELECT *, rowid AS {ROW} FROM _tc_csv")


def parquet_names(path: Path) -> list[str]:
    """The top-level column names written in a Parquet file's footer (repeats kept), pandas' index left out."""
    import pyarrow.parquet as pq

    return [n for n in pq.read_schema(path).names if not _PANDAS_INDEX.fullmatch(n)]


def _read_parquet_duckdb(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    check_file(path)
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({lit(str(path))})").fetchall()
    except duckdb.Error as err:
        first = str(err).splitlines()[0]
        raise InputError(f"{path}: not a readable Parquet file ({type(err).__name__}: {first})") from None
    check_unique_columns(parquet_names(path), str(path))  # DuckDB would name a repeat 'amount_1'
    keep = [str(r[0]) for r in described if not _PANDAS_INDEX.fullmatch(str(r[0]))]
    cols = ", ".join(ident(c) for c in keep)
    run(
        con,
        f"CREATE OR REPLACE VIEW {RAW} AS SELECT {cols}, file_row_number AS {ROW} "
        f"FROM read_parquet({lit(str(path))}, file_row_number=true)",
    )
