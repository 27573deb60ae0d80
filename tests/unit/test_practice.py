"""Practice set-up: clinics, providers, services, rooms and equipment, packages,
documents, the checklist, the choices reader and rooms/equipment respected when booking.

Re-run on PostgreSQL by tests/integration/test_practice_pg.py (the race included)."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import replace
from datetime import date, time, timedelta

import pytest
from sqlalchemy import func, select

from core.kernel.clock import local_to_utc, to_local
from core.kernel.errors import Conflict, NotFound, PermissionDenied, ValidationError
from core.practice import checklist, choices, documents, packages, reads, setup, treatment
from core.scheduling import availability, booking, moves
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    CancellationPolicy,
    Clinic,
    DocumentKind,
    Patient,
    Provider,
    Resource,
    ResourceKind,
    Service,
    ServiceDocument,
    WorkingHours,
)
from db.types import utcnow
from tests.factories import make_patient

TZ = "Europe/London"


def future_day(days: int = 3) -> date:
    return to_local(utcnow(), TZ).date() + timedelta(days=days)


def at(day: date, hour: int, minute: int = 0):
    return local_to_utc(day, time(hour, minute), TZ)


def actions(db, entity: str) -> list[str]:
    with db.read() as session:
        return list(
            session.scalars(
                select(AuditEvent.action).where(AuditEvent.entity == entity).order_by(AuditEvent.id)
            )
        )


@pytest.fixture
def laser(db, world):
    """One laser at the clinic, a service needing it, and a second provider who can do it."""
    with db.write() as session:
        laser_id = setup.save_resource(
            session,
            world.owner,
            setup.ResourceData(world.clinic_id, "Laser", ResourceKind.EQUIPMENT, 1),
        )
        service_id = setup.save_service(
            session,
            world.owner,
            setup.ServiceData("Laser hair removal", 30, resource_ids=(laser_id,)),
        )
        second = Provider(name="Dr Second")
        session.add(second)
        session.flush()
        for weekday in range(7):
            second.working_hours.append(
                WorkingHours(
                    clinic_id=world.clinic_id, weekday=weekday, starts=time(9), ends=time(17)
                )
            )
        other_patient = make_patient(session, first_name="Sam", email="sam@example.org").id
        return {
            "laser": laser_id,
            "service": service_id,
            "second": second.id,
            "other": other_patient,
        }


def book(session, world, provider_id, patient_id, service_id, start, **extra):
    booking = moves.NewBooking(
        clinic_id=world.clinic_id,
        provider_id=provider_id,
        start_at=start,
        patient_id=patient_id,
        service_ids=[service_id],
        notify_channels=[],
        **extra,
    )
    return moves.schedule_appointment(session, world.staff, booking)


# ---------------------------------------------------------------- set-up rules


def test_owner_creates_a_clinic_and_every_change_is_audited(db, world):
    with db.write() as session:
        clinic_id = setup.save_clinic(
            session,
            world.owner,
            setup.ClinicData("North", "Europe/Lisbon", email="north@example.org", currency="eur"),
        )
    with db.write() as session:
        data = setup.ClinicData(
            "North", "Europe/Lisbon", phone="21 234 5678", locale="pt-PT", currency="EUR"
        )
        setup.save_clinic(session, world.manager, data, clinic_id)
        setup.set_active(session, world.manager, "clinic", clinic_id, False)
    assert actions(db, "clinic") == ["clinic.created", "clinic.updated", "clinic.deactivated"]
    with db.read() as session:
        row = next(c for c in reads.overview(session, world.staff).clinics if c.id == clinic_id)
    assert row.data.currency == "EUR" and not row.data.active
    assert row.data.phone == "+351 21 234 5678"  # read in Portugal, stored with its code


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("timezone", "Mars/Olympus", "IANA time zone"),
        ("locale", "xx-QQ-zz", "not a locale"),
        ("currency", "ABC", "not a currency code"),
        ("email", "not-an-address", "not a valid address"),
        ("name", " ", "Give the clinic name"),
    ],
)
def test_a_bad_clinic_is_refused_with_what_to_fix(db, world, field, value, words):
    data = setup.ClinicData("South", "Europe/London")
    data = setup.ClinicData(**(data.__dict__ | {field: value}))
    with db.write() as session, pytest.raises(ValidationError, match=words):
        setup.save_clinic(session, world.owner, data)


@pytest.mark.parametrize(
    ("phone", "locale", "stored"),
    [
        ("020 7946 0123", "en-GB", "+44 20 7946 0123"),
        ("0044 20 7946 0123", "en-GB", "+44 20 7946 0123"),
        ("(212) 555-0142", "en-US", "+1 212-555-0142"),
        ("+1 212 555 0142", "en-GB", "+1 212-555-0142"),  # another country's, with its code
        ("  ", "en-GB", ""),  # none given
    ],
)
def test_a_clinic_phone_is_read_in_its_country_and_kept_in_international_form(
    db, world, phone, locale, stored
):
    data = setup.ClinicData("South", "Europe/London", phone=phone, locale=locale)
    with db.write() as session:
        clinic_id = setup.save_clinic(session, world.owner, data)
    with db.read() as session:
        assert session.get(Clinic, clinic_id).phone == stored


@pytest.mark.parametrize(
    ("phone", "locale", "words"),
    [
        (
            "123",
            "en-GB",
            "'123' is not a phone number in United Kingdom: check its digits, or type it with "
            "its country code, like +44 ",
        ),
        ("020 7946 012", "en-GB", "'020 7946 012' is not a phone number in United Kingdom"),
        ("call the desk", "en-US", "'call the desk' is not a phone number in United States"),
        ("(212) 555-0142", "en-GB", "'(212) 555-0142' is not a phone number in United Kingdom"),
    ],
)
def test_a_clinic_phone_that_is_no_number_is_refused_naming_its_country(
    db, world, phone, locale, words
):
    """Only the length was checked: '123', a digit short or words were stored, and patients
    were told to call them."""
    data = setup.ClinicData("South", "Europe/London", phone=phone, locale=locale)
    with db.write() as session, pytest.raises(ValidationError) as error:
        setup.save_clinic(session, world.owner, data)
    assert words in str(error.value)
    with db.read() as session:
        assert session.scalar(select(Clinic.id).where(Clinic.name == "South")) is None


def test_staff_read_the_set_up_but_may_not_change_it(db, world):
    with db.read() as session:
        assert reads.overview(session, world.staff).clinics
    with db.write() as session, pytest.raises(PermissionDenied):
        setup.save_clinic(session, world.staff, setup.ClinicData("X", "Europe/London"))


def test_duplicate_names_are_refused(db, world):
    with db.write() as session, pytest.raises(ValidationError, match="already a service"):
        setup.save_service(session, world.owner, setup.ServiceData("consultation", 20))


def test_provider_links_clinics_services_and_a_user(db, world):
    with db.write() as session:
        pid = setup.save_provider(
            session,
            world.manager,
            setup.ProviderData(
                "Dr New",
                colour="#AA3300",
                clinic_ids=(world.clinic_id,),
                service_ids=(world.service_id,),
                user_id=world.staff.user_id,
            ),
        )
    with db.read() as session:
        found = choices.list_choices(session, world.staff)
        row = next(p for p in found.providers if p.id == pid)
        assert row.clinic_ids == (world.clinic_id,) and row.user_id == world.staff.user_id
        assert row.colour == "#aa3300"
        assert [p.id for p in found.providers_at(world.clinic_id)] == [pid, world.provider_id]
    with db.write() as session, pytest.raises(ValidationError, match="already linked to Dr New"):
        setup.save_provider(
            session, world.owner, setup.ProviderData("Dr Other", user_id=world.staff.user_id)
        )


def test_a_deactivated_service_stays_on_past_appointments(db, world):
    day = future_day()
    with db.write() as session:
        appt = book(
            session, world, world.provider_id, world.patient_id, world.service_id, at(day, 10)
        )
        appt_id = appt.id
    with db.write() as session:  # booked ahead: deactivated once confirmed
        setup.set_active(
            session, world.owner, "service", world.service_id, False, despite_bookings=True
        )
    with db.read() as session:
        assert session.get(Appointment, appt_id).service.name == "Consultation"
        assert not choices.list_choices(session, world.staff).services
        everything = choices.list_choices(session, world.staff, include_inactive=True)
        assert [s.name for s in everything.services] == ["Consultation"]


def test_a_package_bundles_services(db, world, laser):
    with db.write() as session:
        pkg = setup.save_package(
            session,
            world.owner,
            setup.PackageData("Consult + laser", (world.service_id, laser["service"]), 9000),
        )
    with db.read() as session:
        [row] = choices.list_choices(session, world.staff).packages
    assert row.id == pkg and row.service_ids == (world.service_id, laser["service"])
    with db.write() as session, pytest.raises(ValidationError, match="at least two"):
        setup.save_package(session, world.owner, setup.PackageData("Solo", (world.service_id,)))


# ---------------------------------------------------------------- documents


def test_documents_are_versioned_and_previewed_as_plain_text(db, world):
    questions = [
        {"key": "allergies", "label": "Any allergies?", "type": "yes_no", "required": True},
        {"key": "skin", "label": "Skin type", "type": "choice", "options": ["I", "II", "III"]},
    ]
    with db.write() as session:
        first = documents.save_document(
            session,
            world.owner,
            world.service_id,
            "questionnaire",
            "Before your visit",
            "",
            questions,
        )
        same = documents.save_document(
            session,
            world.owner,
            world.service_id,
            "questionnaire",
            "Before your visit",
            "",
            questions,
        )
        second = documents.save_document(
            session,
            world.owner,
            world.service_id,
            "questionnaire",
            "Before your visit",
            "",
            questions[:1],
        )
    assert first == same != second
    with db.read() as session:
        rows = documents.list_documents(session, world.staff, world.service_id, all_versions=True)
        [current] = documents.list_documents(session, world.staff, world.service_id)
    assert [(r.version, r.active) for r in rows] == [(2, True), (1, False)]
    assert current.kind == DocumentKind.QUESTIONNAIRE
    assert "1. Any allergies? (required) — yes / no" in documents.preview(current)


def test_a_bad_question_is_named(db, world):
    bad = [{"key": "skin", "label": "Skin type", "type": "choice", "options": ["I"]}]
    with db.write() as session, pytest.raises(ValidationError, match="Question 1: a choice"):
        documents.save_document(
            session, world.owner, world.service_id, "questionnaire", "Q", "", bad
        )


# ---------------------------------------------------------------- checklist


def test_checklist_shows_what_is_left(db, world):
    with db.read() as session:
        steps = {s.key: s.done for s in checklist.checklist(session, world.owner).steps}
    assert steps == {
        "clinic": True,
        "services": True,
        "providers": True,
        "staff": True,
        "policy": False,
        "messages": False,
    }
    with db.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=world.clinic_id, version=1, effective_at=utcnow(), policy_text="24 h"
            )
        )
    with db.read() as session:
        done = checklist.checklist(session, world.owner)
    assert done.done_count == 5 and not done.complete


def test_a_provider_without_hours_keeps_the_providers_step_open(db, world):
    """A provider nobody can book (no weekly hours anywhere) is named by the checklist, which
    leads to Provider schedules; before, one provider with hours ticked the step for all."""
    with db.write() as session:
        setup.save_provider(
            session, world.owner, setup.ProviderData("Dr Idle", clinic_ids=(world.clinic_id,))
        )
    with db.read() as session:
        steps = checklist.checklist(session, world.manager)
    [step] = [s for s in steps.steps if s.key == "providers"]
    assert not step.done and step.page == "schedules.py"
    assert step.hint == "Dr Idle has no weekly hours yet, so nobody can book them."
    assert steps.next_step == step  # the clinic and services are done
    with db.write() as session:
        idle = session.scalar(select(Provider).where(Provider.name == "Dr Idle"))
        idle.working_hours.append(
            WorkingHours(clinic_id=world.clinic_id, weekday=0, starts=time(9), ends=time(12))
        )
    with db.read() as session:
        steps = checklist.checklist(session, world.manager)
    assert next(s for s in steps.steps if s.key == "providers").done
    assert steps.next_step.key == "policy"


# ---------------------------------------------------------------- rooms and equipment


def test_the_one_laser_cannot_be_booked_twice(db, world, laser):
    day = future_day()
    with db.write() as session:
        first = book(
            session, world, world.provider_id, world.patient_id, laser["service"], at(day, 10)
        )
        first_id = first.id
    with db.write() as session, pytest.raises(Conflict, match="Laser at Test Clinic is busy") as e:
        book(session, world, laser["second"], laser["other"], laser["service"], at(day, 10, 15))
    assert f"#{first_id}" in str(e.value)
    with db.write() as session:  # a service that needs no laser is fine then
        book(session, world, laser["second"], laser["other"], world.service_id, at(day, 10, 15))
    with db.write() as session:  # explicitly allowed: booked, and the audit says so
        appt = book(
            session,
            world,
            laser["second"],
            laser["other"],
            laser["service"],
            at(day, 12),
        )
        moves_id = appt.id
    with db.write() as session:
        over = book(
            session,
            world,
            laser["second"],
            laser["other"],
            laser["service"],
            at(day, 10),
            allow_double_booking=True,
            outside_hours_override=False,
        )
        over_id = over.id
    with db.read() as session:
        event = session.scalar(
            select(AuditEvent).where(
                AuditEvent.entity_id == over_id, AuditEvent.action == "schedule"
            )
        )
        assert event.details["resources_overbooked"] == ["Laser"]
        assert session.get(Appointment, moves_id).provider_id == laser["second"]


def test_two_lasers_allow_two_bookings_then_refuse_a_third(db, world, laser):
    day = future_day()
    with db.write() as session:
        data = setup.ResourceData(world.clinic_id, "Laser", ResourceKind.EQUIPMENT, 2)
        setup.save_resource(session, world.owner, data, laser["laser"])
        third = Provider(name="Dr Third")
        session.add(third)
        session.flush()
        session.add(
            WorkingHours(
                provider_id=third.id,
                clinic_id=world.clinic_id,
                weekday=day.weekday(),
                starts=time(9),
                ends=time(17),
            )
        )
        third_id = third.id
    with db.write() as session:
        book(session, world, world.provider_id, world.patient_id, laser["service"], at(day, 10))
        book(session, world, laser["second"], laser["other"], laser["service"], at(day, 10))
    with db.write() as session, pytest.raises(Conflict, match="all 2 in use"):
        book(session, world, third_id, laser["other"], laser["service"], at(day, 10, 15))


def test_moving_onto_a_busy_laser_is_refused(db, world, laser):
    day = future_day()
    with db.write() as session:
        book(session, world, world.provider_id, world.patient_id, laser["service"], at(day, 10))
        other = book(session, world, laser["second"], laser["other"], laser["service"], at(day, 14))
        other_id, version = other.id, other.version
    with db.write() as session, pytest.raises(Conflict, match="Laser"):
        moves.reschedule(
            session,
            world.staff,
            other_id,
            provider_id=laser["second"],
            start_at=at(day, 10),
            expected_version=version,
            notify=False,
        )


def test_slot_suggestions_skip_the_busy_laser(db, world, laser):
    day = future_day()
    with db.write() as session:
        book(session, world, world.provider_id, world.patient_id, laser["service"], at(day, 9))
    with db.read() as session:
        slots = availability.suggest_slots(
            session,
            clinic_id=world.clinic_id,
            duration_minutes=30,
            day=day,
            limit=1,
            service_ids=[laser["service"]],
        )
        plain = availability.suggest_slots(
            session,
            clinic_id=world.clinic_id,
            duration_minutes=30,
            day=day,
            limit=1,
            provider_id=laser["second"],
        )
    assert slots[0].start_at == at(day, 9, 30)
    assert plain[0].start_at == at(day, 9)


def test_race_two_bookings_for_the_one_laser(db, world, laser):
    day = future_day()
    barrier = threading.Barrier(2)
    results: list[object] = []
    who = [(world.provider_id, world.patient_id), (laser["second"], laser["other"])]

    def attempt(n):
        try:
            with db.write() as session:
                barrier.wait(timeout=10)
                book(session, world, *who[n], laser["service"], at(day, 11))
            results.append("ok")
        except Conflict as error:
            results.append(error)
        except threading.BrokenBarrierError:  # SQLite: the second writer waits at BEGIN
            results.append(("waited", n))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for waited in [r for r in results if isinstance(r, tuple)]:
        results.remove(waited)
        attempt(waited[1])
    assert results.count("ok") == 1
    [conflict] = [r for r in results if isinstance(r, Conflict)]
    assert "Laser at Test Clinic is busy" in str(conflict)
    with db.read() as session:
        booked = session.scalars(
            select(Appointment.id).where(Appointment.service_id == laser["service"])
        )
        assert len(list(booked)) == 1  # the loser's row went with its transaction


def test_race_a_booking_and_the_providers_deactivation(db, world, monkeypatch):
    """A desk books Dr Test while a manager deactivates them (no visit ahead yet, so nothing to
    confirm). Before, on PostgreSQL the booking had read them active and the deactivation had
    counted no visit ahead: both went through, an inactive provider with a visit nobody was
    warned about. Now one waits for the other on the provider's row: the booking is refused as
    deactivated meanwhile (or, taken first, the deactivation names the visit)."""
    from core.scheduling import lifecycle

    barrier = threading.Barrier(2)
    counted, locked = setup._deactivation_warning, lifecycle.lock_provider

    def wait(*_) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):  # SQLite: writers take turns
            barrier.wait(timeout=3)

    def count_then_wait(session, entity, row):
        said = counted(session, entity, row)
        wait()
        return said

    def wait_then_lock(session, provider_id):
        wait()
        locked(session, provider_id)

    monkeypatch.setattr(setup, "_deactivation_warning", count_then_wait)
    monkeypatch.setattr(lifecycle, "lock_provider", wait_then_lock)
    outcomes: dict[str, str] = {}

    def booking() -> None:
        try:
            with db.write() as session:
                book(
                    session,
                    world,
                    world.provider_id,
                    world.patient_id,
                    world.service_id,
                    at(future_day(2), 10),
                )
            outcomes["booking"] = "done"
        except ValidationError as error:
            outcomes["booking"] = str(error)

    def deactivation() -> None:
        try:
            with db.write() as session:
                setup.set_active(session, world.manager, "provider", world.provider_id, False)
            outcomes["deactivation"] = "done"
        except ValidationError as error:
            outcomes["deactivation"] = str(error)

    threads = [threading.Thread(target=booking), threading.Thread(target=deactivation)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes.values()).count("done") == 1, outcomes
    with db.read() as session:
        active = session.get(Provider, world.provider_id).active
        ahead = session.scalar(
            select(func.count(Appointment.id)).where(Appointment.provider_id == world.provider_id)
        )
    assert (active, ahead) in ((True, 1), (False, 0)), outcomes
    if not active:  # refused after waiting (PostgreSQL), or having started after (SQLite)
        assert outcomes["booking"].startswith(
            ("Dr Test was deactivated meanwhile", "Choose an active provider")
        )


def test_calendar_room_view_shows_who_holds_the_laser(db, world, laser):
    from core.scheduling import calendar

    day = future_day()
    with db.write() as session:
        setup.save_resource(
            session, world.owner, setup.ResourceData(world.clinic_id, "Treatment room", "room", 2)
        )
        first = book(
            session, world, world.provider_id, world.patient_id, laser["service"], at(day, 10)
        )
        first_id, laser_row = first.id, f"room-{laser['laser']}"
        book(session, world, laser["second"], laser["other"], world.service_id, at(day, 11))
    with db.read() as session:
        frame = calendar.get_frame(session, world.staff, world.clinic_id)
        events = calendar.room_events(
            session, world.staff, clinic_id=world.clinic_id, start=at(day, 0), end=at(day, 23)
        )
    assert [(r["title"], r["kind"]) for r in frame.rooms] == [
        ("Treatment room (×2)", "Rooms"),
        ("Laser", "Equipment"),
    ]
    # the consultation uses no room: only the laser booking is in the room view
    assert [(e["id"], e["resourceIds"], e["title"], e["editable"]) for e in events] == [
        (str(first_id), [laser_row], "Alex Morgan · Laser hair removal · Dr Test", False)
    ]
    assert (events[0]["start"][11:16], events[0]["end"][11:16]) == ("10:00", "10:30")


# ---------------------------------------------------------------- packages booked as one


@pytest.fixture
def glow(db, world, laser):
    """A package: the consultation (30 min) then the laser (30 min), one price."""
    with db.write() as session:
        data = setup.PackageData("Glow", (world.service_id, laser["service"]), 9000)
        return setup.save_package(session, world.owner, data)


def test_a_package_is_booked_as_one_appointment_with_its_price(db, world, laser, glow):
    from core.scheduling import appointments, calendar

    day = future_day()
    with db.write() as session:
        booked = moves.schedule_appointment(
            session,
            world.staff,
            moves.NewBooking(
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                start_at=at(day, 10),
                patient_id=world.patient_id,
                package_id=glow,
                notify_channels=[],
            ),
        )
        booked_id = booked.id
    with db.read() as session:
        row = session.get(Appointment, booked_id)
        assert [s.service_id for s in row.services] == [world.service_id, laser["service"]]
        assert (row.package_id, row.end_at - row.start_at) == (glow, timedelta(minutes=60))
        assert treatment.price_of(row) == 9000  # the package's price, not 6000 + the laser's
        detail = appointments.get_appointment_detail(session, world.staff, booked_id)
        events = calendar.window_events(
            session, world.staff, clinic_id=world.clinic_id, start=at(day, 0), end=at(day, 23)
        )
        [room] = calendar.room_events(
            session, world.staff, clinic_id=world.clinic_id, start=at(day, 0), end=at(day, 23)
        )
    assert detail.package == "Glow"
    assert detail.services == "Glow (Consultation + Laser hair removal)"
    [title] = [e["title"] for e in events if e.get("id") == str(booked_id)]
    assert title == "Alex Morgan · Glow (Consultation + Laser hair removal)"  # as its page
    # the laser is held for the whole visit, the consultation part included
    assert (room["resourceIds"], room["id"], room["start"][11:16], room["end"][11:16]) == (
        [f"room-{laser['laser']}"],
        str(booked_id),
        "10:00",
        "11:00",
    )
    with db.write() as session, pytest.raises(Conflict, match="Laser at Test Clinic is busy"):
        book(session, world, laser["second"], laser["other"], laser["service"], at(day, 10))


def _book_glow(db, world, glow) -> None:
    """The package booked ahead, two days on."""
    with db.write() as session:
        moves.schedule_appointment(
            session,
            world.staff,
            moves.NewBooking(
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                start_at=at(future_day(2), 10),
                patient_id=world.patient_id,
                package_id=glow,
                notify_channels=[],
            ),
        )


def test_a_package_booked_ahead_is_not_deactivated_silently(db, world, laser, glow):
    """Before, a package with a visit ahead went at the first press, unsaid."""
    _book_glow(db, world, glow)
    with db.write() as session, pytest.raises(ValidationError) as refused:
        setup.set_active(session, world.manager, "package", glow, False)
    said = str(refused.value)
    assert said.startswith("Glow is booked in 1 upcoming visit, the first on ")
    assert said.endswith("its services stay bookable alone. Confirm to deactivate anyway.")
    with db.write() as session:
        setup.set_active(session, world.manager, "package", glow, False, despite_bookings=True)
    assert actions(db, "package")[-1] == "package.deactivated"


def test_a_booked_package_says_what_a_new_price_does_first(db, world, laser, glow):
    """A visit booked as a package takes the package's price as it is now: before, raising
    Glow from £90.00 to £120.00 re-priced the visit booked ahead without a word. The change is
    refused with what it does until confirmed; a new name alone asks nothing. New services ask
    too: the visits booked keep theirs (before, nothing was said)."""
    services = (world.service_id, laser["service"])
    _book_glow(db, world, glow)
    dearer = setup.PackageData("Glow", services, 12000)
    with db.read() as session:
        said = setup.package_change_warning(session, world.manager, glow, dearer)
    assert said.startswith("Glow is booked in 1 upcoming visit, the first on ")
    assert "Glow costs £120.00 there instead of £90.00" in said
    with db.write() as session, pytest.raises(setup.NeedsConfirmation) as refused:
        setup.save_package(session, world.manager, dearer, glow)
    assert str(refused.value) == f"{said} Confirm to save the package anyway."
    with db.write() as session:
        setup.save_package(session, world.manager, setup.PackageData("Glow+", services, 9000), glow)
        setup.save_package(session, world.manager, dearer, glow, despite_bookings=True)
    with db.read() as session:
        visit = session.scalars(select(Appointment).where(Appointment.package_id == glow)).one()
        assert treatment.price_of(visit) == 12000
    swapped = setup.PackageData("Glow", services[::-1], 12000)  # its services changed too
    with db.read() as session:
        said = setup.package_change_warning(session, world.manager, glow, swapped)
    assert "It keeps the services booked (Consultation + " in said
    assert "new price" not in said
    with db.write() as session, pytest.raises(setup.NeedsConfirmation):
        setup.save_package(session, world.manager, swapped, glow)


def test_a_room_lowered_below_what_visits_hold_at_once_says_so_first(db, world, laser):
    """Two lasers, both booked at 10:00 two days on: before, lowering the quantity to one saved
    at once, and the two visits then held one laser between them without a word."""
    day = future_day(2)
    two = setup.ResourceData(world.clinic_id, "Laser", ResourceKind.EQUIPMENT, 2)
    one = setup.ResourceData(world.clinic_id, "Laser", ResourceKind.EQUIPMENT, 1)
    with db.write() as session:
        setup.save_resource(session, world.owner, two, laser["laser"])
        book(session, world, world.provider_id, world.patient_id, laser["service"], at(day, 10))
        book(session, world, laser["second"], laser["other"], laser["service"], at(day, 10))
        book(session, world, laser["second"], laser["other"], laser["service"], at(day, 10, 30))
    with db.read() as session:
        said = setup.resource_change_warning(session, world.manager, laser["laser"], one)
    assert said.startswith("Visits booked ahead hold more than 1 Laser at once, the first time ")
    assert "10:00" in said and "keep the quantity at 2" in said
    with db.write() as session, pytest.raises(setup.NeedsConfirmation) as refused:
        setup.save_resource(session, world.manager, one, laser["laser"])
    assert str(refused.value) == f"{said} Confirm to save the room or equipment anyway."
    renamed = setup.ResourceData(world.clinic_id, "Laser A", ResourceKind.EQUIPMENT, 2)
    with db.write() as session:  # a new name asks nothing; the confirmed quantity is saved
        setup.save_resource(session, world.manager, renamed, laser["laser"])
        setup.save_resource(session, world.manager, one, laser["laser"], despite_bookings=True)
    with db.read() as session:
        assert session.get(Resource, laser["laser"]).quantity == 1


def test_a_package_needs_every_resource_of_its_services_free(db, world, laser, glow):
    day = future_day()
    with db.write() as session:  # the laser is taken during the package's first service only
        taken = book(session, world, laser["second"], laser["other"], laser["service"], at(day, 9))
        taken_id = taken.id
    booking = moves.NewBooking(
        clinic_id=world.clinic_id,
        provider_id=world.provider_id,
        start_at=at(day, 9),
        patient_id=world.patient_id,
        package_id=glow,
        notify_channels=[],
    )
    with db.write() as session, pytest.raises(Conflict, match="Laser at Test Clinic") as error:
        moves.schedule_appointment(session, world.staff, booking)
    assert f"#{taken_id}" in str(error.value)
    with db.write() as session, pytest.raises(ValidationError, match="booked on its own"):
        extra = moves.NewBooking(**(vars(booking) | {"service_ids": [laser["service"]]}))
        moves.schedule_appointment(session, world.staff, extra)
    with db.write() as session:  # part of the package: deactivated once confirmed
        setup.set_active(
            session, world.owner, "service", laser["service"], False, despite_bookings=True
        )
    with db.write() as session, pytest.raises(ValidationError, match="no longer offered"):
        later = moves.NewBooking(**(vars(booking) | {"start_at": at(day, 14)}))
        moves.schedule_appointment(session, world.staff, later)


def test_patients_request_a_package_in_the_portal_and_by_the_public_link(db, world, laser, glow):
    from urllib.parse import parse_qs, urlparse

    from core.patients import records
    from core.portal import home, patient_links
    from core.requests import queue

    with db.write() as session:
        session.get(Patient, world.patient_id).portal_enrolled_at = utcnow()
        link = patient_links.issue_booking_link(
            session, world.manager, world.clinic_id, base_url="https://clinic.example"
        )
    raw = parse_qs(urlparse(link).query)["t"][0]
    with db.read() as session:
        form = home.request_form(session, world.patient_id)
        view = patient_links.booking_view(session, raw)
    label = "Package: Glow (Consultation + Laser hair removal)"
    assert form.packages == [(glow, label)] and view.packages == [(glow, label)]
    day = future_day(4)
    with db.write() as session:
        home.request_appointment(
            session,
            world.patient_id,
            clinic_id=world.clinic_id,
            package_id=glow,
            requested_day=day,
            time_of_day="morning",
        )
        patient_links.submit_booking(
            session,
            raw,
            package_id=glow,
            requested_day=day,
            time_of_day="afternoon",
            first_name="Robin",
            last_name="Hart",
            email="robin@example.org",
        )
    with db.read() as session:
        requests = session.scalars(select(Appointment).order_by(Appointment.id)).all()
        assert [(a.package_id, len(a.services)) for a in requests] == [(glow, 2), (glow, 2)]
        assert home.request_form(session, world.patient_id).package_id == glow  # asked again
        # the Request queue and the patient's record name the package, as its page does
        # (before, both read "Consultation", the package's first service)
        glow_words = "Glow (Consultation + Laser hair removal)"
        queued = queue.list_queue(session, world.manager, queue.QueueKind.REQUESTS)
        assert [queue.describe(r)["Service"] for r in queued] == [glow_words, glow_words]
        visits = records.list_patient_appointments(session, world.manager, world.patient_id)
        assert [v.service for v in visits] == [glow_words]
    with db.write() as session:  # a package whose service may not be asked for online
        setup.save_service(
            session,
            world.owner,
            setup.ServiceData(
                "Laser hair removal", 30, online_allowed=False, resource_ids=(laser["laser"],)
            ),
            laser["service"],
        )
    with db.read() as session:
        assert patient_links.booking_view(session, raw).packages == []
        assert home.request_form(session, world.patient_id).packages == []  # the portal alike


# ---------------------------------------------------------------- buffers before and after


@pytest.fixture
def buffered(db, world):
    """A peel (30 min, 15 kept free after) needing the one treatment room, and a prep visit
    (30 min, 10 kept free before); a second provider."""
    with db.write() as session:
        room = setup.save_resource(
            session, world.owner, setup.ResourceData(world.clinic_id, "Room 1", "room", 1)
        )
        peel = setup.save_service(
            session,
            world.owner,
            setup.ServiceData("Peel", 30, buffer_after_minutes=15, resource_ids=(room,)),
        )
        prep = setup.save_service(
            session, world.owner, setup.ServiceData("Prep", 30, buffer_before_minutes=10)
        )
        second = Provider(name="Dr Second")
        session.add(second)
        session.flush()
        for weekday in range(7):
            second.working_hours.append(
                WorkingHours(
                    clinic_id=world.clinic_id, weekday=weekday, starts=time(9), ends=time(17)
                )
            )
        other = make_patient(session, first_name="Sam", email="sam@example.org").id
        return {"room": room, "peel": peel, "prep": prep, "second": second.id, "other": other}


def test_a_booking_touching_another_ones_buffer_is_refused_naming_it(db, world, buffered):
    day = future_day()
    with db.write() as session:
        peel = book(
            session, world, world.provider_id, world.patient_id, buffered["peel"], at(day, 10)
        )
        peel_id = peel.id
        assert (peel.buffer_before_minutes, peel.buffer_after_minutes) == (0, 15)
        assert peel.end_at == at(day, 10, 30)  # the buffer is not part of the visit
    # the visit is over at 10:30, but its 15 minutes after keep the provider until 10:45
    with db.write() as session, pytest.raises(Conflict) as refused:
        book(
            session, world, world.provider_id, buffered["other"], world.service_id, at(day, 10, 30)
        )
    assert f"Dr Test already has appointment #{peel_id}" in str(refused.value)
    assert "15 minutes kept free after it (buffers)" in str(refused.value)
    # a visit with its own buffer before: 10:50 - 10 min reaches into the peel's buffer
    with db.write() as session, pytest.raises(Conflict) as refused:
        book(
            session, world, world.provider_id, buffered["other"], buffered["prep"], at(day, 10, 50)
        )
    assert "with 15 minutes kept free after it and 10 minutes kept free before this booking" in str(
        refused.value
    )
    # the room the peel used stays free for its buffer too, for any provider
    with db.write() as session, pytest.raises(Conflict, match="Room 1 at Test Clinic is busy"):
        book(
            session, world, buffered["second"], buffered["other"], buffered["peel"], at(day, 10, 40)
        )
    with db.write() as session:  # just clear of the buffers: fine
        book(
            session, world, world.provider_id, buffered["other"], buffered["prep"], at(day, 10, 55)
        )
        book(  # another patient: "other" is with Dr Test at 10:55 by then
            session, world, buffered["second"], world.patient_id, buffered["peel"], at(day, 10, 45)
        )
    with db.read() as session:  # the room view shows the time the peel keeps free
        from core.scheduling import calendar

        shown = calendar.room_events(
            session, world.staff, clinic_id=world.clinic_id, start=at(day, 0), end=at(day, 23)
        )
    assert [
        (e.get("display", "event"), e["start"][11:16], e["end"][11:16])
        for e in shown
        if e["resourceIds"] == [f"room-{buffered['room']}"]
    ] == [
        ("event", "10:00", "10:30"),
        ("background", "10:30", "10:45"),
        ("event", "10:45", "11:15"),
        ("background", "11:15", "11:30"),
    ]
    with db.read() as session:  # and the booking form says why the provider is not free

        def choice(provider_id, start, minutes, **buffers):
            return next(
                c
                for c in booking.provider_choices(
                    session,
                    world.staff,
                    clinic_id=world.clinic_id,
                    start_at=start,
                    minutes=minutes,
                    **buffers,
                )
                if c.id == provider_id
            )

        near = choice(world.provider_id, at(day, 10, 35), 15, before=10)
        clear = choice(world.provider_id, at(day, 11, 35), 15, before=10)
    assert not near.free and near.why == (
        "booked 10:00–10:30, with 15 minutes kept free after it and 10 minutes kept free before "
        "this booking"
    )
    assert clear.free


def test_moving_next_to_a_buffer_is_refused_and_suggestions_skip_it(db, world, buffered):
    day = future_day()
    with db.write() as session:
        book(session, world, world.provider_id, world.patient_id, buffered["peel"], at(day, 9))
        later = book(
            session, world, world.provider_id, buffered["other"], world.service_id, at(day, 14)
        )
        later_id, version = later.id, later.version
    with db.write() as session, pytest.raises(Conflict, match="15 minutes kept free after it"):
        moves.reschedule(
            session,
            world.staff,
            later_id,
            start_at=at(day, 9, 30),
            expected_version=version,
            notify=False,
        )
    with db.read() as session:

        def first_slot(**extra):
            return availability.suggest_slots(
                session,
                clinic_id=world.clinic_id,
                day=day,
                limit=1,
                **({"duration_minutes": 30, "provider_id": world.provider_id} | extra),
            )[0].start_at

        plain = first_slot()
        with_own_buffer = first_slot(buffer_before_minutes=10)
        room = first_slot(provider_id=buffered["second"], service_ids=[buffered["peel"]])
        around = first_slot(provider_id=buffered["second"], buffer_after_minutes=15)
    assert plain == at(day, 9, 45)  # not 9:30: the peel's 15 minutes after
    assert with_own_buffer == at(day, 10)  # 9:45 - 10 minutes would reach into them
    assert room == at(day, 9, 45)  # another provider, but the peel's room is still held
    assert around == at(day, 9)  # nothing of the second provider's day is taken


def test_buffers_between_a_packages_services_are_part_of_the_visit(db, world, buffered):
    with db.write() as session:
        pkg = setup.save_package(
            session,
            world.owner,
            setup.PackageData("Peel and prep", (buffered["peel"], buffered["prep"]), 12000),
        )
    day = future_day()
    with db.write() as session:
        booked = moves.schedule_appointment(
            session,
            world.staff,
            moves.NewBooking(
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                start_at=at(day, 10),
                patient_id=world.patient_id,
                package_id=pkg,
                notify_channels=[],
            ),
        )
        # 30 + 15 after the peel + 10 before the prep + 30; nothing kept free around it
        assert booked.end_at - booked.start_at == timedelta(minutes=85)
        assert (booked.buffer_before_minutes, booked.buffer_after_minutes) == (0, 0)
    with db.read() as session:
        [offer] = packages.offered_packages(session, online_only=False)
    assert offer.minutes == 85


# ---------------------------------------------------------------- the booking form's warning


def taken(db, world, service_ids, start):
    with db.read() as session:
        found = booking.taken_resources(
            session, world.staff, clinic_id=world.clinic_id, service_ids=service_ids, start_at=start
        )
    return [t.text() for t in found]


def test_the_form_names_the_taken_laser_by_the_check_that_refuses_the_booking(
    db, world, laser, glow
):
    day = future_day()
    with db.write() as session:
        first = book(
            session, world, world.provider_id, world.patient_id, laser["service"], at(day, 10)
        )
        first_id = first.id
    said = f"Laser (1 of 1) is booked 10:00–10:30 by #{first_id}"
    assert taken(db, world, [laser["service"]], at(day, 10, 15)) == [said]
    with db.write() as session, pytest.raises(Conflict, match=f"#{first_id}"):  # the same check
        book(session, world, laser["second"], laser["other"], laser["service"], at(day, 10, 15))
    # a package holds the laser for its whole visit (9:30–10:30): taken, named the same way
    assert taken(db, world, [world.service_id, laser["service"]], at(day, 9, 30)) == [said]
    assert taken(db, world, [world.service_id], at(day, 10)) == []  # needs no laser
    assert taken(db, world, [laser["service"]], at(day, 10, 30)) == []
    with db.write() as session:  # bookable where the form says it is
        later = book(
            session, world, laser["second"], laser["other"], laser["service"], at(day, 10, 30)
        )
        later_id = later.id
    with db.write() as session:  # a second laser: one is still free at 10:15
        data = setup.ResourceData(world.clinic_id, "Laser", ResourceKind.EQUIPMENT, 2)
        setup.save_resource(session, world.owner, data, laser["laser"])
    assert taken(db, world, [laser["service"]], at(day, 10, 15)) == []
    with db.write() as session:  # double booked on purpose: both lasers taken 10:15–10:45
        over = book(
            session,
            world,
            world.provider_id,
            laser["other"],
            laser["service"],
            at(day, 10, 15),
            allow_double_booking=True,
        )
        over_id = over.id
    assert taken(db, world, [laser["service"]], at(day, 10, 20)) == [
        f"Laser (2 of 2) is booked 10:00–10:30 by #{first_id}, 10:15–10:45 by #{over_id}, "
        f"10:30–11:00 by #{later_id}"
    ]
    with db.read() as session, pytest.raises(NotFound):
        booking.taken_resources(
            session, world.staff, clinic_id=999, service_ids=[laser["service"]], start_at=at(day, 9)
        )


def test_the_form_says_when_only_the_buffers_keep_the_room(db, world, buffered):
    day = future_day()
    with db.write() as session:
        peel = book(
            session, world, world.provider_id, world.patient_id, buffered["peel"], at(day, 10)
        )
        peel_id = peel.id
    assert taken(db, world, [buffered["peel"]], at(day, 10, 40)) == [
        f"Room 1 (1 of 1) is booked 10:00–10:30 by #{peel_id} (15 minutes kept free after it "
        "and 15 minutes kept free after this booking)"
    ]
    assert taken(db, world, [buffered["peel"]], at(day, 10, 45)) == []


# ---------------------------------------------------------------- who performs a service


@pytest.fixture
def consults_only(db, world, laser):
    """Dr Test lists only the consultation; Dr Second lists no services (so performs any)."""
    with db.write() as session:
        data = setup.ProviderData(
            "Dr Test", clinic_ids=(world.clinic_id,), service_ids=(world.service_id,)
        )
        setup.save_provider(session, world.owner, data, world.provider_id)
    return laser


def test_a_provider_is_booked_only_for_the_services_they_perform(db, world, consults_only):
    day, laser = future_day(3), consults_only
    with db.write() as session, pytest.raises(ValidationError) as refused:
        book(session, world, world.provider_id, world.patient_id, laser["service"], at(day, 10))
    assert "Dr Test does not perform Laser hair removal" in str(refused.value)
    with db.write() as session, pytest.raises(ValidationError):  # double booking does not help
        book(
            session,
            world,
            world.provider_id,
            world.patient_id,
            laser["service"],
            at(day, 10),
            allow_double_booking=True,
            outside_hours_override=True,
        )
    with db.write() as session:  # what she performs, and a provider with no list
        book(session, world, world.provider_id, world.patient_id, world.service_id, at(day, 10))
        laser_id = book(
            session, world, laser["second"], laser["other"], laser["service"], at(day, 10)
        ).id
    with db.write() as session, pytest.raises(ValidationError) as refused:  # moved to her
        moves.reschedule(
            session, world.staff, laser_id, start_at=at(day, 12), provider_id=world.provider_id
        )
    assert "does not perform Laser hair removal" in str(refused.value)


def test_a_booking_keeping_its_provider_moves_after_their_list_changed(db, world, laser):
    day = future_day(3)
    with db.write() as session:
        booked_id = book(
            session, world, world.provider_id, world.patient_id, laser["service"], at(day, 10)
        ).id
        data = setup.ProviderData("Dr Test", service_ids=(world.service_id,))
        setup.save_provider(session, world.owner, data, world.provider_id)
    with db.write() as session:  # the existing visit keeps its provider: no new check
        moves.reschedule(session, world.staff, booked_id, start_at=at(day, 12))
    with db.read() as session:
        assert session.get(Appointment, booked_id).start_at == at(day, 12)


def test_the_form_and_the_suggestions_offer_only_providers_who_perform_it(db, world, consults_only):
    day, laser = future_day(3), consults_only
    with db.read() as session:
        offered = booking.provider_choices(
            session,
            world.staff,
            clinic_id=world.clinic_id,
            start_at=at(day, 10),
            minutes=30,
            service_ids=[laser["service"]],
        )
        slots = availability.suggest_slots(
            session,
            clinic_id=world.clinic_id,
            duration_minutes=30,
            day=day,
            service_ids=[laser["service"]],
            limit=20,
        )
        consult = availability.suggest_slots(
            session,
            clinic_id=world.clinic_id,
            duration_minutes=30,
            day=day,
            service_ids=[world.service_id],
            limit=20,
        )
    assert [(c.name, c.free, c.performs, c.why) for c in offered] == [
        ("Dr Second", True, True, ""),
        ("Dr Test", False, False, "does not perform Laser hair removal"),
    ]
    assert {s.provider_name for s in slots} == {"Dr Second"}
    assert {s.provider_name for s in consult} == {"Dr Second", "Dr Test"}


def test_a_request_is_approved_or_proposed_only_with_a_provider_who_performs_it(
    db, world, consults_only
):
    from core.requests import decisions, queue

    day, laser = future_day(4), consults_only
    with db.write() as session:
        request_id = decisions.request_appointment(
            session,
            world.manager,
            patient_id=world.patient_id,
            clinic_id=world.clinic_id,
            service_id=laser["service"],
            requested_day=day,
            time_of_day="morning",
        ).id
    with db.read() as session:
        suggested = queue.suggest_for(session, world.staff, request_id)
    assert suggested and {s.provider_name for s in suggested} == {"Dr Second"}
    for decide in (decisions.approve_request, decisions.propose_time):
        with db.write() as session, pytest.raises(ValidationError) as refused:
            decide(
                session,
                world.manager,
                request_id,
                provider_id=world.provider_id,
                start_at=at(day, 10),
            )
        assert "Dr Test does not perform Laser hair removal" in str(refused.value)
    with db.write() as session:
        decisions.approve_request(
            session, world.manager, request_id, provider_id=laser["second"], start_at=at(day, 10)
        )


def test_a_package_nobody_performs_whole_is_not_offered(db, world, consults_only, glow):
    from core.portal import home, patient_links

    laser = consults_only
    with db.write() as session:
        session.get(Patient, world.patient_id).portal_enrolled_at = utcnow()
        link = patient_links.issue_booking_link(
            session, world.manager, world.clinic_id, base_url="https://clinic.example"
        )
    raw = link.split("t=")[1]
    with db.read() as session:  # Dr Second (no list) performs both of Glow's services
        assert [p.id for p in packages.offered_packages(session, online_only=True)] == [glow]
    with db.write() as session:  # now Dr Second does the laser only, Dr Test the consultation
        data = setup.ProviderData("Dr Second", service_ids=(laser["service"],))
        setup.save_provider(session, world.owner, data, laser["second"])
    with db.read() as session:
        assert packages.offered_packages(session, online_only=False) == []
        assert patient_links.booking_view(session, raw).packages == []
        assert home.request_form(session, world.patient_id).packages == []
        found = choices.list_choices(session, world.staff)
        assert [(p.id, p.performed) for p in found.packages] == [(glow, False)]
    with db.write() as session, pytest.raises(ValidationError) as refused:
        moves.schedule_appointment(
            session,
            world.staff,
            moves.NewBooking(
                clinic_id=world.clinic_id,
                provider_id=laser["second"],
                start_at=at(future_day(3), 10),
                patient_id=world.patient_id,
                package_id=glow,
                notify_channels=[],
            ),
        )
    assert "Dr Second does not perform Consultation" in str(refused.value)


def test_deactivating_a_provider_asked_for_by_waiting_requests_says_so_first(db, world):
    """Before, a provider with nothing booked but requests waiting for them in the queue went
    at the first press, and the requests waited for a provider nobody could book."""
    with db.write() as session:
        session.add(
            Appointment(
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                patient_id=world.patient_id,
                service_id=world.service_id,
                status=AppointmentStatus.REQUESTED,
                requested_day=future_day(3),
            )
        )
    with db.read() as session:
        said = setup.deactivation_warning(session, world.manager, "provider", world.provider_id)
    assert said == (
        "1 booking request in the Request queue asks for Dr Test; decide it first (with another "
        "provider, or decline with a reason). Nobody new can be booked with Dr Test after this."
    )
    with db.write() as session, pytest.raises(ValidationError):
        setup.set_active(session, world.manager, "provider", world.provider_id, False)


def test_deactivating_a_provider_with_upcoming_bookings_asks_for_confirmation(db, world):
    day = future_day(3)
    with db.write() as session:
        book(session, world, world.provider_id, world.patient_id, world.service_id, at(day, 10))
        book(session, world, world.provider_id, world.patient_id, world.service_id, at(day, 11))
    with db.read() as session:
        said = setup.deactivation_warning(session, world.manager, "provider", world.provider_id)
    assert said.startswith("Dr Test has 2 upcoming appointments, the first on ")
    assert "10:00" in said and "stay booked and on the calendar" in said
    with db.write() as session, pytest.raises(ValidationError) as refused:
        setup.set_active(session, world.manager, "provider", world.provider_id, False)
    assert str(refused.value) == f"{said} Confirm to deactivate anyway."
    with db.write() as session:
        setup.set_active(
            session, world.manager, "provider", world.provider_id, False, despite_bookings=True
        )
    with db.read() as session:
        assert not session.get(Provider, world.provider_id).active
        assert session.scalar(
            select(Appointment.id).where(Appointment.provider_id == world.provider_id)
        )
        assert (
            setup.deactivation_warning(session, world.manager, "provider", world.provider_id)
            == said
        )


def test_a_service_booked_ahead_is_not_deactivated_silently(db, world, laser, glow):
    """Removing a service still booked, asked for in the queue and part of a package: refused
    saying all three, deactivated once confirmed, every visit kept and the change audited."""
    from core.requests import decisions

    day = future_day(3)
    with db.write() as session:
        first = book(
            session, world, world.provider_id, world.patient_id, laser["service"], at(day, 10)
        ).id
        book(session, world, laser["second"], laser["other"], laser["service"], at(day, 14))
        decisions.request_appointment(
            session,
            world.manager,
            clinic_id=world.clinic_id,
            patient_id=world.patient_id,
            service_id=laser["service"],
            requested_day=future_day(5),
            time_of_day=None,
        )
    with db.read() as session:
        said = setup.deactivation_warning(session, world.manager, "service", laser["service"])
    assert said.startswith("Laser hair removal is booked in 2 upcoming visits, the first on ")
    assert "10:00" in said and "they stay booked and on the calendar" in said
    assert "1 booking request for Laser hair removal waits in the Request queue" in said
    assert "The package Glow includes Laser hair removal and can no longer be booked" in said
    with db.write() as session, pytest.raises(ValidationError) as refused:
        setup.set_active(session, world.manager, "service", laser["service"], False)
    assert str(refused.value) == f"{said} Confirm to deactivate anyway."
    assert "service.deactivated" not in actions(db, "service")
    with db.write() as session:
        setup.set_active(
            session, world.manager, "service", laser["service"], False, despite_bookings=True
        )
    assert actions(db, "service")[-1] == "service.deactivated"
    with db.read() as session:
        assert session.get(Appointment, first).status.value == "scheduled"
    with db.read() as session:  # a service booked by nobody goes at once
        assert setup.deactivation_warning(session, world.manager, "service", world.service_id)
    with db.write() as session:
        quiet = setup.save_service(session, world.owner, setup.ServiceData("Unbooked", 20))
    with db.write() as session:
        setup.set_active(session, world.manager, "service", quiet, False)


def test_a_laser_still_needed_ahead_is_not_deactivated_silently(db, world, laser):
    """Before, the laser went at once, and with it every hold on it: the visits booked ahead
    needing it were never mentioned."""
    with db.write() as session:
        book(
            session,
            world,
            world.provider_id,
            world.patient_id,
            laser["service"],
            at(future_day(2), 10),
        )
    with db.write() as session, pytest.raises(ValidationError) as refused:
        setup.set_active(session, world.owner, "resource", laser["laser"], False)
    said = str(refused.value)
    assert said.startswith(
        "Laser is needed by 1 upcoming visit at Test Clinic (Laser hair removal), the first on "
    )
    assert "Laser hair removal can then be booked at any time without it." in said
    with db.write() as session:
        setup.set_active(
            session, world.owner, "resource", laser["laser"], False, despite_bookings=True
        )
    assert actions(db, "resource")[-1] == "resource.deactivated"


def test_a_clinic_with_visits_ahead_is_not_deactivated_silently(db, world):
    """A deactivated clinic leaves the Calendar and Today: with a visit booked ahead that is
    said, and done only once confirmed."""
    with db.write() as session:
        book(
            session,
            world,
            world.provider_id,
            world.patient_id,
            world.service_id,
            at(future_day(2), 11),
        )
    with db.write() as session, pytest.raises(ValidationError) as refused:
        setup.set_active(session, world.owner, "clinic", world.clinic_id, False)
    said = str(refused.value)
    assert said.startswith("Test Clinic has 1 upcoming visit, the first on ")
    assert "leaves the Calendar, Today and booking" in said and "Confirm to deactivate" in said
    with db.read() as session:
        assert session.get(Clinic, world.clinic_id).active
    with db.write() as session:
        setup.set_active(
            session, world.owner, "clinic", world.clinic_id, False, despite_bookings=True
        )
    with db.read() as session:
        assert not session.get(Clinic, world.clinic_id).active


def test_a_new_time_zone_says_what_happens_to_the_visits_booked(db, world):
    """Visits keep their moment when the clinic's zone changes, so their clock time moves: the
    change is refused saying so (the first visit's old and new time) until confirmed."""
    day = future_day(3)
    with db.write() as session:
        visit = book(
            session, world, world.provider_id, world.patient_id, world.service_id, at(day, 10)
        )
        start = visit.start_at
        clinic = session.get(Clinic, world.clinic_id)
        moved = setup.ClinicData(clinic.name, "America/New_York", locale=clinic.locale)
        renamed = setup.ClinicData("Renamed Clinic", clinic.timezone, locale=clinic.locale)
    with db.write() as session:  # a new name (the zone kept) asks nothing
        setup.save_clinic(session, world.owner, renamed, world.clinic_id)
    moved = setup.ClinicData("Renamed Clinic", "America/New_York", locale=moved.locale)
    with db.read() as session:
        said = setup.zone_change_warning(session, world.manager, world.clinic_id, moved.timezone)
    assert said.startswith("Renamed Clinic has 1 upcoming visit. Moving it from Europe/London")
    new_clock = to_local(start, "America/New_York").strftime("%H:%M")
    assert "10:00, would read " in said and new_clock in said.split("would read ")[1]
    assert "weekly hours keep their clock times" in said
    with db.write() as session, pytest.raises(ValidationError) as refused:
        setup.save_clinic(session, world.owner, moved, world.clinic_id)
    assert str(refused.value) == f"{said} Confirm to change the time zone anyway."
    with db.read() as session:
        assert session.get(Clinic, world.clinic_id).timezone == TZ
    with db.write() as session:
        setup.save_clinic(session, world.owner, moved, world.clinic_id, despite_bookings=True)
    with db.read() as session:
        assert session.get(Clinic, world.clinic_id).timezone == "America/New_York"
        assert session.get(Appointment, visit.id).start_at == start  # the same moment
    with db.write() as session:  # nothing booked: a zone changes at once
        empty = setup.save_clinic(session, world.owner, setup.ClinicData("Empty", TZ))
    with db.write() as session:
        setup.save_clinic(session, world.owner, setup.ClinicData("Empty", "Asia/Tokyo"), empty)


def test_a_new_currency_says_what_it_does_to_the_amounts_booked(db, world):
    """Amounts are minor units, not converted: a clinic moved from GBP to JPY read a visit
    booked at £60.00 as JP¥6,000 and the policy's £25.00 fee as JP¥2,500, without a word. The
    change is refused, saying so, until confirmed; a locale alone asks nothing."""
    from core.policy import cancellation

    day = future_day(3)
    with db.write() as session:
        book(session, world, world.provider_id, world.patient_id, world.service_id, at(day, 10))
        cancellation.save_policy(
            session,
            world.owner,
            clinic_id=world.clinic_id,
            window_hours=24,
            late_cancel_fee_cents=2500,
            no_show_fee_cents=0,
            points_deducted=0,
            inside_window_needs_approval=False,
            outside_window_auto_accept=True,
            online_cancel_allowed=True,
            max_reschedules=2,
            policy_text="24 hours' notice, please.",
            despite_effects=True,  # a fee where there was none, for the visit booked
        )
    with db.write() as session:  # another locale, the currency kept: nothing to confirm
        setup.save_clinic(
            session,
            world.owner,
            setup.ClinicData("Test Clinic", TZ, locale="en-IE"),
            world.clinic_id,
        )
    yen = setup.ClinicData("Test Clinic", TZ, locale="en-GB", currency="JPY")
    with db.read() as session:
        said = setup.clinic_change_warning(
            session, world.manager, world.clinic_id, TZ, "en-GB", "jpy"
        )
    assert said.startswith("Test Clinic charges in GBP. Amounts are not converted when it charges")
    assert "1 upcoming visit, the first on " in said
    assert "priced £60.00, which would be JP¥6,000." in said
    assert "policy's late-cancellation fee of £25.00 would be JP¥2,500." in said
    assert "Change the prices on Services" in said
    with db.write() as session, pytest.raises(ValidationError) as refused:
        setup.save_clinic(session, world.owner, yen, world.clinic_id)
    assert str(refused.value) == f"{said} Confirm to change the currency anyway."
    with db.read() as session:
        assert session.get(Clinic, world.clinic_id).currency == "GBP"
    with db.write() as session:
        setup.save_clinic(session, world.owner, yen, world.clinic_id, despite_bookings=True)
    with db.read() as session:
        assert session.get(Clinic, world.clinic_id).currency == "JPY"
    with db.write() as session:  # nothing booked or charged: a currency changes at once
        empty = setup.save_clinic(session, world.owner, setup.ClinicData("Empty", TZ))
    with db.write() as session:
        setup.save_clinic(
            session, world.owner, setup.ClinicData("Empty", TZ, currency="EUR"), empty
        )


def test_a_booked_service_says_what_a_new_price_length_or_room_does_first(db, world, laser):
    """A visit takes its price and the rooms it holds from its services as they are now, so
    raising Consultation from £60.00 to £80.00 re-priced every visit booked with it, and a room
    added to it was held by them all at once, without a word. Such a change is refused, saying
    what happens to the visits booked ahead, until confirmed; a new category asks nothing."""
    with db.write() as session:
        visit = book(
            session,
            world,
            world.provider_id,
            world.patient_id,
            world.service_id,
            at(future_day(), 10),
        )
        start, end = visit.start_at, visit.end_at
    same = setup.ServiceData("Consultation", 30, price_cents=6000, virtual_allowed=True)
    with db.write() as session:  # a new category: nothing booked changes
        setup.save_service(
            session, world.owner, replace(same, category="General"), world.service_id
        )
    dearer = replace(
        same,
        category="General",
        duration_minutes=45,
        price_cents=8000,
        resource_ids=(laser["laser"],),
    )
    with db.read() as session:
        said = setup.service_change_warning(session, world.manager, world.service_id, dearer)
    assert said.startswith("Consultation is booked in 1 upcoming visit, the first on ")
    assert "Its new price applies to it: Consultation costs £80.00 there instead of £60.00" in said
    assert "keep their length and buffers; one moved on the Calendar takes the new" in said
    assert "They will hold Laser as well from now on" in said
    with db.write() as session, pytest.raises(ValidationError) as refused:
        setup.save_service(session, world.owner, dearer, world.service_id)
    assert str(refused.value) == f"{said} Confirm to save the service anyway."
    with db.read() as session:
        assert session.get(Service, world.service_id).price_cents == 6000
        assert treatment.price_of(session.get(Appointment, visit.id)) == 6000
    with db.write() as session:
        setup.save_service(session, world.owner, dearer, world.service_id, despite_bookings=True)
    with db.read() as session:
        assert session.get(Service, world.service_id).price_cents == 8000
        kept = session.get(Appointment, visit.id)
        assert (kept.start_at, kept.end_at) == (start, end)  # as said: its length as booked
    with db.write() as session:  # nothing booked: a price changes at once
        lone = setup.save_service(session, world.owner, setup.ServiceData("Lone", 30))
    with db.write() as session:
        setup.save_service(session, world.owner, setup.ServiceData("Lone", 40, price_cents=1), lone)


def test_a_clinic_taken_off_a_provider_takes_their_hours_there_unless_booked(db, world):
    """Before, unticking a clinic on the Providers page saved, yet the provider's weekly hours
    there kept them bookable and listed at that clinic: the change did nothing. Now their
    hours there go with it (audited), and visits booked ahead there refuse it, named."""
    with db.write() as session:
        second = setup.save_clinic(session, world.owner, setup.ClinicData("Second", TZ))
        data = setup.ProviderData("Dr Test", clinic_ids=(world.clinic_id, second))
        setup.save_provider(session, world.owner, data, world.provider_id)
        session.add(
            WorkingHours(
                provider_id=world.provider_id,
                clinic_id=second,
                weekday=future_day(4).weekday(),
                starts=time(7),
                ends=time(8, 30),
            )
        )
    with db.write() as session:
        visit = moves.schedule_appointment(
            session,
            world.staff,
            moves.NewBooking(
                clinic_id=second,
                provider_id=world.provider_id,
                start_at=at(future_day(4), 7),
                patient_id=world.patient_id,
                service_ids=[world.service_id],
                notify_channels=[],
            ),
        )
    only_first = setup.ProviderData("Dr Test", clinic_ids=(world.clinic_id,))
    with db.write() as session, pytest.raises(ValidationError) as refused:
        setup.save_provider(session, world.owner, only_first, world.provider_id)
    assert str(refused.value).startswith("Dr Test has 1 upcoming visit at Second, the first on ")
    assert str(refused.value).endswith("keep Second among their clinics; nothing was saved.")
    with db.write() as session:
        session.get(Appointment, visit.id).status = "cancelled"
    with db.write() as session:
        setup.save_provider(session, world.owner, only_first, world.provider_id)
    with db.read() as session:
        found = choices.list_choices(session, world.staff)
        assert [p.id for p in found.providers_at(second)] == []
        assert (
            session.scalar(select(WorkingHours.id).where(WorkingHours.clinic_id == second)) is None
        )
        event = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "working_hours_set")
            .order_by(AuditEvent.id.desc())
        ).first()
        assert event.details["clinic_id"] == second and event.details["after"] == []
        assert event.details["before"][0]["starts"] == "07:00"


def test_required_is_read_wherever_it_stands_after_the_type(db, world):
    lines = "\n".join(
        [
            "allergies | Any allergies? | yes_no | required",  # the options left out
            "tan | Recent sun tan? | yes_no | | required",
            "skin | Skin type | choice | I;II;III | required",
            "meds | Medicines you take | text | optional",
            "pets | Any pets? | yes_no | | yes",  # as before: yes in the required place
        ]
    )
    parsed = documents.parse_question_lines(lines)
    assert [(q["key"], q["required"]) for q in parsed] == [
        ("allergies", True),
        ("tan", True),
        ("skin", True),
        ("meds", False),
        ("pets", True),
    ]
    assert parsed[2]["options"] == ["I", "II", "III"] and parsed[0]["options"] == []
    with db.write() as session:
        doc = documents.save_document(
            session, world.owner, world.service_id, "questionnaire", "Before", questions=parsed
        )
        stored = session.get(ServiceDocument, doc).questions
    assert stored[0] == {
        "key": "allergies",
        "label": "Any allergies?",
        "type": "yes_no",
        "options": [],
        "required": True,
    }
    odd = documents.parse_question_lines("x | Why? | text | a;b | mandatory")
    with db.write() as session, pytest.raises(ValidationError) as refused:
        documents.save_document(
            session, world.owner, world.service_id, "questionnaire", "Before", questions=odd
        )
    assert str(refused.value) == (
        "Question 1: 'mandatory' is not understood; write each question as "
        "key | question | type | options separated by ; | required."
    )


def test_a_price_that_is_not_whole_minor_units_says_so(db, world):
    """12.5 minor units is not a negative price (before: 'The price cannot be negative.')."""
    with db.write() as session:
        with pytest.raises(ValidationError, match="whole number of the currency's smallest unit"):
            setup.save_service(
                session, world.owner, setup.ServiceData("Half", 20, price_cents=12.5)
            )
        with pytest.raises(ValidationError, match="cannot be negative"):
            setup.save_service(session, world.owner, setup.ServiceData("Below", 20, price_cents=-1))


def test_a_price_beyond_what_the_price_field_takes_is_refused(db, world):
    """A practice file's price_cents = 3000000000 (₫3,000,000,000 meant as 3,000,000): refused
    with the most a price can be. Before, SQLite stored it and PostgreSQL failed on its integer
    column (integer out of range), with no word of which price."""
    with pytest.raises(ValidationError) as refused, db.write() as session:
        setup.save_service(
            session, world.owner, setup.ServiceData("Huge", 20, price_cents=3 * 10**9)
        )
    assert str(refused.value) == (
        "The price can be at most 1000000000 of the currency's smallest unit (pence, cents, "
        "whole yen), as on the Services page; 3000000000 is more."
    )
    with db.write() as session:
        setup.save_service(session, world.owner, setup.ServiceData("Most", 20, price_cents=10**9))
