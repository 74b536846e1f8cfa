"""The ``engine:`` section of a config: which engine runs the feature and label expressions (embedded DuckDB,
the default, or Spark), how to reach it, and the Spark settings tiercast needs for results equal to DuckDB's.

Plain pydantic models: loading a config imports neither Ibis nor pyspark.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tiercast.pipeline.ingest.sources import ColumnMapping, _check_timezone

#: Spark settings tiercast needs; a ``spark_conf`` that contradicts one is a config error.
SPARK_REQUIRED: dict[str, str] = {
    # Naive timestamps are wall-clock times; Spark stores instants, exact only in UTC (no DST gaps or overlaps).
    "spark.sql.session.timeZone": "UTC",
}


#: Spark settings tiercast sets unless ``spark_conf`` says otherwise.
SPARK_DEFAULTS: dict[str, str] = {
    # Timestamp literals and inferred columns without a time zone, like pandas' and DuckDB's naive timestamps.
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    # Parquet written by pandas / pyarrow / DuckDB holds naive microsecond timestamps: read them as such ...
    "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
    # ... and write microseconds (not the legacy INT96) so pandas and DuckDB read Spark's output exactly.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # Collect results and feed pandas UDFs (spark_udf scoring) through Arrow, not row by row.
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Re-running a cutoff replaces only that cutoff's partition of a features / scores folder.
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
}


#: The default cap on one cutoff's training rows: bounded memory and time on any number of customers. The model
#: fit is the cost it bounds: with the default settings search (4 candidates x 3 rolling-origin folds, the value,
#: churn and plain comparison models) LightGBM takes about 1 s of CPU per 1,000 training rows, so 11 cutoffs of
#: 5,000 rows fit in about 100 s, where 200,000 rows per cutoff would take over half an hour.
DEFAULT_MAX_ROWS_PER_CUTOFF = 5_000


class EngineError(RuntimeError):
    """The engine cannot be used as configured (pyspark or Java missing, a bad setting, too many bad rows)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TableSource(_Frozen):
    """A transaction table read by the engine itself (not through pandas).

    ``path``: a Parquet file, a folder of Parquet files (Hive partition folders such as ``date=2024-01-31`` are
    read as columns), or a Delta table; a local path or a URI the engine can read (``s3a://``, ``abfss://``,
    ``hdfs://``...; DuckDB needs its ``httpfs`` extension for object stores). ``columns`` maps source columns to
    canonical fields (None: the source has the canonical column names). ``partition_column``: a Hive partition
    column holding a date no later than the date of each of its rows' transaction times (the day, or the first day
    of the month); when set, partitions after the last date a computation needs are skipped (an optimisation only:
    the time filters of :mod:`tiercast.features.as_of` still apply; with a ``timezone``, one more day is read, so
    partitions by UTC date serve too). ``timezone``: the IANA zone times with a UTC offset are converted to, as
    ``data.timezone`` does for the single-table ingestion (None: UTC; naive times are taken as written); a config
    sets it from ``data.timezone`` (:class:`tiercast.pipeline.config.Config`).
    """

    path: str
    format: Literal["parquet", "delta"] = "parquet"
    columns: ColumnMapping | None = None
    partition_column: str | None = None
    max_quarantine_share: float = Field(default=0.01, ge=0.0, le=1.0)
    quarantine_path: str | None = Field(
        default=None, description="Folder for rows set aside by quarantine_invalid (None: counted, not written)."
    )
    timezone: str | None = Field(
        default=None, description="IANA zone times with a UTC offset are converted to (None: UTC); set from data."
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return _check_timezone(v)


class EngineConfig(_Frozen):
    """``engine:`` section: which engine runs the feature and label expressions, and how to reach it."""

    kind: Literal["duckdb", "spark"] = "duckdb"
    # Spark
    spark_master: str | None = Field(
        default=None,
        description="e.g. 'local[2]'; None: the master of the running session / spark-submit (production).",
    )
    spark_app_name: str = "tiercast"
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description="Extra Spark settings (spark.driver.memory, spark.sql.shuffle.partitions...); values as text.",
    )
    # DuckDB
    duckdb_threads: int | None = Field(default=None, gt=0)
    duckdb_memory_limit: str | None = Field(default=None, description="e.g. '8GB'.")
    # Data read by the engine (None: the pandas ingestion of `data:` feeds the engine).
    transactions: TableSource | None = None
    # Training: the stacked training set is collected to one machine for LightGBM.
    training_sample_customers: int | None = Field(
        default=None, gt=0, description="Train on this many customers (a seeded hash sample); None: all."
    )
    training_max_rows_per_cutoff: int | None = Field(
        default=DEFAULT_MAX_ROWS_PER_CUTOFF,
        gt=0,
        description="At most this many customers' rows per training / test cutoff: a cutoff with more is sampled "
        "in the engine, stratified on the spend of the horizon window before it (seeded); None: every row.",
    )

    @field_validator("spark_conf", mode="before")
    @classmethod
    def _conf_as_text(cls, v: Any) -> Any:
        if isinstance(v, Mapping):
            return {str(k): (str(x).lower() if isinstance(x, bool) else str(x)) for k, x in v.items()}
        return v

    @model_validator(mode="after")
    def _required_spark_settings(self) -> EngineConfig:
        bad = {k: v for k, v in self.spark_conf.items() if k in SPARK_REQUIRED and v != SPARK_REQUIRED[k]}
        if bad:
            need = ", ".join(f"{k}={SPARK_REQUIRED[k]}" for k in bad)
            raise ValueError(f"spark_conf: tiercast needs {need} (naive timestamps are exact only in UTC)")
        return self

    def spark_settings(self) -> dict[str, str]:
        """Every setting the Spark session gets: defaults, then ``spark_conf``, then the required ones."""
        return {**SPARK_DEFAULTS, **self.spark_conf, **SPARK_REQUIRED}
