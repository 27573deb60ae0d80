"""Calendar reads: the visible window only, colours, resources, hours, and the time-zone
conversions of the component's callbacks (DST days included).

Re-run on PostgreSQL by tests/integration/test_calendar_pg.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select, text

from core.kernel.authz import patient_actor
from core.kernel.clock import local_to_utc, to_local, utcnow, zone_words
from core.kernel.errors import PermissionDenied, ValidationError
from core.practice import travel, treatment
from core.requests import changes, decisions
from core.scheduling import calendar, moves, today
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentService,
    AppointmentStatus,
    Clinic,
    Package,
    Provider,
    Resource,
    Service,
    ServiceResource,
    TimeOff,
    VisitMode,
    WorkingHours,
)
from tests.factories import make_patient

S = AppointmentStatus
TZ = "Europe/London"


def add(session, world, start, minutes=30, status=S.SCHEDULED, **extra) -> int:
    values = dict(
        clinic_id=world.clinic_id,
        provider_id=world.provider_id,
        patient_id=world.patient_id,
        service_id=world.service_id,
        status=status,
        start_at=start,
        end_at=start + timedelta(minutes=minutes),
    )
    row = Appointment(**(values | extra))
    session.add(row)
    session.flush()
    return row.id


def local(day: date, hour: int, minute: int = 0, tz: str = TZ) -> datetime:
    return local_to_utc(day, time(hour, minute), tz)


def events(db, world, start, end, **filters):
    with db.read() as session:
        return calendar.window_events(
            session, world.staff, clinic_id=world.clinic_id, start=start, end=end, **filters
        )


def test_only_events_overlapping_the_window_are_read(db, world):
    day = date(2026, 6, 10)
    first, last = calendar.window_bounds(day, day + timedelta(days=1), TZ)
    with db.write() as session:
        inside = add(session, world, local(day, 10))
        straddles = add(session, world, local(day, 0) - timedelta(minutes=30), minutes=60)
        add(session, world, local(day, 0) - timedelta(hours=2))  # ended before the window
        add(session, world, local(day + timedelta(days=1), 0))  # starts when the window ends
        add(session, world, local(day - timedelta(days=3), 10))
        requested = Appointment(
            clinic_id=world.clinic_id,
            patient_id=world.patient_id,
            status=S.REQUESTED,
            requested_day=day,
        )
        session.add(requested)
    found = events(db, world, first, last)
    assert [int(e["id"]) for e in found] == [straddles, inside]


def test_events_carry_clinic_local_times_with_offset_and_status_colours(db, world):
    summer, winter = date(2026, 7, 1), date(2026, 12, 1)
    with db.write() as session:
        add(session, world, local(summer, 9))
        add(session, world, local(winter, 9), status=S.CHECKED_IN)
        add(
            session,
            world,
            local(winter, 13),
            kind=AppointmentKind.OUT_OF_OFFICE,
            notes="Team meeting",
            patient_id=None,
        )
    found = events(db, world, local(summer, 0), local(summer, 0) + timedelta(days=1))
    found += events(db, world, local(winter, 0), local(winter, 0) + timedelta(days=1))
    assert found[0]["start"] == "2026-07-01T09:00:00+01:00"
    assert found[0]["end"] == "2026-07-01T09:30:00+01:00"
    assert found[0]["color"] == calendar.STATUS_COLOURS["scheduled"] and found[0]["editable"]
    assert found[1]["start"] == "2026-12-01T09:00:00+00:00"
    assert found[1]["color"] == calendar.STATUS_COLOURS["checked_in"] and not found[1]["editable"]
    ooo = found[2]
    assert ooo["title"] == "Out of office: Team meeting"
    assert ooo["color"] == calendar.OUT_OF_OFFICE_COLOUR and not ooo["editable"]
    assert ooo["classNames"] == [calendar.OUT_OF_OFFICE_CLASS]
    assert found[0]["title"] == "Alex Morgan · Consultation"
    assert found[0]["resourceId"] == str(world.provider_id) and found[0]["color"] == "#2e7d32"
    assert "classNames" not in found[0]


def test_a_visit_of_several_services_is_titled_as_its_page_names_it(db, world):
    """All the services ("Consultation + Peel"), a package by its name with its services, as
    the appointment page and Today name them; before, the first service alone."""
    day = date(2026, 6, 10)
    with db.write() as session:
        peel = Service(name="Peel", duration_minutes=30, price_cents=9000)
        glow = Package(name="Glow", price_cents=12000)
        session.add_all([peel, glow])
        session.flush()
        both = add(session, world, local(day, 9), minutes=60)
        package = add(session, world, local(day, 11), minutes=60, package_id=glow.id)
        one = add(session, world, local(day, 13))
        session.add(AppointmentService(appointment_id=one, service_id=world.service_id))
        for ident in (both, package):
            session.add_all(
                [
                    AppointmentService(appointment_id=ident, service_id=world.service_id),
                    AppointmentService(appointment_id=ident, service_id=peel.id, position=1),
                ]
            )
    found = events(db, world, local(day, 0), local(day, 0) + timedelta(days=1))
    assert [e["title"] for e in found] == [
        "Alex Morgan · Consultation + Peel",
        "Alex Morgan · Glow (Consultation + Peel)",
        "Alex Morgan · Consultation",
    ]
    with db.read() as session:  # only the visits of several services are read apart
        day_ids = select(Appointment.id).where(Appointment.clinic_id == world.clinic_id)
        assert treatment.more_services(session, day_ids) == {
            both: ["Consultation", "Peel"],
            package: ["Consultation", "Peel"],
        }


def test_time_off_of_the_clinics_providers_shows_as_background(db, world):
    day = date(2026, 6, 10)
    with db.write() as session:
        other = Provider(name="Dr Elsewhere")  # works at no hours of this clinic
        session.add(other)
        session.flush()
        session.add_all(
            [
                TimeOff(
                    provider_id=world.provider_id,
                    starts_at=local(day, 12),
                    ends_at=local(day, 14),
                    reason="Training",
                ),
                TimeOff(
                    provider_id=world.provider_id,
                    starts_at=local(day + timedelta(days=3), 9),
                    ends_at=local(day + timedelta(days=3), 10),
                ),  # after the window
                TimeOff(provider_id=other.id, starts_at=local(day, 9), ends_at=local(day, 17)),
            ]
        )
        add(session, world, local(day, 10))
        other_id = other.id
    first, last = calendar.window_bounds(day, day + timedelta(days=1), TZ)
    with db.read() as session:
        found = calendar.window_events(
            session, world.staff, clinic_id=world.clinic_id, start=first, end=last
        )
        mine_only = calendar.window_events(
            session,
            world.staff,
            clinic_id=world.clinic_id,
            start=first,
            end=last,
            provider_ids=[other_id],
        )
    away = [e for e in found if e.get("display") == "background"]
    assert away == [
        {
            "start": "2026-06-10T12:00:00+01:00",
            "end": "2026-06-10T14:00:00+01:00",
            "resourceId": str(world.provider_id),
            "display": "background",
            "color": calendar.OUT_OF_OFFICE_COLOUR,
            "title": "Time off: Training",
        }
    ]
    assert len(found) == 2 and mine_only == []


def test_a_providers_bookings_at_another_clinic_show_as_busy_there(db, world):
    """Dr Test works at this clinic and at Harbour: this clinic's calendar drew their Harbour
    bookings as free time. Now each shows in their column as "Busy at Harbour" background
    (buffers and the travel time between clinics included, touching ones merged), with no
    patient's name, read in one query however many there are."""
    day = date(2026, 6, 10)
    with db.write() as session:
        harbour = Clinic(name="Harbour", timezone=TZ)
        session.add(harbour)
        session.flush()
        there = dict(clinic_id=harbour.id)
        add(session, world, local(day, 10), **there)
        add(session, world, local(day, 10, 30), buffer_after_minutes=10, **there)
        add(session, world, local(day, 12), status=S.CANCELLED, **there)  # frees its time
        add(session, world, local(day, 9), **there, provider_id=None)  # nobody's
    first, last = calendar.window_bounds(day, day + timedelta(days=1), TZ)

    def elsewhere(**filters) -> list[tuple[str, str, str]]:
        return [
            (e["start"][11:16], e["end"][11:16], e["title"])
            for e in events(db, world, first, last, **filters)
            if e.get("color") == calendar.ELSEWHERE_COLOUR
        ]

    assert elsewhere() == [("10:00", "11:10", "Busy at Harbour")]
    (block,) = [e for e in events(db, world, first, last) if e.get("title") == "Busy at Harbour"]
    assert block["display"] == "background" and block["resourceId"] == str(world.provider_id)
    assert "id" not in block and "Alex" not in str(block)
    assert elsewhere(provider_ids=[world.provider_id + 1]) == []
    with db.write() as session:
        travel.set_travel_minutes(session, world.owner, 15)
    assert elsewhere() == [("09:45", "11:25", "Busy at Harbour (+15 min travel)")]
    with db.write() as session:  # a video visit there: nobody travels to it
        add(session, world, local(day, 14), mode=VisitMode.VIRTUAL, **there)
    assert elsewhere()[1:] == [("14:00", "14:30", "Busy at Harbour")]

    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        events(db, world, first, last)
        one = len(seen)
        with db.write() as session:
            for hour in (13, 15, 17):
                add(session, world, local(day, hour), clinic_id=harbour.id)
        seen.clear()
        drawn = events(db, world, first, last)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(seen) == one  # three more bookings there, no more queries
    assert sum(e.get("color") == calendar.ELSEWHERE_COLOUR for e in drawn) == 5  # video's too


def test_colour_legend_names_every_status_and_requested_purple_scheduled_green():
    names = dict(calendar.legend())
    assert len(names) == len(S) + 3 and "Out of office" in names
    assert names["Busy at another clinic"] == calendar.ELSEWHERE_COLOUR
    assert names["Held (original time)"] == calendar.HELD_COLOUR
    assert names["Requested"] == "#7e57c2" and names["Scheduled"] == "#2e7d32"
    assert len(set(calendar.STATUS_COLOURS.values())) == len(S)


def test_filters_by_provider_and_status(db, world):
    day = date(2026, 6, 10)
    with db.write() as session:
        other = Provider(name="Dr Other")
        session.add(other)
        session.flush()
        add(session, world, local(day, 10))
        cancelled = add(session, world, local(day, 11), status=S.CANCELLED)
        mine = add(session, world, local(day, 12), provider_id=other.id)
        other_id = other.id
    first, last = calendar.window_bounds(day, day + timedelta(days=1), TZ)
    assert [int(e["id"]) for e in events(db, world, first, last, provider_ids=[other_id])] == [mine]
    assert [int(e["id"]) for e in events(db, world, first, last, statuses=["cancelled"])] == [
        cancelled
    ]
    assert len(events(db, world, first, last)) == 3


def test_window_is_validated_and_permission_checked(db, world):
    start = datetime(2026, 6, 1, tzinfo=UTC)
    with pytest.raises(ValidationError, match="at most two months"):
        events(db, world, start, start + timedelta(days=90))
    with pytest.raises(ValidationError, match="end after"):
        events(db, world, start, start)
    with pytest.raises(ValidationError, match="time zones"):
        events(db, world, start.replace(tzinfo=None), start + timedelta(days=1))
    with db.read() as session, pytest.raises(PermissionDenied):
        calendar.window_events(
            session,
            patient_actor("X"),
            clinic_id=world.clinic_id,
            start=start,
            end=start + timedelta(days=1),
        )


def test_week_across_the_spring_dst_change_keeps_wall_times(db, world):
    with db.write() as session:
        saturday = add(session, world, local(date(2026, 3, 28), 9))
        monday = add(session, world, local(date(2026, 3, 30), 9))
    first, last = calendar.visible_window("timeGridWeek", date(2026, 3, 29), TZ)
    assert (first, last) == (date(2026, 3, 23), date(2026, 3, 30))
    start, end = calendar.window_bounds(first, last, TZ)
    assert end - start == timedelta(hours=7 * 24 - 1)  # the week is an hour short
    assert [int(e["id"]) for e in events(db, world, start, end)] == [saturday]
    start, end = calendar.window_bounds(date(2026, 3, 28), date(2026, 3, 31), TZ)
    found = {int(e["id"]): e["start"] for e in events(db, world, start, end)}
    assert found == {saturday: "2026-03-28T09:00:00+00:00", monday: "2026-03-30T09:00:00+01:00"}


@pytest.mark.parametrize(
    ("value", "tz", "expected"),
    [
        # dateClick/select: the clicked wall time labelled Z
        ("2026-03-29T10:00:00.000Z", "Europe/London", datetime(2026, 3, 29, 9, 0)),
        ("2026-03-28T10:00:00.000Z", "Europe/London", datetime(2026, 3, 28, 10, 0)),
        # a time the spring change skips moves forward by the gap
        ("2026-03-29T01:30:00.000Z", "Europe/London", datetime(2026, 3, 29, 1, 30)),
        # the autumn change's repeated hour means its first occurrence
        ("2026-10-25T01:30:00.000Z", "Europe/London", datetime(2026, 10, 25, 0, 30)),
        # an event dragged across the change keeps its old offset: the wall time counts
        ("2026-03-30T09:00:00+00:00", "Europe/London", datetime(2026, 3, 30, 8, 0)),
        ("2026-11-02T09:00:00-04:00", "America/New_York", datetime(2026, 11, 2, 14, 0)),
        ("2026-10-30T09:00:00-04:00", "America/New_York", datetime(2026, 10, 30, 13, 0)),
        ("2026-03-08T12:00:00.000Z", "America/New_York", datetime(2026, 3, 8, 16, 0)),
        ("2026-03-07T12:00:00", "America/New_York", datetime(2026, 3, 7, 17, 0)),
    ],
)
def test_callback_times_are_read_as_clinic_wall_time(value, tz, expected):
    assert calendar.callback_time(value, tz) == expected.replace(tzinfo=UTC)


def test_callback_values_that_are_not_times_are_refused():
    with pytest.raises(ValidationError, match="not a date and time"):
        calendar.callback_time("soon", TZ)
    assert calendar.callback_day("2026-03-29") == date(2026, 3, 29)
    assert calendar.callback_day("2026-03-29T23:30:00-04:00") == date(2026, 3, 29)


def test_visible_windows_of_each_view():
    anchor = date(2026, 11, 25)  # a Wednesday
    assert calendar.visible_window("timeGridDay", anchor, TZ) == (anchor, date(2026, 11, 26))
    assert calendar.visible_window("resourceTimeGridWeek", anchor, TZ) == (
        date(2026, 11, 23),
        date(2026, 11, 30),
    )
    assert calendar.visible_window("dayGridMonth", anchor, TZ) == (
        date(2026, 10, 26),
        date(2026, 12, 7),
    )
    with pytest.raises(ValidationError):
        calendar.visible_window("yearView", anchor, TZ)


def test_resources_and_business_hours_come_from_the_schedules(db, world):
    with db.write() as session:
        other = Provider(name="Dr Away", colour="#123456")
        nowhere = Provider(name="Dr Elsewhere")
        second = Clinic(name="Second", timezone="America/New_York")
        session.add_all([other, nowhere, second])
        session.flush()
        other.working_hours.extend(
            [
                WorkingHours(clinic_id=world.clinic_id, weekday=0, starts=time(8), ends=time(12)),
                WorkingHours(clinic_id=world.clinic_id, weekday=6, starts=time(8), ends=time(12)),
            ]
        )
        nowhere.working_hours.append(
            WorkingHours(clinic_id=second.id, weekday=0, starts=time(8), ends=time(12))
        )
        other_id = other.id
    with db.read() as session:
        resources = calendar.list_resources(session, world.clinic_id)
        hours = calendar.business_hours(session, world.clinic_id, [other_id])
        everyone = calendar.business_hours(session, world.clinic_id)
    assert [r["title"] for r in resources] == ["Dr Away", "Dr Test"]
    assert resources[0]["businessHours"] == [
        {"daysOfWeek": [0, 1], "startTime": "08:00", "endTime": "12:00"}
    ]
    assert resources[0]["eventColor"] == "#123456"
    assert hours == resources[0]["businessHours"]
    assert {
        "daysOfWeek": [0, 1, 2, 3, 4, 5, 6],
        "startTime": "09:00",
        "endTime": "17:00",
    } in everyone


def test_week_query_uses_the_clinic_start_index(db, world):
    start = datetime(2026, 6, 1, tzinfo=UTC)
    with db.write() as session:
        for i in range(50):
            add(session, world, start + timedelta(hours=i * 5))
    with db.read() as session:
        dialect = session.bind.dialect.name
        if dialect == "postgresql":
            session.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(
                r[0]
                for r in session.execute(
                    text(
                        "EXPLAIN SELECT id FROM appointments WHERE clinic_id = :c AND "
                        "start_at > :a AND start_at < :b"
                    ),
                    {"c": world.clinic_id, "a": start, "b": start + timedelta(days=7)},
                )
            )
        else:
            plan = "\n".join(
                str(r[-1])
                for r in session.execute(
                    text(
                        "EXPLAIN QUERY PLAN SELECT id FROM appointments WHERE clinic_id = :c "
                        "AND start_at > :a AND start_at < :b"
                    ),
                    {"c": world.clinic_id, "a": start.isoformat(), "b": "2026-06-08"},
                )
            )
    assert "ix_appointments_clinic_id_start_at" in plan


@settings(max_examples=100, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)),
    tz=st.sampled_from(["Europe/London", "America/New_York", "Australia/Sydney", "UTC"]),
)
@example(moment=datetime(2027, 11, 7, 6, 0), tz="America/New_York")
def test_an_event_time_sent_back_unchanged_is_the_same_instant(moment, tz):
    """local_iso → the component → callback_time is the identity: inside the repeated hour of
    an autumn change the event's offset says which occurrence it is. A clicked wall time
    ("…Z") carries no offset: there it is the first occurrence, and the same instant anywhere
    else. (Before, the test held a clicked time in the second occurrence to the event's
    answer, and failed whenever its random examples drew one: 01:00 EST on 7 November 2027.)"""
    instant = moment.replace(second=0, microsecond=0, tzinfo=UTC)
    assert calendar.callback_time(calendar.local_iso(instant, tz), tz) == instant
    local = instant.astimezone(ZoneInfo(tz))
    wall = local.replace(tzinfo=None).isoformat() + ".000Z"
    first = local.replace(fold=0).astimezone(UTC)  # the earlier of the wall time's occurrences
    assert calendar.callback_time(wall, tz) == first
    assert first == instant or (local.fold == 1 and instant - first == timedelta(hours=1))


def _proposed(db, world, day, hour=10, patient_id=None) -> int:
    """Alex's (or this patient's) visit with Dr Test at `hour`; they ask to move it and are
    proposed 15:00, so the original time stays held until they answer."""
    with db.write() as session:
        booking = moves.NewBooking(
            clinic_id=world.clinic_id,
            provider_id=world.provider_id,
            start_at=local(day, hour),
            patient_id=patient_id or world.patient_id,
            service_ids=[world.service_id],
        )
        visit = moves.schedule_appointment(session, world.manager, booking).id
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("A"), visit, kind="reschedule", requested_day=day
        ).id
    with db.write() as session:
        changes.propose_for_change(session, world.manager, change_id, start_at=local(day, 15))
    return visit


def test_the_original_time_held_for_a_proposal_is_drawn_until_it_is_answered(db, world):
    """Alex's 10:00 visit was proposed 15:00: booking Dr Test at 10:00 is refused while they
    answer, so the calendar draws 10:00 as held in Dr Test's column (a click opens the visit,
    nothing moves it) beside the proposal at 15:00, and in the room its service needs. Before,
    10:00 was drawn as free. Once Alex turns the proposal down, the visit is back at 10:00."""
    day = to_local(utcnow(), TZ).date() + timedelta(days=3)
    with db.write() as session:
        room = Resource(clinic_id=world.clinic_id, name="Room 1", kind="room", quantity=1)
        session.add(room)
        session.flush()
        session.add(ServiceResource(service_id=world.service_id, resource_id=room.id))
        other = Provider(name="Dr Other")
        session.add(other)
        session.flush()
        room_id, other_id = room.id, other.id
    visit = _proposed(db, world, day)
    first, last = calendar.window_bounds(day, day + timedelta(days=1), TZ)
    found = events(db, world, first, last)
    proposal, held = found
    assert (proposal["id"], proposal["start"][11:16]) == (str(visit), "15:00")
    assert held == {
        "id": f"held-{visit}",
        "title": f"Held: Alex Morgan (#{visit}) — answering a proposed time",
        "start": calendar.local_iso(local(day, 10), TZ),
        "end": calendar.local_iso(local(day, 10, 30), TZ),
        "color": calendar.HELD_COLOUR,
        "resourceId": str(world.provider_id),
        "editable": False,
        "classNames": [calendar.HELD_CLASS],
    }
    assert calendar.appointment_of(held["id"]) == visit
    # with the proposals it belongs to; not in another provider's column
    assert [e["id"] for e in events(db, world, first, last, statuses=["tentative"])] == [
        str(visit),
        f"held-{visit}",
    ]
    assert events(db, world, first, last, statuses=["scheduled"]) == []
    assert events(db, world, first, last, provider_ids=[other_id]) == []
    with db.read() as session:
        rooms = calendar.room_events(
            session, world.staff, clinic_id=world.clinic_id, start=first, end=last
        )
    assert [(e["id"], e["resourceIds"]) for e in rooms] == [
        (str(visit), [f"room-{room_id}"]),
        (f"held-{visit}", [f"room-{room_id}"]),
    ]
    assert rooms[1]["title"].startswith("Held: Alex Morgan") and rooms[1]["title"].endswith(
        " · Dr Test"
    )
    with db.write() as session:
        decisions.respond_to_proposal(session, patient_actor("A"), visit, accept=False)
    [back] = events(db, world, first, last)
    assert (back["id"], back["start"], back["color"]) == (
        str(visit),
        calendar.local_iso(local(day, 10), TZ),
        calendar.STATUS_COLOURS["scheduled"],
    )


def test_held_times_are_read_in_one_query_for_the_window(db, world):
    """Three patients' proposals waiting in a week cost the calendar as many queries as one:
    the held times and the patients' names come in one query, not one per event."""
    day = to_local(utcnow(), TZ).date() + timedelta(days=3)

    def queries() -> tuple[int, int]:
        seen: list[str] = []

        def count(conn, cursor, statement, *args):
            seen.append(statement)

        first, last = calendar.window_bounds(day, day + timedelta(days=7), TZ)
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            drawn = events(db, world, first, last)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(seen), sum(e["id"].startswith("held-") for e in drawn)

    _proposed(db, world, day, 9)
    one, held = queries()
    assert held == 1
    with db.write() as session:
        sam, kim = (
            make_patient(session, first_name=name, last_name="Lee", email=f"{name}@example.org").id
            for name in ("Sam", "Kim")
        )
    _proposed(db, world, day + timedelta(days=1), 10, sam)
    _proposed(db, world, day + timedelta(days=2), 11, kim)
    assert queries() == (one, 3)


def test_the_board_and_the_calendar_say_whose_clock_and_day_they_show():
    """A London desk on Lakeside's Today board at 01:00 London time read Friday's New York
    visits with no day and no zone ('9:00 – 9:30 AM'); the calendar's grid neither. They now
    say the clinic's day and zone."""
    friday_evening = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)  # Sat 01:00 in London
    assert (
        today.board_day("Lakeside", "America/New_York", "en-US", friday_evening)
        == "Fri, Dec 4, 2026 at Lakeside · times are New York time (EST)"
    )
    assert today.board_day("Harbour", "Europe/London", "en-GB", friday_evening) == (
        "Sat, 5 Dec 2026 at Harbour · times are London time (GMT)"
    )
    spring = datetime(2027, 3, 27, 12, tzinfo=UTC), datetime(2027, 3, 29, 12, tzinfo=UTC)
    assert zone_words("Europe/London", *spring) == "London time (GMT/BST)"
