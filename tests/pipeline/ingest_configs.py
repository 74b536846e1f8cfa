"""The small transaction configs the ingestion tests read hand-made files with: three mapped columns, every row
judged (no quarantine-share limit) against a fixed run date."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tiercast.pipeline.config import Config

COLUMNS = {"customer_id": "customer", "timestamp": "ts", "amount": "amount"}
RUN = pd.Timestamp("2030-01-01 23:59:59.999999")


def config(tmp_path: Path, path: Path, columns: dict[str, str] = COLUMNS, **source) -> Config:
    """A config reading ``path`` with ``columns`` and the ``source`` settings, its quarantine under ``tmp_path``."""
    return Config.model_validate(
        {
            "data": {
                "transactions": {"path": str(path), "columns": columns, **source},
                "quarantine_path": str(tmp_path / "quarantine.parquet"),
                "max_quarantine_share": 1.0,
                "run_date": "2030-01-01",
            }
        }
    )
