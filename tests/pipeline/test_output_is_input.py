"""No output replaces a file the command reads: a ``quarantine_path`` or an ``--out`` naming the transactions file or
the config fails in one line, exit 2, before anything is written, and the input is left as it was."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.pipeline.cli_harness import assert_clean_failure, invoke, snapshot
from tiercast.pipeline.writers.files import OutputIsInputError, atomic_output, protect_inputs

LINES = pd.DataFrame(
    {
        "customer_id": ["a", "a", "b", "c"],
        "timestamp": pd.to_datetime(["2023-01-05", "2023-03-01", "2023-02-10", "2023-04-02"]),
        "amount": [10.0, 20.0, 5.0, 8.0],
        "order_id": ["o1", "o2", "o3", "o4"],
    }
)


def _config(folder: Path, data: Path, **data_keys: object) -> Path:
    columns = {c: c for c in LINES.columns}
    body = {
        "base": "default",
        "data": {"transactions": {"path": str(data), "columns": columns}, **data_keys},
        "outputs": {"dir": str(folder / "out")},
    }
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.mark.parametrize("target", ["data", "config"])
def test_a_quarantine_path_naming_an_input_is_refused(tmp_path: Path, target: str) -> None:
    data = tmp_path / "lines.csv"
    LINES.to_csv(data, index=False)
    config = tmp_path / "c.yaml"
    _config(tmp_path, data, quarantine_path=str(data if target == "data" else config))
    before = snapshot(tmp_path)
    result = invoke("validate", "--config", str(config), cwd=tmp_path)
    what = "the transactions file" if target == "data" else "a config file"
    assert_clean_failure(result, "data.quarantine_path", what, "choose another path")
    assert snapshot(tmp_path) == before


def test_an_out_naming_the_transactions_file_leaves_it_whole(tmp_path: Path) -> None:
    data = tmp_path / "lines.parquet"
    LINES.to_parquet(data)
    config = _config(tmp_path, data)
    result = invoke("features", "--config", str(config), "--cutoff", "2023-03-15", "--out", str(data), cwd=tmp_path)
    assert_clean_failure(result, str(data), "is the transactions file this command reads")
    pd.testing.assert_frame_equal(pd.read_parquet(data), LINES)
    # the same command with another output writes it
    out = tmp_path / "features.parquet"
    ok = invoke("features", "--config", str(config), "--cutoff", "2023-03-15", "--out", str(out), cwd=tmp_path)
    assert ok.code == 0 and pd.read_parquet(out)["customer_id"].tolist() == ["a", "b"]  # c buys in April


def test_atomic_output_refuses_a_registered_input_by_any_name(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    source = tmp_path / "orders.csv"
    source.write_text("x\n1\n")
    protect_inputs({source: "the orders file"})
    for name in (source, tmp_path / "sub" / ".." / "orders.csv"):
        with pytest.raises(OutputIsInputError, match="is the orders file"), atomic_output(name) as tmp:
            tmp.write_text("replaced")
    assert source.read_text() == "x\n1\n" and not list(tmp_path.glob(".orders.csv.*"))
