"""tiercast init's notes on content the config cannot read as meant: thousands marks read as decimals, several
currencies, an unmapped refund column, customers on an order's first line only, mixed timestamp forms the reader
guesses, and a title line above the header."""

from __future__ import annotations

import pandas as pd
import pytest

from tiercast.pipeline.config import ConfigError, load_config
from tiercast.pipeline.ingest.transactions import read_transactions
from tiercast.pipeline.starter import sniff, starter_config

HEAD = "customer_id,order_id,order_date,amount\n"


def test_dots_as_thousands_marks_are_flagged(tmp_path):
    """'1.437' beside '874': the '.' marks thousands, and read as a decimal point the amount is 1000 times small."""
    (tmp_path / "s.csv").write_text(HEAD.replace(",", ";") + "A;1;2023-01-02;874\nA;2;2023-01-03;1.437\n")
    found = sniff(tmp_path / "s.csv")
    assert found.transactions.get("decimal", ".") == "."  # the reading itself is unchanged
    assert found.notes == (
        "1 of the first 2 values of column 'amount' have '.' followed by exactly three digits (e.g. '1.437') beside "
        "numbers without a '.', as if '.' marked thousands: they would be read as decimals ('1.437' as 1.437, not "
        "1437); if '.' marks thousands, export the column without thousands marks",
    )
    # Decimals of other lengths, or three decimals on every value, are decimals.
    (tmp_path / "d.csv").write_text(HEAD + "A,1,2023-01-02,8\nA,2,2023-01-03,1.5\n")
    (tmp_path / "t.csv").write_text(HEAD + "A,1,2023-01-02,8.000\nA,2,2023-01-03,1.437\n")
    assert sniff(tmp_path / "d.csv").notes == sniff(tmp_path / "t.csv").notes == ()


def test_a_currency_column_with_several_currencies_is_flagged(tmp_path):
    (tmp_path / "m.csv").write_text(
        "order_id,buyer_id,purchase_date,item_total,Currency Code\n"
        "1,A,2023-01-02,120.00,EUR\n2,A,2023-02-02,80.00,EUR\n3,B,2023-01-05,15000,JPY\n"
    )
    assert sniff(tmp_path / "m.csv").notes == (
        "column 'Currency Code' holds 2 currencies in the first 3 rows ('EUR' on 2 rows, 'JPY' on 1 row): tiercast "
        "adds every amount as one currency; convert the amounts to one currency first, or split the file per "
        "currency (a config for each)",
    )
    (tmp_path / "one.csv").write_text("order_id,buyer_id,purchase_date,item_total,currency\n1,A,2023-01-02,1,EUR\n")
    assert sniff(tmp_path / "one.csv").notes == ()


def test_an_unmapped_refund_column_is_flagged(tmp_path):
    (tmp_path / "r.csv").write_text(
        "Name,Email,Created at,Total,Refunded Amount\n"
        "#1001,ann@shop.test,2023-01-02 10:00:00,84.95,80.00\n#1002,ann@shop.test,2023-02-02 10:00:00,34.95,0.00\n"
    )
    assert sniff(tmp_path / "r.csv").notes == (
        "column 'Refunded Amount' is not mapped: its refunds (1 of the first 2 rows, e.g. '80.00') are not counted, "
        "so net spend is overstated; tiercast counts a refund only as a line with a negative amount: add the refunds "
        "to the export as negative amount lines",
    )


def test_customers_on_the_first_line_of_each_order_only_are_flagged(tmp_path):
    (tmp_path / "o.csv").write_text(
        "Name,Email,Created at,Lineitem quantity,Lineitem price\n"
        "#1001,ann@shop.test,2023-01-02 10:00:00,1,40.00\n#1001,,2023-01-02 10:00:00,1,30.00\n"
        "#1002,bob@shop.test,2023-01-05 11:00:00,1,20.00\n#1003,,2023-01-06 11:00:00,1,20.00\n"
    )
    assert sniff(tmp_path / "o.csv").notes == (
        "column 'Email' is empty on 1 of the first 4 rows whose order ('Name') has a customer on another line (the "
        "customer on an order's first line only): those lines would be quarantined as missing_customer; fill the "
        "customer on every line of the export",
    )


def test_mixed_timestamp_forms_the_reader_guesses_get_no_format(tmp_path):
    """No one format reads '2022/01/02 10:15' and 'Jan 03, 2022 11:30 AM', but the reader guesses each: init sets
    no timestamp_format (which would quarantine the other forms) and gives no advice."""
    (tmp_path / "s.csv").write_text(
        "order_id,customer_id,order_date,amount\n1,A,2022-01-01 09:48:45,10\n2,A,2022/01/02 10:15,12\n"
        '3,B,"Jan 03, 2022 11:30 AM",14\n4,B,2022/01/04 10:15,16\n5,C,"Jan 05, 2022 11:30 AM",18\n'
    )
    text, found = starter_config(tmp_path / "s.csv")
    assert "timestamp_format" not in found.transactions and found.notes == ()
    (tmp_path / "shop.yaml").write_text(text)
    tx = read_transactions(load_config(tmp_path / "shop.yaml").data).accepted
    assert tx["timestamp"].sort_values().tolist()[2] == pd.Timestamp("2022-01-03 11:30")
    assert len(tx) == 5
    (tmp_path / "bad.csv").write_text("order_id,customer_id,order_date,amount\n1,A,soon,10\n2,B,later,12\n")
    assert sniff(tmp_path / "bad.csv").notes[0].startswith("no known format parses the timestamps (e.g. 'soon')")


def test_a_title_line_above_the_header_is_named(tmp_path):
    (tmp_path / "r.csv").write_text(
        "Orders report generated 2023-07-01\nOrder ID,Customer ID,Order Date,Amount\nO1,A,2023-01-02 10:00:00,10.00\n"
    )
    with pytest.raises(ConfigError, match=r"line 1 \('Orders report generated 2023-07-01'\) looks like a title"):
        sniff(tmp_path / "r.csv")


def test_the_amount_example_names_a_column_of_numbers(tmp_path):
    """Two columns named like sales leave the amount unplaced: the example names one of numbers, not 'Time'."""
    (tmp_path / "i.csv").write_text(
        "Date,Time,Item,Gross Sales,Net Sales,Transaction ID,Customer ID\n2023-01-02,10:00:00,Latte,4.50,4.50,T1,A\n"
    )
    with pytest.raises(ConfigError, match="cannot tell which column is amount") as e:
        sniff(tmp_path / "i.csv")
    assert str(e.value).endswith("(e.g. --column 'amount=Gross Sales')")


def test_lines_repeated_within_an_order_are_flagged(tmp_path):
    """A till writing one line per scanned unit: the copies would be quarantined as duplicates by default."""
    (tmp_path / "till.csv").write_text(
        "Date,Item,Qty,Net Sales,Transaction ID,Customer ID\n"
        "2023-01-02,Latte,1,4.50,T1,A\n2023-01-02,Latte,1,4.50,T1,A\n2023-01-02,Croissant,1,3.00,T1,A\n"
        "2023-01-03,Tea,1,2.50,T3,B\n2023-01-03,Tea,1,2.50,T3,B\n2023-01-03,Tea,1,2.50,T3,B\n"
    )
    found = sniff(tmp_path / "till.csv")
    assert found.transactions.get("duplicates", "quarantine") == "quarantine"
    assert (
        "3 of the first 6 rows repeat another line exactly (e.g. order 'T1'): they would be quarantined as duplicate; "
        "if they are real purchases (a till writing one line per scanned unit), set duplicates: keep"
    ) in found.notes
    (tmp_path / "once.csv").write_text(HEAD + "A,1,2023-01-02,8\nA,1,2023-01-02,9\n")
    assert sniff(tmp_path / "once.csv").notes == ()
