"""Run the real ``tiercast`` command in a subprocess (:func:`cli`) or the same command line in this process
(:func:`invoke`: the same error boundary, without a fresh interpreter per case) and check the error contract: exit
0 or 2, a failure is one line on stderr, never a traceback (unless ``--debug``), and no output file changed or left
partial.

Set ``TIERCAST_STDERR_DIR`` to keep every run's stderr there (for ``grep -r Traceback``).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TIERCAST = Path(sys.executable).with_name("tiercast")
_counter = itertools.count()


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        """stderr lines other than progress lines, MLflow's own log lines and one-line warnings."""
        from tiercast.pipeline.terminal import PROGRESS_LINE

        return [
            ln
            for ln in self.stderr.splitlines()
            if ln.strip()
            and not ln.startswith("warning:")
            and not PROGRESS_LINE.match(ln)
            and " INFO mlflow" not in ln
            and " WARNING mlflow" not in ln
        ]


def cli(*args: str, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None) -> CliResult:
    """``tiercast ARGS`` in ``cwd`` (MLflow store from the config or the folder, never the caller's environment)."""
    full_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    full_env.update(env or {})
    proc = subprocess.run(
        [str(TIERCAST), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env, check=False
    )
    result = CliResult(tuple(args), proc.returncode, proc.stdout, proc.stderr)
    keep = os.environ.get("TIERCAST_STDERR_DIR")
    if keep:
        folder = Path(keep)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{next(_counter)}-{'debug-' if '--debug' in args else ''}{args[0] if args else 'none'}"
        (folder / f"{name}.txt").write_text(f"$ tiercast {' '.join(args)}\n[exit {proc.returncode}]\n{proc.stderr}")
    return result


def invoke(*args: str, cwd: Path, env: dict[str, str] | None = None) -> CliResult:
    """``tiercast ARGS`` run in this process from ``cwd``, stdout and stderr captured apart, as :func:`cli` gives
    them (MLflow store from the config or the folder, never the caller's environment)."""
    from typer.testing import CliRunner

    from tiercast.pipeline.cli import app

    runner = CliRunner(env={"MLFLOW_TRACKING_URI": None, **(env or {})})
    here = Path.cwd()
    os.chdir(cwd)
    try:
        done = runner.invoke(app, list(args), prog_name="tiercast")
    finally:
        os.chdir(here)
    code = done.exit_code
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        raise AssertionError(f"tiercast {' '.join(args)} raised through the error boundary") from done.exception
    return CliResult(tuple(args), code, done.stdout, done.stderr)


def assert_clean_failure(result: CliResult, *needles: str, code: int = 2) -> str:
    """The command failed with ``code`` and one error line containing every needle; returns that line."""
    assert result.code == code, f"exit {result.code} for {result.args}:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.error_lines
    assert len(lines) == 1, f"{len(lines)} stderr lines for {result.args}:\n{result.stderr}"
    assert lines[0].startswith("error:"), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> content hash of every file under ``folder`` (MLflow's store and artifacts excluded)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not rel.startswith(("mlruns", "mlflow.db", ".hypothesis")):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def temporaries(folder: Path) -> list[Path]:
    """Partial outputs left behind by an atomic write (``.NAME.PID.*.tmp``)."""
    return sorted(folder.rglob(".*.tmp"))
