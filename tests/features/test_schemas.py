"""features.schemas: the pandera schemas of the canonical transaction and satisfaction frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.errors as pe
import pytest

from tiercast.features.contract import OPTIONAL_TRANSACTION_COLUMNS, TRANSACTION_COLUMNS
from tiercast.features.schemas import (
    SATISFACTION,
    TRANSACTIONS,
    validate_satisfaction,
    validate_transactions,
)


def transactions(**overrides) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "customer_id": ["00001", "00002"],
            "timestamp": pd.to_datetime(["1997-01-01 00:00", "1997-01-02 10:30"]),
            "amount": [11.77, -3.0],
            "order_id": ["o1", "o2"],
        }
    )
    for k, v in overrides.items():
        df[k] = v
    return df


def failing(df: pd.DataFrame, schema=TRANSACTIONS) -> set[tuple[str, str]]:
    with pytest.raises(pe.SchemaErrors) as err:
        schema.validate(df, lazy=True)
    cases = err.value.failure_cases
    return set(zip(cases["column"].astype(str), cases["check"].astype(str), strict=True))


def test_valid_minimal_and_full_frames() -> None:
    assert TRANSACTION_COLUMNS == ("customer_id", "timestamp", "amount", "order_id")
    validate_transactions(transactions())
    full = transactions(quantity=[1.0, 2.0], product_id=["A", None], category=["x", "y"], channel=[None, None])
    assert set(full.columns) == set(TRANSACTION_COLUMNS + OPTIONAL_TRANSACTION_COLUMNS)
    validate_transactions(full)


def test_any_naive_datetime_unit_passes() -> None:
    validate_transactions(transactions(timestamp=pd.to_datetime(["2020-01-01", "2020-01-02"]).astype("M8[ns]")))


def test_ids_must_be_nonblank_stripped_strings() -> None:
    bad = failing(transactions(customer_id=["", " 7"]))
    assert ("customer_id", "non-empty") in bad
    assert ("customer_id", "no leading/trailing blanks") in bad
    assert ("customer_id", "not_nullable") in failing(transactions(customer_id=["a", None]))
    assert ("order_id", "holds strings") in failing(transactions(order_id=pd.Series([1, 2], dtype=object)))


def test_timestamp_naive_and_present() -> None:
    aware = transactions(timestamp=pd.to_datetime(["2020-01-01", "2020-01-02"]).tz_localize("UTC"))
    assert any(col == "timestamp" for col, _ in failing(aware))
    assert any(col == "timestamp" for col, _ in failing(transactions(timestamp=["2020-01-01", "x"])))
    with_nat = transactions(timestamp=pd.to_datetime(["2020-01-01", None]))
    assert ("timestamp", "not_nullable") in failing(with_nat)


def test_amount_finite_float() -> None:
    assert ("amount", "finite") in failing(transactions(amount=[1.0, np.inf]))
    assert ("amount", "not_nullable") in failing(transactions(amount=[1.0, np.nan]))
    assert any(col == "amount" for col, _ in failing(transactions(amount=["1", "2"])))


def test_no_extra_columns() -> None:
    assert ("transactions", "column_in_schema") in failing(transactions(extra=[1, 2]))


def test_missing_required_column() -> None:
    assert failing(transactions().drop(columns="order_id"))


def test_failure_cases_point_at_rows() -> None:
    df = transactions(amount=[np.inf, 1.0])
    with pytest.raises(pe.SchemaErrors) as err:
        TRANSACTIONS.validate(df.set_index(pd.Index([40, 41])), lazy=True)
    assert err.value.failure_cases["index"].tolist() == [40]


def test_satisfaction_schema() -> None:
    sat = pd.DataFrame(
        {
            "customer_id": ["u1", "u2"],
            "timestamp": pd.to_datetime(["2017-01-01", "2017-02-01"]),
            "review_score": np.array([1, 5], dtype="int64"),
            "is_complaint": [True, False],
        }
    )
    validate_satisfaction(sat)
    bad = sat.assign(review_score=np.array([0, 6], dtype="int64"))
    assert ("review_score", "in_range(1, 5)") in failing(bad, SATISFACTION)
    assert any(col == "is_complaint" for col, _ in failing(sat.assign(is_complaint=[1, 0]), SATISFACTION))
