"""``tiercast init``: a starter config for a transaction file, from a look at its first rows.

The file's format, delimiter, decimal mark and timestamp format are sniffed, and its columns are matched by name to
tiercast's transaction fields (customer id, timestamp, amount or quantity x unit price, order, product, category,
channel; an order number column named 'Name' only when its values read '#1001', as in Shopify exports); amounts
written with a currency symbol or thousands separators get a note. The config names the packaged ``default`` preset
as its base, so it has the horizon, tiers and playbook; the user checks the mapping and runs ``tiercast validate``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tiercast.features.contract import AMOUNT, CUSTOMER_ID, ORDER_ID, QUANTITY, TIMESTAMP
from tiercast.pipeline.config import Config, ConfigError, deep_merge, preset_path, read_yaml
from tiercast.pipeline.ingest.common import PLACEHOLDER_CUSTOMER_IDS, InputError
from tiercast.pipeline.ingest.parsing import grouped_number_pattern
from tiercast.pipeline.ingest.paths import spreadsheet_advice, suffix_format
from tiercast.pipeline.ingest.readers import header_names, numeric_dates_advice
from tiercast.pipeline.ingest.sources import WHITESPACE
from tiercast.pipeline.starter_files import SAMPLE_ROWS, first_file, head_lines
from tiercast.pipeline.starter_names import (
    CURRENCY_MARK,
    FIELD_NAMES,
    LOOSE_NUMBER,
    ORDER_NAME_COLUMNS,
    ORDER_NAME_PATTERN,
    TIMESTAMP_FORMATS,
    UNIT_PRICE,
    norm_name,
)
from tiercast.pipeline.starter_notes import (
    example_column,
    extra_notes,
    number_texts,
    reader_reads_timestamps,
    title_line,
)


@dataclass(frozen=True)
class Sniffed:
    """What was learnt from the file: the ``data.transactions`` mapping and notes for the user."""

    transactions: dict[str, Any]
    unmapped: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())


#: Leading bytes of packed files a transaction export may come as (an .xlsx workbook is a zip archive).
def read_sample(path: Path, fmt: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The first rows as a frame (text cells for text files) and the reading keys found (delimiter, decimal)."""
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        if path.stat().st_size == 0:
            raise ConfigError(f"{path}: file is empty (0 bytes)")
        try:
            batch = next(pq.ParquetFile(path).iter_batches(batch_size=SAMPLE_ROWS), None)
        except (pa.ArrowException, OSError) as exc:  # truncated, or another format under a .parquet name
            raise ConfigError(f"{path}: not a readable Parquet file ({exc})") from None
        if batch is None:
            raise ConfigError(f"{path}: no rows to look at")
        return batch.to_pandas(), {}
    if fmt == "duckdb":
        raise ConfigError(f"{path}: a DuckDB database; write data.transactions with `table:` or `query:` by hand")
    head = head_lines(path)
    if len(head) < 2:
        raise ConfigError(f"{path}: needs a header line and at least one data row")
    if (title := title_line(head)) is not None:
        raise ConfigError(f"{path}: {title}")
    counts = {d: head[0].count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    keys: dict[str, Any] = {}
    if counts[best] > 0:
        sep, keys["delimiter"] = best, best
    elif len(head[0].split()) > 1:
        sep, keys["delimiter"] = r"\s+", WHITESPACE
    else:
        raise ConfigError(f"{path}: cannot tell the delimiter from the header {head[0][:80]!r}")
    try:
        frame = pd.read_csv(
            path,
            sep=sep,
            dtype="str",
            nrows=SAMPLE_ROWS,
            keep_default_na=False,
            engine="python" if sep == r"\s+" else "c",
        )
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path}: not UTF-8 text; re-save it as UTF-8, and unpack it first if it is compressed"
        ) from None
    except pd.errors.ParserError as exc:
        raise ConfigError(f"{path}: {' '.join(str(exc).split())}") from None
    try:  # pandas numbers a repeated name ('amount.1'); ingestion refuses such a file, so init does too
        header_names(path, keys["delimiter"])
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    if _decimal_comma(frame, quoted=best == ","):
        keys["decimal"] = ","
    return frame, keys


def _decimal_comma(frame: pd.DataFrame, *, quoted: bool = False) -> bool:
    """Whether most values of a text column are numbers with a decimal comma: '12,50', '41,09 €' (a currency mark
    gets a note, see _currency_notes) or, with thousands marks, '1.161,52' (a note too, see _grouped_notes).

    ``quoted``: in a comma-delimited file, where such values are quoted ('"65,94"'), only a comma followed by one
    or two digits counts: '1,234' may be a thousands mark there."""
    pattern = r"-?\d+,\d{1,2}" if quoted else r"-?(\d+|\d{1,3}(\.\d{3})+),\d+"
    for _, values in frame.items():
        if len(values) and _without_currency(values).fillna(values).str.fullmatch(pattern).mean() > 0.5:
            return True
    return False


def _without_currency(text: pd.Series) -> pd.Series:
    """The number of each text written with a currency symbol or code ('€41.09', '41,09 €', 'USD 12'); NaN elsewhere."""
    marked = text.str.contains(CURRENCY_MARK, regex=True).fillna(False).astype(bool)
    bare = text.str.replace(CURRENCY_MARK, "", regex=True).str.replace(r"\s", "", regex=True)
    return bare.where(marked & bare.str.fullmatch(LOOSE_NUMBER).fillna(False).astype(bool))


def match_column(columns: list[str], taken: set[str], names: tuple[str, ...]) -> str | None:
    by_norm = {norm_name(c): c for c in columns if c not in taken}
    for n in names:
        if n in by_norm:
            return by_norm[n]
    for n in names:  # a longer column name containing the field's name (e.g. 'Customer ID (hashed)')
        hits = [c for norm, c in by_norm.items() if len(n) >= 4 and n in norm]
        if len(hits) == 1:
            return hits[0]
    return None


def timestamp_format_of(values: pd.Series) -> tuple[str | None, str | None]:
    """(timestamp_format or None for ISO 8601 / typed timestamps, a note when the choice is a guess)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return None, None
    text = values.astype("str").str.strip()
    text = pd.Series(pd.unique(text[text != ""])[:500], dtype="str")
    if text.empty:
        raise ConfigError("the timestamp column is empty in the first rows")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if (
            pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True).notna().all()
            and text.str.match(r"\d{4}-\d{2}-\d{2}").all()
        ):
            return None, None
        share = {f: pd.to_datetime(text, format=f, errors="coerce").notna().mean() for f in TIMESTAMP_FORMATS}
    first = max(TIMESTAMP_FORMATS, key=lambda f: share[f])  # the first of the best on a tie: day-first
    if share[first] < 1 and reader_reads_timestamps(text):  # mixed forms the reader guesses value by value
        return None, None
    if share[first] < 0.5:
        if (advice := numeric_dates_advice(list(text))) is not None:
            return None, f"the timestamps are numbers (e.g. {text.iloc[0]!r}): {advice}"
        return None, f"no known format parses the timestamps (e.g. {text.iloc[0]!r}): set timestamp_format"
    swapped = first.replace("%d", "%_").replace("%m", "%d").replace("%_", "%m")
    if "%d" in first and "%m" in first and share.get(swapped) == share[first]:
        return first, f"timestamps fit both {first!r} and {swapped!r} (no day above 12 seen): check timestamp_format"
    if share[first] < 1:
        bad = text[pd.to_datetime(text, format=first, errors="coerce").isna()]
        return (
            first,
            f"{len(bad)} of {len(text)} distinct timestamps do not parse with {first!r} (e.g. {bad.iloc[0]!r})",
        )
    return first, None


def _grouped_notes(frame: pd.DataFrame, mapping: dict[str, str], decimal: str) -> list[str]:
    """Notes on the mapped number columns written with thousands separators ('1,161.52'), which are not read."""
    notes = []
    for column, text in number_texts(frame, mapping).items():
        grouped = text[text.str.fullmatch(grouped_number_pattern(decimal)).fillna(False).astype(bool)]
        if len(grouped):
            notes.append(
                f"{len(grouped):,} of the first {len(text):,} values of column {column!r} have thousands "
                f"separators (e.g. {grouped.iloc[0]!r}), which are not read: those rows would be quarantined as "
                "non_numeric_amount; export the column without thousands separators"
            )
    return notes


def _currency_notes(frame: pd.DataFrame, mapping: dict[str, str], decimal: str) -> list[str]:
    """Notes on the mapped number columns written with a currency symbol ('€41.09', '$1,200.00'), which is not
    read (no setting strips it)."""
    notes = []
    for column, text in number_texts(frame, mapping).items():
        bare = _without_currency(text)
        marked = text[bare.notna()]
        if len(marked):
            grouped = bare.str.fullmatch(grouped_number_pattern(decimal)).fillna(False).astype(bool).any()
            notes.append(
                f"{len(marked):,} of the first {len(text):,} values of column {column!r} carry a currency symbol "
                f"(e.g. {marked.iloc[0]!r}), which is not read: those rows would be quarantined as "
                "non_numeric_amount; export the amounts without the currency symbol"
                + (" and without thousands separators" if grouped else "")
            )
    return notes


def _filled(values: pd.Series) -> pd.Series:
    return values.notna() & (values.astype("str").str.strip() != "")


def _line_amounts(frame: pd.DataFrame, mapping: dict[str, str]) -> str | None:
    """Drop the amount column for quantity x unit price when the amount is empty on lines whose quantity and unit
    price are filled (an order total on the first line of each order only, as in Shopify exports); a note."""
    if not {AMOUNT, QUANTITY, UNIT_PRICE} <= mapping.keys():
        return None
    gaps = ~_filled(frame[mapping[AMOUNT]]) & _filled(frame[mapping[QUANTITY]]) & _filled(frame[mapping[UNIT_PRICE]])
    if not gaps.any():
        return None
    total = mapping.pop(AMOUNT)
    return (
        f"column {total!r} is empty on {int(gaps.sum()):,} of the first {len(frame):,} rows (an order total on "
        f"the first line of each order only): amounts are {mapping[QUANTITY]!r} x {mapping[UNIT_PRICE]!r}, without "
        f"shipping, taxes and order discounts; for order totals pass --column amount={total!r} (the other lines of "
        "each order are then quarantined as non_numeric_amount)"
    )


def _order_name(frame: pd.DataFrame, taken: set[str]) -> str | None:
    """A column named like Shopify's 'Name' whose values are order numbers such as '#1001'."""
    for column in frame.columns:
        if str(column) in taken or norm_name(column) not in ORDER_NAME_COLUMNS:
            continue
        text = frame[column].astype("str").str.strip()
        text = text[text != ""]
        if len(text) and text.str.fullmatch(ORDER_NAME_PATTERN).mean() > 0.9:
            return str(column)
    return None


def _checked_overrides(path: Path, columns: list[str], overrides: dict[str, str]) -> dict[str, str]:
    """The ``--column`` pairs as a mapping, each naming a known field and a column of the file, once."""
    mapping: dict[str, str] = {}
    for name, col in overrides.items():
        if name not in FIELD_NAMES:
            raise ConfigError(f"--column {name}={col}: unknown field (one of {', '.join(FIELD_NAMES)})")
        if col not in columns:
            raise ConfigError(f"--column {name}={col}: {path} has no column {col!r}; columns: {columns}")
        if col in mapping.values():
            other = next(f for f, c in mapping.items() if c == col)
            raise ConfigError(
                f"--column {name}={col}: column {col!r} is already given to {other} (a column maps to one field)"
            )
        mapping[name] = col
    return mapping


def _guest_ids(frame: pd.DataFrame, mapping: dict[str, str], given: bool) -> str | None:
    """A note when the customer column holds a no-customer id on some sample rows (``PLACEHOLDER_CUSTOMER_IDS``:
    WooCommerce's 0 for guests), which would make those sales one customer. An unmapped e-mail column filled on
    those rows becomes the customer id instead (unless the customer column was ``given``): it tells guests apart."""
    col = mapping[CUSTOMER_ID]
    ids = frame[col].astype("str").str.strip().str.lower()
    guest = ids.isin(PLACEHOLDER_CUSTOMER_IDS).to_numpy()
    if not guest.any():
        return None
    value = frame[col].astype("str").str.strip()[guest].mode().iloc[0]
    seen = f"column {col!r} is {value!r} on {int(guest.sum())} of the first {len(frame)} rows"
    taken = set(mapping.values())
    emails = [
        c
        for c in map(str, frame.columns)
        if c not in taken and "email" in norm_name(c) and frame[c].astype("str").str.contains("@")[guest].mean() >= 0.9
    ]
    if emails and not given:
        mapping[CUSTOMER_ID] = emails[0]
        return (
            f"{seen} (guest checkouts, which would all be one customer): customers are told apart by {emails[0]!r} "
            f"instead; pass --column customer_id={col!r} to keep {col!r}"
        )
    return (
        f"{seen}, which looks like a placeholder for sales without a customer: those rows would all be one "
        "customer; map a column that tells them apart (--column customer_id=COLUMN) or leave them out of the export"
    )


def _all_empty(values: pd.Series) -> bool:
    return bool((values.isna() | (values.astype("str").str.strip() == "")).all())


def _map_columns(path: Path, frame: pd.DataFrame, overrides: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Field -> column for the file (the overrides, then by name and values), and notes on the choice."""
    columns = [str(c) for c in frame.columns]
    mapping = _checked_overrides(path, columns, overrides)
    for name, names in FIELD_NAMES.items():
        if name not in mapping and (col := match_column(columns, set(mapping.values()), names)) is not None:
            mapping[name] = col
    if ORDER_ID not in mapping and (col := _order_name(frame, set(mapping.values()))) is not None:
        mapping[ORDER_ID] = col
    notes = []
    if ORDER_ID in mapping and ORDER_ID not in overrides and _all_empty(frame[mapping[ORDER_ID]]):
        notes.append(  # mapped, every line would be quarantined as missing_order_id
            f"column {mapping.pop(ORDER_ID)!r} is empty in the first {len(frame):,} rows: not mapped as the order id; "
            "lines of one customer at one timestamp are taken to be one order"
        )
    if CUSTOMER_ID in mapping and (note := _guest_ids(frame, mapping, CUSTOMER_ID in overrides)) is not None:
        notes.append(note)
    if AMOUNT not in overrides and (note := _line_amounts(frame, mapping)) is not None:
        notes.append(note)
    if AMOUNT in mapping and UNIT_PRICE in mapping:
        del mapping[UNIT_PRICE]  # amount is the line value; unit_price only when there is no amount
    if AMOUNT not in mapping and not {QUANTITY, UNIT_PRICE} <= mapping.keys():
        mapping.pop(UNIT_PRICE, None)
    missing = [f for f in (CUSTOMER_ID, TIMESTAMP) if f not in mapping]
    if AMOUNT not in mapping and UNIT_PRICE not in mapping:
        missing.append(AMOUNT)
    if missing:
        free = [c for c in columns if c not in mapping.values()] or columns
        raise ConfigError(
            f"{path}: cannot tell which column is {' / '.join(missing)}; columns: {columns}; "
            f"name them with --column FIELD=COLUMN (e.g. --column {example_column(frame, missing[0], free)})"
        )
    return mapping, notes


def sniff(path: Path, overrides: dict[str, str] | None = None) -> Sniffed:
    """Look at the first rows of ``path`` and propose its ``data.transactions`` section.

    ``overrides`` (field -> column) fix fields the names do not reveal. Raises ConfigError when the customer id,
    the timestamp or the money cannot be placed.
    """
    first = first_file(path)
    fmt = suffix_format(first)
    if fmt is None:
        raise ConfigError(
            spreadsheet_advice(first)
            or f"{first}: unknown file type (expected .csv/.txt/.tsv (or gzip-compressed: .csv.gz ...), "
            ".parquet or .duckdb)"
        )
    frame, keys = read_sample(first, fmt)
    mapping, notes = _map_columns(first, frame, overrides or {})
    ts_format, note = timestamp_format_of(frame[mapping[TIMESTAMP]])
    if note:
        notes.append(note)
    notes += _currency_notes(frame, mapping, keys.get("decimal", "."))
    notes += _grouped_notes(frame, mapping, keys.get("decimal", "."))
    notes += extra_notes(frame, mapping, keys.get("decimal", "."))
    tx: dict[str, Any] = {"path": str(path.resolve()), "format": fmt, **keys}
    if ts_format:
        tx["timestamp_format"] = ts_format
    tx["columns"] = {k: mapping[k] for k in FIELD_NAMES if k in mapping}
    if ORDER_ID not in mapping:  # nothing tells a repeated line from a second purchase of the same thing that day
        tx["duplicates"] = "keep"
        notes.append(
            "no order or line id column: identical lines are kept as separate purchases (duplicates: keep); "
            "set duplicates: quarantine if the export repeats lines"
        )
    unmapped = tuple(str(c) for c in frame.columns if str(c) not in mapping.values())
    return Sniffed(transactions=tx, unmapped=unmapped, notes=tuple(notes))


def starter_config(
    path: Path, overrides: dict[str, str] | None = None, reviews: Path | None = None
) -> tuple[str, Sniffed]:
    """The starter config's YAML text for data file ``path`` (and a reviews file beside it, ``data.reviews``),
    validated against the packaged defaults."""
    from tiercast.pipeline.starter_reviews import sniff_reviews

    found = sniff(path, overrides)
    data: dict[str, Any] = {"transactions": found.transactions}
    if reviews is not None:
        data["reviews"] = sniff_reviews(reviews)
    body: dict[str, Any] = {
        "data": {**data, "quarantine_path": "outputs/quarantine.parquet"},
        "outputs": {"dir": "outputs"},
    }
    Config.model_validate(deep_merge(read_yaml(preset_path("default")), body))
    lines = [
        f"# Starter config for {path.name}, written by `tiercast init`: check the column mapping, then run",
        "# `tiercast validate --config THIS_FILE`. Every key: README, 'Your own data'.",
        "# The packaged defaults (horizon, tiers, playbook) come from the `default` preset; override any key here.",
        "base: default",
        yaml.safe_dump(body, sort_keys=False, allow_unicode=True).rstrip(),
    ]
    if found.unmapped:
        lines.append(f"# Columns not mapped: {', '.join(found.unmapped)}")
    lines += [f"# Check: {n}" for n in found.notes]
    return "\n".join(lines) + "\n", found
