"""Scoring on Spark with ``mlflow.pyfunc.spark_udf`` over the saved tiercast pyfunc equals the local pyfunc's
scores (and reasons, and playbook actions), and is written as partitioned Parquet."""

from __future__ import annotations

import tempfile

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from pandas.api.types import is_float_dtype

from tests.spark.conftest import SYN_CUTOFF, SYN_HORIZON, SYN_WINDOWS, assert_same
from tiercast.features.contract import REASON_COLUMNS, SCORE_COLUMNS
from tiercast.models.gbm.churn import ChurnModel
from tiercast.models.gbm.value import ValueModel
from tiercast.models.playbook import Playbook, Rule
from tiercast.models.scorer import FeatureSchemaError, TiercastScorer, pyfunc_spec
from tiercast.models.segments import SEGMENT_KEYS, BehaviorSegments
from tiercast.models.tiers.scheme import TierScheme
from tiercast.pipeline.engine.rows import build_training_set_on
from tiercast.pipeline.engine.writes import PARTITION_COLUMN, to_spark_dataframe
from tiercast.pipeline.ingest.engine_tables import read_transactions_table
from tiercast.pipeline.jobs.score import LoadedModel, score_features
from tiercast.pipeline.jobs.spark_score import explain_spark, resolve_spark_model, score_spark, score_to_folder

pytestmark = pytest.mark.spark

TIERS = ("gold", "silver", "bronze")
PLAYBOOK = Playbook(
    rules=(
        Rule(action="VIP retention call", channel="phone", current_tiers=("gold",), churn_bands=("medium", "high")),
        Rule(action="upsell", channel="email", current_tiers=("silver",), movement=("up",)),
        Rule(action="referral ask", channel="email", current_tiers=("bronze",), segments=SEGMENT_KEYS[:4]),
    ),
    tiers=TIERS,
    segments=SEGMENT_KEYS,
    default_action="automated service",
    default_channel="email",
)


@pytest.fixture(scope="module")
def model_dir(duck_con, partitioned_tx, tmp_path_factory) -> str:
    """A small scorer trained on DuckDB-built features of 3,000 sampled customers of the 100k data (fit at
    2023-01-01, validate at 2023-04-01), saved as the tiercast pyfunc."""
    train, _ = build_training_set_on(
        duck_con,
        read_transactions_table(duck_con, partitioned_tx),
        cutoffs=["2023-01-01", "2023-04-01"],
        horizon_days=SYN_HORIZON,
        windows_days=SYN_WINDOWS,
        data_end=SYN_CUTOFF,
        sample=3_000,
    )
    features = [
        c for c in train.columns if c not in ("customer_id", "cutoff", "future_value", "future_orders", "churned")
    ]
    fit, val = train[train["cutoff"] == "2023-01-01"], train[train["cutoff"] == "2023-04-01"]
    value = ValueModel({"n_jobs": 1}, n_estimators=40).fit(
        fit[features], fit["future_value"], val[features], val["future_value"]
    )
    churn = ChurnModel({"n_jobs": 1}, n_estimators=40).fit(fit[features], fit["churned"], val[features], val["churned"])
    current = f"spend_{SYN_HORIZON}d"
    scheme = TierScheme(names=TIERS, k=3).fit(val[current].clip(lower=0).to_numpy())
    scheme.fit_predictions(value.predict(val[features]))
    segments = BehaviorSegments(random_state=0).fit(val[features])
    scorer = TiercastScorer(scheme, value, churn, tuple(features), current, SYN_HORIZON, segments=segments)
    path = tmp_path_factory.mktemp("model") / "pyfunc"
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.pyfunc.save_model(path, pip_requirements=["lightgbm"], **pyfunc_spec(scorer, val.head(5), tmp))
    return str(path)


@pytest.fixture(scope="module")
def spark_features(spark_con, spark_features_100k):
    """The Spark-built features (cached) as a Spark DataFrame."""
    return to_spark_dataframe(spark_con, spark_features_100k)


@pytest.fixture(scope="module")
def local_model(model_dir) -> LoadedModel:
    return LoadedModel(mlflow.pyfunc.load_model(model_dir), "tiercast-test", "7")


@pytest.fixture(scope="module")
def spark_model(model_dir):
    return resolve_spark_model(model_dir, name="tiercast-test", version="7")


def _collect(sdf) -> pd.DataFrame:
    return sdf.toPandas().sort_values("customer_id", ignore_index=True)


def test_spark_udf_scores_equal_local_pyfunc(spark, spark_features, duck_features_100k, local_model, spark_model):
    got = _collect(score_spark(spark, spark_model, spark_features, cutoff=SYN_CUTOFF, playbook=PLAYBOOK))
    want = score_features(local_model, duck_features_100k, cutoff=SYN_CUTOFF, playbook=PLAYBOOK)
    assert got.columns.tolist() == [*want.columns, PARTITION_COLUMN]
    assert (got[PARTITION_COLUMN] == "2023-07-01").all()
    assert (got["cutoff"] == SYN_CUTOFF).all() and (want["cutoff"] == SYN_CUTOFF).all()
    same = [c for c in want.columns if c != "cutoff"]
    assert_same(got[same].astype({c: want[c].dtype for c in same if not is_float_dtype(want[c])}), want[same])
    # Not a degenerate model: every tier predicted, churn probabilities spread, some playbook rule fires.
    assert set(got["predicted_tier"]) == set(TIERS)
    assert got["churn_probability"].std() > 0.05
    assert (got["action"] != "automated service").any()
    assert got["segment"].nunique() > 1 and (got["action"] == "referral ask").any()  # segment rules apply


def test_spark_udf_reasons_equal_local_pyfunc(spark, spark_features, duck_features_100k, local_model, spark_model):
    """Reasons come from a second UDF made with params={"reasons": True}, run on the listed rows only."""
    listed = sorted(duck_features_100k["customer_id"].sample(300, random_state=0))
    rows = spark_features.filter(spark_features["customer_id"].isin(listed))
    local_rows = duck_features_100k.set_index("customer_id").loc[listed].reset_index()
    want = local_model.pyfunc.predict(local_rows[list(spark_model.scorer.required_columns)], params={"reasons": True})
    got = _collect(score_spark(spark, spark_model, rows, cutoff=SYN_CUTOFF, reasons=True))
    assert got.columns.tolist()[: 3 + len(SCORE_COLUMNS) + len(REASON_COLUMNS)] == [
        "customer_id",
        *SCORE_COLUMNS,
        "segment",
        "segment_key",
        *REASON_COLUMNS,
    ]
    assert got["customer_id"].tolist() == listed
    for col in REASON_COLUMNS:
        assert got[col].tolist() == want[col].tolist(), col
    assert (got["churn_reasons"] != "").mean() > 0.5
    np.testing.assert_allclose(got["predicted_value"], want["predicted_value"], rtol=1e-12)
    # explain_spark is the same UDF, reasons only
    assert explain_spark(spark, spark_model, rows, cutoff=SYN_CUTOFF).columns == ["customer_id", *REASON_COLUMNS]


def test_score_to_folder_writes_the_cutoff_partition(spark_con, spark_features_100k, spark_model, tmp_path):
    """`tiercast score --engine spark`: the cutoff's partition is replaced (its old files go), other partitions
    stay, one row per customer."""
    out = tmp_path / "scores"
    stale, other = out / f"{PARTITION_COLUMN}=2023-07-01", out / f"{PARTITION_COLUMN}=2023-04-01"
    for folder in (stale, other):
        folder.mkdir(parents=True)
        (folder / "old.parquet").write_bytes(b"")
    written = score_to_folder(
        spark_con,
        spark_model,
        None,
        out,
        cutoff=SYN_CUTOFF,
        windows_days=SYN_WINDOWS,
        horizon_days=SYN_HORIZON,
        features=spark_features_100k,
    )
    assert written == str(stale)
    assert not (stale / "old.parquet").exists() and (other / "old.parquet").exists()
    back = pd.read_parquet(stale)
    assert len(back) == spark_features_100k.count().execute()
    assert back["customer_id"].is_unique
    assert str(back["cutoff"].dtype).startswith("datetime64") and (back["cutoff"] == SYN_CUTOFF).all()


def test_missing_feature_column_is_a_clear_error(spark, spark_features, spark_model):
    with pytest.raises(FeatureSchemaError, match="recency_days"):
        score_spark(spark, spark_model, spark_features.drop("recency_days"), cutoff=SYN_CUTOFF)
