"""Future value model: LightGBM regression of net spend over the horizon."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from tiercast.models._lgbm import fit_with_early_stopping


class ValueModel(RegressorMixin, BaseEstimator):
    """Predicts net spend in the next horizon with a Tweedie objective.

    Spend is zero for most customers and heavy-tailed for the rest; a Tweedie loss (compound Poisson-Gamma) models
    both at once and its log link keeps predictions positive and their sum close to the realized total. Net spend
    below zero (refunds exceeding purchases) is clipped to zero for fitting, since the loss is defined on y >= 0.
    """

    def __init__(
        self,
        params: dict[str, Any] | None = None,
        n_estimators: int = 2000,
        early_stopping_rounds: int = 50,
        random_state: int = 42,
    ) -> None:
        self.params = params
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | pd.Series,
        X_val: pd.DataFrame | None = None,
        y_val: np.ndarray | pd.Series | None = None,
    ) -> ValueModel:
        params = {"objective": "tweedie", "tweedie_variance_power": 1.3, **(self.params or {})}
        y_fit = np.clip(np.asarray(y, dtype=float), 0.0, None)
        y_v = None if y_val is None else np.clip(np.asarray(y_val, dtype=float), 0.0, None)
        self.model_, self.n_trees_, _ = fit_with_early_stopping(
            lgb.LGBMRegressor,
            params,
            X,
            y_fit,
            X_val,
            y_v,
            n_estimators=self.n_estimators,
            early_stopping_rounds=self.early_stopping_rounds,
            random_state=self.random_state,
        )
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "model_")
        return np.asarray(self.model_.predict(X[list(self.feature_names_in_)]), dtype=float)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """Per-feature contributions (log scale, last column the bias), for reasons."""
        check_is_fitted(self, "model_")
        return np.asarray(self.model_.predict(X[list(self.feature_names_in_)], pred_contrib=True))
