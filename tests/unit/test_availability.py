"""Availability: conflicts, working hours (DST-safe), time off and slot suggestions."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, time, timedelta

import pytest
from sqlalchemy import select

from core.kernel.clock import local_to_utc, to_local
from core.kernel.errors import ValidationError
from core.practice import travel
from core.requests import queue
from core.scheduling import availability, lifecycle
from core.scheduling.appointments import get_appointment_detail
from core.scheduling.availability import find_conflicts, suggest_slots, working_hours_cover
from db.models import (
    AppointmentKind,
    AppointmentStatus,
    AuditEvent,
    Clinic,
    Provider,
    TimeOfDay,
    TimeOff,
    VisitMode,
    WorkingHours,
)
from db.types import utcnow
from tests.factories import make_visit

TZ = "Europe/London"


def future_day(days: int = 3) -> date:
    return to_local(utcnow(), TZ).date() + timedelta(days=days)


def at(day: date, hour: int, minute: int = 0):
    return local_to_utc(day, time(hour, minute), TZ)


def book(session, world, start, minutes=30, status=AppointmentStatus.SCHEDULED, **extra):
    row = make_visit(
        session,
        world,
        status=status,
        start_at=start,
        end_at=start + timedelta(minutes=minutes),
        **extra,
    )
    return row


def test_conflicts_find_overlaps_only_for_occupying_statuses(db, world):
    day = future_day()
    with db.write() as session:
        busy = book(session, world, at(day, 10))
        book(session, world, at(day, 11), status=AppointmentStatus.CANCELLED)
        block = book(session, world, at(day, 13), minutes=60, kind=AppointmentKind.OUT_OF_OFFICE)
    with db.read() as session:
        assert [
            a.id
            for a in find_conflicts(session, world.provider_id, at(day, 10, 15), at(day, 10, 45))
        ] == [busy.id]
        assert find_conflicts(session, world.provider_id, at(day, 10, 30), at(day, 11)) == []
        assert find_conflicts(session, world.provider_id, at(day, 11), at(day, 11, 30)) == []
        assert [
            a.id for a in find_conflicts(session, world.provider_id, at(day, 13, 30), at(day, 14))
        ] == [block.id]
        assert (
            find_conflicts(
                session,
                world.provider_id,
                at(day, 10),
                at(day, 10, 30),
                exclude_appointment_id=busy.id,
            )
            == []
        )


def test_working_hours_and_time_off(db, world):
    day = future_day()
    with db.write() as session:
        session.add(
            TimeOff(
                provider_id=world.provider_id,
                starts_at=at(day, 14),
                ends_at=at(day, 15),
                reason="Training",
            )
        )
    with db.read() as session:

        def cover(a, b):
            return working_hours_cover(session, world.provider_id, world.clinic_id, a, b)

        assert cover(at(day, 9), at(day, 9, 30))
        assert cover(at(day, 16, 30), at(day, 17))
        assert not cover(at(day, 8, 45), at(day, 9, 15))
        assert not cover(at(day, 16, 45), at(day, 17, 15))
        assert not cover(at(day, 14, 30), at(day, 15, 30))


def test_working_hours_follow_local_time_across_dst(db, world):
    # 29 March 2026: clocks go forward in London; 09:00 local is 08:00 UTC that day
    spring = date(2026, 3, 29)
    with db.read() as session:
        start = at(spring, 9)
        assert start.hour == 8
        assert working_hours_cover(
            session, world.provider_id, world.clinic_id, start, start + timedelta(minutes=30)
        )
        assert not working_hours_cover(
            session, world.provider_id, world.clinic_id, start - timedelta(minutes=30), start
        )


def test_suggest_slots_skips_bookings_and_respects_time_of_day(db, world):
    day = future_day()
    with db.write() as session:
        book(session, world, at(day, 9), minutes=60)
    with db.read() as session:
        slots = suggest_slots(
            session, clinic_id=world.clinic_id, duration_minutes=30, day=day, limit=3
        )
        assert [to_local(s.start_at, TZ).time() for s in slots] == [
            time(10),
            time(10, 15),
            time(10, 30),
        ]
        assert slots[0].provider_name == "Dr Test"
        afternoon = suggest_slots(
            session,
            clinic_id=world.clinic_id,
            duration_minutes=60,
            day=day,
            time_of_day="afternoon",
            limit=2,
        )
        assert [to_local(s.start_at, TZ).time() for s in afternoon] == [time(12), time(12, 15)]
        evening = suggest_slots(
            session,
            clinic_id=world.clinic_id,
            duration_minutes=30,
            day=day,
            time_of_day="evening",
            limit=2,
            search_days=3,
        )
        assert evening == []  # the provider works 09–17 only


def test_suggest_slots_chooses_between_providers_and_moves_to_next_day(db, world):
    day = future_day()
    with db.write() as session:
        other = Provider(name="Dr Other")
        session.add(other)
        session.flush()
        clinic = session.get(Clinic, world.clinic_id)
        session.add(
            WorkingHours(
                provider_id=other.id,
                clinic_id=clinic.id,
                weekday=day.weekday(),
                starts=time(16),
                ends=time(17),
            )
        )
        book(session, world, at(day, 9), minutes=8 * 60)  # Dr Test is full that day
    with db.read() as session:
        slots = suggest_slots(
            session, clinic_id=world.clinic_id, duration_minutes=60, day=day, limit=2
        )
        assert (slots[0].provider_name, to_local(slots[0].start_at, TZ)) == (
            "Dr Other",
            to_local(at(day, 16), TZ),
        )
        assert to_local(slots[1].start_at, TZ).date() == day + timedelta(days=1)
        only = suggest_slots(
            session,
            clinic_id=world.clinic_id,
            duration_minutes=60,
            day=day,
            provider_id=world.provider_id,
            limit=1,
        )
        assert to_local(only[0].start_at, TZ) == to_local(at(day + timedelta(days=1), 9), TZ)


def test_suggest_slots_rejects_bad_duration(db, world):
    from core.kernel.errors import ValidationError

    with db.read() as session, pytest.raises(ValidationError, match="duration"):
        suggest_slots(session, clinic_id=world.clinic_id, duration_minutes=0, day=future_day())


def _harbour(db, world, day) -> int:
    """A second clinic, Harbour, where Dr Test is booked 10:00–10:30 on `day`."""
    with db.write() as session:
        harbour = Clinic(name="Harbour", timezone=TZ)
        session.add(harbour)
        session.flush()
        book(session, replace(world, clinic_id=harbour.id), at(day, 10))
        return harbour.id


def test_the_travel_time_between_clinics_makes_a_booking_there_clash(db, world):
    """A provider of two clinics could be booked 09:30–10:00 at one and 10:00 at the other:
    nothing knew they have to get there. A booking at another clinic less than the practice's
    travel time before or after now clashes; 0 (the default) keeps back-to-back bookings."""
    day = future_day()
    harbour = _harbour(db, world, day)

    def clashes(clinic_id, hour, minute=0) -> list[int]:
        start = at(day, hour, minute)
        with db.read() as session:
            return [
                a.id
                for a in find_conflicts(
                    session,
                    world.provider_id,
                    start,
                    start + timedelta(minutes=30),
                    clinic_id=clinic_id,
                )
            ]

    assert clashes(world.clinic_id, 9, 30) == [] and clashes(world.clinic_id, 10, 30) == []
    with db.write() as session:
        travel.set_travel_minutes(session, world.owner, 30)
    assert len(clashes(world.clinic_id, 9, 30)) == 1  # ends as the one at Harbour starts
    assert len(clashes(world.clinic_id, 10, 45)) == 1  # starts 15 minutes after it ends
    assert clashes(world.clinic_id, 9) == [] and clashes(world.clinic_id, 11) == []
    assert clashes(harbour, 9, 30) == [] and clashes(harbour, 10, 30) == []  # no travel there
    with db.read() as session:
        slots = suggest_slots(
            session, clinic_id=world.clinic_id, duration_minutes=30, day=day, limit=3
        )
    assert [to_local(s.start_at, TZ).time() for s in slots] == [time(9), time(11), time(11, 15)]


def test_no_travel_time_is_kept_around_a_video_visit(db, world):
    """The travel time between clinics was kept around video visits too: a provider who saw a
    patient on video 'at' Harbour 10:00-10:30 could not be booked here at 10:30, nor a video
    visit here straight after an in-person one at Harbour. Nobody travels to a video visit:
    the clash check and the free times keep no travel time when either visit is one."""
    day = future_day()
    with db.write() as session:
        harbour = Clinic(name="Harbour", timezone=TZ)
        session.add(harbour)
        session.flush()
        there = replace(world, clinic_id=harbour.id)
        book(session, there, at(day, 10), mode=VisitMode.VIRTUAL)
        book(session, there, at(day, 12))  # in person
        travel.set_travel_minutes(session, world.owner, 30)
        harbour_id = harbour.id

    def clashes(hour, minute=0, virtual=False) -> int:
        start = at(day, hour, minute)
        with db.read() as session:
            return len(
                find_conflicts(
                    session,
                    world.provider_id,
                    start,
                    start + timedelta(minutes=30),
                    clinic_id=world.clinic_id,
                    virtual=virtual,
                )
            )

    assert clashes(10, 30) == 0 and clashes(9, 30) == 0  # around the video visit at Harbour
    assert clashes(12, 30) == 1 and clashes(12, 30, virtual=True) == 0  # after one in person
    assert clashes(10, 15, virtual=True) == 1  # the video visits themselves still clash
    with db.read() as session:
        in_person, video = (
            [
                to_local(s.start_at, TZ).time()
                for s in suggest_slots(
                    session,
                    clinic_id=world.clinic_id,
                    duration_minutes=30,
                    day=day,
                    limit=12,
                    virtual=virtual,
                )
            ]
            for virtual in (False, True)
        )
    assert time(9, 30) in in_person and time(10, 30) in in_person
    assert time(11, 30) not in in_person and time(12, 30) not in in_person
    assert time(11, 30) in video and time(12, 30) in video
    assert harbour_id


def test_suggestions_with_no_travel_time_take_the_minutes_after_the_other_clinic(db, world):
    day = future_day()
    _harbour(db, world, day)
    with db.read() as session:
        slots = suggest_slots(
            session, clinic_id=world.clinic_id, duration_minutes=30, day=day, limit=4
        )
    assert [to_local(s.start_at, TZ).time() for s in slots] == [
        time(9),
        time(9, 15),
        time(9, 30),
        time(10, 30),
    ]


def test_the_travel_time_is_set_by_the_owner_within_bounds_and_audited(db, world):
    with db.read() as session:
        assert travel.get_travel_minutes(session, world.staff) == 0
    for wrong in (-1, 241):
        with db.write() as session, pytest.raises(ValidationError, match="0 to 240 minutes"):
            travel.set_travel_minutes(session, world.owner, wrong)
    with db.write() as session:
        travel.set_travel_minutes(session, world.owner, 45)
    with db.read() as session:
        assert travel.get_travel_minutes(session, world.manager) == 45
        (event,) = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "setting_changed")
        ).all()
    assert event.user_id == world.owner.user_id
    assert event.details == {"key": travel.TRAVEL_KEY, "from": 0, "to": 45}


# ---------------------------------------------------------------- times of day in words


@pytest.mark.parametrize(
    ("locale", "labels"),
    [
        (
            "en-GB",
            [
                "Early morning (before 9:00)",
                "Morning (9:00–12:00)",
                "Afternoon (12:00–17:00)",
                "Evening (after 17:00)",
            ],
        ),
        (
            "en-US",
            [
                "Early morning (before 9:00\u202fAM)",
                "Morning (9:00\u202fAM – 12:00\u202fPM)",
                "Afternoon (12:00\u202fPM – 5:00\u202fPM)",
                "Evening (after 5:00\u202fPM)",
            ],
        ),
        ("de-DE", ["Early morning (before 9:00)"]),
    ],
)
def test_a_time_of_day_is_told_in_the_clinics_locale_from_its_window(locale, labels):
    """Times of day were written two ways, both on a 24-hour clock, for a US clinic too
    ('early morning (07–09)', 'Early morning (before 9:00)'): one label, from the window."""
    said = availability.time_of_day_labels(locale)
    assert list(said) == list(TimeOfDay)
    assert list(said.values())[: len(labels)] == labels
    evening = availability.time_of_day_label(TimeOfDay.EVENING, locale, in_text=True)
    assert evening == said[TimeOfDay.EVENING].replace("Evening", "evening")
    assert availability.time_of_day_label("morning", locale) == said[TimeOfDay.MORNING]


def test_a_requests_time_of_day_is_told_in_a_us_clinics_words_everywhere(db, world):
    """The patient's messages (when_text), the visit's detail and the queue say a New York
    clinic's evening as 'evening (after 5:00 PM)', not '(17–21)'."""
    day = date.today() + timedelta(days=3)
    with db.write() as s:
        s.get(Clinic, world.clinic_id).locale = "en-US"
        visit = make_visit(
            s,
            world,
            status=AppointmentStatus.REQUESTED,
            requested_day=day,
            time_of_day=TimeOfDay.EVENING,
        )
        words = lifecycle.when_text(visit)
        detail = get_appointment_detail(s, world.manager, visit.id).requested
        row = next(
            r
            for r in queue.list_queue(s, world.manager, "requests")
            if r.appointment_id == visit.id
        )
    evening = "evening (after 5:00\u202fPM)"
    assert words.endswith(f", {evening}") and detail.endswith(f", {evening}")
    assert queue.describe(row)["Requested"].endswith(f", {evening}")
