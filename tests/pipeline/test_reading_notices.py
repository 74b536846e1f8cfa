"""A share of rows quarantined for a reason that says a column is read with the wrong setting (amounts with decimal
commas read with a dot, a time format that fits only some rows) gets a warning even below max_quarantine_share;
stray bad values and data facts (missing customers) do not."""

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
