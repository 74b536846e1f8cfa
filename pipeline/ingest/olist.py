"""The Olist multi-table layout (orders, order items, customers, optionally reviews and products) joined to one
transaction line per order item under the row rules of :mod:`tiercast.pipeline.ingest.transactions`, plus a
customer-level satisfaction frame from the reviews. Values read differently from the file (order and review times
with a UTC offset, customer ids with surrounding whitespace) get the notices of single-table sources
(:mod:`tiercast.pipeline.ingest.notices`), as do accepted customer ids differing only in letter case.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tiercast.features.contract import (
    AMOUNT,
    CATEGORY,
    CUSTOMER_ID,
    ORDER_ID,
    PRODUCT_ID,
    QUANTITY,
    REVIEW_SCORE,
    TIMESTAMP,
)
from tiercast.features.schemas import TRANSACTIONS
from tiercast.pipeline.ingest import notices
from tiercast.pipeline.ingest.common import InputError
from tiercast.pipeline.ingest.parsing import (
    TS_UNIT,
    ambiguous_dates,
    carries_offset,
    parse_ids,
    parse_numbers,
    parse_text,
    parse_timestamp_column,
)
from tiercast.pipeline.ingest.readers import (
    check_timestamp_format,
    read_csv_source,
    require_some_values,
    require_source_columns,
)
from tiercast.pipeline.ingest.reviews import satisfaction_rows
from tiercast.pipeline.ingest.rules import (
    TX_SORT,
    IngestResult,
    ingest_result,
    judge_rows,
    split_rows,
)
from tiercast.pipeline.ingest.sources import OlistSource

# --------------------------------------------------------------------------------------------------------------------
# Olist multi-table source
# --------------------------------------------------------------------------------------------------------------------

_OLIST_COLUMNS = {
    "orders": (ORDER_ID, CUSTOMER_ID, "order_status"),
    "order_items": (ORDER_ID, PRODUCT_ID, "price", "freight_value"),
    "customers": (CUSTOMER_ID,),
    "reviews": (ORDER_ID, REVIEW_SCORE),
    "products": (PRODUCT_ID, "product_category_name"),
}


# size: the Olist join: items, orders, customers and products read, and each row judged by the documented
# rules in their order; split, the partial frames and their masks would travel between helpers
def read_olist(src: OlistSource, run_date: pd.Timestamp | None) -> IngestResult:
    na = src.na_values
    check_timestamp_format(src.timestamp_format, str(src.orders), src.timestamp)
    tables = {name: read_csv_source(path, src.delimiter) for name, path in src.tables().items()}
    required = dict(_OLIST_COLUMNS)
    required["orders"] = (*required["orders"], src.timestamp)
    required["customers"] = (*required["customers"], src.customer_key)
    for name, df in tables.items():
        path = src.tables()[name]
        require_source_columns(df, {c: c for c in required[name]}, str(path), path, src.delimiter, f"{name} ")
    if "reviews" in tables:
        _check_review_times(tables["reviews"], src)

    orders = _unique_by(tables["orders"], ORDER_ID, src.orders, na, (CUSTOMER_ID, "order_status", src.timestamp))
    customers = _unique_by(tables["customers"], CUSTOMER_ID, src.customers, na, (src.customer_key,))
    customer_of_order = _customer_of_order(orders, customers, src.customer_key, na)

    items = tables["order_items"]
    n = len(items)
    keys = parse_ids(items[ORDER_ID], na)
    found = keys.isin(orders.index).to_numpy()
    status = parse_text(keys.map(orders["order_status"]), na)
    cust_raw = keys.map(customer_of_order)
    ts_raw = keys.map(orders[src.timestamp])

    customer = parse_ids(cust_raw, na)
    timestamp = parse_timestamp_column(ts_raw, src.timestamp_format, src.timezone, na)
    if found.any():
        require_some_values(timestamp[found], ts_raw[found], str(src.orders), src.timestamp, TIMESTAMP, None)
    price, price_bad = parse_numbers(items["price"], src.decimal, na)
    freight, freight_bad = parse_numbers(items["freight_value"], src.decimal, na)
    require_some_values(price, items["price"], str(src.order_items), "price", "number", None)
    product = parse_text(items[PRODUCT_ID], na)

    pre = np.where(~found, "unknown_order", np.where(status.isin(src.canceled_statuses), "canceled_order", None))
    rules = [
        ("missing_customer", customer.isna().to_numpy()),
        ("ambiguous_timestamp", ambiguous_dates(ts_raw, src.timestamp_format, na)),
        ("unparseable_timestamp", timestamp.isna().to_numpy()),
        ("non_numeric_amount", price_bad | freight_bad),
        ("zero_price", (price <= 0).to_numpy() if src.zero_amounts == "quarantine" else None),
        ("future_timestamp", (timestamp > run_date).to_numpy() if run_date is not None else None),
        ("duplicate", items.duplicated(keep="first").to_numpy() if src.duplicates == "quarantine" else None),
    ]
    reason = judge_rows(n, rules, pre=pre)
    _notify(tables, keys[found & timestamp.notna().to_numpy()], keys[found], src)

    canonical = pd.DataFrame(
        {
            CUSTOMER_ID: customer,
            TIMESTAMP: timestamp,
            AMOUNT: (price + freight).astype("float64"),
            ORDER_ID: keys,
            QUANTITY: np.ones(n, dtype="float64"),
            PRODUCT_ID: product,
        }
    )
    if "products" in tables:
        products = _unique_by(tables["products"], PRODUCT_ID, src.products, na, ("product_category_name",))  # type: ignore[arg-type]
        canonical[CATEGORY] = parse_text(product.map(products["product_category_name"]), na)

    # Quarantined items carry the joined order context, so a reader sees why without re-joining.
    raw = items.copy()
    context = {"order_status": status, src.customer_key: cust_raw, src.timestamp: ts_raw}
    for name, values in context.items():
        raw[name if name not in raw.columns else f"order_{name}"] = values.to_numpy()
    accepted, quarantine = split_rows(raw, reason, canonical, TRANSACTIONS, TX_SORT)
    if (cased := notices.case_variants_in(accepted[CUSTOMER_ID])) is not None:  # the ids' file: see _customer_of_order
        keyed_by = (src.orders, CUSTOMER_ID) if src.customer_key == CUSTOMER_ID else (src.customers, src.customer_key)
        notices.warn(cased.message(str(keyed_by[0]), keyed_by[1]))

    details = {f"rows:{name}": len(df) for name, df in tables.items()}
    details["orders_without_items"] = int((~orders.index.isin(keys)).sum())
    satisfaction = sat_quarantine = None
    if "reviews" in tables:
        satisfaction, sat_quarantine = _olist_satisfaction(
            tables["reviews"], orders.index, customer_of_order, src, run_date
        )
    return ingest_result(
        accepted,
        quarantine,
        n,
        str(src.order_items),
        details=details,
        satisfaction=satisfaction,
        satisfaction_quarantine=sat_quarantine,
    )


def _notify(tables: dict[str, pd.DataFrame], parsed: pd.Series, read: pd.Series, src: OlistSource) -> None:
    """The notices of values kept but read differently from the file (:mod:`tiercast.pipeline.ingest.notices`), as
    the single-table ingestion gives them: order timestamps converted from a UTC offset, and customer ids trimmed of
    surrounding whitespace (the customer key, and the ``customer_id`` joining orders to customers). Rows are counted
    in the file holding the column, among those read for some item (``read``: the items' order ids found in orders;
    ``parsed``: those whose timestamp parsed); the tables' other rows are not read."""
    na = src.na_values
    orders, customers = tables["orders"], tables["customers"]
    order_key = parse_ids(orders[ORDER_ID], na)
    aware = carries_offset(parse_text(orders[src.timestamp], na), src.timestamp_format)
    n_offset = int((aware & _isin(order_key, parsed)).sum())
    if n_offset:
        notices.warn(notices.offset_message(str(src.orders), src.timestamp, n_offset, src.timezone))
    read_orders = _isin(order_key, read)
    read_customers = _isin(parse_ids(customers[CUSTOMER_ID], na), parse_ids(orders[CUSTOMER_ID], na)[read_orders])
    columns = [
        (src.customers, customers, src.customer_key, read_customers),
        (src.orders, orders, CUSTOMER_ID, read_orders),
        (src.customers, customers, CUSTOMER_ID, read_customers),
    ]
    if src.customer_key == CUSTOMER_ID:  # the key is the join column: one notice for it
        columns = columns[1:]
    for path, table, column, rows in columns:
        values = table[column][rows]
        found = notices.padded_ids_in(values, parse_ids(values, na))
        if found is not None:
            notices.warn(found.message(str(path), column))


def _customer_of_order(orders: pd.DataFrame, customers: pd.DataFrame, key: str, na: tuple[str, ...]) -> pd.Series:
    """Each order's raw ``key`` value from the customers table (indexed by the parsed ``customer_id``), missing when
    its customer is not there. ``key`` = ``customer_id`` (the per-order id; it is the customers' index) gives the
    order's own ``customer_id`` text, kept only where the customers table has it, as any other key would be."""
    ids = parse_ids(orders[CUSTOMER_ID], na)
    if key == CUSTOMER_ID:
        return orders[CUSTOMER_ID].where(ids.isin(customers.index).to_numpy())
    return ids.map(customers[key])


def _isin(values: pd.Series, among: pd.Series) -> np.ndarray:
    """Where the text ``values`` is one of ``among`` (a missing value never is), as an Arrow hash lookup: pandas'
    ``isin`` on text builds its lookup value by value in Python, some 50 times slower on 100k ids."""
    found = pc.is_in(pa.array(values, type=pa.string()), value_set=pa.array(among, type=pa.string()), skip_nulls=True)
    return found.fill_null(False).to_numpy(zero_copy_only=False)


def _olist_satisfaction(
    reviews: pd.DataFrame,
    order_ids: pd.Index,
    customer_of_order: pd.Series,
    src: OlistSource,
    run_date: pd.Timestamp | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    na = src.na_values
    n = len(reviews)
    keys = parse_ids(reviews[ORDER_ID], na)
    found = keys.isin(order_ids).to_numpy()
    customer = parse_ids(keys.map(customer_of_order), na)
    timestamp, ambiguous, converted = _review_times(reviews, src)
    for c, k in converted.items():
        if k:
            notices.warn(notices.offset_message(str(src.reviews), c, k, src.timezone))
    score, score_bad = parse_numbers(reviews[REVIEW_SCORE], src.decimal, na)
    score_bad = score_bad | ~score.isin([1.0, 2.0, 3.0, 4.0, 5.0]).to_numpy()

    rules = [
        ("unknown_order", ~found),
        ("missing_customer", customer.isna().to_numpy()),
        ("ambiguous_timestamp", ambiguous.any(axis=1).to_numpy()),
        ("unparseable_timestamp", timestamp.isna().to_numpy()),
        ("invalid_score", score_bad),
        ("future_timestamp", (timestamp > run_date).to_numpy() if run_date is not None else None),
        ("duplicate", reviews.duplicated(keep="first").to_numpy() if src.duplicates == "quarantine" else None),
    ]
    reason = judge_rows(n, rules)
    _warn_ambiguous(reviews, ambiguous.loc[reason == "ambiguous_timestamp"], str(src.reviews))
    return satisfaction_rows(
        reviews, reason, customer, timestamp, (score, score_bad), src.complaint_max_score, str(src.reviews)
    )


_REVIEW_TIMES = ("review_answer_timestamp", "review_creation_date")


def _check_review_times(reviews: pd.DataFrame, src: OlistSource) -> None:
    """Fail up front when the reviews have neither time column, or ``reviews_timestamp_format`` is no strptime
    format (named with the first time column, the one read first)."""
    present = [c for c in _REVIEW_TIMES if c in reviews.columns]
    if not present:
        raise InputError(
            f"{src.reviews}: missing column 'review_answer_timestamp' (or 'review_creation_date'); "
            f"columns found: {list(reviews.columns)}"
        )
    check_timestamp_format(src.reviews_timestamp_format, str(src.reviews), present[0], "reviews_timestamp_format")


def _review_times(reviews: pd.DataFrame, src: OlistSource) -> tuple[pd.Series, pd.DataFrame, dict[str, int]]:
    """When each review's score became known: the answer time, else (missing or unparseable) the creation date,
    read with the reviews' format (:attr:`OlistSource.reviews_format`); per column read (a frame of masks), where
    the value read is a day-month date without a format (:func:`ambiguous_dates`): the rows' ``ambiguous_timestamp``, as
    the transactions' rule; and per column, the rows whose time was read from it with a UTC offset (converted to the
    source's zone), for their notice."""
    na, fmt = src.na_values, src.reviews_format
    time = pd.Series(pd.NaT, index=reviews.index, dtype=TS_UNIT)
    ambiguous = pd.DataFrame(index=reviews.index)
    converted: dict[str, int] = {}
    unread = np.ones(len(reviews), dtype=bool)  # no value read yet: the next column is read
    for c in (c for c in _REVIEW_TIMES if c in reviews.columns):
        ambiguous[c] = unread & ambiguous_dates(reviews[c], fmt, na)
        unread &= ~ambiguous[c].to_numpy()
        parsed = parse_timestamp_column(reviews[c], fmt, src.timezone, na)
        aware = carries_offset(parse_text(reviews[c], na), fmt)
        converted[c] = int((unread & aware & parsed.notna().to_numpy()).sum())
        time = time.fillna(parsed)
        unread &= time.isna().to_numpy()
    return time, ambiguous, converted


def _warn_ambiguous(reviews: pd.DataFrame, ambiguous: pd.DataFrame, where: str) -> None:
    """One notice for the reviews set aside as ``ambiguous_timestamp`` (``ambiguous``: their rows' masks per
    column): the review quarantine is written, but no summary counts it."""
    counts = {c: int(ambiguous[c].sum()) for c in ambiguous.columns}
    if not any(counts.values()):
        return
    first = next(c for c, k in counts.items() if k)
    example = str(reviews.at[ambiguous.index[ambiguous[first].to_numpy()][0], first]).strip()
    notices.warn(notices.ambiguous_message(where, counts, example, setting="olist.reviews_timestamp_format"))


def _unique_by(df: pd.DataFrame, key: str, path: Path, na: tuple[str, ...], used: tuple[str, ...]) -> pd.DataFrame:
    """Index a lookup table by ``key``, keeping the ``used`` columns: rows repeating a key with the same values of
    those collapse (another city or zip code of a customer, a product's new photo count, are not read); a key whose
    rows differ in a used column fails, naming it."""
    ids, used = parse_ids(df[key], na), tuple(dict.fromkeys(c for c in used if c != key))
    df = df.assign(**{key: ids}).loc[ids.notna().to_numpy(), [key, *used]].drop_duplicates()
    dup = df[key].duplicated(keep=False)
    if dup.any():
        first = df.loc[dup, key].iloc[0]
        rows = df[df[key] == first]
        differ = [c for c in used if rows[c].nunique(dropna=False) > 1]
        raise InputError(
            f"{path}: {key} {first!r} (and {int(dup.sum()) - 1} more rows) appears on rows with different "
            f"{', '.join(map(repr, differ))}; a lookup table needs one value per {key}"
        )
    return df.set_index(key)
