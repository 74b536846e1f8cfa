"""The BTYD part of the stacked value model, chosen on labelled rows by what the value model is for: ranking spend.

The churn model chooses its count model by the log loss of P(no purchase) (:func:`~tiercast.models.btyd.stacker.
choose_btyd`); a count model that predicts *whether* customers buy better need not rank *how much* they spend
better. On CDNOW, BG/NBD's P(no purchase) has the clearly lower log loss on the validation cutoffs, while
Pareto/NBD x Gamma-Gamma ranks the holdout's spend better (nGini 0.684 against 0.672): stacked on Pareto/NBD the
value model reaches nGini 0.7221 on the standard holdout, 0.7192 on BG/NBD (the rehearsal split: 0.6664, 0.6657).
So the value model keeps the preferred Pareto/NBD unless another count model ranks the validation rows' spend
better by a paired-bootstrap interval above 0 (:func:`choose_value_btyd`).

The same rows choose the spend convention (:func:`choose_spend`). The lifetimes convention fits Gamma-Gamma on
repeat purchase days only (first orders often differ), so every one-time buyer gets the population's mean spend and
their value ranks by expected purchases alone. Reading every purchase day lets the first purchase tell big spenders
from small ones. Which ranks future value better depends on the shop, measured on the BTYD model's value nGini at
each data set's test cutoffs (Pareto/NBD, ``"all"`` minus ``"repeat"``):

* Online Retail II (wholesale buyers whose first order is like their next): +0.030 to +0.060 at 6 cutoffs;
* CDNOW: +0.005 to +0.023 at 4 cutoffs;
* a synthetic retailer whose first purchase is drawn like the others: +0.0005, the gap to the true-parameter model;
* the Olist sample (one-time buyers of anything from a phone case to a fridge; some ten repeat buyers per window):
  -0.19, -0.19, +0.001, +0.008. A first purchase that says little about the next one reorders the one-time buyers
  by the price of what they happened to buy.

So every purchase day is read only where its value nGini on the labelled rows beats repeat days' by a
paired-bootstrap interval above zero; the published convention otherwise.

Each cutoff group's BTYD model is fitted on its feature rows alone (label-free, as in stacking); only the comparisons
read the labels."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from tiercast.models.btyd.forecast import DAY_SPEND
from tiercast.models.btyd.stacker import BTYD_MODELS, stacked_btyd
from tiercast.models.evaluation import normalized_gini, paired_bootstrap

#: The spend convention kept unless the other is shown to rank better: the lifetimes convention, the baselines'.
DEFAULT_SPEND = "repeat"


def _value_predictions(X: pd.DataFrame, groups: np.ndarray, label_days: np.ndarray, **kw: Any) -> np.ndarray:
    """The BTYD model's expected value in each row's label window, fitted per cutoff group on its rows alone."""
    days = np.asarray(label_days, dtype=float)
    at_label = stacked_btyd(X, groups, feature_horizon_days=float(np.max(days)), label_days=days, **kw)[1]
    return at_label["btyd_expected_value"].to_numpy()


def _spend(value: np.ndarray | pd.Series, n: int) -> np.ndarray:
    y = np.clip(np.asarray(value, dtype=float), 0.0, None)
    if y.shape != (n,):
        raise ValueError(f"value has {y.size} values, X has {n} rows")
    return y


def _gain(y: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> dict[str, float] | None:
    """nGini(y, a) - nGini(y, b) with its paired-bootstrap 95% interval; None where no ranking can be judged."""
    try:
        gain = paired_bootstrap(normalized_gini, y, a, b, n_boot=n_boot, seed=seed)
    except ValueError:
        return None
    return {k: float(gain[k]) for k in ("diff", "lo", "hi")}


def choose_value_btyd(
    X: pd.DataFrame,
    value: np.ndarray | pd.Series,
    groups: np.ndarray,
    *,
    label_days: np.ndarray,
    time_unit_days: float,
    seasonal: bool | str = True,
    season_scale: dict[int, float] | None = None,
    candidates: Iterable[str] = BTYD_MODELS,
    n_boot: int = 200,
    seed: int = 0,
) -> tuple[str, dict[str, float]]:
    """The count model for the value model: the first candidate (Pareto/NBD) unless another's expected value ranks
    the realized ``value`` of the rows better (nGini) by a paired-bootstrap interval above 0 (then the best of
    those), and every candidate's nGini on the rows (empty where nobody spent)."""
    y = _spend(value, len(X))
    names = list(dict.fromkeys(candidates))
    if not (y > 0).any():
        return names[0], {}
    kw = {"time_unit_days": time_unit_days, "seasonal": seasonal, "season_scale": season_scale}
    preds = {name: _value_predictions(X, groups, label_days, model=name, **kw) for name in names}
    scores = {name: float(normalized_gini(y, p)) for name, p in preds.items()}
    first, *others = names
    clear = [n for n in others if (g := _gain(y, preds[n], preds[first], n_boot, seed)) is not None and g["lo"] > 0]
    return (max(clear, key=scores.get) if clear else first), scores


def choose_spend(
    X: pd.DataFrame,
    value: np.ndarray | pd.Series,
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
    ``lo``, ``hi``; empty where it could not be made: no ``day_spend_mean`` column, or no spend to rank)."""
    y = _spend(value, len(X))
    if DAY_SPEND not in X.columns or not (y > 0).any():
        return DEFAULT_SPEND, {}
    kw = {"model": model, "time_unit_days": time_unit_days, "seasonal": seasonal, "season_scale": season_scale}
    every, repeat = (_value_predictions(X, groups, label_days, spend=s, **kw) for s in ("all", DEFAULT_SPEND))
    gain = _gain(y, every, repeat, n_boot, seed)
    if gain is None:
        return DEFAULT_SPEND, {}
    return ("all" if gain["lo"] > 0 else DEFAULT_SPEND), gain
