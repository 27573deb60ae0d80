"""The appointment life cycle: transitions, audit, notifications, conflicts, policy and races.

Re-run on PostgreSQL by tests/integration/test_lifecycle_pg.py."""

from __future__ import annotations

import itertools
import threading
from datetime import date, time, timedelta

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import selectinload

from core.kernel import tokens
from core.kernel.authz import patient_actor
from core.kernel.clock import local_to_utc, to_local
from core.kernel.errors import Conflict, InvalidTransition, PermissionDenied, ValidationError
from core.kernel.money import clinic_time, clinic_time_range
from core.messaging import attachments
from core.portal import home as portal_home
from core.portal import patient_links
from core.requests import bulk, changes, decisions, queue
from core.scheduling import availability, moves, schedules, states, visits
from db import migrate
from db.engine import Database
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    CancellationPolicy,
    ChangeKind,
    ChangeRequest,
    ChangeStatus,
    Clinic,
    LedgerEntry,
    Notification,
    Patient,
    Provider,
    ProviderService,
    Resource,
    Service,
    ServiceResource,
    SlotOpening,
    Source,
    WorkingHours,
)
from db.types import utcnow
from tests.factories import make_patient

TZ = "Europe/London"
S = AppointmentStatus


def future_day(days: int = 3) -> date:
    return to_local(utcnow(), TZ).date() + timedelta(days=days)


def at(day: date, hour: int, minute: int = 0):
    return local_to_utc(day, time(hour, minute), TZ)


def new_request(db, world, day=None, time_of_day="morning", **extra) -> int:
    """A request by the world's patient; two at once differ in something (the same request
    twice is refused: decisions._not_asked_already)."""
    with db.write() as session:
        row = decisions.request_appointment(
            session,
            world.manager,
            patient_id=world.patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            requested_day=day or future_day(),
            time_of_day=time_of_day,
            **extra,
        )
        return row.id


def booked(db, world, start, **extra) -> int:
    with db.write() as session:
        booking = moves.NewBooking(
            clinic_id=world.clinic_id,
            provider_id=world.provider_id,
            start_at=start,
            patient_id=world.patient_id,
            service_ids=[world.service_id],
            mode="in_person",
            **extra,
        )
        return moves.schedule_appointment(session, world.manager, booking).id


def events(db, appointment_id) -> list[AuditEvent]:
    with db.read() as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.entity == "appointment", AuditEvent.entity_id == appointment_id)
                .order_by(AuditEvent.id)
            )
        )


def messages(db, appointment_id, template=None) -> list[Notification]:
    with db.read() as session:
        query = (
            select(Notification)
            .where(Notification.appointment_id == appointment_id)
            .options(selectinload(Notification.attachments))
        )
        if template:
            query = query.where(Notification.template == template)
        return list(session.scalars(query.order_by(Notification.id)))


# ---------------------------------------------------------------- the table


def test_fhir_status_follows_design():
    assert states.fhir_status("requested") == "proposed"
    assert states.fhir_status(S.TENTATIVE) == "pending"
    assert states.fhir_status(S.SCHEDULED) == "booked"
    assert states.fhir_status(S.CHECKED_IN) == "arrived"
    assert states.fhir_status(S.COMPLETED) == "fulfilled"
    assert states.fhir_status(S.NO_SHOW) == "noshow"
    assert states.fhir_status(S.DECLINED) == states.fhir_status(S.CANCELLED) == "cancelled"


def test_terminal_statuses_allow_nothing():
    assert {S.COMPLETED, S.DECLINED, S.CANCELLED} == states.TERMINAL
    assert states.TRANSITIONS[S.CHECKED_IN] == {S.COMPLETED, S.SCHEDULED}  # undo a check-in
    assert states.TRANSITIONS[S.NO_SHOW] == {S.SCHEDULED}  # undo a no-show, on its day


# ---------------------------------------------------------------- requests


def test_request_validates_input(db, world):
    base = dict(
        patient_id=world.patient_id,
        clinic_id=world.clinic_id,
        service_id=world.service_id,
        requested_day=future_day(),
        time_of_day="morning",
    )
    with db.write() as session:
        with pytest.raises(ValidationError, match="known patient"):
            decisions.request_appointment(session, world.manager, **(base | {"patient_id": 999}))
        with pytest.raises(ValidationError, match="service"):
            decisions.request_appointment(session, world.manager, **(base | {"service_id": 999}))
        with pytest.raises(ValidationError, match="has passed"):
            decisions.request_appointment(
                session, world.manager, **(base | {"requested_day": future_day(-2)})
            )
        with pytest.raises(ValidationError, match="time of day"):
            decisions.request_appointment(
                session, world.manager, **(base | {"time_of_day": "noon"})
            )


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (
            {"time_of_day": "noon"},
            "The time of day must be one of early_morning, morning, afternoon, evening, "
            "not 'noon'.",
        ),
        ({"source": "portal"}, "The request's source must be one of online, staff, import, "),
    ],
)
def test_an_unknown_choice_in_a_request_names_the_accepted_values(db, world, extra, words):
    """The portal, links and the CLI call the service with typed values: 'portal' as the
    source stopped it with a bare ValueError (a generic error on screen)."""
    with db.write() as session, pytest.raises(ValidationError) as error:
        decisions.request_appointment(
            session,
            world.manager,
            **{
                "patient_id": world.patient_id,
                "clinic_id": world.clinic_id,
                "service_id": world.service_id,
                "requested_day": future_day(),
                "time_of_day": "morning",
            }
            | extra,
        )
    assert words in str(error.value)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Appointment)) == 0


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"kind": "move"}, "The kind of change must be one of reschedule, cancel, not 'move'."),
        (
            {"kind": "reschedule", "time_of_day": "lunchtime"},
            "The time of day must be one of early_morning, morning, afternoon, evening, "
            "not 'lunchtime'.",
        ),
    ],
)
def test_an_unknown_choice_in_a_change_request_names_the_accepted_values(db, world, extra, words):
    """An unknown kind or time of day stopped request_change with a bare ValueError."""
    appointment_id = booked(db, world, at(future_day(), 10))
    with db.write() as session, pytest.raises(ValidationError) as error:
        changes.request_change(
            session,
            patient_actor("Alex Morgan"),
            appointment_id,
            requested_day=future_day(4),
            **extra,
        )
    assert str(error.value) == words
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(ChangeRequest)) == 0


def test_request_is_audited_and_acknowledged(db, world):
    request_id = new_request(db, world, source=Source.ONLINE)
    [event] = events(db, request_id)
    assert (event.action, event.from_status, event.to_status) == ("request", None, "requested")
    assert {m.channel.value for m in messages(db, request_id, "request_received")} == {
        "email",
        "sms",
    }


def test_approve_schedules_confirms_and_audits(db, world):
    day = future_day()
    request_id = new_request(db, world, day)
    with db.write() as session:
        outcome = decisions.approve_request(
            session,
            world.manager,
            request_id,
            provider_id=world.provider_id,
            start_at=at(day, 10),
            expected_version=1,
            message="See you soon",
        )
    assert outcome.status == S.SCHEDULED and outcome.version == 2
    assert "email to alex@example.org" in outcome.notified
    approve = events(db, request_id)[-1]
    assert (approve.action, approve.from_status, approve.to_status, approve.actor_label) == (
        "approve",
        "requested",
        "scheduled",
        "Manager",
    )
    assert approve.message == "See you soon"
    [email] = [m for m in messages(db, request_id, "appointment_scheduled") if m.channel == "email"]
    local = to_local(at(day, 10), TZ)
    # the clinic's locale (en-GB): weekday, day-month, 24-hour clock, and the zone of that day
    assert f"{local:%a}, {local.day} {local:%b %Y}, 10:00 ({local.tzname()})" in email.body
    files = [name for name, _ in attachments.files_of(email)]
    assert "See you soon" in email.body and files[0].endswith(".png")  # then its .ics


def test_staff_may_not_approve(db, world):
    request_id = new_request(db, world)
    with db.write() as session, pytest.raises(PermissionDenied):
        decisions.approve_request(
            session,
            world.staff,
            request_id,
            provider_id=world.provider_id,
            start_at=at(future_day(), 10),
        )


def test_decline_needs_reason_and_tells_patient(db, world):
    request_id = new_request(db, world)
    with db.write() as session, pytest.raises(ValidationError, match="reason"):
        decisions.decline_request(session, world.manager, request_id, reason="  ")
    with db.write() as session:
        outcome = decisions.decline_request(
            session, world.manager, request_id, reason="Fully booked"
        )
    assert (outcome.status, outcome.kept_booking) == (S.DECLINED, False)
    [email] = [m for m in messages(db, request_id, "appointment_declined") if m.channel == "email"]
    assert "Fully booked" in email.body
    assert events(db, request_id)[-1].reason == "Fully booked"


def test_double_booking_refused_naming_the_conflict_unless_allowed(db, world):
    day = future_day()
    first = booked(db, world, at(day, 10))
    request_id = new_request(db, world, day)
    with db.write() as session, pytest.raises(Conflict, match=f"appointment #{first}"):
        decisions.approve_request(
            session,
            world.manager,
            request_id,
            provider_id=world.provider_id,
            start_at=at(day, 10, 15),
        )
    with db.write() as session:
        decisions.approve_request(
            session,
            world.manager,
            request_id,
            provider_id=world.provider_id,
            start_at=at(day, 10, 15),
            allow_double_booking=True,
        )
    assert events(db, request_id)[-1].details["double_booked_with"] == [first]
    with db.read() as session:
        assert session.get(Appointment, request_id).allow_double_booking


def test_outside_working_hours_refused_unless_overridden(db, world):
    day = future_day()
    request_id = new_request(db, world, day)
    with db.write() as session, pytest.raises(ValidationError, match="not working"):
        decisions.approve_request(
            session, world.manager, request_id, provider_id=world.provider_id, start_at=at(day, 18)
        )
    with db.write() as session:
        decisions.approve_request(
            session,
            world.manager,
            request_id,
            provider_id=world.provider_id,
            start_at=at(day, 18),
            outside_hours_override=True,
        )
    assert events(db, request_id)[-1].details["outside_hours_override"] is True


def test_illegal_transition_says_what_is_allowed(db, world):
    past = utcnow() - timedelta(minutes=5)
    with db.write() as session:
        row = Appointment(
            clinic_id=world.clinic_id,
            provider_id=world.provider_id,
            patient_id=world.patient_id,
            service_id=world.service_id,
            status=S.COMPLETED,
            start_at=past - timedelta(hours=1),
            end_at=past,
        )
        session.add(row)
        session.flush()
        done_id = row.id
    with db.write() as session, pytest.raises(InvalidTransition) as caught:
        moves.cancel_appointment(session, world.manager, done_id, reason="Oops")
    assert str(caught.value).startswith("A completed appointment cannot be cancelled.")


# ---------------------------------------------------------------- proposals


def test_patient_links_use_the_base_url_the_app_hands_to_its_sessions(db, world):
    """No service reads the settings: the public address comes from the database's sessions."""
    day = future_day()
    request_id = new_request(db, world, day)
    clinic_db = Database(db.url, info={"base_url": "https://book.clinic.example"})
    with clinic_db.write() as session:
        raw = decisions.propose_time(
            session, world.manager, request_id, provider_id=world.provider_id, start_at=at(day, 11)
        )
    clinic_db.dispose()
    [email] = [m for m in messages(db, request_id, "appointment_proposed") if m.channel == "email"]
    assert f"https://book.clinic.example/patient?p=proposal&t={raw}" in email.body


def test_propose_then_patient_accepts(db, world):
    day = future_day()
    request_id = new_request(db, world, day)
    with db.write() as session:  # the proposal says where (it said only when)
        session.get(Clinic, world.clinic_id).address = "12 Harbour Street, London"
    with db.write() as session:
        raw = decisions.propose_time(
            session, world.manager, request_id, provider_id=world.provider_id, start_at=at(day, 11)
        )
    with db.read() as session:
        assert tokens.verify(session, raw, "proposal").subject_id == request_id
        assert session.get(Appointment, request_id).status == S.TENTATIVE
    [email] = [m for m in messages(db, request_id, "appointment_proposed") if m.channel == "email"]
    assert f"p=proposal&t={raw}" in email.body
    assert " at Test Clinic, 12 Harbour Street, London." in email.body
    with db.write() as session:
        outcome = decisions.respond_to_proposal(
            session, patient_actor("Alex Morgan"), request_id, accept=True
        )
    assert outcome.status == S.SCHEDULED
    with db.read() as session:
        clinic_mail = session.scalars(
            select(Notification).where(Notification.template == "proposal_answered")
        ).one()
    assert clinic_mail.to_address == "clinic@example.org" and "accepted" in clinic_mail.subject
    assert clinic_mail.body.endswith(f"Open it: http://localhost:8501/appointment?id={request_id}")
    assert events(db, request_id)[-1].actor_label == "Patient Alex Morgan (link)"


def test_patient_declining_a_proposal_puts_the_request_back(db, world):
    day = future_day()
    request_id = new_request(db, world, day)
    with db.write() as session:
        decisions.propose_time(
            session, world.manager, request_id, provider_id=world.provider_id, start_at=at(day, 11)
        )
    with db.write() as session:
        outcome = decisions.respond_to_proposal(
            session, patient_actor("A"), request_id, accept=False
        )
    assert outcome.status == S.REQUESTED


# ---------------------------------------------------------------- moving and cancelling


def test_reschedule_moves_and_tells_patient(db, world):
    day = future_day()
    appointment_id = booked(db, world, at(day, 10))
    with db.write() as session:
        moves.reschedule(session, world.staff, appointment_id, start_at=at(day, 15))
    with db.read() as session:
        row = session.get(Appointment, appointment_id)
        assert (row.start_at, row.end_at, row.reschedule_count) == (at(day, 15), at(day, 15, 30), 1)
    [email] = [
        m for m in messages(db, appointment_id, "appointment_rescheduled") if m.channel == "email"
    ]
    assert "15:00" in email.body and "10:00" in email.body


def test_a_move_from_where_it_no_longer_is_is_refused_saying_by_whom(db, world):
    """A calendar drag from where the appointment was drawn: moved or cancelled since by
    another desk, the drag does not move it from where it is now."""
    day = future_day()
    appointment_id = booked(db, world, at(day, 10))
    with db.write() as session:
        moves.reschedule(session, world.manager, appointment_id, start_at=at(day, 11))
    seen = (at(day, 10), world.provider_id)
    # when, on the visit's clinic's clock, named (a desk may be in another zone)
    refused = pytest.raises(
        Conflict, match=r"already handled by .+ at .+ \((GMT|BST)\) \(now scheduled\)"
    )
    with refused, db.write() as session:
        moves.reschedule(
            session, world.staff, appointment_id, start_at=at(day, 15), moved_from=seen
        )
    with db.read() as session:
        assert session.get(Appointment, appointment_id).start_at == at(day, 11)
    with db.write() as session:  # from where it is: moved
        moves.reschedule(
            session,
            world.staff,
            appointment_id,
            start_at=at(day, 15),
            moved_from=(at(day, 11), world.provider_id),
        )
    with db.write() as session:
        moves.cancel_appointment(session, world.manager, appointment_id, reason="Closed")
    cancelled = pytest.raises(Conflict, match=r"already handled by .+\(now cancelled\)")
    with cancelled, db.write() as session:
        moves.reschedule(
            session,
            world.staff,
            appointment_id,
            start_at=at(day, 16),
            moved_from=(at(day, 15), None),  # a view without providers: the time only
        )


def test_a_move_to_where_the_visit_already_is_is_refused_and_not_counted(db, world):
    """A calendar resize or a drop back in place reached the desk's move at the visit's own
    time: it was recorded as a reschedule ("Moved."), counting against the patient's own
    reschedules under the policy. Refused now, saying where it is and how to move it."""
    day = future_day()
    appointment_id = booked(db, world, at(day, 10))
    here = (at(day, 10), world.provider_id)
    refused = pytest.raises(
        ValidationError,
        match=r"Appointment #\d+ is already on .+10:00.10:30 with Dr Test: nothing was moved\. "
        r"To move it, choose another time or provider",
    )
    with refused, db.write() as session:  # the calendar's resize: same start and provider
        moves.reschedule(
            session,
            world.staff,
            appointment_id,
            start_at=at(day, 10),
            provider_id=world.provider_id,
            moved_from=here,
        )
    with refused, db.write() as session:  # the same time chosen on the appointment's page
        moves.reschedule(session, world.staff, appointment_id, start_at=at(day, 10))
    with db.read() as session:
        assert session.get(Appointment, appointment_id).reschedule_count == 0
    assert [e.action for e in events(db, appointment_id)] == ["schedule"]
    with db.write() as session:  # another time still moves it, once counted
        moves.reschedule(
            session, world.staff, appointment_id, start_at=at(day, 11), moved_from=here
        )
    with db.read() as session:
        assert session.get(Appointment, appointment_id).reschedule_count == 1


def test_a_visit_moved_off_a_provider_on_time_off_is_not_the_patients_reschedule(db, world):
    """Dr Test calls in sick: the desk moves Alex's 10:00 to Dr Other at the same time, Alex
    agreeing on the phone. It counted as one of Alex's own reschedules under the policy, and
    the message read 'now on 10:00 (was 10:00)' without saying the provider changed."""
    day = future_day()
    appointment_id = booked(db, world, at(day, 10))
    other = _second_provider(db, world)
    with db.write() as session:
        schedules.add_time_off(
            session,
            world.manager,
            provider_id=world.provider_id,
            starts_at=at(day, 0),
            ends_at=at(day + timedelta(days=1), 0),
            reason="Ill",
        )
    with db.write() as session:
        moves.reschedule(session, world.staff, appointment_id, start_at=None, provider_id=other)
    with db.read() as session:
        row = session.get(Appointment, appointment_id)
        assert (row.provider_id, row.start_at, row.reschedule_count) == (other, at(day, 10), 0)
    [email] = [
        m for m in messages(db, appointment_id, "appointment_rescheduled") if m.channel == "email"
    ]
    assert "with Dr Other is now on" in email.body and "10:00" in email.body
    assert "with Dr Test)." in email.body  # (was ... 10:00 ... with Dr Test)
    assert events(db, appointment_id)[-1].details["not_counted"]
    with db.write() as session:  # Dr Other is not away: a move from there counts as before
        moves.reschedule(session, world.staff, appointment_id, start_at=at(day, 11))
    with db.read() as session:
        assert session.get(Appointment, appointment_id).reschedule_count == 1
    [_, later] = [
        m for m in messages(db, appointment_id, "appointment_rescheduled") if m.channel == "email"
    ]
    assert "with Dr Test" not in later.body and "Dr Other" in later.body


def test_late_patient_cancellation_is_assessed(db, world):
    with db.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=1),
                window_hours=48,
                late_cancel_fee_cents=2500,
                policy_text="48 h",
            )
        )
    appointment_id = booked(db, world, at(future_day(1), 10))
    with db.write() as session:
        moves.cancel_appointment(
            session, world.manager, appointment_id, reason="Ill", by_patient=True
        )
    with db.read() as session:
        row = session.get(Appointment, appointment_id)
        assert (row.status, row.late_cancellation, row.cancelled_by) == (
            S.CANCELLED,
            True,
            "patient",
        )
        assert row.policy_id is not None
        fee = session.scalar(select(func.sum(LedgerEntry.amount_cents)))
        assert fee == 2500


def test_reminders_off_still_gets_status_changes(db, world):
    with db.write() as session:
        session.get(Patient, world.patient_id).reminders_enabled = False
    appointment_id = booked(db, world, at(future_day(), 10))
    with db.write() as session:
        outcome = moves.cancel_appointment(
            session, world.manager, appointment_id, reason="Provider ill"
        )
    assert len(outcome.notified) == 2


def test_consent_is_respected_and_skips_are_reported(db, world):
    with db.write() as session:
        session.get(Patient, world.patient_id).consent_sms = False
    appointment_id = booked(db, world, at(future_day(), 10))
    with db.write() as session:
        outcome = moves.cancel_appointment(
            session, world.manager, appointment_id, reason="Provider ill"
        )
    assert outcome.skipped == ["no consent to text messages"]


def test_complete_only_once_due_and_no_show_only_after_start(db, world):
    appointment_id = booked(db, world, at(future_day(), 10))
    with db.write() as session, pytest.raises(InvalidTransition, match="once it is due"):
        visits.complete(session, world.staff, appointment_id)
    with db.write() as session, pytest.raises(InvalidTransition, match="after it started"):
        visits.mark_no_show(session, world.staff, appointment_id)
    with db.write() as session:
        visits.check_in(session, world.staff, appointment_id, now=at(future_day(), 9, 50))
        later = at(future_day(), 10, 20)
        assert (
            visits.complete(session, world.staff, appointment_id, now=later).status == S.COMPLETED
        )


# ---------------------------------------------------------------- change requests


def test_reschedule_request_approved_or_denied(db, world):
    day = future_day()
    first, second = booked(db, world, at(day, 10)), booked(db, world, at(day, 12))
    patient = patient_actor("Alex Morgan")
    with db.write() as session:
        change = changes.request_change(
            session,
            patient,
            first,
            kind="reschedule",
            requested_start_at=at(day, 14),
            reason="Work",
        )
        other = changes.request_change(
            session, patient, second, kind=ChangeKind.RESCHEDULE, requested_start_at=at(day, 15)
        )
        ids = change.id, other.id
    with db.write() as session:
        changes.approve_change(session, world.manager, ids[0])
        changes.deny_change(session, world.manager, ids[1], reason="That day is full")
    with db.read() as session:
        assert session.get(Appointment, first).start_at == at(day, 14)
        assert session.get(Appointment, second).start_at == at(day, 12)
        assert session.get(ChangeRequest, ids[1]).status == ChangeStatus.DENIED
    with db.write() as session, pytest.raises(Conflict, match="already handled by Manager"):
        changes.deny_change(session, world.manager, ids[1], reason="again")


def test_cancel_request_stores_the_policy_evaluation(db, world):
    with db.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=1),
                window_hours=48,
                late_cancel_fee_cents=2500,
                points_deducted=10,
                policy_text="48 h",
            )
        )
    appointment_id = booked(db, world, at(future_day(1), 10))
    with db.write() as session:
        change = changes.request_change(
            session, patient_actor("A"), appointment_id, kind="cancel", reason="Away"
        )
        assert (change.inside_window, change.fee_cents, change.points) == (True, 2500, 10)
        change_id = change.id
    with db.write() as session:
        changes.approve_change(session, world.manager, change_id)
    with db.read() as session:
        assert session.get(Appointment, appointment_id).status == S.CANCELLED


def test_an_approved_cancellation_costs_what_the_patient_was_shown_when_asking(db, world):
    """Asked an hour before the window began (no fee shown), approved once inside it: no fee,
    not late, and the patient is not told of one."""
    start = at(future_day(3), 10)
    window = int((start - utcnow()).total_seconds() // 3600) + 1  # inside it now
    asked = start - timedelta(hours=window + 1)  # an hour or two ago: outside it then
    with db.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=10),
                window_hours=window,
                late_cancel_fee_cents=2500,
                points_deducted=10,
                policy_text="late fee",
            )
        )
    appointment_id = booked(db, world, start)
    with db.write() as session:
        change = changes.request_change(
            session, patient_actor("A"), appointment_id, kind="cancel", reason="Away", now=asked
        )
        assert (change.status, change.inside_window, change.fee_cents) == (
            ChangeStatus.OPEN,
            False,
            0,
        )
        change_id = change.id
    with db.write() as session:
        changes.approve_change(session, world.manager, change_id)
    with db.read() as session:
        appointment = session.get(Appointment, appointment_id)
        assert (appointment.status, appointment.late_cancellation) == (S.CANCELLED, False)
        assert appointment.cancelled_at == asked  # its notice agrees: more than the window
        fees = session.scalars(
            select(LedgerEntry).where(LedgerEntry.appointment_id == appointment_id)
        )
        assert list(fees) == []
    told = messages(db, appointment_id, "appointment_cancelled")  # email and text
    assert told and not any("fee" in m.body or "points" in m.body for m in told)


def test_outside_window_cancellation_auto_accepted(db, world):
    with db.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=1),
                window_hours=24,
                outside_window_auto_accept=True,
                policy_text="24 h",
            )
        )
    appointment_id = booked(db, world, at(future_day(5), 10))
    with db.write() as session:
        change = changes.request_change(session, patient_actor("A"), appointment_id, kind="cancel")
        assert change.status == ChangeStatus.APPROVED
    with db.read() as session:
        row = session.get(Appointment, appointment_id)
        assert (row.status, row.late_cancellation) == (S.CANCELLED, False)


def test_proposal_for_change_declined_restores_original(db, world):
    day = future_day()
    appointment_id = booked(db, world, at(day, 10))
    with db.write() as session:
        change = changes.request_change(
            session, patient_actor("A"), appointment_id, kind="reschedule", requested_day=day
        )
        change_id = change.id
    with db.write() as session:
        changes.propose_for_change(session, world.manager, change_id, start_at=at(day, 16))
    with db.write() as session:
        outcome = decisions.respond_to_proposal(
            session, patient_actor("A"), appointment_id, accept=False
        )
    assert outcome.status == S.SCHEDULED
    with db.read() as session:
        assert session.get(Appointment, appointment_id).start_at == at(day, 10)


def test_a_proposal_earlier_than_the_original_declined_restores_it(db, world):
    """The patient at 15:00 asked to move; offered 10:00, they decline: back to 15:00 (the
    restore wrote a 15:00 start before a 10:30 end and failed the database's check)."""
    day = future_day()
    appointment_id = booked(db, world, at(day, 15))
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("A"), appointment_id, kind="reschedule", requested_day=day
        ).id
    with db.write() as session:
        changes.propose_for_change(session, world.manager, change_id, start_at=at(day, 10))
    with db.write() as session:
        outcome = decisions.respond_to_proposal(
            session, patient_actor("A"), appointment_id, accept=False
        )
    assert outcome.status == S.SCHEDULED
    with db.read() as session:
        row = session.get(Appointment, appointment_id)
        assert (row.start_at, row.end_at) == (at(day, 15), at(day, 15, 30))


def test_a_change_request_leaves_the_queue_once_its_appointment_is_cancelled(db, world):
    """The patient asked to move, then phoned and the desk cancelled: the request no longer
    waits in the queue, and a manager who still had it open is told who handled it."""
    day = future_day()
    appointment_id = booked(db, world, at(day, 10))
    with db.write() as session:
        change_id = changes.request_change(
            session,
            patient_actor("A"),
            appointment_id,
            kind="reschedule",
            requested_start_at=at(day, 15),
        ).id
    with db.read() as session:
        [row] = queue.list_queue(session, world.manager, "reschedules")
    with db.write() as session:
        moves.cancel_appointment(session, world.staff, appointment_id, reason="Phoned to cancel")
    with db.read() as session:
        assert queue.queue_counts(session, world.manager)[queue.QueueKind.RESCHEDULES] == 0
        assert queue.list_queue(session, world.manager, "reschedules") == []
    handled = r"already handled by Staff at .* \(now cancelled\)"
    with pytest.raises(Conflict, match=handled), db.write() as session:
        changes.approve_change(
            session, world.manager, change_id, expected_version=row.change_version
        )
    with pytest.raises(Conflict, match=handled), db.write() as session:
        changes.deny_change(session, world.manager, change_id, reason="No")


def test_declining_a_proposal_made_for_a_change_request_keeps_the_booking(db, world):
    """The patient asked to move their visit; the practice proposed 16:00, then declined from
    the queue: the visit stays at 10:00, the change request is denied and the patient is told
    that, not that their appointment request was declined."""
    day = future_day()
    appointment_id = booked(db, world, at(day, 10))
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("A"), appointment_id, kind="reschedule", requested_day=day
        ).id
    with db.write() as session:
        changes.propose_for_change(session, world.manager, change_id, start_at=at(day, 16))
    with db.write() as session:
        outcome = decisions.decline_request(
            session, world.manager, appointment_id, reason="Nothing later this week"
        )
    assert (outcome.status, outcome.kept_booking) == (S.SCHEDULED, True)
    with db.read() as session:
        row = session.get(Appointment, appointment_id)
        assert (row.status, row.start_at, row.decline_reason) == (S.SCHEDULED, at(day, 10), None)
        change = session.get(ChangeRequest, change_id)
        assert (change.status, change.decision_note) == (
            ChangeStatus.DENIED,
            "Nothing later this week",
        )
        assert queue.queue_counts(session, world.manager)[queue.QueueKind.PROPOSALS] == 0
    assert messages(db, appointment_id, "appointment_declined") == []
    [told] = [
        m for m in messages(db, appointment_id, "change_request_denied") if m.channel == "email"
    ]
    assert "stays on" in told.body and "Nothing later this week" in told.body


def _second_provider(db, world, *, performs_all: bool = True) -> int:
    """Dr Other, working the clinic's hours; the world's Dr Test then performs only a peel
    unless `performs_all`."""
    with db.write() as session:
        other = Provider(name="Dr Other")
        session.add(other)
        session.flush()
        for weekday in range(7):
            other.working_hours.append(
                WorkingHours(
                    clinic_id=world.clinic_id, weekday=weekday, starts=time(9), ends=time(17)
                )
            )
        if not performs_all:
            peel = Service(name="Peel", duration_minutes=30, price_cents=9000)
            session.add(peel)
            session.flush()
            session.add(ProviderService(provider_id=world.provider_id, service_id=peel.id))
        return other.id


def test_a_request_is_not_approved_or_proposed_over_the_patients_own_visit(db, world):
    """Alex has a visit with Dr Test at 10:00; a second request of theirs is not approved nor
    proposed at 10:00 with Dr Other (as the desk's booking refuses it), unless double booking is
    allowed, which the audit records; nor is a reschedule request approved into it."""
    day = future_day()
    other = _second_provider(db, world)
    visit = booked(db, world, at(day, 10))
    request_id = new_request(db, world, day)
    for service in (decisions.approve_request, decisions.propose_time):
        with (
            db.write() as session,
            pytest.raises(
                Conflict, match=f"Alex Morgan already has appointment #{visit} on .*with Dr Test"
            ),
        ):
            service(session, world.manager, request_id, provider_id=other, start_at=at(day, 10))
    later = booked(db, world, at(day, 14))
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("A"), later, kind="reschedule", requested_day=day
        ).id
    with pytest.raises(Conflict, match=f"appointment #{visit}"), db.write() as session:
        changes.approve_change(
            session, world.manager, change_id, provider_id=other, start_at=at(day, 10)
        )
    with pytest.raises(Conflict, match=f"appointment #{visit}"), db.write() as session:
        changes.propose_for_change(
            session, world.manager, change_id, provider_id=other, start_at=at(day, 10)
        )
    with db.read() as session:
        assert session.get(Appointment, request_id).status == S.REQUESTED
        assert session.get(Appointment, later).start_at == at(day, 14)
    with db.write() as session:
        decisions.approve_request(
            session,
            world.manager,
            request_id,
            provider_id=other,
            start_at=at(day, 10),
            allow_double_booking=True,
        )
    assert events(db, request_id)[-1].details["patient_double_booked_with"] == [visit]


def test_bulk_approve_takes_a_free_provider_who_performs_the_service(db, world):
    """Dr Test (first by id) performs only peels: the consultation asked for 09:00 goes to
    Dr Other, who performs it, instead of being refused for Dr Test."""
    day = future_day()
    other = _second_provider(db, world, performs_all=False)
    request_id = new_request(db, world, day, start_at=at(day, 9))
    with db.write() as session:
        [result] = bulk.bulk_approve(session, world.manager, [request_id])
    assert result.ok, result.message
    with db.read() as session:
        row = session.get(Appointment, request_id)
        assert (row.status, row.provider_id) == (S.SCHEDULED, other)


# ---------------------------------------------------------------- bulk


def test_bulk_approve_reports_row_by_row(db, world):
    day = future_day()
    exact = new_request(db, world, day, start_at=at(day, 9))
    vague = new_request(db, world, day)
    taken = new_request(db, world, day, None, start_at=at(day, 9))
    with db.write() as session:
        results = bulk.bulk_approve(session, world.manager, [exact, vague, taken])
    assert [r.ok for r in results] == [True, False, False]
    assert "no exact time" in results[1].message
    assert "No provider is free" in results[2].message
    with db.read() as session:
        assert session.get(Appointment, exact).status == S.SCHEDULED
        assert session.get(Appointment, taken).status == S.REQUESTED


def test_bulk_decline_one_reason(db, world):
    ids = [new_request(db, world), new_request(db, world, time_of_day="afternoon")]
    with db.write() as session:
        decisions.decline_request(session, world.manager, ids[1], reason="first")
    with db.write() as session:
        results = bulk.bulk_decline(session, world.manager, ids, "Closed that week")
    assert [r.ok for r in results] == [True, False]
    assert "already handled by Manager" in results[1].message


# ---------------------------------------------------------------- races


def test_two_managers_approving_the_same_request(db, world):
    day = future_day()
    request_id = new_request(db, world, day)
    barrier = threading.Barrier(2)
    results: list[object] = []

    def approve(hour):
        try:
            with db.write() as session:
                barrier.wait(timeout=10)
                decisions.approve_request(
                    session,
                    world.manager,
                    request_id,
                    provider_id=world.provider_id,
                    start_at=at(day, hour),
                    expected_version=1,
                )
            results.append("ok")
        except Conflict as error:
            results.append(error)
        except threading.BrokenBarrierError:  # SQLite: the second writer waits at BEGIN
            results.append("waited")

    threads = [threading.Thread(target=approve, args=(h,)) for h in (10, 11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    if "waited" in results:  # SQLite serialises writers at BEGIN: replay the loser now
        results.remove("waited")
        approve(11)
    assert results.count("ok") == 1
    [conflict] = [r for r in results if isinstance(r, Conflict)]
    assert "already handled by Manager at" in str(conflict)
    assert [e.action for e in events(db, request_id)] == ["request", "approve"]


def test_two_bookings_racing_for_one_slot(db, world):
    day = future_day()
    requests = [new_request(db, world, day), new_request(db, world, day, "afternoon")]
    results: list[object] = []

    def approve(request_id):
        try:
            with db.write() as session:
                decisions.approve_request(
                    session,
                    world.manager,
                    request_id,
                    provider_id=world.provider_id,
                    start_at=at(day, 10),
                )
            results.append("ok")
        except Conflict as error:
            results.append(error)

    threads = [threading.Thread(target=approve, args=(r,)) for r in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results.count("ok") == 1
    assert "already has appointment #" in str([r for r in results if r != "ok"][0])


# ---------------------------------------------------------------- properties

ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "approve",
                "decline",
                "propose",
                "accept",
                "refuse",
                "reschedule",
                "cancel",
                "check_in",
                "complete",
                "no_show",
                "double",
            ]
        ),
        st.integers(0, 2),  # which appointment
        st.integers(9, 16),  # hour
    ),
    min_size=1,
    max_size=12,
)


def _act(s, world, name, appointment_id, start):
    patient = patient_actor("A")
    calls = {
        "approve": lambda: decisions.approve_request(
            s, world.manager, appointment_id, provider_id=world.provider_id, start_at=start
        ),
        "double": lambda: decisions.approve_request(
            s,
            world.manager,
            appointment_id,
            provider_id=world.provider_id,
            start_at=start,
            allow_double_booking=True,
        ),
        "decline": lambda: decisions.decline_request(s, world.manager, appointment_id, reason="r"),
        "propose": lambda: decisions.propose_time(
            s, world.manager, appointment_id, provider_id=world.provider_id, start_at=start
        ),
        "accept": lambda: decisions.respond_to_proposal(s, patient, appointment_id, accept=True),
        "refuse": lambda: decisions.respond_to_proposal(s, patient, appointment_id, accept=False),
        "reschedule": lambda: moves.reschedule(s, world.manager, appointment_id, start_at=start),
        "cancel": lambda: moves.cancel_appointment(s, world.manager, appointment_id, reason="r"),
        "check_in": lambda: visits.check_in(s, world.staff, appointment_id, now=start),
        "complete": lambda: visits.complete(s, world.staff, appointment_id, now=start),
        "no_show": lambda: visits.mark_no_show(s, world.staff, appointment_id, now=start),
    }
    return calls[name]()


_EXAMPLES = itertools.count()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=ACTIONS)
def test_random_actions_keep_the_invariants(db, world, steps):
    day = future_day(2 + next(_EXAMPLES))  # the examples share a database: not one request twice
    ids = [new_request(db, world, day, moment) for moment in ("morning", "afternoon", "evening")]
    for name, index, hour in steps:
        appointment_id = ids[index]
        before = len(events(db, appointment_id))
        try:
            with db.write() as session:
                _act(session, world, name, appointment_id, at(day, hour))
            succeeded = True
        except (Conflict, InvalidTransition, ValidationError):
            succeeded = False
        after = events(db, appointment_id)
        assert len(after) == before + (1 if succeeded else 0)
        with db.read() as session:
            row = session.get(Appointment, appointment_id)
            assert row.status in set(AppointmentStatus)
            if succeeded:
                assert after[-1].to_status == row.status.value
    with db.read() as session:
        rows = list(
            session.scalars(
                select(Appointment).where(
                    Appointment.status.in_([S.TENTATIVE, S.SCHEDULED, S.CHECKED_IN])
                )
            )
        )
        for a in rows:
            for b in rows:
                overlap = a.id < b.id and a.start_at < b.end_at and b.start_at < a.end_at
                if overlap:
                    assert a.allow_double_booking or b.allow_double_booking


@pytest.mark.parametrize("handled", ["cancel", "check_in", "complete", "no_show"])
def test_a_change_request_is_withdrawn_when_its_appointment_leaves_scheduled(db, world, handled):
    """The patient asked to cancel; before the practice answered, the desk cancelled the visit,
    checked them in, completed it or recorded a no-show: the request is closed as withdrawn,
    saying why, and the transition's audit names it. The portal no longer says it waits."""
    start = at(future_day(), 10)
    appointment_id = booked(db, world, start)
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("A"), appointment_id, kind="cancel", reason="Away"
        ).id
        session.get(Patient, world.patient_id).portal_enrolled_at = utcnow()
    with db.write() as session:
        {
            "cancel": lambda: moves.cancel_appointment(
                session, world.staff, appointment_id, reason="Phoned to cancel"
            ),
            "check_in": lambda: visits.check_in(session, world.staff, appointment_id, now=start),
            "complete": lambda: visits.complete(
                session, world.staff, appointment_id, now=start + timedelta(hours=1)
            ),
            "no_show": lambda: visits.mark_no_show(
                session, world.staff, appointment_id, now=start + timedelta(hours=1)
            ),
        }[handled]()
    words = {
        "cancel": "the appointment was cancelled",
        "check_in": "the patient was checked in",
        "complete": "the visit was completed",
        "no_show": "the patient was recorded as a no-show",
    }[handled]
    with db.read() as session:
        change = session.get(ChangeRequest, change_id)
        assert change.status == ChangeStatus.WITHDRAWN
        assert change.decision_note == f"Withdrawn: {words} by Staff before it was answered."
        assert change.decided_at is not None
        assert change.decided_by_user_id == world.staff.user_id
        assert queue.queue_counts(session, world.manager)[queue.QueueKind.CANCELLATIONS] == 0
        [card] = [
            a
            for a in portal_home.home(session, world.patient_id).upcoming
            + portal_home.home(session, world.patient_id).history
            if a.id == appointment_id
        ]
        assert card.change_pending == ""
    assert events(db, appointment_id)[-1].details["change_requests_withdrawn"] == [change_id]


@pytest.mark.parametrize("undone", ["check_in", "no_show"])
def test_undoing_a_mistaken_check_in_or_no_show_reopens_the_request_it_withdrew(db, world, undone):
    """Alex asked to cancel; the desk checked them in (or recorded a no-show) by mistake, which
    withdrew the request, then undid it: the request waits in the queue again, as before."""
    start = at(future_day(), 10)
    appointment_id = booked(db, world, start)
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("A"), appointment_id, kind="cancel", reason="Away"
        ).id
    later = start + timedelta(hours=1)
    with db.write() as session:
        if undone == "check_in":
            visits.check_in(session, world.staff, appointment_id, now=start)
        else:
            visits.mark_no_show(session, world.staff, appointment_id, now=later)
    with db.write() as session:
        if undone == "check_in":
            visits.undo_check_in(session, world.staff, appointment_id)
        else:
            visits.undo_no_show(session, world.staff, appointment_id)
    with db.read() as session:
        change = session.get(ChangeRequest, change_id)
        assert (change.status, change.decision_note, change.decided_at) == (
            ChangeStatus.OPEN,
            None,
            None,
        )
        assert queue.queue_counts(session, world.manager)[queue.QueueKind.CANCELLATIONS] == 1
    assert events(db, appointment_id)[-1].details["change_requests_reopened"] == [change_id]


def test_accepting_a_proposal_refuses_a_time_the_patient_has_another_visit_at(db, world):
    """Alex is proposed 11:00 with Dr Test; meanwhile the desk moves Alex's visit with Dr Other
    to 11:00. Accepting the proposal is refused in the patient's words (their visit's day and
    time, no provider or number), nothing changes and the link still works."""
    day = future_day()
    other = _second_provider(db, world)
    with db.write() as session:
        visit = moves.schedule_appointment(
            session,
            world.manager,
            moves.NewBooking(
                clinic_id=world.clinic_id,
                provider_id=other,
                start_at=at(day, 14),
                patient_id=world.patient_id,
                service_ids=[world.service_id],
            ),
        ).id
    request_id = new_request(db, world, day)
    with db.write() as session:
        raw = decisions.propose_time(
            session, world.manager, request_id, provider_id=world.provider_id, start_at=at(day, 11)
        )
    with db.write() as session:
        moves.reschedule(session, world.staff, visit, start_at=at(day, 11))
        session.get(Patient, world.patient_id).portal_enrolled_at = utcnow()
    with db.read() as session:
        when = clinic_time_range(
            session.get(Appointment, visit).clinic, at(day, 11), at(day, 11, 30), zone=True
        )
    refusal = (
        f"Sorry, we cannot confirm this time for you: you already have a visit on {when}. To "
        "come at the proposed time instead, cancel or move that visit first, then accept this "
        "time; or contact the practice for another one."
    )
    with pytest.raises(Conflict) as refused, db.write() as session:
        patient_links.answer_proposal(session, raw, accept=True)
    assert str(refused.value) == refusal
    with pytest.raises(Conflict, match="you already have a visit on"), db.write() as session:
        portal_home.answer_proposal(session, world.patient_id, request_id, accept=True)
    with db.read() as session:
        row = session.get(Appointment, request_id)
        assert (row.status, row.start_at) == (S.TENTATIVE, at(day, 11))
        assert patient_links.proposal_view(session, raw).appointment_id == request_id


def test_a_newer_proposal_replaces_the_earlier_link(db, world):
    """Proposed 11:00, then 15:00 instead: the first email's link no longer shows or answers
    the proposal (it showed 15:00 and accepted it); it says it was replaced, nothing more."""
    day = future_day()
    request_id = new_request(db, world, day)
    with db.write() as session:
        first = decisions.propose_time(
            session, world.manager, request_id, provider_id=world.provider_id, start_at=at(day, 11)
        )
    with db.write() as session:
        second = decisions.propose_time(
            session, world.manager, request_id, provider_id=world.provider_id, start_at=at(day, 15)
        )
    replaced = (
        "This proposal was replaced by a newer one. Please use the link in the practice's "
        "latest message."
    )
    with pytest.raises(Conflict) as shown, db.read() as session:
        patient_links.proposal_view(session, first)
    assert str(shown.value) == replaced
    with pytest.raises(Conflict, match="replaced by a newer one"), db.write() as session:
        patient_links.answer_proposal(session, first, accept=True)
    with db.read() as session:
        assert session.get(Appointment, request_id).status == S.TENTATIVE
        clinic = session.get(Appointment, request_id).clinic
        assert patient_links.proposal_view(session, second).when == clinic_time(
            clinic, at(day, 15), zone=True
        )
    with db.write() as session:
        patient_links.answer_proposal(session, second, accept=True)
    with db.read() as session:
        row = session.get(Appointment, request_id)
        assert (row.status, row.start_at) == (S.SCHEDULED, at(day, 15))


def _reschedule_proposed(db, world, day, *, to=15):
    """Alex's 10:00 visit with Dr Test; they ask to move it and are proposed `to` o'clock."""
    visit = booked(db, world, at(day, 10))
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("A"), visit, kind="reschedule", requested_day=day
        ).id
    with db.write() as session:
        changes.propose_for_change(session, world.manager, change_id, start_at=at(day, to))
    return visit, change_id


def _book(db, world, start, *, provider_id=None, patient_id=None):
    with db.write() as session:
        booking = moves.NewBooking(
            clinic_id=world.clinic_id,
            provider_id=provider_id or world.provider_id,
            start_at=start,
            patient_id=patient_id or world.patient_id,
            service_ids=[world.service_id],
        )
        return moves.schedule_appointment(session, world.manager, booking).id


def test_schedule_warnings_count_an_original_time_held_for_a_proposal(db, world):
    """Time off over Alex's held 10:00, or hours that no longer cover it, are warned about:
    if Alex turns the 15:00 down, the visit goes back to 10:00."""
    day = future_day()
    visit, _ = _reschedule_proposed(db, world, day)
    with db.read() as session:
        morning = schedules.bookings_during(
            session, world.manager, world.provider_id, at(day, 9), at(day, 12)
        )
        whole_day = schedules.bookings_during(
            session, world.manager, world.provider_id, at(day, 9), at(day, 17)
        )
    assert (morning, whole_day) == (1, 1)  # one visit, held at 10:00 and proposed at 15:00
    with db.read() as session:
        _, named = schedules.bookings_in_time_off(
            session, world.manager, world.provider_id, at(day, 9), at(day, 12)
        )
    assert len(named) == 1 and named[0].startswith(f"#{visit} ")
    assert "10:00–10:30" in named[0] and named[0].endswith(" (held)")
    with db.write() as session:  # the provider now starts at noon that weekday
        schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=world.clinic_id,
            hours=[schedules.HoursRow(day.weekday(), time(12), time(18))],
        )
    with db.read() as session:
        count, named = schedules.bookings_outside_hours(
            session, world.manager, world.provider_id, world.clinic_id
        )
    assert count == 1 and named[0].startswith(f"#{visit} ") and named[0].endswith(" (held)")


def test_the_original_time_stays_held_while_a_proposal_for_a_change_waits(db, world):
    """Alex asked to move their 10:00 visit and was proposed 15:00. Until they answer, 10:00
    stays theirs: Dr Test cannot be booked then, Alex cannot be booked elsewhere then, and the
    queue's suggestions skip it; turning the proposal down puts them back at 10:00 with nobody
    else there. Once they accept, 10:00 is free again."""
    day = future_day()
    other = _second_provider(db, world)
    with db.write() as session:
        sam = make_patient(session, first_name="Sam", last_name="Lee", email="sam@example.org").id
    visit, change_id = _reschedule_proposed(db, world, day)
    held = f"Dr Test keeps the original time of appointment #{visit}, held while its patient"
    with pytest.raises(Conflict, match=held):
        _book(db, world, at(day, 10, 15), patient_id=sam)
    with pytest.raises(Conflict, match=f"Alex Morgan already has appointment #{visit} on .*10:00"):
        _book(db, world, at(day, 10), provider_id=other)
    with db.read() as session:
        slots = availability.suggest_slots(
            session,
            clinic_id=world.clinic_id,
            duration_minutes=30,
            day=day,
            provider_id=world.provider_id,
            time_of_day="morning",
            limit=12,
            search_days=1,
        )
        assert at(day, 10) not in [s.start_at for s in slots]
        assert at(day, 9, 30) in [s.start_at for s in slots]
    with db.write() as session:
        decisions.respond_to_proposal(session, patient_actor("A"), visit, accept=False)
    with db.read() as session:
        row = session.get(Appointment, visit)
        assert (row.status, row.start_at, row.provider_id) == (
            S.SCHEDULED,
            at(day, 10),
            world.provider_id,
        )
        assert (
            availability.find_conflicts(
                session, world.provider_id, at(day, 10), at(day, 10, 30), visit
            )
            == []
        )
    # asked again, proposed again and accepted: the 10:00 is free for Sam
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("A"), visit, kind="reschedule", requested_day=day
        ).id
    with db.write() as session:
        changes.propose_for_change(session, world.manager, change_id, start_at=at(day, 15))
    with db.write() as session:
        decisions.respond_to_proposal(session, patient_actor("A"), visit, accept=True)
    assert _book(db, world, at(day, 10), patient_id=sam)


def test_held_times_are_read_in_one_query_however_many_are_held(db, world):
    """availability.held runs inside every slot suggestion (once per waitlist entry on the
    Waitlist page): three proposals waiting, for three patients with two providers, cost the
    statements one does, and each hold names its clinic, provider and patient with no read of
    its own. Before, each hold loaded its appointment's clinic and patient and its provider."""
    day = future_day()
    other = _second_provider(db, world)

    def proposed(patient_id: int, provider_id: int, hour: int) -> None:
        with db.write() as session:
            booking = moves.NewBooking(
                clinic_id=world.clinic_id,
                provider_id=provider_id,
                start_at=at(day, hour),
                patient_id=patient_id,
                service_ids=[world.service_id],
            )
            visit = moves.schedule_appointment(session, world.manager, booking).id
        with db.write() as session:
            change_id = changes.request_change(
                session, patient_actor("A"), visit, kind="reschedule", requested_day=day
            ).id
        with db.write() as session:
            changes.propose_for_change(
                session, world.manager, change_id, start_at=at(day, hour + 4)
            )

    def local(moment) -> time:
        return to_local(moment, TZ).time()

    def read() -> tuple[int, list[tuple[str, str, str, time]]]:
        seen: list[str] = []

        def count(conn, cursor, statement, *args):
            seen.append(statement)

        with db.read() as session:
            sa_event.listen(db.engine, "before_cursor_execute", count)
            try:
                holds = availability.held(session, at(day, 8), at(day, 14))
                named = [
                    (h.clinic.name, h.provider.name, h.patient.full_name, local(h.start_at))
                    for h in holds
                ]
            finally:
                sa_event.remove(db.engine, "before_cursor_execute", count)
        return len(seen), named

    proposed(world.patient_id, world.provider_id, 10)
    one, named = read()
    assert named == [("Test Clinic", "Dr Test", "Alex Morgan", time(10))]
    with db.write() as session:
        sam, kim = (
            make_patient(session, first_name=name, last_name="Lee", email=f"{name}@example.org").id
            for name in ("Sam", "Kim")
        )
    proposed(sam, other, 11)
    proposed(kim, world.provider_id, 12)
    assert read() == (
        one,
        [
            ("Test Clinic", "Dr Test", "Alex Morgan", time(10)),
            ("Test Clinic", "Dr Other", "Sam Lee", time(11)),
            ("Test Clinic", "Dr Test", "Kim Lee", time(12)),
        ],
    )


def test_the_held_original_time_goes_to_the_waitlist_once_the_hold_ends(db, world):
    """Accepted: the 10:00 Alex kept is freed time, as a move's old time is. Cancelled while a
    proposal waits: both the proposed time and the held original are."""

    def opened(visit):
        with db.read() as session:
            return sorted(
                (o.start_at, o.reason)
                for o in session.scalars(
                    select(SlotOpening).where(SlotOpening.appointment_id == visit)
                )
            )

    day = future_day()
    visit, _ = _reschedule_proposed(db, world, day)
    assert opened(visit) == []  # held, not free, while the patient answers
    with db.write() as session:
        decisions.respond_to_proposal(session, patient_actor("A"), visit, accept=True)
    assert opened(visit) == [(at(day, 10), "moved")]
    other, _ = _reschedule_proposed(db, world, day + timedelta(days=1))
    with db.write() as session:
        moves.cancel_appointment(session, world.manager, other, reason="Clinic closed that day")
    assert opened(other) == [
        (at(day + timedelta(days=1), 10), "cancelled"),
        (at(day + timedelta(days=1), 15), "cancelled"),
    ]


def test_the_held_original_keeps_its_room_and_is_let_go_when_the_proposal_is_cancelled(db, world):
    """Alex's 10:00 visit needs the clinic's one room; proposed 15:00, the room stays theirs at
    10:00 (Sam cannot have it with Dr Other), until the practice cancels the visit."""
    day = future_day()
    other = _second_provider(db, world)
    with db.write() as session:
        room = Resource(clinic_id=world.clinic_id, name="Room 1", kind="room", quantity=1)
        session.add(room)
        session.flush()
        session.add(ServiceResource(service_id=world.service_id, resource_id=room.id))
        sam = make_patient(session, first_name="Sam", last_name="Lee", email="sam@example.org").id
    visit, change_id = _reschedule_proposed(db, world, day)
    with pytest.raises(
        Conflict, match=rf"Room 1 at Test Clinic is busy then \(in use by .*#{visit}"
    ):
        _book(db, world, at(day, 10), provider_id=other, patient_id=sam)
    with db.write() as session:
        moves.cancel_appointment(session, world.manager, visit, reason="Clinic closed that day")
    with db.read() as session:
        assert session.get(ChangeRequest, change_id).status == ChangeStatus.WITHDRAWN
    assert _book(db, world, at(day, 10), provider_id=other, patient_id=sam)


def test_the_migration_gives_a_waiting_proposal_its_original_provider(db, world):
    """Proposals waiting when 0009 runs hold their original time from then on: the provider
    is taken from the proposal's audit event."""
    day = future_day()
    _visit, change_id = _reschedule_proposed(db, world, day)
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    for verb, revision in (("downgrade", "0008"), ("upgrade", "head")):
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            getattr(command, verb)(config, revision)
        if verb == "downgrade":
            names = {c["name"] for c in inspect(db.engine).get_columns("change_requests")}
            assert "original_provider_id" not in names
    with db.read() as session:
        assert session.get(ChangeRequest, change_id).original_provider_id == world.provider_id
