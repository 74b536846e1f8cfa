"""Where a source's rows are: the format a file's suffix names (a ``.gz`` text file's the suffix before it), and the
files of a folder or glob pattern read as one source."""

from __future__ import annotations

import glob
from pathlib import Path

SUFFIX_FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".dat": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".duckdb": "duckdb",
    ".ddb": "duckdb",
    ".db": "duckdb",
}

#: The suffix of a gzip-compressed text file (``orders.csv.gz``): DuckDB, pandas and Spark read it as it is.
GZIP_SUFFIX = ".gz"


#: Spreadsheet workbooks, which are not read: each sheet is saved as CSV first.
SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")


def spreadsheet_advice(path: Path) -> str | None:
    """What to do with a spreadsheet workbook (``sales.xlsx``), None for other files."""
    if path.suffix.lower() not in SPREADSHEET_SUFFIXES:
        return None
    return (
        f"{path.name} is a spreadsheet workbook, which is not read: save each sheet of transactions as CSV UTF-8 "
        "(Excel: File > Save As > CSV UTF-8; several sheets: one file each, in a folder given as the path)"
    )


#: Characters that make a ``path`` a glob pattern (``exports/*.csv``) instead of a file name.
GLOB_CHARS = "*?["


def is_pattern(path: Path | str) -> bool:
    """Whether ``path`` is a glob pattern (``exports/*.csv``, ``lake/**/*.parquet``)."""
    return any(ch in str(path) for ch in GLOB_CHARS)


def source_files(path: Path) -> list[Path]:
    """The data files ``path`` names, in the order their rows are numbered (sorted by path): the file itself; for a
    folder, every file under it whose suffix names a text or Parquet format (:func:`suffix_format`), names starting
    with ``.`` or ``_`` left out (``.DS_Store``, Spark's ``_SUCCESS``, ``.crc`` files, ``_temporary/``); for a glob
    pattern, the files it matches (``**`` spans folders), the same names left out. Empty when nothing matches."""
    if is_pattern(path):
        found = [Path(p) for p in glob.glob(str(path), recursive=True)]
    elif path.is_dir():
        found = [p for p in path.rglob("*") if suffix_format(p) in ("csv", "parquet")]
    else:
        return [path]
    return sorted((p for p in found if p.is_file() and not _hidden(p, path)), key=str)


def _hidden(file: Path, root: Path) -> bool:
    """Whether a name on the way from ``root`` (a folder, or a pattern's folder part) to ``file`` starts with ``.``
    or ``_``."""
    base = root
    if is_pattern(root):
        leading = root.parts[: next(i for i, p in enumerate(root.parts) if is_pattern(p))]
        base = Path(*leading) if leading else Path(".")
    try:
        parts = file.relative_to(base).parts
    except ValueError:
        parts = file.parts[-1:]
    return any(p.startswith((".", "_")) for p in parts)


def suffix_format(path: Path) -> str | None:
    """The format :data:`SUFFIX_FORMATS` gives ``path``'s suffix, the one before ``.gz`` for a gzip-compressed
    text file (``orders.csv.gz``: csv); None when the suffix says nothing (or ``.gz`` follows no text suffix:
    Parquet and DuckDB files compress inside)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [GZIP_SUFFIX]:
        fmt = SUFFIX_FORMATS.get(suffixes[-2]) if len(suffixes) > 1 else None
        return fmt if fmt == "csv" else None
    return SUFFIX_FORMATS.get(path.suffix.lower())


#: What a folder or pattern without data files lacks.
NO_FILES = "no data files (.csv/.txt/.tsv/.dat, also .gz, or .parquet/.pq) in or matching it"


def files_format(path: Path) -> str | None:
    """The one format of the files of a folder or pattern (:func:`source_files`), None when there are none; files
    of two formats are an error naming one of each."""
    formats: dict[str, Path] = {}
    for f in source_files(path):
        formats.setdefault(suffix_format(f) or f.suffix, f)
    if len(formats) > 1:
        a, b = list(formats.values())[:2]
        raise ValueError(f"{path}: holds files of two formats ({a.name}, {b.name}); give a pattern such as *.csv")
    return next(iter(formats), None)
