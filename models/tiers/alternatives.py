"""Alternative tier schemes, in the interface of :class:`~tiercast.models.tiers.scheme.TierScheme`, for comparison.

Every scheme has ``fit(value, ...)``, ``assign(value, ...)`` / ``assign_codes`` (0 = best), ``names_`` (best first),
``shares_`` and ``describe()``; schemes that need more than one value per customer take it as keyword arrays,
row-aligned with ``value``. Value <= 0 always lands in the lowest tier.

* :class:`ABCScheme` — ABC / Pareto analysis: A is the smallest top group of customers holding 80% of revenue,
  B extends it to 95%, C is the rest (shares configurable).
* :class:`QuantileScheme` — fixed rank cuts: top 1%, 5%, 10%, 25%, 50% and the rest.
* :class:`ScoreBandScheme` — the RFM scheme: recency, frequency and monetary quintile scores (1-5 each), tiers by
  bands of their sum.
* :class:`LoyaltyScheme` — a status programme: points per unit of spend in each period, an upgrade as soon as a
  period's points reach a higher threshold, a downgrade only after ``grace_periods`` consecutive periods below.

The value-threshold schemes (ABC, quantile) share :class:`~tiercast.models.tiers.scheme.ValueTiers`, so predicted tiers
use the same rank mapping as the main scheme (``fit_predictions`` / ``assign_predicted``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from tiercast.features.contract import TIER
from tiercast.models.tiers.scheme import ValueTiers, as_values

PYRAMID = ("platinum", "gold", "iron", "lead")
_EPS = 1e-12


def _floor_positive(boundaries: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boundaries no lower than the smallest positive value, so value <= 0 always falls in the lowest tier."""
    pos = v[v > 0]
    if pos.size == 0:
        raise ValueError("a tier scheme needs at least one positive value")
    return np.maximum(boundaries, pos.min())


class ABCScheme(ValueTiers):
    """ABC analysis by cumulative revenue share.

    Customers are ranked by value; tier j is the smallest top group that, with the tiers above it, reaches the
    cumulative revenue share ``sum(revenue_shares[:j + 1])`` (the customer crossing a target is inside). Boundaries
    are the values of the last customer of each group, and customers tied with a boundary join the upper tier.
    """

    def __init__(self, names: Sequence[str] = ("A", "B", "C"), revenue_shares: Sequence[float] = (0.80, 0.15, 0.05)):
        self.names = names
        self.revenue_shares = revenue_shares

    def fit(self, value: ArrayLike) -> ABCScheme:
        v = as_values(value)
        shares = np.asarray(self.revenue_shares, dtype=float)
        if len(shares) != len(self.names) or len(shares) < 2:
            raise ValueError(f"{len(shares)} revenue shares for {len(self.names)} names; need one per tier, >= 2")
        if (shares <= 0).any() or abs(shares.sum() - 1.0) > 1e-9:
            raise ValueError(f"revenue shares must be positive and sum to 1, got {shares.tolist()}")
        pos = np.sort(v[v > 0])[::-1]
        if pos.size == 0:
            raise ValueError("ABC tiers need at least one positive value")
        cum = np.cumsum(pos) / pos.sum()
        idx = np.searchsorted(cum, np.cumsum(shares)[:-1] - _EPS, side="left")
        self.boundaries_ = pos[np.minimum(idx, pos.size - 1)]
        self.names_ = tuple(self.names)
        self.k_ = len(self.names_)
        self.shares_ = self._shares(v, self.boundaries_)
        self._set_revenue_shares(v)
        return self


class QuantileScheme(ValueTiers):
    """Fixed rank cuts: tier j holds the customers in the top ``top[j]`` but not the top ``top[j - 1]``; the last
    tier holds the rest. The boundary of a top share t is the value of the ``ceil(t * n)``-th best customer of the
    fitted population (ties join the upper tier)."""

    def __init__(self, top: Sequence[float] = (0.01, 0.05, 0.10, 0.25, 0.50), names: Sequence[str] | None = None):
        self.top = top
        self.names = names

    def fit(self, value: ArrayLike) -> QuantileScheme:
        v = as_values(value)
        top = np.asarray(self.top, dtype=float)
        if top.size == 0 or (np.diff(top) <= 0).any() or top[0] <= 0 or top[-1] >= 1:
            raise ValueError(f"top shares must increase strictly within (0, 1), got {top.tolist()}")
        names = tuple(self.names) if self.names is not None else (*(f"top {100 * t:g}%" for t in top), "rest")
        if len(names) != top.size + 1:
            raise ValueError(f"{len(names)} names for {top.size + 1} tiers")
        desc = np.sort(v)[::-1]
        last = np.clip(np.ceil(top * v.size - 1e-9).astype(np.int64) - 1, 0, v.size - 1)  # last customer of each top
        self.boundaries_ = _floor_positive(desc[last], v)
        self.names_ = names
        self.k_ = len(names)
        self.shares_ = self._shares(v, self.boundaries_)
        self._set_revenue_shares(v)
        return self


class ScoreBandScheme(BaseEstimator):
    """Tiers by bands of the total RFM score ("RFM quintiles" in the tier study): quintile scores of recency,
    frequency and monetary value, summed.

    Each of recency (lower is better), frequency and monetary value gets a score 1..``n_bins`` from quantile edges
    of the fitted population; a value tied with an edge gets the lower score (so a mass of customers with one order
    or no spend scores 1), value <= 0 gets monetary score 1, unknown recency (NaN) gets recency score 1. The total
    (``3..3 * n_bins``) maps to tiers by ``min_scores`` (descending lower bounds of all tiers but the last); by
    default the score range is cut into equal widths, one per name. The tier never drops when value or frequency
    rises or recency falls, the others held fixed.
    """

    def __init__(self, names: Sequence[str] = PYRAMID, n_bins: int = 5, min_scores: Sequence[int] | None = None):
        self.names = names
        self.n_bins = n_bins
        self.min_scores = min_scores

    def fit(self, value: ArrayLike, *, recency: ArrayLike, frequency: ArrayLike) -> ScoreBandScheme:
        v, r, f = self._inputs(value, recency, frequency)
        q = np.arange(1, self.n_bins) / self.n_bins
        self.edges_ = {
            "recency": np.nanquantile(r, q) if np.isfinite(r).any() else np.zeros(q.size),
            "frequency": np.quantile(f, q),
            "monetary": np.quantile(v, q),
        }
        k, lo, hi = len(self.names), 3, 3 * self.n_bins
        if self.min_scores is None:
            bounds = np.ceil(lo + (hi - lo + 1) * np.arange(k - 1, 0, -1) / k)
        else:
            bounds = np.asarray(self.min_scores, dtype=float)
        if bounds.size != k - 1 or (np.diff(bounds) >= 0).any():
            raise ValueError(f"min_scores: {k - 1} strictly descending scores for {k} tiers, got {bounds.tolist()}")
        self.min_scores_ = bounds
        self.names_ = tuple(self.names)
        self.k_ = k
        codes = self.assign_codes(v, recency=r, frequency=f)
        self.shares_ = np.bincount(codes, minlength=k) / max(v.size, 1)
        rev = np.bincount(codes, weights=np.clip(v, 0, None), minlength=k)
        self.revenue_shares_ = rev / rev.sum() if rev.sum() > 0 else rev
        return self

    def _inputs(self, value: ArrayLike, recency: ArrayLike, frequency: ArrayLike) -> tuple[np.ndarray, ...]:
        if self.n_bins < 2 or len(self.names) < 2:
            raise ValueError("RFM tiers need n_bins >= 2 and at least two names")
        v = as_values(value)
        r = np.asarray(recency, dtype=float).ravel()
        f = np.nan_to_num(np.asarray(frequency, dtype=float).ravel(), nan=0.0)
        if not r.size == f.size == v.size:
            raise ValueError("value, recency and frequency must have the same length")
        return v, r, f

    def scores(self, value: ArrayLike, *, recency: ArrayLike, frequency: ArrayLike) -> pd.DataFrame:
        """R, F, M scores (1 = worst) and their total, one row per customer."""
        check_is_fitted(self, "edges_")
        v, r, f = self._inputs(value, recency, frequency)
        e = self.edges_
        r_score = self.n_bins - np.searchsorted(e["recency"], np.where(np.isnan(r), np.inf, r), side="right")
        f_score = 1 + np.searchsorted(e["frequency"], f, side="left")
        m_score = np.where(v > 0, 1 + np.searchsorted(e["monetary"], v, side="left"), 1)
        return pd.DataFrame({"r": r_score, "f": f_score, "m": m_score, "total": r_score + f_score + m_score})

    def assign_codes(self, value: ArrayLike, *, recency: ArrayLike, frequency: ArrayLike) -> np.ndarray:
        total = self.scores(value, recency=recency, frequency=frequency)["total"].to_numpy(dtype=float)
        return np.searchsorted(-self.min_scores_, -total, side="left").astype(np.int64)

    def assign(self, value: ArrayLike, *, recency: ArrayLike, frequency: ArrayLike) -> np.ndarray:
        return np.asarray(self.names_, dtype=object)[self.assign_codes(value, recency=recency, frequency=frequency)]

    def describe(self) -> list[dict[str, object]]:
        check_is_fitted(self, "min_scores_")
        lows = [*self.min_scores_.tolist(), 3.0]
        return [
            {TIER: n, "min_score": int(lo), "share": float(s), "revenue_share": float(rs)}
            for n, lo, s, rs in zip(self.names_, lows, self.shares_, self.revenue_shares_, strict=True)
        ]


class LoyaltyScheme(BaseEstimator):
    """A status programme run over consecutive periods (e.g. horizon-length windows), as loyalty programmes run.

    Each period a customer earns ``points_per_unit`` points per unit of net spend; the points *earn* the tier of the
    highest ``thresholds`` entry they reach (descending points for tiers 0..k-2). The status starts at the first
    period's earned tier; it is upgraded as soon as a period earns a higher tier, and downgraded only after more
    than ``grace_periods`` consecutive periods below it — to the earned tier, or one level down with
    ``soft_landing``. Thresholds default to points quantiles giving the top ``top_shares`` of the fitted period.

    ``assign(value, history=...)`` gives the status after the period of ``value`` following the earlier periods in
    ``history`` (shape (n, m), oldest first); without history it is the earned tier. More spend in the latest
    period never lowers the status; more spend earlier can (a higher status must be re-qualified for, like in real
    programmes), so schemes are compared on the same histories.
    """

    def __init__(
        self,
        names: Sequence[str] = PYRAMID,
        points_per_unit: float = 1.0,
        thresholds: Sequence[float] | None = None,
        top_shares: Sequence[float] = (0.05, 0.25, 0.50),
        grace_periods: int = 1,
        soft_landing: bool = False,
    ) -> None:
        self.names = names
        self.points_per_unit = points_per_unit
        self.thresholds = thresholds
        self.top_shares = top_shares
        self.grace_periods = grace_periods
        self.soft_landing = soft_landing

    def fit(self, value: ArrayLike, history: ArrayLike | None = None) -> LoyaltyScheme:
        """Set the thresholds (given, or from the points of ``value``) and the status shares of the population."""
        v = as_values(value)
        k = len(self.names)
        if self.points_per_unit <= 0 or self.grace_periods < 0:
            raise ValueError("points_per_unit must be positive and grace_periods >= 0")
        if self.thresholds is not None:
            thr = np.asarray(self.thresholds, dtype=float)
        else:
            top = np.asarray(self.top_shares, dtype=float)
            if top.size != k - 1:
                raise ValueError(f"{top.size} top_shares for {k} tiers; need {k - 1}")
            thr = _floor_positive(np.quantile(v, 1.0 - top, method="inverted_cdf"), v) * self.points_per_unit
        if thr.size != k - 1 or (np.diff(thr) > 0).any() or (thr <= 0).any():
            raise ValueError(f"thresholds: {k - 1} positive, descending points for {k} tiers, got {thr.tolist()}")
        self.thresholds_ = thr
        self.boundaries_ = thr / self.points_per_unit
        self.names_ = tuple(self.names)
        self.k_ = k
        earned = self.earned_codes(v)
        self.earned_shares_ = np.bincount(earned, minlength=k) / max(v.size, 1)
        codes = self.assign_codes(v, history=history)
        self.shares_ = np.bincount(codes, minlength=k) / max(v.size, 1)
        rev = np.bincount(codes, weights=np.clip(v, 0, None), minlength=k)
        self.revenue_shares_ = rev / rev.sum() if rev.sum() > 0 else rev
        return self

    def earned_codes(self, value: ArrayLike) -> np.ndarray:
        """The tier each period's spend earns on its own (0 = best)."""
        check_is_fitted(self, "thresholds_")
        points = np.asarray(value, dtype=float) * self.points_per_unit
        return np.searchsorted(-self.thresholds_, -np.nan_to_num(points, nan=0.0), side="left").astype(np.int64)

    def run_codes(self, earned: np.ndarray) -> np.ndarray:
        """Status after each period from earned tiers (shape (n, m), oldest first); vectorised over customers."""
        earned = np.atleast_2d(np.asarray(earned, dtype=np.int64))
        status = np.empty_like(earned)
        current, below = earned[:, 0].copy(), np.zeros(len(earned), dtype=np.int64)
        status[:, 0] = current
        for j in range(1, earned.shape[1]):
            e = earned[:, j]
            ok = e <= current  # earned the status or better
            below = np.where(ok, 0, below + 1)
            drop = below > self.grace_periods
            target = np.minimum(current + 1, e) if self.soft_landing else e
            current = np.where(ok, e, np.where(drop, target, current))
            below = np.where(drop, 0, below)
            status[:, j] = current
        return status

    def run(self, periods: ArrayLike) -> np.ndarray:
        """Status codes after each period of spend (shape (n, m), oldest first)."""
        return self.run_codes(self.earned_codes(np.atleast_2d(np.asarray(periods, dtype=float))))

    def _history_codes(self, history: ArrayLike | None, n: int) -> np.ndarray:
        if history is None:
            return np.empty((n, 0), dtype=np.int64)
        h = np.asarray(history, dtype=float)
        h = h.reshape(-1, 1) if h.ndim == 1 else h
        if h.shape[0] != n:
            raise ValueError(f"history has {h.shape[0]} rows for {n} values")
        return self.earned_codes(h)

    def assign_codes(self, value: ArrayLike, history: ArrayLike | None = None) -> np.ndarray:
        """Status (0 = best) after the period of ``value``, following ``history``."""
        v = as_values(value)
        earned = np.column_stack([self._history_codes(history, v.size), self.earned_codes(v)])
        return self.run_codes(earned)[:, -1]

    def assign(self, value: ArrayLike, history: ArrayLike | None = None) -> np.ndarray:
        return np.asarray(self.names_, dtype=object)[self.assign_codes(value, history=history)]

    def fit_predictions(self, prediction: ArrayLike, realized: ArrayLike | None = None) -> LoyaltyScheme:
        """Rank-map predicted period spend to earned tiers in the fitted period's earned shares, or in the earned
        shares of ``realized`` period spend (see :meth:`~tiercast.models.tiers.scheme.ValueTiers.fit_predictions`)."""
        check_is_fitted(self, "earned_shares_")
        shares = self.earned_shares_
        if realized is not None:
            r = as_values(realized)
            shares = np.bincount(self.earned_codes(r), minlength=self.k_) / max(r.size, 1)
        upper = np.clip(np.cumsum(shares)[:-1], 0.0, 1.0)
        self.prediction_boundaries_ = np.quantile(as_values(prediction), 1.0 - upper, method="inverted_cdf")
        return self

    def assign_predicted_codes(self, prediction: ArrayLike, history: ArrayLike | None = None) -> np.ndarray:
        """Status after a period earning the rank-mapped tier of ``prediction``, following ``history``."""
        check_is_fitted(self, "prediction_boundaries_")
        p = as_values(prediction)
        predicted = np.searchsorted(-self.prediction_boundaries_, -p, side="left").astype(np.int64)
        return self.run_codes(np.column_stack([self._history_codes(history, p.size), predicted]))[:, -1]

    def assign_predicted(self, prediction: ArrayLike, history: ArrayLike | None = None) -> np.ndarray:
        return np.asarray(self.names_, dtype=object)[self.assign_predicted_codes(prediction, history=history)]

    def describe(self) -> list[dict[str, object]]:
        check_is_fitted(self, "thresholds_")
        lows = [*self.boundaries_.tolist(), 0.0]
        pts = [*self.thresholds_.tolist(), 0.0]
        return [
            {TIER: n, "min_value": float(lo), "min_points": float(p), "share": float(s), "revenue_share": float(rs)}
            for n, lo, p, s, rs in zip(self.names_, lows, pts, self.shares_, self.revenue_shares_, strict=True)
        ]
