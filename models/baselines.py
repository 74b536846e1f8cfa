"""Baselines that every tiercast model is compared with, behind one interface.

Each baseline is an estimator with

- ``fit(X, y_value=None, y_churn=None)``: learn from a feature frame (and labels, where the baseline uses them),
- ``predict_value(X, horizon_days) -> ndarray``: predicted net spend in the next ``horizon_days``,
- ``predict_churn(X, horizon_days) -> ndarray``: probability-like score of *no purchase* in the horizon,

so a backtest can loop over ``[NaiveBaseline(), CellMeanBaseline(), BTYDForecaster("bgnbd"), ...]``. ``X`` is a
tiercast feature frame computed at a cutoff (days as floats): ``recency_days``, ``tenure_days``,
``repeat_purchase_days``, ``first_to_last_days``, ``repeat_spend_mean``, ``monetary_total``, ``frequency_orders`` and
``spend_{h}d``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from tiercast.features.contract import spend_column

Array = NDArray[np.float64]


def require_columns(X: pd.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in X.columns]
    if missing:
        raise ValueError(f"feature frame lacks columns {missing}")


def float_column(X: pd.DataFrame, name: str) -> Array:
    v = X[name].to_numpy(dtype=float)
    if not np.isfinite(v).all():
        raise ValueError(f"column {name!r} has missing or infinite values")
    return v


def _labels(X: pd.DataFrame, y: ArrayLike | None, name: str) -> Array | None:
    if y is None:
        return None
    v = np.asarray(y, dtype=float).ravel()
    if v.size != len(X):
        raise ValueError(f"{name} has {v.size} rows, X has {len(X)}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} has missing or infinite values")
    return v


# ----------------------------------------------------------------------------------------------- naive


class NaiveBaseline(BaseEstimator):
    """Value = net spend in the last horizon-length window (``spend_{h}d``); churn = recency.

    The churn score is strictly increasing in ``recency_days`` (so its AUC is exactly recency's). With churn
    labels, ``fit`` calibrates it as an unpenalized logistic regression on log(1 + recency_days), which gives
    probabilities for the labels' horizon (Brier, calibration); without labels (or with a single class) the
    score is the empirical CDF of recency in the training frame (a rank in [0, 1], not a probability).
    """

    def fit(self, X: pd.DataFrame, y_value: ArrayLike | None = None, y_churn: ArrayLike | None = None) -> NaiveBaseline:
        """Store the training recency distribution and, given churn labels, the recency → churn calibration."""
        require_columns(X, ["recency_days"])
        rec = float_column(X, "recency_days")
        y = _labels(X, y_churn, "y_churn")
        self.recency_sorted_ = np.sort(rec)
        self.coef_, self.intercept_ = None, None
        if y is not None and 0 < y.mean() < 1:
            lr = LogisticRegression(C=1e10, max_iter=1000).fit(np.log1p(rec)[:, None], y)  # ~unpenalized
            self.coef_, self.intercept_ = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        return self

    def predict_value(self, X: pd.DataFrame, horizon_days: float) -> Array:
        """Net spend of the last ``horizon_days`` before the cutoff, as the prediction for the next ones."""
        col = spend_column(horizon_days)
        require_columns(X, [col])
        return float_column(X, col)

    def predict_churn(self, X: pd.DataFrame, horizon_days: float) -> Array:
        """Calibrated P(no purchase) from recency if fitted with labels, else recency's training-CDF rank."""
        check_is_fitted(self, "recency_sorted_")
        require_columns(X, ["recency_days"])
        rec = float_column(X, "recency_days")
        if self.coef_ is not None:
            return expit(self.intercept_ + self.coef_ * np.log1p(rec))
        n = self.recency_sorted_.size
        lo = np.searchsorted(self.recency_sorted_, rec, side="left")
        hi = np.searchsorted(self.recency_sorted_, rec, side="right")
        return (lo + hi) / (2.0 * n)  # mid-rank: ties share one score, strictly monotone between values


# ----------------------------------------------------------------------------------------------- RFM


def _count_below(edges: Array, v: Array) -> Array:
    return np.searchsorted(edges, v, side="left")


class CellMeanBaseline(BaseEstimator):
    """Predicts with the mean training label of the customer's cell: classic RFM cells, quintile scores R, F, M
    (1..5, 5 = best) from the training frame's quantiles (the ``rfm`` method of the backtest).

    R from ``recency_days`` (recent = 5), F from ``frequency_orders``, M from ``monetary_total``. The score is 1 +
    the number of training quantile edges strictly below the value (reversed for R), so heavily tied features
    (most customers with one order) use fewer levels instead of splitting ties arbitrarily. Value and churn are
    the mean training label per (R, F, M) cell; cells with fewer than ``min_cell_size`` training customers fall
    back to (R, F), then R, then the overall mean. Predictions are for the horizon of the training labels.
    """

    _levels: tuple[tuple[str, ...], ...] = (("R", "F", "M"), ("R", "F"), ("R",))

    def __init__(self, n_bins: int = 5, min_cell_size: int = 30) -> None:
        self.n_bins = n_bins
        self.min_cell_size = min_cell_size

    def _scores(self, X: pd.DataFrame) -> pd.DataFrame:
        require_columns(X, ["recency_days", "frequency_orders", "monetary_total"])
        e = self.edges_
        return pd.DataFrame(
            {
                "R": self.n_bins - _count_below(e["R"], float_column(X, "recency_days")),
                "F": 1 + _count_below(e["F"], float_column(X, "frequency_orders")),
                "M": 1 + _count_below(e["M"], float_column(X, "monetary_total")),
            }
        )

    def fit(
        self, X: pd.DataFrame, y_value: ArrayLike | None = None, y_churn: ArrayLike | None = None
    ) -> CellMeanBaseline:
        """Fit quantile edges on X and per-cell label means (needs at least one of the labels)."""
        if y_value is None and y_churn is None:
            raise ValueError("CellMeanBaseline needs y_value and/or y_churn")
        if len(X) == 0:
            raise ValueError("empty training frame")
        q = np.arange(1, self.n_bins) / self.n_bins
        self.edges_ = {
            "R": np.quantile(float_column(X, "recency_days"), q),
            "F": np.quantile(float_column(X, "frequency_orders"), q),
            "M": np.quantile(float_column(X, "monetary_total"), q),
        }
        scores = self._scores(X)
        self.tables_: dict[str, list[pd.Series] | None] = {}
        self.global_: dict[str, float] = {}
        for name, y in (("value", _labels(X, y_value, "y_value")), ("churn", _labels(X, y_churn, "y_churn"))):
            if y is None:
                self.tables_[name] = None
                continue
            df = scores.assign(y=y)
            tables = []
            for keys in self._levels:
                g = df.groupby(list(keys))["y"].agg(["mean", "size"])
                tables.append(g.loc[g["size"] >= self.min_cell_size, "mean"])
            self.tables_[name] = tables
            self.global_[name] = float(y.mean())
        return self

    def _predict(self, X: pd.DataFrame, name: str) -> Array:
        check_is_fitted(self, "tables_")
        tables = self.tables_[name]
        if tables is None:
            raise ValueError(f"CellMeanBaseline was fitted without y_{name}")
        scores = self._scores(X)
        out = np.full(len(X), np.nan)
        for keys, table in zip(self._levels, tables, strict=True):
            if table.empty:
                continue
            idx = pd.MultiIndex.from_frame(scores[list(keys)]) if len(keys) > 1 else pd.Index(scores[keys[0]])
            vals = table.reindex(idx).to_numpy(dtype=float)
            fill = np.isnan(out) & ~np.isnan(vals)
            out[fill] = vals[fill]
        out[np.isnan(out)] = self.global_[name]
        return out

    def predict_value(self, X: pd.DataFrame, horizon_days: float) -> Array:
        """Mean training future value of the customer's RFM cell (with fallback to coarser cells)."""
        return self._predict(X, "value")

    def predict_churn(self, X: pd.DataFrame, horizon_days: float) -> Array:
        """Training churn rate of the customer's RFM cell (with fallback to coarser cells)."""
        return self._predict(X, "churn")
