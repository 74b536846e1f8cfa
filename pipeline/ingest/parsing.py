"""Vectorised pandas parsing of source columns (text, identifiers, numbers, timestamps), applied once per distinct
value. The engine rules (:mod:`tiercast.pipeline.ingest.sql`) use the timestamp guessing here for text timestamps
without a configured format, on the distinct texts only; the Olist layout uses all of it."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from tiercast.pipeline.ingest.common import DAY_MONTH_PATTERN, INTEGRAL_ID_LIMIT, MAX_ABS_NUMBER, number_pattern

TS_UNIT = "datetime64[us]"
# A time of day followed by a UTC offset / Z: the string is tz-aware.
_TZ_SUFFIX = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$"
_ZONE_NAME_SUFFIX = r"\s*(?:UTC|GMT)$"
#: A bare integer of at most 7 digits (an id, a count, a year, an Excel serial day): never read as a timestamp
#: without ``timestamp_format`` (pandas would guess '%Y' and read customer 1000 as the year 1000). Compact dates of 8
#: digits or more ('19970101', '20230105103000') are still guessed.
SHORT_INTEGER_PATTERN = r"[+-]?[0-9]{1,7}"


def grouped_number_pattern(decimal: str) -> str:
    """A number with thousands separators ('1,161.52'; with ``decimal`` ',': '1.161,52'), which is not read: a
    full-match pattern Python and RE2 (DuckDB) read alike."""
    group, point = (",", "\\.") if decimal == "." else ("\\.", ",")
    return f"[+-]?[0-9]{{1,3}}({group}[0-9]{{3}})+({point}[0-9]+)?"


def parse_text(s: pd.Series, na_values: tuple[str, ...]) -> pd.Series:
    """Stripped strings; missing markers -> NaN. Integral floats print without '.0'."""
    if pd.api.types.is_float_dtype(s.dtype):
        return _float_text(s)
    if pd.api.types.is_integer_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("str").where(s.notna())
    t = s.astype("str").str.strip()
    return t.where(~t.isin(na_values) & t.notna())


def parse_ids(s: pd.Series, na_values: tuple[str, ...]) -> pd.Series:
    """Identifiers: like :func:`parse_text`, and text like '13085.0' (a float id saved as text) becomes '13085'."""
    t = parse_text(s, na_values)
    if pd.api.types.is_float_dtype(s.dtype):
        return t
    dotted = t.str.contains(".", regex=False, na=False)
    if dotted.any():
        t = t.where(~dotted, _per_distinct(t.where(dotted), _drop_point_zero, np.nan, "object"))
    return t.astype("str")


def _drop_point_zero(u: pd.Series) -> pd.Series:
    return u.str.replace(r"^(\d+)\.0*$", r"\1", regex=True)


def _float_text(s: pd.Series) -> pd.Series:
    """Text of float ids, formatted once per distinct value: integral values without '.0', NaN/inf missing."""
    codes, uniques = pd.factorize(s)
    v = np.asarray(uniques, dtype="float64")
    integral = np.isfinite(v) & (np.floor(v) == v) & (np.abs(v) < INTEGRAL_ID_LIMIT)
    text = pd.Series(v).astype("str").to_numpy(dtype=object)
    text[integral] = pd.Series(v[integral].astype("int64")).astype("str").to_numpy(dtype=object)
    text[~np.isfinite(v)] = None
    out = np.where(codes >= 0, text[np.maximum(codes, 0)] if len(text) else None, None)
    return pd.Series(out, index=s.index, dtype="str")


def parse_numbers(s: pd.Series, decimal: str, na_values: tuple[str, ...]) -> tuple[pd.Series, np.ndarray]:
    """float64 values (NaN where bad) and the 'bad' mask (missing, non-numeric or infinite)."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        v = pd.Series(s.to_numpy(dtype="float64", na_value=np.nan), index=s.index)
    else:
        v = _per_distinct(parse_text(s, na_values), lambda u: _parse_numbers(u, decimal), np.nan, "float64")
    values = v.to_numpy()
    bad = ~(np.abs(values) < MAX_ABS_NUMBER)  # NaN, infinite, or beyond what an exact money sum holds
    return v.where(~bad), bad


def parse_timestamp_column(s: pd.Series, fmt: str | None, tz: str | None, na_values: tuple[str, ...]) -> pd.Series:
    """Naive datetime64[us] in zone ``tz`` (NaT where unparseable); see the module docstring."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert(tz or "UTC").dt.tz_localize(None).astype(TS_UNIT)
    if pd.api.types.is_datetime64_dtype(s.dtype):
        return s.astype(TS_UNIT)
    t = parse_text(s, na_values)  # numbers (e.g. 19970101) become their text
    return _per_distinct(t, lambda u: parse_timestamps(u, fmt, tz), np.datetime64("NaT", "us"), TS_UNIT)


def _per_distinct(t: pd.Series, parse, missing, dtype: str) -> pd.Series:
    """Apply ``parse`` (Series -> Series) to the distinct non-missing values of ``t`` only, then spread back."""
    codes, uniques = pd.factorize(t)
    parsed = parse(pd.Series(uniques, dtype="str")).to_numpy(dtype=dtype)
    taken = parsed[np.maximum(codes, 0)] if len(parsed) else np.full(len(t), missing, dtype=dtype)
    return pd.Series(np.where(codes >= 0, taken, np.array(missing, dtype=dtype)), index=t.index, dtype=dtype)


def _parse_numbers(t: pd.Series, decimal: str) -> pd.Series:
    # the pattern first: pandas alone reads some malformed text, e.g. "+1e 1" as 10; and with a decimal comma a
    # '.' is no decimal point (see number_pattern)
    t = t.where(t.str.fullmatch(number_pattern(decimal)).fillna(False).astype(bool))
    if decimal == ",":
        t = t.str.replace(",", ".", regex=False)
    return pd.to_numeric(t, errors="coerce").astype("float64")


def parse_timestamps(
    t: pd.Series,
    fmt: str | None,
    tz: str | None,
    *,
    formats: list[str] | None = None,
    aware: np.ndarray | None = None,
) -> pd.Series:
    """Parse distinct non-missing timestamp texts (see :func:`parse_timestamp_column`); without ``fmt``, with the
    ``formats`` given (guessed from other values, see :func:`guess_formats`) or else guessed from ``t``, and
    day-month dates (:func:`day_month_dates`) and short integers (:data:`SHORT_INTEGER_PATTERN`) left unparsed.
    ``aware``: :func:`carries_offset` of ``t``, when the caller has it already."""
    out = pd.Series(pd.NaT, index=t.index, dtype=TS_UNIT)
    present = t.notna().to_numpy()
    if fmt is None:
        present = present & ~day_month_dates(t) & ~short_integers(t)
    if not present.any():
        return out
    aware = carries_offset(t, fmt) if aware is None else aware
    if fmt is not None:
        formats = [fmt]
    elif formats is None:
        formats = _guess_formats(t[present])
    for use_fmt in formats:  # best guess first; later ones only on the rows still unparsed
        todo = present & out.isna().to_numpy()
        if not todo.any():
            break
        _parse_into(out, t, todo, aware, use_fmt, tz)
    return out


def _parse_into(out: pd.Series, t: pd.Series, rows: np.ndarray, aware: np.ndarray, fmt: str, tz: str | None) -> None:
    naive_rows = rows & ~aware
    aware_rows = rows & aware
    if naive_rows.any():
        parsed = pd.to_datetime(t[naive_rows], format=fmt, errors="coerce")
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            parsed = parsed.dt.tz_localize(None)
        out.iloc[np.flatnonzero(naive_rows)] = parsed.astype(TS_UNIT).to_numpy()
    if aware_rows.any():
        text = t[aware_rows]
        if "%Z" not in fmt:  # ' UTC' / 'GMT' written after the time: the zero offset ISO 8601 parsers know
            text = text.str.replace(_ZONE_NAME_SUFFIX, "+00:00", regex=True)
        parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
        local = parsed.dt.tz_convert(tz or "UTC").dt.tz_localize(None).astype(TS_UNIT)
        out.iloc[np.flatnonzero(aware_rows)] = local.to_numpy()


def carries_offset(t: pd.Series, fmt: str | None) -> np.ndarray:
    """Where the text timestamp is tz-aware (a UTC offset, 'Z', 'UTC' or 'GMT' after the time; every value when
    ``fmt`` reads a zone): such values are converted to the source's zone (UTC without one)."""
    if fmt is not None:
        return np.full(len(t), "%z" in fmt or "%Z" in fmt)
    return t.str.contains(_TZ_SUFFIX, regex=True, na=False).to_numpy(dtype=bool)


def day_month_dates(t: pd.Series) -> np.ndarray:
    """Where the text is a day-month date (:data:`DAY_MONTH_PATTERN`), which is never guessed."""
    return t.str.fullmatch(DAY_MONTH_PATTERN).fillna(False).to_numpy(dtype=bool)


def short_integers(t: pd.Series) -> np.ndarray:
    """Where the text is a bare integer of at most 7 digits (:data:`SHORT_INTEGER_PATTERN`), never a timestamp
    without a format."""
    return t.str.fullmatch(SHORT_INTEGER_PATTERN).fillna(False).to_numpy(dtype=bool)


def guess_formats(t: pd.Series) -> list[str]:
    """The formats :func:`parse_timestamps` would guess for ``t`` (distinct texts in order of first appearance)."""
    return _guess_formats(t[t.notna()])


def _guess_formats(t: pd.Series, limit: int = 3) -> list[str]:
    """Formats guessed over a sample of distinct values, the one parsing most of the sample first.

    ISO-like guesses become 'ISO8601'. Day-month dates (:data:`DAY_MONTH_PATTERN`) are left out: whether 01/12/2009
    is the 1st of December or the 12th of January is not guessed (they are quarantined as ``ambiguous_timestamp``
    unless ``timestamp_format`` is set); so are short integers (:data:`SHORT_INTEGER_PATTERN`). Formats putting day
    and month in the other order than a format already chosen are left out too.
    """
    sample = pd.Series(pd.unique(t.iloc[:5000])[:200], dtype="str")
    sample = sample[~day_month_dates(sample) & ~short_integers(sample)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        guesses = {g for v in sample if (g := guess_datetime_format(str(v))) is not None}
    candidates = {"ISO8601" if g.startswith("%Y-%m-%d") else g for g in guesses}
    hits = {
        f: int(pd.to_datetime(sample, format=f, errors="coerce", utc="%z" in f or f == "ISO8601").notna().sum())
        for f in candidates
    }
    chosen: list[str] = []
    orders: set[str] = set()
    for f in sorted(candidates, key=lambda f: (-hits[f], f)):
        order = _day_month_order(f)
        if not hits[f] or (order and orders - {order}):
            continue
        chosen.append(f)
        if order:
            orders.add(order)
    return chosen[:limit]


def _day_month_order(fmt: str) -> str | None:
    if "%d" not in fmt or "%m" not in fmt:
        return None
    return "dm" if fmt.index("%d") < fmt.index("%m") else "md"


def _synthetic_order_ids(customer: pd.Series, timestamp: pd.Series) -> pd.Series:
    """'<customer_id>@<timestamp>': one order per customer and instant (date only when the time is midnight)."""
    codes, uniques = pd.factorize(timestamp)
    values = np.asarray(uniques, dtype=TS_UNIT)
    midnight = values == values.astype("datetime64[D]")
    whole_second = values == values.astype("datetime64[s]")
    text = np.where(
        midnight,
        np.datetime_as_string(values, unit="D"),
        np.where(whole_second, np.datetime_as_string(values, unit="s"), np.datetime_as_string(values, unit="us")),
    )
    ts_text = pd.Series(np.where(codes >= 0, text[np.maximum(codes, 0)], None), index=timestamp.index, dtype="str")
    return (customer + "@" + ts_text).astype("str")


def ambiguous_dates(raw: pd.Series, fmt: str | None, na: tuple[str, ...]) -> np.ndarray:
    """Text day-month dates read without a format ``fmt`` (never guessed), as the engines mark them."""
    if fmt is not None or not pd.api.types.is_string_dtype(raw.dtype):
        return np.zeros(len(raw), dtype=bool)
    return day_month_dates(parse_text(raw, na))
