"""Every cancellation figure checked against a small data set computed by hand.

Two clinics (London, New York), two weeks (Mon 23 Mar – Sun 5 Apr 2026) spanning London's
spring-forward change on 29 March, so clinic-local weekday/hour and local range bounds matter.

    id   clinic  local start        status      sms  lead   notice  notes
    A1   LDN     Mon 23 09:00 GMT   completed   yes  10 d
    A2   LDN     Mon 23 10:00       no-show     no   2 d            patient 2, fee 40 (open)
    A3   LDN     Tue 24 09:00       cancelled   yes  20 d   5 h     late, fee 25 + 20 points
    A4   LDN     Mon 30 09:00 BST   completed   yes  12 h           provider 2, online 2 h
    A5   LDN     Mon 30 09:00       cancelled   no   4 d    30 h    refilled by A6
    A6   LDN     Mon 30 09:15       completed   no   10 h           created after A5's cancel
    A7   LDN     Thu 02 14:00       no-show     yes  5 d            patient 2, fee 40 waived
    A8   LDN     Fri 03 16:00       cancelled   no   40 d   1 h     patient 2, late, fee 25,
                                                                    two services (60 + 150)
    A13  LDN     Sun 05 23:30 BST   completed   no   3 d            (22:30 UTC)
    N1   NYC     Wed 25 08:00 EDT   completed   yes  1 d            provider 2, Peel
    N2   NYC     Wed 25 08:30       no-show     no   40 d           Peel 150
  not counted: an out-of-office block, a declined online request (turnaround 30 h), a declined
  untimed online request (turnaround 30 min), a requested one, one on Sun 22 Mar 23:30 GMT and a
  cancelled one on Mon 6 Apr 00:30 BST (= Sun 5 Apr 23:30 UTC) with a 25 fee, and a declined
  staff booking overlapping A3 (not a refill: declined).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import delete, func, insert, select

from core.analytics import breakdowns as bd
from core.analytics import cancellation_parts as parts
from core.analytics import cancellation_rollups as rollups
from core.analytics import cancellations as ca
from core.kernel.authz import Permission
from core.kernel.clock import local_to_utc
from core.kernel.errors import PermissionDenied, ValidationError
from core.practice.choices import list_choices
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentService,
    AppointmentStatus,
    CancellationRollup,
    CancellationRollupDirty,
    Clinic,
    LedgerEntry,
    LedgerKind,
    Package,
    Provider,
    Service,
    Setting,
    Source,
)
from tests.factories import make_patient

S = AppointmentStatus
FILTERS = parts.AnalyticsFilters(start=date(2026, 3, 23), end=date(2026, 4, 5))
H, D = timedelta(hours=1), timedelta(days=1)


@pytest.fixture
def data(db, world):
    """The table above; returns the ids the tests filter on."""
    with db.write() as session:
        ny = Clinic(name="NY", timezone="America/New_York")
        peel = Service(name="Peel", duration_minutes=30, price_cents=15000)
        provider2 = Provider(name="Dr Two")
        session.add_all([ny, peel, provider2])
        session.flush()
        p1, p2 = world.patient_id, make_patient(session, first_name="Bea").id

        def add(
            start_local,
            status,
            *,
            clinic=world.clinic_id,
            tz="Europe/London",
            lead=D,
            sms=False,
            **fields,
        ):
            day, at = start_local
            start = local_to_utc(day, at, tz)
            values = dict(
                clinic_id=clinic,
                provider_id=world.provider_id,
                patient_id=p1,
                service_id=world.service_id,
                status=status,
                start_at=start,
                end_at=start + timedelta(minutes=30),
                booked_at=start - lead,
                created_at=start - lead,
                sms_reminder=sms,
            )
            values |= fields
            if "notice" in values:
                values["cancelled_at"] = start - values.pop("notice")
            appointment = Appointment(**values)
            session.add(appointment)
            session.flush()
            return appointment

        def fee(appointment, kind, cents=0, points=0, waived=False):
            session.add(
                LedgerEntry(
                    patient_id=appointment.patient_id,
                    appointment_id=appointment.id,
                    kind=kind,
                    amount_cents=cents,
                    points=points,
                    waived_at=datetime(2026, 4, 10, tzinfo=UTC) if waived else None,
                )
            )

        mar, apr = (lambda d: date(2026, 3, d)), (lambda d: date(2026, 4, d))
        a1 = add((mar(23), time(9)), S.COMPLETED, lead=10 * D, sms=True)
        a2 = add((mar(23), time(10)), S.NO_SHOW, lead=2 * D, patient_id=p2)
        a3 = add(
            (mar(24), time(9)),
            S.CANCELLED,
            lead=20 * D,
            sms=True,
            notice=5 * H,
            late_cancellation=True,
            cancel_reason="Work",
        )
        a4 = add(
            (mar(30), time(9)),
            S.COMPLETED,
            lead=12 * H,
            sms=True,
            provider_id=provider2.id,
            source=Source.ONLINE,
        )
        a4.decided_at = a4.created_at + 2 * H
        a5 = add((mar(30), time(9)), S.CANCELLED, lead=4 * D, notice=30 * H, cancel_reason="Travel")
        add((mar(30), time(9, 15)), S.COMPLETED, lead=10 * H)  # A6 refills A5
        a7 = add((apr(2), time(14)), S.NO_SHOW, lead=5 * D, sms=True, patient_id=p2)
        a8 = add(
            (apr(3), time(16)),
            S.CANCELLED,
            lead=40 * D,
            notice=H,
            patient_id=p2,
            late_cancellation=True,
        )
        session.add_all(
            [
                AppointmentService(appointment_id=a8.id, service_id=world.service_id),
                AppointmentService(appointment_id=a8.id, service_id=peel.id, position=1),
            ]
        )
        add((apr(5), time(23, 30)), S.COMPLETED, lead=3 * D)  # A13
        add(
            (mar(25), time(8)),
            S.COMPLETED,
            clinic=ny.id,
            tz="America/New_York",
            lead=D,
            sms=True,
            provider_id=provider2.id,
            service_id=peel.id,
        )
        add(
            (mar(25), time(8, 30)),
            S.NO_SHOW,
            clinic=ny.id,
            tz="America/New_York",
            lead=40 * D,
            service_id=peel.id,
        )
        # not counted
        add((mar(23), time(13)), S.SCHEDULED, kind=AppointmentKind.OUT_OF_OFFICE, patient_id=None)
        declined = add((mar(25), time(11)), S.DECLINED, lead=3 * D, source=Source.ONLINE)
        declined.decided_at = declined.created_at + 30 * H
        add((mar(24), time(9)), S.DECLINED, lead=5 * H)  # overlaps A3, created after: declined
        session.add(
            Appointment(
                clinic_id=world.clinic_id,
                patient_id=p1,
                status=S.DECLINED,
                source=Source.ONLINE,
                requested_day=mar(26),
                created_at=datetime(2026, 3, 20, 9, tzinfo=UTC),
                decided_at=datetime(2026, 3, 20, 9, 30, tzinfo=UTC),
            )
        )
        session.add(
            Appointment(
                clinic_id=world.clinic_id, patient_id=p1, status=S.REQUESTED, requested_day=mar(27)
            )
        )
        add((mar(22), time(23, 30)), S.COMPLETED)
        outside = add((apr(6), time(0, 30)), S.CANCELLED, notice=H, late_cancellation=True)
        fee(a2, LedgerKind.NO_SHOW_FEE, 4000)
        fee(a3, LedgerKind.LATE_CANCEL_FEE, 2500)
        fee(a3, LedgerKind.POINTS, points=20)
        fee(a7, LedgerKind.NO_SHOW_FEE, 4000, waived=True)
        fee(a8, LedgerKind.LATE_CANCEL_FEE, 2500)
        fee(outside, LedgerKind.LATE_CANCEL_FEE, 2500)
        return {
            "ny": ny.id,
            "peel": peel.id,
            "provider2": provider2.id,
            "p1": p1,
            "p2": p2,
            "a1": a1.id,
            "a5": a5.id,
            "a8": a8.id,
        }


def figures(db, world, filters=FILTERS, actor=None):
    with db.read() as session:
        return ca.compute_figures(session, actor or world.owner, filters)


def counts(c: parts.Counts) -> tuple[int, int, int, int, int]:
    return c.booked, c.cancelled, c.late, c.no_shows, c.attended


def test_totals_and_rates(db, world, data):
    f = figures(db, world)
    assert counts(f.totals) == (11, 3, 2, 3, 5)
    assert f.totals.cancellation_rate == pytest.approx(3 / 11)
    assert f.totals.late_cancellation_rate == pytest.approx(2 / 11)
    assert f.totals.no_show_rate == pytest.approx(3 / 8)


def test_no_show_rate_by_sms_reminder(db, world, data):
    yes, no = figures(db, world).by_sms
    assert (yes.label, counts(yes), yes.no_show_rate) == ("SMS reminder", (5, 1, 1, 1, 3), 0.25)
    assert (no.label, counts(no), no.no_show_rate) == ("No SMS reminder", (6, 2, 1, 2, 2), 0.5)


def test_weekday_hour_and_heatmap_are_clinic_local(db, world, data):
    f = figures(db, world)
    assert [counts(c) for c in f.by_weekday] == [
        (5, 1, 0, 1, 3),
        (1, 1, 1, 0, 0),
        (2, 0, 0, 1, 1),
        (1, 0, 0, 1, 0),
        (1, 1, 1, 0, 0),
        (0, 0, 0, 0, 0),
        (1, 0, 0, 0, 1),
    ]
    # A4-A6 start at 08:00 UTC after the clocks changed: still 09:00 in London;
    # the New York visits are at 08:00 local (12:00 UTC); A13 is Sunday 23:00 local
    cells = {(c.weekday, c.hour): counts(c.counts) for c in f.heatmap}
    assert cells == {
        (0, 9): (4, 1, 0, 0, 3),
        (0, 10): (1, 0, 0, 1, 0),
        (1, 9): (1, 1, 1, 0, 0),
        (2, 8): (2, 0, 0, 1, 1),
        (3, 14): (1, 0, 0, 1, 0),
        (4, 16): (1, 1, 1, 0, 0),
        (6, 23): (1, 0, 0, 0, 1),
    }
    assert [c.label for c in f.by_hour] == ["08:00", "09:00", "10:00", "14:00", "16:00", "23:00"]
    assert [c.booked for c in f.by_hour] == [2, 5, 1, 1, 1, 1]


def test_lead_time_and_weekly_trend(db, world, data):
    f = figures(db, world)
    assert [(c.label, counts(c)) for c in f.by_lead_time] == [
        ("under 1 day", (2, 0, 0, 0, 2)),
        ("1–3 days", (2, 0, 0, 1, 1)),
        ("3–7 days", (3, 1, 0, 1, 1)),
        ("7–14 days", (1, 0, 0, 0, 1)),
        ("14–30 days", (1, 1, 1, 0, 0)),
        ("30+ days", (2, 1, 1, 1, 0)),
    ]
    assert [(c.label, counts(c)) for c in f.weekly] == [
        ("2026-03-23", (5, 1, 1, 2, 2)),
        ("2026-03-30", (6, 2, 1, 1, 3)),
    ]


def test_notice_turnaround_and_reasons(db, world, data):
    f = figures(db, world)
    assert dict(f.notice) == {
        "under 2 h": 1,
        "2–12 h": 1,
        "12–24 h": 0,
        "24–48 h": 1,
        "2–7 days": 0,
        "7+ days": 0,
    }
    assert dict(f.turnaround) == {
        "under 1 h": 1,
        "1–4 h": 1,
        "4–24 h": 0,
        "1–3 days": 1,
        "3+ days": 0,
    }
    assert f.turnaround_mean_hours == pytest.approx((2 + 30 + 0.5) / 3)
    assert f.reasons == [("(no reason)", 1), ("Travel", 1), ("Work", 1)]


def test_fees_revenue_refill_and_repeat_patients(db, world, data):
    f = figures(db, world)
    assert f.fees == parts.Fees(
        late_assessed_cents={"GBP": 5000},
        late_waived_cents={"GBP": 0},
        no_show_assessed_cents={"GBP": 8000},
        no_show_waived_cents={"GBP": 4000},
        points_assessed=20,
        points_waived=0,
        cancellation_points=20,
    )
    assert f.revenue_at_risk_cents == {"GBP": 6000 * 4 + (6000 + 15000) + 15000}
    assert f.refilled == 1 and f.refill_rate == pytest.approx(1 / 3)
    assert f.repeat_patients == [
        parts.RepeatPatient(data["p2"], "Bea Morgan", 1, 2),
        parts.RepeatPatient(data["p1"], "Alex Morgan", 1, 1),
    ]


@pytest.mark.parametrize(("window", "late"), [(0, 0), (1, 0), (2, 1), (6, 2), (36, 3)])
def test_what_if_next_to_the_actual_policy(db, world, data, window, late):
    what_if = parts.WhatIf(window_hours=window, late_fee_cents=1000, points=5)
    f = figures(db, world, parts.AnalyticsFilters(FILTERS.start, FILTERS.end, what_if=what_if))
    assert f.what_if == parts.WhatIfResult(
        actual_late=2,
        actual_fee_cents={"GBP": 5000},
        actual_points=20,
        window_hours=window,
        late=late,
        fee_cents={"GBP": 1000 * late},
        points=5 * late,
    )


def test_what_if_leaves_out_the_practices_own_cancellations(db, world, data):
    what_if = parts.AnalyticsFilters(FILTERS.start, FILTERS.end, what_if=parts.WhatIf(6, 1000, 5))
    assert figures(db, world, what_if).what_if.late == 2
    with db.write() as session:
        start = local_to_utc(date(2026, 3, 26), time(11), "Europe/London")
        for by in ("Max Manager", "patient"):
            session.add(
                Appointment(
                    clinic_id=world.clinic_id,
                    patient_id=world.patient_id,
                    status=S.CANCELLED,
                    start_at=start,
                    end_at=start + 0.5 * H,
                    cancelled_at=start - 2 * H,
                    cancelled_by=by,
                    booked_at=start - 2 * D,
                )
            )
    f = figures(db, world, what_if)
    assert f.totals.cancelled == 5 and f.what_if.late == 3 and f.what_if.fee_cents == {"GBP": 3000}


def test_filters_by_clinic_provider_and_service(db, world, data):
    london = figures(
        db, world, parts.AnalyticsFilters(FILTERS.start, FILTERS.end, clinic_id=world.clinic_id)
    )
    assert counts(london.totals) == (9, 3, 2, 2, 4)
    assert london.totals.no_show_rate == pytest.approx(2 / 6)
    two = figures(
        db, world, parts.AnalyticsFilters(FILTERS.start, FILTERS.end, provider_id=data["provider2"])
    )
    assert counts(two.totals) == (2, 0, 0, 0, 2)
    peel = figures(
        db, world, parts.AnalyticsFilters(FILTERS.start, FILTERS.end, service_id=data["peel"])
    )
    # N1, N2 and A8, booked as Consultation then Peel (its 210 at risk beside N2's 150)
    assert counts(peel.totals) == (3, 1, 1, 1, 1) and peel.revenue_at_risk_cents == {"GBP": 36000}
    one_day = figures(db, world, parts.AnalyticsFilters(date(2026, 3, 30), date(2026, 3, 30)))
    assert counts(one_day.totals) == (3, 1, 0, 0, 2) and one_day.refilled == 1


def test_a_screen_may_leave_out_the_optional_parts(db, world, data):
    lean = figures(db, world, parts.AnalyticsFilters(FILTERS.start, FILTERS.end, parts=frozenset()))
    assert lean.reasons == [] and lean.repeat_patients == []
    assert counts(lean.totals) == (11, 3, 2, 3, 5) and lean.fees.late_assessed_cents == {
        "GBP": 5000
    }
    with db.write() as session:
        payload = ca.export_csv(
            session,
            world.owner,
            parts.AnalyticsFilters(FILTERS.start, FILTERS.end, parts=frozenset()),
        ).decode("utf-8-sig")
    assert "reason,Work,cancelled,1" in payload and "repeat_patient" in payload


def test_empty_range_has_no_rates(db, world, data):
    f = figures(db, world, parts.AnalyticsFilters(date(2025, 1, 1), date(2025, 1, 2)))
    assert counts(f.totals) == (0, 0, 0, 0, 0)
    assert f.totals.no_show_rate is None and f.refill_rate is None and f.heatmap == []


def test_permission_and_invalid_filters(db, world, data):
    with pytest.raises(PermissionDenied):
        figures(db, world, actor=world.staff)
    assert figures(db, world, actor=world.manager).totals.booked == 11
    with pytest.raises(ValidationError, match="before the start"):
        figures(db, world, parts.AnalyticsFilters(date(2026, 4, 5), date(2026, 3, 1)))
    with pytest.raises(ValidationError, match="between 0 and 336"):
        figures(
            db,
            world,
            parts.AnalyticsFilters(FILTERS.start, FILTERS.end, what_if=parts.WhatIf(-1, 0, 0)),
        )
    with pytest.raises(ValidationError, match="cannot be negative"):
        figures(
            db,
            world,
            parts.AnalyticsFilters(FILTERS.start, FILTERS.end, what_if=parts.WhatIf(4, -100, 0)),
        )


def test_as_dict_has_what_the_cli_prints(db, world, data):
    d = figures(db, world).as_dict()
    assert d["no_show_rate"] == pytest.approx(3 / 8)
    assert d["no_show_rate_by_sms"] == {"SMS reminder": 0.25, "No SMS reminder": 0.5}
    assert [w["no_show_rate"] for w in d["by_weekday"]][:2] == [0.25, None]
    assert [b["booked"] for b in d["lead_time_buckets"]] == [2, 2, 3, 1, 1, 2]
    assert d["filters"]["start"] == "2026-03-23"


def test_export_is_audited_and_spreadsheet_safe(db, world, data):
    with db.write() as session:
        first = session.get(Appointment, data["a5"])
        first.cancel_reason = '=HYPERLINK("http://evil")'
    with db.write() as session:
        payload = ca.export_csv(session, world.manager, FILTERS).decode("utf-8-sig")
    assert "'=HYPERLINK" in payload and "\n=HYPERLINK" not in payload.replace('"', "")
    assert "totals,All,booked,11" in payload
    assert "repeat_patient" in payload and "Bea Morgan" in payload
    with db.read() as session:
        from core.kernel import audit

        events = audit.list_events(session, world.owner, action="export")
        assert events[0].entity == "cancellation_analytics" and events[0].details["rows"] > 10
    with db.write() as session, pytest.raises(PermissionDenied):
        ca.export_csv(session, world.staff, FILTERS)


def _in_dollars(db, data) -> None:
    """The New York clinic charges in US dollars: a $30 no-show fee on N2, and a patient's
    cancellation 3 hours before a visit on Thu 26 Mar."""
    with db.write() as session:
        session.get(Clinic, data["ny"]).currency = "USD"
        n2 = session.scalars(
            select(Appointment).where(
                Appointment.clinic_id == data["ny"], Appointment.status == S.NO_SHOW
            )
        ).one()
        session.add(
            LedgerEntry(
                patient_id=n2.patient_id,
                appointment_id=n2.id,
                kind=LedgerKind.NO_SHOW_FEE,
                amount_cents=3000,
            )
        )
        start = local_to_utc(date(2026, 3, 26), time(10), "America/New_York")
        session.add(
            _visit(
                data,
                S.CANCELLED,
                start,
                start - 5 * D,
                cancelled_at=start - 3 * H,
                cancelled_by="patient",
            )
        )


def test_money_is_kept_per_currency_and_never_added_across(db, world, data):
    """London in pounds, New York in dollars: revenue at risk, fees and the what-if are one
    amount per currency (before, pounds and dollars were added into one number); counts and
    rates stay practice-wide; the roll-ups agree with the appointments."""
    _in_dollars(db, data)
    what_if = parts.AnalyticsFilters(FILTERS.start, FILTERS.end, what_if=parts.WhatIf(6, 1000, 5))
    direct, rolled = _both(db, world, what_if)
    assert rolled == direct
    assert rolled["revenue_at_risk_cents"] == {"GBP": 6000 * 4 + 21000, "USD": 15000}
    assert rolled["fees"]["no_show_assessed_cents"] == {"GBP": 8000, "USD": 3000}
    assert rolled["fees"]["no_show_waived_cents"] == {"GBP": 4000, "USD": 0}
    assert rolled["fees"]["late_assessed_cents"] == {"GBP": 5000, "USD": 0}
    assert rolled["fees"]["points_assessed"] == 20
    # within 6 hours: A3 (5 h) and A8 (1 h) in London, the new one (3 h) in New York
    assert rolled["what_if"] == {
        "actual_late": 2,
        "actual_fee_cents": {"GBP": 5000, "USD": 0},
        "actual_points": 20,
        "window_hours": 6,
        "late": 3,
        "fee_cents": {"GBP": 2000, "USD": 1000},
        "points": 15,
    }
    assert rolled["totals"]["booked"] == 12 and rolled["totals"]["cancelled"] == 4
    by_provider = figures(  # the direct path (a provider chosen) keeps them apart too
        db, world, parts.AnalyticsFilters(FILTERS.start, FILTERS.end, provider_id=world.provider_id)
    )
    assert by_provider.revenue_at_risk_cents == {"GBP": 6000 * 4 + 21000, "USD": 15000}
    london = figures(
        db, world, parts.AnalyticsFilters(FILTERS.start, FILTERS.end, clinic_id=world.clinic_id)
    )
    assert london.revenue_at_risk_cents == {"GBP": 45000}
    assert london.fees.no_show_assessed_cents == {"GBP": 8000}


def test_the_export_has_every_week_the_chart_draws_the_empty_ones_with_n_0(db, world, data):
    """The weekly chart keeps a week without bookings (n = 0); the export skipped it, so the
    file's weeks and the chart's did not line up. Three weeks with bookings, two without."""
    longer = parts.AnalyticsFilters(FILTERS.start, FILTERS.end + timedelta(days=21))
    with db.write() as session:
        payload = ca.export_csv(session, world.owner, longer).decode("utf-8-sig")
    weeks = [line.split(",")[1] for line in payload.splitlines() if line.startswith("week,")]
    mondays = ["2026-03-23", "2026-03-30", "2026-04-06", "2026-04-13", "2026-04-20"]
    assert list(dict.fromkeys(weeks)) == mondays
    for monday in mondays[3:]:
        assert f"week,{monday},booked,0," in payload.splitlines()
        assert f"week,{monday},no_show_rate,," in payload.splitlines()


def test_the_export_has_the_heatmap_and_the_weeks_a_year_earlier(db, world, data):
    """Two of the dashboard's charts had no rows in the export: the weekday × hour heatmap and
    the weekly chart's line a year earlier. A no-show 52 weeks before A1 (Mon 24 Mar 2025)
    is the earlier line's one week; London's Monday 09:00 holds A1, A4, A5 and A6."""
    with db.write() as session:
        start = local_to_utc(date(2025, 3, 24), time(9), "Europe/London")
        session.add(
            Appointment(
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                patient_id=world.patient_id,
                service_id=world.service_id,
                status=S.NO_SHOW,
                start_at=start,
                end_at=start + timedelta(minutes=30),
                booked_at=start - D,
            )
        )
    with db.write() as session:
        lines = ca.export_csv(session, world.owner, FILTERS).decode("utf-8-sig").splitlines()
    assert "weekday_hour,Mon 09:00,booked,4," in lines
    assert "weekday_hour,Mon 09:00,cancellation_rate,0.2500," in lines  # A5 of four
    assert "weekday_hour,Sun 23:00,visits_due,1," in lines  # A13, clinic-local
    earlier = [line for line in lines if line.startswith("week_a_year_earlier,")]
    assert list(dict.fromkeys(line.split(",")[1] for line in earlier)) == [
        "2025-03-24",
        "2025-03-31",
    ]
    assert "week_a_year_earlier,2025-03-24,no_show_rate,1.0000," in earlier
    assert "week_a_year_earlier,2025-03-31,booked,0," in earlier


def test_the_export_has_a_currency_column_and_the_rates_by_provider_and_service(db, world, data):
    """Money is one row per currency, named; counts and rates name none. The rates by provider
    and by service the dashboard draws are there too (before: missing, and one sum of pounds
    and dollars with no currency)."""
    _in_dollars(db, data)
    what_if = parts.AnalyticsFilters(FILTERS.start, FILTERS.end, what_if=parts.WhatIf(6, 1000, 5))
    with db.write() as session:
        payload = ca.export_csv(session, world.owner, what_if).decode("utf-8-sig")
    lines = payload.splitlines()
    assert lines[0] == "section,group,metric,value,currency"
    assert "totals,All,booked,12," in lines
    assert "revenue_at_risk,All,cents,45000,GBP" in lines
    assert "revenue_at_risk,All,cents,15000,USD" in lines
    assert not [line for line in lines if line.startswith("revenue_at_risk") and "60000" in line]
    assert "fees,no_show_assessed_cents,value,8000,GBP" in lines
    assert "fees,no_show_assessed_cents,value,3000,USD" in lines
    assert "fees,points_assessed,value,20," in lines
    assert "what_if,All,fee_cents,2000,GBP" in lines and "what_if,All,fee_cents,1000,USD" in lines
    assert "what_if,All,late,3," in lines
    # the rates by provider and by service, as the dashboard's charts show them
    assert "provider,Dr Two,booked,2," in lines
    assert "provider,Dr Two,no_show_rate,0.0000," in lines
    assert "provider,Dr Test,booked,9," in lines
    assert "provider,Dr Test,cancellation_rate,0.3333," in lines  # 3 of 9
    assert "provider,(not recorded),booked,1," in lines  # the New York cancellation
    assert "service,Peel,booked,2," in lines and "service,Peel,no_show_rate,0.5000," in lines
    assert "service,Consultation,booked,9," in lines
    # each rate beside its own n, and a rate of n = 0 empty (not 0)
    assert "provider,Dr Test,cancelled,3," in lines
    assert "provider,Dr Test,visits_due,6," in lines and "provider,Dr Test,no_shows,3," in lines
    assert "provider,Dr Test,no_show_rate,0.5000," in lines
    assert "provider,(not recorded),visits_due,0," in lines
    assert "provider,(not recorded),no_show_rate,," in lines


def test_offset_periods_find_dst_changes_to_the_second():
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)
    assert parts.offset_periods("Europe/London", start, end) == [
        (start, 0),
        (datetime(2026, 3, 29, 1, tzinfo=UTC), 3600),
        (datetime(2026, 10, 25, 1, tzinfo=UTC), 0),
    ]
    assert parts.offset_periods("Asia/Kolkata", start, end) == [(start, 19800)]


# ---------------------------------------------------------------- the maintained roll-ups


def _visit(data, status, start: datetime, booked: datetime, **fields) -> Appointment:
    """A half-hour visit of the first patient at the NY clinic (unless `fields` say otherwise),
    added after the table above."""
    values = dict(
        clinic_id=data["ny"],
        patient_id=data["p1"],
        status=status,
        start_at=start,
        end_at=start + timedelta(minutes=30),
        booked_at=booked,
    )
    return Appointment(**values | fields)


def _imported(clinic_id: int, start: datetime) -> dict:
    """A completed visit as an import inserts it, in bulk, bypassing the ORM (no day marked)."""
    return dict(
        clinic_id=clinic_id,
        status="completed",
        kind="appointment",
        mode="in_person",
        source="import",
        start_at=start,
        booked_at=datetime(2026, 3, 1, tzinfo=UTC),
    )


def _rates(session, world, filters, use_rollups=True):
    """The rates by provider and by service (core.analytics.breakdowns), as comparable values."""
    return {
        group: [
            (g.dimension, g.key, g.counts)
            for g in bd.rates_by(session, world.owner, filters, group, use_rollups=use_rollups)
        ]
        for group in bd.GROUPS
    }


def _both(db, world, filters):
    """The figures and the rates by provider and service from the appointments, and from the
    roll-ups after the jobs loop's refresh; before it, a read with the lagging days from the
    appointments gives the same."""
    with db.read() as session:
        direct = ca.compute_figures(session, world.owner, filters, use_rollups=False)
        lagging = ca.compute_figures(session, world.owner, filters)
        rates = _rates(session, world, filters, use_rollups=False)
        assert _rates(session, world, filters) == rates
    assert lagging.as_dict() == direct.as_dict()
    rollups.refresh_job(db, None)
    with db.read() as session:
        rolled = ca.compute_figures(session, world.owner, filters)
        assert _rates(session, world, filters) == rates
    assert rolled.from_rollups and not direct.from_rollups and rolled.lagging_days == 0
    return direct.as_dict(), rolled.as_dict()


def _lagging(db, world, filters) -> int:
    """How many clinic-days a read takes from the appointments while the roll-ups lag; its
    figures are the appointments' own."""
    with db.read() as session:
        read = ca.compute_figures(session, world.owner, filters)
        direct = ca.compute_figures(session, world.owner, filters, use_rollups=False)
        assert _rates(session, world, filters) == _rates(session, world, filters, False)
    assert read.from_rollups and read.as_dict() == direct.as_dict()
    return read.lagging_days


def test_the_roll_ups_give_the_same_figures_as_the_appointments(db, world, data):
    what_if = parts.WhatIf(6, 1000, 5)
    for filters in (
        parts.AnalyticsFilters(FILTERS.start, FILTERS.end, what_if=what_if),
        parts.AnalyticsFilters(FILTERS.start, FILTERS.end, clinic_id=data["ny"]),
        parts.AnalyticsFilters(date(2026, 3, 30), date(2026, 4, 5), what_if=what_if),
        parts.AnalyticsFilters(date(2026, 3, 22), date(2026, 4, 6), what_if=parts.WhatIf(36, 0, 0)),
    ):
        direct, rolled = _both(db, world, filters)
        assert rolled == direct
    assert figures(db, world).from_rollups  # the page's unfiltered view reads them
    by_provider = figures(
        db, world, parts.AnalyticsFilters(FILTERS.start, FILTERS.end, provider_id=data["provider2"])
    )
    assert not by_provider.from_rollups


def test_the_roll_ups_follow_every_change(db, world, data):
    figures(db, world)  # builds them
    with db.write() as session:
        moved = session.get(Appointment, data["a1"])  # Mon 23 Mar 09:00 → Sat 4 Apr 11:00
        moved.start_at = local_to_utc(date(2026, 4, 4), time(11), "Europe/London")
        moved.end_at = moved.start_at + timedelta(minutes=30)
        cancelled = session.get(Appointment, data["a5"])
        cancelled.cancelled_by = "Max Manager"
        fee = session.scalars(
            select(LedgerEntry).where(LedgerEntry.kind == LedgerKind.LATE_CANCEL_FEE)
        ).first()
        fee.waived_at = datetime(2026, 5, 1, tzinfo=UTC)
        march = datetime(2026, 3, 1, tzinfo=UTC)
        session.add(_visit(data, S.NO_SHOW, datetime(2026, 3, 31, 15, tzinfo=UTC), march))
    with db.read() as session:
        assert not rollups.is_fresh(session)
    what_if = parts.AnalyticsFilters(FILTERS.start, FILTERS.end, what_if=parts.WhatIf(36, 100, 1))
    direct, rolled = _both(db, world, what_if)
    assert rolled == direct
    assert rolled["totals"]["no_shows"] == 4 and rolled["by_weekday"][5]["booked"] == 1
    assert rolled["what_if"]["late"] == 2 and rolled["fees"]["late_waived_cents"] == {"GBP": 2500}
    with db.write() as session:  # a bulk insert, as an import does, bypassing the ORM
        start = datetime(2026, 3, 25, 10, tzinfo=UTC)
        session.execute(insert(Appointment), [_imported(world.clinic_id, start)])
    direct, rolled = _both(db, world, FILTERS)
    assert rolled == direct and rolled["totals"]["booked"] == 13
    with db.write() as session:
        assert rollups.rebuild(session) > 0
    with db.read() as session:
        assert rollups.is_fresh(session)


def test_the_periodic_job_refreshes_them(db, world, data):
    with db.read() as session:
        assert not rollups.is_fresh(session)
    rollups.refresh_job(db, None)
    with db.read() as session:
        assert rollups.is_fresh(session)
        assert session.scalar(select(func.count()).select_from(CancellationRollupDirty)) == 0


def test_a_new_service_price_recomputes_the_revenue_at_risk(db, world, data):
    assert figures(db, world).revenue_at_risk_cents == {"GBP": 60000}
    with db.write() as session:
        session.get(Service, data["peel"]).price_cents = 20000  # N2, and A8's second service
    direct, rolled = _both(db, world, FILTERS)
    assert rolled == direct and rolled["revenue_at_risk_cents"] == {"GBP": 70000}


def test_an_appointment_booked_as_a_package_puts_the_package_price_at_risk(db, world, data):
    assert figures(db, world).revenue_at_risk_cents == {
        "GBP": 60000
    }  # A8: its two services, 60 + 150
    rollups.refresh_job(db, None)  # the roll-ups must catch up with the package too
    with db.write() as session:
        package = Package(name="Consult and peel", price_cents=18000)
        session.add(package)
        session.flush()
        a8 = session.get(Appointment, data["a8"])
        a8.package_id = package.id
        package_id = package.id
    direct, rolled = _both(db, world, FILTERS)
    assert rolled == direct and rolled["revenue_at_risk_cents"] == {"GBP": 60000 - 21000 + 18000}
    with db.write() as session:  # a new package price marks every day, like a service's
        session.get(Package, package_id).price_cents = 20000
    direct, rolled = _both(db, world, FILTERS)
    assert rolled == direct and rolled["revenue_at_risk_cents"] == {"GBP": 60000 - 21000 + 20000}


def test_a_package_is_its_own_bar_by_service_not_under_its_first_service(db, world, data):
    """A8 (Consultation + Peel) booked as the package "Consult and peel", and a no-show of
    the package at New York: by service, the package is its own bar, named as the package;
    Consultation and Peel count only the visits booked as themselves (before: both package
    visits under their first service, Consultation, its no-show rate 1 of 5 read as 2 of 6).
    The same from the appointments, from the roll-ups, in the list behind each bar and in the
    export; every booking is in one bar."""
    with db.write() as session:
        package = Package(name="Consult and peel", price_cents=18000)
        session.add(package)
        session.flush()
        session.get(Appointment, data["a8"]).package_id = package.id
        start = datetime(2026, 3, 26, 14, tzinfo=UTC)
        missed = _visit(
            data, S.NO_SHOW, start, start - 3 * D, service_id=world.service_id
        )  # its first service
        missed.package_id = package.id
        session.add(missed)
        session.flush()
        package_id, missed_id = package.id, missed.id
    _both(db, world, FILTERS)  # from the appointments and from the roll-ups, the same
    with db.read() as session:
        bars = {
            (g.dimension, g.counts.label): (g.key, counts(g.counts))
            for g in bd.rates_by(session, world.owner, FILTERS, "service")
        }
        assert bars == {
            ("service", "Consultation"): (world.service_id, (8, 2, 1, 2, 4)),
            ("service", "Peel"): (data["peel"], (2, 0, 0, 1, 1)),
            ("package", "Package: Consult and peel"): (package_id, (2, 1, 1, 1, 0)),
        }
        assert sum(b[1][0] for b in bars.values()) == figures(db, world).totals.booked
        rows, total = bd.appointments_behind(session, world.owner, FILTERS, "package", package_id)
        assert total == 2 and set(rows["#"]) == {data["a8"], missed_id}
        assert set(rows["Service"]) == {"Package: Consult and peel"}
        rows, total = bd.appointments_behind(
            session, world.owner, FILTERS, "service", world.service_id
        )
        assert total == 8 and not {data["a8"], missed_id} & set(rows["#"])
    with db.write() as session:
        lines = ca.export_csv(session, world.owner, FILTERS).decode("utf-8-sig").splitlines()
    assert "service,Consultation,booked,8," in lines
    assert "service,Package: Consult and peel,booked,2," in lines
    assert "service,Package: Consult and peel,no_show_rate,1.0000," in lines


def test_a_service_filter_finds_the_packages_holding_it_wherever_it_comes(db, world, data):
    """A8 booked as the package "Consult and peel" (Consultation, then Peel): filtered by
    Peel, it is counted, its bar the package's, and listed behind it, as filtered by
    Consultation (before: only by Consultation, the service it comes first in, so a package's
    later services never found it)."""
    with db.write() as session:
        package = Package(name="Consult and peel", price_cents=18000)
        session.add(package)
        session.flush()
        session.get(Appointment, data["a8"]).package_id = package.id
        package_id = package.id
    for service_id in (data["peel"], world.service_id):
        filters = parts.AnalyticsFilters(FILTERS.start, FILTERS.end, service_id=service_id)
        with db.read() as session:
            bars = {
                (g.dimension, g.key): counts(g.counts)
                for g in bd.rates_by(session, world.owner, filters, "service")
            }
            assert bars[("package", package_id)] == (1, 1, 1, 0, 0), service_id
            rows, total = bd.appointments_behind(
                session, world.owner, filters, "package", package_id
            )
            assert set(rows["#"]) == {data["a8"]} and total == 1
            assert figures(db, world, filters).revenue_at_risk_cents["GBP"] >= 18000


def test_a_service_filter_reads_the_later_services_once_not_in_every_statement(db, world, data):
    """Filtered by Peel, the figures' statements (counts, notice, turnaround, untimed
    declines, fees, reasons, repeat patients) take the visits holding it after their first
    service from one read of appointment_services; before, each looked them up itself (an
    `IN (SELECT ...)` neither engine tests before the other conditions: a year's figures took
    six times as long on PostgreSQL). A8, booked as Consultation then Peel, is still counted."""
    from sqlalchemy import event

    with db.write() as session:
        session.get(Appointment, data["a8"]).package_id = None
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    filters = parts.AnalyticsFilters(FILTERS.start, FILTERS.end, service_id=data["peel"])
    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        peel = figures(db, world, filters)
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    later = [s for s in statements if "appointment_services.position >" in s]
    assert len(later) == 1, later
    assert counts(peel.totals) == (3, 1, 1, 1, 1)


def test_a_service_filter_counts_thousands_of_visits_holding_it_later(db, world, data):
    """5,000 visits booked as Consultation then Peel (five times SQLite's old limit of 999
    bound parameters): filtered by Peel, the figures, the bars by service, the list behind
    them and the confirmation rate count every one of them, and no statement grows with
    their number (before, each of the figures' statements carried them as numbers: 34 kB
    here, 414 kB for 60,000)."""
    many = 5_000
    from sqlalchemy import event

    from core.analytics import confirmations

    start = local_to_utc(date(2026, 3, 23), time(6), "Europe/London")
    step = 12 * D / many  # over the range (a cancelled visit's refill look-up stays short)
    rows = [
        dict(
            clinic_id=world.clinic_id,
            provider_id=world.provider_id,
            patient_id=data["p1"],
            service_id=world.service_id,
            status=S.COMPLETED if i % 50 else S.CANCELLED,
            start_at=start + i * step,
            end_at=start + i * step + timedelta(minutes=30),
            booked_at=start - D,
            created_at=start - D,
            sms_reminder=False,
        )
        for i in range(many)
    ]
    with db.write() as session:
        session.connection().execute(insert(Appointment.__table__), rows)
        ids = session.scalars(
            select(Appointment.id).where(
                Appointment.start_at >= start, Appointment.booked_at == start - D
            )
        ).all()
        assert len(ids) == many
        services = [(world.service_id, 0), (data["peel"], 1)]
        session.connection().execute(
            insert(AppointmentService.__table__),
            [dict(appointment_id=i, service_id=s, position=p) for i in ids for s, p in services],
        )
    cancelled = len(range(0, many, 50))
    filters = parts.AnalyticsFilters(FILTERS.start, FILTERS.end, service_id=data["peel"])
    longest = [0]

    def seen(conn, cursor, statement, parameters, context, executemany):
        longest[0] = max(longest[0], len(statement))

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        peel = figures(db, world, filters)
        with db.read() as session:
            bars = {
                (g.dimension, g.key): counts(g.counts)
                for g in bd.rates_by(session, world.owner, filters, "service", top=None)
            }
            _, total = bd.appointments_behind(session, world.owner, filters, "all", None, limit=5)
            rate = confirmations.confirmation_rate(
                session, world.owner, FILTERS.start, FILTERS.end, service_id=data["peel"]
            )
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert counts(peel.totals) == (3 + many, 1 + cancelled, 1, 1, 1 + many - cancelled)
    assert bars[("service", world.service_id)] == (1 + many, 1 + cancelled, 1, 0, many - cancelled)
    assert bars[("service", data["peel"])] == (2, 0, 0, 1, 1)
    assert total == 3 + many
    assert rate is not None
    assert longest[0] < 20_000, longest[0]


@pytest.mark.parametrize("window", [1, 6, 24, 48])
def test_without_the_per_day_part_the_other_figures_are_the_same(db, world, data, window):
    """The page's first view leaves out "by_day" (weekday, weekly, heatmap): the rest agrees."""
    what_if = parts.WhatIf(window, 1000, 5)
    whole = figures(db, world, parts.AnalyticsFilters(FILTERS.start, FILTERS.end, what_if=what_if))
    light = figures(
        db,
        world,
        parts.AnalyticsFilters(
            FILTERS.start, FILTERS.end, what_if=what_if, parts=frozenset({"timing"})
        ),
    )
    assert counts(light.totals) == counts(whole.totals) and light.totals.booked > 0
    assert [counts(c) for c in light.by_hour] == [counts(c) for c in whole.by_hour]
    assert light.notice == whole.notice and light.what_if == whole.what_if
    assert light.turnaround == whole.turnaround and light.fees == whole.fees
    assert [counts(c) for c in light.by_lead_time] == [counts(c) for c in whole.by_lead_time]
    assert light.weekly == [] and light.heatmap == [] and whole.weekly and whole.heatmap
    assert sum(c.booked for c in light.by_weekday) == 0


@pytest.mark.parametrize("window", [0, 1, 6, 24, 48])
@pytest.mark.parametrize("direct", [False, True])
def test_the_first_view_reads_no_timing_but_the_same_what_if(db, world, data, window, direct):
    """Without "timing" (lead time, SMS, notice histogram) the key figures and the what-if,
    which counts short-notice cancellations from the filtered notice rows, stay the same."""
    what_if = parts.WhatIf(window, 1000, 5)
    provider = world.provider_id if direct else None
    rollups.refresh_job(db, None)  # as the jobs loop does
    whole = figures(
        db,
        world,
        parts.AnalyticsFilters(FILTERS.start, FILTERS.end, provider_id=provider, what_if=what_if),
    )
    first = figures(
        db,
        world,
        parts.AnalyticsFilters(
            FILTERS.start, FILTERS.end, provider_id=provider, what_if=what_if, parts=frozenset()
        ),
    )
    assert first.from_rollups is not direct and whole.totals.cancelled > 0
    assert counts(first.totals) == counts(whole.totals) and first.what_if == whole.what_if
    assert first.fees == whole.fees and first.turnaround == whole.turnaround
    assert first.revenue_at_risk_cents == whole.revenue_at_risk_cents
    assert first.refilled == whole.refilled
    assert first.turnaround_mean_hours == whole.turnaround_mean_hours
    assert sum(n for _, n in first.notice) == 0 < sum(n for _, n in whole.notice)
    assert sum(c.booked for c in first.by_lead_time + first.by_sms) == 0
    assert sum(c.booked for c in whole.by_lead_time) == whole.totals.booked


def test_the_filter_choices_list_each_kind_by_name(db, world, data):
    """The page's filters read the one choices reader, every clinic, provider and service
    (inactive ones too), under the analytics permission."""
    analytics = {"include_inactive": True, "permission": Permission.ANALYTICS_READ}
    with db.read() as session:
        found = list_choices(session, world.manager, **analytics)
        choices = [
            [(c.id, c.name) for c in kind]
            for kind in (found.clinics, found.providers, found.services)
        ]
        expected = [
            [(r.id, r.name) for r in session.scalars(select(m).order_by(m.name))]
            for m in (Clinic, Provider, Service)
        ]
    assert choices == expected
    clinics, providers, services = choices
    assert (data["ny"], "NY") in clinics and (data["peel"], "Peel") in services
    assert (data["provider2"], "Dr Two") in providers
    with db.read() as session, pytest.raises(PermissionDenied):
        list_choices(session, world.staff, **analytics)


def test_a_read_never_writes_while_the_roll_ups_lag(db, world, data):
    """Stale roll-ups: the figures come from the appointments, the caller's transaction stays
    open and nothing is written (the jobs loop catches the roll-ups up)."""
    with db.read() as session:
        assert not rollups.is_fresh(session)
        dirty_before = session.scalar(select(func.count()).select_from(CancellationRollupDirty))
        read = ca.compute_figures(session, world.owner, FILTERS)
        assert session.in_transaction() and not read.from_rollups
        assert session.scalar(select(func.count()).select_from(CancellationRollupDirty)) == (
            dirty_before
        )
    rollups.refresh_job(db, None)
    with db.read() as session:
        fresh = ca.compute_figures(session, world.owner, FILTERS)
    assert fresh.from_rollups and fresh.as_dict()["totals"] == read.as_dict()["totals"]


def test_a_read_while_the_roll_ups_lag_takes_only_the_changed_days_from_the_appointments(
    db, world, data
):
    """A read takes the days whose roll-ups lag behind a change (each with the day either
    side, for a slot across midnight) from the appointments and the rest from the roll-ups: a
    change on another day, or at another clinic, leaves it wholly on them."""
    march = datetime(2026, 3, 1, tzinfo=UTC)
    with db.write() as session:
        later = _visit(data, S.SCHEDULED, datetime(2026, 4, 20, 15, tzinfo=UTC), march)
        session.add(later)
    rollups.refresh_job(db, None)
    with db.write() as session:  # cancelled: 20 April changes, after FILTERS' last day
        session.get(Appointment, later.id).status = S.CANCELLED
    with db.read() as session:
        assert not rollups.is_fresh(session)
    april = parts.AnalyticsFilters(date(2026, 4, 6), date(2026, 4, 30))
    assert _lagging(db, world, FILTERS) == 0
    assert _lagging(db, world, april) == 3  # 19, 20 and 21 April at the NY clinic
    assert _lagging(db, world, replace(april, clinic_id=world.clinic_id)) == 0
    assert _lagging(db, world, replace(april, parts=frozenset())) == 3  # the first view
    direct, rolled = _both(db, world, april)  # the refresh brings it back, the same figures
    assert rolled == direct and rolled["totals"]["cancelled"] >= 1
    with db.write() as session:  # a booking on 20 April: a new row, beyond the last seen
        april_1 = datetime(2026, 4, 1, tzinfo=UTC)
        session.add(_visit(data, S.SCHEDULED, datetime(2026, 4, 20, 16, tzinfo=UTC), april_1))
    assert _lagging(db, world, FILTERS) == 0 and _lagging(db, world, april) == 3
    rollups.refresh_job(db, None)
    with db.write() as session:  # bulk inserts mark no day: found by their start
        may_20 = datetime(2026, 5, 20, 10, tzinfo=UTC)
        session.execute(insert(Appointment), [_imported(data["ny"], may_20)])
    assert _lagging(db, world, FILTERS) == 0
    with db.write() as session:  # the day after FILTERS' last: its last day lags with it
        april_6 = datetime(2026, 4, 6, 10, tzinfo=UTC)
        session.execute(insert(Appointment), [_imported(data["ny"], april_6)])
    assert _lagging(db, world, FILTERS) == 1
    rollups.refresh_job(db, None)
    with db.write() as session:  # an imported fee on 3 April (A8), beyond the last seen entry
        a8 = session.get(Appointment, data["a8"])
        fee = dict(patient_id=a8.patient_id, appointment_id=a8.id, points=7)
        session.execute(insert(LedgerEntry), [fee | {"kind": LedgerKind.POINTS}])
    assert _lagging(db, world, FILTERS) == 3 and _lagging(db, world, april) == 0
    with db.write() as session:  # a service's price marks every day
        session.get(Service, world.service_id).price_cents += 100
    with db.read() as session:
        assert not ca.compute_figures(session, world.owner, FILTERS).from_rollups


def test_a_slot_refilled_across_midnight_is_refreshed_on_both_days(db, world, data):
    """A booking at midnight refills the slot cancelled the evening before: the refresh
    recomputes the day either side of a changed one, so the earlier day's refill is counted."""
    evening = local_to_utc(date(2026, 4, 1), time(23, 45), "Europe/London")
    london = dict(clinic_id=world.clinic_id, provider_id=world.provider_id)
    march = datetime(2026, 3, 1, tzinfo=UTC)
    with db.write() as session:
        cancelled_at = datetime(2026, 3, 20, tzinfo=UTC)
        session.add(_visit(data, S.CANCELLED, evening, march, cancelled_at=cancelled_at, **london))
    before = _both(db, world, FILTERS)[1]["refilled"]
    with db.write() as session:  # booked after the cancellation, at midnight on 2 April
        midnight = evening + timedelta(minutes=15)
        session.add(_visit(data, S.SCHEDULED, midnight, march, patient_id=data["p2"], **london))
    direct, rolled = _both(db, world, FILTERS)
    assert rolled == direct and rolled["refilled"] == before + 1


def test_the_rates_by_provider_and_service_are_read_from_the_roll_ups(db, world, data):
    """The rates by provider and by service come from the roll-ups (a bulk UPDATE, which they
    do not see, shows it until a rebuild) unless a provider or service is chosen."""
    rollups.refresh_job(db, None)
    with db.read() as session:
        before = _rates(session, world, FILTERS)
    assert len(before["provider"]) == 2 and before["service"]
    with db.write() as session:  # bypasses the ORM: no day is marked
        session.execute(
            Appointment.__table__.update()
            .where(Appointment.id == data["a1"])
            .values(provider_id=data["provider2"])
        )
    with db.read() as session:
        assert _rates(session, world, FILTERS) == before
        direct = _rates(session, world, FILTERS, use_rollups=False)
        by_provider = replace(FILTERS, provider_id=data["provider2"])
        assert _rates(session, world, by_provider) == _rates(session, world, by_provider, False)
    assert direct != before
    with db.write() as session:
        rollups.rebuild(session)
    with db.read() as session:
        assert _rates(session, world, FILTERS) == direct


def test_roll_ups_of_an_older_version_are_rebuilt(db, world, data):
    """Roll-ups built before the provider and service kinds existed count as not built: reads
    go to the appointments until the jobs loop rebuilds them, rates included."""
    rollups.refresh_job(db, None)
    with db.write() as session:
        state = session.scalar(select(Setting).where(Setting.key == rollups.STATE_KEY))
        state.value = {k: v for k, v in state.value.items() if k != "version"}
        session.execute(delete(CancellationRollup).where(CancellationRollup.kind == "provider"))
    with db.read() as session:
        assert not rollups.is_fresh(session)
        assert not ca.compute_figures(session, world.owner, FILTERS).from_rollups
        direct = _rates(session, world, FILTERS, use_rollups=False)
        assert _rates(session, world, FILTERS) == direct
    rollups.refresh_job(db, None)
    with db.read() as session:
        assert rollups.is_fresh(session)
        kinds = set(session.scalars(select(CancellationRollup.kind).distinct()))
        assert {"provider", "service"} <= kinds
        assert _rates(session, world, FILTERS) == direct


def test_cancellations_imported_without_a_time_are_left_out_of_the_refill_rate(db, world, data):
    """Whether a slot was booked again is known only from when it was cancelled: a cancellation
    imported without that time is neither refilled nor not, and the rate says so."""
    start = local_to_utc(date(2026, 3, 31), time(10), "Europe/London")
    with db.write() as session:
        for _ in range(3):
            session.add(
                _visit(
                    data,
                    S.CANCELLED,
                    start,
                    start - 3 * D,
                    provider_id=data["provider2"],
                    source=Source.IMPORT,
                )
            )
    direct, rolled = _both(db, world, FILTERS)
    assert rolled == direct
    assert direct["totals"]["cancelled"] == 3 + 3
    assert direct["refilled"] == 1 and direct["refill_rate"] == pytest.approx(1 / 3)
    assert direct["cancellations_without_time"] == 3
