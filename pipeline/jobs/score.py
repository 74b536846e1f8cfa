"""Batch scoring with a registered pyfunc (the at-risk list built from the scores: :mod:`.at_risk_list`)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.file_utils import local_file_uri_to_path

from tiercast.features.build import build_features, feature_windows
from tiercast.features.contract import (
    CUSTOMER_ID,
    CUTOFF,
    MODEL_NAME,
    MODEL_VERSION,
    REASON_COLUMNS,
    SCORE_COLUMNS,
    SEGMENT_KEY,
)
from tiercast.models.playbook import Playbook, PlaybookError
from tiercast.models.scorer import TiercastScorer
from tiercast.pipeline.jobs.at_risk_list import HORIZON_DAYS
from tiercast.pipeline.tracking.runs import library_versions

if TYPE_CHECKING:
    from tiercast.pipeline.config import Config

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


@dataclass(frozen=True)
class LoadedModel:
    """A registered pyfunc with the name and version that get stamped on every scored row."""

    pyfunc: mlflow.pyfunc.PyFuncModel
    name: str
    version: str

    @property
    def scorer(self) -> TiercastScorer:
        return self.pyfunc.unwrap_python_model().scorer


@dataclass(frozen=True)
class ScoringFeatures:
    """The horizon and windows to build a model's feature rows with, and a one-line note when the config's differ."""

    horizon_days: int
    windows_days: tuple[int, ...]
    note: str | None = None

    def config(self, config: Config) -> Config:
        """``config`` with these horizon and windows, for the feature build it drives."""
        features = config.features.model_copy(update={"windows_days": self.windows_days})
        return config.model_copy(update={"horizon_days": self.horizon_days, "features": features})


def scoring_features(scorer: TiercastScorer, *, horizon_days: int, windows_days: Sequence[int]) -> ScoringFeatures:
    """The model's horizon and feature windows (the model defines what it predicts), with a note naming the
    config's ``horizon_days`` / ``windows_days`` when they differ; the config's values for what the model does not
    record (no windowed input, no horizon)."""
    model_h = getattr(scorer, "horizon_days", None)
    if model_h is None:
        return ScoringFeatures(int(horizon_days), tuple(int(w) for w in windows_days))
    model_h, windows = int(model_h), scorer.feature_windows or tuple(int(w) for w in windows_days)
    unused = [f"horizon_days {horizon_days}"] if int(horizon_days) != model_h else []
    if scorer.feature_windows and feature_windows(windows_days, model_h) != feature_windows(windows, model_h):
        unused.append(f"windows_days {'/'.join(map(str, windows_days))}")
    note = None
    if unused:
        verb = "is" if len(unused) == 1 and not unused[0].startswith("windows") else "are"
        note = (
            f"the model predicts {model_h} days (trained with {scorer.trained_with()}); "
            f"the config's {' and '.join(unused)} {verb} not used for scoring"
        )
    return ScoringFeatures(model_h, windows, note)


class ModelNotFoundError(ValueError):
    """A model URI that is malformed or names no registered model, alias or version."""


def check_model_uri(model_uri: str) -> str:
    """``model_uri`` if it is a ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` URI, else ModelNotFoundError."""
    if not _MODELS_URI.match(model_uri):
        raise ModelNotFoundError(
            f"--model {model_uri!r}: not a registered-model URI; use models:/NAME/VERSION or models:/NAME@ALIAS "
            "(e.g. models:/tiercast@champion)"
        )
    return model_uri


def resolve_model_version(model_uri: str) -> tuple[str, str]:
    """(registered name, version) of a ``models:/name/N`` or ``models:/name@alias`` URI that exists in the
    registry; otherwise ModelNotFoundError saying what is registered."""
    m = _MODELS_URI.match(check_model_uri(model_uri))
    client = MlflowClient()
    name = m["name"]
    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        names = sorted(r.name for r in client.search_registered_models(max_results=50))
        known = ", ".join(names) if names else "none: run `tiercast train` or `tiercast run` first"
        raise ModelNotFoundError(
            f"--model {model_uri}: no registered model {name!r} in the MLflow store at {mlflow.get_tracking_uri()} "
            f"(registered: {known})"
        ) from None
    if m["version"]:
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        if int(m["version"]) not in versions:
            raise ModelNotFoundError(
                f"--model {model_uri}: {name} has no version {m['version']} (versions: "
                f"{', '.join(map(str, versions)) or 'none'})"
            )
        return name, str(int(m["version"]))
    aliases = registered.aliases or {}
    if m["alias"] not in aliases:
        known = ", ".join(f"@{a}" for a in sorted(aliases)) or "none"
        raise ModelNotFoundError(f"--model {model_uri}: {name} has no alias @{m['alias']} (aliases: {known})")
    return name, str(aliases[m["alias"]])


class ModelLoadError(ModelNotFoundError):
    """A registered model version whose files cannot be read (its artifact folder moved or deleted)."""


def load_model(model_uri: str) -> LoadedModel:
    """The registered version ``model_uri`` names, loaded; ModelNotFoundError when it names none, ModelLoadError
    (naming the version and where its files should be) when the registry has it but its files cannot be read."""
    name, version = resolve_model_version(model_uri)
    try:
        # MLflow's own requirements check scans every installed distribution (about a second per process) and the
        # CLI mutes what it logs; the versions of the libraries that decide the scores are compared below instead.
        pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}", suppress_warnings=True)
    except (MlflowException, OSError) as exc:
        why = _unreadable(name, version, exc)
        raise ModelLoadError(
            f"{name} version {version} ({model_uri}) is registered but cannot be loaded: {why}"
        ) from None
    loaded = LoadedModel(pyfunc, name, version)
    note = library_mismatch(
        getattr(loaded.scorer, "versions", {}) or {}, library_versions(), f"{name} version {version}"
    )
    if note:
        warnings.warn(note, stacklevel=2)
    return loaded


def library_mismatch(trained: dict[str, str], installed: dict[str, str], what: str) -> str | None:
    """One line naming the libraries whose version here differs from the one ``what`` was trained with (None when
    none differs; a library the model did not record is not compared)."""
    changed = [
        f"{lib} {v} (here {installed.get(lib, 'not installed')})"
        for lib, v in trained.items()
        if installed.get(lib) != v
    ]
    if not changed:
        return None
    return (
        f"{what} was trained with {', '.join(changed)}: its scores may differ slightly from the training run's "
        "(retrain in this environment, or install the training run's versions, to reproduce them)"
    )


def _unreadable(name: str, version: str, exc: Exception) -> str:
    """Where a registered version's files should be and why they cannot be read, for one error line."""
    try:
        where = MlflowClient().get_model_version_download_uri(name, version)
    except MlflowException:
        return f"its files cannot be read ({_first_line(exc)})"
    local = Path(local_file_uri_to_path(where)) if where.startswith("file:") else None
    why = "no such folder" if local is not None and not local.exists() else _first_line(exc)
    return f"its files at {where} cannot be read ({why}; was the MLflow artifact folder moved or deleted?)"


def _first_line(exc: Exception) -> str:
    """The first line of an exception's message (its class name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def playbook_for_model(playbook: Playbook, scorer: TiercastScorer, *, model: str, config: Path | str) -> Playbook:
    """``playbook`` (built on the config's tier names) when it holds every tier of the model, in the model's order;
    else a one-line PlaybookError naming both: a model trained before the tiers were renamed would get the playbook's
    default action for every customer."""
    theirs = [str(n) for n in scorer.scheme.names_]
    ours = [str(n) for n in playbook.tiers]
    if [n for n in ours if n in theirs] == theirs:
        return playbook
    why = "in another order" if set(theirs) <= set(ours) else "with other tier names"
    raise PlaybookError(
        f"--model {model}: its tiers are {', '.join(theirs)}, but the tiers of --config {config} are "
        f"{', '.join(ours)} (the model was trained {why}, so the playbook cannot give its customers their action); "
        "score with a config whose tiers.names are the model's, or retrain the model with this config"
    )


def _model_input(model: LoadedModel, features: pd.DataFrame) -> pd.DataFrame:
    model.scorer.check_schema(features)  # a clear error before MLflow's own schema enforcement
    return features[list(model.scorer.required_columns)]


def score_features(
    model: LoadedModel,
    features: pd.DataFrame,
    *,
    cutoff: pd.Timestamp,
    chunk_size: int = 200_000,
    playbook: Playbook | None = None,
    reasons: bool = False,
) -> pd.DataFrame:
    """Score feature rows chunk by chunk (bounded memory in the model step), stamped with model and cutoff.

    ``current_value`` (realized net spend over the last horizon, which sets the current tier) is kept beside the
    scores so tier revenue can be reported without recomputing features.
    """
    features = features.reset_index(drop=True)
    X = _model_input(model, features)
    params = {"reasons": reasons}
    parts = [model.pyfunc.predict(X.iloc[i : i + chunk_size], params=params) for i in range(0, len(X), chunk_size)]
    cols = [*SCORE_COLUMNS, *(REASON_COLUMNS if reasons else ())]
    scores = pd.concat(parts) if parts else pd.DataFrame(columns=cols)
    out = pd.concat([features[[CUSTOMER_ID]], scores.reset_index(drop=True)], axis=1)
    out["current_value"] = features[model.scorer.current_value_column].to_numpy(dtype="float64")
    if playbook is not None:
        by_segment = SEGMENT_KEY in out.columns and playbook.segments != ("any",)
        segment = out[SEGMENT_KEY].to_numpy() if by_segment else None
        out = pd.concat([out, playbook.apply(out, segment=segment)], axis=1)
    out[MODEL_NAME] = model.name
    out[MODEL_VERSION] = model.version
    out[CUTOFF] = pd.Timestamp(cutoff)
    out[HORIZON_DAYS] = int(model.scorer.horizon_days)
    return out


def explain_features(model: LoadedModel, features: pd.DataFrame) -> pd.DataFrame:
    """Reason columns for the given feature rows (same index)."""
    if len(features) == 0:  # an empty list (e.g. nobody at medium or high churn in the listed tiers)
        return pd.DataFrame({c: pd.Series(dtype="str") for c in REASON_COLUMNS}, index=features.index)
    reasons = model.pyfunc.predict(_model_input(model, features), params={"reasons": True})
    return reasons[list(REASON_COLUMNS)].set_axis(features.index)


def explain_customers(
    tx: pd.DataFrame,
    customer_ids: pd.Series,
    *,
    model_uri: str,
    cutoff: pd.Timestamp,
    windows_days: Sequence[int],
    horizon_days: int,
    satisfaction: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Reason columns for the given customers (in the given order, index 0..n-1), features rebuilt at ``cutoff``
    with the model's horizon and windows (``windows_days`` / ``horizon_days`` for what the model does not record).

    Customers without a transaction before ``cutoff`` in ``tx`` (erased since they were scored, or ``tx`` is not the
    data the scores were made from) get empty reasons, with a notice naming how many."""
    model = load_model(model_uri)
    spec = scoring_features(model.scorer, horizon_days=horizon_days, windows_days=windows_days)
    features = build_features(
        tx, cutoff=cutoff, windows_days=spec.windows_days, horizon_days=spec.horizon_days, satisfaction=satisfaction
    ).set_index(CUSTOMER_ID)
    ids = [str(c) for c in customer_ids]
    known = [c for c in ids if c in features.index]
    if len(known) < len(ids):
        missing = next(c for c in ids if c not in features.index)
        warnings.warn(
            f"{len(ids) - len(known):,} of the {len(ids):,} listed customers (e.g. {missing!r}) have no transaction "
            f"before {cutoff.date()} in the data read: their reasons are left empty (is it the data the scores were "
            "made from?)",
            UserWarning,
            stacklevel=2,
        )
    reasons = explain_features(model, features.loc[known].reset_index()).set_axis(known)
    return reasons.reindex(ids).fillna("").reset_index(drop=True)


def stamped_model_horizon(scores: pd.DataFrame) -> int | None:
    """The horizon of the model version stamped on scores (read from the store; None when it cannot be read)."""
    try:
        model = load_model(f"models:/{scores[MODEL_NAME].iloc[0]}/{scores[MODEL_VERSION].iloc[0]}")
    except (MlflowException, ModelNotFoundError, OSError):
        return None
    return int(model.scorer.horizon_days)
