"""The row rules as DuckDB SQL (pipeline.ingest): the engine ingestion the commands use agrees with the collected
frame of read_transactions, cleans only what needs cleaning, and each SQL column parser agrees with the pandas one
value for value."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tiercast.pipeline.config import Config
from tiercast.pipeline.ingest import columns as col
from tiercast.pipeline.ingest.loader import load_transactions
from tiercast.pipeline.ingest.parsing import parse_ids, parse_numbers, parse_text, parse_timestamp_column
from tiercast.pipeline.ingest.sources import DEFAULT_NA_VALUES
from tiercast.pipeline.ingest.transactions import read_transactions

REPO = Path(__file__).resolve().parents[2]
TX = REPO / "tests" / "fixtures" / "transactions"
RETAIL_COLUMNS = {
    "customer_id": "CustomerID",
    "timestamp": "InvoiceDate",
    "quantity": "Quantity",
    "unit_price": "Price",
    "order_id": "Invoice",
    "product_id": "StockCode",
    "channel": "Country",
}
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def config(tmp_path: Path, source: dict, **data) -> Config:
    return Config.model_validate(
        {
            "data": {
                "transactions": source,
                "quarantine_path": str(tmp_path / "quarantine.parquet"),
                "max_quarantine_share": 1.0,
                **data,
            }
        }
    )


def test_blanks_are_the_characters_str_strip_removes() -> None:
    found = "".join(c for c in map(chr, range(0x110000)) if c.isspace())
    assert found == col._BLANKS


def test_engine_ingestion_matches_the_collected_frame(tmp_path: Path) -> None:
    source = {"path": str(TX / "reasons.csv"), "columns": RETAIL_COLUMNS, "non_product_codes": ["POST"]}
    cfg = config(tmp_path, {**source, "timezone": "Europe/London"})
    data = load_transactions(cfg, run_date="2030-01-01")
    collected = read_transactions(cfg.data, run_date=pd.Timestamp("2030-01-01 23:59:59.999999"))
    assert data.n_read == collected.n_read == 14
    assert dict(data.reasons) == collected.reason_counts()
    assert data.n_accepted == len(collected.accepted)
    pd.testing.assert_frame_equal(data.accepted.reset_index(drop=True), collected.accepted, check_dtype=False)
    written = pd.read_parquet(cfg.data.quarantine_path)
    pd.testing.assert_frame_equal(written, collected.quarantine, check_dtype=False)
    assert data.fingerprint["data_customers"] == collected.accepted["customer_id"].nunique()


def test_only_values_that_need_cleaning_are_cleaned(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text(
        "customer,ts,amount,order,product\n"
        " 42 ,2020-01-01 10:00,1,o1,p1\n"  # blanks around the id
        "13085.0,2020-01-01 11:00,2,7.00,NA\n"  # a float id saved as text; a missing-value marker
        "c\u3000,2020-01-01 12:00,3,o3,\tp3\n"  # a non-ASCII blank at the end; a tab in front
        "plain,2020-01-01 13:00,4,o4,p4\n",
        encoding="utf-8",
    )
    columns = {"customer_id": "customer", "timestamp": "ts", "amount": "amount", "order_id": "order"}
    cfg = config(tmp_path, {"path": str(path), "columns": {**columns, "product_id": "product"}}, run_date="2030-01-01")
    data = load_transactions(cfg)
    acc = data.accepted.set_index("amount")
    assert acc["customer_id"].tolist() == ["42", "13085", "c", "plain"]
    assert acc["order_id"].tolist() == ["o1", "7", "o3", "o4"]
    assert acc["product_id"].isna().tolist() == [False, True, False, False]
    assert acc.loc[3.0, "product_id"] == "p3"
    assert data.n_quarantined == 0
    # the rows needing no cleaning are read as they are, the others cleaned: both reach the features
    judged = data.con.con.execute("SELECT count(*) FROM _tc_judged WHERE reason IS NULL").fetchall()[0][0]
    assert judged == 3


def test_strptime_format_runs_in_sql_like_pandas(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text(
        "customer,ts,amount\na,13/01/2010 10:00,1\na,01/02/2010 10:00,2\na,31/02/2010 10:00,3\na,02/03/2010,4\n",
        encoding="utf-8",
    )
    source = {"path": str(path), "columns": {"customer_id": "customer", "timestamp": "ts", "amount": "amount"}}
    cfg = config(tmp_path, {**source, "timestamp_format": "%d/%m/%Y %H:%M"}, run_date="2030-01-01")
    data = load_transactions(cfg)
    assert dict(data.reasons) == {"unparseable_timestamp": 2}
    assert data.accepted["timestamp"].tolist() == [pd.Timestamp("2010-01-13 10:00"), pd.Timestamp("2010-02-01 10:00")]


def test_engine_ingestion_one_line_errors(tmp_path: Path) -> None:
    from tiercast.pipeline.ingest.common import InputError

    path = tmp_path / "tx.csv"
    path.write_text("customer,ts,amount\na,yesterday,1\nb,tomorrow,2\n", encoding="utf-8")
    source = {"path": str(path), "columns": {"customer_id": "customer", "timestamp": "ts", "amount": "amount"}}
    with pytest.raises(InputError, match=r"no value of column 'ts' parses as a timestamp .*'yesterday'"):
        load_transactions(config(tmp_path, source))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("customer,ts,amount\na,2020-01-01,1\nb,2020-01-01,2,3\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 3"):
        load_transactions(config(tmp_path, {**source, "path": str(ragged)}))


# ----------------------------------------------------------------------------------- SQL parsers against pandas

_TEXT = st.lists(st.sampled_from([*"ab19.0 ,-+eE\t\u3000\u00a0\x0b", "NA", "nan", "١"]), max_size=6).map(
    "".join
) | st.sampled_from([*DEFAULT_NA_VALUES, " 12.0 ", "0012", "12.50", "1e5", "1_000", "inf", "-0", "1,5", ".5", "5."])


def _sql_values(expr: str, values: list[str | None], duck_type: str = "VARCHAR") -> list:
    con = duckdb.connect()
    frame = pd.DataFrame({"v": pd.Series(values, dtype="object"), "i": np.arange(len(values))})
    con.register("f", frame)
    return [
        r[0]
        for r in con.execute(f"SELECT {expr} FROM (SELECT CAST(v AS {duck_type}) AS v, i FROM f) ORDER BY i").fetchall()
    ]


@PROPERTY
@given(st.lists(_TEXT | st.none(), min_size=1, max_size=20))
def test_sql_text_and_ids_match_pandas(values: list[str | None]) -> None:
    raw = pd.Series(values, dtype="object")
    na = DEFAULT_NA_VALUES
    expected_text = [None if pd.isna(v) else v for v in parse_text(raw, na)]
    expected_ids = [None if pd.isna(v) else v for v in parse_ids(raw, na)]
    assert _sql_values(col.text("v", "VARCHAR", na), values) == expected_text
    assert _sql_values(col.ids("v", "VARCHAR", na), values) == expected_ids


@PROPERTY
@given(st.lists(_TEXT | st.none(), min_size=1, max_size=20), st.sampled_from([".", ","]))
@example(["+1e 1", "1e 1", "+1 e1", "1e+1"], ".")  # pandas alone reads "+1e 1" as 10
def test_sql_numbers_match_pandas(values: list[str | None], decimal: str) -> None:
    raw = pd.Series(values, dtype="object")
    parsed, bad = parse_numbers(raw, decimal, DEFAULT_NA_VALUES)
    expected = [None if b else float(v) for v, b in zip(parsed, bad, strict=True)]
    expr = col.number("v", "VARCHAR", decimal, DEFAULT_NA_VALUES)
    got = _sql_values(f"CASE WHEN {col.good_number(expr)} THEN {expr} END", values)
    assert got == expected


def test_a_blank_inside_a_number_makes_it_no_number() -> None:
    parsed, bad = parse_numbers(pd.Series(["+1e 1", "1e+1", "- 5", "5"]), ".", DEFAULT_NA_VALUES)
    assert bad.tolist() == [True, False, True, False] and parsed[[1, 3]].tolist() == [10.0, 5.0]


@PROPERTY
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**6), 10**6).map(float), min_size=1))
@example(values=[9.2e18, -9.2e18, 2.0**63 - 1024, 2.0**63])  # about the 64-bit bound, where DuckDB once said 9.2e+18
def test_sql_float_ids_match_pandas(values: list[float]) -> None:
    expected = [None if pd.isna(v) else v for v in parse_ids(pd.Series(values, dtype="float64"), DEFAULT_NA_VALUES)]
    got = _sql_values(col.ids("v", "DOUBLE", DEFAULT_NA_VALUES), values, "DOUBLE")
    integral = [e for e in expected if e is None or "e" not in e]  # repr of huge / tiny floats differs in style
    assert [g for g, e in zip(got, expected, strict=True) if e in integral] == integral


def test_sql_timestamps_with_zone_match_pandas(tmp_path: Path) -> None:
    aware = pd.Series(pd.to_datetime(["2010-06-01 10:00", "2010-01-01 12:00", None]).tz_localize("UTC"))
    expected = parse_timestamp_column(aware, None, "Europe/London", DEFAULT_NA_VALUES).tolist()
    con = duckdb.connect()
    con.register("f", pd.DataFrame({"v": aware, "i": [0, 1, 2]}))
    expr, join = col.timestamp(con, "v", "TIMESTAMP WITH TIME ZONE", None, "Europe/London", DEFAULT_NA_VALUES)
    assert join is None
    got = [r[0] for r in con.execute(f"SELECT {expr} FROM f ORDER BY i").fetchall()]
    assert [pd.Timestamp(g) if g is not None else pd.NaT for g in got][:2] == expected[:2]
    assert got[2] is None


def test_duplicates_compare_every_source_column_like_pandas(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "customer": ["a", "a", "a", "b", "b", "a"],
            "ts": pd.to_datetime(["2020-01-01"] * 6),
            "amount": [1.0, 1.0, 1.0, 2.0, 2.0, 1.0],
            "note": [None, None, "x", np.nan, np.nan, None],
            "score": [np.nan, np.nan, np.nan, 1.5, 1.5, 0.0],
        }
    )
    path = tmp_path / "tx.parquet"
    frame.to_parquet(path)
    columns = {"customer_id": "customer", "timestamp": "ts", "amount": "amount"}
    data = load_transactions(config(tmp_path, {"path": str(path), "columns": columns}, run_date="2030-01-01"))
    quarantine = pd.read_parquet(tmp_path / "quarantine.parquet")
    expected = np.flatnonzero(frame.duplicated(keep="first").to_numpy()).tolist()
    assert quarantine.loc[quarantine["reason"] == "duplicate", "source_row"].tolist() == expected == [1, 4]
    assert data.n_accepted == 4


@pytest.mark.parametrize("na_values", [DEFAULT_NA_VALUES, ("NA",)])
def test_shared_rule_definition_gives_the_sql_reason_on_every_row(tmp_path: Path, na_values: tuple[str, ...]) -> None:
    """The Ibis rules Spark runs (row_rules), run on DuckDB over the rows DuckDB's ingestion parsed, give the reason
    its SQL CASE gave to every row (with only 'NA' missing, the empty ids reach the schema rule)."""
    import ibis

    from tiercast.pipeline.ingest.raw import ROW
    from tiercast.pipeline.ingest.row_rules import DUPLICATE, RuleSet, reason
    from tiercast.pipeline.ingest.sql import BAD, ingest

    source = {"path": str(TX / "reasons.csv"), "columns": RETAIL_COLUMNS, "non_product_codes": ["POST"]}
    cfg = config(tmp_path, {**source, "timezone": "Europe/London", "na_values": list(na_values)})
    run_date = pd.Timestamp("2030-01-01 23:59:59.999999")
    con = ibis.duckdb.connect()
    result = ingest(con.con, cfg.data.source, run_date)  # type: ignore[arg-type]
    parsed = con.table("_tc_parsed")
    parsed = parsed.mutate(**{DUPLICATE: parsed[ROW].isin(con.table("_tc_dup")[ROW])})
    rules = RuleSet.of(cfg.data.source, cfg.data.source.columns.source_columns(), run_date)
    shared = con.execute(parsed.select(ROW, reason=reason(parsed, rules)).order_by(ROW))
    sql = dict(con.con.execute(f"SELECT {ROW}, reason FROM {BAD}").fetchall())
    got = [None if pd.isna(r) else r for r in shared["reason"]]
    assert got == [sql.get(row) for row in shared[ROW]]
    assert sum(r is not None for r in got) == result.n_quarantined == 9
