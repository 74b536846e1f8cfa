"""How the command line talks while it works: a spinner on each long step, a one-line "done" with its duration
after it, MLflow's own chatter (INFO logs, "Successfully registered model", the CloudPickle warning) kept out unless
``--verbose``, and nothing but errors under ``--quiet``.

Progress goes to stderr, so the tables and paths on stdout stay clean for a pipe; on a non-terminal (a batch job's
log) the steps print nothing.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from rich.console import Console

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


_running: dict[str, object] = {"steps": 0, "phase": None}


@contextmanager
def step(label: str) -> Iterator[None]:
    """Show ``label`` with a spinner while the block runs, then a check mark with the seconds it took."""
    if _mode["quiet"] or not _progress.is_terminal or _running["steps"] or _running["phase"]:
        yield
        return
    start = time.perf_counter()
    _running["steps"] = 1
    try:
        with _progress.status(f"{label} ...", spinner="dots"):
            yield
    finally:
        _running["steps"] = 0
    _progress.print(f"[green]✓[/] {label} [dim]({time.perf_counter() - start:,.1f} s)[/]", highlight=False)


def phase(label: str) -> None:
    """Finish the running phase (check mark and seconds) and show ``label`` with a spinner: one line per stage of
    a long function, without re-indenting it. The function is decorated with :func:`phased`, which finishes the
    last phase however the function ends."""
    end_phase()
    if _mode["quiet"] or not _progress.is_terminal or _running["steps"]:
        return
    status = _progress.status(f"{label} ...", spinner="dots")
    status.start()
    _running["phase"] = (label, time.perf_counter(), status)


def end_phase() -> None:
    """Finish the running phase, if any."""
    running = _running["phase"]
    if running is None:
        return
    label, start, status = running  # type: ignore[misc]
    status.stop()
    _running["phase"] = None
    _progress.print(f"[green]✓[/] {label} [dim]({time.perf_counter() - start:,.1f} s)[/]", highlight=False)


def phased(fn: Callable[P, R]) -> Callable[P, R]:
    """Finish the last :func:`phase` when ``fn`` returns or raises."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        finally:
            end_phase()

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
