"""The engine setting and its helpers: config validation, reading mapped and partitioned folders, the quarantine of
unusable rows and the customer sample. DuckDB tests run everywhere; the one Spark test checks both engines agree."""

from __future__ import annotations

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from pydantic import ValidationError

from tests.features.test_hand_computed import CUTOFF, HORIZON, TX, WINDOWS
from tests.pipeline import test_engine_tables as et
from tests.spark.conftest import assert_same
from tiercast.features.build import build_features, execute
from tiercast.pipeline.engine.config import SPARK_DEFAULTS, EngineConfig, EngineError, TableSource
from tiercast.pipeline.engine.sampling import sample_customers
from tiercast.pipeline.engine.session import connect, to_engine_table
from tiercast.pipeline.engine.writes import partition_value
from tiercast.pipeline.ingest.engine_tables import (
    data_bounds_on,
    engine_transactions,
    quarantine_invalid,
    read_transactions_table,
)
from tiercast.pipeline.ingest.sources import ColumnMapping


def test_config_defaults_to_duckdb_and_is_strict():
    cfg = EngineConfig()
    assert cfg.kind == "duckdb" and cfg.training_sample_customers is None
    assert connect(cfg).name == "duckdb"
    with pytest.raises(ValidationError):
        EngineConfig(kind="polars")
    with pytest.raises(ValidationError):
        EngineConfig(spark_mastr="local[2]")  # typo: extra keys are refused
    with pytest.raises(ValidationError):
        cfg.kind = "spark"  # frozen


def test_spark_settings_keep_utc():
    cfg = EngineConfig.model_validate(
        {"kind": "spark", "spark_conf": {"spark.sql.shuffle.partitions": 8, "spark.ui.enabled": False}}
    )
    settings = cfg.spark_settings()
    assert settings["spark.sql.shuffle.partitions"] == "8" and settings["spark.ui.enabled"] == "false"
    assert settings["spark.sql.session.timeZone"] == "UTC"
    assert settings["spark.sql.timestampType"] == SPARK_DEFAULTS["spark.sql.timestampType"]
    with pytest.raises(ValidationError, match="UTC"):
        EngineConfig(kind="spark", spark_conf={"spark.sql.session.timeZone": "Europe/London"})


def test_partition_value():
    assert partition_value("2024-01-31") == "2024-01-31"
    assert partition_value("2024-01-31 06:30") == "2024-01-31T063000"


def _source_folder(tmp_path) -> str:
    """The hand fixture under source column names, without order ids, amount as quantity x unit price, written
    Hive-style by transaction date."""
    raw = pd.DataFrame(
        {
            "cust": TX["customer_id"],
            "ts": TX["timestamp"].astype("datetime64[us]"),
            "qty": 2.0,
            "price": TX["amount"] / 2,
            "sku": TX["product_id"],
            "date": TX["timestamp"].dt.date,
        }
    )
    ds.write_dataset(
        pa.Table.from_pandas(raw, preserve_index=False),
        tmp_path / "src",
        format="parquet",
        partitioning=["date"],
        partitioning_flavor="hive",
    )
    return str(tmp_path / "src")


MAPPING = ColumnMapping(customer_id="cust", timestamp="ts", quantity="qty", unit_price="price", product_id="sku")


def test_read_mapped_partitioned_folder(tmp_path):
    con = connect()
    source = TableSource(path=_source_folder(tmp_path), columns=MAPPING, partition_column="date")
    t = read_transactions_table(con, source)
    assert t.columns == ("customer_id", "timestamp", "amount", "order_id", "quantity", "product_id")
    rows = execute(t.order_by(["timestamp", "customer_id", "amount"]), con)
    assert len(rows) == len(TX)
    assert rows["order_id"].iloc[0] == "A@1685620800000000"  # 2023-06-01 12:00 in microseconds since 1970
    # Without order ids, lines of one customer at one instant form one order: the features differ from the
    # fixture's only where its orders differ (A2 and A3 on 2023-09-10 are at different times, so they stay two).
    got = build_features(t, cutoff=CUTOFF, windows_days=WINDOWS, horizon_days=HORIZON, con=con)
    want = build_features(TX.drop(columns="category"), cutoff=CUTOFF, windows_days=WINDOWS, horizon_days=HORIZON)
    assert_same(got, want)
    # Partition pruning by the cutoff: only dates up to the cutoff's date are read.
    early = read_transactions_table(con, source, until="2023-09-10 12:00")
    assert early.count().execute() == (TX["timestamp"].dt.date <= pd.Timestamp("2023-09-10").date()).sum()


def test_engine_transactions_from_folder_or_ingested_frame(tmp_path):
    con = connect()
    folder = EngineConfig(transactions=TableSource(path=_source_folder(tmp_path), columns=MAPPING))
    t, counts = engine_transactions(con, folder)
    assert counts.n_read == counts.n_accepted == len(TX)
    assert data_bounds_on(con, t) == (pd.Timestamp("2023-06-01"), pd.Timestamp("2024-03-02"))
    t, counts = engine_transactions(con, EngineConfig(), accepted=TX)
    assert counts is None and t.count().execute() == len(TX)
    with pytest.raises(EngineError, match="engine.transactions"):
        engine_transactions(con, EngineConfig())


def test_missing_mapped_column_is_a_clear_error(tmp_path):
    source = TableSource(path=_source_folder(tmp_path), columns=MAPPING.model_copy(update={"customer_id": "client"}))
    with pytest.raises(EngineError, match="client"):
        read_transactions_table(connect(), source)


def _with_bad_rows() -> pd.DataFrame:
    bad = pd.DataFrame(
        {
            "customer_id": [None, "Z", "Z", "  "],
            "timestamp": pd.to_datetime(["2023-05-01", None, "2023-05-01", "2023-05-01"]),
            "amount": [1.0, 1.0, float("nan"), 1.0],
            "order_id": ["z1", "z2", "z3", "z4"],
        }
    )
    return pd.concat([TX[["customer_id", "timestamp", "amount", "order_id"]], bad], ignore_index=True)


def test_quarantine_counts_writes_and_limits(tmp_path):
    con = connect()
    data = _with_bad_rows()
    source = TableSource(path="unused", quarantine_path=str(tmp_path / "q"), max_quarantine_share=0.5)
    t = ibis.memtable(data)
    good, counts = quarantine_invalid(con, t, source)
    assert counts.n_read == len(data) and counts.n_accepted == len(TX)
    assert counts.reasons == {"missing_customer": 2, "unparseable_timestamp": 1, "non_numeric_amount": 1}
    assert good.count().execute() == len(TX)
    written = pd.read_parquet(tmp_path / "q")
    assert len(written) == 4 and set(written["reason"].astype(str)) == set(counts.reasons)
    strict = source.model_copy(update={"max_quarantine_share": 0.1, "quarantine_path": None})
    with pytest.raises(EngineError, match="max_quarantine_share"):
        quarantine_invalid(con, t, strict)


def test_sample_customers_is_seeded_and_whole():
    con = connect()
    t = ibis.memtable(TX)
    one = execute(sample_customers(t, 2, seed=1), con)
    assert one["customer_id"].nunique() == 2
    assert len(one) == TX["customer_id"].isin(one["customer_id"].unique()).sum()  # whole histories
    again = execute(sample_customers(t, 2, seed=1), con)
    assert set(again["customer_id"]) == set(one["customer_id"])
    seeds = {frozenset(execute(sample_customers(t, 2, seed=s), con)["customer_id"]) for s in range(6)}
    assert len(seeds) > 1


@pytest.mark.spark
def test_spark_reads_maps_and_quarantines_like_duckdb(spark_con, duck_con, tmp_path):
    source = TableSource(path=_source_folder(tmp_path), columns=MAPPING, partition_column="date")
    order = ["timestamp", "customer_id", "amount"]
    got = execute(read_transactions_table(spark_con, source, until=CUTOFF).order_by(order), spark_con)
    want = execute(read_transactions_table(duck_con, source, until=CUTOFF).order_by(order), duck_con)
    pd.testing.assert_frame_equal(got, want)

    data = _with_bad_rows()
    counts = {}
    for name, con in (("spark", spark_con), ("duckdb", duck_con)):
        t = to_engine_table(con, data)  # Spark: through Arrow, so missing strings stay missing
        _, c = quarantine_invalid(con, t, TableSource(path="unused", max_quarantine_share=0.5))
        counts[name] = c
    assert counts["spark"] == counts["duckdb"]
    assert counts["spark"].reasons == {"missing_customer": 2, "unparseable_timestamp": 1, "non_numeric_amount": 1}


@pytest.mark.spark
def test_spark_converts_zoned_times_and_trims_ids_like_duckdb(spark_con, duck_con, tmp_path):
    """Offsets in text, a zone-aware column and padded customer ids: the same accepted rows and notices on both."""
    texts = ["2010-12-01 08:26:00+01:00", "2010-12-01T09:26:00Z", "2010-12-01 10:26:00", "2010-12-01 12:26:00.5-05:30"]
    text = et.parquet(tmp_path / "text.parquet", [" 1", "1", "2 ", "2"], texts)
    zoned = pd.to_datetime(["2010-06-01 12:00", "2010-01-01 12:00"]).tz_localize("Europe/Paris")
    aware = et.parquet(tmp_path / "aware.parquet", ["a", "b"], pa.array(zoned, pa.timestamp("us", tz="Europe/Paris")))
    got = {}
    for name, con in (("spark", spark_con), ("duckdb", duck_con)):
        for path in (text, aware):
            engine = EngineConfig(transactions=TableSource(path=path, columns=et.MAPPING))
            (t, counts), notes = et.noticed(lambda con=con, engine=engine: engine_transactions(con, engine))
            got[name, path] = execute(t.order_by("amount"), con), counts, notes
    for path in (text, aware):
        pd.testing.assert_frame_equal(got["spark", path][0], got["duckdb", path][0])
        assert got["spark", path][1:] == got["duckdb", path][1:]
    rows, counts, notes = got["spark", text]
    assert rows["customer_id"].tolist() == ["1", "1", "2", "2"] and counts.n_accepted == 4
    assert rows["timestamp"].tolist() == [
        pd.Timestamp("2010-12-01 07:26"),
        pd.Timestamp("2010-12-01 09:26"),
        pd.Timestamp("2010-12-01 10:26"),
        pd.Timestamp("2010-12-01 17:56:00.5"),
    ]
    assert notes == [
        f"{text}: 3 rows of column 'ts' carry a UTC offset; converted to UTC {et.NOTE}",
        f"{text}: 2 rows of column 'cust' had a customer id with surrounding whitespace, trimmed: 4 distinct raw ids "
        "merge into 2 customer ids (e.g. ' 1', '1' are customer '1')",
    ]
    rows, _, notes = got["spark", aware]
    assert rows["timestamp"].tolist() == [pd.Timestamp("2010-06-01 10:00"), pd.Timestamp("2010-01-01 11:00")]
    assert notes == [f"{aware}: 2 rows of column 'ts' carry a UTC offset; converted to UTC {et.NOTE}"]


@pytest.mark.spark
def test_spark_converts_offsets_to_data_timezone_like_duckdb(spark_con, duck_con, tmp_path):
    """With a zone (data.timezone), offsets in text and a zone-aware column become that zone's times on both
    engines, across its clock changes, with the same notices naming the zone (and orders made of those times)."""
    text = et.parquet(tmp_path / "text.parquet", list("abcdefgh"), et.ZONED_TEXTS)
    zoned = pd.to_datetime(["2010-06-01 12:00", "2010-01-01 12:00"]).tz_localize("Europe/Paris")
    aware = et.parquet(tmp_path / "aware.parquet", ["a", "b"], pa.array(zoned, pa.timestamp("us", tz="Europe/Paris")))
    got, no_orders = {}, et.MAPPING.model_copy(update={"order_id": None})
    for name, con in (("spark", spark_con), ("duckdb", duck_con)):
        for path in (text, aware):
            source = TableSource(path=path, columns=no_orders, timezone="Europe/London")
            engine = EngineConfig(transactions=source)
            (t, counts), notes = et.noticed(lambda con=con, engine=engine: engine_transactions(con, engine))
            got[name, path] = execute(t.order_by("amount"), con), counts, notes
    for path in (text, aware):
        pd.testing.assert_frame_equal(got["spark", path][0], got["duckdb", path][0])
        assert got["spark", path][1:] == got["duckdb", path][1:]
    rows, counts, notes = got["spark", text]
    assert rows["timestamp"].tolist() == et.LONDON and counts.n_accepted == 8
    assert rows["order_id"].iloc[1] == "b@1269743400000000"  # 2010-03-28 02:30 (London) in microseconds since 1970
    assert notes == [f"{text}: 6 rows of column 'ts' carry a UTC offset; converted to Europe/London (data.timezone)"]
    rows, _, notes = got["spark", aware]
    assert rows["timestamp"].tolist() == [pd.Timestamp("2010-06-01 11:00"), pd.Timestamp("2010-01-01 11:00")]
    assert notes == [f"{aware}: 2 rows of column 'ts' carry a UTC offset; converted to Europe/London (data.timezone)"]


def test_worker_python_defaults_to_the_driver_interpreter():
    import sys

    from tiercast.pipeline.engine.session import worker_python

    assert worker_python({}, {}) == sys.executable
    assert worker_python({"spark.pyspark.python": "/opt/py/bin/python"}, {}) == "/opt/py/bin/python"
    assert worker_python({}, {"PYSPARK_PYTHON": "/usr/bin/python3"}) is None  # the user's choice stays


_WORKER_SCRIPT = """
import sys
from tiercast.pipeline.engine.config import EngineConfig
from tiercast.pipeline.engine.session import connect, session_of
cfg = EngineConfig(kind="spark", spark_conf={"spark.ui.enabled": False, "spark.driver.host": "127.0.0.1",
                                             "spark.driver.bindAddress": "127.0.0.1"})
spark = session_of(connect(cfg))
def where(batches):
    import sys
    import pandas as pd
    for _ in batches:
        yield pd.DataFrame({"python": [sys.executable]})
rows = spark.range(1).mapInPandas(where, "python string").collect()
print("WORKER", rows[0]["python"])
spark.stop()
"""


@pytest.mark.spark
def test_spark_workers_run_the_driver_python_without_an_activated_venv(tmp_path):
    """No master configured (spark-submit's default), no PYSPARK_PYTHON, PATH without the venv: the Python
    workers still run this interpreter (with pandas), not PATH's python3."""
    import os
    import subprocess
    import sys

    from tests.spark.conftest import spark_missing

    pytest.importorskip("pyspark", exc_type=ImportError)
    reason = spark_missing()
    if reason:
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix))
    done = subprocess.run(
        [sys.executable, "-c", _WORKER_SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    worker = [line for line in done.stdout.splitlines() if line.startswith("WORKER ")]
    assert worker == [f"WORKER {sys.executable}"]
