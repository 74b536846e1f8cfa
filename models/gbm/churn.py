"""Churn model: LightGBM classifier of "no purchase in the horizon", with calibrated probabilities."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.utils.validation import check_is_fitted

from tiercast.models.btyd.stacker import BTYDStacker, btyd_inputs
from tiercast.models.gbm.blend import BLEND_WEIGHTS, choose_weight
from tiercast.models.gbm.lgbm import GBMFit, fit_gbm
from tiercast.models.gbm.stacked import StackedModel
from tiercast.models.levels import intercept_shift

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _platt(z: np.ndarray, y: np.ndarray) -> LogisticRegression:
    return LogisticRegression(C=1e6).fit(np.asarray(z, dtype=float).reshape(-1, 1), y)


#: Probability calibrations (with ``calibrate``): ``"platt"`` maps the whole log-odds, ``"offset"`` only the
#: trees' correction, keeping the BTYD offset of the scored horizon as it is (falls back to Platt unstacked);
#: ``"auto"``: ``"offset"`` when the validation label windows are shorter than the horizon, else ``"platt"``.
CALIBRATIONS: tuple[str, ...] = ("auto", "platt", "offset")


def _offset_platt(offset: np.ndarray, z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) maximizing the likelihood of ``logit P = offset + a * z + b`` (logistic regression with an offset)."""
    off, z, y = (np.asarray(v, dtype=float) for v in (offset, z, y))

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = off + theta[0] * z + theta[1]
        loss = float(np.sum(np.logaddexp(0.0, eta) - y * eta))
        r = expit(eta) - y
        return loss, np.array([float(r @ z), float(r.sum())])

    res = minimize(nll, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(res.x[0]), float(res.x[1])


def _bic_score(y: np.ndarray, p: np.ndarray, k: int) -> float:
    """Minus the Bayesian information criterion of probabilities p on 0/1 labels y with k free parameters
    (higher is better): ``-2 log L - k log n``.

    The blend is scored on the validation rows its calibration is fitted on, so trees that only fit their noise
    still lower the log loss a little. A parameter costs ``log(n) / 2`` units of log-likelihood (about 5 on
    20,000 rows): trees whose weight buys less leave the model the BTYD model's ranking. Measured on the synthetic
    Pareto/NBD worlds: stacked on Pareto/NBD the trees gained 3e-5 per validation row (under 1 in all), stacked on
    BG/NBD 3e-3 (about 70: they correct the misspecified base) and are kept.
    """
    n = max(len(y), 2)
    return -2.0 * log_loss(y, p, labels=[0, 1], normalize=False) - k * float(np.log(n))


def _platt_bic_score(base: np.ndarray, z: np.ndarray, y: np.ndarray, *, calibrate: bool = True) -> float:
    """:func:`_bic_score` of the log-odds ``z`` (Platt-mapped when ``calibrate``: 2 parameters), with one more
    when z is not ``base`` (the BTYD log-odds alone): the trees' blend weight."""
    z = np.asarray(z, dtype=float)
    p = _platt(z, y).predict_proba(z.reshape(-1, 1))[:, 1] if calibrate else expit(z)
    return _bic_score(y, p, (2 if calibrate else 0) + (0 if np.allclose(z, base) else 1))


def _offset_bic_score(offset: np.ndarray, trees: np.ndarray, y: np.ndarray) -> float:
    """:func:`_bic_score` of ``logit P = offset + a * trees + b`` fitted by :func:`_offset_platt`.

    "BTYD alone" (trees = 0) is the same family with a = 0, so it can never win on in-sample log loss; counting
    the free parameters (1: the intercept alone, 2: with the trees' slope) lets trees that add nothing lose.
    """
    a, b = _offset_platt(offset, trees, y)
    p = expit(np.asarray(offset, dtype=float) + a * np.asarray(trees, dtype=float) + b)
    return _bic_score(y, p, 1 if np.allclose(trees, 0.0) else 2)


def btyd_churn_attribution(
    stacker: BTYDStacker, X: pd.DataFrame, horizon_days: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The BTYD churn log-odds of each row split into (rhythm, overdue, reference): Shapley values of two inputs.

    A customer with repeat purchase days x, first-to-last span tx and tenure T is read as their usual gap
    g = tx / x, their overdue ratio o = (T - tx) / g (days since the last purchase in usual gaps) and x, the
    BTYD inputs reparametrized (tx = x g, T = x g + o g: every mix of two customers' g and o is a valid history).
    The reference is an active customer with the same x: the gap at the population's mean purchase rate (the
    fitted prior's E[lambda] = r / alpha, so g_ref = alpha / r) and on schedule (o = 1, last purchase one usual gap
    ago). "rhythm" (g vs g_ref: buys rarely) and "overdue" (o vs 1) are their exact Shapley values (4 evaluations
    per row), so rhythm + overdue + reference = the row's log-odds, and any risk above an active customer's has a
    positive part. Why not the population mean: most of a BTYD population has lapsed (P(no purchase) near 1), so a
    regular customer five usual gaps overdue is still below it and nothing would be told. x is held at the
    customer's own: at a fixed gap and overdue ratio it only sets how sure the model is of the other two, a
    direction no reader could act on. Without a repeat purchase (x = 0) the gap is undefined: the reference has
    one repeat purchase at g_ref, "rhythm" is "no repeat purchase yet" and the overdue ratio is (T - tx) / g_ref.
    Row-wise (the reference comes from the fitted BTYD parameters) and vectorised.
    """
    inputs = btyd_inputs(X)
    x, tx, T = (inputs[c].to_numpy(dtype=float) for c in ("repeat_purchase_days", "first_to_last_days", "tenure_days"))
    params = stacker.btyd_.count_model_.params_
    g_ref = float(params["alpha"]) / float(params["r"]) * float(stacker.time_unit_days)
    regular = (x > 0) & (tx > 0)
    own_tx = np.where(regular, tx, 0.0)
    gap = np.where(regular, tx / np.where(regular, x, 1.0), g_ref)
    overdue = (T - own_tx) / gap
    ref_x = np.where(regular, x, 1.0)
    ref_tx = ref_x * g_ref
    # rows of 4 states: reference, reference gap with the own overdue ratio, own gap on schedule, the customer
    states = pd.DataFrame(
        {
            "repeat_purchase_days": np.concatenate([ref_x, ref_x, x, x]),
            "first_to_last_days": np.concatenate([ref_tx, ref_tx, own_tx, tx]),
            "tenure_days": np.concatenate([ref_tx + g_ref, ref_tx + overdue * g_ref, own_tx + gap, T]),
            "repeat_spend_mean": 0.0,  # P(no purchase) does not read the spend
        }
    )
    ref, ref_gap, on_schedule, own = stacker.churn_log_odds(states, horizon_days).reshape(4, -1)
    rhythm = 0.5 * ((on_schedule - ref) + (own - ref_gap))
    late = 0.5 * ((ref_gap - ref) + (own - on_schedule))
    return rhythm, late, ref


class ChurnModel(ClassifierMixin, StackedModel):
    """Predicts the probability that a customer makes no purchase in the next horizon.

    Trees are chosen by early stopping on the validation cutoff. Probabilities are recalibrated with a logistic
    map fitted on the validation cutoff's out-of-sample scores (Platt; when stacked, of the trees' part only, see
    below), which fixes the scale (Brier, calibration curve).

    With ``horizon_days`` set (and ``btyd`` not None) the model is stacked on a BTYD model (see
    :mod:`tiercast.models.gbm.stacked`): BTYD features are added per training cutoff, the trees are boosted from the
    logit of the BTYD P(no purchase) for each row's label window, and the calibrated probability is

        logit P(churn) = logit P_BTYD(no purchase in horizon) + a * weight_ * trees(x) + b

    (``calibration="offset"``) with ``weight_`` (blend with the BTYD model) and (a, b) chosen on the
    validation cutoff by log loss. Only the trees' correction is calibrated: the BTYD offset enters with
    coefficient 1 at the horizon scored, so the horizon stays the BTYD model's job. A Platt map of the whole
    log-odds (``calibration="platt"``: ``a * (offset + weight_ * trees) + b``) fitted on a validation window
    shorter than the horizon would rescale the BTYD log-odds of a different horizon with the short window's
    slope. The offset form was kept because it is horizon-consistent by construction; on a rehearsal inside
    CDNOW's calibration period (settings on 1997-05-15 with 47-day windows, scored at 1997-07-01 for 92 days, no
    data after 1997-09-30) it matched Platt's Brier and AUC, so the structural argument decided.
    When the validation windows are as long as the horizon there is no mismatch, and the default ``"auto"`` uses
    the more flexible Platt map of the whole log-odds (with the blend weight from a grid); with shorter validation
    windows (CDNOW: 92 days for a 273-day holdout) it uses the offset form. Either way the trees are kept only
    where they beat the BTYD model alone on the validation rows by the BIC (their weight counts as a parameter):
    trees that merely fit the validation noise leave the model the BTYD model's ranking.
    Hyperparameters come from ``param_grid`` (None: only ``params``), rated by validation log loss.

    ``btyd``: ``"bgnbd"``, ``"paretonbd"`` or ``"auto"`` (Pareto/NBD unless BG/NBD's P(no purchase) has a clearly
    lower validation log loss, :func:`~tiercast.models.btyd.stacker.choose_btyd`); the model used is ``btyd_``.
    ``seasonal``: True (``"all"``), ``"alive"`` or False, see :func:`~tiercast.models.btyd.stacker.season_indices`.
    With ``btyd_level`` :meth:`fit_btyd_at` shifts the log-odds so that the mean probability over the rows it is
    given is the BTYD model's mean P(no purchase) there (``level_shift_``; see :mod:`tiercast.models.gbm.stacked`).
    """

    lgbm_class = lgb.LGBMClassifier
    binary_labels = True

    def __init__(
        self,
        params: dict[str, Any] | None = None,
        n_estimators: int = 2000,
        early_stopping_rounds: int = 50,
        random_state: int = 42,
        *,
        horizon_days: int | None = None,
        btyd: str | None = "bgnbd",
        blend: bool = True,
        param_grid: Sequence[dict[str, Any]] | None = None,
        time_unit_days: float = 7.0,
        purge: bool = True,
        seasonal: bool | str = True,
        calibrate: bool = True,
        calibration: str = "auto",
        btyd_level: bool = False,
    ) -> None:
        self.params = params
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state
        self.horizon_days = horizon_days
        self.btyd = btyd
        self.blend = blend
        self.param_grid = param_grid
        self.time_unit_days = time_unit_days
        self.purge = purge
        self.seasonal = seasonal
        self.calibrate = calibrate
        self.calibration = calibration
        self.btyd_level = btyd_level

    # size: one fit procedure (folds, settings search, blend weight, calibration) over shared validation arrays;
    # its steps are already functions of models.gbm.stacked and models.gbm.lgbm, what remains is their order
    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | pd.Series,
        X_val: pd.DataFrame | None = None,
        y_val: np.ndarray | pd.Series | None = None,
        *,
        groups: Iterable | None = None,
        label_days: float | Iterable[float] | None = None,
        val_label_days: float | Iterable[float] | None = None,
        val_cutoff: object | None = None,
        folds: list[tuple[np.ndarray | None, np.ndarray]] | None = None,
    ) -> ChurnModel:
        """Fit on stacked training cutoffs (X, y = 1 for churned); choose settings on the validation cutoff.

        ``groups``, ``label_days``, ``val_label_days``, ``val_cutoff`` and ``folds`` as in
        :meth:`tiercast.models.gbm.value.ValueModel.fit`. Labels other than 0/1 are refused, as there.
        """
        params = {"objective": "binary", **(self.params or {})}
        y_fit = self._labels(y, len(X), "y").astype(int)
        y_v = None if y_val is None else self._labels(y_val, None if X_val is None else len(X_val), "y_val").astype(int)
        train, at_label, val, val_label = self._stack_fit(
            X, X_val, groups, label_days, val_label_days, val_cutoff, folds, y=y_fit, y_val=y_v
        )
        off = v_off = None
        self.offset_mean_ = 0.0
        if self.stacker_ is not None:
            off = BTYDStacker.churn_offset(at_label)
            v_off = None if val_label is None else BTYDStacker.churn_offset(val_label)
            self.offset_mean_ = float(np.mean(off))
        # Stacked without a (time-separated) validation window: BTYD-led (weight 0, one tree), see ValueModel.
        self.btyd_led_ = self.stacker_ is not None and (val is None or y_v is None or self.overlapping_)
        fit: GBMFit = fit_gbm(
            lgb.LGBMClassifier,
            params,
            train,
            y_fit,
            val,
            y_v,
            n_estimators=1 if self.btyd_led_ else self.n_estimators,
            early_stopping_rounds=self.early_stopping_rounds,
            random_state=self.random_state,
            init_score=off,
            val_init_score=v_off,
            grid=self.param_grid,
            probe_mask=self.probe_mask_,
            folds=self.folds_,
        )
        self.model_, self.n_trees_, self.params_, self.grid_ = fit.model, fit.n_trees, fit.params, fit.grid
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        self.weight_, self.blend_scores_ = 1.0, {}
        self.calibrator_: LogisticRegression | None = None
        self.tree_calibration_: tuple[float, float] | None = None
        two_classes = y_v is not None and len(np.unique(y_v)) == 2
        self.calibration_used_ = "none"  # no validation scores to calibrate on
        if self.btyd_led_:
            self.weight_ = 0.0  # the BTYD model's probabilities as they are (see ValueModel)
        elif fit.val_raw is not None and two_classes:
            base = np.zeros(len(y_v)) if v_off is None else v_off
            form = self.calibration
            if form == "auto":
                short = self.horizon_days is not None and val_label_days is not None
                short = short and float(np.max(np.asarray(val_label_days, dtype=float))) < float(self.horizon_days)
                form = "offset" if short else "platt"
            self.calibration_used_ = form
            on_trees = self.calibrate and form == "offset" and self.stacker_ is not None
            if self.stacker_ is not None and self.blend:

                def score(z: np.ndarray) -> float:
                    if on_trees:
                        return _offset_bic_score(base, z - base, y_v)
                    return _platt_bic_score(base, z, y_v, calibrate=self.calibrate)

                # with the offset form the fitted slope a absorbs any weight > 0: only "BTYD alone" (0) vs
                # "BTYD + calibrated trees" (1) differ
                weights = (0.0, 1.0) if on_trees else BLEND_WEIGHTS
                self.weight_, self.blend_scores_ = choose_weight(score, base, fit.val_raw, weights)
            if on_trees:
                self.tree_calibration_ = _offset_platt(base, self.weight_ * fit.val_raw, y_v)
            elif self.calibrate:
                self.calibrator_ = _platt(base + self.weight_ * fit.val_raw, y_v)
        self.classes_ = np.array([0, 1])
        return self

    @staticmethod
    def btyd_offset(at_label: pd.DataFrame) -> np.ndarray:
        return BTYDStacker.churn_offset(at_label)

    @staticmethod
    def no_purchase(y: np.ndarray) -> np.ndarray:  # no purchase: the churn label
        return (np.asarray(y, dtype=float) == 1).astype(float)

    @staticmethod
    def training_target(y: np.ndarray | pd.Series) -> np.ndarray:
        return np.asarray(y, dtype=int)

    def _tree_map(self) -> tuple[float, float]:
        """(slope, intercept) of the offset-relative calibration of the trees; (1, 0) without it."""
        tc = getattr(self, "tree_calibration_", None)
        return (1.0, 0.0) if tc is None else tc

    def decision_function(self, X: pd.DataFrame, horizon_days: float | None = None) -> np.ndarray:
        """Log-odds of churning before any Platt map: BTYD offset + weight_ * trees (just the trees when not
        stacked), with the trees' part calibrated when ``calibration="offset"``; ``horizon_days`` as in
        :meth:`predict_proba`."""
        if self._check_rows(X, horizon_days):
            return np.empty(0)
        raw = np.asarray(self.model_.predict(self.transform(X), raw_score=True), dtype=float)
        if self.stacker_ is None:
            return raw
        a, b = self._tree_map()
        return BTYDStacker.churn_offset(self._horizon_btyd(X, horizon_days)) + a * self.weight_ * raw + b

    def predict_proba(self, X: pd.DataFrame, horizon_days: float | None = None) -> np.ndarray:
        """Columns: P(stays), P(churns); no rows for an empty X. ``horizon_days`` overrides the trained horizon when
        stacked; with seasonal levels in the BTYD part (``stacker_.season_level_``) only their horizons and the
        trained one (another raises a ValueError: it would get the plain BTYD level, and a longer horizon could
        forecast more churn)."""
        z = self.decision_function(X, horizon_days)
        if self.calibrator_ is not None:
            z = float(self.calibrator_.coef_[0, 0]) * z + float(self.calibrator_.intercept_[0])
        p = expit(z + getattr(self, "level_shift_", 0.0))
        return np.column_stack([1.0 - p, p])

    def btyd_level_shift(self, X: pd.DataFrame) -> float:
        """The log-odds shift putting the mean churn probability on X (the scored rows) on the BTYD model's mean
        P(no purchase): the level is the BTYD model's, the ranking the trees'."""
        self.level_shift_ = 0.0
        target = self._horizon_btyd(X, None)["btyd_p_no_purchase"].to_numpy(dtype=float)
        shift = intercept_shift(_logit(self.predict_proba(X)[:, 1]), target)
        return 0.0 if shift is None else shift

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """Per-feature contributions to the log-odds of churning, columns ``feature_names_in_`` then the bias.

        The trees' TreeSHAP contributions; when stacked they are scaled by the blend weight and the Platt slope,
        and the BTYD offset is split by :func:`btyd_churn_attribution` against an active reference customer: the
        rhythm part goes to ``gap_mean_days`` and the overdue part to ``recency_days`` (or ``overdue_ratio``),
        each to ``btyd_p_no_purchase`` without that column. The bias holds the rest, so each row sums to the
        calibrated log-odds.
        """
        check_is_fitted(self, "model_")
        contrib = np.asarray(self.model_.predict(self.transform(X), pred_contrib=True), dtype=float)
        if self.stacker_ is None:
            return contrib
        a, b = 1.0, 0.0
        if self.calibrator_ is not None:
            a, b = float(self.calibrator_.coef_[0, 0]), float(self.calibrator_.intercept_[0])
        ta, tb = self._tree_map()
        contrib = contrib * (a * ta * self.weight_)
        # the BTYD log-odds are the attribution's parts plus its reference (Shapley values add up): no other pass
        rhythm, late, ref = btyd_churn_attribution(self.stacker_, X, float(self.horizon_days))
        names = list(self.feature_names_in_)

        def column(*candidates: str) -> int:
            return names.index(next((c for c in candidates if c in names), "btyd_p_no_purchase"))

        contrib[:, column("gap_mean_days")] += a * rhythm
        contrib[:, column("recency_days", "overdue_ratio")] += a * late
        contrib[:, -1] += a * (ref + tb) + b + getattr(self, "level_shift_", 0.0)
        return contrib
