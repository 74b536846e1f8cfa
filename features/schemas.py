"""pandera schemas of the frames that cross tiercast's boundaries.

* :data:`TRANSACTIONS` — the canonical transaction frame that the ingestion accepts and every feature builder reads:
  ``customer_id`` (str), ``timestamp`` (naive datetime64), ``amount`` (float64, negative = refund/return), ``order_id``
  (str), plus optional ``quantity`` (float64), ``product_id``, ``category``, ``channel`` (str, may be missing) — present
  only when the source maps them. No other column.
* :data:`SATISFACTION` — customer-level satisfaction rows (from reviews): ``customer_id``, ``timestamp``,
  ``review_score`` (int64, 1..5), ``is_complaint`` (bool).

Ids are non-empty strings without surrounding blanks. Timestamps are naive (local time of the configured zone; the
reader produces ``datetime64[us]``; any naive unit passes). Checks are vectorised: validate a whole frame once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from tiercast.features.contract import (
    AMOUNT,
    CATEGORY,
    CHANNEL,
    CUSTOMER_ID,
    IS_COMPLAINT,
    ORDER_ID,
    PRODUCT_ID,
    QUANTITY,
    REVIEW_SCORE,
    TIMESTAMP,
)


def _string_dtype(s: pd.Series) -> bool:
    """Series-level: the column holds strings (str / string dtype, or object of str)."""
    if isinstance(s.dtype, pd.StringDtype):
        return True
    return s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty")


def _ident_checks() -> list[pa.Check]:
    return [
        pa.Check(_string_dtype, element_wise=False, error="holds strings"),
        pa.Check(lambda s: s.str.len() > 0, error="non-empty"),
        pa.Check(lambda s: s.str.strip() == s, error="no leading/trailing blanks"),
    ]


def _finite() -> pa.Check:
    return pa.Check(lambda s: s.abs() < np.inf, error="finite")


def _optional_text(name: str) -> pa.Column:
    return pa.Column(
        str,
        checks=[pa.Check(_string_dtype, element_wise=False, error="holds strings")],
        nullable=True,
        required=False,
        name=name,
    )


TRANSACTIONS = pa.DataFrameSchema(
    columns={
        CUSTOMER_ID: pa.Column(str, checks=_ident_checks(), nullable=False),
        TIMESTAMP: pa.Column(pa.DateTime, nullable=False),
        AMOUNT: pa.Column("float64", checks=[_finite()], nullable=False),
        ORDER_ID: pa.Column(str, checks=_ident_checks(), nullable=False),
        QUANTITY: pa.Column("float64", checks=[_finite()], nullable=False, required=False),
        PRODUCT_ID: _optional_text(PRODUCT_ID),
        CATEGORY: _optional_text(CATEGORY),
        CHANNEL: _optional_text(CHANNEL),
    },
    strict=True,
    name="transactions",
    description="Canonical transaction lines (one row per purchase line; negative amount = refund/return).",
)

SATISFACTION = pa.DataFrameSchema(
    columns={
        CUSTOMER_ID: pa.Column(str, checks=_ident_checks(), nullable=False),
        TIMESTAMP: pa.Column(pa.DateTime, nullable=False),
        REVIEW_SCORE: pa.Column("int64", checks=[pa.Check.in_range(1, 5)], nullable=False),
        IS_COMPLAINT: pa.Column(bool, nullable=False),
    },
    strict=True,
    name="satisfaction",
    description="Customer-level satisfaction rows (one per review), timestamped when the score became known.",
)


def validate_transactions(df: pd.DataFrame, *, lazy: bool = True) -> pd.DataFrame:
    """Validate a canonical transaction frame; raises ``pandera.errors.SchemaErrors`` (lazy) or ``SchemaError``."""
    return TRANSACTIONS.validate(df, lazy=lazy)


def validate_satisfaction(df: pd.DataFrame, *, lazy: bool = True) -> pd.DataFrame:
    """Validate a satisfaction frame; raises like :func:`validate_transactions`."""
    return SATISFACTION.validate(df, lazy=lazy)
