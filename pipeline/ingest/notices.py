"""What the ingestion tells the user about values it kept but read differently from the file (a UTC offset converted
to the source's zone, whitespace around a customer id trimmed), and about rows it set aside where no summary shows
them (Olist reviews with a day-month date): one line each, naming the source, the column and the rows, issued with
:func:`warnings.warn`, which the command line prints as a notice (as the notice on isolated early rows,
:func:`~tiercast.pipeline.ingest.engine_tables.history_start_on`).

Trimming merges ids that differ only by whitespace (' 123', '123 ' and '123' are one customer): right for ids
exported with padding, but the notice counts the raw spellings merged so a user can tell. The rows are found while
the rules run (DuckDB: the column :data:`PADDED` of the judged rows, :mod:`tiercast.pipeline.ingest.sql`; Spark:
:mod:`tiercast.pipeline.ingest.spark_ingest`; pandas, the Olist tables: :func:`padded_ids_in`); the spellings are
counted only when there are such rows.

Letter case is never folded: ids differing only in case ('Ann@Example.com', 'ann@example.com') stay two customers,
with a notice (:class:`CaseVariants`), counted on the distinct accepted ids (:func:`case_variants`,
:func:`case_variants_ibis`, :func:`case_variants_in`) so the rows are grouped once and no id is lower-cased per row.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import duckdb
import ibis
import ibis.expr.types as ir
import pandas as pd

from tiercast.features.contract import AMOUNT, CUSTOMER_ID, QUANTITY
from tiercast.pipeline.ingest.columns import id_step
from tiercast.pipeline.ingest.raw import RAW, ident

#: The raw customer id of a row whose id had surrounding whitespace (NULL on the other rows), and its parsed id.
PADDED, PADDED_ID = "_tc_padded", "_tc_padded_id"


def warn(message: str) -> None:
    """Issue one notice (a :class:`UserWarning`; the command line prints it as one line)."""
    warnings.warn(message, UserWarning, stacklevel=3)


def rows(n: int) -> str:
    return "1 row" if n == 1 else f"{n:,} rows"


def offset_message(source: str, column: str, n: int, tz: str | None) -> str:
    """Rows whose timestamp carried a UTC offset or zone, converted to ``tz`` (UTC when unset)."""
    zone = f"{tz} (data.timezone)" if tz else "UTC (set data.timezone to read them in another zone)"
    verb = "carries" if n == 1 else "carry"
    return f"{source}: {rows(n)} of column {column!r} {verb} a UTC offset; converted to {zone}"


def ambiguous_message(source: str, counts: Mapping[str, int], example: str, *, setting: str) -> str:
    """Rows set aside as ``ambiguous_timestamp`` (per column read), with one of their values and the ``setting``
    that reads them."""
    where = " and ".join(f"{rows(n)} of column {c!r}" for c, n in counts.items() if n)
    verb = "holds a day-month date" if sum(counts.values()) == 1 else "hold day-month dates"
    return (
        f"{source}: {where} {verb} such as {example!r}, quarantined as ambiguous_timestamp "
        f"(day-first or month-first is never guessed; set {setting})"
    )


@dataclass(frozen=True)
class PaddedIds:
    """Customer ids trimmed of surrounding whitespace, and the raw spellings that became one id."""

    rows: int  # rows whose (non-missing) customer id had whitespace around it
    spellings: int  # distinct raw ids that became an id another raw spelling also became
    ids: int  # the ids they became
    example: tuple[str, ...] = ()  # the raw spellings of one such id, then the id

    def message(self, source: str, column: str) -> str:
        text = f"{source}: {rows(self.rows)} of column {column!r} had a customer id with surrounding whitespace"
        text += ", trimmed"
        if not self.ids:
            return f"{text} (no two raw ids became one)"
        *raw, merged = self.example
        return (
            f"{text}: {self.spellings:,} distinct raw ids merge into {self.ids:,} customer "
            f"{'id' if self.ids == 1 else 'ids'} (e.g. {', '.join(repr(r) for r in raw)} are customer {merged!r})"
        )


def padded_ids(con: duckdb.DuckDBPyConnection, judged: str, raw_id: str) -> PaddedIds | None:
    """:class:`PaddedIds` of DuckDB's ingestion: the padded rows are in ``judged`` (columns :data:`PADDED` and
    :data:`PADDED_ID`: their raw and parsed id); the ids also spelt without whitespace are found with one scan of
    the raw id column (``raw_id``, an expression over the raw rows ``r``). None when no padded id is left once
    trimmed (blank, or a missing-value marker)."""
    row = con.execute(
        f"WITH p AS (SELECT {PADDED} AS raw, {PADDED_ID} AS id FROM {judged} WHERE {PADDED_ID} <> ''), "
        "g AS (SELECT id, count(DISTINCT raw) AS k FROM p GROUP BY id), "
        f"plain AS (SELECT id FROM g SEMI JOIN (SELECT {raw_id} AS v FROM {RAW} r) x ON g.id = x.v), "
        "m AS (SELECT id, k + CAST(plain.id IS NOT NULL AS INTEGER) AS k, plain.id IS NOT NULL AS plain "
        "FROM g LEFT JOIN plain USING (id)) "
        "SELECT (SELECT count(*) FROM p), coalesce(sum(k) FILTER (WHERE k > 1), 0), count(*) FILTER (WHERE k > 1), "
        "first(id ORDER BY k DESC, id) FILTER (WHERE k > 1), first(plain ORDER BY k DESC, id) FILTER (WHERE k > 1) "
        "FROM m"
    ).fetchall()[0]
    n, spellings, ids, merged, plain = row
    if not n:
        return None
    example: tuple[str, ...] = ()
    if ids:
        raws = [
            r
            for (r,) in con.execute(
                f"SELECT DISTINCT {PADDED} FROM {judged} WHERE {PADDED_ID} = ?", [merged]
            ).fetchall()
        ]
        example = (*sorted([*raws, *([merged] if plain else [])]), merged)
    return PaddedIds(int(n), int(spellings), int(ids), example)


def padded_ids_in(raw: pd.Series, ids: pd.Series) -> PaddedIds | None:
    """:class:`PaddedIds` of a pandas column: ``raw`` its text as read, ``ids`` the ids parsed from it (missing where
    none), on the same rows. A raw text is padded where ``str.strip()`` changes it, as the parsing trims it. None when
    no padded id is left once trimmed."""
    text = raw.astype("str")
    padded = (text != text.str.strip()).to_numpy(dtype=bool) & ids.notna().to_numpy() & (ids != "").to_numpy()
    if not padded.any():
        return None
    p = pd.DataFrame({"raw": text[padded].to_numpy(), "id": ids[padded].astype("str").to_numpy()})
    k = p.groupby("id")["raw"].nunique()
    plain = pd.Series(k.index.isin(text.to_numpy()), index=k.index)
    k = k + plain.astype("int64")
    merged = k[k > 1]
    example: tuple[str, ...] = ()
    if len(merged):
        top = sorted(merged.items(), key=lambda item: (-item[1], item[0]))[0][0]
        raws = p.loc[p["id"] == top, "raw"].unique().tolist()
        example = (*sorted([*raws, *([top] if plain[top] else [])]), top)
    return PaddedIds(int(padded.sum()), int(merged.sum()), len(merged), example)


def padded_ids_ibis(con: ibis.BaseBackend, padded: ir.Table, values: ir.Table, n: int | None = None) -> PaddedIds:
    """:class:`PaddedIds` on an Ibis backend (Spark, or the engine's own table): ``padded`` holds the trimmed rows'
    raw spelling and id (columns ``raw``, ``id``), ``values`` the ids seen without whitespace (column ``v``);
    ``n`` the padded rows when the caller has counted them."""
    g = padded.group_by("id").aggregate(k=padded.raw.nunique())
    plain = g.semi_join(values, g.id == values.v).select("id", plain=ibis.literal(True))
    m = g.left_join(plain, "id").select("id", "k", plain=ibis._.plain.fill_null(False))
    m = m.mutate(k=m.k + m.plain.cast("int64")).filter(ibis._.k > 1)
    stats = con.execute(m.aggregate(spellings=m.k.sum(), ids=m.count()))
    ids = int(stats["ids"].iloc[0])
    example: tuple[str, ...] = ()
    if ids:
        top = con.execute(m.order_by([ibis.desc("k"), "id"]).limit(1))
        merged, has_plain = str(top["id"].iloc[0]), bool(top["plain"].iloc[0])
        raws = con.execute(padded.filter(padded.id == merged).select("raw").distinct())["raw"].tolist()
        example = (*sorted([*raws, *([merged] if has_plain else [])]), merged)
    spellings = int(stats["spellings"].fillna(0).iloc[0])
    return PaddedIds(int(con.execute(padded.count())) if n is None else n, spellings, ids, example)


# Letter case: a notice, no option to fold it. Folding would rewrite the ids every output is keyed by (the scores and
# tiers would no longer join back to the user's records), it is right only when the user's ids are case-insensitive
# (e-mail addresses mostly are; codes such as 'aB3x' may not be), which the file cannot tell, and applying it alike
# would touch every reader (DuckDB's fast path would lower-case every row of a clean column, Spark, the Olist tables,
# the synthetic order ids and the duplicate check): the user lower-cases the column in the export instead.


@dataclass(frozen=True)
class CaseVariants:
    """Accepted customer ids equal to another accepted id but for letter case: kept apart, as the file spells them."""

    ids: int  # distinct ids equal to another one but for letter case
    rows: int  # their rows
    example: tuple[str, str]  # two such ids (of the group first by lower-cased id): the smaller, the larger

    def message(self, source: str, column: str) -> str:
        first, second = self.example
        return (
            f"{source}: {self.ids:,} customer ids of column {column!r} ({rows(self.rows)}) differ from another id only "
            f"in letter case (e.g. {first!r} and {second!r}) and count as different customers; if they are the same "
            "customer, lower-case the column in the export"
        )


def case_variants(con: duckdb.DuckDBPyConnection, ids: str) -> CaseVariants | None:
    """:class:`CaseVariants` of ``ids`` (a query whose column ``id`` holds the accepted rows' customer ids) on DuckDB:
    one pass finds the distinct ids, and only they are lower-cased; None when no two differ by case alone. Only then
    does a second pass count their rows and pick the example (a temporary table of the ids with their row counts
    would save it, but cost the common case a fifth more: 10M rows, 1M ids)."""
    distinct = f"SELECT DISTINCT id FROM ({ids}) WHERE id IS NOT NULL"
    n, folded = con.execute(f"SELECT count(*), count(DISTINCT lower(id)) FROM ({distinct})").fetchall()[0]
    if n == folded:
        return None
    found = con.execute(
        f"WITH d AS (SELECT id, count(*) AS n FROM ({ids}) WHERE id IS NOT NULL GROUP BY id), "
        "g AS (SELECT lower(id) AS k, count(*) AS ids, sum(n) AS n, min(id) AS a, max(id) AS b FROM d GROUP BY k "
        "HAVING count(*) > 1) SELECT sum(ids), sum(n), arg_min(a, k), arg_min(b, k) FROM g"
    ).fetchall()[0]
    return CaseVariants(int(found[0]), int(found[1]), (str(found[2]), str(found[3])))


def case_variants_ibis(con: ibis.BaseBackend, ids: ir.Table) -> CaseVariants | None:
    """:func:`case_variants` on an Ibis backend (Spark): ``ids`` holds the accepted rows' customer ids (column
    ``id``); one query."""
    d = ids.filter(ids.id.notnull()).group_by("id").aggregate(n=ibis._.count())
    g = d.group_by(k=d.id.lower()).aggregate(ids=d.count(), n=d.n.sum(), a=d.id.min(), b=d.id.max())
    g = g.filter(g.ids > 1)
    found = con.execute(g.aggregate(ids=g.ids.sum(), n=g.n.sum(), a=g.a.argmin(g.k), b=g.b.argmin(g.k)))
    if pd.isna(found["ids"].iloc[0]) or not int(found["ids"].iloc[0]):
        return None
    return CaseVariants(
        int(found["ids"].iloc[0]), int(found["n"].iloc[0]), (str(found["a"].iloc[0]), str(found["b"].iloc[0]))
    )


def case_variants_in(ids: pd.Series) -> CaseVariants | None:
    """:func:`case_variants` of a pandas column of accepted customer ids."""
    n = ids.dropna().astype("str").value_counts()
    d = pd.DataFrame({"k": n.index.str.lower(), "id": n.index, "n": n.to_numpy()})
    g = d.groupby("k").agg(ids=("id", "size"), n=("n", "sum"), a=("id", "min"), b=("id", "max"))
    g = g[g["ids"] > 1]
    if g.empty:
        return None
    return CaseVariants(int(g["ids"].sum()), int(g["n"].sum()), (str(g["a"].iloc[0]), str(g["b"].iloc[0])))


def signs_message(source: str, quantity: str, amount: str, n: int, order: str) -> str:
    """Accepted rows with a negative quantity but a positive amount: the amount decides (a refund is a negative
    amount; the quantity is carried, not multiplied), so returns exported with positive amounts count as
    purchases."""
    return (
        f"{source}: a negative {quantity!r} with a positive {amount!r} on {rows(n)} (e.g. order {order!r}): they "
        "count as purchases, not refunds; if they are returns, export their amounts negative"
    )


def opposite_signs(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, str]:
    """(rows of ``table`` with quantity < 0 and amount > 0, the order id of the first of them) on DuckDB."""
    n, order = con.execute(f"SELECT count(*), min(order_id) FROM {table} WHERE quantity < 0 AND amount > 0").fetchall()[
        0
    ]
    return int(n), str(order)


def opposite_signs_ibis(con: ibis.BaseBackend, t: ir.Table) -> tuple[int, str]:
    """:func:`opposite_signs` on an Ibis backend (Spark): one query."""
    bad = t.filter((t.quantity < 0) & (t.amount > 0))
    found = con.execute(bad.aggregate(n=bad.count(), order=bad.order_id.min()))
    return int(found["n"].iloc[0]), str(found["order"].iloc[0])


#: The raw values a dotted-thousands check reads (as `tiercast init` reads the first rows of a file).
DOTTED_SAMPLE_ROWS = 5_000


def warn_read_as_written(
    con: duckdb.DuckDBPyConnection, where: str, mapped: Mapping[str, str], kinds: Mapping[str, str], decimal: str
) -> None:
    """The notices of values that parse but may not mean what they say: :func:`warn_dotted_thousands` and
    :func:`warn_merged_float_ids`."""
    if kinds.get(mapped[CUSTOMER_ID]) == "text":
        warn_merged_float_ids(con, where, mapped[CUSTOMER_ID])
    warn_dotted_thousands(con, where, mapped, kinds, decimal)


def warn_merged_float_ids(con: duckdb.DuckDBPyConnection, where: str, column: str) -> None:
    """Warn where raw customer ids become one id once a float's '.0' is dropped ('12' and '12.0': a float id saved
    as text is read as the integer it was), and where ids look like numbers a spreadsheet rounded ('1.23457E+11'):
    the parsing keeps both, but different customers may have become one. The ids are made by the reader's own step
    (:func:`tiercast.pipeline.ingest.columns.id_step`)."""
    v = f"trim(CAST({ident(column)} AS VARCHAR))"
    rounded = "contains(upper(raw), 'E+') AND regexp_full_match(raw, '[0-9]([.][0-9]+)?[eE][+][0-9]+')"
    # the distinct ids with a '.' or an exponent first (few, usually none: one cheap scan), then their plain
    # spellings (a scan joined with that small set); at 10M rows a DISTINCT of every id cost 1.2 s
    spellings, ids, example, n_sci, sci = con.execute(
        f"WITH d AS (SELECT DISTINCT {v} AS raw FROM {RAW} WHERE contains({v}, '.') OR contains(upper({v}), 'E+')), "
        f"m AS (SELECT * FROM (SELECT raw, {id_step('VARCHAR').replace('{x}', 'raw')} AS id FROM d) WHERE id <> raw), "
        f"p AS (SELECT DISTINCT {v} AS raw FROM {RAW} WHERE {v} IN (SELECT id FROM m)), "
        "a AS (SELECT raw, id FROM m UNION ALL SELECT raw, raw AS id FROM p), "
        "g AS (SELECT id, count(*) AS k, string_agg(raw, ', ' ORDER BY raw) AS raws FROM a GROUP BY id HAVING k > 1) "
        "SELECT (SELECT coalesce(sum(k), 0) FROM g), (SELECT count(*) FROM g), "
        "(SELECT first(raws || ' are customer ' || id ORDER BY id) FROM g), "
        f"(SELECT count(*) FROM d WHERE {rounded}), (SELECT min(raw) FROM d WHERE {rounded})"
    ).fetchall()[0]
    if ids:
        warn(
            f"{where}: {int(spellings):,} distinct raw ids of column {column!r} merge into {int(ids):,} customer "
            f"{'id' if ids == 1 else 'ids'} "
            f"once a float's '.0' is dropped (e.g. {example}); if they are different customers, export the ids as text"
        )
    if n_sci:
        warn(
            f"{where}: {int(n_sci):,} distinct customer {'id' if n_sci == 1 else 'ids'} of column {column!r} written "
            f"like a rounded number (e.g. {sci!r}), as a spreadsheet shows long numbers: different customers may "
            "share one; export the ids as text"
        )


def warn_dotted_thousands(
    con: duckdb.DuckDBPyConnection, where: str, mapped: Mapping[str, str], kinds: Mapping[str, str], decimal: str
) -> None:
    """Warn, as `tiercast init` notes, where a text number column's first values use '.' as a thousands mark
    ('1.978' beside '382'): with the decimal point '.' they are read 1000 times too small, without a quarantined
    row to show it (:func:`tiercast.pipeline.starter_notes.dotted_thousands_notes`). ``mapped``: field -> raw
    column; ``kinds``: raw column -> its kind (only text columns are read as written)."""
    from tiercast.pipeline.starter_notes import dotted_thousands_notes

    fields = (AMOUNT, QUANTITY, "unit_price")
    numbers = {f: c for f, c in mapped.items() if f in fields and kinds.get(c) == "text"}
    if decimal != "." or not numbers:
        return
    cols = ", ".join(ident(c) for c in dict.fromkeys(numbers.values()))
    sample = con.execute(f"SELECT {cols} FROM {RAW} LIMIT {DOTTED_SAMPLE_ROWS}").df()
    for note in dotted_thousands_notes(sample, dict(numbers), decimal):
        warn(f"{where}: {note}")
