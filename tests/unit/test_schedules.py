"""Provider schedules: weekly hours per clinic, time off, validations, audit, and the override
that booking outside them needs. Re-run on PostgreSQL by tests/integration/test_calendar_pg.py."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import delete, select

from core.kernel.clock import local_to_utc, to_local
from core.kernel.errors import Conflict, NotFound, PermissionDenied, ValidationError
from core.scheduling import availability, booking, schedules
from db.models import Appointment, AuditEvent, Clinic, SlotOpening, TimeOff, WorkingHours
from db.types import utcnow

H = schedules.HoursRow
TZ = "Europe/London"


def next_weekday(weekday: int) -> date:
    today = to_local(utcnow(), TZ).date() + timedelta(days=2)
    return today + timedelta(days=(weekday - today.weekday()) % 7)


def test_set_weekly_hours_replaces_them_and_is_audited(db, world):
    with db.write() as session:
        saved = schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=world.clinic_id,
            hours=[H(2, time(13), time(18)), H(0, time(9), time(12)), H(0, time(13), time(17))],
        )
    assert [h.label() for h in saved] == [
        "Monday 09:00–12:00",
        "Monday 13:00–17:00",
        "Wednesday 13:00–18:00",
    ]
    assert [h.label("de-DE") for h in saved][-1] == "Mittwoch 13:00–18:00 Uhr"
    us = saved[-1].label("en-US")  # a 12-hour clock in en-US
    assert us.startswith("Wednesday 1:00") and us.endswith("PM")
    with db.read() as session:
        assert (
            schedules.get_hours(session, world.staff, world.provider_id, world.clinic_id) == saved
        )
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "working_hours_set"))
        assert event.actor_label == "Manager" and len(event.details["before"]) == 7
        assert event.details["after"] == [  # machine-readable: ISO weekdays, 24-hour times
            {"weekday": 1, "starts": "09:00", "ends": "12:00"},
            {"weekday": 1, "starts": "13:00", "ends": "17:00"},
            {"weekday": 3, "starts": "13:00", "ends": "18:00"},
        ]
        monday = next_weekday(0)
        start = local_to_utc(monday, time(12, 15), TZ)
        assert not availability.working_hours_cover(
            session, world.provider_id, world.clinic_id, start, start + timedelta(minutes=30)
        )
        start = local_to_utc(monday, time(13), TZ)
        assert availability.working_hours_cover(
            session, world.provider_id, world.clinic_id, start, start + timedelta(minutes=30)
        )


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ([H(1, time(17), time(9))], "Tuesday: the hours must end after they start"),
        ([H(1, time(9), time(9))], "must end after they start"),
        ([H(4, time(9), time(13)), H(4, time(12), time(15))], "Friday: 09:00–13:00 and 12:00"),
        ([H(7, time(9), time(13))], "from 0 \\(Monday\\) to 6"),
        ([H(2, None, time(13))], "Wednesday: give the time work starts and ends"),
    ],
)
def test_weekly_hours_are_validated(db, world, hours, message):
    with db.write() as session, pytest.raises(ValidationError, match=message):
        schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=world.clinic_id,
            hours=hours,
        )


def test_weekday_names_in_messages_follow_the_clinics_locale(db, world):
    with db.write() as session:
        session.get(Clinic, world.clinic_id).locale = "fr-FR"
    with db.write() as session, pytest.raises(ValidationError, match="^mardi : |^mardi: "):
        schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=world.clinic_id,
            hours=[H(1, time(17), time(9))],
        )
    with db.write() as session:
        other = Clinic(name="Berlin", timezone="Europe/Berlin", locale="de-DE")
        session.add(other)
        session.flush()
        other_id = other.id
    with (
        db.write() as session,
        pytest.raises(ValidationError, match="at Test Clinic on Donnerstag"),
    ):
        schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=other_id,
            hours=[H(3, time(16), time(19))],
        )


def test_a_provider_cannot_work_at_two_clinics_at_once(db, world):
    with db.write() as session:
        other = Clinic(name="Uptown", timezone=TZ)
        session.add(other)
        session.flush()
        other_id = other.id
    with db.write() as session, pytest.raises(ValidationError, match="already works at Test"):
        schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=other_id,
            hours=[H(3, time(16), time(19))],
        )
    with db.write() as session:
        schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=other_id,
            hours=[H(3, time(17), time(19))],
        )


def test_hours_at_two_clinics_are_compared_in_real_time_across_zones(db, world):
    """A provider's hours at a London and a New York clinic overlap when they cover the same
    moments, not the same wall times. Before, the check compared the clock readings: New York's
    09:00–12:00 (London's 14:00–17:00) was taken beside London's 14:00–17:00, and refused beside
    London's 09:00–12:00, five hours earlier."""
    with db.write() as session:
        session.get(Clinic, world.clinic_id).timezone = TZ
        other = Clinic(name="Lakeside", timezone="America/New_York", locale="en-US")
        session.add(other)
        session.flush()
        other_id = other.id
        schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=world.clinic_id,
            hours=[H(0, time(9), time(12)), H(2, time(14), time(17))],
        )
    with db.write() as session:  # Monday 09:00 New York is 14:00 London: after the morning
        schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=other_id,
            hours=[H(0, time(9), time(12)), H(0, time(19), time(22))],
        )
    with db.write() as session, pytest.raises(ValidationError) as refused:
        schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=other_id,
            hours=[H(0, time(9), time(12)), H(2, time(9), time(12)), H(0, time(19), time(22))],
        )
    message = str(refused.value)
    assert message.startswith("Dr Test already works at Test Clinic on Wednesday 2:00")
    assert "(Europe/London)" in message and "Wed," in message and "change those hours" in message
    with db.write() as session, pytest.raises(ValidationError, match="at Lakeside on Monday"):
        # an evening in New York is the next morning in London
        schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=world.clinic_id,
            hours=[H(1, time(1), time(4))],
        )
    with db.read() as session:
        assert [
            h.weekday
            for h in schedules.get_hours(session, world.staff, world.provider_id, other_id)
        ] == [0, 0]


def test_hours_that_meet_only_while_one_zone_has_changed_its_clocks_are_refused(db, world):
    """New York changes its clocks weeks before London in spring: London's Monday 13:00–14:00
    and New York's 09:00–10:00 (London's 14:00 most of the year) cover the same hour in those
    weeks, so the second is refused, naming a day it happens."""
    with db.write() as session:
        session.get(Clinic, world.clinic_id).timezone = TZ
        other = Clinic(name="Lakeside", timezone="America/New_York", locale="en-US")
        session.add(other)
        session.flush()
        schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=world.clinic_id,
            hours=[H(0, time(13), time(14))],
        )
        with pytest.raises(ValidationError, match="already works at Test Clinic on Monday"):
            schedules.set_weekly_hours(
                session,
                world.manager,
                provider_id=world.provider_id,
                clinic_id=other.id,
                hours=[H(0, time(9), time(10))],
            )


def test_staff_may_not_change_schedules(db, world):
    with db.write() as session, pytest.raises(PermissionDenied, match="set provider hours"):
        schedules.set_weekly_hours(
            session, world.staff, provider_id=world.provider_id, clinic_id=world.clinic_id, hours=[]
        )
    with db.write() as session, pytest.raises(NotFound):
        schedules.set_weekly_hours(
            session, world.owner, provider_id=999, clinic_id=world.clinic_id, hours=[]
        )


def test_time_off_already_over_is_refused_unless_a_file_restores_it(db, world):
    """Time off that has ended changes nothing and is listed nowhere: before, "Time off added."
    was said and nothing seen. A practice file restoring a site's record may keep it."""
    start = utcnow() - timedelta(days=3)
    with db.write() as session, pytest.raises(ValidationError, match="is over already"):
        schedules.add_time_off(
            session,
            world.manager,
            provider_id=world.provider_id,
            starts_at=start,
            ends_at=start + timedelta(days=1),
        )
    with db.write() as session:
        kept = schedules.add_time_off(
            session,
            world.manager,
            provider_id=world.provider_id,
            starts_at=start,
            ends_at=start + timedelta(days=1),
            past=True,
        )
        assert kept.id


def test_time_off_blocks_working_hours_and_can_be_removed(db, world):
    day = next_weekday(1)
    start, end = local_to_utc(day, time(0), TZ), local_to_utc(day + timedelta(days=1), time(0), TZ)
    with db.write() as session:
        row = schedules.add_time_off(
            session,
            world.manager,
            provider_id=world.provider_id,
            starts_at=start,
            ends_at=end,
            reason="Conference",
        )
        off_id = row.id
    with db.read() as session:
        ten = local_to_utc(day, time(10), TZ)
        assert not availability.working_hours_cover(
            session, world.provider_id, world.clinic_id, ten, ten + timedelta(minutes=30)
        )
        listed = schedules.list_time_off(session, world.staff, since=utcnow())
        assert [(t.id, t.reason, t.provider_name) for t in listed] == [
            (off_id, "Conference", "Dr Test")
        ]
    with db.write() as session, pytest.raises(ValidationError, match="already has time off"):
        schedules.add_time_off(
            session,
            world.manager,
            provider_id=world.provider_id,
            starts_at=start + timedelta(hours=5),
            ends_at=end + timedelta(hours=5),
        )
    with db.write() as session:
        schedules.remove_time_off(session, world.manager, off_id)
    with db.read() as session:
        assert schedules.list_time_off(session, world.staff, since=utcnow()) == []
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        assert actions[-2:] == ["time_off_added", "time_off_removed"]
    with db.write() as session, pytest.raises(NotFound, match="removed already"):
        schedules.remove_time_off(session, world.manager, off_id)


@pytest.mark.parametrize(
    ("starts", "ends", "message"),
    [
        (datetime(2026, 5, 2, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC), "end after"),
        (datetime(2026, 5, 1), datetime(2026, 5, 2), "time zone"),
        (datetime(2026, 5, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC), "at most a year"),
    ],
)
def test_time_off_is_validated(db, world, starts, ends, message):
    with db.write() as session, pytest.raises(ValidationError, match=message):
        schedules.add_time_off(
            session, world.manager, provider_id=world.provider_id, starts_at=starts, ends_at=ends
        )


def test_booking_outside_hours_needs_an_override_that_is_recorded(db, world):
    day = next_weekday(2)
    with db.write() as session:
        schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=world.clinic_id,
            hours=[H(2, time(9), time(12))],
        )
    evening = local_to_utc(day, time(18), TZ)
    kwargs = dict(
        clinic_id=world.clinic_id,
        provider_id=world.provider_id,
        start_at=evening,
        service_ids=[world.service_id],
        patient_id=world.patient_id,
    )
    with db.write() as session, pytest.raises(ValidationError, match="not working"):
        booking.book(session, world.staff, booking.InOffice(**kwargs))
    with db.write() as session:
        booked = booking.book(
            session, world.staff, booking.InOffice(outside_hours_override=True, **kwargs)
        )
    assert "override recorded" in " ".join(booked.notes)
    with db.read() as session:
        row = session.get(Appointment, booked.appointment_id)
        assert row.outside_hours_override
        event = session.scalar(
            select(AuditEvent).where(
                AuditEvent.entity_id == row.id, AuditEvent.entity == "appointment"
            )
        )
        assert event.details["outside_hours_override"] is True
        assert (
            schedules.bookings_during(
                session, world.staff, world.provider_id, evening, evening + timedelta(hours=1)
            )
            == 1
        )


def test_the_first_working_day_skips_the_days_nobody_works(db, world):
    with db.write() as session:
        schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=world.clinic_id,
            hours=[H(0, time(9), time(17)), H(3, time(9), time(17))],  # Mondays and Thursdays
        )
        session.execute(delete(WorkingHours).where(WorkingHours.provider_id != world.provider_id))
    saturday = next_weekday(5)
    with db.read() as session:
        first = schedules.first_working_day(session, world.staff, world.clinic_id, saturday)
        assert (first - saturday, first.weekday()) == (timedelta(days=2), 0)
        tuesday = saturday + timedelta(days=3)
        first = schedules.first_working_day(session, world.staff, world.clinic_id, tuesday)
        assert first == tuesday + timedelta(days=2)  # Thursday
    with db.write() as session:
        session.execute(delete(WorkingHours))
    with db.read() as session:  # nobody has hours yet: the day asked for
        assert schedules.first_working_day(session, world.staff, world.clinic_id, saturday) == (
            saturday
        )


def test_bookings_left_outside_changed_hours_are_counted_and_named(db, world):
    monday = next_weekday(0)

    def hours(rows):
        with db.write() as session:
            schedules.set_weekly_hours(
                session,
                world.manager,
                provider_id=world.provider_id,
                clinic_id=world.clinic_id,
                hours=rows,
            )

    def left():
        with db.read() as session:
            return schedules.bookings_outside_hours(
                session, world.manager, world.provider_id, world.clinic_id
            )

    hours([H(0, time(9), time(17)), H(2, time(9), time(17))])
    ids = []
    for hour in (9, 10, 11, 12):
        with db.write() as session:
            ids.append(
                booking.book(
                    session,
                    world.staff,
                    booking.InOffice(
                        clinic_id=world.clinic_id,
                        provider_id=world.provider_id,
                        start_at=local_to_utc(monday, time(hour), TZ),
                        service_ids=[world.service_id],
                        patient_id=world.patient_id,
                    ),
                ).appointment_id
            )
    assert left() == (0, [])
    hours([H(0, time(9), time(11)), H(2, time(9), time(17))])  # Monday afternoon off
    count, first = left()
    assert count == 2 and [f.split(" ")[0] for f in first] == [f"#{ids[2]}", f"#{ids[3]}"]
    assert first[0].endswith("11:00–11:30 Alex Morgan")  # whom to call
    # two rows that touch are one working period, as booking reads them: 11:00–11:30 is covered
    hours([H(0, time(9), time(11, 15)), H(0, time(11, 15), time(17)), H(2, time(9), time(17))])
    assert left() == (0, [])
    hours([H(2, time(9), time(17))])  # Monday unticked
    count, first = left()
    assert count == 4 and [f.split(" ")[0] for f in first] == [f"#{i}" for i in ids]


def test_time_off_names_the_bookings_inside_it(db, world):
    """The provider leaves at 10:30: the visits from then on are named for the desk to call
    (number, time in the clinic's zone, patient); the one ending at 10:30 is not."""
    monday = next_weekday(0)
    ids = []
    for hour in (9, 10, 11, 12):
        with db.write() as session:
            ids.append(
                booking.book(
                    session,
                    world.staff,
                    booking.InOffice(
                        clinic_id=world.clinic_id,
                        provider_id=world.provider_id,
                        start_at=local_to_utc(monday, time(hour), TZ),
                        service_ids=[world.service_id],
                        patient_id=world.patient_id,
                    ),
                ).appointment_id
            )
    starts, ends = schedules.time_off_span(monday, time(10, 30), monday, None, TZ)
    with db.write() as session:
        schedules.add_time_off(
            session, world.manager, provider_id=world.provider_id, starts_at=starts, ends_at=ends
        )
    with db.read() as session:
        count, named = schedules.bookings_in_time_off(
            session, world.staff, world.provider_id, starts, ends
        )
        shown = schedules.bookings_in_time_off(
            session, world.staff, world.provider_id, starts, ends, shown=1
        )
    assert count == 2 and [n.split(" ")[0] for n in named] == [f"#{ids[2]}", f"#{ids[3]}"]
    assert "11:00–11:30 Alex Morgan" in named[0] and "12:00–12:30 Alex Morgan" in named[1]
    assert shown == (2, named[:1])


def _at_once(db, *works):
    """Run each `work(session)` in its own thread and write transaction, all started together."""
    barrier, outcomes = threading.Barrier(len(works)), []

    def one(work):
        barrier.wait()
        try:
            with db.write() as session:
                outcomes.append(work(session))
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcomes.append(exc)

    threads = [threading.Thread(target=one, args=(w,)) for w in works]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_two_managers_adding_overlapping_time_off_at_once_add_one(db, world):
    """The second waits for the first and is told of the overlap. Before, on PostgreSQL each
    looked for an overlap before the other had written: both were added, over each other."""
    day = datetime.combine(next_weekday(1), time(9), tzinfo=UTC)

    def away(hours):
        return lambda s: (
            schedules.add_time_off(
                s,
                world.manager,
                provider_id=world.provider_id,
                starts_at=day,
                ends_at=day + timedelta(hours=hours),
                reason=f"{hours} h",
            ).id
        )

    outcomes = _at_once(db, away(3), away(5))
    refused = [o for o in outcomes if isinstance(o, ValidationError)]
    assert len(refused) == 1 and "overlaps" in str(refused[0]), outcomes
    with db.read() as session:
        assert len(session.scalars(select(TimeOff)).all()) == 1


def test_two_managers_saving_a_providers_hours_at_once_leave_one_week(db, world):
    """Saving replaces the week: two saves at once leave one of the two weeks, not both. Before,
    on PostgreSQL each deleted the rows it saw and added its own, so the provider was left with
    both weeks' hours, overlapping, which the form cannot show or save again."""

    def week(starts, ends):
        return lambda s: schedules.set_weekly_hours(
            s,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=world.clinic_id,
            hours=[H(d, starts, ends) for d in range(5)],
        )

    outcomes = _at_once(db, week(time(8), time(12)), week(time(10), time(16)))
    assert all(isinstance(o, list) for o in outcomes), outcomes
    with db.read() as session:
        kept = schedules.get_hours(session, world.staff, world.provider_id, world.clinic_id)
    assert kept in (outcomes[0], outcomes[1]), kept


def test_a_week_opened_before_hours_changed_elsewhere_does_not_put_them_back(db, world):
    """The manager opened the week (Mon-Fri 09:00-17:00); the owner then gave Monday a lunch
    break at another desk; the manager's save of a Saturday, made on the week as opened, would
    put Monday back without it. It is refused, naming who changed the hours and when, and the
    owner's Monday stays. Before, the manager's week silently replaced the owner's."""
    W = schedules.WorkDay
    opened = [W(d, time(9), time(17)) for d in range(5)]
    with db.write() as session:
        seen = schedules.set_week(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=world.clinic_id,
            days=opened,
        )
        lunch = [W(0, time(9), time(17), time(13), time(14)), *opened[1:]]
        schedules.set_week(
            session,
            world.owner,
            provider_id=world.provider_id,
            clinic_id=world.clinic_id,
            days=lunch,
            seen=seen,
        )
    with db.write() as session, pytest.raises(Conflict, match="changed by Owner at") as refused:
        schedules.set_week(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=world.clinic_id,
            days=[*opened, W(5, time(9), time(12))],
            seen=seen,
        )
    assert "nothing was saved. Reload the page" in str(refused.value)
    with db.read() as session:
        kept = schedules.get_hours(session, world.staff, world.provider_id, world.clinic_id)
    assert [(h.weekday, h.starts, h.ends) for h in kept][:2] == [
        (0, time(9), time(13)),
        (0, time(14), time(17)),
    ] and all(h.weekday < 5 for h in kept)


def test_two_managers_removing_one_time_off_at_once_remove_it_once(db, world):
    """The second is told it was removed already; one removal is audited and its freed time is
    offered once. Before, on PostgreSQL both read the row and both deleted it: the second got a
    database error (nothing matched its DELETE)."""
    day = datetime.combine(next_weekday(1), time(9), tzinfo=UTC)
    with db.write() as session:
        schedules.set_weekly_hours(
            session,
            world.manager,
            provider_id=world.provider_id,
            clinic_id=world.clinic_id,
            hours=[H(1, time(8), time(18))],
        )
        time_off_id = schedules.add_time_off(
            session,
            world.manager,
            provider_id=world.provider_id,
            starts_at=day,
            ends_at=day + timedelta(hours=3),
        ).id
    outcomes = _at_once(
        db,
        lambda s: schedules.remove_time_off(s, world.manager, time_off_id),
        lambda s: schedules.remove_time_off(s, world.manager, time_off_id),
    )
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], NotFound), outcomes
    assert "removed already" in str(refused[0])
    with db.read() as session:
        removed = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "time_off_removed")
        ).all()
        freed = session.scalars(select(SlotOpening).where(SlotOpening.reason == "time_off")).all()
    assert len(removed) == 1 and len(freed) == 1
