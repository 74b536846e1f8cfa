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
import pandas as pd

from tiercast.pipeline.ingest.common import InputError
from tiercast.pipeline.ingest.paths import NO_FILES
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
#: Where the rows of each file start, for a source read from several files: ``file``, ``first_row`` (of :data:`ROW`).
FILES = "_tc_files"
_FILE = "__tc_file"  # the reader's file-name column, never a source column
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
    several: bool = False  # read from a folder or pattern: :data:`FILES` says where each file's rows start


def open_raw(con: duckdb.DuckDBPyConnection, src: TransactionSource) -> RawSource:
    """Register the source as :data:`RAW` on ``con`` (a folder's or pattern's files as one source, their rows
    numbered in file order, :data:`FILES` where each file starts); raises :class:`InputError` for unreadable
    sources."""
    fmt, several = src.resolved_format(), src.several()
    files = src.files() if fmt in ("csv", "parquet") else []  # a database is one source
    if fmt in ("csv", "parquet") and not files:
        raise InputError(f"{src.describe()}: {NO_FILES}")
    if fmt == "csv" and src.delimiter != WHITESPACE:
        _read_csv_duckdb(con, files, src.delimiter, several=several)
    elif fmt == "parquet":
        _read_parquet_duckdb(con, files, several=several)
    else:
        if fmt == "csv":
            frames = [read_csv_source(f, src.delimiter) for f in files]
            same_columns([[str(c) for c in df.columns] for df in frames], files)
            df = pd.concat(frames, ignore_index=True)
            if several:
                _register_files(con, files, [len(f) for f in frames])
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
    return RawSource(columns, n, where, files[0] if fmt == "csv" else None, several)


def same_columns(names: list[list[str]], files: list[Path]) -> None:
    """Fail unless every file has the first file's columns, in its order: a column added or renamed in one export
    would otherwise be read as missing in the others (or shift every value by a column)."""
    for file, other in zip(files[1:], names[1:], strict=True):
        if other != names[0]:
            lacks = [c for c in names[0] if c not in other]
            extra = [c for c in other if c not in names[0]]
            parts = [*([f"lacks {lacks}"] if lacks else []), *([f"has {extra} too"] if extra else [])]
            diff = ", ".join(parts) or "the same columns in another order"
            raise InputError(
                f"{file}: its columns differ from {files[0]}'s ({diff}); every file of the source needs the same"
            )


def _register_files(con: duckdb.DuckDBPyConnection, files: list[Path], rows: list[int]) -> None:
    """:data:`FILES` from the files' row counts, in reading order; a file without rows is left out (it would start
    where the next one does, and could be named for that one's rows)."""
    starts = np.concatenate([[0], np.cumsum(rows[:-1])]).astype("int64") if rows else np.array([], dtype="int64")
    frame = pd.DataFrame({"file": [str(f) for f in files], "first_row": starts, "n": rows})
    frame = frame.loc[frame["n"] > 0, ["file", "first_row"]]
    con.register("_tc_files_frame", frame)
    run(con, f"CREATE OR REPLACE TABLE {FILES} AS SELECT * FROM _tc_files_frame")
    con.unregister("_tc_files_frame")


def _header_names(path: Path, delimiter: str) -> list[str]:
    """Column names as pandas names them: quoted fields unquoted, blanks 'Unnamed: i'; repeated names fail
    (:func:`~tiercast.pipeline.ingest.readers.check_unique_columns`)."""
    return [name or f"Unnamed: {i}" for i, name in enumerate(header_names(path, delimiter))]


def _read_csv_duckdb(con: duckdb.DuckDBPyConnection, files: list[Path], delimiter: str, *, several: bool) -> None:
    for path in files:
        check_file(path)
        check_utf8(path)
    names = _header_names(files[0], delimiter)
    same_columns([names, *(_header_names(f, delimiter) for f in files[1:])], files)
    columns = "{" + ", ".join(f"{lit(n)}: 'VARCHAR'" for n in names) + "}"
    options = (
        f"columns={columns}, auto_detect=false, header=true, skip=0, delim={lit(delimiter)}, quote='\"', "
        f"escape='\"', null_padding=true, force_not_null=[{', '.join(lit(n) for n in names)}]"
    )
    if several:
        options += f", filename={lit(_FILE)}"
    paths = "[" + ", ".join(lit(str(f)) for f in files) + "]"
    for parallel in ("true", "false"):  # quoted line breaks with null padding need the serial reader
        try:
            run(
                con,
                f"CREATE OR REPLACE TABLE _tc_csv AS SELECT * FROM read_csv({paths}, {options}, parallel={parallel})",
            )
            break
        except duckdb.Error as err:
            text = str(err)
            if parallel == "true" and "parallel" in text:
                continue
            line = re.search(r"Line: (\d+)", text)
            found = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
            named = re.search(r"^\s*file = (.+)$", text, re.MULTILINE)
            path = Path(named[1].strip()) if named and len(files) > 1 else files[0]
            detail = f"expected {found[1]} fields, saw {found[2]}" if found else text.splitlines()[0]
            where = f" in line {line[1]}" if line else ""
            raise InputError(
                f"{path}: cannot parse as delimited text{where}: {detail}{delimiter_hint(path, delimiter)}"
            ) from None
    # A table keeps the files' row order; its rowid is the 0-based data row, counted on across the files.
    if several:
        run(
            con,
            f"CREATE OR REPLACE TABLE {FILES} AS SELECT {_FILE} AS file, min(rowid) AS first_row FROM _tc_csv "
            "GROUP BY ALL ORDER BY first_row",
        )
        run(con, f"CREATE OR REPLACE VIEW {RAW} AS SELECT * EXCLUDE ({_FILE}), rowid AS {ROW} FROM _tc_csv")
    else:
        run(con, f"CREATE OR REPLACE VIEW {RAW} AS SELECT *, rowid AS {ROW} FROM _tc_csv")


def parquet_names(path: Path) -> list[str]:
    """The top-level column names written in a Parquet file's footer (repeats kept), pandas' index left out."""
    import pyarrow.parquet as pq

    return [n for n in pq.read_schema(path).names if not _PANDAS_INDEX.fullmatch(n)]


def _read_parquet_duckdb(con: duckdb.DuckDBPyConnection, files: list[Path], *, several: bool) -> None:
    import pyarrow.parquet as pq

    described = None
    for path in files:
        check_file(path)
        try:
            found = con.execute(f"DESCRIBE SELECT * FROM read_parquet({lit(str(path))})").fetchall()
        except duckdb.Error as err:
            first = str(err).splitlines()[0]
            raise InputError(f"{path}: not a readable Parquet file ({type(err).__name__}: {first})") from None
        check_unique_columns(parquet_names(path), str(path))  # DuckDB would name a repeat 'amount_1'
        described = described or found
    same_columns([parquet_names(f) for f in files], files)
    keep = [str(r[0]) for r in described or [] if not _PANDAS_INDEX.fullmatch(str(r[0]))]
    cols = ", ".join(ident(c) for c in keep)
    if not several:
        run(
            con,
            f"CREATE OR REPLACE VIEW {RAW} AS SELECT {cols}, file_row_number AS {ROW} "
            f"FROM read_parquet({lit(str(files[0]))}, file_row_number=true)",
        )
        return
    # the files' row counts from their footers: a row's number is its file's start plus its row in the file
    _register_files(con, files, [pq.ParquetFile(f).metadata.num_rows for f in files])
    paths = "[" + ", ".join(lit(str(f)) for f in files) + "]"
    run(
        con,
        f"CREATE OR REPLACE VIEW {RAW} AS SELECT {cols}, f.first_row + p.file_row_number AS {ROW} "
        f"FROM read_parquet({paths}, file_row_number=true, filename={lit(_FILE)}) p "
        f"JOIN {FILES} f ON p.{_FILE} = f.file",
    )
