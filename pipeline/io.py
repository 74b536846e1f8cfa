"""Read transaction sources into the canonical transaction frame, with a quarantine for every rejected row.

:func:`read_transactions` reads the source configured in ``data:`` (CSV / whitespace text, Parquet, a DuckDB table or
query, or the Olist multi-table layout), maps its columns, applies the row rules below, validates the accepted rows
once against :data:`tiercast.features.schemas.TRANSACTIONS`, and returns an :class:`IngestResult` in which
``len(accepted) + len(quarantine) == n_read`` (checked, not assumed). It writes nothing; :func:`write_quarantine`
does, atomically.

Row rules — each rejected row gets exactly one reason, the FIRST that applies, in this order (:data:`REASONS`):

1. ``unknown_order``         (Olist) the item's order is not in the orders table
2. ``canceled_order``        (Olist) the order's status is in ``canceled_statuses``
3. ``missing_customer``      customer id empty / a missing-value marker (``na_values``), or not in customers (Olist)
4. ``unparseable_timestamp`` timestamp missing or not parseable with ``timestamp_format`` (or ISO 8601 / guessed)
5. ``non_numeric_amount``    amount, quantity or unit price (Olist: price or freight) missing, non-numeric, infinite
                             or of magnitude 1e24 or more (:data:`MAX_ABS_NUMBER`)
6. ``missing_order_id``      the order id column is mapped but empty on this row
7. ``non_product_code``      product_id is one of ``non_product_codes`` (postage, fees, manual adjustments...)
8. ``zero_price``            unit price <= 0, or (``amount`` mapping) amount == 0; off with ``zero_amounts: keep``
9. ``future_timestamp``      timestamp after ``run_date`` (only when ``run_date`` is given)
10. ``duplicate``            an exact copy of an earlier source line (all source columns equal): the first copy is
                             kept, later ones quarantined; off with ``duplicates: keep``
11. ``schema``               anything else the pandera schema rejects

Duplicates come after the content rules, so an exact copy of a rejected line gets the same reason as the original.
Refunds and cancellations (negative amounts, Online Retail's "C..." invoices) are kept as negative amounts; refunds
with no earlier purchase (see :func:`count_orphan_refunds`) are kept too and counted in
``IngestResult.orphan_refunds``.

Whole-file problems raise :class:`InputError` (one line naming the file and the problem) before anything is written:
missing / empty file, header without rows, missing mapped column (listing the columns found), a probable wrong
delimiter, bytes that are not UTF-8 (with byte offset and line), no parseable timestamp or numeric amount at all,
and a quarantined share above ``data.max_quarantine_share``.

Canonical frame (``accepted``): ``customer_id`` (str, stripped; integral floats such as 13085.0 become "13085";
leading zeros kept), ``timestamp`` (naive ``datetime64[us]``, local time of ``timezone``), ``amount`` (float64),
``order_id`` (str; without a mapped order column, ``"<customer_id>@<timestamp>"`` so the lines one customer bought
at one instant form one order), then ``quantity`` (float64), ``product_id``, ``category``, ``channel`` when mapped.
Rows sorted by timestamp, customer_id, order_id, then source row; index reset.

Quarantine frame: the source columns as read (Olist: the item columns plus the joined order status, customer key
and order timestamp), then ``source_row`` (0-based data row in the source; the header is not a row) and ``reason``.
A source column named ``source_row`` or ``reason`` is kept as ``src_source_row`` / ``src_reason``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from tiercast.features.schemas import SATISFACTION, TRANSACTIONS
from tiercast.pipeline.files import write_parquet
from tiercast.pipeline.sources import WHITESPACE, DataConfig, OlistSource, TransactionSource

__all__ = [
    "REASONS",
    "SATISFACTION_REASONS",
    "IngestResult",
    "InputError",
    "count_orphan_refunds",
    "read_transactions",
    "write_quarantine",
]

#: Quarantine reasons of transaction lines, in the order the rules are applied (a row gets the first that fails).
REASONS: tuple[str, ...] = (
    "unknown_order",
    "canceled_order",
    "missing_customer",
    "unparseable_timestamp",
    "non_numeric_amount",
    "missing_order_id",
    "non_product_code",
    "zero_price",
    "future_timestamp",
    "duplicate",
    "schema",
)

#: Quarantine reasons of review rows (Olist satisfaction), in rule order.
SATISFACTION_REASONS: tuple[str, ...] = (
    "unknown_order",
    "missing_customer",
    "unparseable_timestamp",
    "invalid_score",
    "future_timestamp",
    "duplicate",
    "schema",
)

#: Amounts, quantities and prices at or beyond this magnitude are ``non_numeric_amount``: money is summed exactly
#: as DECIMAL(38, 6) (:mod:`tiercast.features.rfm`), which holds sums of up to 1e8 such lines.
MAX_ABS_NUMBER = 1e24

_TS_UNIT = "datetime64[us]"
_TX_SORT = ["timestamp", "customer_id", "order_id"]  # then source row (stable sort over rows in source order)
# A time of day followed by a UTC offset / Z: the string is tz-aware.
_TZ_SUFFIX = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$"
_ZONE_NAME_SUFFIX = r"\s*(?:UTC|GMT)$"
_CANDIDATE_DELIMITERS = (",", ";", "\t", "|")


class InputError(Exception):
    """A source that cannot be read as configured; the message is one line naming the file and the problem.

    ``result`` holds the :class:`IngestResult` when the rows were read but too many were quarantined, so a caller
    may still write the quarantine for diagnosis.
    """

    def __init__(self, message: str, *, result: IngestResult | None = None) -> None:
        super().__init__(" ".join(str(message).split()))
        self.result = result


@dataclass(frozen=True, eq=False)
class IngestResult:
    """What :func:`read_transactions` read: accepted canonical rows, quarantined source rows and counts."""

    accepted: pd.DataFrame
    quarantine: pd.DataFrame
    n_read: int
    source: str
    satisfaction: pd.DataFrame | None = None
    #: refund lines (amount < 0) with no purchase of the same customer (and product, when mapped) at or before them
    orphan_refunds: int = 0
    #: review rows rejected while building ``satisfaction`` (review columns as read + source_row + reason)
    satisfaction_quarantine: pd.DataFrame | None = None
    #: further counts: rows read per table (``rows:<table>``), orders without items, orphan refunds per customer...
    details: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def n_accepted(self) -> int:
        return len(self.accepted)

    @property
    def n_quarantined(self) -> int:
        return len(self.quarantine)

    @property
    def quarantine_share(self) -> float:
        return self.n_quarantined / self.n_read if self.n_read else 0.0

    def reason_counts(self) -> dict[str, int]:
        """Quarantined rows per reason, in rule order (reasons with no row left out)."""
        return _reason_counts(self.quarantine, REASONS)

    def satisfaction_reason_counts(self) -> dict[str, int]:
        if self.satisfaction_quarantine is None:
            return {}
        return _reason_counts(self.satisfaction_quarantine, SATISFACTION_REASONS)

    def summary(self) -> str:
        """One line for logs: read / accepted / quarantined by reason / customers / orphan refunds."""
        reasons = ", ".join(f"{k} {v:,}" for k, v in self.reason_counts().items()) or "none"
        return (
            f"{self.source}: read {self.n_read:,} lines, accepted {self.n_accepted:,} "
            f"({self.accepted['customer_id'].nunique():,} customers), quarantined {self.n_quarantined:,} "
            f"({self.quarantine_share:.1%}: {reasons}), orphan refunds {self.orphan_refunds:,}"
        )


def _reason_counts(q: pd.DataFrame, order: tuple[str, ...]) -> dict[str, int]:
    counts = q["reason"].value_counts()
    return {r: int(counts[r]) for r in dict.fromkeys(order) if r in counts.index}


# --------------------------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------------------------


def read_transactions(data: DataConfig, *, run_date: pd.Timestamp | None = None) -> IngestResult:
    """Read the configured source into accepted canonical lines and a quarantine; see the module docstring.

    ``run_date``: lines after it are quarantined as ``future_timestamp`` (a tz-aware value is converted to the
    configured zone). Raises :class:`InputError` for unreadable sources and when the quarantined share exceeds
    ``data.max_quarantine_share``.
    """
    src = data.source
    run = _naive_run_date(run_date, src.timezone)
    result = _read_olist(src, run) if isinstance(src, OlistSource) else _read_single(src, run)
    _check_share(result.quarantine, result.n_read, result.source, data.max_quarantine_share, result)
    if result.satisfaction_quarantine is not None:
        _check_share(
            result.satisfaction_quarantine,
            len(result.satisfaction) + len(result.satisfaction_quarantine),  # type: ignore[arg-type]
            str(src.reviews) if isinstance(src, OlistSource) else result.source,
            data.max_quarantine_share,
            result,
        )
    return result


def count_orphan_refunds(accepted: pd.DataFrame, *, by_product: bool = True) -> int:
    """Refund lines (amount < 0) that refer to no purchase (amount > 0) at or before them.

    The earlier purchase must be by the same customer and, when ``by_product`` and the frame has ``product_id``,
    of the same product. Such lines are kept in the accepted frame (real money went back); this counts them.
    """
    keys = ["customer_id"]
    if by_product and "product_id" in accepted.columns:
        keys.append("product_id")
    amount = accepted["amount"]
    refunds = accepted.loc[amount < 0, [*keys, "timestamp"]]
    if refunds.empty:
        return 0
    first = (
        accepted.loc[amount > 0, [*keys, "timestamp"]]
        .groupby(keys, sort=False, dropna=False)["timestamp"]
        .min()
        .rename("_first_purchase")
    )
    joined = refunds.join(first, on=keys)
    orphan = joined["_first_purchase"].isna() | (joined["_first_purchase"] > joined["timestamp"])
    return int(orphan.sum())


def write_quarantine(result: IngestResult, path: str | os.PathLike[str]) -> Path:
    """Write the quarantine (possibly empty) to Parquet atomically; returns ``path``.

    For Olist sources with reviews, rejected review rows go next to it as ``<stem>_satisfaction<suffix>``.
    """
    path = Path(path)
    if result.satisfaction_quarantine is not None:
        write_parquet(result.satisfaction_quarantine, path.with_name(f"{path.stem}_satisfaction{path.suffix}"))
    return write_parquet(result.quarantine, path)


# --------------------------------------------------------------------------------------------------------------------
# Single-table sources
# --------------------------------------------------------------------------------------------------------------------


def _read_single(src: TransactionSource, run_date: pd.Timestamp | None) -> IngestResult:
    fmt = src.resolved_format()
    where = src.describe()
    if fmt == "csv":
        raw = _read_csv(src.path, src.delimiter)
    elif fmt == "parquet":
        raw = _read_parquet(src.path)
    elif fmt == "postgres":
        raw = _read_postgres(src)
    else:
        raw = _read_duckdb(src)
    cols = src.columns.source_columns()
    _require_columns(raw, cols, where, src.path if fmt == "csv" else None, src.delimiter, "columns.")
    n = len(raw)

    customer = _ids(raw[cols["customer_id"]], src.na_values)
    timestamp = _timestamps(raw[cols["timestamp"]], src.timestamp_format, src.timezone, src.na_values)
    _require_some(timestamp, raw[cols["timestamp"]], where, cols["timestamp"], "timestamp", src.timestamp_format)

    numeric_bad = np.zeros(n, dtype=bool)
    if "amount" in cols:
        amount, bad = _numbers(raw[cols["amount"]], src.decimal, src.na_values)
        _require_some(amount, raw[cols["amount"]], where, cols["amount"], "number", None)
        numeric_bad |= bad
        zero = (amount == 0).to_numpy()
    quantity = None
    if "quantity" in cols:
        quantity, bad = _numbers(raw[cols["quantity"]], src.decimal, src.na_values)
        _require_some(quantity, raw[cols["quantity"]], where, cols["quantity"], "number", None)
        numeric_bad |= bad
    if "unit_price" in cols:
        price, bad = _numbers(raw[cols["unit_price"]], src.decimal, src.na_values)
        _require_some(price, raw[cols["unit_price"]], where, cols["unit_price"], "number", None)
        numeric_bad |= bad
        amount = quantity * price  # type: ignore[operator]
        numeric_bad |= (np.abs(amount) >= MAX_ABS_NUMBER).to_numpy()
        zero = (price <= 0).to_numpy()

    order_id = _ids(raw[cols["order_id"]], src.na_values) if "order_id" in cols else None
    optional = {k: _text(raw[cols[k]], src.na_values) for k in ("product_id", "category", "channel") if k in cols}
    non_product = (
        optional["product_id"].isin(src.non_product_codes).to_numpy()
        if "product_id" in optional and src.non_product_codes
        else np.zeros(n, dtype=bool)
    )

    rules = [
        ("missing_customer", customer.isna().to_numpy()),
        ("unparseable_timestamp", timestamp.isna().to_numpy()),
        ("non_numeric_amount", numeric_bad),
        ("missing_order_id", order_id.isna().to_numpy() if order_id is not None else None),
        ("non_product_code", non_product),
        ("zero_price", zero if src.zero_amounts == "quarantine" else None),
        ("future_timestamp", (timestamp > run_date).to_numpy() if run_date is not None else None),
        ("duplicate", raw.duplicated(keep="first").to_numpy() if src.duplicates == "quarantine" else None),
    ]
    reason = _judge(n, rules)

    canonical = {
        "customer_id": customer,
        "timestamp": timestamp,
        "amount": amount.astype("float64"),
        "order_id": order_id if order_id is not None else _synthetic_order_ids(customer, timestamp),
    }
    if quantity is not None:
        canonical["quantity"] = quantity.astype("float64")
    canonical.update(optional)
    accepted, quarantine = _split(raw, reason, pd.DataFrame(canonical), TRANSACTIONS, _TX_SORT)
    return _result(accepted, quarantine, n, where, details={f"rows:{where}": n})


# --------------------------------------------------------------------------------------------------------------------
# Olist multi-table source
# --------------------------------------------------------------------------------------------------------------------

_OLIST_COLUMNS = {
    "orders": ("order_id", "customer_id", "order_status"),
    "order_items": ("order_id", "product_id", "price", "freight_value"),
    "customers": ("customer_id",),
    "reviews": ("order_id", "review_score"),
    "products": ("product_id", "product_category_name"),
}


def _read_olist(src: OlistSource, run_date: pd.Timestamp | None) -> IngestResult:
    na = src.na_values
    tables = {name: _read_csv(path, src.delimiter) for name, path in src.tables().items()}
    required = dict(_OLIST_COLUMNS)
    required["orders"] = (*required["orders"], src.timestamp)
    required["customers"] = (*required["customers"], src.customer_key)
    for name, df in tables.items():
        path = src.tables()[name]
        _require_columns(df, {c: c for c in required[name]}, str(path), path, src.delimiter, f"{name} ")
    if "reviews" in tables:
        rv = tables["reviews"]
        if "review_answer_timestamp" not in rv.columns and "review_creation_date" not in rv.columns:
            raise InputError(
                f"{src.reviews}: missing column 'review_answer_timestamp' (or 'review_creation_date'); "
                f"columns found: {list(rv.columns)}"
            )

    orders = _unique_by(tables["orders"], "order_id", src.orders, na)
    customers = _unique_by(tables["customers"], "customer_id", src.customers, na)
    customer_of_order = _ids(orders["customer_id"], na).map(customers[src.customer_key])

    items = tables["order_items"]
    n = len(items)
    keys = _ids(items["order_id"], na)
    found = keys.isin(orders.index).to_numpy()
    status = _text(keys.map(orders["order_status"]), na)
    cust_raw = keys.map(customer_of_order)
    ts_raw = keys.map(orders[src.timestamp])

    customer = _ids(cust_raw, na)
    timestamp = _timestamps(ts_raw, src.timestamp_format, src.timezone, na)
    if found.any():
        _require_some(timestamp[found], ts_raw[found], str(src.orders), src.timestamp, "timestamp", None)
    price, price_bad = _numbers(items["price"], src.decimal, na)
    freight, freight_bad = _numbers(items["freight_value"], src.decimal, na)
    _require_some(price, items["price"], str(src.order_items), "price", "number", None)
    product = _text(items["product_id"], na)

    pre = np.where(~found, "unknown_order", np.where(status.isin(src.canceled_statuses), "canceled_order", None))
    rules = [
        ("missing_customer", customer.isna().to_numpy()),
        ("unparseable_timestamp", timestamp.isna().to_numpy()),
        ("non_numeric_amount", price_bad | freight_bad),
        ("zero_price", (price <= 0).to_numpy() if src.zero_amounts == "quarantine" else None),
        ("future_timestamp", (timestamp > run_date).to_numpy() if run_date is not None else None),
        ("duplicate", items.duplicated(keep="first").to_numpy() if src.duplicates == "quarantine" else None),
    ]
    reason = _judge(n, rules, pre=pre)

    canonical = pd.DataFrame(
        {
            "customer_id": customer,
            "timestamp": timestamp,
            "amount": (price + freight).astype("float64"),
            "order_id": keys,
            "quantity": np.ones(n, dtype="float64"),
            "product_id": product,
        }
    )
    if "products" in tables:
        products = _unique_by(tables["products"], "product_id", src.products, na)  # type: ignore[arg-type]
        canonical["category"] = _text(product.map(products["product_category_name"]), na)

    # Quarantined items carry the joined order context, so a reader sees why without re-joining.
    raw = items.copy()
    context = {"order_status": status, src.customer_key: cust_raw, src.timestamp: ts_raw}
    for name, values in context.items():
        raw[name if name not in raw.columns else f"order_{name}"] = values.to_numpy()
    accepted, quarantine = _split(raw, reason, canonical, TRANSACTIONS, _TX_SORT)

    details = {f"rows:{name}": len(df) for name, df in tables.items()}
    details["orders_without_items"] = int((~orders.index.isin(keys)).sum())
    satisfaction = sat_quarantine = None
    if "reviews" in tables:
        satisfaction, sat_quarantine = _olist_satisfaction(
            tables["reviews"], orders.index, customer_of_order, src, run_date
        )
    return _result(
        accepted,
        quarantine,
        n,
        str(src.order_items),
        details=details,
        satisfaction=satisfaction,
        satisfaction_quarantine=sat_quarantine,
    )


def _olist_satisfaction(
    reviews: pd.DataFrame,
    order_ids: pd.Index,
    customer_of_order: pd.Series,
    src: OlistSource,
    run_date: pd.Timestamp | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    na = src.na_values
    n = len(reviews)
    keys = _ids(reviews["order_id"], na)
    found = keys.isin(order_ids).to_numpy()
    customer = _ids(keys.map(customer_of_order), na)
    nat = pd.Series(pd.NaT, index=reviews.index, dtype=_TS_UNIT)
    parsed = [
        _timestamps(reviews[c], src.timestamp_format, src.timezone, na)
        for c in ("review_answer_timestamp", "review_creation_date")
        if c in reviews.columns
    ]
    timestamp = parsed[0].fillna(parsed[1]) if len(parsed) == 2 else parsed[0] if parsed else nat
    score, score_bad = _numbers(reviews["review_score"], src.decimal, na)
    score_bad = score_bad | ~score.isin([1.0, 2.0, 3.0, 4.0, 5.0]).to_numpy()

    rules = [
        ("unknown_order", ~found),
        ("missing_customer", customer.isna().to_numpy()),
        ("unparseable_timestamp", timestamp.isna().to_numpy()),
        ("invalid_score", score_bad),
        ("future_timestamp", (timestamp > run_date).to_numpy() if run_date is not None else None),
        ("duplicate", reviews.duplicated(keep="first").to_numpy() if src.duplicates == "quarantine" else None),
    ]
    reason = _judge(n, rules)
    ok_score = score.where(~score_bad, 0).astype("int64")
    canonical = pd.DataFrame(
        {
            "customer_id": customer,
            "timestamp": timestamp,
            "review_score": ok_score,
            "is_complaint": (ok_score <= src.complaint_max_score) & ~score_bad,
        }
    )
    accepted, quarantine = _split(reviews, reason, canonical, SATISFACTION, ["timestamp", "customer_id"])
    _check_accounting(accepted, quarantine, n, str(src.reviews))
    return accepted, quarantine


def _unique_by(df: pd.DataFrame, key: str, path: Path, na: tuple[str, ...]) -> pd.DataFrame:
    """Index a lookup table by ``key``: exact duplicate rows collapse; conflicting rows for one key fail."""
    ids = _ids(df[key], na)
    df = df.assign(**{key: ids}).loc[ids.notna().to_numpy()].drop_duplicates()
    dup = df[key].duplicated(keep=False)
    if dup.any():
        first = df.loc[dup, key].iloc[0]
        raise InputError(
            f"{path}: {key} {first!r} (and {int(dup.sum()) - 1} more rows) appears on rows with different values; "
            f"a lookup table needs one row per {key}"
        )
    return df.set_index(key)


# --------------------------------------------------------------------------------------------------------------------
# Rules, splitting, accounting
# --------------------------------------------------------------------------------------------------------------------


def _judge(n: int, rules: list[tuple[str, np.ndarray | None]], *, pre: np.ndarray | None = None) -> np.ndarray:
    """Reason per row (object array, None = accepted): ``pre`` first, then the first rule whose mask is True."""
    reason = np.full(n, None, dtype=object)
    for name, mask in reversed(rules):  # reversed: the first rule that applies is written last, so it wins
        if mask is not None:
            reason[np.asarray(mask, dtype=bool)] = name
    if pre is not None:
        pre = np.asarray(pre, dtype=object)
        has_pre = ~pd.isna(pre)
        reason[has_pre] = pre[has_pre]
    return reason


def _split(
    raw: pd.DataFrame,
    reason: np.ndarray,
    canonical: pd.DataFrame,
    schema,
    sort_keys: list[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accepted canonical rows (sorted, schema-checked once) and the quarantine (source rows + reason)."""
    reason = reason.copy()
    ok = pd.isna(reason)
    accepted = canonical.loc[ok]  # index = source row; raw order, so a stable sort breaks ties by source row
    accepted = accepted.sort_values(sort_keys, kind="stable") if len(accepted) else accepted
    failed = _schema_failures(accepted, schema)
    if len(failed):
        reason[failed] = "schema"
        accepted = accepted.drop(index=failed)
    accepted = accepted.reset_index(drop=True)

    bad = ~pd.isna(reason)
    quarantine = raw.loc[bad].rename(columns={c: f"src_{c}" for c in ("source_row", "reason") if c in raw.columns})
    quarantine.insert(len(quarantine.columns), "source_row", np.flatnonzero(bad).astype("int64"))
    quarantine.insert(len(quarantine.columns), "reason", pd.Series(reason[bad], index=quarantine.index, dtype="str"))
    return accepted, quarantine.reset_index(drop=True)


def _schema_failures(frame: pd.DataFrame, schema) -> np.ndarray:
    """Source rows (index labels) the schema rejects; a frame-level failure is a bug and raises."""
    import pandera.errors as pe

    try:
        schema.validate(frame, lazy=True)
    except pe.SchemaErrors as err:
        cases = err.failure_cases
        if cases["index"].isna().any():
            frame_level = cases.loc[cases["index"].isna(), ["column", "check"]].drop_duplicates()
            raise RuntimeError(f"canonical frame fails {schema.name} schema: {frame_level.to_dict('records')}") from err
        return np.unique(cases["index"].astype("int64").to_numpy())
    return np.empty(0, dtype="int64")


def _check_accounting(accepted: pd.DataFrame, quarantine: pd.DataFrame, n_read: int, where: str) -> None:
    if len(accepted) + len(quarantine) != n_read:
        raise RuntimeError(
            f"{where}: row accounting broken: accepted {len(accepted)} + quarantined {len(quarantine)} != read {n_read}"
        )


def _result(
    accepted: pd.DataFrame, quarantine: pd.DataFrame, n: int, where: str, *, details: dict[str, int], **extra
) -> IngestResult:
    _check_accounting(accepted, quarantine, n, where)
    details = dict(details)
    orphans = count_orphan_refunds(accepted)
    details["orphan_refunds_any_product"] = count_orphan_refunds(accepted, by_product=False)
    return IngestResult(
        accepted=accepted,
        quarantine=quarantine,
        n_read=n,
        source=where,
        orphan_refunds=orphans,
        details=MappingProxyType(details),
        **extra,
    )


def _check_share(quarantine: pd.DataFrame, n_read: int, where: str, max_share: float, result: IngestResult) -> None:
    if not n_read:
        return
    share = len(quarantine) / n_read
    if share > max_share:
        counts = _reason_counts(quarantine, (*REASONS, *SATISFACTION_REASONS))
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]  # stable: ties in rule order
        reasons = ", ".join(f"{r} {c:,}" for r, c in top)
        raise InputError(
            f"{where}: {share:.1%} of {n_read:,} rows quarantined, above max_quarantine_share {max_share:.1%} "
            f"(top reasons: {reasons})",
            result=result,
        )


def _naive_run_date(run_date: pd.Timestamp | None, tz: str | None) -> pd.Timestamp | None:
    if run_date is None:
        return None
    ts = pd.Timestamp(run_date)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(tz or "UTC").tz_localize(None)
    return ts


# --------------------------------------------------------------------------------------------------------------------
# Column parsing (vectorised)
# --------------------------------------------------------------------------------------------------------------------


def _text(s: pd.Series, na_values: tuple[str, ...]) -> pd.Series:
    """Stripped strings; missing markers -> NaN. Integral floats print without '.0'."""
    if pd.api.types.is_float_dtype(s.dtype):
        return _float_text(s)
    if pd.api.types.is_integer_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("str").where(s.notna())
    t = s.astype("str").str.strip()
    return t.where(~t.isin(na_values) & t.notna())


def _ids(s: pd.Series, na_values: tuple[str, ...]) -> pd.Series:
    """Identifiers: like :func:`_text`, and text like '13085.0' (a float id saved as text) becomes '13085'."""
    t = _text(s, na_values)
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
    integral = np.isfinite(v) & (np.floor(v) == v) & (np.abs(v) < 2**63)
    text = pd.Series(v).astype("str").to_numpy(dtype=object)
    text[integral] = pd.Series(v[integral].astype("int64")).astype("str").to_numpy(dtype=object)
    text[~np.isfinite(v)] = None
    out = np.where(codes >= 0, text[np.maximum(codes, 0)] if len(text) else None, None)
    return pd.Series(out, index=s.index, dtype="str")


def _numbers(s: pd.Series, decimal: str, na_values: tuple[str, ...]) -> tuple[pd.Series, np.ndarray]:
    """float64 values (NaN where bad) and the 'bad' mask (missing, non-numeric or infinite)."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        v = pd.Series(s.to_numpy(dtype="float64", na_value=np.nan), index=s.index)
    else:
        v = _per_distinct(_text(s, na_values), lambda u: _parse_numbers(u, decimal), np.nan, "float64")
    values = v.to_numpy()
    bad = ~(np.abs(values) < MAX_ABS_NUMBER)  # NaN, infinite, or beyond what an exact money sum holds
    return v.where(~bad), bad


def _timestamps(s: pd.Series, fmt: str | None, tz: str | None, na_values: tuple[str, ...]) -> pd.Series:
    """Naive datetime64[us] in zone ``tz`` (NaT where unparseable); see the module docstring."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert(tz or "UTC").dt.tz_localize(None).astype(_TS_UNIT)
    if pd.api.types.is_datetime64_dtype(s.dtype):
        return s.astype(_TS_UNIT)
    t = _text(s, na_values)  # numbers (e.g. 19970101) become their text
    return _per_distinct(t, lambda u: _parse_timestamps(u, fmt, tz), np.datetime64("NaT", "us"), _TS_UNIT)


def _per_distinct(t: pd.Series, parse, missing, dtype: str) -> pd.Series:
    """Apply ``parse`` (Series -> Series) to the distinct non-missing values of ``t`` only, then spread back."""
    codes, uniques = pd.factorize(t)
    parsed = parse(pd.Series(uniques, dtype="str")).to_numpy(dtype=dtype)
    taken = parsed[np.maximum(codes, 0)] if len(parsed) else np.full(len(t), missing, dtype=dtype)
    return pd.Series(np.where(codes >= 0, taken, np.array(missing, dtype=dtype)), index=t.index, dtype=dtype)


def _parse_numbers(t: pd.Series, decimal: str) -> pd.Series:
    if decimal == ",":
        t = t.str.replace(",", ".", regex=False)
    return pd.to_numeric(t, errors="coerce").astype("float64")


def _parse_timestamps(t: pd.Series, fmt: str | None, tz: str | None) -> pd.Series:
    """Parse distinct non-missing timestamp texts (see :func:`_timestamps`)."""
    out = pd.Series(pd.NaT, index=t.index, dtype=_TS_UNIT)
    present = t.notna().to_numpy()
    if not present.any():
        return out
    if fmt is not None:
        formats = [fmt]
        aware = np.full(len(t), "%z" in fmt or "%Z" in fmt)
    else:
        formats = _guess_formats(t[present])
        aware = t.str.contains(_TZ_SUFFIX, regex=True, na=False).to_numpy()
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
        out.iloc[np.flatnonzero(naive_rows)] = parsed.astype(_TS_UNIT).to_numpy()
    if aware_rows.any():
        text = t[aware_rows]
        if "%Z" not in fmt:  # ' UTC' / 'GMT' written after the time: the zero offset ISO 8601 parsers know
            text = text.str.replace(_ZONE_NAME_SUFFIX, "+00:00", regex=True)
        parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
        local = parsed.dt.tz_convert(tz or "UTC").dt.tz_localize(None).astype(_TS_UNIT)
        out.iloc[np.flatnonzero(aware_rows)] = local.to_numpy()


def _guess_formats(t: pd.Series, limit: int = 3) -> list[str]:
    """Formats guessed over a sample of distinct values, the one parsing most of the sample first.

    ISO-like guesses become 'ISO8601'. Formats putting day and month in the other order than a format already
    chosen are left out, so a file of dd/mm dates is never partly read as mm/dd.
    """
    sample = pd.Series(pd.unique(t.iloc[:5000])[:200], dtype="str")
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
    values = np.asarray(uniques, dtype=_TS_UNIT)
    midnight = values == values.astype("datetime64[D]")
    whole_second = values == values.astype("datetime64[s]")
    text = np.where(
        midnight,
        np.datetime_as_string(values, unit="D"),
        np.where(whole_second, np.datetime_as_string(values, unit="s"), np.datetime_as_string(values, unit="us")),
    )
    ts_text = pd.Series(np.where(codes >= 0, text[np.maximum(codes, 0)], None), index=timestamp.index, dtype="str")
    return (customer + "@" + ts_text).astype("str")


# --------------------------------------------------------------------------------------------------------------------
# Readers and file checks
# --------------------------------------------------------------------------------------------------------------------


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (0 bytes)")


def _check_utf8(path: Path, chunk_size: int = 1 << 22) -> None:
    """Fail on the first byte sequence that is not UTF-8, naming its byte offset and line; bounded memory."""
    offset = 0  # bytes before `buf`
    lines = 0  # newlines before `buf`
    carry = b""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(chunk_size)
            buf = carry + chunk
            if not buf:
                return
            try:
                buf.decode("utf-8")
                carry = b""
                good = len(buf)
            except UnicodeDecodeError as err:
                if chunk and err.reason == "unexpected end of data":
                    good = err.start  # a character split across chunks: finish it with the next chunk
                    carry = buf[good:]
                else:
                    pos = offset + err.start
                    line = lines + buf.count(b"\n", 0, err.start) + 1
                    raise InputError(
                        f"{path}: not valid UTF-8: byte 0x{buf[err.start]:02x} at byte offset {pos} (line {line}); "
                        "re-save the file as UTF-8"
                    ) from None
            lines += buf.count(b"\n", 0, good)
            offset += good
            if not chunk:
                return


def _header_line(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    return head.decode("utf-8", errors="replace").lstrip("\ufeff").splitlines()[0] if head.strip() else ""


def _delimiter_hint(path: Path | None, delimiter: str) -> str:
    """' — the header looks ';'-separated ...' when another delimiter is likelier than the configured one."""
    if path is None or delimiter == WHITESPACE:
        return ""
    header = _header_line(path)
    counts = {d: header.count(d) for d in _CANDIDATE_DELIMITERS if d != delimiter}
    best = max(counts, key=lambda d: counts[d]) if counts else None
    if best is None or counts[best] == 0 or header.count(delimiter) >= counts[best]:
        return ""
    return (
        f"; wrong delimiter? read with {delimiter!r}, but the header has {counts[best]} {best!r} "
        f"(set delimiter: {best!r})"
    )


def _read_csv(path: Path, delimiter: str) -> pd.DataFrame:
    path = Path(path)
    _check_file(path)
    _check_utf8(path)
    sep = r"\s+" if delimiter == WHITESPACE else delimiter
    try:
        df = pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
            engine="c",
        )
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: file is empty (no header line)") from None
    except pd.errors.ParserError as err:
        raise InputError(f"{path}: cannot parse as delimited text: {err}{_delimiter_hint(path, delimiter)}") from None
    if df.empty:
        raise InputError(f"{path}: header but no data rows (columns: {list(df.columns)})")
    return df


def _read_parquet(path: Path) -> pd.DataFrame:
    path = Path(path)
    _check_file(path)
    try:
        df = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        raise InputError(f"{path}: not a readable Parquet file ({type(err).__name__}: {err})") from None
    if df.empty:
        raise InputError(f"{path}: no data rows (columns: {list(df.columns)})")
    return df.reset_index(drop=True)


def _read_duckdb(src: TransactionSource) -> pd.DataFrame:
    import duckdb

    path = Path(src.path)
    _check_file(path)
    if src.table is not None:
        name = ".".join('"' + part.replace('"', '""') + '"' for part in src.table.split("."))
        sql = f"SELECT * FROM {name}"
    else:
        sql = src.query  # type: ignore[assignment]
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as err:
        raise InputError(f"{path}: not a readable DuckDB database ({err})") from None
    try:
        df = con.sql(sql).df()
    except duckdb.Error as err:
        raise InputError(f"{src.describe()}: query failed: {err}") from None
    finally:
        con.close()
    if df.empty:
        raise InputError(f"{src.describe()}: no data rows (columns: {list(df.columns)})")
    return df


def _read_postgres(src: TransactionSource) -> pd.DataFrame:
    """A PostgreSQL table or query through Ibis's postgres backend (``pip install "tiercast[postgres]"``)."""
    import ibis

    try:
        con = ibis.connect(str(src.url).replace("postgres://", "postgresql://", 1))
    except Exception as err:  # driver and connection errors differ; the message names the source
        raise InputError(f"{src.describe()}: cannot connect ({str(err).splitlines()[0]})") from None
    try:
        if src.table is not None:
            *schema, name = src.table.split(".")
            df = con.table(name, database=schema[0] if schema else None).to_pandas()
        else:
            df = _postgres_query(con, str(src.query))
    except Exception as err:
        raise InputError(f"{src.describe()}: query failed: {str(err).splitlines()[0]}") from None
    finally:
        con.disconnect()
    if df.empty:
        raise InputError(f"{src.describe()}: no data rows (columns: {list(df.columns)})")
    return df


def _postgres_query(con, query: str) -> pd.DataFrame:
    """The rows of a SELECT, through the backend's cursor (exact NUMERIC values become floats)."""
    from decimal import Decimal

    with con.raw_sql(query) as cur:
        rows = cur.fetchall()
        names = [d.name for d in cur.description]
    df = pd.DataFrame.from_records(rows, columns=names)
    for col in df.columns:
        if df[col].dtype == object and df[col].map(lambda v: isinstance(v, Decimal)).any():
            df[col] = df[col].map(lambda v: float(v) if isinstance(v, Decimal) else v)
    return df


def _require_columns(
    df: pd.DataFrame, mapping: dict[str, str], where: str, path: Path | None, delimiter: str, prefix: str
) -> None:
    missing = [(field_, col) for field_, col in mapping.items() if col not in df.columns]
    if not missing:
        return
    names = ", ".join(f"{col!r} ({prefix}{field_})" if field_ != col else repr(col) for field_, col in missing)
    found = [str(c) for c in df.columns]
    hint = _delimiter_hint(path, delimiter) if len(found) == 1 and path is not None else ""
    if len(found) == 1 and path is not None and not hint and len(mapping) > 1:
        hint = f"; only one column was read with delimiter {delimiter!r}: wrong delimiter?"
    raise InputError(f"{where}: missing column {names}; columns found: {found}{hint}")


def _require_some(parsed: pd.Series, raw: pd.Series, where: str, column: str, kind: str, fmt: str | None) -> None:
    """A column where no row parses means a wrong mapping or format, not bad rows: fail the file."""
    if parsed.notna().any():
        return
    examples = [repr(v) for v in pd.unique(raw.astype("str"))[:3]]
    how = f" with format {fmt!r}" if fmt else ""
    advice = ""
    if kind == "timestamp":
        advice = (
            "; set timestamp_format in the data source to the strptime format of these values, e.g. '%d/%m/%Y %H:%M'"
        )
    raise InputError(
        f"{where}: no value of column {column!r} parses as a {kind}{how} ({len(raw):,} rows; "
        f"e.g. {', '.join(examples)}){advice}"
    )
