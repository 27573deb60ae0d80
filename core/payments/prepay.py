"""Prepayments, deposits, desk payments, fees paid and refunds for appointments.

Amounts are integer minor units in the currency of the appointment's clinic (a payment stores
it; a refund or a fee kept takes the original's); a point is worth the practice's value in minor
units of that currency (core.payments.rules). A prepayment may mix points and card: the points
are spent at once, the card part goes through the provider (Stripe Checkout: a pending payment
until the signed webhook says it is paid) or, without a provider, is paid at the desk and
recorded by staff. A receipt is emailed with what was paid. A checkout Stripe says was paid
for another amount or currency than asked pays nothing: the money taken is recorded as it came
and given back to the card in full, the patient is asked to pay again and the clinic is told.

When the practice cancels, everything paid is refunded. When the patient cancels, the policy
decides: outside the window everything is refunded; inside it, the late-cancellation fee is kept
from the money paid (the fee is then settled) and the rest refunded. Points are always given
back as points (the policy's own points deduction is separate). Card refunds through the provider
are made by the background job; desk refunds are recorded by staff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session, selectinload

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure, patient_actor
from core.kernel.config import DEFAULT_BASE_URL
from core.kernel.errors import DomainError, NotFound, ValidationError
from core.kernel.money import ClinicFormat, clinic_time, format_money
from core.messaging import clinic_events, notify
from core.payments import points as ledger_points
from core.payments.providers import (
    PaymentProvider,
    ProviderLookupRefused,
    ProviderUnanswered,
    from_stripe_amount,
    lookup_refused,
    taken_amount,
)
from core.payments.rules import (
    Due,
    PaymentSettings,
    due_for,
    get_settings,
    money_format,
    payment_money,
)
from core.policy import balance
from core.policy import cancellation as policy
from core.practice.treatment import price_of, treatment_of
from db.models import (
    Appointment,
    AppointmentService,
    AppointmentStatus,
    LedgerEntry,
    LedgerKind,
    Patient,
    Payment,
)
from db.types import utcnow

log = logging.getLogger("clinicdesk.payments")

PAID_KINDS = ("prepayment", "deposit")


DESK_METHODS = ("card", "cash")


METHOD_LABELS = {"points": "Points", "card": "Card (desk)", "cash": "Cash", "stripe": "Card"}

# a payment's kind and state as the desk reads them, not their stored values ('fee_refund',
# 'refund_due'); a fee, and a fee's money given back, by the fee's own words (payment_words)
KIND_WORDS = {
    "prepayment": "prepayment",
    "deposit": "deposit",
    "fee": "fee",
    "refund": "refund",
    "fee_refund": "fee given back",
}
STATUS_WORDS = {
    "pending": "not paid yet",
    "paid": "paid",
    "refund_due": "to give back",
    "refunded": "given back",
    "failed": "failed",
}


def payment_words(kind: str, status: str, fee: LedgerKind | str | None = None) -> tuple[str, str]:
    """What a payment is and where it stands, in words: ('no-show fee given back', 'to give
    back'), a fee named by its ledger entry's kind `fee` (policy.FEE_WORDS) where it has one; a
    value no dictionary knows (none should) as stored, its underscores spaced."""
    what = KIND_WORDS.get(kind) or kind.replace("_", " ")
    if fee is not None and kind in ("fee", "fee_refund"):
        what = what.replace("fee", policy.FEE_WORDS[LedgerKind(fee)], 1)
    return what, STATUS_WORDS.get(status) or status.replace("_", " ")


def paid_cents(session: Session, appointment_id: int) -> int:
    """Money and points (at their value when paid) received for the appointment, less refunds."""
    refunds = session.scalar(
        select(func.coalesce(func.sum(Payment.amount_cents), 0)).where(
            Payment.appointment_id == appointment_id,
            Payment.kind == "refund",
            Payment.status != "failed",
        )
    )
    kept = session.scalar(
        select(func.coalesce(func.sum(Payment.amount_cents), 0)).where(
            Payment.appointment_id == appointment_id,
            Payment.kind == "fee",
            Payment.refund_of_id.is_not(None),
        )
    )
    received = session.scalar(
        select(func.coalesce(func.sum(Payment.amount_cents), 0)).where(
            Payment.appointment_id == appointment_id,
            Payment.kind.in_(PAID_KINDS),
            Payment.status == "paid",
        )
    )
    return int(received) - int(refunds) - int(kept)


def due(session: Session, appointment: Appointment, rules: PaymentSettings | None = None) -> Due:
    rules = rules or get_settings(session)
    return due_for(appointment, rules, paid_cents(session, appointment.id))


def usable_points(balance: int, outstanding_cents: int, rules: PaymentSettings) -> int:
    """The most points a patient can put towards what is owed: no more than they hold, and no
    more than the amount is worth (0 when a point is worth nothing)."""
    value = rules.point_value_cents
    return max(0, min(balance, outstanding_cents // value)) if value > 0 else 0


def badges(session: Session, appointment_ids: list[int] | Select) -> dict[int, str]:
    """'Paid' (the price covered, a deposit among the payments or not), else 'Deposit paid'
    (a deposit among them) or 'Part paid', per appointment with money received (for the
    calendar, Today and the appointment), counted as `paid_cents` does (money kept from a
    prepayment for a late-cancellation fee is the fee's, not the visit's): one grouped query of
    what was paid, then the visits paid for with their services and package, priced as the
    payments are (`treatment.price_of`). The appointments are ids or a query of them (a
    calendar window's)."""
    if isinstance(appointment_ids, list) and not appointment_ids:
        return {}
    # as `paid_cents` counts: received, less refunds (not failed) and money kept for a fee
    received = Payment.kind.in_(PAID_KINDS) & (Payment.status == "paid")
    refunded = (Payment.kind == "refund") & (Payment.status != "failed")
    kept = (Payment.kind == "fee") & Payment.refund_of_id.is_not(None)
    rows = session.execute(
        select(
            Payment.appointment_id,
            func.sum(
                case(
                    (received, Payment.amount_cents),
                    (refunded | kept, -Payment.amount_cents),
                    else_=0,
                )
            ),
            func.max(case((Payment.kind == "deposit", 1), else_=0)),
        )
        .where(Payment.appointment_id.in_(appointment_ids))
        .group_by(Payment.appointment_id)
    ).all()
    paid = {appointment_id: int(cents or 0) for appointment_id, cents, _ in rows}
    deposits = {i for i, _, deposit in rows if deposit}
    out: dict[int, str] = {}
    priced = [i for i, cents in paid.items() if cents > 0]
    if priced:
        visits = session.scalars(
            select(Appointment)
            .where(Appointment.id.in_(priced))
            .options(
                selectinload(Appointment.services).selectinload(AppointmentService.service),
                selectinload(Appointment.service),
                selectinload(Appointment.package),
            )
        )
        for visit in visits:
            if paid[visit.id] >= price_of(visit):
                out[visit.id] = "Paid"
            else:
                out[visit.id] = "Deposit paid" if visit.id in deposits else "Part paid"
    return out


@dataclass(frozen=True)
class PaymentRow:
    id: int
    at: datetime
    kind: str  # stored ('fee_refund'), as the rules read it; `what` says it in words
    method: str
    status: str  # its stored value spaced ('refund due'), as the rules read it; `state`: words
    amount: str
    amount_cents: int
    points: int
    reference: str
    note: str
    last_error: str = ""  # a card refund the provider refused (or left unanswered): its words
    handed_back: bool = False  # a refund made by staff at the desk, not sent by the provider
    unanswered_at: datetime | None = None  # it may have been made (Payment's column)
    # in words (payment_words): 'no-show fee given back', 'to give back'
    what: str = ""
    state: str = ""

    @property
    def unsettled(self) -> bool:
        """A card refund due whose last attempt had no answer, or whose look-up the provider
        refused: the provider may have made it, so it is not handed back at the desk
        (`refund_unsettled`)."""
        return self.status == "refund due" and self.unanswered_at is not None


def _rows(session: Session, query, fmt: ClinicFormat) -> list[PaymentRow]:
    query = query.add_columns(LedgerEntry.kind).outerjoin(  # a fee named by its own kind
        LedgerEntry, LedgerEntry.id == Payment.ledger_entry_id
    )
    return [
        PaymentRow(
            p.id,
            p.paid_at or p.created_at,
            p.kind,
            METHOD_LABELS.get(p.method, p.method),
            p.status.replace("_", " "),
            payment_money(p, fmt),
            p.amount_cents,
            p.points,
            f"P-{p.id}",
            p.note,
            p.last_error,
            p.kind in REFUND_KINDS and p.recorded_by_user_id is not None,
            p.unanswered_at,
            *payment_words(p.kind, p.status, fee),
        )
        for p, fee in session.execute(query)
    ]


def list_payments(session: Session, actor: Actor, appointment_id: int) -> list[PaymentRow]:
    """Payments, fees paid and refunds on one appointment (staff)."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    query = select(Payment).where(Payment.appointment_id == appointment_id).order_by(Payment.id)
    return _rows(session, query, _format_of(session, appointment_id))


def patient_payments(session: Session, patient_id: int, appointment_id: int) -> list[PaymentRow]:
    """The same for the signed-in patient (core.portal checks the appointment is theirs)."""
    query = (
        select(Payment)
        .where(Payment.appointment_id == appointment_id, Payment.patient_id == patient_id)
        .order_by(Payment.id)
    )
    return _rows(session, query, _format_of(session, appointment_id))


def _format_of(session: Session, appointment_id: int) -> ClinicFormat:
    appointment = session.get(Appointment, appointment_id)
    return money_format(appointment.clinic if appointment else None)


def visit_context(appointment: Appointment) -> dict[str, object]:
    """A payment message's words for its visit: the clinic, the treatment, when."""
    clinic = appointment.clinic
    return {
        "clinic_name": clinic.name,
        "clinic_phone": clinic.phone,
        "service_name": treatment_of(appointment) or "your appointment",
        "when": clinic_time(clinic, appointment.start_at, zone=True),
    }


def _line(payment: Payment, fmt: ClinicFormat) -> str:
    if payment.method == "points":
        return f"Points: {payment.points} ({payment_money(payment, fmt)})"
    label = METHOD_LABELS.get(payment.method, payment.method)
    return f"{label}: {payment_money(payment, fmt)}"


def _total(paid: list[Payment], fmt: ClinicFormat) -> str:
    """The sum per currency (one currency, unless older rows were stored in another)."""
    sums: dict[str, int] = {}
    for p in paid:
        code = p.currency or fmt.currency
        sums[code] = sums.get(code, 0) + p.amount_cents
    return " + ".join(format_money(cents, code, fmt.locale) for code, cents in sums.items())


def send_receipt(
    session: Session, appointment: Appointment, paid: list[Payment], more: tuple[str, ...] = ()
) -> None:
    """Email the receipt of `paid`, with `more` lines after what was paid."""
    patient = session.get(Patient, appointment.patient_id)
    fmt = money_format(appointment.clinic)
    notify.queue_for_patient(
        session,
        patient,
        "payment_receipt",
        {
            **visit_context(appointment),
            "lines": "\n".join([*(_line(p, fmt) for p in paid), *more]),
            "total": _total(paid, fmt),
            "reference": ", ".join(f"P-{p.id}" for p in paid),
        },
        appointment_id=appointment.id,
        channels=[notify.Channel.EMAIL],
    )


@dataclass(frozen=True)
class PayResult:
    message: str
    checkout_url: str | None = None


def _payable_appointment(session: Session, patient_id: int, appointment_id: int) -> Appointment:
    # locked before the patient's row, as a cancellation locks them (the visit, then the patient
    # to give points back): one waits for the other, then reads whether the visit still stands
    appointment = session.get(
        Appointment, appointment_id, with_for_update=True, populate_existing=True
    )
    if appointment is None or appointment.patient_id != patient_id:
        raise NotFound("There is no such appointment in your portal.")
    if appointment.status != AppointmentStatus.SCHEDULED:
        raise ValidationError("Only a scheduled appointment can be paid in advance.")
    if appointment.start_at is None or appointment.start_at <= utcnow():
        raise ValidationError("This appointment has started or passed; please pay at the desk.")
    return appointment


def prepay(
    session: Session,
    patient_id: int,
    appointment_id: int,
    *,
    points: int,
    card: bool,
    provider: PaymentProvider,
    return_url: str,
) -> PayResult:
    """Pay a scheduled appointment with `points` and (with `card`) the rest by card. The amounts
    come from the server: the price or deposit, less what is paid already, in the currency of
    the appointment's clinic."""
    appointment = _payable_appointment(session, patient_id, appointment_id)
    # the patient's row locked before the balance and what is owed are read: a second request
    # (a double click, another tab) waits, then sees the points spent and the visit paid
    patient = session.get(Patient, patient_id, with_for_update=True, populate_existing=True)
    rules = get_settings(session)
    fmt = money_format(appointment.clinic)
    owed = due(session, appointment, rules)
    if not owed.payable:
        raise ValidationError("Nothing is left to pay for this appointment.")
    points = int(points or 0)
    value = rules.point_value_cents
    if points < 0:
        raise ValidationError("Choose zero or more points.")
    if points and value <= 0:
        raise ValidationError("The practice does not take points as payment.")
    if points * value > owed.outstanding_cents:
        most = owed.outstanding_cents // value
        raise ValidationError(f"{points} points are worth more than is owed; use at most {most}.")
    rest = owed.outstanding_cents - points * value
    if not points and not card:
        if not provider.online:
            raise ValidationError(
                "Choose how many points to use; anything they do not cover is paid at the desk."
            )
        raise ValidationError("Choose points, card or both.")
    if rest and card and not provider.online:
        provider.checkout()  # says how to pay instead, before anything is written
    if points > patient.points_balance:
        raise ValidationError(f"You have {patient.points_balance} points; use at most that many.")
    replaced = _close_open_checkouts(session, provider, appointment.id) if rest and card else []
    kind = "deposit" if owed.mode == "deposit" else "prepayment"
    actor = patient_actor(patient.first_name, via="portal")
    paid: list[Payment] = []
    if points:
        entry = ledger_points.spend(session, patient, points, appointment.id)
        session.flush()
        paid.append(
            Payment(
                appointment_id=appointment.id,
                patient_id=patient.id,
                ledger_entry_id=entry.id,
                kind=kind,
                method="points",
                status="paid",
                amount_cents=points * value,
                points=points,
                currency=fmt.currency,
                paid_at=utcnow(),
            )
        )
        session.add(paid[-1])
        session.flush()
    checkout_url = None
    if rest and card:
        pending = Payment(
            appointment_id=appointment.id,
            patient_id=patient.id,
            kind=kind,
            method="stripe",
            status="pending",
            amount_cents=rest,
            currency=fmt.currency,
        )
        session.add(pending)
        session.flush()
        words = visit_context(appointment)
        made = provider.checkout(
            amount_cents=rest,
            currency=fmt.currency,
            description=f"{words['service_name']}, {words['when']}",
            payment_id=pending.id,
            email=patient.email,
            success_url=f"{return_url}?paid={pending.id}",
            cancel_url=return_url,
        )
        pending.provider_ref = made.reference
        checkout_url = made.url
    audit.record(
        session,
        actor,
        "prepayment_started" if checkout_url else "prepayment_received",
        "appointment",
        appointment.id,
        patient_id=patient.id,
        details={
            "points": points,
            "points_cents": points * value,
            "card_cents": rest * card,
            **({"replaced_payments": replaced} if replaced else {}),
        },
    )
    if paid:
        send_receipt(session, appointment, paid)
    if checkout_url:
        return PayResult("Continue to the secure card payment.", checkout_url)
    if rest:
        return PayResult(
            f"Paid {fmt.money(points * value)} with {points} points. Please pay the remaining "
            f"{fmt.money(rest)} at the desk."
        )
    return PayResult(f"Paid in full with {points} points. We have emailed your receipt.")


def _close_open_checkouts(
    session: Session, provider: PaymentProvider, appointment_id: int
) -> list[int]:
    """One open card checkout per appointment: before a new one, each earlier one still pending
    (another tab, a checkout left unpaid) is closed at the provider, so the visit cannot be paid
    twice; returns their ids. One paid or being paid refuses the new one (its webhook is on its
    way)."""
    closed = []
    open_ones = session.scalars(
        select(Payment).where(
            Payment.appointment_id == appointment_id,
            Payment.method == "stripe",
            Payment.status == "pending",
            Payment.provider_ref.is_not(None),
        )
    )
    for earlier in open_ones:
        if not provider.close_checkout(earlier.provider_ref):
            raise ValidationError(
                "A card payment for this appointment was just made: the card provider is "
                "confirming it, and we will email your receipt. Nothing more was taken. Reload "
                "this page in a minute to see it."
            )
        earlier.status, earlier.note = "failed", "Closed unpaid: a newer card payment replaced it."
        closed.append(earlier.id)
    return closed


def checkout_completed(
    session: Session,
    reference: str,
    amount_total: int,
    customer: str | None,
    currency: str | None = None,
) -> Payment | None:
    """A Stripe Checkout session was paid: the pending payment becomes paid once, if the amount
    (`amount_total` as Stripe states it, in its own minor units: `to_stripe_amount`) and, when
    the event names it, the currency are the ones the server asked for. Otherwise it is failed,
    and the money Stripe took is recorded and given back in full (`_not_matched`). Money that
    came for nothing is due back to the card at once: all of it when the appointment was
    cancelled or declined while the patient was paying, and what goes beyond the price when
    the visit was paid meanwhile (another checkout, the desk)."""
    payment = session.scalar(select(Payment).where(Payment.provider_ref == reference))
    if payment is None or payment.status != "pending":
        return payment
    # the appointment locked, then the payment read again: a cancellation or another checkout
    # of the same visit committing meanwhile is seen (and a second delivery finds it paid)
    appointment = session.get(
        Appointment, payment.appointment_id, with_for_update=True, populate_existing=True
    )
    session.refresh(payment)
    if payment.status != "pending":
        return payment
    actor = patient_actor("")
    # Stripe states the amount in its own minor units (Ft 5,000 is 500000), ours are Babel's
    received = from_stripe_amount(amount_total, currency or payment.currency)
    if received != payment.amount_cents or (
        currency and currency.upper() != (payment.currency or "").upper()
    ):
        return _not_matched(session, actor, payment, appointment, amount_total, currency, customer)
    payment.status, payment.paid_at, payment.provider_customer = "paid", utcnow(), customer
    audit.record(
        session,
        actor,
        "payment_received",
        "appointment",
        payment.appointment_id,
        patient_id=payment.patient_id,
        details={"payment_id": payment.id, "amount_cents": payment.amount_cents},
    )
    closed = appointment.status in (AppointmentStatus.CANCELLED, AppointmentStatus.DECLINED)
    fmt = money_format(appointment.clinic)
    if closed:
        _paid_when_closed(session, actor, payment, appointment, fmt)
        return payment
    beyond = paid_cents(session, appointment.id) - price_of(appointment)
    extra = max(0, min(beyond, payment.amount_cents))
    refund = _refund_unasked(session, actor, payment, extra) if extra else None
    more = ()
    if refund is not None:
        more = (
            f"{fmt.money(price_of(appointment))} was paid already for this appointment: "
            f"{payment_money(refund, fmt)} goes back to your card.",
        )
    send_receipt(session, appointment, [payment], more)
    return payment


def _paid_when_closed(
    session: Session, actor: Actor, payment: Payment, appointment: Appointment, fmt: ClinicFormat
) -> None:
    """A checkout paid after the visit was cancelled or declined: the late-cancellation fee
    still owed of it (the patient cancelled late while on the provider's page) is kept from
    the money, as `settle_on_cancel` keeps it from money paid before, and the rest is due back
    to the card. The patient is told both in one message. The fee is locked first, as a desk
    taking it locks it: the two at once take it once."""
    fee = session.scalar(
        select(LedgerEntry)
        .where(
            LedgerEntry.appointment_id == appointment.id,
            LedgerEntry.kind == LedgerKind.LATE_CANCEL_FEE,
            LedgerEntry.waived_at.is_(None),
        )
        .order_by(LedgerEntry.id)
        .limit(1)
        .with_for_update()
    )
    keep = 0
    if fee is not None:
        fee_money = select(Payment.kind, func.coalesce(func.sum(Payment.amount_cents), 0)).where(
            Payment.ledger_entry_id == fee.id,
            ((Payment.kind == "fee") & (Payment.status == "paid")) | (Payment.kind == "fee_refund"),
        )
        sums = dict(session.execute(fee_money.group_by(Payment.kind)).all())
        if not sums.get("fee_refund"):  # a fee given back no longer stands
            owed = fee.amount_cents - int(sums.get("fee", 0))
            keep = max(0, min(owed, payment.amount_cents))
    lines = []
    if keep:
        kept = kept_for_fee(
            payment,
            appointment.id,
            keep,
            "Kept from the card payment made after the late cancellation, for its fee.",
            fee_id=fee.id,
        )
        session.add(kept)
        session.flush()
        audit.record(
            session,
            actor,
            "prepayment_settled",
            "appointment",
            appointment.id,
            patient_id=payment.patient_id,
            details={"payment_id": payment.id, "kept_cents": keep, "fee_id": fee.id},
        )
        lines.append(f"Kept for the late-cancellation fee: {payment_money(kept, fmt)}")
    rest = payment.amount_cents - keep
    if rest:
        refund = _refund_unasked(session, actor, payment, rest)
        paid = payment_money(payment, fmt)
        why = (
            f"the rest of the {paid} paid after it was cancelled."
            if keep
            else "paid after the appointment was cancelled."
        )
        lines.append(f"Refund of {payment_money(refund, fmt)} ({METHOD_LABELS['stripe']}): {why}")
    notify.queue_for_patient(
        session,
        session.get(Patient, appointment.patient_id),
        "payment_refund",
        {**visit_context(appointment), "lines": "\n".join(lines)},
        appointment_id=appointment.id,
        channels=[notify.Channel.EMAIL],
    )


def _not_matched(
    session: Session,
    actor: Actor,
    asked: Payment,
    appointment: Appointment,
    amount_total: int,
    currency: str | None,
    customer: str | None,
) -> Payment:
    """Stripe took another amount (or currency) than the checkout `asked`: the asked payment is
    not paid (failed), but the money came in. It is recorded as taken (in the currency Stripe
    names; another than the clinic's is flagged in its note), with the checkout's reference,
    and all of it is due back to the card (the refund job sends it): the cash-up shows it in,
    then out. The patient is told to pay again, the clinic hears of it (`payment_problem`).
    Returns the payment taken (the asked one when Stripe says nothing was taken)."""
    fmt = money_format(appointment.clinic)
    owed_in = (asked.currency or fmt.currency).upper()
    code = (currency or owed_in).upper()
    said = f"{amount_total} {currency.upper()}" if currency else str(amount_total)
    asked.status, asked.note = "failed", f"Amount mismatch: provider said {said}"
    details = {
        "payment_id": asked.id,
        "asked_cents": asked.amount_cents,
        "asked_currency": owed_in,
        "provider_said": said,
    }
    cents = taken_amount(amount_total, code)
    if cents <= 0:  # nothing was taken: nothing to record or give back
        audit.record(
            session,
            actor,
            "payment_mismatch",
            "appointment",
            appointment.id,
            patient_id=asked.patient_id,
            details=details,
        )
        return asked
    asked_money, taken_money = payment_money(asked, fmt), format_money(cents, code, fmt.locale)
    flag = "" if code == owed_in else f"In {code}, not the clinic's {owed_in}. "
    # the checkout's reference (unique) moves to the money it took: the refund is sent through
    # it, and another event of the checkout finds it taken
    reference, asked.provider_ref = asked.provider_ref, None
    session.flush()
    taken = Payment(
        appointment_id=asked.appointment_id,
        patient_id=asked.patient_id,
        kind=asked.kind,
        method=asked.method,
        status="paid",
        amount_cents=cents,
        currency=code,
        provider_ref=reference,
        provider_customer=customer,
        paid_at=utcnow(),
        note=f"{flag}Taken by the card provider for P-{asked.id}, which asked {asked_money}: "
        "not what the patient was asked to pay, so given back in full.",
    )
    session.add(taken)
    session.flush()
    asked.note += f"; taken as P-{taken.id}, given back in full."
    back = _refund_unasked(
        session,
        actor,
        taken,
        cents,
        note=f"Given back in full: the card payment did not match the {asked_money} asked.",
    )
    audit.record(
        session,
        actor,
        "payment_mismatch",
        "appointment",
        appointment.id,
        patient_id=asked.patient_id,
        details={**details, "taken_payment_id": taken.id, "refund_id": back.id},
    )
    patient = session.get(Patient, asked.patient_id)
    words = visit_context(appointment)
    notify.queue_for_patient(
        session,
        patient,
        "payment_not_matched",
        {
            **words,
            "amount": taken_money,
            "due": asked_money,
            "reference": f"P-{back.id}",
            "next_step": _next_step(session, appointment),
        },
        appointment_id=appointment.id,
    )
    base = session.info.get("base_url", DEFAULT_BASE_URL)
    clinic_events.tell_clinic(
        session,
        appointment.clinic_id,
        "payment_problem",
        f"{patient.full_name}'s card payment for {words['service_name']} on {words['when']} "
        f"did not match: {taken_money} taken for the {asked_money} due. It is due back to the "
        f"card in full (P-{back.id}); the visit is not paid.",
        appointment_id=appointment.id,
        link=clinic_events.item_link(base, appointment.id),
    )
    return taken


def _next_step(session: Session, appointment: Appointment) -> str:
    """What a patient whose card payment was not matched does now."""
    if appointment.status in (AppointmentStatus.CANCELLED, AppointmentStatus.DECLINED):
        return "Nothing is owed for it: the appointment was cancelled."
    if not due(session, appointment).payable:
        return "Nothing more is owed for this appointment."
    start = appointment.start_at
    if appointment.status == AppointmentStatus.SCHEDULED and start and start > utcnow():
        base = session.info.get("base_url", DEFAULT_BASE_URL).rstrip("/")
        return (
            f"Please pay again at the desk when you come, or in your patient portal: {base}/portal"
        )
    return "Please pay at the desk."


def _refund_unasked(
    session: Session,
    actor: Actor,
    payment: Payment,
    cents: int,
    note: str = "Paid when nothing was owed: the appointment was cancelled or paid meanwhile.",
) -> Payment:
    """A refund due to the card of `cents` of a checkout paid for nothing, or not for what was
    asked (the refund job sends it through the provider)."""
    refund = Payment(
        appointment_id=payment.appointment_id,
        patient_id=payment.patient_id,
        kind="refund",
        method=payment.method,
        status="refund_due",
        amount_cents=cents,
        currency=payment.currency,
        refund_of_id=payment.id,
        note=note,
    )
    session.add(refund)
    session.flush()
    audit.record(
        session,
        actor,
        "payment_refund_due",
        "appointment",
        payment.appointment_id,
        patient_id=payment.patient_id,
        details={"payment_id": refund.id, "refund_of": payment.id, "amount_cents": cents},
    )
    return refund


def checkout_expired(session: Session, reference: str) -> Payment | None:
    payment = session.scalar(select(Payment).where(Payment.provider_ref == reference))
    if payment is not None and payment.status == "pending":
        payment.status, payment.note = "failed", "The checkout expired unpaid."
    return payment


def _received(session: Session, appointment_id: int) -> list[tuple[Payment, int, int]]:
    """Each payment received for the visit with what is left of it to give back: (the payment,
    cents, points), less what was refunded of it already (a checkout paid when the visit was
    paid meanwhile, a desk refund; a refund that failed gave nothing back) and what was kept of
    it for a fee. A payment given back in full is left out."""
    paid = list(
        session.scalars(
            select(Payment)
            .where(
                Payment.appointment_id == appointment_id,
                Payment.kind.in_(PAID_KINDS),
                Payment.status == "paid",
            )
            .order_by(Payment.id)
        )
    )
    back = given_back(session, [p.id for p in paid])
    out = []
    for p in paid:
        cents, points = back.get(p.id, (0, 0))
        if p.amount_cents - cents > 0:
            out.append((p, p.amount_cents - cents, max(0, p.points - points)))
    return out


def given_back(session: Session, payment_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per payment: the cents and points refunded of it (due, sent or made; not failed) or kept
    of it for a fee."""
    if not payment_ids:
        return {}
    rows = session.execute(
        select(
            Payment.refund_of_id,
            func.coalesce(func.sum(Payment.amount_cents), 0),
            func.coalesce(func.sum(Payment.points), 0),
        )
        .where(
            Payment.refund_of_id.in_(payment_ids),
            Payment.kind.in_(("refund", "fee")),
            Payment.status != "failed",
        )
        .group_by(Payment.refund_of_id)
    )
    return {i: (int(cents), int(points)) for i, cents, points in rows}


def kept_for_fee(
    original: Payment, appointment_id: int, cents: int, note: str, fee_id: int | None = None
) -> Payment:
    """The part of a payment kept for a late-cancellation fee: a paid fee row of the same
    method and currency, pointing at the payment it came from."""
    return Payment(
        appointment_id=appointment_id,
        patient_id=original.patient_id,
        ledger_entry_id=fee_id,
        kind="fee",
        method=original.method,
        status="paid",
        amount_cents=cents,
        currency=original.currency,
        refund_of_id=original.id,
        note=note,
        paid_at=utcnow(),
    )


def _split(
    paid: list[tuple[Payment, int, int]], keep_cents: int
) -> list[tuple[Payment, int, int, int]]:
    """Per payment received: (the payment, cents kept for the fee, cents given back, points
    given back), of what is left of it (`_received`). Only money (card, cash, Stripe) pays a
    fee, in the order paid; points always go back as points."""
    out = []
    for original, left, points in paid:
        kept = min(keep_cents, left) if original.method != "points" else 0
        keep_cents -= kept
        out.append((original, kept, left - kept, points if original.method == "points" else 0))
    return out


@dataclass(frozen=True)
class Settlement:
    """What cancelling would do to what was paid (the portal's warning, before it is done)."""

    kept_cents: int  # money kept for the late-cancellation fee
    refund_cents: int  # money refunded
    points_back: int  # points given back to the balance
    # points given back on a record merged since: what would go on to the record kept
    # (core.policy.merge_preview, follow_merge's arithmetic), a payment each
    merged: tuple[policy.Followed, ...] = ()

    @property
    def points_reaching(self) -> int:
        """The points that reach the visit's patient's one balance: those given back less what
        a merged record's opening keeps (not carried: one person opens one balance)."""
        return self.points_back - sum(f.not_carried for f in self.merged)


def settlement(session: Session, appointment: Appointment, *, keep_cents: int) -> Settlement:
    """The split `settle_on_cancel` would make now, keeping `keep_cents` for a fee, and what
    points given back on a record merged since would reach the record kept; nothing written."""
    split = _split(_received(session, appointment.id), keep_cents)
    merged = []
    for original, _, back, points in split:
        if original.method != "points" or back <= 0 or not points:
            continue
        patient = session.get(Patient, _spent_from(session, original, appointment))
        if patient is not None and patient.merged_into_id is not None:
            merged.append(policy.merge_preview(session, patient, points))
    return Settlement(
        sum(kept for _, kept, _, _ in split),
        sum(back for p, _, back, _ in split if p.method != "points"),
        sum(points for _, _, back, points in split if back > 0),
        tuple(merged),
    )


class Settled(list[Payment]):
    """What `settle_on_cancel` made (the payments), and for a refund of points given back on
    a merged record, by the refund, the patient's sentence of what reached their balance
    (policy.Followed.for_patient: the desk's, with record numbers, is the refund's note)."""

    def __init__(self) -> None:
        super().__init__()
        self.told: dict[int, str] = {}


def settle_on_cancel(
    session: Session,
    actor: Actor,
    appointment: Appointment,
    *,
    by_patient: bool,
    keep_cents: int,
) -> Settled:
    """Refund what was paid for a cancelled appointment (see the module's rules), keeping
    `keep_cents` of the money for the late-cancellation fee. Called before the policy's own
    points deduction, so points given back count first; `link_fee` then ties what was kept to
    the fee's ledger entry. The patient is told in the cancellation's message
    (`settled_text`), not in a message of its own."""
    paid = _received(session, appointment.id)
    if not paid:
        return Settled()
    made = Settled()
    followed: list[policy.Followed] = []
    for original, kept, amount, points in _split(paid, keep_cents if by_patient else 0):
        if kept:
            made.append(
                kept_for_fee(
                    original,
                    appointment.id,
                    kept,
                    "Kept from the prepayment for the late-cancellation fee.",
                )
            )
        if amount <= 0:
            continue
        refund = Payment(
            appointment_id=appointment.id,
            patient_id=original.patient_id,
            kind="refund",
            method=original.method,
            status="refund_due",
            amount_cents=amount,
            points=points,
            currency=original.currency,
            refund_of_id=original.id,
        )
        if original.method == "points":
            given = _give_points_back(session, original, appointment, points)
            if given is not None:
                followed.append(given)
                refund.note = given.words  # the desk's words; the patient's: settled_text
                made.told[id(refund)] = given.for_patient
            refund.status, refund.paid_at = "refunded", utcnow()
        made.append(refund)
    session.add_all(made)
    session.flush()
    audit.record(
        session,
        actor,
        "prepayment_settled",
        "appointment",
        appointment.id,
        patient_id=appointment.patient_id,
        message=" ".join(f.words for f in followed) or None,
        details={
            "by_patient": by_patient,
            "refunded_cents": sum(p.amount_cents for p in made if p.kind == "refund"),
            "kept_cents": sum(p.amount_cents for p in made if p.kind == "fee"),
            **_followed_details(followed),
        },
    )
    return made


def _give_points_back(
    session: Session, original: Payment, appointment: Appointment, points: int
) -> policy.Followed | None:
    """A points prepayment's points given back to the record they were spent from (its spend
    entry's), under its row lock. That record may have been merged into another since (the
    visit and its payments moved to the record kept, the spend entry did not): the points go
    on to the record kept only as far as one balance would have had them
    (core.policy.cancellation.follow_merge, as a waiver's do); what it did is returned for
    the refund's line and the audit (None when the record was not merged). Before, they all
    went to the visit's patient: a fresh duplicate's 40 points, spent, merged and given back,
    left the record kept at 140 where one balance is at 100."""
    # with the record kept, when merged into one, in id order (follow_merge locks it too)
    patient = balance.locked_with_kept(session, _spent_from(session, original, appointment))
    ledger_points.give_back(session, patient, points, appointment.id)
    if patient.merged_into_id is None:
        return None
    return policy.follow_merge(session, patient, points)


def _spent_from(session: Session, original: Payment, appointment: Appointment) -> int:
    """The record a points prepayment's points were spent from (its spend entry's; the
    visit's patient without one), where they come back."""
    spent = session.get(LedgerEntry, original.ledger_entry_id) if original.ledger_entry_id else None
    return spent.patient_id if spent is not None else appointment.patient_id


def _followed_details(followed: list[policy.Followed]) -> dict[str, int]:
    """The audit's record of points given back on a merged record (Followed.details), summed
    over the payments given back (one, but a visit may have been paid with points twice)."""
    if not followed:
        return {}
    return {
        "forwarded_to": followed[-1].kept_id,
        "points_forwarded": sum(f.forwarded for f in followed),
        "points_not_carried": sum(f.not_carried for f in followed),
    }


def settled_text(appointment: Appointment, settled: Settled) -> str:
    """What `settle_on_cancel` did, a line each, for the cancellation's own message (one
    message says the visit is cancelled and what of the prepayment is refunded or kept)."""
    fmt = money_format(appointment.clinic)
    lines = []
    for p in settled:
        if p.kind == "fee":
            lines.append(f"Kept for the late-cancellation fee: {payment_money(p, fmt)}")
        elif p.method == "points" and id(p) in settled.told:  # on a merged record
            lines.append(settled.told[id(p)])
        elif p.method == "points":
            lines.append(f"{p.points} points given back to your balance.")
        else:
            lines.append(f"Refund of {payment_money(p, fmt)} ({METHOD_LABELS[p.method]}).")
    return "".join(f"\n{line}" for line in lines)


def link_fee(settled: list[Payment], entries: list[LedgerEntry]) -> None:
    """Tie the money kept from a prepayment to the late-cancellation fee it pays."""
    fee = next((e for e in entries if e.kind == LedgerKind.LATE_CANCEL_FEE), None)
    for payment in settled:
        if fee is not None and payment.kind == "fee":
            payment.ledger_entry_id = fee.id


REFUND_KINDS = ("refund", "fee_refund")  # a prepayment's refund, a fee's


# the provider keeps an idempotency key 24 hours (Stripe): a refund due longer than this may
# have been made with a key it forgets, so it is looked for at the provider before it is sent
REFUND_KEY_KEPT = timedelta(hours=23)


def refund_unsettled(refund: Payment) -> bool:
    """Whether a card refund due may have been made by the provider: its last attempt had no
    answer (ProviderUnanswered: a timeout, a connection cut, the provider's own failure), the
    provider refused to look it up (ProviderLookupRefused), or the refund job is sending it or
    stopped while it was (REFUND_SENDING), kept as `unanswered_at` until the provider answers.
    It is not handed back at the desk until the refund job has asked the provider and recorded
    it or had a plain answer."""
    return refund.status == "refund_due" and refund.unanswered_at is not None


def refund_waits(last_error: str, *, online: bool = True) -> str:
    """Why a card refund that may have been made waits, and when it is looked at again, in
    words for the desk (the provider's words in them, `last_error`): its last attempt had no
    answer, or the provider refused to let the refund job look it up (`lookup_refused`: the
    provider's words then say what to fix). A refund made by hand in the provider's dashboard
    carries no id of ours, so the look-up would not find it and the job would make another:
    the words say not to."""
    said = last_error.strip().rstrip(".")
    job = (
        "the refund job's next run"
        if online
        else "card payments are switched off: once they are on again, the refund job"
    )
    then = (
        "then records the refund it made or sends it again, never twice (only if the provider "
        "then refuses it is it handed back at the desk)"
    )
    if lookup_refused(last_error):
        return (
            "the card provider refused to let us look the refund up, so it may have been made "
            "(the provider's dashboard shows whether it was; do not refund it there: the "
            f"refund job does). {said}. "
            f"{job[0].upper()}{job[1:]} looks again, {then}"
        )
    return (
        f"the card provider did not answer its last attempt ({said}) and may have made it; "
        f"{job} asks the provider, {then}"
    )


def refund_key(refund: Payment, original: Payment) -> str:
    """The idempotency key a refund is sent with: the same on every attempt (our row and the
    payment it gives back), so the provider makes it once however often the job sends it
    within the day it keeps the key (after it, `process_refunds` looks for it first)."""
    return f"clinicdesk-refund-{refund.id}-of-{original.provider_ref}"


# a card refund's last error while the refund job is sending it: the words stay if the
# process stops before the provider's answer is recorded (it may have made the refund)
REFUND_SENDING = (
    "The refund job stopped while sending it, before the card provider's answer was recorded."
)


def process_refunds(
    write: Callable[[], AbstractContextManager[Session]],
    provider: PaymentProvider,
    limit: int = 20,
) -> int:
    """Send card refunds due through the provider (background job), a prepayment's or a fee's;
    returns how many were made. Those sent are first recorded as sent, in a transaction of
    their own, before the provider is asked: each gets `unanswered_at` (kept if it had it)
    and REFUND_SENDING as its last error, so one the provider makes as the process stops
    before the answer is recorded waits as one the provider may have made (not handed back at
    the desk, whatever the provider said of it before; looked for first on the next run).
    Before, nothing of such an attempt was left: a refund the provider had refused once was
    handed back at the desk though the attempt after it had made it. Then each is sent in a
    savepoint of its own: one the provider refuses stays due, with what the provider said as
    its last error beside its note, which stays as written (staff see both on the
    appointment's Payments, and may hand the money back at the desk instead), does not undo
    the refunds made before it, and waits behind those tried fewer times (those not tried yet
    first, then by age). Each is sent with its idempotency key (`refund_key`), so one made but
    not recorded is not made again. The provider forgets the key after a day (the app down
    that long), so one due longer than REFUND_KEY_KEPT is first looked for among the refunds
    of the payment it gives back (by our refund's id, which each refund carries to the
    provider), and the one found is recorded instead of sending another. An attempt the
    provider did not answer (`ProviderUnanswered`: a timeout after it may have made the
    refund) stays due with the time in `unanswered_at` (cleared by the next answer, a refusal
    too) and the provider's words as its last error: not handed back at the desk, and looked
    for first on the next run (the same key would do within the day; the look also finds one
    Stripe made though it failed on its side, whose key answers that failure again), then
    sent again if not found. A look-up the provider refuses (`ProviderLookupRefused`: a key
    not allowed to read refunds) is no answer about the refund, which an attempt whose answer
    was lost may have made: it is not sent, it keeps `unanswered_at` (an unanswered one's
    too), so it is not handed back at the desk either, and its last error says the look-up
    was refused and what to fix."""
    now = utcnow()
    with write() as session:
        claimed = list(
            session.scalars(
                select(Payment)
                .where(
                    Payment.kind.in_(REFUND_KINDS),
                    Payment.status == "refund_due",
                    Payment.method == "stripe",
                )
                # those the provider refused before wait behind those not tried yet
                .order_by(Payment.refund_attempts, Payment.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        # each sent, and whether it is looked for first: the provider may have forgotten its
        # key, or may have made it
        sent = {
            r.id: as_utc(r.created_at) <= now - REFUND_KEY_KEPT or r.unanswered_at is not None
            for r in claimed
        }
        for refund in claimed:  # sent, for all we know, until the answer is recorded
            refund.refund_attempts += 1
            refund.unanswered_at = refund.unanswered_at or now
            refund.last_error = REFUND_SENDING
    if not sent:
        return 0
    made = 0
    with write() as session:
        due_rows = session.scalars(
            select(Payment)
            .where(Payment.id.in_(sent), Payment.status == "refund_due")
            .order_by(Payment.refund_attempts, Payment.id)
            .with_for_update(skip_locked=True)  # another run's, meanwhile: it records them
        )
        for refund in due_rows:
            made += _send_refund(session, provider, refund, look_first=sent[refund.id])
    return made


def _send_refund(
    session: Session, provider: PaymentProvider, refund: Payment, *, look_first: bool
) -> bool:
    """Send one refund recorded as sent (`process_refunds`) and record the provider's answer,
    in a savepoint; whether it was made."""
    original = _source(session, refund)
    try:
        with session.begin_nested():
            refund.provider_ref = provider.refund(
                original.provider_ref,
                refund.amount_cents,
                currency=refund.currency or original.currency,
                key=refund_key(refund, original),
                payment_id=refund.id,
                look_first=look_first,
            )
            refund.status, refund.paid_at, refund.last_error = "refunded", utcnow(), ""
            refund.unanswered_at = None
    except ProviderUnanswered as exc:  # it may have been made: settled by the next run
        refund.last_error, refund.unanswered_at = str(exc)[:500], utcnow()
        log.warning("refund P-%s not answered, may have been made: %s", refund.id, exc)
        return False
    except ProviderLookupRefused as exc:  # no answer about the refund: it may have been made
        refund.last_error = str(exc)[:500]  # unanswered_at kept: set when it was sent
        log.warning("refund P-%s not looked up: %s", refund.id, exc)
        return False
    except DomainError as exc:  # a plain answer: refused, so not made
        refund.last_error, refund.unanswered_at = str(exc)[:500], None
        log.warning("refund P-%s not made: %s", refund.id, exc)
        return False
    return True


def as_utc(moment: datetime) -> datetime:
    """A stored UTC moment, aware (SQLite gives it back naive)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _source(session: Session, refund: Payment) -> Payment:
    """The payment a refund goes back through: the one it gives back, or, for money kept of a
    prepayment for a fee (a waived fee's refund), that prepayment (the kept row has no
    reference of its own at the provider)."""
    original = session.get(Payment, refund.refund_of_id)
    while original.provider_ref is None and original.refund_of_id is not None:
        original = session.get(Payment, original.refund_of_id)
    return original
