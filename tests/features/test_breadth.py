"""Product breadth counted two ways gives the same exact numbers: categories and channels as bits (few values)
and as distinct counts (more values than the bits hold, or on Spark), worked out by hand on a small fixture."""

from __future__ import annotations

import ibis
import pandas as pd
import pytest

from tiercast.features import breadth as breadth_module
from tiercast.features.breadth import MAX_BITS, breadth, few_values
from tiercast.features.contract import AMOUNT, CATEGORY, CHANNEL, CUSTOMER_ID, PRODUCT_ID

# fmt: off
ROWS = [
    # customer, amount, product, category, channel
    ("A", 10.0, "p1", "k1", "web"),
    ("A", 5.0, "p1", "k2", "web"),     # the same product again, a second category
    ("A", 7.0, "p2", None, "app"),     # a missing category sets no bit
    ("A", -3.0, "p9", "k9", "store"),  # a refund line: not bought
    ("B", 0.0, "p1", "k1", "web"),     # amount 0: not bought -> no row
    ("C", 1.0, None, "k3", None),      # missing product and channel
    ("C", 2.0, "p3", "k3", "store"),
]
# fmt: on
#: customer -> (products, categories, channels), counted by hand
EXPECTED = {"A": (2.0, 2.0, 2.0), "C": (1.0, 1.0, 1.0)}


def _lines(rows: list[tuple]) -> ibis.Table:
    frame = pd.DataFrame(rows, columns=[CUSTOMER_ID, AMOUNT, PRODUCT_ID, CATEGORY, CHANNEL])
    return ibis.memtable(frame)


def _counts(lines: ibis.Table) -> dict[str, tuple[float, ...]]:
    out = breadth(lines).to_pyarrow().to_pandas().sort_values(CUSTOMER_ID)
    return {row[0]: tuple(row[1:]) for row in out.itertuples(index=False)}


def test_few_values_as_bits_match_the_hand_count() -> None:
    lines = _lines(ROWS)
    assert few_values(lines, CATEGORY) == ["k1", "k2", "k3", "k9"]
    assert _counts(lines) == EXPECTED


def test_distinct_counts_when_bits_are_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(breadth_module, "_on_duckdb", lambda lines: False)  # the Spark path
    assert _counts(_lines(ROWS)) == EXPECTED


@pytest.mark.parametrize("n_values", [MAX_BITS, MAX_BITS + 1])
def test_many_categories_counted_exactly(n_values: int) -> None:
    # customer D buys every category once, E three of them twice; beyond MAX_BITS the distinct count takes over
    rows = [("D", 1.0, "p1", f"k{i:04d}", "web") for i in range(n_values)]
    rows += [("E", 1.0, "p1", f"k{i:04d}", "web") for i in (0, 63, n_values - 1) for _ in range(2)]
    lines = _lines(rows)
    assert (few_values(lines, CATEGORY) is None) == (n_values > MAX_BITS)
    assert _counts(lines) == {"D": (1.0, float(n_values), 1.0), "E": (1.0, 3.0, 1.0)}
