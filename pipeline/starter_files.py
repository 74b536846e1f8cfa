"""Which file ``tiercast init`` looks at (a folder's or pattern's first data file) and its first lines (unpacked
from gzip; other packed files refused with what to do)."""

from __future__ import annotations

import io
from pathlib import Path

from tiercast.pipeline.config import ConfigError
from tiercast.pipeline.ingest.common import InputError
from tiercast.pipeline.ingest.paths import NO_FILES, is_pattern, source_files, suffix_format
from tiercast.pipeline.ingest.readers import open_bytes

#: Lines read to sniff a text file (the header and the sample rows).
SAMPLE_ROWS = 5000

_PACKED = ((b"\x1f\x8b", "gzip"), (b"PK\x03\x04", "zip (or .xlsx)"), (b"BZh", "bzip2"), (b"\xfd7zXZ", "xz"))


def head_lines(path: Path) -> list[str]:
    """The first lines of a text file (unpacked when it is a ``.gz`` file); a packed file (zip, xlsx, bz2, ...)
    or a gzip file under another name is a config error naming it."""
    try:
        with open_bytes(path) as fh:  # a .gz file is read unpacked
            magic = fh.read(4)
        packed = next((kind for sig, kind in _PACKED if magic.startswith(sig)), None)
        if packed is not None:
            inside = " (inside the gzip file)" if path.suffix.lower() == ".gz" else ""
            raise ConfigError(
                f"{path}: a {packed} file{inside}, not text; unpack it first and point --data at the file inside"
            )
        with open_bytes(path) as fh:
            text = io.TextIOWrapper(fh, encoding="utf-8", errors="replace", newline="")
            head = [line.rstrip("\r\n") for _, line in zip(range(SAMPLE_ROWS + 1), text, strict=False)]
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    return head


def first_file(path: Path) -> Path:
    """The file whose first rows are looked at: ``path``, or the first of a folder's or pattern's data files (of one
    format; every file's header is checked when the data is read)."""
    if not (is_pattern(path) or path.is_dir()):
        if not path.is_file():
            raise ConfigError(f"data file not found: {path}")
        return path
    files = source_files(path)
    if not files:
        raise ConfigError(f"{path}: {NO_FILES}")
    formats = {suffix_format(f) for f in files}
    if len(formats) > 1:
        raise ConfigError(
            f"{path}: holds files of two formats ({sorted(map(str, formats))}); give a pattern such as *.csv"
        )
    return files[0]
