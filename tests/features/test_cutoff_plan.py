"""The cutoff planner on dates alone: no config, no data."""

import pandas as pd
import pytest

from tiercast.features.cutoff_plan import (
    CutoffRules,
    HistoryTooShortError,
    PlanError,
    plan_cutoffs,
    rolling_test_plans,
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
