"""The ``data.reviews`` section ``tiercast init --reviews FILE`` proposes: the file's reading keys and its customer,
time and score columns, found by name as the transactions' columns are (:mod:`.starter`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiercast.features.contract import CUSTOMER_ID, TIMESTAMP
from tiercast.pipeline.config import ConfigError
from tiercast.pipeline.ingest.paths import spreadsheet_advice, suffix_format
from tiercast.pipeline.ingest.sources import WHITESPACE
from tiercast.pipeline.starter import match_column, read_sample, timestamp_format_of
from tiercast.pipeline.starter_names import FIELD_NAMES

#: Normalized column names tried for each field of a reviews file, best first (the transactions' customer and
#: time names after the reviews' own).
REVIEW_NAMES: dict[str, tuple[str, ...]] = {
    CUSTOMER_ID: FIELD_NAMES[CUSTOMER_ID],
    TIMESTAMP: (
        "reviewdate",
        "reviewtime",
        "reviewanswertimestamp",
        "reviewcreationdate",
        "answered",
        "answeredat",
        "submittedat",
        "surveydate",
        *FIELD_NAMES[TIMESTAMP],
    ),
    "score": ("score", "reviewscore", "rating", "stars", "starrating", "satisfaction", "csat", "grade"),
}


def sniff_reviews(path: Path) -> dict[str, Any]:
    """The ``data.reviews`` section for the reviews file ``path`` (CSV, also ``.gz``, or Parquet); a config error
    naming the file when it cannot be read or a column cannot be placed."""
    if not path.is_file():
        raise ConfigError(f"reviews file not found: {path}")
    fmt = suffix_format(path)
    if fmt not in ("csv", "parquet"):
        raise ConfigError(spreadsheet_advice(path) or f"{path}: a reviews file is CSV (also .csv.gz) or Parquet")
    frame, keys = read_sample(path, fmt)
    if keys.get("delimiter") == WHITESPACE:
        raise ConfigError(f"{path}: a reviews file takes a one-character delimiter (comma, semicolon, tab)")
    columns = [str(c) for c in frame.columns]
    mapping: dict[str, str] = {}
    for field, names in REVIEW_NAMES.items():
        if (col := match_column(columns, set(mapping.values()), names)) is not None:
            mapping[field] = col
    missing = [f for f in REVIEW_NAMES if f not in mapping]
    if missing:
        raise ConfigError(
            f"{path}: cannot tell which column is {' / '.join(missing)}; columns: {columns}; write "
            "data.reviews.columns (customer_id, timestamp, score) by hand"
        )
    ts_format, _ = timestamp_format_of(frame[mapping[TIMESTAMP]])
    section: dict[str, Any] = {"path": str(path.resolve()), **keys}
    if ts_format:
        section["timestamp_format"] = ts_format
    section["columns"] = mapping
    return section
