"""Every survey figure against numbers worked out by hand from explicitly built rows."""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, event, insert, select

from core.analytics import breakdowns as bd
from core.analytics import cancellation_parts as parts
from core.analytics import survey_export
from core.analytics import surveys as sa
from core.kernel.authz import Permission
from core.kernel.clock import local_to_utc
from core.kernel.errors import PermissionDenied, ValidationError
from core.practice.choices import list_choices
from db.models import (
    Appointment,
    AppointmentService,
    AppointmentStatus,
    AuditEvent,
    Clinic,
    FeedbackStatus,
    Package,
    Provider,
    Service,
    SurveyResponse,
)

NOV = sa.SurveyFilter(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
MID = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def at(day: int, hour: int = 12, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def response(
    session, when, nps, rating, *, clinic, provider=None, service=None, comment="", appointment=None
):
    row = SurveyResponse(
        submitted_at=when,
        nps=nps,
        rating=rating,
        clinic_id=clinic,
        provider_id=provider,
        service_id=service,
        comment=comment,
        appointment_id=appointment,
    )
    session.add(row)
    session.flush()
    return row.id


@pytest.fixture
def practice(db, world):
    """Second clinic and provider; nine November responses in clinic 1, one in clinic 2, one
    in October. Provider 1: nps 10 9 8 7 6 0, ratings 5 5 4 4 3 1; provider 2: nps 10 10 and an
    imported response without nps, ratings 5 4 2."""
    with db.write() as session:
        other = Clinic(
            name="Other Clinic", timezone="America/New_York", locale="en-US", email="o@example.org"
        )
        second = Provider(name="Dr Second")
        peel = Service(name="Peel", duration_minutes=30)
        session.add_all([other, second, peel])
        session.flush()
        one, svc = world.provider_id, world.service_id
        c = world.clinic_id
        for i, (nps, rating) in enumerate([(10, 5), (9, 5), (8, 4), (7, 4), (6, 3), (0, 1)]):
            response(session, at(3 + i), nps, rating, clinic=c, provider=one, service=svc)
        response(session, at(10), 10, 5, clinic=c, provider=second.id, service=peel.id)
        response(session, at(11), 10, 4, clinic=c, provider=second.id, service=peel.id)
        response(session, at(12), None, 2, clinic=c)  # imported: rating only, no provider
        response(session, at(13), 0, 1, clinic=other.id, provider=second.id)
        response(session, at(20, month=10), 0, 1, clinic=c, provider=one)  # before the period
        return {
            "clinic": c,
            "other": other.id,
            "one": one,
            "second": second.id,
            "service": svc,
            "peel": peel.id,
        }


def test_summary_nps_csat_mean_and_interval(db, world, practice):
    with db.read() as session:
        fig = sa.summary(
            session, world.owner, sa.SurveyFilter(NOV.since, NOV.until, world.clinic_id)
        )
    # nps: 10 9 8 7 6 0 10 10 → 4 promoters, 2 passives, 2 detractors of 8
    assert (fig.responses, fig.nps_n, fig.promoters, fig.passives, fig.detractors) == (
        9,
        8,
        4,
        2,
        2,
    )
    assert fig.nps == 25.0
    # ratings: 5 5 4 4 3 1 5 4 2 → n 9, Σx 33, Σx² 137, six of them 4 or 5
    assert (fig.rating_n, fig.rating_sum, fig.rating_sumsq, fig.satisfied) == (9, 33, 137, 6)
    assert fig.csat == pytest.approx(66.6667, abs=1e-4)
    assert fig.mean == pytest.approx(3.6667, abs=1e-4)
    # s² = (137 − 33²/9)/8 = 2, so the half-width is t(8) · √(2/9) = 2.306 · 0.4714 = 1.0871
    low, high = fig.interval
    assert (low, high) == (pytest.approx(2.5796, abs=1e-4), pytest.approx(4.7537, abs=1e-4))


def test_the_interval_of_a_few_ratings_stays_on_the_scale_and_equal_ratings_give_none():
    """Three ratings 5 5 4: x̄ = 4.6667, s = 0.5774, t(2) = 4.303, so x̄ ± 1.4344 would run
    from 3.23 to 6.10; no mean rating is above 5. Ratings all alike have no spread (s = 0):
    t · 0 would be an interval of one point, which two or ten equal answers do not prove."""
    three = sa.Figures(3, rating_n=3, rating_sum=14, rating_sumsq=66, satisfied=3)
    low, high = three.interval
    assert (low, high) == (pytest.approx(14 / 3 - 4.303 * math.sqrt(1 / 3) / math.sqrt(3)), 5.0)
    assert round(low, 2) == 3.23
    low_end = sa.Figures(3, rating_n=3, rating_sum=4, rating_sumsq=6).interval  # 1 1 2
    assert low_end[0] == 1.0 and low_end[1] == pytest.approx(4 / 3 + 1.4344, abs=1e-4)
    for n, rating in ((2, 5), (10, 5), (12, 1)):
        alike = sa.Figures(n, rating_n=n, rating_sum=n * rating, rating_sumsq=n * rating**2)
        assert alike.mean == rating and alike.interval is None


def test_all_clinics_and_empty_periods(db, world, practice):
    with db.read() as session:
        everything = sa.summary(session, world.owner, NOV)
        nothing = sa.summary(session, world.owner, sa.SurveyFilter(at(1, month=1), at(2, month=1)))
    # the other clinic's 0/1 joins: 4 promoters, 3 detractors of 9
    assert (everything.responses, everything.nps_n) == (10, 9)
    assert everything.nps == pytest.approx(100 * (4 - 3) / 9)
    assert (nothing.responses, nothing.nps, nothing.csat, nothing.mean, nothing.interval) == (
        0,
        None,
        None,
        None,
        None,
    )


def test_imported_responses_without_nps_count_only_for_ratings(db, world):
    with db.write() as session:
        for rating in (5, 4, 1):
            response(session, MID, None, rating, clinic=world.clinic_id)
    with db.read() as session:
        fig = sa.summary(session, world.owner, NOV)
    assert (fig.nps_n, fig.nps, fig.rating_n, fig.csat) == (0, None, 3, pytest.approx(200 / 3))


def test_by_provider_service_and_clinic_with_small_groups_marked(db, world, practice):
    with db.read() as session:
        providers = sa.by_group(session, world.owner, NOV, "provider")
        services = sa.by_group(session, world.owner, NOV, "service")
        clinics = sa.by_group(session, world.owner, NOV, "clinic")
    rows = {r.provider: r for r in providers.itertuples()}
    assert set(rows) == {"Dr Test", "Dr Second", "(not recorded)"}
    first = rows["Dr Test"]
    # 5 5 4 4 3 1: mean 22/6, s² = (92 − 22²/6)/5 = 2.2667, half = t(5) · √(2.2667/6) = 1.5802;
    # 3.6667 + 1.5802 is above the scale, so the interval ends at 5
    assert (first.n, first.mean) == (6, pytest.approx(22 / 6))
    assert first.ci_low == pytest.approx(22 / 6 - 2.571 * math.sqrt((92 - 22**2 / 6) / 5 / 6))
    assert first.ci_high == 5.0
    assert (first.nps, first.csat, first.enough) == (
        pytest.approx(100 * (2 - 2) / 6),
        pytest.approx(400 / 6),
        False,
    )
    second = rows["Dr Second"]  # 10/5, 10/4 in clinic 1 and 0/1 in the other clinic
    assert (second.n, second.nps, second.mean) == (3, pytest.approx(100 / 3), pytest.approx(10 / 3))
    assert rows["(not recorded)"].n == 1 and math.isnan(rows["(not recorded)"].ci_low)
    assert sorted(zip(services.service, services.n, strict=True)) == [
        ("(not recorded)", 2),
        ("Consultation", 6),
        ("Peel", 2),
    ]
    assert dict(zip(clinics.clinic, clinics.n, strict=True)) == {
        "Test Clinic": 9,
        "Other Clinic": 1,
    }
    assert not clinics.enough.any()


def test_a_package_is_its_own_group_by_service_not_under_its_first_service(db, world, practice):
    """Two November answers to visits booked as the package "Consult and peel" (first
    service Consultation): by service the package is its own row, "Package: Consult and
    peel", and Consultation keeps the six answers to visits booked as it alone (before: eight,
    its mean 3.67 read as 3.5); the responses behind each bar, and the export, name it so.
    Every response is in one row."""
    with db.write() as session:
        package = Package(name="Consult and peel", price_cents=18000)
        session.add(package)
        session.flush()
        ids = [
            response(session, MID, nps, rating, clinic=world.clinic_id, service=world.service_id)
            for nps, rating in ((10, 5), (3, 1))
        ]
        for i in ids:
            session.get(SurveyResponse, i).package_id = package.id
        package_id = package.id
    with db.read() as session:
        services = sa.by_group(session, world.owner, NOV, "service")
        rows = {(r.dimension, r.service): (r.id, r.n, r.mean) for r in services.itertuples()}
        assert rows[("package", "Package: Consult and peel")] == (package_id, 2, 3.0)
        assert rows[("service", "Consultation")] == (world.service_id, 6, pytest.approx(22 / 6))
        assert services.n.sum() == sa.summary(session, world.owner, NOV).rating_n
        listed, total = bd.responses_behind(session, world.owner, NOV, "package", package_id)
        assert total == 2 and set(listed.id) == set(ids)
        assert set(listed.service) == {"Package: Consult and peel"}
        listed, total = bd.responses_behind(session, world.owner, NOV, "service", world.service_id)
        assert total == 6 and not set(ids) & set(listed.id)
        assert set(listed.service) == {"Consultation"}
    with db.write() as session:
        data = survey_export.export_csv(session, world.owner, NOV)
    exported = {
        int(r["response_id"]): r["service"]
        for r in csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    }
    assert {exported[i] for i in ids} == {"Package: Consult and peel"}
    assert sorted(set(exported.values())) == [
        "",
        "Consultation",
        "Package: Consult and peel",
        "Peel",
    ]


def test_a_group_with_ten_ratings_is_enough_and_sorts_first(db, world, practice):
    with db.write() as session:
        for _ in range(10):
            response(session, MID, 9, 5, clinic=world.clinic_id, provider=practice["second"])
    with db.read() as session:
        providers = sa.by_group(session, world.owner, NOV, "provider")
    assert providers.iloc[0].provider == "Dr Second" and bool(providers.iloc[0].enough)
    assert providers.iloc[0].n == 13
    assert sa.MIN_N == 10


def test_weekly_and_monthly_trends_bucket_on_monday_and_month_starts(db, world):
    with db.write() as session:
        c = world.clinic_id
        response(session, at(31, 10, month=10), 10, 5, clinic=c)  # Sat 31 Oct: week of 26 Oct
        response(session, at(1, 23, 30), 0, 1, clinic=c)  # Sun 1 Nov: week of 26 Oct, November
        response(session, at(2, 0, 10), 9, 4, clinic=c)  # Mon 2 Nov: its own week
        response(session, at(8, 23, 59), 7, 4, clinic=c)  # Sun 8 Nov: still the week of 2 Nov
        response(session, at(9, 0, 0), None, 2, clinic=c)  # Mon 9 Nov
    period = sa.SurveyFilter(at(1, 0, month=10), at(1, 0, month=12))
    with db.read() as session:
        weekly = sa.trend(session, world.owner, period, "week")
        monthly = sa.trend(session, world.owner, period, "month")
        with pytest.raises(ValidationError):
            sa.trend(session, world.owner, period, "day")
    assert [d.date() for d in weekly.period] == [
        date(2026, 10, 26),
        date(2026, 11, 2),
        date(2026, 11, 9),
    ]
    assert list(weekly.responses) == [2, 2, 1]
    assert list(weekly.nps[:2]) == [0.0, 50.0]  # (1−1)/2 and (1−0)/2
    assert math.isnan(weekly.nps[2]) and weekly["mean"][2] == 2
    assert [d.date() for d in monthly.period] == [date(2026, 10, 1), date(2026, 11, 1)]
    assert list(monthly.responses) == [1, 4]
    assert monthly.nps[1] == pytest.approx(100 * (1 - 1) / 3)
    assert monthly.csat[1] == pytest.approx(50.0)  # 1 4 4 2 → two of four
    assert monthly["mean"][1] == pytest.approx(11 / 4)


def test_trends_group_by_the_local_day_of_the_filters_zone(db, world):
    with db.write() as session:
        c = world.clinic_id
        # Sun 1 Nov 23:30 UTC is Mon 2 Nov 00:30 in Berlin (UTC+1): the next local day and week
        response(session, at(1, 23, 30), 10, 5, clinic=c)
        response(session, at(31, 12, month=10), 0, 1, clinic=c)  # Sat 31 Oct everywhere
        # Tue 31 Mar 21:30 UTC is Wed 1 Apr 00:30 in Athens, on summer time (UTC+3) since 29 Mar
        response(session, at(31, 21, 30, month=3), 9, 4, clinic=c)
        response(session, at(2, 12, month=3), 9, 4, clinic=c)  # 2 Mar, on winter time
    berlin = sa.filter_for_days(date(2026, 10, 1), date(2026, 11, 30), "Europe/Berlin", c)
    utc = sa.filter_for_days(date(2026, 10, 1), date(2026, 11, 30))
    spring = sa.filter_for_days(date(2026, 3, 1), date(2026, 4, 30), "Europe/Athens")
    with db.read() as session:
        local_weeks = sa.trend(session, world.owner, berlin, "week")
        utc_weeks = sa.trend(session, world.owner, utc, "week")
        months = sa.trend(session, world.owner, spring, "month")

    def counts(frame):
        return {p.date(): n for p, n in zip(frame.period, frame.responses, strict=True)}

    assert counts(utc_weeks) == {date(2026, 10, 26): 2}
    assert counts(local_weeks) == {date(2026, 10, 26): 1, date(2026, 11, 2): 1}
    assert counts(months) == {date(2026, 3, 1): 1, date(2026, 4, 1): 1}
    with db.read() as session:  # the dashboard's trends are the same as the section's
        board = sa.get_dashboard(session, world.owner, berlin, now=at(25))
    assert counts(board.weekly) == counts(local_weeks)


def visit(
    session,
    world,
    start,
    status=AppointmentStatus.COMPLETED,
    feedback=FeedbackStatus.NONE,
    clinic=None,
):
    appointment = Appointment(
        clinic_id=clinic or world.clinic_id,
        patient_id=world.patient_id,
        status=status,
        start_at=start,
        end_at=start + timedelta(minutes=30),
        feedback_status=feedback,
    )
    session.add(appointment)
    session.flush()
    return appointment.id


def test_funnel_completed_requested_answered(db, world, practice):
    with db.write() as session:
        for feedback in (
            FeedbackStatus.NONE,
            FeedbackStatus.NONE,
            FeedbackStatus.PENDING,
            FeedbackStatus.COLLECTED,
        ):
            visit(session, world, MID, feedback=feedback)
        visit(session, world, MID, status=AppointmentStatus.CANCELLED)
        visit(session, world, at(20, month=10), feedback=FeedbackStatus.COLLECTED)
        visit(session, world, MID, feedback=FeedbackStatus.COLLECTED, clinic=practice["other"])
    with db.read() as session:
        clinic_one = sa.funnel(
            session, world.owner, sa.SurveyFilter(NOV.since, NOV.until, world.clinic_id)
        )
        everything = sa.funnel(session, world.owner, NOV)
        empty = sa.funnel(session, world.owner, sa.SurveyFilter(at(1, month=1), at(2, month=1)))
    assert (clinic_one.completed, clinic_one.requested, clinic_one.answered) == (4, 2, 1)
    assert (clinic_one.request_rate, clinic_one.answer_rate) == (50.0, 50.0)
    assert (everything.completed, everything.requested, everything.answered) == (5, 3, 2)
    assert (empty.request_rate, empty.answer_rate) == (None, None)


def test_detractors_of_the_last_seven_days_link_to_their_visit(db, world, practice):
    now = at(25)
    with db.write() as session:
        appointment = visit(session, world, at(22))
        response(
            session,
            at(23),
            3,
            2,
            clinic=world.clinic_id,
            appointment=appointment,
            comment="Waited <an hour>",
        )
        response(session, at(24), 9, 5, clinic=world.clinic_id)  # a promoter
        response(session, at(17, 11), 5, 2, clinic=world.clinic_id)  # eight days ago
        response(session, at(24), 6, 3, clinic=practice["other"])
    with db.read() as session:
        mine = sa.recent_detractors(session, world.owner, world.clinic_id, now=now)
        everyone = sa.recent_detractors(session, world.owner, now=now)
    assert list(mine.nps) == [3]
    assert mine.iloc[0].appointment_id == appointment
    assert mine.iloc[0].comment == "Waited <an hour>"
    assert mine.iloc[0].submitted == "23 Nov 2026, 12:00"  # London local time, en-GB
    assert list(everyone.nps) == [6, 3]
    # New York local time in its locale, en-US: month first, 12-hour clock
    assert everyone.iloc[0].submitted == "Nov 24, 2026, 7:00\u202fAM"


def test_comment_feed_is_searchable_literal_and_paginated(db, world):
    with db.write() as session:
        texts = [
            "Great staff",
            "great PARKING",
            "100% happy",
            "100 happy",
            "snake_case",
            "snakeXcase",
            "",
            "<script>alert(1)</script>",
        ]
        for i, text in enumerate(texts):
            response(session, at(2 + i), 8, 4, clinic=world.clinic_id, comment=text)
    with db.read() as session:

        def feed(*a, **k):
            return sa.comments(session, world.owner, NOV, *a, **k)

        everything, more = feed()
        assert len(everything) == 7 and not more
        assert everything.comment[0] == "<script>alert(1)</script>"
        assert sorted(feed("GREAT")[0].comment) == ["Great staff", "great PARKING"]
        assert list(feed("100%")[0].comment) == ["100% happy"]
        assert list(feed("e_c")[0].comment) == ["snake_case"]
        pages = [feed(page=n, page_size=3) for n in range(3)]
        assert [(len(rows), more) for rows, more in pages] == [(3, True), (3, True), (1, False)]
        first, second, third = (rows for rows, _ in pages)
        assert set(first.id) | set(second.id) | set(third.id) == set(everything.id)


def test_all_clinics_comments_are_each_in_their_own_clinics_zone_and_locale(db, world, practice):
    """The Surveys page's comments under All clinics (sa.comments, the 'Latest comments' and the
    searchable feed): each comment's time in its own clinic's zone and locale, London en-GB and
    New York en-US, an imported comment with no clinic in the practice's (the first clinic's).
    Checked, already so (feed_frame reads each row's clinic): no change was needed."""
    with db.write() as session:
        response(session, at(24, 12), 9, 5, clinic=world.clinic_id, comment="London")
        response(session, at(24, 13), 9, 5, clinic=practice["other"], comment="New York")
        response(session, at(24, 14), 9, 5, clinic=None, comment="Imported")
    with db.read() as session:
        everyone, _ = sa.comments(session, world.owner, NOV, "")
        london_only, _ = sa.comments(session, world.owner, replace(NOV, clinic_id=world.clinic_id))
    shown = dict(zip(everyone.comment, everyone.submitted, strict=True))
    assert shown["London"] == "24 Nov 2026, 12:00"  # GMT, day first, 24-hour clock
    assert shown["New York"] == "Nov 24, 2026, 8:00\u202fAM"  # EST, month first, 12-hour
    assert shown["Imported"] == "24 Nov 2026, 14:00"
    assert "New York" not in set(london_only.comment)


def test_export_is_spreadsheet_safe_and_audited(db, world):
    with db.write() as session:
        response(
            session,
            MID,
            2,
            1,
            clinic=world.clinic_id,
            provider=world.provider_id,
            comment='=HYPERLINK("http://evil.example")',
        )
        session.get(SurveyResponse, 1).answers = {"timely": 2, "courtesy": 3}
    with db.write() as session:
        data = survey_export.export_csv(session, world.manager, NOV)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == survey_export.EXPORT_HEADER
    assert rows[1][3:10] == [
        "Test Clinic",
        "Dr Test",
        "",  # no service recorded
        "2",
        "1",
        "courtesy=3;timely=2",
        '\'=HYPERLINK("http://evil.example")',
    ]
    with db.read() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "export"))
        assert (event.entity, event.details["rows"], event.actor_label) == (
            "survey_responses",
            1,
            "Manager",
        )
    with pytest.raises(PermissionDenied), db.write() as session:
        survey_export.export_csv(session, world.staff, NOV)


def test_every_read_needs_analytics_permission(db, world):
    with db.read() as session:
        for read in (
            lambda: sa.summary(session, world.staff, NOV),
            lambda: sa.get_dashboard(session, world.staff, NOV),
            lambda: sa.comments(session, world.staff, NOV),
        ):
            with pytest.raises(PermissionDenied):
                read()


def test_dashboard_and_local_day_filter(db, world, practice):
    f = sa.filter_for_days(date(2026, 11, 1), date(2026, 11, 30), "Europe/London", world.clinic_id)
    assert (f.since, f.until) == (NOV.since, NOV.until)  # GMT in November
    ny = sa.filter_for_days(date(2026, 11, 1), date(2026, 11, 1), "America/New_York")
    assert (ny.since, ny.until) == (at(1, 4), at(2, 5))  # DST ends on 1 November
    with pytest.raises(ValidationError):
        sa.filter_for_days(date(2026, 11, 2), date(2026, 11, 1))
    with db.read() as session:
        board = sa.get_dashboard(session, world.owner, f, now=at(25))
        clinics = list_choices(
            session, world.owner, include_inactive=True, permission=Permission.ANALYTICS_READ
        ).clinics
    assert board.summary.nps == 25.0 and len(board.providers) == 3 and len(board.weekly) == 2
    assert [c.name for c in clinics] == ["Other Clinic", "Test Clinic"]


def test_t_quantiles():
    assert sa.t95(1) == 12.706 and sa.t95(30) == 2.042
    assert sa.t95(60) == pytest.approx(2.000, abs=2e-3) and sa.t95(1000) == pytest.approx(
        1.962, abs=1e-3
    )


FFT = ROOT.parent / "shared" / "data" / "survey" / "nhs_fft_gp.csv"


def test_real_nhs_friends_and_family_answers_show_ratings_but_no_nps(db, world):
    """The shared NHS FFT file, loaded as an import would (a 1–5 likelihood, free text, time,
    surgery → clinic, no 0–10 answer): NPS stays empty, CSAT and the mean match the file."""
    with FFT.open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["surgery"] == "Earls Court Surgery"]
    with db.write() as session:
        clinic = Clinic(name="Earls Court Surgery", timezone="Europe/London")
        session.add(clinic)
        session.flush()
        session.add_all(
            SurveyResponse(
                submitted_at=datetime.fromisoformat(r["time"]).replace(tzinfo=UTC),
                rating=int(float(r["rating_score"])) if r["rating_score"] else None,
                comment=r["free_text"],
                clinic_id=clinic.id,
                source="import",
            )
            for r in rows
        )
    scores = [int(float(r["rating_score"])) for r in rows if r["rating_score"]]
    everything = sa.SurveyFilter(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    with db.read() as session:
        fig = sa.summary(session, world.owner, everything)
        board = sa.get_dashboard(session, world.owner, everything)
        found, _ = sa.comments(session, world.owner, everything, "friendly", page_size=500)
    assert (fig.responses, fig.nps_n, fig.nps) == (len(rows), 0, None)
    assert fig.rating_n == len(scores) and fig.mean == pytest.approx(sum(scores) / len(scores))
    assert fig.csat == pytest.approx(100 * sum(s >= 4 for s in scores) / len(scores))
    assert board.summary == fig and board.clinics.clinic[0] == "Earls Court Surgery"
    assert board.providers.provider[0] == "(not recorded)" and board.providers.nps.isna().all()
    assert len(found) == sum("friendly" in r["free_text"].lower() for r in rows)


answer = st.tuples(
    st.one_of(st.none(), st.integers(0, 10)),
    st.one_of(st.none(), st.integers(1, 5)),
    st.integers(0, 200),
    st.sampled_from([None, 1]),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(answers=st.lists(answer, max_size=40))
def test_figures_match_a_plain_python_count_and_add_up_across_groupings(db, world, answers):
    with db.write() as session:
        session.execute(delete(SurveyResponse))
        for nps, rating, hours, provider in answers:
            response(
                session,
                datetime(2026, 6, 1, tzinfo=UTC) + timedelta(hours=hours),
                nps,
                rating,
                clinic=world.clinic_id,
                provider=provider,
            )
    with db.read() as session:
        fig = sa.summary(session, world.owner, NOV_AND_BEFORE)
        board = sa.get_dashboard(session, world.owner, NOV_AND_BEFORE)
        # all clinics are counted per bucket / star, one clinic is summed in one pass: the same
        one = sa.SurveyFilter(NOV_AND_BEFORE.since, NOV_AND_BEFORE.until, world.clinic_id)
        clinic_fig = sa.summary(session, world.owner, one)
    npss = [a[0] for a in answers if a[0] is not None]
    ratings = [a[1] for a in answers if a[1] is not None]
    promoters, detractors = sum(n >= 9 for n in npss), sum(n <= 6 for n in npss)
    assert fig.responses == len(answers)
    assert fig.nps == (pytest.approx(100 * (promoters - detractors) / len(npss)) if npss else None)
    assert fig.csat == (
        pytest.approx(100 * sum(r >= 4 for r in ratings) / len(ratings)) if ratings else None
    )
    if len(set(ratings)) >= 2:
        mean = sum(ratings) / len(ratings)
        sd = math.sqrt(sum((r - mean) ** 2 for r in ratings) / (len(ratings) - 1))
        half = sa.t95(len(ratings) - 1) * sd / math.sqrt(len(ratings))
        low, high = max(1, mean - half), min(5, mean + half)
        assert fig.interval == (pytest.approx(low), pytest.approx(high))
    else:  # under two ratings, or all the same: no spread, no interval
        assert fig.interval is None
    assert board.summary == fig == clinic_fig
    assert board.weekly.responses.sum() == board.monthly.responses.sum() == len(answers)
    assert board.providers.n.sum() == board.services.n.sum() == len(ratings)


NOV_AND_BEFORE = sa.SurveyFilter(datetime(2026, 1, 1, tzinfo=UTC), NOV.until)


def test_section_reads_match_the_whole_dashboard(db, world, practice):
    with db.read() as session:
        board = sa.get_dashboard(session, world.owner, NOV, now=at(25))
        summary, funnel = (
            sa.summary(session, world.owner, NOV),
            sa.funnel(session, world.owner, NOV),
        )
        groups = sa.get_groups(session, world.owner, NOV)
        trends = sa.get_trends(session, world.owner, NOV)
    assert (summary, funnel) == (board.summary, board.funnel)
    assert groups.providers.equals(board.providers) and groups.clinics.equals(board.clinics)
    assert groups.services.equals(board.services)
    assert trends.weekly.equals(board.weekly) and trends.monthly.equals(board.monthly)


def test_all_clinics_take_each_clinics_own_day_even_when_the_days_do_not_overlap(db, world):
    """One day, 1 March 2026, at Kiritimati (UTC+14) and Pago Pago (UTC−11): their days share
    no hour (10:00 UTC on 1 March ends one, 11:00 UTC begins the other). All clinics counts each
    response on its own clinic's day: the sum of the three clinics, one response each."""
    with db.write() as session:
        east = Clinic(name="Kiritimati", timezone="Pacific/Kiritimati")
        west = Clinic(name="Pago Pago", timezone="Pacific/Pago_Pago")
        session.add_all([east, west])
        session.flush()
        zones = [
            (world.clinic_id, "Europe/London"),
            (east.id, east.timezone),
            (west.id, west.timezone),
        ]
        for (cid, tz), rating in zip(zones, (3, 4, 5), strict=True):
            for day, hour in (
                (date(2026, 2, 28), 23),
                (date(2026, 3, 1), 0),
                (date(2026, 3, 1), 23),
                (date(2026, 3, 2), 0),
            ):
                kept = day == date(2026, 3, 1)
                response(
                    session,
                    local_to_utc(day, time(hour, 30), tz),
                    10 if kept else 0,
                    rating,
                    clinic=cid,
                    comment=f"{tz} {day}",
                )
    day = date(2026, 3, 1)
    every = sa.filter_for_days(day, day, "Europe/London", None, zones)
    assert every.core[0] == every.core[1]  # no hour in all three clinics' days
    with db.read() as session:
        s = sa.summary(session, world.owner, every)
        board = sa.get_dashboard(session, world.owner, every, now=at(2, month=3))
        shown, _ = sa.comments(session, world.owner, every)
        ones = [
            sa.summary(session, world.owner, sa.filter_for_days(day, day, tz, cid, zones))
            for cid, tz in zones
        ]
        d = bd.distribution(session, world.owner, every)
    assert [o.responses for o in ones] == [2, 2, 2]
    assert s == board.summary == ones[0] + ones[1] + ones[2]
    assert (s.responses, s.promoters, s.detractors) == (6, 6, 0)  # only 1 March's
    assert d.ratings == [0, 0, 2, 2, 2] and d.nps == [0] * 10 + [6]
    assert list(board.weekly.responses) == [6]  # 1 March 2026 is a Sunday: week of 23 February
    assert [p.date() for p in board.weekly.period] == [date(2026, 2, 23)]
    assert len(shown) == 6 and all(c.endswith("2026-03-01") for c in shown.comment)


@pytest.mark.parametrize("literal", [parts.LITERAL_IDS, 0])
def test_a_service_filter_counts_the_responses_to_visits_holding_it_wherever_it_comes(
    db, world, practice, monkeypatch, literal
):
    """Filtered by Peel, every figure counts the two answers to visits booked as Peel and the
    answer to a visit booked as Consultation then Peel (it stays under Consultation by
    service, as on Cancellations), not the answer to a visit of Consultation alone: the key
    figures, distribution, groups, weeks, the lists behind a bar, comments, detractors, the
    export and the funnel's visits; all clinics (each on its own days) too. `literal` 0: the
    visits holding it later go into each statement as one bound value, as more than
    LITERAL_IDS of them do. Before, the figures had no service filter."""
    monkeypatch.setattr(parts, "LITERAL_IDS", literal)
    c, peel, svc = world.clinic_id, practice["peel"], world.service_id
    with db.write() as session:
        both = visit(session, world, MID, feedback=FeedbackStatus.COLLECTED)
        alone = visit(session, world, MID, feedback=FeedbackStatus.COLLECTED)
        visit(session, world, MID)  # Consultation alone, not asked
        for ident in (both, alone):
            session.get(Appointment, ident).service_id = svc
        session.add_all(
            [
                AppointmentService(appointment_id=both, service_id=svc),
                AppointmentService(appointment_id=both, service_id=peel, position=1),
            ]
        )
        stung = response(
            session,
            MID,
            3,
            2,
            clinic=c,
            provider=world.provider_id,
            service=svc,
            comment="The peel stung",
            appointment=both,
        )
        response(
            session,
            MID,
            1,
            1,
            clinic=c,
            provider=world.provider_id,
            service=svc,
            comment="Late start",
            appointment=alone,
        )
    f = replace(NOV, service_id=peel)
    zones = [(c, "Europe/London"), (practice["other"], "America/New_York")]
    every = sa.filter_for_days(
        date(2026, 11, 1), date(2026, 11, 30), "Europe/London", None, zones, service_id=peel
    )
    assert every.own_days
    with db.read() as session:
        for g in (f, every):  # 10/5 and 10/4 booked as Peel, 3/2 Consultation then Peel
            fig = sa.summary(session, world.owner, g)
            assert (fig.responses, fig.promoters, fig.detractors, fig.rating_sum) == (3, 2, 1, 11)
        services = sa.by_group(session, world.owner, f, "service")
        assert dict(zip(services.service, services.n, strict=True)) == {
            "Peel": 2,
            "Consultation": 1,
        }
        providers = sa.by_group(session, world.owner, f, "provider")
        assert sorted(providers.n) == [1, 2]
        dist = bd.distribution(session, world.owner, f)
        assert (dist.ratings, dist.nps[3], dist.nps[10], sum(dist.nps)) == (
            [0, 1, 0, 1, 1],
            1,
            2,
            3,
        )
        assert sa.trend(session, world.owner, f, "week").responses.sum() == 3
        listed, total = bd.responses_behind(session, world.owner, f, "service", svc)
        assert (list(listed.id), total) == ([stung], 1)
        listed, total = bd.responses_behind(session, world.owner, every, "rating", 2)
        assert (list(listed.id), total) == ([stung], 1)
        feed, _ = sa.comments(session, world.owner, f)
        assert list(feed.comment) == ["The peel stung"]
        funnel = sa.funnel(session, world.owner, f)
        assert (funnel.completed, funnel.requested, funnel.answered) == (1, 1, 1)
        assert sa.funnel(session, world.owner, NOV).completed == 3
        board = sa.get_dashboard(session, world.owner, f, now=at(25))
        assert board.summary == sa.summary(session, world.owner, f)
        assert board.funnel == funnel and list(board.detractors.id) == [stung]
        everyone = sa.recent_detractors(session, world.owner, now=at(25))
        assert len(everyone) == 2
    with db.write() as session:
        data = survey_export.export_csv(session, world.owner, every)
    exported = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert sorted(r["service"] for r in exported) == ["Consultation", "Peel", "Peel"]


def test_a_provider_filter_counts_only_the_responses_recording_that_provider(db, world, practice):
    """Answers of two providers, filtered by Dr Second: every figure counts only the four
    answers recording that provider (10/5, 10/4 and 3/2 in the clinic, 0/1 in the other),
    as its bar by provider does: the key figures (by bound statement, one clinic, all
    clinics on their own days, and with a service), the previous period, distribution,
    groups, weeks, the lists behind a bar, comments, detractors, the export (its audit
    keeping the provider) and the funnel's visits of that provider. Before, the figures had
    no provider filter (filter_for_days took no provider_id)."""
    c, one, second, peel = world.clinic_id, practice["one"], practice["second"], practice["peel"]
    with db.write() as session:
        mine, theirs = (visit(session, world, MID, feedback=FeedbackStatus.COLLECTED) for _ in "ab")
        waiting = visit(session, world, MID, feedback=FeedbackStatus.PENDING)
        unasked = visit(session, world, MID)
        for ident, provider in ((mine, one), (waiting, one), (theirs, second), (unasked, second)):
            session.get(Appointment, ident).provider_id = provider
        response(session, MID, 9, 5, clinic=c, provider=one, comment="Lovely", appointment=mine)
        stung = response(
            session,
            MID,
            3,
            2,
            clinic=c,
            provider=second,
            service=peel,
            comment="Waited long",
            appointment=theirs,
        )
    zones = [(c, "Europe/London"), (practice["other"], "America/New_York")]
    f = sa.filter_for_days(
        date(2026, 11, 1), date(2026, 11, 30), "UTC", None, (), provider_id=second
    )
    every = sa.filter_for_days(
        date(2026, 11, 1), date(2026, 11, 30), "Europe/London", None, zones, provider_id=second
    )
    assert every.own_days and f.provider_id == second
    october = sa.filter_for_days(
        date(2026, 10, 1), date(2026, 10, 31), "Europe/London", None, zones, provider_id=one
    )
    with db.read() as session:
        for g in (f, every):  # 10/5, 10/4, 3/2 and the other clinic's 0/1
            fig = sa.summary(session, world.owner, g)
            assert (fig.responses, fig.promoters, fig.detractors, fig.rating_sum) == (4, 2, 2, 12)
        fig = sa.summary(session, world.owner, replace(f, clinic_id=c))
        assert (fig.responses, fig.promoters, fig.detractors, fig.rating_sum) == (3, 2, 1, 11)
        assert sa.summary(session, world.owner, replace(f, service_id=peel)).responses == 3
        assert sa.summary(session, world.owner, replace(f, provider_id=one)).responses == 7
        assert sa.summary(session, world.owner, replace(f, provider_id=None)).responses == 12
        assert sa.summary(session, world.owner, october).responses == 1  # Dr Test's 0/1
        assert sa.summary(session, world.owner, replace(october, provider_id=second)).nps is None
        providers = sa.by_group(session, world.owner, every, "provider")
        assert dict(zip(providers.provider, providers.n, strict=True)) == {"Dr Second": 4}
        services = sa.by_group(session, world.owner, f, "service")
        assert dict(zip(services.service, services.n, strict=True)) == {
            "Peel": 3,
            "(not recorded)": 1,
        }
        dist = bd.distribution(session, world.owner, every)
        assert (dist.ratings, dist.nps[0], dist.nps[3], dist.nps[10], sum(dist.nps)) == (
            [1, 1, 0, 1, 1],
            1,
            1,
            2,
            4,
        )
        dist = bd.distribution(session, world.owner, replace(f, clinic_id=c))
        assert (dist.ratings, sum(dist.nps)) == ([0, 1, 0, 1, 1], 3)
        assert sa.trend(session, world.owner, every, "week").responses.sum() == 4
        listed, total = bd.responses_behind(session, world.owner, every, "rating", 2)
        assert (list(listed.id), total) == ([stung], 1)
        listed, total = bd.responses_behind(session, world.owner, f, "provider", one)
        assert (len(listed), total) == (0, 0)
        feed, _ = sa.comments(session, world.owner, every)
        assert list(feed.comment) == ["Waited long"]
        feed, _ = sa.comments(session, world.owner, replace(f, provider_id=one))
        assert list(feed.comment) == ["Lovely"]
        funnel = sa.funnel(session, world.owner, f)
        assert (funnel.completed, funnel.requested, funnel.answered) == (2, 1, 1)
        funnel = sa.funnel(session, world.owner, replace(every, provider_id=one))
        assert (funnel.completed, funnel.requested, funnel.answered) == (2, 2, 1)
        assert sa.funnel(session, world.owner, replace(f, provider_id=None)).completed == 4
        board = sa.get_dashboard(session, world.owner, every, now=at(25))
        assert board.summary == sa.summary(session, world.owner, every)
        assert board.funnel == sa.funnel(session, world.owner, every)
        assert list(board.detractors.id) == [stung]
        mine_only = sa.get_dashboard(session, world.owner, replace(f, provider_id=one), now=at(25))
        assert mine_only.detractors.empty and mine_only.summary.responses == 7
    with db.write() as session:
        data = survey_export.export_csv(session, world.owner, every)
    exported = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert len(exported) == 4 and {r["provider"] for r in exported} == {"Dr Second"}
    with db.read() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "export"))
        assert event.details["filters"]["provider_id"] == str(second)


def _plans_over_the_responses(db, reads, table: str = "survey_responses") -> list[str]:
    """The plan of every statement `reads` runs over `table`, one line per read of it
    (EXPLAIN QUERY PLAN; on PostgreSQL EXPLAIN, with the table vacuumed and analysed as a
    practice's is, and neither a sequential nor a bitmap scan on its few test rows)."""
    seen = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        if f"FROM {table}" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        with db.read() as session:
            reads(session)
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)
    assert seen
    lines = []
    with db.engine.connect() as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            auto = connection.execution_options(isolation_level="AUTOCOMMIT")
            # the test server commits without waiting for the log (synchronous_commit off),
            # and VACUUM marks a page all-visible (an index then answers alone) only once its
            # rows' commits are flushed: ANALYZE's commit, waited for, flushes those before it
            auto.exec_driver_sql("SET synchronous_commit = on")
            auto.exec_driver_sql(f"ANALYZE {table}")
            auto.exec_driver_sql(f"VACUUM ANALYZE {table}")
            connection.exec_driver_sql("SET enable_seqscan = off")
            connection.exec_driver_sql("SET enable_bitmapscan = off")
        for statement, parameters in seen:
            explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            rows = connection.exec_driver_sql(explain + statement, parameters)
            plan = [str(r[-1]) for r in rows]
            read = f" on {table}" if postgres else f"{table} USING"
            lines += [line for line in plan if read in line or re.search(rf"SCAN {table}\b", line)]
    return lines


def test_a_providers_figures_are_read_from_its_index_without_the_table(db, world, practice):
    """Filtered by a provider, the key figures, the distribution, the groups and the weeks
    (one clinic or all clinics on their own days, with a service or without) read the
    provider's range of ix_survey_responses_provider_figures and nothing of the table (with a
    service, the look-up of the responses' visits too). Before migration 0029 the provider's
    (provider_id, submitted_at) index held none of the figures' columns: SQLite read each
    response's row after it, PostgreSQL those rows or the whole period of the figures'
    covering index (a year of one provider on the 200k-visit bench: 151-169 pages a
    statement, 13-24 now)."""
    second, peel = practice["second"], practice["peel"]
    zones = [(world.clinic_id, "Europe/London"), (practice["other"], "America/New_York")]
    days = (date(2026, 11, 1), date(2026, 11, 30))
    plain = sa.filter_for_days(*days, "UTC", provider_id=second)
    every = sa.filter_for_days(*days, "Europe/London", None, zones, provider_id=second)
    filters = [
        plain,
        every,
        replace(plain, clinic_id=world.clinic_id),
        replace(every, service_id=peel),
    ]

    def reads(session):
        for f in filters:
            assert sa.summary(session, world.owner, f).responses
            bd.distribution(session, world.owner, f)
            sa.get_groups(session, world.owner, f)
            sa.get_trends(session, world.owner, f)

    def covered(line: str) -> bool:
        if db.engine.dialect.name != "postgresql":
            return "USING COVERING INDEX ix_survey_responses_provider_figures" in line
        # the pieces at the ends of all clinics' days (the table's aliases: a few hours of
        # every provider) are as cheap from the figures' index on these few rows, with a
        # service too since 0030 put the answers' visits there; the table is read by neither
        end = re.search(r" on survey_responses survey_responses_\d", line)
        names = ("provider_figures", "figures") if end else ("provider_figures",)
        return any(f"Index Only Scan using ix_survey_responses_{n} on" in line for n in names)

    lines = _plans_over_the_responses(db, reads)
    assert lines and all(covered(line) for line in lines), "\n".join(lines)


def test_migration_0029_puts_the_providers_index_back_going_down_and_up_again(db, world, practice):
    """0029 replaces the provider's (provider_id, submitted_at) index with
    ix_survey_responses_provider_figures; down to 0028 the narrow one is back, up again the
    covering one, and a provider's figures are the same through both."""
    import sqlalchemy as sa_
    from alembic import command

    from db import migrate

    second = practice["second"]
    f = sa.filter_for_days(date(2026, 11, 1), date(2026, 11, 30), "UTC", provider_id=second)

    def indexes() -> set[str]:
        with db.engine.connect() as connection:
            return {i["name"] for i in sa_.inspect(connection).get_indexes("survey_responses")}

    def figures() -> sa.Figures:
        with db.read() as session:
            return sa.summary(session, world.owner, f)

    before = figures()
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0028")
    down = indexes()
    assert "ix_survey_responses_provider_id_submitted_at" in down
    assert "ix_survey_responses_provider_figures" not in down
    assert figures() == before
    migrate.upgrade(db.engine)
    up = indexes()
    assert "ix_survey_responses_provider_figures" in up
    assert "ix_survey_responses_provider_id_submitted_at" not in up
    assert figures() == before and before.responses == 3


def test_a_services_figures_are_read_from_the_figures_index_without_the_table(db, world, practice):
    """Filtered by a service alone (all clinics, on one zone's days or each on its own), the look-up
    of the answers whose visit holds it after its first service, the key figures, the
    distribution, the groups and the weeks read their period of ix_survey_responses_figures
    and nothing of the table. Before migration 0030 that index held neither the answers'
    visits (the look-up read every answer's row on both databases) nor their ids (the
    figures found by id read every row on PostgreSQL: a year on the 200k-visit bench, 8,528
    pages a statement and 8,631 for the look-up, 113-216 now)."""
    peel, c = practice["peel"], world.clinic_id
    with db.write() as session:
        both = visit(session, world, MID, feedback=FeedbackStatus.COLLECTED)
        session.add(AppointmentService(appointment_id=both, service_id=peel, position=1))
        response(session, MID, 9, 5, clinic=c, service=world.service_id, appointment=both)
        # two years of answers of another service, written in no order of time, as a
        # practice's come from its clinics and providers (on a handful, or in order, reading
        # them from the table ties with an index on PostgreSQL)
        start = datetime(2025, 1, 1, tzinfo=UTC)
        session.execute(
            insert(SurveyResponse),
            [
                {
                    "submitted_at": start + timedelta(hours=(i * 7919) % 17_000),
                    "nps": i % 11,
                    "rating": 1 + i % 5,
                    "clinic_id": c,
                    "provider_id": world.provider_id,
                    "service_id": world.service_id,
                }
                for i in range(2_000)
            ],
        )
    zones = [(c, "Europe/London"), (practice["other"], "America/New_York")]
    days = (date(2026, 11, 1), date(2026, 11, 30))
    plain = sa.filter_for_days(*days, "UTC", service_id=peel)
    every = sa.filter_for_days(*days, "Europe/London", None, zones, service_id=peel)

    def reads(session):
        for f in (plain, every):
            assert sa.summary(session, world.owner, f).responses == 3
            bd.distribution(session, world.owner, f)
            sa.get_groups(session, world.owner, f)
            sa.get_trends(session, world.owner, f)

    lines = _plans_over_the_responses(db, reads)
    covered = (
        "Index Only Scan using ix_survey_responses_figures"
        if db.engine.dialect.name == "postgresql"
        else "USING COVERING INDEX ix_survey_responses_figures"
    )
    assert lines and all(covered in line for line in lines), "\n".join(lines)


def test_a_providers_funnel_is_read_from_its_index_without_the_table(db, world, practice):
    """Filtered by a provider (one clinic, or all clinics on their own days), the funnel's
    three counts read the provider's range of ix_appointments_provider_day once, each
    visit's state and clinic checked in it, and nothing of the table. Before migration 0030
    the provider's (provider_id, start_at) index held neither: both databases read the
    provider's visits from the table (a year on the 200k-visit bench: 2,507 pages on
    PostgreSQL, SQLite 8.0 ms); then each count read the range again (271 pages)."""
    second, c = practice["second"], world.clinic_id
    with db.write() as session:
        for feedback in (FeedbackStatus.NONE, FeedbackStatus.PENDING, FeedbackStatus.COLLECTED):
            ident = visit(session, world, MID, feedback=feedback)
            session.get(Appointment, ident).provider_id = second
        for feedback in [*FeedbackStatus] * 10:  # Dr Test's: a provider has a few of the visits
            ident = visit(session, world, MID, feedback=feedback)
            session.get(Appointment, ident).provider_id = world.provider_id
    zones = [(c, "Europe/London"), (practice["other"], "America/New_York")]
    days = (date(2026, 11, 1), date(2026, 11, 30))
    plain = sa.filter_for_days(*days, "UTC", provider_id=second)
    every = sa.filter_for_days(*days, "Europe/London", None, zones, provider_id=second)

    def reads(session):
        for f in (plain, every, replace(plain, clinic_id=c)):
            funnel = sa.funnel(session, world.owner, f)
            assert (funnel.completed, funnel.requested, funnel.answered) == (3, 2, 1)

    lines = _plans_over_the_responses(db, reads, "appointments")
    covered = (
        "Index Only Scan using ix_appointments_provider_day"
        if db.engine.dialect.name == "postgresql"
        else "USING COVERING INDEX ix_appointments_provider_day"
    )
    assert len(lines) == 3 and all(covered in line for line in lines), "\n".join(lines)


def test_migration_0030_widens_the_figures_and_provider_indexes_going_down_and_up_again(
    db, world, practice
):
    """0030 adds appointment_id to ix_survey_responses_figures and replaces the provider's
    (provider_id, start_at) index with ix_appointments_provider_day; down to 0029 both are
    as they were, up again the new ones, and a service's figures and a provider's funnel are
    the same through both."""
    import sqlalchemy as sa_
    from alembic import command

    from db import migrate

    second, peel = practice["second"], practice["peel"]
    with db.write() as session:
        ident = visit(session, world, MID, feedback=FeedbackStatus.COLLECTED)
        session.get(Appointment, ident).provider_id = second
    days = (date(2026, 11, 1), date(2026, 11, 30))
    service = sa.filter_for_days(*days, "UTC", service_id=peel)
    provider = sa.filter_for_days(*days, "UTC", provider_id=second)

    def indexes() -> dict[str, list[str]]:
        with db.engine.connect() as connection:
            inspector = sa_.inspect(connection)
            return {
                i["name"]: i["column_names"]
                for table in ("survey_responses", "appointments")
                for i in inspector.get_indexes(table)
            }

    def figures() -> tuple[sa.Figures, sa.Funnel]:
        with db.read() as session:
            return (
                sa.summary(session, world.owner, service),
                sa.funnel(session, world.owner, provider),
            )

    before = figures()
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0029")
    down = indexes()
    assert down["ix_survey_responses_figures"][-1] == "rating"
    assert down["ix_appointments_provider_id_start_at"] == ["provider_id", "start_at"]
    assert "ix_appointments_provider_day" not in down
    assert figures() == before
    migrate.upgrade(db.engine)
    up = indexes()
    assert up["ix_survey_responses_figures"][-1] == "appointment_id"
    assert up["ix_appointments_provider_day"][:2] == ["provider_id", "start_at"]
    assert "ix_appointments_provider_id_start_at" not in up
    assert figures() == before
    assert before[0].responses == 2 and before[1].completed == 1
