"""Readable reasons from LightGBM per-feature contributions.

For each customer the features that push a score up the most (largest positive contributions) become short
phrases built from the customer's own feature values, e.g. "raises churn risk: 95 days since the last purchase,
usually every 21; spend down 75% vs the previous period". Text is built per feature over all rows at once
(vectorised), not per customer.

A contribution is a reason only when the customer's value points the way the phrase says: a feature whose higher
values raise churn (refunds, complaints, days since the last purchase) at zero is not a churn reason ("no refunds so
far" does not raise churn risk, whatever the trees' bookkeeping says), and one whose higher values raise value
(spend, orders) at zero is not a value reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

import numpy as np
import pandas as pd

Phrase = Callable[[pd.DataFrame], pd.Series]


def _num(frame: pd.DataFrame, col: str, digits: int = 0) -> pd.Series:
    values = frame[col].astype("float64")
    if digits == 0:
        return values.round().map("{:,.0f}".format)
    return values.map(lambda v: f"{v:,.{digits}f}")


def _count(frame: pd.DataFrame, col: str, noun: str) -> pd.Series:
    """'1 order', '3 orders': the count with the noun in the right number."""
    return _num(frame, col) + " " + noun + pd.Series(np.where(frame[col] == 1, "", "s"), index=frame.index)


def _pct(frame: pd.DataFrame, col: str) -> pd.Series:
    return (frame[col].astype("float64") * 100).round().map("{:.0f}%".format)


def _trend(frame: pd.DataFrame) -> pd.Series:
    # spend_trend = (recent - previous) / (recent + previous); recent / previous - 1 = 2t / (1 - t).
    t = frame["spend_trend"].astype("float64")
    change = np.where(t < 1, 2 * t / (1 - t.where(t < 1, 0.0)), np.inf)
    text = pd.Series(
        np.where(
            t <= -1,
            "no spend in the latest period after spending in the one before",
            np.where(
                t >= 1,
                "all spend in the latest period",
                np.where(change < 0, "spend down ", "spend up ")
                + pd.Series(np.abs(change) * 100).round().map("{:.0f}%".format).to_numpy()
                + " vs the previous period",
            ),
        ),
        index=frame.index,
    )
    return text


def _no_refunds(frame: pd.DataFrame, col: str, text: pd.Series) -> pd.Series:
    return text.where(frame[col].astype("float64") != 0, "no refunds so far")


def _history(frame: pd.DataFrame) -> pd.Series:
    """The BTYD model's inputs as text: repeat purchase days, tenure and days since the last purchase."""
    n = frame["repeat_purchase_days"].fillna(0).astype("float64")
    count = np.where(n == 0, "no repeat purchase", np.where(n == 1, "1 repeat purchase day", "x"))
    count = np.where(count == "x", _num(frame, "repeat_purchase_days") + " repeat purchase days", count)
    text = pd.Series(count, index=frame.index) + " in " + _num(frame, "tenure_days") + " days as a customer"
    recency = frame["recency_days"]
    last = ", the last purchase " + _num(frame.fillna({"recency_days": 0}), "recency_days") + " days ago"
    return text + last.where(recency.notna(), "")


def _since_last(frame: pd.DataFrame) -> pd.Series:
    """'80 days since the last purchase, usually every 21': recency beside the customer's own usual gap."""
    text = _num(frame, "recency_days") + " days since the last purchase"
    if "gap_mean_days" not in frame.columns:
        return text
    usual = ", usually every " + _num(frame.fillna({"gap_mean_days": 0}), "gap_mean_days")
    return text + usual.where(frame["gap_mean_days"].notna(), "")


def _overdue(frame: pd.DataFrame) -> pd.Series:
    if "recency_days" in frame.columns:  # the same fact as recency beside the usual gap: told once
        return _since_last(frame)
    return _num(frame, "overdue_ratio", 1) + "x the usual gap between purchases"


_FIXED: dict[str, Phrase] = {
    "recency_days": _since_last,
    "overdue_ratio": _overdue,
    "gap_mean_days": lambda f: "usually buys every " + _num(f, "gap_mean_days") + " days",
    "gap_std_days": lambda f: "irregular buyer (gaps vary by " + _num(f, "gap_std_days") + " days)",
    "spend_trend": _trend,
    "frequency_orders": lambda f: _count(f, "frequency_orders", "order") + " so far",
    "purchase_days": lambda f: "bought on " + _num(f, "purchase_days") + " different days",
    "repeat_purchase_days": lambda f: _num(f, "repeat_purchase_days") + " repeat purchase days",
    "monetary_total": lambda f: "net spend " + _num(f, "monetary_total") + " to date",
    "monetary_mean_order": lambda f: "average order " + _num(f, "monetary_mean_order"),
    "monetary_max_order": lambda f: "largest order " + _num(f, "monetary_max_order"),
    "repeat_spend_mean": lambda f: ("average repeat-day spend " + _num(f, "repeat_spend_mean")).where(
        f["repeat_spend_mean"] > 0, "no net spend on repeat days"
    ),
    "day_spend_mean": lambda f: _day_spend(f),
    "tenure_days": lambda f: "customer for " + _num(f, "tenure_days") + " days",
    "first_to_last_days": lambda f: "active over " + _num(f, "first_to_last_days") + " days",
    # the three refund features read alike at zero, so a customer without refunds hears it once
    "refund_count": lambda f: _no_refunds(f, "refund_count", _count(f, "refund_count", "refund")),
    "refund_share": lambda f: _no_refunds(f, "refund_share", _pct(f, "refund_share") + " of spend refunded"),
    "refund_amount": lambda f: _no_refunds(f, "refund_amount", "refunded " + _num(f, "refund_amount") + " so far"),
    "n_channels": lambda f: "bought through " + _num(f, "n_channels") + " channels",
    "review_count": lambda f: _count(f, "review_count", "review"),
    "n_products": lambda f: _num(f, "n_products") + " distinct products",
    "n_categories": lambda f: _num(f, "n_categories") + " categories",
    "review_score_mean": lambda f: "average review " + _num(f, "review_score_mean", 1) + "/5",
    "complaint_count": lambda f: _count(f, "complaint_count", "complaint"),
    # Derived by the stacked BTYD model (tiercast.models.gbm.stacked) from the purchase history alone, so they are
    # told as the history they summarize: a retention team acts on "12 purchase days, none for 95 days", not on a
    # model's probability.
    "btyd_p_no_purchase": _history,
    "btyd_p_alive": _history,
    "btyd_expected_purchases": _history,
    # the stacked BTYD spend model reads every purchase day (day_spend_mean; models saved before it, repeat days)
    "btyd_expected_avg_spend": lambda f: (
        _day_spend(f)
        if "day_spend_mean" in f.columns
        else ("average repeat-day spend " + _num(f, "repeat_spend_mean")).where(
            f["repeat_spend_mean"].notna(), "no repeat purchase yet"
        )
    ),
    "btyd_expected_value": _history,
}


def _day_spend(f: pd.DataFrame) -> pd.Series:
    return ("average spend per purchase day " + _num(f, "day_spend_mean")).where(
        f["day_spend_mean"] > 0, "no purchase yet"
    )


# NaN means "undefined for this customer"; gap-based features are undefined with a single purchase day.
_MISSING: dict[str, str] = {
    "overdue_ratio": "a single purchase day so far",
    "gap_mean_days": "a single purchase day so far",
    "gap_std_days": "a single purchase day so far",
    "review_score_mean": "no reviews",
    "repeat_spend_mean": "no repeat purchase yet",
}
_WINDOWED = re.compile(r"^(?P<kind>spend|orders)_(?P<days>\d+)d$")


def phrase_for(feature: str) -> Phrase:
    """The phrase builder of one feature (a generic "name = value" for features without a template)."""
    if feature in _FIXED:
        return _FIXED[feature]
    m = _WINDOWED.match(feature)
    if m and m["kind"] == "spend":
        return lambda f: ("spent " + _num(f, feature) + f" in the last {m['days']} days").where(
            f[feature] != 0, f"no spend in the last {m['days']} days"
        )
    if m:
        return lambda f: (_count(f, feature, "order") + f" in the last {m['days']} days").where(
            f[feature] != 0, f"no orders in the last {m['days']} days"
        )
    return lambda f: feature + " = " + f[feature].astype("float64").map("{:.3g}".format)


#: +1: higher values raise churn risk; -1: lower values do. Features without a clear direction are left out.
CHURN_DIRECTION: dict[str, int] = {
    "recency_days": 1,
    "overdue_ratio": 1,
    "gap_mean_days": 1,
    "refund_count": 1,
    "refund_share": 1,
    "refund_amount": 1,
    "complaint_count": 1,
    "btyd_p_no_purchase": 1,
    "spend_trend": -1,
    "frequency_orders": -1,
    "purchase_days": -1,
    "repeat_purchase_days": -1,
    "monetary_total": -1,
    "monetary_mean_order": -1,
    "monetary_max_order": -1,
    "repeat_spend_mean": -1,
    "day_spend_mean": -1,
    "first_to_last_days": -1,
    "n_channels": -1,
    "n_products": -1,
    "n_categories": -1,
    "review_score_mean": -1,
    "btyd_p_alive": -1,
    "btyd_expected_purchases": -1,
    "btyd_expected_avg_spend": -1,
    "btyd_expected_value": -1,
}
#: The text put before each row's reasons, by the score they raise.
RAISES: dict[str, str] = {"churn": "raises churn risk: ", "value": "raises predicted value: "}


def _direction(feature: str) -> int:
    if feature in CHURN_DIRECTION:
        return CHURN_DIRECTION[feature]
    return -1 if _WINDOWED.match(feature) else 0


def _points_the_way(feature: str, frame: pd.DataFrame, target: Literal["churn", "value"]) -> np.ndarray:
    """Rows where ``feature``'s value can be told as raising ``target`` (see the module docstring)."""
    sign = _direction(feature) * (1 if target == "churn" else -1)
    values = frame[feature].to_numpy(dtype="float64", na_value=np.nan)
    ok = ~(values <= 0) if sign > 0 else np.ones(len(values), dtype=bool)  # "more raises it" at zero cannot
    if target == "churn" and feature in ("recency_days", "overdue_ratio") and "overdue_ratio" in frame.columns:
        # a last purchase within the customer's usual gap is not a churn reason
        overdue = frame["overdue_ratio"].to_numpy(dtype="float64", na_value=np.nan)
        ok &= ~(overdue < 1)
    return ok


def _merge_usual_gap(contrib: np.ndarray, features: pd.DataFrame, names: list[str]) -> None:
    """Where recency and the usual gap both push the score up, credit both to recency (in place): its phrase tells
    the gap too ("80 days since the last purchase, usually every 21"), so the gap is told once, ranked by both."""
    pair = {"recency_days", "gap_mean_days"}
    if not pair <= set(names) or not pair <= set(features.columns):
        return
    r, g = names.index("recency_days"), names.index("gap_mean_days")
    both = (contrib[:, r] > 0) & (contrib[:, g] > 0) & features["gap_mean_days"].notna().to_numpy()
    contrib[both, r] += contrib[both, g]
    contrib[both, g] = 0.0


def top_reasons(
    contributions: np.ndarray,
    features: pd.DataFrame,
    names: list[str],
    top: int = 3,
    target: Literal["churn", "value"] | None = None,
) -> pd.Series:
    """Join the phrases of each row's ``top`` largest positive contributions with "; ".

    ``contributions`` is LightGBM's ``pred_contrib`` output (n_rows x (n_features + 1), bias last); rows with no
    positive contribution get an empty string. Ties are broken by feature order, so output is deterministic.
    With ``target`` ("churn" or "value"), contributions whose value does not point that way are skipped and the
    reasons are prefixed with what they raise (:data:`RAISES`).
    """
    contrib = np.asarray(contributions, dtype=float)[:, : len(names)].copy()
    if target is not None:
        for j, name in enumerate(names):
            if name in features.columns:
                contrib[~_points_the_way(name, features, target), j] = 0.0
    _merge_usual_gap(contrib, features, names)
    # a few spare candidates: features that read the same (the BTYD outputs tell one purchase history) count once
    order = np.argsort(-contrib, axis=1, kind="stable")[:, : top + 4]
    slots: list[np.ndarray] = []
    for slot in range(order.shape[1]):
        idx = order[:, slot]
        positive = contrib[np.arange(len(idx)), idx] > 0
        text = np.full(len(idx), "", dtype=object)
        for j in np.unique(idx[positive]):
            rows = np.flatnonzero(positive & (idx == j))
            sub = features.iloc[rows]
            missing = sub[names[j]].isna().to_numpy()
            text[rows[missing]] = _MISSING.get(names[j], f"no {names[j]} yet")
            if (~missing).any():
                text[rows[~missing]] = phrase_for(names[j])(sub[~missing]).to_numpy()
        slots.append(text)
    if not slots:
        return pd.Series("", index=features.index, dtype="str")
    table = np.stack(slots, axis=1)
    joined = np.empty(len(table), dtype=object)
    for i, row in enumerate(table):
        text = "; ".join(list(dict.fromkeys(t for t in row if t))[:top])
        joined[i] = RAISES[target] + text if target is not None and text else text
    return pd.Series(joined, index=features.index, dtype="str")
