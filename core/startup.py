"""Opening the database at start: reachable, and migrated (SQLite) or current (PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from core.analytics import cancellation_rollups
from core.kernel.config import Settings
from core.kernel.errors import DatabaseUnavailable
from db import migrate as migrations
from db.engine import Database


def open_database(settings: Settings, *, migrate: bool | None = None) -> Database:
    """Connect and check the schema. `migrate=None`: SQLite is migrated automatically and an
    out-of-date PostgreSQL is refused with the command to run; `migrate=True` always upgrades."""
    try:
        database = Database(
            settings.database_url,
            info={"base_url": settings.base_url},
            connect_timeout=settings.connect_timeout,
        )
        with database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, ArgumentError, ImportError, ValueError) as exc:
        raise DatabaseUnavailable(
            f"Cannot open the database at {_safe(settings.database_url)}: "
            f"{_first_line(exc)}. Check DATABASE_URL and that the server is running."
        ) from None
    cancellation_rollups.track_changes()
    if migrate or (migrate is None and database.dialect == "sqlite"):
        migrations.upgrade(database.engine)
    elif not migrations.is_current(database.engine):
        raise DatabaseUnavailable(
            "The database schema is out of date. Run `python -m core.cli migrate` "
            "(or `make migrate`) once, then start ClinicDesk again."
        )
    return database


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable URL)"


def _first_line(exc: Exception) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return message[0].rstrip(".") if message else type(exc).__name__
