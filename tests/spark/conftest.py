"""One local[2] Spark session for the whole test session, and the skip rule for machines without Spark.

Spark tests are marked ``spark`` and skip cleanly (not fail) when pyspark is not installed or no Java runtime is
found. `make test-all` installs the ``spark`` extra and runs them (with Java 17); `make test`, what CI runs,
deselects them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

TOL = 1e-9
SYN_CUTOFF = pd.Timestamp("2023-07-01")
SYN_WINDOWS = (30, 90, 180, 365)
SYN_HORIZON = 90


def spark_missing() -> str | None:
    """Why Spark cannot run here, or None."""
    if importlib.util.find_spec("pyspark") is None:
        return 'pyspark is not installed (pip install -e ".[spark]")'
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else "java"
    if shutil.which(java) is None:
        return "no Java runtime (java not on PATH, JAVA_HOME unset)"
    try:
        subprocess.run([java, "-version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"java -version failed: {exc}"
    return None


@pytest.fixture(scope="session")
def spark_engine(tmp_path_factory):
    from tiercast.pipeline.engine.config import EngineConfig

    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    return EngineConfig(
        kind="spark",
        # One task slot: `make test-all` runs the Spark tests on one of two workers, and a second slot only takes a core
        # from the other worker (tasks on a few thousand rows wait on overheads, not on a core). Two partitions
        # still, so results never depend on one partition holding every row.
        spark_master="local[1]",
        spark_app_name="tiercast-tests",
        spark_conf={
            # Test data are small: two shuffle partitions, no whole-stage code generation and no adaptive
            # re-planning (compiling and re-planning each new query cost more than they save on a few thousand
            # rows: the Spark tests ran in 119 s instead of 144 s). Only how Spark executes the queries changes.
            "spark.sql.shuffle.partitions": 2,
            "spark.sql.codegen.wholeStage": False,
            "spark.sql.adaptive.enabled": False,
            "spark.default.parallelism": 2,
            "spark.ui.enabled": False,
            "spark.ui.showConsoleProgress": False,
            "spark.driver.memory": "2g",
            "spark.sql.warehouse.dir": str(warehouse),
            "spark.driver.host": "127.0.0.1",  # local mode: stay on the loopback interface
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.sql.execution.arrow.maxRecordsPerBatch": 2000,  # several UDF batches even on small data
        },
    )


@pytest.fixture(scope="session")
def spark_con(spark_engine):
    """The Ibis backend on the session's local Spark; stopped at the end of the test session. Every test that
    needs Spark uses it, so those tests skip (with the reason) where pyspark or Java is missing."""
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[spark]')", exc_type=ImportError)
    reason = spark_missing()
    if reason:
        pytest.skip(reason)
    from tiercast.pipeline.engine.session import connect, session_of

    con = connect(spark_engine)
    session_of(con).sparkContext.setLogLevel("ERROR")
    yield con
    session_of(con).stop()


@pytest.fixture(scope="session")
def spark(spark_con):
    from tiercast.pipeline.engine.session import session_of

    return session_of(spark_con)


@pytest.fixture(scope="session")
def duck_con():
    from tiercast.pipeline.engine.config import EngineConfig
    from tiercast.pipeline.engine.session import connect

    return connect(EngineConfig())


@pytest.fixture(scope="session")
def partitioned_tx(tmp_path_factory):
    """100k synthetic lines (10k customers, 2022-2023) written Hive-style by month: ``date=2022-01-01/...``."""
    from tiercast.benchmarks.synthetic import generate_table
    from tiercast.pipeline.engine.config import TableSource

    table = generate_table(100_000, seed=7)
    month = pc.strftime(table["timestamp"], format="%Y-%m-01")
    table = table.append_column("date", pc.cast(pc.strptime(month, format="%Y-%m-%d", unit="s"), pa.date32()))
    root = tmp_path_factory.mktemp("tx")
    ds.write_dataset(table, root, format="parquet", partitioning=["date"], partitioning_flavor="hive")
    return TableSource(path=str(root), partition_column="date")


@pytest.fixture(scope="session")
def spark_features_100k(spark_con, partitioned_tx):
    """The 100k data's features at SYN_CUTOFF built on Spark, as an Ibis table over a cached Spark result (the
    equality and scoring tests read it without recomputing)."""
    from tiercast.features.build import feature_table
    from tiercast.pipeline.ingest.engine_tables import read_transactions_table

    tx = read_transactions_table(spark_con, partitioned_tx, until=SYN_CUTOFF)
    expr = feature_table(tx, cutoff=SYN_CUTOFF, windows_days=SYN_WINDOWS, horizon_days=SYN_HORIZON)
    cached = expr.cache()
    yield cached
    cached.release()


@pytest.fixture(scope="session")
def duck_features_100k(duck_con, partitioned_tx) -> pd.DataFrame:
    from tiercast.features.build import build_features
    from tiercast.pipeline.ingest.engine_tables import read_transactions_table

    tx = read_transactions_table(duck_con, partitioned_tx, until=SYN_CUTOFF)
    return build_features(tx, cutoff=SYN_CUTOFF, windows_days=SYN_WINDOWS, horizon_days=SYN_HORIZON, con=duck_con)


def assert_same(got: pd.DataFrame, want: pd.DataFrame, *, tol: float = TOL) -> None:
    """Same rows in the same order, same columns and dtypes, float columns equal within ``tol`` (NaN == NaN)."""
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want) > 0
    assert got["customer_id"].tolist() == want["customer_id"].tolist()
    for col in want.columns:
        assert got[col].dtype == want[col].dtype, col
        if pd.api.types.is_float_dtype(want[col]):
            np.testing.assert_allclose(
                got[col].to_numpy(), want[col].to_numpy(), rtol=tol, atol=tol, equal_nan=True, err_msg=col
            )
        else:
            assert got[col].tolist() == want[col].tolist(), col
