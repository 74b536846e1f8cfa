"""Shared LightGBM fitting: early stopping on a time-separated validation set, then a refit on everything.

Both the value and the churn model choose their number of trees on the validation cutoff (the latest training
cutoff) and then refit on all training cutoffs with that number, so the newest behaviour is in the final model.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

# Conservative defaults: small leaves and a minimum leaf size keep trees from memorising a few big spenders.
BASE_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 40,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "verbose": -1,
    "n_jobs": 2,
    "deterministic": True,
    "force_row_wise": True,
}


def fit_with_early_stopping(
    estimator_cls: type[lgb.LGBMModel],
    params: dict[str, Any],
    X: pd.DataFrame,
    y: np.ndarray,
    X_val: pd.DataFrame | None,
    y_val: np.ndarray | None,
    *,
    n_estimators: int,
    early_stopping_rounds: int,
    random_state: int,
) -> tuple[lgb.LGBMModel, int, np.ndarray | None]:
    """Fit ``estimator_cls``; with a validation set, pick the tree count there and refit on train + validation.

    Returns the final model, its tree count and the out-of-sample validation predictions of the model fitted
    without the validation rows (None without a validation set), which the churn model calibrates on.
    """
    kwargs = {**BASE_PARAMS, **params, "random_state": random_state}
    if X_val is None or y_val is None or len(X_val) == 0:
        model = estimator_cls(n_estimators=n_estimators, **kwargs).fit(X, y)
        return model, n_estimators, None
    probe = estimator_cls(n_estimators=n_estimators, **kwargs).fit(
        X,
        y,
        eval_X=(X_val,),
        eval_y=(y_val,),
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
    )
    best = max(int(probe.best_iteration_ or n_estimators), 1)
    if isinstance(probe, lgb.LGBMClassifier):
        val_pred = probe.predict_proba(X_val, num_iteration=best)[:, 1]
    else:
        val_pred = probe.predict(X_val, num_iteration=best)
    X_all = pd.concat([X, X_val], ignore_index=True)
    y_all = np.concatenate([np.asarray(y), np.asarray(y_val)])
    model = estimator_cls(n_estimators=best, **kwargs).fit(X_all, y_all)
    return model, best, np.asarray(val_pred, dtype=float)
