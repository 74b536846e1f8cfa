"""Console rendering of result tables (rich)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from tiercast.pipeline.terminal import print_table

if TYPE_CHECKING:
    pass
from tiercast.pipeline.cli.base import console


def _cell(v: object) -> str:
    if isinstance(v, float):
        return "-" if v != v else f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def show_frame(frame: pd.DataFrame, title: str, index: bool = False) -> None:
    from rich.table import Table

    frame = frame.reset_index() if index else frame
    table = Table(title=title)
    for col in frame.columns:
        table.add_column(str(col), justify="right" if pd.api.types.is_numeric_dtype(frame[col]) else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    print_table(console, table)


def _monitor_cell(value: object, kind: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "pct":
        return f"{float(value):.1%}"
    if kind == "money":
        return f"{float(value):,.0f}"
    return str(value)


_DISPLAY = (
    ("month", "month", "str"),
    ("tier", "tier", "str"),
    ("customers", "customers", "int"),
    ("retention_rate", "retention", "pct"),
    ("orders", "orders", "int"),
    ("revenue", "revenue", "money"),
    ("revenue_share", "share", "pct"),
    ("avg_ticket", "avg ticket", "money"),
    ("predicted_value", "pred. value", "money"),
    ("realized_value", "real. value", "money"),
    ("predicted_churn", "pred. churn", "pct"),
    ("realized_churn", "real. churn", "pct"),
)


def print_monitor(console: Console, frame: pd.DataFrame) -> None:
    """The monitor frame as a rich table (prediction columns only when there are predictions), then the notes."""
    shown = [d for d in _DISPLAY if not (d[0].startswith("predicted") and frame[d[0]].isna().all())]
    table = Table(title=f"Tiers per month — scheme {frame.attrs.get('tier_scheme', '?')}")
    for _, header, kind in shown:
        table.add_column(header, justify="left" if kind == "str" else "right")
    for i, rec in enumerate(frame.to_dict("records")):
        last_of_month = i + 1 == len(frame) or frame["month"].iat[i + 1] != rec["month"]
        table.add_row(*(_monitor_cell(rec[col], kind) for col, _, kind in shown), end_section=last_of_month)
    print_table(console, table)
    for note in frame.attrs.get("notes", ()):
        console.print(f"note: {note}", highlight=False)
