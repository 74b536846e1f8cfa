"""Per-customer predictions of a backtest or benchmark, in one long table, for paired comparisons elsewhere.

One row per customer x test cutoff x method: ``customer_id``, ``cutoff``, ``method``, ``predicted_value`` (net spend
in the horizon), ``churn_probability`` (P(no purchase in the horizon)), ``realized_value`` and ``churned`` (the
labels of ``[cutoff, cutoff + horizon)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from tiercast.features.contract import CHURN_PROBABILITY, CHURNED, CUSTOMER_ID, CUTOFF, FUTURE_VALUE, PREDICTED_VALUE
from tiercast.pipeline.writers.files import write_parquet

__all__ = ["PREDICTION_COLUMNS", "predictions_frame", "write_predictions"]

PREDICTION_COLUMNS: tuple[str, ...] = (
    CUSTOMER_ID,
    CUTOFF,
    "method",
    PREDICTED_VALUE,
    CHURN_PROBABILITY,
    "realized_value",
    CHURNED,
)


def predictions_frame(
    test: pd.DataFrame, preds: Mapping[str, tuple[np.ndarray, np.ndarray]], *, cutoff: pd.Timestamp | str
) -> pd.DataFrame:
    """The long table for one cutoff: ``test`` holds ``customer_id``, ``future_value`` and ``churned`` row-aligned
    with every method's (value, churn) arrays in ``preds``."""
    n = len(test)
    parts = []
    for method, (value, churn) in preds.items():
        value, churn = np.asarray(value, dtype=float), np.asarray(churn, dtype=float)
        if value.shape != (n,) or churn.shape != (n,):
            raise ValueError(f"{method}: predictions for {value.size}/{churn.size} rows, expected {n}")
        parts.append(
            pd.DataFrame(
                {
                    CUSTOMER_ID: test[CUSTOMER_ID].to_numpy(),
                    CUTOFF: pd.Timestamp(cutoff),
                    "method": method,
                    PREDICTED_VALUE: value,
                    CHURN_PROBABILITY: churn,
                    "realized_value": test[FUTURE_VALUE].to_numpy(dtype=float),
                    CHURNED: test[CHURNED].to_numpy(dtype=int),
                }
            )
        )
    if not parts:
        return empty_predictions()
    out = pd.concat(parts, ignore_index=True)
    out[CUTOFF] = out[CUTOFF].astype("datetime64[us]")
    return out[list(PREDICTION_COLUMNS)]


def empty_predictions() -> pd.DataFrame:
    """A predictions table without rows, with the column types of a filled one."""
    return pd.DataFrame(
        {
            CUSTOMER_ID: pd.Series(dtype=object),
            CUTOFF: pd.Series(dtype="datetime64[us]"),
            "method": pd.Series(dtype=object),
            PREDICTED_VALUE: pd.Series(dtype=float),
            CHURN_PROBABILITY: pd.Series(dtype=float),
            "realized_value": pd.Series(dtype=float),
            CHURNED: pd.Series(dtype=int),
        }
    )


def write_predictions(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the predictions table to Parquet atomically (temporary file + rename)."""
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"predictions table lacks columns {missing}")
    return write_parquet(frame[list(PREDICTION_COLUMNS)], path)
