"""Gzip-compressed text sources (``orders.csv.gz``): read as they are, row for row as the unpacked file, by the
engine ingestion, the pandas reader (whitespace text) and ``tiercast init``; a name and content that disagree, a
truncated stream and bad UTF-8 inside fail in one line naming the file, writing nothing."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from tests.pipeline.cli_harness import assert_clean_failure, invoke, snapshot
from tests.pipeline.test_ingest_sql import RETAIL_COLUMNS, TX, config
from tiercast.pipeline.config import ConfigError
from tiercast.pipeline.ingest.loader import load_transactions
from tiercast.pipeline.ingest.paths import suffix_format
from tiercast.pipeline.ingest.sources import TransactionSource
from tiercast.pipeline.ingest.transactions import read_transactions
from tiercast.pipeline.starter import sniff

CDNOW_COLUMNS = {
    "customer_id": "customer_id",
    "timestamp": "date",
    "amount": "dollar_value",
    "quantity": "number_of_cds",
}


def packed(src: Path, dest: Path) -> Path:
    dest.write_bytes(gzip.compress(src.read_bytes()))
    return dest


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.csv.gz", "csv"), ("a.TSV.GZ", "csv"), ("a.txt.gz", "csv"), ("a.parquet.gz", None), ("a.gz", None)],
)
def test_format_is_the_suffix_before_gz(name: str, fmt: str | None) -> None:
    assert suffix_format(Path(name)) == fmt


def test_a_gz_suffix_after_parquet_says_nothing_of_the_format() -> None:
    with pytest.raises(ValidationError, match="cannot tell the format"):
        TransactionSource.model_validate({"path": "lines.parquet.gz", "columns": RETAIL_COLUMNS})


def test_engine_ingestion_of_a_gzip_file_is_the_plain_files(tmp_path: Path) -> None:
    plain = {"path": str(TX / "reasons.csv"), "columns": RETAIL_COLUMNS, "non_product_codes": ["POST"]}
    gz = {**plain, "path": str(packed(TX / "reasons.csv", tmp_path / "reasons.csv.gz"))}
    (tmp_path / "p").mkdir(), (tmp_path / "g").mkdir()
    want = load_transactions(config(tmp_path / "p", plain), run_date="2030-01-01")
    got = load_transactions(config(tmp_path / "g", gz), run_date="2030-01-01")
    assert got.n_read == want.n_read == 14
    assert dict(got.reasons) == dict(want.reasons) and sum(got.reasons.values()) > 0
    pd.testing.assert_frame_equal(got.accepted, want.accepted)
    quarantined = [pd.read_parquet(d / "quarantine.parquet") for d in (tmp_path / "g", tmp_path / "p")]
    pd.testing.assert_frame_equal(*quarantined)  # the same rows, numbered as in the unpacked file


def test_whitespace_text_in_a_gzip_file_reads_as_the_plain_file(tmp_path: Path) -> None:
    base = {"columns": CDNOW_COLUMNS, "format": "auto", "delimiter": "whitespace", "timestamp_format": "%Y%m%d"}
    gz = packed(TX / "cdnow_sample.txt", tmp_path / "cdnow_sample.txt.gz")
    results = []
    for path in (TX / "cdnow_sample.txt", gz):
        data = config(tmp_path, {**base, "path": str(path)}).data
        results.append(read_transactions(data))
    plain, unpacked = results
    want = {"unparseable_timestamp": 1, "zero_price": 1, "duplicate": 1}
    assert unpacked.reason_counts() == plain.reason_counts() == want
    pd.testing.assert_frame_equal(unpacked.accepted, plain.accepted)


def test_init_proposes_the_same_config_for_a_gzip_file(tmp_path: Path) -> None:
    text = "customer_id;date;amount;order\n" + "".join(f"c{i};0{1 + i % 9}.02.2024;1{i},50;o{i}\n" for i in range(30))
    plain = tmp_path / "export.csv"
    plain.write_text(text, encoding="utf-8")
    gz = packed(plain, tmp_path / "export.csv.gz")
    want, got = sniff(plain), sniff(gz)
    assert got.transactions["path"] == str(gz.resolve())
    assert {k: v for k, v in got.transactions.items() if k != "path"} == {
        k: v for k, v in want.transactions.items() if k != "path"
    }
    assert (got.transactions["delimiter"], got.transactions["decimal"]) == (";", ",")
    assert got.transactions["timestamp_format"] == "%d.%m.%Y"


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("tx.csv", gzip.compress(b"customer_id,date,amount\n1,2010-01-01,1.0\n"), "gzip-compressed but not named"),
        ("tx.csv.gz", b"customer_id,date,amount\n1,2010-01-01,1.0\n", "named .gz but not gzip-compressed"),
        ("tx.csv.gz", gzip.compress(gzip.compress(b"a,b\n1,2\n")), "a gzip file (inside the gzip file), not text"),
    ],
    ids=["gzip-named-csv", "text-named-gz", "gzip-in-gzip"],
)
def test_init_refuses_a_name_that_disagrees_with_the_content(tmp_path: Path, name: str, content: bytes, needle: str):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=f"{name}: ") as e:
        sniff(path)
    assert needle in str(e.value) and "\n" not in str(e.value)


def _validate(tmp_path: Path, data: Path) -> tuple:
    cfg = tmp_path / "config.yaml"
    mapping = {"customer_id": "customer", "timestamp": "ts", "amount": "amount"}
    columns = "\n".join(f"      {k}: {v}" for k, v in mapping.items())
    cfg.write_text(
        f"base: default\ndata:\n  transactions:\n    path: {data}\n    columns:\n{columns}\n"
        f"  quarantine_path: {tmp_path / 'out' / 'quarantine.parquet'}\n"
    )
    before = snapshot(tmp_path)
    return invoke("validate", "--config", str(cfg), cwd=tmp_path), before


def test_validate_reads_a_gzip_file_and_fails_in_one_line_on_a_damaged_one(tmp_path: Path) -> None:
    lines = "customer,ts,amount\n" + "".join(f"c{i % 7},2024-01-{1 + i % 28:02d},{1 + i}.5\n" for i in range(4000))
    good = tmp_path / "tx.csv.gz"
    good.write_bytes(gzip.compress(lines.encode()))
    result, _ = _validate(tmp_path, good)
    assert result.code == 0, result.stderr
    assert pd.read_parquet(tmp_path / "out" / "quarantine.parquet").empty
    shutil.rmtree(tmp_path / "out")

    good.write_bytes(gzip.compress(lines.encode())[:-200])  # the stream's end cut off
    result, before = _validate(tmp_path, good)
    assert_clean_failure(result, "tx.csv.gz: cannot unpack the gzip file", "is it complete?")
    assert snapshot(tmp_path) == before  # no quarantine, nothing partial

    good.write_bytes(gzip.compress((lines + "c1,2024-02-01,M\xfcller\n").encode("latin-1")))
    result, before = _validate(tmp_path, good)
    assert_clean_failure(result, "tx.csv.gz: not valid UTF-8", "(line 4002)")
    assert snapshot(tmp_path) == before
