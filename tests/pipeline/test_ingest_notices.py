"""What the ingestion keeps but reads differently from the file, and what it sets aside where no summary shows it,
is told in one notice (a UserWarning, printed by the command line as one line) naming the source, the column and
the rows: timestamps with a UTC offset converted, customer ids trimmed of surrounding whitespace (with the raw
spellings that became one id), Olist reviews with a day-month date quarantined as ``ambiguous_timestamp``."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pandas as pd
import yaml

from tests.pipeline.cli_harness import invoke
from tests.pipeline.ingest_configs import COLUMNS, RUN, config
from tiercast.pipeline.config import Config
from tiercast.pipeline.ingest.loader import load_transactions
from tiercast.pipeline.ingest.sources import DataConfig
from tiercast.pipeline.ingest.transactions import read_transactions

OLIST = Path(__file__).resolve().parents[1] / "fixtures" / "olist"
T = TypeVar("T")


def noticed(read: Callable[[], T]) -> tuple[T, list[str]]:
    """What ``read`` returned and the texts of the notices it issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = read()
    return result, [str(w.message) for w in caught if w.category is UserWarning]


def both(cfg: Config) -> tuple[pd.DataFrame, dict[str, int], list[str]]:
    """Accepted rows, reasons and notices of the engine ingestion (load_transactions), checked equal to those of
    the collected frame (read_transactions)."""
    data, texts = noticed(lambda: load_transactions(cfg))
    collected, collected_texts = noticed(lambda: read_transactions(cfg.data, run_date=RUN))
    assert collected_texts == texts
    assert dict(data.reasons) == collected.reason_counts()
    pd.testing.assert_frame_equal(data.accepted.reset_index(drop=True), collected.accepted, check_dtype=False)
    return collected.accepted, collected.reason_counts(), texts


def test_timestamps_with_a_utc_offset_are_converted_with_one_notice(tmp_path: Path) -> None:
    path = tmp_path / "transactions.csv"
    path.write_text(
        "customer,ts,amount\n"
        "a,2010-12-01 08:26:00+01:00,1\n"
        "b,2010-12-01T09:26:00Z,2\n"
        "c,2010-12-01 10:26:00,3\n"  # naive: kept as written
        "d,2010-12-01 11:26:00 UTC,4\n",
        encoding="utf-8",
    )
    accepted, reasons, texts = both(config(tmp_path, path))
    assert texts == [
        f"{path}: 3 rows of column 'ts' carry a UTC offset; converted to UTC (set data.timezone to read them in "
        "another zone)"
    ]
    assert reasons == {}
    assert accepted["timestamp"].tolist() == [
        pd.Timestamp("2010-12-01 07:26"),
        pd.Timestamp("2010-12-01 09:26"),
        pd.Timestamp("2010-12-01 10:26"),
        pd.Timestamp("2010-12-01 11:26"),
    ]


def test_a_zone_aware_parquet_column_is_converted_to_the_configured_zone_with_one_notice(tmp_path: Path) -> None:
    times = pd.to_datetime(["2010-06-01 10:00", "2010-01-01 12:00", None]).tz_localize("UTC")
    frame = pd.DataFrame({"customer": ["a", "b", "c"], "ts": times, "amount": [1.0, 2.0, 3.0]})
    path = tmp_path / "transactions.parquet"
    frame.to_parquet(path)
    accepted, reasons, texts = both(config(tmp_path, path, timezone="Europe/London"))
    assert texts == [f"{path}: 2 rows of column 'ts' carry a UTC offset; converted to Europe/London (data.timezone)"]
    assert reasons == {"unparseable_timestamp": 1}
    assert accepted["timestamp"].tolist() == [pd.Timestamp("2010-01-01 12:00"), pd.Timestamp("2010-06-01 11:00")]
    naive = tmp_path / "naive.parquet"
    frame.assign(ts=times.tz_localize(None)).to_parquet(naive)
    assert both(config(tmp_path, naive, timezone="Europe/London"))[2] == []


def test_customer_ids_differing_only_by_surrounding_whitespace_merge_with_one_notice(tmp_path: Path) -> None:
    path = tmp_path / "transactions.csv"
    path.write_text(
        "customer,ts,amount\n"
        " 123,2010-12-01,1\n"
        "123 ,2010-12-02,2\n"
        "123,2010-12-03,3\n"
        "\t9,2010-12-04,4\n"  # trimmed, but no other spelling
        '" ",2010-12-05,5\n'  # blank: missing, not a trimmed id
        "77,2010-12-06,6\n",
        encoding="utf-8",
    )
    accepted, reasons, texts = both(config(tmp_path, path))
    assert texts == [
        f"{path}: 3 rows of column 'customer' had a customer id with surrounding whitespace, trimmed: 3 distinct "
        "raw ids merge into 1 customer id (e.g. ' 123', '123', '123 ' are customer '123')"
    ]
    assert reasons == {"missing_customer": 1}
    assert accepted["customer_id"].tolist() == ["123", "123", "123", "9", "77"]
    quarantine = pd.read_parquet(tmp_path / "quarantine.parquet")
    assert quarantine[["source_row", "reason"]].to_dict("records") == [{"source_row": 4, "reason": "missing_customer"}]


def case_notice(source: object, column: str, ids: int, rows: str, first: str, second: str) -> str:
    return (
        f"{source}: {ids} customer ids of column {column!r} ({rows}) differ from another id only in letter case "
        f"(e.g. {first!r} and {second!r}) and count as different customers; if they are the same customer, "
        "lower-case the column in the export"
    )


def test_customer_ids_differing_only_in_letter_case_stay_apart_with_one_notice(tmp_path: Path) -> None:
    path = tmp_path / "transactions.csv"
    path.write_text(
        "customer,ts,amount\n"
        "Ann@Example.com,2010-12-01,1\n"
        "ann@example.com,2010-12-02,2\n"
        "ann@example.com,2010-12-03,3\n"
        "ANN@EXAMPLE.COM,2010-12-04,4\n"
        "bob@x.org,2010-12-05,5\n"
        "Bob@x.org,2010-12-06,6\n"
        "Cy@x.org,2010-12-07,7\n"  # capitals, but no other spelling
        "dan@x.org,2010-12-08,8\n",
        encoding="utf-8",
    )
    accepted, reasons, texts = both(config(tmp_path, path))
    assert texts == [case_notice(path, "customer", 5, "6 rows", "ANN@EXAMPLE.COM", "ann@example.com")]
    assert reasons == {}
    assert accepted["customer_id"].nunique() == 7  # kept as spelt: not folded
    assert "Ann@Example.com" in accepted["customer_id"].tolist()


def test_customer_ids_differing_otherwise_give_no_case_notice(tmp_path: Path) -> None:
    path = tmp_path / "transactions.csv"
    path.write_text(
        "customer,ts,amount\n"
        "ann@example.com,2010-12-01,1\n"
        "ann@example.org,2010-12-02,2\n"
        "Ann.B@example.com,2010-12-03,3\n"
        "X-1,2010-12-04,4\n"
        "x-2,2010-12-05,5\n",
        encoding="utf-8",
    )
    assert both(config(tmp_path, path))[2] == []


def test_olist_customer_ids_differing_only_in_letter_case_stay_apart_with_one_notice(tmp_path: Path) -> None:
    data = olist_tables(
        tmp_path,
        "order_id,customer_id,order_status,order_purchase_timestamp\n"
        "o1,c1,delivered,2017-03-01\no2,c2,delivered,2017-03-02\no3,c3,delivered,2017-03-03\n",
        "order_id,order_item_id,product_id,price,freight_value\no1,1,p1,10,1\no2,1,p1,10,1\no3,1,p1,10,1\n",
        "customer_id,customer_unique_id\nc1,Ua\nc2,ua\nc3,ub\n",
    )
    result, texts = noticed(lambda: read_transactions(data, run_date=RUN))
    assert texts == [case_notice(tmp_path / "customers.csv", "customer_unique_id", 2, "2 rows", "Ua", "ua")]
    assert sorted(result.accepted["customer_id"]) == ["Ua", "ua", "ub"]


def test_olist_review_day_month_dates_are_quarantined_as_ambiguous_with_one_notice(tmp_path: Path) -> None:
    for table in OLIST.glob("*.csv"):
        shutil.copy(table, tmp_path / table.name)
    reviews = tmp_path / "olist_order_reviews_dataset.csv"
    text = reviews.read_text(encoding="utf-8")
    text = text.replace("2017-03-11 09:00:00", "11/03/2017 09:00")  # rev01's answer time
    text = text.replace("rev06,ord05,4,,,2017-06-10 00:00:00,", "rev06,ord05,4,,,10/06/2017,")  # creation, no answer
    text = text.replace('rev02,ord02,1,Ruim,"Não chegou, péssimo",2017-05-25 00:00:00', "rev02,ord02,1,,,25/05/2017")
    reviews.write_text(text, encoding="utf-8")  # rev02: a day-month creation date, not read (it has an answer time)
    tables = {k: tmp_path / f"olist_{k}_dataset.csv" for k in ("orders", "order_items", "customers")}
    source = {**{k: str(v) for k, v in tables.items()}, "reviews": str(reviews)}
    data = DataConfig.model_validate({"olist": source, "max_quarantine_share": 1.0})
    result, texts = noticed(lambda: read_transactions(data, run_date=RUN))
    assert texts == [
        f"{reviews}: 1 row of column 'review_answer_timestamp' and 1 row of column 'review_creation_date' hold "
        "day-month dates such as '11/03/2017 09:00', quarantined as ambiguous_timestamp (day-first or month-first "
        "is never guessed; set olist.reviews_timestamp_format)"
    ]
    assert result.satisfaction_reason_counts() == {"unknown_order": 1, "ambiguous_timestamp": 2, "invalid_score": 2}
    quarantine = result.satisfaction_quarantine
    assert quarantine is not None
    ambiguous = quarantine.loc[quarantine["reason"] == "ambiguous_timestamp", "review_id"].tolist()
    assert ambiguous == ["rev01", "rev06"]  # before: unparseable_timestamp, and rev01 dated by its creation date
    assert result.satisfaction["timestamp"].tolist() == [
        pd.Timestamp("2017-04-12 08:00"),
        pd.Timestamp("2017-05-26 10:00"),
    ]


def test_the_notices_are_one_line_each_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "tx.csv").write_text(
        "customer,ts,amount\n 1,2010-12-01 08:26:00+01:00,1\n1,2010-12-02 08:26:00,2\n2,2010-12-03 08:26:00,3\n",
        encoding="utf-8",
    )
    source = {"path": "tx.csv", "columns": COLUMNS}
    cfg = {"base": "default", "data": {"transactions": source, "quarantine_path": "q.parquet"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    result = invoke("validate", "--config", "c.yaml", cwd=tmp_path)
    assert result.code == 0, result.stderr
    notices = [ln for ln in result.stderr.splitlines() if ln.startswith("warning: tx.csv")]
    assert notices == [
        "warning: tx.csv: 1 row of column 'ts' carries a UTC offset; converted to UTC (set data.timezone to read them "
        "in another zone)",
        "warning: tx.csv: 1 row of column 'customer' had a customer id with surrounding whitespace, trimmed: "
        "2 distinct raw ids merge into 1 customer id (e.g. ' 1', '1' are customer '1')",
    ]


def olist_tables(tmp_path: Path, orders: str, items: str, customers: str, reviews: str | None = None) -> DataConfig:
    """An Olist config over hand-written tables (their required columns only), with reviews when given."""
    tables = {"orders": orders, "order_items": items, "customers": customers}
    if reviews is not None:
        tables["reviews"] = reviews
    for name, text in tables.items():
        (tmp_path / f"{name}.csv").write_text(text, encoding="utf-8")
    source = {name: str(tmp_path / f"{name}.csv") for name in tables}
    return DataConfig.model_validate({"olist": source, "max_quarantine_share": 1.0})


def test_olist_order_timestamps_with_a_utc_offset_are_converted_with_one_notice(tmp_path: Path) -> None:
    data = olist_tables(
        tmp_path,
        "order_id,customer_id,order_status,order_purchase_timestamp\n"
        "o1,c1,delivered,2017-03-01 10:00:00-03:00\n"  # two items: one row of the orders file
        "o2,c1,delivered,2017-03-02T13:00:00Z\n"
        "o3,c1,delivered,2017-03-03 10:00:00\n"  # naive: kept as written
        "o4,c1,canceled,2017-03-04 13:00:00+00:00\n"  # read, then quarantined: counted
        "o5,c1,delivered,2017-13-45 10:00:00+01:00\n"  # unparseable: not converted
        "o6,c1,delivered,2017-03-06 13:00:00+00:00\n",  # no item: not read
        "order_id,order_item_id,product_id,price,freight_value\n"
        "o1,1,p1,10,1\no1,2,p2,10,1\no2,1,p1,10,1\no3,1,p1,10,1\no4,1,p1,10,1\no5,1,p1,10,1\n",
        "customer_id,customer_unique_id\nc1,u1\n",
    )
    result, texts = noticed(lambda: read_transactions(data, run_date=RUN))
    assert texts == [
        f"{tmp_path / 'orders.csv'}: 3 rows of column 'order_purchase_timestamp' carry a UTC offset; converted to "
        "America/Sao_Paulo (data.timezone)"
    ]
    assert result.reason_counts() == {"canceled_order": 1, "unparseable_timestamp": 1}
    assert result.accepted["timestamp"].tolist() == [
        pd.Timestamp("2017-03-01 10:00"),
        pd.Timestamp("2017-03-01 10:00"),
        pd.Timestamp("2017-03-02 10:00"),
        pd.Timestamp("2017-03-03 10:00"),
    ]


def test_olist_customer_ids_with_surrounding_whitespace_are_trimmed_with_one_notice_per_column(tmp_path: Path) -> None:
    data = olist_tables(
        tmp_path,
        "order_id,customer_id,order_status,order_purchase_timestamp\n"
        "o1,c1,delivered,2017-03-01\n"
        "o2, c2,delivered,2017-03-02\n"  # a padded join key, also spelt without whitespace (o6)
        "o3,c3,delivered,2017-03-03\n"
        "o4,c4,delivered,2017-03-04\n"
        "o5,c5,delivered,2017-03-05\n"
        "o6,c2,delivered,2017-03-06\n"
        "o7,c6,delivered,2017-03-07\n",  # no item: its customer is not read
        "order_id,order_item_id,product_id,price,freight_value\n"
        "o1,1,p1,10,1\no2,1,p1,10,1\no3,1,p1,10,1\no4,1,p1,10,1\no5,1,p1,10,1\no6,1,p1,10,1\n",
        "customer_id,customer_unique_id\n"
        "c1, u1\n"
        "c2,u1\n"
        "c3 ,u1 \n"  # both columns padded
        "c4,\tu9\n"  # trimmed, but no other spelling
        'c5," "\n'  # blank: missing, not a trimmed id
        "c6, u8\n",
    )
    result, texts = noticed(lambda: read_transactions(data, run_date=RUN))
    customers, orders = tmp_path / "customers.csv", tmp_path / "orders.csv"
    assert texts == [
        f"{customers}: 3 rows of column 'customer_unique_id' had a customer id with surrounding whitespace, trimmed: "
        "3 distinct raw ids merge into 1 customer id (e.g. ' u1', 'u1', 'u1 ' are customer 'u1')",
        f"{orders}: 1 row of column 'customer_id' had a customer id with surrounding whitespace, trimmed: 2 distinct "
        "raw ids merge into 1 customer id (e.g. ' c2', 'c2' are customer 'c2')",
        f"{customers}: 1 row of column 'customer_id' had a customer id with surrounding whitespace, trimmed (no two "
        "raw ids became one)",
    ]
    assert result.reason_counts() == {"missing_customer": 1}
    assert result.accepted["customer_id"].tolist() == ["u1", "u1", "u1", "u9", "u1"]


def test_olist_review_times_with_a_utc_offset_are_converted_with_one_notice_per_column_read(tmp_path: Path) -> None:
    data = olist_tables(
        tmp_path,
        "order_id,customer_id,order_status,order_purchase_timestamp\no1,c1,delivered,2017-03-01 10:00:00\n",
        "order_id,order_item_id,product_id,price,freight_value\no1,1,p1,10,1\n",
        "customer_id,customer_unique_id\nc1,u1\n",
        "review_id,order_id,review_score,review_creation_date,review_answer_timestamp\n"
        "r1,o1,5,2017-03-10 00:00:00,2017-03-11T12:00:00Z\n"
        "r2,o1,4,2017-03-10 00:00:00+00:00,2017-03-11 09:00:00\n"  # the creation date is not read
        "r3,o1,3,2017-03-12 03:00:00+00:00,\n"  # no answer time: the creation date is read
        "r4,o1,2,2017-03-12 03:00:00+00:00,12/03/2017 09:00\n",  # day-month answer time: quarantined, nothing read
    )
    result, texts = noticed(lambda: read_transactions(data, run_date=RUN))
    reviews, zone = tmp_path / "reviews.csv", "America/Sao_Paulo (data.timezone)"
    assert texts == [
        f"{reviews}: 1 row of column 'review_answer_timestamp' carries a UTC offset; converted to {zone}",
        f"{reviews}: 1 row of column 'review_creation_date' carries a UTC offset; converted to {zone}",
        f"{reviews}: 1 row of column 'review_answer_timestamp' holds a day-month date such as '12/03/2017 09:00', "
        "quarantined as ambiguous_timestamp (day-first or month-first is never guessed; "
        "set olist.reviews_timestamp_format)",
    ]
    assert result.satisfaction_reason_counts() == {"ambiguous_timestamp": 1}
    assert result.satisfaction is not None
    assert result.satisfaction["timestamp"].tolist() == [
        pd.Timestamp("2017-03-11 09:00"),
        pd.Timestamp("2017-03-11 09:00"),
        pd.Timestamp("2017-03-12 00:00"),
    ]
    assert len(result.accepted) == 1


def test_olist_tables_without_offsets_or_padded_ids_give_no_notice() -> None:
    tables = {k: str(OLIST / f"olist_{k}_dataset.csv") for k in ("orders", "order_items", "customers")}
    tables["reviews"] = str(OLIST / "olist_order_reviews_dataset.csv")
    data = DataConfig.model_validate({"olist": tables, "max_quarantine_share": 1.0})
    result, texts = noticed(lambda: read_transactions(data, run_date=RUN))
    assert texts == []
    assert result.n_read == 11 and len(result.accepted) == 4
    assert result.satisfaction is not None and len(result.satisfaction) == 4


SIGNS_COLUMNS = {**COLUMNS, "quantity": "qty", "order_id": "order"}
SIGNS_FILE = (
    "customer,order,ts,qty,amount\n"
    "a,o1,2010-12-01,2,20\n"
    "a,o2,2010-12-02,-1,10\n"  # a return exported with a positive amount
    "b,o3,2010-12-03,-2,-8\n"  # a return as refunds are read: negative amount
    "b,o4,2010-12-04,3,-6\n"  # a refund line with a positive quantity: the amount decides, no notice
    "c,o5,2010-12-05,-1,5\n"
)


def signs_notice(path: Path) -> str:
    return (
        f"{path}: a negative 'qty' with a positive 'amount' on 2 rows (e.g. order 'o2'): they count as purchases, "
        "not refunds; if they are returns, export their amounts negative"
    )


def test_negative_quantities_with_positive_amounts_count_as_purchases_with_one_notice(tmp_path: Path) -> None:
    path = tmp_path / "transactions.csv"
    path.write_text(SIGNS_FILE, encoding="utf-8")
    accepted, reasons, texts = both(config(tmp_path, path, SIGNS_COLUMNS))
    assert texts == [signs_notice(path)]
    assert reasons == {} and accepted["amount"].tolist() == [20.0, 10.0, -8.0, -6.0, 5.0]  # nothing changed
    assert both(config(tmp_path, path, {**SIGNS_COLUMNS, "quantity": None}))[2] == []  # no quantity: no notice
