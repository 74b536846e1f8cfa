"""Pure functions over tier assignments: migration matrices, per-tier summaries and the stability of a scheme.

Tiers are given as names with an ``order`` (best first); every table lists all tiers of the order, empty ones
included, so tables of different cutoffs line up. Labels outside the order raise ValueError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score

from tiercast.features.contract import TIER


def _positions(labels: ArrayLike, order: Sequence[str]) -> np.ndarray:
    lab = np.asarray(labels, dtype=object).ravel()
    pos = {name: i for i, name in enumerate(order)}
    if len(pos) != len(order):
        raise ValueError("order has duplicate tier names")
    unknown = set(lab.tolist()) - set(pos)
    if unknown:
        raise ValueError(f"tiers not in order: {sorted(map(str, unknown))}")
    return pd.Series(lab).map(pos).to_numpy(dtype=np.int64)


def migration_matrix(
    current: ArrayLike,
    target: ArrayLike,
    order: Sequence[str],
    weights: ArrayLike | None = None,
    normalize: bool = False,
) -> pd.DataFrame:
    """Customers (or the sum of ``weights``, e.g. predicted revenue) moving from each current tier (rows) to each
    target tier (columns), tiers best first. ``normalize`` divides each row by its total (0 rows stay 0)."""
    a, b = _positions(current, order), _positions(target, order)
    if a.shape != b.shape:
        raise ValueError("current and target must have the same length")
    k = len(order)
    w = None if weights is None else np.asarray(weights, dtype=float).ravel()
    if w is not None and w.shape != a.shape:
        raise ValueError("weights must be row-aligned with the tiers")
    cells = np.bincount(a * k + b, weights=w, minlength=k * k).reshape(k, k)
    if normalize:
        totals = cells.sum(axis=1, keepdims=True)
        cells = np.divide(cells, totals, out=np.zeros_like(cells, dtype=float), where=totals != 0)
    out = pd.DataFrame(cells, index=pd.Index(list(order), name="current"), columns=pd.Index(list(order), name="to"))
    return out if w is not None or normalize else out.astype(np.int64)


def tier_summary(
    tier: ArrayLike,
    value: ArrayLike,
    order: Sequence[str],
    *,
    n_orders: ArrayLike | None = None,
    retained: ArrayLike | None = None,
) -> pd.DataFrame:
    """One row per tier (best first): customers, share, revenue (sum of ``value``), revenue_share (of the total),
    mean_value, min_value, max_value; average_ticket = revenue / orders when ``n_orders`` is given, and
    retention_rate = mean of ``retained`` (e.g. bought again in the next horizon) when given. NaN where undefined."""
    codes = _positions(tier, order)
    v = np.asarray(value, dtype=float).ravel()
    if v.shape != codes.shape:
        raise ValueError("value must be row-aligned with the tiers")
    frame = pd.DataFrame({"code": codes, "value": v})
    if n_orders is not None:
        frame["orders"] = np.asarray(n_orders, dtype=float).ravel()
    if retained is not None:
        frame["retained"] = np.asarray(retained, dtype=float).ravel()
    g = frame.groupby("code").agg(
        customers=("value", "size"), revenue=("value", "sum"), min_value=("value", "min"), max_value=("value", "max")
    )
    g = g.reindex(range(len(order)))
    customers = g["customers"].fillna(0).to_numpy(dtype=np.int64)
    revenue = g["revenue"].fillna(0.0).to_numpy(dtype=float)
    total = v.sum()
    out = pd.DataFrame(
        {
            TIER: list(order),
            "customers": customers,
            "share": customers / max(len(v), 1),
            "revenue": revenue,
            "revenue_share": revenue / total if total != 0 else np.nan,
            "mean_value": _ratio(revenue, customers),
            "min_value": g["min_value"].to_numpy(dtype=float),
            "max_value": g["max_value"].to_numpy(dtype=float),
        }
    )
    if n_orders is not None:
        orders = frame.groupby("code")["orders"].sum().reindex(range(len(order)), fill_value=0.0).to_numpy()
        out["orders"] = orders
        out["average_ticket"] = _ratio(revenue, orders)
    if retained is not None:
        out["retention_rate"] = frame.groupby("code")["retained"].mean().reindex(range(len(order))).to_numpy()
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    den = np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.full(den.shape, np.nan), where=den > 0)


def adjusted_rand(a: ArrayLike, b: ArrayLike) -> float:
    """Adjusted Rand index of two assignments of the same customers (1 = the same partition, ~0 = chance)."""
    x, y = np.asarray(a).ravel(), np.asarray(b).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError("assignments must be non-empty and of equal length")
    return float(adjusted_rand_score(x, y))


def boundary_drift(before: ArrayLike, after: ArrayLike) -> float:
    """Mean relative move of the value boundaries, mean(|after / before - 1|); NaN when the number of tiers
    differs (the boundaries do not correspond)."""
    b0, b1 = np.asarray(before, dtype=float).ravel(), np.asarray(after, dtype=float).ravel()
    if b0.shape != b1.shape or b0.size == 0:
        return float("nan")
    return float(np.mean(np.abs(b1 / b0 - 1.0)))


def _take(arrays: Mapping[str, Any], idx: np.ndarray) -> dict[str, Any]:
    return {k: (None if a is None else np.asarray(a)[idx]) for k, a in arrays.items()}


def bootstrap_stability(
    scheme: Any,
    value: ArrayLike,
    *,
    n_boot: int = 20,
    random_state: int = 0,
    fit_context: Mapping[str, Any] | None = None,
    assign_context: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Refit an unfitted ``scheme`` (cloned) on ``n_boot`` bootstrap resamples of the customers and compare each
    refit with the fit on all customers, both assigning every customer.

    ``fit_context`` holds the scheme's other row-aligned fit inputs (e.g. ``recency``, ``frequency``, ``history``,
    ``behavior``), resampled with the values; ``assign_context`` those of ``assign_codes`` (default: the same; pass
    ``{}`` for schemes that fit on more than they assign with). One row per replicate: ari, k, boundary_drift (NaN
    for schemes without value boundaries or with a different k).
    """
    v = np.asarray(value, dtype=float).ravel()
    fit_ctx = dict(fit_context or {})
    assign_ctx = fit_ctx if assign_context is None else dict(assign_context)
    full = clone(scheme).fit(v, **fit_ctx)
    ref = full.assign_codes(v, **assign_ctx)
    rng = np.random.default_rng(random_state)
    rows = []
    for i in range(n_boot):
        idx = rng.integers(0, v.size, v.size)
        refit = clone(scheme).fit(v[idx], **_take(fit_ctx, idx))
        has_bounds = hasattr(full, "boundaries_")
        rows.append(
            {
                "replicate": i,
                "ari": adjusted_rand(ref, refit.assign_codes(v, **assign_ctx)),
                "k": int(refit.k_),
                "boundary_drift": boundary_drift(full.boundaries_, refit.boundaries_) if has_bounds else np.nan,
            }
        )
    return pd.DataFrame(rows)


def refit_stability(
    schemes: Sequence[Any],
    value: ArrayLike,
    labels: Sequence[str] | None = None,
    context: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Compare consecutive fitted schemes (e.g. refits at consecutive cutoffs) on one reference population: ARI of
    their assignments of ``value`` (with ``context``, the schemes' other assignment inputs) and the boundary drift,
    one row per consecutive pair."""
    labels = list(labels) if labels is not None else [str(i) for i in range(len(schemes))]
    if len(labels) != len(schemes) or len(schemes) < 2:
        raise ValueError("need at least two schemes and one label per scheme")
    codes = [s.assign_codes(value, **dict(context or {})) for s in schemes]
    rows = []
    for i in range(1, len(schemes)):
        prev, cur = schemes[i - 1], schemes[i]
        has_bounds = hasattr(prev, "boundaries_") and hasattr(cur, "boundaries_")
        rows.append(
            {
                "from": labels[i - 1],
                "to": labels[i],
                "ari": adjusted_rand(codes[i - 1], codes[i]),
                "k_from": int(prev.k_),
                "k_to": int(cur.k_),
                "boundary_drift": boundary_drift(prev.boundaries_, cur.boundaries_) if has_bounds else float("nan"),
            }
        )
    return pd.DataFrame(rows)
