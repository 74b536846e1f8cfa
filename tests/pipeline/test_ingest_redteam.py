"""Sources a user's own export may bring: Parquet timestamps of any unit, amounts with thousands separators, epoch
and Excel serial-day numbers or ids in the timestamp column, one source column mapped to two fields. Each is read,
quarantined with a notice, or refused in one line naming the file, the column and what to do."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.pipeline.cli_harness import assert_clean_failure, invoke
from tests.pipeline.ingest_configs import COLUMNS, RUN, config
from tiercast.pipeline.config import Config, ConfigError, load_config
from tiercast.pipeline.ingest import columns as col
from tiercast.pipeline.ingest.common import InputError
from tiercast.pipeline.ingest.loader import load_transactions
from tiercast.pipeline.ingest.transactions import read_transactions
from tiercast.pipeline.starter import sniff


def read(cfg: Config, *, engine: bool = False) -> tuple[pd.DataFrame, dict[str, int], list[str]]:
    """Accepted rows, reasons and notices of reading ``cfg`` (the DuckDB rules the commands run, collected); with
    ``engine``, checked equal to those of the engine ingestion the commands use (load_transactions)."""

    def notices(read_source):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = read_source()
        return result, [str(w.message) for w in caught if w.category is UserWarning]

    collected, texts = notices(lambda: read_transactions(cfg.data, run_date=RUN))
    if engine:
        data, engine_texts = notices(lambda: load_transactions(cfg))
        assert engine_texts == texts
        assert dict(data.reasons) == collected.reason_counts()
        pd.testing.assert_frame_equal(data.accepted.reset_index(drop=True), collected.accepted, check_dtype=False)
    return collected.accepted, collected.reason_counts(), texts


def write_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tx.csv"
    path.write_text(text, encoding="utf-8")
    return path


def refused(cfg: Config) -> str:
    """The one-line InputError of reading ``cfg``."""
    with pytest.raises(InputError) as e:
        read_transactions(cfg.data, run_date=RUN)
    assert "\n" not in str(e.value)
    return str(e.value)


# Parquet timestamps of every unit -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duck_type", "kind"),
    [
        ("TIMESTAMPTZ_NS", "tz"),
        ("TIMESTAMP WITH TIME ZONE", "tz"),
        ("TIMESTAMPTZ", "tz"),
        ("TIMESTAMP_NS", "ts"),
        ("TIMESTAMP_MS", "ts"),
        ("TIMESTAMP_S", "ts"),
        ("TIMESTAMP", "ts"),
    ],
)
def test_every_duckdb_timestamp_type_is_a_timestamp(duck_type: str, kind: str) -> None:
    assert col.kind(duck_type) == kind


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_parquet_timestamps_of_every_unit_are_read_and_zone_aware_ones_converted(tmp_path: Path, unit: str) -> None:
    instants = [pd.Timestamp("2010-06-01 10:00:01"), pd.Timestamp("2010-01-01 12:00"), None]
    for tz in (None, "UTC"):
        path = tmp_path / f"{tz}.parquet"
        ts = pa.array(instants, pa.timestamp(unit, tz=tz))
        pq.write_table(pa.table({"customer": ["a", "b", "c"], "ts": ts, "amount": [1.0, 2.0, 3.0]}), path)
        accepted, reasons, texts = read(config(tmp_path, path, timezone="Europe/London"))
        shift = pd.Timedelta(hours=1 if tz else 0)  # London summer time
        assert accepted["timestamp"].tolist() == [pd.Timestamp("2010-01-01 12:00"), instants[0] + shift]
        assert reasons == {"unparseable_timestamp": 1}
        converted = f"{path}: 2 rows of column 'ts' carry a UTC offset; converted to Europe/London (data.timezone)"
        assert texts == ([converted] if tz else [])


def test_a_pandas_zone_aware_column_written_to_parquet_is_read(tmp_path: Path) -> None:
    times = pd.to_datetime(["2010-06-01 10:00:00.123456", "2010-01-01 12:00"], format="ISO8601")
    times = times.tz_localize("UTC").astype("datetime64[ns, UTC]")  # pandas' default unit
    path = tmp_path / "tx.parquet"
    pd.DataFrame({"customer": ["a", "b"], "ts": times, "amount": [1.0, 2.0]}).to_parquet(path)
    assert str(pq.read_schema(path).field("ts").type) == "timestamp[ns, tz=UTC]"
    accepted, reasons, texts = read(config(tmp_path, path), engine=True)
    assert texts == [
        f"{path}: 2 rows of column 'ts' carry a UTC offset; converted to UTC (set data.timezone to read them in "
        "another zone)"
    ]
    assert reasons == {}
    assert accepted["timestamp"].tolist() == [
        pd.Timestamp("2010-01-01 12:00"),
        pd.Timestamp("2010-06-01 10:00:00.123456"),
    ]


# Thousands separators -------------------------------------------------------------------------------------------


def test_amounts_with_thousands_separators_are_quarantined_with_one_notice(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        'customer,ts,amount\na,2010-01-01,"1,161.52"\nb,2010-01-02,12.5\nc,2010-01-03,"12,345,678"\n'
        "d,2010-01-04,abc\ne,2010-01-05,999\n",
    )
    accepted, reasons, texts = read(config(tmp_path, path), engine=True)
    assert texts == [
        f"{path}: 2 rows of column 'amount' look like numbers with thousands separators (e.g. '1,161.52'), "
        "quarantined as non_numeric_amount (thousands separators are not read: export the column without them)"
    ]
    assert reasons == {"non_numeric_amount": 3}
    assert accepted["amount"].tolist() == [12.5, 999.0]


def test_decimal_comma_amounts_with_thousands_points_are_quarantined_with_one_notice(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "customer;ts;amount\na;2010-01-01;1.161,52\nb;2010-01-02;12,5\n")
    accepted, reasons, texts = read(config(tmp_path, path, delimiter=";", decimal=","))
    assert texts == [
        f"{path}: 1 row of column 'amount' looks like a number with thousands separators (e.g. '1.161,52'), "
        "quarantined as non_numeric_amount (thousands separators are not read: export the column without them)"
    ]
    assert reasons == {"non_numeric_amount": 1}
    assert accepted["amount"].tolist() == [12.5]


def test_a_number_column_of_grouped_numbers_only_is_refused_saying_so(tmp_path: Path) -> None:
    path = write_csv(tmp_path, 'customer,ts,amount\na,2010-01-01,"1,161.52"\nb,2010-01-02,"2,000"\n')
    assert refused(config(tmp_path, path)) == (
        f"{path}: no value of column 'amount' parses as a number (2 rows; e.g. '1,161.52', '2,000'); values such "
        "as '1,161.52' have thousands separators, which are not read: export the column without them"
    )


def test_init_notes_amounts_with_thousands_separators(tmp_path: Path) -> None:
    path = write_csv(tmp_path, 'customer,date,amount\na,2010-01-01,"1,161.52"\nb,2010-01-02,12.5\nc,2010-01-03,3\n')
    found = sniff(path)
    assert "decimal" not in found.transactions
    assert found.notes[0] == (
        "1 of the first 3 values of column 'amount' have thousands separators (e.g. '1,161.52'), which are not "
        "read: those rows would be quarantined as non_numeric_amount; export the column without thousands separators"
    )


def test_init_reads_a_decimal_comma_from_grouped_numbers_and_notes_them(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "customer;date;amount\na;2010-01-01;1.161,52\nb;2010-01-02;2.000,00\nc;2010-01-03;3\n")
    found = sniff(path)
    assert found.transactions["decimal"] == ","
    assert found.notes[0].startswith("2 of the first 3 values of column 'amount' have thousands separators (e.g. ")


# Numbers in the timestamp column --------------------------------------------------------------------------------


def test_epoch_seconds_in_parquet_are_refused_saying_what_they_look_like(tmp_path: Path) -> None:
    path = tmp_path / "tx.parquet"
    seconds = pd.Series([1661861820, 1662467001], dtype="int64")
    pd.DataFrame({"customer": ["a", "b"], "ts": seconds, "amount": [1.0, 2.0]}).to_parquet(path)
    assert refused(config(tmp_path, path)) == (
        f"{path}: column 'ts' holds numbers, not timestamps (2 rows; e.g. '1661861820', '1662467001'): they look "
        "like Unix epoch seconds, which no timestamp_format reads; convert them to dates first (e.g. "
        "pandas.to_datetime(values, unit='s'))"
    )


@pytest.mark.parametrize(
    ("values", "looks_like"),
    [
        (("1661861820000", "1662467001000"), "Unix epoch milliseconds, which no timestamp_format reads; convert them "
         "to dates first (e.g. pandas.to_datetime(values, unit='ms'))"),
        (("44803", "44803.5"), "Excel serial day numbers, which no timestamp_format reads; convert them to dates "
         "first (e.g. pandas.to_datetime(values, unit='D', origin='1899-12-30'), or format the column as dates "
         "before exporting)"),
    ],
    ids=["epoch-ms", "excel"],
)  # fmt: skip
def test_epoch_milliseconds_and_excel_serial_days_are_refused_saying_so(
    tmp_path: Path, values: tuple[str, str], looks_like: str
) -> None:
    path = write_csv(tmp_path, f"customer,ts,amount\na,{values[0]},1\nb,{values[1]},2\nc,NA,3\n")
    assert refused(config(tmp_path, path)) == (
        f"{path}: column 'ts' holds numbers, not timestamps (3 rows; e.g. '{values[0]}', '{values[1]}', 'NA'): "
        f"they look like {looks_like}"
    )


def test_a_timestamp_format_for_epoch_numbers_is_refused_saying_to_convert_them(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "customer,ts,amount\na,1661861820,1\n")
    assert refused(config(tmp_path, path, timestamp_format="%s")) == (
        f"{path}: column 'ts': timestamp_format '%s' is not a usable strptime format ('s' is a bad directive in "
        "format '%s'); use directives such as %Y %m %d %H %M %S, e.g. '%d/%m/%Y %H:%M'; epoch numbers are not "
        "read: convert the column to dates first (e.g. pandas.to_datetime(values, unit='s'))"
    )


def test_ids_in_the_timestamp_column_are_not_read_as_years(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "customer,ts,amount\n1000,1000,1\n1001,1001,2\n1399,1399,3\n")
    assert refused(config(tmp_path, path)) == (
        f"{path}: column 'ts' holds numbers, not timestamps (3 rows; e.g. '1000', '1001', '1399'): is it the "
        "timestamp column? (numbers are read as dates only with a timestamp_format, e.g. '%Y%m%d' for 20230105)"
    )


def test_bare_integers_beside_dates_are_quarantined(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "customer,ts,amount\na,2023-01-05,1\nb,2023,2\nc,1000,3\nd,-5,4\ne,2023-02-01T10:00:00,5\n",
    )
    accepted, reasons, _ = read(config(tmp_path, path))
    assert reasons == {"unparseable_timestamp": 3}
    assert accepted["customer_id"].tolist() == ["a", "e"]


def test_compact_dates_of_eight_digits_are_still_guessed(tmp_path: Path) -> None:
    compact = write_csv(tmp_path, "customer,ts,amount\na,19970101,1\nb,19970102,2\n")
    accepted, reasons, _ = read(config(tmp_path, compact))
    assert reasons == {}
    assert accepted["timestamp"].tolist() == [pd.Timestamp("1997-01-01"), pd.Timestamp("1997-01-02")]


def test_years_are_read_with_an_explicit_format(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "customer,ts,amount\na,2021,1\nb,2022,2\n")
    accepted, reasons, _ = read(config(tmp_path, path, timestamp_format="%Y"))
    assert reasons == {}
    assert accepted["timestamp"].tolist() == [pd.Timestamp("2021-01-01"), pd.Timestamp("2022-01-01")]


# One source column, two fields ----------------------------------------------------------------------------------


def test_a_source_column_mapped_to_two_fields_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    cfg = {
        "base": "default",
        "data": {"transactions": {"path": "tx.csv", "columns": {**COLUMNS, "timestamp": "customer"}}},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "c.yaml")
    assert str(e.value) == (
        f"{tmp_path / 'c.yaml'}: data.transactions.columns: source column 'customer' is mapped to 2 fields "
        "(customer_id, timestamp); map each field to its own column"
    )


def test_the_command_line_refuses_a_column_mapped_twice_in_one_line(tmp_path: Path) -> None:
    write_csv(tmp_path, "customer,ts,amount\n1000,2010-01-01,1\n")
    columns = {**COLUMNS, "order_id": "amount"}
    cfg = {"base": "default", "data": {"transactions": {"path": "tx.csv", "columns": columns}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    line = assert_clean_failure(invoke("validate", "--config", "c.yaml", cwd=tmp_path))
    assert line == (
        f"error: {tmp_path / 'c.yaml'}: data.transactions.columns: source column 'amount' is mapped to 2 fields "
        "(amount, order_id); map each field to its own column"
    )


def test_init_refuses_one_column_given_to_two_fields(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "customer,ts,amount\n1000,2010-01-01,1\n")
    with pytest.raises(ConfigError) as e:
        sniff(path, {"customer_id": "customer", "timestamp": "customer"})
    assert (
        str(e.value)
        == "--column timestamp=customer: column 'customer' is already given to customer_id (a column maps to one field)"
    )


OLIST = Path(__file__).parents[1] / "fixtures" / "olist"
OLIST_TABLES = {
    "orders": "olist_orders_dataset.csv",
    "order_items": "olist_order_items_dataset.csv",
    "customers": "olist_customers_dataset.csv",
    "reviews": "olist_order_reviews_dataset.csv",
    "products": "olist_products_dataset.csv",
}


# The reviews' own accounting ----------------------------------------------------------------------------------------


def test_validate_reports_the_reviews_quarantine(tmp_path: Path) -> None:
    """Olist reviews are a file of their own with their own quarantine: ``validate`` counts them (3 of the fixture's
    7 reviews rejected, under the limit of 1.0) and names their quarantine file, beside the transactions'."""
    data = {"olist": {k: str(OLIST / v) for k, v in OLIST_TABLES.items()}, "max_quarantine_share": 1.0}
    data["quarantine_path"] = "out/q.parquet"
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump({"base": "olist", "data": data}), encoding="utf-8")
    result = invoke("validate", "--config", "shop.yaml", cwd=tmp_path)
    assert result.code == 0, result.stderr
    lines = [" ".join(ln.replace("│", " ").split()) for ln in result.stdout.splitlines()]
    for row in ("reviews read 7", "reviews accepted 4", "reviews quarantined 3", "invalid_score 2", "unknown_order 1"):
        assert row in lines, (row, result.stdout)
    review_file = tmp_path / "out" / "q_satisfaction.parquet"
    assert f"review quarantine -> {Path('out') / 'q_satisfaction.parquet'}" in lines
    assert len(pd.read_parquet(review_file)) == 3


def _olist_copy(tmp_path: Path, edit: dict[str, str]) -> Config:
    """The Olist fixture with lines appended to some of its tables (``edit``: table file -> lines), as a config."""
    paths = {}
    for table, name in OLIST_TABLES.items():
        if table == "reviews":
            continue
        text = (OLIST / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(text.rstrip("\n") + "\n" + edit.get(table, ""), encoding="utf-8")
        paths[table] = str(tmp_path / name)
    (tmp_path / "shop.yaml").write_text(
        yaml.safe_dump({"base": "olist", "data": {"olist": paths, "max_quarantine_share": 1.0}}), encoding="utf-8"
    )
    return load_config(tmp_path / "shop.yaml")


def test_olist_lookup_rows_differing_only_in_unread_columns_are_one_row(tmp_path: Path) -> None:
    """A customer listed again with a new city and zip code, a product again with another photo count: columns
    tiercast never reads, so the rows read as one (the same accepted rows as without them)."""
    (tmp_path / "plain").mkdir()
    plain = read(_olist_copy(tmp_path / "plain", {}))[0]
    moved = {
        "customers": "cus01,uniqA,20040,rio de janeiro,RJ\n",
        "products": "prd01,perfumaria,40,287,3,225,16,10,14\n",
    }
    (tmp_path / "moved").mkdir()
    accepted = read(_olist_copy(tmp_path / "moved", moved))[0]
    pd.testing.assert_frame_equal(accepted, plain)


@pytest.mark.parametrize(
    ("table", "line", "needles"),
    [
        ("customers", "cus01,uniqZ,01001,sao paulo,SP\n", ("olist_customers_dataset.csv", "'customer_unique_id'")),
        ("products", "prd01,esporte_lazer,40,287,1,225,16,10,14\n", ("'product_category_name'",)),
    ],
    ids=["customer_key", "category"],
)
def test_olist_lookup_rows_differing_in_a_read_column_name_it(tmp_path: Path, table, line, needles) -> None:
    message = refused(_olist_copy(tmp_path, {table: line}))
    for needle in needles:
        assert needle in message, message


def test_the_quarantine_share_hint_names_the_settings_of_the_section_read() -> None:
    """An Olist config has no ``transactions`` section: the hint for its top reason names ``olist.`` settings."""
    from tiercast.pipeline.ingest.common import check_share

    for section in ("transactions", "olist"):
        with pytest.raises(InputError) as e:
            check_share({"unparseable_timestamp": 8}, 10, "orders.csv", 0.5, None, section=section)  # type: ignore[arg-type]
        assert f"check {section}.timestamp_format" in str(e.value)
        assert ("tiercast init" in str(e.value)) == (section == "transactions")  # init writes no olist settings
