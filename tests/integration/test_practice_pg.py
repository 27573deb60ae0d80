"""The practice set-up and practice-file tests, the one-laser race included, again on a real
PostgreSQL."""

import pytest

from core import demo
from db.types import utcnow
from tests.unit.test_practice import *  # noqa: F403
from tests.unit.test_practice_file import *  # noqa: F403


@pytest.fixture
def demo_db(db):
    """The demo practice on PostgreSQL, as the demo seeds it, without its patients and visits
    (a file of the practice holds none; seeding them cost 17 s here). The unit module copies
    the run's SQLite demo template, visits and all, so the export is checked against both."""
    with db.write() as session:
        demo.seed_practice(session, utcnow())
    return db
