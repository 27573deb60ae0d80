"""The bench database, generated once for the module (each test works on a copy).

bench.run.reset: every bench run finds the database as the generator left it. Browser runs
decline requests and write audit events into the 1M database; without the reset the queue
drains run after run and the audit log page shows more events at 1M than at 100k, which the
memory comparison read as growth with the table.

bench.generate's patients: every balance opens with its ledger entry, as core opens one
(core.payments.points.open_account), so a bench patient's points history adds up to their
balance without migration 0006 having to give them one."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bench import generate, run
from core.analytics import cancellation_rollups as rollups
from core.analytics import cancellations
from core.analytics.cancellation_parts import AnalyticsFilters
from core.kernel import accounts
from core.requests import decisions
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    LedgerEntry,
    LedgerKind,
    Patient,
    User,
)
from db.types import utcnow
from tests.unit.test_points_ledger import ledger_sums

S = AppointmentStatus


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.db"
    sizes = ["--appointments", "3000", "--patients", "300", "--responses", "100"]
    generate.main([*sizes, "--out", str(path)])
    return path


@pytest.fixture
def bench_db(generated, tmp_path):
    return shutil.copy(generated, tmp_path / "bench.db")


def test_the_reset_puts_back_the_queue_and_the_audit_log_that_earlier_runs_changed(bench_db):
    url = f"sqlite:///{bench_db}"
    database = run.open_db(url)
    try:
        with database.read() as session:
            waiting = session.scalars(
                select(Appointment.id)
                .where(Appointment.status.in_((S.REQUESTED, S.TENTATIVE)))
                .order_by(Appointment.id)
                .limit(3)
            ).all()
            events = session.scalar(select(func.count()).select_from(AuditEvent))
            manager = accounts.actor_of(
                session.scalar(select(User).where(User.username == "manager"))
            )
        assert len(waiting) == 3
        with database.write() as session:  # as a bench session declines them
            for index, appointment_id in enumerate(waiting):
                reason = f"Bench session {index}"
                decisions.decline_request(session, manager, appointment_id, reason=reason)
        rollups.refresh_job(database, None)
        assert run.reset(url) == (3, 3)
        with database.read() as session:
            statuses = session.scalars(
                select(Appointment.status).where(Appointment.id.in_(waiting))
            ).all()
            assert set(statuses) <= {S.REQUESTED, S.TENTATIVE} and len(statuses) == 3
            assert session.scalar(select(func.count()).select_from(AuditEvent)) == events
            assert not rollups.is_fresh(session)  # the put-back days wait for the refresh
            today = utcnow().date()
            filters = AnalyticsFilters(today - timedelta(days=400), today + timedelta(days=60))
            owner = accounts.actor_of(session.scalar(select(User).where(User.username == "owner")))
            lagging = cancellations.compute_figures(session, owner, filters)
            direct = cancellations.compute_figures(session, owner, filters, use_rollups=False)
        assert lagging.lagging_days > 0 and lagging.as_dict() == direct.as_dict()
        assert run.reset(url) == (0, 0)
    finally:
        database.dispose()


def test_every_generated_patients_ledger_adds_up_to_their_balance(bench_db):
    database = run.open_db(f"sqlite:///{bench_db}")
    try:
        with database.read() as session:
            sums = ledger_sums(session)
            bench = dict(
                session.execute(
                    select(Patient.id, Patient.created_at).where(
                        Patient.external_ref.like("BENCH-%")
                    )
                ).all()
            )
            opened = {
                e.patient_id: e
                for e in session.scalars(
                    select(LedgerEntry).where(LedgerEntry.kind == LedgerKind.POINTS_OPENING)
                )
            }
    finally:
        database.dispose()
    assert len(bench) == 300
    wrong = {pid: pair for pid, pair in sums.items() if pair[0] != pair[1]}
    assert not wrong, (
        f"{len(wrong)} patients' (balance, ledger) disagree: {list(wrong.items())[:5]}"
    )
    balances = {sums[pid][0] for pid in bench}
    assert {0, 60, 80, 100} <= balances  # the generator's mix, each opened by its entry
    for pid, created_at in bench.items():
        if sums[pid][0]:  # opened on the day the patient was added, as core dates it
            assert opened[pid].points == sums[pid][0] and opened[pid].created_at == created_at
        else:
            assert pid not in opened  # nothing to open with
