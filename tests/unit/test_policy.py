"""Cancellation policy: window arithmetic across time zones and DST, versions, overrides,
enforcement (fees and points), waivers and the points flag."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from core.kernel import audit
from core.kernel.clock import local_to_utc
from core.kernel.errors import Conflict, NotFound, PermissionDenied, ValidationError
from core.payments import points
from core.policy import cancellation as policy
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Clinic,
    LedgerEntry,
    LedgerKind,
    Patient,
    Service,
)

ZONES = [
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "UTC",
    "America/Sao_Paulo",
    "Pacific/Chatham",
]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def save(session, world, actor=None, **overrides):
    values = dict(
        clinic_id=world.clinic_id,
        window_hours=24,
        late_cancel_fee_cents=2500,
        no_show_fee_cents=4000,
        points_deducted=20,
        inside_window_needs_approval=True,
        outside_window_auto_accept=True,
        online_cancel_allowed=True,
        max_reschedules=2,
        policy_text="Give us 24 hours' notice.",
        effective_at=T0,
    )
    return policy.save_policy(session, actor or world.owner, **(values | overrides))


def booked(session, world, start: datetime, **fields) -> Appointment:
    values = dict(
        clinic_id=world.clinic_id,
        provider_id=world.provider_id,
        patient_id=world.patient_id,
        service_id=world.service_id,
        status=AppointmentStatus.SCHEDULED,
        start_at=start,
        end_at=start + timedelta(minutes=30),
        booked_at=start - timedelta(days=7),
    )
    appointment = Appointment(**(values | fields))
    session.add(appointment)
    session.flush()
    return appointment


# ---------------------------------------------------------------- window arithmetic


def test_exactly_the_window_before_is_not_late():
    start = datetime(2026, 6, 1, 10, tzinfo=UTC)
    assert not policy.inside_window(start, start - timedelta(hours=24), 24)
    assert policy.inside_window(start, start - timedelta(hours=24) + timedelta(seconds=1), 24)
    assert policy.inside_window(start, start + timedelta(minutes=5), 24)  # already started
    assert policy.inside_window(start, start - timedelta(seconds=1), 0) is False


def test_spring_forward_day_has_23_real_hours():
    # London clocks go forward on 29 March 2026: 10:00 Saturday to 10:00 Sunday is 23 hours
    london = ZoneInfo("Europe/London")
    start = datetime(2026, 3, 29, 10, tzinfo=london)
    same_wall_time_day_before = datetime(2026, 3, 28, 10, tzinfo=london)
    assert policy.inside_window(start, same_wall_time_day_before, 24)
    assert not policy.inside_window(start, datetime(2026, 3, 28, 9, tzinfo=london), 24)


def test_fall_back_day_has_25_real_hours():
    # clocks go back on 25 October 2026: 10:30 Saturday to 10:00 Sunday is 24.5 real hours
    london = ZoneInfo("Europe/London")
    start = datetime(2026, 10, 25, 10, tzinfo=london)
    assert not policy.inside_window(start, datetime(2026, 10, 24, 10, 30, tzinfo=london), 24)
    assert policy.inside_window(start, datetime(2026, 10, 24, 11, 30, tzinfo=london), 24)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        policy.inside_window(datetime(2026, 1, 2, 10), T0, 24)


@settings(max_examples=100, deadline=None)
@given(
    tz=st.sampled_from(ZONES),
    day=st.dates(date(2024, 1, 1), date(2028, 12, 31)),
    minute=st.integers(0, 24 * 60 - 1),
    window=st.integers(0, 96),
    elapsed_minutes=st.integers(-600, 200 * 60),
    viewer_tz=st.sampled_from(ZONES),
)
def test_window_counts_real_elapsed_hours(tz, day, minute, window, elapsed_minutes, viewer_tz):
    """However the two moments are expressed (clinic zone, another zone, UTC), late means
    fewer than `window` real hours remain, also across DST changes."""
    start_utc = local_to_utc(day, time(minute // 60, minute % 60), tz)
    at_utc = start_utc - timedelta(minutes=elapsed_minutes)
    expected = elapsed_minutes < window * 60
    start_local = start_utc.astimezone(ZoneInfo(tz))
    at_local = at_utc.astimezone(ZoneInfo(tz))  # same ZoneInfo: the wall-clock trap
    assert policy.inside_window(start_local, at_local, window) is expected
    assert (
        policy.inside_window(start_utc, at_utc.astimezone(ZoneInfo(viewer_tz)), window) is expected
    )
    assert policy.inside_window(start_utc, at_utc, window) is expected


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(window=st.integers(0, 72), hours_before=st.integers(-3, 100), tz=st.sampled_from(ZONES))
def test_evaluate_agrees_with_the_window(db, world, window, hours_before, tz):
    with db.write() as session:
        clinic_policy = save(
            session, world, window_hours=window, late_cancel_fee_cents=1500, points_deducted=5
        )
        start = local_to_utc(date(2026, 3, 29), time(10), tz)  # a DST day in Europe
        appointment = Appointment(
            clinic_id=world.clinic_id, service_id=world.service_id, start_at=start
        )
        result = policy.evaluate(session, appointment, start - timedelta(hours=hours_before))
        late = hours_before < window
        assert result.policy_id == clinic_policy.id
        assert result.inside_window is late
        assert result.fee_cents == (1500 if late else 0)
        assert result.points == (5 if late else 0)
        assert result.needs_approval is late
        assert result.auto_accept is not late
        session.rollback()


# ---------------------------------------------------------------- versions and overrides


def test_versions_apply_by_effective_time_and_overrides_win(db, world):
    with db.write() as session:
        v1 = save(session, world, window_hours=24, effective_at=T0)
        v2 = save(session, world, window_hours=12, effective_at=T0 + timedelta(days=10))
        other = Service(name="Botox", duration_minutes=45, price_cents=25000)
        session.add(other)
        session.flush()
        override = save(
            session,
            world,
            service_id=world.service_id,
            window_hours=48,
            late_cancel_fee_cents=9000,
            effective_at=T0 + timedelta(days=20),
        )
        assert (v1.version, v2.version, override.version) == (1, 2, 1)
        start = T0 + timedelta(days=30)
        appointment = booked(session, world, start)
        botox = booked(session, world, start + timedelta(hours=1), service_id=other.id)

        def applies(a, at):
            return policy.current_policy(session, a.clinic_id, a.service_id, at).id

        assert applies(appointment, T0 + timedelta(days=5)) == v1.id
        assert applies(appointment, T0 + timedelta(days=15)) == v2.id
        assert applies(appointment, T0 + timedelta(days=25)) == override.id
        assert applies(botox, T0 + timedelta(days=25)) == v2.id
        assert policy.current_policy(session, world.clinic_id, None, T0 - timedelta(days=1)) is None
        result = policy.evaluate(session, appointment, start - timedelta(hours=30))
        assert (result.policy_id, result.late, result.fee_cents) == (override.id, True, 9000)
        result = policy.evaluate(session, botox, start - timedelta(hours=30))
        assert (result.policy_id, result.late) == (v2.id, False)
        versions = policy.list_policy_versions(session, world.owner, world.clinic_id)
        assert [v.id for v in versions] == [override.id, v2.id, v1.id]
        assert versions[0].service_name == "Consultation"
        assert policy.get_policy(session, world.owner, world.clinic_id).id == v2.id
        assert policy.get_policy(session, world.owner, world.clinic_id, other.id) is None


def test_no_policy_means_nothing_is_late(db, world):
    with db.write() as session:
        appointment = booked(session, world, T0 + timedelta(days=1))
        result = policy.evaluate(session, appointment, T0 + timedelta(days=1))
        assert result == policy.NO_POLICY
        assert policy.assess_cancellation(session, appointment, result) == []


def test_invalid_values_are_refused_with_every_reason(db, world):
    with db.write() as session:
        with pytest.raises(ValidationError) as error:
            save(
                session,
                world,
                window_hours=-1,
                late_cancel_fee_cents=-5,
                no_show_fee_cents=-1,
                points_deducted=-2,
                max_reschedules=-1,
                policy_text="  ",
            )
        message = str(error.value)
        assert "window must be zero or more whole hours" in message
        assert "late-cancellation fee cannot be negative" in message
        assert "no-show fee cannot be negative" in message
        assert "points deducted cannot be negative" in message
        assert "reschedules allowed cannot be negative" in message
        assert "policy text" in message
        with pytest.raises(ValidationError, match="at most 336 hours"):
            save(session, world, window_hours=400)
        with pytest.raises(NotFound):
            save(session, world, service_id=9999)
        with pytest.raises(ValidationError, match="time zone"):
            save(session, world, effective_at=datetime(2026, 1, 1))
        assert session.scalar(select(func.count()).select_from(policy.CancellationPolicy)) == 0


def test_a_too_high_fee_is_named_in_the_clinics_currency_and_locale(db, world):
    """A JPY clinic reads its highest fee in yen (before: 'at most £10,000.00')."""
    with db.write() as session:
        clinic = session.get(Clinic, world.clinic_id)
        clinic.currency, clinic.locale = "JPY", "ja-JP"
        with pytest.raises(ValidationError) as error:
            save(session, world, late_cancel_fee_cents=policy.MAX_FEE_CENTS + 1)
        assert "late-cancellation fee can be at most ￥1,000,000." in str(error.value)
        assert "£" not in str(error.value)


def test_only_the_owner_sets_the_policy_and_each_save_is_audited(db, world):
    with db.write() as session:
        with pytest.raises(PermissionDenied):
            save(session, world, actor=world.manager)
        saved = save(session, world, window_hours=12)
        events = audit.history_of(session, "cancellation_policy", saved.id)
        assert [e.action for e in events] == ["policy_saved"]
        assert events[0].details["window_hours"] == 12
        assert events[0].actor_label == world.owner.label


def test_two_owners_saving_at_once_make_two_numbered_versions(db, world):
    """Each save is its own version: two at once are versions 1 and 2, each audited under its
    number. Before, on PostgreSQL both read the same last version and both saved version 1."""
    barrier, saved = threading.Barrier(2), []

    def one(window):
        barrier.wait()
        with db.write() as session:
            saved.append(save(session, world, window_hours=window).version)

    threads = [threading.Thread(target=one, args=(w,)) for w in (12, 48)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.read() as session:
        versions = session.scalars(
            select(policy.CancellationPolicy.version).order_by(policy.CancellationPolicy.version)
        ).all()
    assert sorted(saved) == versions == [1, 2]


# ---------------------------------------------------------------- enforcement and waivers


def test_late_cancellation_records_version_fee_and_points(db, world):
    with db.write() as session:
        version = save(session, world, late_cancel_fee_cents=2500, points_deducted=30)
        start = T0 + timedelta(days=3)
        appointment = booked(session, world, start)
        entries = policy.assess_cancellation(
            session, appointment, policy.evaluate(session, appointment, start - timedelta(hours=2))
        )
        session.flush()
        assert appointment.policy_id == version.id and appointment.late_cancellation
        assert sorted((e.kind, e.amount_cents, e.points) for e in entries) == [
            (LedgerKind.LATE_CANCEL_FEE, 2500, 0),
            (LedgerKind.POINTS, 0, 30),
        ]
        assert session.get(Patient, world.patient_id).points_balance == 70
        early = booked(session, world, start + timedelta(days=5))
        assert (
            policy.assess_cancellation(session, early, policy.evaluate(session, early, start)) == []
        )
        assert early.policy_id == version.id and not early.late_cancellation


def test_no_show_costs_the_no_show_fee(db, world):
    with db.write() as session:
        version = save(
            session,
            world,
            no_show_fee_cents=4000,
            points_deducted=0,
            effective_at=datetime(2020, 1, 1, tzinfo=UTC),
        )
        appointment = booked(session, world, T0 - timedelta(days=1))
        entries = policy.assess_no_show(session, appointment)
        assert [(e.kind, e.amount_cents, e.policy_id) for e in entries] == [
            (LedgerKind.NO_SHOW_FEE, 4000, version.id)
        ]


def ledger_of(patient_id, kind):
    return (
        select(LedgerEntry)
        .where(LedgerEntry.patient_id == patient_id, LedgerEntry.kind == kind)
        .order_by(LedgerEntry.id)
    )


def test_points_reaching_zero_block_online_requests_until_points_are_added(db, world):
    with db.write() as session:
        save(session, world, points_deducted=60, late_cancel_fee_cents=0)
        patient = session.get(Patient, world.patient_id)
        assert not policy.online_booking_blocked(patient) and policy.points_flag(patient) is None
        for day in (3, 4):
            appointment = booked(session, world, T0 + timedelta(days=day))
            at = appointment.start_at - timedelta(hours=1)
            policy.assess_cancellation(
                session, appointment, policy.evaluate(session, appointment, at)
            )
        assert patient.points_balance == 0  # 100 − 60 − 60, never below zero
        assert policy.online_booking_blocked(patient)
        assert "blocked" in policy.points_flag(patient)
        # the ledger records what was taken (60, then the 40 left), so it adds up to the balance
        assert [e.points for e in session.scalars(ledger_of(patient.id, LedgerKind.POINTS))] == [
            60,
            40,
        ]
        with pytest.raises(ValidationError, match="other than 0"):
            points.adjust_points(session, world.manager, patient.id, 0, "goodwill")
        with pytest.raises(ValidationError, match="why"):
            points.adjust_points(session, world.manager, patient.id, 10, " ")
        with pytest.raises(PermissionDenied):
            points.adjust_points(session, world.staff, patient.id, 10, "goodwill")
        points.adjust_points(session, world.manager, patient.id, 50, "Talked it through")
        assert patient.points_balance == 50 and not policy.online_booking_blocked(patient)
        event = audit.history_of(session, "patient", patient.id)[-1]
        assert (event.action, event.reason, event.details["points"]) == (
            "points_adjusted",
            "Talked it through",
            50,
        )
        history = points.points_history(session, world.manager, patient.id)
        assert sum(row.points for row in history) == patient.points_balance


def test_manager_waives_a_fee_with_a_reason_once(db, world):
    with db.write() as session:
        save(session, world, late_cancel_fee_cents=2500, points_deducted=20)
        appointment = booked(session, world, T0 + timedelta(days=2))
        entries = policy.assess_cancellation(
            session,
            appointment,
            policy.evaluate(session, appointment, appointment.start_at - timedelta(hours=3)),
        )
        session.flush()
        fee = next(e for e in entries if e.kind == LedgerKind.LATE_CANCEL_FEE)
        points = next(e for e in entries if e.kind == LedgerKind.POINTS)
        with pytest.raises(PermissionDenied):
            policy.waive_fee(session, world.staff, fee.id, "kind")
        with pytest.raises(ValidationError, match="why"):
            policy.waive_fee(session, world.manager, fee.id, "")
        with pytest.raises(NotFound):
            policy.waive_fee(session, world.manager, 9999, "kind")
        policy.waive_fee(session, world.manager, fee.id, "Hospital admission")
        assert fee.waived_at is not None and fee.waive_reason == "Hospital admission"
        assert fee.waived_by_user_id == world.manager.user_id
        with pytest.raises(Conflict, match="already waived"):
            policy.waive_fee(session, world.manager, fee.id, "again")
        policy.waive_fee(session, world.manager, points.id, "Hospital admission")
        assert session.get(Patient, world.patient_id).points_balance == 100
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "fee_waived"))
        assert sorted(e.entity_id for e in events) == sorted([fee.id, points.id])
        rows = policy.list_fees(session, world.manager, patient_id=world.patient_id)
        assert {r.id for r in rows} == {fee.id, points.id}
        assert policy.list_fees(session, world.manager, open_only=True) == []
        # the fee, the points and the patient's opening balance: waiving adds no entry
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 3
