"""Connecting to the engine that runs the feature and label expressions: embedded DuckDB (the default) or Spark.

The Ibis expressions of :mod:`tiercast.features` are the same on both engines; this module makes the connection
and ships pandas frames to it.

Spark (``pip install "tiercast[spark]"``, Java 17+) runs either in a session this module starts (``spark_master``
set, e.g. ``local[2]`` for tests) or in the session that ``spark-submit`` / a notebook already started
(``spark_master`` unset). A few settings are required for results equal to DuckDB's (see
:data:`~tiercast.pipeline.engine.config.SPARK_REQUIRED`): naive timestamps are microsecond wall-clock times, which
Spark keeps exact only with the session time zone set to UTC. Nothing here imports pyspark until a Spark engine is
asked for, so the core install does not need it.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.operations as ops
import ibis.expr.types as ir
import pandas as pd

from tiercast.features.build import (
    Frame,
    as_table,
)
from tiercast.pipeline.engine.config import SPARK_REQUIRED, EngineConfig, EngineError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

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
