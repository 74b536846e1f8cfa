"""Batch scoring on Spark: the registered tiercast pyfunc as ``mlflow.pyfunc.spark_udf``, written as partitioned
Parquet.

The rows and columns are those of :func:`tiercast.pipeline.jobs.score.score_features` (``customer_id``, the score
columns, the reason columns when asked, ``current_value``, the playbook's ``churn_band`` / ``action`` /
``channel`` when given, ``model_name``, ``model_version``, ``cutoff``, ``horizon_days``), computed on the executors:
the UDF feeds the pyfunc Arrow batches of feature rows and the pyfunc is row-aligned, so the scores equal the local
pyfunc's.

Reasons: the pyfunc takes ``params={"reasons": True}``; ``spark_udf`` fixes ``params`` when the UDF is made, so a
reasons run uses a second UDF whose result type carries the two reason columns. TreeSHAP costs far more than
scoring: :func:`explain_spark` adds reasons to a few rows only (e.g. the at-risk list), like ``tiercast at-risk``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from tiercast.features import as_of
from tiercast.features.build import DEFAULT_HORIZON_DAYS, DEFAULT_WINDOWS_DAYS, Frame, as_table, feature_table
from tiercast.features.contract import (
    CURRENT_TIER,
    CUSTOMER_ID,
    CUTOFF,
    MODEL_NAME,
    MODEL_VERSION,
    PLAYBOOK_COLUMNS,
    PREDICTED_TIER,
    REASON_COLUMNS,
    SCORE_COLUMNS,
    SEGMENT_COLUMNS,
    SEGMENT_KEY,
)
from tiercast.models.playbook import Playbook
from tiercast.models.scorer import FeatureSchemaError, TiercastScorer
from tiercast.pipeline.engine.session import session_of, to_engine_table
from tiercast.pipeline.engine.writes import PARTITION_COLUMN, partition_value, to_spark_dataframe
from tiercast.pipeline.jobs.at_risk_list import HORIZON_DAYS

if TYPE_CHECKING:
    import ibis
    import ibis.expr.types as ir
    from pyspark.sql import Column, SparkSession
    from pyspark.sql import DataFrame as SparkDataFrame

__all__ = [
    "SparkModel",
    "explain_spark",
    "resolve_spark_model",
    "output_columns",
    "result_type",
    "score_spark",
    "score_to_folder",
    "write_scores",
]

#: The Spark SQL type of every column the scoring UDF returns: the tiers and the text columns are strings.
_TYPES = {
    **dict.fromkeys(SCORE_COLUMNS, "double"),
    **dict.fromkeys((CURRENT_TIER, PREDICTED_TIER, *SEGMENT_COLUMNS, *REASON_COLUMNS), "string"),
}
_UDF_COLUMN = "_tiercast_scores"


@dataclass(frozen=True)
class SparkModel:
    """A pyfunc to score with on Spark: the URI every executor loads (a registered version, never a moving alias),
    the name and version stamped on each row, and the scorer (loaded on the driver for its feature list)."""

    uri: str
    name: str
    version: str
    scorer: TiercastScorer


def resolve_spark_model(model_uri: str, *, name: str | None = None, version: str | None = None) -> SparkModel:
    """``models:/NAME@ALIAS`` or ``models:/NAME/N`` is pinned to its version (so an alias moved during the job
    does not mix two models); another URI (a local model folder, ``runs:/...``) is used as given, stamped with
    ``name`` / ``version`` (default: the URI and "0")."""
    import mlflow.pyfunc

    from tiercast.pipeline.jobs.score import resolve_model_version

    if model_uri.startswith("models:/"):
        name, version = resolve_model_version(model_uri)
        model_uri = f"models:/{name}/{version}"
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    scorer = pyfunc.unwrap_python_model().scorer
    return SparkModel(model_uri, name or model_uri, version or "0", scorer)


def output_columns(scorer: TiercastScorer, reasons: bool = False) -> list[str]:
    """The pyfunc's output columns, in its order: scores, the segment columns when the scorer has segments, then
    the reason columns with ``reasons``."""
    segments = SEGMENT_COLUMNS if getattr(scorer, "segments", None) is not None else ()
    return [*SCORE_COLUMNS, *segments, *(REASON_COLUMNS if reasons else ())]


def result_type(scorer: TiercastScorer, reasons: bool = False) -> str:
    """The UDF's result type (Spark DDL) for :func:`output_columns`."""
    return ", ".join(f"{c} {_TYPES[c]}" for c in output_columns(scorer, reasons))


def _check_columns(model: SparkModel, features: SparkDataFrame) -> list[str]:
    """The model's input columns, after a clear error for missing or non-numeric ones (as the local scorer)."""
    from pyspark.sql.types import NumericType

    fields = {f.name: f.dataType for f in features.schema.fields}
    required = list(model.scorer.required_columns)
    missing = [c for c in required if c not in fields]
    if missing:
        raise model.scorer.missing_columns_error(missing)
    bad = [c for c in required if not isinstance(fields[c], NumericType)]
    if bad:
        raise FeatureSchemaError(f"feature column(s) are not numeric: {', '.join(bad[:10])}")
    return required


def _udf(spark: SparkSession, model: SparkModel, reasons: bool):
    import mlflow.pyfunc

    return mlflow.pyfunc.spark_udf(
        spark,
        model.uri,
        result_type=result_type(model.scorer, reasons),
        env_manager="local",
        params={"reasons": reasons},
    )


def _model_input(features: SparkDataFrame, columns: Sequence[str]) -> Column:
    """The feature columns as one struct, so the pyfunc gets a frame with the feature names (as doubles, like the
    local scorer's ``astype("float64")``)."""
    from pyspark.sql import functions as F

    return F.struct(*[F.col(c).cast("double").alias(c) for c in columns])


def _apply_playbook(scored: SparkDataFrame, playbook: Playbook) -> SparkDataFrame:
    """The playbook's columns beside the scores, computed per Arrow batch by :meth:`Playbook.apply`."""
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType([*scored.schema.fields, *(StructField(c, StringType(), True) for c in PLAYBOOK_COLUMNS)])

    by_segment = SEGMENT_KEY in scored.columns and playbook.segments != ("any",)  # as score_features

    def apply(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            segment = batch[SEGMENT_KEY].to_numpy() if by_segment else None
            yield pd.concat([batch, playbook.apply(batch, segment=segment).astype("str")], axis=1)

    return scored.mapInPandas(apply, schema)


def score_spark(
    spark: SparkSession,
    model: SparkModel,
    features: SparkDataFrame,
    *,
    cutoff: as_of.TimeLike,
    reasons: bool = False,
    playbook: Playbook | None = None,
) -> SparkDataFrame:
    """Scores of every feature row (lazy): the columns of :func:`tiercast.pipeline.jobs.score.score_features`, plus
    :data:`~tiercast.pipeline.engine.writes.PARTITION_COLUMN` for :func:`write_scores`."""
    from pyspark.sql import functions as F

    columns = _check_columns(model, features)
    predict = _udf(spark, model, reasons)
    out_cols = output_columns(model.scorer, reasons)
    scored = features.select(
        CUSTOMER_ID,
        predict(_model_input(features, columns)).alias(_UDF_COLUMN),
        F.col(model.scorer.current_value_column).cast("double").alias("current_value"),
    ).select(CUSTOMER_ID, *[F.col(f"{_UDF_COLUMN}.{c}").alias(c) for c in out_cols], "current_value")
    if playbook is not None:
        scored = _apply_playbook(scored, playbook)
    ts = as_of.to_cutoff(cutoff)
    return scored.select(
        "*",
        F.lit(model.name).alias(MODEL_NAME),
        F.lit(model.version).alias(MODEL_VERSION),
        F.lit(ts.to_pydatetime()).cast("timestamp_ntz").alias(CUTOFF),
        F.lit(int(model.scorer.horizon_days)).cast("bigint").alias(HORIZON_DAYS),
        F.lit(partition_value(ts)).alias(PARTITION_COLUMN),
    )


def explain_spark(
    spark: SparkSession, model: SparkModel, features: SparkDataFrame, *, cutoff: as_of.TimeLike
) -> SparkDataFrame:
    """``customer_id`` and the reason columns of the given feature rows (run it on the rows you list, e.g. the
    at-risk customers: reasons cost far more than scores)."""
    scored = score_spark(spark, model, features, cutoff=cutoff, reasons=True)
    return scored.select(CUSTOMER_ID, *REASON_COLUMNS)


def write_scores(scores: SparkDataFrame, out: str | Path, *, partition_by: Sequence[str] = (PARTITION_COLUMN,)) -> None:
    """Write scores as Hive-partitioned Parquet under ``out``; a re-run of a cutoff replaces its partition only
    (the session's ``partitionOverwriteMode`` is ``dynamic``, see
    :data:`tiercast.pipeline.engine.config.SPARK_DEFAULTS`)."""
    scores.write.mode("overwrite").partitionBy(*partition_by).parquet(str(out))


def score_to_folder(
    con: ibis.BaseBackend,
    model: SparkModel,
    tx: Frame | None,
    out: str | Path,
    *,
    cutoff: as_of.TimeLike,
    windows_days: Iterable[int] = DEFAULT_WINDOWS_DAYS,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    satisfaction: Frame | None = None,
    reasons: bool = False,
    playbook: Playbook | None = None,
    features: ir.Table | None = None,
) -> str:
    """``tiercast score`` on Spark: the features at ``cutoff`` (``features`` when given, e.g. a partition written
    by ``tiercast features``, else built from ``tx`` on the cluster), scored by the pyfunc's spark_udf and written
    to ``out/cutoff_date=<cutoff>/`` (replaced if it exists); nothing is collected to the driver. Returns the
    partition folder."""
    if model.scorer.horizon_days != int(horizon_days):
        raise FeatureSchemaError(
            f"the model predicts {model.scorer.horizon_days} days (trained with {model.scorer.trained_with()}); "
            f"features for horizon_days {horizon_days} do not fit it: build them with the model's horizon, or "
            f"retrain with horizon_days {horizon_days}"
        )
    if features is None:
        if tx is None:
            raise ValueError("give the transactions or the features")
        sat = to_engine_table(con, satisfaction) if satisfaction is not None else None
        features = feature_table(
            as_table(to_engine_table(con, tx)),
            cutoff=cutoff,
            windows_days=windows_days,
            horizon_days=horizon_days,
            satisfaction=sat,
        )
    scores = score_spark(
        session_of(con),
        model,
        to_spark_dataframe(con, features),
        cutoff=cutoff,
        reasons=reasons,
        playbook=playbook,
    )
    write_scores(scores, out)
    return f"{str(out).rstrip('/')}/{PARTITION_COLUMN}={partition_value(cutoff)}"
