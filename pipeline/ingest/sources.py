"""Source definitions: where transactions live and how their columns map to tiercast's transaction shape.

These pydantic models are the ``data:`` section of a tiercast config. They are frozen and forbid unknown keys, so a
typo in a column mapping is a config error rather than a silently ignored setting.

Two kinds of source:

* ``data.transactions`` (:class:`TransactionSource`): one table of transaction lines — a CSV / whitespace-separated
  text file, a Parquet file, or a table or query in a DuckDB database — with a :class:`ColumnMapping`.
* ``data.olist`` (:class:`OlistSource`): the multi-table Olist layout (orders, order items, customers, optionally
  reviews and products), joined by :mod:`tiercast.pipeline.ingest.transactions` to one transaction line per order item,
  plus a customer-level satisfaction frame from the reviews.

Exactly one of the two is given. Reading, the row rules and the quarantine are in
:mod:`tiercast.pipeline.ingest.transactions`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tiercast.pipeline.ingest.paths import (
    NO_FILES,
    files_format,
    is_pattern,
    source_files,
    spreadsheet_advice,
    suffix_format,
)

#: Cell values (after stripping blanks) read as "missing" in text sources, for every mapped column.
DEFAULT_NA_VALUES: tuple[str, ...] = ("", "NA", "N/A", "NaN", "nan", "NULL", "null", "None", "none", "NaT")

#: ``delimiter`` value for runs of spaces / tabs (e.g. CDNOW's ``CDNOW_master.txt``).
WHITESPACE = "whitespace"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_delimiter(v: str) -> str:
    if v == WHITESPACE or len(v) == 1:
        return v
    if v in ("\\t", "tab"):
        return "\t"
    raise ValueError(f"delimiter must be one character or {WHITESPACE!r}, got {v!r}")


def _check_timezone(v: str | None) -> str | None:
    if v is None:
        return v
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {v!r} (use an IANA name such as 'Europe/London')") from None
    return v


class ColumnMapping(_Frozen):
    """Source column names for each canonical transaction field.

    Either ``amount`` names a column of line/order value, or ``quantity`` and ``unit_price`` are both given and the
    amount is their product. ``quantity`` may also be given beside ``amount`` (it is then carried, not multiplied).
    Without ``order_id``, lines of one customer at one timestamp are taken to be one order. A source column maps
    to one field at most.
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
        if self.amount is not None and self.unit_price is not None:
            raise ValueError("columns: give `amount` or `unit_price` (with `quantity`), not both")
        fields: dict[str, list[str]] = {}
        for name, column in self.source_columns().items():
            fields.setdefault(column, []).append(name)
        shared = {c: names for c, names in fields.items() if len(names) > 1}
        if shared:
            column, names = next(iter(shared.items()))
            raise ValueError(
                f"source column {column!r} is mapped to {len(names)} fields ({', '.join(names)}); map each "
                "field to its own column"
            )
        return self

    def source_columns(self) -> dict[str, str]:
        """Canonical field -> source column, for the mapped fields only."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class _RowRules(_Frozen):
    """Row rules and text parsing shared by every source kind."""

    timestamp_format: str | None = Field(
        default=None,
        description="strptime format of text timestamps (e.g. '%Y%m%d'); None: ISO 8601 or guessed from the data "
        "(set it for day-first dates such as 01/02/2010: a guess cannot tell them apart when no day is above 12).",
    )
    timezone: str | None = Field(
        default=None,
        description="IANA zone of the data. Naive timestamps are taken to be in it; tz-aware ones are converted "
        "to it; all are kept as naive local times. None: naive kept as is, tz-aware converted to UTC.",
    )
    na_values: tuple[str, ...] = Field(
        default=DEFAULT_NA_VALUES, description="Text cell values (after stripping) that mean 'missing'."
    )
    decimal: Literal[".", ","] = Field(default=".", description="Decimal mark of numbers in text sources.")
    duplicates: Literal["quarantine", "keep"] = Field(
        default="quarantine",
        description="Exact duplicate source lines: quarantine the 2nd and later copies, or keep them (sources "
        "without a line id, such as CDNOW, where identical lines are separate purchases).",
    )
    zero_amounts: Literal["quarantine", "keep"] = Field(
        default="quarantine",
        description="Lines with unit price <= 0 or amount == 0 (reason `zero_price`): quarantine or keep "
        "(CDNOW records free items as 0.00 purchases).",
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return _check_timezone(v)


class TransactionSource(_RowRules):
    """One table of transaction lines and its column mapping.

    ``format``: ``csv`` (any single-character ``delimiter``, or ``whitespace``; UTF-8 only), ``parquet``, or
    ``duckdb`` (``path`` is the database file, read-only; give ``table`` or ``query``), or ``postgres`` (``url`` is a
    ``postgresql://`` URL instead of a path; give ``table`` or ``query``). ``auto`` picks from the file suffix
    (.csv/.txt/.tsv/.dat, .parquet/.pq, .duckdb/.ddb/.db). A text file may be gzip-compressed, named ``.gz``
    (``orders.csv.gz``).
    """

    path: Path | None = None
    url: str | None = Field(default=None, description="postgres: postgresql://USER:PASSWORD@HOST:PORT/DATABASE.")
    format: Literal["auto", "csv", "parquet", "duckdb", "postgres"] = "auto"
    delimiter: str = Field(default=",", description="One character, or 'whitespace' for runs of spaces/tabs.")
    table: str | None = Field(
        default=None, description="DuckDB / PostgreSQL: table or view name (optionally schema.table)."
    )
    query: str | None = Field(default=None, description="DuckDB / PostgreSQL: a SELECT returning the source columns.")
    columns: ColumnMapping
    non_product_codes: tuple[str, ...] = Field(
        default=(), description="product_id values that are not purchases (postage, fees, bank charges...)."
    )

    @field_validator("delimiter")
    @classmethod
    def _delim(cls, v: str) -> str:
        return _check_delimiter(v)

    @model_validator(mode="after")
    def _format_fields(self) -> TransactionSource:
        if self.format == "postgres":
            if self.url is None or self.path is not None:
                raise ValueError("format postgres: give `url` (postgresql://...), not `path`")
            if not self.url.startswith(("postgresql://", "postgres://")):
                raise ValueError("format postgres: `url` must start with postgresql://")
        elif self.path is None or self.url is not None:
            raise ValueError("give the data file as `path` (`url` is for format postgres)")
        fmt = self.resolved_format()
        if self.several() and fmt not in ("csv", "parquet"):
            raise ValueError(f"{self.path}: a folder or pattern holds csv or parquet files, not {fmt}")
        if fmt in ("duckdb", "postgres"):
            if (self.table is None) == (self.query is None):
                raise ValueError(f"format {fmt}: give exactly one of `table` or `query`")
        elif self.table is not None or self.query is not None:
            raise ValueError(f"`table` / `query` only apply to format duckdb or postgres (format is {fmt})")
        if self.non_product_codes and self.columns.product_id is None:
            raise ValueError("non_product_codes needs columns.product_id")
        return self

    def resolved_format(self) -> Literal["csv", "parquet", "duckdb", "postgres"]:
        """The format, with ``auto`` resolved from the file suffix."""
        if self.format != "auto":
            return self.format
        assert self.path is not None  # every format but postgres has a path (validated)
        fmt = suffix_format(self.path)
        if fmt is None and self.several():
            fmt = files_format(self.path)
            if fmt is None:
                raise ValueError(f"{self.path}: {NO_FILES}")
        if fmt is None:
            raise ValueError(
                spreadsheet_advice(self.path)
                or f"cannot tell the format of {self.path} from its suffix; set format: csv | parquet | duckdb"
            )
        return fmt  # type: ignore[return-value]

    def several(self) -> bool:
        """Whether ``path`` names a folder or a glob pattern (files read as one source) rather than one file."""
        return self.path is not None and (is_pattern(self.path) or self.path.is_dir())

    def files(self) -> list[Path]:
        """The files to read (:func:`source_files`): ``[path]`` for one file."""
        assert self.path is not None
        return source_files(self.path)

    def describe(self) -> str:
        """Where the lines come from, for messages: the path (a PostgreSQL URL without its credentials), plus the
        table or 'query' for a database."""
        where = str(self.path) if self.url is None else re.sub(r"//[^@/]*@", "//", self.url)
        if self.table is not None:
            return f"{where}:{self.table}"
        if self.query is not None:
            return f"{where} (query)"
        return where


class OlistSource(_RowRules):
    """The Olist multi-table layout (CSV files), joined to one transaction line per order item.

    Canonical line: ``customer_id`` = the customer's ``customer_key`` column (``customer_unique_id``: Olist gives
    every order a fresh ``customer_id``), ``timestamp`` = the order's ``timestamp`` column, ``order_id``,
    ``product_id``, ``quantity`` = 1 (an item row is one unit), ``amount`` = ``price + freight_value`` (what the
    customer paid for the item; the payments table restates the same money per order, split by instalments and
    vouchers, so it is not read), ``category`` = the product's ``product_category_name`` when ``products`` is given.

    Items of orders whose status is in ``canceled_statuses`` are quarantined with reason ``canceled_order``
    (set ``canceled_statuses: []`` to keep them as purchases); items whose order is not in ``orders`` get
    ``unknown_order``. Orders without items produce no line and are counted in ``IngestResult.details``.

    ``reviews`` (optional) give the satisfaction frame: one row per review, ``timestamp`` =
    ``review_answer_timestamp`` (when the score became known; ``review_creation_date`` if that is missing),
    ``is_complaint`` = ``review_score <= complaint_max_score``. Their two time columns are read with
    ``reviews_timestamp_format`` (an export may write them unlike the orders' times), else ``timestamp_format``. A
    day-month date read without a format is never guessed: the review is quarantined as ``ambiguous_timestamp``,
    with a notice naming the column.
    """

    orders: Path
    order_items: Path
    customers: Path
    reviews: Path | None = None
    products: Path | None = None
    delimiter: str = ","
    customer_key: str = Field(default="customer_unique_id", description="Customer column of the customers table.")
    timestamp: str = Field(default="order_purchase_timestamp", description="Order timestamp column of orders.")
    canceled_statuses: tuple[str, ...] = ("canceled", "unavailable")
    complaint_max_score: int = Field(default=2, ge=1, le=5)
    timezone: str | None = "America/Sao_Paulo"
    reviews_timestamp_format: str | None = Field(
        default=None,
        description="strptime format of the reviews' review_answer_timestamp and review_creation_date; None: "
        "timestamp_format.",
    )

    @field_validator("delimiter")
    @classmethod
    def _delim(cls, v: str) -> str:
        return _check_delimiter(v)

    @model_validator(mode="after")
    def _reviews_format_needs_reviews(self) -> OlistSource:
        if self.reviews_timestamp_format is not None and self.reviews is None:
            raise ValueError(
                "reviews_timestamp_format is the format of the reviews' times, but no `reviews` file is given: "
                "give `reviews` or remove reviews_timestamp_format"
            )
        return self

    @property
    def reviews_format(self) -> str | None:
        """The strptime format the reviews' times are read with: ``reviews_timestamp_format``, else
        ``timestamp_format``."""
        return self.reviews_timestamp_format if self.reviews_timestamp_format is not None else self.timestamp_format

    def tables(self) -> dict[str, Path]:
        """Table name -> path, for the tables given."""
        out = {"orders": self.orders, "order_items": self.order_items, "customers": self.customers}
        if self.reviews is not None:
            out["reviews"] = self.reviews
        if self.products is not None:
            out["products"] = self.products
        return out

    def describe(self) -> str:
        return str(self.order_items)


class ReviewColumns(_Frozen):
    """Source column names of a reviews file: the customer, when the review was given, and its score (1 to 5)."""

    customer_id: str
    timestamp: str
    score: str


class ReviewSource(_Frozen):
    """Customer reviews, survey answers or rated complaints beside ``transactions`` (optional): one row per review,
    a score from 1 to 5, ``is_complaint`` = score <= ``complaint_max_score``. They give the satisfaction features,
    as the Olist layout's reviews do: each customer's scores and complaints before the cutoff. CSV (one-character
    ``delimiter``, also ``.gz``) or Parquet, times in the transactions' ``timezone``; rows that cannot be used are
    quarantined with a reason, beside the transactions' quarantine (``<quarantine>_satisfaction``)."""

    path: Path
    format: Literal["auto", "csv", "parquet"] = "auto"
    delimiter: str = Field(default=",", description="One character.")
    decimal: Literal[".", ","] = "."
    timestamp_format: str | None = None
    na_values: tuple[str, ...] = DEFAULT_NA_VALUES
    columns: ReviewColumns
    complaint_max_score: int = Field(default=2, ge=1, le=5)
    duplicates: Literal["quarantine", "keep"] = "quarantine"

    @field_validator("delimiter")
    @classmethod
    def _delim(cls, v: str) -> str:
        if v == WHITESPACE:
            raise ValueError("a reviews file takes a one-character delimiter")
        return _check_delimiter(v)

    def resolved_format(self) -> Literal["csv", "parquet"]:
        """The format, with ``auto`` resolved from the file suffix."""
        if self.format != "auto":
            return self.format
        fmt = suffix_format(self.path)
        if fmt not in ("csv", "parquet"):
            advice = spreadsheet_advice(self.path)
            unknown = f"cannot tell the format of {self.path} from its suffix; set format: csv | parquet"
            raise ValueError(advice or unknown)
        return fmt  # type: ignore[return-value]


class DataConfig(_Frozen):
    """The ``data:`` section: the source (``transactions`` or ``olist``) and the quarantine rules."""

    transactions: TransactionSource | None = None
    olist: OlistSource | None = None
    reviews: ReviewSource | None = None
    max_quarantine_share: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Fail the read when a larger share of the lines is quarantined."
    )
    quarantine_path: Path = Path("outputs/quarantine.parquet")
    run_date: dt.date | None = Field(
        default=None,
        description="Rows dated after this day are quarantined as future_timestamp (None: after the current time).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if (self.transactions is None) == (self.olist is None):
            raise ValueError("data: give exactly one of `transactions` or `olist`")
        if self.reviews is not None and self.transactions is None:
            raise ValueError("data.reviews goes with `transactions` (the olist layout reads olist.reviews)")
        if self.reviews is not None:
            self.reviews.resolved_format()  # an unknown suffix is a config error, not a failure at reading
        return self

    def input_files(self) -> dict[Path, str]:
        """Every file the section reads, with what it is: no output may replace one (an unlisted folder or pattern
        gives none)."""
        files: dict[Path, str] = {}
        if self.transactions is not None and self.transactions.path is not None:
            # no such folder or pattern yet: reading it fails with its own message
            with contextlib.suppress(OSError, ValueError):
                files.update(dict.fromkeys(self.transactions.files(), "the transactions file"))
        if self.olist is not None:
            tables = ("orders", "order_items", "customers", "reviews", "products")
            files.update({p: f"the olist {t} file" for t in tables if (p := getattr(self.olist, t)) is not None})
        if self.reviews is not None:
            files[self.reviews.path] = "the reviews file"
        return files

    @property
    def source(self) -> TransactionSource | OlistSource:
        """The configured source, whichever kind it is."""
        return self.transactions if self.transactions is not None else self.olist  # type: ignore[return-value]

    @property
    def timezone(self) -> str | None:
        """The zone the canonical (naive) timestamps are in."""
        return self.source.timezone
