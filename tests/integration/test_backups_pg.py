"""Backups on PostgreSQL: pg_dump's custom format (the test server's own client programs),
read back, audited, owner-only, restorable with pg_restore as the README says; and two
servers' nightly jobs at once make one backup."""

from __future__ import annotations

import stat
import subprocess
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from core.kernel.config import load_settings
from core.practice import backups
from db.engine import Database
from db.models import Appointment, AppointmentStatus, AuditEvent
from tests.support.postgres import find_pg_binary

NIGHT = datetime(2026, 7, 15, 1, 30, tzinfo=UTC)  # 02:30 in London


def exports(db: Database) -> int:
    with db.read() as session:
        query = select(func.count()).where(
            AuditEvent.action == "export", AuditEvent.entity == "backup"
        )
        return session.scalar(query)


def test_a_postgresql_backup_is_a_checked_dump_that_pg_restore_puts_back(
    db, world, tmp_path, temp_postgres
):
    with db.write() as session:
        session.add(Appointment(clinic_id=world.clinic_id, status=AppointmentStatus.REQUESTED))
    made = backups.take_backup(db, world.owner, tmp_path / "practice.dump")
    assert made.path.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    assert stat.S_IMODE(made.path.stat().st_mode) == 0o600
    assert exports(db) == 1

    name = f"restored_{uuid.uuid4().hex[:8]}"
    url = temp_postgres.create_database(name)
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    restore = find_pg_binary("pg_restore")
    done = subprocess.run(
        [restore, "--no-owner", f"--dbname={libpq}", str(made.path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    restored = Database(url)
    with restored.read() as session:
        assert session.scalar(select(func.count()).select_from(Appointment)) == 1
    restored.dispose()
    temp_postgres.drop_database(name)


def test_two_servers_nightly_jobs_at_once_make_one_backup(db, world, tmp_path, monkeypatch):
    monkeypatch.setattr(backups, "utcnow", lambda: NIGHT)
    folders = [tmp_path / "one", tmp_path / "two"]
    servers = [Database(db.url), Database(db.url)]  # two processes: their own pools
    together = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def night_round(database: Database, folder: Path) -> None:
        settings = load_settings(
            {
                "DATABASE_URL": db.url,
                "CLINICDESK_DATA_DIR": str(folder),
                "CLINICDESK_SECRET_KEY": "k" * 40,
            },
            folder / "no-secrets.toml",
        )
        try:
            together.wait()
            backups.backup_job(database, settings)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    rounds = [
        threading.Thread(target=night_round, args=(server, folder))
        for server, folder in zip(servers, folders, strict=True)
    ]
    for thread in rounds:
        thread.start()
    for thread in rounds:
        thread.join(timeout=60)
    for server in servers:
        server.dispose()
    assert errors == []
    made = [p.name for f in folders if (f / "backups").is_dir() for p in (f / "backups").iterdir()]
    assert made == ["clinicdesk-2026-07-15.dump"]
    assert exports(db) == 1
