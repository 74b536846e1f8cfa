"""``tiercast benchmark``: the published CDNOW benchmark (:mod:`tiercast.benchmarks.quality.cdnow`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pandas as pd
import typer

from tiercast.pipeline.config import preset_path

if TYPE_CHECKING:
    pass
from tiercast.pipeline.cli.base import PredictionsOpt, app, config_from, console, handle_errors, out_file
from tiercast.pipeline.cli.render import show_frame

benchmark_app = typer.Typer(no_args_is_help=True, help="Published benchmarks.")
app.add_typer(benchmark_app, name="benchmark")


class SplitName(StrEnum):
    """The CDNOW splits (``tiercast.benchmarks.quality.cdnow.SPLITS``)."""

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
    from tiercast.benchmarks.quality.cdnow import (
        cdnow_predictions,
        log_cdnow_benchmark,
        read_cdnow,
        run_cdnow_benchmark,
    )
    from tiercast.pipeline.jobs.predictions import write_predictions
    from tiercast.pipeline.writers.files import write_json

    if not data.is_file():
        raise FileNotFoundError(f"{data}: CDNOW file not found")
    cfg = config_from(config if config is not None else preset_path("cdnow"))
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
    show_frame(frame[[*cols, "roc_auc", "pr_auc", "brier"]], title)
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
