"""Shared fixtures. `db` is a fresh SQLite database per test under tests/unit and a fresh
PostgreSQL database (on a throwaway server started by the run) under tests/integration, so the
integration modules can re-run the unit modules' tests unchanged. Each is a copy of one template
database per test process, migrated once; passwords are hashed with a cheap argon2 cost. A test
that asks for `world` gets a copy of a second template with that small practice already in it
(built once per process: 87 ms a test on PostgreSQL, 27 ms on SQLite, two thousand tests)."""

from __future__ import annotations

import copy
import functools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine
from sqlalchemy.util import LRUCache
from streamlit import config as streamlit_config
from streamlit.components.v2 import manifest_scanner
from streamlit.runtime.scriptrunner.script_cache import ScriptCache

from core.kernel import accounts
from core.startup import install_session_rules
from db import engine as db_engine
from db import migrate
from db.engine import Database

pytest_plugins = ["tests.support.browser", "tests.support.postgres", "tests.support.smtp"]


def _backend(request: pytest.FixtureRequest) -> str:
    return "postgresql" if "integration" in request.node.path.parts else "sqlite"


accounts.configure_hashing(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))

# Every AppTest run scans the metadata of every installed distribution for component manifests
# (test_foundation_pages.py alone: 26.0 s, 22.9 s scanning once); the installed packages do not
# change during a run. Test set-up only: the app's one scan per server start stays Streamlit's.
manifest_scanner.scan_component_manifests = functools.cache(
    manifest_scanner.scan_component_manifests
)

# Each AppTest run compiles app.py and its page scripts afresh (a new ScriptCache per run): one
# compiled copy per file and version serves the whole test process.
_compile_script = ScriptCache.get_bytecode


@functools.cache
def _script_bytecode(path: str, _version: int, _magic: bool) -> Any:
    return _compile_script(ScriptCache(), path)


def _cached_bytecode(self: ScriptCache, script_path: str) -> Any:
    path = os.path.abspath(script_path)
    magic = bool(streamlit_config.get_option("runner.magicEnabled"))
    return _script_bytecode(path, os.stat(path).st_mtime_ns, magic)


ScriptCache.get_bytecode = _cached_bytecode


# Every test opens its own Database, so every test's engine started with an empty compiled-SQL
# cache, whose key holds the engine's dialect object: statements were compiled again for each
# test (a sixth of the workers' CPU in a profile of make test). Engines of one kind in a test
# process share their first one's dialect and cache: the app's one engine per process compiles
# each statement once too. The pool, its connections and their events stay each engine's own.
_POOL_ONLY = {"connect_args", "hide_parameters", "pool_pre_ping", "pool_size", "max_overflow"}
_FIRST_ENGINES: dict = {}
SHARED_SQL_CACHE = 4000  # statements, not 500: the whole suite's, not one app's


def _sharing_compiled_sql(create: Callable[..., Engine]) -> Callable[..., Engine]:
    @functools.wraps(create)
    def create_engine(url, **kwargs) -> Engine:
        engine = create(url, **kwargs)
        if set(kwargs) <= _POOL_ONLY:  # no option of the dialect's own
            first = _FIRST_ENGINES.get(engine.url.drivername)
            if first is None or first.dialect.server_version_info is None:  # not connected yet
                engine._compiled_cache = LRUCache(SHARED_SQL_CACHE)
                _FIRST_ENGINES[engine.url.drivername] = engine
            else:
                engine.dialect, engine._compiled_cache = first.dialect, first._compiled_cache
        return engine

    return create_engine


db_engine.create_engine = _sharing_compiled_sql(db_engine.create_engine)


def _migrated(url: str) -> None:
    template = Database(url)
    migrate.upgrade(template.engine)
    template.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    _migrated(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template(request: pytest.FixtureRequest) -> str:
    name = f"tpl_{uuid.uuid4().hex[:12]}"
    _migrated(request.getfixturevalue("temp_postgres").create_database(name))
    return name


@pytest.fixture(scope="session")
def sqlite_world_template(sqlite_template, tmp_path_factory) -> tuple[Path, object]:
    path = tmp_path_factory.mktemp("template") / "world.db"
    shutil.copyfile(sqlite_template, path)
    return path, _build_world(f"sqlite:///{path}")


@pytest.fixture(scope="session")
def postgres_world_template(request: pytest.FixtureRequest) -> tuple[str, object]:
    name = f"tpw_{uuid.uuid4().hex[:12]}"
    server = request.getfixturevalue("temp_postgres")
    url = server.create_database(name, template=request.getfixturevalue("postgres_template"))
    return name, _build_world(url)


def _build_world(url: str):
    from tests.factories import build_world

    install_session_rules()
    database = Database(url)
    with database.write() as session:
        built = build_world(session)
    database.dispose()  # a template: no connection may stay open on it
    return built


RETIRED: list[str] = []  # this process's used PostgreSQL test databases, dropped in batches
RETIRE_BATCH = 20  # a CREATE DATABASE right after a DROP waits ~0.4 s; after a CREATE it does not


def _retire(server, name: str) -> None:
    RETIRED.append(name)
    if len(RETIRED) >= RETIRE_BATCH:  # bounded disk (about 10 MB each), one slow create per batch
        for old in RETIRED:
            server.drop_database(old)
        RETIRED.clear()


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Database]:
    with_world = "world" in request.fixturenames  # a copy of the template the world is in
    if _backend(request) == "postgresql":
        server = request.getfixturevalue("temp_postgres")
        name = f"t_{uuid.uuid4().hex[:12]}"
        if with_world:
            template, request.node.built_world = request.getfixturevalue("postgres_world_template")
        else:
            template = request.getfixturevalue("postgres_template")
        database = Database(server.create_database(name, template=template))
    else:
        path = tmp_path / "test.db"
        if with_world:
            template, request.node.built_world = request.getfixturevalue("sqlite_world_template")
        else:
            template = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, path)
        database = Database(f"sqlite:///{path}")
    install_session_rules()
    yield database
    database.dispose()
    if _backend(request) == "postgresql":
        _retire(server, name)  # the throwaway server and its files go at the end of the run


@pytest.fixture
def world(db, request):
    """A small practice: one clinic, provider, service and patient, and a user per role (in the
    database `db` copied; a copy of its ids and actors for each test)."""
    return copy.deepcopy(request.node.built_world)


_POSTGRES_FIXTURES = {"db", "temp_postgres", "postgres_template", "postgres_world_template"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A unit test re-run by a PostgreSQL twin (tests/integration/*_pg.py imports the unit
    module) that asks for no database runs the same code there as here (a parser, a clock rule,
    a CLI on its own SQLite file): it runs once, under tests/unit, and is deselected in the twin.
    Tests written in the twin itself always run."""
    twins, kept = [], []
    for item in items:
        function = getattr(item, "function", None)
        rerun = function is not None and function.__module__.startswith("tests.unit.")
        if rerun and "integration" in item.path.parts:
            if not _POSTGRES_FIXTURES & set(item.fixturenames):
                twins.append(item)
                continue
        kept.append(item)
    if twins:
        config.hook.pytest_deselected(items=twins)
        items[:] = kept


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: nothing may silently not run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") == "true" and skipped and exitstatus == 0:
        reporter.write_line(f"CI=true: {skipped} skipped test(s) count as failures.", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
