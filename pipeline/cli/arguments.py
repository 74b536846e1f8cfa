"""Checks of the values typed on the command line (typer callbacks): each refuses a bad value with
``typer.BadParameter``, which the error boundary prints as one line naming the option, before any work starts."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer


def date_arg(value: str | None) -> str | None:
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


def month_arg(value: str) -> str:
    """``--from`` / ``--to`` of ``monitor``: a month YYYY-MM, checked when the command line is read (before the data
    is)."""
    from tiercast.pipeline.jobs.monitor import MonitorError, parse_month

    try:
        return str(parse_month(value))
    except MonitorError as err:
        raise typer.BadParameter(f"{err}; e.g. 2010-03") from None


def model_arg(value: str | None) -> str | None:
    """A ``--model`` registry URI is checked for its form here and against the registry when it is loaded."""
    from tiercast.pipeline.jobs.score import ModelNotFoundError, check_model_uri

    if value is not None and value.startswith("models:"):
        try:
            check_model_uri(value)
        except ModelNotFoundError:
            raise typer.BadParameter(
                f"{value!r} is not a registered-model URI; use models:/NAME/VERSION or models:/NAME@ALIAS"
            ) from None
    return value


def out_file(value: Path | None) -> Path | None:
    """An output file path: not an existing folder."""
    if value is not None and value.is_dir():
        raise typer.BadParameter(f"{value} is a folder; give a file path inside it")
    return value


def parquet_out_file(value: Path | None) -> Path | None:
    """An output Parquet file: not an existing folder, and named so (``.parquet`` or ``.pq``) rather than written
    as Parquet under a ``.csv`` name that a spreadsheet then fails to open."""
    out_file(value)
    if value is not None and value.suffix.lower() not in (".parquet", ".pq"):
        raise typer.BadParameter(f"{value}: the file is written as Parquet; give it a .parquet name")
    return value


def run_date_arg(value: str | None) -> str | None:
    """A ``--run-date``: a date YYYY-MM-DD (the whole day is past) or an ISO date and time, as ``data.run_date``."""
    if value is None:
        return None
    import pandas as pd

    try:
        pd.Timestamp(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD, e.g. 2010-12-31") from None
    return value.strip()
