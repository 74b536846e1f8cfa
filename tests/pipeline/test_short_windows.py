"""Settings chosen on label windows cut to end by the validation cutoff, when the history is too short for a
horizon-length one to end by it: no leakage past the validation cutoff, trees refitted on the full windows."""

import numpy as np
import pandas as pd
import pytest

from tests.models.test_stacking import simulate_transactions
from tests.pipeline.test_train import START, _config, scrambled_from
from tiercast.features.contract import CUTOFF, LABEL_DAYS
from tiercast.features.cutoff_plan import plan_cutoffs
from tiercast.features.training_set import build_training_set
from tiercast.models.gbm.stacked import StackedModel
from tiercast.pipeline.jobs.model_fit import fit_models, labels_from


@pytest.fixture(scope="module")
def short():
    """200 days, 60-day horizon, cutoffs 30 days apart after 30 days of history: the test cutoff is day 140 and
    its two training cutoffs (days 50 and 80) leave no 60-day label window ending by the validation cutoff."""
    tx = simulate_transactions(n_customers=600, days=200, seed=3)
    config = _config()
    end = tx["timestamp"].max().normalize() + pd.Timedelta(days=1)
    plan = plan_cutoffs(START, end, config.cutoff_rules())
    kw = {"horizon_days": config.horizon_days, "windows_days": config.features.windows_days}
    train = build_training_set(tx, cutoffs=plan.train, data_end=plan.test, holdout_start=plan.test, **kw)
    return tx, config, plan, train


def test_the_plan_names_the_cut_windows(short):
    _, _, plan, _ = short
    assert plan.train == (START + pd.Timedelta(days=50), START + pd.Timedelta(days=80))
    assert plan.notes == (
        "no 60-day training label window ends by the validation cutoff 2022-03-22: settings are chosen on label "
        "windows cut to end by it (30 days), then the trees are refitted on the 60-day windows",
    )


def test_cut_windows_never_read_past_the_validation_cutoff(short, monkeypatch):
    """Scrambling every transaction at or after the validation cutoff in what the cut windows' labels are read
    from leaves both models unchanged; the labels asked for end by it, and the final trees see the full windows."""
    tx, config, plan, train = short
    scrambled = scrambled_from(tx, plan.validation, at_least=100)
    asked, refits = [], []
    refit = StackedModel.refit

    def spy(self, X, y, **kwargs):
        refits.append((X[CUTOFF].nunique(), len(X), kwargs.get("label_days")))
        return refit(self, X, y, **kwargs)

    monkeypatch.setattr(StackedModel, "refit", spy)
    fits = []
    for data in (tx, scrambled):
        read = labels_from(None, data)

        def labels_at(cutoff, days, read=read):
            asked.append((cutoff, days))
            return read(cutoff, days)

        fits.append(fit_models(train, plan.validation, config, labels_at=labels_at))
    assert set(asked) == {(plan.train[0], 30)}
    assert refits == [(2, len(train), 60)] * 4  # value and churn, twice: every training row, 60-day labels
    (value_a, churn_a), (value_b, churn_b) = fits
    for model in (value_a, churn_a):
        assert not model.overlapping_ and not model.btyd_led_  # a time-separated choice, not the BTYD model alone
    np.testing.assert_array_equal(value_a.predict(train), value_b.predict(train))
    np.testing.assert_array_equal(churn_a.predict_proba(train), churn_b.predict_proba(train))
    assert LABEL_DAYS not in train.columns  # the caller's rows are not modified


def test_without_labels_the_models_are_the_btyd_model(short):
    _, config, plan, train = short
    value, churn = fit_models(train, plan.validation, config)
    assert value.btyd_led_ and churn.btyd_led_ and value.weight_ == 0.0 and churn.weight_ == 0.0


def test_the_backtest_table_and_its_printout_carry_the_plan_note(short, capsys):
    from tiercast.pipeline.cli.jobs import _print_backtest
    from tiercast.pipeline.ingest.loader import from_ingest
    from tiercast.pipeline.ingest.rules import IngestResult
    from tiercast.pipeline.jobs.backtest import run_backtest

    tx, config, plan, _ = short
    ingest = from_ingest(config, IngestResult(accepted=tx, quarantine=pd.DataFrame(), n_read=len(tx), source="sim"))
    table = run_backtest(config, ingest, n_tests=1, n_boot=0, methods=("paretonbd_gg", "tiercast"))
    assert table["plan_note"].tolist() == [plan.notes[0]] * 2
    _print_backtest(config, table)
    assert f"note: {plan.notes[0]}" in " ".join(capsys.readouterr().out.split())
