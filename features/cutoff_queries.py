"""One query run at many cutoffs, compiled twice instead of once per cutoff (DuckDB).

Ibis spends about half a second of Python building and compiling the feature-and-label expression of one cutoff
(0.2 s to build, 0.35 s to compile), more than DuckDB takes to run it on a few hundred thousand lines, and a job
runs it at every training, test and production cutoff. The SQL of two cutoffs differs only in its timestamp
literals, each the cutoff moved by a fixed number of days (:mod:`tiercast.features.as_of` makes every one of them),
so the SQL of one cutoff is a template for the others: each literal is moved by the difference of the cutoffs.

The template is trusted only once it reproduces, character for character, the SQL Ibis compiles for a second
cutoff; otherwise (a literal not tied to the cutoff, a query whose shape depends on the cutoff) and on another
engine, every cutoff is built and compiled as before. A checked template serves the whole process: the same query
in a later job on its own connection (training again from Python, in a notebook or a scheduler) is compiled once,
to find it.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence

import ibis
import ibis.expr.schema as sch
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa

#: A timestamp as the SQL writes it: a literal as Ibis writes it for DuckDB (its ``visit_NonNullLiteral``), or
#: ISO text inside a string literal (the per-cutoff sampling key, ``"<seed>:<cutoff>:<customer_id>"``).
_TIMESTAMP = re.compile(
    r"MAKE_TIMESTAMP\((\d+), (\d+), (\d+), (\d+), (\d+), (\d+(?:\.\d+)?(?:e-\d+)?)\)"
    r"|(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{6})?)"
)


def _render(ts: pd.Timestamp, iso: bool) -> str:
    """``ts`` written as the SQL writes it: ISO text, or a literal as Ibis writes it for DuckDB."""
    if iso:
        return ts.isoformat()
    seconds = ts.second + ts.microsecond / 1e6
    return f"MAKE_TIMESTAMP({ts.year}, {ts.month}, {ts.day}, {ts.hour}, {ts.minute}, {seconds})"


def _parse(match: re.Match[str]) -> pd.Timestamp:
    if match.group(7) is not None:
        return pd.Timestamp(match.group(7))
    year, month, day, hour, minute = (int(match.group(i)) for i in range(1, 6))
    micros = round(float(match.group(6)) * 1_000_000)
    return pd.Timestamp(year, month, day, hour, minute) + pd.Timedelta(microseconds=micros)


class SQLTemplate:
    """The SQL of a query at ``cutoff``, with every timestamp literal held as its distance from the cutoff."""

    def __init__(self, sql: str, cutoff: pd.Timestamp) -> None:
        self.parts: list[str] = []
        self.shifts: list[tuple[pd.Timedelta, bool]] = []
        end = 0
        for match in _TIMESTAMP.finditer(sql):
            self.parts.append(sql[end : match.start()])
            self.shifts.append((_parse(match) - cutoff, match.group(7) is not None))
            end = match.end()
        self.parts.append(sql[end:])

    @property
    def key(self) -> tuple:
        """What makes two templates the same: their text and the distances of their timestamps from the cutoff."""
        return (*self.parts, *self.shifts)

    def at(self, cutoff: pd.Timestamp) -> str:
        """The SQL with every literal moved to the same distance from ``cutoff``."""
        out = [self.parts[0]]
        for (shift, iso), part in zip(self.shifts, self.parts[1:], strict=True):
            out += [_render(cutoff + shift, iso), part]
        return "".join(out)


def _on_duckdb(con: ibis.BaseBackend) -> bool:
    return con.name == "duckdb"


def _run_sql(con: ibis.BaseBackend, expr: ir.Table, sql: str, schema: sch.Schema | None = None) -> pa.Table:
    """Run ``sql`` (the compiled ``expr`` at some cutoff) as ``con.to_pyarrow(expr)`` runs its own SQL; ``schema``
    (else ``expr``'s) is what the result is converted to, when ``expr`` only supplies the tables the SQL reads."""
    from ibis.backends.duckdb.converter import DuckDBPyArrowData

    # What ``to_pyarrow`` does before it compiles: registers the in-memory (pandas) tables the SQL reads. A private
    # Ibis method (the version is pinned); tests/features/test_cutoff_queries.py runs pandas input through it.
    con._run_pre_execute_hooks(expr)
    arrow = con.con.sql(sql).to_arrow_table()
    return expr.__pyarrow_result__(arrow, schema=schema, data_mapper=DuckDBPyArrowData)


def reproduces(first: SQLTemplate, cutoff: pd.Timestamp, sql: str) -> bool:
    """Whether ``first`` (a template with a timestamp to move), moved to ``cutoff``, is ``sql`` character for
    character: the check that makes a template trusted."""
    return bool(first.shifts) and first.at(cutoff) == sql


#: Checked templates of this process (the most recent :data:`_TRUSTED_SIZE`), by their text and the distances of
#: their timestamps from the cutoff: a query built again for other cutoffs (the test or production rows of a job
#: after its training rows, the same query in the next job of the process on its own connection) is compiled once
#: more, not once per cutoff. The SQL names every table it reads, so equal text is the same query over tables of
#: the same names; each query still runs with its own expression (its connection's tables and memtables).
_TRUSTED: OrderedDict[tuple, SQLTemplate] = OrderedDict()
_TRUSTED_SIZE = 256


def _checked(template: SQLTemplate) -> SQLTemplate | None:
    """The checked template with ``template``'s key, None when there is none."""
    found = _TRUSTED.get(template.key)
    if found is not None:
        _TRUSTED.move_to_end(template.key)
    return found


def _remember(template: SQLTemplate) -> None:
    _TRUSTED[template.key] = template
    while len(_TRUSTED) > _TRUSTED_SIZE:
        _TRUSTED.popitem(last=False)


class CutoffQuery:
    """``build(cutoff)`` run on ``con`` at any number of cutoffs, one at a time (:meth:`at`).

    On DuckDB the first compiled SQL becomes a template; the next cutoff's compiled SQL is compared with it, and
    once equal every later cutoff runs the template's SQL without being built or compiled. A template that fails
    the comparison is dropped for good: every cutoff is then built and compiled."""

    def __init__(self, con: ibis.BaseBackend, build: Callable[[pd.Timestamp], ir.Table]) -> None:
        self.con, self.build = con, build
        self._first: tuple[pd.Timestamp, ir.Table, SQLTemplate] | None = None
        self._trusted: tuple[ir.Table, SQLTemplate] | None = None
        self._refused = not _on_duckdb(con)

    def at(self, cutoff: pd.Timestamp) -> pa.Table:
        """``con.to_pyarrow(build(cutoff))``."""
        if self._trusted is not None:
            expr, template = self._trusted
            return _run_sql(self.con, expr, template.at(cutoff))
        if self._refused:
            return self.con.to_pyarrow(self.build(cutoff))
        expr = self.build(cutoff)
        sql = self.con.compile(expr)
        template = SQLTemplate(sql, cutoff)
        if (checked := _checked(template)) is not None:
            self._trusted = (expr, checked)
        elif self._first is None:
            self._first = (cutoff, expr, template)
        elif self._first[0] != cutoff:
            _, first_expr, first_template = self._first
            if reproduces(first_template, cutoff, sql):
                self._trusted = (first_expr, first_template)
                _remember(first_template)
            else:
                self._refused = True
        return _run_sql(self.con, expr, sql)


def run_at_cutoffs(
    con: ibis.BaseBackend, build: Callable[[pd.Timestamp], ir.Table], cutoffs: Sequence[pd.Timestamp]
) -> Iterator[pa.Table]:
    """``con.to_pyarrow(build(cutoff))`` for each cutoff, in order, through one :class:`CutoffQuery`."""
    query = CutoffQuery(con, build)
    for cutoff in cutoffs:
        yield query.at(cutoff)
