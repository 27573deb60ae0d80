"""Engine and sessions for SQLite (embedded default) and PostgreSQL (psycopg 3).

Callers own transactions (`with database.write() as session: service(session, ...)`);
services never commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, *, connect_timeout: int = 5, **kwargs) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout, PostgreSQL a pool
    and a connect timeout (seconds), so an unreachable host fails fast instead of hanging.
    A database error names its statement but not the values bound to it (patient data, a
    message's live link, a password's hash): an unexpected error is logged whole."""
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("connect_args", {"connect_timeout": connect_timeout})
    kwargs.setdefault("max_overflow", 10)
    engine = create_engine(url, **kwargs)
    pool_log = engine.pool.logger
    if isinstance(pool_log, logging.Logger) and LostCursorClose not in map(type, pool_log.filters):
        pool_log.addFilter(LostCursorClose((engine.dialect.loaded_dbapi.OperationalError,)))
    return engine


class LostCursorClose(logging.Filter):
    """Drops SQLAlchemy's "Error closing cursor" traceback when the connection itself is gone:
    a streamed read (a server-side cursor) cut by an outage cannot close on the server, and the
    outage is already reported once, by the page or the jobs loop (core.jobs)."""

    def __init__(self, lost: tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self.lost = lost

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (record.msg == "Error closing cursor" and isinstance(error, self.lost))


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # BEGIN is issued by _sqlite_begin
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn) -> None:
    # A writing transaction takes SQLite's write lock up front, so a second writer waits
    # (busy_timeout) and then sees the first one's result instead of failing mid-way.
    immediate = conn.get_execution_options().get("sqlite_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """One database: a reader and a writer session factory over one connection pool."""

    def __init__(self, url: str, *, info: dict | None = None, **engine_kwargs) -> None:
        """`info` is handed to every session (Session.info): the app's explicit dependencies,
        such as the public base URL for patient links."""
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self._reader = sessionmaker(self.engine, expire_on_commit=False, info=info)
        self._writer = sessionmaker(
            self.engine.execution_options(sqlite_write=True), expire_on_commit=False, info=info
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error."""
        with self._writer.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session:
            yield session

    def reachable(self) -> bool:
        """Whether a fresh connection answers (a lock or a bad query is not "unreachable")."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except DBAPIError:
            return False
        return True

    def dispose(self) -> None:
        self.engine.dispose()
