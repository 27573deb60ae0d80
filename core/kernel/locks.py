"""A lock on a name, held until the transaction ends: for a check that has no row to lock (a
count, a key's first use). PostgreSQL takes an advisory lock; SQLite needs none, as a writing
transaction holds the database's write lock (BEGIN IMMEDIATE, db.engine)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session


def hold(session: Session, *names: str) -> None:
    """Lock each name until the transaction ends, in one order, so two never wait on each other."""
    if session.get_bind().dialect.name == "postgresql":
        for name in sorted(names):
            session.execute(select(func.pg_advisory_xact_lock(func.hashtext(name))))
