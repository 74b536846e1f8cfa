"""The at-risk list for retention teams: customers of the top tiers ranked by value at risk, and the columns a
team reads. Plain pandas on a scores frame, apart from the scoring (and MLflow) itself, so ``tiercast at-risk``
starts in seconds."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from tiercast.features.contract import (
    ACTION,
    CHANNEL,
    CHURN_BAND,
    CHURN_PROBABILITY,
    CHURN_REASONS,
    CURRENT_TIER,
    CUSTOMER_ID,
    MODEL_NAME,
    MODEL_VERSION,
    PREDICTED_TIER,
    PREDICTED_VALUE,
    SEGMENT,
    SEGMENT_KEY,
    VALUE_AT_RISK,
    VALUE_REASONS,
)

#: The scores' column of the days their predicted values and churn cover: the model's horizon.
HORIZON_DAYS = "horizon_days"


def scores_horizon(scores: pd.DataFrame, *, registry: bool = True) -> int | None:
    """The days the scores' predictions cover: their ``horizon_days`` column, else (scores written without it) the
    horizon of the model version stamped on them when ``registry`` (a store is configured); None when neither can
    be read."""
    if HORIZON_DAYS in scores.columns and len(scores) and scores[HORIZON_DAYS].notna().all():
        return int(scores[HORIZON_DAYS].iloc[0])
    if not registry or not {MODEL_NAME, MODEL_VERSION} <= set(scores.columns) or not len(scores):
        return None
    from tiercast.pipeline.jobs.score import stamped_model_horizon  # MLflow: only for scores without the column

    return stamped_model_horizon(scores)


def at_risk(
    scores: pd.DataFrame,
    *,
    tiers: Sequence[str] | None,
    top: int,
    min_churn: float = 0.0,
    bands: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Customers of the given current tiers and churn bands, ranked by value at risk (ties broken by customer id)."""
    sel = scores
    if tiers:
        sel = sel[sel[CURRENT_TIER].isin(list(tiers))]
    if bands is not None:
        sel = sel[sel[CHURN_BAND].isin(list(bands))]
    sel = sel[sel[CHURN_PROBABILITY] >= min_churn]
    ranked = sel.sort_values([VALUE_AT_RISK, CUSTOMER_ID], ascending=[False, True], kind="mergesort").head(top)
    ranked = ranked.reset_index(drop=True)
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    return ranked


def bands_low_first(scores: pd.DataFrame) -> tuple[str, ...]:
    """The churn bands of ``scores``, the lowest risk first (ordered by their smallest churn probability)."""
    order = scores.groupby(CHURN_BAND, sort=False)[CHURN_PROBABILITY].min().sort_values(kind="mergesort")
    return tuple(str(b) for b in order.index)


def bands_above_lowest(scores: pd.DataFrame) -> tuple[str, ...]:
    """The churn bands of ``scores`` except the lowest."""
    return bands_low_first(scores)[1:]


#: Columns of the scores that are bookkeeping for machines, not for a retention team's list.
INTERNAL_COLUMNS: tuple[str, ...] = (SEGMENT_KEY,)
_MONEY = (PREDICTED_VALUE, VALUE_AT_RISK, "current_value")
_TEAM_ORDER = (
    "rank",
    CUSTOMER_ID,
    CURRENT_TIER,
    PREDICTED_TIER,
    CHURN_BAND,
    CHURN_PROBABILITY,
    PREDICTED_VALUE,
    VALUE_AT_RISK,
    "current_value",
    "currency",
    HORIZON_DAYS,
    SEGMENT,
    ACTION,
    CHANNEL,
    CHURN_REASONS,
    VALUE_REASONS,
)


def team_list(ranked: pd.DataFrame, *, horizon_days: int | None, currency: str | None) -> pd.DataFrame:
    """The at-risk list as a retention team reads it: money in whole currency units, churn as a rounded
    probability, the currency and the horizon the values cover as columns, no internal columns; the registered
    model's name as the last column, so a report can tell the lists of two models apart.

    The horizon is the scores' own (the model's) when they carry it, else ``horizon_days``; a warning when the two
    differ."""
    out = ranked.drop(columns=[c for c in INTERNAL_COLUMNS if c in ranked.columns])
    money = [c for c in _MONEY if c in out.columns]
    out[money] = out[money].astype("float64").round(0)
    if CHURN_PROBABILITY in out.columns:
        out[CHURN_PROBABILITY] = out[CHURN_PROBABILITY].astype("float64").round(3)
    if currency is not None:
        out["currency"] = currency
    if HORIZON_DAYS in out.columns and out[HORIZON_DAYS].notna().all():
        scored = sorted({int(h) for h in out[HORIZON_DAYS]})
        if horizon_days is not None and scored and scored != [int(horizon_days)]:
            warnings.warn(
                f"the scores are the model's {'/'.join(map(str, scored))}-day predictions: the list says horizon_days "
                f"{'/'.join(map(str, scored))}, not the config's {horizon_days}",
                stacklevel=2,
            )
    elif horizon_days is not None:
        out[HORIZON_DAYS] = int(horizon_days)
    first = [c for c in _TEAM_ORDER if c in out.columns]
    last = [MODEL_NAME] if MODEL_NAME in out.columns else []  # last: the other columns keep their positions
    return out[first + [c for c in out.columns if c not in first and c not in last] + last]
