"""BTYD outputs as inputs of the gradient-boosted models: at every cutoff a BTYD model fitted on that cutoff's
feature rows alone (labels are never used), its per-customer outputs (:data:`BTYD_FEATURES`) and the prediction for
each row's own label window (the offset the trees are boosted from); optional seasonal indices; the choice between
BG/NBD and Pareto/NBD on the validation cutoffs (:func:`choose_btyd`). How the trees use them is in
:mod:`tiercast.models.gbm.stacked`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from tiercast.features.contract import CUTOFF
from tiercast.models.btyd.forecast import BTYD_INPUTS, BTYDForecaster

#: Derived feature names, in the order they extend a model's ``feature_names_in_``.
BTYD_FEATURES: tuple[str, ...] = (
    "btyd_expected_purchases",
    "btyd_p_alive",
    "btyd_p_no_purchase",
    "btyd_expected_avg_spend",
    "btyd_expected_value",
)


#: Columns of a training frame that are never model inputs.

_MIN_VALUE = 1e-3  # floor of the BTYD expected spend before taking logs (currency units)


_P_CLIP = 1e-4


def btyd_inputs(X: pd.DataFrame) -> pd.DataFrame:
    """The BTYD input columns with "undefined" mapped to the BTYD convention: no purchase yet means frequency 0,
    recency 0 and repeat spend 0 (e.g. customers with only zero-amount or refund lines)."""
    missing = [c for c in BTYD_INPUTS if c not in X.columns]
    if missing:
        raise ValueError(f"BTYD stacking needs feature columns {missing}")
    out = X[list(BTYD_INPUTS)].astype("float64")
    out = out.fillna({"repeat_purchase_days": 0.0, "first_to_last_days": 0.0, "repeat_spend_mean": 0.0})
    out["tenure_days"] = out["tenure_days"].fillna(0.0).clip(lower=1e-6)
    out["first_to_last_days"] = np.minimum(out["first_to_last_days"].clip(lower=0.0), out["tenure_days"])
    out["repeat_purchase_days"] = out["repeat_purchase_days"].clip(lower=0.0)
    return out


#: Bounds of the seasonal index (a window a year ago with a quarter or four times the year's average purchases).
SEASON_CLIP: tuple[float, float] = (0.25, 4.0)


def _orders(X: pd.DataFrame, days: int) -> np.ndarray | None:
    """The ``orders_{days}d`` column (NaN as 0), None when the features lack that window."""
    col = f"orders_{int(days)}d"
    return np.nan_to_num(X[col].to_numpy(dtype=float)) if col in X.columns else None


def _season_all(X: pd.DataFrame) -> dict[int, float]:
    """``"all"``: the purchases of every customer present a whole year in ``[cutoff - 365, cutoff - 365 + h)``
    (``orders_365d - orders_{365-h}d``) over their average h-day share of that year. Customers who drop out during
    the year buy early and not late, so with no season this reads above 1 (1.15 on a synthetic world of yearly
    cohorts)."""
    if "tenure_days" not in X.columns or "orders_365d" not in X.columns:
        return {}
    year_old = X["tenure_days"].to_numpy(dtype=float) >= 365
    if year_old.sum() == 0:
        return {}
    year = float(np.nansum(X["orders_365d"].to_numpy(dtype=float)[year_old]))
    out: dict[int, float] = {}
    for col in X.columns:
        if not (col.startswith("orders_") and col.endswith("d")) or not col[7:-1].isdigit():
            continue
        h = 365 - int(col[7:-1])
        if 0 < h < 365 and year > 0:
            window = year - float(np.nansum(X[col].to_numpy(dtype=float)[year_old]))
            out[h] = float(np.clip(window / (year * h / 365.0), *SEASON_CLIP))
    return out


def _season_alive(X: pd.DataFrame) -> dict[int, float]:
    """``"alive"``: by horizon length h < 365 / 2, last year's window of the next h days, ``[cutoff - 365, cutoff -
    365 + h)``, against the rate over ``[cutoff - 365, cutoff - h)``, both counted on the customers certainly alive
    all that time. A horizon is left out (index 1) when a window it needs is not a feature or no customer qualifies.

    Customers qualify with a year of history (``tenure_days >= 365``) and a purchase in the last h days
    (``orders_{h}d > 0``): in a buy-till-you-die world a customer who buys at ``cutoff - h`` or later was alive the
    whole year before. Over the year, dropouts buy early and not late, so counting every customer reads the year's
    start as a peak; customers alive throughout buy at their own steady rate in both windows, so with no season
    the index is 1 whatever the spread of rates, and with one it is the window's rate relative to the year's. The
    conditioning window ``[cutoff - h, cutoff)`` holds at least one purchase by selection, so it is left out of the
    reference: index = ``(orders_365d - orders_{365-h}d) / ((orders_365d - orders_{h}d) * h / (365 - h))``,
    summed over the qualifying customers (a ratio of totals). From h = 365 / 2 on, the conditioning window would
    overlap last year's window, so longer horizons get no index."""
    if "tenure_days" not in X.columns:
        return {}
    year = _orders(X, 365)
    if year is None:
        return {}
    year_old = np.nan_to_num(X["tenure_days"].to_numpy(dtype=float)) >= 365
    out: dict[int, float] = {}
    for col in X.columns:
        if not (col.startswith("orders_") and col.endswith("d")) or not col[7:-1].isdigit():
            continue
        h = 365 - int(col[7:-1])
        recent = _orders(X, h)
        if not 0 < 2 * h < 365 or recent is None:
            continue
        alive = year_old & (recent > 0)
        window = float((year - _orders(X, 365 - h))[alive].sum())
        reference = float((year - recent)[alive].sum())
        if reference > 0:
            out[h] = float(np.clip(window / (reference * h / (365.0 - h)), *SEASON_CLIP))
    return out


#: Ways of reading a seasonal index (:func:`season_indices`).
SEASON_METHODS: tuple[str, ...] = ("all", "alive", "year")


def year_spanned(groups: np.ndarray, horizon_days: float) -> bool:
    """Whether the label windows ``[cutoff, cutoff + horizon)`` of these cutoffs (timestamps) cover a whole year."""
    cuts = pd.to_datetime(pd.unique(pd.Series(np.asarray(groups))))
    return len(cuts) > 1 and (cuts.max() - cuts.min()).days + float(horizon_days) >= 365


def season_scale(X: pd.DataFrame, groups: np.ndarray, method: str | None) -> dict[int, float]:
    """For ``method="year"``: by horizon h, the mean over the cutoff groups of X of their ``"all"`` index, when the
    groups' h-day windows cover a whole year (else no entry: the index is not scaled).

    Over a year of windows the seasons average out, so this mean is what the ``"all"`` index reads without a
    season: the dropout bias (customers who leave during the year bought early in it). Dividing by it leaves the
    season. Label-free: only the feature rows of the training cutoffs."""
    if method != "year" or not np.issubdtype(np.asarray(groups).dtype, np.datetime64):
        return {}
    per_group = [_season_all(X.loc[np.asarray(groups) == g]) for g in pd.unique(pd.Series(groups))]
    horizons = set.intersection(*(set(d) for d in per_group)) if per_group else set()
    return {h: float(np.mean([d[h] for d in per_group])) for h in sorted(horizons) if year_spanned(groups, h)}


def season_indices(X: pd.DataFrame, method: str = "all") -> dict[int, float]:
    """Seasonal indices of one cutoff's feature rows, by horizon length h: how much last year's window of the next
    h days bought against the year's rate. 1 = no season; empty when no customer's history reaches a year back (or
    the 365-day window is not a feature). Label-free: only transactions before the cutoff. ``method``:

    * ``"all"``: every customer with a year of history (:func:`_season_all`); biased upward by dropouts;
    * ``"alive"``: only customers certainly alive through the year, against their rate over the rest of it
      (:func:`_season_alive`); about 1 with no season whatever the dropouts and the spread of rates;
    * ``"year"``: the ``"all"`` index, which a stacker divides by its mean over a year of training cutoffs
      (:func:`season_scale`), and leaves out (index 1) where the training cutoffs do not cover a year.
    """
    if method in ("all", "year"):
        return _season_all(X)
    if method == "alive":
        return _season_alive(X)
    raise ValueError(f"season index method must be one of {SEASON_METHODS}, got {method!r}")


def season_method(seasonal: bool | str) -> str | None:
    """The :func:`season_indices` method of a ``seasonal`` setting: True = ``"all"``, False = None (no index)."""
    if seasonal is True:
        return "all"
    if seasonal is False or seasonal is None:
        return None
    if seasonal not in SEASON_METHODS:
        raise ValueError(f"seasonal must be a bool or one of {SEASON_METHODS}, got {seasonal!r}")
    return str(seasonal)


class BTYDStacker(BaseEstimator):
    """A BTYD model (``"bgnbd"`` or ``"paretonbd"`` x Gamma-Gamma) fitted on one cutoff's feature rows, giving the
    :data:`BTYD_FEATURES` and the offsets for any horizon. Labels are never used.

    With ``seasonal``, the BTYD purchase rate over the next h days is scaled by the cutoff's seasonal index for h
    (:func:`season_indices`: last year's same window against the year's rate; True or ``"all"``: counted on every
    customer with a year of history, ``"alive"``: on those certainly alive all year), i.e. the BTYD model is read
    at the effective horizon ``h * index``. Without a year of history the index is 1 (the plain BTYD model).
    """

    def __init__(
        self,
        model: str = "bgnbd",
        time_unit_days: float = 7.0,
        seasonal: bool | str = True,
        season_scale: dict[int, float] | None = None,
    ) -> None:
        self.model = model
        self.time_unit_days = time_unit_days
        self.seasonal = seasonal
        self.season_scale = season_scale

    def fit(self, X: pd.DataFrame) -> BTYDStacker:
        """Fit on the rows of one cutoff (stacking several cutoffs would count customers twice)."""
        if len(X) == 0:
            raise ValueError("BTYD stacking needs at least one feature row")
        self.btyd_ = BTYDForecaster(model=self.model, time_unit_days=self.time_unit_days).fit(btyd_inputs(X))
        self.params_ = {**self.btyd_.count_model_.params_, **(self.btyd_.gg_.params_ if self.btyd_.gg_ else {})}
        self.season_ = _scaled_indices(X, season_method(self.seasonal), self.season_scale)
        return self

    def transform(self, X: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
        """:data:`BTYD_FEATURES` for ``horizon_days``, indexed like X (row-wise)."""
        check_is_fitted(self, "btyd_")
        h = float(horizon_days) * getattr(self, "season_", {}).get(int(round(float(horizon_days))), 1.0)
        return self.btyd_.transform(btyd_inputs(X), h)[list(BTYD_FEATURES)]

    @staticmethod
    def value_offset(features: pd.DataFrame) -> np.ndarray:
        """log of the BTYD expected spend (floored), the value model's offset."""
        return np.log(np.maximum(features["btyd_expected_value"].to_numpy(dtype=float), _MIN_VALUE))

    @staticmethod
    def churn_offset(features: pd.DataFrame) -> np.ndarray:
        """logit of the BTYD P(no purchase in the horizon), the churn model's offset."""
        p = np.clip(features["btyd_p_no_purchase"].to_numpy(dtype=float), _P_CLIP, 1 - _P_CLIP)
        return np.log(p / (1 - p))


def _scaled_indices(X: pd.DataFrame, method: str | None, scale: dict[int, float] | None) -> dict[int, float]:
    """The seasonal indices of X by ``method``, each divided by ``scale``'s value for its horizon (if any). With
    ``"year"`` a horizon without a scale gets no index: its raw value would read the dropouts as a season."""
    raw = season_indices(X, method) if method else {}
    scale = scale or {}
    if method == "year":
        raw = {h: v for h, v in raw.items() if h in scale}
    return {h: float(np.clip(v / scale[h], *SEASON_CLIP)) if h in scale else v for h, v in raw.items()}


_FIT_CACHE: OrderedDict[tuple, BTYDStacker] = OrderedDict()


_FIT_CACHE_SIZE = 64


def fit_stacker(
    X: pd.DataFrame,
    *,
    model: str,
    time_unit_days: float,
    seasonal: bool | str = True,
    season_scale: dict[int, float] | None = None,
) -> BTYDStacker:
    """A :class:`BTYDStacker` fitted on X, memoized on the exact BTYD inputs (and seasonal indices): the value and
    the churn model, and the test cutoffs of a backtest that share training cutoffs, reuse one maximum-likelihood
    fit. The fit is a deterministic function of these inputs, so the cache changes no result."""
    inputs = btyd_inputs(X)
    digest = hashlib.sha256(np.ascontiguousarray(inputs.to_numpy(dtype=float)).tobytes()).hexdigest()
    season = tuple(sorted(_scaled_indices(X, season_method(seasonal), season_scale).items()))
    key = (model, float(time_unit_days), len(inputs), digest, season)
    hit = _FIT_CACHE.get(key)
    if hit is not None:
        _FIT_CACHE.move_to_end(key)
        return hit
    stacker = BTYDStacker(model=model, time_unit_days=time_unit_days, seasonal=seasonal, season_scale=season_scale).fit(
        X
    )
    _FIT_CACHE[key] = stacker
    while len(_FIT_CACHE) > _FIT_CACHE_SIZE:
        _FIT_CACHE.popitem(last=False)
    return stacker


def groups_of(X: pd.DataFrame, groups: Iterable | None) -> np.ndarray:
    """Per-row cutoff labels: ``groups`` if given, else X's ``cutoff`` column, else a single group."""
    if groups is not None:
        g = np.asarray(groups)
        if g.shape != (len(X),):
            raise ValueError(f"groups has {g.size} values, X has {len(X)} rows")
        return g
    if CUTOFF in X.columns:
        return X[CUTOFF].to_numpy()
    return np.zeros(len(X), dtype=int)


def val_groups(X_val: pd.DataFrame | None) -> np.ndarray | None:
    """The validation rows' cutoffs (X_val's ``cutoff`` column), None without one."""
    if X_val is None or CUTOFF not in X_val.columns or len(X_val) == 0:
        return None
    return X_val[CUTOFF].to_numpy()


def per_row_days(value: float | Iterable[float] | None, n: int, default: float) -> np.ndarray:
    """Label-window lengths as one value per row: a scalar broadcasts, None means ``default``."""
    arr = np.asarray(default if value is None else value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,) or not (arr > 0).all():
        raise ValueError(f"label_days must be positive, one per row ({n}) or a scalar")
    return arr


def stacked_btyd(
    X: pd.DataFrame,
    groups: np.ndarray,
    *,
    model: str,
    time_unit_days: float,
    feature_horizon_days: float,
    label_days: np.ndarray,
    seasonal: bool | str = True,
    season_scale: dict[int, float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, BTYDStacker]:
    """Fit one BTYD model per cutoff group on that group's rows.

    Returns the derived features at ``feature_horizon_days`` and the BTYD predictions for each row's own label
    window (``label_days``, the offsets' source), both row-aligned with X (positional, X's index), and the stacker
    fitted on the latest group, which prediction uses. ``season_scale``: see :func:`season_scale`.
    """
    n = len(X)
    feats = np.empty((n, len(BTYD_FEATURES)))
    at_label = np.empty((n, len(BTYD_FEATURES)))
    keys = pd.unique(pd.Series(groups))
    latest: BTYDStacker | None = None
    for g in sorted(keys):
        rows = np.flatnonzero(groups == g)
        part = X.iloc[rows]
        stacker = fit_stacker(
            part, model=model, time_unit_days=time_unit_days, seasonal=seasonal, season_scale=season_scale
        )
        feats[rows] = stacker.transform(part, feature_horizon_days).to_numpy()
        for d in np.unique(label_days[rows]):
            sub = rows[label_days[rows] == d]
            at_label[sub] = stacker.transform(X.iloc[sub], float(d)).to_numpy()
        latest = stacker
    assert latest is not None
    frame = lambda a: pd.DataFrame(a, columns=list(BTYD_FEATURES), index=X.index)  # noqa: E731
    return frame(feats), frame(at_label), latest


#: The BTYD models a stacked model can be built on; ``btyd="auto"`` chooses one of them on labelled rows
#: (:func:`choose_btyd`).
BTYD_MODELS: tuple[str, ...] = ("bgnbd", "paretonbd")


def choose_btyd(
    X: pd.DataFrame,
    no_purchase: np.ndarray,
    groups: np.ndarray,
    *,
    label_days: np.ndarray,
    time_unit_days: float,
    seasonal: bool | str = True,
    season_scale: dict[int, float] | None = None,
    candidates: Iterable[str] = BTYD_MODELS,
) -> tuple[str, dict[str, float]]:
    """The BTYD model predicting "no purchase in the row's label window" best on labelled rows (e.g. the
    validation cutoffs), and every candidate's score.

    Each candidate is fitted per cutoff group on the feature rows alone (label-free, as in stacking); the score is
    the mean over groups of the log loss of its P(no purchase in ``label_days``) against ``no_purchase`` (lower
    is better). The two count models share the Gamma-Gamma spend model, so the purchase process is what tells
    them apart, for the value and the churn model alike. Ties go to the earlier candidate (BG/NBD: the faster
    fit)."""
    y = np.asarray(no_purchase, dtype=float)
    if y.shape != (len(X),):
        raise ValueError(f"no_purchase has {y.size} values, X has {len(X)} rows")
    parts = [groups == g for g in pd.unique(pd.Series(groups))]
    scores: dict[str, float] = {}
    for name in candidates:
        _, at_label, _ = stacked_btyd(
            X,
            groups,
            model=name,
            time_unit_days=time_unit_days,
            feature_horizon_days=float(np.max(label_days)),
            label_days=label_days,
            seasonal=seasonal,
            season_scale=season_scale,
        )
        p = np.clip(at_label["btyd_p_no_purchase"].to_numpy(dtype=float), _P_CLIP, 1 - _P_CLIP)
        loss = -(y * np.log(p) + (1 - y) * np.log1p(-p))
        scores[name] = float(np.mean([loss[m].mean() for m in parts]))
    best = min(scores.items(), key=lambda kv: kv[1])[0]
    return best, scores
