"""The backtest table: every method on the same test cutoffs, leak-free, with bootstrap comparisons."""

import numpy as np
import pandas as pd
import pytest

from tests.models.test_stacking import simulate_transactions
from tiercast.features.cutoff_plan import data_bounds, rolling_test_plans
from tiercast.features.labels import build_labels
from tiercast.pipeline.config import load_config
from tiercast.pipeline.ingest.loader import from_ingest
from tiercast.pipeline.ingest.rules import IngestResult
from tiercast.pipeline.jobs.backtest import BASELINES, METHODS, fit_models, run_backtest
from tiercast.pipeline.jobs.predictions import PREDICTION_COLUMNS

HORIZON = 60


@pytest.fixture(scope="module")
def setup():
    config = load_config(
        "configs/online_retail_ii.yaml",
        overrides={
            "horizon_days": HORIZON,
            "features": {"windows_days": [30, 90]},
            "cutoffs": {"step_days": 30, "n_train": 4, "min_history_days": 30},
            # one thread: on a shared machine, OpenMP threads waiting on busy cores make small fits many times slower
            "models": {
                "n_estimators": 200,
                "early_stopping_rounds": 20,
                "param_grid": "none",
                "value_params": {"n_jobs": 1},
                "churn_params": {"n_jobs": 1},
            },
        },
    )
    tx = simulate_transactions(n_customers=700, seed=3)
    ingest = from_ingest(
        config, IngestResult(accepted=tx, quarantine=pd.DataFrame(), n_read=len(tx), source="synthetic")
    )
    return config, ingest


@pytest.fixture(scope="module")
def result(setup):
    config, ingest = setup
    return run_backtest(config, ingest, n_tests=2, n_boot=100, return_predictions=True)


@pytest.fixture(scope="module")
def table(result):
    return result[0]


def test_per_customer_predictions_match_the_table_and_the_labels(setup, result):
    config, ingest = setup
    table, preds = result
    assert list(preds.columns) == list(PREDICTION_COLUMNS)
    n = table.drop_duplicates("test_cutoff")["n_customers"].sum()
    assert len(preds) == n * len(METHODS)  # customers x test cutoffs x methods
    assert not preds.duplicated(["customer_id", "cutoff", "method"]).any()
    for (cutoff, method), part in preds.groupby(["cutoff", "method"]):
        row = table[(table["test_cutoff"] == cutoff) & (table["method"] == method)].iloc[0]
        assert part["predicted_value"].sum() == pytest.approx(row["predicted_total"])
        assert part["churn_probability"].mean() == pytest.approx(row["mean_churn_probability"])
        # the realized columns are the labels of [cutoff, cutoff + horizon), computed here from the transactions
        labels = build_labels(ingest.accepted, cutoff=cutoff, horizon_days=HORIZON).set_index("customer_id")
        realized = labels.reindex(part["customer_id"])
        np.testing.assert_allclose(part["realized_value"], realized["future_value"].fillna(0.0))
        np.testing.assert_array_equal(part["churned"], realized["churned"].fillna(1).astype(int))


def test_every_method_is_scored_on_the_same_cutoffs_and_customers(table):
    assert list(table["method"]) == list(METHODS) * 2
    assert table["test_cutoff"].nunique() == 2
    for _, part in table.groupby("test_cutoff"):
        assert part["actual_total"].nunique() == 1 and part["n_customers"].nunique() == 1
    metrics = ["normalized_gini", "spearman", "mae", "rmse", "top10_capture", "predicted_total", "roc_auc", "brier"]
    assert np.isfinite(table[metrics].to_numpy(dtype=float)).all()
    assert table[["roc_auc", "pr_auc", "brier"]].stack().between(0, 1).all()


def test_training_never_touches_the_test_horizon(setup, table):
    config, ingest = setup
    horizon = pd.Timedelta(days=HORIZON)
    assert (table["validation_cutoff"] + horizon == table["test_cutoff"]).all()
    for plan in rolling_test_plans(*data_bounds(ingest.accepted), config.cutoff_rules(), 2):
        assert max(plan.train) + horizon <= plan.test
        assert plan.validation == max(plan.train)


def test_tiercast_rows_carry_a_paired_bootstrap_against_the_best_baseline(table):
    tc = table[table["method"] == "tiercast"]
    assert tc["gini_vs"].isin(BASELINES).all() and tc["auc_vs"].isin(BASELINES).all()
    assert (tc["gini_lo"] <= tc["gini_hi"]).all() and (tc["auc_lo"] <= tc["auc_hi"]).all()
    for _, row in tc.iterrows():
        best = table[(table["test_cutoff"] == row["test_cutoff"]) & (table["method"] == row["gini_vs"])]
        assert row["gini_diff"] == pytest.approx(row["normalized_gini"] - best["normalized_gini"].iloc[0])
    assert table.loc[table["method"] != "tiercast", "gini_diff"].isna().all()


def test_stacked_model_keeps_up_with_btyd_and_beats_naive(table):
    """The synthetic customers follow BG/NBD, so the BTYD baselines are near-optimal there."""
    for _, part in table.groupby("test_cutoff"):
        m = part.set_index("method")
        assert m.loc["tiercast", "normalized_gini"] > m.loc["naive", "normalized_gini"]
        assert (
            m.loc["tiercast", "normalized_gini"] > m.loc[["bgnbd_gg", "paretonbd_gg"], "normalized_gini"].max() - 0.03
        )
        assert m.loc["tiercast", "roc_auc"] > m.loc[["naive", "rfm"], "roc_auc"].max()
        assert m.loc["tiercast", "roc_auc"] > m.loc["lgbm", "roc_auc"] - 0.01


def test_backtest_is_deterministic(setup):
    config, ingest = setup
    a = run_backtest(config, ingest, n_tests=1, n_boot=0, methods=("naive", "tiercast"))
    b = run_backtest(config, ingest, n_tests=1, n_boot=0, methods=("naive", "tiercast"))
    pd.testing.assert_frame_equal(a, b)


def test_unknown_method_and_bad_validation_are_errors(setup):
    config, ingest = setup
    with pytest.raises(ValueError, match="unknown methods"):
        run_backtest(config, ingest, methods=("naive", "oracle"))
    frame = pd.DataFrame({"cutoff": pd.to_datetime(["2022-01-01"]), "future_value": [1.0], "churned": [0.0]})
    with pytest.raises(ValueError, match="validation cutoff"):
        fit_models(frame, pd.Timestamp("2022-02-01"), config)
    with pytest.raises(ValueError, match="at least two training cutoffs"):
        fit_models(frame, pd.Timestamp("2022-01-01"), config, stacked=False)
