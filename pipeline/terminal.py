"""How the command line talks while it works: on a terminal, a spinner on each long step and a one-line "done" with
its duration after it; MLflow's own chatter (INFO logs, "Successfully registered model", the CloudPickle warning)
kept out unless ``--verbose``, and nothing but errors under ``--quiet``.

Progress goes to stderr, so the tables and paths on stdout stay clean for a pipe. On a non-terminal (a cron or CI
log) each step is two plain lines instead, so a log shows what a long command is busy with and whether it hangs::

    12:02:36 start: fitting the value and churn models
    12:03:07 done: fitting the value and churn models (31.2 s)

Only the outermost step or phase is reported; a step that raises ends with ``failed:`` (on a terminal, nothing: the
error line follows). An in-memory stderr (typer's CliRunner, a program capturing the command's output) gets no
progress: it is read once the command has returned.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from rich.console import Console

if TYPE_CHECKING:
    from rich.status import Status

_progress = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")
_mode = {"quiet": False, "verbose": False}


def configure(*, quiet: bool = False, verbose: bool = False) -> None:
    """Set the terminal mode for this process and route MLflow's messages accordingly (once MLflow is imported:
    the commands that do not track, such as ``validate`` and ``features``, never import it)."""
    _mode["quiet"], _mode["verbose"] = quiet, verbose
    if "mlflow" in sys.modules:
        _route_mlflow(verbose)
    elif not any(isinstance(f, _RouteAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RouteAfterImport())


class _RouteAfterImport(importlib.abc.MetaPathFinder):
    """Routes MLflow's messages right after ``import mlflow`` runs (MLflow configures its loggers on import)."""

    def find_spec(self, name, path, target=None):  # noqa: ANN001, ANN201 - the import system's protocol
        if name != "mlflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module) -> None:  # noqa: ANN001
            run(module)
            _route_mlflow(_mode["verbose"])

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _route_mlflow(verbose: bool) -> None:
    from mlflow.utils import logging_utils

    logger = logging.getLogger("mlflow")
    stream = logging_utils.MLFLOW_LOGGING_STREAM
    if verbose:
        stream.__class__ = logging_utils.MlflowLoggingStream
        logging_utils.enable_logging()
        logger.setLevel(logging.INFO)
        return
    # MLflow prints its INFO lines, warnings and registry messages to one stream; silence it, but keep its errors.
    # Its own switch (disable_logging) does not hold: MLflow turns the stream back on itself (importing
    # mlflow.pyfunc runs an autologging context that re-enables it on exit), so the stream is held muted.
    logging_utils.disable_logging()
    stream.__class__ = _muted(logging_utils.MlflowLoggingStream)
    if not any(getattr(h, "_tiercast_errors", False) for h in logger.handlers):
        errors = logging.StreamHandler(_Stderr())
        errors.setLevel(logging.ERROR)
        errors.setFormatter(logging.Formatter("MLflow error: %(message)s"))
        errors._tiercast_errors = True  # type: ignore[attr-defined]
        logger.addHandler(errors)


@functools.cache
def _muted(stream_class: type) -> type:
    """MLflow's event stream class with writes dropped and ``enabled`` held False (whatever MLflow sets)."""

    class Muted(stream_class):  # type: ignore[misc, valid-type]
        enabled = property(lambda self: False, lambda self, value: None)

        def write(self, text: str) -> None:
            return None

        def flush(self) -> None:
            return None

    return Muted


class _Stderr:
    """Whatever ``sys.stderr`` is at the time of the write (test runners and redirections swap it)."""

    def write(self, text: str) -> None:
        sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


#: A progress line of a log (:func:`_plain`), e.g. for a script that reads a command's stderr for its errors.
PROGRESS_LINE = re.compile(r"\d\d:\d\d:\d\d (start|done|failed): ")

_running: dict[str, object] = {"steps": 0, "phase": None}  # phase: (label, start, spinner or None) while it runs


def _start(label: str) -> tuple[str, float, Status | None] | None:
    """Announce a step: a spinner on a terminal, a plain clock-stamped "start:" line on a log (so it shows what a
    silent command is busy with), nothing into an in-memory capture (see :func:`_watched`)."""
    if _live():
        status = _progress.status(f"{label} ...", spinner="dots")
        status.start()
        return label, time.perf_counter(), status
    if not _watched(_progress.file):
        return None
    _plain("start", label)
    return label, time.perf_counter(), None


def _live() -> bool:
    """Whether to draw a spinner: only on a real terminal. rich counts ``FORCE_COLOR`` and ``TTY_COMPATIBLE`` as a
    terminal, and CI services set them for coloured logs, where every redraw of a spinner would be a line of the
    log; a log gets the plain lines instead."""
    if not _progress.is_terminal:
        return False
    try:
        return os.isatty(_progress.file.fileno())
    except (AttributeError, OSError, ValueError):  # an in-memory stream: no terminal behind it
        return False


def _watched(stream: object) -> bool:
    """Whether someone can watch ``stream`` while the command runs: a file, pipe or terminal of the operating system
    (it has a file descriptor). An in-memory capture (typer's CliRunner, a program embedding the command) is read
    once the command has returned, when clock times and durations would only make its text differ run to run."""
    try:
        stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both OSError and ValueError
        return False
    return True


def _finish(running: tuple[str, float, Status | None] | None, ok: bool) -> None:
    """Close a step with its seconds: a check mark on a terminal (nothing if it failed: the error line follows),
    else a plain "done:" or "failed:" line."""
    if running is None:
        return
    label, start, status = running
    seconds = time.perf_counter() - start
    if status is None:
        _plain("done" if ok else "failed", label, seconds)
        return
    status.stop()
    if ok:
        _progress.print(f"[green]✓[/] {label} [dim]({seconds:,.1f} s)[/]", highlight=False)


def _plain(event: str, label: str, seconds: float | None = None) -> None:
    """One progress line for a log: local clock time, no colour, no wrapping (written past rich, whose console
    would wrap a long label at 80 columns)."""
    took = "" if seconds is None else f" ({seconds:,.1f} s)"
    stream = _progress.file
    try:
        stream.write(f"{time.strftime('%H:%M:%S')} {event}: {label}{took}\n")
        stream.flush()
    except (OSError, ValueError):  # a closed log or a reader gone (``| head``) must not stop the work itself
        pass


@contextmanager
def step(label: str) -> Iterator[None]:
    """Report ``label`` while the block runs and the seconds it took (only the outermost step or phase)."""
    if _mode["quiet"] or _running["steps"] or _running["phase"]:
        yield
        return
    running = _start(label)
    _running["steps"] = 1
    try:
        yield
    except BaseException:
        _finish(running, ok=False)
        raise
    finally:
        _running["steps"] = 0
    _finish(running, ok=True)


def phase(label: str) -> None:
    """Finish the running phase and report ``label`` as the next: one line per stage of a long function, without
    re-indenting it. The function is decorated with :func:`phased`, which finishes the last phase however the
    function ends."""
    end_phase()
    if _mode["quiet"] or _running["steps"]:
        return
    _running["phase"] = _start(label)


def end_phase(ok: bool = True) -> None:
    """Finish the running phase, if any (``ok=False``: it failed)."""
    running = _running["phase"]
    if running is None:
        return
    _running["phase"] = None
    _finish(running, ok)  # type: ignore[arg-type]


def phased(fn: Callable[P, R]) -> Callable[P, R]:
    """Finish the last :func:`phase` when ``fn`` returns or raises."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            end_phase(ok=False)
            raise
        end_phase()
        return result

    return wrapper


def print_table(console: Console, table: object) -> None:
    """Print a table at its natural width even when that is wider than the terminal: columns are never squeezed
    into wrapped or ellipsized cells (a wide comparison wraps as whole lines instead, and a pipe keeps it whole)."""
    from rich.measure import Measurement

    natural = Measurement.get(console, console.options.update_width(100_000), table).maximum
    if natural <= console.width:
        console.print(table)
        return
    width = console.width
    console.width = natural  # print() never renders wider than the console
    try:
        console.print(table, crop=False)
    finally:
        console.width = width
