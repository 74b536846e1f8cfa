"""Canonical values on the engine (DuckDB or Spark, through Ibis) for :mod:`~tiercast.pipeline.ingest.engine_tables`:
times with a UTC offset or zone as naive times of the source's zone, customer ids trimmed as the single-table
ingestion trims them, and the marks the quarantine counts for its notices."""

from __future__ import annotations

from collections.abc import Callable

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from tiercast.features.contract import TIMESTAMP
from tiercast.pipeline.engine.session import is_spark, session_of
from tiercast.pipeline.ingest.notices import PADDED
from tiercast.pipeline.ingest.parsing import _TZ_SUFFIX
from tiercast.pipeline.ingest.row_rules import BLANK_CLASS

#: Marks beside the canonical columns until the quarantine has counted them: the timestamp was converted from a
#: UTC offset or zone (:data:`OFFSET`), the raw customer id where it had surrounding whitespace (:data:`PADDED`).
OFFSET = "_tc_offset"
MARKS = (OFFSET, PADDED)
#: A zone after the time (:data:`~tiercast.pipeline.ingest.parsing._TZ_SUFFIX`, trailing blanks allowed), and the
#: zone alone with its sign, hours and minutes as groups 1-3 ('Z', 'UTC' and 'GMT': no groups, offset 0).
_AWARE_TEXT = _TZ_SUFFIX.removesuffix("$") + r"\s*$"
_ZONE = r"\s*(?:Z|UTC|GMT|([+-])(\d{2}):?(\d{2})?)\s*$"
#: Naive microseconds: a cast Ibis emits even from a column it already types as naive (Spark's zoned TIMESTAMP).
_NAIVE = dt.Timestamp(scale=6)


@ibis.udf.scalar.builtin(name="timezone")
def _duckdb_timezone(zone: dt.string, ts: dt.timestamp) -> dt.timestamp:  # type: ignore[empty-body]
    """DuckDB's ``timezone(zone, ts)``: a naive time read in ``zone`` as an instant, an instant as ``zone``'s time."""


@ibis.udf.scalar.builtin(name="from_utc_timestamp")
def _spark_from_utc(ts: dt.timestamp, zone: dt.string) -> dt.timestamp:  # type: ignore[empty-body]
    """Spark's ``from_utc_timestamp(ts, zone)``: a UTC time as ``zone``'s time."""


ToZone = Callable[[ir.TimestampValue], ir.TimestampValue]


def to_zone(con: ibis.BaseBackend, zone: str | None) -> ToZone | None:
    """Naive UTC times as naive times of ``zone`` on ``con``'s engine, as pandas' ``tz_convert`` gives them (None
    without a zone: they stay UTC). Ibis has no zone conversion, so each engine's own function is called: DuckDB's
    ``timezone`` (from UTC, then to the zone; no session setting involved), Spark's ``from_utc_timestamp`` (the
    session zone is UTC, :data:`~tiercast.pipeline.engine.config.SPARK_REQUIRED`, so a naive time is read as UTC
    and the result cast to naive is the zone's time)."""
    if zone is None:
        return None
    if is_spark(con):
        return lambda utc: _spark_from_utc(utc, zone).cast(_NAIVE)
    return lambda utc: _duckdb_timezone(zone, _duckdb_timezone("UTC", utc)).cast(_NAIVE)


def zoned_columns(con: ibis.BaseBackend, raw: ir.Table) -> set[str]:
    """The time-zone-aware timestamp columns of the source as read. Ibis types Spark's zoned ``TIMESTAMP`` (a
    Parquet timestamp adjusted to UTC) as naive, so Spark's own schema is asked there."""
    if is_spark(con):
        from pyspark.sql.types import TimestampType

        fields = session_of(con).table(raw.get_name()).schema.fields
        return {f.name for f in fields if isinstance(f.dataType, TimestampType)}
    return {c for c, typ in raw.schema().items() if typ.is_timestamp() and typ.timezone is not None}


def local_timestamp(value: ir.Value, *, zoned: bool, to_zone: ToZone | None) -> tuple[ir.Value, ir.BooleanValue]:
    """The timestamp as a naive time of the source's zone, and where it was converted from a UTC offset or zone.
    Text with an offset after the time is its local time minus the offset (a plain cast drops the offset, or
    converts to the session zone, depending on the engine and its settings); a zoned column is cast to naive, which
    both engines do in their session zone, UTC; either is then taken to the zone (``to_zone``; None: UTC). Other
    values are left to :func:`~tiercast.features.build.as_table`, as before: naive times are taken as written."""
    local = to_zone or (lambda utc: utc)
    if value.type().is_string():
        aware = value.re_search(_AWARE_TEXT)
        hours, minutes = (value.re_extract(_ZONE, i).nullif("").cast("int64").fill_null(0) for i in (2, 3))
        offset = (hours * 60 + minutes) * ibis.ifelse(value.re_extract(_ZONE, 1) == "-", -1, 1)
        utc = value.re_replace(_ZONE, "").cast(TIMESTAMP) - offset.as_interval("m")
        return ibis.cases((aware, local(utc)), else_=value.cast(TIMESTAMP)), aware
    if zoned or (value.type().is_timestamp() and value.type().timezone is not None):
        return local(value.cast(_NAIVE)), ibis.literal(True)
    return value, ibis.literal(False)


def trimmed_id(value: ir.Value) -> tuple[ir.Value, ir.StringValue]:
    """The customer id without the characters ``str.strip()`` removes (as the single-table ingestion trims it; a
    regular expression, since Ibis' ``strip()`` compiles wrongly for Spark's trim), and the raw id where it had
    such characters (NULL elsewhere). Ids of other types are left as they are."""
    if not value.type().is_string():
        return value, ibis.null("string")
    padded = value.re_search(f"^{BLANK_CLASS}|{BLANK_CLASS}$")  # cheaper than Ibis' substrings compared with '!'
    trimmed = value.re_replace(f"^{BLANK_CLASS}+|{BLANK_CLASS}+$", "")
    return ibis.cases((padded, trimmed), else_=value), ibis.cases((padded, value), else_=ibis.null("string"))
