"""The ``tiercast`` command line (typer). Each command is a thin shell over a pipeline function."""

from __future__ import annotations

import sys
import time
import traceback
import warnings
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer
from pydantic import ValidationError
from rich.console import Console

from tiercast.pipeline.config import Config, build_playbook, load_config, preset_path
from tiercast.pipeline.terminal import print_table

if TYPE_CHECKING:
    from tiercast.pipeline.loader import Transactions

# Piped or captured output gets a fixed wide layout so comparison tables are not squeezed to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def _one_line(text: object) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return " ".join(lines) if len(lines) <= 3 else lines[0]


def _print_error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {_one_line(message)}", highlight=False, soft_wrap=True, markup=True)


def _notice(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 - warnings hook
    """Warnings as one-line notices (no file paths or source lines)."""
    err_console.print(f"[yellow]warning:[/] {_one_line(message)}", highlight=False, soft_wrap=True)


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
        "TableTargetError",
        "ModelNotFoundError",
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
        return f"invalid config: {loc}: {first['msg']} ({exc.error_count()} error(s))"
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
        if isinstance(exc, NotADirectoryError):
            return f"{where}: a part of this path is a file, expected a folder"
        return None
    mlflow_error = getattr(sys.modules.get("mlflow.exceptions"), "MlflowException", None)  # never raised unloaded
    if (
        mlflow_error is not None
        and isinstance(exc, mlflow_error)
        and exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
    ):
        return f"MLflow: {_one_line(exc.message)}"
    return None


class _OneLineErrors(typer.core.TyperGroup):
    """The error boundary of the command line: a usage or expected error is one line on stderr and exit 2; an
    unexpected one is one line and exit 1, with the traceback only under ``--debug``. Warnings are one-line
    notices."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # noqa: ANN001
        from typer._click import exceptions as click  # typer's own (vendored) click exceptions

        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv[: argv.index("--")] if "--" in argv else "--debug" in argv
        shown = warnings.showwarning
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
            _print_error(f"{where}{exc.format_message()} (see --help)")
            code = 2
        except click.ClickException as exc:
            _print_error(exc.format_message())
            code = exc.exit_code
        except typer.Abort:
            _print_error("aborted")
            code = 1
        except Exception as exc:  # noqa: BLE001 - the boundary: every failure ends here as one line
            message = expected_failure(exc)
            if debug:
                traceback.print_exc()
            if message is not None:
                _print_error(message)
                code = 2
            else:
                detail = _one_line(exc) or "no message"
                hint = "" if debug else "; rerun with --debug for the traceback"
                _print_error(f"unexpected {type(exc).__name__}: {detail}{hint}")
                code = 1
        finally:
            warnings.showwarning = shown
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(no_args_is_help=True, help=__doc__, cls=_OneLineErrors)

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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show MLflow's own log messages.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an unexpected error.")] = False,
) -> None:
    """tiercast: customer tiers, predicted value, churn risk and ranked retention lists."""
    from tiercast.pipeline.terminal import configure

    if quiet and verbose:
        _fail("--quiet and --verbose exclude each other")
    console.quiet = quiet
    configure(quiet=quiet, verbose=verbose)


def _fail(message: str, code: int = 2) -> None:
    _print_error(message)
    raise typer.Exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a command as running behind the error boundary (kept for the commands that name it; the boundary
    itself is :class:`_OneLineErrors`, which every command of ``app`` runs under)."""
    return fn


def _date_arg(value: str | None) -> str | None:
    """A ``--cutoff``: a calendar date (YYYY-MM-DD) that exists, without a time of day or a time zone."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date that exists; use YYYY-MM-DD, e.g. 2010-06-01") from None
    if parsed.tzinfo is not None:
        raise typer.BadParameter(f"{value!r} carries a time zone; give a plain date YYYY-MM-DD (a local midnight)")
    if parsed.time() != datetime.min.time():
        raise typer.BadParameter(f"{value!r} has a time of day; a cutoff is a date YYYY-MM-DD (its midnight)")
    return parsed.date().isoformat()


def _model_arg(value: str | None) -> str | None:
    """A ``--model`` registry URI is checked for its form here and against the registry when it is loaded."""
    from tiercast.pipeline.score import ModelNotFoundError, check_model_uri

    if value is not None and value.startswith("models:"):
        try:
            check_model_uri(value)
        except ModelNotFoundError:
            raise typer.BadParameter(
                f"{value!r} is not a registered-model URI; use models:/NAME/VERSION or models:/NAME@ALIAS"
            ) from None
    return value


def _out_file(value: Path | None) -> Path | None:
    """An output file path: not an existing folder."""
    if value is not None and value.is_dir():
        raise typer.BadParameter(f"{value} is a folder; give a file path inside it")
    return value


def _local_out(cfg: Config, out: Path) -> None:
    """On the DuckDB engine ``--out`` is one file (on Spark it is a folder)."""
    if cfg.engine.kind != "spark" and out.is_dir():
        _fail(f"--out {out}: is a folder; give a file path inside it (a folder is the output only with --engine spark)")


def _known_runs(run_ids: list[str]) -> None:
    """Every run id exists in the store, else a one-line error naming it."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for run_id in run_ids:
        try:
            client.get_run(run_id)
        except MlflowException:
            _fail(f"--run {run_id}: no such run in the MLflow store; list the runs with `tiercast compare`")


def _config(path: Path, engine: str | None = None) -> Config:
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
    ),
]


def _load(config: Config, run_date: str | None = None):
    """The transactions every command works on (:func:`tiercast.pipeline.loader.load_transactions`)."""
    from tiercast.pipeline.loader import load_transactions
    from tiercast.pipeline.terminal import step

    with step(f"reading {config.data.source.describe()}"):
        return load_transactions(config, run_date=run_date)


@app.command()
@handle_errors
def init(
    data: Annotated[Path, typer.Option("--data", help="Transaction file (CSV / text or Parquet) to look at.")],
    out: Annotated[Path, typer.Option("--out", help="Config file to write.")] = Path("config.yaml"),
    column: Annotated[
        list[str] | None, typer.Option("--column", help="FIELD=COLUMN, for a field the column names do not reveal.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out file.")] = False,
) -> None:
    """Write a starter config for a transaction file: sniffed format, delimiter, dates and column mapping."""
    from tiercast.pipeline.files import atomic_output
    from tiercast.pipeline.starter import starter_config

    if out.exists() and not force:
        _fail(f"{out} exists; pass --force to overwrite it")
    pairs = [c.split("=", 1) for c in column or []]
    if any(len(p) != 2 or not p[0] or not p[1] for p in pairs):
        _fail("--column takes FIELD=COLUMN, e.g. --column customer_id=client")
    text, found = starter_config(data, dict(pairs))
    with atomic_output(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    console.print(f"wrote {out}: " + ", ".join(f"{k} <- {v!r}" for k, v in found.transactions["columns"].items()))
    for note in found.notes:
        console.print(f"[yellow]check:[/] {note}", highlight=False)
    console.print(f"next: tiercast validate --config {out}", highlight=False)


@app.command()
@handle_errors
def validate(config: ConfigOpt, engine: EngineOpt = None, run_date: RunDateOpt = None) -> None:
    """Read and validate the transactions; write the quarantine file and print the accounting."""
    from tiercast.pipeline.summary import print_ingest

    cfg = _config(config, engine)
    start = time.perf_counter()
    data = _load(cfg, run_date)
    print_ingest(console, data, cfg.data.quarantine_path, seconds=time.perf_counter() - start)


@app.command()
@handle_errors
def features(
    config: ConfigOpt,
    cutoff: Annotated[
        str, typer.Option(help="Cutoff date YYYY-MM-DD (features see only earlier transactions).", callback=_date_arg)
    ],
    out: Annotated[
        Path, typer.Option(help="Output Parquet file; with --engine spark a folder (partition cutoff_date=...).")
    ] = Path("features.parquet"),
    engine: EngineOpt = None,
    run_date: RunDateOpt = None,
) -> None:
    """Build point-in-time features at a cutoff and write them to Parquet."""
    from tiercast.pipeline.engine import write_features
    from tiercast.pipeline.loader import write_features_at

    cfg = _config(config, engine)
    _local_out(cfg, out)
    when = pd.Timestamp(cutoff)
    data = _load(cfg, run_date)
    if cfg.engine.kind == "spark":  # written by the executors, partitioned by cutoff
        folder = write_features(
            data.con,
            data.table,
            str(out),
            cutoff=when,
            windows_days=cfg.features.windows_days,
            horizon_days=cfg.horizon_days,
            satisfaction=data.engine_satisfaction(),
        )
        console.print(f"features at {cutoff} on spark -> {folder}")
        return
    rows, n_features = write_features_at(data, cfg, when, out)
    console.print(f"{rows:,} customers x {n_features} features at {cutoff} -> {out}")


@app.command()
@handle_errors
def run(config: ConfigOpt, engine: EngineOpt = None, run_date: RunDateOpt = None) -> None:
    """The main job: ingest, train and backtest, register the model, score every customer, write the lists."""
    from tiercast.pipeline.job import run_job
    from tiercast.pipeline.summary import print_run

    cfg = _config(config, engine)
    outcome = run_job(cfg, _load(cfg, run_date))
    print_run(console, outcome)


@app.command("train")
@handle_errors
def train_cmd(config: ConfigOpt, engine: EngineOpt = None, run_date: RunDateOpt = None) -> None:
    """Backtest and train on rolling cutoffs, log the run to MLflow, register the model and apply the promotion rule.

    With --engine spark the features and labels run on Spark; the training set (or engine.training_sample_customers
    of the customers) is collected to this machine for the model fit.
    """
    from tiercast.pipeline.job import train_and_promote
    from tiercast.pipeline.summary import print_training

    cfg = _config(config, engine)
    trained, decision = train_and_promote(cfg, _load(cfg, run_date))
    print_training(console, trained, decision)


@app.command()
@handle_errors
def score(
    config: ConfigOpt,
    model: Annotated[
        str, typer.Option(help="Registered model URI, e.g. models:/tiercast@champion.", callback=_model_arg)
    ],
    out: Annotated[
        str,
        typer.Option(
            help="Output Parquet file, or a table: duckdb://FILE::TABLE or "
            "postgresql://USER@HOST:PORT/DB::SCHEMA.TABLE (replaced atomically; drift CSV in outputs.dir)."
        ),
    ] = "outputs/scores.parquet",
    cutoff: Annotated[
        str | None,
        typer.Option(help="Scoring cutoff YYYY-MM-DD (default: the day after the data ends).", callback=_date_arg),
    ] = None,
    reasons: Annotated[bool, typer.Option(help="Add the top-3 churn and value reasons per customer (slower).")] = False,
    engine: EngineOpt = None,
    run_date: RunDateOpt = None,
) -> None:
    """Score every customer with a registered model and write the scores atomically, to a Parquet file or a
    DuckDB / PostgreSQL table (a staging table swapped in within one transaction), model version and cutoff on
    every row.

    With --engine spark the features are built on Spark and scored by the model's spark_udf; --out is then a folder
    that gets the partition cutoff_date=<cutoff>/.
    """
    from tiercast.pipeline.files import write_csv, write_parquet
    from tiercast.pipeline.loader import features_at
    from tiercast.pipeline.score import load_model, score_features
    from tiercast.pipeline.summary import print_drift
    from tiercast.pipeline.tables import parse_table_target, write_table
    from tiercast.pipeline.tracking import setup_mlflow

    cfg = _config(config, engine)
    target = parse_table_target(out)
    if target is None:
        _local_out(cfg, Path(out))
    setup_mlflow(cfg)
    data = _load(cfg, run_date)
    if cfg.engine.kind == "spark":
        if target is not None:
            _fail(f"--engine spark writes a Parquet folder, not a table ({target.describe()})")
        _score_on_spark(cfg, data, model=model, out=Path(out), cutoff=cutoff, reasons=reasons)
        return
    when = pd.Timestamp(cutoff) if cutoff else data.data_end
    loaded = load_model(model)
    feats = features_at(data, cfg, when)
    scores = score_features(
        loaded,
        feats,
        cutoff=when,
        chunk_size=cfg.score.chunk_size,
        playbook=build_playbook(cfg),
        reasons=reasons,
    )
    drift = loaded.scorer.drift(feats, scores, threshold=cfg.score.psi_threshold)
    # written only once everything they depend on has succeeded: a failing run leaves the previous output alone
    if target is not None:
        write_table(scores, target)
        drift_file, shown = cfg.outputs.dir / f"{target.table}_drift.csv", target.describe()
    else:
        path = write_parquet(scores, Path(out))
        drift_file, shown = path.with_name(f"{path.stem}_drift.csv"), str(path)
    drift_path = write_csv(drift, drift_file)
    console.print(
        f"{len(scores):,} customers scored at {when.date()} with {model} (version {loaded.version}) -> {shown}",
        highlight=False,
    )
    print_drift(console, drift, drift_path)


def _score_on_spark(
    cfg: Config, data: Transactions, *, model: str, out: Path, cutoff: str | None, reasons: bool
) -> None:
    """`tiercast score --engine spark`: features on the cluster, spark_udf scores, partitioned Parquet."""
    from tiercast.pipeline.spark_score import resolve_spark_model, score_to_folder

    when = pd.Timestamp(cutoff) if cutoff else data.data_end
    loaded = resolve_spark_model(model)
    folder = score_to_folder(
        data.con,
        loaded,
        data.table,
        str(out),
        cutoff=when,
        windows_days=cfg.features.windows_days,
        horizon_days=cfg.horizon_days,
        satisfaction=data.satisfaction,
        reasons=reasons,
        playbook=build_playbook(cfg),
    )
    console.print(f"scored at {when.date()} on spark with {model} (version {loaded.version}) -> {folder}")


@app.command("at-risk")
@handle_errors
def at_risk_cmd(
    scores: Annotated[
        Path,
        typer.Option(help="scores.parquet written by `tiercast score` or `tiercast run`.", exists=True, dir_okay=False),
    ],
    out: Annotated[Path, typer.Option(help="Output CSV.", callback=_out_file)] = Path("outputs/at_risk.csv"),
    tiers: Annotated[str | None, typer.Option(help="Comma-separated current tiers, e.g. platinum,gold.")] = None,
    top: Annotated[int, typer.Option(help="How many customers to list (at least 1).", min=1)] = 500,
    min_churn: Annotated[float, typer.Option(help="Minimum churn probability, 0..1.", min=0.0, max=1.0)] = 0.0,
    churn_bands: Annotated[
        str | None,
        typer.Option(help="Comma-separated churn bands to list (default: the config's, else all but the lowest)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Config: adds reasons for the listed customers, currency and horizon.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Rank customers of the top tiers whose churn risk is medium or high by value at risk (predicted value x churn
    probability).

    Scores written without reasons get them for the listed customers when a config is given: their features are
    rebuilt at the scores' cutoff and explained by the model version stamped on the scores.
    """
    from tiercast.models.scorer import REASON_COLUMNS
    from tiercast.pipeline.files import write_csv
    from tiercast.pipeline.score import at_risk, bands_above_lowest, explain_customers, team_list

    frame = _read_scores(scores)
    chosen = [t.strip() for t in tiers.split(",")] if tiers else None
    unknown = sorted(set(chosen or []) - set(frame["current_tier"].unique()) - set(frame["predicted_tier"].unique()))
    if unknown:
        _fail(f"{scores}: no customer is in tier(s) {', '.join(unknown)}")
    cfg = _config(config) if config is not None else None
    if churn_bands is not None:
        bands = tuple(b.strip() for b in churn_bands.split(",") if b.strip())
    elif cfg is not None:
        bands = cfg.outputs.churn_bands(cfg.playbook)
    else:
        bands = bands_above_lowest(frame)
    unknown = sorted(set(bands) - set(frame["churn_band"].unique()))
    if churn_bands is not None and unknown:
        _fail(f"{scores}: no customer is in churn band(s) {', '.join(unknown)}")
    ranked = at_risk(frame, tiers=chosen, top=top, min_churn=min_churn, bands=bands)
    has_reasons = all(c in ranked.columns for c in REASON_COLUMNS)
    if not has_reasons and cfg is not None and len(ranked):
        from tiercast.pipeline.tracking import setup_mlflow

        setup_mlflow(cfg)
        data = _load(cfg)
        reasons = explain_customers(
            data.accepted,
            ranked["customer_id"],
            model_uri=f"models:/{ranked['model_name'].iloc[0]}/{ranked['model_version'].iloc[0]}",
            cutoff=pd.Timestamp(ranked["cutoff"].iloc[0]),
            windows_days=cfg.features.windows_days,
            horizon_days=cfg.horizon_days,
            satisfaction=data.satisfaction,
        )
        ranked = pd.concat([ranked, reasons], axis=1)
        has_reasons = True
    horizon, currency = (cfg.horizon_days, cfg.outputs.currency) if cfg is not None else (None, None)
    ranked = team_list(ranked, horizon_days=horizon, currency=currency)
    write_csv(ranked, out)
    note = "" if has_reasons else " (no reasons: pass --config to add them)"
    console.print(f"{len(ranked):,} customers at risk (churn {'/'.join(bands)}) -> {out}{note}", highlight=False)


SCORES_FILE_COLUMNS = ("customer_id", "current_tier", "predicted_tier", "churn_probability", "value_at_risk")


def _read_scores(path: Path) -> pd.DataFrame:
    """A scores file written by ``tiercast score``, or a one-line error naming what it lacks."""
    import pyarrow.lib

    try:
        frame = pd.read_parquet(path)
    except (pyarrow.lib.ArrowException, OSError, ValueError) as exc:
        _fail(f"--scores {path}: not a Parquet file ({_one_line(exc)}); pass the scores written by `tiercast score`")
    missing = [c for c in (*SCORES_FILE_COLUMNS, "model_name", "model_version", "cutoff") if c not in frame.columns]
    if missing:
        _fail(f"--scores {path}: not a scores file written by `tiercast score` (missing columns: {', '.join(missing)})")
    return frame


@app.command()
@handle_errors
def monitor(
    config: ConfigOpt,
    start: Annotated[str, typer.Option("--from", help="First month, YYYY-MM (tiers at its first day).")],
    end: Annotated[str, typer.Option("--to", help="Last month, YYYY-MM (included).")],
    model: Annotated[
        str | None,
        typer.Option(
            help="Registered model URI for the tier scheme and predictions, e.g. models:/tiercast@champion "
            "(default: the champion if one is registered, else a scheme refitted on the first month).",
            callback=_model_arg,
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output file, .parquet or .csv.", callback=_out_file)] = Path(
        "outputs/monitor.parquet"
    ),
    engine: EngineOpt = None,
    run_date: RunDateOpt = None,
) -> None:
    """Per tier and month: customers, retention, orders, revenue share, average ticket; predicted vs realized."""
    from tiercast.pipeline.monitor import print_monitor, run_monitor, write_monitor

    cfg = _config(config, engine)
    frame = run_monitor(cfg, start=start, end=end, model_uri=model, data=_load(cfg, run_date))
    path = write_monitor(frame, out)
    print_monitor(console, frame)
    console.print(f"{len(frame):,} rows ({frame['month'].nunique()} months) -> {path}")


@app.command()
@handle_errors
def tiers(
    config: ConfigOpt,
    n_tests: Annotated[
        int, typer.Option(help="Test cutoffs, cutoffs.step_days apart, ending at the test cutoff.", min=1)
    ] = 3,
    n_boot: Annotated[int, typer.Option(help="Bootstrap refits per scheme for the stability (ARI).", min=1)] = 20,
    n_test_alias: Annotated[int | None, typer.Option("--n-test", hidden=True, min=1)] = None,
    engine: EngineOpt = None,
    run_date: RunDateOpt = None,
) -> None:
    """Tier study: proposed tiers, predicted vs persistence tiers on a backtest, stability, alternative schemes."""
    from tiercast.pipeline.terminal import step
    from tiercast.pipeline.tier_study import tier_study

    cfg = _config(config, engine)
    data = _load(cfg, run_date)
    n_tests = n_test_alias if n_test_alias is not None else n_tests
    with step(f"tier study on {n_tests} test cutoffs"):
        study = tier_study(cfg, n_test=n_tests, n_boot=n_boot, data=data)
    cutoffs = ", ".join(str(c) for c in study["test_cutoffs"])
    sil = ", ".join(f"k={k}: {s:.3f}" for k, s in study["scheme"]["silhouette_by_k"].items())
    console.print(f"scheme fitted at {study['validation_cutoff']} (k={study['scheme']['k']}; silhouette {sil})")
    _show(study["tiers"].drop(columns=["orders"]), f"Tiers at {study['test_cutoffs'][-1]} (current tier)")
    _show(study["tier_metrics"], f"Predicted vs realized tier, {study['horizon_days']}-day horizon ({cutoffs})")
    _show(study["tier_differences"].drop(columns=["n_boot"]), "Predicted minus persistence, 95% CI")
    _show(study["migration_counts"], "Migration current -> predicted (customers)", index=True)
    _show(study["migration_revenue"], "Migration current -> predicted (predicted value)", index=True)
    boot, cons = study["bootstrap"], study["consecutive"]
    console.print(
        f"stability: bootstrap ARI mean {boot['ari'].mean():.3f} (min {boot['ari'].min():.3f}), "
        f"boundary drift {boot['boundary_drift'].mean():.1%}; consecutive cutoffs ARI mean {cons['ari'].mean():.3f} "
        f"(min {cons['ari'].min():.3f}), boundary drift {cons['boundary_drift'].mean():.1%}"
    )
    _show(cons, "Refits at consecutive cutoffs (assigning the latest customers)")
    schemes = study["schemes"].drop(columns=["tiers"])
    for col in ("shares", "revenue_shares"):
        schemes[col] = schemes[col].map(lambda s: " / ".join(f"{x:.0%}" for x in s))
    schemes.columns = [
        c.replace("persistence_", "pers ").replace("predicted_", "pred ").replace("_ari", " ARI").replace("_", " ")
        for c in schemes.columns
    ]
    _show(schemes, "Tier schemes: shares at the latest cutoff; metrics averaged over the test cutoffs")
    z = [c for c in study["segments"].columns if c.startswith("z_")]
    _show(study["segments"].drop(columns=z), f"Behavioral segments at {study['test_cutoffs'][-1]}")
    _show(study["segment_tiers"], "Segment x current tier (customers)", index=True)


PredictionsOpt = Annotated[
    Path | None,
    typer.Option(
        "--predictions",
        help="Write per-customer predictions to this Parquet file: customer_id, cutoff, method, predicted_value, "
        "churn_probability, realized_value, churned (one row per customer x test cutoff x method).",
    ),
]


@app.command()
@handle_errors
def backtest(
    config: ConfigOpt,
    n_tests: Annotated[int | None, typer.Option(help="Test cutoffs (default: models.backtest_n_tests).", min=1)] = None,
    n_boot: Annotated[
        int | None, typer.Option(help="Bootstrap replicates (default: models.backtest_n_boot).", min=0)
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the table to this CSV file.", callback=_out_file)] = None,
    predictions: PredictionsOpt = None,
    n_test_alias: Annotated[int | None, typer.Option("--n-test", hidden=True, min=1)] = None,
    engine: EngineOpt = None,
    run_date: RunDateOpt = None,
) -> None:
    """Every model and baseline on the same test cutoffs: one table, logged as an MLflow run."""
    from tiercast.pipeline.backtest import log_backtest, run_backtest
    from tiercast.pipeline.files import write_csv
    from tiercast.pipeline.predictions import write_predictions
    from tiercast.pipeline.terminal import step

    cfg = _config(config, engine)
    data = _load(cfg, run_date)
    n_tests = n_tests if n_tests is not None else n_test_alias
    with step(f"backtest on {n_tests or cfg.models.backtest_n_tests} test cutoffs (every model and baseline)"):
        table, preds = run_backtest(cfg, data, n_tests=n_tests, n_boot=n_boot, return_predictions=True)
    run_id = log_backtest(cfg, data, table)
    shown = ["method", "normalized_gini", "spearman", "mae", "top20_capture", "predicted_total", "actual_total"]
    shown += ["roc_auc", "pr_auc", "brier"]
    for cutoff, rows in table.groupby("test_cutoff", sort=True):
        first = rows.iloc[0]
        title = (
            f"Test cutoff {pd.Timestamp(cutoff).date()} ({cfg.horizon_days}-day horizon; {first['n_customers']:,} "
            f"customers; {first['n_train_cutoffs']} training cutoffs, validation {first['validation_cutoff'].date()})"
        )
        _show(rows[shown], title)
        tc = rows[rows["method"] == "tiercast"]
        if len(tc) and "gini_vs" in tc:
            r = tc.iloc[0]
            console.print(
                f"  tiercast - {r['gini_vs']}: nGini {r['gini_diff']:+.3f} [{r['gini_lo']:+.3f}, {r['gini_hi']:+.3f}]; "
                f"tiercast - {r['auc_vs']}: ROC AUC {r['auc_diff']:+.4f} [{r['auc_lo']:+.4f}, {r['auc_hi']:+.4f}] "
                "(95% paired bootstrap)",
                highlight=False,
            )
    if out is not None:
        write_csv(table, out)
        console.print(f"table -> {out}")
    if predictions is not None:
        write_predictions(preds, predictions)
        console.print(f"per-customer predictions ({len(preds):,} rows) -> {predictions}")
    console.print(f"MLflow run {run_id}")


benchmark_app = typer.Typer(no_args_is_help=True, help="Published benchmarks.")
app.add_typer(benchmark_app, name="benchmark")


class SplitName(StrEnum):
    """The CDNOW splits (``tiercast.pipeline.benchmark_cdnow.SPLITS``)."""

    standard = "standard"
    rehearsal = "rehearsal"


@benchmark_app.command("cdnow")
@handle_errors
def benchmark_cdnow(
    data: Annotated[Path, typer.Option(help="CDNOW_master.txt.")] = Path("data/cdnow/CDNOW_master.txt"),
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the result JSON here.", callback=_out_file)
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config for the MLflow store (default: the cdnow preset).")
    ] = None,
    n_boot: Annotated[int, typer.Option(help="Paired-bootstrap replicates.", min=0)] = 500,
    sample_every: Annotated[int, typer.Option(help="Keep every k-th customer (quicker, noisier).", min=1)] = 1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    split: Annotated[
        SplitName,
        typer.Option(
            help="standard (the published split) or rehearsal (the protocol inside the calibration period, with a "
            "92-day holdout, where design alternatives are judged).",
        ),
    ] = SplitName.standard,
    predictions: PredictionsOpt = None,
) -> None:
    """CDNOW (all customers): tiercast vs the BTYD models on the standard 39-week calibration / 39-week holdout
    split, or on its rehearsal inside the calibration period."""
    from tiercast.pipeline.benchmark_cdnow import (
        cdnow_predictions,
        log_cdnow_benchmark,
        read_cdnow,
        run_cdnow_benchmark,
    )
    from tiercast.pipeline.files import write_json
    from tiercast.pipeline.predictions import write_predictions

    if not data.is_file():
        raise FileNotFoundError(f"{data}: CDNOW file not found")
    cfg = _config(config if config is not None else preset_path("cdnow"))
    tx = read_cdnow(data)
    result = run_cdnow_benchmark(
        data,
        seed=seed,
        transactions=tx,
        n_boot=n_boot,
        sample_every=sample_every,
        return_predictions=True,
        split=split.value,
    )
    run_id = log_cdnow_benchmark(cfg, data, result, transactions=tx)
    per_customer = cdnow_predictions(result)
    result.pop("predictions")
    rows = [{"method": name, **m["value"], **m["churn"]} for name, m in result["methods"].items()]
    frame = pd.DataFrame(rows)
    cols = ["method", "normalized_gini", "spearman", "mae", "rmse", "top10_capture", "predicted_total"]
    sp = result["split"]
    title = f"CDNOW {sp['name']} split, holdout {'..'.join(sp['holdout'])} ({sp['n_customers']:,} customers)"
    _show(frame[[*cols, "roc_auc", "pr_auc", "brier"]], title)
    for metric, c in result["comparison"].items():
        ci = "" if c["lo"] is None else f" [{c['lo']:+.4f}, {c['hi']:+.4f}]"
        console.print(f"  tiercast - {c['vs']}: {metric} {c['diff']:+.4f}{ci}", highlight=False)
    # the targets belong to the standard split; a rehearsal has none
    checks = _cdnow_checks(result["targets"], result["methods"]["tiercast"]) if result["targets"] else []
    for label, value, target, ok in checks:
        console.print(f"  target {label} {target}: {value:.4f} {'met' if ok else 'MISSED'}", highlight=False)
    if json_out is not None:
        write_json(result, json_out)
        console.print(f"result -> {json_out}")
    if predictions is not None:
        write_predictions(per_customer, predictions)
        console.print(f"per-customer predictions ({len(per_customer):,} rows) -> {predictions}")
    console.print(f"MLflow run {run_id}")


def _cdnow_checks(t: dict[str, float], tc: dict[str, dict[str, float]]) -> list[tuple[str, float, str, bool]]:
    """(label, measured, target, met) for each of the issue's CDNOW targets."""
    total_err = tc["value"]["predicted_total"] / tc["value"]["actual_total"] - 1
    measured = {
        "normalized_gini_min": ("normalized Gini", tc["value"]["normalized_gini"]),
        "spearman_min": ("Spearman", tc["value"]["spearman"]),
        "roc_auc_min": ("ROC AUC", tc["churn"]["roc_auc"]),
        "brier_max": ("Brier", tc["churn"]["brier"]),
        "total_rel_error_max": ("total error", total_err),
    }
    checks = []
    for key, target in t.items():
        label, value = measured[key]
        if key == "total_rel_error_max":
            checks.append((label, value, f"within +-{target:.0%}", abs(value) <= target))
        elif key.endswith("_min"):
            checks.append((label, value, f">= {target}", value >= target))
        else:
            checks.append((label, value, f"<= {target}", value <= target))
    return checks


def _cell(v: object) -> str:
    if isinstance(v, float):
        return "-" if v != v else f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _show(frame: pd.DataFrame, title: str, index: bool = False) -> None:
    from rich.table import Table

    frame = frame.reset_index() if index else frame
    table = Table(title=title)
    for col in frame.columns:
        table.add_column(str(col), justify="right" if pd.api.types.is_numeric_dtype(frame[col]) else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    print_table(console, table)


@app.command()
@handle_errors
def promote(
    config: ConfigOpt,
    run_id: Annotated[str, typer.Option("--run", help="MLflow run id whose model to promote.")],
    force: Annotated[bool, typer.Option(help="Make it champion even if it does not beat the current one.")] = False,
) -> None:
    """Register a run's model; it becomes `champion` only if it wins the promotion rule (else `challenger`): on the same
    data it must beat the champion; a retrain on newer data must not be worse than the champion on outcomes neither
    has seen (compared when `tiercast train` ran; README: Monthly retrain and scoring)."""
    from tiercast.pipeline.registry import promote as do_promote
    from tiercast.pipeline.tracking import registry_lock, setup_mlflow

    cfg = _config(config)
    setup_mlflow(cfg)
    _known_runs([run_id])
    with registry_lock(cfg):
        decision = do_promote(cfg.mlflow.registered_model, run_id, force=force)
    console.print(f"{cfg.mlflow.registered_model} version {decision.version} -> @{decision.alias} ({decision.reason})")


@app.command()
@handle_errors
def compare(
    config: ConfigOpt,
    runs: Annotated[list[str] | None, typer.Argument(help="Run ids (default: the latest runs).")] = None,
    last: Annotated[int, typer.Option(help="How many recent runs when none are named.", min=1)] = 5,
) -> None:
    """Side-by-side test metrics of runs, each beside its baselines."""
    from rich.table import Table

    from tiercast.pipeline.registry import compare_runs
    from tiercast.pipeline.tracking import setup_mlflow

    cfg = _config(config)
    setup_mlflow(cfg)
    _known_runs(runs or [])
    frame = compare_runs(cfg.mlflow.experiment, runs or None, last=last)
    if frame.empty:
        _fail(f"no runs in experiment {cfg.mlflow.experiment!r}", code=1)
    table = Table(title=f"Runs of {cfg.mlflow.experiment} (test-cutoff metrics)")
    for col in frame.columns:
        table.add_column(col, justify="left" if col in ("run", "started", "test cutoff", "model") else "right")
    for rec in frame.itertuples(index=False):
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else ("-" if v is None else str(v)) for v in rec))
    print_table(console, table)


@app.command()
@handle_errors
def report(
    config: ConfigOpt,
    run_id: Annotated[
        str | None, typer.Option("--run", help="MLflow run id (default: the latest training run).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Output HTML file.", callback=_out_file)] = Path("outputs/report.html"),
    at_risk: Annotated[
        Path | None, typer.Option(help="at_risk.csv to list the top customers from.", exists=True, dir_okay=False)
    ] = None,
) -> None:
    """Write a self-contained HTML report of a run (metrics, tiers, plots, top at-risk customers)."""
    from tiercast.pipeline.registry import latest_training_run
    from tiercast.pipeline.report import write_report
    from tiercast.pipeline.tracking import setup_mlflow

    cfg = _config(config)
    setup_mlflow(cfg)
    if run_id is not None:
        _known_runs([run_id])
    run_id = run_id or latest_training_run(cfg.mlflow.experiment)
    if run_id is None:
        _fail(f"no training run in experiment {cfg.mlflow.experiment!r}: run `tiercast train` or `tiercast run` first")
    write_report(run_id, out, at_risk or cfg.outputs.dir / "at_risk.csv")
    console.print(f"report -> {out}")


if __name__ == "__main__":  # pragma: no cover
    app()
