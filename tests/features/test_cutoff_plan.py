"""The cutoff planner on dates alone: no config, no data."""

import pandas as pd
import pytest

from tiercast.features.cutoff_plan import (
    CutoffRules,
    HistoryTooShortError,
    PlanError,
    plan_cutoffs,
    rolling_test_plans,
    short_windows,
    validation_cutoffs,
)

START = pd.Timestamp("2022-01-01")
RULES = CutoffRules(horizon_days=90, step_days=30, n_train=4, min_history_days=30, span_year=False)


def test_training_label_windows_end_by_the_test_cutoff():
    end = START + pd.Timedelta(days=600)
    plan = plan_cutoffs(START, end, RULES)
    assert plan.test == end - pd.Timedelta(days=90)
    assert len(plan.train) == 4 and plan.train[-1] + pd.Timedelta(days=90) == plan.test
    assert all(b - a == pd.Timedelta(days=30) for a, b in zip(plan.train, plan.train[1:], strict=False))
    assert plan.production[-1] == plan.test and plan.notes == ()


def test_a_test_cutoff_whose_horizon_passes_the_data_end_is_refused():
    end = START + pd.Timedelta(days=600)
    late = CutoffRules(horizon_days=90, test_cutoff=end - pd.Timedelta(days=30))
    with pytest.raises(PlanError, match="passes the data end"):
        plan_cutoffs(START, end, late)


def test_rolling_test_plans_step_back_from_the_test_cutoff_oldest_first():
    end = START + pd.Timedelta(days=600)
    plans = rolling_test_plans(START, end, RULES, 3)
    tests = [p.test for p in plans]
    assert tests == sorted(tests) and tests[-1] == end - pd.Timedelta(days=90)
    assert [b - a for a, b in zip(tests, tests[1:], strict=False)] == [pd.Timedelta(days=30)] * 2
    for p in plans:
        assert max(p.train) + pd.Timedelta(days=90) <= p.test


def test_rolling_test_plans_need_a_held_out_window():
    end = START + pd.Timedelta(days=30 + 90 + 60)  # room for a label window, not for a test window as well
    assert plan_cutoffs(START, end, RULES).test is None
    with pytest.raises(HistoryTooShortError, match="needs a test window"):
        rolling_test_plans(START, end, RULES, 2)


def test_a_long_horizon_reaches_back_for_time_separated_validation_cutoffs():
    """365-day labels, cutoffs 61 days apart: six cutoffs span 305 days, so none of their label windows ends by a
    validation cutoff. With history enough the plan adds earlier cutoffs until the earliest of the three
    validation cutoffs has one (hand-counted: train[-3] is 122 days before the last, so 3 more cutoffs reach 488
    days back), and all three folds are
    time-separated; with too little history settings are chosen on label windows cut to end by each validation
    cutoff (61 days apart, so 61 to 183 days long)."""
    rules = CutoffRules(horizon_days=365, step_days=61, n_train=6, min_history_days=60, n_validation=3)
    end = START + pd.Timedelta(days=5 * 365)
    plan = plan_cutoffs(START, end, rules)
    assert len(plan.train) == 9 and plan.notes == ()
    assert plan.train[0] + pd.Timedelta(days=365) <= plan.train[-3] < plan.train[1] + pd.Timedelta(days=365)
    assert validation_cutoffs(plan.train, plan.validation, 365, 3) == list(plan.train[-3:])
    short = plan_cutoffs(START, START + pd.Timedelta(days=60 + 365 + 200 + 365), rules)
    assert len(short.train) == 4 and "cut to end by each of the 3 validation cutoffs (61 to 183 days)" in short.notes[0]
    a, b, c, d = short.train
    assert short_windows(short.train, d, 365, 3) == [
        (b, [(a, 61)]),
        (c, [(a, 122), (b, 61)]),
        (d, [(a, 183), (b, 122), (c, 61)]),
    ]


def test_short_windows_only_where_no_horizon_window_ends_by_the_validation_cutoff():
    day = pd.Timestamp("2022-06-01")
    cuts = [day - pd.Timedelta(days=30 * k) for k in range(3, -1, -1)]  # four cutoffs 30 days apart
    assert short_windows(cuts, day, 90, 3) == []  # cuts[0]'s 90-day window ends by the latest: time-separated
    assert short_windows(cuts[1:], day, 90, 1) == [(day, [(cuts[1], 60), (cuts[2], 30)])]
    assert short_windows(cuts[1:], day, 90, 3) == [(cuts[2], [(cuts[1], 30)]), (day, [(cuts[1], 60), (cuts[2], 30)])]
    near = [day - pd.Timedelta(days=20), day]  # 20 days apart: no 30-day window ends by the latest
    assert short_windows(near, day, 90, 3) == []
    assert short_windows(near, day, 14, 3) == []  # a 14-day horizon's windows end by it already
    rules = CutoffRules(horizon_days=90, step_days=20, n_train=2, min_history_days=30)
    plan = plan_cutoffs(START, START + pd.Timedelta(days=30 + 20 + 2 * 90), rules)
    assert len(plan.train) == 2 and "the BTYD model alone" in plan.notes[0]


def test_a_one_day_history_is_named_in_the_singular():
    """One day of data (start to the exclusive end a day later) against 30 + 90 days needed."""
    with pytest.raises(HistoryTooShortError) as err:
        plan_cutoffs(START, START + pd.Timedelta(days=1), RULES)
    assert str(err.value).startswith(
        "the data covers 1 day (2022-01-01 to 2022-01-01); training needs at least 120 days"
    )
    rules = CutoffRules(horizon_days=1, step_days=1, n_train=1, min_history_days=0, span_year=False)
    note = plan_cutoffs(START, START + pd.Timedelta(days=1), rules).notes[0]
    assert note.startswith("1 day of history leaves no held-out test window (that needs 2)")
