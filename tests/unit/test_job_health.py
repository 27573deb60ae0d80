"""The background jobs' health: a job that raises is recorded with its error and since when, a
healthy round writes nothing, a job working again is cleared, the weekly fit's child process
that fails is recorded too; owners and managers read it, staff are refused."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from core import jobs
from core.analytics import risk_jobs
from core.kernel.config import load_settings
from core.kernel.errors import PermissionDenied
from core.practice import job_health
from db.models import JobRun
from db.types import utcnow


class Outage(RuntimeError):
    pass


def job(name: str, error: Exception | None = None):
    """A job named as a real one (its effect is known) that raises `error`, or works."""

    def run(database, settings):
        if error is not None:
            raise error

    run.__name__ = name
    return run


ERROR = "SMTP said <b>no</b> [click](http://x.test) *now*\nsecond line of the traceback"
BROKEN = job("reminders_job", Outage(ERROR))
FIXED = job("reminders_job")
SENDER = job("deliver_notifications")


@pytest.fixture
def settings(tmp_path):
    return load_settings({"CLINICDESK_DATA_DIR": str(tmp_path)}, tmp_path / "x")


@pytest.fixture
def failing(monkeypatch):
    monkeypatch.setattr(jobs, "JOBS", [BROKEN, SENDER])


@pytest.fixture
def healthy(monkeypatch):
    monkeypatch.setattr(jobs, "JOBS", [SENDER])


def failing_now(db, actor, **kwargs):
    with db.read() as session:
        return job_health.failing_jobs(session, actor, **kwargs)


def writes_to_job_runs(db, run) -> list[str]:
    """The statements touching job_runs that `run` sent, reads included."""
    seen: list[str] = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        if "job_runs" in statement:
            seen.append(statement.split()[0].upper())

    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)
    return seen


def test_every_job_has_a_name_and_an_effect_in_the_practices_words():
    names = [job.__name__ for job in jobs.JOBS]
    assert len(names) == len(set(names))
    assert set(names) <= set(job_health.EFFECTS)


def test_the_payments_jobs_effect_says_unfinished_card_charges_wait_too():
    """The payments job also asks Stripe of charges to the card on file it left unfinished
    (and cancels those stuck a day): while it fails, those fees stay blocked. Before, its
    effect named only refunds and charges cut off before Stripe answered."""
    name, effect = job_health.EFFECTS["refunds_job"]
    assert name == "Card refunds and charges"
    assert "left unfinished" in effect and "not asked how they stand" in effect


def test_a_job_that_raises_is_recorded_with_its_error_and_since_when(db, world, settings, failing):
    before = utcnow()
    jobs.run_due(db, settings)
    after = utcnow()
    [job] = failing_now(db, world.manager)
    assert job.job == "reminders_job"
    assert job.effect == "reminders are not being queued"
    assert job.error == "Outage: SMTP said <b>no</b> [click](http://x.test) *now*"
    assert before <= job.since <= after and job.last_failed_at == job.since
    assert job.failures == 1 and job.last_ok_at is None
    assert failing_now(db, world.owner) == [job]


def test_a_long_error_with_a_nul_is_kept_as_its_first_line_cut_to_fit(
    db, world, settings, monkeypatch
):
    monkeypatch.setattr(
        jobs, "JOBS", [job("reminders_job", Outage("a\x00b" + "x" * 900 + "\nmore"))]
    )
    jobs.run_due(db, settings)
    [failing] = failing_now(db, world.manager)
    assert failing.error == ("Outage: ab" + "x" * 900)[:500]


def test_a_healthy_round_reads_once_and_writes_nothing(db, world, settings, healthy):
    assert writes_to_job_runs(db, lambda: jobs.run_due(db, settings)) == ["SELECT"]
    assert writes_to_job_runs(db, lambda: jobs.run_due(db, settings)) == ["SELECT"]
    with db.read() as session:
        assert session.scalars(select(JobRun)).all() == []


def test_a_job_failing_round_after_round_is_written_every_few_minutes(db, world, settings, failing):
    first = writes_to_job_runs(db, lambda: jobs.run_due(db, settings))
    assert first == ["SELECT", "INSERT"]
    # failing again within EVERY: read once, nothing written, counted for later
    assert writes_to_job_runs(db, lambda: jobs.run_due(db, settings)) == ["SELECT"]
    [job] = failing_now(db, world.manager)
    assert job.failures == 1
    with db.write() as session:  # the last recorded failure EVERY and a minute ago
        session.execute(
            update(JobRun).values(last_failed_at=utcnow() - job_health.EVERY - timedelta(minutes=1))
        )
    assert writes_to_job_runs(db, lambda: jobs.run_due(db, settings)) == ["SELECT", "INSERT"]
    [again] = failing_now(db, world.manager)
    assert again.failures == 3 and again.since == job.since  # still failing since the first
    assert again.last_failed_at > job.last_failed_at


def test_a_job_working_again_is_cleared(db, world, settings, failing, monkeypatch):
    jobs.run_due(db, settings)
    assert failing_now(db, world.manager)
    monkeypatch.setattr(jobs, "JOBS", [SENDER, FIXED])
    before = utcnow()
    assert writes_to_job_runs(db, lambda: jobs.run_due(db, settings)) == ["SELECT", "UPDATE"]
    assert failing_now(db, world.manager) == []
    with db.read() as session:
        row = session.get(JobRun, "reminders_job")
    assert row.failing_since is None and row.failures == 0 and row.last_ok_at >= before
    # working on: nothing more to write
    assert writes_to_job_runs(db, lambda: jobs.run_due(db, settings)) == ["SELECT"]


def test_the_banner_read_gives_only_jobs_failing_longer_than_asked(db, world, settings, failing):
    jobs.run_due(db, settings)
    assert failing_now(db, world.manager, longer_than=job_health.BANNER_AFTER) == []
    later = utcnow() + job_health.BANNER_AFTER + timedelta(minutes=1)
    [job] = failing_now(db, world.manager, longer_than=job_health.BANNER_AFTER, now=later)
    assert job.job == "reminders_job"


def test_a_failed_fit_in_its_child_process_is_recorded(
    db, world, settings, healthy, monkeypatch, tmp_path
):
    said = tmp_path / "risk-fit.log"  # the fit's stderr, as _start_training keeps it
    monkeypatch.setattr(risk_jobs, "_fit_log", said)

    def child(code: int) -> subprocess.Popen:
        with said.open("w") as err:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys; print('fitting…\\nerror: <b>too little</b>', file=sys.stderr); "
                    f"raise SystemExit({code})",
                ],
                stderr=err,
            )
        process.wait()
        return process

    monkeypatch.setattr(risk_jobs, "_training", child(2))
    jobs.run_due(db, settings)
    [job] = failing_now(db, world.manager)
    assert job.job == job_health.RISK_FIT
    assert job.effect == "the no-show model is not being refreshed"
    assert "exit code 2: error: <b>too little</b>" in job.error  # why it stopped, its last line
    jobs.run_due(db, settings)  # the same ended fit is told once
    assert failing_now(db, world.manager)[0].failures == 1
    monkeypatch.setattr(risk_jobs, "_training", child(0))  # the next fit works
    jobs.run_due(db, settings)
    assert failing_now(db, world.manager) == []


def test_staff_and_patients_may_not_read_the_jobs_health(db, world):
    with pytest.raises(PermissionDenied), db.read() as session:
        job_health.failing_jobs(session, world.staff)
