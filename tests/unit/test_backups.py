"""Backups (core.practice.backups): a SQLite backup taken while the app writes is one committed
state and restores to it; the nightly job runs at night at the first clinic, once, keeps the
right copies, and a failure shows in the jobs' health; restore refuses what is not a ClinicDesk
backup and a database holding data unless told; the command line says what it did."""

from __future__ import annotations

import shutil
import sqlite3
import stat
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import cli, jobs
from core.kernel import audit
from core.kernel.authz import SYSTEM
from core.kernel.config import load_settings
from core.kernel.errors import ConfigurationError, Conflict, PermissionDenied, ValidationError
from core.practice import backups, job_health
from db import migrate
from db.engine import Database
from db.models import Appointment, AppointmentStatus, AuditEvent, Setting

NIGHT = datetime(2026, 7, 15, 1, 30, tzinfo=UTC)  # Wednesday 02:30 in London (summer time)
WRITTEN = "backup-test.write"  # the audit event each of the writer's transactions adds


def settings_for(db: Database, folder: Path, **env: str):
    return load_settings(
        {
            "DATABASE_URL": db.url,
            "CLINICDESK_DATA_DIR": str(folder),
            "CLINICDESK_SECRET_KEY": "k" * 40,
            **env,
        },
        folder / "no-secrets.toml",
    )


def at(monkeypatch, moment: datetime) -> None:
    """Freeze the backups' clock at `moment`."""
    monkeypatch.setattr(backups, "utcnow", lambda: moment)


def nightly_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def exports(db: Database) -> list[dict]:
    with db.read() as session:
        query = select(AuditEvent.details).where(
            AuditEvent.action == "export", AuditEvent.entity == "backup"
        )
        return list(session.scalars(query))


class Writer(threading.Thread):
    """Another desk booking all the time: each transaction adds an appointment and an audit
    event, so a consistent copy holds as many of one as of the other."""

    def __init__(self, url: str, world) -> None:
        super().__init__(daemon=True)
        self.database = Database(url)
        self.world = world
        self.committed = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                with self.database.write() as session:
                    session.add(
                        Appointment(
                            clinic_id=self.world.clinic_id,
                            patient_id=self.world.patient_id,
                            status=AppointmentStatus.REQUESTED,
                            requested_day=date(2026, 8, 3),
                            notes=f"write {self.committed}",
                        )
                    )
                    audit.record(session, SYSTEM, WRITTEN, "appointment")
                self.committed += 1
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error
        finally:
            self.database.dispose()

    def until(self, count: int) -> int:
        while self.committed < count and self.is_alive():
            threading.Event().wait(0.005)
        return self.committed


def sqlite_counts(path: Path) -> tuple[int, int]:
    """Appointments and the writer's audit events in the SQLite file `path`."""
    with sqlite3.connect(path) as con:
        made = con.execute("SELECT count(*) FROM appointments").fetchone()[0]
        told = con.execute("SELECT count(*) FROM audit_events WHERE action = ?", (WRITTEN,))
        return made, told.fetchone()[0]


def test_a_backup_taken_while_appointments_are_written_is_one_moment_and_restores_to_it(
    db, world, tmp_path
):
    """The copy is one committed state (as many appointments as writer's audit events, every
    committed one up to the moment the copy began, none after it ended), passes the integrity
    check, is owner-only, is audited as an export; restored, it holds the same counts. A file
    copy of the database (the write-ahead log left behind) fails this."""
    with db.read() as session:
        before = session.scalar(select(func.count()).select_from(Appointment))
    writer = Writer(db.url, world)
    writer.start()
    try:
        started = writer.until(30)
        made = backups.take_backup(db, world.owner, tmp_path / "now.db")
        ended = writer.committed
        writer.until(ended + 30)  # it went on writing, the copy unchanged
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    assert writer.error is None, writer.error
    appointments, events = sqlite_counts(made.path)
    assert appointments - before == events  # one moment: no transaction half in
    assert started <= events <= ended
    assert made.appointments == appointments
    assert stat.S_IMODE(made.path.stat().st_mode) == 0o600
    with sqlite3.connect(made.path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file
    assert exports(db) == [
        {"rows": made.patients, "filters": {"file": str(made.path), "database": "sqlite"}}
    ]
    assert not list(tmp_path.glob(".clinicdesk-backup-*"))  # no part file left behind

    restored = backups.restore_sqlite(made.path, tmp_path / "restored.db")
    assert restored.kept is None and not restored.migrated
    assert sqlite_counts(tmp_path / "restored.db") == (appointments, events)
    assert restored.contents.appointments == appointments
    assert stat.S_IMODE((tmp_path / "restored.db").stat().st_mode) == 0o600


def test_a_backup_is_the_owners_and_never_over_a_file_not_named(db, world, tmp_path):
    out = tmp_path / "kept.db"
    out.write_bytes(b"an earlier backup")
    with pytest.raises(PermissionDenied):
        backups.take_backup(db, world.manager, tmp_path / "manager.db")
    with pytest.raises(Conflict, match="exists already"):
        backups.take_backup(db, world.owner, out)
    assert out.read_bytes() == b"an earlier backup"
    with pytest.raises(ValidationError, match="does not exist: create it first"):
        backups.take_backup(db, world.owner, tmp_path / "missing" / "x.db")
    assert exports(db) == []  # nothing written, nothing audited
    backups.take_backup(db, world.owner, out, replace=True)  # named in --out: replaced
    assert out.read_bytes().startswith(backups.SQLITE_HEADER)


def test_the_command_line_backs_up_into_the_data_folder_and_restores(
    db, world, tmp_path, monkeypatch, capsys
):
    data = tmp_path / "data"
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("CLINICDESK_DATA_DIR", str(data))
    monkeypatch.setenv("CLINICDESK_SECRET_KEY", "k" * 40)
    assert cli.main(["backup"]) == 0
    [made] = (data / "backups").iterdir()
    assert stat.S_IMODE((data / "backups").stat().st_mode) == 0o700
    assert f"Wrote the backup {made} (" in capsys.readouterr().out
    out = tmp_path / "named.db"
    out.write_bytes(b"old")
    assert cli.main(["backup", "--out", str(out)]) == 0  # named: replaced
    assert out.read_bytes().startswith(backups.SQLITE_HEADER)
    capsys.readouterr()

    assert cli.main(["restore", str(made)]) == 2  # the database holds data
    said = capsys.readouterr().err
    assert "holds data (1 patients" in said and "give --replace" in said
    assert cli.main(["restore", str(made), "--replace"]) == 0
    said = capsys.readouterr().out
    target = Path(db.engine.url.database)
    kept = target.with_name(target.name + ".before-restore")
    assert f"Restored {made} into {target}: 1 patients, 0 appointments, 3 accounts." in said
    assert f"The database it replaced is kept as {kept}." in said
    assert kept.read_bytes().startswith(backups.SQLITE_HEADER)
    with db.read() as session:  # the restored database's audit log says so
        [told] = session.scalars(select(AuditEvent.details).where(AuditEvent.action == "restore"))
    assert told == {"file": str(made), "revision": migrate.head_revision(), "kept": str(kept)}

    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@127.0.0.1:1/clinicdesk")
    assert cli.main(["restore", str(made)]) == 2
    assert "with pg_restore (README, Backups)" in capsys.readouterr().err


def test_restore_refuses_what_is_not_a_clinicdesk_backup(db, world, tmp_path):
    target = tmp_path / "target.db"
    made = backups.take_backup(db, world.owner, tmp_path / "good.db").path
    plain = tmp_path / "plain.db"
    with sqlite3.connect(plain) as con:
        con.execute("CREATE TABLE notes (t TEXT)")
    newer = tmp_path / "newer.db"
    shutil.copyfile(made, newer)
    with sqlite3.connect(newer) as con:
        con.execute("UPDATE alembic_version SET version_num = '9999'")
    damaged = tmp_path / "damaged.db"
    raw = bytearray(made.read_bytes())
    raw[4096 * 3 : 4096 * 6] = b"\xff" * (4096 * 3)  # pages 4-6 overwritten
    damaged.write_bytes(bytes(raw))
    (tmp_path / "text.db").write_text("name,phone\n")
    for source, why in [
        (tmp_path / "absent.db", "does not exist"),
        (tmp_path / "text.db", "not a ClinicDesk backup: not an SQLite database"),
        (plain, "an SQLite database but not a ClinicDesk backup"),
        (newer, "has schema revision 9999, which this ClinicDesk"),
        (damaged, "damaged|cannot be read as a backup"),
    ]:
        with pytest.raises(ValidationError, match=why):
            backups.restore_sqlite(source, target)
        assert not target.exists()


def test_restore_replaces_a_database_with_data_only_when_told_and_keeps_it(db, world, tmp_path):
    """A database holding data is refused without replace; replaced, it is kept beside it
    (a second restore keeps the first's as -2); an empty one is restored into directly."""
    made = backups.take_backup(db, world.owner, tmp_path / "good.db").path
    live = Path(db.engine.url.database)
    with db.write() as session:  # after the backup: the live database has more
        session.add(Appointment(clinic_id=world.clinic_id, status=AppointmentStatus.REQUESTED))
    with pytest.raises(Conflict, match=r"holds data \(1 patients, 1 appointments, 3 accounts\)"):
        backups.restore_sqlite(made, live)
    assert sqlite_counts(live)[0] == 1
    done = backups.restore_sqlite(made, live, replace=True)
    assert done.kept == live.with_name(live.name + ".before-restore")
    assert sqlite_counts(done.kept)[0] == 1  # the replaced database, whole
    with db.read() as session:  # the app's own connections see the backup's state
        assert session.scalar(select(func.count()).select_from(Appointment)) == 0
    again = backups.restore_sqlite(made, live, replace=True)
    assert again.kept.name == live.name + ".before-restore-2"

    empty = tmp_path / "empty.db"
    shutil.copyfile(made, empty)
    with sqlite3.connect(empty) as con:
        for table in ("audit_events", "appointments", "patients", "users"):
            con.execute(f"DELETE FROM {table}")  # noqa: S608
    assert backups.restore_sqlite(made, empty).kept is None  # nothing in it to keep


def test_the_nightly_backup_runs_once_a_night_and_keeps_7_days_and_4_sundays(
    db, world, tmp_path, monkeypatch
):
    settings = settings_for(db, tmp_path)
    folder = tmp_path / "backups"
    folder.mkdir()
    for n in range(44):  # 1 June to 14 July, from earlier nights
        (folder / backups.nightly_name(date(2026, 6, 1) + timedelta(n), "sqlite")).touch()
    (folder / "clinicdesk-2026-05-01-101500.db").touch()  # one taken by hand: never rotated
    (folder / "notes.txt").touch()

    at(monkeypatch, NIGHT - timedelta(hours=12))  # Tuesday afternoon, last backup recent
    with db.write() as session:
        session.add(Setting(key=backups.LAST, value={"at": (NIGHT - timedelta(1)).isoformat()}))
    backups.backup_job(db, settings)
    assert len(nightly_files(folder)) == 46  # not by day

    at(monkeypatch, NIGHT)
    backups.backup_job(db, settings)
    kept = [f"clinicdesk-2026-{day}.db" for day in ("06-21", "06-28", "07-05")] + [
        f"clinicdesk-2026-07-{day:02}.db" for day in range(9, 16)
    ]
    assert nightly_files(folder) == sorted([*kept, "clinicdesk-2026-05-01-101500.db", "notes.txt"])
    assert (folder / "clinicdesk-2026-07-15.db").read_bytes().startswith(backups.SQLITE_HEADER)
    at(monkeypatch, NIGHT + timedelta(hours=1))  # the same night again: done
    backups.backup_job(db, settings)
    assert len(exports(db)) == 1

    at(monkeypatch, NIGHT + timedelta(days=1))  # Thursday night: 9 July goes
    backups.backup_job(db, settings)
    assert "clinicdesk-2026-07-16.db" in nightly_files(folder)
    assert "clinicdesk-2026-07-09.db" not in nightly_files(folder)
    assert len(nightly_files(folder)) == len(kept) + 2
    with db.read() as session:
        last = backups.last_backup(session, world.owner)
    assert last.at == NIGHT + timedelta(days=1)
    assert last.file == str(folder / "clinicdesk-2026-07-16.db")


def test_no_nightly_backup_when_off_and_one_by_day_once_late(db, world, tmp_path, monkeypatch):
    """Off: none, even at night. A server asleep at night backs up by day once the last backup
    (before any, its first round) is 36 hours old."""
    folder = tmp_path / "backups"
    at(monkeypatch, NIGHT)
    backups.backup_job(db, settings_for(db, tmp_path, CLINICDESK_NIGHTLY_BACKUP="off"))
    assert nightly_files(folder) == []
    with pytest.raises(ConfigurationError, match="CLINICDESK_NIGHTLY_BACKUP must be on or off"):
        settings_for(db, tmp_path, CLINICDESK_NIGHTLY_BACKUP="nightly")

    settings = settings_for(db, tmp_path)
    noon = NIGHT + timedelta(hours=8)  # 10:30 in London
    at(monkeypatch, noon)  # the job's first round, by day: it waits
    backups.backup_job(db, settings)
    at(monkeypatch, noon + timedelta(hours=35))
    backups.backup_job(db, settings)
    assert nightly_files(folder) == []
    at(monkeypatch, noon + timedelta(hours=36))  # late: by day
    backups.backup_job(db, settings)
    assert nightly_files(folder) == ["clinicdesk-2026-07-16.db"]


def test_a_failing_nightly_backup_is_in_the_jobs_health_and_tried_again_later(
    db, world, tmp_path, monkeypatch
):
    settings = settings_for(db, tmp_path)
    (tmp_path / "backups").write_text("a file where the folder goes")
    at(monkeypatch, NIGHT)
    assert backups.backup_job in jobs.JOBS  # the jobs loop runs it
    monkeypatch.setattr(jobs, "JOBS", [backups.backup_job])  # alone, for this test
    jobs.run_due(db, settings)
    with db.read() as session:
        [failing] = job_health.failing_jobs(session, world.owner)
    assert (failing.label, failing.effect) == (
        "Nightly backup",
        "the database is not being backed up",
    )
    assert "cannot create the folder" in failing.error
    (tmp_path / "backups").unlink()
    at(monkeypatch, NIGHT + timedelta(minutes=10))  # its claim holds the next rounds off
    jobs.run_due(db, settings)
    assert not (tmp_path / "backups").exists()
    at(monkeypatch, NIGHT + backups.LEASE + timedelta(minutes=1))  # then it is tried again
    jobs.run_due(db, settings)
    assert nightly_files(tmp_path / "backups") == ["clinicdesk-2026-07-15.db"]
    with db.read() as session:
        assert job_health.failing_jobs(session, world.owner) == []


def test_pg_dump_missing_or_older_than_the_server_is_refused_with_what_to_install():
    with pytest.raises(ConfigurationError, match="pg_nothing was not found on PATH nor in"):
        backups.pg_program("pg_nothing", 16)
    if shutil.which("pg_dump") is None:
        return  # no PostgreSQL client here: the message above is what an owner reads
    with pytest.raises(ConfigurationError, match="older than the server's 99: it cannot dump"):
        backups.pg_program("pg_dump", 99)
