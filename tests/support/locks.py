"""Racing two transactions without sleeping: hold the first open until the second is seen
waiting for one of its row locks, then let it go."""

from __future__ import annotations

import threading

from sqlalchemy import text

from db.engine import Database

WAITING = text(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def wait_until_a_writer_waits(db: Database, *, seconds: float = 10.0) -> None:
    """PostgreSQL: until another connection waits for a lock this test's open transaction
    holds. SQLite lets one writer in at a time (BEGIN IMMEDIATE), so there the second writer
    simply runs after the first and there is nothing to wait for."""
    if db.engine.dialect.name != "postgresql":
        return
    pause = threading.Event()
    for _ in range(int(seconds / 0.025)):
        with db.engine.connect() as connection:
            if connection.scalar(WAITING):
                return
        pause.wait(0.025)
    raise AssertionError("the second transaction never waited for the first")
