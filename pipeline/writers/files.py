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
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates the file owner-only; give the output the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
        remove_stale_temporaries(target)
    except OSError as exc:
        if exc.errno is not None and exc.filename in (None, str(tmp_path), tmp_path):  # name the output
            raise type(exc)(exc.errno, exc.strerror, str(target)) from exc
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(target: str | Path) -> list[Path]:
    """Remove temporaries of ``target`` left by writers that were killed (SIGKILL skips every cleanup); a
    temporary of a live process is kept. Returns the removed paths."""
    target = Path(target)
    removed = []
    for tmp in target.parent.glob(f".{target.name}.*.tmp"):
        pid = tmp.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` (without its index) to Parquet atomically."""
    with atomic_output(path) as tmp:
        df.to_parquet(tmp, index=False)
        fsync_file(tmp)
    return Path(path)


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` (without its index) to CSV atomically."""
    with atomic_output(path) as tmp:
        df.to_csv(tmp, index=False)
        fsync_file(tmp)
    return Path(path)


def write_json(obj: object, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON atomically (non-finite floats must already be None)."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")
        fsync_file(tmp)
    return Path(path)
