"""Training plan, production refit and honest test metrics on a simulated BTYD world."""

import numpy as np
import pandas as pd
import pytest

from tests.models.test_stacking import simulate_transactions
from tiercast.features.build import build_features
from tiercast.features.contract import YEAR_AGO_COLUMNS
from tiercast.features.cutoff_plan import HistoryTooShortError, plan_cutoffs, validation_cutoffs
from tiercast.features.training_set import build_training_set
from tiercast.models.btyd.forecast import BTYDForecaster
from tiercast.models.btyd.stacker import btyd_inputs
from tiercast.models.gbm.stacked import StackedModel
from tiercast.pipeline.cli.base import expected_failure
from tiercast.pipeline.config import load_config
from tiercast.pipeline.jobs.model_fit import btyd_at, fit_models, fit_scorer, refit_for_production

START = pd.Timestamp("2022-01-01")


def _config(**overrides):
    base = {
        "horizon_days": 60,
        "features": {"windows_days": [30, 90]},
        "cutoffs": {"step_days": 30, "n_train": 4, "min_history_days": 30},
        "models": {
            "n_estimators": 150,
            "early_stopping_rounds": 20,
            "param_grid": "none",
            "value_params": {"n_jobs": 1},
            "churn_params": {"n_jobs": 1},
        },
    }
    return load_config("configs/online_retail_ii.yaml", overrides={**base, **overrides})


def test_plan_refits_production_on_the_newest_label_windows():
    end = START + pd.Timedelta(days=420)
    plan = plan_cutoffs(START, end, _config().cutoff_rules())
    h = pd.Timedelta(days=60)
    assert plan.test == end - h
    assert plan.train[-1] == plan.test - h  # evaluation labels end at the test cutoff
    assert plan.production[-1] == end - h  # the registered model's newest labels end at the data end
    steps = {b - a for a, b in zip(plan.production, plan.production[1:], strict=False)}
    assert steps == {pd.Timedelta(days=30)} and len(plan.production) >= len(plan.train)
    assert plan.notes == ()


def test_short_history_trains_without_a_test_window_and_says_so():
    # 6 months with a 90-day horizon: one production label window, no room for a held-out test window
    end = START + pd.Timedelta(days=182)
    plan = plan_cutoffs(START, end, _config(horizon_days=90).cutoff_rules())
    assert plan.test is None
    assert plan.production[-1] == end - pd.Timedelta(days=90)
    assert all(c >= START + pd.Timedelta(days=30) for c in plan.production)
    assert "no held-out test window" in plan.notes[0]
    # its three label windows, 30 days apart, overlap: settings are chosen on windows cut to end by the last two
    assert len(plan.production) == 3 and plan.notes[1] == (
        f"no 90-day training label window ends by the validation cutoff {plan.production[-1].date()}: settings are "
        "chosen on label windows cut to end by each of the 2 validation cutoffs (30 to 60 days), then the trees are "
        "refitted on the 90-day windows"
    )


def test_one_training_window_before_the_test_cutoff_is_noted():
    end = START + pd.Timedelta(days=30 + 2 * 90 + 10)
    plan = plan_cutoffs(START, end, _config(horizon_days=90).cutoff_rules())
    assert plan.test == end - pd.Timedelta(days=90) and len(plan.train) == 1
    assert "the BTYD model alone" in plan.notes[0]


def test_too_short_history_names_the_length_needed():
    with pytest.raises(HistoryTooShortError, match=r"covers 100 days .* needs at least 120 days") as err:
        plan_cutoffs(START, START + pd.Timedelta(days=100), _config(horizon_days=90).cutoff_rules())
    assert expected_failure(err.value) == str(err.value)  # the CLI turns it into one line and exit 2
    assert "\n" not in str(err.value)


def _frames(tx: pd.DataFrame, config, plan):
    kw = {"horizon_days": config.horizon_days, "windows_days": config.features.windows_days}
    train = build_training_set(tx, cutoffs=plan.train, data_end=plan.test, holdout_start=plan.test, **kw)
    test = build_training_set(tx, cutoffs=[plan.test], data_end=plan.data_end, **kw)
    return train, test


@pytest.fixture(scope="module")
def world():
    # 560 days with a year window: the cutoffs from 425 days on have last year's window (the year-ago summary)
    tx = simulate_transactions(n_customers=300, days=560, seed=5)
    config = _config(features={"windows_days": [30, 90, 365]})
    end = tx["timestamp"].max().normalize() + pd.Timedelta(days=1)
    plan = plan_cutoffs(START, end, config.cutoff_rules())
    return tx, config, plan


def scrambled_from(tx: pd.DataFrame, when: pd.Timestamp, *, at_least: int) -> pd.DataFrame:
    """``tx`` with every transaction at or after ``when`` (at least ``at_least`` of them) given another customer's
    id and a tripled, permuted amount: what a model that never reads past ``when`` cannot tell apart."""
    rng = np.random.default_rng(0)
    scrambled = tx.copy()
    after = (scrambled["timestamp"] >= when).to_numpy()
    assert after.sum() > at_least
    scrambled.loc[after, "amount"] = rng.permutation(scrambled.loc[after, "amount"].to_numpy()) * 3.0
    scrambled.loc[after, "customer_id"] = rng.permutation(scrambled.loc[after, "customer_id"].to_numpy())
    return scrambled


def test_test_window_evaluation_never_sees_the_test_window(world):
    """Scrambling every transaction at or after the test cutoff leaves the evaluated model's test predictions
    unchanged: only the realized labels it is compared with move."""
    tx, config, plan = world
    scrambled = scrambled_from(tx, plan.test, at_least=50)
    scores = []
    for data in (tx, scrambled):
        train, test = _frames(data, config, plan)
        scorer = btyd_at(fit_scorer(train, plan, config, versions={}), test)  # what the test metrics score
        scores.append((scorer.score(test), test))
    (a, test_a), (b, test_b) = scores
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(test_a["future_value"], test_b["future_value"])  # the labels did change


def test_production_refit_reads_the_newest_history(world, monkeypatch):
    tx, config, plan = world
    train, test = _frames(tx, config, plan)
    evaluated = fit_scorer(train, plan, config, versions={})
    kw = {"horizon_days": config.horizon_days, "windows_days": config.features.windows_days}
    production = build_training_set(tx, cutoffs=plan.production, data_end=plan.data_end, **kw)
    now = build_features(tx, cutoff=plan.data_end, **kw)
    before = evaluated.score(now)
    refit_columns = []
    refit = StackedModel.refit

    def spy(self, X, *args, **kwargs):
        refit_columns.append(set(X.columns))
        return refit(self, X, *args, **kwargs)

    monkeypatch.setattr(StackedModel, "refit", spy)
    scorer = refit_for_production(evaluated, production, now, config, versions={})
    pd.testing.assert_frame_equal(evaluated.score(now), before)  # the evaluated model is untouched
    assert scorer.value_model.n_trees_ == evaluated.value_model.n_trees_  # settings carried over
    assert scorer.value_model.weight_ == evaluated.value_model.weight_
    # BTYD fitted at the data end: the scoring population's own parameters
    at_end = scorer.value_model.stacker_.params_
    assert at_end != evaluated.value_model.stacker_.params_
    scores = scorer.score(now)
    assert len(scores) == len(now) and scores["churn_probability"].between(0, 1).all()
    assert np.isfinite(scores["predicted_value"]).all()
    # the BTYD level from last year's window, at the data end and at the refit's training cutoffs (which read
    # the year-ago summary although the trees never take it as an input)
    assert scorer.value_model.stacker_.last_year_ and scorer.churn_model.stacker_.last_year_
    assert not set(YEAR_AGO_COLUMNS) & set(scorer.feature_names)
    assert len(refit_columns) == 2 and all(set(YEAR_AGO_COLUMNS) <= cols for cols in refit_columns)


@pytest.mark.parametrize("btyd", ["bgnbd", "auto"])
def test_one_label_window_gives_the_btyd_model_itself(world, btyd):
    tx, config, plan = world
    # without a seasonal level (last year's window is in these rows): the plain BTYD model
    models = config.models.model_copy(update={"btyd": btyd, "seasonal": False})
    config = config.model_copy(update={"models": models})
    kw = {"horizon_days": config.horizon_days, "windows_days": config.features.windows_days}
    rows = build_training_set(tx, cutoffs=[plan.test], data_end=plan.data_end, **kw)
    value, churn = fit_models(rows, plan.test, config)
    assert value.weight_ == 0.0 and churn.weight_ == 0.0
    # the configured BTYD model, or with "auto" the one chosen on that window, as it is
    expected = ("bgnbd", "paretonbd") if btyd == "auto" else (btyd,)
    assert value.btyd_ in expected and churn.btyd_ in expected
    inputs = btyd_inputs(rows)
    btyd = BTYDForecaster(model=value.btyd_, spend=value.spend_).fit(inputs)  # the spend convention it chose
    np.testing.assert_allclose(value.predict(rows), np.maximum(btyd.predict_value(inputs, 60), 1e-3))
    btyd = BTYDForecaster(model=churn.btyd_).fit(inputs)
    np.testing.assert_allclose(churn.predict_proba(rows)[:, 1], btyd.predict_churn(inputs, 60), atol=1e-4)


def test_validation_cutoffs_keep_every_fold_time_separated():
    day = pd.Timestamp("2022-06-01")
    cuts = [day - pd.Timedelta(days=30 * k) for k in range(5, -1, -1)]  # six cutoffs 30 days apart
    # horizon 90: the earliest validation cutoff needs a fit cutoff 90 days before it
    assert validation_cutoffs(cuts, day, 90, 3) == cuts[-3:]
    assert validation_cutoffs(cuts, day, 90, 4) == cuts[-3:]  # a fourth would leave no time-separated fold
    assert validation_cutoffs(cuts, day, 90, 1) == [day]
    assert validation_cutoffs(cuts[-2:], day, 90, 3) == [day]  # too few cutoffs: the latest alone


def test_training_cutoffs_span_a_year_when_the_history_allows():
    config = _config(horizon_days=90)
    end = START + pd.Timedelta(days=3 * 365)
    plan = plan_cutoffs(START, end, config.cutoff_rules())
    # label windows of the training cutoffs cover a whole year: 11 cutoffs 30 days apart (300 + 90 days)
    assert len(plan.train) == 11 and plan.train[-1] + pd.Timedelta(days=90) - plan.train[0] >= pd.Timedelta(days=365)
    assert len(plan.production) == 11
    off = _config(horizon_days=90, cutoffs={"step_days": 30, "n_train": 4, "min_history_days": 30, "span_year": False})
    assert len(plan_cutoffs(START, end, off.cutoff_rules()).train) == 4
    short = plan_cutoffs(START, START + pd.Timedelta(days=420), config.cutoff_rules())
    assert len(short.train) == 4  # no room for a year: the configured count


def test_customers_too_alike_to_segment_train_and_score_without_segments(world, monkeypatch):
    """99 identical customers and one other: no number of segments gives each 5% of them, so there are none (a
    warning says so) instead of a refused training; the scorer then scores without segment columns."""
    from tiercast.models.segments import BehaviorSegments
    from tiercast.pipeline.jobs.model_fit import behavior_segments

    cols = ["spend_trend", "tenure_days", "frequency_orders", "recency_days"]
    alike = pd.DataFrame([[1.0, 100.0, 3.0, 20.0]] * 99 + [[5.0, 400.0, 30.0, 2.0]], columns=cols)
    with pytest.warns(UserWarning, match="no behavioral segments .*too uniform to segment"):
        assert behavior_segments(alike, seed=0) is None
    assert behavior_segments(pd.concat([alike] * 3 + [alike * 2] * 3, ignore_index=True), seed=0) is not None

    tx, config, plan = world
    train, test = _frames(tx, config, plan)
    refuse = BehaviorSegments.fit

    def too_alike(self, frame):  # the refusal behavior_segments turns into a warning, on the world's rows
        refuse(self, alike)

    monkeypatch.setattr(BehaviorSegments, "fit", too_alike)
    with pytest.warns(UserWarning, match="no behavioral segments"):
        scorer = fit_scorer(train, plan, config, versions={})
    scores = scorer.score(test)
    assert scorer.segments is None and len(scores) == len(test) and "segment" not in scores.columns
