"""Tier schemes: ordered value levels proposed by clustering on log value.

A fitted :class:`TierScheme` is a small, versionable artifact: descending value boundaries, the tier names (best
first) and each tier's share of the fitted population. Two ways to assign a tier:

* ``assign(value)`` applies the value boundaries to realized value (the *current* tier).
* ``assign_predicted(prediction)`` applies prediction thresholds learned by ``fit_predictions``: expected values
  shrink toward the mean, so raw boundaries would over-fill the middle tiers. The thresholds are quantiles of the
  predictions on a reference population that reproduce the scheme's tier shares (rank mapping made row-wise, so
  chunked scoring gives the same tiers as scoring everything at once).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.utils.validation import check_is_fitted

# Silhouette on a seeded sample: the full O(n^2) computation is not worth it for a 1-D clustering.
_SILHOUETTE_SAMPLE = 5000


def _as_values(value: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 1:
        raise ValueError("tier values must be one-dimensional")
    if np.isnan(arr).any():
        raise ValueError("tier values contain NaN")
    return arr


class TierScheme(BaseEstimator):
    """Cluster customers' value (log scale) into ``k`` ordered tiers.

    Customers with value <= 0 never shape the clusters; they belong to the lowest tier. ``k`` is fixed when given;
    otherwise, among the k in ``2..k_max`` whose every tier holds at least ``min_share`` of the customers, it is the
    largest k whose silhouette is within ``silhouette_tolerance`` (relative) of the best one: on one-dimensional
    value, k=2 nearly always has the top silhouette, and a finer pyramid of comparable quality is more useful to act
    on. The top ``k`` names are used, best first.
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

    def _boundaries_for(self, log_pos: np.ndarray, k: int) -> tuple[np.ndarray, float]:
        km = KMeans(n_clusters=k, n_init=10, random_state=self.random_state).fit(log_pos.reshape(-1, 1))
        centers = np.sort(km.cluster_centers_.ravel())
        # Boundaries halfway between adjacent centers (log scale), highest first.
        cuts = np.expm1((centers[:-1] + centers[1:]) / 2.0)[::-1]
        return cuts, float(km.inertia_)

    def fit(self, value: Sequence[float] | np.ndarray) -> TierScheme:
        """Choose k and the value boundaries from realized values (one per customer)."""
        v = _as_values(value)
        names = tuple(self.names)
        if len(names) < 2:
            raise ValueError("a tier scheme needs at least two tier names")
        pos = v[v > 0]
        k_hi = min(self.k_max, len(names))
        if self.k is not None:
            if self.k > len(names):
                raise ValueError(f"k={self.k} tiers but only {len(names)} names: {names}")
            candidates = [self.k]
        else:
            candidates = list(range(2, k_hi + 1))
        if len(np.unique(pos)) < max(candidates):
            raise ValueError(f"too few distinct positive values ({len(np.unique(pos))}) to form tiers")
        log_pos = np.log1p(pos)
        rng = np.random.default_rng(self.random_state)
        sample = log_pos if len(log_pos) <= _SILHOUETTE_SAMPLE else rng.choice(log_pos, _SILHOUETTE_SAMPLE, False)

        scores: dict[int, float] = {}
        fitted: dict[int, np.ndarray] = {}
        for k in candidates:
            cuts, _ = self._boundaries_for(log_pos, k)
            shares = self._shares(v, cuts)
            fitted[k] = cuts
            if len(candidates) == 1:
                scores[k] = np.nan
                break
            if shares.min() < self.min_share:
                continue
            labels = self._codes(np.expm1(sample), cuts)
            scores[k] = silhouette_score(sample.reshape(-1, 1), labels) if len(np.unique(labels)) > 1 else -1.0
        if not scores:
            raise ValueError(f"no k in {candidates} gives every tier a share >= {self.min_share}")
        top = max(np.nan_to_num(list(scores.values()), nan=0.0))
        best_k = max(k for k, sc in scores.items() if np.isnan(sc) or sc >= top - abs(top) * self.silhouette_tolerance)
        self.k_ = best_k
        self.boundaries_ = fitted[best_k]
        self.names_ = names[:best_k]
        self.shares_ = self._shares(v, self.boundaries_)
        self.silhouette_ = scores[best_k]
        self.silhouette_by_k_ = {k: float(s) for k, s in scores.items()}
        return self

    @staticmethod
    def _codes(v: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
        # boundaries are descending; tier 0 holds values >= boundaries[0], and so on down.
        return np.searchsorted(-boundaries, -v, side="right").astype(np.int64)

    def _shares(self, v: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
        counts = np.bincount(self._codes(v, boundaries), minlength=len(boundaries) + 1)
        return counts / max(len(v), 1)

    def assign_codes(self, value: Sequence[float] | np.ndarray) -> np.ndarray:
        """Tier index (0 = best) of each realized value."""
        check_is_fitted(self, "boundaries_")
        return self._codes(_as_values(value), self.boundaries_)

    def assign(self, value: Sequence[float] | np.ndarray) -> np.ndarray:
        """Tier name of each realized value."""
        codes = self.assign_codes(value)
        return np.asarray(self.names_, dtype=object)[codes]

    def fit_predictions(self, prediction: Sequence[float] | np.ndarray) -> TierScheme:
        """Learn prediction thresholds so the reference predictions fill the tiers in the scheme's shares."""
        check_is_fitted(self, "boundaries_")
        p = _as_values(prediction)
        upper = np.cumsum(self.shares_)[:-1]  # share of customers at or above each boundary
        self.prediction_boundaries_ = np.quantile(p, 1.0 - upper, method="inverted_cdf")
        return self

    def assign_predicted_codes(self, prediction: Sequence[float] | np.ndarray) -> np.ndarray:
        check_is_fitted(self, "prediction_boundaries_")
        return self._codes(_as_values(prediction), self.prediction_boundaries_)

    def assign_predicted(self, prediction: Sequence[float] | np.ndarray) -> np.ndarray:
        """Predicted tier name of each predicted value."""
        codes = self.assign_predicted_codes(prediction)
        return np.asarray(self.names_, dtype=object)[codes]

    def describe(self) -> list[dict[str, object]]:
        """One dict per tier: name, lower value boundary (inclusive) and share of the fitted population."""
        check_is_fitted(self, "boundaries_")
        lows = [*self.boundaries_.tolist(), 0.0]
        return [
            {"tier": n, "min_value": float(lo), "share": float(s)}
            for n, lo, s in zip(self.names_, lows, self.shares_, strict=True)
        ]
