"""The background jobs' health on PostgreSQL, and two processes' rounds at once."""

import threading

from sqlalchemy import select

from core import jobs
from db.engine import Database
from db.models import JobRun
from tests.unit.test_job_health import *  # noqa: F403
from tests.unit.test_job_health import SENDER, Outage, failing_now


def test_two_processes_failing_at_once_give_one_row_and_no_error(
    db, world, settings, monkeypatch, caplog
):
    both_read = threading.Barrier(2, timeout=30)

    def reminders_job(database, settings):  # each round has read the (empty) health first
        both_read.wait()
        raise Outage("SMTP down")

    monkeypatch.setattr(jobs, "JOBS", [reminders_job, SENDER])
    loops = [Database(db.url), Database(db.url)]  # two processes: their own pools and tallies
    errors: list[BaseException] = []

    def one_round(database):
        try:
            jobs.run_due(database, settings)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one_round, args=(loop,)) for loop in loops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for loop in loops:
        loop.dispose()
    assert errors == []
    assert "could not be recorded" not in caplog.text
    with db.read() as session:
        [row] = session.scalars(select(JobRun)).all()
    assert row.job == "reminders_job" and row.failures == 2  # one row, both failures counted
    [failing] = failing_now(db, world.manager)
    assert failing.error == "Outage: SMTP down"
