"""The CDNOW oracle ceiling: monthly history by hand, out-of-fold predictions that never read their own labels, and
inputs from before the holdout only."""

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from tiercast.benchmarks.quality.cdnow_data import CALIBRATION_END, read_cdnow
from tiercast.benchmarks.quality.ceiling import (
    fold_ranks,
    monthly_history,
    oracle_inputs,
    out_of_fold,
    run_cdnow_ceiling,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "cdnow" / "CDNOW_master.txt"


@pytest.fixture(scope="module")
def sample():
    tx = read_cdnow(DATA)
    ids = np.sort(tx["customer_id"].unique())[::10]
    return tx[tx["customer_id"].isin(ids)].reset_index(drop=True)


def test_monthly_history_by_hand():
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b"],
            "timestamp": pd.to_datetime(["1997-01-03", "1997-01-03", "1997-02-10", "1997-10-02", "1997-02-01"]),
            "amount": [10.0, 5.0, 20.0, 99.0, 7.0],
            "quantity": [1.0, 2.0, 1.0, 9.0, 1.0],
        }
    )
    h = monthly_history(tx, CALIBRATION_END)
    # a: Jan 3 (two lines, one purchase day: 15, 3 CDs), Feb 10 (20, 1 CD); Oct 2 is after the cutoff. b: Feb 1.
    assert h.loc["a", ["purchase_days_1997_01", "purchase_days_1997_02"]].tolist() == [1.0, 1.0]
    assert h.loc["a", ["spend_1997_01", "spend_1997_02"]].tolist() == [15.0, 20.0]
    assert h.loc["a", "cds_per_purchase_day"] == 2.0  # (3 + 1) / 2
    assert h.loc["b", ["purchase_days_1997_01", "purchase_days_1997_02", "spend_1997_02"]].tolist() == [0.0, 1.0, 7.0]
    assert not any("1997_10" in c for c in h.columns)


def test_out_of_fold_never_reads_the_labels_it_predicts():
    """Changing the labels of one fold's held-out rows leaves that fold's predictions exactly as they were (and
    changes the other fold's, whose model trains on them); with a target function too."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=400), "z": rng.normal(size=400)})
    y = X["x"].to_numpy() + rng.normal(size=400)
    idx = np.arange(400)
    held_a, held_b = idx[idx % 2 == 0], idx[idx % 2 == 1]
    folds = [(held_b, held_a), (held_a, held_b)]
    params = {"num_leaves": 4, "min_child_samples": 20, "learning_rate": 0.1, "verbose": -1, "n_jobs": 1}
    for target in (None, fold_ranks):
        got = out_of_fold(lgb.LGBMRegressor, params, X, y, folds, seed=1, target=target)
        changed = y.copy()
        changed[held_a] = rng.normal(size=held_a.size) * 10
        other = out_of_fold(lgb.LGBMRegressor, params, X, changed, folds, seed=1, target=target)
        np.testing.assert_array_equal(got[held_a], other[held_a])
        assert not np.allclose(got[held_b], other[held_b])


def test_fold_ranks():
    np.testing.assert_allclose(fold_ranks(np.array([0.0, 5.0, 0.0, 2.0])), [0.375, 1.0, 0.375, 0.75])


def test_oracle_inputs_come_from_before_the_holdout(sample):
    """Changing, dropping or adding holdout transactions changes the targets, never the inputs."""
    X, targets = oracle_inputs(sample, "rich")
    holdout = sample["timestamp"] >= CALIBRATION_END
    scaled = sample.assign(amount=np.where(holdout, sample["amount"] * 3 + 1, sample["amount"]))
    first = sample.drop_duplicates("customer_id").assign(timestamp=CALIBRATION_END, amount=500.0)
    for changed in (scaled, sample[~holdout], pd.concat([sample, first], ignore_index=True)):
        X2, targets2 = oracle_inputs(changed, "rich")
        pd.testing.assert_frame_equal(X, X2)
        assert not np.allclose(targets["future_value"], targets2["future_value"])
    assert len(X) == sample["customer_id"].nunique() and "btyd_p_no_purchase" in X.columns
    assert {"purchase_days_1997_09", "spend_1997_01", "cds_per_purchase_day"} <= set(X.columns)
    assert not any(c in X.columns for c in ("future_value", "churned", "cutoff", "customer_id"))


def test_ceiling_result_on_a_sample(sample):
    grid = ({"num_leaves": 4, "min_child_samples": 100, "learning_rate": 0.05},)
    r = run_cdnow_ceiling(transactions=sample, grid=grid, input_sets=("tiercast",), seeds=(0,))
    assert r["n_customers"] == sample["customer_id"].nunique() and r["n_folds"] == 5 and r["seeds"] == [0]
    summary = r["inputs"]["tiercast"]
    (run,) = summary["runs"]
    (cand,) = run["candidates"]
    best = run["best"]
    assert summary["mean"] == summary["low"] == summary["high"] == pytest.approx(best)
    # the oracle ranks well above chance on held-out customers, and best is the best over the regressors
    assert 0.6 < cand["churn"]["roc_auc"] < 0.9 and 0.5 < cand["value"]["normalized_gini"] < 0.9
    assert best["spearman"] == max(cand["value"]["spearman"], cand["rank_spearman"])
    ratio = cand["value"]["predicted_total"] / cand["value"]["actual_total"]
    assert best["total_ratio_min"] == best["total_ratio_max"] == pytest.approx(ratio)
    assert r["targets"]["roc_auc_min"] == 0.772
