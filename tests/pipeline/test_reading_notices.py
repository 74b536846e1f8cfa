"""A share of rows quarantined for a reason that says a column is read with the wrong setting (amounts with decimal
commas read with a dot, a time format that fits only some rows) gets a warning even below max_quarantine_share;
stray bad values and data facts (missing customers) do not. Amounts with '.' marking thousands, which parse and are
read 1000 times too small, get the warning `tiercast init` gives."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from tests.pipeline.test_ingest_sql import config
from tiercast.pipeline.ingest.loader import load_transactions

COLUMNS = {"customer_id": "customer", "timestamp": "time", "amount": "amount", "order_id": "order"}


def _lines(tmp_path: Path, amounts: list[str], customers: list[str] | None = None) -> Path:
    n = len(amounts)
    frame = pd.DataFrame(
        {
            "customer": customers or [f"c{i % 40}" for i in range(n)],
            "time": [f"2023-{1 + i % 12:02d}-{1 + i % 28:02d} 10:00" for i in range(n)],
            "amount": amounts,
            "order": [f"o{i}" for i in range(n)],
        }
    )
    path = tmp_path / "lines.csv"
    frame.to_csv(path, sep=";", index=False)
    return path


def _load(tmp_path: Path, path: Path) -> list[str]:
    source = {"path": str(path), "delimiter": ";", "columns": COLUMNS}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        load_transactions(config(tmp_path, source, max_quarantine_share=0.5), run_date="2030-01-01")
    return [str(w.message) for w in seen if "quarantined as" in str(w.message)]


def test_a_fifth_of_amounts_with_decimal_commas_is_a_warning(tmp_path: Path) -> None:
    amounts = [f"{10 + i}.50" if i % 5 else f"{10 + i},50" for i in range(200)]  # 40 of 200 with a comma
    (notice,) = _load(tmp_path, _lines(tmp_path, amounts))
    assert notice.startswith(f"{tmp_path / 'lines.csv'}: 40 of 200 rows (20.0%) quarantined as non_numeric_amount")
    assert "transactions.decimal" in notice


@pytest.mark.parametrize("case", ["clean", "one_stray_value", "missing_customers"])
def test_stray_values_and_data_facts_are_not(tmp_path: Path, case: str) -> None:
    amounts = [f"{10 + i}.50" for i in range(200)]
    customers = None
    if case == "one_stray_value":
        amounts[7] = "n/a?"  # 1 of 200: 0.5%, under the 1% notice share
    if case == "missing_customers":
        customers = ["" if i % 4 == 0 else f"c{i % 40}" for i in range(200)]  # 25% without a customer id
    assert _load(tmp_path, _lines(tmp_path, amounts, customers)) == []


def _warnings(tmp_path: Path, path: Path) -> list[str]:
    source = {"path": str(path), "delimiter": ";", "columns": COLUMNS}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = load_transactions(config(tmp_path, source), run_date="2030-01-01")
    assert result.n_quarantined == 0  # every value parses: only a warning can tell
    return [str(w.message) for w in seen]


def test_dots_marking_thousands_are_a_warning_as_in_init(tmp_path: Path) -> None:
    """'1.978' beside '382': '.' marks thousands, and the decimal point '.' reads it 1000 times too small; `init`
    noted it, and now `validate` and `run` warn too."""
    amounts = [f"{1 + i % 9}.{100 + i:03d}" if i % 3 else f"{100 + i}" for i in range(60)]
    (notice,) = [w for w in _warnings(tmp_path, _lines(tmp_path, amounts)) if "marked thousands" in w]
    assert notice.startswith(f"{tmp_path / 'lines.csv'}: 40 of the first 60 values of column 'amount'")
    assert "would be read as decimals ('2.101' as 2.101, not 2101)" in notice


def test_prices_with_cents_or_all_to_the_thousandth_are_not(tmp_path: Path) -> None:
    cents = [f"{10 + i}.50" if i % 3 else f"{100 + i}" for i in range(60)]
    thousandths = [f"{1 + i % 9}.{100 + i:03d}" for i in range(60)]  # no plain integer beside them: a currency to 0.001
    for amounts in (cents, thousandths):
        assert not [w for w in _warnings(tmp_path, _lines(tmp_path, amounts)) if "marked thousands" in w]


def test_ids_made_one_by_a_dropped_float_zero_or_rounded_by_a_spreadsheet_are_a_warning(tmp_path: Path) -> None:
    """'12' and '12.0' are read as one customer (a float id saved as text), and '1.23457E+11' is what a spreadsheet
    shows of a long number: both are kept, with a warning that different customers may have become one."""
    customers = [f"c{i % 40}" for i in range(200)]
    customers[:6] = ["12", "12.0", "12.00", "1.23457E+11", "1.23457E+11", "7.0"]
    amounts = [f"{10 + i}.50" for i in range(200)]
    seen = _warnings(tmp_path, _lines(tmp_path, amounts, customers))
    (merged,) = [w for w in seen if "merge into" in w]
    assert "3 distinct raw ids of column 'customer' merge into 1 customer id" in merged
    assert "(e.g. 12, 12.0, 12.00 are customer 12)" in merged  # '7.0' alone merges with nothing
    (rounded,) = [w for w in seen if "rounded number" in w]
    assert "1 distinct customer id of column 'customer' written like a rounded number" in rounded
    assert "(e.g. '1.23457E+11')" in rounded
    clean = _warnings(tmp_path, _lines(tmp_path, amounts))
    assert not [w for w in clean if "merge into" in w or "rounded number" in w]
