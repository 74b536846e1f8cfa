"""Behavioral segments: the optional second axis beside tiers, clustered on scaled behavior features and named by
an automatic, readable profile (e.g. "growing, new", "long-tenure, frequent", "declining, lapsing").

Each feature is transformed (log1p for counts and durations, as is for bounded ratios), NaN filled with the median of
the fitted population, and standardized. KMeans proposes the segments; the number is chosen like the tiers'
(:func:`~tiercast.models.tiers.scheme.choose_k`, with a minimum segment share). A segment's profile is its mean z-score
per feature; its name lists the descriptors of the features that deviate most (|z| >= ``min_deviation``), from a
closed vocabulary (:data:`DESCRIPTORS`) and in its order, so one profile has one name ("frequent, active", never
also "active, frequent"), and playbook rules can name segments before any fit: a segment's ``key`` is its
strongest descriptor, or ``"average"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.utils.validation import check_is_fitted

from tiercast.features.contract import SEGMENT
from tiercast.features.errors import InsufficientDataError
from tiercast.models.segment_keys import AVERAGE, DESCRIPTORS, SEGMENT_KEYS  # noqa: F401 - re-exported
from tiercast.models.tiers.scheme import choose_k, kmeans

DEFAULT_FEATURES = ("spend_trend", "tenure_days", "frequency_orders", "recency_days", "review_score_mean")
_SILHOUETTE_SAMPLE = 4000


_VOCABULARY_ORDER = {w: i for i, w in enumerate(SEGMENT_KEYS)}


def _canonical(words: Sequence[str]) -> str:
    """Descriptors joined in vocabulary order, so the same profile always reads the same ("frequent, active")."""
    return ", ".join(sorted(words, key=_VOCABULARY_ORDER.__getitem__))


class BehaviorSegments(BaseEstimator):
    """Cluster customers on behavior features into readable segments.

    ``features`` are used when present in the frame given to ``fit`` (at least two are needed; absent ones, e.g.
    satisfaction without reviews, are skipped). ``n_segments`` fixes the number; otherwise it is chosen in
    ``2..k_max`` among those whose every segment holds at least ``min_share``. Segments are numbered by size
    (largest first) and named by their profile; duplicate names get the next descriptor added.
    """

    def __init__(
        self,
        features: Sequence[str] = DEFAULT_FEATURES,
        n_segments: int | None = None,
        k_max: int = 6,
        min_share: float = 0.05,
        silhouette_tolerance: float = 0.1,
        min_deviation: float = 0.5,
        max_descriptors: int = 2,
        random_state: int = 42,
    ) -> None:
        self.features = features
        self.n_segments = n_segments
        self.k_max = k_max
        self.min_share = min_share
        self.silhouette_tolerance = silhouette_tolerance
        self.min_deviation = min_deviation
        self.max_descriptors = max_descriptors
        self.random_state = random_state

    def _raw(self, frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
        X = frame[list(columns)].to_numpy(dtype=float, na_value=np.nan, copy=True)
        logs = np.array([DESCRIPTORS.get(c, ("identity",))[0] == "log" for c in columns])
        X[:, logs] = np.log1p(np.clip(X[:, logs], 0.0, None))
        return X

    def _scaled(self, frame: pd.DataFrame) -> np.ndarray:
        X = self._raw(frame, self.features_)
        X = np.where(np.isnan(X), self.medians_, X)
        return (X - self.means_) / self.scales_

    def fit(self, frame: pd.DataFrame) -> BehaviorSegments:
        cols = [c for c in self.features if c in frame.columns]
        unknown = [c for c in cols if c not in DESCRIPTORS]
        if unknown:
            raise ValueError(f"no descriptors for features {unknown}; known: {sorted(DESCRIPTORS)}")
        cols = [c for c in cols if frame[c].notna().any()]
        if len(cols) < 2:
            raise ValueError(f"segments need at least two of {list(self.features)}; the frame has {cols}")
        self.features_ = tuple(cols)
        X = self._raw(frame, cols)
        self.medians_ = np.nan_to_num(np.nanmedian(X, axis=0))
        X = np.where(np.isnan(X), self.medians_, X)
        self.means_ = X.mean(axis=0)
        sd = X.std(axis=0)
        self.scales_ = np.where(sd > 0, sd, 1.0)
        Z = (X - self.means_) / self.scales_

        rng = np.random.default_rng(self.random_state)
        idx = np.arange(len(Z)) if len(Z) <= _SILHOUETTE_SAMPLE else rng.choice(len(Z), _SILHOUETTE_SAMPLE, False)
        candidates = [self.n_segments] if self.n_segments else list(range(2, self.k_max + 1))
        fits: dict[int, KMeans] = {}
        scores: dict[int, float] = {}
        for k in candidates:
            km = kmeans(Z, k, self.random_state)
            fits[k] = km
            if len(candidates) == 1:
                scores[k] = np.nan
            elif np.bincount(km.labels_, minlength=k).min() / len(Z) >= self.min_share:
                scores[k] = float(silhouette_score(Z[idx], km.labels_[idx]))
        if not scores:
            raise InsufficientDataError(
                f"no number of segments in {candidates} gives every segment a share >= {self.min_share}: the "
                "customers' behavior is too uniform to segment; use more, or more varied, customers"
            )
        k = choose_k(scores, self.silhouette_tolerance)
        km = fits[k]
        sizes = np.bincount(km.labels_, minlength=k)
        # Renumber by size (largest first), ties by centroid, so numbering does not depend on KMeans' label order.
        order = np.lexsort((*km.cluster_centers_.T[::-1], -sizes))
        self.centers_ = km.cluster_centers_[order]
        self.k_ = k
        self.silhouette_by_k_ = scores
        self.names_, self.keys_ = self._names(self.centers_)
        self.shares_ = np.bincount(self._assign(Z), minlength=k) / len(Z)
        self.profile_ = self._profile(frame, Z)
        return self

    def _names(self, centers: np.ndarray) -> tuple[tuple[str, ...], tuple[str, ...]]:
        words = []
        for z in centers:
            strongest = np.argsort(-np.abs(z), kind="stable")
            words.append(
                [
                    DESCRIPTORS[self.features_[j]][1 if z[j] > 0 else 2]
                    for j in strongest
                    if abs(z[j]) >= self.min_deviation
                ]
            )
        names: list[str] = []
        for w in words:  # duplicates get one more descriptor, else a number
            base = _canonical(w[: self.max_descriptors]) or AVERAGE
            longer = [_canonical(w[:m]) for m in range(self.max_descriptors + 1, len(w) + 1)]
            numbered = (f"{base} ({n})" for n in range(2, len(words) + 2))
            names.append(next(c for c in (base, *longer, *numbered) if c not in names))
        keys = tuple(w[0] if w else AVERAGE for w in words)
        return tuple(names), keys

    def _profile(self, frame: pd.DataFrame, Z: np.ndarray) -> pd.DataFrame:
        codes = self._assign(Z)
        raw = frame[list(self.features_)].to_numpy(dtype=float, na_value=np.nan)
        means = pd.DataFrame(raw, columns=list(self.features_)).groupby(codes).mean().reindex(range(self.k_))
        z = pd.DataFrame(self.centers_, columns=[f"z_{c}" for c in self.features_])
        head = pd.DataFrame(
            {SEGMENT: list(self.names_), "key": list(self.keys_), "customers": np.bincount(codes, minlength=self.k_)}
        )
        head["share"] = head["customers"] / max(len(codes), 1)
        return pd.concat([head, means.reset_index(drop=True), z], axis=1)

    def _assign(self, Z: np.ndarray) -> np.ndarray:
        d = ((Z[:, None, :] - self.centers_[None, :, :]) ** 2).sum(axis=2)
        return d.argmin(axis=1).astype(np.int64)

    def predict_codes(self, frame: pd.DataFrame) -> np.ndarray:
        """Segment number (0 = largest) of each row: the nearest centroid in the fitted scaling."""
        check_is_fitted(self, "centers_")
        return self._assign(self._scaled(frame))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Segment name of each row."""
        return np.asarray(self.names_, dtype=object)[self.predict_codes(frame)]

    def predict_keys(self, frame: pd.DataFrame) -> np.ndarray:
        """Segment key (strongest descriptor, from :data:`SEGMENT_KEYS`) of each row: what playbook rules name."""
        return np.asarray(self.keys_, dtype=object)[self.predict_codes(frame)]

    def describe(self) -> list[dict[str, object]]:
        """One dict per segment: name, key, share and the mean z-score per feature."""
        check_is_fitted(self, "centers_")
        return [
            {SEGMENT: n, "key": k, "share": float(s), **{f: float(z) for f, z in zip(self.features_, c, strict=True)}}
            for n, k, s, c in zip(self.names_, self.keys_, self.shares_, self.centers_, strict=True)
        ]
