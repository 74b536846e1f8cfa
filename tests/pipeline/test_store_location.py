"""Commands that only read the MLflow store (score, monitor, compare, report, promote) never create one: run against
a store that does not exist (another folder, a mistyped URI), they fail in one line naming the tracking URI they
looked in, and leave no ``mlflow.db`` or ``mlflow.db.lock`` behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipeline.cli_harness import assert_clean_failure, invoke
from tests.pipeline.test_cli_errors import retail_sample, small_config

READ_ONLY = [
    ("score", "--model", "models:/tiercast@champion", "--out", "out/s.parquet"),
    ("monitor", "--from", "2010-09", "--to", "2010-09", "--model", "models:/tiercast@champion"),
    ("compare",),
    ("report",),
    ("promote", "--run", "0123456789abcdef"),
]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """A small transaction file (monitor reads its data before it looks for a model)."""
    return retail_sample(tmp_path_factory.mktemp("data") / "sample.parquet", every=40)


@pytest.mark.parametrize("args", READ_ONLY, ids=[a[0] for a in READ_ONLY])
def test_a_read_only_command_names_the_missing_store_and_creates_none(tmp_path, sample, args):
    small_config(tmp_path, sample)
    store = tmp_path / "mlflow.db"
    result = invoke(args[0], "--config", "config.yaml", *args[1:], cwd=tmp_path)
    assert_clean_failure(result, f"sqlite:///{store}")
    assert not store.exists() and not Path(f"{store}.lock").exists()


@pytest.mark.parametrize("extra", [(), ("--cutoff", "yesterday")], ids=["store missing", "bad argument"])
def test_train_after_score_in_one_process_still_creates_its_store(tmp_path, extra, monkeypatch):
    """Refusing a missing store is the read-only commands' own choice, not left behind in the process: after a
    refused score or compare (also one refused while its arguments were read), training opens (and creates) it."""
    from tiercast.pipeline.config import load_config
    from tiercast.pipeline.tracking.runs import setup_mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the config's store, as the commands use it
    small_config(tmp_path, tmp_path / "never_read.parquet")
    invoke("score", "--config", "config.yaml", "--model", "models:/tiercast@champion", *extra, cwd=tmp_path)
    invoke("compare", "--config", "config.yaml", cwd=tmp_path)
    setup_mlflow(load_config(tmp_path / "config.yaml"))
    assert (tmp_path / "mlflow.db").is_file()
