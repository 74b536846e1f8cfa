from pathlib import Path

import pandas as pd
import pytest

from tiercast.pipeline.files import write_parquet


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
