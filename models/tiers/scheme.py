"""Tier schemes: ordered value levels proposed by clustering on log value (optionally with frequency and tenure).

A fitted :class:`TierScheme` is a small, versionable artifact: descending value boundaries, the tier names (best
first) and each tier's share of the fitted population. Two ways to assign a tier:

* ``assign(value)`` applies the value boundaries to realized value (the *current* tier).
* ``assign_predicted(prediction)`` applies prediction thresholds learned by ``fit_predictions``: expected values
  shrink toward the mean, so raw boundaries would over-fill the middle tiers. The thresholds are quantiles of the
  predictions on a reference population that reproduce the scheme's tier shares (rank mapping made row-wise, so
  chunked scoring gives the same tiers as scoring everything at once). The target shares are best taken from
  realized tiers over a horizon after past cutoffs (``fit_predictions(prediction, realized=...)``).

:class:`ValueTiers` holds that assignment machinery; the alternative schemes of
:mod:`tiercast.models.tiers.alternatives` share it, so every value-threshold scheme is compared through one interface.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from tiercast.features.contract import TIER
from tiercast.features.errors import InsufficientDataError

# Silhouette on a seeded sample: the full O(n^2) computation is not worth it for a low-dimensional clustering.
_SILHOUETTE_SAMPLE = 5000


def as_values(value: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 1:
        raise ValueError("tier values must be one-dimensional")
    if np.isnan(arr).any():
        raise ValueError("tier values contain NaN")
    return arr


def names_for_k(names: Sequence[str], k: int) -> tuple[str, ...]:
    """The names of ``k`` tiers, best first: the first ``k - 1`` names and the last one.

    The lowest tier holds every customer without value, so it keeps the lowest name whatever k the clustering
    chooses (k=2 of platinum/gold/iron/lead is platinum, lead): ``names[:k]`` would call them gold.
    """
    names = tuple(names)
    if not 2 <= k <= len(names):
        raise ValueError(f"k={k} tiers need 2 <= k <= {len(names)} (the number of names: {names})")
    return (*names[: k - 1], names[-1])


def choose_k(scores: dict[int, float], tolerance: float) -> int:
    """The largest k whose silhouette is within ``tolerance`` (relative) of the best one.

    On one-dimensional value the smallest k nearly always has the top silhouette; a finer partition of comparable
    quality is more useful to act on. NaN scores (a single fixed candidate) count as acceptable.
    """
    if not scores:
        raise ValueError("no candidate k")
    finite = [s for s in scores.values() if np.isfinite(s)]
    top = max(finite) if finite else 0.0
    return max(k for k, s in scores.items() if not np.isfinite(s) or s >= top - abs(top) * tolerance)


def kmeans(X: np.ndarray, k: int, random_state: int) -> KMeans:
    """Seeded KMeans (10 inits) on one OpenMP thread: on a few thousand low-dimensional rows threads only add
    overhead, and on a busy machine oversubscribed OpenMP threads make it many times slower."""
    with threadpool_limits(limits=1, user_api="openmp"):
        return KMeans(n_clusters=k, n_init=10, random_state=random_state).fit(X)


class ValueTiers(BaseEstimator):
    """Assignment shared by value-threshold schemes: ``boundaries_`` (descending lower bounds of tiers 0..k-2, value
    >= boundary), ``names_`` (best first), ``shares_``; rank-mapped prediction thresholds via ``fit_predictions``."""

    @staticmethod
    def _codes(v: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
        # boundaries are descending; tier 0 holds values >= boundaries[0] (inclusive), and so on down.
        return np.searchsorted(-boundaries, -v, side="left").astype(np.int64)

    def _shares(self, v: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
        counts = np.bincount(self._codes(v, boundaries), minlength=len(boundaries) + 1)
        return counts / max(len(v), 1)

    def _set_revenue_shares(self, v: np.ndarray) -> None:
        pos = np.clip(v, 0.0, None)
        rev = np.bincount(self._codes(v, self.boundaries_), weights=pos, minlength=len(self.boundaries_) + 1)
        self.revenue_shares_ = rev / rev.sum() if rev.sum() > 0 else np.zeros_like(rev)

    def assign_codes(self, value: Sequence[float] | np.ndarray) -> np.ndarray:
        """Tier index (0 = best) of each realized value."""
        check_is_fitted(self, "boundaries_")
        return self._codes(as_values(value), self.boundaries_)

    def assign(self, value: Sequence[float] | np.ndarray) -> np.ndarray:
        """Tier name of each realized value."""
        codes = self.assign_codes(value)
        return np.asarray(self.names_, dtype=object)[codes]

    def fit_predictions(
        self, prediction: Sequence[float] | np.ndarray, realized: Sequence[float] | np.ndarray | None = None
    ) -> ValueTiers:
        """Learn prediction thresholds so the reference predictions fill the tiers in target shares.

        The target is the scheme's shares, or, given ``realized`` (values customers actually reached over a horizon
        after a cutoff, e.g. the labels of the training cutoffs; not necessarily row-aligned with ``prediction``),
        the shares of the tiers those values fall in. Prefer the latter: a population defined by past activity
        holds more of the lowest tier over the next horizon than over the last one (some stop buying), so matching
        the current shares over-fills the upper tiers.
        """
        check_is_fitted(self, "boundaries_")
        p = as_values(prediction)
        if realized is None:
            shares = self.shares_
        else:
            r = as_values(realized)
            shares = np.bincount(self.assign_codes(r), minlength=len(self.names_)) / max(r.size, 1)
        self.prediction_shares_ = np.asarray(shares, dtype=float)
        upper = np.clip(np.cumsum(shares)[:-1], 0.0, 1.0)  # share of customers at or above each boundary
        self.prediction_boundaries_ = np.quantile(p, 1.0 - upper, method="inverted_cdf")
        return self

    def assign_predicted_codes(self, prediction: Sequence[float] | np.ndarray) -> np.ndarray:
        check_is_fitted(self, "prediction_boundaries_")
        return self._codes(as_values(prediction), self.prediction_boundaries_)

    def assign_predicted(self, prediction: Sequence[float] | np.ndarray) -> np.ndarray:
        """Predicted tier name of each predicted value."""
        codes = self.assign_predicted_codes(prediction)
        return np.asarray(self.names_, dtype=object)[codes]

    def describe(self) -> list[dict[str, object]]:
        """One dict per tier: name, lower value boundary (inclusive), share of the fitted population and, when
        known, its share of the fitted population's positive value."""
        check_is_fitted(self, "boundaries_")
        lows = [*np.asarray(self.boundaries_).tolist(), 0.0]
        rows = [
            {TIER: n, "min_value": float(lo), "share": float(s)}
            for n, lo, s in zip(self.names_, lows, self.shares_, strict=True)
        ]
        for row, rs in zip(rows, getattr(self, "revenue_shares_", ()), strict=False):
            row["revenue_share"] = float(rs)
        return rows


class TierScheme(ValueTiers):
    """Cluster customers' value (log scale) into ``k`` ordered tiers.

    Customers with value <= 0 never shape the clusters; they belong to the lowest tier. ``k`` is fixed when given;
    otherwise, among the k in ``2..k_max`` whose every tier holds at least ``min_share`` of the customers, it is the
    largest k whose silhouette is within ``silhouette_tolerance`` (relative) of the best one (:func:`choose_k`): on
    one-dimensional value, k=2 nearly always has the top silhouette, and a finer pyramid of comparable quality is
    more useful to act on. Tiers are named by :func:`names_for_k`, best first: the first ``k - 1`` names and the last,
    so the lowest tier, where customers without value land, keeps the lowest name (k=2 of platinum/gold/iron/lead:
    platinum, lead).

    ``fit(value, behavior=...)`` adds behavior columns (e.g. frequency, tenure; log1p of non-negative columns, all
    standardized like log value) to the clustering. Clusters are then ranked by mean log value and the boundaries are
    value quantiles reproducing the cluster sizes, so tiers stay value intervals: the ordering guarantee (a higher
    value never gets a lower tier) and the one-column ``assign`` hold for either kind of fit.
    """

    def __init__(
        self,
        names: Sequence[str] = ("platinum", "gold", "iron", "lead"),
        k: int | None = None,
        k_max: int = 4,
        min_share: float = 0.02,
        silhouette_tolerance: float = 0.1,
        random_state: int = 42,
    ) -> None:
        self.names = names
        self.k = k
        self.k_max = k_max
        self.min_share = min_share
        self.silhouette_tolerance = silhouette_tolerance
        self.random_state = random_state

    def _kmeans(self, X: np.ndarray, k: int) -> KMeans:
        return kmeans(X, k, self.random_state)

    def _boundaries_for(self, log_pos: np.ndarray, k: int) -> tuple[np.ndarray, float]:
        km = self._kmeans(log_pos.reshape(-1, 1), k)
        centers = np.sort(km.cluster_centers_.ravel())
        # Boundaries halfway between adjacent centers (log scale), highest first.
        cuts = np.expm1((centers[:-1] + centers[1:]) / 2.0)[::-1]
        return cuts, float(km.inertia_)

    def _boundaries_multi(self, X: np.ndarray, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        labels = self._kmeans(X, k).labels_
        order = np.argsort(-np.bincount(labels, weights=X[:, 0], minlength=k) / np.bincount(labels, minlength=k))
        rank = np.empty(k, dtype=np.int64)
        rank[order] = np.arange(k)
        upper = np.cumsum(np.bincount(rank[labels], minlength=k))[:-1] / len(pos)
        return np.quantile(pos, 1.0 - upper, method="inverted_cdf"), labels

    def _search(
        self,
        candidates: list[int],
        v: np.ndarray,
        pos: np.ndarray,
        log_pos: np.ndarray,
        behavior: ArrayLike | None,
        idx: np.ndarray,
    ) -> tuple[dict[int, float], dict[int, np.ndarray]]:
        """Silhouette (on the sample ``idx``) and boundaries of each candidate k whose every tier holds at least
        ``min_share`` of the customers; a single candidate is kept whatever its shares (silhouette NaN)."""
        is_pos = v > 0
        X = None if behavior is None else _behavior_matrix(log_pos, behavior, is_pos, len(v))
        scores: dict[int, float] = {}
        fitted: dict[int, np.ndarray] = {}
        for k in candidates:
            if X is None:
                cuts, _ = self._boundaries_for(log_pos, k)
                space, labels = log_pos[idx].reshape(-1, 1), self._codes(pos[idx], cuts)
            else:
                cuts, cluster = self._boundaries_multi(X, pos, k)
                space, labels = X[idx], cluster[idx]
            shares = self._shares(v, cuts)
            fitted[k] = cuts
            if len(candidates) == 1:
                scores[k] = np.nan
                break
            n_labels = len(np.unique(labels))
            if shares.min() < self.min_share or n_labels >= len(labels):
                continue  # too small a tier, or every customer a tier of their own (no silhouette)
            scores[k] = float(silhouette_score(space, labels)) if n_labels > 1 else -1.0
        return scores, fitted

    def fit(self, value: Sequence[float] | np.ndarray, behavior: ArrayLike | None = None) -> TierScheme:
        """Choose k and the value boundaries from realized values (one per customer), optionally clustering on
        behavior columns too (``behavior``: shape (n, m), row-aligned with ``value``, NaN = column median)."""
        v = as_values(value)
        names = tuple(self.names)
        if len(names) < 2:
            raise ValueError("a tier scheme needs at least two tier names")
        is_pos = v > 0
        pos = v[is_pos]
        k_hi = min(self.k_max, len(names))
        if self.k is not None:
            if self.k > len(names):
                raise ValueError(f"k={self.k} tiers but only {len(names)} names: {names}")
            candidates = [self.k]
        else:  # k from the data: at most as many tiers as distinct positive values
            candidates = [k for k in range(2, k_hi + 1) if k <= max(len(np.unique(pos)), 2)]
        if len(np.unique(pos)) < max(candidates):
            raise InsufficientDataError(
                f"too few distinct positive values ({len(np.unique(pos))}) to form {max(candidates)} tiers; "
                "use more customers or fewer tiers (tiers.k)"
            )
        log_pos = np.log1p(pos)
        rng = np.random.default_rng(self.random_state)
        n_pos = len(log_pos)
        idx = np.arange(n_pos) if n_pos <= _SILHOUETTE_SAMPLE else np.sort(rng.choice(n_pos, _SILHOUETTE_SAMPLE, False))
        scores, fitted = self._search(candidates, v, pos, log_pos, behavior, idx)
        if not scores and len(candidates) > 1:
            # A few extreme customers (one wholesale buyer among thousands of one-time buyers) make a cluster of
            # their own at every k, so no k leaves every tier min_share of the customers. A tier needs that share,
            # so values beyond the quantiles it would span cannot define one: clip log value there and search
            # again; the extreme customers then fall in the top (or bottom) tier by the boundaries.
            tail = min(0.25, self.min_share * len(v) / (2 * n_pos))  # half a tier's share, of the positive values
            lo, hi = np.quantile(log_pos, [tail, 1.0 - tail])
            scores, fitted = self._search(candidates, v, pos, np.clip(log_pos, lo, hi), behavior, idx)
        if not scores:
            raise InsufficientDataError(
                f"no number of tiers in {candidates} gives every tier a share >= {self.min_share}; "
                "use more customers or a smaller tiers.min_share"
            )
        best_k = choose_k(scores, self.silhouette_tolerance)
        self.k_ = best_k
        self.boundaries_ = fitted[best_k]
        self.names_ = names_for_k(names, best_k)
        self.shares_ = self._shares(v, self.boundaries_)
        self._set_revenue_shares(v)
        self.silhouette_ = scores[best_k]
        self.silhouette_by_k_ = {k: float(s) for k, s in scores.items()}
        return self


def _behavior_matrix(log_pos: np.ndarray, behavior: ArrayLike, is_pos: np.ndarray, n: int) -> np.ndarray:
    """Standardized [log value, behavior columns] of the positive-value customers."""
    B = np.asarray(behavior, dtype=float)
    B = B.reshape(-1, 1) if B.ndim == 1 else B
    if B.shape[0] != n:
        raise ValueError(f"behavior has {B.shape[0]} rows for {n} values")
    B = B[is_pos]
    med = np.nanmedian(B, axis=0) if B.size else np.zeros(B.shape[1])
    B = np.where(np.isnan(B), np.nan_to_num(med), B)
    B = np.where((B >= 0).all(axis=0), np.log1p(np.clip(B, 0, None)), B)
    X = np.column_stack([log_pos, B])
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
