"""The MLflow store survives concurrency and faults: first starts racing in a fresh folder, a start killed at any
point of the store's creation, runs killed midway (closed as FAILED, never "the latest").

The processes raced or killed are real ones; the start that comes after them runs in the test process where a
fresh process is not the point (:func:`_start_here`, the same setup)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.pipeline.cli_harness import assert_clean_failure, invoke

ROOT = Path(__file__).resolve().parents[2]
# the long campaign (`make fuzz`) races and kills more often
LONG = bool(os.environ.get("TIERCAST_FUZZ_EXAMPLES"))

SETUP = textwrap.dedent(
    """
    import sys
    from tiercast.pipeline.config import load_config
    from tiercast.pipeline.tracking.run_listing import latest_training_run
    from tiercast.pipeline.tracking.runs import setup_mlflow

    cfg = load_config(sys.argv[1])
    print(setup_mlflow(cfg), latest_training_run(cfg.mlflow.experiment))
    """
)

# A training-like run (it logs its training cutoffs) whose process is killed before it ends.
KILLED_RUN = textwrap.dedent(
    """
    import sys, time
    import mlflow
    from tiercast.pipeline.config import load_config
    from tiercast.pipeline.tracking.runs import run_owner_tags, setup_mlflow

    cfg = load_config(sys.argv[1])
    exp = setup_mlflow(cfg)
    run = mlflow.start_run(experiment_id=exp, tags=run_owner_tags())
    mlflow.log_param("cutoffs.train_resolved", "2010-01-01")
    print(run.info.run_id, flush=True)
    time.sleep(600)
    """
)


def _config(folder: Path) -> Path:
    cfg = {
        "base": "default",
        "data": {"transactions": {"path": "tx.csv", "columns": {"customer_id": "c", "timestamp": "t", "amount": "a"}}},
        "mlflow": {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}"},
    }
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _start_here(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str | None]:
    """What SETUP prints, from a start in this process in the config's folder: (experiment id, latest training
    run)."""
    from tiercast.pipeline.config import load_config
    from tiercast.pipeline.tracking.run_listing import latest_training_run
    from tiercast.pipeline.tracking.runs import setup_mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    with monkeypatch.context() as here:
        here.chdir(cfg.parent)
        config = load_config(cfg)
        return setup_mlflow(config), latest_training_run(config.mlflow.experiment)


def _python(code: str, *args: str, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.heavy
@pytest.mark.parametrize("attempt", range(10 if LONG else 1))
def test_first_starts_racing_in_a_fresh_folder_both_succeed(tmp_path, attempt):
    cfg = _config(tmp_path)
    procs = [_python(SETUP, str(cfg), cwd=tmp_path) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
        assert "_alembic_tmp" not in err
    assert len({out.split()[0] for out, _ in outs}) == 1  # one experiment, found by all


@pytest.mark.heavy
@pytest.mark.parametrize("delay", [0.2, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0] if LONG else [0.5, 2.0])
def test_a_start_killed_while_creating_the_store_does_not_break_it(tmp_path, delay, monkeypatch):
    cfg = _config(tmp_path)
    victim = _python(SETUP, str(cfg), cwd=tmp_path)
    time.sleep(delay)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    _start_here(cfg, monkeypatch)  # the next start succeeds
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_experiment_by_name("tiercast") is not None


def test_interrupted_migration_leftovers_are_cleared(tmp_path, monkeypatch):
    """What a full disk or a kill in the middle of a schema migration leaves: a ``_alembic_tmp_`` table."""
    import sqlite3

    cfg = _config(tmp_path)
    _start_here(cfg, monkeypatch)  # a complete store
    con = sqlite3.connect(tmp_path / "mlflow.db")
    con.execute("CREATE TABLE _alembic_tmp_experiments (x INTEGER)")
    con.commit()
    con.close()
    second = _python(SETUP, str(cfg), cwd=tmp_path)
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err


def _finished_training_run(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """KILLED_RUN's training-like run, ended normally, from this process."""
    import mlflow

    from tiercast.pipeline.tracking.runs import run_owner_tags

    experiment_id, _ = _start_here(cfg, monkeypatch)
    with mlflow.start_run(experiment_id=experiment_id, tags=run_owner_tags()) as run:
        mlflow.log_param("cutoffs.train_resolved", "2010-01-01")
    return run.info.run_id


def test_a_killed_run_is_closed_as_failed_and_never_the_latest(tmp_path, monkeypatch):
    cfg = _config(tmp_path)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    finished_id = _finished_training_run(cfg, monkeypatch)
    killed = _python(KILLED_RUN, str(cfg), cwd=tmp_path)
    killed_id = killed.stdout.readline().strip()
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert client.get_run(killed_id).info.status == "RUNNING"
    _, latest = _start_here(cfg, monkeypatch)
    assert latest == finished_id  # the latest training run is the finished one
    run = client.get_run(killed_id)
    assert run.info.status == "FAILED" and "process ended" in run.data.tags["tiercast.failure"]


def test_a_live_run_is_left_running(tmp_path, monkeypatch):
    cfg = _config(tmp_path)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    live = _python(KILLED_RUN, str(cfg), cwd=tmp_path)
    try:
        live_id = live.stdout.readline().strip()
        _start_here(cfg, monkeypatch)
        assert client.get_run(live_id).info.status == "RUNNING"
    finally:
        live.kill()
        live.communicate(timeout=60)


def test_report_without_a_finished_training_run_says_so(tmp_path):
    cfg = _config(tmp_path)
    killed = _python(KILLED_RUN, str(cfg), cwd=tmp_path)
    killed.stdout.readline()
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    (tmp_path / "tx.csv").write_text("c,t,a\n")
    result = invoke("report", "--config", "c.yaml", "--out", "r.html", cwd=tmp_path)
    assert_clean_failure(result, "no training run")
    assert not (tmp_path / "r.html").exists()


@pytest.mark.heavy
@pytest.mark.skipif(not LONG, reason="two trainings: in the long campaign (make fuzz)")
def test_two_trainings_racing_for_the_champion(tmp_path):
    """Two `tiercast train` at once on one store: both finish, and the champion alias ends on one version that
    the other's promotion was compared against (promotion runs under the store's lock)."""
    import pandas as pd

    raw = pd.read_parquet(ROOT / "data" / "online_retail_ii" / "online_retail_ii.parquet")
    ids = raw["Customer ID"].dropna().drop_duplicates().sort_values().iloc[::11]
    raw[raw["Customer ID"].isin(ids)].to_parquet(tmp_path / "sample.parquet", index=False)
    cfg = {
        "base": "online_retail_ii",
        "data": {"transactions": {"path": "sample.parquet"}, "quarantine_path": "out/quarantine.parquet"},
        "cutoffs": {"n_train": 4},
        "models": {"n_estimators": 60, "early_stopping_rounds": 10, "param_grid": "none"},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    tiercast = Path(sys.executable).with_name("tiercast")
    procs = [
        subprocess.Popen(
            [str(tiercast), "train", "-c", "c.yaml"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=1800)
        assert proc.returncode == 0, err
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    versions = client.search_model_versions("name='tiercast'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    champion = client.get_model_version_by_alias("tiercast", "champion")
    other = next(v for v in versions if v.version != champion.version)
    # the same data and settings: the second to promote met a champion and was compared with it
    assert "no champion yet" in (champion.tags.get("promotion_reason", "") + other.tags.get("promotion_reason", ""))
    assert sum("no champion yet" in v.tags.get("promotion_reason", "") for v in versions) == 1


def test_a_second_job_in_the_same_process_uses_its_own_store(tmp_path, monkeypatch):
    """MLflow copies the URI it is given into MLFLOW_TRACKING_URI; that copy is not the user's choice, so the next
    config's store is used. A URI the user set in the environment still wins."""
    import mlflow

    from tiercast.pipeline.config import load_config
    from tiercast.pipeline.tracking.runs import resolve_tracking_uri, use_store

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    first, second = (f"sqlite:///{tmp_path / name}" for name in ("a.db", "b.db"))
    config = lambda uri: load_config(ROOT / "configs" / "demo.yaml", overrides={"mlflow": {"tracking_uri": uri}})  # noqa: E731
    use_store(resolve_tracking_uri(config(first)))
    assert "MLFLOW_TRACKING_URI" not in os.environ  # MLflow's copy of the URI is undone
    assert mlflow.get_tracking_uri() == first and mlflow.get_registry_uri() == first
    assert resolve_tracking_uri(config(second)) == second
    use_store(second)
    assert mlflow.get_tracking_uri() == second
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///chosen.db")
    assert resolve_tracking_uri(config(first)) == "sqlite:///chosen.db"
