"""Customer age and purchase-day history: the inputs of buy-till-you-die models (BG/NBD, Pareto/NBD, Gamma-Gamma).

Purchase days are counted in one window pass over the orders instead of ``count(DISTINCT date)`` (slow at 10M rows):
within each customer's purchases ordered by calendar day, a row whose day differs from the previous row's opens a
new purchase day, and the difference is the gap to the previous purchase day (used by
:mod:`tiercast.features.churn_signals`). Ties on a day are harmless: exactly one row per day is flagged, whatever
the order of the tied rows.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from tiercast.features import as_of
from tiercast.features.contract import YEAR_AGO_COLUMNS, YEAR_AGO_DAYS
from tiercast.features.rfm import to_float


def flag_purchase_days(orders: ir.Table) -> ir.Table:
    """Add ``_day`` (calendar day number), ``_prev_day`` (day of the previous order in the customer's sequence) and
    ``_day_rank`` (0 on the customer's first day) in one window pass.

    The window is partitioned by (customer, is_purchase) so refund orders never interrupt the purchase sequence;
    only purchase rows are read through :func:`new_day`, :func:`gap` and :func:`first_day`. ``rank() == 0`` marks
    the first day: cheaper than ``first_value``, as it needs no frame.
    """
    day = as_of.day_number(orders.order_ts)
    w = ibis.window(group_by=[orders.customer_id, orders.is_purchase], order_by=day)
    return orders.mutate(_day=day, _prev_day=day.lag().over(w), _day_rank=ibis.rank().over(w))


def new_day(orders: ir.Table) -> ir.BooleanValue:
    """A purchase opening a new calendar day: exactly one per purchase day, whatever the order of tied rows."""
    return orders.is_purchase & (orders._prev_day.isnull() | (orders._day != orders._prev_day))


def gap(orders: ir.Table) -> ir.IntegerValue:
    """Whole days since the previous purchase day, on the rows that open a purchase day after the first."""
    return ibis.ifelse(new_day(orders), orders._day - orders._prev_day, ibis.null("int64"))


def first_day(orders: ir.Table) -> ir.BooleanValue:
    """A purchase on the customer's first purchase day."""
    return orders.is_purchase & (orders._day_rank == 0)


def customer_columns(orders: ir.Table) -> dict[str, ir.Scalar]:
    """Per-customer aggregates of the flagged orders: first transaction and purchase, purchase days, first-day spend."""
    return {
        "_first_ts": orders.order_ts.min(),
        "_first_purchase_ts": orders.order_ts.min(where=orders.is_purchase),
        "purchase_days": orders.order_id.count(where=new_day(orders)),
        "_first_day_spend": orders.net.sum(where=first_day(orders)),
    }


def derived_columns(c: ir.Table, *, cutoff: as_of.TimeLike) -> dict[str, ir.Value]:
    """Tenure and the buy-till-you-die summary (lifetimes convention, on purchase days).

    - ``tenure_days``: cutoff - first transaction (the model's T).
    - ``purchase_days``: distinct calendar days with a purchase.
    - ``repeat_purchase_days``: purchase_days - 1, floored at 0 (the model's frequency).
    - ``first_to_last_days``: last purchase - first purchase in days (the model's recency); NaN without a purchase.
    - ``repeat_spend_mean``: mean net purchase spend per purchase day, first purchase day excluded (Gamma-Gamma's
      monetary value in the lifetimes convention); 0 without a repeat day.
    - ``day_spend_mean``: mean net purchase spend per purchase day, the first included (the spend model's monetary
      value when every purchase counts, :class:`~tiercast.models.btyd.forecast.BTYDForecaster`); 0 without a purchase.

    Needs ``_purchase_spend`` and ``_last_purchase_ts`` from :mod:`tiercast.features.rfm`.
    """
    n_days = c.purchase_days
    repeat_spend = to_float(c._purchase_spend - c._first_day_spend) / to_float(n_days - 1)
    return {
        "tenure_days": as_of.days_until(c._first_ts, cutoff=cutoff),
        "purchase_days": to_float(n_days),
        "repeat_purchase_days": to_float(ibis.greatest(n_days - 1, 0)),
        "first_to_last_days": as_of.days_between(c._last_purchase_ts, c._first_purchase_ts),
        "repeat_spend_mean": ibis.ifelse(n_days > 1, repeat_spend, 0.0),
        "day_spend_mean": ibis.ifelse(n_days > 0, to_float(c._purchase_spend) / to_float(n_days), 0.0),
    }


def has_year_ago(windows_days: tuple[int, ...], horizon_days: int) -> bool:
    """Whether the features carry :data:`YEAR_AGO_COLUMNS`: with a 365-day window and a horizon under half a year,
    whose window a year ago (``spend_365d - spend_{365-h}d``) is then a feature, with its purchases."""
    return YEAR_AGO_DAYS in windows_days and 0 < 2 * int(horizon_days) < YEAR_AGO_DAYS


def year_ago_customer_columns(orders: ir.Table, *, cutoff: as_of.TimeLike) -> dict[str, ir.Scalar]:
    """Aggregates of the flagged orders placed before ``cutoff - 365 days`` (see :func:`year_ago_derived_columns`).
    Conditional aggregates in the same pass as the others: no second scan of the orders."""
    earlier = as_of.is_before(orders.order_ts, cutoff=as_of.shift_days(cutoff, -YEAR_AGO_DAYS))
    return {
        "_ya_purchase_days": orders.order_id.count(where=new_day(orders) & earlier),
        "_ya_last_purchase_ts": orders.order_ts.max(where=orders.is_purchase & earlier),
        "_ya_purchase_spend": orders.net.sum(where=orders.is_purchase & earlier),
    }


def year_ago_derived_columns(c: ir.Table, *, cutoff: as_of.TimeLike) -> dict[str, ir.Value]:
    """:data:`YEAR_AGO_COLUMNS`: :func:`derived_columns`' ``repeat_purchase_days``, ``first_to_last_days``,
    ``repeat_spend_mean`` and ``day_spend_mean`` as they stood at ``cutoff - 365 days`` (the tenure then is
    ``tenure_days - 365``); NaN for customers without a transaction by then. With ``spend_365d - spend_{365-h}d``
    and ``orders_365d - orders_{365-h}d`` (what they did in the next h days) they let the seasonal level compare what
    a BTYD model would have predicted for last year's same window with what happened
    (:mod:`tiercast.models.btyd.seasons`)."""
    existed = c._first_ts < as_of.shift_days(cutoff, -YEAR_AGO_DAYS)
    n_days = c._ya_purchase_days
    repeat_spend = to_float(c._ya_purchase_spend.coalesce(0) - c._first_day_spend.coalesce(0)) / to_float(n_days - 1)
    none = ibis.null("float64")
    day_spend = to_float(c._ya_purchase_spend.coalesce(0)) / to_float(n_days)
    names = dict(zip(("repeat", "span", "spend", "day_spend"), YEAR_AGO_COLUMNS, strict=True))
    return {
        names["repeat"]: ibis.ifelse(existed, to_float(ibis.greatest(n_days - 1, 0)), none),
        names["span"]: ibis.ifelse(existed, as_of.days_between(c._ya_last_purchase_ts, c._first_purchase_ts), none),
        names["spend"]: ibis.ifelse(existed, ibis.ifelse(n_days > 1, repeat_spend, 0.0), none),
        names["day_spend"]: ibis.ifelse(existed, ibis.ifelse(n_days > 0, day_spend, 0.0), none),
    }
