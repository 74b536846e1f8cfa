"""Commands on the MLflow store: ``promote``, ``compare``, ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tiercast.pipeline.cli.arguments import out_file
from tiercast.pipeline.cli.base import (
    ConfigOpt,
    app,
    config_from,
    console,
    fail,
    handle_errors,
    resolve_runs,
    shell_command,
)
from tiercast.pipeline.terminal import print_table


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
    from tiercast.pipeline.tracking.registry import promote as do_promote
    from tiercast.pipeline.tracking.run_listing import is_finished_training_run
    from tiercast.pipeline.tracking.runs import registry_lock, setup_mlflow

    cfg = config_from(config)
    setup_mlflow(cfg, create=False)  # a run to promote is in a store that exists: never create an empty one
    (run_id,) = resolve_runs([run_id], cfg.mlflow.experiment, config)
    if not is_finished_training_run(run_id):
        fail(
            f"--run {run_id}: not a finished training run, so it has no model to promote (backtests and benchmarks "
            f"log none); promote a run of `tiercast train` or `tiercast run` "
            f"(`{shell_command('tiercast', 'compare', '--config', config)}` lists them)"
        )
    with registry_lock(cfg):
        decision = do_promote(cfg.mlflow.registered_model, run_id, force=force)
    console.print(f"{cfg.mlflow.registered_model} version {decision.version} -> @{decision.alias} ({decision.reason})")


@app.command()
@handle_errors
def compare(
    config: ConfigOpt,
    runs: Annotated[list[str] | None, typer.Argument(help="Run ids (default: the latest runs).")] = None,
    last: Annotated[int, typer.Option(help="How many recent finished training runs when none are named.", min=1)] = 5,
) -> None:
    """Side-by-side test metrics of runs, each beside its baselines (default: the latest finished training runs)."""
    from rich.table import Table

    from tiercast.pipeline.tracking.run_listing import compare_runs
    from tiercast.pipeline.tracking.runs import StoreNotFoundError, setup_mlflow

    cfg = config_from(config)
    try:
        setup_mlflow(cfg, create=False)
    except StoreNotFoundError as exc:
        fail(f"no runs in experiment {cfg.mlflow.experiment!r}: {exc}")
    runs = resolve_runs(runs or [], cfg.mlflow.experiment, config, label="run")
    comparison = compare_runs(cfg.mlflow.experiment, runs or None, last=last)
    frame = comparison.table
    if frame.empty:
        train = shell_command("tiercast", "train", "--config", config)
        fail(
            f"no runs in experiment {cfg.mlflow.experiment!r} that finished training: run `{train}` (or `run`) first "
            "(name a backtest's run id to compare it)"
        )
    table = Table(title=f"Runs of {cfg.mlflow.experiment} (test-cutoff metrics)")
    for col in frame.columns:
        table.add_column(col, justify="left" if col in ("run", "started", "test cutoff", "model") else "right")
    for rec in frame.itertuples(index=False):
        table.add_row(*("-" if v is None or v != v else f"{v:.3f}" if isinstance(v, float) else str(v) for v in rec))
    print_table(console, table)
    for run_id, why in comparison.no_test.items():
        console.print(f"note: run {run_id}: {why}", highlight=False, soft_wrap=True)


@app.command()
@handle_errors
def report(
    config: ConfigOpt,
    run_id: Annotated[
        str | None, typer.Option("--run", help="MLflow run id (default: the latest training run).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output HTML file (default: report.html in the config's outputs.dir).", callback=out_file),
    ] = None,
    at_risk: Annotated[
        Path | None,
        typer.Option(
            help="The at-risk CSV of the run's model version to list the top customers from (default: at_risk.csv "
            "in outputs.dir; a list of another version is left out).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Write a self-contained HTML report of a run (metrics, tiers, plots, top at-risk customers of the run's
    model version)."""
    from tiercast.pipeline.tracking.report import write_report
    from tiercast.pipeline.tracking.run_listing import latest_training_run
    from tiercast.pipeline.tracking.runs import setup_mlflow

    cfg = config_from(config)
    out = out if out is not None else cfg.outputs.dir / "report.html"
    setup_mlflow(cfg, create=False)
    if run_id is not None:
        (run_id,) = resolve_runs([run_id], cfg.mlflow.experiment, config)
    run_id = run_id or latest_training_run(cfg.mlflow.experiment)
    if run_id is None:
        train = shell_command("tiercast", "train", "--config", config)
        fail(f"no training run in experiment {cfg.mlflow.experiment!r}: run `{train}` (or `run`) first")
    done = write_report(run_id, out, at_risk or cfg.outputs.dir / "at_risk.csv", cfg.mlflow.registered_model)
    for note in done.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    console.print(f"report -> {out}")
