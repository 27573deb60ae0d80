"""The dashboards' breakdowns (core.analytics.breakdowns): rates by provider and service, the
appointments behind one bar, the survey rating distribution and the responses behind a bar."""

from datetime import UTC, date, datetime, time, timedelta

import pytest

from core.analytics import breakdowns as bd
from core.analytics import surveys as sa
from core.analytics.cancellation_parts import AnalyticsFilters
from core.kernel.clock import local_to_utc
from core.kernel.errors import PermissionDenied
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    Clinic,
    Provider,
    Source,
    SurveyResponse,
)

S = AppointmentStatus
MONDAY = datetime(2026, 3, 2, 10, tzinfo=UTC)  # 10:00 in London (GMT)


def _book(session, world, start, status, provider_id):
    session.add(
        Appointment(
            clinic_id=world.clinic_id,
            provider_id=provider_id,
            patient_id=world.patient_id,
            service_id=world.service_id,
            status=status,
            start_at=start,
            end_at=start + timedelta(minutes=30),
            booked_at=start - timedelta(days=2),
            created_at=start - timedelta(days=2),
            kind=AppointmentKind.APPOINTMENT,
            source=Source.STAFF,
            cancelled_at=start - timedelta(hours=3) if status == S.CANCELLED else None,
        )
    )


@pytest.fixture
def booked(db, world):
    with db.write() as session:
        other = Provider(name="Dr Other")
        session.add(other)
        session.flush()
        for status in (S.COMPLETED, S.CANCELLED, S.CANCELLED, S.NO_SHOW):
            _book(session, world, MONDAY, status, world.provider_id)
        for status in (S.COMPLETED, S.COMPLETED):  # Tuesday, another provider
            _book(session, world, MONDAY + timedelta(days=1), status, other.id)
        return other.id


FILTERS = AnalyticsFilters(date(2026, 3, 1), date(2026, 3, 8))


def test_rates_by_provider_and_service(db, world, booked):
    with db.read() as session:
        providers = bd.rates_by(session, world.manager, FILTERS, "provider")
        services = bd.rates_by(session, world.manager, FILTERS, "service")
    first, second = providers
    assert first.key == world.provider_id and first.counts.booked == 4
    assert first.counts.cancellation_rate == 0.5 and first.counts.no_show_rate == 0.5
    assert second.key == booked and second.counts.booked == 2
    assert second.counts.cancelled == 0 and second.counts.no_show_rate == 0
    assert [(g.key, g.counts.booked) for g in services] == [(world.service_id, 6)]


def test_the_appointments_behind_a_bar(db, world, booked):
    with db.read() as session:
        mondays, n_monday = bd.appointments_behind(session, world.owner, FILTERS, "weekday", 0)
        tuesdays, _ = bd.appointments_behind(session, world.owner, FILTERS, "weekday", 1)
        other, n_other = bd.appointments_behind(session, world.owner, FILTERS, "provider", booked)
        week, n_week = bd.appointments_behind(session, world.owner, FILTERS, "week", "2026-03-02")
        lead, _ = bd.appointments_behind(session, world.owner, FILTERS, "lead", 1)  # 1–3 days
    assert n_monday == 4 and len(mondays) == 4 and len(tuesdays) == 2
    # the states as the calendar names them (STATUS_WORDS), not their stored values ('no_show')
    assert sorted(mondays["Status"]) == ["cancelled", "cancelled", "completed", "no-show"]
    assert n_other == 2 and set(other["Provider"]) == {"Dr Other"}
    assert n_week == 6 and len(lead) == 6
    assert all(t.hour == 10 for t in mondays["Start"])  # clinic-local time


def test_the_appointments_behind_a_bar_name_the_clinic_whose_time_they_show(db, world):
    """All clinics: a New York visit at 23:30 on Monday (04:30 on Tuesday in London) is behind
    Monday's bar and listed at 23:30 beside London's 10:00, each naming its clinic, so the two
    clocks are not read as one (before: no clinic column)."""
    with db.write() as session:
        ny = Clinic(name="New York", timezone="America/New_York", locale="en-US", currency="USD")
        session.add(ny)
        session.flush()
        _book(session, world, MONDAY, S.COMPLETED, world.provider_id)
        late = local_to_utc(date(2026, 3, 2), time(23, 30), "America/New_York")
        _book(session, world, late, S.NO_SHOW, world.provider_id)
        session.flush()
        session.query(Appointment).filter(Appointment.start_at == late).update({"clinic_id": ny.id})
    with db.read() as session:
        mondays, n = bd.appointments_behind(session, world.owner, FILTERS, "weekday", 0)
        tuesdays, _ = bd.appointments_behind(session, world.owner, FILTERS, "weekday", 1)
    assert n == 2 and tuesdays.empty
    shown = {
        (row.Clinic, row.Start.strftime("%a %H:%M"), row.Status) for row in mondays.itertuples()
    }
    assert shown == {
        ("New York", "Mon 23:30", "no-show"),
        ("Test Clinic", "Mon 10:00", "completed"),
    }


def test_staff_may_not_read_breakdowns(db, world, booked):
    with db.read() as session, pytest.raises(PermissionDenied):
        bd.rates_by(session, world.staff, FILTERS, "provider")


def test_rating_distribution_and_the_responses_behind_a_star(db, world):
    with db.write() as session:
        for nps, rating in ((10, 5), (9, 5), (3, 2), (None, 4)):
            session.add(
                SurveyResponse(
                    clinic_id=world.clinic_id,
                    provider_id=world.provider_id,
                    nps=nps,
                    rating=rating,
                    comment="",
                    submitted_at=MONDAY,
                )
            )
    f = sa.filter_for_days(date(2026, 3, 1), date(2026, 3, 8), "Europe/London")
    with db.read() as session:
        d = bd.distribution(session, world.owner, f)
        fives, total = bd.responses_behind(session, world.owner, f, "rating", 5)
    assert d.ratings == [0, 1, 0, 1, 2] and sum(d.nps) == 3 and d.nps[10] == 1
    assert len(fives) == 2 and total == 2 and set(fives["rating"]) == {5}


def test_the_responses_behind_a_bar_say_how_many_there_are_beyond_those_listed(db, world):
    with db.write() as session:
        session.add_all(
            SurveyResponse(
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                nps=9,
                rating=5,
                comment="",
                submitted_at=MONDAY + timedelta(minutes=minute),
            )
            for minute in range(7)
        )
    f = sa.filter_for_days(date(2026, 3, 1), date(2026, 3, 8), "Europe/London")
    with db.read() as session:
        shown, total = bd.responses_behind(session, world.owner, f, "rating", 5, limit=5)
        every, all_of_them = bd.responses_behind(
            session, world.owner, f, "provider", world.provider_id, limit=7
        )
    assert len(shown) == 5 and total == 7  # the newest five of seven
    assert list(shown.id) == sorted(shown.id, reverse=True)
    assert len(every) == all_of_them == 7
