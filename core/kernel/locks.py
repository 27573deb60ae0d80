"""A lock on a name, held until the transaction ends: for a check that has no row to lock (a
count, a key's first use). PostgreSQL takes an advisory lock; SQLite needs none, as a writing
transaction holds the database's write lock (BEGIN IMMEDIATE, db.engine). And a settings row
locked for the transaction, made on first use (`setting_row`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db.models import Setting


def hold(session: Session, *names: str) -> None:
    """Lock each name until the transaction ends, in one order, so two never wait on each other."""
    if session.get_bind().dialect.name == "postgresql":
        for name in sorted(names):
            session.execute(select(func.pg_advisory_xact_lock(func.hashtext(name))))


def setting_row(session: Session, key: str, value: Any = None) -> Setting:
    """The settings row `key`, locked until the transaction ends, made with `value` if there was
    none. Two transactions making it at once both go on, the second once the first has ended
    (a plain INSERT failed the second with a duplicate key: on a new practice's first run, a
    background job of each server failed at once)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    made = insert(Setting).values(key=key, value=value if value is not None else {})
    session.execute(made.on_conflict_do_nothing(index_elements=[Setting.key]))
    locked = select(Setting).where(Setting.key == key).with_for_update()
    return session.execute(locked.execution_options(populate_existing=True)).scalar_one()
