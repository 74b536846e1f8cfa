"""Fitting the value and churn models of a config on a stacked training set (shared by training and backtests)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tiercast.models._lgbm import DEFAULT_GRID
from tiercast.models.churn import ChurnModel
from tiercast.models.tiering import TierScheme
from tiercast.models.value import ValueModel
from tiercast.pipeline.config import Config

__all__ = ["feature_columns", "fit_models", "model_kwargs", "tier_scheme"]

LABEL_COLUMNS = ("future_value", "future_orders", "churned")
ID_COLUMNS = ("customer_id", "cutoff")


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The feature columns of a training-set frame (everything but ids and labels)."""
    return [c for c in frame.columns if c not in ID_COLUMNS and c not in LABEL_COLUMNS]


def _grid(config: Config) -> tuple[dict[str, Any], ...] | None:
    g = config.models.param_grid
    if g == "default":
        return DEFAULT_GRID
    if g == "none":
        return None
    return tuple(g)


def model_kwargs(config: Config, *, stacked: bool = True) -> dict[str, dict[str, Any]]:
    """Constructor keyword arguments of the value and churn models for a config (``{"value": ..., "churn": ...}``).

    ``stacked=False`` gives the plain GBMs (no BTYD features, offset or blend) with the same settings search.
    """
    m = config.models
    common: dict[str, Any] = {
        "n_estimators": m.n_estimators,
        "early_stopping_rounds": m.early_stopping_rounds,
        "random_state": config.seed,
        "horizon_days": config.horizon_days if stacked else None,
        "btyd": m.btyd if stacked else None,
        "blend": m.blend,
        "param_grid": _grid(config),
        "purge": m.purge,
    }
    return {"value": {"params": m.value_params, **common}, "churn": {"params": m.churn_params, **common}}


def fit_models(
    train: pd.DataFrame, validation: pd.Timestamp, config: Config, *, stacked: bool = True
) -> tuple[ValueModel, ChurnModel]:
    """Fit the value and churn models on a stacked training set (rows of ``build_training_set``), the rows of the
    ``validation`` cutoff choosing settings. The cutoff column goes in as the groups (BTYD features are fitted
    per cutoff; settings are chosen on training rows whose label windows end by the validation cutoff)."""
    features = feature_columns(train)
    is_val = (train["cutoff"] == validation).to_numpy()
    if not is_val.any() or is_val.all():
        raise ValueError(f"validation cutoff {validation} must be one of several training cutoffs")
    fit_rows, val_rows = train.loc[~is_val], train.loc[is_val]
    cols = [*features, "cutoff"]
    h = config.horizon_days
    kw = model_kwargs(config, stacked=stacked)
    common = {"label_days": h, "val_label_days": h, "val_cutoff": validation}
    value = ValueModel(**kw["value"]).fit(
        fit_rows[cols], fit_rows["future_value"], val_rows[cols], val_rows["future_value"], **common
    )
    churn = ChurnModel(**kw["churn"]).fit(
        fit_rows[cols], fit_rows["churned"], val_rows[cols], val_rows["churned"], **common
    )
    return value, churn


def tier_scheme(config: Config) -> TierScheme:
    """The (unfitted) tier scheme of a config's ``tiers:`` section."""
    t = config.tiers
    return TierScheme(
        names=t.tier_names(),
        k=t.k,
        k_max=t.k_max,
        min_share=t.min_share,
        silhouette_tolerance=t.silhouette_tolerance,
        random_state=config.seed,
    )
