"""Atomic file output: write to a temporary file beside the target, then rename it into place.

A crash or a kill midway leaves the previous file (or none), never a partial one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pandas as pd

#: The files this process reads as input, with what each is ("the config", "the transactions file", ...): no output
#: may replace one. Registered by the config loader (:func:`protect_inputs`) and checked where every output is
#: written (:func:`atomic_output`), the one place a new output option cannot bypass: before, ``--out`` or a
#: ``quarantine_path`` naming the transactions file or the config replaced it and the command exited 0.
_INPUTS: dict[str, str] = {}


class OutputIsInputError(ValueError):
    """An output path names a file the command reads."""


def _key(path: str | Path) -> str:
    return os.path.realpath(os.path.expanduser(str(path)))


def protect_inputs(inputs: dict[Path, str]) -> None:
    """Register input files (path -> what it is) that no output of this process may replace."""
    _INPUTS.update({_key(path): what for path, what in inputs.items()})


def check_not_input(path: str | Path) -> None:
    """Raise :class:`OutputIsInputError` when ``path`` is a registered input (:func:`protect_inputs`)."""
    what = _INPUTS.get(_key(path))
    if what is not None:
        raise OutputIsInputError(
            f"{path}: is {what} this command reads; writing an output there would destroy it: choose another path"
        )


def temporary_beside(target: Path) -> Path:
    """A new empty temporary in ``target``'s folder, named ``.<name>.<pid>.<random>.tmp`` (so a later write of
    ``target`` can tell a dead process's leftovers, :func:`remove_stale_temporaries`), with the permissions a plain
    open() would give (mkstemp creates it owner-only)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


def check_writable_folder(folder: str | Path) -> Path:
    """Create ``folder`` (with its parents) when missing and write and remove a temporary in it: a command that
    writes its outputs last (``run``: after training and registering a model) checks its folders at its start, so
    an unusable folder fails it before anything else has changed. Raises the OSError naming ``folder``."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary_beside(folder / ".write-check").unlink()
    except OSError as exc:
        if exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, str(folder)) from exc
    return folder


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``path``, on error it is removed. A
    registered input (:func:`protect_inputs`) is refused before anything is written."""
    check_not_input(path)
    target = Path(path)
    tmp_path = temporary_beside(target)
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


class HeldOutputs:
    """Outputs written now and put in place only once everything they depend on has succeeded: each is written to a
    temporary beside its target (named as :func:`atomic_output` names them, so the next write of the target removes
    those of a killed process), renamed into place by :meth:`commit`, removed by :meth:`discard`. As a context
    manager: commit when the block succeeds, discard when it fails (the previous files stay)."""

    def __init__(self) -> None:
        self._held: dict[Path, Path] = {}  # target -> temporary

    def path_for(self, target: str | Path) -> Path:
        """The temporary to write ``target``'s content to now."""
        target = Path(target)
        self._held[target] = tmp = temporary_beside(target)
        return tmp

    def commit(self) -> None:
        """Rename every held temporary onto its target."""
        try:
            while self._held:
                target, tmp = self._held.popitem()
                os.replace(tmp, target)
                remove_stale_temporaries(target)
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove every held temporary; the targets are left as they were."""
        while self._held:
            self._held.popitem()[1].unlink(missing_ok=True)

    def __enter__(self) -> HeldOutputs:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def quarantine_writer(path: Path, held: HeldOutputs | None = None, *, write: bool = True) -> Callable[[Any], None]:
    """A function writing an ingestion result's quarantine to ``path`` (and the Olist layout's rejected review rows
    beside it, ``<stem>_satisfaction<suffix>``), or to temporaries that ``held`` puts in place; it writes nothing
    for a None result, or when not ``write``."""

    def place(target: Path) -> Path:
        return held.path_for(target) if held is not None else target

    def save(result: Any) -> None:
        if not write or result is None:
            return
        if hasattr(result, "write_quarantine"):  # read by the engine: the rows are written by it
            result.write_quarantine(place(path))
            return
        if result.satisfaction_quarantine is not None:
            reviews = path.with_name(f"{path.stem}_satisfaction{path.suffix}")
            write_parquet(result.satisfaction_quarantine, place(reviews))
        write_parquet(result.quarantine, place(path))

    return save


def on_success(held: HeldOutputs | None) -> AbstractContextManager[object]:
    """``held`` put in place when the block succeeds and removed when it fails (nothing when None)."""
    return held if held is not None else nullcontext()


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
