"""The request queue's whole life, case by case: what the patient asked, what the desk did
meanwhile, and what the manager is shown and may do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.kernel.authz import patient_actor
from core.kernel.errors import Conflict
from core.requests import changes
from core.scheduling import moves
from core.scheduling.states import S
from db.models import (
    Appointment,
    CancellationPolicy,
    ChangeRequest,
    ChangeStatus,
    LedgerEntry,
)
from db.types import utcnow
from tests.unit.test_lifecycle import at, booked, future_day, messages


def _late_fee_policy(db, world, hours=48):
    with db.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=10),
                window_hours=hours,
                late_cancel_fee_cents=2500,
                points_deducted=10,
                policy_text="48 hours' notice, or a £25 fee",
            )
        )


# ---------------------------------------------------------------- moved while the request waited


def test_a_cancellation_asked_for_a_visit_the_desk_moved_since_is_not_approved_unseen(db, world):
    """Asked a week ahead (no fee shown), then moved by the desk to tomorrow: approving it as
    it stands would charge a late fee the patient was never shown. It is refused, saying what
    changed and what to do; nothing is written."""
    _late_fee_policy(db, world)
    appointment_id = booked(db, world, at(future_day(7), 10))
    with db.write() as session:
        change = changes.request_change(
            session, patient_actor("A"), appointment_id, kind="cancel", reason="Away"
        )
        assert (change.status, change.fee_cents) == (ChangeStatus.OPEN, 0)
        change_id = change.id
    with db.write() as session:
        moves.reschedule(session, world.staff, appointment_id, start_at=at(future_day(1), 11))
    with db.write() as session, pytest.raises(Conflict) as refused:
        changes.approve_change(session, world.manager, change_id)
    words = str(refused.value)
    assert "moved" in words and "after the patient asked" in words
    assert "Deny" in words and "appointment page" in words
    with db.read() as session:
        assert session.get(Appointment, appointment_id).status == S.SCHEDULED
        assert session.get(ChangeRequest, change_id).status == ChangeStatus.OPEN
        fees = select(LedgerEntry.id).where(LedgerEntry.appointment_id == appointment_id)
        assert list(session.scalars(fees)) == []
    assert messages(db, appointment_id, "appointment_cancelled") == []


def test_a_cancellation_of_a_visit_not_moved_is_approved_as_before(db, world):
    _late_fee_policy(db, world)
    appointment_id = booked(db, world, at(future_day(7), 10))
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("A"), appointment_id, kind="cancel", reason="Away"
        ).id
    with db.write() as session:
        changes.approve_change(session, world.manager, change_id)
    with db.read() as session:
        assert session.get(Appointment, appointment_id).status == S.CANCELLED
