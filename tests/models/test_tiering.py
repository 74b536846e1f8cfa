import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from tiercast.models.tiering import TierScheme


def _lognormal(n: int = 2000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.lognormal(mean=5.0, sigma=1.2, size=n)
    v[rng.random(n) < 0.4] = 0.0  # inactive customers
    return v


def test_three_clear_groups_get_three_ordered_tiers():
    # Values around 10, 100 and 1000 (log-separated): boundaries fall between the groups.
    v = np.array([9, 10, 11] * 10 + [90, 100, 110] * 10 + [900, 1000, 1100] * 10, dtype=float)
    scheme = TierScheme(names=("A", "B", "C"), k=3).fit(v)
    assert scheme.names_ == ("A", "B", "C")
    assert list(scheme.assign([1000, 100, 10, 0])) == ["A", "B", "C", "C"]
    lo_a, lo_b = scheme.boundaries_
    assert 110 < lo_a < 900 and 11 < lo_b < 90
    np.testing.assert_allclose(scheme.shares_, [1 / 3, 1 / 3, 1 / 3])


def test_zero_and_negative_values_fall_in_the_lowest_tier():
    scheme = TierScheme(k=2, names=("high", "low")).fit([0, 0, -5, 10, 11, 1000, 1100])
    assert list(scheme.assign([-5, 0])) == ["low", "low"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=2, max_size=50))
def test_higher_value_never_gets_a_lower_tier(probe):
    scheme = TierScheme(k=4).fit(_lognormal())
    values = np.sort(np.asarray(probe))
    codes = scheme.assign_codes(values)  # 0 = best
    assert np.all(np.diff(codes) <= 0)


def test_k_is_chosen_within_bounds_and_respects_min_share():
    scheme = TierScheme(k_max=4, min_share=0.02).fit(_lognormal())
    assert 2 <= scheme.k_ <= 4
    assert scheme.shares_.min() >= 0.02
    assert scheme.shares_.sum() == pytest.approx(1.0)


def test_fit_is_deterministic_with_a_seed():
    a = TierScheme(random_state=7).fit(_lognormal(seed=3))
    b = TierScheme(random_state=7).fit(_lognormal(seed=3))
    np.testing.assert_array_equal(a.boundaries_, b.boundaries_)
    assert a.k_ == b.k_


def test_predicted_tiers_reproduce_the_scheme_shares_on_the_reference():
    v = _lognormal(5000)
    scheme = TierScheme(k=4).fit(v)
    # Shrunken predictions: same order as the values but compressed toward the mean.
    pred = 200 + 0.1 * v
    scheme.fit_predictions(pred)
    codes = scheme.assign_predicted_codes(pred)
    shares = np.bincount(codes, minlength=4) / len(codes)
    np.testing.assert_allclose(shares, scheme.shares_, atol=0.002)
    # Raw boundaries would put every shrunken prediction in the middle tiers.
    assert set(scheme.assign_codes(pred)) != set(range(4))


def test_unfitted_scheme_refuses_to_assign():
    with pytest.raises(NotFittedError):
        TierScheme().assign([1.0])


def test_more_tiers_than_names_is_an_error():
    with pytest.raises(ValueError, match="names"):
        TierScheme(names=("A", "B"), k=3).fit(_lognormal())


def test_describe_lists_tiers_best_first():
    scheme = TierScheme(k=3, names=("high", "medium", "low")).fit(_lognormal())
    rows = scheme.describe()
    assert [r["tier"] for r in rows] == ["high", "medium", "low"]
    assert rows[0]["min_value"] > rows[1]["min_value"] > rows[2]["min_value"] == 0.0
