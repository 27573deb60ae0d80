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


class Meeting:
    """Where two racing transactions meet once both have read: `wait()` returns when the other
    is there too (both read before either wrote: the race a test looks for) or, PostgreSQL, as
    soon as the other is seen waiting for a lock the caller's open transaction holds (it was
    held: the fix). SQLite lets one writer in at a time, so the other cannot get there while the
    caller's transaction is open: at once. It stands for a `Barrier(2)` with a fixed timeout,
    which the fixed code always waited out (2 s a test). Once over, later calls pass."""

    def __init__(self, db: Database, *, seconds: float = 10.0) -> None:
        self.db, self.seconds = db, seconds
        self._here: set[int] = set()
        self._over = False
        self._changed = threading.Condition()

    def wait(self) -> None:
        with self._changed:
            self._here.add(threading.get_ident())
            self._changed.notify_all()
            if self._over or self.db.engine.dialect.name != "postgresql":
                return
        for _ in range(int(self.seconds / 0.025)):
            with self._changed:
                if self._over or len(self._here) >= 2:
                    self._over = True
                    return
            with self.db.engine.connect() as connection:
                if connection.scalar(WAITING):
                    with self._changed:
                        self._over = True
                    return
            with self._changed:
                self._changed.wait(0.025)
        raise AssertionError("the other transaction neither got here nor waited for this one")
