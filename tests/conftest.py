"""Shared fixtures. `db` is a fresh SQLite database per test under tests/unit and a fresh
PostgreSQL database (on a throwaway server started by the run) under tests/integration, so the
integration modules can re-run the unit modules' tests unchanged."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from core.analytics import cancellation_rollups
from db.engine import Database
from db.models import Base
from tests.support.browser import chromium_browser  # noqa: F401  (fixture)
from tests.support.postgres import temp_postgres  # noqa: F401  (fixture)
from tests.support.smtp import loopback_smtp  # noqa: F401  (fixture)


def _backend(request: pytest.FixtureRequest) -> str:
    return "postgresql" if "integration" in request.node.path.parts else "sqlite"


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Database]:
    if _backend(request) == "postgresql":
        server = request.getfixturevalue("temp_postgres")
        name = f"t_{uuid.uuid4().hex[:12]}"
        database = Database(server.create_database(name))
    else:
        database = Database(f"sqlite:///{tmp_path / 'test.db'}")
    Base.metadata.create_all(database.engine)
    cancellation_rollups.track_changes()
    yield database
    database.dispose()
    if _backend(request) == "postgresql":
        server.drop_database(name)


@pytest.fixture
def world(db):
    """A small practice: one clinic, provider, service and patient, and a user per role."""
    from tests.factories import build_world

    with db.write() as session:
        return build_world(session)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: nothing may silently not run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") == "true" and skipped and exitstatus == 0:
        reporter.write_line(f"CI=true: {skipped} skipped test(s) count as failures.", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
