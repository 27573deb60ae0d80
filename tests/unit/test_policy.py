"""Cancellation policy: window arithmetic across time zones and DST, versions, overrides,
enforcement (fees and points), waivers and the points flag."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy import text as sa_text

from core.kernel import audit
from core.kernel.clock import local_to_utc
from core.kernel.errors import Conflict, NotFound, PermissionDenied, ValidationError
from core.kernel.money import clinic_time
from core.patients import merge
from core.payments import points
from core.policy import balance
from core.policy import cancellation as policy
from core.practice import treatment
from core.scheduling import moves, visits
from db import migrate
from db.models import (
    Appointment,
    AppointmentService,
    AppointmentStatus,
    AuditEvent,
    CancellationPolicy,
    ChangeKind,
    ChangeRequest,
    Channel,
    Clinic,
    FeeBasis,
    LedgerEntry,
    LedgerKind,
    Notification,
    Package,
    Patient,
    Service,
)
from db.types import utcnow
from tests.factories import make_patient

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
        assert "late-cancellation fee can be at most ￥1,000,000,000." in str(error.value)
        assert "£" not in str(error.value)


def test_a_fee_in_a_currency_of_small_units_is_not_capped_at_pocket_money(db, world):
    """The highest fee was 1,000,000 minor units in every currency: £10,000, but ₫1,000,000
    (about £30) at a Hanoi clinic, whose no-show fee of ₫2,000,000 was refused. It is now a
    price's limit (10^9 minor units)."""
    with db.write() as session:
        clinic = session.get(Clinic, world.clinic_id)
        clinic.currency, clinic.locale = "VND", "vi-VN"
        saved = save(session, world, no_show_fee_cents=2_000_000)
    assert saved.no_show_fee_cents == 2_000_000


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


def test_a_new_version_says_first_what_it_does_to_the_visits_booked(db, world):
    """A booked visit has no terms of its own: a new version governs its next cancellation at
    once. Before, the owner saved a 48-hour window and a higher fee without a word of the visits
    booked ahead that it made late or dearer. change_effects says, before saving, which visits
    it reaches, names those newly inside the window, and says when nothing gets worse."""
    values = dict(
        clinic_id=world.clinic_id,
        window_hours=24,
        late_cancel_fee_cents=2500,
        no_show_fee_cents=4000,
        points_deducted=20,
        online_cancel_allowed=True,
        max_reschedules=2,
    )
    now = utcnow()
    with db.write() as session:
        save(session, world)
        soon = booked(session, world, now + timedelta(hours=30))
        booked(session, world, now + timedelta(days=5))
        booked(session, world, now - timedelta(days=1))  # past: not reached
        session.add(ChangeRequest(appointment_id=soon.id, kind=ChangeKind.CANCEL, reason="Ill"))
    with db.read() as session:
        longer = policy.change_effects(session, world.owner, **(values | {"window_hours": 48}))
        shorter = policy.change_effects(session, world.owner, **(values | {"window_hours": 12}))
        dearer = policy.change_effects(
            session, world.owner, **(values | {"late_cancel_fee_cents": 4000})
        )
        offline = policy.change_effects(
            session, world.owner, **(values | {"online_cancel_allowed": False})
        )
        with pytest.raises(PermissionDenied):
            policy.change_effects(session, world.staff, **values)
        when = clinic_time(session.get(Clinic, world.clinic_id), soon.start_at)
    assert (longer.booked, longer.waiting) == (2, 1)
    assert longer.summary == (
        "The new version applies to the 2 visits booked ahead at Test Clinic from their next "
        "cancellation or no-show (their patients see it when they cancel); 1 change request "
        "waiting in the Request queue keeps the terms it was asked under."
    )
    assert longer.warning.startswith(longer.summary)
    assert (
        f"1 visit in the next 48 hours (Alex Morgan, {when}) falls inside the new 48-hour "
        "window at once: cancelling it now is late (£25.00 and 20 points), where it was not."
    ) in longer.warning
    assert "waive the fee when they cancel" in longer.warning
    assert shorter.summary == longer.summary and shorter.warning == ""  # nothing worse
    assert (
        "From now on a late cancellation of any of them costs £40.00 and 20 points (was £25.00 "
        "and 20 points)."
    ) in dearer.warning
    assert "no-show" not in dearer.warning.split("From now on")[1]  # unchanged: unsaid
    assert "can no longer cancel online" in offline.warning
    with db.write() as session:  # a clinic with nothing booked: nothing to say
        empty = session.get(Clinic, world.clinic_id)
        other = Clinic(name="Empty", timezone=empty.timezone)
        session.add(other)
        session.flush()
        assert (
            policy.change_effects(session, world.owner, **(values | {"clinic_id": other.id}))
            == policy.ChangeEffects()
        )


def test_saving_a_harsher_version_over_visits_booked_waits_for_a_confirmation(db, world):
    """The warning was the page's alone: save_policy saved a 48-hour window over a visit booked
    30 hours ahead at once for any other caller (a practice file, a second tab past the
    question). Core now refuses it, with the warning, until confirmed; a kinder one saves."""
    from core.practice.setup import NeedsConfirmation

    with db.write() as session:
        save(session, world)
        booked(session, world, utcnow() + timedelta(hours=30))
    with db.write() as session, pytest.raises(NeedsConfirmation) as asked:
        save(session, world, window_hours=48, effective_at=None)
    assert asked.value.change == "policy" and "inside the new 48-hour window" in str(asked.value)
    assert str(asked.value).endswith("Confirm to save the new version anyway.")
    with db.read() as session:
        assert session.scalar(select(func.count(CancellationPolicy.id))) == 1
    with db.write() as session:
        save(session, world, window_hours=12, effective_at=None)  # kinder: no question
        save(session, world, window_hours=48, effective_at=None, despite_effects=True)
    with db.read() as session:
        assert session.scalar(select(func.max(CancellationPolicy.version))) == 3


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


# ---------------------------------------------------------------- fees as a share of the price


def test_a_percentage_fee_is_rounded_half_up_to_the_currencys_minor_unit():
    half = policy.Fee(FeeBasis.PERCENT, percent=50)
    assert half.charged(8000, "GBP") == 4000
    assert half.charged(8001, "GBP") == 4001  # 40.005 -> 40.01: half up, not to even
    assert half.charged(8003, "GBP") == 4002  # 40.015 -> 40.02
    assert policy.Fee(FeeBasis.PERCENT, percent=33).charged(1001, "GBP") == 330  # 3.3033
    assert policy.Fee(FeeBasis.PERCENT, percent=15).charged(9990, "USD") == 1499  # 14.985
    assert half.charged(1005, "JPY") == 503  # whole yen: 502.5 -> 503
    assert policy.Fee(FeeBasis.PERCENT, percent=100).charged(12345, "EUR") == 12345
    assert policy.Fee(FeeBasis.PERCENT, percent=0).charged(12345, "EUR") == 0
    assert half.charged(0, "GBP") == half.charged(None, "GBP") == 0  # no price, no fee
    assert policy.Fee(FeeBasis.FIXED, cents=2500, percent=50).charged(8000, "GBP") == 2500


@settings(max_examples=200, deadline=None)
@given(
    price=st.integers(0, 10_000_000),
    percent=st.integers(0, 100),
    currency=st.sampled_from(["GBP", "USD", "EUR", "JPY", "KWD"]),
)
def test_a_share_is_the_exact_product_rounded_half_up(price, percent, currency):
    """In minor units (pence, whole yen, KWD's thousandths) the share is price × percent / 100
    rounded half up: never more than the price, 0 of a visit with no price."""
    charged = policy.Fee(FeeBasis.PERCENT, percent=percent).charged(price, currency)
    exact = price * percent  # hundredths of a minor unit
    assert charged == exact // 100 + (1 if exact % 100 >= 50 else 0)
    assert 0 <= charged <= price


def test_a_fee_is_described_as_a_share_of_the_visits_price():
    gbp = Clinic(currency="GBP", locale="en-GB")
    half = policy.Fee(FeeBasis.PERCENT, cents=2500, percent=50)
    assert half.terms(gbp) == "50% of the visit's price"
    assert half.terms(gbp, 8000) == "50% of the visit's price (£40.00 for this visit)"
    assert half.terms_charged(gbp, 4000) == "50% of the visit's price (£40.00 for this visit)"
    assert policy.Fee(FeeBasis.FIXED, 2500, 50).terms(gbp, 8000) == "£25.00"
    euro = Clinic(currency="EUR", locale="de-DE")
    said = half.terms(euro, 8001).replace("\xa0", " ")  # the locale's no-break spaces
    assert said == "50 % of the visit's price (40,01 € for this visit)"


def percent_policy(session, world, late=50, no_show=100, **overrides):
    values = dict(
        late_cancel_fee_basis="percent",
        late_cancel_fee_percent=late,
        no_show_fee_basis="percent",
        no_show_fee_percent=no_show,
        effective_at=datetime(2020, 1, 1, tzinfo=UTC),
    )
    return save(session, world, **(values | overrides))


def test_a_late_cancellation_costs_its_share_of_the_visits_price(db, world):
    """Consultation costs £60.00: 50% is £30.00 in the ledger, as an amount; the evaluation
    says it in words. Before, the fee was the fixed £25.00 whatever the visit cost."""
    with db.write() as session:
        version = percent_policy(session, world, late=50, points_deducted=0)
        start = T0 + timedelta(days=3)
        appointment = booked(session, world, start)
        result = policy.evaluate(session, appointment, start - timedelta(hours=2))
        assert (result.fee_cents, result.fee_text) == (
            3000,
            "50% of the visit's price (£30.00 for this visit)",
        )
        entries = policy.assess_cancellation(session, appointment, result)
        session.flush()
        assert [(e.kind, e.amount_cents, e.policy_id) for e in entries] == [
            (LedgerKind.LATE_CANCEL_FEE, 3000, version.id)
        ]
        assert policy.charge_text(session, entries[0]) == result.fee_text
        early = policy.evaluate(session, appointment, start - timedelta(hours=30))
        assert (early.fee_cents, early.fee_text) == (0, "")


def test_a_package_visit_costs_a_share_of_the_packages_price(db, world):
    with db.write() as session:
        percent_policy(session, world, late=25, no_show=50, points_deducted=0)
        package = Package(name="Glow day", price_cents=19_999)
        session.add(package)
        session.flush()
        start = T0 - timedelta(days=1)
        appointment = booked(session, world, start, package_id=package.id)
        assert treatment.price_of(appointment) == 19_999  # not the service's £60.00
        late = policy.evaluate(session, appointment, start - timedelta(hours=1))
        assert late.fee_cents == 5000  # 49.9975 -> 50.00
        assert late.fee_text == "25% of the visit's price (£50.00 for this visit)"
        entries = policy.assess_no_show(session, appointment)
        assert [(e.kind, e.amount_cents) for e in entries] == [(LedgerKind.NO_SHOW_FEE, 10_000)]


def test_a_package_visit_keeps_the_terms_of_its_service_with_its_own_policy(db, world):
    """Glow: the Consultation (the clinic's 24 hours, £25.00) then the Laser, whose own policy
    asks 48 hours' notice and 50% of the price. Before, only the first service's override
    counted: Glow cancelled 30 hours ahead cost nothing, its no-show the clinic's £40.00, and
    the Laser's new version did not count the Glow visits among those it reaches."""
    with db.write() as session:
        save(session, world)
        laser = Service(name="Laser", duration_minutes=30, price_cents=9000)
        glow = Package(name="Glow", price_cents=12_000)
        session.add_all([laser, glow])
        session.flush()
        terms = dict(window_hours=48, service_id=laser.id)
        version = percent_policy(session, world, late=50, no_show=50, **terms)
        start = utcnow() + timedelta(days=3)
        visit = booked(session, world, start, package_id=glow.id)
        visit.services.extend(
            [
                AppointmentService(service_id=world.service_id, position=0),
                AppointmentService(service_id=laser.id, position=1),
            ]
        )
        session.flush()
        late = policy.evaluate(session, visit, start - timedelta(hours=30))
        assert (late.policy_id, late.late, late.fee_cents) == (version.id, True, 6000)
        assert policy.no_show_cost(session, visit)[0] == 6000
        values = dict(
            clinic_id=world.clinic_id,
            window_hours=24,
            late_cancel_fee_cents=2500,
            no_show_fee_cents=4000,
            points_deducted=20,
            online_cancel_allowed=True,
            max_reschedules=2,
        )
        reached = policy.change_effects(session, world.owner, **(values | terms))
        clinic_wide = policy.change_effects(session, world.owner, **values)
        assert (reached.booked, clinic_wide.booked) == (1, 0)


def test_a_visit_with_no_price_costs_no_percentage_fee(db, world):
    with db.write() as session:
        percent_policy(session, world, points_deducted=20)
        session.get(Service, world.service_id).price_cents = 0
        start = T0 - timedelta(days=1)
        appointment = booked(session, world, start)
        result = policy.evaluate(session, appointment, start - timedelta(hours=1))
        assert (result.late, result.fee_cents, result.fee_text, result.points) == (
            True,
            0,
            "",
            20,
        )
        entries = policy.assess_no_show(session, appointment)
        assert [(e.kind, e.points) for e in entries] == [(LedgerKind.POINTS, 20)]  # no fee row


def test_the_no_show_fee_is_the_share_of_the_price_when_it_happens(db, world):
    """The percentage is worked out when the no-show is recorded, of the visit's price then."""
    with db.write() as session:
        percent_policy(session, world, no_show=40, points_deducted=0)
        appointment = booked(session, world, T0 - timedelta(days=1))
        assert policy.no_show_cost(session, appointment) == (
            2400,
            "40% of the visit's price (£24.00 for this visit)",
        )
        session.get(Service, world.service_id).price_cents = 7550
        entries = policy.assess_no_show(session, appointment)
        assert [e.amount_cents for e in entries] == [3020]


def test_versions_keep_their_own_kind_of_fee(db, world):
    """A fixed-fee version, then a percentage one: each cancellation is charged by the version
    in force when it happens, and the versions list says which kind each fee is."""
    with db.write() as session:
        fixed = save(session, world, late_cancel_fee_cents=2500, effective_at=T0)
        share = percent_policy(
            session, world, late=50, late_cancel_fee_cents=2500, effective_at=T0 + timedelta(10)
        )
        assert (share.version, share.late_cancel_fee_basis, share.late_cancel_fee_percent) == (
            2,
            FeeBasis.PERCENT,
            50,
        )
        # two visits, each cancelled an hour before it starts: one under each version
        before = booked(session, world, T0 + timedelta(days=5))
        after = booked(session, world, T0 + timedelta(days=30))
        for visit, fee in ((before, 2500), (after, 3000)):  # 50% of the £60.00 consultation
            result = policy.evaluate(session, visit, visit.start_at - timedelta(hours=1))
            assert (result.policy_id, result.fee_cents) == (
                (fixed if fee == 2500 else share).id,
                fee,
            )
        versions = policy.list_policy_versions(session, world.owner, world.clinic_id)
        gbp = session.get(Clinic, world.clinic_id)
        assert [v.late_fee.terms(gbp) for v in versions] == ["50% of the visit's price", "£25.00"]
        assert [v.no_show_fee.terms(gbp) for v in versions] == [
            "100% of the visit's price",
            "£40.00",
        ]
        event = audit.history_of(session, "cancellation_policy", share.id)[0]
        details = event.details
        assert (details["late_cancel_fee_basis"], details["late_cancel_fee_percent"]) == (
            "percent",
            50,
        )


@pytest.mark.parametrize(
    ("late", "no_show", "basis", "said"),
    [
        (
            150,
            50,
            "percent",
            "late-cancellation fee as a percentage of the visit's price must be "
            "a whole number from 0 to 100 (50 for half the price), not 150.",
        ),
        (
            50,
            -1,
            "percent",
            "no-show fee as a percentage of the visit's price must be a whole "
            "number from 0 to 100 (50 for half the price), not -1.",
        ),
        (50.5, 50, "percent", "not 50.5."),
        (True, 50, "percent", "not True."),
        (
            50,
            50,
            "half",
            "The late-cancellation fee is 'fixed' (a fixed amount) or 'percent' (a "
            "percentage of the visit's price), not 'half'.",
        ),
    ],
)
def test_a_percentage_outside_0_to_100_or_not_whole_is_refused(
    db, world, late, no_show, basis, said
):
    with db.write() as session:
        with pytest.raises(ValidationError) as error:
            save(
                session,
                world,
                late_cancel_fee_basis=basis,
                late_cancel_fee_percent=late,
                no_show_fee_basis="percent",
                no_show_fee_percent=no_show,
            )
        assert said in str(error.value)
        assert session.scalar(select(func.count()).select_from(policy.CancellationPolicy)) == 0


def test_policies_saved_before_percentages_keep_their_fixed_fees(db, world):
    """Migration 0016 adds the fee's kind and percentage with defaults: a version written before
    it (here through the old schema) charges its fixed fee as it did."""
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0015")
    with db.engine.begin() as connection:
        connection.execute(
            sa_text(
                "INSERT INTO cancellation_policies (clinic_id, version, effective_at, "
                "window_hours, late_cancel_fee_cents, no_show_fee_cents, points_deducted, "
                "inside_window_needs_approval, outside_window_auto_accept, "
                "online_cancel_allowed, max_reschedules, policy_text, created_at) VALUES "
                "(:clinic, 1, :at, 24, 2500, 4000, 0, true, false, true, 2, 'Old', :at)"
            ),
            {"clinic": world.clinic_id, "at": T0},
        )
    migrate.upgrade(db.engine)
    with db.write() as session:
        (old,) = policy.list_policy_versions(session, world.owner, world.clinic_id)
        assert (old.late_cancel_fee_basis, old.late_cancel_fee_percent) == ("fixed", 0)
        assert (old.no_show_fee_basis, old.no_show_fee_percent) == ("fixed", 0)
        appointment = booked(session, world, T0 + timedelta(days=3))
        result = policy.evaluate(session, appointment, appointment.start_at - timedelta(hours=1))
        assert (result.fee_cents, result.fee_text) == (2500, "£25.00")
        assert [e.amount_cents for e in policy.assess_no_show(session, appointment)] == [4000]


def test_the_patient_and_the_desk_are_told_the_share_and_what_it_came_to(db, world):
    """The cancellation and no-show messages and the desk's no-show confirmation say the fee as
    the policy sets it, with its amount for this £60.00 visit (before: a bare amount)."""
    with db.write() as session:
        percent_policy(session, world, late=50, no_show=100, points_deducted=0)
        late = booked(session, world, utcnow() + timedelta(hours=2))
        missed = booked(session, world, utcnow() - timedelta(hours=1))
        late_id, missed_id = late.id, missed.id
        said = visits.no_show_consequences(session, world.manager, missed_id)
        assert "a no-show fee of 100% of the visit's price (£60.00 for this visit) is " in said
        moves.cancel_appointment(session, world.manager, late_id, reason="Ill", by_patient=True)
        visits.mark_no_show(session, world.manager, missed_id)
    with db.read() as session:

        def email(appointment_id, template):
            return session.scalar(
                select(Notification.body).where(
                    Notification.appointment_id == appointment_id,
                    Notification.template == template,
                    Notification.channel == Channel.EMAIL,
                )
            )

        assert (
            "A late-cancellation fee of 50% of the visit's price (£30.00 for this visit) applies."
            in email(late_id, "appointment_cancelled")
        )
        assert "A no-show fee of 100% of the visit's price (£60.00 for this visit) applies." in (
            email(missed_id, "appointment_no_show")
        )
        fees = session.scalars(select(LedgerEntry.amount_cents).order_by(LedgerEntry.id))
        assert [cents for cents in fees if cents] == [3000, 6000]


def test_a_fixed_fee_is_still_told_as_its_amount(db, world):
    with db.write() as session:
        save(session, world, points_deducted=0, effective_at=datetime(2020, 1, 1, tzinfo=UTC))
        late = booked(session, world, utcnow() + timedelta(hours=2))
        moves.cancel_appointment(session, world.manager, late.id, reason="Ill", by_patient=True)
        body = session.scalar(
            select(Notification.body).where(
                Notification.template == "appointment_cancelled",
                Notification.channel == Channel.EMAIL,
            )
        )
    assert "A late-cancellation fee of £25.00 applies." in body


# ---------------------------------------------------------------- points given back after a merge


def _merged_with_deductions(db, world, earned: int, deducted: list[int]) -> tuple[int, list[int]]:
    """A second record of the kept patient (opened with 100 points like every new record),
    `earned` points added on it, then a no-show's points deducted for each of `deducted`, and
    merged into the kept record (core.patients.merge: only what it holds beyond its opening
    moves). Returns the duplicate and its deductions."""
    with db.write() as s:
        duplicate = make_patient(s, email="alex.copy@example.net", phone=None).id
        if earned:
            points.adjust_points(s, world.manager, duplicate, earned, "Survey on paper")
        deductions = []
        for n, taken in enumerate(deducted):
            visit = booked(s, world, T0 - timedelta(days=n + 1), patient_id=duplicate)
            visit.status = AppointmentStatus.NO_SHOW
            entry = balance.deduct(s, duplicate, taken, appointment_id=visit.id, policy_id=None)
            s.flush()
            deductions.append(entry.id)
    with db.write() as s:
        merge.merge_patients(s, world.manager, world.patient_id, duplicate, "Same person")
    return duplicate, deductions


def _adds_up(s, patient_id: int) -> tuple[int, int]:
    entries = s.scalars(select(LedgerEntry).where(LedgerEntry.patient_id == patient_id))
    return s.get(Patient, patient_id).points_balance, sum(balance.delta(e) for e in entries)


@pytest.mark.parametrize(
    ("earned", "forwarded", "kept"),
    [
        # 40 deducted out of the opening alone: one balance (100 opened) ends at 100 again
        (0, 0, 100),
        # 20 of the 40 out of what was earned, 20 out of the opening: one balance ends at 120
        (20, 20, 120),
        # 877416d's figures: 100 opened, 50 earned, 40 deducted, 10 moved by the merge; the 40
        # came out of what was earned, so all go on: 100 + 50 - 40 + 40 = 150, as one balance
        (50, 40, 150),
    ],
)
def test_points_given_back_after_a_merge_reach_the_kept_record_as_one_balance_would(
    db, world, earned, forwarded, kept
):
    """A deduction waived on a merged record gives its points back there and on to the record
    kept, but only what raises the duplicate above its opening balance (which the merge did
    not carry: one person opens one balance); the rest closes its opening again, so it ends
    at 0 and both ledgers add up. Before, all 40 went on: 140 with nothing earned."""
    duplicate, (deduction,) = _merged_with_deductions(db, world, earned, [40])
    with db.write() as s:
        policy.waive_fee(s, world.manager, deduction, "Phoned ahead")
    with db.read() as s:
        assert _adds_up(s, world.patient_id) == (kept, kept)
        assert _adds_up(s, duplicate) == (0, 0)
        gone = points.points_history(s, world.manager, duplicate)
        event = audit.history_of(s, "ledger_entry", deduction)[-1]
        said = policy.given_back_words(s, deduction)
    kept_id = world.patient_id
    assert event.action == "fee_waived" and event.details["points_given_back"] == 40
    assert (
        event.details["forwarded_to"],
        event.details["points_forwarded"],
        event.details["points_not_carried"],
    ) == (kept_id, forwarded, 40 - forwarded)
    assert said == event.message
    if forwarded == 40:
        assert said == f"#{duplicate} was merged into #{kept_id}: the 40 points go on to it."
    elif forwarded:
        assert said == (
            f"#{duplicate} was merged into #{kept_id}: {forwarded} of the 40 points go on to it; "
            f"the other {40 - forwarded} came out of #{duplicate}'s opening balance, which the "
            "merge did not carry (one person opens one balance), so they are not added."
        )
    else:
        assert said == (
            f"#{duplicate} was merged into #{kept_id}: the 40 points came out of #{duplicate}'s "
            "opening balance, which the merge did not carry (one person opens one balance), so "
            f"#{kept_id} gets none of them."
        )
    # the duplicate's history says where each part went, newest first
    closed = f"Given back out of its opening, not carried into #{kept_id}: one person opens one"
    said_there = ([(-forwarded, f"Merged into #{kept_id}")] if forwarded else []) + (
        [(forwarded - 40, f"{closed} balance")] if forwarded < 40 else []
    )
    assert [(r.points, r.note) for r in gone[: len(said_there)]] == said_there


def test_each_waiver_after_a_merge_forwards_only_what_one_balance_would_have(db, world):
    """100 opened, 30 earned, then 40 and 90 deducted (the balance at 0: nothing moved with the
    merge). The first waiver's 40 come out of the opening: nothing goes on. The second's 90
    raise the duplicate 30 above what is left of its opening: 30 go on. One balance would be
    at 130 (100 + 30); before, the kept record reached 230."""
    duplicate, (first, second) = _merged_with_deductions(db, world, 30, [40, 90])
    with db.read() as s:
        assert _adds_up(s, world.patient_id) == (100, 100)
    with db.write() as s:
        policy.waive_fee(s, world.manager, first, "Phoned ahead")
    with db.read() as s:
        assert _adds_up(s, world.patient_id) == (100, 100)
        assert _adds_up(s, duplicate) == (0, 0)
    with db.write() as s:
        policy.waive_fee(s, world.manager, second, "Snow")
    with db.read() as s:
        assert _adds_up(s, world.patient_id) == (130, 130)
        assert _adds_up(s, duplicate) == (0, 0)
        assert points.opening_points(s, duplicate) == 0  # its whole opening closed, none moved
        details = [audit.history_of(s, "ledger_entry", e)[-1].details for e in (first, second)]
    assert [(d["points_forwarded"], d["points_not_carried"]) for d in details] == [
        (0, 40),
        (30, 60),
    ]


def test_a_waiver_on_a_record_never_merged_forwards_nothing_and_says_nothing(db, world):
    with db.write() as s:
        visit = booked(s, world, T0 - timedelta(days=1))
        entry = balance.deduct(s, world.patient_id, 40, appointment_id=visit.id, policy_id=None)
        s.flush()
        policy.waive_fee(s, world.manager, entry.id, "Phoned ahead")
        event = audit.history_of(s, "ledger_entry", entry.id)[-1]
        assert s.get(Patient, world.patient_id).points_balance == 100
        assert policy.given_back_words(s, entry.id) == "" and event.message is None
        assert "forwarded_to" not in event.details
