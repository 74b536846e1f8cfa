"""The drift CSV of scores written to a table is named after the database, schema and table: no two tables share one."""

from pathlib import Path

import pandas as pd

from tiercast.pipeline.writers.files import write_csv
from tiercast.pipeline.writers.tables import parse_table_target


def test_tables_of_two_schemas_give_two_drift_files(tmp_path: Path) -> None:
    """``a.scores`` and ``b.scores`` of one DuckDB file used to share ``scores_drift.csv``: the second overwrote the
    first."""
    drift = pd.DataFrame({"column": ["recency_days"], "psi": [0.01]})
    for out in ("duckdb://outputs/shop.duckdb::a.scores", "duckdb://outputs/shop.duckdb::b.scores"):
        write_csv(drift.assign(table=out), tmp_path / parse_table_target(out).drift_file_name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.a.scores_drift.csv", "shop.b.scores_drift.csv"]
    assert pd.read_csv(tmp_path / "shop.a.scores_drift.csv")["table"].tolist() == [
        "duckdb://outputs/shop.duckdb::a.scores"
    ]


def test_drift_file_names_follow_the_database_and_the_default_schema() -> None:
    def name(out: str) -> str:
        return parse_table_target(out).drift_file_name

    # one table named two ways (DuckDB's default schema is main) keeps one file
    assert name("duckdb://outputs/shop.duckdb::scores") == name("duckdb://outputs/shop.duckdb::main.scores")
    assert name("duckdb://outputs/shop.duckdb::scores") == "shop.main.scores_drift.csv"
    assert name("duckdb://outputs/other.duckdb::scores") == "other.main.scores_drift.csv"
    assert name("postgresql://u:secret@db:5432/crm?sslmode=require::scores") == "crm.public.scores_drift.csv"
    assert name("postgresql://u:secret@db:5432/crm::mart.scores") == "crm.mart.scores_drift.csv"
    assert name("duckdb://my shop.v2.duckdb::scores") == "my_shop_v2.main.scores_drift.csv"
