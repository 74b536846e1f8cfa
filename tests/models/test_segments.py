import numpy as np
import pandas as pd
import pytest

from tiercast.models.playbook import Playbook, Rule
from tiercast.models.segments import SEGMENT_KEYS, BehaviorSegments


def _customers(seed: int = 0) -> pd.DataFrame:
    """Three planted groups: new and growing; long-tenure and frequent; lapsing and declining."""
    rng = np.random.default_rng(seed)
    n = 120
    groups = {
        "new": dict(spend_trend=0.9, tenure_days=30, frequency_orders=2, recency_days=10),
        "loyal": dict(spend_trend=0.0, tenure_days=700, frequency_orders=40, recency_days=7),
        "lapsing": dict(spend_trend=-0.9, tenure_days=400, frequency_orders=3, recency_days=250),
    }
    rows = []
    for name, centre in groups.items():
        for _ in range(n):
            rows.append(
                {
                    "planted": name,
                    "spend_trend": np.clip(centre["spend_trend"] + rng.normal(0, 0.05), -1, 1),
                    "tenure_days": centre["tenure_days"] * rng.uniform(0.9, 1.1),
                    "frequency_orders": max(1.0, round(centre["frequency_orders"] * rng.uniform(0.8, 1.2))),
                    "recency_days": centre["recency_days"] * rng.uniform(0.9, 1.1),
                }
            )
    frame = pd.DataFrame(rows)
    frame.loc[frame.index % 17 == 0, "spend_trend"] = np.nan  # gaps are filled with the fitted median
    return frame


@pytest.fixture(scope="module")
def fitted() -> tuple[pd.DataFrame, BehaviorSegments]:
    frame = _customers()
    return frame, BehaviorSegments(n_segments=3, random_state=0).fit(frame)


def test_profiles_are_readable_names_of_the_planted_groups(fitted):
    frame, seg = fitted
    names = pd.Series(seg.predict(frame), index=frame.index)
    by_group = names.groupby(frame["planted"]).agg(lambda s: s.mode()[0])
    assert (names == frame["planted"].map(by_group)).all()  # each planted group is one segment
    assert "new" in by_group["new"]
    assert "frequent" in by_group["loyal"] or "long-tenure" in by_group["loyal"]
    assert "lapsing" in by_group["lapsing"] or "declining" in by_group["lapsing"]
    assert len(set(seg.names_)) == 3
    assert set(seg.keys_) <= set(SEGMENT_KEYS)
    profile = seg.profile_
    assert profile["segment"].tolist() == list(seg.names_)
    assert profile["customers"].sum() == len(frame)
    assert {"z_spend_trend", "tenure_days"} <= set(profile.columns)


def test_segments_are_deterministic_and_independent_of_row_order(fitted):
    frame, seg = fitted
    again = BehaviorSegments(n_segments=3, random_state=0).fit(frame)
    assert again.names_ == seg.names_
    np.testing.assert_array_equal(again.centers_, seg.centers_)
    shuffled = frame.sample(frac=1.0, random_state=1)
    refit = BehaviorSegments(n_segments=3, random_state=0).fit(shuffled)
    assert refit.names_ == seg.names_
    assert (refit.predict(shuffled) == seg.predict(shuffled)).all()


def test_missing_features_are_skipped_and_too_few_is_an_error():
    frame = _customers()
    seg = BehaviorSegments(features=("spend_trend", "tenure_days", "review_score_mean"), n_segments=2).fit(frame)
    assert seg.features_ == ("spend_trend", "tenure_days")
    with pytest.raises(ValueError, match="at least two"):
        BehaviorSegments(features=("spend_trend", "review_score_mean")).fit(frame)
    with pytest.raises(ValueError, match="no descriptors"):
        BehaviorSegments(features=("spend_trend", "mystery")).fit(frame.assign(mystery=1.0))


def test_the_number_of_segments_is_chosen_with_a_minimum_share():
    seg = BehaviorSegments(k_max=4, min_share=0.2, random_state=0).fit(_customers())
    assert 2 <= seg.k_ <= 4 and seg.shares_.min() >= 0.2


def test_playbook_rules_resolve_on_segment_keys(fitted):
    frame, seg = fitted
    tiers = ("gold", "lead")
    pb = Playbook(
        rules=(
            Rule("win-back offer", "email", segments=("lapsing", "declining")),
            Rule("welcome series", "email", current_tiers=("lead",), segments=("new",)),
        ),
        tiers=tiers,
        segments=SEGMENT_KEYS,
    )
    keys = seg.predict_keys(frame)
    scores = pd.DataFrame(
        {"current_tier": "lead", "predicted_tier": "lead", "churn_probability": 0.5}, index=frame.index
    )
    actions = pb.apply(scores, segment=keys)["action"]
    by_group = actions.groupby(frame["planted"]).agg(lambda s: s.mode()[0])
    assert by_group.to_dict() == {"lapsing": "win-back offer", "new": "welcome series", "loyal": "no action"}


def test_one_profile_has_one_name_whatever_descriptor_is_strongest():
    from tiercast.models.segments import BehaviorSegments

    seg = BehaviorSegments(min_deviation=0.5, max_descriptors=2)
    seg.features_ = ("frequency_orders", "recency_days")
    names, keys = seg._names(np.array([[2.0, -1.0], [1.0, -2.0], [0.1, 0.9]]))
    assert names == ("frequent, active", "frequent, active (2)", "lapsing")
    assert keys == ("frequent", "active", "lapsing")  # playbook keys stay the strongest descriptor
