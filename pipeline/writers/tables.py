"""Database tables as outputs: scores written through Ibis to a DuckDB file or a PostgreSQL schema, atomically.

A table target is written as ``duckdb://PATH::TABLE`` (a DuckDB database file, created if missing; ``PATH`` as in a
shell, e.g. ``duckdb://outputs/scores.duckdb::scores`` or ``duckdb:///srv/db/tiercast.duckdb::main.scores``) or
``postgresql://USER:PASSWORD@HOST:PORT/DATABASE::SCHEMA.TABLE`` (a libpq URL; the schema defaults to ``public``).
Anything else is a file path. The drift CSV of scores written to a table is named after the database, schema and
table (:attr:`TableTarget.drift_file_name`), so tables of different schemas or databases keep a file each.

The rows go to a staging table in the same schema first; one transaction then drops the old table and renames the
staging table in its place, so readers see the old rows or the new ones, never a half-written table, and a failed
write leaves the old table as it was.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import ibis
import pandas as pd

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SCHEMES = {"duckdb://": "duckdb", "postgresql://": "postgres", "postgres://": "postgres"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class TableTargetError(ValueError):
    """A table target that cannot be parsed or written."""


@dataclass(frozen=True)
class TableTarget:
    """Where a table goes: the engine, its location (a DuckDB file or a PostgreSQL URL), schema and table name."""

    kind: Literal["duckdb", "postgres"]
    location: str
    schema: str | None
    table: str

    def describe(self) -> str:
        """The target without credentials, for messages."""
        where = self.location if self.kind == "duckdb" else re.sub(r"//[^@/]*@", "//", self.location)
        name = f"{self.schema}.{self.table}" if self.schema else self.table
        return f"{self.kind} {where} table {name}"

    @property
    def qualified(self) -> str:
        return f'"{self.schema}"."{self.table}"' if self.schema else f'"{self.table}"'

    @property
    def database(self) -> str:
        """The database's name, safe in a file name: the DuckDB file's stem, or the PostgreSQL URL's database."""
        name = Path(self.location).stem if self.kind == "duckdb" else urlsplit(self.location).path.strip("/")
        return _UNSAFE.sub("_", name) or self.kind

    @property
    def drift_file_name(self) -> str:
        """``DATABASE.SCHEMA.TABLE_drift.csv`` (DuckDB's default schema is ``main``): one file per table, e.g.
        ``shop.main.scores_drift.csv`` for ``duckdb://outputs/shop.duckdb::scores``."""
        schema = self.schema or ("main" if self.kind == "duckdb" else "public")
        return f"{self.database}.{schema}.{self.table}_drift.csv"


def parse_table_target(text: str) -> TableTarget | None:
    """The table target of ``text`` (see the module docstring), or None when it names a file."""
    scheme = next((s for s in _SCHEMES if text.startswith(s)), None)
    if scheme is None:
        return None
    location, sep, name = text.rpartition("::")
    if not sep or not location or not name:
        raise TableTargetError(f"{text}: a table target ends with ::TABLE or ::SCHEMA.TABLE")
    parts = name.split(".")
    if len(parts) > 2 or not all(_IDENT.match(p) for p in parts):
        raise TableTargetError(f"{text}: table name {name!r} must be TABLE or SCHEMA.TABLE of letters, digits, _")
    schema, table = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
    kind = _SCHEMES[scheme]
    if kind == "duckdb":
        path = location[len(scheme) :]
        if not path:
            raise TableTargetError(f"{text}: duckdb:// needs a database file path")
        return TableTarget("duckdb", str(Path(path).expanduser()), schema, table)
    return TableTarget("postgres", location, schema or "public", table)


def connect_target(target: TableTarget) -> ibis.BaseBackend:
    """An Ibis connection to the target's database."""
    try:
        if target.kind == "duckdb":
            Path(target.location).parent.mkdir(parents=True, exist_ok=True)
            return ibis.duckdb.connect(target.location)
        return ibis.connect(target.location.replace("postgres://", "postgresql://", 1))
    except Exception as exc:  # driver errors differ by engine; the message names the target
        raise TableTargetError(f"cannot connect to {target.describe()}: {str(exc).splitlines()[0]}") from None


def write_table(frame: pd.DataFrame, target: TableTarget) -> int:
    """Replace the target table with ``frame`` atomically (staging table, then one swap transaction); rows written."""
    con = connect_target(target)
    staging = f"{target.table}__staging_{uuid.uuid4().hex[:8]}"
    staged = f'"{target.schema}"."{staging}"' if target.schema else f'"{staging}"'
    try:
        if target.schema:
            con.raw_sql(f'CREATE SCHEMA IF NOT EXISTS "{target.schema}"')
        con.create_table(staging, ibis.memtable(frame), database=target.schema)
        statements = [f"DROP TABLE IF EXISTS {target.qualified}", f'ALTER TABLE {staged} RENAME TO "{target.table}"']
        if target.kind == "postgres":
            with con.begin() as cur:
                for sql in statements:
                    cur.execute(sql)
        else:
            con.raw_sql("BEGIN TRANSACTION")
            try:
                for sql in statements:
                    con.raw_sql(sql)
                con.raw_sql("COMMIT")
            except Exception:
                con.raw_sql("ROLLBACK")
                raise
    except TableTargetError:
        raise
    except Exception as exc:
        _drop_quietly(con, staged)
        raise TableTargetError(f"writing {target.describe()} failed: {str(exc).splitlines()[0]}") from None
    finally:
        con.disconnect()
    return len(frame)


def _drop_quietly(con: ibis.BaseBackend, name: str) -> None:
    with contextlib.suppress(Exception):  # the original error is the one to report
        con.raw_sql(f"DROP TABLE IF EXISTS {name}")


def read_table(target: TableTarget) -> pd.DataFrame:
    """The target table's rows (for checks and for reading transactions back)."""
    con = connect_target(target)
    try:
        return con.table(target.table, database=target.schema).to_pandas()
    finally:
        con.disconnect()
