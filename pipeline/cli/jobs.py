"""Commands that run a job: ``run``, ``train``, ``score``, ``monitor``, ``tiers``, ``backtest``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer

from tiercast.pipeline.cli.arguments import date_arg, model_arg, month_arg, out_file
from tiercast.pipeline.cli.base import (
    ConfigOpt,
    EngineOpt,
    PredictionsOpt,
    RunDateOpt,
    app,
    config_from,
    console,
    fail,
    handle_errors,
    load_data,
    local_out,
    usable_folder,
)
from tiercast.pipeline.cli.render import backtest_bootstrap_line, print_tier_study, show_frame
from tiercast.pipeline.config import Config, build_playbook

if TYPE_CHECKING:
    from collections.abc import Callable

    from tiercast.models.scorer import TiercastScorer
    from tiercast.pipeline.ingest.loader import Transactions
    from tiercast.pipeline.jobs.score import ScoringFeatures
    from tiercast.pipeline.writers.files import HeldOutputs


@app.command()
@handle_errors
def run(config: ConfigOpt, engine: EngineOpt = None, run_date: RunDateOpt = None) -> None:
    """The main job: ingest, train and backtest, register the model, score every customer, write the lists."""
    from tiercast.pipeline.cli.summary import print_run
    from tiercast.pipeline.jobs.run import run_job

    cfg = config_from(config, engine)
    usable_folder(cfg.outputs.dir, "outputs.dir")  # before reading: run_job checks again, after the data are read
    usable_folder(cfg.data.quarantine_path.parent, "data.quarantine_path")
    outcome = run_job(cfg, load_data(cfg, run_date, hold_quarantine=True))  # the quarantine written with the rest
    print_run(console, outcome)
    if outcome.challenger_note:
        console.print(f"note: {outcome.challenger_note}", highlight=False)


@app.command("train")
@handle_errors
def train_cmd(config: ConfigOpt, engine: EngineOpt = None, run_date: RunDateOpt = None) -> None:
    """Backtest and train on rolling cutoffs, log the run to MLflow, register the model and apply the promotion rule.

    With --engine spark the features and labels run on Spark; the training set (or engine.training_sample_customers
    of the customers) is collected to this machine for the model fit.
    """
    from tiercast.pipeline.cli.summary import print_training
    from tiercast.pipeline.jobs.run import train_and_promote
    from tiercast.pipeline.writers.files import on_success

    cfg = config_from(config, engine)
    usable_folder(cfg.data.quarantine_path.parent, "data.quarantine_path")  # written after training: checked first
    data = load_data(cfg, run_date, hold_quarantine=True)
    with on_success(data.held_quarantine):
        trained, decision = train_and_promote(cfg, data)
    print_training(console, trained, decision)


@app.command()
@handle_errors
def score(
    config: ConfigOpt,
    model: Annotated[
        str, typer.Option(help="Registered model URI, e.g. models:/tiercast@champion.", callback=model_arg)
    ],
    out: Annotated[
        str | None,
        typer.Option(
            help="Output Parquet file (default: scores.parquet in the config's outputs.dir), or a table: "
            "duckdb://FILE::TABLE or postgresql://USER@HOST:PORT/DB::SCHEMA.TABLE (replaced atomically; drift CSV "
            "in outputs.dir); with --engine spark a folder or a URI such as s3a://BUCKET/PATH."
        ),
    ] = None,
    cutoff: Annotated[
        str | None,
        typer.Option(
            help="Scoring cutoff YYYY-MM-DD (default: the config's score.cutoff, else the day after the data ends).",
            callback=date_arg,
        ),
    ] = None,
    reasons: Annotated[bool, typer.Option(help="Add the top-3 churn and value reasons per customer (slower).")] = False,
    engine: EngineOpt = None,
    run_date: RunDateOpt = None,
) -> None:
    """Score every customer with a registered model and write the scores atomically, to a Parquet file or a
    DuckDB / PostgreSQL table (a staging table swapped in within one transaction), model version and cutoff on
    every row.

    With --engine spark the features are built on Spark and scored by the model's spark_udf; --out is then a folder
    or a URI (s3a://, hdfs://) that gets the partition cutoff_date=<cutoff>/.
    """
    from tiercast.pipeline.tracking.runs import setup_mlflow
    from tiercast.pipeline.writers.tables import parse_table_target

    cfg = config_from(config, engine)
    if cutoff is None and cfg.score.cutoff is not None:  # the config's, as `run` uses it
        cutoff = str(cfg.score.cutoff)
    out = out if out is not None else str(cfg.outputs.dir / "scores.parquet")
    target = parse_table_target(out)
    if target is None:
        local_out(cfg, out)
    setup_mlflow(cfg, create=False)  # the model to score with is in it: a missing store is an error, not a new one
    data = load_data(cfg, run_date)
    if cfg.engine.kind == "spark":
        if target is not None:
            fail(f"--engine spark writes a Parquet folder, not a table ({target.describe()})")
        _score_on_spark(cfg, data, model=model, out=out, cutoff=cutoff, reasons=reasons, config=config)  # URI as typed
        return
    _score_locally(cfg, data, model=model, out=out, target=target, cutoff=cutoff, reasons=reasons, config=config)


def scoring_cutoff(data: Transactions, cutoff: str | None) -> pd.Timestamp:
    """``--cutoff`` (default: the midnight after the data ends); one line when no purchase precedes it, and a
    notice when it lies after the data: every customer's recency then counts days that have no data."""
    import warnings

    when = pd.Timestamp(cutoff) if cutoff else data.data_end
    if when <= data.data_start:
        fail(f"--cutoff {cutoff}: no purchase before it (the data starts {data.data_start.date()}); give a later date")
    if when > data.data_end:
        days = (when - data.data_end).days
        warnings.warn(
            f"--cutoff {cutoff} is {days:,} day(s) after the data ends ({data.data_end.date()}): every customer's "
            "recency counts those days, with no purchases in them",
            stacklevel=2,
        )
    return when


def warn_if_trained_past(name: str, version: str, when: pd.Timestamp) -> None:
    """A warning when the scoring cutoff is before the end of the data the model version was trained on (its
    production refit's labels end, a run parameter): the model has seen outcomes after the cutoff."""
    import warnings

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient()
        run_id = client.get_model_version(name, version).run_id
        logged = client.get_run(run_id).data.params.get("production.labels_end") if run_id else None
    except MlflowException:
        return
    if logged is None or when >= pd.Timestamp(logged):
        return
    warnings.warn(
        f"scoring cutoff {when.date()} is before the end of the data {name} version {version} was trained on "
        f"({logged}): the model has seen what happened after the cutoff, so these scores look better than they "
        "would have been; score at that date or later, or with a model trained on data up to the cutoff",
        stacklevel=2,
    )


def _model_features(cfg: Config, scorer: TiercastScorer) -> ScoringFeatures:
    """The model's horizon and windows to score with; a one-line note when the config's differ."""
    from tiercast.pipeline.jobs.score import scoring_features

    spec = scoring_features(scorer, horizon_days=cfg.horizon_days, windows_days=cfg.features.windows_days)
    if spec.note:
        console.print(f"note: {spec.note}", highlight=False)
    return spec


def _score_locally(
    cfg: Config,
    data: Transactions,
    *,
    model: str,
    out: str,
    target: Any,
    cutoff: str | None,
    reasons: bool,
    config: Path,
) -> None:
    """`tiercast score` on DuckDB: the scores to a Parquet file or a table, the drift CSV beside them."""
    from tiercast.pipeline.cli.summary import print_drift
    from tiercast.pipeline.ingest.loader import features_at
    from tiercast.pipeline.jobs.score import load_model, playbook_for_model, score_features
    from tiercast.pipeline.writers.files import write_csv, write_parquet
    from tiercast.pipeline.writers.tables import write_table

    when = scoring_cutoff(data, cutoff)
    loaded = load_model(model)
    playbook = playbook_for_model(build_playbook(cfg), loaded.scorer, model=model, config=config)
    warn_if_trained_past(loaded.name, loaded.version, when)
    spec = _model_features(cfg, loaded.scorer)
    feats = features_at(data, spec.config(cfg), when)
    scores = score_features(
        loaded,
        feats,
        cutoff=when,
        chunk_size=cfg.score.chunk_size,
        playbook=playbook,
        reasons=reasons,
    )
    drift = loaded.scorer.drift(feats, scores, threshold=cfg.score.psi_threshold)
    # written only once everything they depend on has succeeded: a failing run leaves the previous output alone
    if target is not None:
        write_table(scores, target)
        drift_file, shown = cfg.outputs.dir / target.drift_file_name, target.describe()
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
    cfg: Config, data: Transactions, *, model: str, out: str, cutoff: str | None, reasons: bool, config: Path
) -> None:
    """`tiercast score --engine spark`: features on the cluster, spark_udf scores, partitioned Parquet under ``out``
    (a folder, or a URI such as ``s3a://BUCKET/PATH`` handed to Spark as typed)."""
    from tiercast.pipeline.jobs.score import playbook_for_model
    from tiercast.pipeline.jobs.spark_score import resolve_spark_model, score_to_folder

    when = scoring_cutoff(data, cutoff)
    loaded = resolve_spark_model(model)
    playbook = playbook_for_model(build_playbook(cfg), loaded.scorer, model=model, config=config)
    if model.startswith("models:/"):
        warn_if_trained_past(loaded.name, loaded.version, when)
    spec = _model_features(cfg, loaded.scorer)
    folder = score_to_folder(
        data.con,
        loaded,
        data.table,
        out,
        cutoff=when,
        windows_days=spec.windows_days,
        horizon_days=spec.horizon_days,
        satisfaction=data.satisfaction,
        reasons=reasons,
        playbook=playbook,
    )
    console.print(f"scored at {when.date()} on spark with {model} (version {loaded.version}) -> {folder}")


@app.command()
@handle_errors
def monitor(
    config: ConfigOpt,
    start: Annotated[
        str, typer.Option("--from", help="First month, YYYY-MM (tiers at its first day).", callback=month_arg)
    ],
    end: Annotated[str, typer.Option("--to", help="Last month, YYYY-MM (included).", callback=month_arg)],
    model: Annotated[
        str | None,
        typer.Option(
            help="Registered model URI for the tier scheme and predictions, e.g. models:/tiercast@champion "
            "(default: the champion if one is registered, else a scheme refitted on the first month).",
            callback=model_arg,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output file, .parquet or .csv (default: monitor.parquet in the config's outputs.dir).",
            callback=out_file,
        ),
    ] = None,
    engine: EngineOpt = None,
    run_date: RunDateOpt = None,
) -> None:
    """Per tier and month: customers, retention, orders, revenue share, average ticket; predicted vs realized."""
    from tiercast.pipeline.cli.render import print_monitor
    from tiercast.pipeline.jobs.monitor import run_monitor, write_monitor

    cfg = config_from(config, engine)
    frame, run = run_monitor(cfg, start=start, end=end, model_uri=model, data=load_data(cfg, run_date))
    path = write_monitor(frame, out if out is not None else cfg.outputs.dir / "monitor.parquet")
    print_monitor(console, frame, run)
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
    from tiercast.pipeline.jobs.tier_study import tier_study
    from tiercast.pipeline.terminal import step

    cfg = config_from(config, engine)
    data = load_data(cfg, run_date)
    n_tests = n_test_alias if n_test_alias is not None else n_tests
    with step(f"tier study on {n_tests} test cutoffs"):
        study = tier_study(cfg, n_test=n_tests, n_boot=n_boot, data=data)
    print_tier_study(console, study)


@app.command()
@handle_errors
def backtest(
    config: ConfigOpt,
    n_tests: Annotated[int | None, typer.Option(help="Test cutoffs (default: models.backtest_n_tests).", min=1)] = None,
    n_boot: Annotated[
        int | None, typer.Option(help="Bootstrap replicates (default: models.backtest_n_boot).", min=0)
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the table to this CSV file.", callback=out_file)] = None,
    predictions: PredictionsOpt = None,
    n_test_alias: Annotated[int | None, typer.Option("--n-test", hidden=True, min=1)] = None,
    engine: EngineOpt = None,
    run_date: RunDateOpt = None,
) -> None:
    """Every model and baseline on the same test cutoffs: one table, logged as an MLflow run."""
    from tiercast.pipeline.jobs.backtest import log_backtest, run_backtest
    from tiercast.pipeline.jobs.predictions import write_predictions
    from tiercast.pipeline.terminal import step
    from tiercast.pipeline.writers.files import HeldOutputs, write_csv

    cfg = config_from(config, engine)
    outputs_usable(("--out", out), ("--predictions", predictions))
    data = load_data(cfg, run_date)
    n_tests = n_tests if n_tests is not None else n_test_alias
    with step(f"backtest on {n_tests or cfg.models.backtest_n_tests} test cutoffs (every model and baseline)"):
        table, preds = run_backtest(cfg, data, n_tests=n_tests, n_boot=n_boot, return_predictions=True)
    with HeldOutputs() as held:  # the files replace the previous ones together, once the run is logged
        if out is not None:
            write_held(held, out, lambda tmp: write_csv(table, tmp))
        if predictions is not None:
            write_held(held, predictions, lambda tmp: write_predictions(preds, tmp))
        run_id = log_backtest(cfg, data, table)
    _print_backtest(cfg, table)
    if out is not None:
        console.print(f"table -> {out}")
    if predictions is not None:
        console.print(f"per-customer predictions ({len(preds):,} rows) -> {predictions}")
    console.print(f"MLflow run {run_id}")


def outputs_usable(*outputs: tuple[str, Path | None]) -> None:
    """One line naming the option when the folder of an output file (option, path) cannot be written: checked
    before the work whose results it is to hold."""
    for option, path in outputs:
        if path is not None:
            usable_folder(path.parent, option)


def write_held(held: HeldOutputs, target: Path, write: Callable[[Path], object]) -> None:
    """``write`` the content of ``target`` to the temporary ``held`` puts in place later; an error names
    ``target``, not the temporary."""
    try:
        write(held.path_for(target))
    except OSError as exc:
        if exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, str(target)) from exc


def _print_backtest(cfg: Config, table: pd.DataFrame) -> None:
    """The backtest table, one block per test cutoff, with tiercast's paired-bootstrap line under each."""
    shown = ["method", "normalized_gini", "spearman", "mae", "top20_capture", "predicted_total", "actual_total"]
    shown += ["roc_auc", "pr_auc", "brier"]
    for cutoff, rows in table.groupby("test_cutoff", sort=True):
        first = rows.iloc[0]
        title = (
            f"Test cutoff {pd.Timestamp(cutoff).date()} ({cfg.horizon_days}-day horizon; {first['n_customers']:,} "
            f"customers; {first['n_train_cutoffs']} training cutoffs, validation {first['validation_cutoff'].date()})"
        )
        show_frame(rows[shown], title)
        tc = rows[rows["method"] == "tiercast"]
        if len(tc) and "gini_vs" in tc:
            console.print(backtest_bootstrap_line(tc.iloc[0]), highlight=False)
        if first.get("plan_note"):
            console.print(f"  note: {first['plan_note']}", highlight=False)
