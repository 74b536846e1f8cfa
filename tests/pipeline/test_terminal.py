"""The command line's manners: --version, --quiet, completion, option aliases, MLflow kept quiet, wide tables whole."""

from __future__ import annotations

import io
import logging
from importlib.metadata import version

import pytest
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from tiercast.pipeline import terminal
from tiercast.pipeline.cli import app

runner = CliRunner()


def test_version_and_completion():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"tiercast {version('tiercast')}"
    helped = runner.invoke(app, ["--help"])
    assert "--install-completion" in helped.output and "--quiet" in helped.output and "--verbose" in helped.output


def test_quiet_prints_nothing_on_success(tmp_path):
    (tmp_path / "a.csv").write_text("customer,date,amount\na,2020-01-01,1\nb,2020-01-02,2\n", encoding="utf-8")
    loud = runner.invoke(app, ["init", "--data", str(tmp_path / "a.csv"), "--out", str(tmp_path / "loud.yaml")])
    assert loud.exit_code == 0 and "wrote" in loud.output
    quiet = runner.invoke(app, ["-q", "init", "--data", str(tmp_path / "a.csv"), "--out", str(tmp_path / "q.yaml")])
    assert quiet.exit_code == 0 and quiet.output == "" and (tmp_path / "q.yaml").is_file()
    both = runner.invoke(app, ["-q", "-v", "init", "--data", str(tmp_path / "a.csv")])
    assert both.exit_code == 2


def test_one_name_for_the_number_of_test_cutoffs_the_other_hidden():
    for command in ("backtest", "tiers"):
        text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
        assert "--n-tests" in text and "--n-test " not in text, command


def test_mlflow_chatter_is_silenced_unless_verbose(capsys):
    from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM, enable_logging, eprint

    try:
        terminal.configure(verbose=False)
        eprint("Successfully registered model 'x'.")
        logging.getLogger("mlflow.pyfunc").warning("Passing a Python object as `python_model` ... CloudPickle")
        logging.getLogger("mlflow.store").error("the store is gone")
        err = capsys.readouterr().err
        assert "Successfully" not in err and "CloudPickle" not in err
        assert "MLflow error: the store is gone" in err
        enable_logging()  # what MLflow's own autologging context does on exit (importing mlflow.pyfunc runs one)
        eprint("Created version '3' of model 'x'.")
        logging.getLogger("mlflow.pyfunc").warning("CloudPickle again")
        assert capsys.readouterr().err == "" and not MLFLOW_LOGGING_STREAM.enabled
        terminal.configure(verbose=True)
        eprint("Successfully registered model 'x'.")
        assert "Successfully registered" in capsys.readouterr().err
    finally:
        terminal.configure()
        assert not MLFLOW_LOGGING_STREAM.enabled


def test_wide_tables_are_printed_whole_on_a_narrow_terminal():
    table = Table(title="wide")
    for i in range(8):
        table.add_column(f"column number {i}")
    table.add_row(*(f"value-{i}-abcdefghij" for i in range(8)))
    out = io.StringIO()
    terminal.print_table(Console(file=out, width=120), table)
    text = out.getvalue()
    assert all(f"value-{i}-abcdefghij" in text for i in range(8)) and "…" not in text
    assert max(len(line) for line in text.splitlines()) > 120


def test_phases_end_however_the_function_ends(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(terminal, "_progress", Console(file=out, force_terminal=True, color_system=None, width=100))

    @terminal.phased
    def job(fail: bool) -> None:
        terminal.phase("first")
        terminal.phase("second")
        if fail:
            raise ValueError("boom")

    job(False)
    text = out.getvalue()
    assert "✓ first" in text and "✓ second" in text and terminal._running["phase"] is None
    with pytest.raises(ValueError, match="boom"):
        job(True)
    assert terminal._running["phase"] is None
    with terminal.step("outer"):
        terminal.phase("inside a step: not shown")  # one live display at a time
        assert terminal._running["phase"] is None


def test_each_warning_text_is_shown_once(capsys):
    """The value and the churn model, and every fold of a backtest, may warn of the same thing: one line."""
    from tiercast.pipeline.cli.base import _notice

    for _ in range(3):
        _notice("no training label window ends by the validation cutoff 2031-01-01", UserWarning, "x.py", 1)
    _notice("another thing, once", UserWarning, "x.py", 1)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "warning: no training label window ends by the validation cutoff 2031-01-01",
        "warning: another thing, once",
    ]
    runner.invoke(app, ["--help"])  # a new command starts with nothing shown
    _notice("another thing, once", UserWarning, "x.py", 1)
    assert capsys.readouterr().err == "warning: another thing, once\n"
