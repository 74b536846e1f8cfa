"""The CDNOW data set for the benchmark: the file read under the row rules, the standard split (39-week calibration,
39-week holdout) and its rehearsal inside the calibration period, and the labelled rows of a cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tiercast.features.build import build_features
from tiercast.features.contract import (
    AMOUNT,
    CHURNED,
    CUSTOMER_ID,
    CUTOFF,
    FUTURE_ORDERS,
    FUTURE_VALUE,
    LABEL_DAYS,
    QUANTITY,
    TIMESTAMP,
)
from tiercast.features.labels import build_labels
from tiercast.pipeline.ingest.sources import DataConfig
from tiercast.pipeline.ingest.transactions import read_transactions

DEFAULT_PATH = Path("data/cdnow/CDNOW_master.txt")


CALIBRATION_START = pd.Timestamp("1997-01-01")


CALIBRATION_END = pd.Timestamp("1997-10-01")  # exclusive: the calibration period ends 1997-09-30


HOLDOUT_END = pd.Timestamp("1998-07-01")  # exclusive: the holdout ends 1998-06-30


HORIZON_DAYS = (HOLDOUT_END - CALIBRATION_END).days  # 273 = 39 weeks


VALIDATION_CUTOFF = pd.Timestamp("1997-07-01")


FIRST_TRAIN_CUTOFF = pd.Timestamp("1997-04-01")


MIN_LABEL_DAYS = 30


@dataclass(frozen=True)
class Split:
    """A calibration / holdout split of the CDNOW cohort and tiercast's cutoffs inside the calibration period.

    ``calibration_end`` and ``holdout_end`` are exclusive. Training cutoffs fall on the 1st and 15th of each month
    from ``first_train_cutoff`` to the last one with a ``min_label_days`` window before ``calibration_end``;
    settings are chosen on ``validation_cutoff``.
    """

    name: str
    calibration_end: pd.Timestamp
    holdout_end: pd.Timestamp
    validation_cutoff: pd.Timestamp
    first_train_cutoff: pd.Timestamp = FIRST_TRAIN_CUTOFF
    min_label_days: int = MIN_LABEL_DAYS

    def __post_init__(self) -> None:
        if not CALIBRATION_START < self.first_train_cutoff < self.calibration_end < self.holdout_end:
            raise ValueError(f"split {self.name!r}: dates must run calibration start < first training cutoff < "
                             "calibration end < holdout end")  # fmt: skip
        if self.validation_cutoff not in self.training_cutoffs() or self.validation_cutoff == self.first_train_cutoff:
            raise ValueError(f"split {self.name!r}: the validation cutoff must be a training cutoff after the first")

    @property
    def horizon_days(self) -> int:
        return (self.holdout_end - self.calibration_end).days

    def training_cutoffs(self) -> list[pd.Timestamp]:
        last = self.calibration_end - pd.Timedelta(days=self.min_label_days)
        return list(pd.date_range(self.first_train_cutoff, last, freq="SMS"))


#: The published split: 39-week calibration to 1997-09-30, 39-week holdout to 1998-06-30.
STANDARD = Split("standard", CALIBRATION_END, HOLDOUT_END, VALIDATION_CUTOFF)


#: The protocol inside the standard calibration period (calibration to 1997-06-30, holdout 1997-07-01 ..
#: 1997-09-30, settings on 1997-05-15), where design alternatives are judged without reading the standard holdout.
#: It is compressed, not shifted: a 92-day horizon (273 on the standard split), training labels of 30 to 91 days
#: (30 to 183) and a 47-day validation window (92). Ranking and feature changes are judged well here; the
#: carrying of short label windows to a much longer horizon (the BTYD offset, the churn calibration's form) is
#: barely exercised, since the longest training label is about as long as the horizon.
REHEARSAL = Split("rehearsal", pd.Timestamp("1997-07-01"), CALIBRATION_END, pd.Timestamp("1997-05-15"))


SPLITS = {s.name: s for s in (STANDARD, REHEARSAL)}


def cdnow_data_config(path: str | Path = DEFAULT_PATH) -> DataConfig:
    """The ``data:`` section of ``configs/cdnow.yaml`` for a CDNOW_master.txt at ``path``."""
    return DataConfig.model_validate(
        {
            "transactions": {
                "path": str(path),
                "format": "csv",
                "delimiter": "whitespace",
                "columns": {
                    CUSTOMER_ID: CUSTOMER_ID,
                    TIMESTAMP: "date",
                    AMOUNT: "dollar_value",
                    QUANTITY: "number_of_cds",
                },
                "timestamp_format": "%Y%m%d",
                "duplicates": "keep",
                "zero_amounts": "keep",
            },
            "max_quarantine_share": 0.01,
        }
    )


def read_cdnow(path: str | Path = DEFAULT_PATH) -> pd.DataFrame:
    """The CDNOW transactions as the canonical frame (69,659 lines, 23,570 customers)."""
    return read_transactions(cdnow_data_config(path)).accepted


def labelled_rows(
    tx: pd.DataFrame,
    cutoff: pd.Timestamp,
    label_end: pd.Timestamp,
    windows: tuple[int, ...],
    horizon_days: int = HORIZON_DAYS,
    *,
    features: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Features at ``cutoff`` (transactions before it) with labels of ``[cutoff, label_end)``; ``label_days``.

    ``features``: :func:`build_features` of ``tx`` at ``cutoff`` when the caller has them (a cutoff labelled up to
    several ends, as the benchmark's folds do, needs its features once)."""
    days = (label_end - cutoff).days
    feats = (
        build_features(tx, cutoff=cutoff, windows_days=windows, horizon_days=horizon_days)
        if features is None
        else features
    )
    labels = build_labels(tx[tx[TIMESTAMP] < label_end], cutoff=cutoff, horizon_days=days)
    out = feats.merge(labels, on=CUSTOMER_ID, how="left")
    out = out.fillna({FUTURE_VALUE: 0.0, FUTURE_ORDERS: 0.0, CHURNED: 1.0})
    out.insert(1, CUTOFF, pd.Series(cutoff, index=out.index, dtype="datetime64[us]"))
    out[LABEL_DAYS] = float(days)
    return out


def validation_cutoffs(split: Split, n: int) -> list[pd.Timestamp]:
    """The split's validation cutoff and up to ``n - 1`` training cutoffs before it, each leaving an earlier
    training cutoff with a label window of at least ``min_label_days`` ending by it."""
    cuts = [c for c in split.training_cutoffs() if c <= split.validation_cutoff]
    first = split.first_train_cutoff + pd.Timedelta(days=split.min_label_days)
    return [c for c in cuts if c >= first][-n:]


def training_cutoffs() -> list[pd.Timestamp]:
    """1st and 15th of each month from 1997-04-01 to the last cutoff with a 30-day window before 1997-10-01."""
    return STANDARD.training_cutoffs()
