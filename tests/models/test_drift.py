"""PSI and the drift profile: hand-computed values, edge cases, size."""

import pickle

import numpy as np
import pandas as pd
import pytest

from tiercast.models.drift import EPSILON, FEW_ROWS, DriftProfile, bin_labels, bin_shares, psi, psi_terms, sampling_psi


def test_psi_hand_computed():
    # expected 0.5 0.3 0.2, actual 0.3 0.3 0.4:
    #   bin 1: (0.3 - 0.5) * ln(0.3 / 0.5) = -0.2 * -0.5108256 = 0.1021651
    #   bin 2: (0.3 - 0.3) * ln(1)          = 0
    #   bin 3: (0.4 - 0.2) * ln(0.4 / 0.2) =  0.2 *  0.6931472 = 0.1386294
    #   PSI = 0.2407946
    assert psi([0.5, 0.3, 0.2], [0.3, 0.3, 0.4]) == pytest.approx(0.2407946, abs=1e-7)
    np.testing.assert_allclose(psi_terms([0.5, 0.3, 0.2], [0.3, 0.3, 0.4]), [0.1021651, 0.0, 0.1386294], atol=1e-7)


def test_psi_floors_empty_bins_at_epsilon():
    # expected 0.5 0.5 0, actual 0.5 0.4 0.1; the empty expected bin counts as 1e-4:
    #   bin 2: (0.4 - 0.5) * ln(0.4 / 0.5)       = -0.1 * -0.2231436 = 0.0223144
    #   bin 3: (0.1 - 1e-4) * ln(0.1 / 1e-4)     = 0.0999 * 6.9077553 = 0.6900848
    #   PSI = 0.7123991
    assert EPSILON == 1e-4
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) == pytest.approx(0.7123991, abs=1e-6)
    assert psi([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]) == 0.0  # empty in both: no contribution


def test_psi_is_symmetric_and_rejects_bad_shares():
    e, a = [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]
    assert psi(e, a) == pytest.approx(psi(a, e))
    with pytest.raises(ValueError, match="sum to 1"):
        psi([0.5, 0.4], [0.5, 0.5])
    with pytest.raises(ValueError, match="differ in length"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="non-negative"):
        psi([1.5, -0.5], [0.5, 0.5])


def test_bins_are_right_closed_and_open_ended():
    edges = np.array([0.0, 5.0])
    x = np.array([-3.0, 0.0, 0.0, 2.0, 5.0, 9.0, np.inf, np.nan])
    # (-inf, 0]: -3, 0, 0 | (0, 5]: 2, 5 | (5, inf): 9, inf | missing: nan
    np.testing.assert_allclose(bin_shares(x, edges), np.array([3, 2, 2, 1]) / 8)
    assert bin_labels(edges) == ["(-inf, 0]", "(0, 5]", "(5, inf)", "missing"]


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "spend": rng.lognormal(3 + shift, 1, n) * (rng.random(n) < 0.6),  # zero-inflated
            "recency": rng.exponential(60 * (1 + shift), n),
            "orders": rng.poisson(2 + 2 * shift, n).astype("float64"),
        }
    )


def test_same_distribution_gives_about_zero():
    ref = _frame(20_000, 1)
    profile = DriftProfile().fit(ref, ["spend", "recency", "orders"])
    same = profile.psi(ref)
    assert (same["psi"] == 0.0).all() and (same["status"] == "ok").all()
    fresh = profile.psi(_frame(20_000, 2))  # a new sample of the same distribution
    assert (fresh["psi"] < 0.01).all()


def test_shifted_distribution_warns():
    profile = DriftProfile().fit(_frame(20_000, 1), ["spend", "recency", "orders"])
    out = profile.psi(_frame(20_000, 3, shift=1.0))
    assert list(out.columns) == ["column", "psi", "status", "bin", "expected_share", "actual_share"]
    assert out["column"].tolist() == ["spend", "recency", "orders"]
    assert (out["psi"] > 0.25).all() and (out["status"] == "warn").all()
    assert profile.psi(_frame(20_000, 3, shift=1.0), threshold=1e9)["status"].eq("ok").all()


def test_sampling_psi_is_hand_computed():
    # 10 bins, 20 rows a side: 9 * (1/20 + 1/20) = 0.9; 5,000 a side: 9 * 2/5000 = 0.0036
    assert sampling_psi(10, 20, 20) == pytest.approx(0.9)
    assert sampling_psi(10, 5_000, 5_000) == pytest.approx(0.0036)


def test_a_psi_over_the_threshold_on_a_few_rows_is_not_a_warning():
    """Two samples of one distribution: on 20 rows a side PSI crosses 0.2 by sampling alone, and says so (never
    "warn"); on 20,000 a side the same distribution stays "ok", and a real shift still warns."""
    small = DriftProfile().fit(_frame(20, 1), ["spend", "recency", "orders"]).psi(_frame(20, 2))
    assert (small["psi"] > 0.2).any()
    assert set(small["status"]) <= {"ok", FEW_ROWS} and FEW_ROWS in set(small["status"])
    big = DriftProfile().fit(_frame(20_000, 1), ["spend", "recency", "orders"])
    assert big.psi(_frame(20_000, 2))["status"].eq("ok").all()
    assert big.psi(_frame(20_000, 3, shift=1.0))["status"].eq("warn").all()


def test_largest_moving_bin_is_reported():
    ref = pd.DataFrame({"x": np.arange(100, dtype="float64")})
    profile = DriftProfile(n_bins=4).fit(ref, ["x"])
    np.testing.assert_allclose(profile.edges_["x"], [24.0, 49.0, 74.0])
    now = pd.DataFrame({"x": np.r_[np.arange(75, dtype="float64"), np.full(25, 1000.0), np.full(25, 500.0)]})
    row = profile.psi(now).iloc[0]
    # shares now 0.2 0.2 0.2 0.4 vs 0.25 each: the open top bin moved most
    assert row["bin"] == "(74, inf)"
    assert row["expected_share"] == pytest.approx(0.25) and row["actual_share"] == pytest.approx(0.4)


def test_missing_values_are_their_own_bin():
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, np.nan, 6.0, 7.0, 8.0, 9.0, 10.0]})
    profile = DriftProfile(n_bins=5).fit(ref, ["x"])
    assert profile.shares_["x"][-1] == pytest.approx(0.1)
    assert profile.describe("x")["bin"].iloc[-1] == "missing"
    # ref bins (-inf, 2] (2, 4] (4, 7] (7, 9] (9, inf) missing: .2 .2 .2 .2 .1 .1; now .1 .1 .1 .1 .1 .5
    more_missing = pd.DataFrame({"x": [1.0, 3.0, 6.0, 8.0, 10.0, np.nan, np.nan, np.nan, np.nan, np.nan]})
    row = profile.psi(more_missing).iloc[0]
    assert row["bin"] == "missing" and row["actual_share"] == pytest.approx(0.5)
    # 10 rows a side over 6 bins: sampling alone gives 5 * (1/10 + 1/10) = 1.0, so not a warning
    assert row["psi"] > 0.2 and row["status"] == FEW_ROWS
    big = DriftProfile(n_bins=5).fit(pd.concat([ref] * 100), ["x"])
    assert big.psi(pd.concat([more_missing] * 100))["status"].iloc[0] == "warn"
    # nullable dtypes with pd.NA are read the same way
    nullable = profile.psi(more_missing.astype({"x": "Float64"}))
    assert nullable["psi"].iloc[0] == pytest.approx(row["psi"])


def test_all_missing_and_constant_columns():
    ref = pd.DataFrame({"gone": [np.nan] * 4, "flat": [3.0] * 4, "flag": [True, False, False, False]})
    profile = DriftProfile().fit(ref, ["gone", "flat", "flag"])
    assert profile.describe("gone")["bin"].tolist() == ["(-inf, inf)", "missing"]
    assert profile.describe("flat")["bin"].tolist() == ["(-inf, 3]", "(3, inf)", "missing"]
    out = profile.psi(ref).set_index("column")
    assert (out["psi"] == 0.0).all()
    moved = profile.psi(pd.DataFrame({"gone": [1.0] * 4, "flat": [3.0, 3.0, 9.0, 9.0], "flag": [True] * 4}))
    moved = moved.set_index("column")
    assert moved.loc["flat", "bin"] == "(3, inf)" and moved.loc["flat", "actual_share"] == 0.5
    # one bin holds the whole reference of "gone" and "flat": no sampling noise; "flag" has two on 4 rows a side:
    # 1 * (1/4 + 1/4) = 0.5 expected from sampling alone
    assert moved["status"].to_dict() == {"gone": "warn", "flat": "warn", "flag": FEW_ROWS}
    assert np.isfinite(moved["psi"]).all()


def test_values_outside_the_reference_range_fall_in_the_end_bins():
    profile = DriftProfile(n_bins=4).fit(pd.DataFrame({"x": np.arange(1.0, 101.0)}), ["x"])
    np.testing.assert_allclose(
        profile.current_shares(pd.DataFrame({"x": [-1e9, 1e9, -np.inf, np.inf]}))["x"], [0.5, 0, 0, 0.5, 0]
    )


def test_profile_is_small_and_keeps_no_rows():
    big = _frame(100_000, 4)
    profile = DriftProfile().fit(big, ["spend", "recency", "orders"])
    small = DriftProfile().fit(big.head(1_000), ["spend", "recency", "orders"])
    size = len(pickle.dumps(profile))
    assert size < 5_000
    assert abs(size - len(pickle.dumps(small))) < 200  # does not grow with the reference rows
    for col in profile.columns_:
        assert profile.edges_[col].size <= profile.n_bins - 1
        assert profile.shares_[col].size == profile.edges_[col].size + 2
        assert profile.shares_[col].sum() == pytest.approx(1.0)
    assert not any(isinstance(v, pd.DataFrame | pd.Series) for v in vars(profile).values())


def test_deterministic_and_input_untouched():
    ref = _frame(5_000, 5)
    ref.loc[::7, "recency"] = np.nan
    before = ref.copy()
    a = DriftProfile().fit(ref).psi(_frame(5_000, 6))
    b = DriftProfile().fit(ref.sample(frac=1.0, random_state=0)).psi(_frame(5_000, 6))
    pd.testing.assert_frame_equal(a, b)  # row order does not matter
    pd.testing.assert_frame_equal(ref, before)


def test_errors():
    profile = DriftProfile().fit(pd.DataFrame({"x": [1.0, 2.0]}), ["x"])
    with pytest.raises(ValueError, match="lacks drift column"):
        profile.psi(pd.DataFrame({"y": [1.0]}))
    with pytest.raises(ValueError, match="empty"):
        profile.psi(pd.DataFrame({"x": pd.Series([], dtype="float64")}))
    with pytest.raises(TypeError, match="not numeric"):
        DriftProfile().fit(pd.DataFrame({"s": ["a", "b"]}), ["s"])
    with pytest.raises(ValueError, match="empty frame"):
        DriftProfile().fit(pd.DataFrame({"x": pd.Series([], dtype="float64")}), ["x"])


def _growing_history(n_customers: int, start: str, days: int, seed: int) -> pd.DataFrame:
    """Steady acquisition: first purchases uniform over ``days`` from ``start``, then a purchase every ~40 days
    (exponential gaps) until the customer lapses (each gap ends the relationship with probability 0.1)."""
    rng = np.random.default_rng(seed)
    rows = []
    begin = pd.Timestamp(start)
    for i in range(n_customers):
        t = rng.uniform(0, days)
        while t < days:
            rows.append(
                (f"c{seed}_{i:05d}", (begin + pd.Timedelta(days=float(t))).floor("s"), float(rng.lognormal(3, 0.5)))
            )
            if rng.random() < 0.1:
                break
            t += rng.exponential(40)
    frame = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])
    frame["order_id"] = [f"o{seed}_{i}" for i in range(len(frame))]
    return frame


def _age_psi(reference: pd.DataFrame, current: pd.DataFrame, relative: bool) -> pd.Series:
    from tiercast.features.build import build_features
    from tiercast.models.drift import AGE_COLUMNS

    ref_cut, cur_cut = pd.Timestamp("2021-10-01"), pd.Timestamp("2021-12-30")
    ref = build_features(reference, cutoff=ref_cut, windows_days=(30, 90), horizon_days=90)
    cur = build_features(current, cutoff=cur_cut, windows_days=(30, 90), horizon_days=90)
    profile = DriftProfile(relative_columns=AGE_COLUMNS if relative else ()).fit(ref, list(AGE_COLUMNS))
    return profile.psi(cur).set_index("column")["psi"]


def test_age_features_of_a_growing_history_do_not_drift_but_a_burst_of_new_customers_does():
    # A year of steady acquisition (like the demo), reference 90 days before the scoring cutoff (as training and
    # scoring).
    history = _growing_history(3000, "2021-01-01", 363, seed=1)
    absolute = _age_psi(history, history, relative=False)
    assert absolute["tenure_days"] > 0.25  # the always-firing warning: everyone aged by 90 days
    steady = _age_psi(history, history, relative=True)
    assert steady["tenure_days"] < 0.1 and steady["first_to_last_days"] < 0.1
    # A real change of the base: as many new customers in the last 90 days as the whole history had.
    burst = _growing_history(3000, "2021-10-01", 89, seed=2)
    shifted = _age_psi(history, pd.concat([history, burst], ignore_index=True), relative=True)
    assert shifted["tenure_days"] > 0.25
    print(
        f"PSI tenure: absolute {absolute['tenure_days']:.3f}, relative {steady['tenure_days']:.3f}, "
        f"relative after a burst {shifted['tenure_days']:.3f}"
    )


def test_a_placeholder_customer_is_not_the_yardstick_of_the_history():
    """One customer at a placeholder date (1970) stays accepted; as the largest tenure it made every other share
    grow with the real history: tenure PSI 0.354 on this steady history, over the warning level."""
    from tiercast.models.drift import history_length

    history = _growing_history(3000, "2021-01-01", 363, seed=1)
    placeholder = pd.DataFrame(
        {"customer_id": ["c_old"], "timestamp": [pd.Timestamp("1970-01-01")], "amount": [10.0], "order_id": ["o_old"]}
    )
    with_placeholder = pd.concat([history, placeholder], ignore_index=True)
    steady = _age_psi(with_placeholder, with_placeholder, relative=True)
    assert steady["tenure_days"] < 0.1 and steady["first_to_last_days"] < 0.1
    # by hand: passed over only when more than a year beyond every smaller one, and only 1% of the customers
    assert history_length(np.array([19_000.0, 300.0, 290.0] + [10.0] * 97)) == 300.0
    assert history_length(np.array([19_000.0, 18_000.0, 300.0] + [10.0] * 97)) == 18_000.0  # 1 of 100 at most
    assert history_length(np.array([700.0, 300.0, 290.0])) == 700.0  # 1% of 3 customers: none passed over
    assert history_length(np.array([600.0, 300.0] + [10.0] * 98)) == 600.0  # 300 days apart: the history


def test_relative_columns_survive_pickling_and_need_the_length_column():
    frame = pd.DataFrame({"tenure_days": [10.0, 20.0, 40.0, 80.0], "first_to_last_days": [0.0, 5.0, 30.0, 60.0]})
    profile = DriftProfile(n_bins=2, relative_columns=("tenure_days", "first_to_last_days")).fit(frame)
    # as shares of the longest tenure (80): 0.125 0.25 0.5 1.0 -> the median edge 0.25
    np.testing.assert_allclose(profile.edges_["tenure_days"], [0.25])
    doubled = frame * 2  # the same history twice as long: identical relative shares
    assert pickle.loads(pickle.dumps(profile)).psi(doubled)["psi"].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="tenure_days"):
        profile.psi(frame[["first_to_last_days"]])


def test_relative_columns_label_their_bins_in_days_not_shares_of_the_history():
    """Tenure 10, 20, 40, 80 days: shares of the longest (80) are 0.125, 0.25, 0.5, 1, so the median edge 0.25 is 20
    days at training. Now the history is 100 days long and every tenure is past a quarter of it: the largest move
    is out of the first bin, which now ends at 0.25 x 100 = 25 days."""
    frame = pd.DataFrame({"tenure_days": [10.0, 20.0, 40.0, 80.0]})
    profile = DriftProfile(n_bins=2, relative_columns=("tenure_days",)).fit(frame)
    assert profile.describe("tenure_days")["bin"].tolist() == ["(-inf, 20.0] days", "(20.0, inf) days", "missing"]
    row = profile.psi(pd.DataFrame({"tenure_days": [90.0, 95.0, 99.0, 100.0]})).iloc[0]
    assert row["bin"] == "(-inf, 25.0] days; (-inf, 20.0] at training"
    assert (row["expected_share"], row["actual_share"]) == (0.5, 0.0)
    same_length = profile.psi(pd.DataFrame({"tenure_days": [5.0, 10.0, 30.0, 80.0]})).iloc[0]
    assert same_length["bin"] == "(-inf, 20.0] days"
