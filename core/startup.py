"""Opening the database at start: reachable, and migrated (SQLite) or current (PostgreSQL).
A new SQLite file and its folder are created readable by their owner only (0600 / 0700)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from core.analytics import cancellation_rollups
from core.feedback import surveys
from core.kernel import text as text_rule
from core.kernel.config import Settings, ensure_private_folder
from core.kernel.errors import ConfigurationError, DatabaseUnavailable
from core.messaging import visit_calendar
from core.patients import landlines
from core.patients import search as patient_search
from core.scheduling import visits
from db import migrate as migrations
from db.engine import Database


def install_session_rules() -> None:
    """What every session does, registered explicitly (never as an import side effect): typed
    text cleaned and bounded (core.kernel.text), then each patient's search text folded from
    the cleaned names (core.patients.search), each stored phone classified as a landline or
    not (core.patients.landlines), days changed marked for the cancellation roll-ups, a
    completed visit's thank-you given its survey line by the feedback rules.
    Idempotent; open_database calls it, and so do the test fixtures."""
    text_rule.install()  # before the search text, which is folded from the cleaned names
    patient_search.keep_search_text()
    landlines.keep_landlines()
    cancellation_rollups.track_changes()
    visits.use_survey_line(surveys.thank_you_survey)


def open_database(settings: Settings, *, migrate: bool | None = None) -> Database:
    """Connect and check the schema. `migrate=None`: SQLite is migrated automatically and an
    out-of-date PostgreSQL is refused with the command to run; `migrate=True` always upgrades."""
    _private_sqlite_file(settings)
    try:
        database = Database(
            settings.database_url,
            # what every session's messages say they come from: the visit files' organizer
            info={
                "base_url": settings.base_url,
                visit_calendar.SENDER: settings.smtp.sender
                if settings.smtp
                else visit_calendar.DEFAULT_SENDER,
            },
            connect_timeout=settings.connect_timeout,
        )
        with database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, ArgumentError, ImportError, ValueError) as exc:
        raise DatabaseUnavailable(
            f"Cannot open the database at {_safe(settings.database_url)}: "
            f"{_first_line(exc)}. Check DATABASE_URL and that the server is running."
        ) from None
    install_session_rules()
    if migrate or (migrate is None and database.dialect == "sqlite"):
        migrations.upgrade(database.engine)
    elif not migrations.is_current(database.engine):
        raise DatabaseUnavailable(
            "The database schema is out of date. Run `python -m core.cli migrate` "
            "(or `make migrate`) once, then start ClinicDesk again."
        )
    return database


def _private_sqlite_file(settings: Settings) -> None:
    try:
        url = make_url(settings.database_url)
    except (ArgumentError, ValueError):
        return  # reported with the URL when the engine is made
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    path = Path(url.database).absolute()
    inside = path.parent == settings.data_dir.absolute()
    ensure_private_folder(path.parent, "CLINICDESK_DATA_DIR" if inside else "DATABASE_URL")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigurationError(
            f"DATABASE_URL: cannot create the database file {str(path)!r} "
            f"({exc.strerror or exc}). Choose a folder ClinicDesk may write to."
        ) from None


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable URL)"


def _first_line(exc: Exception) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return message[0].rstrip(".") if message else type(exc).__name__
