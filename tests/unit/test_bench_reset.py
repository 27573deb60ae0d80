"""bench.run.reset: every bench run finds the database as the generator left it. Browser runs
decline requests and write audit events into the 1M database; without the reset the queue
drains run after run and the audit log page shows more events at 1M than at 100k, which the
memory comparison read as growth with the table."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bench import generate, run
from core.analytics import cancellation_rollups as rollups
from core.analytics import cancellations
from core.analytics.cancellation_parts import AnalyticsFilters
from core.kernel import accounts
from core.requests import decisions
from db.models import Appointment, AppointmentStatus, AuditEvent, User
from db.types import utcnow

S = AppointmentStatus


def test_the_reset_puts_back_the_queue_and_the_audit_log_that_earlier_runs_changed(tmp_path):
    path = tmp_path / "bench.db"
    sizes = ["--appointments", "3000", "--patients", "300", "--responses", "100"]
    generate.main([*sizes, "--out", str(path)])
    url = f"sqlite:///{path}"
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
