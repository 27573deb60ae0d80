"""Cancellation policy: the one evaluation every cancellation path uses.

`evaluate` answers, for an appointment and a moment, which policy version applies, whether the
moment falls inside the late-cancellation window, and what it would cost. The queue's alert, the
patient's warning and the actual cancellation all call it, so they cannot disagree.

Each of a version's two fees (`Fee`) is a fixed amount or a whole percentage of the visit's
price (core.practice.treatment.price_of: its package's one price, otherwise its services' prices
added up).
A percentage is turned into an amount when the cancellation or no-show happens, rounded half up
to the currency's minor unit, and the ledger stores that amount as it stores a fixed fee.
`Fee.terms` is the one wording of a fee wherever the policy is described: "£25.00", "50% of the
visit's price", or with a visit "50% of the visit's price (£40.00 for this visit)".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import Conflict, NotFound, ValidationError
from core.kernel.money import (
    DEFAULT_CURRENCY,
    MAX_MINOR,
    clinic_format,
    clinic_money,
    clinic_time,
    format_money,
    format_percent,
    to_major,
    to_minor,
)
from core.policy import balance
from core.practice.setup import NeedsConfirmation
from core.practice.treatment import price_of
from db.models import (
    OCCUPYING,
    Appointment,
    AppointmentService,
    AuditEvent,
    CancellationPolicy,
    ChangeRequest,
    ChangeStatus,
    Clinic,
    FeeBasis,
    LedgerEntry,
    LedgerKind,
    Patient,
    Service,
)
from db.types import utcnow

MAX_WINDOW_HOURS = 24 * 14
MAX_FEE_CENTS = MAX_MINOR  # a price's limit, in minor units of any currency (₫ as £)
FEE_BASES = {
    FeeBasis.FIXED.value: "a fixed amount",
    FeeBasis.PERCENT.value: "a percentage of the visit's price",
}


@dataclass(frozen=True)
class Fee:
    """One of a policy's two fees: a fixed amount in minor units, or a whole percentage (0 to
    100) of the visit's price."""

    basis: FeeBasis = FeeBasis.FIXED
    cents: int = 0  # the fixed amount
    percent: int = 0  # the share of the visit's price

    @property
    def by_percent(self) -> bool:
        return self.basis == FeeBasis.PERCENT

    def charged(self, price_cents: int | None, currency: str) -> int:
        """What this fee costs on a visit of `price_cents` in `currency`: the fixed amount, or
        the percentage of the price rounded half up to the currency's minor unit (Babel's
        precision: pence, whole yen). A visit with no price costs no percentage fee."""
        if not self.by_percent:
            return self.cents
        if not price_cents:
            return 0
        share = to_major(price_cents, currency) * Decimal(self.percent) / 100
        return to_minor(share, currency)

    def terms(self, fmt, price_cents: int | None = None) -> str:
        """The fee in words in a clinic's currency and locale (`fmt`: anything with .currency
        and .locale): '£25.00'; "50% of the visit's price"; with a visit's price, "50% of the
        visit's price (£40.00 for this visit)"."""
        if not self.by_percent or price_cents is None:
            return self.terms_charged(fmt, None)
        return self.terms_charged(fmt, self.charged(price_cents, fmt.currency or DEFAULT_CURRENCY))

    def terms_charged(self, fmt, cents: int | None) -> str:
        """The fee in words, with what it came to on a visit (`cents`; None: no visit)."""
        if not self.by_percent:
            return clinic_money(fmt, self.cents if cents is None else cents)
        words = f"{format_percent(self.percent / 100, 0, fmt.locale)} of the visit's price"
        return words if cents is None else f"{words} ({clinic_money(fmt, cents)} for this visit)"


def late_fee(policy) -> Fee:
    """The late-cancellation fee of a version (a CancellationPolicy or a PolicyVersion)."""
    return Fee(
        FeeBasis(policy.late_cancel_fee_basis),
        policy.late_cancel_fee_cents,
        policy.late_cancel_fee_percent,
    )


def no_show_fee(policy) -> Fee:
    """The no-show fee of a version (a CancellationPolicy or a PolicyVersion)."""
    return Fee(
        FeeBasis(policy.no_show_fee_basis), policy.no_show_fee_cents, policy.no_show_fee_percent
    )


def _fee_on(session: Session, fee: Fee, appointment: Appointment) -> tuple[int, str]:
    """What `fee` costs on this visit, and its words for it ('' when it costs nothing)."""
    clinic = appointment.clinic or session.get(Clinic, appointment.clinic_id)
    currency = (clinic.currency if clinic else None) or DEFAULT_CURRENCY
    price = price_of(appointment) if fee.by_percent else None
    cents = fee.charged(price, currency)
    return cents, (fee.terms(clinic, price) if clinic is not None and cents else "")


def charge_text(session: Session, entry: LedgerEntry) -> str:
    """A late-cancellation or no-show fee charged, in words, for the patient's message: '£25.00'
    or "50% of the visit's price (£40.00 for this visit)" (the amount is the ledger's)."""
    policy = session.get(CancellationPolicy, entry.policy_id) if entry.policy_id else None
    appointment = session.get(Appointment, entry.appointment_id) if entry.appointment_id else None
    clinic = appointment.clinic if appointment else None
    if clinic is None:
        return format_money(entry.amount_cents)
    if policy is None:
        return clinic_money(clinic, entry.amount_cents)
    fee = late_fee(policy) if entry.kind == LedgerKind.LATE_CANCEL_FEE else no_show_fee(policy)
    return fee.terms_charged(clinic, entry.amount_cents)


def cancellation_charged(session: Session, entries: list[LedgerEntry]) -> str:
    """What a late cancellation's ledger entries charged, a line each, in the patient's words
    and the clinic's money: '\nA late-cancellation fee of £25.00 applies.' and '\n10 points were
    deducted.' (what the balance gave, not the policy's figure); '' when they charged nothing.
    The cancellation's message says it (core.scheduling.moves.cancel), and so does the answer
    to a text cancelling at once (core.portal.replies) through late_cancellation_charged."""
    text = ""
    for entry in entries:  # the fee in the policy's words: fixed, or a share of the price
        if entry.kind == LedgerKind.LATE_CANCEL_FEE and entry.amount_cents:
            text += f"\nA late-cancellation fee of {charge_text(session, entry)} applies."
    points = sum(e.points or 0 for e in entries if e.kind == LedgerKind.POINTS)
    if points:
        text += f"\n{points} points were deducted."
    return text


def late_cancellation_charged(session: Session, appointment: Appointment) -> str:
    """cancellation_charged of a cancelled visit, read back from its ledger entries (its fee
    and the points deducted with it, none waived)."""
    if not appointment.late_cancellation:
        return ""
    entries = session.scalars(
        select(LedgerEntry)
        .where(
            LedgerEntry.appointment_id == appointment.id,
            LedgerEntry.kind.in_((LedgerKind.LATE_CANCEL_FEE, LedgerKind.POINTS)),
            LedgerEntry.waived_at.is_(None),
        )
        .order_by(LedgerEntry.id)
    ).all()
    return cancellation_charged(session, list(entries))


def no_show_cost(session: Session, appointment: Appointment) -> tuple[int, str]:
    """What recording this visit as a no-show would cost under the version in force now, and
    the fee in words ('' when none: no policy, no patient, no fee)."""
    policy = visit_policy(session, appointment)
    if policy is None or appointment.patient_id is None:
        return 0, ""
    return _fee_on(session, no_show_fee(policy), appointment)


@dataclass(frozen=True)
class Evaluation:
    policy_id: int | None
    inside_window: bool
    fee_cents: int
    points: int
    window_hours: int
    needs_approval: bool  # a patient's request needs a manager
    auto_accept: bool  # a patient's request is accepted at once
    online_allowed: bool
    max_reschedules: int
    policy_text: str
    # the late-cancellation fee in words for this visit ("£25.00", "50% of the visit's price
    # (£40.00 for this visit)"); '' exactly when fee_cents is 0
    fee_text: str = ""

    @property
    def late(self) -> bool:
        return self.inside_window


NO_POLICY = Evaluation(None, False, 0, 0, 0, True, False, True, 99, "")


def current_policy(
    session: Session, clinic_id: int, service_id: int | None, at: datetime | None = None
) -> CancellationPolicy | None:
    """The version in force at `at`: a service override wins over the clinic's policy."""
    return _in_force(session, clinic_id, [] if service_id is None else [service_id], at)


def visit_policy(
    session: Session, appointment: Appointment, at: datetime | None = None
) -> CancellationPolicy | None:
    """The version in force at `at` for this visit. A visit of several services (a package)
    follows the override of its services that asks the most notice (the longest window; the
    first in booked order on a tie), the clinic's policy when none has one: a package holding
    the laser keeps the laser's terms when a consultation comes first. (Before, only its first
    service's override counted.)"""
    ids = [row.service_id for row in appointment.services] or [appointment.service_id]
    return _in_force(session, appointment.clinic_id, _known(ids), at)


def _known(ids) -> list[int]:
    return [i for i in dict.fromkeys(ids) if i is not None]


def _in_force(
    session: Session, clinic_id: int, service_ids: list[int], at: datetime | None
) -> CancellationPolicy | None:
    at = at or utcnow()
    query = (
        select(CancellationPolicy)
        .where(CancellationPolicy.clinic_id == clinic_id, CancellationPolicy.effective_at <= at)
        .order_by(CancellationPolicy.effective_at.desc(), CancellationPolicy.id.desc())
    )
    if service_ids:
        latest: dict[int, CancellationPolicy] = {}
        for version in session.scalars(query.where(CancellationPolicy.service_id.in_(service_ids))):
            latest.setdefault(version.service_id, version)
        overrides = [latest[i] for i in service_ids if i in latest]
        if overrides:
            return max(overrides, key=lambda version: version.window_hours)
    return session.scalar(query.where(CancellationPolicy.service_id.is_(None)).limit(1))


def inside_window(start_at: datetime, at: datetime, window_hours: int) -> bool:
    """Late when fewer than `window_hours` real elapsed hours remain before the start (or it has
    started). Both moments are compared in UTC: subtracting two datetimes that share one
    ZoneInfo would count wall-clock hours, and a DST change would move the window by an hour.
    The practice's rule (core.kernel.clock): a length it sets is real time, while the 24-hour
    reminder goes at the visit's clock time the day before, 23 real hours ahead on a spring
    weekend, so a cancellation made on reading it is late then, as it is on any other day."""
    if start_at.tzinfo is None or at.tzinfo is None:
        raise ValueError("inside_window needs time-zone-aware datetimes")
    return start_at.astimezone(UTC) - at.astimezone(UTC) < timedelta(hours=window_hours)


def evaluate(session: Session, appointment: Appointment, at: datetime | None = None) -> Evaluation:
    at = at or utcnow()
    policy = visit_policy(session, appointment, at)
    if policy is None or appointment.start_at is None:
        return NO_POLICY
    late = inside_window(appointment.start_at, at, policy.window_hours)
    # a percentage is of the visit's price as it is at the moment evaluated (the cancellation)
    fee_cents, fee_text = _fee_on(session, late_fee(policy), appointment) if late else (0, "")
    return Evaluation(
        policy_id=policy.id,
        inside_window=late,
        fee_cents=fee_cents,
        points=policy.points_deducted if late else 0,
        window_hours=policy.window_hours,
        needs_approval=late and policy.inside_window_needs_approval,
        auto_accept=not late and policy.outside_window_auto_accept,
        online_allowed=policy.online_cancel_allowed,
        max_reschedules=policy.max_reschedules,
        policy_text=policy.policy_text,
        fee_text=fee_text,
    )


def assess_cancellation(
    session: Session, appointment: Appointment, evaluation: Evaluation
) -> list[LedgerEntry]:
    """Record what a cancellation costs under `evaluation` (late: fee and/or points)."""
    appointment.policy_id = evaluation.policy_id
    appointment.late_cancellation = evaluation.inside_window
    if not evaluation.inside_window or appointment.patient_id is None:
        return []
    return _charge(
        session,
        appointment,
        LedgerKind.LATE_CANCEL_FEE,
        evaluation.fee_cents,
        evaluation.points,
        evaluation.policy_id,
    )


def assess_no_show(session: Session, appointment: Appointment) -> list[LedgerEntry]:
    """A no-show costs the no-show fee (and the policy's points) of the version in force: a
    percentage of the visit's price is turned into its amount now."""
    policy = visit_policy(session, appointment)
    if policy is None or appointment.patient_id is None:
        return []
    appointment.policy_id = policy.id
    fee_cents, _ = _fee_on(session, no_show_fee(policy), appointment)
    return _charge(
        session,
        appointment,
        LedgerKind.NO_SHOW_FEE,
        fee_cents,
        policy.points_deducted,
        policy.id,
    )


def _charge(
    session: Session,
    appointment: Appointment,
    kind: LedgerKind,
    fee_cents: int | None,
    points: int | None,
    policy_id: int | None,
) -> list[LedgerEntry]:
    """The ledger entries of a fee and/or a points deduction, added to the session."""
    entries = []
    if fee_cents:
        entries.append(
            LedgerEntry(
                patient_id=appointment.patient_id,
                appointment_id=appointment.id,
                kind=kind,
                amount_cents=fee_cents,
                policy_id=policy_id,
            )
        )
        session.add(entries[-1])  # the fee first, then the deduction, as always
    if points:
        entries.append(_deduct_points(session, appointment, points, policy_id))
    return entries


def _deduct_points(
    session: Session, appointment: Appointment, points: int, policy_id
) -> LedgerEntry:
    """The policy's deduction as far as the balance goes (it stops at zero): the entry records
    what was taken, so the ledger adds up to the balance and a waiver gives back no more.
    Added to the session, the patient's row locked (core.policy.balance)."""
    return balance.deduct(
        session, appointment.patient_id, points, appointment_id=appointment.id, policy_id=policy_id
    )


# ---------------------------------------------------------------- settings (versions)


@dataclass(frozen=True)
class PolicyVersion:
    id: int
    clinic_id: int
    service_id: int | None
    service_name: str | None
    version: int
    effective_at: datetime
    window_hours: int
    late_cancel_fee_cents: int
    no_show_fee_cents: int
    points_deducted: int
    inside_window_needs_approval: bool
    outside_window_auto_accept: bool
    online_cancel_allowed: bool
    max_reschedules: int
    policy_text: str
    created_at: datetime
    late_cancel_fee_basis: str = FeeBasis.FIXED.value
    late_cancel_fee_percent: int = 0
    no_show_fee_basis: str = FeeBasis.FIXED.value
    no_show_fee_percent: int = 0

    @property
    def late_fee(self) -> Fee:
        return late_fee(self)

    @property
    def no_show_fee(self) -> Fee:
        return no_show_fee(self)


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_policy_values(window_hours, fees, points, max_reschedules, text, clinic=None):
    """Every problem of the values at once; the highest fee in the clinic's currency and
    locale (the default's with no clinic). `fees`: (label, basis, amount, percent) of each."""
    problems = []
    if not isinstance(window_hours, int) or window_hours < 0:
        problems.append("The cancellation window must be zero or more whole hours.")
    elif window_hours > MAX_WINDOW_HOURS:
        problems.append(f"The cancellation window can be at most {MAX_WINDOW_HOURS} hours.")
    for label, basis, value, percent in fees:
        if not isinstance(basis, str) or basis not in FEE_BASES:
            choices = " or ".join(f"'{b}' ({words})" for b, words in FEE_BASES.items())
            problems.append(f"The {label} is {choices}, not {basis!r}.")
        if not isinstance(value, int) or value < 0:
            problems.append(f"The {label} cannot be negative; use 0 for no fee.")
        elif value > MAX_FEE_CENTS:
            highest = clinic_money(clinic, MAX_FEE_CENTS) if clinic else format_money(MAX_FEE_CENTS)
            problems.append(f"The {label} can be at most {highest}.")
        if not _whole(percent) or not 0 <= percent <= 100:
            problems.append(
                f"The {label} as a percentage of the visit's price must be a whole number from "
                f"0 to 100 (50 for half the price), not {percent!r}."
            )
    if not isinstance(points, int) or points < 0:
        problems.append("The points deducted cannot be negative; use 0 to deduct none.")
    if not isinstance(max_reschedules, int) or max_reschedules < 0:
        problems.append("The most reschedules allowed cannot be negative.")
    if not (text or "").strip():
        problems.append("Write the policy text patients will see; it cannot be empty.")
    if problems:
        raise ValidationError(" ".join(problems))


def save_policy(
    session: Session,
    actor: Actor,
    *,
    clinic_id: int,
    service_id: int | None = None,
    window_hours: int,
    late_cancel_fee_cents: int,
    no_show_fee_cents: int,
    points_deducted: int,
    inside_window_needs_approval: bool,
    outside_window_auto_accept: bool,
    online_cancel_allowed: bool,
    max_reschedules: int,
    policy_text: str,
    effective_at: datetime | None = None,
    late_cancel_fee_basis: str = FeeBasis.FIXED.value,
    late_cancel_fee_percent: int = 0,
    no_show_fee_basis: str = FeeBasis.FIXED.value,
    no_show_fee_percent: int = 0,
    despite_effects: bool = False,
) -> CancellationPolicy:
    """Save a new version of a clinic's policy (or of a service override). Older versions stay:
    each cancellation keeps pointing at the version that applied when it happened. Each fee is
    a fixed amount (`…_cents`) or, with basis 'percent', a whole percentage of the visit's price
    (`…_percent`, 0 to 100); the value the basis does not use is kept for switching back.
    A version that makes anything worse for visits booked ahead (`change_effects`' warning) is
    refused until confirmed (`despite_effects`), as the set-up's changes under bookings are."""
    ensure(actor, Permission.POLICY_MANAGE)
    # the clinic's row locked: two saves at once number their versions one after the other
    clinic = session.get(Clinic, clinic_id, with_for_update=True)
    _check_policy_values(
        window_hours,
        (
            (
                "late-cancellation fee",
                late_cancel_fee_basis,
                late_cancel_fee_cents,
                late_cancel_fee_percent,
            ),
            ("no-show fee", no_show_fee_basis, no_show_fee_cents, no_show_fee_percent),
        ),
        points_deducted,
        max_reschedules,
        policy_text,
        clinic,
    )
    if clinic is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    if service_id is not None and session.get(Service, service_id) is None:
        raise NotFound(f"There is no service #{service_id}.")
    if effective_at is not None and effective_at.tzinfo is None:
        raise ValidationError("The effective time needs a time zone.")
    if not despite_effects:
        effects = change_effects(
            session,
            actor,
            clinic_id=clinic_id,
            service_id=service_id,
            window_hours=window_hours,
            late_cancel_fee_cents=late_cancel_fee_cents,
            no_show_fee_cents=no_show_fee_cents,
            points_deducted=points_deducted,
            online_cancel_allowed=online_cancel_allowed,
            max_reschedules=max_reschedules,
            late_cancel_fee_basis=late_cancel_fee_basis,
            late_cancel_fee_percent=late_cancel_fee_percent,
            no_show_fee_basis=no_show_fee_basis,
            no_show_fee_percent=no_show_fee_percent,
        )
        if effects.warning:
            raise NeedsConfirmation("policy", effects.warning)
    scope = (
        CancellationPolicy.clinic_id == clinic_id,
        CancellationPolicy.service_id.is_(None)
        if service_id is None
        else CancellationPolicy.service_id == service_id,
    )
    last = session.scalar(select(func.max(CancellationPolicy.version)).where(*scope)) or 0
    policy = CancellationPolicy(
        clinic_id=clinic_id,
        service_id=service_id,
        version=last + 1,
        effective_at=effective_at or utcnow(),
        window_hours=window_hours,
        late_cancel_fee_cents=late_cancel_fee_cents,
        no_show_fee_cents=no_show_fee_cents,
        late_cancel_fee_basis=FeeBasis(late_cancel_fee_basis),
        late_cancel_fee_percent=late_cancel_fee_percent,
        no_show_fee_basis=FeeBasis(no_show_fee_basis),
        no_show_fee_percent=no_show_fee_percent,
        points_deducted=points_deducted,
        inside_window_needs_approval=inside_window_needs_approval,
        outside_window_auto_accept=outside_window_auto_accept,
        online_cancel_allowed=online_cancel_allowed,
        max_reschedules=max_reschedules,
        policy_text=policy_text.strip(),
        created_by_user_id=actor.user_id,
    )
    session.add(policy)
    session.flush()
    audit.record(
        session,
        actor,
        "policy_saved",
        "cancellation_policy",
        policy.id,
        message=f"Version {policy.version}: {window_hours} h window",
        details={
            "clinic_id": clinic_id,
            "service_id": service_id,
            "version": policy.version,
            "window_hours": window_hours,
            "late_cancel_fee_cents": late_cancel_fee_cents,
            "no_show_fee_cents": no_show_fee_cents,
            "late_cancel_fee_basis": policy.late_cancel_fee_basis.value,
            "late_cancel_fee_percent": late_cancel_fee_percent,
            "no_show_fee_basis": policy.no_show_fee_basis.value,
            "no_show_fee_percent": no_show_fee_percent,
            "points_deducted": points_deducted,
            "effective_at": policy.effective_at.isoformat(),
        },
    )
    return policy


@dataclass(frozen=True)
class ChangeEffects:
    """What saving a new version does to the visits booked ahead that it will govern.

    `summary`: which visits and requests it reaches ("" when none is booked); `warning`: what
    becomes worse for those visits (a fee or points higher, visits now inside a longer window,
    online cancelling or moves withdrawn), naming the first patients, and what to do; "" when
    nothing does, so the page saves without asking."""

    booked: int = 0
    waiting: int = 0
    summary: str = ""
    warning: str = ""


SHOWN = 3  # visits named in a warning; the rest are counted


def change_effects(
    session: Session,
    actor: Actor,
    *,
    clinic_id: int,
    service_id: int | None = None,
    window_hours: int,
    late_cancel_fee_cents: int,
    no_show_fee_cents: int,
    points_deducted: int,
    online_cancel_allowed: bool,
    max_reschedules: int,
    late_cancel_fee_basis: str = FeeBasis.FIXED.value,
    late_cancel_fee_percent: int = 0,
    no_show_fee_basis: str = FeeBasis.FIXED.value,
    no_show_fee_percent: int = 0,
    **_: object,
) -> ChangeEffects:
    """What `save_policy` with these values would do to the visits booked ahead at the clinic
    (with the service, for an override; without one, those whose service has its own override
    in force are left out): a booked visit has no terms of its own, so each cancellation and
    no-show from now on is assessed under the new version, while change requests already asked
    keep the terms they were asked under (core.requests). Told to the owner before saving."""
    ensure(actor, Permission.POLICY_MANAGE)
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    fees = (
        (
            "late-cancellation fee",
            late_cancel_fee_basis,
            late_cancel_fee_cents,
            late_cancel_fee_percent,
        ),
        ("no-show fee", no_show_fee_basis, no_show_fee_cents, no_show_fee_percent),
    )
    # values save_policy would refuse are refused alike (the text is save_policy's to check)
    _check_policy_values(window_hours, fees, points_deducted, max_reschedules, "-", clinic)
    now = utcnow()
    ahead = select(Appointment).where(
        Appointment.clinic_id == clinic_id,
        Appointment.status.in_(OCCUPYING),
        Appointment.start_at >= now,
        Appointment.patient_id.is_not(None),
    )
    # a visit of several services (a package) is counted with each of them (visit_policy)
    booked_with = select(AppointmentService.appointment_id)
    if service_id is not None:
        with_it = booked_with.where(AppointmentService.service_id == service_id)
        ahead = ahead.where(or_(Appointment.service_id == service_id, Appointment.id.in_(with_it)))
        service = session.get(Service, service_id)
        scope = f"{clinic.name} with {service.name if service else f'service #{service_id}'}"
    else:
        overridden = select(CancellationPolicy.service_id).where(
            CancellationPolicy.clinic_id == clinic_id,
            CancellationPolicy.service_id.is_not(None),
            CancellationPolicy.effective_at <= now,
        )
        ahead = ahead.where(
            or_(Appointment.service_id.is_(None), Appointment.service_id.not_in(overridden)),
            Appointment.id.not_in(booked_with.where(AppointmentService.service_id.in_(overridden))),
        )
        scope = clinic.name
    booked = session.scalar(select(func.count()).select_from(ahead.subquery())) or 0
    waiting = (
        session.scalar(
            select(func.count(ChangeRequest.id)).where(
                ChangeRequest.status.in_((ChangeStatus.OPEN, ChangeStatus.PROPOSED)),
                ChangeRequest.appointment_id.in_(ahead.with_only_columns(Appointment.id)),
            )
        )
        or 0
    )
    if not booked:
        return ChangeEffects()
    summary = (
        f"The new version applies to the {_visits(booked)} booked ahead at {scope} from their "
        "next cancellation or no-show (their patients see it when they cancel)"
    )
    if waiting:
        one = waiting == 1
        summary += (
            f"; {_count(waiting, 'change request')} waiting in the Request queue "
            f"{'keeps' if one else 'keep'} the terms {'it was' if one else 'they were'} asked under"
        )
    summary += "."
    old = current_policy(session, clinic_id, service_id, now)
    was = (
        (old.window_hours, late_fee(old), no_show_fee(old), old.points_deducted)
        if old is not None
        else (0, Fee(), Fee(), 0)
    )
    old_online = old.online_cancel_allowed if old is not None else True
    old_moves = old.max_reschedules if old is not None else NO_POLICY.max_reschedules
    late = Fee(FeeBasis(late_cancel_fee_basis), late_cancel_fee_cents, late_cancel_fee_percent)
    no_show = Fee(FeeBasis(no_show_fee_basis), no_show_fee_cents, no_show_fee_percent)
    worse = []
    if window_hours > was[0]:
        newly = ahead.where(
            Appointment.start_at >= now + timedelta(hours=was[0]),
            Appointment.start_at < now + timedelta(hours=window_hours),
        )
        count = session.scalar(select(func.count()).select_from(newly.subquery())) or 0
        if count:
            named = _named(session, clinic, newly)
            fee = late.terms(clinic) if (late.cents or late.percent) else "no fee"
            worse.append(
                f"{_count(count, 'visit')} in the next {window_hours} hours "
                f"({named}) {'falls' if count == 1 else 'fall'} inside the new {window_hours}-hour "
                f"window at once: cancelling {'it' if count == 1 else 'them'} now is late "
                f"({fee}{_points(points_deducted)}), where it was not."
            )
    dearer = [
        f"{what} costs {_terms(clinic, new, points_deducted)} (was {_terms(clinic, old, was[3])})"
        for what, new, old in (
            ("a late cancellation of any of them", late, was[1]),
            ("a no-show", no_show, was[2]),
        )
        if _dearer(new, old) or points_deducted > was[3]
    ]
    if dearer:
        worse.append(f"From now on {' and '.join(dearer)}.")
    if old_online and not online_cancel_allowed:
        worse.append(
            "Their patients can no longer cancel online; the portal and their links tell them "
            "to call the practice."
        )
    if max_reschedules < old_moves:
        stuck = ahead.where(
            Appointment.reschedule_count >= max_reschedules,
            Appointment.reschedule_count < old_moves,
        )
        count = session.scalar(select(func.count()).select_from(stuck.subquery())) or 0
        if count:
            worse.append(
                f"{_count(count, 'visit')} ({_named(session, clinic, stuck)}) moved "
                f"{max_reschedules} times or more can no longer be moved online."
            )
    warning = ""
    if worse:
        warning = (
            f"{summary} {' '.join(worse)} To spare a patient who booked under the old terms, "
            "waive the fee when they cancel (Cancellations, Waive fees and add points), or tell "
            "them now."
        )
    return ChangeEffects(booked, waiting, summary, warning)


def _count(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _visits(count: int) -> str:
    return "visit" if count == 1 else f"{count} visits"


def _points(points: int) -> str:
    return f" and {points} points" if points else ""


def _terms(clinic, fee: Fee, points: int) -> str:
    money = fee.terms(clinic) if (fee.cents if not fee.by_percent else fee.percent) else ""
    said = " and ".join(w for w in (money, f"{points} points" if points else "") if w)
    return said or "nothing"


def _dearer(new: Fee, old: Fee) -> bool:
    """The new fee may cost more than the old one on some visit (a percentage against a fixed
    amount depends on the visit's price: counted as dearer unless it is zero)."""
    if new.by_percent == old.by_percent:
        return (new.percent > old.percent) if new.by_percent else (new.cents > old.cents)
    return bool(new.percent if new.by_percent else new.cents)


def _named(session: Session, clinic: Clinic, query) -> str:
    """The first SHOWN visits of `query` as 'Alex Morgan, Tue 8 Dec 2026, 10:00', the rest
    counted ('and 4 more')."""
    ids = query.with_only_columns(Appointment.id)
    rows = session.execute(
        select(Patient.first_name, Patient.last_name, Appointment.start_at)
        .join_from(Appointment, Patient, Patient.id == Appointment.patient_id)
        .where(Appointment.id.in_(ids))
        .order_by(Appointment.start_at, Appointment.id)
        .limit(SHOWN)
    ).all()
    said = [f"{first} {last}".strip() + f", {clinic_time(clinic, at)}" for first, last, at in rows]
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if total > SHOWN:
        said.append(f"and {total - SHOWN} more")
    return "; ".join(said)


def list_policy_versions(
    session: Session, actor: Actor, clinic_id: int, limit: int = 100
) -> list[PolicyVersion]:
    """Every version of a clinic's policy and its service overrides, newest first."""
    ensure(actor, Permission.POLICY_MANAGE)
    query = (
        select(CancellationPolicy, Service.name)
        .outerjoin(Service, Service.id == CancellationPolicy.service_id)
        .where(CancellationPolicy.clinic_id == clinic_id)
        .order_by(CancellationPolicy.effective_at.desc(), CancellationPolicy.id.desc())
        .limit(limit)
    )
    return [
        PolicyVersion(
            p.id,
            p.clinic_id,
            p.service_id,
            name,
            p.version,
            p.effective_at,
            p.window_hours,
            p.late_cancel_fee_cents,
            p.no_show_fee_cents,
            p.points_deducted,
            p.inside_window_needs_approval,
            p.outside_window_auto_accept,
            p.online_cancel_allowed,
            p.max_reschedules,
            p.policy_text,
            p.created_at,
            p.late_cancel_fee_basis.value,
            p.late_cancel_fee_percent,
            p.no_show_fee_basis.value,
            p.no_show_fee_percent,
        )
        for p, name in session.execute(query)
    ]


def get_policy(
    session: Session, actor: Actor, clinic_id: int, service_id: int | None = None
) -> PolicyVersion | None:
    """The version in force now for this scope (a service without an override: None)."""
    ensure(actor, Permission.POLICY_MANAGE)
    for version in list_policy_versions(session, actor, clinic_id, limit=1000):
        if version.service_id == service_id and version.effective_at <= utcnow():
            return version
    return None


# ---------------------------------------------------------------- fees and points


# what the policy assesses; the other ledger entries are points earned, spent, adjusted, given
# back or a patient's opening balance (core.payments.points), which are not fees to waive
FEE_KINDS = (LedgerKind.LATE_CANCEL_FEE, LedgerKind.NO_SHOW_FEE, LedgerKind.POINTS)
# each as the desk and the patient read it in a sentence ('the no-show fee charged on …'), not
# its stored value ('no_show_fee'); capitalised where it stands alone (a table's Kind)
FEE_WORDS = {
    LedgerKind.LATE_CANCEL_FEE: "late-cancellation fee",
    LedgerKind.NO_SHOW_FEE: "no-show fee",
    LedgerKind.POINTS: "points deducted",
}


@dataclass(frozen=True)
class FeeRow:
    id: int
    patient_id: int
    patient_name: str
    appointment_id: int | None
    kind: str  # stored ('no_show_fee'); what says it in words
    amount_cents: int
    points: int
    created_at: datetime
    waived_at: datetime | None
    waive_reason: str | None
    # the clinic whose currency, locale and zone the fee is shown in: its appointment's (or its
    # policy's); None for an entry with neither
    clinic_id: int | None = None

    @property
    def what(self) -> str:
        """'No-show fee', 'Late-cancellation fee', 'Points deducted' (FEE_WORDS)."""
        return FEE_WORDS[LedgerKind(self.kind)].capitalize()


def list_fees(
    session: Session,
    actor: Actor,
    *,
    patient_id: int | None = None,
    open_only: bool = False,
    page: int = 0,
    page_size: int = 50,
) -> list[FeeRow]:
    """Fees and points deductions, newest first (paginated in SQL)."""
    ensure(actor, Permission.FEES_WAIVE)
    query = (
        select(
            LedgerEntry,
            Patient.first_name,
            Patient.last_name,
            func.coalesce(Appointment.clinic_id, CancellationPolicy.clinic_id),
        )
        .join(Patient, Patient.id == LedgerEntry.patient_id)
        .outerjoin(Appointment, Appointment.id == LedgerEntry.appointment_id)
        .outerjoin(CancellationPolicy, CancellationPolicy.id == LedgerEntry.policy_id)
        .where(LedgerEntry.kind.in_(FEE_KINDS))
        .order_by(LedgerEntry.id.desc())  # newest first, on the primary key (no sort)
    )
    if patient_id is not None:
        query = query.where(LedgerEntry.patient_id == patient_id)
    if open_only:
        query = query.where(LedgerEntry.waived_at.is_(None))
    query = query.limit(page_size).offset(page * page_size)
    return [
        FeeRow(
            e.id,
            e.patient_id,
            f"{first} {last}".strip(),
            e.appointment_id,
            e.kind.value,
            e.amount_cents,
            e.points,
            e.created_at,
            e.waived_at,
            e.waive_reason,
            clinic_id,
        )
        for e, first, last, clinic_id in session.execute(query)
    ]


def waive_fee(session: Session, actor: Actor, ledger_entry_id: int, reason: str) -> LedgerEntry:
    """Waive a fee (or give back deducted points). The entry stays, marked waived, with who,
    when and why; the audit trail records it too."""
    ensure(actor, Permission.FEES_WAIVE)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Say why the fee is waived; the reason is kept in the audit log.")
    entry = session.get(LedgerEntry, ledger_entry_id, with_for_update=True, populate_existing=True)
    if entry is None or entry.kind not in FEE_KINDS:
        raise NotFound(f"There is no fee #{ledger_entry_id}.")
    if entry.waived_at is not None:
        clinic_id = session.scalar(
            select(Appointment.clinic_id).where(Appointment.id == entry.appointment_id)
        )
        when = clinic_time(clinic_format(session, clinic_id), entry.waived_at)
        raise Conflict(f"Fee #{entry.id} was already waived at {when}.")
    _waive(session, actor, entry, reason)
    return entry


def _waive(
    session: Session,
    actor: Actor,
    entry: LedgerEntry,
    reason: str,
    points_back: int | None = None,
) -> Followed | None:
    """Mark the entry waived (who, when, why) and give deducted points back: all of them, or
    `points_back` when fewer were taken (a balance never goes below zero). On a record merged
    into another, what one balance would have had of them goes on to the record kept
    (`follow_merge`, returned; None otherwise); the audit says what went on and what did not,
    and why."""
    entry.waived_at = utcnow()
    entry.waived_by_user_id = actor.user_id
    entry.waive_reason = reason
    given = 0
    followed = None
    if entry.kind == LedgerKind.POINTS and entry.points:
        given = points_given_back(entry, points_back)
        balance.locked_with_kept(session, entry.patient_id)  # both rows in id order first
        patient = balance.restore(session, entry.patient_id, given)
        if given and patient.merged_into_id is not None:
            followed = follow_merge(session, patient, given)
    audit.record(
        session,
        actor,
        "fee_waived",
        "ledger_entry",
        entry.id,
        patient_id=entry.patient_id,
        reason=reason,
        message=followed.words if followed else None,
        details={
            "kind": entry.kind.value,
            "amount_cents": entry.amount_cents,
            "points": entry.points,
            "points_given_back": given,
            "appointment_id": entry.appointment_id,
            **(followed.details if followed else {}),
        },
    )
    return followed


@dataclass(frozen=True)
class Followed:
    """Points given back on a record merged into another: how many went on to the record kept
    and how many did not (they came out of the duplicate's opening balance, which the merge
    did not carry: one person opens one balance)."""

    duplicate_id: int
    kept_id: int
    given: int
    forwarded: int
    not_carried: int

    @property
    def details(self) -> dict[str, int]:
        """The audit's record of it, beside the points given back."""
        return {
            "forwarded_to": self.kept_id,
            "points_forwarded": self.forwarded,
            "points_not_carried": self.not_carried,
        }

    @property
    def words(self) -> str:
        """The desk's sentence: where the points given back went, and why not all of them."""
        head = f"#{self.duplicate_id} was merged into #{self.kept_id}: "
        why = (
            f"came out of #{self.duplicate_id}'s opening balance, which the merge did not carry "
            "(one person opens one balance)"
        )
        given = _count(self.given, "point")
        if not self.not_carried:
            return f"{head}the {given} {_go(self.given)} on to it."
        if not self.forwarded:
            return f"{head}the {given} {why}, so #{self.kept_id} gets none of them."
        return (
            f"{head}{self.forwarded} of the {given} {_go(self.forwarded)} on to it; the other "
            f"{self.not_carried} {why}, so they are not added."
        )

    @property
    def for_patient(self) -> str:
        """The patient's sentence: what reaches their one balance, without record numbers."""
        return self.told("you paid with")

    def told(self, which: str) -> str:
        """The patient's sentence for the points `which` ('you paid with', 'deducted'): what
        reaches their one balance, without record numbers."""
        given = _count(self.given, "point")
        if not self.not_carried:
            return f"{given} given back to your balance."
        why = (
            "came from the opening points of a second record we held for you, now joined with "
            "this one, and your balance keeps one opening"
        )
        if not self.forwarded:
            return f"The {given} {which} {why}: none are added."
        return (
            f"{self.forwarded} of the {given} {which} are given back to your balance; "
            f"the other {self.not_carried} {why}."
        )


def _go(count: int) -> str:
    return "goes" if count == 1 else "go"


def follow_merge(session: Session, duplicate: Patient, points: int) -> Followed:
    """`points` given back on a record merged into another (core.patients.merge) go on to the
    record kept as far as one balance would have had them. The merge carried only what the
    duplicate held beyond its opening and closed the rest of its opening (one person opens one
    balance), so what is left of its opening entries is what it had used of its opening (spent
    or lost beyond what it earned), none of it carried; points given back fill that first, and
    only what raises the duplicate above it goes on (what the merge carried already is above
    its opening: it is not counted again). Opened 100,
    earned 50, 40 deducted: 10 moved, the 40 given back go on (150 kept, as one balance);
    opened 100, 40 deducted: none moved, none go on (100 kept, not 140). What goes on moves
    as one entry on each side, like the merge's own; what does not is taken off the
    duplicate's opening again, as the merge took the rest, so its balance ends where it was
    and both ledgers add up. The caller holds the duplicate's row (core.policy.balance) with
    the points already back on it."""
    kept_id = duplicate.merged_into_id
    forwarded = _carried(session, duplicate.id, duplicate.points_balance, points)
    not_carried = points - forwarded
    if not_carried:
        balance.post(
            session,
            duplicate.id,
            LedgerKind.POINTS_OPENING,
            -not_carried,
            note=f"Given back out of its opening, not carried into #{kept_id}: one person "
            "opens one balance",
        )
    if forwarded:
        balance.transfer(
            session,
            duplicate.id,
            kept_id,
            forwarded,
            out_note=f"Merged into #{kept_id}",
            in_note=f"Merged from #{duplicate.id}",
        )
    return Followed(duplicate.id, kept_id, points, forwarded, not_carried)


def merge_preview(session: Session, duplicate: Patient, points: int) -> Followed:
    """What `follow_merge` would do with `points` given back on a merged record now, nothing
    written: the same arithmetic, on its balance as it is before they come back (a preview:
    the undo's confirmation, the portal's cancel warning)."""
    balance_back = duplicate.points_balance + points
    forwarded = _carried(session, duplicate.id, balance_back, points)
    return Followed(duplicate.id, duplicate.merged_into_id, points, forwarded, points - forwarded)


def _carried(session: Session, duplicate_id: int, balance_back: int, points: int) -> int:
    """How many of `points` given back on a merged record go on to the record kept, its
    balance being `balance_back` with them on it: only what raises it above what it still
    counts of its opening (the merge closed the rest), never below 0."""
    opening = max(0, _opening_points(session, duplicate_id))
    return max(0, min(points, balance_back - opening))


def _opening_points(session: Session, patient_id: int) -> int:
    """The patient's opening entries added up (core.payments.points.opening_points, which sits
    above this package)."""
    query = select(func.sum(LedgerEntry.points)).where(
        LedgerEntry.patient_id == patient_id, LedgerEntry.kind == LedgerKind.POINTS_OPENING
    )
    return session.scalar(query) or 0


def given_back_words(session: Session, ledger_entry_id: int) -> str:
    """What the waiver of the entry did with points given back on a merged record, in the
    desk's words (`Followed.words`, kept as its audit event's message); '' when the record was
    not merged or nothing was given back."""
    event = session.scalar(
        select(AuditEvent)
        .where(
            AuditEvent.action == "fee_waived",
            AuditEvent.entity == "ledger_entry",
            AuditEvent.entity_id == ledger_entry_id,
        )
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    return (event.message or "") if event is not None else ""


def no_show_charges(
    session: Session, appointment_id: int, *, lock: bool = False
) -> list[LedgerEntry]:
    """The no-show fee and points deduction on the appointment not waived yet (row-locked
    with `lock`, before waiving them)."""
    query = (
        select(LedgerEntry)
        .where(
            LedgerEntry.appointment_id == appointment_id,
            LedgerEntry.kind.in_((LedgerKind.NO_SHOW_FEE, LedgerKind.POINTS)),
            LedgerEntry.waived_at.is_(None),
        )
        .order_by(LedgerEntry.id)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(query.with_for_update() if lock else query))


def reverse_no_show(
    session: Session,
    actor: Actor,
    entries: list[LedgerEntry],
    reason: str,
    points_taken: int | None = None,
) -> list[Followed]:
    """Waive what a no-show assessed (`no_show_charges`): the entries stay, marked waived, and
    the points come back to the balance: `points_taken` of them, what the deduction really
    took when the balance was lower (None: all). Returns what points given back on a record
    merged since did (`follow_merge`). The caller checked the permission to undo."""
    followed = []
    for entry in entries:
        back = points_taken if entry.kind == LedgerKind.POINTS else None
        if (done := _waive(session, actor, entry, reason, back)) is not None:
            followed.append(done)
    return followed


def points_given_back(entry: LedgerEntry, points_taken: int | None) -> int:
    """How many points waiving the deduction `entry` gives back (`_waive`): all of them, or
    `points_taken` when the deduction took fewer."""
    if entry.kind != LedgerKind.POINTS or not entry.points:
        return 0
    return entry.points if points_taken is None else max(0, min(points_taken, entry.points))


def online_booking_blocked(patient: Patient) -> bool:
    """A patient with no points left may not request appointments online until points are
    added (the queue and the patient's record show the flag)."""
    return patient.points_balance <= 0


def points_flag(patient: Patient) -> str | None:
    """The flag's wording for screens, or None when the patient may book online."""
    if online_booking_blocked(patient):
        return "No points left: online requests are blocked until points are added."
    return None


def preview(
    session: Session, actor: Actor, clinic_id: int, service_id: int | None, hours_before: float
) -> Evaluation:
    """What a patient cancelling `hours_before` hours ahead would be told under the version in
    force now (the same evaluation the cancellation itself uses)."""
    ensure(actor, Permission.POLICY_MANAGE)
    now = utcnow()
    start = now + timedelta(hours=hours_before)
    probe = Appointment(clinic_id=clinic_id, service_id=service_id, start_at=start)
    return evaluate(session, probe, now)
