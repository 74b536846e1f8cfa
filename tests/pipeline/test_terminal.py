"""The command line's manners: --version, --quiet, completion, option aliases, MLflow kept quiet, wide tables whole,
progress as plain lines in a log."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

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
    monkeypatch.setattr(terminal, "_live", lambda: True)  # a terminal: spinners and check marks

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


# ------------------------------------------------------------------------------------ progress in a log (not a tty)

PROGRESS = re.compile(r"\d\d:\d\d:\d\d (start|done|failed): (.+?)(?: \(\d[\d,]*\.\d s\))?")


@pytest.fixture
def log(tmp_path, monkeypatch):
    """Progress to a log file, as with ``2>log``: a real file, not a terminal."""
    path = tmp_path / "stderr.log"
    with path.open("w", encoding="utf-8") as stream:
        monkeypatch.setattr(terminal, "_progress", Console(file=stream, force_terminal=False))
        yield path


def _events(path: Path) -> list[tuple[str, str, bool]]:
    """(event, label, has seconds) of every line of a log; each line must be a progress line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    matches = [PROGRESS.fullmatch(line) for line in lines]
    assert all(matches), lines
    return [(m[1], m[2], m[0].endswith(" s)")) for m in matches]


def test_a_log_gets_a_start_and_an_end_line_per_outermost_step(log, monkeypatch):
    long_label = "reading " + "/a folder with spaces" * 8 + "/sales.csv"  # longer than a line: never wrapped

    @terminal.phased
    def job(fail: bool) -> None:
        terminal.phase("first stage")
        with terminal.step("a step inside a phase: not shown"):
            pass
        terminal.phase("second stage")
        if fail:
            raise ValueError("boom")

    with terminal.step(long_label), terminal.step("nested: not shown"):
        terminal.phase("a phase inside a step: not shown")
    job(False)
    with pytest.raises(ValueError, match="boom"):
        job(True)
    monkeypatch.setitem(terminal._mode, "quiet", True)
    with terminal.step("quiet: not shown"):
        terminal.phase("quiet: not shown either")
    terminal.end_phase()
    stages = [(e, label, e != "start") for label in ("first stage", "second stage") for e in ("start", "done")]
    assert _events(log) == [
        ("start", long_label, False),
        ("done", long_label, True),
        *stages,
        *stages[:3],
        ("failed", "second stage", True),
    ]
    assert "\x1b" not in log.read_text(encoding="utf-8")


def test_an_in_memory_capture_gets_no_progress(monkeypatch):
    """CliRunner's stderr (or a program's capture) is read after the command: no clock times to make it differ."""
    out = io.StringIO()
    monkeypatch.setattr(terminal, "_progress", Console(file=out, force_terminal=False))
    with terminal.step("reading"):
        terminal.phase("not shown")
    assert out.getvalue() == ""


def test_a_command_logs_its_steps_on_stderr_and_keeps_stdout_clean(log, tmp_path):
    (tmp_path / "tx.csv").write_text("customer_id,timestamp,amount\na,2020-01-01,1\nb,2020-01-02,2\n")
    columns = "{customer_id: customer_id, timestamp: timestamp, amount: amount}"
    config = tmp_path / "c.yaml"
    config.write_text(
        f"base: default\ndata:\n  transactions:\n    path: {tmp_path / 'tx.csv'}\n    columns: {columns}\n"
        f"  quarantine_path: {tmp_path / 'quarantine.parquet'}\n"
    )
    result = runner.invoke(app, ["validate", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "accepted" in result.stdout and not any(PROGRESS.match(line) for line in result.output.splitlines())
    assert [(e, has_seconds) for e, _, has_seconds in _events(log)] == [("start", False), ("done", True)]
    assert _events(log)[0][1] == f"reading {tmp_path / 'tx.csv'}"
    log.write_text("")
    quiet = runner.invoke(app, ["-q", "validate", "--config", str(config)])
    assert quiet.exit_code == 0 and quiet.output == "" and log.read_text() == ""


@pytest.mark.parametrize("forced", [{}, {"FORCE_COLOR": "1"}, {"TTY_COMPATIBLE": "1"}])
def test_a_real_process_with_stderr_redirected_to_a_file_logs_plain_lines(tmp_path, forced):
    """Also when rich is told to treat the stream as a terminal (CI services set FORCE_COLOR for coloured logs):
    a spinner's redraws would fill the log."""
    code = "from tiercast.pipeline import terminal\nwith terminal.step('reading x'):\n    print('row')\n"
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}  # rich's tty overrides
    env.update(forced)
    path = tmp_path / "stderr.log"
    with path.open("w", encoding="utf-8") as stream:
        done = subprocess.run(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=stream, text=True, env=env, timeout=60
        )
    assert done.returncode == 0 and done.stdout == "row\n"
    assert _events(path) == [("start", "reading x", False), ("done", "reading x", True)]


def test_every_function_that_starts_phases_finishes_them():
    """A function calling :func:`terminal.phase` is decorated with :func:`terminal.phased` (which ends its last phase);
    otherwise that phase runs on and hides every later step of the command (its log then stops at a ``start:``)."""
    import ast

    root = Path(terminal.__file__).resolve().parent
    unfinished, misplaced = [], []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            decorated = any(isinstance(d, ast.Name) and d.id == "phased" for d in node.decorator_list)
            if isinstance(node, ast.ClassDef):
                misplaced += [f"{path.name}:{node.name}"] if decorated else []
                continue
            calls = [
                c
                for c in ast.walk(node)
                if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id == "phase"
            ]
            if calls and not decorated:
                unfinished.append(f"{path.name}:{node.name}")
    assert unfinished == [] and misplaced == []


def test_the_listed_churn_bands_read_lowest_risk_first():
    """The at-risk list is ranked by value at risk, so either band may come first in it; the summary line names the
    bands in one order."""
    import pandas as pd

    from tiercast.pipeline.cli.summary import listed_bands

    listed = pd.DataFrame({"churn_band": ["high", "medium", "high"], "churn_probability": [0.8, 0.4, 0.7]})
    assert listed_bands(listed) == "medium/high"
    assert listed_bands(listed.iloc[::-1]) == "medium/high"
    assert listed_bands(listed.iloc[:0]) == ""
