"""Commands on the data: ``init`` (a starter config), ``validate`` (ingest and accounting), ``features``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
import yaml

from tiercast.pipeline.cli.arguments import date_arg
from tiercast.pipeline.cli.base import (
    ConfigOpt,
    EngineOpt,
    RunDateOpt,
    app,
    config_from,
    console,
    fail,
    handle_errors,
    load_data,
    local_out,
    shell_command,
)


@app.command()
@handle_errors
def init(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Transaction file (CSV / text, also .gz, or Parquet) to look at, or a folder or quoted glob pattern "
            "('exports/*.csv') of such files, read as one source.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Config file to write.")] = Path("config.yaml"),
    column: Annotated[
        list[str] | None, typer.Option("--column", help="FIELD=COLUMN, for a field the column names do not reveal.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out file.")] = False,
    reviews: Annotated[
        Path | None,
        typer.Option(help="A reviews file beside the transactions (customer, time, score 1-5): data.reviews."),
    ] = None,
) -> None:
    """Write a starter config for a transaction file: sniffed format, delimiter, dates and column mapping."""
    from tiercast.pipeline.starter import starter_config
    from tiercast.pipeline.writers.files import atomic_output

    if data.is_dir() and (data / "olist_orders_dataset.csv").exists():
        fail(f"--data {data}: the Olist tables; start from `base: olist` instead")
    if out.exists() and not force:
        fail(f"{out} exists; pass --force to overwrite it")
    pairs = [c.split("=", 1) for c in column or []]
    if any(len(p) != 2 or not p[0] or not p[1] for p in pairs):
        fail("--column takes FIELD=COLUMN, e.g. --column customer_id=client")
    text, found = starter_config(data, dict(pairs), reviews)
    with atomic_output(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    console.print(f"wrote {out}: " + ", ".join(f"{k} <- {v!r}" for k, v in found.transactions["columns"].items()))
    if reviews is not None:
        mapped = yaml.safe_load(text)["data"]["reviews"]["columns"]
        console.print("reviews: " + ", ".join(f"{k} <- {v!r}" for k, v in mapped.items()))
    for note in found.notes:
        console.print(f"[yellow]check:[/] {note}", highlight=False)
    # soft_wrap: a long path wraps on screen only, so the command pastes as one line
    nxt = shell_command("tiercast", "validate", "--config", out)
    console.print(f"next: {nxt}", highlight=False, markup=False, soft_wrap=True)


@app.command()
@handle_errors
def validate(config: ConfigOpt, engine: EngineOpt = None, run_date: RunDateOpt = None) -> None:
    """Read and validate the transactions; write the quarantine file and print the accounting."""
    from tiercast.pipeline.cli.summary import print_ingest

    cfg = config_from(config, engine)
    start = time.perf_counter()
    data = load_data(cfg, run_date)
    print_ingest(console, data, cfg.data.quarantine_path, seconds=time.perf_counter() - start)


@app.command()
@handle_errors
def features(
    config: ConfigOpt,
    cutoff: Annotated[
        str, typer.Option(help="Cutoff date YYYY-MM-DD (features see only earlier transactions).", callback=date_arg)
    ],
    out: Annotated[
        str,
        typer.Option(
            help="Output Parquet file; with --engine spark a folder or a URI such as s3a://BUCKET/PATH (partition "
            "cutoff_date=...)."
        ),
    ] = "features.parquet",
    engine: EngineOpt = None,
    run_date: RunDateOpt = None,
) -> None:
    """Build point-in-time features at a cutoff and write them to Parquet."""
    from tiercast.pipeline.engine.writes import write_features
    from tiercast.pipeline.ingest.loader import write_features_at

    cfg = config_from(config, engine)
    local_out(cfg, out)
    when = pd.Timestamp(cutoff)
    data = load_data(cfg, run_date)
    if when <= data.data_start:  # no customer yet: an empty file would pass for features
        fail(f"--cutoff {cutoff}: no purchase before it (the data starts {data.data_start.date()}); give a later date")
    if cfg.engine.kind == "spark":  # written by the executors, partitioned by cutoff
        folder = write_features(
            data.con,
            data.table,
            out,  # as typed: a URI keeps its //
            cutoff=when,
            windows_days=cfg.features.windows_days,
            horizon_days=cfg.horizon_days,
            satisfaction=data.engine_satisfaction(),
        )
        console.print(f"features at {cutoff} on spark -> {folder}")
        return
    rows, n_features = write_features_at(data, cfg, when, Path(out))
    console.print(f"{rows:,} customers x {n_features} features at {cutoff} -> {out}")
