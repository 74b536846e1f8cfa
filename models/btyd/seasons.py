"""Seasonal indices of a cutoff's feature rows: how much last year's window of the next h days bought against the
year's rate, read from transactions before the cutoff only (label-free); and the rows of last year's same window
(:func:`year_ago_rows`: what each customer's history was a year ago and what they then did in the next h days).
Used by :class:`~tiercast.models.btyd.stacker.BTYDStacker` to set the level of the BTYD outputs over a window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiercast.features.contract import YEAR_AGO_COLUMNS, YEAR_AGO_DAYS, spend_column
from tiercast.models.btyd.forecast import DAY_SPEND

#: Bounds of the seasonal index (a window a year ago with a quarter or four times the year's average purchases).
SEASON_CLIP: tuple[float, float] = (0.25, 4.0)


def _orders(X: pd.DataFrame, days: int) -> np.ndarray | None:
    """The ``orders_{days}d`` column (NaN as 0), None when the features lack that window."""
    col = f"orders_{int(days)}d"
    return np.nan_to_num(X[col].to_numpy(dtype=float)) if col in X.columns else None


def order_windows(X: pd.DataFrame) -> list[int]:
    """The window lengths d of X's ``orders_{d}d`` columns, in column order (the horizon whose window a year back
    they close is ``365 - d``)."""
    return [int(c[7:-1]) for c in X.columns if c.startswith("orders_") and c.endswith("d") and c[7:-1].isdigit()]


def _season_all(X: pd.DataFrame) -> dict[int, float]:
    """``"all"``: the purchases of every customer present a whole year in ``[cutoff - 365, cutoff - 365 + h)``
    (``orders_365d - orders_{365-h}d``) over their average h-day share of that year. Customers who drop out during
    the year buy early and not late, so with no season this reads above 1 (1.15 on a synthetic world of yearly
    cohorts)."""
    if "tenure_days" not in X.columns or "orders_365d" not in X.columns:
        return {}
    year_old = X["tenure_days"].to_numpy(dtype=float) >= 365
    if year_old.sum() == 0:
        return {}
    year = float(np.nansum(X["orders_365d"].to_numpy(dtype=float)[year_old]))
    out: dict[int, float] = {}
    for d in order_windows(X):
        h = 365 - d
        if 0 < h < 365 and year > 0:
            window = year - float(np.nansum(X[f"orders_{d}d"].to_numpy(dtype=float)[year_old]))
            out[h] = float(np.clip(window / (year * h / 365.0), *SEASON_CLIP))
    return out


def _season_alive(X: pd.DataFrame) -> dict[int, float]:
    """``"alive"``: by horizon length h < 365 / 2, last year's window of the next h days, ``[cutoff - 365, cutoff -
    365 + h)``, against the rate over ``[cutoff - 365, cutoff - h)``, both counted on the customers certainly alive
    all that time. A horizon is left out (index 1) when a window it needs is not a feature or no customer qualifies.

    Customers qualify with a year of history (``tenure_days >= 365``) and a purchase in the last h days
    (``orders_{h}d > 0``): in a buy-till-you-die world a customer who buys at ``cutoff - h`` or later was alive the
    whole year before. Over the year, dropouts buy early and not late, so counting every customer reads the year's
    start as a peak; customers alive throughout buy at their own steady rate in both windows, so with no season
    the index is 1 whatever the spread of rates, and with one it is the window's rate relative to the year's. The
    conditioning window ``[cutoff - h, cutoff)`` holds at least one purchase by selection, so it is left out of the
    reference: index = ``(orders_365d - orders_{365-h}d) / ((orders_365d - orders_{h}d) * h / (365 - h))``,
    summed over the qualifying customers (a ratio of totals). From h = 365 / 2 on, the conditioning window would
    overlap last year's window, so longer horizons get no index."""
    if "tenure_days" not in X.columns:
        return {}
    year = _orders(X, 365)
    if year is None:
        return {}
    year_old = np.nan_to_num(X["tenure_days"].to_numpy(dtype=float)) >= 365
    out: dict[int, float] = {}
    for d in order_windows(X):
        h = 365 - d
        recent = _orders(X, h)
        if not 0 < 2 * h < 365 or recent is None:
            continue
        alive = year_old & (recent > 0)
        window = float((year - _orders(X, 365 - h))[alive].sum())
        reference = float((year - recent)[alive].sum())
        if reference > 0:
            out[h] = float(np.clip(window / (reference * h / (365.0 - h)), *SEASON_CLIP))
    return out


#: Ways of reading a seasonal index (:func:`season_indices`); ``"last_year"`` sets the level from last year's same
#: window (:func:`year_ago_rows`) and reads the ``"year"`` index where that window is not in the features.
SEASON_METHODS: tuple[str, ...] = ("all", "alive", "year", "last_year")


def year_ago_rows(X: pd.DataFrame, horizon_days: float) -> tuple[pd.DataFrame, np.ndarray, np.ndarray] | None:
    """Last year's same window of a cutoff's feature rows: for the customers with a transaction before ``cutoff -
    365 days``, their BTYD summary then (the :data:`~tiercast.features.contract.YEAR_AGO_COLUMNS` as
    ``repeat_purchase_days``, ``first_to_last_days``, ``repeat_spend_mean``, ``day_spend_mean`` and ``tenure_days -
    365``), their net
    spend in ``[cutoff - 365, cutoff - 365 + h)`` and 1.0 where they bought nothing in it. Transactions before the
    cutoff only, so no label of the cutoff is read.

    None when the features lack that window (no 365-day window, a horizon of half a year or more), no customer
    has a transaction a year back, or the history a year back is shorter than the horizon: a BTYD model read on a
    few days of history says nothing about its error in later seasons."""
    h = int(round(float(horizon_days)))
    if not 0 < 2 * h < YEAR_AGO_DAYS:
        return None
    back = YEAR_AGO_DAYS - h
    needed = [*YEAR_AGO_COLUMNS, "tenure_days", spend_column(YEAR_AGO_DAYS), spend_column(back)]
    if any(c not in X.columns for c in [*needed, f"orders_{YEAR_AGO_DAYS}d", f"orders_{back}d"]):
        return None
    tenure = X["tenure_days"].to_numpy(dtype=float)
    rows = X.loc[X[YEAR_AGO_COLUMNS[0]].notna().to_numpy() & (tenure > YEAR_AGO_DAYS)]
    if len(rows) == 0 or float(np.nanmax(tenure)) - YEAR_AGO_DAYS < h:
        return None
    repeat, span, spend, day_spend = YEAR_AGO_COLUMNS
    inputs = pd.DataFrame(
        {
            "repeat_purchase_days": rows[repeat].to_numpy(dtype=float),
            "first_to_last_days": rows[span].to_numpy(dtype=float),
            "tenure_days": rows["tenure_days"].to_numpy(dtype=float) - YEAR_AGO_DAYS,
            "repeat_spend_mean": rows[spend].to_numpy(dtype=float),
            DAY_SPEND: rows[day_spend].to_numpy(dtype=float),
        },
        index=rows.index,
    )
    col = lambda name: np.nan_to_num(rows[name].to_numpy(dtype=float))  # noqa: E731
    value = col(spend_column(YEAR_AGO_DAYS)) - col(spend_column(back))
    bought = col(f"orders_{YEAR_AGO_DAYS}d") - col(f"orders_{back}d")
    return inputs, value, (bought <= 0).astype(float)


def year_spanned(groups: np.ndarray, horizon_days: float) -> bool:
    """Whether the label windows ``[cutoff, cutoff + horizon)`` of these cutoffs (timestamps) cover a whole year."""
    cuts = pd.to_datetime(pd.unique(pd.Series(np.asarray(groups))))
    return len(cuts) > 1 and (cuts.max() - cuts.min()).days + float(horizon_days) >= 365


def season_scale(X: pd.DataFrame, groups: np.ndarray, method: str | None) -> dict[int, float]:
    """For ``method="year"``: by horizon h, the mean over the cutoff groups of X of their ``"all"`` index, when the
    groups' h-day windows cover a whole year (else no entry: the index is not scaled).

    Over a year of windows the seasons average out, so this mean is what the ``"all"`` index reads without a
    season: the dropout bias (customers who leave during the year bought early in it). Dividing by it leaves the
    season. Label-free: only the feature rows of the training cutoffs."""
    if method not in ("year", "last_year") or not np.issubdtype(np.asarray(groups).dtype, np.datetime64):
        return {}
    per_group = [_season_all(X.loc[np.asarray(groups) == g]) for g in pd.unique(pd.Series(groups))]
    horizons = set.intersection(*(set(d) for d in per_group)) if per_group else set()
    return {h: float(np.mean([d[h] for d in per_group])) for h in sorted(horizons) if year_spanned(groups, h)}


def season_indices(X: pd.DataFrame, method: str = "all") -> dict[int, float]:
    """Seasonal indices of one cutoff's feature rows, by horizon length h: how much last year's window of the next
    h days bought against the year's rate. 1 = no season; empty when no customer's history reaches a year back (or
    the 365-day window is not a feature). Label-free: only transactions before the cutoff. ``method``:

    * ``"all"``: every customer with a year of history (:func:`_season_all`); biased upward by dropouts;
    * ``"alive"``: only customers certainly alive through the year, against their rate over the rest of it
      (:func:`_season_alive`); about 1 with no season whatever the dropouts and the spread of rates;
    * ``"year"``: the ``"all"`` index, which a stacker divides by its mean over a year of training cutoffs
      (:func:`season_scale`), and leaves out (index 1) where the training cutoffs do not cover a year.
    """
    if method in ("all", "year", "last_year"):
        return _season_all(X)
    if method == "alive":
        return _season_alive(X)
    raise ValueError(f"season index method must be one of {SEASON_METHODS}, got {method!r}")


def season_method(seasonal: bool | str) -> str | None:
    """The :func:`season_indices` method of a ``seasonal`` setting: True = ``"all"``, False = None (no index)."""
    if seasonal is True:
        return "all"
    if seasonal is False or seasonal is None:
        return None
    if seasonal not in SEASON_METHODS:
        raise ValueError(f"seasonal must be a bool or one of {SEASON_METHODS}, got {seasonal!r}")
    return str(seasonal)


def scaled_indices(X: pd.DataFrame, method: str | None, scale: dict[int, float] | None) -> dict[int, float]:
    """The seasonal indices of X by ``method``, each divided by ``scale``'s value for its horizon (if any). With
    ``"year"`` a horizon without a scale gets no index: its raw value would read the dropouts as a season."""
    raw = season_indices(X, method) if method else {}
    scale = scale or {}
    if method in ("year", "last_year"):
        raw = {h: v for h, v in raw.items() if h in scale}
    return {h: float(np.clip(v / scale[h], *SEASON_CLIP)) if h in scale else v for h, v in raw.items()}
