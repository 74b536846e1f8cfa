import os
from pathlib import Path

import pandas as pd
import pytest

from tiercast.pipeline.writers.files import write_parquet


def test_write_parquet_roundtrip_and_no_temp_left(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    path = write_parquet(df, tmp_path / "sub" / "out.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), df)
    assert [p.name for p in path.parent.iterdir()] == ["out.parquet"]


def test_write_parquet_failure_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.parquet"
    write_parquet(pd.DataFrame({"a": [1]}), path)
    before = path.read_bytes()

    def boom(self, target, **kwargs):
        Path(target).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(OSError, match="disk full"):
        write_parquet(pd.DataFrame({"a": [2]}), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_output_gets_ordinary_permissions(tmp_path: Path) -> None:
    import os
    import stat

    path = write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "out.parquet")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_temporaries_of_killed_writers_are_removed_by_the_next_write(tmp_path: Path) -> None:
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".out.parquet.{dead_pid}.abc123.tmp"
    stale.write_bytes(b"partial")
    live = tmp_path / f".out.parquet.{os.getppid()}.def456.tmp"  # a live writer's file stays
    live.write_bytes(b"in progress")
    other = tmp_path / f".other.parquet.{dead_pid}.abc.tmp"  # another target's file is not ours to remove
    other.write_bytes(b"x")
    write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "out.parquet")
    assert not stale.exists() and live.exists() and other.exists()
