"""tiercast against a real MLflow tracking server on 127.0.0.1, selected through MLFLOW_TRACKING_URI."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from tiercast.pipeline.cli import app

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.heavy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp / 'server.db'}",
        "--artifacts-destination",
        str(tmp / "artifacts"),
    ]
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited: {(tmp / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
        pytest.fail("mlflow server did not start within 90 s")
    yield url
    os.killpg(proc.pid, signal.SIGKILL)  # a throwaway server and store: a graceful stop only costs seconds
    proc.wait(timeout=30)
    log.close()


def test_train_logs_and_registers_on_a_tracking_server(server, tmp_path, monkeypatch):
    raw = pd.read_parquet(ROOT / "data" / "online_retail_ii" / "online_retail_ii.parquet")
    ids = raw["Customer ID"].dropna().drop_duplicates().sort_values().iloc[::23]
    sample = tmp_path / "sample.parquet"
    raw[raw["Customer ID"].isin(ids)].to_parquet(sample, index=False)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "base": str(ROOT / "configs" / "online_retail_ii.yaml"),
                "data": {"transactions": {"path": str(sample)}, "quarantine_path": str(tmp_path / "q.parquet")},
                "cutoffs": {"n_train": 4},
                "models": {"n_estimators": 60, "early_stopping_rounds": 10, "param_grid": "none"},
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", "--config", str(cfg)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert server in result.output
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to the local default store

    client = MlflowClient(tracking_uri=server)
    champion = client.get_model_version_by_alias("tiercast", "champion")
    run = client.get_run(champion.run_id)
    assert "test.tiercast.normalized_gini" in run.data.metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} >= {"plots/gain_curve.png"}
    model_files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "scheme.json" in model_files
