import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from tests.models.conftest import FEATURES
from tiercast.models.churn import ChurnModel
from tiercast.models.scorer import SCORE_COLUMNS, FeatureSchemaError, TiercastPyfunc, TiercastScorer, dump_scorer
from tiercast.models.tiering import TierScheme
from tiercast.models.value import ValueModel


@pytest.fixture(scope="module")
def scorer(train_val_test) -> TiercastScorer:
    train, val, _ = train_val_test
    value = ValueModel(n_estimators=200).fit(train[FEATURES], train["future_value"], val[FEATURES], val["future_value"])
    churn = ChurnModel(n_estimators=200).fit(train[FEATURES], train["churned"], val[FEATURES], val["churned"])
    scheme = TierScheme(k=3, names=("gold", "silver", "bronze")).fit(val["spend_90d"])
    scheme.fit_predictions(value.predict(val[FEATURES]))
    return TiercastScorer(scheme, value, churn, tuple(FEATURES), "spend_90d", 90, {"tiercast": "test"})


def test_scores_are_row_aligned_and_complete(scorer, train_val_test):
    test = train_val_test[2].sample(frac=1.0, random_state=0)  # shuffled index
    out = scorer.score(test)
    assert list(out.columns) == list(SCORE_COLUMNS)
    assert out.index.equals(test.index)
    assert not out.isna().any().any()
    np.testing.assert_allclose(out["value_at_risk"], out["predicted_value"] * out["churn_probability"])
    assert set(out["current_tier"]) <= {"gold", "silver", "bronze"}
    # Row alignment: scoring one row alone gives the same answer as scoring it among others.
    one = scorer.score(test.iloc[[7]])
    pd.testing.assert_frame_equal(one, out.iloc[[7]])


def test_missing_feature_column_is_a_clear_error(scorer, train_val_test):
    with pytest.raises(FeatureSchemaError, match="recency_days"):
        scorer.score(train_val_test[2].drop(columns=["recency_days"]))


def test_pyfunc_save_load_predict_round_trip(scorer, train_val_test, tmp_path):
    test = train_val_test[2]
    artifact = dump_scorer(scorer, tmp_path / "scorer.joblib")
    mlflow.pyfunc.save_model(
        tmp_path / "model",
        python_model=TiercastPyfunc(),
        artifacts={TiercastPyfunc.ARTIFACT: str(artifact)},
        pip_requirements=["lightgbm"],
    )
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    rows = test[["customer_id", *FEATURES]]
    pd.testing.assert_frame_equal(loaded.predict(rows), scorer.score(rows))
