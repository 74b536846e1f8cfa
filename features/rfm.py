"""Recency, frequency, monetary value and windowed activity, as Ibis expressions (product breadth is in
:mod:`tiercast.features.breadth`).

Also the two definitions everything else builds on:

- money: amounts are summed as ``DECIMAL(38, 6)``, so sums are exact (any amount below 1e24 fits, summed over up
  to 1e8 lines). Floating-point sums depend on the order in which rows arrive (and on DuckDB's thread
  scheduling); exact sums make features independent of row order, byte-identical between runs, and make
  "net amount <= 0" exact for an order whose refund cancels its purchase.
- orders: lines are aggregated once to orders (``customer_id``, ``order_id``). An order's time is its earliest line;
  its net is the sum of its lines. A **purchase** is an order with net > 0; any other order is a refund/return order.

Windows are assigned by order time: ``spend_{w}d`` is the net of the orders whose time falls in the window (for
the usual order whose lines share one timestamp, exactly the net of the lines in the window). Summing windows over
orders rather than lines keeps the large lines -> orders aggregation narrow, which is most of the build's cost.

The feature builder calls :func:`to_orders` (lines -> orders), then :func:`customer_columns` (orders -> customers)
and :func:`derived_columns` (per customer, after aggregation). Columns starting with ``_`` are intermediates that
:mod:`tiercast.features.build` drops.
"""

from __future__ import annotations

from collections.abc import Iterable

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from tiercast.features import as_of
from tiercast.features.contract import CUSTOMER_ID, ORDER_ID, spend_column

MONEY = dt.Decimal(38, 6)
ORDER_KEYS = (CUSTOMER_ID, ORDER_ID)


def money(amount: ir.NumericValue) -> ir.DecimalValue:
    """Amount as an exact decimal (micro-units), the type every monetary sum uses."""
    return amount.cast(MONEY)


def to_float(value: ir.Value) -> ir.FloatingValue:
    return value.cast("float64")


def to_orders(lines: ir.Table, **columns: ir.Scalar) -> ir.Table:
    """Aggregate lines to orders and flag purchases (net > 0). ``columns`` adds per-order aggregates."""
    orders = lines.group_by(list(ORDER_KEYS)).aggregate(
        order_ts=lines.timestamp.min(), net=money(lines.amount).sum(), **columns
    )
    return orders.mutate(is_purchase=orders.net > 0)


def customer_columns(orders: ir.Table, *, cutoff: as_of.TimeLike, windows_days: Iterable[int]) -> dict[str, ir.Scalar]:
    """Per-customer aggregates of the orders for recency, frequency, monetary and the windows."""
    buy = orders.is_purchase
    cols: dict[str, ir.Scalar] = {
        "_last_ts": orders.order_ts.max(),
        "_last_purchase_ts": orders.order_ts.max(where=buy),
        "frequency_orders": orders.order_id.count(where=buy),
        "_purchase_spend": orders.net.sum(where=buy),
        "_net_total": orders.net.sum(),
        "monetary_max_order": orders.net.max(where=buy),
    }
    for w in windows_days:
        start = as_of.shift_days(cutoff, -w)
        cols[f"orders_{w}d"] = orders.order_id.count(where=buy & as_of.is_since(orders.order_ts, start=start))
        cols[spend_column(w)] = orders.net.sum(where=as_of.is_since(orders.order_ts, start=start))
    return cols


def derived_columns(c: ir.Table, *, cutoff: as_of.TimeLike, windows_days: Iterable[int]) -> dict[str, ir.Value]:
    """Features computed from the customer aggregates.

    - ``recency_days``: cutoff - last purchase; for a customer with refunds only, cutoff - last transaction.
    - ``frequency_orders``: number of purchases. ``monetary_total``: net spend, refunds netted.
    - ``monetary_mean_order`` / ``monetary_max_order``: mean / largest net value of a purchase (NaN without one).
    - ``orders_{w}d`` / ``spend_{w}d``: purchases and net spend of the orders placed in ``[cutoff - w days, cutoff)``.
    """
    n = c.frequency_orders
    cols: dict[str, ir.Value] = {
        "recency_days": recency_days(c, cutoff=cutoff),
        "frequency_orders": to_float(n),
        "monetary_total": to_float(c._net_total),
        "monetary_mean_order": ibis.ifelse(n > 0, to_float(c._purchase_spend) / to_float(n), ibis.null()),
        "monetary_max_order": to_float(c.monetary_max_order),
    }
    for w in windows_days:
        cols[f"orders_{w}d"] = to_float(c[f"orders_{w}d"])
        cols[spend_column(w)] = window_spend(c, w)
    return cols


def recency_days(c: ir.Table, *, cutoff: as_of.TimeLike) -> ir.FloatingValue:
    """Days from the last purchase (the last transaction for a customer without one) to the cutoff."""
    return as_of.days_until(c._last_purchase_ts.coalesce(c._last_ts), cutoff=cutoff)


def window_spend(c: ir.Table, w: int) -> ir.FloatingValue:
    """``spend_{w}d`` as a float (0 without an order in the window)."""
    return to_float(c[spend_column(w)].coalesce(0))
