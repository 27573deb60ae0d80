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
from tests.support.shared import built_once
from tests.support.templates import build_demo
from tests.unit.test_points_ledger import ledger_sums

S = AppointmentStatus


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The generator's small database, made once a run whichever workers ask for it
    (tests.support.shared), filled from a copy of the run's demo template (tests.support.
    templates: migrated and seeded once a run, as the page tests' databases are) rather than
    seeding the demo again (most of the 45 s this took loaded, in each worker)."""
    demo_template = built_once(tmp_path_factory, "demo.db", build_demo)

    def build(folder):
        path = folder / "bench.db"
        shutil.copyfile(demo_template, path)
        sizes = {"appointments": 3000, "patients": 300, "responses": 100}
        generate.generate(f"sqlite:///{path}", **sizes, demo_seeded=True)

    return built_once(tmp_path_factory, "bench.db", build)


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


def test_the_generator_books_package_visits_as_booking_does(bench_db):
    """Some generated visits are booked as a package: its services in order, lasting their
    durations together, never into the provider's next visit; their answers record it."""
    from db.models import AppointmentService, Package, PackageService, Service, SurveyResponse

    database = run.open_db(f"sqlite:///{bench_db}")
    problems = []
    try:
        with database.read() as session:
            demo_ids = set(  # the demo's own visits, seeded first, are not the generator's
                session.scalars(
                    select(Appointment.id)
                    .join(Patient)
                    .where(Patient.external_ref.not_like("BENCH-%"))
                )
            )
            minutes = dict(session.execute(select(Service.id, Service.duration_minutes)).all())
            members = {}
            for package_id in session.scalars(select(Package.id)):
                members[package_id] = session.scalars(
                    select(PackageService.service_id)
                    .where(PackageService.package_id == package_id)
                    .order_by(PackageService.position)
                ).all()
            visits = session.scalars(
                select(Appointment)
                .where(Appointment.start_at.is_not(None), Appointment.provider_id.is_not(None))
                .order_by(Appointment.provider_id, Appointment.start_at)
            ).all()
            listed = {}
            for aid, sid in session.execute(
                select(AppointmentService.appointment_id, AppointmentService.service_id).order_by(
                    AppointmentService.appointment_id, AppointmentService.position
                )
            ):
                listed.setdefault(aid, []).append(sid)
            answers = session.execute(
                select(SurveyResponse.package_id, Appointment.package_id).join(
                    Appointment, Appointment.id == SurveyResponse.appointment_id
                )
            ).all()
    finally:
        database.dispose()
    packaged = [a for a in visits if a.package_id is not None and a.id not in demo_ids]
    for a in packaged:
        services = members[a.package_id]
        if listed.get(a.id) != services or a.service_id != services[0]:
            problems.append(f"#{a.id}: services {listed.get(a.id)}, its package's {services}")
        if a.end_at - a.start_at != timedelta(minutes=sum(minutes[s] for s in services)):
            problems.append(f"#{a.id}: lasts {a.end_at - a.start_at}")
    for a, b in zip(visits, visits[1:], strict=False):
        if a.provider_id == b.provider_id and b.start_at < a.end_at and a.id not in demo_ids:
            problems.append(f"#{a.id} runs into #{b.id}")
    assert 30 <= len(packaged) <= 300  # a few of the 3,000
    assert {a.package_id for a in packaged} == set(members)
    assert any(response for response, _ in answers if response is not None)
    assert all(response == visit for response, visit in answers)
    assert not problems, problems[:5]


def test_the_generator_fills_from_the_demo_only_a_database_holding_it_alone(
    bench_db, sqlite_template, tmp_path
):
    """generate(demo_seeded=True) is for a copy of a freshly seeded demo: an empty database
    (no demo to fill from) and one generated already are refused, nothing written."""
    empty = tmp_path / "empty.db"
    shutil.copyfile(sqlite_template, empty)
    for path in (empty, bench_db):
        with pytest.raises(SystemExit, match="holding the demo practice only"):
            generate.generate(
                f"sqlite:///{path}", appointments=10, patients=1, responses=1, demo_seeded=True
            )
