import numpy as np
import pytest

from tiercast.models.levels import intercept_shift, level_factor


def test_level_factor_and_intercept_shift_are_hand_computed():
    assert level_factor(np.array([2.0, 4.0, 0.0]), np.array([1.0, 2.0, 0.0])) == pytest.approx(2.0)
    assert level_factor(np.array([0.0, 0.0]), np.array([1.0, 1.0])) is None  # no target level
    # log-odds 0 for everyone, a target mean of 1/4: the intercept is logit(1/4) = -log 3
    assert intercept_shift(np.zeros(4), np.array([1, 0, 0, 0])) == pytest.approx(-np.log(3.0))
    assert intercept_shift(np.zeros(2), np.array([0.25, 0.25])) == pytest.approx(-np.log(3.0))  # probabilities
    # log-odds (-log 3, log 3): mean probability (1/4 + 3/4) / 2 = 1/2 already, no shift
    assert intercept_shift(np.log([1 / 3, 3.0]), np.array([1, 0])) == pytest.approx(0.0, abs=1e-9)
    assert intercept_shift(np.zeros(3), np.zeros(3)) is None and intercept_shift(np.zeros(3), np.ones(3)) is None
