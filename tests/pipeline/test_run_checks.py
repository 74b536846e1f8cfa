"""What `run` and `train` check before training. A command that writes its outputs last checks their folders first:
`run` registers and promotes a model before it writes the scores, and a folder it cannot write must stop it before
that, not after minutes of training. And `run` says when it scores before the end of the data it trains on, and
`features` refuses a cutoff before the data instead of writing an empty file."""

from __future__ import annotations

import errno
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.pipeline.cli_harness import assert_clean_failure, invoke
from tiercast.pipeline.config import ConfigError, load_config
from tiercast.pipeline.jobs.run import run_cutoff
from tiercast.pipeline.writers.files import check_writable_folder

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "data" / "online_retail_ii" / "online_retail_ii.parquet"


def test_a_missing_folder_is_created_and_left_empty(tmp_path: Path) -> None:
    folder = check_writable_folder(tmp_path / "a" / "b")
    assert folder.is_dir() and not list(folder.iterdir())


def test_a_file_in_the_way_is_named(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(NotADirectoryError) as under:
        check_writable_folder(tmp_path / "blocker" / "out")
    assert under.value.filename == str(tmp_path / "blocker" / "out")
    with pytest.raises(FileExistsError) as itself:
        check_writable_folder(tmp_path / "blocker")
    assert itself.value.filename == str(tmp_path / "blocker")


def test_a_folder_that_cannot_be_written_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """(Permissions do not stop root, who runs CI: the write is refused by a stand-in for mkstemp.)"""
    import tempfile

    def refused(*_args: object, **kw: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied", str(Path(str(kw["dir"])) / ".x.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(PermissionError) as denied:
        check_writable_folder(tmp_path / "out")
    assert denied.value.filename == str(tmp_path / "out")


def _config(folder: Path, **extra: object) -> None:
    cfg = {
        "base": str(ROOT / "configs" / "online_retail_ii.yaml"),
        "data": {"transactions": {"path": str(BUNDLED)}, "quarantine_path": "out/quarantine.parquet"},
        "mlflow": {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}"},
        "outputs": {"dir": "out"},
    }
    for key, value in extra.items():
        cfg[key] = {**cfg[key], **value}  # type: ignore[dict-item]
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")


@pytest.mark.parametrize(
    ("command", "setting", "said"),
    [
        ("run", {"outputs": {"dir": "blocker/out"}}, "outputs.dir blocker/out: a part of this path is a file"),
        ("train", {"data": {"quarantine_path": "blocker/q.parquet"}}, "data.quarantine_path blocker: is a file"),
    ],
)
def test_run_and_train_stop_before_training_when_their_folder_is_unusable(tmp_path, command, setting, said) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    _config(tmp_path, **setting)
    result = invoke(command, "--config", "config.yaml", cwd=tmp_path)
    assert_clean_failure(result, said)
    assert not (tmp_path / "mlflow.db").exists()  # no run logged, no model registered
    assert "start:" not in result.stderr  # nothing read or trained


def test_run_scores_at_the_configured_cutoff_and_warns_before_the_data_end() -> None:
    start, end = pd.Timestamp("2023-01-01"), pd.Timestamp("2023-07-01")
    default = load_config(ROOT / "configs" / "demo.yaml")
    assert run_cutoff(default, start, end) == end
    early = load_config(ROOT / "configs" / "demo.yaml", overrides={"score": {"cutoff": "2023-06-01"}})
    with pytest.warns(UserWarning) as caught:
        assert run_cutoff(early, start, end) == pd.Timestamp("2023-06-01")
    assert str(caught[0].message).startswith(
        "score.cutoff 2023-06-01 is before the end of the data (2023-07-01) the model is trained on: it has seen "
        "what happened after the cutoff"
    )
    before = load_config(ROOT / "configs" / "demo.yaml", overrides={"score": {"cutoff": "2022-12-01"}})
    with pytest.raises(ConfigError, match="no purchase before it"):
        run_cutoff(before, start, end)


def test_features_before_the_data_start_is_an_error_not_an_empty_file(tmp_path: Path) -> None:
    _config(tmp_path)
    result = invoke("features", "--config", "config.yaml", "--cutoff", "2009-11-01", "--out", "f.parquet", cwd=tmp_path)
    assert_clean_failure(result, "--cutoff 2009-11-01: no purchase before it (the data starts 2009-12-01)")
    assert not (tmp_path / "f.parquet").exists()
