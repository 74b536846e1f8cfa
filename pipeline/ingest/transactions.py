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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from tiercast.features.schemas import SATISFACTION, TRANSACTIONS
from tiercast.pipeline.ingest.common import REASONS, SATISFACTION_REASONS, InputError, check_share
from tiercast.pipeline.ingest.parsing import (
    _TS_UNIT,
    _ids,
    _numbers,
    _text,
    _timestamps,
)
from tiercast.pipeline.ingest.raw import ROW, run
from tiercast.pipeline.ingest.readers import _check_utf8, _read_csv, _require_columns, _require_some  # noqa: F401
from tiercast.pipeline.ingest.sources import DataConfig, OlistSource, TransactionSource
from tiercast.pipeline.ingest.sql import BAD, EngineIngest
from tiercast.pipeline.writers.files import write_parquet

__all__ = [
    "REASONS",
    "SATISFACTION_REASONS",
    "IngestResult",
    "InputError",
    "count_orphan_refunds",
    "read_transactions",
    "write_quarantine",
]

_TX_SORT = ["timestamp", "customer_id", "order_id"]  # then source row (stable sort over rows in source order)
# A time of day followed by a UTC offset / Z: the string is tz-aware.


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


def write_quarantine(result: IngestResult | EngineIngest, path: str | os.PathLike[str]) -> Path:
    """Write the quarantine (possibly empty) to Parquet atomically; returns ``path``.

    For Olist sources with reviews, rejected review rows go next to it as ``<stem>_satisfaction<suffix>``.
    """
    path = Path(path)
    if isinstance(result, EngineIngest):
        return result.write_quarantine(path)
    if result.satisfaction_quarantine is not None:
        write_parquet(result.satisfaction_quarantine, path.with_name(f"{path.stem}_satisfaction{path.suffix}"))
    return write_parquet(result.quarantine, path)


# --------------------------------------------------------------------------------------------------------------------
# Single-table sources
# --------------------------------------------------------------------------------------------------------------------


def _read_single(src: TransactionSource, run_date: pd.Timestamp | None) -> IngestResult:
    """The rules run as DuckDB SQL (:mod:`tiercast.pipeline.ingest.sql`); the accepted rows are then collected
    sorted and checked once against :data:`TRANSACTIONS` (rows it rejects get reason ``schema``)."""
    import duckdb

    from tiercast.pipeline.ingest.sql import ingest

    con = duckdb.connect()
    try:
        return _collect(ingest(con, src, run_date))
    finally:
        con.close()


def _collect(engine: EngineIngest) -> IngestResult:
    con = engine.con
    accepted = con.execute(engine.accepted_sql(ordered=True, with_row=True)).df()
    accepted.index = accepted.pop(ROW).to_numpy()
    dtypes = {"timestamp": _TS_UNIT, "amount": "float64", "quantity": "float64"}
    accepted = accepted.astype({c: dtypes.get(c, "str") for c in accepted.columns})
    failed = _schema_failures(accepted, TRANSACTIONS)
    if len(failed):
        run(con, f"DELETE FROM {BAD} WHERE list_contains(?::BIGINT[], {ROW})", [failed.tolist()])
        run(con, f"INSERT INTO {BAD} SELECT unnest(?::BIGINT[]), 'schema'", [failed.tolist()])
        accepted = accepted.drop(index=failed)
    quarantine = con.execute(engine.quarantine_sql()).df()
    where = engine.source
    return _result(
        accepted.reset_index(drop=True), quarantine, engine.n_read, where, details={f"rows:{where}": engine.n_read}
    )


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
    counts = _reason_counts(quarantine, (*REASONS, *SATISFACTION_REASONS))
    check_share(counts, n_read, where, max_share, result)


def _naive_run_date(run_date: pd.Timestamp | None, tz: str | None) -> pd.Timestamp | None:
    if run_date is None:
        return None
    ts = pd.Timestamp(run_date)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(tz or "UTC").tz_localize(None)
    return ts
