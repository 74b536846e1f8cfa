"""Input the ingestion must refuse rather than guess: a '.' under a decimal comma, repeated column names, a
timestamp_format no parser reads, and day-month dates without a format. Each case through the collected frame
(read_transactions) and the engine ingestion (load_transactions), which must agree."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.pipeline.cli_harness import assert_clean_failure, invoke
from tests.pipeline.ingest_configs import COLUMNS, RUN, config
from tiercast.pipeline.config import Config
from tiercast.pipeline.ingest import columns as col
from tiercast.pipeline.ingest.common import InputError
from tiercast.pipeline.ingest.loader import load_transactions
from tiercast.pipeline.ingest.parsing import guess_formats, parse_numbers, parse_timestamps
from tiercast.pipeline.ingest.readers import check_timestamp_format
from tiercast.pipeline.ingest.transactions import read_transactions


def both(cfg: Config) -> tuple[dict[str, int], pd.DataFrame]:
    """Reasons and accepted rows, checked equal on the collected frame and the engine ingestion."""
    collected = read_transactions(cfg.data, run_date=RUN)
    data = load_transactions(cfg)
    assert dict(data.reasons) == collected.reason_counts()
    assert collected.n_accepted + collected.n_quarantined == collected.n_read
    pd.testing.assert_frame_equal(data.accepted.reset_index(drop=True), collected.accepted, check_dtype=False)
    return collected.reason_counts(), collected.accepted


# ------------------------------------------------------------------------------------------ decimal comma


def test_a_point_is_never_a_decimal_point_under_a_decimal_comma(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text(
        "customer;ts;amount\na;2010-01-01;12.345\nb;2010-01-02;1.234,50\nc;2010-01-03;12,5\nd;2010-01-04;7\n",
        encoding="utf-8",
    )
    reasons, accepted = both(config(tmp_path, path, delimiter=";", decimal=","))
    assert reasons == {"non_numeric_amount": 2}  # 12.345 is not read as 12.345 (nor as 12345)
    assert accepted["amount"].tolist() == [12.5, 7.0]


def test_a_point_in_quantity_or_price_under_a_decimal_comma(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text("customer;ts;qty;price\na;2010-01-01;2;12.345\nb;2010-01-02;1.5;2,5\nc;2010-01-03;3;12,5\n")
    columns = {"customer_id": "customer", "timestamp": "ts", "quantity": "qty", "unit_price": "price"}
    reasons, accepted = both(config(tmp_path, path, columns, delimiter=";", decimal=","))
    assert reasons == {"non_numeric_amount": 2}
    assert accepted["amount"].tolist() == [37.5]


def test_number_parsers_agree_on_points_under_a_decimal_comma() -> None:
    import duckdb

    values = ["12.345", "1.234,50", "12,5", ",5", "1e3", "1.5"]
    _, bad = parse_numbers(pd.Series(values, dtype="object"), ",", ())
    assert bad.tolist() == [True, True, False, False, False, True]
    expr = col.number("v", "VARCHAR", ",", ())
    sql = [duckdb.sql(f"SELECT {expr} FROM (SELECT {v!r} AS v)").fetchall()[0][0] for v in values]
    assert sql == [None, None, 12.5, 0.5, 1000.0, None]


# ------------------------------------------------------------------------------------- repeated column names


@pytest.mark.parametrize(
    ("header", "named"),
    [
        ("customer,ts,amount,amount", "'amount'"),
        ("customer,ts,amount,Amount", "'amount' = 'Amount'"),  # DuckDB and Spark do not tell them apart
        ("customer,ts,amount,note,note", "'note'"),  # not mapped: still two columns of one name
    ],
)
def test_repeated_column_names_in_a_csv_header_fail(tmp_path: Path, header: str, named: str) -> None:
    path = tmp_path / "tx.csv"
    extra = "," * (header.count(",") - 2)
    path.write_text(f"{header}\na,2010-01-01,1{extra}2\n", encoding="utf-8")
    message = re.escape(f"{path}: duplicate column name {named}")
    with pytest.raises(InputError, match=message):
        read_transactions(config(tmp_path, path).data)
    with pytest.raises(InputError, match=message):
        load_transactions(config(tmp_path, path))


def test_repeated_column_names_in_a_whitespace_file_fail(tmp_path: Path) -> None:
    path = tmp_path / "tx.txt"
    path.write_text("customer ts amount amount\na 2010-01-01 1 2\n", encoding="utf-8")
    with pytest.raises(InputError, match="duplicate column name 'amount'"):
        read_transactions(config(tmp_path, path, delimiter="whitespace").data)


def test_repeated_column_names_in_a_parquet_file_fail(tmp_path: Path) -> None:
    path = tmp_path / "tx.parquet"
    arrays = [pa.array(["a"]), pa.array(["2010-01-01"]), pa.array([1.0]), pa.array([2.0])]
    pq.write_table(pa.Table.from_arrays(arrays, names=["customer", "ts", "amount", "amount"]), path)
    with pytest.raises(InputError, match=re.escape(f"{path}: duplicate column name 'amount'")):
        load_transactions(config(tmp_path, path))


# ----------------------------------------------------------------------------------------- timestamp_format


@pytest.mark.parametrize("fmt", ["%s", "%Q", "%Y-%m-%d %", "%Y%Y"])
def test_a_timestamp_format_no_parser_reads_is_one_input_error(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "tx.csv"
    path.write_text("customer,ts,amount\na,1259658360,1\n", encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(f"{path}: column 'ts': timestamp_format '{fmt}' is not a usable")):
        load_transactions(config(tmp_path, path, timestamp_format=fmt))
    with pytest.raises(InputError, match="not a usable strptime format"):
        read_transactions(config(tmp_path, path, timestamp_format=fmt).data)
    check_timestamp_format("%d/%m/%Y %H:%M:%S.%f%z", "f", "c")  # a good one passes


def test_a_bad_timestamp_format_exits_2_on_one_line(tmp_path: Path) -> None:
    (tmp_path / "tx.csv").write_text("customer,ts,amount\na,1259658360,1\n", encoding="utf-8")
    source = {"path": "tx.csv", "columns": COLUMNS, "timestamp_format": "%s"}
    cfg = {"base": "default", "data": {"transactions": source, "quarantine_path": "q.parquet"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    result = invoke("validate", "--config", "c.yaml", cwd=tmp_path)
    assert_clean_failure(result, "tx.csv", "'ts'", "'%s'")


# ------------------------------------------------------------------------------------------ day-month dates


def test_day_month_dates_among_iso_ones_are_quarantined_not_guessed(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text(
        "customer,ts,amount\n"
        "a,01/12/2009 09:06,1\n"  # 1 December (day-first file) would be read as 12 January month-first
        "b,2010-12-01 09:06:00,2\n"
        "c,2010-12-02T09:06:00,3\n"
        "d,13/12/2009 09:06,4\n"
        "e,1.12.09,5\n"
        "f,2010-12-03,6\n",
        encoding="utf-8",
    )
    reasons, accepted = both(config(tmp_path, path))
    assert reasons == {"ambiguous_timestamp": 3}
    assert accepted["timestamp"].tolist() == [
        pd.Timestamp("2010-12-01 09:06"),
        pd.Timestamp("2010-12-02 09:06"),
        pd.Timestamp("2010-12-03"),
    ]
    quarantine = pd.read_parquet(tmp_path / "quarantine.parquet")
    assert quarantine["source_row"].tolist() == [0, 3, 4]


def test_day_month_dates_are_read_with_a_format(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text("customer,ts,amount\na,01/12/2009 09:06,1\nb,13/12/2009 09:06,2\n", encoding="utf-8")
    reasons, accepted = both(config(tmp_path, path, timestamp_format="%d/%m/%Y %H:%M"))
    assert reasons == {}
    assert accepted["timestamp"].tolist() == [pd.Timestamp("2009-12-01 09:06"), pd.Timestamp("2009-12-13 09:06")]


def test_only_day_month_dates_fail_the_column(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text("customer,ts,amount\na,01/12/2009,1\nb,02/12/2009,2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"no value of column 'ts' parses.*set timestamp_format.*never guessed"):
        load_transactions(config(tmp_path, path))


def test_guessing_leaves_day_month_dates_unparsed() -> None:
    texts = pd.Series(["01/12/2009 09:06", "02/12/2009 09:06", "2010-12-01 09:06:00", "20100105"], dtype="str")
    assert all("%d" not in f and "%m" not in f for f in guess_formats(texts[:2]))
    parsed = parse_timestamps(texts, None, None)
    assert parsed.isna().tolist() == [True, True, False, False]
    assert parse_timestamps(texts[:1], "%d/%m/%Y %H:%M", None).tolist() == [pd.Timestamp("2009-12-01 09:06")]


def test_olist_day_month_order_times_are_quarantined_and_bad_formats_fail(tmp_path: Path) -> None:
    from tiercast.pipeline.ingest.sources import DataConfig

    olist = Path(__file__).resolve().parents[1] / "fixtures" / "olist"
    tables = {k: tmp_path / f"olist_{k}_dataset.csv" for k in ("orders", "order_items", "customers")}
    for path in tables.values():
        path.write_text((olist / path.name).read_text(encoding="utf-8"), encoding="utf-8")
    orders = tables["orders"].read_text(encoding="utf-8").replace("2017-03-01 10:00:00", "01/03/2017 10:00", 1)
    tables["orders"].write_text(orders, encoding="utf-8")
    source = {k: str(v) for k, v in tables.items()}
    result = read_transactions(DataConfig.model_validate({"olist": source, "max_quarantine_share": 1.0}), run_date=RUN)
    ambiguous = result.quarantine.loc[result.quarantine["reason"] == "ambiguous_timestamp"]
    assert set(ambiguous["order_id"]) == {"ord01"} and len(ambiguous) >= 1
    bad = DataConfig.model_validate({"olist": {**source, "timestamp_format": "%Q"}, "max_quarantine_share": 1.0})
    with pytest.raises(InputError, match="order_purchase_timestamp'. timestamp_format '%Q'"):
        read_transactions(bad)
