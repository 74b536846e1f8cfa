import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from tiercast.models.tiers.scheme import InsufficientDataError, TierScheme, names_for_k


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


def test_one_extreme_customer_joins_the_top_tier_instead_of_blocking_the_tiers():
    """One wholesale buyer among 300 buyers (and 1,700 customers without spend) was a cluster of its own at every
    k, so no k left every tier 2% of the customers and training stopped. Its value is clipped for the search."""
    rng = np.random.default_rng(0)
    v = np.concatenate([np.zeros(1700), rng.lognormal(3.5, 0.8, 300), [5e6]])
    scheme = TierScheme(k_max=4, min_share=0.02).fit(v)
    assert scheme.k_ >= 2 and scheme.shares_.min() >= 0.02
    assert scheme.assign([5e6])[0] == "platinum" and v.max() > 1000 * scheme.boundaries_[0]


def test_a_tier_per_customer_is_not_a_candidate():
    """Four customers with a positive value and k up to 4: k = 4 would make each its own tier, where the
    silhouette is undefined; the scheme chooses among k = 2 and 3."""
    v = np.array([0.0] * 36 + [5.0, 50.0, 500.0, 5000.0])
    scheme = TierScheme(k_max=4, min_share=0.0).fit(v)
    assert set(scheme.silhouette_by_k_) == {2, 3} and scheme.k_ in (2, 3)
    three = TierScheme(k_max=4, min_share=0.0).fit(v[1:] * (v[1:] < 5000))  # 3 distinct positive values
    assert three.k_ in (2, 3) and set(three.silhouette_by_k_) <= {2, 3}
    with pytest.raises(InsufficientDataError, match="too few distinct positive values \\(3\\) to form 4 tiers"):
        TierScheme(k=4).fit(v[1:] * (v[1:] < 5000))  # four tiers asked for: said, not shrunk
    with pytest.raises(InsufficientDataError, match="too few distinct positive values \\(1\\) to form 2 tiers"):
        TierScheme().fit([0.0, 0.0, 7.0, 7.0])


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


def test_two_chosen_tiers_are_the_top_and_the_lowest_name():
    """609 of 1,000 customers without spend and k=2 chosen: they were named gold (``names[:k]``), and the at-risk
    default (two top tiers) covered everyone. The lowest tier keeps the lowest name whatever k is chosen."""
    v = np.array([0.0] * 600 + [18, 20, 22] * 100 + [900, 1000, 1100] * 33 + [1000.0])
    scheme = TierScheme().fit(v)  # k chosen from 2..4 with the four pyramid names
    assert scheme.k_ == 2
    assert scheme.names_ == ("platinum", "lead")
    assert set(scheme.assign(v[v == 0])) == {"lead"}
    assert [r["tier"] for r in scheme.describe()] == ["platinum", "lead"]


def test_three_chosen_tiers_drop_a_middle_name():
    v = np.array([0.0] * 400 + [9, 10, 11] * 100 + [90, 100, 110] * 60 + [900, 1000, 1100] * 40)
    scheme = TierScheme().fit(v)
    assert scheme.k_ == 3
    assert scheme.names_ == ("platinum", "gold", "lead")
    assert scheme.assign([0, 10, 100, 1000]).tolist() == ["lead", "lead", "gold", "platinum"]


@pytest.mark.parametrize(
    ("names", "k", "expected"),
    [
        (("platinum", "gold", "iron", "lead"), 2, ("platinum", "lead")),
        (("platinum", "gold", "iron", "lead"), 3, ("platinum", "gold", "lead")),
        (("platinum", "gold", "iron", "lead"), 4, ("platinum", "gold", "iron", "lead")),
        (("A", "B", "C"), 2, ("A", "C")),
        (("high", "medium", "low"), 2, ("high", "low")),
    ],
)
def test_names_for_k_keep_the_first_and_the_last_name(names, k, expected):
    assert names_for_k(names, k) == expected


def test_names_for_k_refuses_more_tiers_than_names():
    with pytest.raises(ValueError, match="k=5"):
        names_for_k(("A", "B", "C", "D"), 5)


def test_describe_lists_tiers_best_first():
    scheme = TierScheme(k=3, names=("high", "medium", "low")).fit(_lognormal())
    rows = scheme.describe()
    assert [r["tier"] for r in rows] == ["high", "medium", "low"]
    assert rows[0]["min_value"] > rows[1]["min_value"] > rows[2]["min_value"] == 0.0


# ---------------------------------------------------------------- what the tier study relies on


def test_a_value_on_a_boundary_belongs_to_the_upper_tier():
    scheme = TierScheme(names=("A", "B", "C"), k=3).fit([9, 10, 11] * 5 + [90, 100, 110] * 5 + [900, 1000] * 5)
    lo_a, lo_b = scheme.boundaries_
    assert scheme.assign([lo_a, np.nextafter(lo_a, 0), lo_b, np.nextafter(lo_b, 0)]).tolist() == ["A", "B", "B", "C"]


@pytest.mark.parametrize("preset", ["pyramid", "abc", "three_level"])
def test_config_presets_name_the_tiers_best_first(preset):
    from tiercast.pipeline.config import TIER_PRESETS, TierConfig

    names = TierConfig(preset=preset).tier_names()
    assert names == TIER_PRESETS[preset]
    scheme = TierScheme(names=names, k=len(names)).fit(_lognormal())
    assert scheme.names_ == names
    assert TierScheme(names=names, k=2).fit(_lognormal()).names_ == (names[0], names[-1])
    means = [np.mean(_lognormal()[scheme.assign(_lognormal()) == n]) for n in names]
    assert means == sorted(means, reverse=True)  # the first name is the most valuable tier


def test_config_rejects_an_unknown_preset_and_names_override_it():
    from pydantic import ValidationError

    from tiercast.pipeline.config import TierConfig

    with pytest.raises(ValidationError, match="preset"):
        TierConfig(preset="diamond")
    assert TierConfig(preset="abc", names=("top", "rest")).tier_names() == ("top", "rest")
    with pytest.raises(ValidationError):
        TierConfig(min_share=0.6)


def test_behavior_columns_shape_the_tiers_but_tiers_stay_value_intervals():
    rng = np.random.default_rng(0)
    v = _lognormal(1500, seed=1)
    behavior = np.column_stack([rng.poisson(3, v.size) + 1.0, rng.uniform(30, 700, v.size)])
    scheme = TierScheme(k=3, random_state=0).fit(v, behavior=behavior)
    assert scheme.k_ == 3 and np.all(np.diff(scheme.boundaries_) < 0)
    codes = scheme.assign_codes(np.sort(v))
    assert np.all(np.diff(codes) <= 0)
    assert scheme.shares_.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="rows"):
        TierScheme(k=3).fit(v, behavior=behavior[:10])


def test_predicted_tiers_can_target_the_realized_shares():
    v = _lognormal(4000)
    scheme = TierScheme(k=4).fit(v)
    realized = np.where(np.random.default_rng(5).random(v.size) < 0.3, 0.0, v)  # some customers stop buying
    pred = 200 + 0.1 * v
    scheme.fit_predictions(pred, realized=realized)
    target = np.bincount(scheme.assign_codes(realized), minlength=4) / v.size
    np.testing.assert_allclose(scheme.prediction_shares_, target)
    shares = np.bincount(scheme.assign_predicted_codes(pred), minlength=4) / v.size
    np.testing.assert_allclose(shares, target, atol=0.002)
    assert shares[-1] > scheme.shares_[-1]  # more of the lowest tier than the current shares
