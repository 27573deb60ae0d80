"""In-office booking: patient lookup or inline creation, free providers with reasons, services
adding up, virtual visits, out-of-office blocks, notification choice and edited message.

Re-run on PostgreSQL by tests/integration/test_calendar_pg.py."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, time, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from core.kernel.clock import local_to_utc, to_local
from core.kernel.errors import Conflict, PermissionDenied, ValidationError
from core.messaging import attachments
from core.practice import travel
from core.scheduling import booking
from core.scheduling.lifecycle import LINK_PLACEHOLDER
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    AuditEvent,
    Channel,
    Clinic,
    Notification,
    Patient,
    Provider,
    Service,
    TimeOff,
    WorkingHours,
)
from db.types import utcnow

TZ = "Europe/London"


def day_ahead(days: int = 4) -> date:
    return to_local(utcnow(), TZ).date() + timedelta(days=days)


def at(hour: int, minute: int = 0, days: int = 4):
    return local_to_utc(day_ahead(days), time(hour, minute), TZ)


def book(db, world, actor=None, **extra):
    values = dict(
        clinic_id=world.clinic_id,
        provider_id=world.provider_id,
        start_at=at(10),
        service_ids=[world.service_id],
        patient_id=world.patient_id,
    )
    with db.write() as session:
        return booking.book(session, actor or world.staff, booking.InOffice(**(values | extra)))


def test_booking_an_existing_patient_sends_the_confirmation_with_qr(db, world):
    booked = book(db, world)
    with db.read() as session:
        row = session.get(Appointment, booked.appointment_id)
        assert row.status == AppointmentStatus.SCHEDULED and row.end_at - row.start_at == timedelta(
            minutes=30
        )
        assert row.created_by_user_id == world.staff.user_id
        sent = session.scalars(
            select(Notification)
            .options(selectinload(Notification.attachments))
            .order_by(Notification.channel)
        ).all()
    assert {n.channel.value for n in sent} == {"email", "sms"}
    email = next(n for n in sent if n.channel.value == "email")
    qr, _ = attachments.files_of(email)  # and the .ics
    assert qr[1].startswith(b"\x89PNG") and "confirmed" in email.subject


def test_services_add_up_and_the_message_can_be_edited_and_sent_by_email_only(db, world):
    with db.write() as session:
        extra = Service(name="Skin check", duration_minutes=45)
        session.add(extra)
        session.flush()
        extra_id = extra.id
        assert booking.total_minutes(session, [world.service_id, extra_id]) == 75
    booked = book(
        db,
        world,
        service_ids=[world.service_id, extra_id],
        notify_channels=[booking.Channel.EMAIL],
        subject="See you soon",
        body="Edited text",
    )
    with db.read() as session:
        row = session.get(Appointment, booked.appointment_id)
        assert row.end_at - row.start_at == timedelta(minutes=75)
        assert [s.service_id for s in row.services] == [world.service_id, extra_id]
        sent = session.scalars(select(Notification)).all()
    assert [(n.channel.value, n.subject) for n in sent] == [("email", "See you soon")]
    # staff took the link's placeholder out: the patient's link still comes, after their text
    assert re.fullmatch(r"Edited text\n\nTo cancel or reschedule: \S+p=change&t=\S+", sent[0].body)


def test_an_edited_confirmation_gets_the_link_where_its_placeholder_stood(db, world):
    _, preview = _preview(db, world)
    assert LINK_PLACEHOLDER in preview
    edited = preview.replace("Dear Alex Morgan", "Hello Alex")
    booked = book(db, world, notify_channels=[booking.Channel.EMAIL], body=edited)
    with db.read() as session:
        body = session.scalar(
            select(Notification.body).where(Notification.appointment_id == booked.appointment_id)
        )
    assert body.startswith("Hello Alex") and LINK_PLACEHOLDER not in body
    assert re.search(r"To cancel or reschedule: \S+p=change&t=\S+", body)


def test_do_not_notify_queues_nothing(db, world):
    booked = book(db, world, notify_channels=[])
    assert not any("Confirmation" in note for note in booked.notes)
    with db.read() as session:
        assert session.scalars(select(Notification)).all() == []


def test_new_patient_inline_with_consent_and_card_on_file(db, world):
    new = booking.NewPatient(
        first_name="Rosa",
        last_name="Diaz",
        date_of_birth=date(1990, 1, 2),
        email="rosa@example.org",
        phone="07700 900555",
        consent_email=True,
        consent_sms=False,
    )
    booked = book(
        db, world, patient_id=None, new_patient=new, card_on_file=True, invite_to_portal=True
    )
    assert booked.notes[0] == "New patient Rosa Diaz created."
    assert "Portal invitation sent." in booked.notes
    with db.read() as session:
        patient = session.get(Patient, booked.patient_id)
        assert (patient.consent_email, patient.consent_sms, patient.card_on_file) == (
            True,
            False,
            True,
        )
        channels = session.scalars(
            select(Notification.channel).where(Notification.patient_id == patient.id)
        ).all()
    assert "sms" not in {c.value for c in channels}  # no consent to texts


def test_a_patient_is_required_and_virtual_only_where_the_service_allows(db, world):
    with pytest.raises(ValidationError, match="Find the patient"):
        book(db, world, patient_id=None)
    with db.write() as session:
        peel = Service(name="Chemical peel", duration_minutes=45, virtual_allowed=False)
        session.add(peel)
        session.flush()
        peel_id = peel.id
    with pytest.raises(ValidationError, match="Chemical peel cannot be done virtually"):
        book(db, world, service_ids=[peel_id], mode="virtual")
    assert book(db, world, mode="virtual").appointment_id


def test_conflicts_are_refused_unless_double_booking_is_allowed(db, world):
    book(db, world)
    with pytest.raises(Conflict, match="already has appointment"):
        book(db, world, start_at=at(10, 15))
    booked = book(db, world, start_at=at(10, 15), allow_double_booking=True)
    with db.read() as session:
        assert session.get(Appointment, booked.appointment_id).allow_double_booking


def test_provider_choices_offer_free_providers_and_say_why_others_are_not(db, world):
    with db.write() as session:
        busy_free = Provider(name="Dr Early")
        session.add(busy_free)
        session.flush()
        busy_free.working_hours.append(
            WorkingHours(
                clinic_id=world.clinic_id,
                weekday=day_ahead().weekday(),
                starts=time(8),
                ends=time(9, 30),
            )
        )
    book(db, world)
    with db.read() as session:
        choices = booking.provider_choices(
            session, world.staff, clinic_id=world.clinic_id, start_at=at(10), minutes=30
        )
        early = booking.provider_choices(
            session, world.staff, clinic_id=world.clinic_id, start_at=at(8), minutes=30
        )
    assert [(c.name, c.free) for c in choices] == [("Dr Early", False), ("Dr Test", False)]
    assert choices[0].why == "not working then (outside their hours)"
    assert choices[1].why.startswith("booked 10:00–10:30")
    assert [(c.name, c.free) for c in early] == [("Dr Early", True), ("Dr Test", False)]


def test_provider_choices_say_closing_time_a_break_or_the_time_off_in_the_way(db, world):
    """'not working then (outside hours or on time off)' was all the desk read of a provider
    who works that afternoon when the visit ran past their closing or into their break."""
    with db.write() as session:
        split = Provider(name="Dr Split")  # a lunch break from 12:00 to 13:00
        for starts, ends in ((time(9), time(12)), (time(13), time(17))):
            split.working_hours.append(
                WorkingHours(
                    clinic_id=world.clinic_id,
                    weekday=day_ahead().weekday(),
                    starts=starts,
                    ends=ends,
                )
            )
        session.add(split)
        session.flush()
        session.add(TimeOff(provider_id=split.id, starts_at=at(15), ends_at=at(16)))

    def why(start_at):
        with db.read() as session:
            return {
                c.name: c.why
                for c in booking.provider_choices(
                    session, world.staff, clinic_id=world.clinic_id, start_at=start_at, minutes=30
                )
            }

    assert why(at(16, 45)) == {
        "Dr Split": "works until 17:00, and the visit would end at 17:15",
        "Dr Test": "works until 17:00, and the visit would end at 17:15",
    }
    assert why(at(11, 45))["Dr Split"] == "works until 12:00, and the visit would end at 12:15"
    assert why(at(12, 15))["Dr Split"] == "not working then (outside their hours)"
    assert why(at(14, 45))["Dr Split"] == (
        f"on time off {to_local(at(15), TZ):%a, %-d %b %Y}, 15:00–16:00"
    )
    assert why(at(14, 15))["Dr Split"] == ""


def test_next_free_times_follow_bookings_hours_and_time_off_in_the_clinics_zone(db, world):
    """When nobody is free at the time asked, the form offers the next times that fit: after
    the booking there, past closing on the next day, past a day off, in the clinic's zone."""
    book(db, world)  # 10:00-10:30

    def nexts(start_at, **extra):
        with db.read() as session:
            return booking.next_free_times(
                session,
                world.staff,
                clinic_id=world.clinic_id,
                start_at=start_at,
                service_ids=[world.service_id],
                **extra,
            )

    then = to_local(at(10), TZ).strftime("%a, %-d %b %Y")  # the clinic's locale, en-GB
    assert [f.label for f in nexts(at(10))] == [
        f"{then}, {clock} with Dr Test" for clock in ("10:30", "10:45", "11:00")
    ]
    late = nexts(at(16, 45))  # 30 minutes do not fit before closing at 17:00
    assert (late[0].day, late[0].at, late[0].start_at) == (day_ahead(5), time(9), at(9, days=5))
    with db.write() as session:  # the next day off: the day after
        session.add(
            TimeOff(provider_id=world.provider_id, starts_at=at(0, days=5), ends_at=at(0, days=6))
        )
    assert nexts(at(16, 45), provider_id=world.provider_id)[0].start_at == at(9, days=6)
    with db.write() as session:  # a clinic in New York: its own wall clock
        session.get(Clinic, world.clinic_id).timezone = "America/New_York"
    asked = local_to_utc(day_ahead(8), time(16, 45), "America/New_York")
    first = nexts(asked)[0]
    assert (first.day, first.at) == (day_ahead(9), time(9))
    assert first.start_at == local_to_utc(day_ahead(9), time(9), "America/New_York")


def test_out_of_office_block_needs_no_patient_and_blocks_the_provider(db, world):
    booked = book(
        db,
        world,
        patient_id=None,
        service_ids=[],
        kind="out_of_office",
        start_at=at(12),
        end_at=at(13),
        notes="Training",
    )
    with db.read() as session:
        row = session.get(Appointment, booked.appointment_id)
        assert row.kind == AppointmentKind.OUT_OF_OFFICE and row.patient_id is None
        choices = booking.provider_choices(
            session, world.staff, clinic_id=world.clinic_id, start_at=at(12, 30), minutes=30
        )
    assert choices[0].why.startswith("out of office 12:00–13:00")
    with pytest.raises(Conflict, match="out of office"):
        book(db, world, start_at=at(12, 15))


def _preview(db, world) -> tuple[str, str]:
    with db.read() as session:
        return booking.preview_confirmation(
            session,
            world.staff,
            clinic_id=world.clinic_id,
            provider_name="Dr Test",
            service_names=["Consultation"],
            start_at=at(10),
            patient_name="Alex Morgan",
        )


def test_preview_shows_the_confirmation_text(db, world):
    subject, body = _preview(db, world)
    assert "is confirmed" in subject and "Dear Alex Morgan" in body and "Dr Test" in body
    assert "Test Clinic" in body


def test_booking_needs_the_permission(db, world):
    from core.kernel.authz import patient_actor

    with pytest.raises(PermissionDenied):
        book(db, world, actor=patient_actor("Alex"))


def test_provider_choices_agree_with_the_per_provider_checks(db, world):
    """The clinic-wide queries give each provider the verdict availability's own checks give."""
    from core.scheduling import availability
    from db.models import TimeOff

    with db.write() as session:
        early = Provider(name="Dr Early")
        session.add(early)
        session.flush()
        early.working_hours.append(
            WorkingHours(
                clinic_id=world.clinic_id,
                weekday=day_ahead().weekday(),
                starts=time(8),
                ends=time(12),
            )
        )
        session.add(
            TimeOff(provider_id=early.id, starts_at=at(10), ends_at=at(11), reason="Dentist")
        )
    book(db, world)
    book(
        db,
        world,
        patient_id=None,
        service_ids=[],
        kind="out_of_office",
        start_at=at(12),
        end_at=at(13),
        notes="Training",
    )
    with db.read() as session:
        for hour, minute in [(7, 45), (8, 0), (9, 45), (10, 15), (11, 45), (12, 30), (17, 45)]:
            start = at(hour, minute)
            choices = booking.provider_choices(
                session, world.staff, clinic_id=world.clinic_id, start_at=start, minutes=30
            )
            end = start + timedelta(minutes=30)
            for choice in choices:
                fits = availability.working_hours_cover(
                    session, choice.id, world.clinic_id, start, end
                )
                clash = availability.find_conflicts(session, choice.id, start, end)
                assert choice.free == (fits and not clash), (hour, minute, choice)
                assert choice.why.startswith(("not working", "works until", "on time off")) == (
                    not fits
                ), (hour, minute, choice)
                assert (("booked" in choice.why) or ("out of office" in choice.why)) == bool(clash)


def test_provider_choices_do_not_offer_a_time_held_for_a_proposal(db, world):
    """Alex's 10:00 visit with Dr Test was proposed 15:00; until Alex answers, 10:00 stays
    theirs and booking Dr Test then is refused. The form's providers say so instead of
    offering Dr Test as free (before: free, and Book then refused); accepted, it is free."""
    from core.kernel.authz import patient_actor
    from core.requests import changes, decisions
    from core.scheduling import availability

    visit = book(db, world).appointment_id
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("A"), visit, kind="reschedule", requested_day=day_ahead()
        ).id
    with db.write() as session:
        changes.propose_for_change(session, world.manager, change_id, start_at=at(15))

    def dr_test(hour, minute=0):
        with db.read() as session:
            choices = booking.provider_choices(
                session,
                world.staff,
                clinic_id=world.clinic_id,
                start_at=at(hour, minute),
                minutes=30,
            )
            clash = availability.find_conflicts(
                session, world.provider_id, at(hour, minute), at(hour, minute + 30)
            )
        [choice] = [c for c in choices if c.id == world.provider_id]
        assert choice.free == (not clash)
        return choice

    held = dr_test(10, 15)
    assert not held.free
    assert held.why == (
        f"keeps 10:00–10:30 for appointment #{visit}, held while its patient answers a "
        "proposed new time"
    )
    assert dr_test(11).free
    with db.write() as session:
        decisions.respond_to_proposal(session, patient_actor("A"), visit, accept=True)
    assert dr_test(10, 15).free


def test_the_forms_room_warning_names_the_time_held_for_a_proposal(db, world):
    """Alex's 10:00 visit needs the clinic's one room and was proposed 15:00; the room stays
    theirs at 10:00 while they answer. The form's warning for 10:15 names that time and why
    (before: 'booked 15:00–15:30', the proposal's time, which 10:15 does not touch)."""
    from core.kernel.authz import patient_actor
    from core.requests import changes
    from db.models import Resource, ServiceResource

    with db.write() as session:
        room = Resource(clinic_id=world.clinic_id, name="Room 1", kind="room", quantity=1)
        session.add(room)
        session.flush()
        session.add(ServiceResource(service_id=world.service_id, resource_id=room.id))
    visit = book(db, world).appointment_id
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("A"), visit, kind="reschedule", requested_day=day_ahead()
        ).id
    with db.write() as session:
        changes.propose_for_change(session, world.manager, change_id, start_at=at(15))

    def taken(hour, minute=0):
        with db.read() as session:
            found = booking.taken_resources(
                session,
                world.staff,
                clinic_id=world.clinic_id,
                service_ids=[world.service_id],
                start_at=at(hour, minute),
            )
        return [t.text() for t in found]

    assert taken(10, 15) == [
        f"Room 1 (1 of 1) is booked 10:00–10:30 by #{visit}, held while its patient answers a "
        "proposed new time"
    ]
    assert taken(15, 15) == [f"Room 1 (1 of 1) is booked 15:00–15:30 by #{visit}"]
    assert taken(11) == []


def test_a_patient_is_not_booked_twice_at_the_same_time_unless_allowed(db, world):
    """'Book' pressed twice: the second time the form had moved to the next free provider."""
    with db.write() as session:
        other = Provider(name="Nurse Priya")
        other.working_hours.append(
            WorkingHours(
                clinic_id=world.clinic_id,
                weekday=day_ahead().weekday(),
                starts=time(8),
                ends=time(18),
            )
        )
        session.add(other)
        session.flush()
        other_id = other.id
        name = session.get(Patient, world.patient_id).full_name
    first = book(db, world, provider_id=other_id)
    with pytest.raises(Conflict) as refused:
        book(db, world, start_at=at(10, 15))  # overlaps 10:00-10:30, with another provider
    message = str(refused.value)
    assert message.startswith(f"{name} already has appointment #{first.appointment_id} on ")
    assert "10:00–10:30" in message and "with Nurse Priya" in message
    assert "allow double booking" in message
    with db.read() as session:  # nothing was booked
        assert session.scalars(
            select(Appointment).where(Appointment.patient_id == world.patient_id)
        ).all() == [session.get(Appointment, first.appointment_id)]
    after = book(db, world, start_at=at(10, 30)).appointment_id  # right after: fine
    booked = book(db, world, start_at=at(10, 15), allow_double_booking=True)
    with db.read() as session:
        assert session.get(Appointment, booked.appointment_id).allow_double_booking
        audit = session.scalars(
            select(AuditEvent).where(
                AuditEvent.entity_id == booked.appointment_id, AuditEvent.action == "schedule"
            )
        ).one()
        assert audit.details["patient_double_booked_with"] == [first.appointment_id, after]


def plain(error) -> str:
    """An error's text with Babel's thin and narrow spaces as plain ones."""
    return re.sub(r"\s", " ", str(error))


def _two_clinics(db, world) -> int:
    """The world's London clinic and Lakeside in New York, where Dr Test works 10:00–17:00
    (15:00–22:00 in London, after London's 09:00–17:00 is cut to 09:00–13:00)."""
    with db.write() as session:
        lakeside = Clinic(name="Lakeside", timezone="America/New_York", locale="en-US")
        session.add(lakeside)
        session.flush()
        provider = session.get(Provider, world.provider_id)
        for row in provider.working_hours:
            row.starts, row.ends = time(9), time(13)
        for weekday in range(7):
            provider.working_hours.append(
                WorkingHours(clinic_id=lakeside.id, weekday=weekday, starts=time(10), ends=time(17))
            )
        return lakeside.id


def test_a_clash_at_the_other_clinic_is_named_on_the_forms_clock(db, world):
    """A provider and a patient of two clinics: a London desk booking at 15:00 London time
    over their 10:00 AM New York visit read 'already has appointment #1 on …, 10:00 – 10:30
    AM', the other clinic's clock, unnamed and unzoned, beside the form's 15:00; and the free
    providers' list said 'not working then' of a provider who is working at the other clinic.
    Each now names the clinic, on the London clock with both zones."""
    lakeside = _two_clinics(db, world)
    ny_start = local_to_utc(day_ahead(5), time(10), "America/New_York")
    here = to_local(ny_start, TZ)
    ours = f"{here:%H:%M}–{here + timedelta(minutes=30):%H:%M}"
    visit = book(db, world, clinic_id=lakeside, start_at=ny_start).appointment_id
    with db.read() as session:
        (choice,) = booking.provider_choices(
            session, world.staff, clinic_id=world.clinic_id, start_at=ny_start, minutes=30
        )
    assert choice.why.startswith(f"working at Lakeside then, {here:%H:%M}–")
    assert choice.why.endswith(f"; booked {ours} at Lakeside")
    with pytest.raises(Conflict) as provider_busy:  # the override: hours are not the question
        book(
            db,
            world,
            start_at=ny_start,
            outside_hours_override=True,
            patient_id=None,
            new_patient=booking.NewPatient("Sam", "Lee"),
        )
    assert f"Dr Test already has appointment #{visit} at Lakeside on " in str(provider_busy.value)
    assert f"{ours} ({here.tzname()}; 10:00 – 10:30 AM E" in plain(provider_busy.value)
    with db.write() as session:
        other = Provider(name="Nurse Priya")
        other.working_hours.append(
            WorkingHours(
                clinic_id=world.clinic_id, weekday=here.weekday(), starts=time(8), ends=time(20)
            )
        )
        session.add(other)
        session.flush()
        other_id = other.id
    with pytest.raises(Conflict) as patient_busy:
        book(db, world, start_at=ny_start, provider_id=other_id)
    assert str(patient_busy.value).startswith(
        f"Alex Morgan already has appointment #{visit} at Lakeside on "
    )
    assert f"{ours} ({here.tzname()}; 10:00 – 10:30 AM E" in plain(patient_busy.value)


def test_a_booking_at_the_other_clinic_inside_the_travel_time_is_refused_naming_it(db, world):
    """With 30 minutes' travel between clinics set, a London booking starting as the
    provider's Lakeside visit ends was booked, and the form listed them free: they cannot be
    in both places. Now both name the Lakeside visit, its time and the travel time."""
    lakeside = _two_clinics(db, world)
    ny_start = local_to_utc(day_ahead(5), time(10), "America/New_York")
    visit = book(db, world, clinic_id=lakeside, start_at=ny_start).appointment_id
    with db.write() as session:
        travel.set_travel_minutes(session, world.owner, 30)
    right_after = ny_start + timedelta(minutes=30)
    with db.read() as session:
        (choice,) = booking.provider_choices(
            session, world.staff, clinic_id=world.clinic_id, start_at=right_after, minutes=30
        )
    assert not choice.free
    assert choice.why.endswith("at Lakeside, with 30 minutes' travel between clinics")
    with pytest.raises(Conflict) as refused:
        book(db, world, start_at=right_after, outside_hours_override=True)
    assert f"Dr Test already has appointment #{visit} at Lakeside on " in str(refused.value)
    assert "with 30 minutes' travel between clinics. Choose another time" in str(refused.value)
    book(db, world, start_at=right_after + timedelta(minutes=30), outside_hours_override=True)


def test_the_confirmation_says_where_to_come_for_a_visit_in_person(db, world):
    """A practice of two clinics (London and New York) confirmed 'at Lakeside' and signed with
    its phone: nothing told the patient where Lakeside is. A visit in person now gives the
    clinic's address (the preview staff edit too); a virtual one does not."""
    with db.write() as session:
        session.get(Clinic, world.clinic_id).address = "12 Harbour Street, London"
    where = "at Test Clinic, 12 Harbour Street, London."
    with db.read() as session:
        _, preview = booking.preview_confirmation(
            session,
            world.staff,
            clinic_id=world.clinic_id,
            provider_name="Dr Test",
            service_names=["Consultation"],
            start_at=at(10),
            patient_name="Alex Morgan",
        )
    assert where in preview
    in_person = book(db, world, notify_channels=[Channel.EMAIL]).appointment_id
    virtual = book(db, world, start_at=at(11), mode="virtual", notify_channels=[Channel.EMAIL])
    with db.read() as session:
        sent = dict(
            session.execute(
                select(Notification.appointment_id, Notification.body).where(
                    Notification.appointment_id.in_([in_person, virtual.appointment_id])
                )
            ).all()
        )
    assert where in sent[in_person]
    assert "Harbour Street" not in sent[virtual.appointment_id]
    assert "at Test Clinic." in sent[virtual.appointment_id]


def _at_harbour(db, world) -> int:
    """Dr Test's 11:10–11:40 visit at a second clinic, Harbour, keeping 5 minutes free before
    it and 15 after, with 30 minutes' travel between the clinics."""
    from tests.factories import make_visit

    with db.write() as session:
        harbour = Clinic(name="Harbour", timezone=TZ)
        session.add(harbour)
        session.flush()
        make_visit(
            session,
            replace(world, clinic_id=harbour.id),
            status=AppointmentStatus.SCHEDULED,
            start_at=at(11, 10),
            end_at=at(11, 40),
            buffer_before_minutes=5,
            buffer_after_minutes=15,
        )
        travel.set_travel_minutes(session, world.owner, 30)
        return harbour.id


def test_provider_choices_follow_the_booking_rule_with_buffers_and_travel(db, world):
    """The free providers' list had its own copy of the clash arithmetic beside
    availability.find_conflicts (which lifecycle.place asks); it now asks that rule. Around a
    visit at another clinic with buffers of its own, a booking with its buffers: free exactly
    when the rule finds no clash, and named as the rule's clash is (travel, or buffers)."""
    from core.scheduling import availability

    _at_harbour(db, world)
    before, after = timedelta(minutes=10), timedelta(minutes=5)
    with db.read() as session:
        for minutes_past_nine in range(30, 240, 5):
            start = at(9) + timedelta(minutes=minutes_past_nine)
            end = start + timedelta(minutes=30)
            (choice,) = booking.provider_choices(
                session,
                world.staff,
                clinic_id=world.clinic_id,
                start_at=start,
                minutes=30,
                before=10,
                after=5,
            )
            clash = availability.find_conflicts(
                session,
                world.provider_id,
                start,
                end,
                before=before,
                after=after,
                clinic_id=world.clinic_id,
            )
            assert choice.free == (not clash), (minutes_past_nine, choice)
            travelling = bool(clash) and availability.travel_gap(
                world.clinic_id, clash[0], start - before, end + after
            )
            assert ("travel between clinics" in choice.why) == travelling, choice
            overlaps = bool(clash) and clash[0].start_at < end and clash[0].end_at > start
            buffers = bool(clash) and not travelling and not overlaps
            assert ("kept free" in choice.why) == buffers, (minutes_past_nine, choice)


def test_provider_choices_cost_the_same_statements_however_many_providers(db, world):
    """The free providers' list asks the clash rule for the whole clinic at once: three
    providers, each booked near the time, cost the statements one does."""
    from sqlalchemy import event as sa_event

    from tests.factories import make_visit

    def statements() -> int:
        seen: list[str] = []

        def count(conn, cursor, statement, *args):
            seen.append(statement)

        with db.read() as session:
            sa_event.listen(db.engine, "before_cursor_execute", count)
            try:
                choices = booking.provider_choices(
                    session, world.staff, clinic_id=world.clinic_id, start_at=at(10), minutes=30
                )
            finally:
                sa_event.remove(db.engine, "before_cursor_execute", count)
        assert not any(c.free for c in choices)
        return len(seen)

    with db.write() as session:
        make_visit(
            session, world, status=AppointmentStatus.SCHEDULED, start_at=at(10), end_at=at(10, 30)
        )
    one = statements()
    with db.write() as session:
        for name in ("Dr Two", "Dr Three"):
            other = Provider(name=name)
            other.working_hours.append(
                WorkingHours(
                    clinic_id=world.clinic_id,
                    weekday=day_ahead().weekday(),
                    starts=time(8),
                    ends=time(18),
                )
            )
            session.add(other)
            session.flush()
            make_visit(
                session,
                replace(world, provider_id=other.id),
                status=AppointmentStatus.SCHEDULED,
                start_at=at(10, 15),
                end_at=at(10, 45),
            )
    assert statements() == one


def test_a_visit_whose_clean_up_runs_into_time_off_is_refused_as_it_is_never_offered(db, world):
    """The free times kept a visit's buffers clear of the provider's time off, but the booking
    check looked at the visit alone: a 10:00 visit whose 15 minutes' clean-up ran into time off
    from 10:40 was never offered, yet booked by hand. The provider is away then; one rule now:
    the visit and its buffers clear of time off, in the booking, the free providers' list and
    the free times alike."""
    with db.write() as session:
        session.get(Service, world.service_id).buffer_after_minutes = 15
        session.add(TimeOff(provider_id=world.provider_id, starts_at=at(10, 40), ends_at=at(12)))
    with db.read() as session:
        (choice,) = booking.provider_choices(
            session,
            world.staff,
            clinic_id=world.clinic_id,
            start_at=at(10),
            minutes=30,
            after=15,
            service_ids=[world.service_id],
        )
        offered = booking.next_free_times(
            session,
            world.staff,
            clinic_id=world.clinic_id,
            start_at=at(9, 45),
            service_ids=[world.service_id],
        )
    assert not choice.free and "on time off" in choice.why
    assert at(10) not in [t.start_at for t in offered]
    with pytest.raises(ValidationError) as refused:
        book(db, world, start_at=at(10))
    assert "Dr Test is on time off" in str(refused.value)
    assert "15 minutes kept free after" in str(refused.value)
    book(db, world, start_at=at(9, 55))  # its clean-up ends as the time off starts


def test_a_video_visit_is_booked_straight_after_one_at_the_other_clinic(db, world):
    """The travel time between clinics was kept before a video visit too: nobody travels to
    one. Booked by hand and listed free alike; an in-person visit then is still refused."""
    lakeside = _two_clinics(db, world)
    ny_start = local_to_utc(day_ahead(5), time(10), "America/New_York")
    book(db, world, clinic_id=lakeside, start_at=ny_start)
    with db.write() as session:
        travel.set_travel_minutes(session, world.owner, 30)
    right_after = ny_start + timedelta(minutes=30)
    with db.read() as session:
        in_person, video = (
            booking.provider_choices(
                session,
                world.staff,
                clinic_id=world.clinic_id,
                start_at=right_after,
                minutes=30,
                virtual=virtual,
            )[0]
            for virtual in (False, True)
        )
    assert "travel between clinics" in in_person.why
    assert "booked" not in video.why and "travel" not in video.why, video
    with pytest.raises(Conflict):
        book(db, world, start_at=right_after, outside_hours_override=True)
    book(db, world, start_at=right_after, mode="virtual", outside_hours_override=True)
