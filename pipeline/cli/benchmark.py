"""``tiercast benchmark``: the published CDNOW benchmark (:mod:`tiercast.benchmarks.quality.cdnow`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tiercast.pipeline.cli.arguments import out_file
from tiercast.pipeline.cli.base import PredictionsOpt, app, config_from, console, handle_errors
from tiercast.pipeline.cli.render import print_cdnow
from tiercast.pipeline.config import preset_path

benchmark_app = typer.Typer(no_args_is_help=True, help="Published benchmarks.")
app.add_typer(benchmark_app, name="benchmark")


class SplitName(StrEnum):
    """The CDNOW splits (``tiercast.benchmarks.quality.cdnow_data.SPLITS``)."""

    standard = "standard"
    rehearsal = "rehearsal"


@benchmark_app.command("cdnow")
@handle_errors
def benchmark_cdnow(
    data: Annotated[Path, typer.Option(help="CDNOW_master.txt.")] = Path("data/cdnow/CDNOW_master.txt"),
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the result JSON here.", callback=out_file)
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="MLflow store and model settings (default: the cdnow preset).")
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
    from tiercast.benchmarks.quality.cdnow import run_cdnow_benchmark
    from tiercast.benchmarks.quality.cdnow_data import read_cdnow
    from tiercast.benchmarks.quality.cdnow_tracking import cdnow_predictions, log_cdnow_benchmark
    from tiercast.pipeline.cli.jobs import outputs_usable, write_held
    from tiercast.pipeline.jobs.predictions import write_predictions
    from tiercast.pipeline.writers.files import HeldOutputs, write_json

    if not data.is_file():
        raise FileNotFoundError(f"{data}: CDNOW file not found")
    cfg = config_from(config if config is not None else preset_path("cdnow"))
    outputs_usable(("--json", json_out), ("--predictions", predictions))
    tx = read_cdnow(data)
    result = run_cdnow_benchmark(
        data,
        seed=seed,
        transactions=tx,
        n_boot=n_boot,
        sample_every=sample_every,
        return_predictions=True,
        split=split.value,
        **cfg.models.model_dump(include={"btyd", "seasonal", "btyd_level"}),  # the config's models are benchmarked
    )
    per_customer = cdnow_predictions(result)
    with HeldOutputs() as held:  # the files replace the previous ones together, once the run is logged
        if json_out is not None:
            write_held(held, json_out, lambda tmp: write_json(result.to_dict(), tmp))
        if predictions is not None:
            write_held(held, predictions, lambda tmp: write_predictions(per_customer, tmp))
        run_id = log_cdnow_benchmark(cfg, data, result, transactions=tx)
    print_cdnow(console, result)
    if json_out is not None:
        console.print(f"result -> {json_out}")
    if predictions is not None:
        console.print(f"per-customer predictions ({len(per_customer):,} rows) -> {predictions}")
    console.print(f"MLflow run {run_id}")
