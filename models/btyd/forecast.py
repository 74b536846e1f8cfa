"""The BTYD forecast: BG/NBD or Pareto/NBD purchase counts with Gamma-Gamma spend, fitted on one cutoff's feature
rows (no labels), predicting value and churn over any horizon. A baseline on its own and the building block of the
stacked models (:mod:`tiercast.models.btyd.stacker`).
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from tiercast.features.contract import CUTOFF
from tiercast.models.baselines import Array, require_columns
from tiercast.models.btyd.fitters import BetaGeoModel, GammaGammaModel, ParetoNBDModel

# ----------------------------------------------------------------------------------------------- BTYD

#: Feature columns a BTYD model reads (frequency, recency, age, monetary value in the lifetimes convention).
BTYD_INPUTS: tuple[str, ...] = ("repeat_purchase_days", "first_to_last_days", "tenure_days", "repeat_spend_mean")
#: The monetary value when every purchase day counts, the first included (``spend="all"``); read where present.
DAY_SPEND = "day_spend_mean"
#: What the Gamma-Gamma spend model reads: ``"repeat"`` purchase days only (the lifetimes convention, the published
#: baselines') or ``"all"`` purchase days.
SPEND_CONVENTIONS: tuple[str, ...] = ("repeat", "all")

_MODELS = {"bgnbd": BetaGeoModel, "paretonbd": ParetoNBDModel}


def btyd_inputs(X: pd.DataFrame) -> pd.DataFrame:
    """The BTYD input columns (and :data:`DAY_SPEND` where X has it) with "undefined" mapped to the BTYD
    convention: no purchase yet means frequency 0, recency 0 and spend 0 (e.g. customers with only zero-amount or
    refund lines). Idempotent."""
    cols = dict(zip(BTYD_INPUTS, _input_arrays(X), strict=True))
    if DAY_SPEND in X.columns:
        cols[DAY_SPEND] = _spend_array(X, DAY_SPEND)
    return pd.DataFrame(cols, index=X.index)


def _spend_array(X: pd.DataFrame, name: str) -> Array:
    spend = X[name].to_numpy(dtype="float64", na_value=np.nan)
    return np.where(np.isnan(spend), 0.0, spend)


def _input_arrays(X: pd.DataFrame) -> tuple[Array, Array, Array, Array]:
    """:func:`btyd_inputs`' columns as arrays, in the order of :data:`BTYD_INPUTS`. On NumPy arrays: every BTYD
    transform reads them, hundreds of times in one training, and pandas' per-call overhead on a few thousand rows
    was most of that time."""
    missing = [c for c in BTYD_INPUTS if c not in X.columns]
    if missing:
        raise ValueError(f"BTYD needs feature columns {missing}")
    freq, recency, age = (X[c].to_numpy(dtype="float64", na_value=np.nan) for c in BTYD_INPUTS[:3])
    age = _at_least(np.where(np.isnan(age), 0.0, age), 1e-6)
    recency = np.minimum(_at_least(np.where(np.isnan(recency), 0.0, recency), 0.0), age)
    freq = _at_least(np.where(np.isnan(freq), 0.0, freq), 0.0)
    return freq, recency, age, _spend_array(X, BTYD_INPUTS[3])


def _at_least(a: Array, low: float) -> Array:
    """``a`` with values below ``low`` raised to it (no NaN here)."""
    return np.where(a >= low, a, low)


class BTYDForecaster(BaseEstimator):
    """BG/NBD or Pareto/NBD for purchases × Gamma-Gamma for spend, fitted on X's own summary columns.

    Leak-free by construction: ``fit`` ignores labels and uses only features computed at the cutoff
    (frequency = ``repeat_purchase_days``, recency = ``first_to_last_days``, T = ``tenure_days``), with times
    divided by ``time_unit_days`` (weeks by default). Because it needs no
    labels, the natural use is to fit on the scoring frame itself. Undefined inputs (e.g. ``first_to_last_days``
    of a customer with refunds only) read as no purchase yet (:func:`btyd_inputs`). If X stacks several cutoffs (a
    ``cutoff_col`` column with several values), only the latest cutoff's rows are used to fit, so no customer
    enters the likelihood twice.

    ``spend``: which purchase days the Gamma-Gamma model reads. ``"repeat"`` (the lifetimes convention, kept by
    the published baselines): ``repeat_spend_mean`` over ``repeat_purchase_days``, so a one-time buyer gets the
    population's mean spend. ``"all"``: ``day_spend_mean`` over every purchase day, so the first purchase tells
    big spenders from small ones too. Which ranks better depends on the shop (:mod:`tiercast.models.btyd.value_choice`).

    value = E[purchases in horizon] × E[spend per purchase]; churn = P(no purchase in horizon | history).
    When Gamma-Gamma cannot be fitted (fewer than 3 customers with the spend it reads, or q <= 1), the spend
    per purchase falls back to their mean (``gg_`` is then None).
    """

    def __init__(
        self, model: str = "bgnbd", time_unit_days: float = 7.0, cutoff_col: str = CUTOFF, spend: str = "repeat"
    ) -> None:
        self.model = model
        self.time_unit_days = time_unit_days
        self.cutoff_col = cutoff_col
        self.spend = spend

    def _summary(self, X: pd.DataFrame) -> tuple[Array, Array, Array, Array]:
        """(x, t_x, T, m) in the lifetimes convention, read through :func:`btyd_inputs` (a customer without a
        purchase, e.g. refunds only, has ``first_to_last_days`` NaN in a feature frame)."""
        require_columns(X, BTYD_INPUTS)
        u = float(self.time_unit_days)
        for name, v in zip(BTYD_INPUTS, arrays := _input_arrays(X), strict=True):
            if not np.isfinite(v).all():
                raise ValueError(f"column {name!r} has missing or infinite values")
        x, tx, T, m = arrays
        return x, np.where(x > 0, tx / u, 0.0), T / u, m

    def _spend_inputs(self, X: pd.DataFrame, x: Array, m: Array) -> tuple[Array, Array]:
        """(purchases, mean spend) the Gamma-Gamma model reads under ``spend``."""
        if getattr(self, "spend", "repeat") == "repeat":  # models saved before the setting read repeat days
            return x, m
        require_columns(X, (DAY_SPEND,))
        day = _spend_array(X, DAY_SPEND)
        if not np.isfinite(day).all():
            raise ValueError(f"column {DAY_SPEND!r} has infinite values")
        # a customer without a purchase day (refunds only) has no spend to read: 0 purchases, as "repeat" has
        return np.where(day > 0, x + 1.0, 0.0), day

    def fit(
        self, X: pd.DataFrame, y_value: ArrayLike | None = None, y_churn: ArrayLike | None = None
    ) -> BTYDForecaster:
        """Fit the count model and Gamma-Gamma on X; labels are accepted for the common interface and ignored."""
        if self.model not in _MODELS:
            raise ValueError(f"model must be one of {sorted(_MODELS)}, got {self.model!r}")
        if self.time_unit_days <= 0:
            raise ValueError("time_unit_days must be positive")
        if self.spend not in SPEND_CONVENTIONS:
            raise ValueError(f"spend must be one of {list(SPEND_CONVENTIONS)}, got {self.spend!r}")
        if self.cutoff_col in X.columns and X[self.cutoff_col].nunique() > 1:
            X = X.loc[X[self.cutoff_col] == X[self.cutoff_col].max()]
        x, tx, T, m = self._summary(X)
        self.count_model_ = _MODELS[self.model]().fit(x, tx, T)
        n, m = self._spend_inputs(X, x, m)
        buyers = (n > 0) & (m > 0)
        self.mean_repeat_spend_ = float(m[buyers].mean()) if buyers.any() else 0.0
        try:
            gg = GammaGammaModel().fit(n, m)
            self.gg_ = gg if gg.params_["q"] > 1 else None
        except ValueError:
            self.gg_ = None
        return self

    def _expected_spend(self, X: pd.DataFrame, x: Array, m: Array) -> Array:
        n, m = self._spend_inputs(X, x, m)
        if self.gg_ is None:
            return np.full(x.shape, self.mean_repeat_spend_)
        return self.gg_.conditional_expected_average_profit(n, np.maximum(m, 0.0))

    def transform(self, X: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
        """Per-customer BTYD outputs for the horizon, indexed like X: expected purchases, P(alive),
        P(no purchase), expected spend per purchase and expected value (their product)."""
        check_is_fitted(self, "count_model_")
        x, tx, T, m = self._summary(X)
        t = float(horizon_days) / float(self.time_unit_days)
        cm = self.count_model_
        purchases = cm.expected_purchases(t, x, tx, T)
        spend = self._expected_spend(X, x, m)
        return pd.DataFrame(
            {
                "btyd_expected_purchases": purchases,
                "btyd_p_alive": cm.prob_alive(x, tx, T),
                "btyd_p_no_purchase": cm.prob_no_purchase(t, x, tx, T),
                "btyd_expected_avg_spend": spend,
                "btyd_expected_value": purchases * spend,
            },
            index=X.index,
        )

    def predict_value(self, X: pd.DataFrame, horizon_days: float) -> Array:
        """Expected purchases in the horizon × Gamma-Gamma expected spend per purchase."""
        check_is_fitted(self, "count_model_")
        x, tx, T, m = self._summary(X)
        t = float(horizon_days) / float(self.time_unit_days)
        return self.count_model_.expected_purchases(t, x, tx, T) * self._expected_spend(X, x, m)

    def predict_churn(self, X: pd.DataFrame, horizon_days: float) -> Array:
        """P(no purchase in the horizon | history) — not 1 − P(alive)."""
        check_is_fitted(self, "count_model_")
        x, tx, T, _ = self._summary(X)
        return self.count_model_.prob_no_purchase(float(horizon_days) / float(self.time_unit_days), x, tx, T)


#: Fitted forecasters by the exact rows their fit reads (:func:`fit_forecaster`), most recently used last.
_FITTED: OrderedDict[tuple, BTYDForecaster] = OrderedDict()
_FITTED_SIZE = 64


def fit_forecaster(
    X: pd.DataFrame, *, model: str = "bgnbd", time_unit_days: float = 7.0, spend: str = "repeat"
) -> BTYDForecaster:
    """``BTYDForecaster(model, time_unit_days, spend=spend).fit(X)``, memoized on the exact values of the columns
    the fit reads.

    A training job fits one cutoff's rows several times over: for the stacked models, for the BTYD baselines
    beside them and when choosing between BG/NBD and Pareto/NBD; a backtest does so at every test cutoff. The
    maximum-likelihood fit is a deterministic function of those rows (seconds for Pareto/NBD on a few hundred
    customers whose dropout heterogeneity runs to the edge of its range), so each runs once and the cache changes
    no result. Each caller gets its own copy of the fitted estimator."""
    cols = [c for c in (*BTYD_INPUTS, DAY_SPEND, CUTOFF) if c in X.columns]
    digest = hashlib.sha256(pd.util.hash_pandas_object(X[cols], index=False).to_numpy().tobytes()).hexdigest()
    key = (model, float(time_unit_days), spend, len(X), tuple(cols), digest)
    hit = _FITTED.get(key)
    if hit is None:
        hit = BTYDForecaster(model=model, time_unit_days=time_unit_days, spend=spend).fit(X)
        _FITTED[key] = hit
        while len(_FITTED) > _FITTED_SIZE:
            _FITTED.popitem(last=False)
    _FITTED.move_to_end(key)
    return copy.deepcopy(hit)


def btyd_features(
    X: pd.DataFrame, horizon_days: float, model: str = "bgnbd", time_unit_days: float = 7.0
) -> pd.DataFrame:
    """BTYD outputs as stacked features for a GBM: fits ``BTYDForecaster`` on X (one cutoff, labels unused) and
    returns ``btyd_expected_purchases``, ``btyd_p_alive``, ``btyd_p_no_purchase``, ``btyd_expected_avg_spend``
    and ``btyd_expected_value``, one row per row of X, in its order and with its index. A frame stacking several
    cutoffs (a ``cutoff`` column) is fitted per cutoff, so each row's features come from a model that saw only that
    cutoff's past."""
    est = BTYDForecaster(model=model, time_unit_days=time_unit_days)
    if CUTOFF not in X.columns or X[CUTOFF].nunique() <= 1:
        return est.fit(X).transform(X, horizon_days)
    if X[CUTOFF].isna().any():
        raise ValueError(f"{int(X[CUTOFF].isna().sum())} rows have no {CUTOFF}: each row is fitted with its cutoff")
    # put back by position: X's index may repeat (e.g. customer ids over several cutoffs)
    positions = list(X.groupby(CUTOFF, sort=True).indices.values())
    parts = [est.fit(X.iloc[rows]).transform(X.iloc[rows], horizon_days) for rows in positions]
    order = np.argsort(np.concatenate(positions), kind="stable")
    return pd.concat(parts, ignore_index=True).iloc[order].set_axis(X.index)
