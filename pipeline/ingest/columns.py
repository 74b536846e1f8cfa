"""SQL (DuckDB) expressions that parse one source column into a canonical value, with the semantics of the pandas
parsers in :mod:`tiercast.pipeline.ingest.parsing`: stripped text with missing-value markers as NULL, identifiers
without a float's '.0', numbers with the configured decimal mark, timestamps in the configured zone.

Text timestamps without a configured format (or with a directive DuckDB's ``strptime`` reads differently from
pandas) are parsed in Python by :func:`tiercast.pipeline.ingest.parsing._parse_timestamps` — pandas' format
guessing (ISO 8601, day-first or month-first, ``UTC``/``GMT`` suffixes) has no SQL equivalent — but only once per
*distinct* text: the distinct texts go to pandas and come back as a lookup table the rows are joined to.
"""

from __future__ import annotations

import re

import duckdb
import pandas as pd

from tiercast.pipeline.ingest.common import INTEGRAL_ID_LIMIT, number_pattern
from tiercast.pipeline.ingest.parsing import carries_offset, day_month_dates, parse_timestamps
from tiercast.pipeline.ingest.raw import RAW, ROW, lit, run

#: The characters Python's ``str.strip()`` removes (DuckDB's one-argument ``trim`` removes only spaces): every
#: character whose ``isspace()`` is true, written out (finding them over all code points takes 80 ms at start-up).
_BLANKS = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
#: strptime directives DuckDB reads like pandas' ``to_datetime(format=...)``.
_SQL_DIRECTIVES = set("YmdHMSyjbBpIaA%")
_INT = re.compile(r"(U?(BIG|SMALL|TINY|HUGE)?INT(EGER)?|UHUGEINT)")


def kind(duck_type: str) -> str:
    """'float', 'int', 'bool', 'tz', 'ts', 'date' or 'text' for a DuckDB column type."""
    t = duck_type.upper()
    if t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL"):
        return "float"
    if _INT.fullmatch(t):
        return "int"
    if t == "BOOLEAN":
        return "bool"
    if t.startswith(("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ")):  # and TIMESTAMPTZ_NS (Parquet timestamp[ns, tz])
        return "tz"
    if t.startswith("TIMESTAMP"):  # TIMESTAMP, TIMESTAMP_S / _MS / _NS
        return "ts"
    if t == "DATE":
        return "date"
    return "text"


def _ends_maybe_blank(v: str) -> str:
    """TRUE when the first or last character may be one ``str.strip()`` removes (each is ASCII below '!' or not
    ASCII): cheap tests standing in for ``trim(v, characters)``, which then runs only on these values."""
    return f"({v} < '!' OR {v}[-1] < '!' OR strlen({v}) <> length({v}))"


def _is_marker(v: str, na_values: tuple[str, ...]) -> str:
    # Equalities rather than IN: DuckDB proves most of them false from the column's min/max statistics.
    return "(" + " OR ".join(f"{v} = {lit(m)}" for m in na_values) + ")" if na_values else "false"


def text(c: str, duck_type: str, na_values: tuple[str, ...]) -> str:
    """Stripped text of column reference ``c``, missing markers NULL; integral floats without '.0', NaN / infinite
    floats NULL. (As one expression; :func:`text_steps` gives the same in steps that compute each part once.)"""
    first, second = text_steps(c, duck_type, na_values)
    if not second:
        return first
    # The stripped text written twice, not once per marker: the SQL of a text number column is then a tenth as
    # long, and DuckDB binds it about that much faster (a 5-row CSV read in 0.6 s before, most of it binding).
    markers = ", ".join(lit(m) for m in na_values)
    return f"(CASE WHEN ({first}) IN ({markers}) THEN NULL ELSE ({first}) END)"


def text_steps(c: str, duck_type: str, na_values: tuple[str, ...]) -> tuple[str, str | None]:
    """:func:`text` as (an expression over ``c``, None or an expression over its result named ``{x}``)."""
    k = kind(duck_type)
    if k == "float":
        v = f"CAST({c} AS DOUBLE)"
        return (
            f"(CASE WHEN NOT isfinite({v}) THEN NULL WHEN {v} = floor({v}) AND abs({v}) < {INTEGRAL_ID_LIMIT!r} "
            f"THEN CAST(CAST({v} AS BIGINT) AS VARCHAR) ELSE CAST({v} AS VARCHAR) END)"
        ), None
    if k == "int":
        return f"CAST({c} AS VARCHAR)", None
    if k == "bool":
        return f"(CASE WHEN {c} THEN 'True' WHEN NOT {c} THEN 'False' END)", None
    v = f"CAST({c} AS VARCHAR)"
    stripped = f"(CASE WHEN {_ends_maybe_blank(v)} THEN trim({v}, {lit(_BLANKS)}) ELSE {v} END)"
    if not na_values:
        return stripped, None
    return stripped, f"(CASE WHEN {_is_marker('{x}', na_values)} THEN NULL ELSE {{x}} END)"


def id_step(duck_type: str) -> str | None:
    """The step after :func:`text_steps` for identifiers (over ``{x}``): '13085.0' (a float id saved as text)
    becomes '13085'; None when the column is not text."""
    if kind(duck_type) != "text":
        return None
    return "(CASE WHEN contains({x}, '.') THEN regexp_replace({x}, '^(\\p{Nd}+)\\.0*$', '\\1') ELSE {x} END)"


def ids(c: str, duck_type: str, na_values: tuple[str, ...]) -> str:
    """Identifiers: :func:`text`, and text such as '13085.0' (a float id saved as text) becomes '13085'."""
    t, step = text(c, duck_type, na_values), id_step(duck_type)
    return step.replace("{x}", f"({t})") if step else t


def needs_cleaning(c: str, duck_type: str, na_values: tuple[str, ...], *, is_id: bool) -> str | None:
    """For a text column: TRUE where :func:`text` / :func:`ids` may give something else than the value as read
    (blank ends, a missing-value marker, a '.' in an id); None for typed columns (always converted)."""
    if kind(duck_type) != "text":
        return None
    v = f"CAST({c} AS VARCHAR)"
    dot = f" OR contains({v}, '.')" if is_id else ""
    marker = "false"
    if na_values:  # compared only with values short enough to be one (a byte length is O(1); at 10M rows x 5 text
        # columns the ten comparisons of every value were 0.4 s of CPU)
        longest = max(len(m.encode()) for m in na_values)
        marker = f"(CASE WHEN strlen({v}) <= {longest} THEN {_is_marker(v, na_values)} ELSE false END)"
    return f"coalesce({_ends_maybe_blank(v)} OR {marker}{dot}, false)"


def number(c: str, duck_type: str, decimal: str, na_values: tuple[str, ...]) -> str:
    """DOUBLE value, NULL where missing or not a number (non-finite values stay, and are judged bad)."""
    k = kind(duck_type)
    if k in ("float", "int"):
        return f"CAST({c} AS DOUBLE)"
    if k == "bool":
        return "CAST(NULL AS DOUBLE)"
    # The text once: the whole of it where it matches the number pattern, else '' (then NULL).
    whole = f"nullif(regexp_extract({text(c, duck_type, na_values)}, {lit(f'^(?:{number_pattern(decimal)})$')}), '')"
    value = f"replace({whole}, ',', '.')" if decimal == "," else whole
    return f"TRY_CAST({value} AS DOUBLE)"


def good_number(expr: str) -> str:
    """TRUE when the value is a number of magnitude below 1e24 (NaN compares above every number in DuckDB)."""
    return f"coalesce(abs({expr}) < 1e24, false)"


def _sql_format(fmt: str | None) -> bool:
    return fmt is not None and all(d in _SQL_DIRECTIVES for d in re.findall(r"%(.)", fmt))


def timestamp(
    con: duckdb.DuckDBPyConnection,
    c: str,
    duck_type: str,
    fmt: str | None,
    tz: str | None,
    na_values: tuple[str, ...],
) -> tuple[str, str | None]:
    """(naive TIMESTAMP expression in zone ``tz`` of column reference ``c`` (of raw rows ``r``), the join of the
    lookup table ``m`` it needs or None)."""
    k = kind(duck_type)
    if k == "tz":
        return f"CAST(timezone({lit(tz or 'UTC')}, {c}) AS TIMESTAMP)", None
    if k in ("ts", "date"):
        return f"CAST({c} AS TIMESTAMP)", None
    t = text(c, duck_type, na_values)
    if _sql_format(fmt):
        return f"try_strptime({t}, {lit(fmt)})", None  # type: ignore[arg-type]
    table = _distinct_timestamps(con, t, fmt, tz)
    return "m.ts", f"LEFT JOIN {table} m ON m.t = {t}"


def ambiguous_timestamp(join: str | None, fmt: str | None) -> str:
    """TRUE where the text timestamp is a day-month date and no format is set (from the lookup table ``m`` of
    :func:`timestamp`, whose ``join`` is given); such values are never guessed."""
    return "coalesce(m.amb, false)" if join is not None and fmt is None else "false"


def _distinct_timestamps(con: duckdb.DuckDBPyConnection, t: str, fmt: str | None, tz: str | None) -> str:
    """Parse each distinct text once in pandas (see the module docstring); returns the lookup table's name. The
    table also holds each text's number of rows ``n`` and whether it was read with a UTC offset (``aware``: tz-aware
    and parsed, so converted; :func:`offset_rows` sums them)."""
    rows = con.execute(
        f"SELECT t, first_row, n FROM (SELECT {t} AS t, min(r.{ROW}) AS first_row, count(*) AS n FROM {RAW} r "
        "GROUP BY 1) WHERE t IS NOT NULL ORDER BY first_row"
    ).df()
    values = rows["t"].astype("str").reset_index(drop=True)  # in order of first appearance, as guessing expects
    aware = carries_offset(values, fmt)
    parsed = parse_timestamps(values, fmt, tz, aware=aware)
    lookup = pd.DataFrame(
        {
            "t": values,
            "ts": parsed.to_numpy(),
            "amb": day_month_dates(values) & (fmt is None),
            "aware": aware & parsed.notna().to_numpy(),
            "n": rows["n"].to_numpy(dtype="int64"),
        }
    )
    con.register("_tc_ts_frame", lookup)
    run(
        con,
        "CREATE OR REPLACE TABLE _tc_ts AS SELECT t, CAST(ts AS TIMESTAMP) AS ts, amb, aware, n FROM _tc_ts_frame",
    )
    con.unregister("_tc_ts_frame")
    return "_tc_ts"


def offset_rows(con: duckdb.DuckDBPyConnection, c: str, duck_type: str, join: str | None) -> int:
    """The rows whose timestamp (column reference ``c`` of the raw rows ``r``, parsed by :func:`timestamp` with the
    lookup ``join``) carried a UTC offset or zone and was converted: every value of a tz-aware column; the parsed
    tz-aware texts (counted per distinct text when the lookup table was made); none otherwise."""
    if kind(duck_type) == "tz":
        sql = f"SELECT count({c}) FROM {RAW} r"
    elif join is not None:
        sql = "SELECT coalesce(sum(n), 0) FROM _tc_ts WHERE aware"
    else:  # naive types, and formats DuckDB reads (they have no zone directive)
        return 0
    return int(con.execute(sql).fetchall()[0][0])  # type: ignore[index]
