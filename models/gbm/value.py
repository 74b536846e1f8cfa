"""Future value model: LightGBM regression of net spend over the horizon, optionally stacked on a BTYD model."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_is_fitted

from tiercast.models.btyd.stacker import BTYDStacker, val_groups
from tiercast.models.btyd.value_choice import choose_value_btyd
from tiercast.models.evaluation import normalized_gini
from tiercast.models.gbm.blend import BLEND_WEIGHTS, choose_weight, gain_over_btyd
from tiercast.models.gbm.lgbm import GBMFit, fit_gbm
from tiercast.models.gbm.stacked import StackedModel
from tiercast.models.levels import level_factor


def _gini_or_nan(y: np.ndarray, pred: np.ndarray) -> float:
    try:
        return normalized_gini(y, pred)
    except ValueError:  # constant labels (e.g. nobody bought): no ranking to judge
        return float("nan")


class ValueModel(RegressorMixin, StackedModel):
    """Predicts net spend in the next horizon with a Tweedie objective.

    Spend is zero for most customers and heavy-tailed for the rest; a Tweedie loss (compound Poisson-Gamma) models
    both at once and its log link keeps predictions positive and their sum close to the realized total. Net spend
    below zero (refunds exceeding purchases) is clipped to zero for fitting, since the loss is defined on y >= 0.

    With ``horizon_days`` set (and ``btyd`` not None) the model is stacked on a BTYD model (see
    :mod:`tiercast.models.gbm.stacked`): BTYD features are added per training cutoff, the trees are boosted from log
    of the BTYD expected spend for each row's label window, and the prediction is

        log E[spend] = log BTYD(horizon) + weight_ * trees(x) + intercept_

    with ``weight_`` (blend with the BTYD model, maximizing validation normalized Gini) chosen on the validation
    cutoff, and ``intercept_`` restoring the level the unshrunk trees give there. The trees are dropped (weight 0,
    the BTYD model's ranking) unless the paired-bootstrap interval of their validation nGini gain lies above 0
    (``blend_gain_``, :func:`~tiercast.models.gbm.blend.gain_over_btyd`): on small data a weight chosen on a
    grid over the same rows is mostly noise. Hyperparameters
    come from ``param_grid`` (None: only ``params``), each candidate early-stopped on the validation cutoff and
    rated by its validation normalized Gini. Without ``horizon_days`` it is a plain GBM on the given features.

    ``btyd``: ``"bgnbd"``, ``"paretonbd"`` or ``"auto"`` (Pareto/NBD unless BG/NBD ranks the validation rows' spend
    better by a paired-bootstrap interval above 0, :func:`~tiercast.models.btyd.value_choice.choose_value_btyd`);
    the model used is ``btyd_``, each candidate's validation nGini ``btyd_scores_``.
    ``seasonal``: True (``"all"``), ``"alive"`` or False, see :func:`~tiercast.models.btyd.stacker.season_indices`.
    ``spend``: the purchase days the BTYD spend model reads, ``"repeat"``, ``"all"`` or ``"auto"`` (every purchase
    day where it ranks the validation rows' value better, :func:`~tiercast.models.btyd.value_choice.choose_spend`); the
    one used is ``spend_``, the comparison ``spend_gain_``.
    With ``btyd_level`` :meth:`fit_btyd_at` puts the total over the rows it is given on the BTYD model's total
    there (``level_shift_``; see :mod:`tiercast.models.gbm.stacked`).
    """

    lgbm_class = lgb.LGBMRegressor

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
        btyd_level: bool = False,
        spend: str = "auto",
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
        self.btyd_level = btyd_level
        self.spend = spend

    # size: one fit procedure (folds, settings search, blend weight, level) over shared validation arrays; its
    # steps are already functions of models.gbm.stacked and models.gbm.lgbm, what remains is their order
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
    ) -> ValueModel:
        """Fit on stacked training cutoffs (X, y); choose settings on the validation cutoff (X_val, y_val).

        ``groups`` names each training row's cutoff (default: X's ``cutoff`` column, else one cutoff); BTYD
        features are fitted per cutoff. ``label_days`` / ``val_label_days``: length of the label windows (scalar
        or per row; default ``horizon_days``) when they differ from the horizon predicted. Settings are chosen
        with trees fitted only on training rows whose label windows end by ``val_cutoff`` (default: X_val's
        ``cutoff`` column) when ``purge`` is on and the cutoffs are dates (see
        :func:`tiercast.models.gbm.stacked.purge_mask`); the final trees use every row. X_val with several cutoffs
        gives one rolling-origin fold per cutoff (scores averaged); ``folds`` sets them explicitly as pairs of
        (training rows of the fold's probe fits or None for all, the fold's validation rows). An empty X, or labels
        not finite or not one per row of X (X_val), are refused with a ValueError before anything is fitted.
        """
        params = {"objective": "tweedie", "tweedie_variance_power": 1.3, **(self.params or {})}
        y_fit = np.clip(self._labels(y, len(X), "y"), 0.0, None)
        y_v = None if y_val is None else self._labels(y_val, None if X_val is None else len(X_val), "y_val")
        y_v = None if y_v is None else np.clip(y_v, 0.0, None)
        train, at_label, val, val_label = self._stack_fit(
            X, X_val, groups, label_days, val_label_days, val_cutoff, folds, y=y_fit, y_val=y_v
        )
        off = v_off = None
        if self.stacker_ is not None:
            off = BTYDStacker.value_offset(at_label)
            v_off = None if val_label is None else BTYDStacker.value_offset(val_label)
            self.offset_mean_ = float(np.mean(off))
        else:
            self.offset_mean_ = 0.0

        def score(yv: np.ndarray, raw: np.ndarray, init: np.ndarray | None) -> float:
            return _gini_or_nan(yv, raw if init is None else raw + init)

        # Stacked without a validation window (one training label window), or with one whose outcomes the training
        # label windows overlap (overlaps_validation): nothing can show that trees beat the BTYD model, so the
        # model is the BTYD model (weight 0); one tree keeps the input layout.
        self.btyd_led_ = self.stacker_ is not None and (val is None or y_v is None or self.overlapping_)
        fit: GBMFit = fit_gbm(
            lgb.LGBMRegressor,
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
            score=score if self.param_grid else None,
        )
        self.model_, self.n_trees_, self.params_, self.grid_ = fit.model, fit.n_trees, fit.params, fit.grid
        self.weight_, self.intercept_, self.blend_scores_ = 1.0, 0.0, {}
        self.blend_gain_: dict[str, float] | None = None
        if self.btyd_led_:
            # the BTYD model as it is: one label window's level is a season's, not the next window's (measured on
            # Online Retail II: a level fitted on January-April missed April-July by +36%, BTYD alone by -2%)
            self.weight_ = 0.0
        elif self.stacker_ is not None and fit.val_raw is not None and y_v is not None:
            if self.blend:
                cuts = val_groups(X_val)
                parts = [np.ones(len(y_v), dtype=bool)] if cuts is None else [cuts == c for c in np.unique(cuts)]

                def blend_score(z: np.ndarray) -> float:  # mean normalized Gini over the validation cutoffs
                    return float(np.mean([np.nan_to_num(_gini_or_nan(y_v[m], z[m]), nan=-np.inf) for m in parts]))

                self.weight_, self.blend_scores_ = choose_weight(blend_score, v_off, fit.val_raw, BLEND_WEIGHTS)
                if self.weight_ > 0:
                    # keep the trees only where their gain on the validation rows is more than noise
                    try:
                        self.blend_gain_ = gain_over_btyd(
                            normalized_gini, y_v, v_off, fit.val_raw, self.weight_, seed=self.random_state
                        )
                    except ValueError:  # nGini undefined on every resample (nobody bought): no evidence
                        self.blend_gain_ = None
                    if self.blend_gain_ is None or not self.blend_gain_["lo"] > 0:
                        self.weight_ = 0.0
            # shrinking the trees moves the level: restore the unshrunk model's validation total
            full = float(np.exp(v_off + fit.val_raw).sum())
            shrunk = float(np.exp(v_off + self.weight_ * fit.val_raw).sum())
            if full > 0 and shrunk > 0:
                self.intercept_ = float(np.log(full / shrunk))
        return self

    def _choose_btyd(
        self, X: pd.DataFrame, y: np.ndarray, groups: np.ndarray, label_days: np.ndarray, **kw: Any
    ) -> tuple[str, dict[str, float]]:
        """``btyd="auto"``: the count model that ranks the labelled rows' spend best, each candidate's nGini
        (:func:`~tiercast.models.btyd.value_choice.choose_value_btyd`)."""
        return choose_value_btyd(X, y, groups, label_days=label_days, seed=self.random_state, **kw)

    @staticmethod
    def btyd_offset(at_label: pd.DataFrame) -> np.ndarray:
        return BTYDStacker.value_offset(at_label)

    @staticmethod
    def no_purchase(y: np.ndarray) -> np.ndarray:  # no purchase: no positive net spend in the label window
        return (np.asarray(y, dtype=float) <= 0).astype(float)

    @staticmethod
    def training_target(y: np.ndarray | pd.Series) -> np.ndarray:
        return np.clip(np.asarray(y, dtype=float), 0.0, None)

    def _link(self, X: pd.DataFrame, horizon_days: float | None) -> np.ndarray:
        if self._check_rows(X, horizon_days):
            return np.empty(0)
        raw = np.asarray(self.model_.predict(self.transform(X), raw_score=True), dtype=float)
        if self.stacker_ is None:
            return raw
        off = BTYDStacker.value_offset(self._horizon_btyd(X, horizon_days))
        return off + self.weight_ * raw + self.intercept_ + getattr(self, "level_shift_", 0.0)

    def btyd_level_shift(self, X: pd.DataFrame) -> float:
        """log of the BTYD model's total over the model's total on X (the scored rows): the level is the BTYD
        model's, the ranking the trees'."""
        level = level_factor(self._horizon_btyd(X, None)["btyd_expected_value"].to_numpy(), self.predict(X))
        return 0.0 if level is None else float(np.log(level))

    def predict(self, X: pd.DataFrame, horizon_days: float | None = None) -> np.ndarray:
        """Expected net spend in the horizon, one per row of X (an empty array for no rows).

        ``horizon_days`` overrides the trained horizon when stacked: the BTYD offset carries the horizon, the trees
        the correction. When the BTYD part holds seasonal levels (``stacker_.season_level_``), only their horizons
        and the trained one can be asked (another raises a ValueError): a horizon without a level would get the
        plain BTYD model's, and a longer horizon could forecast less spend."""
        return np.exp(self._link(X, horizon_days))

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """Per-feature contributions to log predicted value, columns ``feature_names_in_`` then the bias.

        The trees' TreeSHAP contributions (scaled by the blend weight); when stacked, the BTYD offset's deviation
        from its training mean is added to ``btyd_expected_value``, and the bias holds the rest, so each row sums
        to log of its prediction.
        """
        check_is_fitted(self, "model_")
        contrib = np.asarray(self.model_.predict(self.transform(X), pred_contrib=True), dtype=float)
        if self.stacker_ is None:
            return contrib
        contrib = contrib * self.weight_
        off = BTYDStacker.value_offset(self._horizon_btyd(X, None))
        contrib[:, list(self.feature_names_in_).index("btyd_expected_value")] += off - self.offset_mean_
        contrib[:, -1] += self.offset_mean_ + self.intercept_ + getattr(self, "level_shift_", 0.0)
        return contrib
