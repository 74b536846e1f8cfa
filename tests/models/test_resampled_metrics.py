"""Rank metrics of a resample from its counts per row equal the metrics of the resampled rows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiercast.models.evaluation import normalized_gini, paired_bootstrap, roc_auc
from tiercast.models.resampled_metrics import CountedAUC, CountedGini


def test_auc_of_a_hand_counted_resample() -> None:
    # rows drawn: row 0 twice, row 1 once, row 3 once -> y [0, 0, 1, 0], p [0.1, 0.1, 0.4, 0.8]
    y, p = np.array([0.0, 1.0, 1.0, 0.0]), np.array([0.1, 0.4, 0.4, 0.8])
    counts = np.array([2.0, 1.0, 0.0, 1.0])
    # the one positive (0.4) is above two of the three negatives
    assert CountedAUC(y, p)(counts) == pytest.approx(2 / 3, abs=1e-15)


def test_gini_of_a_hand_counted_resample() -> None:
    # rows drawn: a [1, 1, 3, 0], p [0.2, 0.2, 0.5, 0.9]; mean 5/4, centred [-1/4, -1/4, 7/4, -5/4]
    a, p = np.array([1.0, 3.0, 0.0]), np.array([0.2, 0.5, 0.9])
    counts = np.array([2.0, 1.0, 1.0])
    # ranks by p: 1.5, 1.5, 3, 4 -> sum(centred * rank) = -3/8 - 3/8 + 21/4 - 5 = -1/2
    # ranks by a: 2.5, 2.5, 4, 1 -> -5/8 - 5/8 + 7 - 5/4 = 9/2
    assert CountedGini(a, p)(counts) == pytest.approx(-1 / 9, abs=1e-15)


def test_undefined_resamples_raise_as_the_metric_does() -> None:
    with pytest.raises(ValueError, match="both classes"):
        CountedAUC(np.array([0.0, 1.0]), np.array([0.3, 0.7]))(np.array([2.0, 0.0]))
    with pytest.raises(ValueError, match="constant"):
        CountedGini(np.array([5.0, 1.0, 5.0]), np.array([0.1, 0.2, 0.3]))(np.array([1.0, 0.0, 2.0]))


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 40),
    levels=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
)
def test_counted_metrics_equal_the_metrics_of_the_resampled_rows(n: int, levels: int, seed: int) -> None:
    """Few distinct values, so ties within and across rows are common; undefined resamples raise in both."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(float)
    value = rng.integers(0, levels, n).astype(float) * rng.choice([1.0, -0.5])
    p = rng.integers(0, levels, n) / levels
    for _ in range(5):
        idx = rng.integers(0, n, n)
        counts = np.bincount(idx, minlength=n).astype(float)
        for counted, plain, target in ((CountedAUC, roc_auc, y), (CountedGini, normalized_gini, value)):
            try:
                expected = plain(target[idx], p[idx])
            except ValueError:
                with pytest.raises(ValueError):
                    counted(target, p)(counts)
                continue
            assert counted(target, p)(counts) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("metric", [roc_auc, normalized_gini])
def test_paired_bootstrap_gives_what_scoring_every_resample_gives(metric) -> None:  # noqa: ANN001
    rng = np.random.default_rng(3)
    n = 300
    y = (rng.random(n) < 0.4).astype(float) if metric is roc_auc else rng.gamma(0.5, 40.0, n) * (rng.random(n) < 0.5)
    a = np.round(rng.random(n) + 0.3 * y / (1 + y), 2)  # rounded: ties
    b = np.round(rng.random(n), 1)
    fast = paired_bootstrap(metric, y, a, b, n_boot=300, seed=7)
    slow = paired_bootstrap(lambda t, q: metric(t, q), y, a, b, n_boot=300, seed=7)  # not recognised: each resample
    assert fast.keys() == slow.keys()
    for key in fast:
        assert fast[key] == pytest.approx(slow[key], abs=1e-12), key
    assert fast["n_boot"] == 300
