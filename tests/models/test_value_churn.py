import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.metrics import brier_score_loss, roc_auc_score

from tests.models.conftest import FEATURES
from tiercast.models.gbm.churn import ChurnModel
from tiercast.models.gbm.value import ValueModel


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
