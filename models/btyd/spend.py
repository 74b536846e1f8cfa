"""Which purchase days the stacked value model's Gamma-Gamma spend reads, chosen on labelled rows.

The lifetimes convention fits Gamma-Gamma on repeat purchase days only (first orders often differ), so every
one-time buyer gets the population's mean spend and their value ranks by expected purchases alone. Reading every
purchase day lets the first purchase tell big spenders from small ones. Which ranks future value better depends on
the shop, measured on the BTYD model's value nGini at each data set's test cutoffs (Pareto/NBD, ``"all"`` minus
``"repeat"``):

* Online Retail II (wholesale buyers whose first order is like their next): +0.030 to +0.060 at 6 cutoffs;
* CDNOW: +0.005 to +0.023 at 4 cutoffs;
* a synthetic retailer whose first purchase is drawn like the others: +0.0005, the gap to the true-parameter model;
* the Olist sample (one-time buyers of anything from a phone case to a fridge; some ten repeat buyers per window):
  -0.19, -0.19, +0.001, +0.008. A first purchase that says little about the next one reorders the one-time buyers
  by the price of what they happened to buy.

So the choice is made where labels show it, as :func:`~tiercast.models.btyd.stacker.choose_btyd` chooses the count
model: every purchase day only where its value nGini on the labelled rows beats repeat days' by a paired-bootstrap
interval above zero; the published convention otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiercast.models.btyd.forecast import DAY_SPEND, SPEND_CONVENTIONS
from tiercast.models.btyd.stacker import stacked_btyd
from tiercast.models.evaluation import normalized_gini, paired_bootstrap

#: The convention kept unless the other is shown to rank better: the lifetimes convention, the baselines'.
DEFAULT_SPEND = "repeat"


def choose_spend(
    X: pd.DataFrame,
    value: np.ndarray,
    groups: np.ndarray,
    *,
    model: str,
    label_days: np.ndarray,
    time_unit_days: float,
    seasonal: bool | str = True,
    season_scale: dict[int, float] | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> tuple[str, dict[str, float]]:
    """``"all"`` where the BTYD model's expected value in each row's label window, with every purchase day's spend,
    ranks the realized ``value`` better (normalized Gini over the rows) than with repeat days only, by a
    paired-bootstrap 95% interval above 0; else ``"repeat"``. Returns the choice and the comparison (``diff``,
    ``lo``, ``hi``; empty where it could not be made: no ``day_spend_mean`` column, or no spend to rank).

    Each cutoff group's BTYD model is fitted on its feature rows alone (label-free, as in stacking); only the
    comparison reads the labels."""
    y = np.clip(np.asarray(value, dtype=float), 0.0, None)
    if y.shape != (len(X),):
        raise ValueError(f"value has {y.size} values, X has {len(X)} rows")
    if DAY_SPEND not in X.columns or not (y > 0).any():
        return DEFAULT_SPEND, {}
    kw = {"model": model, "time_unit_days": time_unit_days, "seasonal": seasonal, "season_scale": season_scale}
    days = np.asarray(label_days, dtype=float)
    preds = {
        spend: stacked_btyd(X, groups, feature_horizon_days=float(np.max(days)), label_days=days, spend=spend, **kw)[1]
        for spend in SPEND_CONVENTIONS
    }
    a, b = (preds[s]["btyd_expected_value"].to_numpy() for s in ("all", "repeat"))
    try:
        gain = paired_bootstrap(normalized_gini, y, a, b, n_boot=n_boot, seed=seed)
    except ValueError:  # no replicate with a ranking to judge
        return DEFAULT_SPEND, {}
    comparison = {k: float(gain[k]) for k in ("diff", "lo", "hi")}
    return ("all" if comparison["lo"] > 0 else DEFAULT_SPEND), comparison
