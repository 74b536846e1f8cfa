"""pipeline.sources: the `data:` config section and the presets that use it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tiercast.pipeline.config import load_config
from tiercast.pipeline.ingest.sources import ColumnMapping, DataConfig, OlistSource, TransactionSource

REPO = Path(__file__).resolve().parents[2]
COLUMNS = {"customer_id": "c", "timestamp": "t", "amount": "a"}


def source(**kw) -> TransactionSource:
    return TransactionSource.model_validate({"path": "x.csv", "columns": COLUMNS, **kw})


def test_column_mapping_needs_an_amount() -> None:
    with pytest.raises(ValidationError, match="amount"):
        ColumnMapping(customer_id="c", timestamp="t", quantity="q")
    with pytest.raises(ValidationError, match="not both"):
        ColumnMapping(customer_id="c", timestamp="t", amount="a", quantity="q", unit_price="p")
    m = ColumnMapping(customer_id="c", timestamp="t", quantity="q", unit_price="p")
    assert m.source_columns() == {"customer_id": "c", "timestamp": "t", "quantity": "q", "unit_price": "p"}


def test_unknown_keys_are_errors() -> None:
    with pytest.raises(ValidationError, match="delimeter"):
        source(delimeter=";")


@pytest.mark.parametrize(
    ("path", "fmt"),
    [("a.csv", "csv"), ("a.TXT", "csv"), ("a.parquet", "parquet"), ("a.pq", "parquet"), ("a.duckdb", "duckdb")],
)
def test_auto_format_from_suffix(path: str, fmt: str) -> None:
    extra = {"table": "t"} if fmt == "duckdb" else {}
    assert source(path=path, **extra).resolved_format() == fmt


def test_auto_format_unknown_suffix() -> None:
    with pytest.raises(ValidationError, match="cannot tell the format"):
        source(path="data.json")


@pytest.mark.parametrize("name", ["sales.xlsx", "sales.XLS", "sales.ods"])
def test_a_spreadsheet_workbook_gets_how_to_export_it(name: str, tmp_path: Path) -> None:
    from tiercast.pipeline.config import ConfigError
    from tiercast.pipeline.starter import sniff

    with pytest.raises(ValidationError, match=f"{name} is a spreadsheet workbook, which is not read: save each sheet"):
        source(path=name)
    (tmp_path / name).write_bytes(b"PK\x03\x04")
    with pytest.raises(ConfigError, match="File > Save As > CSV UTF-8"):
        sniff(tmp_path / name)


def test_duckdb_needs_exactly_one_of_table_or_query() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        source(path="w.duckdb")
    with pytest.raises(ValidationError, match="exactly one"):
        source(path="w.duckdb", table="t", query="select 1")
    with pytest.raises(ValidationError, match="only apply to format duckdb"):
        source(path="x.csv", table="t")
    s = source(path="w.db", format="duckdb", query="SELECT * FROM t")
    assert s.describe() == "w.db (query)"
    assert source(path="w.duckdb", table="main.sales").describe() == "w.duckdb:main.sales"


@pytest.mark.parametrize(("given", "stored"), [(";", ";"), ("whitespace", "whitespace"), ("\\t", "\t"), ("|", "|")])
def test_delimiter(given: str, stored: str) -> None:
    assert source(delimiter=given).delimiter == stored


def test_bad_delimiter_and_timezone() -> None:
    with pytest.raises(ValidationError, match="delimiter"):
        source(delimiter=";;")
    with pytest.raises(ValidationError, match="time zone"):
        source(timezone="Mars/Olympus")
    assert source(timezone="Europe/London").timezone == "Europe/London"


def test_non_product_codes_need_a_product_column() -> None:
    with pytest.raises(ValidationError, match="product_id"):
        source(non_product_codes=["POST"])


def test_rule_switches_are_closed_sets() -> None:
    assert source(duplicates="keep", zero_amounts="keep").duplicates == "keep"
    with pytest.raises(ValidationError):
        source(duplicates="drop")


def test_data_config_needs_exactly_one_source() -> None:
    olist = {"orders": "o.csv", "order_items": "i.csv", "customers": "c.csv"}
    tx = {"path": "x.csv", "columns": COLUMNS}
    with pytest.raises(ValidationError, match="exactly one"):
        DataConfig.model_validate({})
    with pytest.raises(ValidationError, match="exactly one"):
        DataConfig.model_validate({"transactions": tx, "olist": olist})
    d = DataConfig.model_validate({"olist": olist})
    assert isinstance(d.source, OlistSource)
    assert d.timezone == "America/Sao_Paulo"
    assert set(d.source.tables()) == {"orders", "order_items", "customers"}
    assert isinstance(DataConfig.model_validate({"transactions": tx}).source, TransactionSource)


def test_config_is_frozen() -> None:
    s = source()
    with pytest.raises(ValidationError):
        s.delimiter = ";"  # type: ignore[misc]


@pytest.mark.parametrize("preset", ["cdnow", "olist", "online_retail_ii", "demo"])
def test_presets_validate(preset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    cfg = load_config(f"configs/{preset}.yaml")
    assert cfg.data.source is not None


def test_cdnow_preset_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    src = load_config("configs/cdnow.yaml").data.transactions
    assert src is not None
    assert (src.resolved_format(), src.delimiter, src.timestamp_format) == ("csv", "whitespace", "%Y%m%d")
    assert (src.duplicates, src.zero_amounts) == ("keep", "keep")
    assert src.columns.order_id is None and src.path.exists()


def test_olist_preset_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    src = load_config("configs/olist.yaml").data.olist
    assert src is not None
    assert src.customer_key == "customer_unique_id"
    assert all(str(p).startswith("../shared/data/olist_sample/") for p in src.tables().values())
