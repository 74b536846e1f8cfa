"""The per-customer predictions table: columns, one row per customer x cutoff x method, labels, atomic write."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tiercast.pipeline.jobs.predictions import PREDICTION_COLUMNS, predictions_frame, write_predictions


def _test_rows() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ["a", "b", "c"], "future_value": [10.0, 0.0, 2.5], "churned": [0.0, 1.0, 0.0]})


def test_one_row_per_customer_and_method_with_the_labels():
    test = _test_rows()
    preds = {"m1": (np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.2, 0.3])), "m2": (np.zeros(3), np.ones(3))}
    out = predictions_frame(test, preds, cutoff="2020-03-01")
    assert list(out.columns) == list(PREDICTION_COLUMNS)
    assert len(out) == 3 * 2
    assert (out["cutoff"] == pd.Timestamp("2020-03-01")).all()
    m1 = out[out["method"] == "m1"]
    assert list(m1["customer_id"]) == ["a", "b", "c"]
    assert list(m1["predicted_value"]) == [1.0, 2.0, 3.0] and list(m1["churn_probability"]) == [0.1, 0.2, 0.3]
    for _, part in out.groupby("method"):
        assert list(part["realized_value"]) == [10.0, 0.0, 2.5]
        assert list(part["churned"]) == [0, 1, 0]


def test_misaligned_predictions_are_refused():
    with pytest.raises(ValueError, match="m1: predictions for 2/3 rows, expected 3"):
        predictions_frame(_test_rows(), {"m1": (np.zeros(2), np.zeros(3))}, cutoff="2020-03-01")


def test_written_atomically_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    out = predictions_frame(_test_rows(), {"m": (np.ones(3), np.full(3, 0.5))}, cutoff="2020-03-01")
    path = write_predictions(out, tmp_path / "preds.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), out)
    before = path.read_bytes()

    def boom(self, target, **kwargs):
        Path(target).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(OSError, match="disk full"):
        write_predictions(out.assign(predicted_value=2.0), path)
    assert path.read_bytes() == before  # the old file stays, no partial one, no temporary left
    assert [p.name for p in tmp_path.iterdir()] == ["preds.parquet"]
