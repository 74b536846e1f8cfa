import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from tests.models.conftest import FEATURES
from tiercast.features.contract import REASON_COLUMNS, SCORE_COLUMNS
from tiercast.models.gbm.churn import ChurnModel
from tiercast.models.gbm.value import ValueModel
from tiercast.models.scorer import (
    FeatureSchemaError,
    TiercastScorer,
    aggregate_example,
    pyfunc_spec,
)
from tiercast.models.tiers.scheme import TierScheme


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


def test_reasons_are_added_on_request(scorer, train_val_test):
    test = train_val_test[2].head(200)
    out = scorer.score(test, reasons=True)
    assert list(out.columns) == [*SCORE_COLUMNS, *REASON_COLUMNS]
    pd.testing.assert_frame_equal(out[list(SCORE_COLUMNS)], scorer.score(test))
    assert (out["churn_reasons"] != "").mean() > 0.5
    assert out["churn_reasons"].str.contains("no purchase for|orders|spent|net spend").any()


def test_missing_feature_column_is_a_clear_error(scorer, train_val_test):
    with pytest.raises(FeatureSchemaError, match="recency_days"):
        scorer.score(train_val_test[2].drop(columns=["recency_days"]))


def test_pyfunc_save_load_predict_round_trip(scorer, train_val_test, tmp_path):
    test = train_val_test[2]
    rows = test[["customer_id", *FEATURES]]
    mlflow.pyfunc.save_model(tmp_path / "model", pip_requirements=["lightgbm"], **pyfunc_spec(scorer, rows, tmp_path))
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    pd.testing.assert_frame_equal(loaded.predict(rows), scorer.score(rows))
    with_reasons = loaded.predict(rows.head(50), params={"reasons": True})
    pd.testing.assert_frame_equal(with_reasons, scorer.score(rows.head(50), reasons=True))


def test_model_input_example_holds_no_customer_row(scorer, train_val_test, tmp_path):
    test = train_val_test[2]
    rows = test[["customer_id", *FEATURES]]
    mlflow.pyfunc.save_model(tmp_path / "model", pip_requirements=["lightgbm"], **pyfunc_spec(scorer, rows, tmp_path))
    texts = [p.read_text() for p in (tmp_path / "model").glob("*example*.json")]
    assert texts, "the model has an input example"
    assert not any(str(cid) in t for cid in rows["customer_id"] for t in texts)
    example = aggregate_example(rows[FEATURES])
    assert len(example) == 3 and list(example.dtypes) == list(rows[FEATURES].dtypes)
    pd.testing.assert_series_equal(
        example.iloc[1], rows[FEATURES].quantile(0.5, interpolation="nearest"), check_names=False
    )
    real = set(map(tuple, rows[FEATURES].to_numpy().tolist()))
    assert not any(tuple(r) in real for r in example.to_numpy().tolist())
