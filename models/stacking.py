"""Buy-till-you-die (BTYD) outputs stacked into the gradient-boosted models, and the blend of the two.

A plain GBM on RFM windows does not automatically beat a BG/NBD or Pareto/NBD x Gamma-Gamma fit (DESIGN,
"Pitfalls"). The value and churn models therefore learn a *correction* to a BTYD prediction:

* **derived features**: at every cutoff a BTYD model is fitted on that cutoff's feature rows alone (repeat
  purchase days, recency, age and repeat spend are features already; labels are never used), and its per-customer
  outputs (:data:`BTYD_FEATURES`) join the GBM's inputs. No row sees a BTYD fit of another cutoff, so nothing
  leaks from the future;
* **offset**: the GBM is boosted from the BTYD prediction for the row's own label window (log expected spend for
  value, logit P(no purchase) for churn) instead of from a constant. The BTYD model carries the horizon, so a
  GBM trained on label windows shorter than the scoring horizon (CDNOW: nothing of the 39-week holdout may be
  used, so no 39-week label exists before it) still predicts the scoring horizon's level, and the trees only
  learn what the BTYD model gets wrong;
* **blend**: the correction is shrunk, ``link(prediction) = offset + w * trees`` with ``w`` in [0, 1] chosen on
  the validation cutoff (w = 0 is the BTYD model, w = 1 the full GBM);
* **level** (``btyd_level``, off by default): when the BTYD part is fitted at the scoring cutoff
  (:meth:`StackedMixin.fit_btyd_at`) the predictions' level on the scored rows (total spend, mean churn
  probability) is set to the BTYD model's there: the trees and the calibration give the ranking, the BTYD model,
  reading the newest history, the level. A level learned on past label windows carries their season to the next
  one (Online Retail II, calibrated on February-May: mean churn probability of May-August 0.43 against 0.50
  realized, BG/NBD's 0.50);
* **base**: BG/NBD or Pareto/NBD; ``btyd="auto"`` chooses the one whose P(no purchase in the label window) has the
  lower log loss on the validation cutoffs (:func:`choose_btyd`; label-free fits scored on the labels).

Settings (hyperparameters, tree count, blend weight, calibration) are chosen on the validation cutoff with trees
fitted only on training cutoffs whose label windows end by it (:func:`purge_mask`); with several validation
cutoffs, one such rolling-origin fold per cutoff and the scores averaged over them (one validation window is a
coin toss on small data). The final trees are refitted on every row (and :meth:`StackedMixin.refit` can refit them
on longer label windows with the same settings).

For prediction the BTYD parameters of the latest training cutoff are stored in the estimator, so scoring is
row-wise (a customer scored alone gets the same result as among others); :meth:`StackedMixin.fit_btyd_at` refits
them on the feature rows of the cutoff scored (BTYD needs no labels, so the model that scores reads the newest
history). Without a validation cutoff (one training label window) the models are the BTYD model itself.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from tiercast.features.contract import ID_COLUMNS
from tiercast.models.baselines import BTYDBaseline

__all__ = [
    "BLEND_WEIGHTS",
    "BTYD_FEATURES",
    "BTYD_INPUTS",
    "BTYD_MODELS",
    "BTYDStacker",
    "PurgeWarning",
    "StackedMixin",
    "btyd_inputs",
    "choose_btyd",
    "choose_weight",
    "fit_stacker",
    "groups_of",
    "intercept_shift",
    "level_factor",
    "per_row_days",
    "purge_mask",
    "season_indices",
    "season_method",
    "stacked_btyd",
    "val_groups",
]

#: Derived feature names, in the order they extend a model's ``feature_names_in_``.
BTYD_FEATURES: tuple[str, ...] = (
    "btyd_expected_purchases",
    "btyd_p_alive",
    "btyd_p_no_purchase",
    "btyd_expected_avg_spend",
    "btyd_expected_value",
)
#: Feature columns a BTYD model reads (frequency, recency, age, monetary value in the lifetimes convention).
BTYD_INPUTS: tuple[str, ...] = ("repeat_purchase_days", "first_to_last_days", "tenure_days", "repeat_spend_mean")
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
SEASON_METHODS: tuple[str, ...] = ("all", "alive")


def season_indices(X: pd.DataFrame, method: str = "all") -> dict[int, float]:
    """Seasonal indices of one cutoff's feature rows, by horizon length h: how much last year's window of the next
    h days bought against the year's rate. 1 = no season; empty when no customer's history reaches a year back (or
    the 365-day window is not a feature). Label-free: only transactions before the cutoff. ``method``:

    * ``"all"``: every customer with a year of history (:func:`_season_all`); biased upward by dropouts;
    * ``"alive"``: only customers certainly alive through the year, against their rate over the rest of it
      (:func:`_season_alive`); about 1 with no season whatever the dropouts and the spread of rates.
    """
    if method == "all":
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

    def __init__(self, model: str = "bgnbd", time_unit_days: float = 7.0, seasonal: bool | str = True) -> None:
        self.model = model
        self.time_unit_days = time_unit_days
        self.seasonal = seasonal

    def fit(self, X: pd.DataFrame) -> BTYDStacker:
        """Fit on the rows of one cutoff (stacking several cutoffs would count customers twice)."""
        if len(X) == 0:
            raise ValueError("BTYD stacking needs at least one feature row")
        self.btyd_ = BTYDBaseline(model=self.model, time_unit_days=self.time_unit_days).fit(btyd_inputs(X))
        self.params_ = {**self.btyd_.count_model_.params_, **(self.btyd_.gg_.params_ if self.btyd_.gg_ else {})}
        method = season_method(self.seasonal)
        self.season_ = season_indices(X, method) if method else {}
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


_FIT_CACHE: OrderedDict[tuple, BTYDStacker] = OrderedDict()
_FIT_CACHE_SIZE = 64


def fit_stacker(X: pd.DataFrame, *, model: str, time_unit_days: float, seasonal: bool | str = True) -> BTYDStacker:
    """A :class:`BTYDStacker` fitted on X, memoized on the exact BTYD inputs (and seasonal indices): the value and
    the churn model, and the test cutoffs of a backtest that share training cutoffs, reuse one maximum-likelihood
    fit. The fit is a deterministic function of these inputs, so the cache changes no result."""
    inputs = btyd_inputs(X)
    digest = hashlib.sha256(np.ascontiguousarray(inputs.to_numpy(dtype=float)).tobytes()).hexdigest()
    method = season_method(seasonal)
    season = tuple(sorted(season_indices(X, method).items())) if method else ()
    key = (model, float(time_unit_days), len(inputs), digest, season)
    hit = _FIT_CACHE.get(key)
    if hit is not None:
        _FIT_CACHE.move_to_end(key)
        return hit
    stacker = BTYDStacker(model=model, time_unit_days=time_unit_days, seasonal=seasonal).fit(X)
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
    if "cutoff" in X.columns:
        return X["cutoff"].to_numpy()
    return np.zeros(len(X), dtype=int)


def val_groups(X_val: pd.DataFrame | None) -> np.ndarray | None:
    """The validation rows' cutoffs (X_val's ``cutoff`` column), None without one."""
    if X_val is None or "cutoff" not in X_val.columns or len(X_val) == 0:
        return None
    return X_val["cutoff"].to_numpy()


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
) -> tuple[pd.DataFrame, pd.DataFrame, BTYDStacker]:
    """Fit one BTYD model per cutoff group on that group's rows.

    Returns the derived features at ``feature_horizon_days`` and the BTYD predictions for each row's own label
    window (``label_days``, the offsets' source), both row-aligned with X (positional, X's index), and the stacker
    fitted on the latest group, which prediction uses.
    """
    n = len(X)
    feats = np.empty((n, len(BTYD_FEATURES)))
    at_label = np.empty((n, len(BTYD_FEATURES)))
    keys = pd.unique(pd.Series(groups))
    latest: BTYDStacker | None = None
    for g in sorted(keys):
        rows = np.flatnonzero(groups == g)
        part = X.iloc[rows]
        stacker = fit_stacker(part, model=model, time_unit_days=time_unit_days, seasonal=seasonal)
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
        )
        p = np.clip(at_label["btyd_p_no_purchase"].to_numpy(dtype=float), _P_CLIP, 1 - _P_CLIP)
        loss = -(y * np.log(p) + (1 - y) * np.log1p(-p))
        scores[name] = float(np.mean([loss[m].mean() for m in parts]))
    best = min(scores.items(), key=lambda kv: kv[1])[0]
    return best, scores


class PurgeWarning(UserWarning):
    """Settings could not be chosen on time-separated rows."""


def purge_mask(groups: np.ndarray, label_days: np.ndarray | None, val_cutoff: object | None) -> np.ndarray | None:
    """Training rows whose label window ``[cutoff, cutoff + label_days)`` ends at or before the validation cutoff.

    Rows of a cutoff shortly before the validation cutoff describe nearly the same customers with nearly the same
    future purchases as the validation rows (their label windows overlap); fitted on, they make the validation
    score optimistic, so early stopping runs long and the blend leans on the trees (seen on CDNOW: validation
    nGini 0.74, test 0.60). Choosing settings on purged rows keeps the validation time-separated; the final refit
    still uses every row. None (no purge) when cutoffs are not timestamps, the validation cutoff or the label
    lengths are unknown, or no row would remain (then with a :class:`PurgeWarning`).
    """
    if val_cutoff is None or label_days is None or not np.issubdtype(np.asarray(groups).dtype, np.datetime64):
        return None
    ends = pd.to_datetime(groups) + pd.to_timedelta(np.asarray(label_days, dtype=float), unit="D")
    keep = np.asarray(ends <= pd.Timestamp(val_cutoff))
    if not keep.any():
        warnings.warn(
            f"no training label window ends by the validation cutoff {pd.Timestamp(val_cutoff).date()}: settings are "
            "chosen on rows whose label windows overlap the validation window (optimistic); add earlier training "
            "cutoffs (cutoffs.n_train) or shorten the horizon",
            PurgeWarning,
            stacklevel=2,
        )
    return keep if keep.any() and not keep.all() else None


def choose_weight(
    score: Callable[[np.ndarray], float], offset: np.ndarray, raw: np.ndarray, weights: Iterable[float]
) -> tuple[float, dict[float, float]]:
    """The weight w maximizing ``score(offset + w * raw)`` on the validation cutoff (ties: the larger w, i.e. the
    model's own trees), and every weight's score."""
    scores = {float(w): float(score(offset + float(w) * raw)) for w in weights}
    best = max(scores.items(), key=lambda kv: (kv[1], kv[0]))[0]
    return best, scores


#: Blend weights tried on the validation cutoff: link(prediction) = offset + w * trees.
BLEND_WEIGHTS: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


def level_factor(target: np.ndarray, predicted: np.ndarray) -> float | None:
    """Target total over predicted total (the factor putting a prediction's level on the target's), None when
    either total is not positive (nothing to scale by)."""
    want, pred = float(np.sum(target)), float(np.sum(predicted))
    return want / pred if want > 0 and pred > 0 else None


def intercept_shift(eta: np.ndarray, target: np.ndarray) -> float | None:
    """The shift b with ``sum(sigmoid(eta + b)) = sum(target)``: the intercept putting the mean probability of a
    logistic model with log-odds ``eta`` on the mean of ``target`` (probabilities or 0/1 outcomes; with outcomes it
    is the maximum-likelihood intercept with the slope held). None when the target mean is 0 or 1."""
    eta, target = np.asarray(eta, dtype=float), np.asarray(target, dtype=float)
    want = float(target.sum())
    if len(target) == 0 or want <= 0 or want >= len(target):
        return None
    gap = lambda b: float(expit(eta + b).sum()) - want  # noqa: E731 (increasing in b)
    lo, hi = -1.0, 1.0
    while gap(lo) > 0:
        lo *= 2
    while gap(hi) < 0:
        hi *= 2
    return float(brentq(gap, lo, hi, xtol=1e-10))


class StackedMixin(BaseEstimator):
    """Feature handling shared by the value and churn models: input columns, BTYD-derived columns, offsets."""

    horizon_days: int | None
    btyd: str | None
    time_unit_days: float
    purge: bool
    # set by the concrete model: its LightGBM class, its offset from BTYD outputs and its training target
    _lgbm_cls: type
    _offset: Callable[[pd.DataFrame], np.ndarray]
    _target: Callable[[np.ndarray | pd.Series], np.ndarray]

    @property
    def stacked(self) -> bool:
        return self.horizon_days is not None and self.btyd is not None

    @staticmethod
    def _no_purchase(y: np.ndarray) -> np.ndarray:  # pragma: no cover - set by the concrete model
        raise NotImplementedError

    def _btyd_model(self) -> str:
        """The BTYD model in use (``btyd_`` once fitted; models saved before ``"auto"`` existed have ``btyd``)."""
        return getattr(self, "btyd_", self.btyd)

    def _inputs(self, X: pd.DataFrame) -> list[str]:
        cols = [c for c in X.columns if c not in ID_COLUMNS]
        bad = [c for c in cols if not pd.api.types.is_numeric_dtype(X[c])]
        if bad:
            raise ValueError(f"non-numeric feature columns {bad}")
        clash = [c for c in cols if c in BTYD_FEATURES]
        if clash and self.stacked:
            raise ValueError(f"input columns {clash} clash with the derived BTYD features")
        return cols

    def _stack_fit(
        self,
        X: pd.DataFrame,
        X_val: pd.DataFrame | None,
        groups: Iterable | None,
        label_days: float | Iterable[float] | None,
        val_label_days: float | Iterable[float] | None,
        val_cutoff: object | None = None,
        folds: list[tuple[np.ndarray | None, np.ndarray]] | None = None,
        *,
        y: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame | None]:
        """Model inputs for training and validation rows and, when stacked, the label-horizon BTYD predictions
        of each (the offsets' source). Sets ``input_features_``, ``feature_names_in_``, ``stacker_``,
        ``probe_mask_`` (see :func:`purge_mask`) and ``btyd_`` (the BTYD model used: ``btyd``, or with
        ``"auto"`` the one :func:`choose_btyd` picks on the validation rows, or without them on the latest
        training cutoff's rows)."""
        self.input_features_ = self._inputs(X)
        self.stacker_: BTYDStacker | None = None
        self.level_shift_ = 0.0  # set by fit_btyd_at (btyd_level)
        h = float(self.horizon_days) if self.horizon_days is not None else None
        g = groups_of(X, groups)
        days = per_row_days(label_days, len(X), h) if h is not None or label_days is not None else None
        self.btyd_, self.btyd_scores_ = self.btyd, {}
        if self.stacked and self.btyd == "auto":
            if X_val is not None and len(X_val) and y_val is not None:
                rows, labels, rg = X_val, y_val, groups_of(X_val, None)
                rdays = per_row_days(val_label_days, len(X_val), h)
            else:
                latest = g == max(pd.unique(pd.Series(g)))
                rows, labels, rg, rdays = X.loc[latest], np.asarray(y)[latest], g[latest], days[latest]
            self.btyd_, self.btyd_scores_ = choose_btyd(
                rows,
                self._no_purchase(np.asarray(labels)),
                rg,
                label_days=rdays,
                time_unit_days=self.time_unit_days,
                seasonal=getattr(self, "seasonal", True),
            )
        val_cuts = val_groups(X_val)
        if val_cutoff is None and val_cuts is not None and len(np.unique(val_cuts)) == 1:
            val_cutoff = val_cuts[0]
        self.probe_mask_ = purge_mask(g, days, val_cutoff) if self.purge else None
        # several validation cutoffs: one rolling-origin fold each, its trees fitted on rows whose label windows
        # end by that cutoff
        self.folds_ = folds
        if folds is None and val_cuts is not None and len(np.unique(val_cuts)) > 1:
            self.folds_ = [(purge_mask(g, days, v) if self.purge else None, val_cuts == v) for v in np.unique(val_cuts)]
        if not self.stacked:
            self.feature_names_in_ = np.asarray(self.input_features_, dtype=object)
            self.n_features_in_ = len(self.feature_names_in_)
            return X[self.input_features_], None, None if X_val is None else X_val[self.input_features_], None
        kw = {"model": self.btyd_, "time_unit_days": self.time_unit_days, "feature_horizon_days": h}
        kw["seasonal"] = getattr(self, "seasonal", True)
        feats, at_label, stacker = stacked_btyd(X, g, label_days=days, **kw)
        train = pd.concat([X[self.input_features_], feats], axis=1)
        val = val_label = None
        if X_val is not None and len(X_val):
            g_val = groups_of(X_val, None)  # the validation cutoff: one group unless X_val says otherwise
            days = per_row_days(val_label_days, len(X_val), h)
            v_feats, val_label, stacker = stacked_btyd(X_val, g_val, label_days=days, **kw)
            val = pd.concat([X_val[self.input_features_], v_feats], axis=1)
        self.stacker_ = stacker
        self.feature_names_in_ = np.asarray([*self.input_features_, *BTYD_FEATURES], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return train, at_label, val, val_label

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model's input frame for feature rows: the input features plus, when stacked, the derived BTYD
        features (columns = ``feature_names_in_``), row-aligned with X. Reason texts are built from it."""
        check_is_fitted(self, "model_")
        missing = [c for c in self.input_features_ if c not in X.columns]
        if missing:
            raise ValueError(f"feature rows lack columns {missing}")
        base = X[self.input_features_]
        if self.stacker_ is None:
            return base
        return pd.concat([base, self.stacker_.transform(X, float(self.horizon_days))], axis=1)

    def _horizon_btyd(self, X: pd.DataFrame, horizon_days: float | None) -> pd.DataFrame:
        h = float(self.horizon_days if horizon_days is None else horizon_days)
        return self.stacker_.transform(X, h)

    def refit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | pd.Series,
        *,
        groups: Iterable | None = None,
        label_days: float | Iterable[float] | None = None,
    ) -> StackedMixin:
        """Refit the trees on (X, y) with the settings ``fit`` chose on the validation cutoff (parameters, tree
        count, blend weight, calibration), e.g. on longer label windows than the time-separated choice allowed.
        BTYD features are refitted per cutoff of X and the latest cutoff's fit is kept for prediction."""
        check_is_fitted(self, "model_")
        if list(self._inputs(X)) != list(self.input_features_):
            raise ValueError("refit needs the same feature columns as fit")
        inputs, init = X[self.input_features_], None
        self.level_shift_ = 0.0  # the BTYD part is refitted: fit_btyd_at sets the level again
        if self.stacked:
            h = float(self.horizon_days)
            g = groups_of(X, groups)
            feats, at_label, self.stacker_ = stacked_btyd(
                X,
                g,
                model=self._btyd_model(),
                time_unit_days=self.time_unit_days,
                seasonal=getattr(self, "seasonal", True),
                feature_horizon_days=h,
                label_days=per_row_days(label_days, len(X), h),
            )
            inputs = pd.concat([inputs, feats], axis=1)
            init = self._offset(at_label)
            self.offset_mean_ = float(np.mean(init))
        cls = self._lgbm_cls
        self.model_ = cls(n_estimators=self.n_trees_, **self.params_).fit(inputs, self._target(y), init_score=init)
        return self

    def fit_btyd_at(self, X: pd.DataFrame) -> StackedMixin:
        """Refit the BTYD part used for prediction on the feature rows of one cutoff (e.g. the data end: BTYD
        needs no labels, so the model that scores reads the newest history). The trees are unchanged. With
        ``btyd_level`` the level of the predictions on X (total spend, mean churn probability) is then put on the
        BTYD model's there (``level_shift_``, one stored constant: scoring stays row-wise)."""
        check_is_fitted(self, "model_")
        if self.stacked:
            self.stacker_ = fit_stacker(
                X,
                model=self._btyd_model(),
                time_unit_days=self.time_unit_days,
                seasonal=getattr(self, "seasonal", True),
            )
            self.level_shift_ = 0.0
            if getattr(self, "btyd_level", False):
                self.level_shift_ = self._btyd_level_shift(X)
        return self

    def _btyd_level_shift(self, X: pd.DataFrame) -> float:  # pragma: no cover - set by the concrete model
        raise NotImplementedError

    @property
    def feature_importances_(self) -> np.ndarray:
        """Total gain per feature of ``feature_names_in_``."""
        check_is_fitted(self, "model_")
        return self.model_.booster_.feature_importance("gain")
