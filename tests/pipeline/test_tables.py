"""Database tables: table targets, the atomic swap, and transactions read back from DuckDB and PostgreSQL."""

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from pydantic import ValidationError

from tiercast.pipeline.ingest.common import InputError
from tiercast.pipeline.ingest.sources import DataConfig
from tiercast.pipeline.ingest.transactions import read_transactions
from tiercast.pipeline.writers.tables import TableTarget, TableTargetError, parse_table_target, read_table, write_table

TX = pd.DataFrame(
    {
        "cust": ["c1", "c1", None, "c2", "c3"],
        "ts": pd.to_datetime(
            ["2021-01-01 10:00", "2021-01-01 10:00", "2021-01-02 09:00", "2021-01-03 12:00", "2021-02-01 08:30"]
        ),
        "amt": [5.0, 5.0, 7.0, -2.0, 12.5],
        "ord": ["o1", "o1", "o2", "o3", "o4"],
    }
)
COLUMNS = {"customer_id": "cust", "timestamp": "ts", "amount": "amt", "order_id": "ord"}


def test_parse_table_targets():
    assert parse_table_target("outputs/scores.parquet") is None
    assert parse_table_target("duckdb://out/s.duckdb::scores") == TableTarget("duckdb", "out/s.duckdb", None, "scores")
    assert parse_table_target("duckdb:///abs/s.duckdb::main.scores") == TableTarget(
        "duckdb", "/abs/s.duckdb", "main", "scores"
    )
    pg = parse_table_target("postgresql://u:secret@db:5432/shop::scores")
    assert pg == TableTarget("postgres", "postgresql://u:secret@db:5432/shop", "public", "scores")
    assert "secret" not in pg.describe() and "db:5432/shop" in pg.describe()
    for bad in ("duckdb://s.duckdb", "duckdb://::t", "duckdb://s.duckdb::a.b.c", "duckdb://s.duckdb::x;drop"):
        with pytest.raises(TableTargetError):
            parse_table_target(bad)


def test_a_failed_write_leaves_the_old_table_and_no_staging_table(tmp_path: Path):
    target = parse_table_target(f"duckdb://{tmp_path}/w.duckdb::scores")
    old = pd.DataFrame({"customer_id": ["a", "b"], "v": [1.0, 2.0]})
    assert write_table(old, target) == 2
    unstorable = pd.DataFrame({"customer_id": ["c"], "v": [object()]})  # no SQL type for a Python object
    with pytest.raises(TableTargetError, match="scores"):
        write_table(unstorable, target)
    pd.testing.assert_frame_equal(read_table(target), old, check_dtype=False)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        assert [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()] == ["scores"]


def _config(**source) -> DataConfig:
    return DataConfig.model_validate({"transactions": {"columns": COLUMNS, **source}, "max_quarantine_share": 0.9})


def test_transactions_read_from_postgresql_as_from_a_file(postgres_url, tmp_path: Path):
    write_table(TX, parse_table_target(f"{postgres_url}::shop.sales"))
    TX.to_parquet(tmp_path / "sales.parquet", index=False)
    from_file = read_transactions(_config(path=str(tmp_path / "sales.parquet")))
    from_table = read_transactions(_config(format="postgres", url=postgres_url, table="shop.sales"))
    from_query = read_transactions(
        _config(format="postgres", url=postgres_url, query="SELECT * FROM shop.sales WHERE amt > 0")
    )
    assert from_table.n_read == from_file.n_read == 5
    assert from_table.reason_counts() == from_file.reason_counts() == {"missing_customer": 1, "duplicate": 1}
    pd.testing.assert_frame_equal(from_table.accepted, from_file.accepted)
    assert from_query.n_read == 4
    assert from_table.source.endswith(":shop.sales") and "tiercast@" not in from_table.source
    with pytest.raises(InputError, match="nope"):
        read_transactions(_config(format="postgres", url=postgres_url, table="shop.nope"))


def test_postgres_source_needs_a_url_and_a_table_or_query():
    with pytest.raises(ValidationError, match="url"):
        _config(format="postgres", path="x.db", table="t")
    with pytest.raises(ValidationError, match="exactly one"):
        _config(format="postgres", url="postgresql://h/db")
    with pytest.raises(ValidationError, match="path"):
        _config(url="postgresql://h/db", table="t")
