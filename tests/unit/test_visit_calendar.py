"""A visit in the patient's own calendar: the .ics file attached to the messages that say when
a visit is, and offered in the portal. Re-run on PostgreSQL by
tests/integration/test_visit_calendar_pg.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from core.kernel.clock import local_to_utc, to_local
from core.messaging import attachments, visit_calendar
from core.portal import home
from core.requests import decisions
from core.scheduling import moves
from db.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    Clinic,
    Notification,
    Patient,
    Service,
    VisitMode,
)
from db.types import utcnow
from tests.factories import make_visit

TZ = "Europe/London"  # the world's clinic: clocks go back on Sun 25 Oct 2026
S = AppointmentStatus


SENDER = "Harbour Street Desk <desk@harbour.example>"  # SMTP_FROM: the messages' From


def _parsed(content: bytes):
    """(the file's METHOD, its one event), read back by icalendar."""
    calendar = Calendar.from_ical(content)
    [event] = calendar.walk("VEVENT")
    return str(calendar["METHOD"]), event


def _event(content: bytes):
    method, event = _parsed(content)
    assert method == "PUBLISH"
    return event


def _organizer(event) -> tuple[str, str]:
    """(address, CN) of the event's ORGANIZER."""
    organizer = event["ORGANIZER"]
    return str(organizer), str(organizer.params["CN"])


def _visit(session, world, day: date, **fields) -> Appointment:
    start = local_to_utc(day, time(9), TZ)
    values = dict(status=S.SCHEDULED, start_at=start, end_at=start + timedelta(minutes=30))
    return make_visit(session, world, **(values | fields))


def test_a_visit_at_nine_stays_at_nine_on_both_sides_of_the_clocks_change(db, world):
    with db.write() as session:
        before = _visit(session, world, date(2026, 10, 23))  # BST: 08:00 UTC
        after = _visit(session, world, date(2026, 10, 26))  # GMT: 09:00 UTC
        files = [visit_calendar.visit_file(v) for v in (before, after)]
    assert [name for name, _ in files] == [
        "test-clinic-2026-10-23.ics",
        "test-clinic-2026-10-26.ics",
    ]
    starts = [_event(content)["DTSTART"].dt for _, content in files]
    ends = [_event(content)["DTEND"].dt for _, content in files]
    assert starts == [datetime(2026, 10, 23, 8, tzinfo=UTC), datetime(2026, 10, 26, 9, tzinfo=UTC)]
    assert [to_local(s, TZ).time() for s in starts] == [time(9), time(9)]
    assert [e - s for s, e in zip(starts, ends, strict=True)] == [timedelta(minutes=30)] * 2


def test_the_file_says_what_the_messages_say_escaped_and_never_the_notes(db, world):
    """Staff-typed names go in only as escaped TEXT (their ';' and ',' read back as typed,
    splitting nothing); the notes, staff-only, never go in."""
    with db.write() as session:
        clinic = session.get(Clinic, world.clinic_id)
        clinic.address = "1 High Street; London, N1"
        session.get(Service, world.service_id).name = "Peel; face, neck"
        visit = _visit(session, world, date(2026, 12, 7), notes="Owes £40, difficult")
        virtual = _visit(session, world, date(2026, 12, 8), mode=VisitMode.VIRTUAL)
        _, content = visit_calendar.visit_file(visit)
        _, video = visit_calendar.visit_file(virtual)
    event = _event(content)
    assert str(event["SUMMARY"]) == "Peel; face, neck at Test Clinic"
    assert str(event["LOCATION"]) == "1 High Street; London, N1"
    assert b"LOCATION:1 High Street\\; London\\, N1" in content
    assert event["STATUS"] == "CONFIRMED" and b"Owes" not in content
    assert str(_event(video)["LOCATION"]) == "Video visit"


def test_the_clinic_organizes_the_event_from_the_address_the_messages_go_from(db, world):
    """RFC 5546 3.2.1: a PUBLISH names its ORGANIZER and no ATTENDEE. The clinic's name, as
    staff typed it, goes in only as the CN parameter's value (its quote, ';', ',' and ':' read
    back as typed, adding no parameter of their own); the address is the one the messages go
    from (SMTP_FROM), not the clinic's own inbox."""
    name = 'St "Mary\'s"; Harbour, N1: skin'
    with db.write() as session:
        session.get(Clinic, world.clinic_id).name = name
        visit = _visit(session, world, date(2026, 12, 7))
        _, content = visit_calendar.visit_file(visit, sender=SENDER)
        _, default = visit_calendar.visit_file(visit)
    event = _event(content)
    assert _organizer(event) == ("mailto:desk@harbour.example", name)
    assert "ATTENDEE" not in event
    assert _organizer(_event(default)) == ("mailto:no-reply@clinicdesk.local", name)


@pytest.mark.parametrize("status", list(S))
def test_a_cancelled_or_declined_visit_is_a_cancel_every_other_a_publish(db, world, status):
    """RFC 5546 3.2.5: a published event is taken out of a calendar by METHOD:CANCEL with its
    UID, STATUS:CANCELLED and a SEQUENCE above the one it was published with (the flow test
    below: the cancellation grows the version). Before, every file said PUBLISH, a cancelled
    visit's too, and none named an ORGANIZER."""
    with db.write() as session:
        visit = _visit(session, world, date(2026, 12, 7), status=status)
        _, content = visit_calendar.visit_file(visit, sender=SENDER)
        version = visit.version
    method, event = _parsed(content)
    off = status in (S.CANCELLED, S.DECLINED)
    assert method == ("CANCEL" if off else "PUBLISH")
    assert (event["STATUS"] == "CANCELLED") == off
    assert event["SEQUENCE"] == version
    assert _organizer(event)[0] == "mailto:desk@harbour.example" and "ATTENDEE" not in event


def _files(db, appointment_id: int, template: str):
    with db.read() as session:
        rows = session.scalars(
            select(Notification)
            .where(Notification.appointment_id == appointment_id, Notification.template == template)
            .options(selectinload(Notification.attachments))
        ).all()
    by_channel = {n.channel: attachments.files_of(n) for n in rows}
    assert by_channel[Channel.SMS] == []  # a text message carries no file
    return dict(by_channel[Channel.EMAIL])


def test_booked_moved_and_cancelled_emails_update_one_event_in_the_patients_calendar(db, world):
    """The confirmation keeps its check-in QR code and carries the .ics; the file sent when the
    visit moves, and when it is cancelled, has the same UID and a higher SEQUENCE, so the
    patient's calendar moves, then cancels, the event it already has."""
    day = to_local(utcnow(), TZ).date() + timedelta(days=5)
    with db.write() as session:
        session.info["sender"] = SENDER
        request = decisions.request_appointment(
            session,
            world.manager,
            patient_id=world.patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            requested_day=day,
            time_of_day="morning",
        )
        request_id = request.id
    with db.write() as session:
        session.info["sender"] = SENDER
        decisions.approve_request(
            session,
            world.manager,
            request_id,
            provider_id=world.provider_id,
            start_at=local_to_utc(day, time(10), TZ),
            expected_version=1,
        )
    booked = _files(db, request_id, "appointment_scheduled")
    ics = f"test-clinic-{day.isoformat()}.ics"
    assert sorted(booked) == [f"check-in-{request_id}.png", ics]
    assert booked[f"check-in-{request_id}.png"].startswith(b"\x89PNG")
    with db.write() as session:
        session.info["sender"] = SENDER
        moves.reschedule(
            session, world.manager, request_id, start_at=local_to_utc(day, time(14), TZ)
        )
        moved_version = session.get(Appointment, request_id).version
    with db.write() as session:
        session.info["sender"] = SENDER
        moves.cancel_appointment(session, world.manager, request_id, reason="Clinic closed")
        version = session.get(Appointment, request_id).version
    assert version > moved_version  # the cancellation grew the version: a higher SEQUENCE
    moved = _files(db, request_id, "appointment_rescheduled")
    cancelled = _files(db, request_id, "appointment_cancelled")
    parsed = [_parsed(files[ics]) for files in (booked, moved, cancelled)]
    assert [method for method, _ in parsed] == ["PUBLISH", "PUBLISH", "CANCEL"]
    events = [event for _, event in parsed]
    assert {_organizer(e) for e in events} == {("mailto:desk@harbour.example", "Test Clinic")}
    assert {str(e["UID"]) for e in events} == {f"visit-{request_id}@localhost"}
    sequences = [e["SEQUENCE"] for e in events]
    assert sequences == sorted(set(sequences)) and sequences[-1] == version
    assert [to_local(e["DTSTART"].dt, TZ).hour for e in events] == [10, 14, 14]
    assert [e["STATUS"] for e in events] == ["CONFIRMED", "CONFIRMED", "CANCELLED"]


def test_a_cancelled_time_the_patient_never_had_in_a_calendar_sends_no_file(db, world):
    """A proposed time cancelled before the patient accepted it: its cancellation carries no
    CANCELLED event, which a calendar would otherwise show for a visit never in it."""
    day = to_local(utcnow(), TZ).date() + timedelta(days=6)
    with db.write() as session:
        proposed = _visit(session, world, day, status=S.TENTATIVE).id
    with db.write() as session:
        moves.cancel_appointment(session, world.manager, proposed, reason="Clinic closed")
    assert _files(db, proposed, "appointment_cancelled") == {}


def test_the_portal_offers_the_file_for_a_visit_whose_time_is_agreed(db, world):
    day = to_local(utcnow(), TZ).date() + timedelta(days=4)
    with db.write() as session:
        session.get(Patient, world.patient_id).portal_enrolled_at = utcnow()
        scheduled = _visit(session, world, day).id
        proposed = _visit(session, world, day + timedelta(days=1), status=S.TENTATIVE).id
        session.info["base_url"] = "https://desk.example"
        session.info["sender"] = SENDER
        view = home.home(session, world.patient_id)
        version = session.get(Appointment, scheduled).version
    files = {a.id: a.calendar_file for a in view.upcoming}
    assert files[proposed] is None  # not agreed yet: accepting it sends the confirmation
    name, content = files[scheduled]
    event = _event(content)
    assert name == f"test-clinic-{day.isoformat()}.ics"
    assert (str(event["UID"]), event["SEQUENCE"]) == (f"visit-{scheduled}@desk.example", version)
    assert _organizer(event) == ("mailto:desk@harbour.example", "Test Clinic")
