"""Customer reviews beside a transactions file (``data.reviews``): read under their row rules into the satisfaction
frame, every rejected row kept with its reason beside the transactions' quarantine, and the satisfaction features
built from the reviews before each cutoff only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from tests.pipeline.cli_harness import assert_clean_failure, invoke
from tiercast.features.build import build_features
from tiercast.pipeline.config import Config, load_config
from tiercast.pipeline.ingest.loader import load_transactions
from tiercast.pipeline.ingest.reviews import read_reviews
from tiercast.pipeline.ingest.sources import DataConfig, ReviewSource

# customer j buys in month 1 + j % 6: before the March cutoff c0, c1, c6, c7 (and c12, c13, ...)
TX = "customer,ts,amount,order\n" + "".join(
    f"c{i % 30},2024-{1 + i % 6:02d}-{1 + i % 27:02d},{5 + i % 7}.0,o{i}\n" for i in range(240)
)
REVIEWS = (
    "client,answered,stars\n"
    "c1,2024-02-10,5\n"  # row 0
    "c1,2024-05-20 09:30,1\n"  # row 1: a complaint, after the March cutoff
    "c6,2024-01-15,2\n"  # row 2: a complaint
    ",2024-01-15,4\n"  # row 3: missing_customer
    "c3,sometime,4\n"  # row 4: unparseable_timestamp
    "c3,2024-02-01,7\n"  # row 5: invalid_score
    "c4,2031-01-01,3\n"  # row 6: future_timestamp
    "c6,2024-01-15,2\n"  # row 7: duplicate of row 2
)
COLUMNS = {"customer_id": "client", "timestamp": "answered", "score": "stars"}


def reviews_source(path: Path, **extra) -> ReviewSource:
    return ReviewSource.model_validate({"path": str(path), "columns": COLUMNS, **extra})


def test_reviews_are_judged_row_by_row(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text(REVIEWS)
    accepted, quarantine = read_reviews(
        reviews_source(tmp_path / "r.csv"), timezone=None, run_date=pd.Timestamp("2030-01-01")
    )
    assert quarantine[["source_row", "reason"]].values.tolist() == [
        [3, "missing_customer"],
        [4, "unparseable_timestamp"],
        [5, "invalid_score"],
        [6, "future_timestamp"],
        [7, "duplicate"],
    ]
    assert quarantine["client"].tolist() == ["", "c3", "c3", "c4", "c6"]  # the rows as read
    got = accepted.sort_values(["timestamp", "customer_id"]).reset_index(drop=True)
    assert got["customer_id"].tolist() == ["c6", "c1", "c1"]
    assert got["review_score"].tolist() == [2, 5, 1]
    assert got["is_complaint"].tolist() == [True, False, True]  # score <= complaint_max_score (2)
    assert got["timestamp"].tolist() == [pd.Timestamp(t) for t in ("2024-01-15", "2024-02-10", "2024-05-20 09:30")]
    strict = read_reviews(reviews_source(tmp_path / "r.csv", complaint_max_score=1), timezone=None, run_date=None)[0]
    assert strict["is_complaint"].sum() == 1 and len(strict) == 4  # no run date: the 2031 review is accepted


def test_reviews_config_goes_with_a_transactions_file() -> None:
    olist = {"orders": "o.csv", "order_items": "i.csv", "customers": "c.csv"}
    with pytest.raises(ValidationError, match="data.reviews goes with `transactions`"):
        DataConfig.model_validate({"olist": olist, "reviews": {"path": "r.csv", "columns": COLUMNS}})
    tx = {"path": "t.csv", "columns": {"customer_id": "c", "timestamp": "t", "amount": "a"}}
    with pytest.raises(ValidationError, match="r.xlsx is a spreadsheet workbook"):
        DataConfig.model_validate({"transactions": tx, "reviews": {"path": "r.xlsx", "columns": COLUMNS}})
    with pytest.raises(ValidationError, match="one-character delimiter"):
        DataConfig.model_validate(
            {"transactions": tx, "reviews": {"path": "r.txt", "columns": COLUMNS, "delimiter": "whitespace"}}
        )


def _config(tmp_path: Path, reviews: str, **data) -> Config:
    (tmp_path / "tx.csv").write_text(TX)
    (tmp_path / "r.csv").write_text(reviews)
    return Config.model_validate(
        {
            "data": {
                "transactions": {
                    "path": str(tmp_path / "tx.csv"),
                    "columns": {"customer_id": "customer", "timestamp": "ts", "amount": "amount", "order_id": "order"},
                },
                "reviews": {"path": str(tmp_path / "r.csv"), "columns": COLUMNS},
                "quarantine_path": str(tmp_path / "out" / "quarantine.parquet"),
                **data,
            }
        }
    )


def test_the_features_read_the_reviews_before_the_cutoff_only(tmp_path: Path) -> None:
    data = load_transactions(_config(tmp_path, REVIEWS, max_quarantine_share=1.0), run_date="2030-01-01")
    assert len(data.satisfaction) == 3 and len(data.satisfaction_quarantine) == 5
    written = pd.read_parquet(tmp_path / "out" / "quarantine_satisfaction.parquet")
    assert written["reason"].tolist() == data.satisfaction_quarantine["reason"].tolist()
    rows = build_features(
        data.table, cutoff="2024-03-01", windows_days=(30,), horizon_days=30, satisfaction=data.engine_satisfaction()
    ).set_index("customer_id")
    assert (rows.loc["c1", "review_count"], rows.loc["c1", "review_score_mean"]) == (1.0, 5.0)  # May's not yet
    assert (rows.loc["c6", "review_count"], rows.loc["c6", "complaint_count"]) == (1.0, 1.0)
    assert rows.loc["c7", "review_count"] == 0.0  # a customer without reviews


def test_validate_counts_the_reviews_and_too_many_bad_ones_fail_in_one_line(tmp_path: Path) -> None:
    cfg = _config(tmp_path, REVIEWS)
    (tmp_path / "c.yaml").write_text(
        "base: default\ndata:\n"
        f"  transactions: {{path: {tmp_path / 'tx.csv'}, columns: {{customer_id: customer, timestamp: ts, "
        "amount: amount, order_id: order}}\n"
        f"  reviews: {{path: {tmp_path / 'r.csv'}, columns: {{customer_id: client, timestamp: answered, "
        "score: stars}}\n"
        f"  quarantine_path: {cfg.data.quarantine_path}\n  max_quarantine_share: 0.7\n"
    )
    result = invoke("validate", "--config", "c.yaml", "--run-date", "2030-01-01", cwd=tmp_path)
    assert result.code == 0, result.stderr
    lines = {" ".join(ln.replace("│", " ").split()) for ln in result.stdout.splitlines()}
    assert {"reviews read 8", "reviews accepted 3", "reviews quarantined 5", "invalid_score 1"} <= lines
    (tmp_path / "r.csv").write_text("client,answered,stars\n" + "c1,2024-02-10,9\n" * 3 + "c2,2024-02-11,4\n")
    result = invoke("validate", "--config", "c.yaml", "--run-date", "2030-01-01", cwd=tmp_path)
    assert_clean_failure(result, "r.csv: 75.0% of 4 rows quarantined, above max_quarantine_share 70.0%")
    kept = pd.read_parquet(tmp_path / "out" / "quarantine_satisfaction.parquet")  # written, to be inspected
    assert kept["reason"].tolist() == ["invalid_score"] * 3  # the first rule a row breaks names it


def test_a_reviews_file_without_a_mapped_column_names_it(tmp_path: Path) -> None:
    from tiercast.pipeline.ingest.common import InputError

    (tmp_path / "r.csv").write_text("client,answered,rating\nc1,2024-02-10,5\n")
    with pytest.raises(InputError) as err:
        read_reviews(reviews_source(tmp_path / "r.csv"), timezone=None, run_date=None)
    assert str(err.value) == (
        f"{tmp_path / 'r.csv'}: missing column 'stars' (reviews.columns.score); columns found: "
        "['client', 'answered', 'rating']"
    )


def test_init_proposes_the_reviews_section_and_validate_reads_it(tmp_path: Path) -> None:
    (tmp_path / "tx.csv").write_text(TX)
    (tmp_path / "survey.csv").write_text("Member ID;Answered;Rating\nc1;10/02/2024;5\nc6;15/01/2024;2\n")
    out = tmp_path / "shop.yaml"
    result = invoke("init", "--data", "tx.csv", "--reviews", "survey.csv", "--out", str(out), cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert "reviews: customer_id <- 'Member ID', timestamp <- 'Answered', score <- 'Rating'" in result.stdout
    section = load_config(out).data.reviews
    assert (section.delimiter, section.timestamp_format) == (";", "%d/%m/%Y")
    assert section.path == (tmp_path / "survey.csv").resolve()
    result = invoke("validate", "--config", str(out), "--run-date", "2030-01-01", cwd=tmp_path)
    lines = {" ".join(ln.replace("│", " ").split()) for ln in result.stdout.splitlines()}
    assert result.code == 0 and {"reviews read 2", "reviews accepted 2"} <= lines, result.stderr


def test_init_names_a_reviews_column_it_cannot_place(tmp_path: Path) -> None:
    (tmp_path / "tx.csv").write_text(TX)
    (tmp_path / "survey.csv").write_text("client,answered,mood\nc1,2024-02-10,happy\n")
    out = tmp_path / "shop.yaml"
    result = invoke("init", "--data", "tx.csv", "--reviews", "survey.csv", "--out", str(out), cwd=tmp_path)
    assert_clean_failure(result, "survey.csv: cannot tell which column is score", "['client', 'answered', 'mood']")
    assert not out.exists()
