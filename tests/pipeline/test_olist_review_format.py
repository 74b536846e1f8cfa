"""Olist reviews written unlike the orders (orders day-first, reviews ISO): ``olist.reviews_timestamp_format`` reads
the reviews' two time columns, ``timestamp_format`` the orders'. Without it the reviews are quarantined, and every
message about their times names the reviews' own setting."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.pipeline.cli_harness import assert_clean_failure, invoke
from tiercast.pipeline.config import ConfigError, load_config
from tiercast.pipeline.ingest.common import InputError
from tiercast.pipeline.ingest.rules import IngestResult
from tiercast.pipeline.ingest.sources import DataConfig
from tiercast.pipeline.ingest.transactions import read_transactions

RUN = pd.Timestamp("2030-01-01")
DAY_FIRST, ISO = "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S"
ORDERS = (
    "order_id,customer_id,order_status,order_purchase_timestamp\n"
    "o1,c1,delivered,05/03/2017 10:30\n"  # the 5th of March
    "o2,c2,delivered,25/12/2017 08:00\n"
)
ITEMS = "order_id,order_item_id,product_id,price,freight_value\no1,1,p1,10,1\no1,2,p2,20,2\no2,1,p1,30,3\n"
CUSTOMERS = "customer_id,customer_unique_id\nc1,u1\nc2,u2\n"
REVIEWS = (
    "review_id,order_id,review_score,review_creation_date,review_answer_timestamp\n"
    "r1,o1,5,2017-03-10 00:00:00,2017-03-11 09:15:00\n"
    "r2,o2,1,2018-01-02 00:00:00,\n"  # no answer time: the creation date is read
    "r3,o1,4,2017-03-12 00:00:00,2017-03-12 23:59:59\n"
)


def olist(tmp_path: Path, orders: str = ORDERS, reviews: str = REVIEWS, **settings: object) -> dict[str, object]:
    """The ``data:`` section over the hand-written tables, with the ``olist`` ``settings``."""
    tables = {"orders": orders, "order_items": ITEMS, "customers": CUSTOMERS, "reviews": reviews}
    for name, text in tables.items():
        (tmp_path / f"{name}.csv").write_text(text, encoding="utf-8")
    source = {name: str(tmp_path / f"{name}.csv") for name in tables}
    return {"olist": {**source, **settings}, "quarantine_path": str(tmp_path / "q.parquet")}


def read(data: dict[str, object]) -> IngestResult:
    """Read the ``data:`` section, failing on any notice."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no notice expected
        return read_transactions(DataConfig.model_validate(data), run_date=RUN)


def test_reviews_read_with_their_own_format_beside_day_first_orders(tmp_path: Path) -> None:
    data = olist(tmp_path, timestamp_format=DAY_FIRST, reviews_timestamp_format=ISO)
    result = read({**data, "max_quarantine_share": 0.0})
    assert result.reason_counts() == {} and result.satisfaction_reason_counts() == {}
    # naive times are taken to be in the source's zone (America/Sao_Paulo) and kept as written
    assert result.accepted["timestamp"].tolist() == [pd.Timestamp("2017-03-05 10:30")] * 2 + [
        pd.Timestamp("2017-12-25 08:00")
    ]
    assert result.accepted["amount"].tolist() == [11.0, 22.0, 33.0]
    satisfaction = result.satisfaction
    assert satisfaction is not None
    assert satisfaction["timestamp"].tolist() == [
        pd.Timestamp("2017-03-11 09:15"),
        pd.Timestamp("2017-03-12 23:59:59"),
        pd.Timestamp("2018-01-02 00:00"),
    ]
    assert satisfaction["customer_id"].tolist() == ["u1", "u1", "u2"]
    assert satisfaction["review_score"].tolist() == [5, 4, 1]


def test_without_it_the_reviews_are_quarantined_and_the_hint_names_it(tmp_path: Path) -> None:
    data = olist(tmp_path, timestamp_format=DAY_FIRST)
    with pytest.raises(InputError) as e:
        read({**data, "max_quarantine_share": 0.5})
    assert str(e.value) == (
        f"{tmp_path / 'reviews.csv'}: 100.0% of 3 rows quarantined, above max_quarantine_share 50.0% (top reasons: "
        "unparseable_timestamp 3); check olist.reviews_timestamp_format and the columns review_answer_timestamp and "
        "review_creation_date"
    )
    result = e.value.result
    assert result is not None and result.satisfaction is not None and result.satisfaction_quarantine is not None
    assert len(result.accepted) == result.n_read == 3  # every order item, nothing quarantined
    quarantine = result.satisfaction_quarantine
    assert len(result.satisfaction) + len(quarantine) == 3  # every review read is accounted for
    assert quarantine["reason"].tolist() == ["unparseable_timestamp"] * 3
    assert sorted(quarantine["review_id"]) == ["r1", "r2", "r3"]


def test_a_day_month_review_date_without_any_format_names_the_reviews_setting(tmp_path: Path) -> None:
    iso_orders = ORDERS.replace("05/03/2017", "2017-03-05").replace("25/12/2017", "2017-12-25")
    day_month_answer = REVIEWS.replace("2017-03-11 09:15:00", "11/03/2017 09:15")
    data = DataConfig.model_validate({**olist(tmp_path, iso_orders, day_month_answer), "max_quarantine_share": 1.0})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = read_transactions(data, run_date=RUN)
    assert [str(w.message) for w in caught if w.category is UserWarning] == [
        f"{tmp_path / 'reviews.csv'}: 1 row of column 'review_answer_timestamp' holds a day-month date such as "
        "'11/03/2017 09:15', quarantined as ambiguous_timestamp (day-first or month-first is never guessed; set "
        "olist.reviews_timestamp_format)"
    ]
    assert result.satisfaction_reason_counts() == {"ambiguous_timestamp": 1}


def test_an_unusable_reviews_format_is_a_one_line_error_naming_the_file_and_column(tmp_path: Path) -> None:
    data = olist(tmp_path, timestamp_format=DAY_FIRST, reviews_timestamp_format="%Y-%m-%d %q")
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump({"base": "default", "data": data}), encoding="utf-8")
    line = assert_clean_failure(invoke("validate", "--config", "shop.yaml", cwd=tmp_path))
    assert line.startswith(
        f"error: {tmp_path / 'reviews.csv'}: column 'review_answer_timestamp': reviews_timestamp_format "
        "'%Y-%m-%d %q' is not a usable strptime format ("
    ), line


def test_the_reviews_format_without_reviews_is_a_config_error(tmp_path: Path) -> None:
    data = olist(tmp_path, reviews_timestamp_format=ISO)
    del data["olist"]["reviews"]  # type: ignore[attr-defined]
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump({"base": "default", "data": data}), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "shop.yaml")
    assert str(e.value) == (
        f"{tmp_path / 'shop.yaml'}: data.olist: reviews_timestamp_format is the format of the reviews' times, but no "
        "`reviews` file is given: give `reviews` or remove reviews_timestamp_format"
    )
