"""The built wheel, installed into a fresh virtual environment, runs a config naming a packaged preset from a folder
outside the project.

The wheel is built from a copy of the sources (so the worktree gets no build/ or egg-info folders) and installed with
``--no-deps`` into a new venv that borrows the dependencies of the running environment through a ``.pth`` line; the
running environment's editable install is not active there, so every ``tiercast`` module comes from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "data" / "online_retail_ii" / "online_retail_ii.parquet"
SOURCES = ("pyproject.toml", "README.md", "features", "models", "pipeline", "benchmarks")

pytestmark = pytest.mark.wheel


def _sh(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The ``bin`` folder of a fresh venv holding the wheel built from these sources."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(
            ROOT / name,
            src / name,
            **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}),
        )
    _sh([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(src)])
    (wheel,) = (tmp / "dist").glob("tiercast-*.whl")
    venv = tmp / "venv"
    _sh([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    site = Path(
        _sh(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
        ).stdout.strip()
    )
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    _sh(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ]
    )
    return venv / "bin"


def test_the_wheel_ships_the_presets(installed):
    (wheel,) = installed.parent.parent.glob("dist/tiercast-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"tiercast/pipeline/presets/{p}.yaml" for p in ("default", "online_retail_ii", "cdnow", "olist")} <= set(
        names
    )


def test_installed_tiercast_runs_a_preset_config_from_outside_the_project(installed, tmp_path):
    raw = pd.read_parquet(BUNDLED)
    ids = raw["Customer ID"].dropna().drop_duplicates().sort_values()
    sample = raw[raw["Customer ID"].isin(ids.iloc[::16])].reset_index(drop=True)
    sample.to_parquet(tmp_path / "sales.parquet", index=False)
    config = {
        "base": "online_retail_ii",
        "data": {"transactions": {"path": "sales.parquet"}},
        "cutoffs": {"n_train": 3},
        "models": {"n_estimators": 100, "early_stopping_rounds": 20, "param_grid": "none", "backtest_n_tests": 1},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    }
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTHON", "VIRTUAL_ENV"))}
    where = _sh([str(installed / "python"), "-c", "import tiercast.pipeline.config as c; print(c.__file__)"], env=env)
    assert where.stdout.startswith(str(installed.parent)), where.stdout

    done = _sh([str(installed / "tiercast"), "run", "--config", "shop.yaml"], cwd=tmp_path, env=env)

    scores = pd.read_parquet(tmp_path / "outputs" / "scores.parquet")
    quarantine = pd.read_parquet(tmp_path / "outputs" / "quarantine.parquet")
    accepted = sample.drop(index=quarantine["source_row"].to_numpy())["Customer ID"].astype(int).astype(str)
    assert set(scores["customer_id"]) == set(accepted)
    assert "VIP retention call" in set(scores["action"])  # the preset's playbook, not an empty one
    assert (tmp_path / "outputs" / "at_risk.csv").is_file()
    assert "error" not in done.stderr.lower()
