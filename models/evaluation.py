"""Pure evaluation metrics for value, churn and tier predictions.

Every function takes array-likes (numpy arrays or pandas Series; pandas indexes are ignored, rows are matched by
position) and is deterministic. Ties in a prediction are never broken by input order: rank-based metrics give
tied customers their average rank, which equals the expectation over all ways of breaking the ties.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import average_precision_score, cohen_kappa_score, f1_score, roc_auc_score

from tiercast.models.resampled_metrics import CountedAUC, CountedGini

__all__ = [
    "brier",
    "calibration_table",
    "churn_metrics",
    "decile_table",
    "mae",
    "normalized_gini",
    "paired_bootstrap",
    "pr_auc",
    "rmse",
    "roc_auc",
    "spearman",
    "tier_metrics",
    "top_capture",
    "value_metrics",
]


def _pair(actual: ArrayLike, predicted: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    a = np.asarray(actual, dtype=float).ravel()
    p = np.asarray(predicted, dtype=float).ravel()
    if a.shape != p.shape:
        raise ValueError(f"length mismatch: {a.size} actual vs {p.size} predicted")
    if a.size == 0:
        raise ValueError("empty input")
    if not (np.isfinite(a).all() and np.isfinite(p).all()):
        raise ValueError("inputs must be finite (no NaN or inf)")
    return a, p


# ----------------------------------------------------------------------------------------------- value


def normalized_gini(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Gini of ``actual`` ordered by ``predicted`` divided by the Gini of ``actual`` ordered by itself.

    1 for a perfect ranking, 0 for a random one, −1 for the reversed ranking. Only the order of the predictions
    matters (invariant to any strictly increasing transform). The Gini of the ordering is proportional to
    cov(actual, rank(predicted)), so the ratio is cov(a, rank(p)) / cov(a, rank(a)); tied predictions get their
    average rank, which is the mean over all orders of the tied customers. Negative actual values (refunds) are
    allowed. Raises ValueError when ``actual`` is constant (e.g. all zero): no ordering can be judged then.
    """
    a, p = _pair(actual, predicted)
    a_c = a - a.mean()
    denom = float(np.dot(a_c, rankdata(a)))  # = n * cov(a, rank(a)) >= 0, zero iff a is constant
    if np.ptp(a) == 0 or not denom > 0:
        raise ValueError("normalized Gini is undefined when actual is constant (e.g. all zero)")
    return float(np.dot(a_c, rankdata(p)) / denom)


def spearman(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either input is constant."""
    a, p = _pair(actual, predicted)
    if np.ptp(a) == 0 or np.ptp(p) == 0:
        return float("nan")
    return float(spearmanr(a, p).statistic)


def mae(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Mean absolute error."""
    a, p = _pair(actual, predicted)
    return float(np.mean(np.abs(a - p)))


def rmse(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Root mean squared error."""
    a, p = _pair(actual, predicted)
    return float(np.sqrt(np.mean((a - p) ** 2)))


def top_capture(actual: ArrayLike, predicted: ArrayLike, share: float) -> float:
    """Share of total actual value held by the top ``share`` fraction of customers ranked by prediction.

    The top group has k = ceil(share · n) customers. Customers tied with the k-th prediction share the
    remaining places equally (each counts with weight places / ties): the expectation over random tie-breaks.
    Raises ValueError when the total actual value is not positive.
    """
    a, p = _pair(actual, predicted)
    if not 0 < share <= 1:
        raise ValueError("share must be in (0, 1]")
    total = a.sum()
    if total <= 0:
        raise ValueError("top capture needs a positive total actual value")
    k = min(a.size, int(np.ceil(share * a.size - 1e-9)))
    threshold = np.sort(p)[::-1][k - 1]
    above = p > threshold
    tied = p == threshold
    places = k - int(above.sum())
    captured = a[above].sum() + places / tied.sum() * a[tied].sum()
    return float(captured / total)


def decile_table(actual: ArrayLike, predicted: ArrayLike, n_bins: int = 10) -> pd.DataFrame:
    """Customers grouped into ``n_bins`` bins by predicted value, bin 1 = highest predictions.

    Bin = ceil(average rank / n · n_bins), so tied predictions always land in the same bin (a big tie block,
    e.g. many zero predictions, leaves some bins empty; those are omitted). Columns: decile, count,
    mean_predicted, mean_actual, share_actual (of the total actual), cum_share_actual and lift (mean actual in the
    bin over the overall mean).
    """
    a, p = _pair(actual, predicted)
    n = a.size
    rank_desc = rankdata(-p)  # 1 = highest prediction, ties averaged
    decile = np.clip(np.ceil(rank_desc * n_bins / n), 1, n_bins).astype(int)
    df = pd.DataFrame({"decile": decile, "predicted": p, "actual": a})
    out = (
        df.groupby("decile")
        .agg(count=("actual", "size"), mean_predicted=("predicted", "mean"), mean_actual=("actual", "mean"),
             sum_actual=("actual", "sum"))
        .reset_index()
    )  # fmt: skip
    total = a.sum()
    out["share_actual"] = out["sum_actual"] / total if total != 0 else np.nan
    out["cum_share_actual"] = out["share_actual"].cumsum()
    out["lift"] = out["mean_actual"] / a.mean() if a.mean() != 0 else np.nan
    return out.drop(columns="sum_actual")


def value_metrics(actual: ArrayLike, predicted: ArrayLike) -> dict[str, float]:
    """All value metrics in one dict: normalized_gini, spearman, mae, rmse, top10_capture, top20_capture,
    predicted_total, actual_total."""
    a, p = _pair(actual, predicted)
    return {
        "normalized_gini": normalized_gini(a, p),
        "spearman": spearman(a, p),
        "mae": mae(a, p),
        "rmse": rmse(a, p),
        "top10_capture": top_capture(a, p, 0.10),
        "top20_capture": top_capture(a, p, 0.20),
        "predicted_total": float(p.sum()),
        "actual_total": float(a.sum()),
    }


# ----------------------------------------------------------------------------------------------- churn


def _binary(y: ArrayLike, p: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    yy, pp = _pair(y, p)
    if not np.isin(yy, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1 (1 = churned)")
    return yy, pp


def _both_classes(y: NDArray[np.float64]) -> None:
    if y.min() == y.max():
        raise ValueError("ROC/PR AUC need both classes in the labels")


def roc_auc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve (ties count half). Raises ValueError when only one class is present."""
    yy, pp = _binary(y, p)
    _both_classes(yy)
    return float(roc_auc_score(yy, pp))


def pr_auc(y: ArrayLike, p: ArrayLike) -> float:
    """Average precision (step-wise area under the precision-recall curve; no interpolation)."""
    yy, pp = _binary(y, p)
    _both_classes(yy)
    return float(average_precision_score(yy, pp))


def brier(y: ArrayLike, p: ArrayLike) -> float:
    """Brier score: mean squared difference between the probability and the 0/1 outcome (lower is better)."""
    yy, pp = _binary(y, p)
    return float(np.mean((pp - yy) ** 2))


def calibration_table(y: ArrayLike, p: ArrayLike, n_bins: int = 10, strategy: str = "quantile") -> pd.DataFrame:
    """Reliability table: per probability bin, count, mean_predicted and observed_rate.

    ``strategy="quantile"`` makes bins of equal size by rank (ties kept together, empty bins omitted);
    ``"uniform"`` uses equal-width bins on [0, 1]. Well calibrated means mean_predicted ≈ observed_rate.
    """
    yy, pp = _binary(y, p)
    if strategy == "quantile":
        b = np.clip(np.ceil(rankdata(pp) * n_bins / pp.size), 1, n_bins).astype(int)
    elif strategy == "uniform":
        b = np.clip(np.floor(pp * n_bins).astype(int) + 1, 1, n_bins)
    else:
        raise ValueError("strategy must be 'quantile' or 'uniform'")
    df = pd.DataFrame({"bin": b, "p": pp, "y": yy})
    return (
        df.groupby("bin")
        .agg(count=("y", "size"), mean_predicted=("p", "mean"), observed_rate=("y", "mean"),
             p_min=("p", "min"), p_max=("p", "max"))
        .reset_index()
    )  # fmt: skip


def churn_metrics(y: ArrayLike, p: ArrayLike) -> dict[str, float]:
    """roc_auc, pr_auc and brier in one dict; the two AUCs are NaN (undefined, not an error) when the labels hold one
    class (a test window where every customer buys again, or none does): the Brier score still measures it."""
    yy, pp = _binary(y, p)
    if yy.size and yy.min() == yy.max():
        return {"roc_auc": float("nan"), "pr_auc": float("nan"), "brier": brier(yy, pp)}
    return {"roc_auc": roc_auc(yy, pp), "pr_auc": pr_auc(yy, pp), "brier": brier(yy, pp)}


# ----------------------------------------------------------------------------------------------- tiers


def tier_metrics(realized: ArrayLike, predicted: ArrayLike, order: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro-F1 (over all tiers in ``order``) and quadratic weighted kappa of predicted tiers.

    ``order`` lists the tier names best first; kappa uses positions in it, so predicting gold for a platinum
    customer costs less than predicting lead. Labels outside ``order`` raise ValueError. Kappa is NaN when both
    sides hold a single identical tier (no variation to agree on).
    """
    r = np.asarray(realized, dtype=object).ravel()
    q = np.asarray(predicted, dtype=object).ravel()
    if r.shape != q.shape or r.size == 0:
        raise ValueError("realized and predicted must be non-empty and of equal length")
    pos = {name: i for i, name in enumerate(order)}
    if len(pos) != len(order):
        raise ValueError("order has duplicate tier names")
    unknown = (set(r.tolist()) | set(q.tolist())) - set(pos)
    if unknown:
        raise ValueError(f"tiers not in order: {sorted(map(str, unknown))}")
    ri = np.array([pos[v] for v in r])
    qi = np.array([pos[v] for v in q])
    return {name: fn(ri, qi) for name, fn in tier_code_metrics(len(order)).items()}


def tier_code_metrics(n_tiers: int) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """The metrics of :func:`tier_metrics` as functions of tier positions (0 = best, ``n_tiers`` tiers): for
    :func:`tier_metrics` itself and for paired bootstraps of two tier predictions."""
    labels = list(range(n_tiers))

    def kappa(y: np.ndarray, a: np.ndarray) -> float:
        with np.errstate(all="ignore"):
            return float(cohen_kappa_score(y, a, labels=labels, weights="quadratic"))

    return {
        "accuracy": lambda y, a: float(np.mean(y == a)),
        "macro_f1": lambda y, a: float(f1_score(y, a, labels=labels, average="macro", zero_division=0)),
        "quadratic_kappa": kappa,
    }


# ----------------------------------------------------------------------------------------------- uncertainty


def _counted_forms(
    metric: Callable[[np.ndarray, np.ndarray], float], y: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[Callable[[np.ndarray], float], Callable[[np.ndarray], float]] | None:
    """For ROC AUC and normalized Gini on valid input, the metric of predictions a and b as functions of a
    resample's counts per row (:mod:`~tiercast.models.resampled_metrics`, the same values without sorting every
    resample); None for any other metric or input, which is then scored on each resample as it is."""
    forms = {roc_auc: (CountedAUC, _binary), normalized_gini: (CountedGini, _pair)}
    if metric not in forms:
        return None
    form, check = forms[metric]
    try:
        (yy, pa), (_, pb) = check(y, a), check(y, b)
    except ValueError:
        return None
    return form(yy, pa), form(yy, pb)


def paired_bootstrap(
    metric: Callable[[np.ndarray, np.ndarray], float],
    y: ArrayLike,
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Paired bootstrap over customers of metric(y, a) − metric(y, b), with a 95% percentile interval.

    Each replicate resamples customers with replacement and scores both predictions on the *same* sample, so
    the shared noise cancels. Replicates where the metric is undefined (raises ValueError or returns NaN,
    e.g. a single class) are dropped. Returns mean_diff (mean over replicates), lo, hi (2.5% / 97.5%
    percentiles), diff (on the full data) and n_boot (replicates kept). ROC AUC and normalized Gini score each
    replicate from the counts of its rows, sorted once (:func:`_counted_forms`): the same values, many times faster.
    """
    yy = np.asarray(y).ravel()
    a = np.asarray(pred_a, dtype=float).ravel()
    b = np.asarray(pred_b, dtype=float).ravel()
    if not (yy.size == a.size == b.size) or yy.size == 0:
        raise ValueError("y, pred_a and pred_b must be non-empty and of equal length")
    rng = np.random.default_rng(seed)
    counted = _counted_forms(metric, yy, a, b)
    diffs = np.full(n_boot, np.nan)
    for i in range(n_boot):
        idx = rng.integers(0, yy.size, yy.size)
        try:
            if counted is None:
                diffs[i] = metric(yy[idx], a[idx]) - metric(yy[idx], b[idx])
            else:
                counts = np.bincount(idx, minlength=yy.size).astype(float)
                diffs[i] = counted[0](counts) - counted[1](counts)
        except ValueError:
            continue
    ok = diffs[np.isfinite(diffs)]
    if ok.size == 0:
        raise ValueError("the metric was undefined on every bootstrap replicate")
    lo, hi = np.percentile(ok, [2.5, 97.5])
    return {
        "mean_diff": float(ok.mean()),
        "lo": float(lo),
        "hi": float(hi),
        "diff": float(metric(yy, a) - metric(yy, b)),
        "n_boot": int(ok.size),
    }
