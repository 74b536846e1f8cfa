from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.metrics import brier_score_loss, roc_auc_score

from tests.models.conftest import FEATURES
from tiercast.models.gbm.churn import ChurnModel, btyd_churn_attribution
from tiercast.models.gbm.value import ValueModel
from tiercast.models.reasons import top_reasons


def test_value_model_ranks_and_totals(train_val_test):
    train, val, test = train_val_test
    model = ValueModel(n_estimators=500, random_state=0).fit(
        train[FEATURES], train["future_value"], val[FEATURES], val["future_value"]
    )
    pred = model.predict(test[FEATURES])
    assert pred.shape == (len(test),) and (pred >= 0).all()
    assert 1 <= model.n_trees_ < 500  # early stopping chose the tree count
    # The signal is strong: predictions must rank customers well and total close to the realized spend.
    rho = np.corrcoef(np.argsort(np.argsort(pred)), np.argsort(np.argsort(test["future_value"])))[0, 1]
    assert rho > 0.4
    assert pred.sum() == pytest.approx(test["future_value"].sum(), rel=0.15)


def test_churn_model_is_calibrated_and_ranks(train_val_test):
    train, val, test = train_val_test
    model = ChurnModel(n_estimators=500, random_state=0).fit(
        train[FEATURES], train["churned"], val[FEATURES], val["churned"]
    )
    p = model.predict_proba(test[FEATURES])[:, 1]
    y = test["churned"].to_numpy()
    assert roc_auc_score(y, p) > 0.7
    # Calibrated: Brier well under the constant-rate predictor's, and the mean close to the churn rate.
    assert brier_score_loss(y, p) < brier_score_loss(y, np.full_like(p, y.mean())) * 0.9
    assert p.mean() == pytest.approx(y.mean(), abs=0.03)
    assert model.calibrator_ is not None


def test_models_are_deterministic(train_val_test):
    train, val, test = train_val_test
    a = ValueModel(n_estimators=200, random_state=3).fit(train[FEATURES], train["future_value"])
    b = ValueModel(n_estimators=200, random_state=3).fit(train[FEATURES], train["future_value"])
    np.testing.assert_array_equal(a.predict(test[FEATURES]), b.predict(test[FEATURES]))


def test_unfitted_models_refuse_to_predict(train_val_test):
    _, _, test = train_val_test
    with pytest.raises(NotFittedError):
        ValueModel().predict(test[FEATURES])
    with pytest.raises(NotFittedError):
        ChurnModel().predict_proba(test[FEATURES])


def test_btyd_churn_attribution_is_hand_computed():
    # a stand-in BTYD model with logit P(no purchase) = 0.1 * days since the last purchase - 0.05 * x; g_ref = 10
    def churn_log_odds(states, horizon_days):
        return (
            0.1 * (states["tenure_days"] - states["first_to_last_days"]) - 0.05 * states["repeat_purchase_days"]
        ).to_numpy()

    count_model = SimpleNamespace(params_={"r": 1.0, "alpha": 10.0})
    btyd = SimpleNamespace(count_model_=count_model)
    stacker = SimpleNamespace(btyd_=btyd, time_unit_days=1.0, churn_log_odds=churn_log_odds)
    X = pd.DataFrame(
        {"repeat_purchase_days": [4.0, 0.0], "first_to_last_days": [80.0, 0.0], "tenure_days": [140.0, 50.0]}
    ).assign(repeat_spend_mean=0.0, day_spend_mean=0.0)
    rhythm, late, ref = btyd_churn_attribution(stacker, X, 90.0)
    # row 0: gap 20, overdue 3. States (x, tx, T): reference (4, 40, 50) -> 0.8, reference gap overdue 3
    # (4, 40, 70) -> 2.8, own gap on schedule (4, 80, 100) -> 1.8, own (4, 80, 140) -> 5.8.
    # rhythm = ((1.8 - 0.8) + (5.8 - 2.8)) / 2 = 2, overdue = ((2.8 - 0.8) + (5.8 - 1.8)) / 2 = 3.
    # row 1 (no repeat purchase): overdue 50 / 10 = 5. Reference (1, 10, 20) -> 0.95, (1, 10, 60) -> 4.95,
    # (0, 0, 10) -> 1.0, own (0, 0, 50) -> 5.0: rhythm 0.05, overdue 4.0.
    np.testing.assert_allclose(rhythm, [2.0, 0.05], atol=1e-9)
    np.testing.assert_allclose(late, [3.0, 4.0], atol=1e-9)
    np.testing.assert_allclose(ref, [0.8, 0.95], atol=1e-9)


def _histories(n: int, seed: int) -> pd.DataFrame:
    """Pareto/NBD-like purchase histories: Poisson purchases (a 20-day gap on average) until an exponential
    lifetime (200 days on average) ends; by the cutoff most customers have lapsed."""
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(100.0, 700.0, n)
    active = np.minimum(rng.exponential(200.0, n), tenure)
    x = rng.poisson(rng.gamma(1.0, 1 / 20, n) * active).astype(float)
    span = np.where(x > 0, active * rng.beta(np.maximum(x, 1.0), 1.0), 0.0)  # last of x uniform purchase times
    return pd.DataFrame({"repeat_purchase_days": x, "first_to_last_days": span, "tenure_days": tenure})


def _with_recency(frame: pd.DataFrame) -> pd.DataFrame:
    x, span = frame["repeat_purchase_days"], frame["first_to_last_days"]
    gap, recency = (span / x).where(x > 0), frame["tenure_days"] - span
    return (
        frame.assign(recency_days=recency, gap_mean_days=gap, overdue_ratio=recency / gap)
        .assign(repeat_spend_mean=40.0, day_spend_mean=40.0)
        .assign(monetary_total=40.0 * (1 + x))
    )


def test_a_btyd_led_churn_model_gives_reasons_for_a_valuable_overdue_customer():
    train = _with_recency(_histories(300, 0))
    y = (train["recency_days"] > 120).astype(int)
    model = ChurnModel(horizon_days=90, btyd="bgnbd", seasonal=False, random_state=0).fit(train, y)
    assert model.btyd_led_ and model.weight_ == 0.0
    # 31 purchase days, every 10 days, none for the last 40 (P(churn) about 0.56): riskier than an active customer,
    # safer than the (mostly lapsed) average one, whose BTYD log-odds the churn reasons used to be measured against
    X = _with_recency(
        pd.DataFrame(
            {"repeat_purchase_days": [30.0, 2.0], "first_to_last_days": [300.0, 200.0], "tenure_days": [340.0, 260.0]}
        )
    )
    p = model.predict_proba(X)[:, 1]
    assert np.log(p / (1 - p))[0] < model.offset_mean_
    contrib = model.contributions(X)
    np.testing.assert_allclose(contrib.sum(axis=1), np.log(p / (1 - p)), atol=1e-9)
    reasons = top_reasons(contrib, model.transform(X), list(model.feature_names_in_), target="churn")
    # a customer buying every 100 days, last 60 days ago, is not overdue: the risk is the rare rhythm
    assert reasons.tolist() == [
        "raises churn risk: 40 days since the last purchase, usually every 10",
        "raises churn risk: usually buys every 100 days",
    ]
