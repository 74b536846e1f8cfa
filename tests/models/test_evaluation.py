"""Metric functions on tiny hand-computed examples, edge cases and properties."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiercast.models.evaluation import (
    brier,
    calibration_table,
    churn_metrics,
    decile_table,
    mae,
    normalized_gini,
    paired_bootstrap,
    pr_auc,
    rmse,
    roc_auc,
    spearman,
    tier_metrics,
    top_capture,
    value_metrics,
)

# ----------------------------------------------------------------------------------------------- value


def test_normalized_gini_hand_computed() -> None:
    # actual ordered by prediction: 4, 0, 2, 0 -> Lorenz shares 4/6, 4/6, 1, 1 -> sum 10/3; minus (n+1)/2 = 2.5
    # gives 5/6. Ideal order 4, 2, 0, 0 -> shares 4/6, 1, 1, 1 -> 11/3 - 2.5 = 7/6. Ratio (5/6) / (7/6) = 5/7.
    actual = [4, 0, 2, 0]
    assert normalized_gini(actual, [0.9, 0.7, 0.3, 0.1]) == pytest.approx(5 / 7)


def test_normalized_gini_ties_are_averaged() -> None:
    # predictions tie in pairs: each pair counts with its mean actual -> order 2, 2, 1, 1 -> shares 1/3, 2/3, 5/6, 1
    # -> 17/6 - 2.5 = 1/3; divided by 7/6 gives 2/7, whatever the order of the rows
    assert normalized_gini([4, 0, 2, 0], [1, 1, 0, 0]) == pytest.approx(2 / 7)
    assert normalized_gini([0, 4, 0, 2], [1, 1, 0, 0]) == pytest.approx(2 / 7)
    # a constant prediction carries no ranking information
    assert normalized_gini([4, 0, 2, 0], [3, 3, 3, 3]) == pytest.approx(0.0)


def test_normalized_gini_perfect_and_reversed() -> None:
    a = np.array([0.0, 3.0, 10.0, 1.0, 0.0, 7.5])
    assert normalized_gini(a, a) == pytest.approx(1.0)
    assert normalized_gini(a, -a) == pytest.approx(-1.0)
    assert normalized_gini(pd.Series(a), pd.Series(np.log1p(a))) == pytest.approx(1.0)


def test_normalized_gini_undefined_for_constant_actual() -> None:
    with pytest.raises(ValueError, match="constant"):
        normalized_gini([0, 0, 0], [1, 2, 3])
    with pytest.raises(ValueError, match="length mismatch"):
        normalized_gini([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        normalized_gini([1, np.nan], [1, 2])


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.floats(-50, 500, allow_nan=False, allow_subnormal=False), st.integers(-50, 50)),
        min_size=2,
        max_size=40,
    ).filter(lambda rows: len({a for a, _ in rows}) > 1)
)
def test_normalized_gini_invariant_to_monotone_transforms(data) -> None:
    a = np.array([r[0] for r in data])
    p = np.array([r[1] for r in data], dtype=float)
    g = normalized_gini(a, p)
    assert -1 - 1e-9 <= g <= 1 + 1e-9
    for transformed in (np.exp(p / 10), p**3 + 7, 2 * p - 1):
        assert normalized_gini(a, transformed) == pytest.approx(g, abs=1e-9)
    assert normalized_gini(a, -p) == pytest.approx(-g, abs=1e-9)  # reversing the ranking flips the sign
    perm = np.random.default_rng(len(a)).permutation(len(a))
    assert normalized_gini(a[perm], p[perm]) == pytest.approx(g, abs=1e-9)  # row order does not matter


def test_spearman_mae_rmse() -> None:
    # rank differences 0, 1, 1, 0: rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))
    # errors 1, 0, 2
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert rmse([1, 2, 3], [2, 2, 5]) == pytest.approx(math.sqrt(5 / 3))


def test_top_capture_hand_computed() -> None:
    actual = [10, 0, 5, 1, 4]  # total 20
    pred = [5, 4, 3, 2, 1]
    assert top_capture(actual, pred, 0.2) == pytest.approx(10 / 20)  # k = 1
    assert top_capture(actual, pred, 0.4) == pytest.approx(10 / 20)  # k = 2: 10 + 0
    assert top_capture(actual, pred, 0.6) == pytest.approx(15 / 20)  # k = 3
    assert top_capture(actual, pred, 1.0) == pytest.approx(1.0)
    # k = 2 with customers 2 and 3 tied for the second place: each counts half -> (10 + (0 + 5) / 2) / 20
    assert top_capture(actual, [5, 3, 3, 2, 1], 0.4) == pytest.approx(12.5 / 20)
    with pytest.raises(ValueError, match="positive total"):
        top_capture([0, 0, 0], [1, 2, 3], 0.5)
    with pytest.raises(ValueError, match="share"):
        top_capture(actual, pred, 0.0)


def test_decile_table_hand_computed() -> None:
    pred = np.arange(10.0)  # 9 is the best
    actual = np.array([0, 0, 0, 0, 0, 0, 1, 1, 4, 4], dtype=float)  # total 10
    t = decile_table(actual, pred, n_bins=5)
    assert t["decile"].tolist() == [1, 2, 3, 4, 5]
    assert t["count"].tolist() == [2] * 5
    assert t["mean_predicted"].tolist() == [8.5, 6.5, 4.5, 2.5, 0.5]
    assert t["mean_actual"].tolist() == [4.0, 1.0, 0.0, 0.0, 0.0]
    assert t["share_actual"].tolist() == pytest.approx([0.8, 0.2, 0, 0, 0])
    assert t["cum_share_actual"].tolist() == pytest.approx([0.8, 1.0, 1.0, 1.0, 1.0])
    assert t["lift"].tolist() == pytest.approx([4.0, 1.0, 0, 0, 0])  # overall mean 1.0
    # a tie block stays in one bin; empty bins are omitted
    t2 = decile_table(actual, np.r_[np.zeros(8), 1.0, 2.0], n_bins=5)
    assert t2["count"].sum() == 10 and t2["decile"].is_monotonic_increasing


def test_value_metrics_keys_and_values() -> None:
    a = np.array([0.0, 10.0, 0.0, 30.0, 5.0])
    p = np.array([1.0, 8.0, 0.0, 20.0, 6.0])
    m = value_metrics(a, p)
    assert list(m) == [
        "normalized_gini", "spearman", "mae", "rmse", "top10_capture", "top20_capture",
        "predicted_total", "actual_total",
    ]  # fmt: skip
    assert m["normalized_gini"] == pytest.approx(normalized_gini(a, p))
    assert m["top10_capture"] == pytest.approx(30 / 45)  # k = ceil(0.5) = 1 -> the 30
    assert m["top20_capture"] == pytest.approx(30 / 45)  # k = 1 as well
    assert m["predicted_total"] == pytest.approx(35.0) and m["actual_total"] == pytest.approx(45.0)


# ----------------------------------------------------------------------------------------------- churn

Y = [0, 0, 1, 1]
P = [0.1, 0.4, 0.35, 0.8]


def test_churn_metrics_hand_computed() -> None:
    # pairs (positive, negative): (0.35, 0.1) ok, (0.35, 0.4) wrong, (0.8, both) ok -> 3/4
    assert roc_auc(Y, P) == pytest.approx(0.75)
    # ranked: 0.8 (1) -> precision 1 at recall 0.5; 0.4 (0); 0.35 (1) -> precision 2/3 at recall 1
    assert pr_auc(Y, P) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # (0.01 + 0.16 + 0.4225 + 0.04) / 4
    assert brier(Y, P) == pytest.approx(0.158125)
    assert churn_metrics(Y, P) == pytest.approx({"roc_auc": 0.75, "pr_auc": 5 / 6, "brier": 0.158125})


def test_churn_metrics_of_one_class_leave_the_aucs_undefined() -> None:
    got = churn_metrics([0, 0, 0, 0], [0.1, 0.2, 0.0, 0.5])
    assert np.isnan(got["roc_auc"]) and np.isnan(got["pr_auc"])
    assert got["brier"] == pytest.approx((0.01 + 0.04 + 0.0 + 0.25) / 4)
    assert churn_metrics([1, 1], [1.0, 0.5])["brier"] == pytest.approx(0.125)


def test_churn_metric_errors() -> None:
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(ValueError, match="0/1"):
        brier([0, 2], [0.1, 0.2])
    # ties count half: a constant score has AUC 0.5
    assert roc_auc([0, 1, 0, 1], [0.3] * 4) == pytest.approx(0.5)


def test_calibration_table_hand_computed() -> None:
    q = calibration_table(Y, P, n_bins=2)  # ranks of P: 1, 3, 2, 4 -> bins 1, 2, 1, 2
    assert q["count"].tolist() == [2, 2]
    assert q["mean_predicted"].tolist() == pytest.approx([0.225, 0.6])
    assert q["observed_rate"].tolist() == pytest.approx([0.5, 0.5])
    u = calibration_table(Y, P, n_bins=2, strategy="uniform")  # [0, .5) and [.5, 1]
    assert u["count"].tolist() == [3, 1]
    assert u["mean_predicted"].tolist() == pytest.approx([0.85 / 3, 0.8])
    assert u["observed_rate"].tolist() == pytest.approx([1 / 3, 1.0])
    with pytest.raises(ValueError, match="strategy"):
        calibration_table(Y, P, strategy="nope")


# ----------------------------------------------------------------------------------------------- tiers


def test_tier_metrics_hand_computed() -> None:
    order = ["gold", "silver", "bronze"]
    realized = ["gold", "gold", "silver", "bronze"]
    predicted = ["gold", "silver", "silver", "gold"]
    m = tier_metrics(realized, predicted, order)
    assert m["accuracy"] == pytest.approx(0.5)
    # F1: gold P = 1/2, R = 1/2 -> 1/2; silver P = 1/2, R = 1 -> 2/3; bronze 0
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    # weights (i - j)^2 / 4; observed sum w = 1/4 (gold->silver) + 1 (bronze->gold) = 1.25;
    # expected counts outer([2,1,1], [2,2,0]) / 4 -> sum w = 0.25 + 0.125 + 0.5 + 0.125 = 1.0; kappa = 1 - 1.25
    assert m["quadratic_kappa"] == pytest.approx(-0.25)
    perfect = tier_metrics(realized, realized, order)
    assert perfect == pytest.approx({"accuracy": 1.0, "macro_f1": 1.0, "quadratic_kappa": 1.0})


def test_tier_metrics_kappa_is_ordinal() -> None:
    order = ["A", "B", "C"]
    near = tier_metrics(["A", "B", "C", "A"], ["B", "B", "C", "A"], order)
    far = tier_metrics(["A", "B", "C", "A"], ["C", "B", "C", "A"], order)
    assert near["accuracy"] == far["accuracy"]
    assert near["quadratic_kappa"] > far["quadratic_kappa"]
    with pytest.raises(ValueError, match="not in order"):
        tier_metrics(["A", "Z"], ["A", "A"], order)


# ----------------------------------------------------------------------------------------------- bootstrap


def test_paired_bootstrap_constant_difference() -> None:
    y = np.arange(20.0)
    out = paired_bootstrap(mae, y, y, y + 1, n_boot=50)
    assert out["mean_diff"] == pytest.approx(-1.0)
    assert out["lo"] == pytest.approx(-1.0) and out["hi"] == pytest.approx(-1.0)
    assert out["diff"] == pytest.approx(-1.0) and out["n_boot"] == 50


def test_paired_bootstrap_deterministic_and_covers_point_estimate() -> None:
    rng = np.random.default_rng(3)
    y = rng.gamma(0.5, 40, 300)
    a = y + rng.normal(0, 20, 300)
    b = y + rng.normal(0, 40, 300)
    one = paired_bootstrap(normalized_gini, y, a, b, n_boot=200, seed=7)
    assert one == paired_bootstrap(normalized_gini, y, a, b, n_boot=200, seed=7)
    assert one["lo"] <= one["diff"] <= one["hi"]
    assert one["lo"] < one["mean_diff"] < one["hi"]
    assert one["lo"] > 0  # the less noisy prediction ranks better, clearly


def test_paired_bootstrap_skips_undefined_replicates() -> None:
    y = np.array([0, 0, 0, 0, 0, 0, 0, 1])  # many resamples contain no positive
    out = paired_bootstrap(roc_auc, y, np.linspace(0, 1, 8), np.linspace(1, 0, 8), n_boot=100)
    assert 0 < out["n_boot"] < 100
    assert out["diff"] == pytest.approx(1.0)
