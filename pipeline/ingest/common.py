"""Names shared by the ingestion modules: the quarantine reasons, the number bound and the input error."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from tiercast.features.contract import TIMESTAMP

if TYPE_CHECKING:
    from tiercast.pipeline.ingest.rules import IngestResult
    from tiercast.pipeline.ingest.sql import EngineIngest

#: Quarantine reasons of transaction lines, in the order the rules are applied (a row gets the first that fails).
REASONS: tuple[str, ...] = (
    "unknown_order",
    "canceled_order",
    "missing_customer",
    "ambiguous_timestamp",
    "unparseable_timestamp",
    "non_numeric_amount",
    "missing_order_id",
    "non_product_code",
    "zero_price",
    "future_timestamp",
    "duplicate",
    "schema",
)

#: Customer ids that stand for no customer in shop and POS exports (compared in lower case, trimmed): WooCommerce's
#: ``customer_id`` is 0 for a guest checkout, tills write -1 or 'guest' for a walk-in sale. Read as ids, they make one
#: huge customer.
PLACEHOLDER_CUSTOMER_IDS: tuple[str, ...] = ("0", "-1", "guest", "guests", "anonymous", "walkin", "walk-in", "unknown")

#: Quarantine reasons of review rows (Olist satisfaction), in rule order.
SATISFACTION_REASONS: tuple[str, ...] = (
    "unknown_order",
    "missing_customer",
    "ambiguous_timestamp",
    "unparseable_timestamp",
    "invalid_score",
    "future_timestamp",
    "duplicate",
    "schema",
)

#: Amounts, quantities and prices at or beyond this magnitude are ``non_numeric_amount``: money is summed exactly
#: as DECIMAL(38, 6) (:mod:`tiercast.features.rfm`), which holds sums of up to 1e8 such lines.
MAX_ABS_NUMBER = 1e24
#: What a number written as text may look like, for every engine (pandas, DuckDB, Spark): an optional sign, digits
#: with at most one decimal point, an optional exponent. Nothing else (no inner blanks, no "inf" or "nan" text).
NUMBER_PATTERN = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"
#: Float identifiers of smaller magnitude that are whole numbers are written as integers ('13085', not '13085.0'):
#: 2**63, the bound of a 64-bit integer. One bound for every engine, so that DuckDB, Spark and pandas write the
#: same text for the same id.
INTEGRAL_ID_LIMIT = float(2**63)

#: A text timestamp starting with a date of two numbers of one or two digits before the year (01/12/2009,
#: 1.12.09, 01-12-2009 10:00): day-first or month-first cannot be told from one value, nor safely guessed from a
#: sample (a sorted file starts with days below 13). Without ``timestamp_format`` such values are quarantined as
#: ``ambiguous_timestamp``, never guessed. A full-match pattern Python, RE2 (DuckDB) and Java (Spark) read alike.
DAY_MONTH_PATTERN = r"[0-9]{1,2}[./-][0-9]{1,2}[./-]([0-9]{2}|[0-9]{4})([^0-9].*)?"

#: The parsed-rows column (every engine) that is TRUE where a text timestamp is such a day-month date and no
#: ``timestamp_format`` is set.
AMBIGUOUS = "_ts_ambiguous"


def number_pattern(decimal: str) -> str:
    """:data:`NUMBER_PATTERN` with the configured decimal mark: with ',' a '.' makes the text no number (no
    thousands separator is guessed: '12.345' may be 12345 or 12.345)."""
    return NUMBER_PATTERN if decimal == "." else NUMBER_PATTERN.replace("\\.", ",")


class InputError(Exception):
    """A source that cannot be read as configured; the message is one line naming the file and the problem.

    ``result`` holds the :class:`IngestResult` when the rows were read but too many were quarantined, so a caller
    may still write the quarantine for diagnosis.
    """

    def __init__(self, message: str, *, result: IngestResult | None = None) -> None:
        super().__init__(" ".join(str(message).split()))
        self.result = result


def check_share(
    counts: dict[str, int],
    n_read: int,
    where: str,
    max_share: float,
    result: IngestResult | EngineIngest,
    *,
    section: str = "transactions",
    reviews: bool = False,
) -> None:
    """Raise :class:`InputError` (holding ``result``) when the quarantined share is above ``max_share``; the hint
    for the top reason names the settings of the config ``section`` the rows were read with (``olist``...); for an
    Olist source's ``reviews``, their own time format."""
    if not n_read:
        return
    share = sum(counts.values()) / n_read
    if share > max_share:
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]  # stable: ties in rule order
        reasons = ", ".join(f"{r} {c:,}" for r, c in top)
        hint = reason_hint(top[0][0], section, reviews=reviews) if top else None
        raise InputError(
            f"{where}: {share:.1%} of {n_read:,} rows quarantined, above max_quarantine_share {max_share:.1%} "
            f"(top reasons: {reasons}){f'; {hint}' if hint else ''}",
            result=result,
        )
    for reason in READING_REASONS:
        n = counts.get(reason, 0)
        if n >= max(READING_NOTICE_SHARE * n_read, READING_NOTICE_ROWS):
            hint = reason_hint(reason, section, reviews=reviews)
            warnings.warn(
                f"{where}: {n:,} of {n_read:,} rows ({n / n_read:.1%}) quarantined as {reason}, below "
                f"max_quarantine_share but more than stray bad values: is the column read as it is written? {hint}",
                stacklevel=2,
            )


#: Reasons that, on more than a stray row, say a column is read with the wrong setting (a decimal comma read as a
#: dot, a time format that fits a third of the rows) rather than that the data is bad: a share of them under
#: ``max_quarantine_share`` still gets a warning, which ``--quiet`` keeps (half of the amounts of a file mixing
#: decimal commas and dots were quarantined, and the model trained, without a word).
READING_REASONS: tuple[str, ...] = ("non_numeric_amount", "unparseable_timestamp", "ambiguous_timestamp")
READING_NOTICE_SHARE = 0.01
#: ... and on at least this many rows: one bad value of three is a stray one.
READING_NOTICE_ROWS = 10


#: What to check or set when most quarantined rows share one reason (a setting of the source, not bad data).
REASON_HINTS: dict[str, str] = {
    "duplicate": "if identical lines are real purchases (a till writing one line per scanned unit), set "
    "transactions.duplicates: keep",
    "missing_customer": "is the customer id filled on every line (some exports fill it on an order's first line only)?",
    "zero_price": "to keep free or zero-quantity lines, set transactions.zero_amounts: keep",
    "ambiguous_timestamp": "set transactions.timestamp_format (e.g. '%d/%m/%Y %H:%M'; `tiercast init` sniffs it)",
    "unparseable_timestamp": "check transactions.timestamp_format and the timestamp column (`tiercast init` sniffs "
    "them)",
    "non_numeric_amount": "check transactions.decimal and the amount column (thousands marks or currency signs?)",
    "future_timestamp": "set data.run_date (or --run-date) to the day the file was exported",
}


#: The timestamp hints of an Olist source, whose settings `tiercast init` does not write: the orders' times, and the
#: reviews' two time columns (read with their own format).
OLIST_HINTS: dict[str, str] = {
    "ambiguous_timestamp": "set olist.timestamp_format (e.g. '%d/%m/%Y %H:%M')",
    "unparseable_timestamp": "check olist.timestamp_format and the orders' timestamp column (olist.timestamp)",
}
REVIEW_HINTS: dict[str, str] = {
    "ambiguous_timestamp": "set olist.reviews_timestamp_format (e.g. '%d/%m/%Y %H:%M')",
    "unparseable_timestamp": "check olist.reviews_timestamp_format and the columns review_answer_timestamp and "
    "review_creation_date",
}


def reason_hint(reason: str, section: str, *, reviews: bool = False) -> str:
    """The hint for ``reason`` naming the settings of the config ``section``: an Olist source's own timestamp hints
    (:data:`OLIST_HINTS`, :data:`REVIEW_HINTS` for its ``reviews``), else :data:`REASON_HINTS`."""
    if reviews:
        return REVIEW_HINTS.get(reason, "")
    if section == "olist" and reason in OLIST_HINTS:
        return OLIST_HINTS[reason]
    return REASON_HINTS.get(reason, "").replace("transactions.", f"{section}.")


class ReasonTally:
    """Accounting shared by every ingestion result: ``n_read`` rows, ``reasons`` rows set aside per reason, and
    accepted + set aside == read."""

    n_read: int
    reasons: Mapping[str, int]

    @property
    def n_quarantined(self) -> int:
        return sum(self.reasons.values())

    @property
    def n_accepted(self) -> int:
        return self.n_read - self.n_quarantined

    @property
    def quarantine_share(self) -> float:
        return self.n_quarantined / self.n_read if self.n_read else 0.0

    def reason_counts(self) -> dict[str, int]:
        """Rows set aside per reason."""
        return dict(self.reasons)


class _ReadSource(Protocol):
    n_read: int
    where: str


class SourceTally(ReasonTally):
    """A :class:`ReasonTally` of an engine's ingestion: rows read and the source's name come from the source as
    read (``raw``), on DuckDB and on Spark alike."""

    raw: _ReadSource

    @property
    def n_read(self) -> int:
        return self.raw.n_read

    @property
    def source(self) -> str:
        return self.raw.where


def unparseable_column(where: str, column: str, kind: str, fmt: str | None, n_rows: int, examples: list[str]) -> str:
    """The error for a column where no row parses: a wrong mapping or format, not bad rows."""
    how = f" with format {fmt!r}" if fmt else ""
    advice = ""
    if kind == TIMESTAMP:
        advice = (
            "; set timestamp_format in the data source to the strptime format of these values, e.g. '%d/%m/%Y %H:%M'"
        )
        if not fmt:
            advice += " (day-month dates such as 01/12/2009 are never guessed)"
    return (
        f"{where}: no value of column {column!r} parses as a {kind}{how} ({n_rows:,} rows; "
        f"e.g. {', '.join(examples)}){advice}"
    )
