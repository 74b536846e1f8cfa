"""MLflow plumbing: where the store is, run metadata (versions, git commit, data fingerprint), model logging.

Nothing here logs customer identifiers: params are the resolved config, metrics are aggregates, the fingerprint
is counts, dates and a file hash.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from tiercast.pipeline.config import Config

DEFAULT_STORE = "mlflow.db"
DEFAULT_ARTIFACTS = "mlruns"
_LIBRARIES = ("tiercast", "lightgbm", "scikit-learn", "pandas", "numpy", "scipy", "duckdb", "ibis-framework", "mlflow")


def resolve_tracking_uri(config: Config) -> str:
    """``MLFLOW_TRACKING_URI`` wins, then the config, then a sqlite store in the current (project) folder."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if config.mlflow.tracking_uri:
        return config.mlflow.tracking_uri
    return f"sqlite:///{Path(DEFAULT_STORE).resolve()}"


def setup_mlflow(config: Config) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns the experiment id."""
    uri = resolve_tracking_uri(config)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient()
    exp = client.get_experiment_by_name(config.mlflow.experiment)
    if exp is not None:
        return exp.experiment_id
    location = Path(DEFAULT_ARTIFACTS).resolve().as_uri() if uri.startswith("sqlite:") else None
    return client.create_experiment(config.mlflow.experiment, artifact_location=location)


def library_versions() -> dict[str, str]:
    out = {}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit() -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def data_fingerprint(path: str | Path, *, n_read: int, accepted: pd.DataFrame, n_quarantined: int) -> dict[str, Any]:
    """Counts, date range and content hash of the input: enough to tell whether two runs saw the same data."""
    p = Path(path)
    return {
        "data_path": str(p),
        "data_sha256": file_sha256(p) if p.is_file() else "n/a",
        "data_rows_read": n_read,
        "data_rows_accepted": len(accepted),
        "data_rows_quarantined": n_quarantined,
        "data_customers": int(accepted["customer_id"].nunique()),
        "data_first_timestamp": str(accepted["timestamp"].min()),
        "data_last_timestamp": str(accepted["timestamp"].max()),
    }


def flatten(prefix: str, value: Any) -> dict[str, str]:
    """Flatten a nested config dump into ``a.b.c`` params."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: str(value)[:6000]}


def model_pip_requirements() -> list[str]:
    """Pinned requirements written into the model, so its environment is recorded without slow inference."""
    return [f"{name}=={version}" for name, version in library_versions().items()]


def log_run_context(config: Config, *, job: str, fingerprint: dict[str, Any] | None = None) -> None:
    """Into the active run: the resolved config as params, library versions, git commit, job kind and the data
    fingerprint as tags (never customer ids)."""
    mlflow.log_params(flatten("", config.model_dump(mode="json")))
    tags = {f"version.{k}": v for k, v in library_versions().items()}
    tags.update({"git_commit": git_commit() or "none", "tiercast.job": job})
    tags.update({f"data.{k}": str(v) for k, v in (fingerprint or {}).items()})
    mlflow.set_tags(tags)


def log_table(frame: pd.DataFrame, artifact_file: str) -> None:
    """A result table as a CSV artifact of the active run."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.to_csv(path, index=False)
        parent = str(Path(artifact_file).parent)
        mlflow.log_artifact(str(path), artifact_path=None if parent == "." else parent)
