"""Commands the command line suggests (``next: tiercast validate ...``, ``mlflow ui ...``, the hints in errors) paste
into a shell as the arguments they name, whatever the path holds: spaces, quotes, dollars."""

from __future__ import annotations

import shlex

from typer.testing import CliRunner

from tiercast.pipeline.cli import app
from tiercast.pipeline.cli.base import shell_command

runner = CliRunner()


def test_each_word_splits_back_as_it_was():
    words = ["tiercast", "validate", "--config", 'my shop/it\'s a "config".yaml', "$HOME", "a\\b", "", "*.yaml"]
    assert shlex.split(shell_command(*words)) == words
    assert shell_command("tiercast", "validate", "--config", "shop.yaml") == "tiercast validate --config shop.yaml"


def test_init_suggests_a_validate_command_that_splits_back_into_its_arguments(tmp_path):
    folder = tmp_path / ("a folder with spaces " * 6).strip()  # with tmp_path, longer than the 160-column layout
    folder.mkdir()
    data = folder / "sales.csv"
    data.write_text("customer,date,amount\na,2020-01-01,1\nb,2020-01-02,2\n", encoding="utf-8")
    out = folder / "shop's config.yaml"
    result = runner.invoke(app, ["init", "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    (suggested,) = [line for line in result.stdout.splitlines() if line.startswith("next: ")]
    assert shlex.split(suggested.removeprefix("next: ")) == ["tiercast", "validate", "--config", str(out)]


def test_a_path_in_an_error_is_printed_as_it_is_not_as_markup(tmp_path):
    """Errors print through rich: ``[v2]`` in a path must stay text, or the path in a hint no longer exists."""
    missing = tmp_path / "shop [v2]" / "c[bold]fg.yaml"
    result = runner.invoke(app, ["validate", "--config", str(missing)])
    assert result.exit_code == 2 and str(missing) in result.stderr, result.stderr


def test_the_mlflow_ui_hint_names_the_mlflow_beside_the_running_python(tmp_path, monkeypatch):
    """A venv's ``mlflow`` need not be on PATH: the hint names the one beside tiercast's Python, relative inside
    the working folder (as the demo's ``.venv/bin/mlflow``), absolute from anywhere else."""
    from tiercast.pipeline.cli.summary import mlflow_executable

    bin_dir = tmp_path / "my env" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "mlflow").write_text("#!/bin/sh\n", encoding="utf-8")
    monkeypatch.setattr("sys.executable", str(bin_dir / "python"))
    monkeypatch.chdir(tmp_path)
    assert mlflow_executable() == "my env/bin/mlflow"
    monkeypatch.chdir(bin_dir)
    assert mlflow_executable() == "./mlflow"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert mlflow_executable() == str(bin_dir / "mlflow")
    assert shlex.split(shell_command(mlflow_executable(), "ui"))[0] == str(bin_dir / "mlflow")
