"""The test runs' template databases, copied by each test: the demo practice (migrated with
Alembic, as in production, and seeded) and the e2e one built from it.

`make test` runs `python -m tests.support.templates FOLDER` in the background as its pytest run
starts and points the run at FOLDER (CLINICDESK_TEST_TEMPLATES): the templates are built while
the first tests, which need none, run, instead of one worker building them while the other
waits. Without the variable each run builds its own, once (tests.support.shared)."""

from __future__ import annotations

import os
import shutil
import sys
from datetime import datetime
from pathlib import Path

from sqlalchemy import update

from core import demo, jobs
from core.analytics import risk_jobs
from core.kernel.config import load_settings
from core.startup import open_database
from db.models import DeliveryStatus, Notification
from db.types import utcnow
from tests.support.shared import build_once_in

E2E_SECRET = "e2e-" + "k" * 40
SEEDED_AT = "demo.seeded_at"  # beside demo.db: the moment its seeding ended (ISO, UTC)


def build_demo(folder: Path) -> None:
    """demo.db, and beside it the moment its seeding ended (demo_seeded_at)."""
    settings = load_settings(
        {"DATABASE_URL": f"sqlite:///{folder / 'demo.db'}", "CLINICDESK_DATA_DIR": str(folder)}
    )
    database = open_database(settings)
    with database.write() as session:
        demo.seed_demo(session)
    (folder / SEEDED_AT).write_text(utcnow().isoformat())
    database.dispose()


def demo_seeded_at(demo_template: Path) -> datetime:
    """When the demo template's seeding ended: nothing in it may be dated later, bar what lies
    ahead (appointments' times, expiries), and its visits' statuses fit that moment."""
    return datetime.fromisoformat((demo_template.parent / SEEDED_AT).read_text())


def build_e2e(folder: Path, demo_template: Path) -> None:
    """The demo practice as it stands once its background jobs have run: the reminders, forms
    and survey requests due before the tests began are recorded as sent and the weekly no-show
    model is trained, so a test's own messages do not queue behind the demo's backlog and no
    server spends its first minute training."""
    shutil.copy(demo_template, folder / "app.db")
    settings = load_settings(
        {
            "DATABASE_URL": f"sqlite:///{folder / 'app.db'}",
            "CLINICDESK_DATA_DIR": str(folder),
            "CLINICDESK_SECRET_KEY": E2E_SECRET,
        }
    )
    database = open_database(settings)
    # the demo's fit at this process's priority: it is waited for, beside the tests' workers
    risk_jobs.FIT_NICENESS = os.getpriority(os.PRIO_PROCESS, 0)
    jobs.run_due(database, settings)  # no SMTP configured: the messages stay queued
    assert risk_jobs.wait_for_training() == 0, "the demo's no-show model was not trained"
    # again, with the model stored: its scores' extra reminders, and what the first run's
    # batches left (without it each server's first tick did them: 2.4 s of CPU, 64 messages)
    jobs.run_due(database, settings)
    with database.write() as session:
        session.execute(
            update(Notification)
            .where(Notification.status == DeliveryStatus.QUEUED)
            .values(status=DeliveryStatus.SENT, sent_at=utcnow())
        )
    database.dispose()


def build_all(root: Path) -> None:
    demo_template = build_once_in(root, "demo.db", build_demo)
    build_once_in(root, "app.db", lambda folder: build_e2e(folder, demo_template))


if __name__ == "__main__":
    build_all(Path(sys.argv[1]))
