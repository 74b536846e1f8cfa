"""Writing engine results as Hive-partitioned Parquet (features and scores partitioned by cutoff, quarantined rows
by reason): Spark writes from the executors, DuckDB through Arrow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir

from tiercast.features import as_of
from tiercast.features.build import (
    DEFAULT_HORIZON_DAYS,
    DEFAULT_WINDOWS_DAYS,
    Frame,
    as_table,
    feature_table,
)
from tiercast.features.contract import TIMESTAMP
from tiercast.pipeline.engine.config import EngineError
from tiercast.pipeline.engine.session import is_spark, to_engine_table

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame

#: The partition column of written features and scores: the cutoff as ``YYYY-MM-DD`` (``YYYY-MM-DDTHHMMSS`` when
#: the cutoff is not a midnight).
PARTITION_COLUMN = "cutoff_date"


# --------------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------------


def partition_value(cutoff: as_of.TimeLike) -> str:
    """The :data:`PARTITION_COLUMN` value of a cutoff: ``YYYY-MM-DD``, or ``YYYY-MM-DDTHHMMSS`` off midnight."""
    ts = as_of.to_cutoff(cutoff)
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.strftime("%Y-%m-%dT%H%M%S")


def to_spark_dataframe(con: ibis.BaseBackend, expr: ir.Table) -> SparkDataFrame:
    """The Spark DataFrame of an expression on a Spark backend (lazy; nothing runs yet)."""
    if not is_spark(con):
        raise EngineError("to_spark_dataframe needs a Spark backend")
    con._run_pre_execute_hooks(expr)  # registers in-memory tables and UDFs the expression uses
    return con.raw_sql(con.compile(expr))


def write_partitioned(
    con: ibis.BaseBackend, expr: ir.Table, path: str | Path, *, partition_by: Sequence[str] = (PARTITION_COLUMN,)
) -> None:
    """Write ``expr`` as Hive-partitioned Parquet under ``path``, replacing only the partitions it writes.

    Spark writes from the executors (dynamic partition overwrite, via a staging folder); DuckDB collects the result
    through Arrow and writes it with pyarrow (``delete_matching``: the written partitions' old files go first).
    """
    path = str(path)
    if is_spark(con):
        sdf = to_spark_dataframe(con, expr)
        # One file per task; adaptive query execution (on by default) merges small shuffle partitions first.
        sdf.write.mode("overwrite").partitionBy(*partition_by).parquet(path)
        return
    import pyarrow.dataset as ds

    table = con.to_pyarrow(expr)
    Path(path).mkdir(parents=True, exist_ok=True)
    ds.write_dataset(
        table,
        path,
        format="parquet",
        partitioning=list(partition_by),
        partitioning_flavor="hive",
        existing_data_behavior="delete_matching",
        basename_template="part-{i}.parquet",
    )


def write_features(
    con: ibis.BaseBackend,
    tx: ir.Table,
    out: str | Path,
    *,
    cutoff: as_of.TimeLike,
    windows_days: Iterable[int] = DEFAULT_WINDOWS_DAYS,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    satisfaction: Frame | None = None,
) -> str:
    """Build the features at ``cutoff`` on ``con`` and write them under ``out`` in the partition
    ``cutoff_date=<cutoff>`` (replaced if it exists). Rows: the columns of
    :func:`~tiercast.features.build.build_features`, then ``cutoff`` (timestamp). Returns the partition folder."""
    cutoff = as_of.to_cutoff(cutoff)
    t = as_table(to_engine_table(con, tx))
    satisfaction = to_engine_table(con, satisfaction) if satisfaction is not None else None
    expr = feature_table(
        t, cutoff=cutoff, windows_days=windows_days, horizon_days=horizon_days, satisfaction=satisfaction
    )
    expr = expr.mutate(
        cutoff=ibis.literal(cutoff.to_pydatetime(), type=TIMESTAMP),
        **{PARTITION_COLUMN: ibis.literal(partition_value(cutoff))},
    )
    write_partitioned(con, expr, out, partition_by=(PARTITION_COLUMN,))
    return f"{str(out).rstrip('/')}/{PARTITION_COLUMN}={partition_value(cutoff)}"
