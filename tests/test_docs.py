"""The documentation stays true: the Python API example runs, and every public estimator says what it does."""

from __future__ import annotations

import importlib
import inspect
import re
import runpy
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL_MODULES = (
    "gbm.value",
    "gbm.churn",
    "gbm.stacked",
    "tiers.scheme",
    "tiers.alternatives",
    "segments",
    "baselines",
    "btyd.fitters",
    "btyd.forecast",
    "btyd.stacker",
    "scorer",
    "drift",
)


def test_api_example_fits_and_scores_from_a_dataframe(tmp_path, monkeypatch, capsys):
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    monkeypatch.chdir(ROOT)
    scope = runpy.run_path(str(script))
    scores = scope["scores"]
    assert len(scores) == scope["now"]["customer_id"].nunique() > 100
    assert scores["churn_probability"].between(0, 1).all() and (scores["predicted_value"] >= 0).all()
    assert set(scores["current_tier"]) <= set(scope["scheme"].names_)
    assert pd.api.types.is_float_dtype(scores["value_at_risk"])
    assert "predicted_tier" in capsys.readouterr().out  # the printed top rows


@pytest.mark.parametrize("module", MODEL_MODULES)
def test_public_estimators_have_docstrings(module):
    mod = importlib.import_module(f"tiercast.models.{module}")
    classes = [c for n, c in vars(mod).items() if inspect.isclass(c) and c.__module__ == mod.__name__ and n[0] != "_"]
    assert classes
    for cls in classes:
        doc = cls.__doc__ or ""
        assert doc.strip() and not doc.startswith(f"{cls.__name__}("), f"{module}.{cls.__name__} has no docstring"


def test_readme_python_training_example_trains_and_decides_promotion(tmp_path, monkeypatch, capsys):
    """The README's monthly job "from Python" runs as printed, on a small config standing in for ``shop.yaml``."""
    from tests.pipeline.test_cli_errors import retail_sample, small_config

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    (code,) = [c for c in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "promote(" in c]
    small_config(tmp_path, retail_sample(tmp_path / "sample.parquet", every=20)).rename(tmp_path / "shop.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    script = tmp_path / "monthly.py"
    script.write_text(code, encoding="utf-8")
    scope = runpy.run_path(str(script))
    assert scope["decision"].alias == "champion" and scope["decision"].version == "1"
    assert capsys.readouterr().out.startswith("1 champion ")
