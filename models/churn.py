"""Churn model: LightGBM classifier of "no purchase in the horizon", with calibrated probabilities."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from tiercast.models._lgbm import fit_with_early_stopping

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


class ChurnModel(ClassifierMixin, BaseEstimator):
    """Predicts the probability that a customer makes no purchase in the next horizon.

    Trees are chosen by early stopping on the validation cutoff. Probabilities are recalibrated with a Platt
    (logistic) map fitted on the validation cutoff's out-of-sample scores: monotone, so it keeps the ranking (AUC)
    and only fixes the scale (Brier, calibration curve).
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
    ) -> ChurnModel:
        params = {"objective": "binary", **(self.params or {})}
        y_v = None if y_val is None else np.asarray(y_val, dtype=int)
        self.model_, self.n_trees_, val_pred = fit_with_early_stopping(
            lgb.LGBMClassifier,
            params,
            X,
            np.asarray(y, dtype=int),
            X_val,
            y_v,
            n_estimators=self.n_estimators,
            early_stopping_rounds=self.early_stopping_rounds,
            random_state=self.random_state,
        )
        self.calibrator_ = None
        if val_pred is not None and len(np.unique(y_v)) == 2:
            self.calibrator_ = LogisticRegression(C=1e6).fit(_logit(val_pred).reshape(-1, 1), y_v)
        self.classes_ = np.array([0, 1])
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Columns: P(stays), P(churns)."""
        check_is_fitted(self, "model_")
        raw = self.model_.predict_proba(X[list(self.feature_names_in_)])[:, 1]
        p = raw if self.calibrator_ is None else self.calibrator_.predict_proba(_logit(raw).reshape(-1, 1))[:, 1]
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """Per-feature contributions to the raw log-odds (last column the bias), for reasons."""
        check_is_fitted(self, "model_")
        return np.asarray(self.model_.predict(X[list(self.feature_names_in_)], pred_contrib=True))
