"""``engine.transactions`` read by DuckDB reads values as the single-table ingestion does, with its notices: text
timestamps with a UTC offset and time-zone-aware Parquet columns converted to ``data.timezone`` (UTC when unset),
customer ids trimmed of surrounding whitespace; a clean source costs no query beyond the quarantine's count. (The
Spark tests in ``tests/spark/test_engine.py`` check Spark gives the same rows and notices.) Also: the Olist reader
with ``customer_key: customer_id``."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from tiercast.features.build import execute
from tiercast.pipeline.config import Config, ConfigError, load_config
from tiercast.pipeline.engine.config import EngineConfig, TableSource
from tiercast.pipeline.engine.session import connect
from tiercast.pipeline.ingest.engine_tables import engine_transactions, read_transactions_table
from tiercast.pipeline.ingest.parsing import parse_timestamps
from tiercast.pipeline.ingest.sources import ColumnMapping, DataConfig
from tiercast.pipeline.ingest.transactions import read_transactions

T = TypeVar("T")
MAPPING = ColumnMapping(customer_id="cust", timestamp="ts", amount="amount", order_id="order")
NOTE = "(set data.timezone to read them in another zone)"


def noticed(read: Callable[[], T]) -> tuple[T, list[str]]:
    """What ``read`` returned and the texts of the notices (UserWarnings) it issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = read()
    return result, [str(w.message) for w in caught if w.category is UserWarning]


def parquet(path: Path, cust: list, ts: pa.Array | list, order: list[str] | None = None) -> str:
    n = len(cust)
    pq.write_table(
        pa.table(
            {"cust": cust, "ts": ts, "amount": [float(i + 1) for i in range(n)], "order": order or list("abcdefgh")[:n]}
        ),
        path,
    )
    return str(path)


def accepted(
    path: str, mapping: ColumnMapping = MAPPING, timezone: str | None = None
) -> tuple[pd.DataFrame, dict[str, int], list[str]]:
    """Accepted rows (by amount), reasons and notices of ``engine_transactions`` on DuckDB."""
    con = connect()
    source = TableSource(path=path, columns=mapping, max_quarantine_share=1.0, timezone=timezone)
    engine = EngineConfig(transactions=source)
    (table, counts), texts = noticed(lambda: engine_transactions(con, engine))
    return execute(table.order_by("amount"), con), counts.reasons, texts


def test_text_timestamps_with_a_utc_offset_are_converted_to_utc_with_one_notice(tmp_path: Path) -> None:
    texts = [
        "2010-12-01 08:26:00+01:00",
        "2010-12-01T09:26:00Z",
        "2010-12-01 10:26:00",  # naive: kept as written
        "2010-12-01 11:26:00 UTC",
        "2010-12-01 12:26:00.5-05:30",
        "2010-12-01 13:26:00+0100",
        "2010-12-01",  # a date: no offset
    ]
    path = parquet(tmp_path / "tx.parquet", list("abcdefg"), texts)
    rows, reasons, notes = accepted(path)
    assert notes == [f"{path}: 5 rows of column 'ts' carry a UTC offset; converted to UTC {NOTE}"]
    assert reasons == {}
    assert rows["timestamp"].tolist() == [
        pd.Timestamp("2010-12-01 07:26"),
        pd.Timestamp("2010-12-01 09:26"),
        pd.Timestamp("2010-12-01 10:26"),
        pd.Timestamp("2010-12-01 11:26"),
        pd.Timestamp("2010-12-01 17:56:00.5"),
        pd.Timestamp("2010-12-01 12:26"),
        pd.Timestamp("2010-12-01"),
    ]
    # Without an order column, the order of a line is its customer's at the converted (UTC) instant.
    con = connect()
    no_orders = MAPPING.model_copy(update={"order_id": None})
    first = execute(read_transactions_table(con, TableSource(path=path, columns=no_orders)).order_by("amount"), con)
    assert first["order_id"].iloc[0] == "a@1291188360000000"  # 2010-12-01 07:26 UTC in microseconds since 1970


def test_a_zone_aware_parquet_column_is_converted_to_utc_with_one_notice(tmp_path: Path) -> None:
    times = pd.to_datetime(["2010-06-01 12:00", "2010-01-01 12:00", None]).tz_localize("Europe/Paris")
    path = parquet(tmp_path / "tx.parquet", ["a", "b", "c"], pa.array(times, pa.timestamp("us", tz="Europe/Paris")))
    rows, reasons, notes = accepted(path)
    assert notes == [f"{path}: 2 rows of column 'ts' carry a UTC offset; converted to UTC {NOTE}"]
    assert reasons == {"unparseable_timestamp": 1}
    assert rows["timestamp"].tolist() == [pd.Timestamp("2010-06-01 10:00"), pd.Timestamp("2010-01-01 11:00")]
    naive = parquet(tmp_path / "naive.parquet", ["a", "b"], pa.array(times[:2].tz_localize(None), pa.timestamp("us")))
    rows, _, notes = accepted(naive)
    assert notes == [] and rows["timestamp"].tolist() == [
        pd.Timestamp("2010-06-01 12:00"),
        pd.Timestamp("2010-01-01 12:00"),
    ]


#: Offsets around London's clock changes of 2010 (03-28 01:00 UTC forward, 10-31 01:00 UTC back), a naive time and
#: a date: London's times, as the single-table ingestion reads them with data.timezone Europe/London.
ZONED_TEXTS = [
    "2010-03-28 00:30:00Z",
    "2010-03-28 01:30:00+00:00",
    "2010-10-31 00:30:00 UTC",
    "2010-10-31 01:30:00Z",
    "2010-06-01 12:26:00.5-05:30",
    "2010-12-01 08:26:00+01:00",
    "2010-06-01 10:26:00",  # naive: kept as written
    "2010-06-02",
]
LONDON = [
    pd.Timestamp("2010-03-28 00:30"),
    pd.Timestamp("2010-03-28 02:30"),
    pd.Timestamp("2010-10-31 01:30"),
    pd.Timestamp("2010-10-31 01:30"),
    pd.Timestamp("2010-06-01 18:56:00.5"),
    pd.Timestamp("2010-12-01 07:26"),
    pd.Timestamp("2010-06-01 10:26"),
    pd.Timestamp("2010-06-02"),
]


def test_times_with_a_utc_offset_are_converted_to_data_timezone_as_the_single_table_ingestion_does(
    tmp_path: Path,
) -> None:
    path = parquet(tmp_path / "tx.parquet", list("abcdefgh"), ZONED_TEXTS)
    rows, reasons, notes = accepted(path, timezone="Europe/London")
    assert notes == [f"{path}: 6 rows of column 'ts' carry a UTC offset; converted to Europe/London (data.timezone)"]
    single = parse_timestamps(pd.Series(ZONED_TEXTS, dtype="str"), None, "Europe/London")  # the ingestion's parser
    assert reasons == {} and rows["timestamp"].tolist() == single.tolist() == LONDON
    times = pd.to_datetime(["2010-06-01 12:00", "2010-01-01 12:00"]).tz_localize("Europe/Paris")
    aware = parquet(tmp_path / "aware.parquet", ["a", "b"], pa.array(times, pa.timestamp("us", tz="Europe/Paris")))
    rows, _, notes = accepted(aware, timezone="Europe/London")
    assert notes == [f"{aware}: 2 rows of column 'ts' carry a UTC offset; converted to Europe/London (data.timezone)"]
    assert rows["timestamp"].tolist() == [pd.Timestamp("2010-06-01 11:00"), pd.Timestamp("2010-01-01 11:00")]


def test_a_partition_by_utc_date_is_read_when_its_times_fall_on_the_day_before_in_the_zone(tmp_path: Path) -> None:
    table = pa.table(
        {"cust": ["a"], "ts": ["2024-01-31 01:00:00Z"], "amount": [1.0], "order": ["o"], "date": ["2024-01-31"]}
    )
    ds.write_dataset(table, tmp_path / "lake", format="parquet", partitioning=["date"], partitioning_flavor="hive")
    source = TableSource(
        path=str(tmp_path / "lake"), columns=MAPPING, partition_column="date", timezone="America/Sao_Paulo"
    )
    con = connect()
    rows = execute(read_transactions_table(con, source, until="2024-01-30 23:00"), con)
    assert rows["timestamp"].tolist() == [pd.Timestamp("2024-01-30 22:00")]  # 01:00 UTC is 22:00 the day before


def engine_config(tmp_path: Path, zone: str | None, engine_zone: dict[str, str | None]) -> Config:
    data = {"path": str(tmp_path / "tx.csv"), "columns": MAPPING.model_dump(), "timezone": zone}
    engine = {"transactions": {"path": str(tmp_path / "lake"), **engine_zone}}
    return Config.model_validate({"data": {"transactions": data}, "engine": engine})


def test_engine_transactions_take_their_zone_from_data_timezone(tmp_path: Path) -> None:
    source = engine_config(tmp_path, "Europe/London", {}).engine.transactions
    assert source is not None and source.timezone == "Europe/London"
    assert engine_config(tmp_path, None, {}).engine.transactions.timezone is None  # type: ignore[union-attr]
    assert engine_config(tmp_path, "Europe/London", {"timezone": "Europe/London"}).engine.transactions == source
    with pytest.raises(ValidationError, match="unknown time zone"):
        TableSource(path="lake", timezone="Europe/Londres")
    (tmp_path / "cfg.yaml").write_text(
        "data:\n  transactions:\n    path: tx.csv\n    columns: {customer_id: c, timestamp: t, amount: a}\n"
        "    timezone: Europe/London\nengine:\n  transactions:\n    path: lake\n    timezone: UTC\nplaybook: {}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path / "cfg.yaml")
    assert str(refused.value) == (
        f"{tmp_path / 'cfg.yaml'}: engine: transactions.timezone is 'UTC' but data.transactions.timezone is "
        "'Europe/London': engine.transactions takes its zone from data.transactions.timezone; set it there only"
    )


def test_customer_ids_with_surrounding_whitespace_are_trimmed_with_one_notice(tmp_path: Path) -> None:
    cust = [" 123", "123 ", "123", "\t9", " ", "77", None, "7\u00a0"]
    path = parquet(tmp_path / "tx.parquet", cust, ["2010-12-01"] * len(cust))
    rows, reasons, notes = accepted(path)
    assert notes == [
        f"{path}: 4 rows of column 'cust' had a customer id with surrounding whitespace, trimmed: 3 distinct raw ids "
        "merge into 1 customer id (e.g. ' 123', '123', '123 ' are customer '123')"
    ]
    assert reasons == {"missing_customer": 2}
    assert rows["customer_id"].tolist() == ["123", "123", "123", "9", "77", "7"]


def test_a_clean_source_gives_no_notice_and_no_further_query(tmp_path: Path) -> None:
    path = parquet(tmp_path / "tx.parquet", ["a", "b", "7"], ["2010-12-01 08:00", "2010-12-02", "2010-12-03"])
    con = connect()
    queries: list[object] = []
    run = con.execute
    con.execute = lambda expr, **kw: queries.append(expr) or run(expr, **kw)  # type: ignore[method-assign]
    engine = EngineConfig(transactions=TableSource(path=path, columns=MAPPING))
    (table, counts), notes = noticed(lambda: engine_transactions(con, engine))
    assert notes == [] and len(queries) == 1 and counts.n_accepted == 3
    assert table.columns == ("customer_id", "timestamp", "amount", "order_id")


def olist(tmp_path: Path, customer_key: str) -> DataConfig:
    tables = {
        "orders": "order_id,customer_id,order_status,order_purchase_timestamp\n"
        "o1,c1,delivered,2017-03-01\no2,c2,delivered,2017-03-02\no3,c9,delivered,2017-03-03\n",
        "order_items": "order_id,order_item_id,product_id,price,freight_value\n"
        "o1,1,p1,10,1\no2,1,p1,20,1\no3,1,p1,30,1\n",
        "customers": "customer_id,customer_unique_id\nc1,u1\n c2,u1\n",  # c9: no such customer
    }
    for name, text in tables.items():
        (tmp_path / f"{name}.csv").write_text(text, encoding="utf-8")
    source = {name: str(tmp_path / f"{name}.csv") for name in tables}
    return DataConfig.model_validate({"olist": {**source, "customer_key": customer_key}, "max_quarantine_share": 1.0})


def test_olist_customers_can_be_keyed_by_the_per_order_customer_id(tmp_path: Path) -> None:
    padded = (
        f"{tmp_path / 'customers.csv'}: 1 row of column 'customer_id' had a customer id with surrounding whitespace, "
        "trimmed (no two raw ids became one)"
    )
    by_unique, notes = noticed(lambda: read_transactions(olist(tmp_path, "customer_unique_id")))
    assert by_unique.accepted["customer_id"].tolist() == ["u1", "u1"] and notes == [padded]
    by_order, notes = noticed(lambda: read_transactions(olist(tmp_path, "customer_id")))
    assert by_order.accepted["customer_id"].tolist() == ["c1", "c2"]
    assert by_order.reason_counts() == {"missing_customer": 1}  # o3's customer c9 is not in the customers table
    assert notes == [padded]  # the key is the join column: one notice, not two
