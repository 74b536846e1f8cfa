"""Settings for the whole test session."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session", autouse=True)
def new_sqlite_stores_copy_one_migrated_store(tmp_path_factory):
    """A new sqlite MLflow store opened in this process starts as a copy of one store this process migrated once
    (SQLite's backup API, page by page): creating a store runs MLflow's schema migrations one by one, about a
    second each time, and the tests create dozens of stores. The copy is the same database the migrations give,
    under the same MLflow version. Subprocesses (the real command, the killed and raced starts, the interrupted
    migration of tests/pipeline/test_store.py) still create and migrate their stores themselves."""
    from mlflow.store.db import utils
    from mlflow.store.model_registry import sqlalchemy_store as registry_store
    from sqlalchemy import create_engine

    migrate = utils._initialize_tables
    template = tmp_path_factory.mktemp("mlflow-template") / "migrated.db"

    def from_template(engine) -> None:  # noqa: ANN001 - MLflow's SQLAlchemy engine
        if engine.url.get_backend_name() != "sqlite" or engine.url.database in (None, "", ":memory:"):
            migrate(engine)
            return
        if not template.exists():  # the first store of the process: migrated once, as MLflow does, then kept
            partial = template.with_suffix(".partial")
            made = create_engine(f"sqlite:///{partial}")
            migrate(made)
            made.dispose()
            partial.replace(template)
        target = engine.raw_connection()
        try:
            with sqlite3.connect(template) as source:
                source.backup(target.driver_connection)
        finally:
            target.close()

    patch = pytest.MonkeyPatch()
    patch.setattr(utils, "_initialize_tables", from_template)
    patch.setattr(registry_store, "_initialize_tables", from_template)
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def mlflow_uri_variables_restored():
    """Each test leaves ``MLFLOW_TRACKING_URI`` and ``MLFLOW_REGISTRY_URI`` as it found them:
    ``mlflow.set_tracking_uri`` copies its URI into the environment, and a copy left behind by one test would point
    a later test on the same worker at another test's store."""
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    before = {name: os.environ.get(name) for name in names}
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _group(nodeid: str) -> str:
    """The unit of work of a test when the suite runs on several workers (`make test` and `make test-all` run
    ``-n 2``): every Spark test in one unit, so one worker starts the session's Spark and builds the Spark module
    fixtures once; every other module its own unit, so its module fixtures (a trained project, a store) are built
    once."""
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


#: The longest units after Spark, longest first (from ``--durations`` on 2 cores: 125 s down to 15 s in `make
#: test`; the units marked heavy in `make test-all` placed by their length there). Handing out the long units first
#: and the many short ones last lets both workers finish within seconds of each other; a unit missing here only
#: runs later, in collection order.
LONG_UNITS = (
    "tests/pipeline/test_cli_e2e.py",
    "tests/pipeline/test_cli_errors.py",
    "tests/pipeline/test_promotion.py",
    "tests/features/test_properties.py",
    "tests/pipeline/test_train.py",
    "tests/pipeline/test_mlflow_server.py",
    "tests/pipeline/test_wheel.py",
    "tests/pipeline/test_io.py",
    "tests/pipeline/test_store.py",
    "tests/models/test_stacking.py",
    "tests/pipeline/test_loader.py",
    "tests/benchmarks/test_cdnow.py",
    "tests/test_docs.py",
    "tests/fuzz/test_cli_fuzz.py",
    "tests/pipeline/test_report_list.py",
    "tests/pipeline/test_tier_study.py",
    "tests/features/test_cutoff_queries.py",
    "tests/pipeline/test_ingest_sql.py",
    "tests/pipeline/test_sampling.py",
    "tests/pipeline/test_monitor.py",
    "tests/pipeline/test_custom_tiers.py",
    "tests/pipeline/test_backtest.py",
)


def _rank(item: pytest.Item) -> int:
    group = _group(item.nodeid)
    if group == "spark":
        return 0
    return 1 + LONG_UNITS.index(group) if group in LONG_UNITS else 1 + len(LONG_UNITS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # the Spark unit is the longest: started first, the other units are shared out while it runs (a stable sort:
    # each unit's tests keep their order)
    items.sort(key=_rank)
