"""The CDNOW oracle ceiling: monthly history by hand, out-of-fold wiring, and inputs from before the holdout only."""

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from tiercast.pipeline.benchmark_cdnow import CALIBRATION_END, read_cdnow
from tiercast.pipeline.cdnow_ceiling import monthly_history, oracle_inputs, out_of_fold, run_cdnow_ceiling

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


def test_out_of_fold_predicts_each_row_with_the_model_of_its_fold():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=400), "z": rng.normal(size=400)})
    y = (X["x"] + rng.normal(size=400) > 0).astype(int).to_numpy()
    idx = np.arange(400)
    folds = [(idx[idx % 2 == 1], idx[idx % 2 == 0]), (idx[idx % 2 == 0], idx[idx % 2 == 1])]
    params = {"num_leaves": 4, "min_child_samples": 20, "learning_rate": 0.1, "verbose": -1, "n_jobs": 1}
    got = out_of_fold(lgb.LGBMClassifier, params, X, y, folds)
    for train, test in folds:
        cut = int(len(train) * 0.8)
        m = lgb.LGBMClassifier(n_estimators=2000, **params).fit(
            X.iloc[train[:cut]],
            y[train[:cut]],
            eval_X=(X.iloc[train[cut:]],),
            eval_y=(y[train[cut:]],),
            callbacks=[lgb.early_stopping(50, verbose=False)],
        )
        np.testing.assert_allclose(got[test], m.predict_proba(X.iloc[test])[:, 1])


def test_oracle_inputs_come_from_before_the_holdout(sample):
    X, targets = oracle_inputs(sample, "rich")
    changed = sample.copy()
    holdout = changed["timestamp"] >= CALIBRATION_END
    changed.loc[holdout, "amount"] = changed.loc[holdout, "amount"] * 3 + 1
    X2, targets2 = oracle_inputs(changed, "rich")
    pd.testing.assert_frame_equal(X, X2)
    assert not np.allclose(targets["future_value"], targets2["future_value"])
    assert len(X) == sample["customer_id"].nunique() and "btyd_p_no_purchase" in X.columns
    assert {"purchase_days_1997_09", "spend_1997_01", "cds_per_purchase_day"} <= set(X.columns)
    assert not any(c in X.columns for c in ("future_value", "churned", "cutoff", "customer_id"))


def test_ceiling_result_on_a_sample(sample):
    grid = ({"num_leaves": 4, "min_child_samples": 100, "learning_rate": 0.05},)
    r = run_cdnow_ceiling(transactions=sample, grid=grid, input_sets=("tiercast",))
    assert r["n_customers"] == sample["customer_id"].nunique() and r["n_folds"] == 5
    (cand,) = r["inputs"]["tiercast"]["candidates"]
    best = r["inputs"]["tiercast"]["best"]
    # the oracle ranks well above chance on held-out customers, and best is the best over the regressors
    assert 0.6 < cand["churn"]["roc_auc"] < 0.9 and 0.5 < cand["value"]["normalized_gini"] < 0.9
    assert best["spearman"] == max(cand["value"]["spearman"], cand["rank_spearman"])
    assert (
        best["total_ratio"][0]
        == best["total_ratio"][1]
        == pytest.approx(cand["value"]["predicted_total"] / cand["value"]["actual_total"])
    )
    assert r["targets"]["roc_auc_min"] == 0.775
