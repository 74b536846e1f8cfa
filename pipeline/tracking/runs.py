"""MLflow plumbing: where the store is, run metadata (versions, git commit, data fingerprint), model logging.

Nothing here logs customer identifiers: params are the resolved config, metrics are aggregates, the fingerprint
is counts, dates and a file hash.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from filelock import FileLock
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from tiercast.pipeline.config import Config

DEFAULT_STORE = "mlflow.db"
DEFAULT_ARTIFACTS = "mlruns"
_LIBRARIES = ("tiercast", "lightgbm", "scikit-learn", "pandas", "numpy", "scipy", "duckdb", "ibis-framework", "mlflow")


def resolve_tracking_uri(config: Config) -> str:
    """``MLFLOW_TRACKING_URI`` set by the user wins, then the config, then a sqlite store in the current (project)
    folder."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if config.mlflow.tracking_uri:
        return config.mlflow.tracking_uri
    return f"sqlite:///{Path(DEFAULT_STORE).resolve()}"


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive file lock beside a sqlite store (``mlflow.db.lock``): creating and migrating the schema
    is not safe to run twice at once, so a second process waits here until the first is done."""
    db = _sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{db}.lock", is_singleton=True):  # one lock per file and process: re-entrant
        yield


def registry_lock(config: Config):
    """The store's lock, held while the champion alias is compared and moved: two trainings finishing together
    then promote one after the other, each against the champion the other left."""
    return store_lock(resolve_tracking_uri(config))


def _drop_interrupted_migration(uri: str) -> None:
    """Remove the temporary tables a schema migration leaves when it is interrupted (a kill, a full disk), so the
    next migration can run instead of failing on ``table _alembic_tmp_... already exists``. Call under the lock."""
    db = _sqlite_path(uri)
    if db is None or not db.is_file() or db.stat().st_size == 0:
        return
    con = sqlite3.connect(db)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for name in (n for n in names if n.startswith("_alembic_tmp_")):
            con.execute(f'DROP TABLE "{name}"')
        con.commit()
    finally:
        con.close()


RUN_HOST_TAG = "tiercast.host"
RUN_PID_TAG = "tiercast.pid"


def run_owner_tags() -> dict[str, str]:
    """Tags naming the process that runs an MLflow run, so a later start can tell a killed run from a live one."""
    # "pid 1234", not a bare number: a run's logged values must never read as a customer id
    return {RUN_HOST_TAG: socket.gethostname(), RUN_PID_TAG: f"pid {os.getpid()}"}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_abandoned_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark FAILED the runs still RUNNING whose process (on this host) is gone: a run killed midway would
    otherwise stay RUNNING forever. Returns their ids."""
    host = socket.gethostname()
    closed = []
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000)
    for run in running:
        tags = run.data.tags
        pid = tags.get(RUN_PID_TAG, "").removeprefix("pid ")
        if tags.get(RUN_HOST_TAG) != host or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        client.set_tag(run.info.run_id, "tiercast.failure", "the process ended before the run finished")
        client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.FAILED))
        closed.append(run.info.run_id)
    return closed


_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def use_store(uri: str) -> str:
    """Point MLflow's tracking and registry at ``uri`` (returned). ``mlflow.set_tracking_uri`` also copies the URI
    into ``MLFLOW_TRACKING_URI`` for subprocesses; that copy is undone, so the variable keeps meaning the user's
    choice and a second job in the same process (two configs trained from Python) uses its own config's store."""
    before = {name: os.environ.get(name) for name in _URI_VARIABLES}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return uri


class StoreNotFoundError(ValueError):
    """A command that only reads the MLflow store found no sqlite store where it looked."""


def missing_store(uri: str) -> Path | None:
    """The file of a sqlite store ``uri`` that does not exist, else None (another kind of store, or one that does)."""
    db = _sqlite_path(uri)
    return db if db is not None and not db.is_file() else None


def check_store(uri: str) -> str:
    """``uri`` if its store exists (or is not a sqlite file), else a one-line StoreNotFoundError naming it."""
    if missing_store(uri) is not None:
        raise StoreNotFoundError(
            f"no MLflow store at {uri}: nothing was trained or registered there (the default store is mlflow.db in "
            "the current folder: run the command from the project folder, or set mlflow.tracking_uri in the config "
            "or MLFLOW_TRACKING_URI)"
        )
    return uri


def setup_mlflow(config: Config, *, create: bool = True) -> str:
    """Point MLflow at the store, create or migrate it under a file lock, make sure the experiment exists and
    close runs abandoned by killed processes; returns the experiment id. ``create=False`` (the commands that only
    read the store: score, promote, compare, report, at-risk's reasons) refuses a missing sqlite store, naming where
    it was looked for, instead of leaving an empty one (and its lock) in whatever folder the command ran from."""
    uri = use_store(resolve_tracking_uri(config))
    if not create:
        check_store(uri)
    with store_lock(uri):
        _drop_interrupted_migration(uri)
        client = MlflowClient()
        client.search_registered_models(max_results=1)  # creates the registry tables, under the lock
        exp = client.get_experiment_by_name(config.mlflow.experiment)
        if exp is None:
            location = Path(DEFAULT_ARTIFACTS).resolve().as_uri() if uri.startswith("sqlite:") else None
            experiment_id = client.create_experiment(config.mlflow.experiment, artifact_location=location)
        else:
            experiment_id = exp.experiment_id
    close_abandoned_runs(client, experiment_id)
    return experiment_id


def runs_starting_with(experiment: str, prefix: str) -> list[str]:
    """Ids of the (not deleted) runs of ``experiment`` that start with ``prefix``, in the order MLflow lists them."""
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None or not prefix:
        return []
    ids: list[str] = []
    token = None
    while True:
        page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
        ids += [r.info.run_id for r in page if r.info.run_id.startswith(prefix)]
        token = page.token
        if not token:
            return ids


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
    tags.update({"git_commit": git_commit() or "none", "tiercast.job": job, **run_owner_tags()})
    tags.update({f"data.{k}": str(v) for k, v in (fingerprint or {}).items()})
    mlflow.set_tags(tags)


def log_table(frame: pd.DataFrame, artifact_file: str) -> None:
    """A result table as a CSV artifact of the active run."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.to_csv(path, index=False)
        parent = str(Path(artifact_file).parent)
        mlflow.log_artifact(str(path), artifact_path=None if parent == "." else parent)
