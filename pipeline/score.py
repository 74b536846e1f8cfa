"""Batch scoring with a registered pyfunc, and the at-risk list for retention teams."""

from __future__ import annotations

import re
from collections.abc import Sequence

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from tiercast.features.build import build_features
from tiercast.models.scorer import SCORE_COLUMNS

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


def resolve_model_version(model_uri: str) -> tuple[str, str]:
    """(registered name, version) of a ``models:/name/N`` or ``models:/name@alias`` URI."""
    m = _MODELS_URI.match(model_uri)
    if not m:
        raise ValueError(f"not a registered-model URI (models:/NAME/VERSION or models:/NAME@ALIAS): {model_uri}")
    if m["version"]:
        return m["name"], m["version"]
    mv = MlflowClient().get_model_version_by_alias(m["name"], m["alias"])
    return m["name"], str(mv.version)


def score_frame(model: mlflow.pyfunc.PyFuncModel, features: pd.DataFrame, *, chunk_size: int) -> pd.DataFrame:
    """Score feature rows chunk by chunk (bounded memory for the model step); row-aligned with ``features``."""
    parts = [
        model.predict(features.iloc[start : start + chunk_size]) for start in range(0, len(features), chunk_size)
    ]
    if not parts:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    return pd.concat(parts)


def score_customers(
    tx: pd.DataFrame,
    *,
    model_uri: str,
    cutoff: pd.Timestamp,
    windows_days: Sequence[int],
    horizon_days: int,
    chunk_size: int = 200_000,
) -> pd.DataFrame:
    """Features at ``cutoff`` for every customer with history, scored by the model; stamped with model and cutoff.

    ``current_value`` (realized net spend over the last horizon, which sets the current tier) is kept beside the
    scores so tier revenue can be reported without recomputing features.
    """
    name, version = resolve_model_version(model_uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    features = build_features(tx, cutoff=cutoff, windows_days=tuple(windows_days), horizon_days=horizon_days)
    scores = score_frame(model, features.reset_index(drop=True), chunk_size=chunk_size)
    current_col = model.unwrap_python_model().scorer.current_value_column
    ids = features[["customer_id"]].reset_index(drop=True)
    out = pd.concat([ids, scores.reset_index(drop=True)], axis=1)
    out["current_value"] = features[current_col].to_numpy(dtype="float64")
    out["model_name"] = name
    out["model_version"] = version
    out["cutoff"] = pd.Timestamp(cutoff)
    return out


def at_risk(
    scores: pd.DataFrame, *, tiers: Sequence[str] | None, top: int, min_churn: float = 0.0
) -> pd.DataFrame:
    """Customers of the given current tiers, ranked by value at risk (ties broken by customer id)."""
    sel = scores
    if tiers:
        sel = sel[sel["current_tier"].isin(list(tiers))]
    sel = sel[sel["churn_probability"] >= min_churn]
    ranked = sel.sort_values(["value_at_risk", "customer_id"], ascending=[False, True], kind="mergesort").head(top)
    ranked = ranked.reset_index(drop=True)
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    return ranked
