"""The days clocks change, in the zones practices use: working hours and slot suggestions keep
their wall times (a bound the spring change skips is the change itself), time off typed as
days and times, quiet hours that end when the clinic's clock says so, and analytics by the
clinic's day and hour. Re-run on PostgreSQL by tests/integration/test_dst_pg.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from core.kernel.clock import (
    clock_change,
    in_quiet,
    local_edge_to_utc,
    local_to_utc,
    quiet_ends,
    to_local,
)
from core.messaging import reminders
from core.messaging.preferences import MessagePreferences
from core.scheduling import schedules
from core.scheduling.availability import suggest_slots, working_hours_cover
from db.models import Clinic, WorkingHours
from tests.factories import make_visit

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)  # suggestions from any day, past ones included
# (zone, a day clocks go forward, a day they go back)
CHANGES = [
    ("Europe/London", date(2026, 3, 29), date(2026, 10, 25)),  # 01:00→02:00, 02:00→01:00
    ("America/New_York", date(2026, 3, 8), date(2026, 11, 1)),  # 02:00→03:00, 02:00→01:00
    ("Australia/Sydney", date(2026, 10, 4), date(2026, 4, 5)),  # 02:00→03:00, 03:00→02:00
    ("America/Sao_Paulo", date(2018, 11, 4), date(2019, 2, 16)),  # midnight skipped; 23:00 twice
    ("Australia/Lord_Howe", date(2026, 10, 4), date(2026, 4, 5)),  # half an hour each way
]
DAYS = [(tz, day) for tz, spring, autumn in CHANGES for day in (spring, autumn)]


def wall(moment: datetime, tz: str) -> tuple[date, time]:
    local = to_local(moment, tz)
    return local.date(), local.time()


def clock(minutes: int) -> time:
    return time(minutes // 60, minutes % 60)


def set_hours(db, world, tz: str, day: date, starts: time, ends: time) -> None:
    with db.write() as session:
        session.get(Clinic, world.clinic_id).timezone = tz
        session.execute(delete(WorkingHours).where(WorkingHours.provider_id == world.provider_id))
        session.add(
            WorkingHours(
                provider_id=world.provider_id,
                clinic_id=world.clinic_id,
                weekday=day.weekday(),
                starts=starts,
                ends=ends,
            )
        )


def slots_on(db, world, day: date, minutes: int) -> list:
    with db.read() as session:
        return suggest_slots(
            session,
            clinic_id=world.clinic_id,
            duration_minutes=minutes,
            day=day,
            search_days=1,
            limit=1000,
            now=LONG_AGO,
        )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    place=st.sampled_from(DAYS),
    first=st.one_of(st.integers(0, 16), st.integers(0, 94)),  # quarter hours, nights favoured
    length=st.integers(1, 24),
    minutes=st.sampled_from([15, 30, 45, 60]),
)
@example(place=("America/New_York", date(2026, 3, 8)), first=0, length=10, minutes=30)
@example(place=("Europe/London", date(2026, 3, 29)), first=6, length=10, minutes=30)
def test_every_suggested_slot_lies_inside_the_hours_by_the_clinics_clock(
    db, world, place, first, length, minutes
):
    """On a day clocks change every moment of every suggested slot shows a wall time inside the
    working hours, on that day (a shift is not broken by the autumn night's repeated hour: one
    from 01:15 goes on through the second 01:00–01:15); and none is lost: the minute before the
    first slot and the one after the last (on a 15-minute grid, the hours' end) are outside
    the hours."""
    tz, day = place
    starts, ends = clock(first * 15), clock(min(first + length, 95) * 15)
    set_hours(db, world, tz, day, starts, ends)
    slots = slots_on(db, world, day, minutes)

    def inside(moment: datetime) -> bool:
        local = to_local(moment, tz)
        # the second time the clock shows this, in a shift that had begun
        again = local.fold == 1 and moment > local_to_utc(day, starts, tz)
        return local.date() == day and (starts <= local.time() or again) and local.time() < ends

    for slot in slots:
        assert slot.end_at - slot.start_at == timedelta(minutes=minutes)
        moment = slot.start_at
        while moment < slot.end_at:
            assert inside(moment), (tz, starts, ends, to_local(slot.start_at, tz))
            moment += timedelta(minutes=5)
    if slots:
        assert not inside(slots[0].start_at - timedelta(minutes=1))
        assert not inside(slots[-1].end_at)


def test_hours_from_or_to_a_time_the_spring_change_skips_begin_or_end_with_the_change(db, world):
    # London, 29 March 2026: 01:00 GMT is followed by 02:00 BST; 01:30 never shows
    spring = date(2026, 3, 29)
    set_hours(db, world, "Europe/London", spring, time(1, 30), time(4))
    starts = [to_local(s.start_at, "Europe/London") for s in slots_on(db, world, spring, 30)]
    # before: the first slot at 02:30 BST, an hour after the provider started
    assert [f"{s:%H:%M}" for s in starts][:3] == ["02:00", "02:15", "02:30"]
    assert f"{starts[-1]:%H:%M}" == "03:30" and len(starts) == 7
    # New York, 8 March 2026: 02:00 EST is followed by 03:00 EDT; hours to 02:30 end then
    ny = "America/New_York"
    set_hours(db, world, ny, date(2026, 3, 8), time(0), time(2, 30))
    slots = slots_on(db, world, date(2026, 3, 8), 60)
    # before: slots to 03:30 EDT, an hour past the end of the hours
    assert f"{to_local(slots[-1].end_at, ny):%H:%M%z}" == "03:00-0400"
    assert len(slots) == 5  # 00:00 … 01:00 EST: two real hours, on a 15-minute grid
    with db.read() as session:  # a booking is checked against the same hours
        late = local_to_utc(date(2026, 3, 8), time(3, 15), ny)  # 03:15 EDT, after 02:30
        assert not working_hours_cover(
            session, world.provider_id, world.clinic_id, late, late + timedelta(minutes=15)
        )


def test_the_hours_keep_their_wall_times_and_the_repeated_hour_is_worked_twice(db, world):
    """09:00–17:00 is 8 real hours on both change days; 00:00–06:00 is 5 in spring and 7 in
    autumn, when 01:30 comes twice and is offered twice."""
    tz = "Europe/London"
    for day, night in ((date(2026, 3, 29), 5), (date(2026, 10, 25), 7)):
        set_hours(db, world, tz, day, time(9), time(17))
        slots = slots_on(db, world, day, 60)
        assert (slots[0].start_at, slots[-1].end_at) == (
            local_to_utc(day, time(9), tz),
            local_to_utc(day, time(17), tz),
        )
        assert slots[-1].end_at - slots[0].start_at == timedelta(hours=8)
        set_hours(db, world, tz, day, time(0), time(6))
        slots = slots_on(db, world, day, 30)
        assert slots[-1].end_at - slots[0].start_at == timedelta(hours=night)
    at_half_past_one = [s for s in slots if f"{to_local(s.start_at, tz):%H:%M}" == "01:30"]
    assert [f"{to_local(s.start_at, tz):%Z}" for s in at_half_past_one] == ["BST", "GMT"]


def test_time_off_typed_as_days_and_times_keeps_the_clinics_clock():
    tz = "Europe/London"
    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)
    for day, hours in ((spring, 23), (autumn, 25)):  # a whole day off is the day, however long
        first, last = schedules.time_off_span(day, None, day, None, tz)
        assert last - first == timedelta(hours=hours)
        assert wall(first, tz) == (day, time(0))
        assert wall(last, tz) == (day + timedelta(days=1), time(0))
    # off until 01:30, a time the spring change skips: back when the clocks jump (02:00 BST),
    # not an hour later (before: 02:30 BST)
    first, last = schedules.time_off_span(spring, None, spring, time(1, 30), tz)
    assert f"{to_local(last, tz):%H:%M %Z}" == "02:00 BST"
    assert last - first == timedelta(hours=1)
    # São Paulo skipped midnight on 4 November 2018: that day off starts at 01:00
    first, _ = schedules.time_off_span(
        date(2018, 11, 4), None, date(2018, 11, 4), None, "America/Sao_Paulo"
    )
    assert f"{to_local(first, 'America/Sao_Paulo'):%d %H:%M}" == "04 01:00"


@settings(max_examples=200, deadline=None)
@given(
    place=st.sampled_from(DAYS),
    begin=st.integers(0, 95),
    end=st.one_of(st.integers(0, 16), st.integers(0, 95)),
    after=st.integers(-24 * 4, 48 * 4),
)
@example(place=("America/New_York", date(2026, 3, 8)), begin=88, end=10, after=12)
@example(place=("America/New_York", date(2026, 3, 8)), begin=9, end=8, after=0)
@example(place=("America/New_York", date(2026, 3, 8)), begin=9, end=8, after=-1)
def test_quiet_hours_end_when_the_clinics_clock_leaves_them(place, begin, end, after):
    """quiet_ends gives the moment the quiet hours end by the clinic's clock: then it is not
    quiet, a minute before it was, and from `moment` on nothing but the repeated hour of an
    autumn night (its clock going back before the start) leaves them. Before: quiet hours
    ending at a time the spring change skips (02:30 in New York) ran to 03:30 EDT, half an hour
    after the clock left them at 03:00; and quiet from 02:15 to 02:00, whose quarter hour out
    of them that night skips, were said to end at 03:00 EDT, when they had begun again."""
    tz, day = place
    start, stop = clock(begin * 15), clock(end * 15)
    moment = local_to_utc(day, time(0), tz) + timedelta(minutes=15 * after)

    def quiet(at: datetime) -> bool:
        return in_quiet(to_local(at, tz).time(), start, stop)

    until = quiet_ends(moment, start, stop, tz)
    if until is None:
        assert not quiet(moment)
        return
    shown = (tz, start, stop, to_local(moment, tz), to_local(until, tz))
    assert not quiet(until) and quiet(until - timedelta(minutes=1)), shown
    if until - moment > timedelta(hours=25):  # only when the day before had no time out of them
        day_before = to_local(until, tz).date() - timedelta(days=1)
        assert quiet(local_edge_to_utc(day_before, stop, tz)), shown
    assert until - moment <= timedelta(hours=48), shown


def test_a_bound_the_spring_change_skips_is_the_change():
    cases = [
        ("Europe/London", date(2026, 3, 29), time(1, 30), "02:00+0100"),
        ("America/New_York", date(2026, 3, 8), time(2, 30), "03:00-0400"),
        ("Australia/Sydney", date(2026, 10, 4), time(2, 45), "03:00+1100"),
        ("Australia/Lord_Howe", date(2026, 10, 4), time(2, 15), "02:30+1100"),
        ("America/Sao_Paulo", date(2018, 11, 4), time(0), "01:00-0200"),
    ]
    for tz, day, at, shown in cases:
        assert f"{to_local(local_edge_to_utc(day, at, tz), tz):%H:%M%z}" == shown
    # any other time as local_to_utc: an ambiguous one is its first occurrence
    for tz, day, at in [
        ("Europe/London", date(2026, 10, 25), time(1, 30)),
        ("Europe/London", date(2026, 3, 29), time(9)),
        ("America/New_York", date(2026, 11, 1), time(1, 15)),
    ]:
        assert local_edge_to_utc(day, at, tz) == local_to_utc(day, at, tz)


def test_reminders_keep_out_of_quiet_hours_bounded_by_a_skipped_time():
    """New York, 8 March 2026 (02:00 EST is followed by 03:00 EDT), quiet hours bounded by
    02:30, a time that night skips."""
    ny = "America/New_York"
    spring = date(2026, 3, 8)
    evening = local_to_utc(date(2026, 3, 7), time(22), ny)
    morning = local_to_utc(spring, time(6), ny)
    late = MessagePreferences(quiet_start=time(22), quiet_end=time(2, 30))
    # quiet from 22:00 EST until the clock passes 02:30, at 03:00 EDT: 4 real hours (before 4.5)
    assert reminders.quiet_between(evening, morning, ny, late) == timedelta(hours=4)
    # a 2-hour reminder of a 05:00 EDT visit falls in quiet hours 02:30–06:00 and waiting would
    # leave too little notice: it goes the minute before they begin, 01:59 EST (before: 03:29
    # EDT, inside them and after it was due)
    early = MessagePreferences(reminder_hours=(2,), quiet_start=time(2, 30), quiet_end=time(6))
    visit = local_to_utc(spring, time(5), ny)
    (planned,) = reminders.plan(visit, ny, early)
    assert f"{to_local(planned.due_at, ny):%H:%M %Z}" == "01:59 EST"
    assert not reminders.quiet_now(planned.due_at, ny, early)


AUTUMN = date(2026, 10, 1), date(2026, 11, 8)  # Sydney forward 4 Oct, London back 25 Oct, NY 1 Nov
ZONES = ("Europe/London", "America/New_York", "Australia/Sydney")


def test_analytics_count_each_visit_on_its_clinics_day_and_hour_across_the_changes(db, world):
    """Visits at every night hour of the change weeks, the repeated hour's both occurrences
    included, in three zones: each weekday, hour, weekday × hour cell and week of the
    cancellation figures (from the appointments and from the roll-ups) is the visits whose
    clinic-local start falls there (the spring-only brute-force test is test_analytics_brute)."""
    from core.analytics import cancellation_parts as parts
    from core.analytics import cancellation_rollups as rollups
    from core.analytics import cancellations as ca
    from db.models import Appointment, AppointmentKind, AppointmentStatus
    from tests.unit.test_analytics_brute import brute, counts, of

    first, last = AUTUMN
    with db.write() as session:
        clinics = {}
        for tz in ZONES:
            clinic = session.get(Clinic, world.clinic_id) if tz == ZONES[0] else Clinic(name=tz)
            clinic.timezone = tz
            session.add(clinic)
            session.flush()
            clinics[clinic.id] = tz
        statuses = [AppointmentStatus.COMPLETED, AppointmentStatus.CANCELLED]
        n = 0
        for cid, tz in clinics.items():
            day = first - timedelta(days=1)
            while day <= last + timedelta(days=1):
                for at in (time(0, 30), time(1, 30), time(2, 30), time(9), time(23, 30)):
                    for fold in (0, 1):  # the second occurrence, where the clock repeats
                        wall_time = datetime.combine(day, at, ZoneInfo(tz)).replace(fold=fold)
                        start = wall_time.astimezone(UTC)
                        if fold and to_local(start, tz).fold == 0:
                            continue  # not repeated that day
                        n += 1
                        session.add(
                            Appointment(
                                clinic_id=cid,
                                provider_id=world.provider_id,
                                patient_id=world.patient_id,
                                service_id=world.service_id,
                                status=statuses[n % 2],
                                start_at=start,
                                end_at=start + timedelta(minutes=30),
                                booked_at=start - timedelta(days=2),
                                created_at=start - timedelta(days=2),
                                cancelled_at=start - timedelta(hours=3) if n % 2 else None,
                                kind=AppointmentKind.APPOINTMENT,
                            )
                        )
                day += timedelta(days=1)
    for use_rollups in (False, True):
        if use_rollups:
            rollups.refresh_job(db, None)
        for cid in (None, *clinics):
            filters = parts.AnalyticsFilters(first, last, cid, parts=frozenset(parts.PARTS))
            bars = brute(db, filters)
            with db.read() as session:
                f = ca.compute_figures(session, world.owner, filters, use_rollups=use_rollups)
            assert of(f.totals) == counts(bars[("all", None)])
            assert [of(c) for c in f.by_weekday] == [counts(bars[("weekday", w)]) for w in range(7)]
            assert [of(c) for c in f.by_hour] == [
                counts(bars[("hour", h)]) for h in range(24) if ("hour", h) in bars
            ]
            assert {(h.weekday, h.hour): of(h.counts) for h in f.heatmap} == {
                k[1]: counts(v) for k, v in bars.items() if k[0] == "cell"
            }
            assert {c.label: of(c) for c in f.weekly} == {
                k[1]: counts(v) for k, v in bars.items() if k[0] == "week"
            }


def test_todays_list_on_a_change_day_is_the_clinics_whole_day_at_its_clock_times(db, world):
    """London's 25 October 2026 is 25 hours long: Today lists its first minute, both 01:30s
    (told apart by their zone) and its last half hour, in time order, and neither neighbour."""
    from core.scheduling import today
    from db.models import AppointmentStatus

    tz, day = "Europe/London", date(2026, 10, 25)
    times = {
        "before": datetime(2026, 10, 24, 22, 45, tzinfo=UTC),  # 23:45 BST on the 24th
        "00:00 BST": datetime(2026, 10, 24, 23, 0, tzinfo=UTC),
        "01:30 BST": datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        "01:30 GMT": datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        "23:30 GMT": datetime(2026, 10, 25, 23, 30, tzinfo=UTC),
        "after": datetime(2026, 10, 26, 0, 0, tzinfo=UTC),  # 00:00 GMT on the 26th
    }
    ids = {}
    with db.write() as session:
        for name, start in times.items():
            visit = make_visit(
                session,
                world,
                status=AppointmentStatus.SCHEDULED,
                start_at=start,
                end_at=start + timedelta(minutes=30),
            )
            ids[visit.id] = name
    now = datetime(2026, 10, 25, 12, tzinfo=UTC)  # the clinic's today is that day
    assert to_local(now, tz).date() == day
    with db.read() as session:
        rows = today.list_today(session, world.staff, world.clinic_id, now=now)
    listed = [ids[r.id] for r in rows]
    assert listed == ["00:00 BST", "01:30 BST", "01:30 GMT", "23:30 GMT"]
    assert [f"{to_local(r.start_at, tz):%H:%M %Z}" for r in rows] == listed
    assert [r.starts for r in rows] == ["00:00", "01:30", "01:30", "23:30"]
    # the board's time column tells the two 01:30s apart (before: two rows alike)
    assert [r.time for r in rows] == [
        "00:00–00:30",
        "01:30–01:00 (BST/GMT)",
        "01:30–02:00 (GMT)",
        "23:30–00:00",
    ]


def test_an_event_in_the_repeated_hour_comes_back_from_the_calendar_in_its_occurrence():
    """The calendar shows the autumn night's 01:30 BST and 01:30 GMT at one place; an event
    resized or dragged there is sent back with its own offset, which tells the two apart
    (before: the second was read as the first, and the visit moved an hour back)."""
    from core.scheduling.calendar import callback_time

    london, ny = "Europe/London", "America/New_York"
    cases = [
        ("2026-10-25T01:30:00+00:00", london, datetime(2026, 10, 25, 1, 30)),  # GMT: second
        ("2026-10-25T01:30:00+01:00", london, datetime(2026, 10, 25, 0, 30)),  # BST: first
        ("2026-10-25T01:30:00.000Z", london, datetime(2026, 10, 25, 0, 30)),  # a click: first
        ("2026-11-01T01:15:00-05:00", ny, datetime(2026, 11, 1, 6, 15)),  # EST: second
        ("2026-11-01T01:15:00-04:00", ny, datetime(2026, 11, 1, 5, 15)),  # EDT: first
        ("2026-11-01T01:15:00+09:00", ny, datetime(2026, 11, 1, 5, 15)),  # neither: first
        # not repeated: the wall time counts, whatever the offset (as before)
        ("2026-10-26T01:30:00+01:00", london, datetime(2026, 10, 26, 1, 30)),
        ("2026-03-29T01:30:00+01:00", london, datetime(2026, 3, 29, 1, 30)),  # skipped: on
    ]
    for value, tz, expected in cases:
        assert callback_time(value, tz) == expected.replace(tzinfo=UTC), value


@pytest.mark.parametrize(
    ("day", "at", "tz", "said"),
    [
        (date(2027, 3, 28), time(1, 30), "Europe/London", "skipped"),
        (date(2027, 3, 28), time(2, 0), "Europe/London", None),
        (date(2027, 10, 31), time(1, 30), "Europe/London", "repeated"),
        (date(2027, 10, 31), time(2, 0), "Europe/London", None),
        (date(2027, 3, 14), time(2, 15), "America/New_York", "skipped"),
        (date(2027, 11, 7), time(1, 0), "America/New_York", "repeated"),
        (date(2027, 6, 1), time(1, 30), "Europe/London", None),
    ],
)
def test_a_typed_time_the_clocks_skip_or_repeat_is_known(day, at, tz, said):
    assert clock_change(day, at, tz) == said
