"""The ``tiercast`` command line (typer). Each command is a thin shell over a job of :mod:`tiercast.pipeline.jobs`.

:data:`app` is the console script; importing this package registers every command on it, in the order of
``tiercast --help``.
"""

from tiercast.pipeline.cli import benchmark, data, jobs, listing, registry  # noqa: F401 - each registers its commands
from tiercast.pipeline.cli.base import app

__all__ = ["app"]

if __name__ == "__main__":  # pragma: no cover - spark-submit runs this file
    app()
