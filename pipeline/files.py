"""Atomic file output: write to a temporary file beside the target, then rename it into place.

A crash or a kill midway leaves the previous file (or none), never a partial one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``path``, on error it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates the file owner-only; give the output the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` (without its index) to Parquet atomically."""
    with atomic_output(path) as tmp:
        df.to_parquet(tmp, index=False)
        _fsync(tmp)
    return Path(path)


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` (without its index) to CSV atomically."""
    with atomic_output(path) as tmp:
        df.to_csv(tmp, index=False)
        _fsync(tmp)
    return Path(path)


def write_json(obj: object, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON atomically (non-finite floats must already be None)."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")
        _fsync(tmp)
    return Path(path)
