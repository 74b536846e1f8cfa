"""The row rules of :mod:`tiercast.pipeline.ingest.transactions` as DuckDB SQL over the raw source, so ingestion scales
with the engine: one pass judges every row (a CASE giving the first failing reason, in :data:`REASONS` order) and keeps
only the rejected rows' numbers and reasons (``_tc_bad``); the accepted rows are a view (``_tc_accepted``) the features
read directly, and the quarantine is the raw rows joined to their reasons, written by DuckDB.

Raw SQL rather than Ibis: the rules need DuckDB's ``read_csv`` options, ``try_strptime``, ``regexp_full_match``,
``file_row_number`` and COPY, which Ibis does not expose, and one statement per step keeps the passes countable.

Duplicates (exact copies of an earlier source line) are found without sorting every row: rows whose hash of all
source columns is shared are the only candidates, and only they are compared column by column.

The transaction schema (:data:`tiercast.features.schemas.TRANSACTIONS`) is checked here as SQL (the last rule,
reason ``schema``), not through pandera's Ibis backend: pandera 0.35 validating the accepted view of 1M synthetic
rows (ids non-empty, amount in range, types) took 1.5 s, against 6.3 s for the whole ingestion and 0.3 s for the
same checks as one SQL pass (same machine, load average 6.6): it runs one query per check, each re-reading the
source, which at 10M rows would add about half again to the ingestion. pandera stays the contract of the collected
frames (:func:`tiercast.pipeline.ingest.transactions.read_transactions`) and of the feature and score frames.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from tiercast.features.contract import AMOUNT, CATEGORY, CHANNEL, CUSTOMER_ID, ORDER_ID, PRODUCT_ID, QUANTITY, TIMESTAMP
from tiercast.pipeline.ingest import columns as col
from tiercast.pipeline.ingest import notices
from tiercast.pipeline.ingest.common import AMBIGUOUS, REASONS, InputError, SourceTally
from tiercast.pipeline.ingest.notices import PADDED, PADDED_ID
from tiercast.pipeline.ingest.parsing import grouped_number_pattern
from tiercast.pipeline.ingest.raw import FILES, RAW, ROW, RawSource, ident, lit, open_raw, run

if TYPE_CHECKING:
    from tiercast.pipeline.ingest.sources import TransactionSource

ACCEPTED = "_tc_accepted"
#: The accepted rows with the canonical columns only: the table the features read.
TRANSACTIONS = "_tc_transactions"
#: Judged rows: the rejected ones with their reason, and accepted ones needing cleaning (reason NULL).
BAD = "_tc_judged"
CANONICAL = (CUSTOMER_ID, TIMESTAMP, AMOUNT, ORDER_ID, QUANTITY, PRODUCT_ID, CATEGORY, CHANNEL)


@dataclass(eq=False)
class EngineIngest(SourceTally):
    """The outcome of :func:`ingest`: counts, and the relations ``_tc_accepted`` / ``_tc_bad`` on ``con``."""

    con: duckdb.DuckDBPyConnection
    raw: RawSource
    columns: tuple[str, ...]  # canonical columns of the accepted view
    reasons: dict[str, int] = field(default_factory=dict)

    def quarantine_sql(self) -> str:
        """The quarantine rows: the source columns as read, ``source_row`` and ``reason``, in source order; from
        several files, ``source_file`` before ``source_row`` (the data row in that file)."""
        ours = ("source_file", "source_row", "reason") if self.raw.several else ("source_row", "reason")
        renamed = [f"r.{ident(c)} AS {ident(f'src_{c}' if c in ours else c)}" for c in self.raw.columns]
        origin, join = f"b.{ROW} AS source_row", ""
        if self.raw.several:  # the file a row came from (the last to start at or before it) and its data row there
            origin = f"f.file AS source_file, b.{ROW} - f.first_row AS source_row"
            join = f" ASOF JOIN {FILES} f ON b.{ROW} >= f.first_row"
        return (
            f"SELECT {', '.join(renamed)}, {origin}, b.reason FROM {RAW} r JOIN {BAD} b ON r.{ROW} = b.{ROW}{join} "
            f"WHERE b.reason IS NOT NULL ORDER BY b.{ROW}"
        )

    def write_quarantine(self, path: str | os.PathLike[str]) -> Path:
        """Write the quarantine to Parquet atomically (a temporary file in the same folder, then renamed)."""
        from tiercast.pipeline.writers.files import atomic_output

        with atomic_output(path) as tmp:
            run(self.con, f"COPY ({self.quarantine_sql()}) TO {lit(str(tmp))} (FORMAT parquet)")
        return Path(path)

    def accepted_sql(self, *, ordered: bool = False, with_row: bool = False) -> str:
        cols = ", ".join(ident(c) for c in (*self.columns, *([ROW] if with_row else [])))
        order = f" ORDER BY timestamp, customer_id, order_id, {ROW}" if ordered else ""
        return f"SELECT {cols} FROM {ACCEPTED}{order}"

    def orphan_refunds(self, *, by_product: bool = True) -> int:
        """:func:`tiercast.pipeline.ingest.rules.count_orphan_refunds` on the accepted rows, in SQL."""
        keys = [CUSTOMER_ID, *([PRODUCT_ID] if by_product and PRODUCT_ID in self.columns else [])]
        on = " AND ".join(f"r.{k} IS NOT DISTINCT FROM f.{k}" for k in keys)
        sql = (
            f"WITH f AS (SELECT {', '.join(keys)}, min(timestamp) AS first_purchase FROM {ACCEPTED} "
            f"WHERE amount > 0 GROUP BY ALL) "
            f"SELECT count(*) FROM {ACCEPTED} r LEFT JOIN f ON {on} "
            "WHERE r.amount < 0 AND (f.first_purchase IS NULL OR f.first_purchase > r.timestamp)"
        )
        return int(self.con.execute(sql).fetchall()[0][0])  # type: ignore[index]


def ingest(con: duckdb.DuckDBPyConnection, src: TransactionSource, run_date: pd.Timestamp | None) -> EngineIngest:
    """Read ``src`` on ``con`` and judge every row; see the module docstring. Raises :class:`InputError` for
    unreadable sources, a missing mapped column or a column where no value parses."""
    from tiercast.pipeline.ingest.readers import check_timestamp_format, require_source_columns

    check_timestamp_format(src.timestamp_format, src.describe(), src.columns.timestamp)
    raw = open_raw(con, src)
    mapped = src.columns.source_columns()
    require_source_columns(
        pd.DataFrame(columns=list(raw.columns)), mapped, raw.where, raw.csv_path, src.delimiter, "columns."
    )
    exprs, steps, fast, joins = _parse_exprs(con, src, raw, mapped)
    _create_view(con, "_tc_parsed", exprs, joins, steps)
    _create_view(con, "_tc_fast", fast, joins)
    duplicates = _mark_duplicates(con, raw) if src.duplicates == "quarantine" else None
    rules = _rules(src, mapped, run_date, duplicates, cleaned={f for f in CANONICAL if f"_d_{f}" in exprs})
    case = " ".join(f"WHEN {cond} THEN {lit(name)}" for name, cond in rules)
    padded = (
        f"{PADDED}, CASE WHEN {PADDED} IS NOT NULL THEN customer_id END AS {PADDED_ID}"
        if PADDED in exprs
        else f"CAST(NULL AS VARCHAR) AS {PADDED}, CAST(NULL AS VARCHAR) AS {PADDED_ID}"
    )
    # One pass: the rejected rows with their reason, and the accepted rows whose text needs cleaning (reason NULL),
    # with the raw and the parsed customer id of the rows whose id had surrounding whitespace (all among them).
    run(
        con,
        f"CREATE OR REPLACE TABLE {BAD} AS SELECT {ROW}, reason, {PADDED}, {PADDED_ID} FROM "
        f"(SELECT {ROW}, CASE {case} END AS reason, _dirty, {padded} FROM _tc_parsed) "
        "WHERE reason IS NOT NULL OR _dirty",
    )
    canonical = tuple(c for c in CANONICAL if c in exprs or c == ORDER_ID)
    order_id = ORDER_ID if ORDER_ID in mapped else _synthetic_order_id()
    select = ", ".join(ident(c) if c != ORDER_ID else f"{order_id} AS order_id" for c in canonical)
    # Accepted rows: as read (typed columns converted) when nothing needed cleaning, else the cleaned values; the
    # parts with no row are left out, so the features read the source with no join when every row is clean.
    n_dirty, n_judged, n_padded = con.execute(
        f"SELECT count(*) FILTER (WHERE reason IS NULL), count(*), count(*) FILTER (WHERE {PADDED_ID} <> '') FROM {BAD}"
    ).fetchall()[0]
    accepted = f"SELECT {ROW}, {select} FROM _tc_fast"
    if n_judged:
        accepted += f" ANTI JOIN {BAD} USING ({ROW})"
    if n_dirty:
        accepted += (
            f" UNION ALL SELECT {ROW}, {select} FROM _tc_parsed "
            f"SEMI JOIN (SELECT {ROW} FROM {BAD} WHERE reason IS NULL) USING ({ROW})"
        )
    run(con, f"CREATE OR REPLACE VIEW {ACCEPTED} AS {accepted}")
    run(
        con, f"CREATE OR REPLACE VIEW {TRANSACTIONS} AS SELECT {', '.join(ident(c) for c in canonical)} FROM {ACCEPTED}"
    )
    result = EngineIngest(con, raw, canonical)
    result.reasons = _count_reasons(con)
    _require_parsed(con, src, raw, mapped, result)
    _notify(con, src, raw, mapped, joins[0] if joins else None, padded=n_padded > 0)
    kinds = {c: col.kind(t) for c, t in raw.columns.items()}
    notices.warn_read_as_written(con, raw.where, mapped, kinds, src.decimal)
    if result.reasons.get("non_numeric_amount"):
        _notify_grouped_numbers(con, src, raw, mapped)
    return result


def _notify(
    con: duckdb.DuckDBPyConnection,
    src: TransactionSource,
    raw: RawSource,
    mapped: dict[str, str],
    join: str | None,
    *,
    padded: bool,
) -> None:
    """The notices (:mod:`tiercast.pipeline.ingest.notices`) of values kept but read differently from the file:
    timestamps converted from a UTC offset (counted per distinct text, or a tz-aware column's values), customer ids
    trimmed (``padded``: the judged rows hold some; their spellings are then counted), and accepted customer ids
    differing from another only in letter case (kept apart; counted on the distinct ids), and accepted rows with a
    negative quantity but a positive amount (returns that count as purchases)."""
    ts, customer = mapped[TIMESTAMP], mapped[CUSTOMER_ID]
    n_offset = col.offset_rows(con, f"r.{ident(ts)}", raw.columns[ts], join)
    if n_offset:
        notices.warn(notices.offset_message(raw.where, ts, n_offset, src.timezone))
    found = notices.padded_ids(con, BAD, f"CAST(r.{ident(customer)} AS VARCHAR)") if padded else None
    if found is not None:
        notices.warn(found.message(raw.where, customer))
    cased = notices.case_variants(con, f"SELECT customer_id AS id FROM {TRANSACTIONS}")
    if cased is not None:
        notices.warn(cased.message(raw.where, customer))
    if QUANTITY in mapped and AMOUNT in mapped:  # with a unit price the amount takes the quantity's sign
        n, order = notices.opposite_signs(con, TRANSACTIONS)
        if n:
            notices.warn(notices.signs_message(raw.where, mapped[QUANTITY], mapped[AMOUNT], n, order))


def _notify_grouped_numbers(
    con: duckdb.DuckDBPyConnection, src: TransactionSource, raw: RawSource, mapped: dict[str, str]
) -> None:
    """One notice per text number column whose value looks like a number with thousands separators ('1,161.52') on
    rows quarantined as ``non_numeric_amount``: such numbers are not read, and they are the largest amounts."""
    from tiercast.pipeline.ingest.readers import grouped_numbers_message

    pattern = lit(grouped_number_pattern(src.decimal))
    for f in (AMOUNT, QUANTITY, "unit_price"):
        if f not in mapped or col.kind(raw.columns[mapped[f]]) != "text":
            continue
        t = col.text(f"r.{ident(mapped[f])}", raw.columns[mapped[f]], src.na_values)
        n, example = con.execute(
            f"SELECT count(*), arg_min(t, k) FROM (SELECT {t} AS t, b.{ROW} AS k FROM {BAD} b JOIN {RAW} r "
            f"ON r.{ROW} = b.{ROW} WHERE b.reason = 'non_numeric_amount') WHERE regexp_full_match(t, {pattern})"
        ).fetchall()[0]
        if n:
            notices.warn(grouped_numbers_message(raw.where, mapped[f], int(n), str(example)))


def _create_view(
    con: duckdb.DuckDBPyConnection,
    name: str,
    exprs: dict[str, str],
    joins: list[str],
    steps: list[dict[str, str]] | None = None,
) -> None:
    """A view of ``exprs`` over the raw rows ``r``, then each of ``steps`` (field -> expression over the previous
    value ``{x}``) as one more projection, so an expression used several times is computed once."""
    cols = ", ".join(f"{e} AS {ident(n)}" for n, e in exprs.items())
    sql = f"SELECT r.{ROW}, {cols} FROM {RAW} r {' '.join(joins)}"
    for step in steps or []:
        if step:
            replaced = ", ".join(f"{e.replace('{x}', ident(f))} AS {ident(f)}" for f, e in step.items())
            sql = f"SELECT * REPLACE ({replaced}) FROM ({sql})"
    run(con, f"CREATE OR REPLACE VIEW {name} AS {sql}")


def _parse_exprs(
    con: duckdb.DuckDBPyConnection, src: TransactionSource, raw: RawSource, mapped: dict[str, str]
) -> tuple[dict[str, str], list[dict[str, str]], dict[str, str], list[str]]:
    """Canonical field -> SQL over ``r`` (the raw row) and the steps that finish the text fields; the same as read
    for rows that need no cleaning (``_dirty`` false); and the joins they need."""
    na, types = src.na_values, raw.columns
    ref = {f: f"r.{ident(c)}" for f, c in mapped.items()}
    exprs: dict[str, str] = {}
    fast: dict[str, str] = {}
    dirty: list[str] = []
    steps: list[dict[str, str]] = [{}, {}, {}]
    for f in (CUSTOMER_ID, ORDER_ID, PRODUCT_ID, CATEGORY, CHANNEL):
        if f not in mapped:
            continue
        is_id, typ = f in (CUSTOMER_ID, ORDER_ID), types[mapped[f]]
        check = col.needs_cleaning(ref[f], typ, na, is_id=is_id)
        if check is None:  # a typed column: converted on every row
            exprs[f] = fast[f] = col.ids(ref[f], typ, na) if is_id else col.text(ref[f], typ, na)
            continue
        # Text: cleaned only on the rows whose value may change (the CASE runs its branch on those rows only), one
        # step a projection: as one nested expression, the optimizer would compute its repeated parts on every row.
        flag, raw_text = ident(f"_d_{f}"), f"CAST({ref[f]} AS VARCHAR)"
        exprs[f], exprs[f"_d_{f}"], fast[f] = raw_text, check, raw_text
        dirty.append(flag)
        parts = (*col.text_steps("{x}", "VARCHAR", na), col.id_step("VARCHAR") if is_id else None)
        for step, part in zip(steps, parts, strict=True):
            if part is not None:
                step[f] = f"(CASE WHEN {flag} THEN {part} ELSE {{x}} END)"
        if f == CUSTOMER_ID:  # the raw id where its first or last character is a blank (tested on flagged rows only)
            exprs[PADDED], p, blanks = raw_text, ident(PADDED), lit(col._BLANKS)
            ends = f"{p} <> '' AND (contains({blanks}, {p}[1]) OR contains({blanks}, {p}[-1]))"
            steps[0][PADDED] = f"(CASE WHEN {flag} AND {ends} THEN {p} END)"
    exprs[TIMESTAMP], join = col.timestamp(
        con, ref[TIMESTAMP], types[mapped[TIMESTAMP]], src.timestamp_format, src.timezone, na
    )
    exprs[AMBIGUOUS] = col.ambiguous_timestamp(join, src.timestamp_format)
    numbers = {
        f: col.number(ref[f], types[mapped[f]], src.decimal, na)
        for f in (AMOUNT, QUANTITY, "unit_price")
        if f in mapped
    }
    if "unit_price" in numbers:
        exprs[AMOUNT] = f"({numbers[QUANTITY]}) * ({numbers['unit_price']})"
        exprs["_price"] = numbers["unit_price"]
    else:
        exprs[AMOUNT] = numbers[AMOUNT]
    if QUANTITY in numbers:
        exprs[QUANTITY] = numbers[QUANTITY]
    fast.update({f: exprs[f] for f in (TIMESTAMP, AMOUNT, QUANTITY) if f in exprs})
    exprs["_numbers_ok"] = " AND ".join(col.good_number(e) for e in [*numbers.values(), exprs[AMOUNT]])
    exprs["_dirty"] = " OR ".join(dirty) or "false"
    return exprs, steps, fast, [join] if join else []


def _rules(
    src: TransactionSource,
    mapped: dict[str, str],
    run_date: pd.Timestamp | None,
    duplicates: str | None,
    cleaned: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[tuple[str, str]]:
    rules = [
        ("missing_customer", "customer_id IS NULL"),
        ("ambiguous_timestamp", AMBIGUOUS),
        ("unparseable_timestamp", "timestamp IS NULL"),
        ("non_numeric_amount", "NOT _numbers_ok"),
    ]
    if ORDER_ID in mapped:
        rules.append(("missing_order_id", "order_id IS NULL"))
    if PRODUCT_ID in mapped and src.non_product_codes:
        rules.append(("non_product_code", f"product_id IN ({', '.join(lit(c) for c in src.non_product_codes)})"))
    if src.zero_amounts == "quarantine":
        # with a unit price, a line of quantity 0 (0 x 10.00) is an amount of 0 as much as a price of 0 is
        rules.append(("zero_price", "_price <= 0 OR amount = 0" if "unit_price" in mapped else "amount = 0"))
    if run_date is not None:
        rules.append(("future_timestamp", f"timestamp > TIMESTAMP {lit(run_date.isoformat(sep=' '))}"))
    if duplicates is not None:
        rules.append(("duplicate", f"{ROW} IN (SELECT {ROW} FROM {duplicates})"))
    # The transaction schema's row checks (ids non-empty without surrounding blanks, finite numbers), which the
    # rules above already imply: a row failing them would be a parsing bug, quarantined rather than fed on.
    blanks = lit(col._BLANKS)
    texts = [CUSTOMER_ID, *([ORDER_ID] if ORDER_ID in mapped else [])]
    # (a CASE, not AND: DuckDB may evaluate the terms of an AND in any order, and trim() with characters is slow).
    # A text value not flagged for cleaning (``cleaned``: flag ``_d_<field>``) passes them by construction: it starts
    # and ends with a character from '!' on and is ASCII, hence non-empty and unchanged by trim; only flagged rows
    # are checked.
    schema = []
    for c in texts:
        check = f"{c} = '' OR CASE WHEN {col._ends_maybe_blank(c)} THEN trim({c}, {blanks}) <> {c} END"
        schema.append(f"CASE WHEN {ident(f'_d_{c}')} THEN ({check}) END" if c in cleaned else check)
    schema += [f"NOT isfinite({c})" for c in (AMOUNT, *([QUANTITY] if QUANTITY in mapped else []))]
    rules.append(("schema", " OR ".join(schema)))
    return rules


def _mark_duplicates(con: duckdb.DuckDBPyConnection, raw: RawSource) -> str:
    """Rows that repeat an earlier row in every source column, as table ``_tc_dup``: one pass keeps the hashes of
    all source columns that more than one row shares (none in a file without repeated lines); only then are the
    rows with such a hash compared column by column. The shared hashes are found by sorting the hashes and comparing
    each with the next: at 10M rows a quarter less CPU than grouping them (a hash table of 10M groups)."""
    cols = ", ".join(ident(c) for c in raw.columns)
    run(
        con,
        f"CREATE OR REPLACE TABLE _tc_shared AS SELECT DISTINCT h FROM (SELECT h, lead(h) OVER (ORDER BY h) AS next "
        f"FROM (SELECT hash({cols}) AS h FROM {RAW})) WHERE h = next",
    )
    run(con, f"CREATE OR REPLACE TABLE _tc_dup ({ROW} BIGINT)")
    if con.execute("SELECT count(*) FROM _tc_shared").fetchall()[0][0]:
        run(
            con,
            f"INSERT INTO _tc_dup SELECT {ROW} FROM (SELECT {ROW}, row_number() OVER (PARTITION BY {cols} "
            f"ORDER BY {ROW}) AS k FROM {RAW} WHERE hash({cols}) IN (SELECT h FROM _tc_shared)) WHERE k > 1",
        )
    return "_tc_dup"


def _synthetic_order_id() -> str:
    """'<customer_id>@<timestamp>' (date only at midnight, to the second when whole), as the pandas reader."""
    return (
        "customer_id || '@' || CASE WHEN timestamp = date_trunc('day', timestamp) THEN strftime(timestamp, '%Y-%m-%d') "
        "WHEN timestamp = date_trunc('second', timestamp) THEN strftime(timestamp, '%Y-%m-%dT%H:%M:%S') "
        "ELSE strftime(timestamp, '%Y-%m-%dT%H:%M:%S.%f') END"
    )


def _count_reasons(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    rows = dict(con.execute(f"SELECT reason, count(*) FROM {BAD} WHERE reason IS NOT NULL GROUP BY reason").fetchall())
    return {r: int(rows[r]) for r in REASONS if r in rows}


def _require_parsed(
    con: duckdb.DuckDBPyConnection, src: TransactionSource, raw: RawSource, mapped: dict[str, str], result: EngineIngest
) -> None:
    """A column where no row parses means a wrong mapping or format, not bad rows: fail the file. Only possible
    when every row was rejected by that rule or an earlier one, so the exact check runs only then."""
    r = result.reasons
    before_ts = sum(r.get(k, 0) for k in ("missing_customer", "ambiguous_timestamp", "unparseable_timestamp"))
    if before_ts == raw.n_read and _none_parse(con, f"timestamp IS NOT NULL AND NOT {AMBIGUOUS}"):
        _fail_column(con, raw, mapped[TIMESTAMP], TIMESTAMP, src.timestamp_format, src.decimal, src.na_values)
    if before_ts + r.get("non_numeric_amount", 0) < raw.n_read:
        return
    for f in (AMOUNT, QUANTITY, "unit_price"):
        if f in mapped:
            expr = col.number(f"r.{ident(mapped[f])}", raw.columns[mapped[f]], src.decimal, src.na_values)
            if _none_parse(con, col.good_number(expr), table=f"{RAW} r"):
                _fail_column(con, raw, mapped[f], "number", None, src.decimal, src.na_values)


def _none_parse(con: duckdb.DuckDBPyConnection, cond: str, table: str = "_tc_parsed") -> bool:
    return not con.execute(f"SELECT count(*) FROM {table} WHERE {cond}").fetchall()[0][0]  # type: ignore[index]


def _fail_column(
    con: duckdb.DuckDBPyConnection,
    raw: RawSource,
    column: str,
    kind: str,
    fmt: str | None,
    decimal: str,
    na_values: tuple[str, ...],
) -> None:
    """Raise the error of a column where no value parses (:func:`~tiercast.pipeline.ingest.readers.unreadable_column`,
    from its first 20 distinct values)."""
    from tiercast.pipeline.ingest.readers import unreadable_column

    values = [
        "nan" if v is None else str(v)
        for (v,) in con.execute(
            f"SELECT v FROM (SELECT CAST({ident(column)} AS VARCHAR) AS v, min({ROW}) AS first_row FROM {RAW} "
            "GROUP BY 1) ORDER BY first_row LIMIT 20"
        ).fetchall()
    ]
    raise InputError(unreadable_column(raw.where, column, kind, fmt, raw.n_read, values, decimal, na_values))
