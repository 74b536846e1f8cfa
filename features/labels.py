"""Future-window labels: what each customer did in ``[cutoff, cutoff + horizon)``.

Only lines inside the window are seen: an order whose lines straddle the cutoff contributes just its lines inside
the window, aggregated to orders exactly as the features aggregate theirs (a purchase is an order with net > 0).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir
import pandas as pd

from tiercast.features import as_of, rfm
from tiercast.features.build import Frame, as_table, execute
from tiercast.features.contract import CUSTOMER_ID


def label_table(t: ir.Table, *, cutoff: as_of.TimeLike, horizon_days: int) -> ir.Table:
    """The label expression (unexecuted, rows unordered) for a canonical transaction table; see :func:`build_labels`."""
    if int(horizon_days) <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    cutoff = as_of.to_cutoff(cutoff)
    lines = as_of.window(t, start=cutoff, end=as_of.shift_days(cutoff, int(horizon_days)))
    orders = rfm.to_orders(lines)
    c = orders.group_by(CUSTOMER_ID).aggregate(
        future_value=rfm.to_float(orders.net.sum()),
        future_orders=rfm.to_float(orders.order_id.count(where=orders.is_purchase)),
    )
    return c.mutate(churned=ibis.ifelse(c.future_orders > 0, 0.0, 1.0))


def build_labels(
    tx: Frame, *, cutoff: as_of.TimeLike, horizon_days: int, con: ibis.BaseBackend | None = None
) -> pd.DataFrame:
    """One row per customer with any transaction in ``[cutoff, cutoff + horizon_days)``, sorted by customer_id.

    - ``future_value``: net spend in the window (refunds netted; the definition of value).
    - ``future_orders``: purchases (orders with net > 0) in the window.
    - ``churned``: 1.0 if no purchase in the window, else 0.0.

    Customers without any transaction in the window have no row; :func:`tiercast.features.training_set.
    build_training_set` gives them future_value 0, future_orders 0, churned 1.
    """
    expr = label_table(as_table(tx), cutoff=cutoff, horizon_days=horizon_days).order_by(CUSTOMER_ID)
    if con is None and isinstance(tx, pd.DataFrame):
        con = ibis.duckdb.connect()
    return execute(expr, con)
