"""Product breadth: the distinct products, categories and channels each customer bought (lines with amount > 0),
exact, for the columns the data has.

A separate pass over the lines (distinct counts cannot be pre-aggregated to orders). Distinct counts group by
(customer, value) pairs, nearly one per bought line on the 10M-line benchmark file: there the three took almost as
much CPU as the rest of the feature build. Categories and channels usually have few values, so they are counted as
bits instead: their distinct values are read first (a query stopping after :data:`MAX_BITS` + 2), each value gets
a number (a small table joined to the lines), each customer ORs one bit per value into words of :data:`WORD_BITS`
bits, and the count is the number of bits set. A column with more values than :data:`MAX_BITS`, products, and
every column on Spark get a distinct count.
"""

from __future__ import annotations

import functools

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from tiercast.features.contract import AMOUNT, CATEGORY, CHANNEL, CUSTOMER_ID, PRODUCT_ID

BREADTH_COLUMNS = {PRODUCT_ID: "n_products", CATEGORY: "n_categories", CHANNEL: "n_channels"}
#: Columns counted as bits when they have few values; the others always get a distinct count.
FEW_VALUES = (CATEGORY, CHANNEL)
#: Bits per word: 63, so every bit of a signed 64-bit integer is a plain positive shift.
WORD_BITS = 63
#: The most values a column counted as bits may have (four words a customer).
MAX_BITS = 4 * WORD_BITS


@ibis.udf.scalar.builtin
def bit_count(x: dt.int64) -> dt.int8:  # type: ignore[empty-body]
    """Number of bits set (DuckDB's and Spark SQL's ``bit_count``; DuckDB's is a TINYINT, widened before summing)."""


@ibis.udf.agg.builtin
def bit_or(x: dt.int64) -> dt.int64:  # type: ignore[empty-body]
    """Bitwise OR of the values (DuckDB's and Spark SQL's ``bit_or``; Ibis compiles its own only for DuckDB)."""


def breadth(lines: ir.Table, *, values_of: ir.Table | None = None) -> ir.Table | None:
    """One row per customer with a bought line: ``n_products`` / ``n_categories`` / ``n_channels`` (floats) for
    the columns ``lines`` has; None when it has none of them. Customers without a bought line have no row (the
    feature builder fills 0). Reads the distinct values of the category and channel columns on the way, from
    ``values_of`` when given (all the transactions ``lines`` were cut from: the same values, so the same query, at
    every cutoff; a value bought only later sets no customer's bit), else from ``lines``."""
    present = {src: name for src, name in BREADTH_COLUMNS.items() if src in lines.columns}
    if not present:
        return None
    few = {}
    if _on_duckdb(lines):
        source = lines if values_of is None else values_of
        few = {src: values for src in FEW_VALUES if src in present and (values := few_values(source, src)) is not None}
    distinct = [src for src in present if src not in few]
    parts = []
    if distinct:
        bought = _bought(lines, CUSTOMER_ID, AMOUNT, *distinct)
        parts.append(
            bought.group_by(CUSTOMER_ID).aggregate(**{present[src]: bought[src].nunique() for src in distinct})
        )
    if few:
        parts.append(_bit_counts(lines, few, present))
    counts = parts[0]
    for part in parts[1:]:  # the same customers on both sides: those with a bought line
        counts = counts.join(part, CUSTOMER_ID)
    return counts.select(CUSTOMER_ID, **{name: counts[name].cast("float64") for name in present.values()})


def few_values(lines: ir.Table, src: str) -> list[str] | None:
    """The distinct non-missing values of ``src`` (run now), or None when there are more than :data:`MAX_BITS`."""
    found = lines.select(src).distinct().limit(MAX_BITS + 2).to_pyarrow().column(0).to_pylist()
    values = sorted(v for v in found if v is not None)
    return values if len(values) <= MAX_BITS else None


def _on_duckdb(lines: ir.Table) -> bool:
    """Whether ``lines`` runs on DuckDB (an in-memory frame does too). Spark keeps the distinct counts: its Ibis
    backend does not ship the values table (an in-memory table) to the SQL the Spark jobs run."""
    return lines._find_backend(use_default=True).name == "duckdb"


def _bought(lines: ir.Table, *columns: str) -> ir.Table:
    """The bought lines (amount > 0) with ``columns``. The two passes select different columns: one relation used
    twice in a query becomes a common table expression, which DuckDB materializes, while each projection of its own
    reads the source directly."""
    return lines.select(*columns).filter(lines[AMOUNT] > 0)


def _bit_counts(lines: ir.Table, few: dict[str, list[str]], names: dict[str, str]) -> ir.Table:
    """Per customer, the distinct values of each column of ``few`` (with its values), counted as bits. (Carrying
    the bits through the products' (customer, product) pairs instead of a pass of their own costs more: the pairs'
    hash table then holds every word.)"""
    coded = _bought(lines, AMOUNT, CUSTOMER_ID, *few)
    words: dict[str, dict[str, ir.Scalar]] = {}
    for src, values in few.items():
        code_name = f"_code_{src}"
        codes = _codes(src, tuple(values))
        coded = coded.left_join(codes, src).drop(f"{src}_right")
        code = coded[code_name]  # NULL for a missing value: no bit
        bit = ibis.literal(1, "int64") << (code % WORD_BITS)
        n_words = -(-len(values) // WORD_BITS)
        words[src] = {f"_bits{w}_{src}": bit_or(ibis.ifelse(code // WORD_BITS == w, bit, 0)) for w in range(n_words)}
    counts = coded.group_by(CUSTOMER_ID).aggregate(**{k: v for part in words.values() for k, v in part.items()})
    zero = ibis.literal(0, "int64")
    totals = {names[src]: sum((bit_count(counts[w]).cast("int64") for w in part), zero) for src, part in words.items()}
    return counts.select(CUSTOMER_ID, **totals)


@functools.lru_cache(maxsize=64)
def _codes(src: str, values: tuple[str, ...]) -> ir.Table:
    """The values of ``src`` numbered from 0, one in-memory table per list of values: the queries of every cutoff
    then read the same table and compile to the same SQL."""
    code_name = f"_code_{src}"
    return ibis.memtable({src: list(values), code_name: range(len(values))}, schema={src: "string", code_name: "int64"})
