"""Checks ``tiercast init`` runs on a file's first rows beyond the column mapping (see :mod:`.starter`): columns the
config cannot use but whose content changes the totals (a currency, refunds), thousands marks read as decimals,
customers filled on an order's first line only, lines repeated within an order, and a title line above the header.
"""

from __future__ import annotations

import csv
import re
import shlex

import pandas as pd

from tiercast.features.contract import AMOUNT, CUSTOMER_ID, ORDER_ID, QUANTITY, TIMESTAMP
from tiercast.pipeline.ingest.parsing import parse_timestamps
from tiercast.pipeline.starter_names import (
    CURRENCY_COLUMN_PATTERN,
    LOOSE_NUMBER,
    REFUND_COLUMN_PATTERN,
    UNIT_PRICE,
    norm_name,
)

#: A number whose every '.' is followed by exactly three digits and that does not start with 0 ('1.437',
#: '1.234.567'): with the decimal point '.', a thousands mark read as a decimal point.
_DOT_GROUPED = r"[+-]?[1-9][0-9]{0,2}(\.[0-9]{3})+"
#: A date with its parts separated by '-', '/' or '.' ('2023-01-02', '02/01/2023 10:00').
_DATE_LIKE = r".*[0-9]{1,4}[-/.][0-9]{1,2}[-/.][0-9]{1,4}.*"
#: Most values looking like this is enough to name a column as an example.
_EXAMPLE_SHARE = 0.9


def _texts(values: pd.Series) -> pd.Series:
    """The stripped non-empty texts of a column."""
    text = values[values.notna()].astype("str").str.strip()
    return text[text != ""]


def number_texts(frame: pd.DataFrame, mapping: dict[str, str]) -> dict[str, pd.Series]:
    """The stripped texts of the mapped number columns read as text (column -> values)."""
    out = {}
    for name in (AMOUNT, QUANTITY, UNIT_PRICE):
        values = frame[mapping[name]] if name in mapping else None
        if values is not None and (values.dtype == object or pd.api.types.is_string_dtype(values.dtype)):
            out[mapping[name]] = values.astype("str").str.strip()
    return out


def dotted_thousands_notes(frame: pd.DataFrame, mapping: dict[str, str], decimal: str) -> list[str]:
    """Notes on mapped number columns whose dotted values all have three digits after each '.' ('1.437') beside
    plain integers ('874') or several dots ('1.234.567'): '.' marks thousands there, and with the decimal point '.'
    those values would be read 1000 times too small (or quarantined, with several dots)."""
    if decimal != ".":
        return []
    notes = []
    for column, text in number_texts(frame, mapping).items():
        text = text[text != ""]
        dotted = text[text.str.contains(".", regex=False)]
        if dotted.empty or not dotted.str.fullmatch(_DOT_GROUPED).all():
            continue
        several = dotted[dotted.str.count(r"\.") > 1]
        if several.empty and not text.str.fullmatch(r"[+-]?[0-9]+").any():
            continue  # every value with three decimals: a currency written to the thousandth
        one = dotted[dotted.str.count(r"\.") == 1]
        read = f"{one.iloc[0]!r} as {float(one.iloc[0]):g}, not {one.iloc[0].replace('.', '')}" if len(one) else ""
        notes.append(
            f"{len(dotted):,} of the first {len(text):,} values of column {column!r} have '.' followed by exactly "
            f"three digits (e.g. {dotted.iloc[0]!r}) beside numbers without a '.', as if '.' marked thousands: "
            + (f"they would be read as decimals ({read})" if read else "")
            + (" and " if read and len(several) else "")
            + (f"{len(several):,} with several marks quarantined as non_numeric_amount" if len(several) else "")
            + "; if '.' marks thousands, export the column without thousands marks"
        )
    return notes


def currency_notes(frame: pd.DataFrame, taken: set[str]) -> list[str]:
    """Notes on unmapped columns named like a currency ('currency', 'Currency Code') holding several currencies:
    tiercast adds every amount as one currency, so amounts in yen and in euros would be summed as one."""
    notes = []
    for column in map(str, frame.columns):
        if column in taken or not re.fullmatch(CURRENCY_COLUMN_PATTERN, norm_name(column)):
            continue
        text = _texts(frame[column])
        if text.str.fullmatch(LOOSE_NUMBER).any():
            continue  # an exchange rate or an amount, not a currency name
        counts = text.value_counts()
        if len(counts) < 2:
            continue
        shown = ", ".join(f"{value!r} on {n:,} row{'s' * (n != 1)}" for value, n in counts.head(6).items())
        notes.append(
            f"column {column!r} holds {len(counts)} currencies in the first {len(frame):,} rows ({shown}"
            + (", ..." if len(counts) > 6 else "")
            + "): tiercast adds every amount as one currency; convert the amounts to one currency first, or split "
            "the file per currency (a config for each)"
        )
    return notes


def refund_notes(frame: pd.DataFrame, taken: set[str]) -> list[str]:
    """Notes on unmapped columns named like refunds ('Refunded Amount') with non-zero values: no config key reads
    them, as a refund counts only as a line with a negative amount, so net spend would be overstated."""
    notes = []
    for column in map(str, frame.columns):
        if column in taken or not re.search(REFUND_COLUMN_PATTERN, norm_name(column)):
            continue
        text = _texts(frame[column])
        text = text[text.str.fullmatch(r"\D{0,4}" + LOOSE_NUMBER + r"\D{0,4}")]
        value = pd.to_numeric(text.str.replace(r"[^0-9.+-]", "", regex=True), errors="coerce")
        refunds = text[value.notna() & (value != 0)]
        if refunds.empty:
            continue
        notes.append(
            f"column {column!r} is not mapped: its refunds ({len(refunds):,} of the first {len(frame):,} rows, e.g. "
            f"{refunds.iloc[0]!r}) are not counted, so net spend is overstated; tiercast counts a refund only as a "
            "line with a negative amount: add the refunds to the export as negative amount lines"
        )
    return notes


def first_line_customers(frame: pd.DataFrame, mapping: dict[str, str]) -> str | None:
    """A note when the customer column is empty on lines whose order has a customer on another line (Shopify fills
    'Email' on an order's first line only): those lines would be quarantined as missing_customer."""
    if not {CUSTOMER_ID, ORDER_ID} <= mapping.keys():
        return None
    customer, raw = frame[mapping[CUSTOMER_ID]], frame[mapping[ORDER_ID]]
    order = raw.astype("str").str.strip()
    filled = customer.notna() & (customer.astype("str").str.strip() != "")
    ordered = raw.notna() & (order != "")
    gaps = ~filled & ordered & order.isin(order[filled & ordered])
    if not gaps.any():
        return None
    return (
        f"column {mapping[CUSTOMER_ID]!r} is empty on {int(gaps.sum()):,} of the first {len(frame):,} rows whose "
        f"order ({mapping[ORDER_ID]!r}) has a customer on another line (the customer on an order's first line "
        "only): those lines would be quarantined as missing_customer; fill the customer on every line of the export"
    )


def repeated_lines(frame: pd.DataFrame, mapping: dict[str, str]) -> str | None:
    """A note when lines of an order repeat another line exactly: the default ``duplicates: quarantine`` sets the
    copies aside, right for an export that repeats lines, wrong for a till writing one line per scanned unit."""
    if ORDER_ID not in mapping:
        return None  # init keeps identical lines then (duplicates: keep)
    copies = frame.duplicated(keep="first")
    if not copies.any():
        return None
    return (
        f"{int(copies.sum()):,} of the first {len(frame):,} rows repeat another line exactly (e.g. order "
        f"{str(frame.loc[copies, mapping[ORDER_ID]].iloc[0])!r}): they would be quarantined as duplicate; if they are "
        "real purchases (a till writing one line per scanned unit), set duplicates: keep"
    )


def extra_notes(frame: pd.DataFrame, mapping: dict[str, str], decimal: str) -> list[str]:
    """The notes of this module for a mapped sample, in the order init prints them."""
    taken = set(mapping.values())
    notes = dotted_thousands_notes(frame, mapping, decimal)
    notes += [note for note in (first_line_customers(frame, mapping), repeated_lines(frame, mapping)) if note]
    return notes + currency_notes(frame, taken) + refund_notes(frame, taken)


def reader_reads_timestamps(text: pd.Series) -> bool:
    """Whether the reader, without ``timestamp_format``, parses every one of the distinct timestamp texts (mixed
    ISO-like and spelled-out forms are guessed per value; day-month dates and short integers never are)."""
    return bool(parse_timestamps(text.reset_index(drop=True), None, None).notna().all())


def title_line(head: list[str]) -> str | None:
    """A message when the first line looks like a title above the header ('Orders report generated 2023-07-01'):
    it has no delimiter while the next lines split alike into three or more columns, named on the first of them.
    No reading key skips lines, so the user deletes it."""
    rows = head[1:6]
    if len(rows) < 2:
        return None
    for delimiter in (",", ";", "\t", "|"):
        if delimiter in head[0]:
            continue
        widths = {len(r) for r in csv.reader(rows, delimiter=delimiter)}
        header = next(csv.reader(rows[:1], delimiter=delimiter))
        if len(widths) == 1 and len(header) >= 3 and all(re.search("[A-Za-z]", c) for c in header):
            return (
                f"line 1 ({head[0][:60]!r}) looks like a title above the header (line 2: {head[1][:60]!r}); "
                "delete the lines above the header and run init again"
            )
    return None


def example_column(frame: pd.DataFrame, field: str, free: list[str]) -> str:
    """An example ``--column FIELD=COLUMN`` for a field init could not place: for the amount a column of numbers,
    for the timestamp one of dates, when there is one (else the first free column); quoted for the shell."""
    pattern = {AMOUNT: LOOSE_NUMBER, TIMESTAMP: _DATE_LIKE}.get(field)
    fits = [
        c
        for c in free
        if pattern is not None
        and len(text := _texts(frame[c]))
        and text.str.fullmatch(pattern).mean() >= _EXAMPLE_SHARE
    ]
    return shlex.quote(f"{field}={(fits or free)[0]}")
