"""tiercast init: a starter config sniffed from a transaction file reads that file as intended."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.pipeline.cli_harness import assert_clean_failure, invoke
from tiercast.pipeline.cli import app
from tiercast.pipeline.config import ConfigError, load_config
from tiercast.pipeline.ingest.sources import DataConfig
from tiercast.pipeline.ingest.transactions import read_transactions
from tiercast.pipeline.starter import sniff

REPO = Path(__file__).resolve().parents[2]
TX = REPO / "tests" / "fixtures" / "transactions"
runner = CliRunner()


def test_init_writes_a_config_that_reads_a_semicolon_day_first_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shop.csv").write_text(
        "Kunden-Nr;Bestelldatum;Umsatz;Bestellnummer;Land\n"
        "K1;13/02/2020 10:05;12,50;B1;DE\n"
        "K1;03/03/2020 11:00;3,10;B2;DE\n"
        "K2;01/02/2020 09:00;100,00;B3;AT\n",
        encoding="utf-8",
    )
    result = runner.invoke(
        app,
        [
            "init",
            "--data",
            "shop.csv",
            "--column",
            "amount=Umsatz",
            "--column",
            "customer_id=Kunden-Nr",
            "--column",
            "order_id=Bestellnummer",
            "--column",
            "timestamp=Bestelldatum",
        ],
    )
    assert result.exit_code == 0, result.output
    cfg = load_config(tmp_path / "config.yaml")
    src = cfg.data.transactions
    assert (src.delimiter, src.decimal, src.timestamp_format) == (";", ",", "%d/%m/%Y %H:%M")
    assert cfg.playbook.rules  # the packaged defaults came with it
    tx = read_transactions(cfg.data).accepted.sort_values("timestamp")
    assert tx["amount"].tolist() == [100.0, 12.5, 3.1]
    assert tx["timestamp"].tolist() == [
        pd.Timestamp(s) for s in ("2020-02-01 09:00", "2020-02-13 10:05", "2020-03-03 11:00")
    ]
    # A second init does not overwrite silently.
    again = runner.invoke(app, ["init", "--data", "shop.csv"])
    assert again.exit_code == 2 and "--force" in again.output


def test_sniff_maps_the_online_retail_layout_by_name(tmp_path):
    raw = pd.read_parquet(REPO / "data" / "online_retail_ii" / "online_retail_ii.parquet").head(500)
    raw.to_parquet(tmp_path / "lines.parquet", index=False)
    found = sniff(tmp_path / "lines.parquet")
    assert found.transactions["columns"] == {
        "customer_id": "Customer ID",
        "timestamp": "InvoiceDate",
        "quantity": "Quantity",
        "unit_price": "Price",
        "order_id": "Invoice",
        "product_id": "StockCode",
        "channel": "Country",
    }
    assert found.unmapped == ("Description",)
    assert "timestamp_format" not in found.transactions  # typed timestamps
    assert "duplicates" not in found.transactions  # an invoice column: the default (quarantine) applies


def test_sniff_maps_short_names_of_event_logs(tmp_path):
    (tmp_path / "log.csv").write_text("user_id,ts,order,amt\nu1,2024-01-05 10:00,o1,12.5\nu2,2024-01-06 11:30,o2,7\n")
    found = sniff(tmp_path / "log.csv")
    assert found.transactions["columns"] == {
        "customer_id": "user_id",
        "timestamp": "ts",
        "amount": "amt",
        "order_id": "order",
    }


def test_sniff_reads_whitespace_files_and_compact_dates():
    found = sniff(TX / "cdnow_sample.txt")
    tx = found.transactions
    assert (tx["delimiter"], tx["timestamp_format"]) == ("whitespace", "%Y%m%d")
    assert tx["columns"] == {
        "customer_id": "customer_id",
        "timestamp": "date",
        "amount": "dollar_value",
        "quantity": "number_of_cds",
    }
    # No order or line id: identical lines are separate purchases, as the cdnow preset reads them.
    assert tx["duplicates"] == "keep" and any("duplicates: keep" in n for n in found.notes)


def test_ambiguous_day_month_order_is_flagged(tmp_path):
    (tmp_path / "a.csv").write_text("customer,date,amount\na,01/02/2020,1\nb,03/04/2020,2\n", encoding="utf-8")
    found = sniff(tmp_path / "a.csv")
    assert found.transactions["timestamp_format"] == "%d/%m/%Y"
    assert any("'%m/%d/%Y'" in n for n in found.notes)


def test_unrecognised_columns_are_an_error_naming_the_columns(tmp_path):
    (tmp_path / "a.csv").write_text("who,when,what\na,2020-01-01,1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"customer_id / timestamp / amount; columns: \['who', 'when', 'what'\]"):
        sniff(tmp_path / "a.csv")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (
            "customer_id,date,amount\nM\xfcller,2010-01-01,1.0\n".encode("latin-1"),
            "not UTF-8 text; re-save it as UTF-8",
        ),
        (gzip.compress(b"customer_id,date,amount\n1,2010-01-01,1.0\n"), "gzip-compressed but not named .gz; rename it"),
        (b"customer_id,date,amount\n1,2010-01-01,1.0\n2,2010-01-02,2.0,9,9\n", "Expected 3 fields in line 3, saw 5"),
        (b"customer_id,date,amount,amount\n1,2010-01-01,1.0,2.0\n", "duplicate column name 'amount'"),
    ],
    ids=["latin-1", "gzip-named-csv", "ragged", "duplicate-header"],
)
def test_init_on_a_file_it_cannot_read_is_a_config_error_naming_it(tmp_path, content, needle):
    path = tmp_path / "tx.csv"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="tx.csv: ") as e:
        sniff(path)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_init_on_a_folder_without_data_files_or_of_the_olist_tables_fails_in_one_line(tmp_path):
    runner = CliRunner()
    (tmp_path / "notes.md").write_text("no data here\n")
    result = runner.invoke(app, ["init", "--data", str(tmp_path), "--out", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert f"{tmp_path}: no data files (.csv/.txt/.tsv/.dat, also .gz, or .parquet/.pq) in or matching it" in " ".join(
        result.output.split()
    )
    (tmp_path / "olist_orders_dataset.csv").write_text("order_id\n")
    result = runner.invoke(app, ["init", "--data", str(tmp_path), "--out", str(tmp_path / "c.yaml")])
    assert "start from `base: olist` instead" in " ".join(result.output.split())
    assert not (tmp_path / "c.yaml").exists()


def _flat(text: str) -> str:
    return " ".join(text.split())


SHOPIFY_HEADER = (
    "Name,Email,Financial Status,Paid at,Subtotal,Total,Created at,Lineitem quantity,Lineitem name,Lineitem price,"
    "Lineitem compare at price,Billing Country,Shipping Country,Id\n"
)


def test_init_maps_a_shopify_orders_export_to_line_amounts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "orders_export.csv").write_text(
        SHOPIFY_HEADER
        + "#1001,ann@example.com,paid,2024-03-14 14:05:00 -0400,40.00,45.00,2024-03-14 14:05:00 -0400,2,Shirt,20.00,"
        ",US,US,5501\n"
        "#1002,bob@example.com,paid,2024-03-15 09:00:00 -0400,35.00,40.00,2024-03-15 09:00:00 -0400,1,Hat,15.00,"
        ",US,US,5502\n"
        "#1002,bob@example.com,,,,,2024-03-15 09:00:00 -0400,1,Mug,20.00,,,,\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["init", "--data", "orders_export.csv"])
    assert result.exit_code == 0, result.output
    out = _flat(result.output)
    assert out.startswith(
        "wrote config.yaml: customer_id <- 'Email', timestamp <- 'Created at', quantity <- 'Lineitem quantity', "
        "unit_price <- 'Lineitem price', order_id <- 'Name' "
        "check: column 'Total' is empty on 1 of the first 3 rows (an order total on the first line of each order "
        "only): amounts are 'Lineitem quantity' x 'Lineitem price', without shipping, taxes and order discounts; "
        "for order totals pass --column amount='Total'"
    )
    cfg = load_config(tmp_path / "config.yaml")
    src = cfg.data.transactions
    assert src.columns.model_dump(exclude_none=True) == {
        "customer_id": "Email",
        "timestamp": "Created at",
        "quantity": "Lineitem quantity",
        "unit_price": "Lineitem price",
        "order_id": "Name",
    }
    assert (src.timestamp_format, src.duplicates) == (None, "quarantine")
    with pytest.warns(UserWarning, match="carry a UTC offset; converted to UTC"):
        tx = read_transactions(cfg.data).accepted
    assert tx["amount"].tolist() == [40.0, 15.0, 20.0] and tx["order_id"].tolist() == ["#1001", "#1002", "#1002"]


def test_sniff_keeps_filled_order_totals_and_reads_woocommerce_names(tmp_path):
    (tmp_path / "shop.csv").write_text(
        SHOPIFY_HEADER + "#1001,ann@example.com,paid,,40.00,45.00,2024-03-14 14:05:00 -0400,2,Shirt,20.00,,US,US,1\n"
    )
    assert sniff(tmp_path / "shop.csv").transactions["columns"] == {
        "customer_id": "Email",
        "timestamp": "Created at",
        "amount": "Total",
        "quantity": "Lineitem quantity",
        "order_id": "Name",
    }
    (tmp_path / "woo.csv").write_text(
        "order_number,status,date_created,billing_first_name,billing_email,order_subtotal,order_total\n"
        "101,completed,2024-03-14 14:05:00,Ann,ann@example.com,40.00,45.00\n"
    )
    found = sniff(tmp_path / "woo.csv")
    assert found.transactions["columns"] == {
        "customer_id": "billing_email",
        "timestamp": "date_created",
        "amount": "order_total",
        "order_id": "order_number",
    }
    assert found.notes == ()


def test_a_name_column_without_order_numbers_is_no_order_id(tmp_path):
    (tmp_path / "a.csv").write_text("Name,Customer Email,Date,Subtotal\nAnn,a@x.com,2024-01-02,5\n")
    tx = sniff(tmp_path / "a.csv").transactions
    assert tx["columns"] == {"customer_id": "Customer Email", "timestamp": "Date", "amount": "Subtotal"}
    assert tx["duplicates"] == "keep"


def test_init_flags_amounts_with_currency_symbols(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "usd.csv").write_text(
        'Order ID,Customer ID,order_date,Total\n1,c1,2024-01-02,€41.09\n2,c2,2024-01-03,"$1,200.00"\n'
        "3,c3,2024-01-04,7\n"
    )
    result = runner.invoke(app, ["init", "--data", "usd.csv"])
    assert result.exit_code == 0, result.output
    assert _flat(result.output).splitlines() == [
        "wrote config.yaml: customer_id <- 'Customer ID', timestamp <- 'order_date', amount <- 'Total', order_id <- "
        "'Order ID' check: 2 of the first 3 values of column 'Total' carry a currency symbol (e.g. '€41.09'), which "
        "is not read: those rows would be quarantined as non_numeric_amount; export the amounts without the currency "
        "symbol and without thousands separators next: tiercast validate --config config.yaml"
    ]
    (tmp_path / "eur.csv").write_text(
        "customer_email;Paid at;Total\na@x.com;2024-01-02;41,09 €\nb@x.com;2024-01-03;5,00 €\n"
    )
    found = sniff(tmp_path / "eur.csv")
    assert found.transactions["decimal"] == ","  # read once the symbol is gone
    assert found.notes[0] == (
        "2 of the first 2 values of column 'Total' carry a currency symbol (e.g. '41,09 €'), which is not read: those "
        "rows would be quarantined as non_numeric_amount; export the amounts without the currency symbol"
    )


@pytest.mark.parametrize(
    ("first", "second", "fmt"),
    [
        ("3/14/2024 2:05:00 PM", "4/2/2024 11:30:00 AM", "%m/%d/%Y %I:%M:%S %p"),
        ("14/3/2024 2:05 PM", "2/4/2024 11:30 AM", "%d/%m/%Y %I:%M %p"),
    ],
    ids=["month-first", "day-first"],
)
def test_init_sniffs_twelve_hour_times(tmp_path, monkeypatch, first, second, fmt):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text(f"customer,Date,amount,order\na,{first},1,o1\nb,{second},2,o2\n")
    result = runner.invoke(app, ["init", "--data", "t.csv"])
    assert result.exit_code == 0, result.output
    assert "check:" not in result.output
    cfg = load_config(tmp_path / "config.yaml")
    assert cfg.data.transactions.timestamp_format == fmt
    tx = read_transactions(cfg.data).accepted
    assert tx["timestamp"].tolist() == [pd.Timestamp("2024-03-14 14:05"), pd.Timestamp("2024-04-02 11:30")]


WOO_HEADER = "order_number,status,date_created,customer_id,billing_email,order_total\n"


def test_woocommerce_guest_checkouts_are_told_apart_by_email(tmp_path):
    """WooCommerce writes customer_id 0 for every guest checkout: read as an id, all guests would be one customer.
    The billing e-mail tells them apart."""
    (tmp_path / "woo.csv").write_text(
        WOO_HEADER + "101,completed,2024-03-14 14:05:00,17,ann@example.com,45.00\n"
        "102,completed,2024-03-15 09:00:00,0,bob@example.com,40.00\n"
        "103,completed,2024-03-16 10:00:00,0,cy@example.com,12.00\n"
    )
    found = sniff(tmp_path / "woo.csv")
    assert found.transactions["columns"]["customer_id"] == "billing_email"
    assert found.notes == (
        "column 'customer_id' is '0' on 2 of the first 3 rows (guest checkouts, which would all be one customer): "
        "customers are told apart by 'billing_email' instead; pass --column customer_id='customer_id' to keep "
        "'customer_id'",
    )
    given = sniff(tmp_path / "woo.csv", {"customer_id": "customer_id"})
    assert given.transactions["columns"]["customer_id"] == "customer_id"
    assert "would all be one customer" in given.notes[0]


def test_a_guest_placeholder_without_an_email_column_is_flagged(tmp_path):
    (tmp_path / "pos.csv").write_text(
        "receipt_id,customer_id,date,total\n1,C1,2024-03-14,5\n2,GUEST,2024-03-14,7\n3,C2,2024-03-15,9\n"
    )
    found = sniff(tmp_path / "pos.csv")
    assert found.transactions["columns"]["customer_id"] == "customer_id"
    assert found.notes == (
        "column 'customer_id' is 'GUEST' on 1 of the first 3 rows, which looks like a placeholder for sales without "
        "a customer: those rows would all be one customer; map a column that tells them apart "
        "(--column customer_id=COLUMN) or leave them out of the export",
    )
    (tmp_path / "plain.csv").write_text("receipt_id,customer_id,date,total\n1,C1,2024-03-14,5\n2,C0,2024-03-14,7\n")
    assert sniff(tmp_path / "plain.csv").notes == ()


@pytest.mark.parametrize(
    ("values", "what"),
    [
        (["44720.58472222222", "45043.76458333333"], "Excel serial day numbers"),
        (["1654696920", "1682619660"], "Unix epoch seconds"),
    ],
)
def test_numeric_timestamps_get_the_advice_validate_gives(tmp_path, values, what):
    """No timestamp_format reads epoch seconds or Excel serial days: init says to convert them, as validate does."""
    rows = "".join(f"{i},c{i},{v},10\n" for i, v in enumerate(values))
    (tmp_path / "n.csv").write_text("order_id,customer_id,timestamp,amount\n" + rows)
    (note,) = sniff(tmp_path / "n.csv").notes
    assert note.startswith(f"the timestamps are numbers (e.g. {values[0]!r}): they look like {what}, which no ")
    assert "convert them to dates first" in note and "set timestamp_format" not in note


@pytest.mark.parametrize("case", ["truncated", "empty", "csv_named_parquet"])
def test_an_unreadable_parquet_file_is_one_line_naming_it(tmp_path: Path, case: str) -> None:
    """A truncated Parquet file, an empty one and a CSV under a .parquet name: `init` names the file and writes
    nothing, as `validate` does (before: "unexpected ArrowInvalid", exit 1)."""
    whole = tmp_path / "whole.parquet"
    pd.DataFrame({"customer_id": ["a"] * 50, "timestamp": pd.date_range("2023-01-01", periods=50)}).to_parquet(whole)
    bad = tmp_path / "lines.parquet"
    content = {"truncated": whole.read_bytes()[:300], "empty": b"", "csv_named_parquet": b"customer_id,amount\na,1\n"}
    bad.write_bytes(content[case])
    result = invoke("init", "--data", str(bad), "--out", str(tmp_path / "c.yaml"), cwd=tmp_path)
    reason = "file is empty (0 bytes)" if case == "empty" else "not a readable Parquet file"
    assert_clean_failure(result, str(bad), reason)
    assert not (tmp_path / "c.yaml").exists()


@pytest.mark.parametrize(
    ("amounts", "decimal"), [(['"65,94"', '"9,5"', '"120,00"'], ","), (['"1,234"', '"12,345"', '"7"'], None)]
)
def test_quoted_decimal_commas_in_a_comma_delimited_file(
    tmp_path: Path, amounts: list[str], decimal: str | None
) -> None:
    """'"65,94"' in a comma-delimited file is a decimal comma (before, no decimal was set and no amount was read);
    '"1,234"' may be a thousands mark, so it sets none."""
    rows = [f"c{i},2023-01-{1 + i:02d} 10:00,{amounts[i % 3]},o{i}" for i in range(30)]
    path = tmp_path / "shop.csv"
    path.write_text("customer_id,timestamp,amount,order_id\n" + "\n".join(rows) + "\n")
    found = sniff(path)
    assert found.transactions["delimiter"] == ","
    assert found.transactions.get("decimal") == decimal
    if decimal:  # the proposed source reads every amount
        data = DataConfig.model_validate(
            {"transactions": found.transactions, "quarantine_path": str(tmp_path / "q.parquet")}
        )
        result = read_transactions(data, run_date=pd.Timestamp("2030-01-01"))
        assert result.n_quarantined == 0 and sorted(result.accepted["amount"].unique()) == [9.5, 65.94, 120.0]


def test_an_empty_order_id_column_is_not_mapped(tmp_path: Path) -> None:
    """An `order_id` column with no value in the sample (a Parquet export's all-null column): mapped, every line
    would be quarantined as missing_order_id; it is left out with a note, and orders are a customer's timestamp."""
    path = tmp_path / "lines.parquet"
    pd.DataFrame(
        {
            "customer_id": [f"c{i % 7}" for i in range(40)],
            "timestamp": pd.date_range("2023-01-01", periods=40, freq="D"),
            "amount": [10.0 + i for i in range(40)],
            "order_id": pd.Series([None] * 40, dtype="object"),
        }
    ).to_parquet(path)
    found = sniff(path)
    assert "order_id" not in found.transactions["columns"]
    assert "column 'order_id' is empty in the first 40 rows: not mapped as the order id" in found.notes[0]
    data = DataConfig.model_validate({"transactions": found.transactions, "quarantine_path": str(tmp_path / "q.pq")})
    assert read_transactions(data, run_date=pd.Timestamp("2030-01-01")).n_quarantined == 0
