"""Typed, frozen results of the jobs, each with ``to_json()``: what a command prints or writes is read from named
fields, not from string keys."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import numpy as np
import pandas as pd


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON values: dataclasses and dicts as objects, frames as lists of records (the index
    kept when it is not a plain range), dates as ISO text, non-finite floats as None."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, pd.DataFrame):
        frame = value if isinstance(value.index, pd.RangeIndex) else value.reset_index()
        return [jsonable(row) for row in frame.to_dict("records")]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        return [jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class SchemeFit:
    """The configured tier scheme fitted at the latest validation cutoff: k, the silhouette of each k tried, and
    per tier its name, lowest value, share and revenue share of the fitted population."""

    k: int
    silhouette_by_k: dict[int, float]
    tiers: list[dict[str, Any]]


@dataclass(frozen=True)
class TierStudy:
    """What ``tiercast tiers`` reports (:func:`tiercast.pipeline.jobs.tier_study.tier_study`).

    * ``test_cutoffs``, ``validation_cutoff`` (of the latest test cutoff), ``horizon_days``; ``scheme``;
    * ``tiers``: per-tier summary at the latest test cutoff (current tiers: customers, share, revenue, revenue
      share, value range, average ticket over ``[T - horizon, T)``, retention = bought in ``[T, T + horizon)``);
    * ``tier_metrics``: per test cutoff and method (both predicted mappings, persistence): accuracy, macro-F1,
      quadratic kappa of the tier against the realized tier;
    * ``tier_differences``: per test cutoff and metric, the proposed mapping minus persistence with a 95% paired
      bootstrap interval over customers;
    * ``migration_counts`` / ``migration_revenue``: current -> predicted tier at the latest test cutoff
      (customers; predicted value);
    * ``bootstrap``: per replicate ARI, k and boundary drift; ``consecutive``: per pair of consecutive cutoffs;
    * ``schemes``: the comparison of the alternative schemes (k, shares and revenue shares at the latest test
      cutoff, persistence and predicted accuracy / macro-F1 / kappa averaged over the test cutoffs, mean bootstrap
      and consecutive ARI); ``scheme_metrics``: the metrics per test cutoff;
    * ``segments``: behavioral segment profiles at the latest test cutoff; ``segment_tiers``: segment x tier counts.
    """

    horizon_days: int
    test_cutoffs: tuple[dt.date, ...]
    validation_cutoff: dt.date
    scheme: SchemeFit
    tiers: pd.DataFrame
    tier_metrics: pd.DataFrame
    tier_differences: pd.DataFrame
    migration_counts: pd.DataFrame
    migration_revenue: pd.DataFrame
    bootstrap: pd.DataFrame
    consecutive: pd.DataFrame
    schemes: pd.DataFrame
    scheme_metrics: pd.DataFrame
    segments: pd.DataFrame
    segment_tiers: pd.DataFrame

    def to_json(self) -> str:
        return json.dumps(jsonable(self), indent=2, allow_nan=False)


@dataclass(frozen=True)
class MonitorRun:
    """What ``tiercast monitor`` says beside its frame (:func:`tiercast.pipeline.jobs.monitor.run_monitor`): where
    the tier scheme came from (a registered model, or refitted on the first month), the label horizon of the
    realized columns, and the caveats printed under the table."""

    tier_scheme: str
    horizon_days: int
    notes: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(jsonable(self), indent=2, allow_nan=False)
