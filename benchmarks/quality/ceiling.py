"""How far the CDNOW holdout can be predicted: a cross-validated oracle estimate of the benchmark's ceiling.

Every method in :mod:`tiercast.benchmarks.quality.cdnow` learns only from data before 1997-10-01. The *oracle* here
learns from the holdout's own labels: 5-fold stratified cross-validation over the 23,570 customers scored at
1997-10-01, each customer predicted by models fitted on the other folds' holdout outcomes. It therefore trains on
exactly the scored 273-day horizon and knows the holdout's level (the cohort bought more in the holdout than its
history suggests), which no leak-free method can. It is never a method. It is an *estimate*, not a bound: one model
family (LightGBM), a small grid and 80% of each training fold for fitting, so a cleverer oracle can do a little
better (e.g. a rank blend of its churn and value outputs adds ~0.001 Spearman), and its figures move by about
0.001-0.002 between fold seeds, which are reported as a range. A target well above the estimate is out of reach
for a model trained before the holdout; one within its range is at the limit of these inputs.

Inputs, two sets:

* ``tiercast``: tiercast's feature rows at 1997-10-01 plus the BG/NBD x Gamma-Gamma outputs for 273 days (the
  inputs of the stacked models);
* ``rich``: those plus every customer's purchase days and spend per calendar month of the calibration period and
  CDs per purchase day -- the file's whole content at monthly resolution (diagnostic columns built here with
  pandas, not product features).

Models per fold: for every candidate of the default parameter grid, a LightGBM classifier of "no purchase in the
holdout" and a Tweedie regressor of holdout spend, early-stopped on a random fifth of the training fold; and, for
Spearman, a regressor of the holdout spend's rank within the training fold (the prediction that targets a rank
correlation, which the expected spend does not). The best candidate per metric is kept, which flatters the oracle.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.model_selection import StratifiedKFold

from tiercast.benchmarks.quality.cdnow import TARGETS
from tiercast.benchmarks.quality.cdnow_data import DEFAULT_PATH, STANDARD, labelled_rows, read_cdnow
from tiercast.features.build import DEFAULT_WINDOWS_DAYS
from tiercast.features.contract import (
    AMOUNT,
    CHURNED,
    CUSTOMER_ID,
    FUTURE_VALUE,
    ID_COLUMNS,
    LABEL_COLUMNS,
    QUANTITY,
    TIMESTAMP,
)
from tiercast.models.btyd.stacker import BTYDStacker
from tiercast.models.evaluation import churn_metrics, spearman, value_metrics
from tiercast.models.gbm.lgbm import BASE_PARAMS, DEFAULT_GRID

__all__ = ["INPUT_SETS", "fold_ranks", "monthly_history", "oracle_inputs", "out_of_fold", "run_cdnow_ceiling"]

INPUT_SETS: tuple[str, ...] = ("tiercast", "rich")
N_FOLDS = 5


def monthly_history(tx: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Per customer (index): purchase days and spend in each calendar month before ``cutoff``, and CDs per
    purchase day (``quantity``)."""
    t = tx[tx[TIMESTAMP] < cutoff]
    days = t.groupby([CUSTOMER_ID, t[TIMESTAMP].dt.normalize()]).agg(amount=(AMOUNT, "sum"), quantity=(QUANTITY, "sum"))
    days = days.reset_index()
    month = days[TIMESTAMP].dt.strftime("%Y_%m")
    counts = pd.crosstab(days[CUSTOMER_ID], month).add_prefix("purchase_days_")
    spend = days.pivot_table(index=CUSTOMER_ID, columns=month, values=AMOUNT, aggfunc="sum", fill_value=0.0)
    per_day = days.groupby(CUSTOMER_ID)[QUANTITY].mean().rename("cds_per_purchase_day")
    return pd.concat([counts.astype(float), spend.add_prefix("spend_"), per_day], axis=1)


def oracle_inputs(tx: pd.DataFrame, inputs: str = "tiercast") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(X, targets) at the standard split's holdout cutoff: ``inputs`` in :data:`INPUT_SETS`; targets hold
    customer_id, future_value and churned. X uses transactions before 1997-10-01 only."""
    if inputs not in INPUT_SETS:
        raise ValueError(f"inputs must be one of {INPUT_SETS}, got {inputs!r}")
    sp = STANDARD
    rows = labelled_rows(tx[tx[TIMESTAMP] < sp.holdout_end], sp.calibration_end, sp.holdout_end, DEFAULT_WINDOWS_DAYS)
    feats = rows.drop(columns=[c for c in (*ID_COLUMNS, *LABEL_COLUMNS) if c in rows.columns])
    btyd = BTYDStacker().fit(rows).transform(rows, sp.horizon_days)
    X = pd.concat([feats.reset_index(drop=True), btyd.reset_index(drop=True)], axis=1)
    if inputs == "rich":
        hist = monthly_history(tx, sp.calibration_end).reindex(rows[CUSTOMER_ID]).fillna(0.0)
        X = pd.concat([X, hist.reset_index(drop=True)], axis=1)
    return X, rows[[CUSTOMER_ID, FUTURE_VALUE, CHURNED]].reset_index(drop=True)


def fold_ranks(y: np.ndarray) -> np.ndarray:
    """Ranks scaled to (0, 1], ties averaged: the rank regressor's target, computed within each training fold."""
    return rankdata(y) / len(y)


def out_of_fold(
    model: type[lgb.LGBMModel],
    params: dict[str, Any],
    X: pd.DataFrame,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    seed: int = 0,
    target: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Predictions for every row from the fold model that did not see it (probabilities for a classifier).

    Each fold model is early-stopped on a random fifth of its training rows (drawn with ``seed``; rows are sorted
    by customer id, i.e. by acquisition date, so a fixed tail would stop on the youngest customers). ``target``
    maps the training rows' labels to the fitted target (e.g. :func:`fold_ranks`); the held-out rows' labels are
    never read."""
    rng = np.random.default_rng(seed)
    out = np.full(len(X), np.nan)
    for train, test in folds:
        train = rng.permutation(train)
        y_train = y[train] if target is None else target(y[train])
        cut = int(len(train) * 0.8)
        m = model(n_estimators=2000, **params).fit(
            X.iloc[train[:cut]],
            y_train[:cut],
            eval_X=(X.iloc[train[cut:]],),
            eval_y=(y_train[cut:],),
            callbacks=[lgb.early_stopping(50, verbose=False)],
        )
        pred = m.predict_proba(X.iloc[test])[:, 1] if isinstance(m, lgb.LGBMClassifier) else m.predict(X.iloc[test])
        out[test] = pred
    assert np.isfinite(out).all()
    return out


def _best(candidates: list[dict[str, Any]]) -> dict[str, float]:
    """The best value of each metric over grid candidates (Spearman over both regressors)."""
    return {
        "normalized_gini": max(c["value"]["normalized_gini"] for c in candidates),
        "spearman": max(max(c["value"]["spearman"], c["rank_spearman"]) for c in candidates),
        "roc_auc": max(c["churn"]["roc_auc"] for c in candidates),
        "brier": min(c["churn"]["brier"] for c in candidates),
        "total_ratio_min": min(c["value"]["predicted_total"] / c["value"]["actual_total"] for c in candidates),
        "total_ratio_max": max(c["value"]["predicted_total"] / c["value"]["actual_total"] for c in candidates),
    }


def run_cdnow_ceiling(
    data_path: str | Path = DEFAULT_PATH,
    *,
    transactions: pd.DataFrame | None = None,
    seeds: tuple[int, ...] = (0, 1, 2),
    grid: tuple[dict[str, Any], ...] = DEFAULT_GRID,
    input_sets: tuple[str, ...] = INPUT_SETS,
) -> dict[str, Any]:
    """The oracle's out-of-fold metrics for each fold seed: ``{"n_folds", "seeds", "n_customers", "targets",
    "inputs": {SET: {"n_columns", "runs": [{"seed", "candidates", "best"}], "mean": {...}, "low": {...},
    "high": {...}}}}``. A candidate holds its grid entry, ``value`` and ``churn`` metrics and ``rank_spearman``
    (the rank regressor's Spearman); ``best`` the best value of each metric over candidates (see :func:`_best`);
    ``mean`` / ``low`` / ``high`` summarize ``best`` over the seeds."""
    tx = read_cdnow(data_path) if transactions is None else transactions
    base = {k: v for k, v in BASE_PARAMS.items() if k != "n_jobs"}
    result: dict[str, Any] = {"n_folds": N_FOLDS, "seeds": list(seeds), "targets": TARGETS, "inputs": {}}
    for name in input_sets:
        X, targets = oracle_inputs(tx, name)
        churned = targets[CHURNED].to_numpy(dtype=int)
        spend = targets[FUTURE_VALUE].clip(lower=0.0).to_numpy(dtype=float)
        runs = []
        for seed in seeds:
            folds = list(StratifiedKFold(N_FOLDS, shuffle=True, random_state=seed).split(X, churned))
            candidates = []
            for g in grid:
                params = {**base, **g, "random_state": seed, "n_jobs": 1}
                p_churn = out_of_fold(lgb.LGBMClassifier, params, X, churned, folds, seed=seed)
                tweedie = {**params, "objective": "tweedie", "tweedie_variance_power": 1.3}
                value = out_of_fold(lgb.LGBMRegressor, tweedie, X, spend, folds, seed=seed)
                rank = out_of_fold(lgb.LGBMRegressor, params, X, spend, folds, seed=seed, target=fold_ranks)
                candidates.append(
                    {
                        "params": dict(g),
                        "value": value_metrics(spend, value),
                        "churn": churn_metrics(churned, p_churn),
                        "rank_spearman": spearman(spend, rank),
                    }
                )
            runs.append({"seed": seed, "candidates": candidates, "best": _best(candidates)})
        bests = pd.DataFrame([r["best"] for r in runs])
        result["n_customers"] = len(X)
        result["inputs"][name] = {
            "n_columns": X.shape[1],
            "runs": runs,
            "mean": bests.mean().to_dict(),
            "low": bests.min().to_dict(),
            "high": bests.max().to_dict(),
        }
    return result
