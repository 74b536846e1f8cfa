"""Where the feature and label expressions run: embedded DuckDB (the default) or Spark, chosen in config.

The Ibis expressions of :mod:`tiercast.features` are the same on both engines; this module only makes the
connection, reads transaction folders into an Ibis table, writes results as partitioned Parquet and collects a
(possibly sampled) training set to pandas for the single-machine model fit.

Spark (``pip install "tiercast[spark]"``, Java 17+) runs either in a session this module starts (``spark_master``
set, e.g. ``local[2]`` for tests) or in the session that ``spark-submit`` / a notebook already started
(``spark_master`` unset). A few settings are required for results equal to DuckDB's (see :data:`SPARK_REQUIRED`):
naive timestamps are microsecond wall-clock times, which Spark keeps exact only with the session time zone set to
UTC. Nothing here imports pyspark until a Spark engine is asked for, so the core install does not need it.

Reading transactions (``engine.transactions``): a Parquet file or a folder of Parquet files, optionally
Hive-partitioned by the transaction date (``.../date=2024-01-31/part-0.parquet``), or a Delta table (Spark with
delta-spark on the cluster; DuckDB with its ``delta`` extension). Columns are mapped with the same
:class:`~tiercast.pipeline.sources.ColumnMapping` as file sources. The rows are expected to be canonical already
(the full row rules of ``data:`` run as DuckDB SQL on one machine, :mod:`tiercast.pipeline.ingest.sql`);
:func:`quarantine_invalid` still counts and sets aside the rows the features cannot use (missing ids, times or
amounts), so none is dropped silently.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.types as ir
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tiercast.features import as_of
from tiercast.features.build import (
    DEFAULT_HORIZON_DAYS,
    DEFAULT_WINDOWS_DAYS,
    Frame,
    as_table,
    execute,
    feature_table,
)
from tiercast.features.training_set import build_training_set, check_cutoffs
from tiercast.pipeline.ingest.common import ReasonTally
from tiercast.pipeline.sources import ColumnMapping

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

__all__ = [
    "PARTITION_COLUMN",
    "SPARK_DEFAULTS",
    "SPARK_REQUIRED",
    "EngineConfig",
    "EngineError",
    "QuarantineCounts",
    "TableSource",
    "CutoffRows",
    "CutoffSample",
    "build_training_set_on",
    "features_on",
    "sample_cutoff_rows",
    "sampled_customers",
    "connect",
    "data_bounds_on",
    "engine_resident",
    "engine_transactions",
    "is_spark",
    "partition_value",
    "quarantine_invalid",
    "read_transactions_table",
    "sample_customers",
    "session_of",
    "to_engine_table",
    "spark_session",
    "to_spark_dataframe",
    "write_features",
    "write_partitioned",
]

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

#: The partition column of written features and scores: the cutoff as ``YYYY-MM-DD`` (``YYYY-MM-DDTHHMMSS`` when
#: the cutoff is not a midnight).
PARTITION_COLUMN = "cutoff_date"


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
    the time filters of :mod:`tiercast.features.as_of` still apply).
    """

    path: str
    format: Literal["parquet", "delta"] = "parquet"
    columns: ColumnMapping | None = None
    partition_column: str | None = None
    max_quarantine_share: float = Field(default=0.01, ge=0.0, le=1.0)
    quarantine_path: str | None = Field(
        default=None, description="Folder for rows set aside by quarantine_invalid (None: counted, not written)."
    )


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


# --------------------------------------------------------------------------------------------------------------------
# Connections
# --------------------------------------------------------------------------------------------------------------------


def _import_pyspark():
    try:
        import pyspark  # noqa: F401
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineError('engine kind spark needs pyspark: pip install "tiercast[spark]"') from None
    return SparkSession


def worker_python(settings: dict[str, str], environ: Mapping[str, str]) -> str | None:
    """The interpreter Spark's Python workers (UDFs, spark_udf scoring) should run, or None to leave it alone.

    Without a choice they start PATH's ``python3``, which lacks pandas unless this venv is activated. So: the
    user's ``PYSPARK_PYTHON`` wins (None: already set), then a ``spark_conf`` ``spark.pyspark.python``, else the
    driver's own interpreter (``sys.executable``), whatever the master.
    """
    if environ.get("PYSPARK_PYTHON"):
        return None
    return settings.get("spark.pyspark.python") or sys.executable


def spark_session(config: EngineConfig) -> SparkSession:
    """The Spark session for ``config``: the active one (spark-submit, notebooks) when ``spark_master`` is unset and
    a session is running, else a new one (``spark_master`` or spark-submit's master). The SQL settings of
    :meth:`EngineConfig.spark_settings` are applied to it either way; static settings (driver memory...) only take
    effect on a new session: pass those to spark-submit."""
    SparkSession = _import_pyspark()
    settings = config.spark_settings()
    session = SparkSession.getActiveSession() if config.spark_master is None else None
    if session is None:
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise EngineError("engine kind spark needs Java 17 or later (java not on PATH and JAVA_HOME unset)")
        builder = SparkSession.builder.appName(config.spark_app_name)
        if config.spark_master is not None:
            builder = builder.master(config.spark_master)
        python = worker_python(settings, os.environ)
        if python is not None:
            # pyspark reads the variable when the SparkContext starts, for any master
            os.environ["PYSPARK_PYTHON"] = python
            settings = {**settings, "spark.pyspark.python": python}
        for key, value in settings.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
    for key, value in settings.items():  # a running session keeps its static settings; SQL settings apply now
        if session.conf.isModifiable(key) and session.conf.get(key, None) != value:
            session.conf.set(key, value)
    tz = session.conf.get("spark.sql.session.timeZone")
    if tz != SPARK_REQUIRED["spark.sql.session.timeZone"]:
        raise EngineError(f"the Spark session's time zone is {tz}; tiercast needs UTC")
    return session


def connect(config: EngineConfig | None = None) -> ibis.BaseBackend:
    """An Ibis backend for the configured engine: an in-memory DuckDB, or Spark (see :func:`spark_session`)."""
    config = config or EngineConfig()
    if config.kind == "duckdb":
        opts: dict[str, Any] = {}
        if config.duckdb_threads is not None:
            opts["threads"] = config.duckdb_threads
        if config.duckdb_memory_limit is not None:
            opts["memory_limit"] = config.duckdb_memory_limit
        return ibis.duckdb.connect(**opts)
    session = spark_session(config)
    return ibis.pyspark.connect(session)


def is_spark(con: ibis.BaseBackend) -> bool:
    return con.name == "pyspark"


def session_of(con: ibis.BaseBackend) -> SparkSession:
    """The Spark session behind an Ibis Spark backend."""
    if not is_spark(con):
        raise EngineError(f"not a Spark backend: {con.name}")
    return con._session  # ibis keeps it private; this is the one place that reads it


# --------------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------------


def _parquet_glob(path: str) -> str:
    """DuckDB reads a folder through a recursive glob; files and globs are passed as they are."""
    if any(ch in path for ch in "*?[") or not Path(path).is_dir():
        return path
    return path.rstrip("/") + "/**/*.parquet"


def _read_raw(con: ibis.BaseBackend, source: TableSource) -> ir.Table:
    if source.format == "delta":
        return con.read_delta(source.path)
    if is_spark(con):
        return con.read_parquet(source.path)
    return con.read_parquet(_parquet_glob(source.path), hive_partitioning=True)


def _map_columns(t: ir.Table, mapping: ColumnMapping | None) -> ir.Table:
    """Source columns renamed to canonical fields; amount = quantity x unit_price when so mapped; without an order
    column, the lines of one customer at one instant form one order (``<customer_id>@<microseconds since 1970>``)."""
    if mapping is None:
        return t
    src = mapping.source_columns()
    missing = sorted({c for c in src.values() if c not in t.columns})
    if missing:
        raise EngineError(f"transactions lack mapped column(s) {missing}; found {list(t.columns)}")
    cols: dict[str, ir.Value] = {field: t[col] for field, col in src.items() if field not in ("amount", "unit_price")}
    if mapping.amount is not None:
        cols["amount"] = t[mapping.amount].cast("float64")
    else:
        cols["amount"] = t[mapping.quantity].cast("float64") * t[mapping.unit_price].cast("float64")
    if mapping.order_id is None:  # exact to the microsecond and the same text on every engine
        micros = cols["timestamp"].cast("timestamp").delta(ibis.timestamp("1970-01-01 00:00:00"), unit="microsecond")
        cols["order_id"] = cols["customer_id"].cast("string") + "@" + micros.cast("string")
    return t.select(**cols)


def read_transactions_table(
    con: ibis.BaseBackend, source: TableSource, *, until: as_of.TimeLike | None = None
) -> ir.Table:
    """The source as a canonical Ibis transaction table on ``con`` (see :func:`tiercast.features.build.as_table`).

    ``until``: the exclusive end of the times the computation needs (the cutoff for features, cutoff + horizon for
    labels); with ``source.partition_column`` the partitions of later dates are not read at all.
    """
    t = _read_raw(con, source)
    if until is not None and source.partition_column is not None:
        part = source.partition_column
        if part not in t.columns:
            raise EngineError(f"partition_column {part!r} is not a column of {source.path}; found {list(t.columns)}")
        last_day = as_of.to_cutoff(until).date()  # a time < until falls on a date <= until's date
        t = t.filter(t[part].cast("date") <= ibis.date(last_day))
    return as_table(_map_columns(t, source.columns))


@dataclass(frozen=True)
class QuarantineCounts(ReasonTally):
    """Rows read, accepted and set aside per reason by :func:`quarantine_invalid` (accepted + set aside == read)."""

    n_read: int
    reasons: dict[str, int]

    @property
    def share(self) -> float:
        return self.n_quarantined / self.n_read if self.n_read else 0.0


def _reason(t: ir.Table, run_date: pd.Timestamp | None = None) -> ir.StringValue:
    """The first rule a canonical row breaks (as in :mod:`tiercast.pipeline.io`), NULL for a good row; rows after
    ``run_date`` are ``future_timestamp``."""
    amount = t.amount

    def blank(s: ir.StringValue) -> ir.BooleanValue:  # a regex: ibis' strip() compiles wrongly for Spark's trim
        return s.isnull() | s.re_search(r"^\s*$")

    rules = [
        ("missing_customer", blank(t.customer_id)),
        ("unparseable_timestamp", t.timestamp.isnull()),
        ("non_numeric_amount", amount.isnull() | amount.isnan() | amount.isinf() | (amount.abs() >= 1e24)),
        ("missing_order_id", blank(t.order_id)),
    ]
    if run_date is not None:
        rules.append(("future_timestamp", t.timestamp > ibis.literal(run_date.to_pydatetime(), type="timestamp")))
    case = ibis.cases(*[(cond, ibis.literal(name)) for name, cond in rules], else_=ibis.null("string"))
    return case


def quarantine_invalid(
    con: ibis.BaseBackend, t: ir.Table, source: TableSource, *, run_date: pd.Timestamp | None = None
) -> tuple[ir.Table, QuarantineCounts]:
    """Count (one pass) the rows the features cannot use, write them with their reason to
    ``source.quarantine_path`` (partitioned Parquet), and return the good rows and the counts.

    Raises :class:`EngineError` when the share set aside exceeds ``source.max_quarantine_share``.
    """
    flagged = t.mutate(reason=_reason(t, run_date))
    counts = flagged.group_by("reason").aggregate(n=flagged.count())
    rows = con.execute(counts)
    n_read = int(rows["n"].sum())
    reasons = {str(r): int(n) for r, n in zip(rows["reason"], rows["n"], strict=True) if r is not None and pd.notna(r)}
    result = QuarantineCounts(n_read=n_read, reasons=reasons)
    assert result.n_accepted + result.n_quarantined == result.n_read
    if result.n_quarantined and source.quarantine_path is not None:
        bad = flagged.filter(flagged.reason.notnull())
        write_partitioned(con, bad, source.quarantine_path, partition_by=("reason",))
    if result.share > source.max_quarantine_share:
        raise EngineError(
            f"{source.path}: {result.n_quarantined:,} of {n_read:,} rows ({result.share:.1%}) cannot be used "
            f"({reasons}); more than max_quarantine_share {source.max_quarantine_share:.1%}"
        )
    good = flagged.filter(flagged.reason.isnull()).drop("reason") if result.n_quarantined else t
    return good, result


def to_engine_table(con: ibis.BaseBackend, frame: Frame) -> ir.Table:
    """A pandas frame as a table on ``con`` (an Ibis table is returned as it is).

    DuckDB reads the frame as a memtable. Spark gets it through Arrow (``createDataFrame`` of an Arrow table): the
    memtable route of ibis 12 hands pyspark a pandas frame, and pyspark 4.0 cannot convert pandas 3's
    Arrow-backed strings, so it falls back to a slow row-by-row copy that also turns missing strings into text.
    """
    if not isinstance(frame, pd.DataFrame):
        return frame
    if not is_spark(con):
        return ibis.memtable(frame)
    arrow = ibis.memtable(frame).to_pyarrow()  # canonical Arrow types (string, timestamp[us]) via embedded DuckDB
    name = ibis.util.gen_name("tiercast_frame")
    session_of(con).createDataFrame(arrow).createOrReplaceTempView(name)
    return con.table(name)


def engine_transactions(
    con: ibis.BaseBackend,
    engine: EngineConfig,
    *,
    accepted: pd.DataFrame | None = None,
    until: as_of.TimeLike | None = None,
    run_date: pd.Timestamp | None = None,
) -> tuple[ir.Table, QuarantineCounts | None]:
    """The transactions a command works on, as a table on ``con``: ``engine.transactions`` read by the engine
    (partitions up to ``until``, unusable rows set aside by :func:`quarantine_invalid`), else the ``accepted``
    frame of the pandas ingestion (``data:``), shipped to the engine as it is. Rows after ``run_date`` are set
    aside as ``future_timestamp``."""
    if engine.transactions is None:
        if accepted is None:
            raise EngineError("no transactions: set engine.transactions or pass the ingested frame")
        return as_table(to_engine_table(con, accepted)), None
    t = read_transactions_table(con, engine.transactions, until=until)
    return quarantine_invalid(con, t, engine.transactions, run_date=run_date)


def data_bounds_on(con: ibis.BaseBackend, tx: ir.Table) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First day of data and the midnight after the last transaction (as :func:`tiercast.pipeline.train.
    data_bounds`), computed by the engine."""
    row = con.execute(tx.aggregate(first=tx.timestamp.min(), last=tx.timestamp.max()))
    first, last = pd.Timestamp(row["first"].iloc[0]), pd.Timestamp(row["last"].iloc[0])
    if pd.isna(first) or pd.isna(last):
        raise EngineError("no transactions to work on")
    return first.normalize(), last.normalize() + pd.Timedelta(days=1)


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
        cutoff=ibis.literal(cutoff.to_pydatetime(), type="timestamp"),
        **{PARTITION_COLUMN: ibis.literal(partition_value(cutoff))},
    )
    write_partitioned(con, expr, out, partition_by=(PARTITION_COLUMN,))
    return f"{str(out).rstrip('/')}/{PARTITION_COLUMN}={partition_value(cutoff)}"


# --------------------------------------------------------------------------------------------------------------------
# Training sets
# --------------------------------------------------------------------------------------------------------------------


def sample_customers(tx: ir.Table, n: int, *, seed: int = 0) -> ir.Table:
    """The transactions of ``n`` customers chosen by the MD5 of ``"<seed>:<customer_id>"`` (smallest first): the
    same customers on every engine and run, all of each chosen customer's history, and a new seed a new sample."""
    if n <= 0:
        raise ValueError(f"sample size must be positive, got {n}")
    ids = tx.select("customer_id").distinct()
    key = (ibis.literal(f"{seed}:") + ids.customer_id).hexdigest("md5")
    chosen = ids.mutate(_key=key).order_by(["_key", "customer_id"]).limit(n).select("customer_id")
    return tx.semi_join(chosen, "customer_id")


#: Quantile bins of positive spend that stratify a cutoff's sample (beside the customers without spend).
SAMPLE_SPEND_BINS = 4
#: Column carrying a cutoff's row count before sampling through the query (dropped after collection).
ROWS_BEFORE = "_rows_before_sampling"


def sample_cutoff_rows(
    rows: ir.Table, max_rows: int, *, value_column: str, cutoff: as_of.TimeLike, seed: int = 0
) -> ir.Table:
    """At most ``max_rows`` of one cutoff's customer rows, chosen in the engine, and the row count before
    sampling in :data:`ROWS_BEFORE`.

    Stratified on value: customers without positive ``value_column`` (spend in the horizon window before the
    cutoff), and :data:`SAMPLE_SPEND_BINS` quantile bins of the positive ones; each stratum keeps its share of
    the rows (``floor(n_stratum * max_rows / n)``), so the sample has the population's value mix and needs no
    weights. Within a stratum the customers with the smallest MD5 of ``"<seed>:<cutoff>:<customer_id>"`` are
    kept: seeded, the same on every engine, a new draw per cutoff. With ``n <= max_rows`` every row is kept.
    """
    if max_rows <= 0:
        raise ValueError(f"max_rows must be positive, got {max_rows}")
    day = as_of.to_cutoff(cutoff).isoformat()
    spend = rows[value_column].cast("float64").coalesce(0.0)
    positive = spend > 0
    ranked = rows.mutate(
        _positive=positive,
        _bin=ibis.ntile(SAMPLE_SPEND_BINS).over(group_by=positive, order_by=[spend, rows.customer_id]),
        _key=(ibis.literal(f"{seed}:{day}:") + rows.customer_id.cast("string")).hexdigest("md5"),
        **{ROWS_BEFORE: rows.customer_id.count().over()},
    )
    stratum = ranked._positive.ifelse(ranked._bin + 1, 0)
    ranked = ranked.mutate(_stratum=stratum)
    ranked = ranked.mutate(
        _rank=ibis.row_number().over(group_by=ranked._stratum, order_by=[ranked._key, ranked.customer_id]),
        _n_stratum=ranked.count().over(group_by=ranked._stratum),
    )
    n = ranked[ROWS_BEFORE].cast("int64")
    keep = (ranked._rank + 1) * n <= ranked._n_stratum.cast("int64") * max_rows
    return ranked.filter(keep).drop("_positive", "_bin", "_key", "_stratum", "_rank", "_n_stratum")


def sampled_customers(
    t: ir.Table, max_rows: int, *, cutoff: as_of.TimeLike, horizon_days: int, seed: int = 0
) -> ir.Table:
    """The customers :func:`sample_cutoff_rows` keeps at ``cutoff`` (``customer_id`` and :data:`ROWS_BEFORE`),
    from one cheap pass over the transactions: every customer with a transaction before the cutoff, stratified on
    the exact net amount of their lines in the horizon window before it. The features and labels are then built
    for these customers' transactions alone (every feature and label is a function of one customer's rows), so
    a capped cutoff costs one aggregation over all transactions instead of the whole feature query."""
    lines = as_of.before(t, cutoff=cutoff)
    start = as_of.to_cutoff(cutoff) - pd.Timedelta(days=int(horizon_days))
    recent = lines.timestamp >= ibis.literal(start.to_pydatetime(), type="timestamp")
    per = lines.group_by("customer_id").aggregate(
        _spend=lines.amount.cast(dt.Decimal(38, 6)).sum(where=recent).cast("float64")
    )
    chosen = sample_cutoff_rows(per, max_rows, value_column="_spend", cutoff=cutoff, seed=seed)
    return chosen.select("customer_id", ROWS_BEFORE)


def _with_counts(rows: ir.Table, chosen: ir.Table) -> ir.Table:
    """The rows of the chosen customers with their cutoff's :data:`ROWS_BEFORE`."""
    joined = rows.join(chosen, "customer_id")
    return joined.drop("customer_id_right") if "customer_id_right" in joined.columns else joined


@dataclass(frozen=True)
class CutoffSample:
    """How many customer rows a cutoff had and how many were kept by :func:`sample_cutoff_rows`."""

    cutoff: pd.Timestamp
    rows_before: int
    rows_after: int

    def record(self) -> dict[str, Any]:
        """As kept in a frame's ``attrs["sampling"]``: plain JSON values (frames with attrs still write to
        Parquet), the cutoff as ISO text."""
        return {"cutoff": self.cutoff.isoformat(), "rows_before": self.rows_before, "rows_after": self.rows_after}


def _pop_sampling(df: pd.DataFrame) -> tuple[pd.DataFrame, list[CutoffSample]]:
    """The collected rows without :data:`ROWS_BEFORE`, and the per-cutoff counts it carried."""
    if ROWS_BEFORE not in df.columns:
        return df, []
    counts = []
    if len(df):
        groups = df.groupby("cutoff", sort=True)[ROWS_BEFORE] if "cutoff" in df.columns else None
        pairs = groups.agg(["first", "size"]).itertuples() if groups is not None else []
        counts = [CutoffSample(pd.Timestamp(c), int(first), int(size)) for c, first, size in pairs]
    return df.drop(columns=[ROWS_BEFORE]), counts


def features_on(
    con: ibis.BaseBackend,
    tx: Frame,
    *,
    cutoff: as_of.TimeLike,
    windows_days: Iterable[int] = DEFAULT_WINDOWS_DAYS,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    satisfaction: Frame | None = None,
    sample: int | None = None,
    seed: int = 0,
    max_rows: int | None = None,
) -> pd.DataFrame:
    """:func:`~tiercast.features.build.build_features` at ``cutoff`` on ``con`` (sorted by customer_id), on all
    customers or a seeded ``sample`` of them (:func:`sample_customers`), with at most ``max_rows`` rows
    (:func:`sample_cutoff_rows`, in the engine; the counts in ``frame.attrs["sampling"]``)."""
    t = as_table(to_engine_table(con, tx))
    if sample is not None:
        t = sample_customers(t, sample, seed=seed)
    satisfaction = to_engine_table(con, satisfaction) if satisfaction is not None else None
    expr = feature_table(
        t, cutoff=cutoff, windows_days=windows_days, horizon_days=horizon_days, satisfaction=satisfaction
    )  # fmt: skip
    if max_rows is not None:
        chosen = sampled_customers(t, max_rows, cutoff=cutoff, horizon_days=horizon_days, seed=seed)
        expr = feature_table(
            t.semi_join(chosen, "customer_id"),
            cutoff=cutoff,
            windows_days=windows_days,
            horizon_days=horizon_days,
            satisfaction=satisfaction,
        )
        expr = _with_counts(expr, chosen)
    df = execute(expr.order_by("customer_id"), con)
    counts = []
    if ROWS_BEFORE in df.columns:
        before = int(df[ROWS_BEFORE].iloc[0]) if len(df) else 0
        counts = [CutoffSample(as_of.to_cutoff(cutoff), before, len(df)).record()]
        df = df.drop(columns=[ROWS_BEFORE])
    df.attrs["sampling"] = counts
    return df


def engine_resident(con: ibis.BaseBackend, t: ir.Table) -> ir.Table:
    """``t`` stored as a DuckDB temporary table when it reads an in-memory (pandas) table or a view (e.g. the
    accepted rows of the SQL ingestion, parsed and judged from the raw file on every read), else ``t`` itself.

    A job that queries the transactions many times (every training cutoff, the test, the production refit and the
    scoring cutoff) then scans DuckDB's own columnar copy each time instead of converting the frame or
    re-running the view again.
    """
    if is_spark(con) or not (t.op().find(ops.InMemoryTable) or _reads_a_view(con, t)):
        return t
    return as_table(con.create_table(ibis.util.gen_name("tiercast_transactions"), t, temp=True))


def _reads_a_view(con: ibis.BaseBackend, t: ir.Table) -> bool:
    names = {op.name for op in t.op().find(ops.DatabaseTable)}
    if not names or con.name != "duckdb":
        return False
    views = {row[0] for row in con.con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    return bool(names & views)


class CutoffRows:
    """Training sets assembled from labelled rows built once per cutoff on ``con``
    (:func:`build_training_set_on` with ``common``: horizon, windows, samples, satisfaction).

    A cutoff's features and labels do not depend on the set that names it (sets differ only in how far their
    label windows may reach, which :func:`~tiercast.features.training_set.check_cutoffs` still checks per set),
    so a training, test and production set sharing cutoffs query each of them once.
    """

    def __init__(self, con: ibis.BaseBackend, tx: Frame, **common: Any) -> None:
        self.con, self.tx, self.common = con, tx, common
        self._rows: dict[pd.Timestamp, tuple[pd.DataFrame, dict[str, Any] | None]] = {}

    def training_set(
        self,
        *,
        cutoffs: Iterable[as_of.TimeLike],
        data_end: as_of.TimeLike,
        holdout_start: as_of.TimeLike | None = None,
    ) -> pd.DataFrame:
        """What :func:`build_training_set_on` returns for these cutoffs (same rows, order and columns)."""
        parsed = check_cutoffs(
            cutoffs, horizon_days=self.common["horizon_days"], data_end=data_end, holdout_start=holdout_start
        )
        missing = [c for c in parsed if c not in self._rows]
        if missing:
            built = build_training_set_on(
                self.con, self.tx, cutoffs=missing, data_end=data_end, holdout_start=holdout_start, **self.common
            )
            counts = {r["cutoff"]: r for r in built.attrs.get("sampling", [])}
            for c in missing:
                self._rows[c] = (built.loc[built["cutoff"] == c], counts.get(c.isoformat()))
        out = pd.concat([self._rows[c][0] for c in parsed], ignore_index=True)
        out.attrs = {"sampling": [self._rows[c][1] for c in parsed if self._rows[c][1] is not None]}
        return out


def build_training_set_on(
    con: ibis.BaseBackend,
    tx: Frame,
    *,
    sample: int | None = None,
    seed: int = 0,
    max_rows_per_cutoff: int | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """:func:`~tiercast.features.training_set.build_training_set` run on ``con`` and collected to pandas, on all
    customers or on a seeded sample of ``sample`` customers (:func:`sample_customers`), with at most
    ``max_rows_per_cutoff`` rows per cutoff (:func:`sample_cutoff_rows`, in the engine before collection; the
    per-cutoff counts are in ``frame.attrs["sampling"]``, :meth:`CutoffSample.record` of each). ``kwargs``: cutoffs,
    horizon_days, windows_days, data_end, holdout_start, satisfaction."""
    if max_rows_per_cutoff is not None:
        kwargs["max_rows"] = max_rows_per_cutoff
    df, counts = _pop_sampling(_build_training_set_on(con, tx, sample=sample, seed=seed, **kwargs))
    df.attrs["sampling"] = [c.record() for c in counts]
    return df


def _build_training_set_on(
    con: ibis.BaseBackend,
    tx: Frame,
    *,
    sample: int | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> pd.DataFrame:
    t = as_table(to_engine_table(con, tx))  # a pandas frame is shipped to ``con`` once, for every cutoff
    if isinstance(kwargs.get("satisfaction"), pd.DataFrame):
        kwargs["satisfaction"] = to_engine_table(con, kwargs["satisfaction"])
    # On Spark the sample is materialised once (cached by the executors) and read by every cutoff; DuckDB
    # recomputes it cheaply (and ibis 12's release() of a DuckDB cache fails to compile).
    cached = sample is not None and is_spark(con)
    if sample is not None:
        t = sample_customers(t, sample, seed=seed)
    if cached:
        t = t.cache()
    max_rows = kwargs.pop("max_rows", None)
    try:
        if max_rows is None:
            return build_training_set(t, con=con, **kwargs)
        # capped: each cutoff on its chosen customers' transactions (the leakage guard checks every cutoff first)
        cutoffs = check_cutoffs(
            kwargs.pop("cutoffs"),
            horizon_days=kwargs["horizon_days"],
            data_end=kwargs["data_end"],
            holdout_start=kwargs.get("holdout_start"),
        )
        frames = []
        for cutoff in cutoffs:
            chosen = sampled_customers(t, max_rows, cutoff=cutoff, horizon_days=kwargs["horizon_days"], seed=seed)

            def counted(rows: ir.Table, _: pd.Timestamp, chosen: ir.Table = chosen) -> ir.Table:
                return _with_counts(rows, chosen)

            part = t.semi_join(chosen, "customer_id")
            frames.append(build_training_set(part, con=con, cutoffs=[cutoff], sample_rows=counted, **kwargs))
        return pd.concat(frames, ignore_index=True)
    finally:
        if cached:
            t.release()
