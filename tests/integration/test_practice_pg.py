"""The practice set-up and practice-file tests, the one-laser race included, again on a real
PostgreSQL."""

import pytest

from core import demo
from tests.unit.test_practice import *  # noqa: F403
from tests.unit.test_practice_file import *  # noqa: F403


@pytest.fixture
def demo_db(db):
    """The demo practice seeded as of today on PostgreSQL (the unit module copies the run's
    SQLite demo template instead)."""
    with db.write() as session:
        demo.seed_demo(session)
    return db
