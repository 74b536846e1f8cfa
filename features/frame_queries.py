"""Queries over pandas frames compiled once per shape of frame, not once per call (DuckDB).

``build_features(frame, con=con)`` turns the frame into an Ibis memtable with a new name each call, so the SQL of
two calls differs in that name (and in the cutoff's timestamps), and each call spent about 0.15 s of Python
building and compiling the expression: more than DuckDB takes to run it on a few thousand rows. Called in a loop
(a notebook scoring a frame at many cutoffs, a property test on hundreds of generated frames) that was most of the
time. Here the compiled SQL, with the memtable's name held as a placeholder, is a :class:`SQLTemplate`: trusted,
as in :class:`~tiercast.features.cutoff_queries.CutoffQuery`, only once it reproduces character for character
the SQL Ibis compiles for another frame of the same shape at another cutoff; from then on a call of the process
with the same key (the frame's schema after its casts and the query's settings) runs the template with its own
memtable and cutoff on its own connection, neither built nor compiled.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import ibis
import ibis.expr.operations as ops
import ibis.expr.schema as sch
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa

from tiercast.features.cutoff_queries import SQLTemplate, _on_duckdb, _run_sql, reproduces

#: What the memtable's quoted name becomes in a template (no SQL identifier tiercast writes looks like it).
_PLACEHOLDER = '"__tiercast_frame_placeholder__"'


@dataclass(frozen=True)
class _First:
    cutoff: pd.Timestamp
    template: SQLTemplate


@dataclass(frozen=True)
class _Trusted:
    template: SQLTemplate
    schema: sch.Schema


_REFUSED = object()

#: The state of each key in this process (the most recent :data:`_SHAPES_SIZE`), as checked templates are kept in
#: :mod:`~tiercast.features.cutoff_queries`: its first template, a trusted one, or refused (a template that failed
#: the check: that key is built and compiled on every call). The SQL holds no connection, only the placeholder.
_SHAPES: OrderedDict[Hashable, object] = OrderedDict()
_SHAPES_SIZE = 256


def _set(key: Hashable, state: object) -> None:
    _SHAPES[key] = state
    while len(_SHAPES) > _SHAPES_SIZE:
        _SHAPES.popitem(last=False)


def _memtable_name(table: ir.Table) -> str | None:
    """The name of the one memtable ``table`` reads, None when it reads another table or several."""
    names = {op.name for op in table.op().find(ops.InMemoryTable)}
    other = table.op().find((ops.DatabaseTable, ops.UnboundTable, ops.SQLQueryResult))
    return names.pop() if len(names) == 1 and not other else None


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def run_on_frame(
    con: ibis.BaseBackend,
    table: ir.Table,
    key: Hashable,
    build: Callable[[pd.Timestamp], ir.Table],
    cutoff: pd.Timestamp,
) -> pa.Table:
    """``con.to_pyarrow(build(cutoff))``, where ``build`` reads ``table`` (one memtable) and ``key`` determines
    everything of ``build`` except the memtable and the cutoff (the caller's contract: equal keys, equal queries
    up to those two)."""
    name = _memtable_name(table)
    if name is None or not _on_duckdb(con):
        return con.to_pyarrow(build(cutoff))
    state = _SHAPES.get(key)
    if isinstance(state, _Trusted):
        _SHAPES.move_to_end(key)
        sql = state.template.at(cutoff).replace(_PLACEHOLDER, _quoted(name))
        return _run_sql(con, table, sql, state.schema)  # ``table`` registers this call's memtable
    expr = build(cutoff)
    sql = con.compile(expr)
    if state is not _REFUSED and _quoted(name) in sql:
        generic = sql.replace(_quoted(name), _PLACEHOLDER)
        if state is None:
            _set(key, _First(cutoff, SQLTemplate(generic, cutoff)))
        elif isinstance(state, _First) and state.cutoff != cutoff:
            trusted = reproduces(state.template, cutoff, generic)
            _set(key, _Trusted(state.template, expr.schema()) if trusted else _REFUSED)
    return _run_sql(con, expr, sql)
