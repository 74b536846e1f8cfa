"""Putting a prediction's level on a target's without changing its ranking: a factor on totals, a shift on
log-odds. Used to set the stacked models' level from the BTYD model at the scoring cutoff and the BTYD churn level
from the seasonal index."""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit


def level_factor(target: np.ndarray, predicted: np.ndarray) -> float | None:
    """Target total over predicted total (the factor putting a prediction's level on the target's), None when
    either total is not positive (nothing to scale by)."""
    want, pred = float(np.sum(target)), float(np.sum(predicted))
    return want / pred if want > 0 and pred > 0 else None


def intercept_shift(eta: np.ndarray, target: np.ndarray) -> float | None:
    """The shift b with ``sum(sigmoid(eta + b)) = sum(target)``: the intercept putting the mean probability of a
    logistic model with log-odds ``eta`` on the mean of ``target`` (probabilities or 0/1 outcomes; with outcomes it
    is the maximum-likelihood intercept with the slope held). None when the target mean is 0 or 1."""
    eta, target = np.asarray(eta, dtype=float), np.asarray(target, dtype=float)
    want = float(target.sum())
    if len(target) == 0 or want <= 0 or want >= len(target):
        return None
    gap = lambda b: float(expit(eta + b).sum()) - want  # noqa: E731 (increasing in b)
    lo, hi = -1.0, 1.0
    while gap(lo) > 0:
        lo *= 2
    while gap(hi) < 0:
        hi *= 2
    return float(brentq(gap, lo, hi, xtol=1e-10))
