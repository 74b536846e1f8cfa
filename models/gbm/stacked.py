"""Buy-till-you-die (BTYD) outputs stacked into the gradient-boosted models, and the blend of the two.

A plain GBM on RFM windows does not automatically beat a BG/NBD or Pareto/NBD x Gamma-Gamma fit. The value and
churn models therefore learn a *correction* to a BTYD prediction:

* **derived features**: at every cutoff a BTYD model is fitted on that cutoff's feature rows alone (repeat
  purchase days, recency, age and repeat spend are features already; labels are never used), and its per-customer
  outputs (:data:`~tiercast.models.btyd.stacker.BTYD_FEATURES`, :mod:`tiercast.models.btyd.stacker`) join the
  GBM's inputs. No row sees a BTYD fit of another cutoff, so nothing
  leaks from the future;
* **offset**: the GBM is boosted from the BTYD prediction for the row's own label window (log expected spend for
  value, logit P(no purchase) for churn) instead of from a constant. The BTYD model carries the horizon, so a
  GBM trained on label windows shorter than the scoring horizon (CDNOW: nothing of the 39-week holdout may be
  used, so no 39-week label exists before it) still predicts the scoring horizon's level, and the trees only
  learn what the BTYD model gets wrong;
* **blend**: the correction is shrunk, ``link(prediction) = offset + w * trees`` with ``w`` in [0, 1] chosen on
  the validation cutoff (w = 0 is the BTYD model, w = 1 the full GBM);
* **level** (``btyd_level``; on in the default config, off in the estimator): when the BTYD part is fitted at the
  scoring cutoff (:meth:`StackedModel.fit_btyd_at`) the predictions' level on the scored rows (total spend, mean
  churn probability) is set to the BTYD model's there: the trees and the calibration give the ranking, the BTYD model,
  reading the newest history, the level. A level learned on past label windows carries their season to the next
  one (Online Retail II, calibrated on February-May: mean churn probability of May-August 0.43 against 0.50
  realized, BG/NBD's 0.50);
* **base**: Pareto/NBD or BG/NBD; ``btyd="auto"`` takes Pareto/NBD unless BG/NBD's P(no purchase in the label
  window) has a clearly lower log loss on the validation cutoffs (:func:`choose_btyd`; label-free fits scored on
  the labels); the value model's spend model reads every purchase day where that ranks the validation cutoffs'
  spend better, else repeat days only (:func:`~tiercast.models.btyd.value_choice.choose_spend`).

Settings (hyperparameters, tree count, blend weight, calibration) are chosen on the validation cutoff with trees
fitted only on training cutoffs whose label windows end by it (:func:`purge_mask`); with several validation
cutoffs, one such rolling-origin fold per cutoff and the scores averaged over them (one validation window is a
coin toss on small data). The final trees are refitted on every row (and :meth:`StackedModel.refit` can refit them
on longer label windows with the same settings).

For prediction the BTYD parameters of the latest training cutoff are stored in the estimator, so scoring is
row-wise (a customer scored alone gets the same result as among others); :meth:`StackedModel.fit_btyd_at` refits
them on the feature rows of the cutoff scored (BTYD needs no labels, so the model that scores reads the newest
history). Without a validation cutoff (one training label window), or when no training label window ends by
the validation cutoff (:func:`overlaps_validation`), the models are the BTYD model itself."""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from tiercast.features.contract import CUTOFF, ID_COLUMNS, YEAR_AGO_COLUMNS
from tiercast.models.btyd.seasons import season_method, season_scale
from tiercast.models.btyd.stacker import (
    BTYD_FEATURES,
    BTYDStacker,
    choose_btyd,
    fit_stacker,
    groups_of,
    per_row_days,
    stacked_btyd,
    val_groups,
)
from tiercast.models.btyd.value_choice import DEFAULT_SPEND, choose_spend


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
    keep = None if val_cutoff is None else _ended_by(groups, label_days, val_cutoff)
    if keep is None:
        return None
    if not keep.any():
        warnings.warn(
            f"no training label window ends by the validation cutoff {pd.Timestamp(val_cutoff).date()}: the models "
            "are the BTYD model alone (a validation overlapping the training label windows cannot show that trees "
            "help); more history before it or a shorter horizon gives the trees one",
            PurgeWarning,
            stacklevel=2,
        )
    return keep if keep.any() and not keep.all() else None


def overlaps_validation(groups: np.ndarray, label_days: np.ndarray | None, val_cutoffs: Iterable[object]) -> bool:
    """Whether some validation cutoff has no training row whose label window ends by it (dated cutoffs and known
    label lengths only). Trees fitted on label windows overlapping the validation window have seen its outcomes,
    so the validation cannot tell a correction that generalizes from one that remembers: measured on a
    600-customer world with a 365-day horizon, trees kept on such a validation cost 0.02 churn AUC at the next
    test cutoffs."""
    masks = (_ended_by(groups, label_days, v) for v in val_cutoffs)
    return any(m is not None and not m.any() for m in masks)


def _ended_by(groups: np.ndarray, label_days: np.ndarray | None, cutoff: object) -> np.ndarray | None:
    """Rows whose label window ``[cutoff of the row, + label_days)`` ends by ``cutoff``; None when the cutoffs are
    not dates or the label lengths are unknown."""
    if label_days is None or not np.issubdtype(np.asarray(groups).dtype, np.datetime64):
        return None
    ends = pd.to_datetime(groups) + pd.to_timedelta(np.asarray(label_days, dtype=float), unit="D")
    return np.asarray(ends <= pd.Timestamp(cutoff))


class StackedModel(BaseEstimator, ABC):
    """What the value and churn models share: input columns, the BTYD-derived columns and offsets, the settings
    chosen on validation cutoffs, refits on other label windows and the BTYD refit at a scoring cutoff.

    A concrete model states its LightGBM estimator (:attr:`lgbm_class`) and implements the four methods below:
    the offset its trees are boosted from, the target they are trained on, which labels mean no purchase, and the
    level shift that puts its predictions on the BTYD model's level (``btyd_level``).
    """

    horizon_days: int | None
    btyd: str | None
    time_unit_days: float
    purge: bool
    #: The LightGBM estimator class of the trees (a regressor or a classifier).
    lgbm_class: ClassVar[type]
    #: Whether the labels are classes 0/1 (churn) rather than amounts (value).
    binary_labels: ClassVar[bool] = False

    @property
    def stacked(self) -> bool:
        return self.horizon_days is not None and self.btyd is not None

    @staticmethod
    @abstractmethod
    def btyd_offset(at_label: pd.DataFrame) -> np.ndarray:
        """The link-scale start of the trees for rows with these BTYD predictions for their label windows."""

    @staticmethod
    @abstractmethod
    def training_target(y: np.ndarray | pd.Series) -> np.ndarray:
        """The labels as the trees are trained on them."""

    @staticmethod
    @abstractmethod
    def no_purchase(y: np.ndarray) -> np.ndarray:
        """1.0 where the labels mean no purchase in the label window (to score the BTYD models on them)."""

    @abstractmethod
    def btyd_level_shift(self, X: pd.DataFrame) -> float:
        """The link-scale shift that puts the predictions' level on X on the BTYD model's there."""

    def _choose_btyd(
        self, X: pd.DataFrame, y: np.ndarray, groups: np.ndarray, label_days: np.ndarray, **kw: Any
    ) -> tuple[str, dict[str, float]]:
        """``btyd="auto"``: the BTYD model chosen on labelled rows and each candidate's score
        (:func:`choose_btyd`, the log loss of P(no purchase))."""
        return choose_btyd(X, self.no_purchase(y), groups, label_days=label_days, **kw)

    def _btyd_model(self) -> str:
        """The BTYD model in use (``btyd_`` once fitted; models saved before ``"auto"`` existed have ``btyd``)."""
        return getattr(self, "btyd_", self.btyd)

    def _labels(self, y: object, n: int | None, name: str) -> np.ndarray:
        """``y`` as floats, checked: one per row (``n``, None: unchecked) of a non-empty X, finite, and 0/1 with
        ``binary_labels`` (NaN from a label merge that missed customers would otherwise be trained on silently)."""
        rows = "X_val" if name == "y_val" else "X"
        if n == 0 and rows == "X":
            raise ValueError("X has 0 rows: fitting needs feature rows")
        v = np.asarray(y, dtype=float).ravel()
        if n is not None and len(v) != n:
            raise ValueError(f"{name} has {len(v)} values, {rows} has {n} rows")
        bad, what = ~np.isfinite(v), "missing or infinite"
        if self.binary_labels and not bad.any():
            bad, what = ~np.isin(v, (0.0, 1.0)), "other than 0/1 (1 = churned)"
        if bad.any():
            raise ValueError(f"{name} has {int(bad.sum())} of {len(v)} labels {what}, e.g. {v[bad][0]:g}")
        return v

    def _inputs(self, X: pd.DataFrame) -> list[str]:
        # the year-ago summary sets the BTYD model's seasonal level (the stacker reads it from X), not a tree input
        cols = [c for c in X.columns if c not in ID_COLUMNS and c not in YEAR_AGO_COLUMNS]
        bad = [c for c in cols if not pd.api.types.is_numeric_dtype(X[c])]
        if bad:
            raise ValueError(f"non-numeric feature columns {bad}")
        clash = [c for c in cols if c in BTYD_FEATURES]
        if clash and self.stacked:
            raise ValueError(f"input columns {clash} clash with the derived BTYD features")
        return cols

    def _features(self, X: pd.DataFrame) -> pd.DataFrame:
        """X's input columns as float64 (the same values): LightGBM refuses Arrow-backed floats."""
        return X[self.input_features_].astype("float64")

    # size: derives the inputs, the BTYD choice, the purge mask and the folds that fit() needs in one pass over
    # the same rows; split, each part would recompute the groups and label days the others use
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
        ``probe_mask_`` (see :func:`purge_mask`), ``overlapping_`` (:func:`overlaps_validation`) and ``btyd_``
        (the BTYD model used: ``btyd``, or with
        ``"auto"`` the one :func:`choose_btyd` picks on the validation rows, or without them on the latest
        training cutoff's rows)."""
        self.input_features_ = self._inputs(X)
        self.stacker_: BTYDStacker | None = None
        self.level_shift_ = 0.0  # set by fit_btyd_at (btyd_level)
        h = float(self.horizon_days) if self.horizon_days is not None else None
        g = groups_of(X, groups)
        days = per_row_days(label_days, len(X), h) if h is not None or label_days is not None else None
        self.btyd_, self.btyd_scores_ = self.btyd, {}
        # the spend convention of the BTYD part: a value model's "auto" chooses it on the rows that choose the BTYD
        # model (choose_spend); the churn model's offset, P(no purchase), does not read spend
        spend = getattr(self, "spend", DEFAULT_SPEND)
        self.spend_, self.spend_gain_ = (DEFAULT_SPEND if spend == "auto" else spend), {}
        # the seasonal scale reads feature rows only (label-free): every cutoff counts, the validation ones too
        method, rows, rg = season_method(getattr(self, "seasonal", True)), X, g
        if method in ("year", "last_year") and X_val is not None and len(X_val):  # no copy where nothing is scaled
            rows, rg = pd.concat([X, X_val]), np.concatenate([g, groups_of(X_val, None)])
        self.season_scale_ = season_scale(rows, rg, method)
        if self.stacked and (self.btyd == "auto" or spend == "auto"):
            if X_val is not None and len(X_val) and y_val is not None:
                rows, labels, rg = X_val, y_val, groups_of(X_val, None)
                rdays = per_row_days(val_label_days, len(X_val), h)
            else:
                latest = g == max(pd.unique(pd.Series(g)))
                rows, labels, rg, rdays = X.loc[latest], np.asarray(y)[latest], g[latest], days[latest]
            kw = {"time_unit_days": self.time_unit_days, "seasonal": getattr(self, "seasonal", True)}
            kw["season_scale"] = self.season_scale_
            if self.btyd == "auto":
                self.btyd_, self.btyd_scores_ = self._choose_btyd(rows, np.asarray(labels), rg, rdays, **kw)
            if spend == "auto":
                self.spend_, self.spend_gain_ = choose_spend(
                    rows, np.asarray(labels), rg, model=self.btyd_, label_days=rdays, seed=self.random_state, **kw
                )
        val_cuts = val_groups(X_val)
        if val_cutoff is None and val_cuts is not None and len(np.unique(val_cuts)) == 1:
            val_cutoff = val_cuts[0]
        self.probe_mask_ = purge_mask(g, days, val_cutoff) if self.purge else None
        checked = [] if val_cuts is None else list(np.unique(val_cuts))  # every fold's cutoff, and the given one
        if val_cutoff is not None:
            checked.append(val_cutoff)
        self.overlapping_ = bool(self.purge and overlaps_validation(g, days, checked))
        # several validation cutoffs: one rolling-origin fold each, its trees fitted on rows whose label windows
        # end by that cutoff
        self.folds_ = folds
        if folds is None and val_cuts is not None and len(np.unique(val_cuts)) > 1:
            self.folds_ = [(purge_mask(g, days, v) if self.purge else None, val_cuts == v) for v in np.unique(val_cuts)]
        if not self.stacked:
            self.feature_names_in_ = np.asarray(self.input_features_, dtype=object)
            self.n_features_in_ = len(self.feature_names_in_)
            return self._features(X), None, None if X_val is None else self._features(X_val), None
        kw = {"model": self.btyd_, "time_unit_days": self.time_unit_days, "feature_horizon_days": h}
        kw["seasonal"] = getattr(self, "seasonal", True)
        kw["season_scale"], kw["spend"] = self.season_scale_, self.spend_
        feats, at_label, stacker = stacked_btyd(X, g, label_days=days, **kw)
        train = pd.concat([self._features(X), feats], axis=1)
        val = val_label = None
        if X_val is not None and len(X_val):
            g_val = groups_of(X_val, None)  # the validation cutoff: one group unless X_val says otherwise
            days = per_row_days(val_label_days, len(X_val), h)
            v_feats, val_label, stacker = stacked_btyd(X_val, g_val, label_days=days, **kw)
            val = pd.concat([self._features(X_val), v_feats], axis=1)
        self.stacker_ = stacker
        self.feature_names_in_ = np.asarray([*self.input_features_, *BTYD_FEATURES], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return train, at_label, val, val_label

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model's input frame for feature rows: the input features plus, when stacked, the derived BTYD
        features (columns = ``feature_names_in_``), row-aligned with X. Reason texts are built from it."""
        self._check_rows(X)
        base = self._features(X)
        if self.stacker_ is None:
            return base
        return pd.concat([base, self.stacker_.transform(X, float(self.horizon_days))], axis=1)

    def _check_rows(self, X: pd.DataFrame, horizon_days: float | None = None) -> bool:
        """Check the model is fitted, X has its columns and ``horizon_days`` (an override, or None) can be asked
        (with seasonal levels in the BTYD part: one of their horizons or the trained one; another would get the plain
        BTYD level, so a longer horizon could forecast less); True when X has no rows (LightGBM refuses those)."""
        check_is_fitted(self, "model_")
        missing = [c for c in self.input_features_ if c not in X.columns]
        if missing:
            raise ValueError(f"feature rows lack columns {missing}")
        if horizon_days is not None and self.stacker_ is not None:
            trained, stored = round(float(self.horizon_days)), self.stacker_.level_horizons()
            if stored and round(float(horizon_days)) not in (ok := sorted({*stored, trained})):
                msg = f"horizon_days={float(horizon_days):g} has no seasonal level: ask one of {ok} days (the trained"
                raise ValueError(f"{msg} {trained} included), or fit with seasonal=False")
        return len(X) == 0

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
    ) -> StackedModel:
        """Refit the trees on (X, y) with the settings ``fit`` chose on the validation cutoff (parameters, tree
        count, blend weight, calibration), e.g. on longer label windows than the time-separated choice allowed.
        BTYD features are refitted per cutoff of X and the latest cutoff's fit is kept for prediction."""
        check_is_fitted(self, "model_")
        if list(self._inputs(X)) != list(self.input_features_):
            raise ValueError("refit needs the same feature columns as fit")
        inputs, init = self._features(X), None
        self.level_shift_ = 0.0  # the BTYD part is refitted: fit_btyd_at sets the level again
        if self.stacked:
            h = float(self.horizon_days)
            g = groups_of(X, groups)
            self.season_scale_ = season_scale(X, g, season_method(getattr(self, "seasonal", True)))
            feats, at_label, self.stacker_ = stacked_btyd(
                X,
                g,
                model=self._btyd_model(),
                time_unit_days=self.time_unit_days,
                seasonal=getattr(self, "seasonal", True),
                season_scale=self.season_scale_,
                feature_horizon_days=h,
                label_days=per_row_days(label_days, len(X), h),
                spend=getattr(self, "spend_", DEFAULT_SPEND),
            )
            inputs = pd.concat([inputs, feats], axis=1)
            init = self.btyd_offset(at_label)
            self.offset_mean_ = float(np.mean(init))
        cls = self.lgbm_class
        self.model_ = cls(n_estimators=self.n_trees_, **self.params_).fit(
            inputs, self.training_target(self._labels(y, len(X), "y")), init_score=init
        )
        return self

    def fit_btyd_at(self, X: pd.DataFrame) -> StackedModel:
        """Refit the BTYD part used for prediction on the feature rows of one cutoff (e.g. the data end: BTYD
        needs no labels, so the model that scores reads the newest history). The trees are unchanged. With
        ``btyd_level`` the level of the predictions on X (total spend, mean churn probability) is then put on the
        BTYD model's there (``level_shift_``, one stored constant: scoring stays row-wise). Rows of several cutoffs
        (a ``cutoff`` column) are refused: every customer would enter the BTYD fit once per cutoff."""
        check_is_fitted(self, "model_")
        if CUTOFF in X.columns and (n := X[CUTOFF].nunique()) > 1:
            raise ValueError(f"fit_btyd_at got rows of {n} cutoffs ({CUTOFF} column): pass the rows of one cutoff")
        if self.stacked:
            self.stacker_ = fit_stacker(
                X,
                model=self._btyd_model(),
                time_unit_days=self.time_unit_days,
                seasonal=getattr(self, "seasonal", True),
                season_scale=getattr(self, "season_scale_", None),
                spend=getattr(self, "spend_", DEFAULT_SPEND),
            )
            self.level_shift_ = 0.0
            if getattr(self, "btyd_level", False):
                self.level_shift_ = self.btyd_level_shift(X)
        return self

    @property
    def feature_importances_(self) -> np.ndarray:
        """Total gain per feature of ``feature_names_in_``."""
        check_is_fitted(self, "model_")
        return self.model_.booster_.feature_importance("gain")
