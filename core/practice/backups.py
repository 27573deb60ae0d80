"""Backups of the whole database: one taken on demand (`python -m core.cli backup`), one a
night by the jobs loop (`backup_job`), and a SQLite backup put back (`restore_sqlite`).

- SQLite: a copy through SQLite's online backup API (`sqlite3.Connection.backup`, in one step:
  one read snapshot, so the copy is consistent while the app keeps writing; a file copy would
  miss what is still in the write-ahead log, or tear a page being written), then checked:
  `PRAGMA integrity_check` on the copy, and its schema at this ClinicDesk's head revision.
- PostgreSQL: `pg_dump --format=custom` (PATH first, else /usr/lib/postgresql/*/bin), refused
  with what to install when it is missing or older than the server; read back with
  `pg_restore --list` when pg_restore is beside it.

A copy is written under a temporary name, owner-only (0600), and takes its name inside the
transaction that audits it as an export (core.kernel.exports): no file without its audit event,
no audit event without its file. The nightly backup runs in NIGHT hours at the first clinic (or
at any hour once the last is LATE), is claimed in `settings` so two servers make one, goes to
DATA_DIR/backups/clinicdesk-YYYY-MM-DD.(db|dump), and the folder keeps the KEEP_DAILY newest
and the KEEP_WEEKLY newest Sunday copies. The last backup (time, file, host) is remembered for
the Practice set-up page (`last_backup`).

Owns: the settings rows `backup_nightly` and `backup_last`. May import core.kernel and db only.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import SYSTEM, Actor, Permission, ensure
from core.kernel.clock import to_local, utcnow
from core.kernel.config import Settings, ensure_private_folder
from core.kernel.errors import ConfigurationError, Conflict, ValidationError
from core.kernel.exports import record_export
from core.kernel.locks import setting_row
from db import migrate as migrations
from db.engine import Database
from db.models import Clinic, Patient, Setting

# a backup holds every record and every account (their password hashes): the owner's
PERMISSION = Permission.USERS_MANAGE
NIGHT = range(1, 5)  # clinic-local hours in which the nightly backup runs
LATE = timedelta(hours=36)  # no backup for this long: one runs whatever the hour
LEASE = timedelta(minutes=30)  # a claimed backup not done by then has stopped: tried again
SKEW = timedelta(minutes=10)  # a time further ahead than this was written by a clock set wrong
WARN_AFTER = timedelta(days=2)  # the Practice set-up page warns after this without a backup
KEEP_DAILY = 7
KEEP_WEEKLY = 4  # Sunday copies
CLAIM = "backup_nightly"  # {"since": first seen, "day": last night's day done, "claimed_at"}
LAST = "backup_last"  # {"at", "file", "host"}: the last backup written, by any means
FOLDER = "backups"  # in the data folder
SUFFIX = {"sqlite": ".db", "postgresql": ".dump"}
NIGHTLY = re.compile(r"^clinicdesk-(\d{4}-\d{2}-\d{2})\.(db|dump)$")
SQLITE_HEADER = b"SQLite format 3\x00"
BEFORE_RESTORE = ".before-restore"
HELD = {"patients": "patients", "appointments": "appointments", "users": "accounts"}


@dataclass(frozen=True)
class Backup:
    """A backup written and checked."""

    path: Path
    size: int  # bytes
    patients: int
    appointments: int | None  # counted in the copy (SQLite); None for a dump
    revision: str | None  # the copy's schema revision (SQLite)


@dataclass(frozen=True)
class LastBackup:
    at: datetime
    file: str
    host: str


@dataclass(frozen=True)
class Contents:
    """What a SQLite backup file holds, once checked."""

    revision: str
    patients: int
    appointments: int
    users: int


@dataclass(frozen=True)
class Restored:
    source: Path
    target: Path
    contents: Contents
    kept: Path | None  # the database replaced, kept beside it
    migrated: bool  # the backup was made by an older ClinicDesk: its schema needs upgrading


def nightly_name(day: date, dialect: str) -> str:
    return f"clinicdesk-{day.isoformat()}{SUFFIX[dialect]}"


def manual_name(now: datetime, dialect: str) -> str:
    """A backup taken by hand; not a nightly name, so the rotation never deletes it."""
    return f"clinicdesk-{now:%Y-%m-%d-%H%M%S}{SUFFIX[dialect]}"


def take_backup(
    database: Database,
    actor: Actor,
    out: Path,
    *,
    replace: bool = False,
    night: date | None = None,
) -> Backup:
    """Write a checked backup of `database` to `out` (its folder must exist). An existing `out`
    is refused unless `replace`. Audited as an export, and remembered as the last backup, in
    the transaction in which the file takes its name; `night` marks that night's backup done."""
    ensure(actor, PERMISSION)
    out = Path(out)
    if out.is_dir():
        raise ValidationError(f"{out} is a folder: give a file name, like {out / 'backup.db'}.")
    if not out.parent.is_dir():
        raise ValidationError(f"The folder {out.parent} does not exist: create it first.")
    if out.exists() and not replace:
        raise Conflict(f"{out} exists already: give another file name, or name it in --out.")
    handle, name = tempfile.mkstemp(prefix=".clinicdesk-backup-", suffix=".part", dir=out.parent)
    os.close(handle)  # made owner-only (0600) by mkstemp; the copy keeps its mode
    part = Path(name)
    try:
        if database.dialect == "sqlite":
            _sqlite_copy(_sqlite_path(database), part)
            contents = check_backup(part, current=True)
            patients, appointments, revision = (
                contents.patients,
                contents.appointments,
                contents.revision,
            )
        else:
            _pg_dump(database, part)
            patients, appointments, revision = None, None, None
        with database.write() as session:
            if patients is None:
                patients = session.scalar(select(func.count()).select_from(Patient)) or 0
            record_export(
                session,
                actor,
                "backup",
                patients,
                {"file": str(out.absolute()), "database": database.dialect},
                permission=Permission.DATA_EXPORT,
            )
            _remember(session, out, night)
            _place(part, out, replace)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
    return Backup(out, out.stat().st_size, patients, appointments, revision)


def _place(part: Path, out: Path, replace: bool) -> None:
    if replace:
        os.replace(part, out)
        return
    try:
        os.link(part, out)  # never over a file made since the check
    except FileExistsError:
        raise Conflict(f"{out} exists already: give another file name.") from None


def _remember(session: Session, out: Path, night: date | None) -> None:
    now = utcnow()
    last = setting_row(session, LAST)
    last.value = {"at": now.isoformat(), "file": str(out.absolute()), "host": socket.gethostname()}
    if night is not None:
        claim = setting_row(session, CLAIM)
        claim.value = {**(claim.value or {}), "day": night.isoformat(), "claimed_at": None}


# --- SQLite -------------------------------------------------------------------------------


def _sqlite_path(database: Database) -> Path:
    name = database.engine.url.database
    if not name or name == ":memory:":
        raise ValidationError("An in-memory database cannot be backed up.")
    return Path(name).absolute()


def _sqlite_copy(source: Path, target: Path) -> None:
    """The online backup API in one step (pages=-1): one read transaction over the whole
    copy, so it is one committed state however much is written meanwhile (in WAL mode
    writers go on; the copy includes what is still in the write-ahead log)."""
    with (
        contextlib.closing(sqlite3.connect(source, timeout=30)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst, pages=-1)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file


def check_backup(path: Path, *, current: bool = False) -> Contents:
    """What the SQLite backup `path` holds, or a ValidationError saying why it is not a
    ClinicDesk backup: not an SQLite file, damaged (integrity_check), without ClinicDesk's
    schema version, or made by a newer ClinicDesk (`current`: not at the head revision)."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"{path} does not exist (or is not a file).")
    with path.open("rb") as file:
        if file.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise ValidationError(f"{path} is not a ClinicDesk backup: not an SQLite database.")
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        ) as con:
            problems = [row[0] for row in con.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise ValidationError(
                    f"{path} is damaged (integrity check: {'; '.join(problems[:3])}): "
                    "restore another backup."
                )
            try:
                [revision] = con.execute("SELECT version_num FROM alembic_version").fetchone()
                counts = [
                    con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
                    for table in HELD
                ]
            except (sqlite3.OperationalError, TypeError):
                raise ValidationError(
                    f"{path} is an SQLite database but not a ClinicDesk backup (no ClinicDesk "
                    "schema version in it)."
                ) from None
    except sqlite3.DatabaseError as error:
        raise ValidationError(f"{path} cannot be read as a backup: {error}.") from None
    head = migrations.head_revision()
    if revision != head and (current or revision not in _known_revisions()):
        raise ValidationError(
            f"{path} has schema revision {revision}, which this ClinicDesk (at {head}) does "
            "not know: it was made by another version. Use the ClinicDesk that made it."
        )
    if current:
        _opens_at_head(path)
    return Contents(revision, *counts)


@functools.cache
def _known_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrations.alembic_config("sqlite://"))
    return frozenset(rev.revision for rev in script.walk_revisions())


def _opens_at_head(path: Path) -> None:
    """The copy opens through SQLAlchemy and Alembic reads it at the head revision (nothing
    to migrate), without WAL pragmas that would add files beside it."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        if not migrations.is_current(engine):
            raise ValidationError(f"{path} is not at the head revision after copying.")
    finally:
        engine.dispose()


def restore_sqlite(source: Path, target: Path, *, replace: bool = False) -> Restored:
    """Put the backup `source` in place of the SQLite database `target`, through the online
    backup API (other connections see the restored database, WAL included). A target holding
    data is refused unless `replace`; it is then kept beside it (TARGET.before-restore, or
    .before-restore-2, … when that exists)."""
    source, target = Path(source).absolute(), Path(target).absolute()
    contents = check_backup(source)
    if source == target:
        raise ValidationError(f"{source} is the database itself: name a backup file.")
    held = _held(target)
    kept = None
    if held:
        if not replace:
            raise Conflict(
                f"The database {target} holds data ({held}): give --replace to put the backup "
                f"in its place (the database replaced is kept as {target.name}{BEFORE_RESTORE})."
            )
        kept = _free(target.with_name(target.name + BEFORE_RESTORE))
        _keep(target, kept)
    elif not target.exists():
        ensure_private_folder(target.parent, "DATABASE_URL")
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        with (
            contextlib.closing(sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)) as src,
            contextlib.closing(sqlite3.connect(target, timeout=30)) as dst,
        ):
            src.backup(dst, pages=-1)
    except sqlite3.Error as error:
        aside = f"; the database as it was is kept as {kept}" if kept else ""
        raise ValidationError(
            f"The backup could not be written into {target} ({error}){aside}. Stop the app, "
            f"move {target.name} and its -wal and -shm files away, and restore again."
        ) from None
    return Restored(source, target, contents, kept, contents.revision != migrations.head_revision())


def record_restore(session: Session, actor: Actor, done: Restored) -> None:
    """The restored database's audit log says it was restored, from what, and where the
    database it replaced was kept."""
    ensure(actor, PERMISSION)
    kept = {"kept": str(done.kept)} if done.kept else {}
    details = {"file": str(done.source), "revision": done.contents.revision, **kept}
    audit.record(session, actor, "restore", "backup", details=details)


def _held(target: Path) -> str:
    """What the target holds, in words ('' when empty or missing): counted rows, or why it
    counts as holding data (a file that cannot be read might)."""
    if not target.exists() or target.stat().st_size == 0:
        return ""
    try:
        with contextlib.closing(sqlite3.connect(target, timeout=30)) as con:
            counts = {word: _count(con, table) for table, word in HELD.items()}
    except sqlite3.DatabaseError:
        return "a file that cannot be read as a database"
    return ", ".join(f"{n:,} {word}" for word, n in counts.items() if n)


def _count(con: sqlite3.Connection, table: str) -> int:
    """Rows in `table` (0 when there is no such table); `table` is one of HELD's."""
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
    except sqlite3.OperationalError:
        return 0


def _free(path: Path) -> Path:
    number = 1
    found = path
    while found.exists():
        number += 1
        found = path.with_name(f"{path.name}-{number}")
    return found


def _keep(target: Path, kept: Path) -> None:
    """Copy the database about to be replaced to `kept` (0600), through the backup API when
    it reads (what is in its write-ahead log included), else byte for byte."""
    os.close(os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        _sqlite_copy(target, kept)
    except sqlite3.DatabaseError:
        shutil.copyfile(target, kept)


# --- PostgreSQL ---------------------------------------------------------------------------


def _pg_dump(database: Database, part: Path) -> None:
    with database.engine.connect() as connection:
        server = int(connection.scalar(text("SHOW server_version_num"))) // 10000
    program = pg_program("pg_dump", server)
    url = make_url(database.url)
    env = os.environ | {"PGCONNECT_TIMEOUT": "10"}
    if url.password:
        env["PGPASSWORD"] = str(url.password)  # never on the command line (ps shows it)
    conninfo = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    command = [
        program,
        "--format=custom",
        "--no-password",
        f"--file={part}",
        f"--dbname={conninfo}",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"pg_dump stopped (exit code {done.returncode}): {_last(done.stderr)}")
    restore = Path(program).with_name("pg_restore")
    if restore.exists():
        listed = subprocess.run(
            [str(restore), "--list", str(part)], capture_output=True, text=True, check=False
        )
        if listed.returncode or "TABLE DATA public appointments" not in listed.stdout:
            raise RuntimeError(f"the dump does not read back: {_last(listed.stderr)}")


def pg_program(name: str, server_major: int) -> str:
    """The PostgreSQL client program `name` (PATH first, else the newest of
    /usr/lib/postgresql/*/bin) of the server's major version or newer."""
    found = []
    on_path = shutil.which(name)
    if on_path:
        found.append(on_path)
    found += sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: -_folder_version(p)
    )
    versions = {path: _version(path) for path in found}
    for path, major in versions.items():
        if major >= server_major:
            return path
    if not versions:
        raise ConfigurationError(
            f"{name} was not found on PATH nor in /usr/lib/postgresql/*/bin: install the "
            f"PostgreSQL {server_major} client (Debian: apt-get install "
            f"postgresql-client-{server_major})."
        )
    newest = max(versions, key=versions.get)
    raise ConfigurationError(
        f"{name} ({newest}) is PostgreSQL {versions[newest]}, older than the server's "
        f"{server_major}: it cannot dump a newer server. Install the PostgreSQL {server_major} "
        f"client (Debian: apt-get install postgresql-client-{server_major}) and put it on PATH."
    )


def _folder_version(path: str) -> int:
    version = Path(path).parent.parent.name
    return int(version) if version.isdigit() else 0


def _version(path: str) -> int:
    """The major version `path --version` reports ('pg_dump (PostgreSQL) 15.18 …' → 15)."""
    try:
        said = subprocess.run(
            [path, "--version"], capture_output=True, text=True, check=False, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    found = re.search(r"\)\s+(\d+)", said)
    return int(found.group(1)) if found else 0


def _last(said: str) -> str:
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


# --- nightly ------------------------------------------------------------------------------


def backup_job(database: Database, settings: Settings) -> None:
    """The nightly backup (core.jobs): once a clinic-local day, in NIGHT hours at the first
    clinic or at any hour once the last is LATE; claimed for LEASE, so two servers make one and
    one that failed is tried again after it (its failure is in the jobs' health meanwhile).
    Off with CLINICDESK_NIGHTLY_BACKUP=off."""
    if not settings.nightly_backup:
        return
    now = utcnow()
    with database.read() as session:
        night, first = _due(session, now)
    if first:  # the job's first round here: a backup is LATE counted from now
        with database.write() as session:
            setting_row(session, CLAIM, {"since": now.isoformat()})
    if night is None:
        return
    with database.write() as session:  # the claim: one server at a time past this
        row = setting_row(session, CLAIM, {"since": now.isoformat()})
        value = row.value or {}
        if value.get("day") == night.isoformat() or _held_off(value.get("claimed_at"), now):
            return
        row.value = {**value, "claimed_at": now.isoformat()}
    folder = Path(settings.data_dir) / FOLDER
    ensure_private_folder(folder, "CLINICDESK_DATA_DIR")
    out = folder / nightly_name(night, database.dialect)
    take_backup(database, SYSTEM, out, replace=True, night=night)
    rotate(folder)


def _due(session: Session, now: datetime) -> tuple[date | None, bool]:
    """The clinic-local day whose backup is due now (None: not now), and whether the job has
    never run here. Due once a day, in NIGHT hours, or at any hour once the last backup (before
    any, the job's first run) is LATE."""
    claim = session.get(Setting, CLAIM)
    value = (claim.value or {}) if claim is not None else {}
    tz = session.scalar(select(Clinic.timezone).order_by(Clinic.id).limit(1)) or "UTC"
    day = to_local(now, tz).date()
    if value.get("day") == day.isoformat():
        return None, False
    if to_local(now, tz).hour in NIGHT:
        return day, claim is None
    last = session.get(Setting, LAST)
    since = ((last.value or {}).get("at") if last else None) or value.get("since")
    if since is None:
        return None, claim is None
    age = now - datetime.fromisoformat(since)
    return (day if age >= LATE or age < -SKEW else None), False


def _held_off(claimed_at: str | None, now: datetime) -> bool:
    return bool(claimed_at) and -SKEW <= now - datetime.fromisoformat(claimed_at) < LEASE


def rotate(folder: Path) -> list[Path]:
    """Delete the nightly copies in `folder` past the KEEP_DAILY newest days and the
    KEEP_WEEKLY newest Sundays (by the date in their names; nothing else there is touched)."""
    dated: dict[date, list[Path]] = {}
    for path in folder.iterdir():
        if (found := NIGHTLY.match(path.name)) and path.is_file():
            with contextlib.suppress(ValueError):
                dated.setdefault(date.fromisoformat(found.group(1)), []).append(path)
    days = sorted(dated, reverse=True)
    keep = set(days[:KEEP_DAILY]) | set([d for d in days if d.weekday() == 6][:KEEP_WEEKLY])
    gone = [path for day in days if day not in keep for path in dated[day]]
    for path in gone:
        path.unlink(missing_ok=True)
    return sorted(gone)


# --- the page -----------------------------------------------------------------------------


def watched_since(session: Session, actor: Actor) -> datetime | None:
    """Since when the nightly backup job has run here (None: it never has): a practice set up
    today has had no night for its first backup yet."""
    ensure(actor, PERMISSION)
    row = session.get(Setting, CLAIM)
    since = ((row.value or {}) if row is not None else {}).get("since")
    return datetime.fromisoformat(since) if since else None


def last_backup(session: Session, actor: Actor) -> LastBackup | None:
    """The last backup written (by the nightly job or by hand), for the owner."""
    ensure(actor, PERMISSION)
    row = session.get(Setting, LAST)
    value = (row.value or {}) if row is not None else {}
    if not value.get("at"):
        return None
    return LastBackup(
        datetime.fromisoformat(value["at"]), value.get("file", ""), value.get("host", "")
    )
