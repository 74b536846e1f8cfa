import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiercast.models.tiers.alternatives import ABCScheme, LoyaltyScheme, QuantileScheme, ScoreBandScheme
from tiercast.models.tiers.scheme import TierScheme

PYRAMID = ("platinum", "gold", "iron", "lead")
values = st.lists(st.floats(min_value=-50, max_value=1e6, allow_nan=False), min_size=2, max_size=40)


def _population(n: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    v = rng.lognormal(5.0, 1.2, n)
    v[rng.random(n) < 0.4] = 0.0
    return {
        "value": v,
        "recency": rng.exponential(60, n),
        "frequency": rng.poisson(3, n) + 1.0,
        "history": rng.lognormal(5.0, 1.2, (n, 3)) * (rng.random((n, 3)) > 0.3),
    }


POP = _population()
# Fitted once: the property tests probe them with many values.
FITTED = {
    "clustering": TierScheme(k=4, random_state=0).fit(POP["value"]),
    "clustering+behavior": TierScheme(k=3, random_state=0).fit(
        POP["value"], behavior=np.column_stack([POP["frequency"], POP["recency"]])
    ),
    "abc": ABCScheme().fit(POP["value"]),
    "quantile": QuantileScheme().fit(POP["value"]),
    "loyalty": LoyaltyScheme().fit(POP["value"], history=POP["history"]),
}
RFM = ScoreBandScheme().fit(POP["value"], recency=POP["recency"], frequency=POP["frequency"])


# ---------------------------------------------------------------- ordering: more value never means a lower tier


@pytest.mark.parametrize("name", sorted(FITTED))
@settings(max_examples=30, deadline=None)
@given(probe=values)
def test_higher_value_never_gets_a_lower_tier(name, probe):
    codes = FITTED[name].assign_codes(np.sort(np.asarray(probe)))  # 0 = best
    assert np.all(np.diff(codes) <= 0)


@settings(max_examples=30, deadline=None)
@given(probe=values, seed=st.integers(0, 2**16))
def test_rfm_higher_value_never_lowers_the_tier_with_recency_and_frequency_fixed(probe, seed):
    rng = np.random.default_rng(seed)
    v = np.sort(np.asarray(probe))
    r = np.full(v.size, rng.exponential(60))
    f = np.full(v.size, float(rng.poisson(3) + 1))
    assert np.all(np.diff(RFM.assign_codes(v, recency=r, frequency=f)) <= 0)
    # and, value fixed, more recent / more frequent never lowers the tier either
    base = np.full(v.size, v[-1])
    assert np.all(np.diff(RFM.assign_codes(base, recency=np.sort(v)[::-1], frequency=f)) <= 0)
    assert np.all(np.diff(RFM.assign_codes(base, recency=r, frequency=np.clip(v, 0, None))) <= 0)


@settings(max_examples=30, deadline=None)
@given(probe=values, seed=st.integers(0, 2**16))
def test_loyalty_more_spend_in_the_latest_period_never_lowers_the_status(probe, seed):
    rng = np.random.default_rng(seed)
    v = np.sort(np.asarray(probe))
    history = np.repeat(rng.lognormal(5.0, 1.5, (1, 4)), v.size, axis=0)  # the same history for everyone
    assert np.all(np.diff(FITTED["loyalty"].assign_codes(v, history=history)) <= 0)


def test_every_scheme_puts_zero_and_negative_value_in_the_lowest_tier():
    for scheme in FITTED.values():
        assert set(scheme.assign_codes([0.0, -10.0]).tolist()) == {scheme.k_ - 1}


# ---------------------------------------------------------------- ABC


def test_abc_80_15_5_on_a_hand_computed_example():
    # total 100; cumulative share 0.50, 0.80 | 0.90, 0.95 | 0.98, 1.00 -> A = {50, 30}, B = {10, 5}, C = the rest.
    v = [3, 50, 0, 10, 2, 30, 5]
    scheme = ABCScheme().fit(v)
    np.testing.assert_array_equal(scheme.boundaries_, [30.0, 5.0])
    assert scheme.assign(v).tolist() == ["C", "A", "C", "B", "C", "A", "B"]
    np.testing.assert_allclose(scheme.revenue_shares_, [0.80, 0.15, 0.05])
    np.testing.assert_allclose(scheme.shares_, [2 / 7, 2 / 7, 3 / 7])
    assert [r["tier"] for r in scheme.describe()] == ["A", "B", "C"]


def test_abc_customer_crossing_the_target_is_inside_and_ties_join_the_upper_tier():
    scheme = ABCScheme().fit([60, 30, 30, 5, 5])  # cum 0.46, 0.69, 0.92 (crosses 0.80), 0.96 (crosses 0.95), 1.0
    assert scheme.assign([60, 30, 30, 5, 5]).tolist() == ["A", "A", "A", "B", "B"]


def test_abc_validates_shares():
    with pytest.raises(ValueError, match="sum to 1"):
        ABCScheme(revenue_shares=(0.8, 0.1, 0.05)).fit([1, 2, 3])
    with pytest.raises(ValueError, match="one per tier"):
        ABCScheme(names=("A", "B")).fit([1, 2, 3])


# ---------------------------------------------------------------- quantiles


def test_quantile_tiers_hold_the_configured_top_shares():
    v = np.arange(1, 1001, dtype=float)
    scheme = QuantileScheme().fit(v)
    assert scheme.names_ == ("top 1%", "top 5%", "top 10%", "top 25%", "top 50%", "rest")
    np.testing.assert_allclose(scheme.shares_, [0.01, 0.04, 0.05, 0.15, 0.25, 0.50])
    np.testing.assert_array_equal(scheme.boundaries_, [991, 951, 901, 751, 501])


def test_quantile_zero_value_stays_in_the_last_tier_when_most_customers_spent_nothing():
    v = np.r_[np.zeros(70), np.arange(1, 31)]
    scheme = QuantileScheme().fit(v)
    assert scheme.assign([0.0]).tolist() == ["rest"]
    assert scheme.shares_[-1] == pytest.approx(0.70)


# ---------------------------------------------------------------- RFM


def test_rfm_scores_on_a_hand_computed_example():
    # Quintile edges of 1..10 are 2.8, 4.6, 6.4, 8.2: value 10 -> M 5, value 1 -> M 1; recency is reversed.
    v = np.arange(1, 11, dtype=float)
    scheme = ScoreBandScheme(names=("A", "B", "C")).fit(v, recency=v, frequency=v)
    s = scheme.scores([10.0, 1.0, 0.0], recency=[1.0, 10.0, np.nan], frequency=[10.0, 1.0, 1.0])
    assert s.to_dict("list") == {"r": [5, 1, 1], "f": [5, 1, 1], "m": [5, 1, 1], "total": [15, 3, 3]}
    # Three equal bands over 3..15: >= 12, >= 8, the rest.
    np.testing.assert_array_equal(scheme.min_scores_, [12, 8])
    assert scheme.assign([10.0, 5.0, 1.0], recency=[1.0, 5.0, 10.0], frequency=[10.0, 5.0, 1.0]).tolist() == [
        "A",
        "B",
        "C",
    ]


# ---------------------------------------------------------------- loyalty programme


def test_loyalty_upgrades_at_once_and_downgrades_after_the_grace_period():
    scheme = LoyaltyScheme(thresholds=(1000, 500, 100), grace_periods=1).fit([0, 50, 600, 1200])
    spend = [[50, 600, 1200, 300, 300, 300, 700]]
    # earned: lead, gold, platinum, iron, iron, iron, gold
    # status: lead, gold (up), platinum (up), platinum (1st period below: grace), iron (2nd: drop to earned),
    #         iron, gold (up)
    assert scheme.run(spend).tolist() == [[3, 1, 0, 0, 2, 2, 1]]
    soft = LoyaltyScheme(thresholds=(1000, 500, 100), grace_periods=1, soft_landing=True).fit([0, 50, 600, 1200])
    # soft landing: platinum -> gold after the grace period; then one more period of grace as gold; gold again
    assert soft.run(spend).tolist() == [[3, 1, 0, 0, 1, 1, 1]]


def test_loyalty_requalifying_resets_the_grace_period():
    scheme = LoyaltyScheme(thresholds=(1000, 500, 100), grace_periods=1).fit([0, 50, 600, 1200])
    assert scheme.run([[1200, 300, 1100, 300, 300]]).tolist() == [[0, 0, 0, 0, 2]]
    assert scheme.assign([300], history=[[1200, 300, 1100]]).tolist() == ["platinum"]
    assert scheme.assign([300]).tolist() == ["iron"]  # no history: the earned tier
    no_grace = LoyaltyScheme(thresholds=(1000, 500, 100), grace_periods=0).fit([0, 50, 600, 1200])
    assert no_grace.run([[1200, 300]]).tolist() == [[0, 2]]


def test_loyalty_points_per_unit_scale_the_thresholds():
    scheme = LoyaltyScheme(thresholds=(1000, 500, 100), points_per_unit=10).fit([0, 5, 60, 120])
    np.testing.assert_allclose(scheme.boundaries_, [100, 50, 10])
    assert scheme.assign([100, 50, 10, 9.9]).tolist() == list(PYRAMID)


def test_loyalty_predicted_status_steps_from_the_history():
    scheme = LoyaltyScheme(thresholds=(1000, 500, 100), grace_periods=1).fit([0, 50, 600, 1200])
    scheme.fit_predictions(np.array([1.0, 2.0, 3.0, 4.0]), realized=[50, 300, 600, 1200])  # one customer per tier
    # rank 4 earns platinum; rank 1 earns lead but a platinum customer keeps the status for one period of grace
    assert scheme.assign_predicted([4.0, 1.0], history=[[300], [1200]]).tolist() == ["platinum", "platinum"]


# ---------------------------------------------------------------- shared interface and determinism


@pytest.mark.parametrize("name", sorted(FITTED))
def test_describe_and_shares(name):
    scheme = FITTED[name]
    rows = scheme.describe()
    assert [r["tier"] for r in rows] == list(scheme.names_)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert sum(r["revenue_share"] for r in rows) == pytest.approx(1.0)


def test_fitting_twice_gives_the_same_scheme():
    b = np.column_stack([POP["frequency"], POP["recency"]])
    a1 = TierScheme(k_max=4, random_state=3).fit(POP["value"], behavior=b)
    a2 = TierScheme(k_max=4, random_state=3).fit(POP["value"], behavior=b)
    np.testing.assert_array_equal(a1.boundaries_, a2.boundaries_)
    for make in (ABCScheme, QuantileScheme, LoyaltyScheme):
        np.testing.assert_array_equal(make().fit(POP["value"]).boundaries_, make().fit(POP["value"]).boundaries_)
    r2 = ScoreBandScheme().fit(POP["value"], recency=POP["recency"], frequency=POP["frequency"])
    np.testing.assert_array_equal(r2.min_scores_, RFM.min_scores_)
    assert all(np.array_equal(RFM.edges_[k], r2.edges_[k]) for k in RFM.edges_)


def test_value_schemes_predict_tiers_by_rank():
    scheme = ABCScheme().fit(POP["value"])
    pred = 100 + 0.01 * POP["value"]  # shrunken: the raw boundaries would put everyone in C
    scheme.fit_predictions(pred)
    shares = np.bincount(scheme.assign_predicted_codes(pred), minlength=3) / pred.size
    np.testing.assert_allclose(shares, scheme.shares_, atol=0.002)
