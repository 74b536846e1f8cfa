"""The ``tiercast`` command line (typer): the app, its error boundary, the shared options and argument checks.

The commands are in :mod:`~tiercast.pipeline.cli.data`, :mod:`~tiercast.pipeline.cli.jobs`,
:mod:`~tiercast.pipeline.cli.registry` and :mod:`~tiercast.pipeline.cli.benchmark`; what they print is in
:mod:`~tiercast.pipeline.cli.render` and :mod:`~tiercast.pipeline.cli.summary`.
"""

from __future__ import annotations

import re
import shlex
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from tiercast.pipeline.cli.arguments import parquet_out_file, run_date_arg
from tiercast.pipeline.config import Config, load_config
from tiercast.pipeline.config_files import error_message

# Piped or captured output gets a fixed wide layout so comparison tables are not squeezed to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)


err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def one_line(text: object) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return " ".join(lines) if len(lines) <= 3 else lines[0]


def shell_command(*words: object) -> str:
    """A command for the user to run next, each word quoted for a POSIX shell (a path with a space or a quote
    pastes as one argument)."""
    return " ".join(shlex.quote(str(word)) for word in words)


def _print_error(message: str) -> None:
    # escaped: a path such as shop[v2].yaml is text, not rich markup (which would drop "[v2]" from it)
    err_console.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)


_SHOWN: set[str] = set()  # the warnings shown by this command: each once (the value and churn models, and every
# fold of a backtest, may warn of the same thing); emptied when a command starts


def _notice(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 - warnings hook
    """Warnings as one-line notices (no file paths or source lines), each text once."""
    text = one_line(message)
    if text in _SHOWN:
        return
    _SHOWN.add(text)
    err_console.print(f"[yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)


# The failures a user can fix, by class name (tiercast's own exceptions, matched on the exception's class and its
# bases): naming them keeps the error path from importing the modules that define them (MLflow, LightGBM).
_EXPECTED = frozenset(
    {
        "InputError",
        "FeatureSchemaError",
        "ConfigError",
        "MonitorError",
        "EngineError",
        "PlaybookError",
        "PlanError",
        "TableTargetError",
        "ModelNotFoundError",
        "StoreNotFoundError",
        "OutputIsInputError",
    }
)


def _tiercast_class(exc: BaseException, names: frozenset[str] | set[str]) -> bool:
    return any(c.__name__ in names and c.__module__.startswith("tiercast.") for c in type(exc).__mro__)


def expected_failure(exc: BaseException) -> str | None:
    """The one-line message for a failure the user can fix (bad input, config, argument, missing model or run,
    full disk, permissions, too little data), or None for an unexpected one."""
    import errno

    if _tiercast_class(exc, _EXPECTED):
        return str(exc)
    if _tiercast_class(exc, {"InsufficientDataError"}):
        return f"not enough data: {exc}"
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        return f"invalid config: {loc}: {error_message(first)} ({exc.error_count()} error(s))"
    if isinstance(exc, OSError):
        where = exc.filename or "a file"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"{where}: no space left on the device; free some space and rerun (nothing was overwritten)"
        if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
            return f"{where}: permission denied ({exc.strerror}); check the file's and folder's permissions"
        if isinstance(exc, FileNotFoundError):
            return str(exc) if exc.filename is None else f"{where}: file or folder not found"
        if isinstance(exc, IsADirectoryError):
            return f"{where}: is a folder, expected a file"
        if isinstance(exc, FileExistsError):
            return f"{where}: a file of that name is in the way; a folder is needed there"
        if isinstance(exc, NotADirectoryError):
            return f"{where}: a part of this path is a file, expected a folder"
        return None
    mlflow_error = getattr(sys.modules.get("mlflow.exceptions"), "MlflowException", None)  # never raised unloaded
    if (
        mlflow_error is not None
        and isinstance(exc, mlflow_error)
        and exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
    ):
        return f"MLflow: {one_line(exc.message)}"
    return None


def line_buffered(stream: Any) -> None:
    """Each line reaches a log file or pipe when printed (Python block-buffers a stdout that is not a terminal), so a
    cron log keeps a killed or failed command's progress lines."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None and not stream.closed:
        reconfigure(line_buffering=True)


def _interrupted_query(exc: BaseException) -> bool:
    """Ctrl-C during a DuckDB query surfaces as the query's own error ("Query interrupted"), not as
    KeyboardInterrupt."""
    return type(exc).__name__ == "InterruptException" or (
        isinstance(exc, RuntimeError) and "Query interrupted" in str(exc)
    )


def _expanded_pattern_hint(argv: list[str], exc: Exception) -> str:
    """For extra arguments right after ``--data`` (a glob pattern the shell expanded into file names): how to pass
    the pattern itself."""
    if "unexpected extra argument" not in str(exc) or "--data" not in argv:
        return ""
    given = argv[argv.index("--data") + 1 : argv.index("--data") + 3]
    if len(given) < 2 or given[1].startswith("-") or not Path(given[1]).is_file():
        return ""
    return (
        "; the shell expanded a pattern after --data into file names: quote it (--data 'exports/*.csv') or give "
        "the folder"
    )


class _OneLineErrors(typer.core.TyperGroup):
    """The error boundary of the command line: a usage or expected error is one line on stderr and exit 2; an
    unexpected one is one line and exit 1, with the traceback only under ``--debug``. Warnings are one-line
    notices."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # noqa: ANN001
        from typer._click import exceptions as click  # typer's own (vendored) click exceptions

        line_buffered(sys.stdout)
        argv = list(sys.argv[1:] if args is None else args)
        end = argv.index("--") if "--" in argv else len(argv)
        debug = "--debug" in argv[:end]
        if debug:  # a global option, also accepted after the command name (where the error hint tells one to add it)
            argv = ["--debug", *(a for a in argv[:end] if a != "--debug"), *argv[end:]]
        shown = warnings.showwarning
        _SHOWN.clear()
        if not debug:
            warnings.showwarning = _notice
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except click.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            code = 0
        except click.UsageError as exc:
            where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
            _print_error(f"{where}{exc.format_message()}{_expanded_pattern_hint(argv, exc)} (see --help)")
            code = 2
        except click.ClickException as exc:
            _print_error(exc.format_message())
            code = exc.exit_code
        except typer.Abort as exc:
            interrupted = isinstance(exc.__context__, KeyboardInterrupt)
            _print_error("interrupted" if interrupted else "aborted")
            code = 130 if interrupted else 1
        except KeyboardInterrupt:
            _print_error("interrupted")
            code = 130
        except Exception as exc:  # noqa: BLE001 - the boundary: every failure ends here as one line
            message = expected_failure(exc)
            if debug:
                traceback.print_exc()
            if _interrupted_query(exc):
                _print_error("interrupted")
                code = 130
            elif message is not None:
                _print_error(message)
                code = 2
            else:
                detail = one_line(exc) or "no message"
                hint = "" if debug else "; rerun with --debug for the traceback"
                _print_error(f"unexpected {type(exc).__name__}: {detail}{hint}")
                code = 1
        finally:
            warnings.showwarning = shown
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    no_args_is_help=True,
    help="Customer tiers, predicted future value, churn risk and ranked retention lists from a transaction history.",
    cls=_OneLineErrors,
)


ConfigOpt = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        help="Config YAML; `base: NAME` picks a packaged preset (tiercast init writes one).",
        exists=True,
        dir_okay=False,
    ),
]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"tiercast {version('tiercast')}")
        raise typer.Exit()


@app.callback()
def _global(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but warnings and errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show MLflow's own log messages.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an unexpected error.")] = False,
) -> None:
    """tiercast: customer tiers, predicted value, churn risk and ranked retention lists."""
    from tiercast.pipeline.terminal import configure

    if quiet and verbose:
        fail("--quiet and --verbose exclude each other")
    console.quiet = quiet
    configure(quiet=quiet, verbose=verbose)


def fail(message: str, code: int = 2) -> NoReturn:
    _print_error(message)
    raise typer.Exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a command as running behind the error boundary (kept for the commands that name it; the boundary
    itself is :class:`_OneLineErrors`, which every command of ``app`` runs under)."""
    return fn


def local_out(cfg: Config, out: str) -> None:
    """``--out`` of ``features`` and ``score``: on Spark a folder or a URI (``s3a://BUCKET/...``, ``hdfs://...``),
    used as typed (``pathlib`` would fold the ``//`` and lose the bucket); on DuckDB one local Parquet file."""
    if cfg.engine.kind == "spark":
        return
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", out):
        fail(f"--out {out}: a URI is written only with --engine spark; on DuckDB give a local file path")
    if Path(out).is_dir():
        fail(f"--out {out}: is a folder; give a file path inside it (a folder is the output only with --engine spark)")
    if Path(out).suffix.lower() not in (".parquet", ".pq"):
        fail(f"--out {out}: the file is written as Parquet; give it a .parquet name")


#: How many characters of a run id ``compare`` shows; a prefix at least this long names a run.
SHOWN_RUN_ID = 8


def resolve_runs(run_ids: list[str], experiment: str, config: Path, label: str = "--run") -> list[str]:
    """The full id of each given run id, or of the one run of ``experiment`` whose id starts with it (a prefix of
    at least :data:`SHOWN_RUN_ID` characters, as ``compare`` shows them); else a one-line error naming it (and how
    to list the runs of ``config``). ``label`` names the argument in the error."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from tiercast.pipeline.tracking.runs import runs_starting_with

    client = MlflowClient()
    listing = shell_command("tiercast", "compare", "--config", config)
    found = []
    for given in run_ids:
        wanted = given.strip().lower()
        try:
            found.append(client.get_run(wanted).info.run_id)
            continue
        except MlflowException:
            pass
        matches = runs_starting_with(experiment, wanted) if len(wanted) >= SHOWN_RUN_ID else []
        if len(matches) > 1:
            fail(
                f"{label} {given}: the start of {len(matches)} run ids ({', '.join(matches)}); give more of the id "
                f"(`{listing}` lists the runs)"
            )
        if not matches:
            too_short = len(wanted) < SHOWN_RUN_ID
            short = f" (a prefix of a run id needs {SHOWN_RUN_ID} characters or more)" if too_short else ""
            fail(f"{label} {given}: no such run in the MLflow store{short}; list the runs with `{listing}`")
        found.append(matches[0])
    return found


def config_from(path: Path, engine: str | None = None) -> Config:
    """The config, with ``engine.kind`` overridden by an ``--engine`` flag (validated like the file)."""
    return load_config(path, overrides={"engine": {"kind": engine}} if engine else None)


EngineOpt = Annotated[
    str | None, typer.Option("--engine", help="duckdb | spark: where features run (default: the config's engine.kind).")
]


RunDateOpt = Annotated[
    str | None,
    typer.Option(
        "--run-date",
        help="Rows dated after this day are quarantined as future_timestamp (default: data.run_date, else today).",
        callback=run_date_arg,
    ),
]


def usable_folder(folder: Path, key: str) -> None:
    """One line naming the config ``key`` when ``folder`` cannot hold outputs (a file in the way, no permission):
    checked before a command reads and trains (:func:`~tiercast.pipeline.writers.files.check_writable_folder`)."""
    from tiercast.pipeline.writers.files import check_writable_folder

    try:
        check_writable_folder(folder)
    except FileExistsError:
        fail(f"{key} {folder}: is a file; the outputs go into a folder of that name")
    except NotADirectoryError:
        fail(f"{key} {folder}: a part of this path is a file, expected a folder")
    except PermissionError as exc:
        fail(f"{key} {folder}: cannot be written ({exc.strerror}); check the folder's permissions")


def load_data(config: Config, run_date: str | None = None, *, hold_quarantine: bool = False):
    """The transactions every command works on (:func:`tiercast.pipeline.ingest.loader.load_transactions`);
    ``hold_quarantine``: the quarantine is put in place only once the command has succeeded (``run``, ``train``)."""
    from tiercast.pipeline.ingest.loader import load_transactions
    from tiercast.pipeline.terminal import step

    out = config.outputs.dir
    if out.exists() and not out.is_dir():  # found now, not after the training it would have thrown away
        fail(f"outputs.dir {out}: is a file; the outputs go into a folder of that name")
    with step(f"reading {config.data.source.describe()}"):
        return load_transactions(config, run_date=run_date, hold=hold_quarantine)


PredictionsOpt = Annotated[
    Path | None,
    typer.Option(
        "--predictions",
        help="Write per-customer predictions to this Parquet file: customer_id, cutoff, method, predicted_value, "
        "churn_probability, realized_value, churned (one row per customer x test cutoff x method).",
        callback=parquet_out_file,
    ),
]
