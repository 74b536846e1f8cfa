"""Customer reviews beside a transactions source (``data.reviews``): one row per review, read into the satisfaction
frame (:data:`~tiercast.features.contract.SATISFACTION_COLUMNS`) the features take their satisfaction signals from,
under row rules like the transactions' (a missing customer, an unreadable or future time, a score that is not 1 to
5, an exact duplicate line), every rejected row kept with its reason in the reviews' quarantine."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiercast.features.contract import CUSTOMER_ID, IS_COMPLAINT, REVIEW_SCORE, TIMESTAMP
from tiercast.features.schemas import SATISFACTION
from tiercast.pipeline.ingest import notices
from tiercast.pipeline.ingest.parsing import (
    ambiguous_dates,
    carries_offset,
    parse_ids,
    parse_numbers,
    parse_text,
    parse_timestamp_column,
)
from tiercast.pipeline.ingest.readers import (
    check_timestamp_format,
    read_csv_source,
    read_parquet_source,
    require_source_columns,
)
from tiercast.pipeline.ingest.rules import check_accounting, judge_rows, split_rows
from tiercast.pipeline.ingest.sources import ReviewSource

#: The scores a review may carry.
SCORES = (1.0, 2.0, 3.0, 4.0, 5.0)


def read_reviews(
    src: ReviewSource, *, timezone: str | None, run_date: pd.Timestamp | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accepted satisfaction rows, quarantine: the rejected rows as read with ``source_row`` and ``reason``) of a
    reviews file; times read in ``timezone`` (the transactions'), rows after ``run_date`` set aside."""
    where, cols, na = str(src.path), src.columns, src.na_values
    check_timestamp_format(src.timestamp_format, where, cols.timestamp)
    csv = src.resolved_format() == "csv"
    raw = read_csv_source(src.path, src.delimiter) if csv else read_parquet_source(src.path)
    mapping = {CUSTOMER_ID: cols.customer_id, TIMESTAMP: cols.timestamp, "score": cols.score}
    require_source_columns(raw, mapping, where, src.path if csv else None, src.delimiter, "reviews.columns.")
    customer = parse_ids(raw[cols.customer_id], na)
    timestamp = parse_timestamp_column(raw[cols.timestamp], src.timestamp_format, timezone, na)
    ambiguous = ambiguous_dates(raw[cols.timestamp], src.timestamp_format, na)
    offset = int((carries_offset(parse_text(raw[cols.timestamp], na), src.timestamp_format) & timestamp.notna()).sum())
    if offset:
        notices.warn(notices.offset_message(where, cols.timestamp, offset, timezone))
    score, score_bad = parse_numbers(raw[cols.score], src.decimal, na)
    score_bad = score_bad | ~score.isin(SCORES).to_numpy()
    rules = [
        ("missing_customer", customer.isna().to_numpy()),
        ("ambiguous_timestamp", ambiguous),
        ("unparseable_timestamp", timestamp.isna().to_numpy()),
        ("invalid_score", score_bad),
        ("future_timestamp", (timestamp > run_date).to_numpy() if run_date is not None else None),
        ("duplicate", raw.duplicated(keep="first").to_numpy() if src.duplicates == "quarantine" else None),
    ]
    reason = judge_rows(len(raw), rules)
    return satisfaction_rows(raw, reason, customer, timestamp, (score, score_bad), src.complaint_max_score, where)


def satisfaction_rows(
    raw: pd.DataFrame,
    reason: np.ndarray,
    customer: pd.Series,
    timestamp: pd.Series,
    scored: tuple[pd.Series, np.ndarray],
    complaint_max_score: int,
    where: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accepted satisfaction rows, quarantine) of judged review rows (``reason`` per row of ``raw``; ``scored``:
    the parsed scores and where they are unusable): the score as an integer, a complaint at or below
    ``complaint_max_score``; the Olist layout's reviews and a ``data.reviews`` file alike."""
    score, score_bad = scored
    ok_score = score.where(~score_bad, 0).astype("int64")
    canonical = pd.DataFrame(
        {
            CUSTOMER_ID: customer,
            TIMESTAMP: timestamp,
            REVIEW_SCORE: ok_score,
            IS_COMPLAINT: (ok_score <= complaint_max_score) & ~score_bad,
        }
    )
    accepted, quarantine = split_rows(raw, reason, canonical, SATISFACTION, [TIMESTAMP, CUSTOMER_ID])
    check_accounting(accepted, quarantine, len(raw), where)
    return accepted, quarantine
