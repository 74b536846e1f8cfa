"""Signals of a customer drifting away: purchase rhythm, lateness, spend trend, refunds and satisfaction.

These are relative to the customer's own history (recency over the usual gap, recent over previous spend), which
keeps them comparable across cohorts of different ages: age features alone drift as a cohort grows older.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from tiercast.features import as_of, rfm, tenure
from tiercast.features.contract import CUSTOMER_ID, IS_COMPLAINT, REVIEW_SCORE, TIMESTAMP
from tiercast.features.rfm import money, to_float

SATISFACTION_REQUIRED = (CUSTOMER_ID, TIMESTAMP, REVIEW_SCORE)


def order_columns(lines: ir.Table) -> dict[str, ir.Scalar]:
    """Per-order partials of the lines: gross positive amount and number of refund lines (amount < 0). The refunded
    amount needs no sum of its own: it is gross - net."""
    return {
        "_gross": money(lines.amount).sum(where=lines.amount > 0),
        "_refund_lines": lines.amount.count(where=lines.amount < 0),
    }


def customer_columns(orders: ir.Table, *, cutoff: as_of.TimeLike, horizon_days: int) -> dict[str, ir.Scalar]:
    """Per-customer aggregates: integer sums of purchase-day gaps (exact, so the std is order-independent),
    refund orders, gross amount and the net spend of orders in the previous horizon window
    ``[cutoff - 2h, cutoff - h)``. Needs :func:`tiercast.features.tenure.flag_purchase_days`."""
    previous = as_of.is_within(
        orders.order_ts,
        start=as_of.shift_days(cutoff, -2 * horizon_days),
        end=as_of.shift_days(cutoff, -horizon_days),
    )
    gap = tenure.gap(orders)
    return {
        "_gap_sum": gap.sum(),
        "_gap_sq_sum": (gap * gap).sum(),
        "refund_count": orders.order_id.count(where=orders._refund_lines > 0),
        "_gross": orders._gross.sum(),
        "_spend_prev": orders.net.sum(where=previous),
    }


def derived_columns(c: ir.Table, *, cutoff: as_of.TimeLike, horizon_days: int) -> dict[str, ir.Value]:
    """Features from the customer aggregates (reads rfm's and tenure's aggregates too).

    - ``gap_mean_days`` / ``gap_std_days``: mean / sample std (ddof=1) of the whole-day gaps between consecutive
      purchase days; NaN with fewer than 1 / 2 gaps.
    - ``overdue_ratio``: recency_days / gap_mean_days; > 1 means later than usual. NaN without a gap.
    - ``spend_trend``: ``(recent - previous) / (recent + previous)`` where recent is the net spend of orders in
      ``[cutoff - h, cutoff)`` and previous in ``[cutoff - 2h, cutoff - h)`` (h = horizon), each floored at 0 so
      the trend stays in [-1, 1]; 0 when both are 0. -1 = stopped buying, +1 = new or returning.
    - ``refund_count``: orders with at least one refund line (amount < 0): every return order (net < 0), every
      order a refund cancels (net = 0) and purchases with a returned line. An order of zero-amount lines only is
      neither a purchase nor a refund.
    - ``refund_amount``: total refunded (sum of -amount over refund lines = gross - net).
    - ``refund_share``: refund_amount / gross positive amount (sum of amount > 0); NaN when nothing was bought. May
      exceed 1 when returns refer to purchases before the data starts.
    """
    n = c.purchase_days - 1
    n_f = to_float(n)
    gap_mean = c._gap_sum.cast("float64") / n_f
    var = to_float(n * c._gap_sq_sum - c._gap_sum * c._gap_sum) / (n_f * (n_f - 1))
    recency = rfm.recency_days(c, cutoff=cutoff)
    recent = ibis.greatest(rfm.window_spend(c, horizon_days), 0.0)
    previous = ibis.greatest(to_float(c._spend_prev.coalesce(0)), 0.0)
    total = recent + previous
    gross = to_float(c._gross.coalesce(0))
    refunded = to_float(c._gross.coalesce(0) - c._net_total)
    null = ibis.null("float64")
    return {
        "gap_mean_days": ibis.ifelse(n > 0, gap_mean, null),
        "gap_std_days": ibis.ifelse(n > 1, ibis.greatest(var, 0.0).sqrt(), null),
        "overdue_ratio": ibis.ifelse(n > 0, recency / gap_mean, null),
        "spend_trend": ibis.ifelse(total > 0, (recent - previous) / total, 0.0),
        "refund_count": to_float(c.refund_count),
        "refund_amount": refunded,
        "refund_share": ibis.ifelse(gross > 0, refunded / gross, null),
    }


def satisfaction(sat: ir.Table, *, cutoff: as_of.TimeLike) -> ir.Table:
    """Per-customer review features from reviews before the cutoff: ``review_count``, ``review_score_mean`` and,
    when the data has ``is_complaint``, ``complaint_count``. The mean is an exact decimal sum over a count."""
    missing = [col for col in SATISFACTION_REQUIRED if col not in sat.columns]
    if missing:
        raise ValueError(f"satisfaction frame lacks columns {missing}; needs {list(SATISFACTION_REQUIRED)}")
    s = as_of.before(sat, cutoff=cutoff)
    n = s.review_score.count()
    cols: dict[str, ir.Scalar] = {
        "review_count": to_float(n),
        "review_score_mean": ibis.ifelse(
            n > 0, to_float(money(s.review_score).sum()) / to_float(n), ibis.null("float64")
        ),
    }
    if IS_COMPLAINT in s.columns:
        cols["complaint_count"] = to_float(s.customer_id.count(where=s.is_complaint.cast("boolean")))
    return s.group_by(CUSTOMER_ID).aggregate(**cols)
