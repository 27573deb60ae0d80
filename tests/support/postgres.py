"""A throwaway PostgreSQL server that the test run starts and removes itself.

    with TempPostgres() as pg:
        url = pg.create_database("clinicdesk_test")  # SQLAlchemy URL (psycopg 3)

The server runs from a fresh temporary directory, listens on 127.0.0.1 on a free port with
trust authentication, and trades durability for speed (fsync and friends off). initdb and
postgres refuse to run as root, so under root they run as the system user `clinicdesk-pg`,
created on first use. `scripts/ensure-postgres-binaries` installs the server if it is missing.
"""

from __future__ import annotations

import fcntl
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import psycopg
import pytest
from psycopg import sql

SUPERUSER = "postgres"
OS_USER_WHEN_ROOT = "clinicdesk-pg"
READY_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.05

SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "100",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def find_pg_binary(name: str) -> str | None:
    """Path of a PostgreSQL program on PATH or under /usr/lib/postgresql/*/bin (newest first)."""
    on_path = shutil.which(name)
    if on_path:
        return on_path
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_major_version)
    return candidates[-1] if candidates else None


def _major_version(path: str) -> int:
    version = Path(path).parent.parent.name  # /usr/lib/postgresql/<version>/bin/<name>
    return int(version) if version.isdigit() else 0


def postgres_available() -> bool:
    """True when initdb, pg_ctl and postgres can be found, so TempPostgres can start."""
    return _binaries() is not None


def _binaries() -> dict[str, str] | None:
    initdb = find_pg_binary("initdb")
    if initdb is None:
        return None
    # postgres and pg_ctl must come from the same installation as initdb.
    bindir = Path(os.path.realpath(initdb)).parent
    found = {"initdb": initdb}
    for name in ("pg_ctl", "postgres"):
        path = bindir / name
        if not path.exists():
            return None
        found[name] = str(path)
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (shared by the support modules)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    """The system user `name`, created if missing (one creator at a time across processes)."""
    lock_path = Path(tempfile.gettempdir()) / f"{name}-useradd.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/bin/false", name],
            check=False,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"could not create system user {name!r}: {result.stderr}")
        return pwd.getpwnam(name)


class TempPostgres:
    """A private PostgreSQL server for one test session; use as a context manager."""

    def __init__(self) -> None:
        self.port: int | None = None
        self.dir: Path | None = None
        self._binaries: dict[str, str] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._os_user: pwd.struct_passwd | None = None
        self.server_version = 0  # e.g. 150018 for 15.18, read once the server answers

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `postgres` maintenance database."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        self._require_started()
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    @property
    def log_path(self) -> Path:
        self._require_started()
        return self.dir / "server.log"

    def start(self) -> Self:
        binaries = _binaries()
        if not binaries:
            raise RuntimeError(
                "PostgreSQL server binaries not found on PATH or under /usr/lib/postgresql/*/bin;"
                " run scripts/ensure-postgres-binaries"
            )
        self._binaries = binaries
        if os.geteuid() == 0:
            self._os_user = _ensure_os_user(OS_USER_WHEN_ROOT)
        self.dir = Path(tempfile.mkdtemp(prefix="clinicdesk-pg-"))
        if self._os_user:
            os.chown(self.dir, self._os_user.pw_uid, self._os_user.pw_gid)
        self.port = free_port()
        data_dir = self.dir / "data"
        try:
            self._run(
                binaries["initdb"],
                "--pgdata",
                str(data_dir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            )
            settings = {
                **SERVER_SETTINGS,
                "port": str(self.port),
                "unix_socket_directories": f"'{self.dir}'",
            }
            with open(data_dir / "postgresql.conf", "a") as conf:
                conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
            with open(self.log_path, "wb") as log:
                self._process = subprocess.Popen(
                    [binaries["postgres"], "-D", str(data_dir)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.dir,
                    **self._as_os_user(),
                )
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server immediately (no checkpoint) and delete its directory."""
        if self._process is not None:
            if self._process.poll() is None:
                self._run(
                    self._binaries["pg_ctl"],
                    "stop",
                    "--pgdata",
                    str(self.dir / "data"),
                    "-m",
                    "immediate",
                    check=False,
                )
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = self.port = None

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database `name` (a copy of database `template` when given) and return its
        SQLAlchemy URL. A copy is made file by file (STRATEGY FILE_COPY, PostgreSQL 15 and
        later): with fsync off, about half the time of writing the small template through the
        WAL, PostgreSQL 15's default, and it is done once for every PostgreSQL test."""
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
            if self.server_version >= 150000:
                statement = sql.SQL("{} STRATEGY FILE_COPY").format(statement)
        self._execute(statement)
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name`, disconnecting any sessions still using it."""
        self._execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            dbname=dbname,
            autocommit=True,
            # a starved machine (each test worker given a third of a core) took over 2 s to
            # open one: a database's copy failed at set-up with ConnectionTimeout
            connect_timeout=10,
        )

    def _execute(self, statement: sql.Composable) -> None:
        self._require_started()
        with self._connect() as conn:
            conn.execute(statement)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"PostgreSQL exited with code {self._process.returncode}:\n{self._log_text()}"
                )
            try:
                with self._connect() as conn:
                    self.server_version = conn.info.server_version
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"PostgreSQL not ready after {READY_TIMEOUT_S:.0f} s:\n{self._log_text()}"
                    ) from None
                time.sleep(POLL_INTERVAL_S)

    def _log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as error:
            return f"(no server log: {error})"

    def _as_os_user(self) -> dict:
        """subprocess arguments that drop root privileges to the server's OS user."""
        if self._os_user is None:
            return {}
        return {
            "user": self._os_user.pw_uid,
            "group": self._os_user.pw_gid,
            "extra_groups": [],
        }

    def _run(self, *command: str, check: bool = True) -> None:
        result = subprocess.run(
            command,
            check=False,
            cwd=self.dir,
            capture_output=True,
            text=True,
            **self._as_os_user(),
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )

    def _require_started(self) -> None:
        if self.port is None or self.dir is None:
            raise RuntimeError("TempPostgres is not started")


@pytest.fixture(scope="session")
def temp_postgres() -> Iterator[TempPostgres]:
    """One throwaway PostgreSQL server per test session (per xdist worker)."""
    with TempPostgres() as server:
        yield server
