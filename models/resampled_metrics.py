"""ROC AUC and normalized Gini of bootstrap resamples, from how often each row was drawn.

A paired bootstrap scores two predictions on each of hundreds of resamples. Calling scikit-learn's
``roc_auc_score`` (or ranking the resample afresh) per resample sorts and validates every time: about 1 ms per
call on a few hundred rows, most of a promotion check or a blend-weight test. A resample is fully described by
the number of times each row was drawn, and both metrics depend on a row's rank only through its place among the
distinct predicted values, so the rows are sorted once and each resample costs a few passes over its counts.
Hand-written because neither scikit-learn nor scipy take integer resample weights for average ranks; the values
equal :func:`~tiercast.models.evaluation.roc_auc` and :func:`~tiercast.models.evaluation.normalized_gini` of the
resampled rows (the tests compare them on random resamples with ties).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


class _TieGroups:
    """Rows sorted by value, grouped by equal value: the average rank of a row in any resample follows from the
    counts of the groups below it and of its own group."""

    def __init__(self, values: Array) -> None:
        self.order = np.argsort(values, kind="stable")
        v = values[self.order]
        self.starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
        self.group_of_row = np.empty(values.size, dtype=np.intp)
        self.group_of_row[self.order] = np.cumsum(np.r_[True, v[1:] != v[:-1]]) - 1

    def group_sums(self, weights: Array) -> Array:
        return np.add.reduceat(weights[self.order], self.starts)

    def average_ranks(self, counts: Array) -> Array:
        """Per row, its average rank (1-based, ties averaged) among the resampled rows; rows not drawn get the
        rank they would have, which their zero count cancels."""
        size = self.group_sums(counts)
        below = np.cumsum(size) - size
        return (below + (size + 1.0) / 2.0)[self.group_of_row]


class CountedAUC:
    """ROC AUC (ties count half) of the labels ``y`` (0/1) and scores ``p`` on a resample given as counts."""

    def __init__(self, y: Array, p: Array) -> None:
        self.groups = _TieGroups(p)
        self.y = y

    def __call__(self, counts: Array) -> float:
        pos = self.groups.group_sums(counts * self.y)
        neg = self.groups.group_sums(counts) - pos
        n_pos, n_neg = pos.sum(), neg.sum()
        if n_pos == 0 or n_neg == 0:
            raise ValueError("ROC/PR AUC need both classes in the labels")
        # Mann-Whitney: each positive beats the negatives below it and ties half of those level with it
        return float(np.dot(pos, np.cumsum(neg) - neg + 0.5 * neg) / (n_pos * n_neg))


class CountedGini:
    """Normalized Gini of ``actual`` ordered by ``predicted`` on a resample given as counts:
    cov(a, rank(p)) / cov(a, rank(a)) over the drawn rows, average ranks for ties."""

    def __init__(self, actual: Array, predicted: Array) -> None:
        self.actual = actual
        self.by_actual = _TieGroups(actual)
        self.by_predicted = _TieGroups(predicted)

    def __call__(self, counts: Array) -> float:
        drawn = self.actual[counts > 0]
        weighted = counts * (self.actual - np.dot(counts, self.actual) / counts.sum())
        denom = float(np.dot(weighted, self.by_actual.average_ranks(counts)))
        if np.ptp(drawn) == 0 or not denom > 0:
            raise ValueError("normalized Gini is undefined when actual is constant (e.g. all zero)")
        return float(np.dot(weighted, self.by_predicted.average_ranks(counts)) / denom)
