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
