"""Source definitions: where transactions live and how their columns map to tiercast's transaction shape.

These pydantic models are the ``data:`` section of a tiercast config. They are frozen and forbid unknown keys, so a
typo in a column mapping is a config error rather than a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnMapping(_Frozen):
    """Source column names for each canonical transaction field.

    Either ``amount`` names a column of line/order value, or ``quantity`` and ``unit_price`` are both given and the
    amount is their product.
    """

    customer_id: str
    timestamp: str
    amount: str | None = None
    quantity: str | None = None
    unit_price: str | None = None
    order_id: str | None = None
    product_id: str | None = None
    category: str | None = None
    channel: str | None = None

    @model_validator(mode="after")
    def _amount_is_defined(self) -> ColumnMapping:
        if self.amount is None and (self.quantity is None or self.unit_price is None):
            raise ValueError("columns: give `amount`, or both `quantity` and `unit_price`")
        return self


class TransactionSource(_Frozen):
    """One transaction file (CSV or Parquet) and its column mapping."""

    path: Path
    format: Literal["auto", "csv", "parquet"] = "auto"
    delimiter: str = ","
    columns: ColumnMapping
    timestamp_format: str | None = None
    timezone: str | None = Field(
        default=None, description="Time zone of naive timestamps; timestamps are kept as naive local times."
    )
    non_product_codes: tuple[str, ...] = Field(
        default=(), description="product_id values that are not purchases (postage, fees, bank charges...)."
    )


class DataConfig(_Frozen):
    """The ``data:`` section: the transaction source and row-level quality rules."""

    transactions: TransactionSource
    max_quarantine_share: float = Field(default=0.5, ge=0.0, le=1.0)
    quarantine_path: Path = Path("outputs/quarantine.parquet")
