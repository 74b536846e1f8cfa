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
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from tiercast.features.contract import CUTOFF, YEAR_AGO_COLUMNS
from tiercast.models.btyd.forecast import BTYDForecaster, btyd_inputs, fit_forecaster
from tiercast.models.btyd.seasons import SEASON_CLIP, order_windows, scaled_indices, season_method, year_ago_rows
from tiercast.models.levels import intercept_shift, level_factor

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


class BTYDStacker(BaseEstimator):
    """A BTYD model (``"bgnbd"`` or ``"paretonbd"`` x Gamma-Gamma) fitted on one cutoff's feature rows, giving the
    :data:`BTYD_FEATURES` and the offsets for any horizon. Labels are never used.

    With ``seasonal``, the level of the outputs over the next h days follows the cutoff's seasonal index for h
    (:func:`season_indices`: last year's same window against the year's rate; True or ``"all"``: counted on every
    customer with a year of history, ``"alive"``: on those certainly alive all year): the outputs at h are the
    plain model's, the expected purchases and value times a factor and P(no purchase) with its log-odds plus a
    shift (one of each per horizon, ``season_level_``), chosen on the fitted rows so that their total (mean) is the
    one the model reads at the effective horizon ``h * index``. The index is one number per window, read from last
    year's window; read as a horizon row by row, it reorders customers by their rates, and a noisy index reorders
    them the wrong way (a synthetic world with a December peak, 3,000 customers: churn AUC 0.0002 below plain
    Pareto/NBD at one cutoff, the bootstrap interval wholly below 0, also with the index on the purchase rate alone
    and dropouts in calendar time). As a level it leaves the ranking to the BTYD model and the trees. Without a year
    of history the index is 1 (the plain BTYD model).

    ``spend``: the Gamma-Gamma convention (:class:`~tiercast.models.btyd.forecast.BTYDForecaster`): ``"repeat"``
    purchase days, or ``"all"``, the first included (:func:`~tiercast.models.btyd.value_choice.choose_spend`).
    """

    def __init__(
        self,
        model: str = "bgnbd",
        time_unit_days: float = 7.0,
        seasonal: bool | str = True,
        season_scale: dict[int, float] | None = None,
        spend: str = "repeat",
    ) -> None:
        self.model = model
        self.time_unit_days = time_unit_days
        self.seasonal = seasonal
        self.season_scale = season_scale
        self.spend = spend

    def fit(self, X: pd.DataFrame) -> BTYDStacker:
        """Fit on the rows of one cutoff (stacking several cutoffs would count customers twice)."""
        if len(X) == 0:
            raise ValueError("BTYD stacking needs at least one feature row")
        kw = {"model": self.model, "time_unit_days": self.time_unit_days, "spend": self.spend}
        self.btyd_ = fit_forecaster(btyd_inputs(X), **kw)
        self.params_ = {**self.btyd_.count_model_.params_, **(self.btyd_.gg_.params_ if self.btyd_.gg_ else {})}
        method = season_method(self.seasonal)
        self.season_ = scaled_indices(X, method, self.season_scale)
        inputs = btyd_inputs(X)
        self.season_level_ = {h: _season_level(self.btyd_, inputs, h, index) for h, index in self.season_.items()}
        if method == "last_year":
            # every horizon whose window a year back the features hold (year_ago_rows refuses the others)
            horizons = sorted(365 - d for d in order_windows(X) if d < 365)
            self.last_year_ = {h: level for h in horizons if (level := _last_year_level(self.btyd_, X, h))}
            self.season_level_.update(self.last_year_)
        return self

    def transform(self, X: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
        """:data:`BTYD_FEATURES` for ``horizon_days``, indexed like X (row-wise)."""
        check_is_fitted(self, "btyd_")
        h, key, inputs = float(horizon_days), int(round(float(horizon_days))), btyd_inputs(X)
        if not hasattr(self, "season_level_"):  # saved before the index set levels: read as it was then
            return self.btyd_.transform(inputs, h * getattr(self, "season_", {}).get(key, 1.0))[list(BTYD_FEATURES)]
        out = self.btyd_.transform(inputs, h)[list(BTYD_FEATURES)]
        level = self.season_level_.get(key)
        return out if level is None else _with_level(out, level)

    def churn_log_odds(self, X: pd.DataFrame, horizon_days: float) -> np.ndarray:
        """:meth:`churn_offset` of :meth:`transform` computing P(no purchase) alone (the churn reasons evaluate it
        on four histories per customer; the other outputs would triple the cost)."""
        check_is_fitted(self, "btyd_")
        if not hasattr(self, "season_level_"):
            return self.churn_offset(self.transform(X, horizon_days))
        p = self.btyd_.predict_churn(btyd_inputs(X), float(horizon_days))
        level = self.season_level_.get(int(round(float(horizon_days))))
        return _logit(p if level is None else expit(_logit(p) + level["btyd_p_no_purchase"]))

    def level_horizons(self) -> list[int]:
        """The horizons (days) the stacker holds a seasonal level for: any other horizon gets the plain BTYD
        model's level (:meth:`transform`), so a forecast switching between the two is not monotone in the horizon."""
        check_is_fitted(self, "btyd_")
        return sorted(getattr(self, "season_level_", getattr(self, "season_", {})))

    @staticmethod
    def value_offset(features: pd.DataFrame) -> np.ndarray:
        """log of the BTYD expected spend (floored), the value model's offset."""
        return np.log(np.maximum(features["btyd_expected_value"].to_numpy(dtype=float), _MIN_VALUE))

    @staticmethod
    def churn_offset(features: pd.DataFrame) -> np.ndarray:
        """logit of the BTYD P(no purchase in the horizon), the churn model's offset."""
        return _logit(features["btyd_p_no_purchase"].to_numpy(dtype=float))


def _logit(p: np.ndarray | pd.Series) -> np.ndarray:
    """log-odds of probabilities clipped to ``[_P_CLIP, 1 - _P_CLIP]`` (P(no purchase) may be exactly 0 or 1)."""
    p = np.clip(np.asarray(p, dtype=float), _P_CLIP, 1 - _P_CLIP)
    return np.log(p / (1 - p))


#: The BTYD outputs a seasonal index scales (a factor on the total); P(no purchase) gets a log-odds shift.
_SEASON_SCALED: tuple[str, ...] = ("btyd_expected_purchases", "btyd_expected_value")


def _season_level(btyd: BTYDForecaster, inputs: pd.DataFrame, h: float, index: float) -> dict[str, float]:
    """What puts the outputs at horizon h on the level they have at the effective horizon ``h * index`` over these
    rows: the ratio of totals of the expected purchases and value, and the log-odds shift of P(no purchase) that
    moves its mean there (:func:`intercept_shift`). A factor of 1 and a shift of 0 where there is no level to
    match (totals of 0, everyone certain)."""
    plain, seasonal = btyd.transform(inputs, float(h)), btyd.transform(inputs, float(h) * index)
    out = {c: level_factor(seasonal[c].to_numpy(), plain[c].to_numpy()) or 1.0 for c in _SEASON_SCALED}
    shift = intercept_shift(_logit(plain["btyd_p_no_purchase"]), seasonal["btyd_p_no_purchase"].to_numpy())
    return {**out, "btyd_p_no_purchase": 0.0 if shift is None else shift}


def _last_year_level(btyd: BTYDForecaster, X: pd.DataFrame, h: int) -> dict[str, float] | None:
    """The level of the outputs at horizon h read from last year's same window (:func:`year_ago_rows`): this
    cutoff's BTYD model predicts the window from each customer's history a year ago; the expected purchases and
    value are multiplied by realized over predicted spend there, and P(no purchase) gets the log-odds shift that
    puts its mean on the realized share without a purchase. None without such a window.

    A calendar-time BTYD model has a seasonal error of its own besides the season's level: after a December peak,
    customers who bought in it look alive and the ones who did not are not seen as overdue (a synthetic world with
    a December peak, 8,000 customers: predicted / actual total 1.28 for February to April). Last year's window, in
    the same phase, shows both; the index against the year's rate (``"year"``) shows the season only (1.13 there;
    1.01 with this level). None too when the factor is too uncertain to apply (:data:`MAX_LEVEL_SE`): then the
    ``"year"`` index sets the level where it can, else the plain model's."""
    rows = year_ago_rows(X, h)
    if rows is None:
        return None
    inputs, value, no_purchase = rows
    pred = btyd.transform(btyd_inputs(inputs), float(h))
    if ratio_log_se(value, pred["btyd_expected_value"].to_numpy()) > MAX_LEVEL_SE:
        return None
    factor = level_factor(value, pred["btyd_expected_value"].to_numpy())
    factor = 1.0 if factor is None else float(np.clip(factor, *SEASON_CLIP))
    shift = intercept_shift(_logit(pred["btyd_p_no_purchase"]), no_purchase)
    return {**dict.fromkeys(_SEASON_SCALED, factor), "btyd_p_no_purchase": 0.0 if shift is None else shift}


#: The largest standard error (log scale) of last year's level factor that is applied: the factor known to about
#: +-20%, below the seasonal moves it is there to follow (a December quarter 30-50% above the year's rate). Read
#: from a handful of purchases it is noise: the Olist sample's year-ago window at 2018-06-06 holds 7 purchases of
#: 955 customers, a factor of 2.1 with a standard error of 0.57, which put the 90-day total at 2.4 times the
#: realized one (0.95 without it). A synthetic world of 600 customers reads 0.08-0.11; one of 8,000, about 0.02.
MAX_LEVEL_SE = 0.2


def ratio_log_se(target: np.ndarray, predicted: np.ndarray) -> float:
    """The standard error of ``log(sum(target) / sum(predicted))`` over the rows (delta method for a ratio of
    totals: the residuals ``target - ratio * predicted`` per row); infinite when either total is not positive."""
    t, p = np.asarray(target, dtype=float), np.asarray(predicted, dtype=float)
    total_t, total_p = float(t.sum()), float(p.sum())
    if total_t <= 0 or total_p <= 0:
        return float("inf")
    residual = t - (total_t / total_p) * p
    return float(np.sqrt(np.sum(residual**2))) / total_t


def _with_level(out: pd.DataFrame, level: dict[str, float]) -> pd.DataFrame:
    """The plain BTYD outputs with a :func:`_season_level` applied (row-wise: the factors and shift are stored)."""
    out = out.copy()
    for c in _SEASON_SCALED:
        out[c] = out[c] * level[c]
    out["btyd_p_no_purchase"] = expit(_logit(out["btyd_p_no_purchase"]) + level["btyd_p_no_purchase"])
    return out


_FIT_CACHE: OrderedDict[tuple, BTYDStacker] = OrderedDict()


_FIT_CACHE_SIZE = 64


def fit_stacker(
    X: pd.DataFrame,
    *,
    model: str,
    time_unit_days: float,
    seasonal: bool | str = True,
    season_scale: dict[int, float] | None = None,
    spend: str = "repeat",
) -> BTYDStacker:
    """A :class:`BTYDStacker` fitted on X, memoized on the exact BTYD inputs (and seasonal indices; with
    ``"last_year"`` also the year-ago summary and the purchase and spend windows its level reads): the value and
    the churn model, and the test cutoffs of a backtest that share training cutoffs, reuse one maximum-likelihood
    fit. The fit is a deterministic function of these inputs, so the cache changes no result."""
    inputs, method = btyd_inputs(X), season_method(seasonal)
    if method == "last_year":
        windows = [c for c in X.columns if c in YEAR_AGO_COLUMNS or c.startswith(("orders_", "spend_"))]
        inputs = pd.concat([inputs, X[windows].astype("float64")], axis=1)
    digest = hashlib.sha256(np.ascontiguousarray(inputs.to_numpy(dtype=float)).tobytes()).hexdigest()
    season = tuple(sorted(scaled_indices(X, method, season_scale).items()))
    key = (model, float(time_unit_days), spend, len(inputs), tuple(inputs.columns), digest, season)
    hit = _FIT_CACHE.get(key)
    if hit is not None:
        _FIT_CACHE.move_to_end(key)
        return hit
    kw = {"seasonal": seasonal, "season_scale": season_scale, "spend": spend}
    stacker = BTYDStacker(model=model, time_unit_days=time_unit_days, **kw).fit(X)
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
    spend: str = "repeat",
) -> tuple[pd.DataFrame, pd.DataFrame, BTYDStacker]:
    """Fit one BTYD model per cutoff group on that group's rows (``spend``: :class:`BTYDStacker`).

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
        kw = {"seasonal": seasonal, "season_scale": season_scale, "spend": spend}
        stacker = fit_stacker(part, model=model, time_unit_days=time_unit_days, **kw)
        feats[rows] = stacker.transform(part, feature_horizon_days).to_numpy()
        for d in np.unique(label_days[rows]):
            sub = rows[label_days[rows] == d]
            at_label[sub] = stacker.transform(X.iloc[sub], float(d)).to_numpy()
        latest = stacker
    assert latest is not None
    frame = lambda a: pd.DataFrame(a, columns=list(BTYD_FEATURES), index=X.index)  # noqa: E731
    return frame(feats), frame(at_label), latest


#: The BTYD models a stacked model can be built on, the preferred first; ``btyd="auto"`` chooses one of them on
#: labelled rows (:func:`choose_btyd`).
BTYD_MODELS: tuple[str, ...] = ("paretonbd", "bgnbd")

#: How many standard errors of the paired log-loss difference another candidate must win by to replace the first.
CHOICE_MARGIN_SE = 2.0


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
    margin_se: float = CHOICE_MARGIN_SE,
) -> tuple[str, dict[str, float]]:
    """The BTYD model to stack on, chosen on labelled rows (e.g. the validation cutoffs), and every candidate's
    score.

    Each candidate is fitted per cutoff group on the feature rows alone (label-free, as in stacking); the score is
    the mean over groups of the log loss of its P(no purchase in ``label_days``) against ``no_purchase`` (lower
    is better). The two count models share the Gamma-Gamma spend model, so the purchase process is what tells
    them apart, for the value and the churn model alike.

    The first candidate (Pareto/NBD: a customer may drop out at any time, where BG/NBD only lets them leave right
    after a purchase) is kept unless another scores lower by more than ``margin_se`` standard errors of the paired
    per-row difference; then the lowest-scoring of those. A plain minimum followed noise: on a 600-customer world
    drawn from Pareto/NBD it took BG/NBD at a validation where it scored a hair lower, and lost 0.009 churn AUC on
    the test window (interval below 0). The standard error treats the groups as independent (a customer's rows at
    several cutoffs are not), so it is if anything small: the margin leans toward switching, never away from a
    clear winner."""
    y = np.asarray(no_purchase, dtype=float)
    if y.shape != (len(X),):
        raise ValueError(f"no_purchase has {y.size} values, X has {len(X)} rows")
    parts = [groups == g for g in pd.unique(pd.Series(groups))]
    losses: dict[str, np.ndarray] = {}
    for name in dict.fromkeys(candidates):
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
        losses[name] = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    scores = {name: float(np.mean([loss[m].mean() for m in parts])) for name, loss in losses.items()}
    first, *others = losses
    clear = [name for name in others if _paired_margin(losses[name] - losses[first], parts) > margin_se]
    return min(clear, key=scores.get) if clear else first, scores


def _paired_margin(diff: np.ndarray, parts: list[np.ndarray]) -> float:
    """How many standard errors the mean over groups of ``diff`` (a candidate's loss minus the first's, per row)
    lies below zero (0 where every difference is 0)."""
    means = np.array([diff[m].mean() for m in parts])
    var = np.array([diff[m].var(ddof=1) / m.sum() if m.sum() > 1 else 0.0 for m in parts])
    se = float(np.sqrt(var.sum())) / len(parts)
    mean = float(means.mean())
    if se == 0.0:
        return np.inf if mean < 0 else 0.0
    return -mean / se
