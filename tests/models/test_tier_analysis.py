import numpy as np
import pandas as pd
import pytest

from tiercast.models.tiers.alternatives import ABCScheme, ScoreBandScheme
from tiercast.models.tiers.analysis import (
    adjusted_rand,
    bootstrap_stability,
    boundary_drift,
    migration_matrix,
    refit_stability,
    tier_summary,
)
from tiercast.models.tiers.scheme import TierScheme

ORDER = ("A", "B", "C")
CURRENT = ["A", "A", "B", "B", "B", "C", "C"]
PREDICTED = ["A", "B", "B", "A", "C", "C", "C"]
VALUE = [100.0, 50.0, 30.0, 40.0, 10.0, 0.0, 5.0]


def test_migration_matrix_counts_and_revenue_on_a_hand_computed_example():
    counts = migration_matrix(CURRENT, PREDICTED, ORDER)
    expected = pd.DataFrame(
        [[1, 1, 0], [1, 1, 1], [0, 0, 2]],
        index=pd.Index(ORDER, name="current"),
        columns=pd.Index(ORDER, name="to"),
    )
    pd.testing.assert_frame_equal(counts, expected)
    revenue = migration_matrix(CURRENT, PREDICTED, ORDER, weights=VALUE)
    np.testing.assert_allclose(revenue.to_numpy(), [[100, 50, 0], [40, 30, 10], [0, 0, 5]])
    rates = migration_matrix(CURRENT, PREDICTED, ORDER, normalize=True)
    np.testing.assert_allclose(rates.to_numpy(), [[0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0, 1]])


def test_migration_matrix_lists_empty_tiers_and_rejects_unknown_ones():
    m = migration_matrix(["A"], ["A"], ORDER)
    assert m.shape == (3, 3) and m.to_numpy().sum() == 1
    with pytest.raises(ValueError, match="not in order"):
        migration_matrix(["A", "D"], ["A", "A"], ORDER)


def test_tier_summary_on_a_hand_computed_example():
    out = tier_summary(CURRENT, VALUE, ORDER, n_orders=[2, 1, 1, 1, 1, 0, 1], retained=[1, 1, 1, 0, 0, 0, 1])
    assert out["tier"].tolist() == list(ORDER)
    assert out["customers"].tolist() == [2, 3, 2]
    np.testing.assert_allclose(out["share"], [2 / 7, 3 / 7, 2 / 7])
    np.testing.assert_allclose(out["revenue"], [150, 80, 5])
    np.testing.assert_allclose(out["revenue_share"], [150 / 235, 80 / 235, 5 / 235])
    np.testing.assert_allclose(out["average_ticket"], [50, 80 / 3, 5])
    np.testing.assert_allclose(out["retention_rate"], [1.0, 1 / 3, 0.5])
    np.testing.assert_allclose(out["min_value"], [50, 10, 0])


def test_tier_summary_of_an_empty_tier_is_zero_or_nan():
    out = tier_summary(["A", "A"], [1.0, 2.0], ORDER, n_orders=[1, 1], retained=[1, 0])
    row = out.iloc[2]
    assert row["customers"] == 0 and row["revenue"] == 0.0
    assert np.isnan(row["average_ticket"]) and np.isnan(row["retention_rate"]) and np.isnan(row["mean_value"])


def _groups() -> np.ndarray:
    return np.array([9, 10, 11] * 20 + [90, 100, 110] * 20 + [900, 1000, 1100] * 20 + [0] * 30, dtype=float)


def test_identical_refits_have_ari_one_and_no_drift():
    v = _groups()
    a, b = TierScheme(k=3).fit(v), TierScheme(k=3).fit(v)
    out = refit_stability([a, b], v, labels=["first", "second"])
    assert out[["from", "to"]].iloc[0].tolist() == ["first", "second"]
    assert out["ari"].iloc[0] == 1.0 and out["boundary_drift"].iloc[0] == 0.0
    assert adjusted_rand(a.assign_codes(v), b.assign_codes(v)) == 1.0


def test_bootstrap_refits_of_well_separated_groups_agree():
    boot = bootstrap_stability(TierScheme(k=3), _groups(), n_boot=5, random_state=0)
    assert len(boot) == 5 and (boot["ari"] == 1.0).all() and (boot["k"] == 3).all()
    assert (boot["boundary_drift"] < 0.1).all()
    again = bootstrap_stability(TierScheme(k=3), _groups(), n_boot=5, random_state=0)
    pd.testing.assert_frame_equal(boot, again)


def test_stability_passes_the_context_of_multi_input_schemes():
    rng = np.random.default_rng(0)
    v = rng.lognormal(4, 1, 300)
    ctx = {"recency": rng.exponential(30, 300), "frequency": rng.poisson(3, 300) + 1.0}
    boot = bootstrap_stability(ScoreBandScheme(), v, n_boot=3, fit_context=ctx)
    assert boot["ari"].between(0.5, 1.0).all() and boot["boundary_drift"].isna().all()
    fitted = [ScoreBandScheme().fit(v, **ctx), ScoreBandScheme().fit(v, **ctx)]
    assert refit_stability(fitted, v, context=ctx)["ari"].iloc[0] == 1.0


def test_boundary_drift():
    assert boundary_drift([100.0, 10.0], [110.0, 9.0]) == pytest.approx(0.1)
    assert np.isnan(boundary_drift([100.0, 10.0], [100.0]))
    abc = ABCScheme().fit([50, 30, 10, 5, 3, 2])
    assert boundary_drift(abc.boundaries_, abc.boundaries_) == 0.0
