"""The data fingerprint logged with every run (counts, date range, the file's digest), and the lazy mapping that
holds it until a command reads it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any


class LazyMapping(Mapping[str, Any]):
    """A read-only mapping computed on first use: the SQL ingestion's fingerprint (a full pass counting distinct
    customers, and the file's digest) is read by the commands that log or print it, not by ``features`` or
    ``score``."""

    def __init__(self, compute: Callable[[], Mapping[str, Any]]) -> None:
        self._compute: Callable[[], Mapping[str, Any]] | None = compute
        self._values: Mapping[str, Any] = {}

    def _get(self) -> Mapping[str, Any]:
        if self._compute is not None:
            self._values, self._compute = MappingProxyType(dict(self._compute())), None
        return self._values

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return f"LazyMapping({dict(self._get())!r})" if self._compute is None else "LazyMapping(<not computed>)"


def data_fingerprint(
    path: str | Path, *, n_read: int, n_accepted: int, n_quarantined: int, customers: int, first: Any, last: Any
) -> dict[str, Any]:
    """Counts, date range and content hash of the input: enough to tell whether two runs saw the same data."""
    p = Path(path)
    return {
        "data_path": str(p),
        "data_sha256": source_sha256(p),
        "data_rows_read": n_read,
        "data_rows_accepted": n_accepted,
        "data_rows_quarantined": n_quarantined,
        "data_customers": customers,
        "data_first_timestamp": str(first),
        "data_last_timestamp": str(last),
    }


def source_sha256(path: Path) -> str:
    """The file's digest; for a folder or glob pattern, the digest of its files' names and digests in reading order
    (a file added, removed, renamed or changed changes it); ``n/a`` for what is not a file (a database URL)."""
    from tiercast.pipeline.ingest.paths import is_pattern, source_files

    if path.is_file():
        return file_sha256(path)
    if not (is_pattern(path) or path.is_dir()):
        return "n/a"
    digest = hashlib.sha256()
    for file in source_files(path):
        digest.update(f"{file}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
