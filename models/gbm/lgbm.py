"""Shared LightGBM fitting: hyperparameters and tree count chosen on a time-separated validation cutoff, then a
refit on everything.

Both the value and the churn model choose their settings on the validation cutoff (the latest training cutoff):
each candidate of a small parameter grid is fitted on the earlier cutoffs with early stopping on the validation
cutoff, the candidate with the best validation score wins, and the final model is refitted on all training
cutoffs (validation included) with the winner's parameters and tree count, so the newest behaviour is in it.
Nothing of the test horizon is ever seen: the caller's training and validation label windows end before it.

An optional ``init_score`` (a per-row offset on the raw, link scale) lets a model learn a correction to a prior
prediction, e.g. a buy-till-you-die model's expected spend; predictions then add the offset back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    "n_jobs": 2,  # for large training sets; see _threads
    "deterministic": True,
    "force_row_wise": True,
}

#: The default candidates tried on the validation cutoff (each merged over BASE_PARAMS and the model's params):
#: from very constrained (shallow, big leaves: close to a smooth ranking) to the library defaults. A plain GBM on
#: CDNOW ranges from nGini 0.61 to 0.72 over ordinary settings, so the choice is made on data, never blindly.
DEFAULT_GRID: tuple[dict[str, Any], ...] = (
    {"num_leaves": 4, "min_child_samples": 200, "learning_rate": 0.03},
    {"num_leaves": 7, "min_child_samples": 100, "learning_rate": 0.03},
    {"num_leaves": 15, "min_child_samples": 40, "learning_rate": 0.05},
    {"num_leaves": 31, "min_child_samples": 200, "learning_rate": 0.03},
)

#: Below this many training rows LightGBM runs on one thread: the per-iteration work is too small to share, and on
#: a busy machine OpenMP threads spin-waiting for a busy core make small fits many times slower (0.17 s per tree
#: on 6,000 rows measured, against milliseconds on one thread).
SINGLE_THREAD_ROWS = 200_000

Score = Callable[[np.ndarray, np.ndarray, np.ndarray | None], float]


@dataclass
class GBMFit:
    """What :func:`fit_gbm` chose and fitted.

    ``val_raw`` holds the winning candidate's raw (link-scale) validation scores *without* the offset, from the
    model fitted without the validation rows (out of sample), for blending and calibration on the validation
    cutoff. ``grid`` lists every candidate with its tree count and validation score.
    """

    model: lgb.LGBMModel
    n_trees: int
    params: dict[str, Any]
    val_raw: np.ndarray | None
    grid: list[dict[str, Any]] = field(default_factory=list)


def _raw(model: lgb.LGBMModel, X: pd.DataFrame, num_iteration: int | None = None) -> np.ndarray:
    return np.asarray(model.predict(X, raw_score=True, num_iteration=num_iteration), dtype=float)


# size: the settings search with early stopping over rolling-origin folds in one loop; its running state
# (best score, tree count, raw validation scores per fold) would otherwise travel between helpers as one tuple
def fit_gbm(
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
    init_score: np.ndarray | None = None,
    val_init_score: np.ndarray | None = None,
    grid: Sequence[dict[str, Any]] | None = None,
    score: Score | None = None,
    probe_mask: np.ndarray | None = None,
    folds: Sequence[tuple[np.ndarray | None, np.ndarray]] | None = None,
) -> GBMFit:
    """Fit ``estimator_cls``; with a validation set, choose the candidate and tree count there and refit on all.

    Candidates are ``params`` merged with each entry of ``grid`` (just ``params`` without a grid). ``score(y_val,
    val_raw, val_init_score)`` rates a candidate on the validation cutoff (higher is better; default: minus the
    objective's own validation loss at the best iteration). Ties go to the earlier candidate, so the choice is
    deterministic. ``probe_mask`` restricts the candidates' fits to some training rows (e.g. those whose label
    windows end before the validation cutoff); the final refit always uses every row.

    ``folds`` (rolling origin): pairs of (training rows of the probe fits or None for all, validation rows), e.g.
    one per validation cutoff with the training rows whose label windows end by it. Each candidate is fitted and
    early-stopped per fold; its score is the mean over folds and its tree count the mean of the folds' counts.
    ``val_raw`` then holds each validation row's score from its own fold. Without ``folds``: one fold of
    ``probe_mask`` and every validation row.
    """
    base = {**BASE_PARAMS, "n_jobs": 1 if len(X) < SINGLE_THREAD_ROWS else BASE_PARAMS["n_jobs"]}
    base = {**base, **params, "random_state": random_state}
    candidates = [{**base, **g} for g in grid] if grid else [base]
    init = None if init_score is None else np.asarray(init_score, dtype=float)
    if X_val is None or y_val is None or len(X_val) == 0:
        chosen = candidates[0]
        model = estimator_cls(n_estimators=n_estimators, **chosen).fit(X, y, init_score=init)
        return GBMFit(model=model, n_trees=n_estimators, params=chosen, val_raw=None)

    v_init = None if val_init_score is None else np.asarray(val_init_score, dtype=float)
    if folds is None:
        folds = [(probe_mask, np.ones(len(X_val), dtype=bool))]
    y_arr, y_val_arr = np.asarray(y), np.asarray(y_val)
    keys = sorted({k for g in grid or () for k in g})
    best: tuple[float, int, dict[str, Any], np.ndarray] | None = None
    table: list[dict[str, Any]] = []
    for cand in candidates:
        val_raw = np.zeros(len(X_val))
        fold_trees, fold_scores = [], []
        for probe_rows, val_rows in folds:
            keep = np.ones(len(X), dtype=bool) if probe_rows is None else np.asarray(probe_rows, dtype=bool)
            vr = np.asarray(val_rows, dtype=bool)
            fold_init = None if v_init is None else v_init[vr]
            probe = estimator_cls(n_estimators=n_estimators, **cand).fit(
                X.loc[keep],
                y_arr[keep],
                init_score=None if init is None else init[keep],
                eval_X=(X_val.loc[vr],),
                eval_y=(y_val_arr[vr],),
                eval_init_score=None if fold_init is None else [fold_init],
                callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
            )
            n = max(int(probe.best_iteration_ or n_estimators), 1)
            val_raw[vr] = _raw(probe, X_val.loc[vr], n)
            if score is None:
                # LightGBM's own validation loss at the best iteration (lower is better)
                value = -float(next(iter(probe.best_score_["valid_0"].values())))
            else:
                value = float(score(y_val_arr[vr], val_raw[vr], fold_init))
            fold_trees.append(n)
            fold_scores.append(value if np.isfinite(value) else -np.inf)  # unscorable never locks the choice
        value = float(np.mean(fold_scores))
        n_trees = max(int(round(float(np.mean(fold_trees)))), 1)
        table.append({**{k: cand[k] for k in keys}, "n_trees": n_trees, "val_score": value})
        if best is None or value > best[0]:
            best = (value, n_trees, cand, val_raw)
    assert best is not None
    _, n_trees, chosen, val_raw = best
    X_all = pd.concat([X, X_val], ignore_index=True)
    y_all = np.concatenate([np.asarray(y), np.asarray(y_val)])
    init_all = None if init is None else np.concatenate([init, v_init if v_init is not None else np.zeros(len(X_val))])
    model = estimator_cls(n_estimators=n_trees, **chosen).fit(X_all, y_all, init_score=init_all)
    return GBMFit(model=model, n_trees=n_trees, params=chosen, val_raw=val_raw, grid=table)
