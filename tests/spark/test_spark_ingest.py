"""The ingestion of a ``data:`` file on Spark (row rules as Spark expressions, the shared Ibis rules compiled for
Spark) against DuckDB's SQL ingestion: the same messy files give the same accepted rows, reasons, quarantine and
accounting, and the same one-line errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from tests.pipeline.test_io import BAD, BAD_CASES, RETAIL_COLUMNS, TX
from tiercast.features.contract import AMOUNT, CUSTOMER_ID, ORDER_ID, TIMESTAMP
from tiercast.pipeline.config import Config
from tiercast.pipeline.ingest.common import InputError
from tiercast.pipeline.ingest.loader import Transactions, load_transactions

pytestmark = pytest.mark.spark
ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "data" / "online_retail_ii" / "online_retail_ii.parquet"


def _config(engine, source: dict, quarantine: Path, kind: str, **data) -> Config:
    return Config.model_validate(
        {
            "data": {"transactions": source, "quarantine_path": str(quarantine), "max_quarantine_share": 1.0, **data},
            "engine": {**engine.model_dump(mode="json", exclude_none=True), "kind": kind},
        }
    )


def _ingest_both(spark_engine, source: dict, tmp: Path, run_date: str) -> dict[str, tuple[Transactions, pd.DataFrame]]:
    """engine -> (what load_transactions returned, the quarantine it wrote)."""
    out = {}
    for kind in ("duckdb", "spark"):
        cfg = _config(spark_engine, source, tmp / f"quarantine_{kind}.parquet", kind)
        out[kind] = load_transactions(cfg, run_date=run_date), pd.read_parquet(cfg.data.quarantine_path)
    return out


def _accepted(data: Transactions) -> pd.DataFrame:
    rows = data.con.execute(data.table)
    rows[TIMESTAMP] = rows[TIMESTAMP].astype("datetime64[us]")
    return rows.sort_values([TIMESTAMP, CUSTOMER_ID, ORDER_ID, AMOUNT, *rows.columns[4:]]).reset_index(drop=True)


def _messy_parquet(tmp: Path) -> Path:
    """Online Retail II rows as the bundled file types them (nanosecond times, float customer ids, missing ids,
    postage codes, zero prices), with a repeated line, lines after the run date and two ids about the 64-bit
    bound (written as integers below 2**63 by every engine)."""
    raw = pd.read_parquet(BUNDLED).iloc[:3000]
    raw.loc[[10, 11], "Customer ID"] = [9.2e18, 2.0**63 - 1024]
    path = tmp / "retail.parquet"
    pd.concat([raw, raw.iloc[[5, 7]]], ignore_index=True).to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("case", ["csv", "csv_gz", "csv_schema", "parquet"])
def test_spark_ingestion_matches_duckdb(spark_con, spark_engine, tmp_path: Path, case: str) -> None:
    """Every quarantine reason of a single-table source: the CSV fixture has one row per rule (also gzip-compressed,
    ``.csv.gz``); with '' not a missing-value marker its empty ids reach the schema rule; the Parquet file has typed
    columns."""
    source = {"path": str(TX / "reasons.csv"), "columns": RETAIL_COLUMNS, "non_product_codes": ["POST"]}
    run_date, want = "2030-01-01", {"missing_customer", "duplicate", "future_timestamp", "missing_order_id"}
    if case == "csv_gz":
        packed = tmp_path / "reasons.csv.gz"
        packed.write_bytes(gzip.compress((TX / "reasons.csv").read_bytes()))
        source["path"] = str(packed)
    if case == "csv_schema":
        source["na_values"], want = ["NA"], {"schema", "zero_price", "non_numeric_amount", "unparseable_timestamp"}
    if case == "parquet":
        columns = {**RETAIL_COLUMNS, "customer_id": "Customer ID"}
        source = {"path": str(_messy_parquet(tmp_path)), "columns": columns, "non_product_codes": ["POST", "M"]}
        run_date, want = "2009-12-01 12:00", {"missing_customer", "non_product_code", "future_timestamp", "duplicate"}
    got = _ingest_both(spark_engine, {**source, "timezone": "Europe/London"}, tmp_path, run_date)
    (duck, duck_q), (spark, spark_q) = got["duckdb"], got["spark"]
    assert want <= set(duck.reasons)
    assert dict(spark.reasons) == dict(duck.reasons)
    assert spark.n_read == duck.n_read
    for data, quarantine in got.values():
        assert data.n_accepted + data.n_quarantined == data.n_read
        assert len(quarantine) == data.n_quarantined and quarantine["reason"].value_counts().to_dict() == data.reasons
    pd.testing.assert_frame_equal(spark_q, duck_q)
    accepted = _accepted(spark)
    assert len(accepted) == spark.n_accepted
    pd.testing.assert_frame_equal(accepted, _accepted(duck))
    assert (spark.data_start, spark.data_end) == (duck.data_start, duck.data_end)
    assert dict(spark.fingerprint) == dict(duck.fingerprint)


def test_spark_ingestion_one_line_errors(spark_con, spark_engine, tmp_path: Path) -> None:
    """The bad files of the DuckDB ingestion fail on Spark with the same one-line errors; too many quarantined rows
    fail with DuckDB's message after writing the quarantine."""
    for name, extra, phrases in BAD_CASES:
        source = {
            "path": str(BAD / name),
            "columns": {"customer_id": "customer", "timestamp": "ts", "amount": "amount"},
        }
        out = tmp_path / name / "quarantine.parquet"
        with pytest.raises(InputError) as err:
            load_transactions(_config(spark_engine, {**source, **extra}, out, "spark"))
        message = str(err.value)
        assert "\n" not in message and str(BAD / name) in message, message
        assert all(phrase in message for phrase in phrases), (name, message)
        assert not out.exists()
    source = {"path": str(TX / "reasons.csv"), "columns": RETAIL_COLUMNS}
    messages, written = {}, {}
    for kind in ("duckdb", "spark"):
        out = tmp_path / kind / "quarantine.parquet"
        with pytest.raises(InputError) as err:
            load_transactions(
                _config(spark_engine, source, out, kind, max_quarantine_share=0.25), run_date="2030-01-01"
            )
        messages[kind], written[kind] = str(err.value), pd.read_parquet(out)
    assert messages["spark"] == messages["duckdb"]
    assert "57.1% of 14 rows quarantined, above max_quarantine_share 25.0%" in messages["spark"]
    pd.testing.assert_frame_equal(written["spark"], written["duckdb"])


def test_spark_names_epoch_timestamps_and_grouped_numbers_as_duckdb_does(spark_con, spark_engine, tmp_path) -> None:
    """A column where nothing parses gets DuckDB's words on Spark too: epoch seconds, thousands separators."""
    cases = {
        "epoch.csv": "customer,ts,amount\nc1,1661861820,5\nc2,1662467001,6\n",
        "grouped.csv": 'customer,ts,amount\nc1,2022-01-05,"1,161.52"\nc2,2022-01-06,"2,000.00"\n',
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        messages = {}
        for kind in ("duckdb", "spark"):
            with pytest.raises(InputError) as err:
                src = {"path": str(tmp_path / name), "columns": STRICT}
                load_transactions(_config(spark_engine, src, tmp_path / f"q_{kind}.parquet", kind))
            messages[kind] = str(err.value)
        assert messages["spark"] == messages["duckdb"]
        assert ("Unix epoch seconds" if name == "epoch.csv" else "thousands separators") in messages["spark"]


STRICT = {"customer_id": "customer", "timestamp": "ts", "amount": "amount"}


def test_spark_gives_duckdb_notice_for_numbers_with_thousands_separators(spark_con, tmp_path: Path) -> None:
    """Rows quarantined as non_numeric_amount because of thousands separators get DuckDB's notice on Spark too:
    one per number column, naming the file, the column, the rows and the first such value."""
    import warnings

    import duckdb

    from tiercast.pipeline.ingest import spark_ingest, sql
    from tiercast.pipeline.ingest.sources import TransactionSource

    path = tmp_path / "grouped.parquet"  # typed times: no timestamp parsing, so the test stays quick
    pd.DataFrame(
        {
            "customer": list("abcde"),
            "ts": pd.date_range("2010-01-01", periods=5, freq="D", unit="us"),
            "qty": ["1,000", "2", "1", "3", "1"],
            "price": ["2.5", "1,161.52", "abc", " 12,345,678", "999"],
        }
    ).to_parquet(path, index=False)
    columns = {**STRICT, "amount": None, "quantity": "qty", "unit_price": "price"}
    src = TransactionSource(path=path, columns=columns)
    run, texts = pd.Timestamp("2030-01-01"), {}
    for kind, ingest in (
        ("duckdb", lambda: sql.ingest(duckdb.connect(), src, run)),
        ("spark", lambda: spark_ingest.ingest(spark_con, src, run)),
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert ingest().reasons == {"non_numeric_amount": 4}
        texts[kind] = [str(w.message) for w in caught if w.category is UserWarning]
    end = "quarantined as non_numeric_amount (thousands separators are not read: export the column without them)"
    assert (
        texts["spark"]
        == texts["duckdb"]
        == [
            f"{path}: 1 row of column 'qty' looks like a number with thousands separators (e.g. '1,000'), {end}",
            f"{path}: 2 rows of column 'price' look like numbers with thousands separators (e.g. '1,161.52'), {end}",
        ]
    )


@pytest.mark.parametrize(
    ("text", "extra", "reasons"),
    [
        (  # under a decimal comma a point is never a decimal point, and thousands marks are not guessed
            "customer;ts;amount\na;2010-01-01;12.345\nb;2010-01-02;1.234,50\nc;2010-01-03;12,5\nd;2010-01-04;7\n",
            {"delimiter": ";", "decimal": ","},
            {"non_numeric_amount": 2},
        ),
        (  # without a format, day-month dates are quarantined, never guessed; ISO forms are read
            "customer,ts,amount\na,01/12/2009 09:06,1\nb,2010-12-01 09:06:00,2\nc,2010-12-02T09:06:00,3\n"
            "d,13/12/2009 09:06,4\ne,1.12.09,5\nf,2010-12-03,6\n",
            {},
            {"ambiguous_timestamp": 3},
        ),
    ],
    ids=["decimal-comma", "day-month"],
)
def test_spark_strict_text_rules_match_duckdb(spark_con, spark_engine, tmp_path: Path, text, extra, reasons) -> None:
    path = tmp_path / "strict.csv"
    path.write_text(text, encoding="utf-8")
    got = _ingest_both(spark_engine, {"path": str(path), "columns": STRICT, **extra}, tmp_path, "2030-01-01")
    (duck, duck_q), (spark, spark_q) = got["duckdb"], got["spark"]
    assert dict(duck.reasons) == reasons and dict(spark.reasons) == reasons
    pd.testing.assert_frame_equal(spark_q, duck_q)
    pd.testing.assert_frame_equal(_accepted(spark), _accepted(duck))


def test_spark_refuses_a_repeated_column_name_as_duckdb_does(spark_con, spark_engine, tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("customer,ts,amount,Amount\na,2010-01-01,1,2\n", encoding="utf-8")
    messages = {}
    for kind in ("duckdb", "spark"):
        with pytest.raises(InputError) as err:
            load_transactions(
                _config(spark_engine, {"path": str(path), "columns": STRICT}, tmp_path / "q.parquet", kind)
            )
        messages[kind] = str(err.value)
    assert messages["spark"] == messages["duckdb"] and "duplicate column name 'amount'" in messages["duckdb"]


def test_spark_gives_duckdb_notices_for_offsets_and_padded_ids(spark_con, spark_engine, tmp_path: Path) -> None:
    """Values read differently from the file (a UTC offset converted, whitespace around an id trimmed) are told in
    the same notices, with the same counts and the same accepted rows, on both engines."""

    csv = tmp_path / "tx.csv"
    csv.write_text(
        "customer,ts,amount\n"
        " 123,2010-12-01 08:26:00+01:00,1\n"
        "123 ,2010-12-01T09:26:00Z,2\n"
        "123,2010-12-01 10:26:00,3\n"
        "\t9,2010-12-02 11:26:00 UTC,4\n",
        encoding="utf-8",
    )
    times = pd.to_datetime(["2010-06-01 10:00", "2010-01-01 12:00"]).tz_localize("UTC")
    parquet = tmp_path / "tx.parquet"
    pd.DataFrame({"customer": ["a", "b"], "ts": times, "amount": [1.0, 2.0]}).to_parquet(parquet)
    columns = {CUSTOMER_ID: "customer", TIMESTAMP: "ts", AMOUNT: "amount"}
    for path, expected in (
        (csv, ["3 rows of column 'ts' carry a UTC offset", "3 distinct raw ids merge into 1 customer id"]),
        (parquet, ["2 rows of column 'ts' carry a UTC offset"]),
    ):
        texts, rows = _on_both(spark_engine, tmp_path, path, columns)
        assert texts["spark"] == texts["duckdb"] and len(texts["duckdb"]) == len(expected)
        assert all(part in text for part, text in zip(expected, texts["duckdb"], strict=True)), texts
        pd.testing.assert_frame_equal(rows["spark"], rows["duckdb"], check_dtype=False)


def test_spark_gives_duckdb_notice_for_customer_ids_differing_only_in_letter_case(
    spark_con, spark_engine, tmp_path: Path
) -> None:
    """Ids differing only in letter case stay apart on both engines, told in the same notice (ids, rows, a pair)."""
    from tests.pipeline.test_ingest_notices import case_notice

    path = tmp_path / "tx.csv"
    path.write_text(
        "customer,ts,amount\n"
        "Ann@Example.com,2010-12-01,1\nann@example.com,2010-12-02,2\nANN@EXAMPLE.COM,2010-12-03,3\n"
        "bob@x.org,2010-12-04,4\nCy@x.org,2010-12-05,5\n",
        encoding="utf-8",
    )
    texts, rows = _on_both(spark_engine, tmp_path, path, STRICT)
    assert (
        texts["spark"]
        == texts["duckdb"]
        == [case_notice(path, "customer", 3, "3 rows", "ANN@EXAMPLE.COM", "ann@example.com")]
    )
    assert rows["spark"][CUSTOMER_ID].nunique() == 5
    pd.testing.assert_frame_equal(rows["spark"], rows["duckdb"], check_dtype=False)


def test_spark_gives_duckdb_notice_for_negative_quantities_with_positive_amounts(
    spark_con, spark_engine, tmp_path: Path
) -> None:
    from tests.pipeline.test_ingest_notices import SIGNS_COLUMNS, SIGNS_FILE, signs_notice

    path = tmp_path / "tx.csv"
    path.write_text(SIGNS_FILE, encoding="utf-8")
    texts, rows = _on_both(spark_engine, tmp_path, path, SIGNS_COLUMNS)
    assert texts["spark"] == texts["duckdb"] == [signs_notice(path)]
    pd.testing.assert_frame_equal(rows["spark"], rows["duckdb"], check_dtype=False)


def _on_both(spark_engine, tmp_path: Path, path: Path, columns: dict) -> tuple[dict, dict]:
    """The notices (texts) and accepted rows of reading ``path`` with ``columns`` on DuckDB and on Spark."""
    import warnings

    texts, rows = {}, {}
    for kind in ("duckdb", "spark"):
        cfg = _config(spark_engine, {"path": str(path), "columns": columns}, tmp_path / f"q_{kind}.parquet", kind)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = load_transactions(cfg, run_date="2030-01-01")
        texts[kind] = [str(w.message) for w in caught if w.category is UserWarning]
        rows[kind] = _accepted(data)
    return texts, rows


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_spark_reads_a_folder_of_files_as_duckdb_does(spark_con, spark_engine, tmp_path: Path, fmt: str) -> None:
    """The CSV fixture split into three files (one of a single row) in a folder, with a part without rows: the
    same reasons, accepted rows and quarantine, each quarantined row named by its file and its row there."""
    lines = pd.read_csv(TX / "reasons.csv", dtype=str, keep_default_na=False)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, part in enumerate((lines.iloc[:5], lines.iloc[5:6], lines.iloc[:0], lines.iloc[6:])):
        if fmt == "csv":
            part.to_csv(folder / f"part-{i}.csv", index=False)
        else:
            part.to_parquet(folder / f"part-{i}.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    source = {
        "path": str(folder),
        "columns": RETAIL_COLUMNS,
        "non_product_codes": ["POST"],
        "timezone": "Europe/London",
    }
    got = _ingest_both(spark_engine, source, tmp_path, "2030-01-01")
    (duck, duck_q), (spark, spark_q) = got["duckdb"], got["spark"]
    assert spark.n_read == duck.n_read == len(lines)
    assert dict(spark.reasons) == dict(duck.reasons) and len(duck_q) > 3
    assert duck_q["source_file"].map(lambda f: Path(f).name).nunique() > 1
    pd.testing.assert_frame_equal(spark_q, duck_q)
    pd.testing.assert_frame_equal(_accepted(spark), _accepted(duck))
