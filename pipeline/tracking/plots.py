"""Evaluation and tier plots (matplotlib, no display needed), logged to MLflow and embedded in reports."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tiercast.features.contract import TIER

_SIZE = (6.0, 4.0)


def _sorted_share(actual: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.clip(np.asarray(actual, dtype=float)[order], 0.0, None)
    total = a.sum() or 1.0
    x = np.arange(0, len(a) + 1) / max(len(a), 1)
    y = np.concatenate([[0.0], np.cumsum(a) / total])
    return x, y


def gain_curve(actual: np.ndarray, predictions: dict[str, np.ndarray]) -> Figure:
    """Cumulative share of realized value captured when customers are ranked by each model's prediction."""
    fig, ax = plt.subplots(figsize=_SIZE)
    x, y = _sorted_share(actual, np.argsort(-np.asarray(actual, dtype=float), kind="stable"))
    ax.plot(x, y, color="black", linestyle=":", label="perfect")
    for name, pred in predictions.items():
        x, y = _sorted_share(actual, np.argsort(-np.asarray(pred, dtype=float), kind="stable"))
        ax.plot(x, y, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, label="random")
    ax.set(xlabel="share of customers (ranked by prediction)", ylabel="share of realized value", title="Gain curve")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def pareto_curve(value: np.ndarray) -> Figure:
    """Share of revenue held by the top x% of customers (the Pareto view of the customer base)."""
    v = np.asarray(value, dtype=float)
    x, y = _sorted_share(v, np.argsort(-v, kind="stable"))
    fig, ax = plt.subplots(figsize=_SIZE)
    ax.plot(x, y)
    for q in (0.1, 0.2):
        share = y[int(round(q * (len(y) - 1)))]
        ax.axvline(q, color="grey", linewidth=0.6)
        ax.annotate(f"top {q:.0%}: {share:.0%}", (q, share), textcoords="offset points", xytext=(5, -12))
    ax.set(xlabel="share of customers", ylabel="share of revenue", title="Pareto revenue curve")
    fig.tight_layout()
    return fig


def decile_chart(actual: np.ndarray, predicted: np.ndarray) -> Figure:
    """Mean predicted vs mean realized value per decile of the prediction (decile 1 = highest)."""
    frame = pd.DataFrame({"actual": actual, "predicted": predicted})
    rank = frame["predicted"].rank(method="first", ascending=False)
    frame["decile"] = np.ceil(rank / len(frame) * 10).clip(1, 10).astype(int)
    means = frame.groupby("decile")[["predicted", "actual"]].mean()
    fig, ax = plt.subplots(figsize=_SIZE)
    idx = np.arange(len(means))
    ax.bar(idx - 0.2, means["predicted"], width=0.4, label="predicted")
    ax.bar(idx + 0.2, means["actual"], width=0.4, label="realized")
    ax.set_xticks(idx, [str(d) for d in means.index])
    ax.set(xlabel="decile of predicted value (1 = highest)", ylabel="mean value", title="Decile chart")
    ax.legend()
    fig.tight_layout()
    return fig


def calibration_curve(y: np.ndarray, probabilities: dict[str, np.ndarray], n_bins: int = 10) -> Figure:
    """Observed churn rate against mean predicted probability, per quantile bin."""
    fig, ax = plt.subplots(figsize=_SIZE)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, label="perfect")
    for name, p in probabilities.items():
        frame = pd.DataFrame({"y": y, "p": p})
        frame["bin"] = pd.qcut(frame["p"].rank(method="first"), n_bins, labels=False)
        means = frame.groupby("bin")[["p", "y"]].mean()
        ax.plot(means["p"], means["y"], marker="o", label=name)
    ax.set(xlabel="predicted churn probability", ylabel="observed churn rate", title="Calibration")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def migration_heatmap(current: Sequence[str], predicted: Sequence[str], order: Sequence[str]) -> Figure:
    """Counts of customers moving from their current tier (rows) to their predicted tier (columns)."""
    matrix = pd.crosstab(pd.Categorical(current, order), pd.Categorical(predicted, order), dropna=False)
    fig, ax = plt.subplots(figsize=_SIZE)
    ax.imshow(matrix.to_numpy(), cmap="Blues")
    ax.set_xticks(range(len(order)), order)
    ax.set_yticks(range(len(order)), order)
    for (i, j), count in np.ndenumerate(matrix.to_numpy()):
        ax.text(j, i, f"{count:,}", ha="center", va="center", fontsize=8)
    ax.set(xlabel="predicted tier", ylabel="current tier", title="Tier migration")
    fig.tight_layout()
    return fig


def feature_importance(names: Sequence[str], gains: np.ndarray, title: str, top: int = 15) -> Figure:
    """Total split gain per feature, largest first."""
    series = pd.Series(np.asarray(gains, dtype=float), index=list(names)).sort_values().tail(top)
    fig, ax = plt.subplots(figsize=(_SIZE[0], 0.3 * len(series) + 1.2))
    ax.barh(series.index, series.to_numpy())
    ax.set(xlabel="total gain", title=title)
    fig.tight_layout()
    return fig


def tier_bars(tiers: Sequence[str], tier_of_customer: Sequence[str], value: np.ndarray) -> Figure:
    """Share of customers and share of revenue per tier, side by side (best tier first)."""
    frame = pd.DataFrame({TIER: pd.Categorical(tier_of_customer, list(tiers)), "value": np.clip(value, 0, None)})
    grouped = frame.groupby(TIER, observed=False)["value"].agg(["size", "sum"])
    size_share = grouped["size"] / max(grouped["size"].sum(), 1)
    revenue_share = grouped["sum"] / (grouped["sum"].sum() or 1.0)
    fig, ax = plt.subplots(figsize=_SIZE)
    idx = np.arange(len(tiers))
    ax.bar(idx - 0.2, size_share.to_numpy(), width=0.4, label="customers")
    ax.bar(idx + 0.2, revenue_share.to_numpy(), width=0.4, label="revenue")
    ax.set_xticks(idx, list(tiers))
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set(ylabel="share", title="Tier size and revenue share")
    ax.legend()
    fig.tight_layout()
    return fig


def metric_by_cutoff(table: pd.DataFrame, metric: str, title: str) -> Figure:
    """One line per method of ``metric`` over the test cutoffs of a backtest table (columns test_cutoff, method)."""
    fig, ax = plt.subplots(figsize=_SIZE)
    for method, rows in table.groupby("method", sort=False):
        rows = rows.sort_values("test_cutoff")
        style = {"linewidth": 2.5} if method == "tiercast" else {"linewidth": 1.0}
        ax.plot(pd.to_datetime(rows["test_cutoff"]), rows[metric], marker="o", label=str(method), **style)
    ax.set(xlabel="test cutoff", ylabel=metric.replace("_", " "), title=title)
    ax.legend(fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def close(fig: Figure) -> None:
    plt.close(fig)
