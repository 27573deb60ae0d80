"""The request queue's whole life, case by case: what the patient asked, what the desk did
meanwhile, and what the manager is shown and may do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.kernel.authz import patient_actor
from core.kernel.clock import to_local
from core.kernel.errors import Conflict
from core.kernel.money import format_moment
from core.requests import changes, decisions, queue
from core.scheduling import moves
from core.scheduling.states import S
from db.models import (
    Appointment,
    CancellationPolicy,
    ChangeRequest,
    ChangeStatus,
    LedgerEntry,
    LinkToken,
)
from db.types import utcnow
from tests.unit.test_lifecycle import at, booked, future_day, messages, new_request


def clinic_time(row, moment):
    return format_moment(moment, row.timezone, row.locale)


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


def test_the_queue_shows_a_visit_moved_since_the_patient_asked(db, world):
    appointment_id = booked(db, world, at(future_day(7), 10))
    with db.write() as session:
        changes.request_change(
            session, patient_actor("A"), appointment_id, kind="cancel", reason="Away"
        )
    with db.read() as session:
        (row,) = queue.list_queue(session, world.manager, "cancellations")
        assert not row.moved_since_asked and queue.notices(row) == []
    with db.write() as session:
        moves.reschedule(session, world.staff, appointment_id, start_at=at(future_day(1), 11))
    with db.read() as session:
        (row,) = queue.list_queue(session, world.manager, "cancellations")
    assert row.moved_since_asked
    shown = queue.describe(row)["Appointment"]
    assert shown.startswith(
        clinic_time(
            row,
            at(future_day(1), 11),
        )
    )
    assert f"asked when it was {clinic_time(row, at(future_day(7), 10))}" in shown
    (notice,) = queue.notices(row)
    assert "after the patient asked" in notice and "deny it to keep the new time" in notice


# ---------------------------------------------------------------- a day that has passed


def test_a_requested_day_that_has_passed_is_marked_and_said(db, world):
    passed, coming = new_request(db, world, future_day(1)), new_request(db, world, future_day(2))
    with db.write() as session:  # asked for yesterday, say, and nobody looked until today
        session.get(Appointment, passed).requested_day = future_day(-1)
    with db.read() as session:
        rows = {r.appointment_id: r for r in queue.list_queue(session, world.manager, "requests")}
    assert rows[passed].wish_passed and not rows[coming].wish_passed
    assert queue.describe(rows[passed])["Requested"].endswith("(passed)")
    assert not queue.describe(rows[coming])["Requested"].endswith("(passed)")
    (notice,) = queue.notices(rows[passed])
    assert "has passed" in notice and "Propose a later time" in notice
    assert queue.notices(rows[coming]) == []


def test_a_reschedule_to_a_time_that_has_passed_is_marked(db, world):
    appointment_id = booked(db, world, at(future_day(7), 10))
    with db.write() as session:
        change = changes.request_change(
            session,
            patient_actor("A"),
            appointment_id,
            kind="reschedule",
            requested_start_at=at(future_day(1), 14),
        )
        change.requested_start_at = utcnow() - timedelta(hours=2)  # the day went by
    with db.read() as session:
        (row,) = queue.list_queue(session, world.manager, "reschedules")
    assert row.wish_passed and queue.describe(row)["Requested"].endswith("(passed)")


# ---------------------------------------------------------------- a proposal never answered


def test_a_proposal_shows_until_when_the_patient_may_answer_and_when_it_lapsed(db, world):
    day = future_day(10)
    request_id = new_request(db, world, day)
    with db.write() as session:
        decisions.propose_time(
            session, world.manager, request_id, provider_id=world.provider_id, start_at=at(day, 15)
        )
    with db.read() as session:
        (row,) = queue.list_queue(session, world.manager, "proposals")
        link = select(LinkToken.expires_at).where(LinkToken.subject_id == request_id)
        expires = session.scalar(link.where(LinkToken.purpose == "proposal"))
    assert row.answer_by == expires and not row.lapsed and not row.stale
    assert queue.describe(row)["Answer by"] == clinic_time(row, expires)
    assert queue.describe(row)["Sent"] == clinic_time(row, row.created_at)
    (notice,) = queue.notices(row)
    assert "answers this proposal until" in notice
    later = expires + timedelta(minutes=1)  # a week on, no answer
    with db.read() as session:
        (row,) = queue.list_queue(session, world.manager, "proposals", now=later)
    assert row.lapsed and row.stale and row.answer_by is None
    assert queue.describe(row)["Answer by"] == "⚠ lapsed: no answer"
    (notice,) = queue.notices(row)
    assert "link has lapsed" in notice and "propose a time again" in notice


def test_a_second_proposal_answers_until_its_own_link_lapses(db, world):
    day = future_day(10)
    request_id = new_request(db, world, day)
    with db.write() as session:
        decisions.propose_time(
            session, world.manager, request_id, provider_id=world.provider_id, start_at=at(day, 15)
        )
    with db.write() as session:  # the first link has lapsed: the practice proposes again
        first = session.scalar(select(LinkToken).where(LinkToken.subject_id == request_id))
        first.expires_at = utcnow() - timedelta(minutes=1)
    with db.read() as session:
        (row,) = queue.list_queue(session, world.manager, "proposals")
        assert row.lapsed
    with db.write() as session:
        decisions.propose_time(
            session, world.manager, request_id, provider_id=world.provider_id, start_at=at(day, 16)
        )
    with db.read() as session:
        (row,) = queue.list_queue(session, world.manager, "proposals")
    assert not row.lapsed and row.answer_by > utcnow() + timedelta(days=6)


# ---------------------------------------------------------------- arrival in the clinic's time


def test_arrival_is_shown_in_the_clinics_time(db):
    from tests.factories import build_world

    with db.write() as session:
        world = build_world(session, tz="America/Sao_Paulo")
    request_id = new_request(db, world, future_day(3))
    with db.read() as session:
        (row,) = queue.list_queue(session, world.manager, "requests")
        created = session.get(Appointment, request_id).created_at
    local = to_local(created, "America/Sao_Paulo")
    assert queue.describe(row)["Arrived"].endswith(local.strftime("%H:%M"))
