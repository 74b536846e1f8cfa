"""Settings for the whole test session."""

from __future__ import annotations

import sqlite3

import pytest


@pytest.fixture(scope="session", autouse=True)
def sqlite_stores_skip_fsync():
    """The MLflow stores the tests open in this process (SQLite through SQLAlchemy) write without waiting for the
    disk (``PRAGMA synchronous=OFF``): a store's creation runs dozens of schema migrations and every logged value
    is a commit, each an fsync otherwise. What is written, and what a killed process leaves, is the same; only a
    power cut could lose more. Subprocesses (the real command, the killed and raced starts) keep SQLite's
    default."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def no_fsync(dbapi_connection, _record) -> None:  # noqa: ANN001 - SQLAlchemy's event signature
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute("PRAGMA synchronous=OFF")

    event.listen(Engine, "connect", no_fsync)
    yield
    event.remove(Engine, "connect", no_fsync)


def _group(nodeid: str) -> str:
    """The unit of work of a test when the suite runs on several workers (`make test` runs ``-n 2``): every Spark
    test in one unit, so one worker starts the session's Spark and builds the Spark module fixtures once; every
    other module its own unit, so its module fixtures (a trained project, a store) are built once."""
    path = nodeid.split("::", 1)[0]
    return "spark" if path.startswith("tests/spark/") else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN001, ANN201 - pytest-xdist's hook
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        """Whole units (see :func:`_group`) to whichever worker is free, in collection order."""

        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid)

    config.option.loadscopereorder = False  # keep the order below: the longest unit first
    return ByModule(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # the Spark unit is the longest: started first, the other units are shared out while it runs
    items.sort(key=lambda item: _group(item.nodeid) != "spark")
