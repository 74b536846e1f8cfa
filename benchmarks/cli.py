"""``tiercast-bench``: generate synthetic transactions and run the benchmarks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="tiercast benchmarks: synthetic data and scale runs.", no_args_is_help=True)


@app.command()
def gen(
    out: Annotated[Path, typer.Option(help="Output Parquet file.")],
    transactions: Annotated[int, typer.Option(min=1, help="Number of transaction lines.")] = 1_000_000,
    customers: Annotated[int | None, typer.Option(min=1, help="Number of customers (default lines / 10).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same data.")] = 0,
) -> None:
    """Write seeded synthetic transactions (canonical columns) to a Parquet file."""
    from tiercast.benchmarks.synthetic import write_transactions

    start = time.perf_counter()
    path = write_transactions(out, transactions, customers, seed)
    typer.echo(f"{transactions:,} transactions -> {path} in {time.perf_counter() - start:.1f}s")


@app.command()
def run(
    out: Annotated[Path, typer.Option(help="Directory for the result JSON files.")] = Path("benchmarks/results"),
    transactions: Annotated[int, typer.Option(min=1)] = 10_000_000,
    customers: Annotated[int | None, typer.Option(min=1, help="Default: transactions / 10.")] = None,
    repeats: Annotated[int, typer.Option(min=1)] = 3,
) -> None:
    """Run the benchmarks (same as ``python -m tiercast.benchmarks.run``)."""
    from tiercast.benchmarks.run import RunOptions
    from tiercast.benchmarks.run import run as run_benchmarks

    opts = RunOptions(
        out=out, transactions=transactions, customers=customers or max(1, transactions // 10), repeats=repeats
    )
    for name, path in run_benchmarks(opts).items():
        typer.echo(f"{name}: {path}")


if __name__ == "__main__":
    app()
