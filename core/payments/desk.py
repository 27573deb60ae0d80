"""Payments at the desk and on the appointment: staff record card or cash payments and refunds,
fees paid or charged to the card on file, the audited export, and what is still owed; and the
payments job (`refunds_job`: card refunds due, charges to the card on file left unfinished).
Every amount is in the currency of the appointment's clinic (core.payments.rules.money_format)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from core.kernel import audit, exports
from core.kernel.authz import SYSTEM, Actor, Permission, ensure
from core.kernel.clock import to_local
from core.kernel.config import Settings
from core.kernel.errors import Conflict, DomainError, NotFound, ValidationError
from core.kernel.locks import setting_row
from core.kernel.money import (
    MAX_MINOR,
    ClinicFormat,
    clinic_format,
    clinic_time,
    format_day,
    format_money,
)
from core.messaging import notify
from core.payments import cashup
from core.payments.prepay import (
    DESK_METHODS,
    METHOD_LABELS,
    PAID_KINDS,
    REFUND_KINDS,
    PaymentRow,
    as_utc,
    badges,
    due,
    given_back,
    list_payments,
    process_refunds,
    refund_unsettled,
    refund_waits,
    send_receipt,
    visit_context,
)
from core.payments.providers import (
    PaymentProvider,
    ProviderError,
    ProviderUnanswered,
    provider_for,
)
from core.payments.rules import Due, get_settings, latest_clinic_id, money_format
from core.policy import cancellation as policy
from db.engine import Database
from db.models import (
    Appointment,
    AppointmentStatus,
    Clinic,
    LedgerEntry,
    LedgerKind,
    Patient,
    Payment,
    User,
)
from db.types import utcnow

log = logging.getLogger("clinicdesk.payments")

AGAIN_WITHIN = timedelta(minutes=2)  # the same payment pressed twice, not paid twice
CLOSED = (AppointmentStatus.CANCELLED, AppointmentStatus.DECLINED)  # nothing owed for the visit


def record_desk_payment(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    amount_cents: int,
    method: str,
    note: str = "",
    again: bool = False,
    beyond: bool = False,
) -> Payment:
    """Staff record a card or cash payment taken at the desk (a receipt is emailed). The same
    amount by the same method, recorded by the same person for the visit within AGAIN_WITHIN,
    is taken for a second press of one payment (a double click, a press that seemed not to
    work) and refused, unless `again` says the patient really paid twice. More than is left
    to pay of the visit's price (a typo, change not given) is refused, saying what is left,
    unless `beyond` says the patient really paid more (given back with `refund_payment`).
    Nothing is owed for a cancelled or declined visit: its fee is paid as a fee (`pay_fee`)."""
    ensure(actor, Permission.PAYMENTS_RECORD)
    appointment = session.get(Appointment, appointment_id, with_for_update=True)
    if appointment is None or appointment.patient_id is None:
        raise NotFound(f"There is no appointment #{appointment_id} with a patient.")
    if appointment.status in CLOSED:
        raise ValidationError(
            f"Appointment #{appointment.id} was {appointment.status.value}: nothing is owed for "
            "the visit itself, so no payment of it is recorded. A late-cancellation or no-show "
            "fee is recorded as its fee ('Record fee paid')."
        )
    if method not in DESK_METHODS:
        raise ValidationError("Record a desk payment as card or cash.")
    fmt = money_format(appointment.clinic)
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise ValidationError("Enter the amount paid, more than 0.")
    if amount_cents > MAX_MINOR:
        raise ValidationError(
            f"{fmt.money(amount_cents)} is more than one payment can be; enter at most "
            f"{fmt.money(MAX_MINOR)}."
        )
    now = utcnow()
    if not again and (
        earlier := _same_payment(session, actor, appointment.id, amount_cents, method, now)
    ):
        seconds = max(1, int((now - earlier.paid_at).total_seconds()))
        raise Conflict(
            f"You recorded {fmt.money(amount_cents)} by {method} for this visit {seconds} s "
            "ago; this press was not recorded again. If the patient really paid twice, tick "
            "'The patient paid this again' and record it."
        )
    owed = due(session, appointment, get_settings(session))
    left = max(0, owed.price_cents - owed.paid_cents)
    if not beyond and amount_cents > left:
        paid = f"price {fmt.money(owed.price_cents)}, {fmt.money(owed.paid_cents)} paid"
        raise ValidationError(
            f"{fmt.money(amount_cents)} is more than is left to pay for this visit: "
            f"{fmt.money(left)} ({paid}). Enter at most {fmt.money(left)} and give the rest "
            "back as change, or, if the patient really paid more, tick 'The patient paid more "
            "than is owed' (the extra can then be given back)."
        )
    payment = Payment(
        appointment_id=appointment.id,
        patient_id=appointment.patient_id,
        kind=desk_kind(owed, amount_cents),
        method=method,
        status="paid",
        amount_cents=amount_cents,
        currency=fmt.currency,
        note=(note or "").strip()[:500],
        recorded_by_user_id=actor.user_id,
        paid_at=now,
    )
    session.add(payment)
    session.flush()
    audit.record(
        session,
        actor,
        "payment_recorded",
        "appointment",
        appointment.id,
        patient_id=appointment.patient_id,
        details={"payment_id": payment.id, "method": method, "amount_cents": amount_cents},
    )
    send_receipt(session, appointment, [payment])
    return payment


def desk_kind(owed: Due, amount_cents: int) -> str:
    """What a desk payment is: a deposit while it pays no more than the deposit still asked;
    one that pays beyond it (the whole price, or the deposit and part of the rest) is a payment
    of the visit, the deposit in it. One payment stays one row: one receipt, one reference to
    give back from, one line of the cash-up."""
    if owed.mode == "deposit" and amount_cents <= owed.outstanding_cents:
        return "deposit"
    return "prepayment"


def _same_payment(session, actor, appointment_id, amount_cents, method, now) -> Payment | None:
    """This person's payment of that amount by that method for the visit, in AGAIN_WITHIN."""
    return session.scalar(
        select(Payment)
        .where(
            Payment.appointment_id == appointment_id,
            Payment.recorded_by_user_id == actor.user_id,
            Payment.amount_cents == amount_cents,
            Payment.method == method,
            Payment.status == "paid",
            Payment.paid_at >= now - AGAIN_WITHIN,
        )
        .order_by(Payment.id.desc())
        .limit(1)
    )


def paid_fees(session: Session, entry_ids: list[int], *, lock: bool = False) -> list[Payment]:
    """The money paid for these fees: at the desk, to the card on file, or kept from a
    prepayment for a late-cancellation fee (the fee's money once kept, given back with it)."""
    if not entry_ids:
        return []
    query = (
        select(Payment)
        .where(
            Payment.ledger_entry_id.in_(entry_ids),
            Payment.kind == "fee",
            Payment.status == "paid",
        )
        .order_by(Payment.id)
    )
    return list(session.scalars(query.with_for_update() if lock else query))


def refund_fees(session: Session, actor: Actor, paid: list[Payment], note: str) -> list[Payment]:
    """Give paid fees back (a fee that no longer stands): each a `fee_refund` due, sent to the
    card through the provider by the background jobs, or handed back at the desk and recorded
    with `mark_refunded`. Its own kind keeps it out of what was paid for the visit (prepayments,
    deposits and their refunds). The caller checked the permission for what undid the fee."""
    refunds = [
        Payment(
            appointment_id=p.appointment_id,
            patient_id=p.patient_id,
            ledger_entry_id=p.ledger_entry_id,
            kind="fee_refund",
            method=p.method,
            status="refund_due",
            amount_cents=p.amount_cents,
            currency=p.currency,
            refund_of_id=p.id,
            note=note[:500],
        )
        for p in paid
    ]
    session.add_all(refunds)
    session.flush()
    for refund in refunds:
        audit.record(
            session,
            actor,
            "fee_refund_due",
            "appointment",
            refund.appointment_id,
            patient_id=refund.patient_id,
            details={"payment_id": refund.id, "refund_of": refund.refund_of_id},
        )
    return refunds


class Waived(NamedTuple):
    """A fee waived, the refunds of what was paid of it, and whether the patient is emailed
    them (`not_emailed`: why not, in words for the screen; '' when emailed or nothing is due
    back). `points_words`: where points given back on a record merged into another went, and
    why not all of them (core.policy.cancellation.given_back_words; '' otherwise)."""

    entry: LedgerEntry
    refunds: list[Payment]
    emailed: bool
    not_emailed: str = ""
    points_words: str = ""


def waive_fee(session: Session, actor: Actor, ledger_entry_id: int, reason: str) -> Waived:
    """Waive a fee (core.policy.cancellation.waive_fee: the permission, the reason, once) and
    give back what was paid of it, as an undone no-show does: a fee no longer stands, so its
    money is due back (`refund_fees`). The patient is emailed each refund as a desk give-back
    is, a fee on no visit in the fee's words (`_fee_words`)."""
    # the visit locked before the fee (before, on PostgreSQL, a waiver holding the fee waited
    # for the visit a checkout paid after a late cancellation held, which waited for the fee)
    ensure(actor, Permission.FEES_WAIVE)
    _lock_fee_visit(session, ledger_entry_id)
    entry = policy.waive_fee(session, actor, ledger_entry_id, reason)
    paid = paid_fees(session, [entry.id], lock=True)
    refunds = refund_fees(session, actor, paid, f"Fee #{entry.id} waived: {reason.strip()}")
    visit = session.get(Appointment, entry.appointment_id) if entry.appointment_id else None
    fee = policy.FEE_WORDS[entry.kind]
    if visit is not None:
        words, fmt = visit_context(visit), money_format(visit.clinic)
    else:  # a fee on no visit: told in the fee's words
        words, fmt = _fee_words(session, entry, fee)
    emailed, not_emailed = False, ""
    for refund in refunds:
        at_desk = refund.method != "stripe"
        how = "it is ready for you at the desk (cash, or back to your card)." if at_desk else None
        reference = f"P-{refund.id}, the {fee} waived"
        queued = _tell_given_back(session, refund, reference, how, words, fmt, entry.appointment_id)
        emailed = emailed or bool(queued.notifications)
        not_emailed = "" if emailed else (queued.skipped[:1] or ["not emailed"])[0]
    points_words = policy.given_back_words(session, entry.id)
    return Waived(entry, refunds, emailed, not_emailed, points_words)


def _fee_words(session: Session, entry: LedgerEntry, fee: str) -> tuple[dict, ClinicFormat]:
    """The given-back message's words for a fee on no visit: the fee and the day it was
    charged, at the clinic it was charged in (the patient's latest; the practice's first)."""
    clinic_id = latest_clinic_id(session, entry.patient_id)
    query = select(Clinic).order_by(Clinic.id).limit(1)
    clinic = session.get(Clinic, clinic_id) if clinic_id else session.scalar(query)
    fmt = money_format(clinic)
    day = to_local(entry.created_at, fmt.timezone).date()
    words = {
        "clinic_name": clinic.name if clinic else "",
        "clinic_phone": clinic.phone if clinic else "",
        "service_name": f"the {fee} charged",
        "when": format_day(day, fmt.locale),
    }
    return words, fmt


def mark_refunded(
    session: Session,
    actor: Actor,
    payment_id: int,
    note: str = "",
    *,
    provider_online: bool = True,
) -> Payment:
    """A refund due at the desk was handed back: record it (from the visit's Payments panel or
    the cash-up's list of refunds owed back, a fee on no visit's too). A card refund through
    the provider is the refund job's to send, unless the provider refused it or card payments
    are switched off (`provider_online` False: the job does not run), then it is handed back
    here, the latter only saying how (kept with it and in the audit log). One whose last
    attempt the provider did not answer, or whose look-up it refused (it may have made it:
    prepay.refund_unsettled), is not handed back, card payments on or off, until the refund
    job has settled it. A second press
    says who handed it back, when."""
    ensure(actor, Permission.PAYMENTS_RECORD)
    # locked: two desks pressing at once record it once (the second waits, then reads it made)
    refund = session.get(Payment, payment_id, with_for_update=True, populate_existing=True)
    if refund is None or refund.kind not in REFUND_KINDS:
        raise NotFound(f"There is no refund #{payment_id}.")
    ref = f"P-{refund.id}"
    if refund.status == "refunded":
        raise Conflict(f"Refund {ref} was already {_made_by(session, refund)}.")
    if refund.status != "refund_due":
        raise Conflict(f"Refund {ref} is {refund.status.replace('_', ' ')} already.")
    why = ""  # why a card refund through the provider is handed back at the desk instead
    if refund.method == "stripe":
        if refund_unsettled(refund):
            waits = refund_waits(refund.last_error, online=provider_online)
            raise ValidationError(f"Refund {ref} is not handed back at the desk yet: {waits}.")
        why = "provider refused" if refund.last_error else ""
        if not why and provider_online:
            raise ValidationError(
                f"Refund {ref} goes back to the card through the payment provider: the refund "
                "job sends it, so there is nothing to hand back at the desk (only if the "
                "provider refuses it can it be handed back here instead)."
            )
        if not why:
            why = "card payments off"
            if not (note or "").strip():
                raise ValidationError(
                    f"Say how refund {ref} was handed back (cash, the card terminal): card "
                    "payments are switched off, so it is kept with the refund for when they "
                    "are on again."
                )
    refund.status, refund.paid_at = "refunded", utcnow()
    refund.note = (note or refund.note or "").strip()[:500]
    refund.recorded_by_user_id = actor.user_id
    details = {"payment_id": refund.id, "amount_cents": refund.amount_cents}
    if why:
        details |= {"why_at_desk": why, "reason": refund.note}
    audit.record(
        session,
        actor,
        "refund_recorded",
        "appointment",
        refund.appointment_id,
        patient_id=refund.patient_id,
        details=details,
    )
    return refund


def _made_by(session: Session, refund: Payment) -> str:
    """How a refund made was made: 'handed back by NAME at TIME', or sent to the card by the
    provider, at the time on the refund's clinic's clock."""
    who = session.get(User, refund.recorded_by_user_id) if refund.recorded_by_user_id else None
    visit = session.get(Appointment, refund.appointment_id) if refund.appointment_id else None
    if visit is not None:
        clinic = visit.clinic
    else:  # a fee on no visit: the patient's latest clinic's, as it was charged
        clinic_id = latest_clinic_id(session, refund.patient_id)
        clinic = session.get(Clinic, clinic_id) if clinic_id else None
    fmt = money_format(clinic) if clinic else clinic_format(session)
    at = f" at {clinic_time(fmt, refund.paid_at, zone=True)}" if refund.paid_at else ""
    if who is None and refund.method == "stripe":
        return f"sent to the card by the payment provider{at}"
    return "handed back" + (f" by {who.display_name}" if who else "") + at


def refund_payment(
    session: Session,
    actor: Actor,
    payment_id: int,
    *,
    amount_cents: int,
    reason: str,
) -> Payment:
    """Give back money of a prepayment or deposit while the visit stands: a payment recorded by
    mistake (a wrong amount, the wrong visit), a visit moved to a cheaper service, a patient who
    paid twice. Nothing is deleted: the payment stays and the refund is its own row with the
    reason, in the audit log. Handed back at the desk (card terminal, cash), it is recorded as
    refunded now; a card payment made through the provider is a refund due, sent by the refund
    job. Never more than is left of the payment (less what was refunded or kept for a fee)."""
    ensure(actor, Permission.PAYMENTS_RECORD)
    found = session.get(Payment, payment_id)
    if found is None:
        raise NotFound(f"There is no payment P-{payment_id}.")
    # the visit locked first, as a cancellation (which gives back everything paid) and a desk
    # payment lock it: one waits for the other, then reads what is left (before, holding the
    # payment and then waiting for the visit, it deadlocked with a cancellation)
    if found.appointment_id is not None:
        session.get(Appointment, found.appointment_id, with_for_update=True)
    # locked: two desks giving back the same payment at once give back what is left, once
    original = session.get(Payment, payment_id, with_for_update=True, populate_existing=True)
    ref = f"P-{original.id}"
    if original.kind in REFUND_KINDS:
        raise ValidationError(f"{ref} is a refund, not a payment: there is nothing to give back.")
    if original.kind not in PAID_KINDS:
        raise ValidationError(
            f"{ref} pays a fee: to give it back, a manager or owner waives the fee with a "
            "reason (Cancellations, 'Waive fees and add points'): what was paid of it is then "
            "due back, and the patient is told."
        )
    if original.status != "paid":
        raise ValidationError(
            f"{ref} is {original.status.replace('_', ' ')}: only money received can be given back."
        )
    if original.method == "points":
        raise ValidationError(
            f"{ref} was paid with points: points go back as points when the visit is cancelled, "
            "or a manager adjusts the patient's points."
        )
    visit = session.get(Appointment, original.appointment_id) if original.appointment_id else None
    fmt = money_format(visit.clinic if visit else None)
    currency = original.currency or fmt.currency
    problems = []
    if not (reason or "").strip():
        problems.append("Say why the money is given back (it is kept with the refund).")
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        problems.append("Enter the amount to give back, more than 0.")
    if problems:
        raise ValidationError(" ".join(problems))
    paid = format_money(original.amount_cents, currency, fmt.locale)
    left = original.amount_cents - given_back(session, [original.id]).get(original.id, (0, 0))[0]
    if left <= 0:
        raise Conflict(f"{ref} ({paid}) has been given back in full already.")
    if amount_cents > left:
        most = format_money(left, currency, fmt.locale)
        raise ValidationError(
            f"{format_money(amount_cents, currency, fmt.locale)} is more than is left of {ref} "
            f"({paid} paid): give back at most {most}."
        )
    at_desk = original.method in DESK_METHODS
    refund = Payment(
        appointment_id=original.appointment_id,
        patient_id=original.patient_id,
        kind="refund",
        method=original.method,
        status="refunded" if at_desk else "refund_due",
        amount_cents=amount_cents,
        currency=currency,
        refund_of_id=original.id,
        note=reason.strip()[:500],
        # who handed it back; one sent to the card is the provider's (who asked: the audit log)
        recorded_by_user_id=actor.user_id if at_desk else None,
        paid_at=utcnow() if at_desk else None,
    )
    session.add(refund)
    session.flush()
    audit.record(
        session,
        actor,
        "refund_recorded" if at_desk else "payment_refund_due",
        "appointment",
        original.appointment_id,
        patient_id=original.patient_id,
        details={
            "payment_id": refund.id,
            "refund_of": original.id,
            "amount_cents": amount_cents,
            "method": METHOD_LABELS.get(original.method, original.method),
            "reason": refund.note,
        },
    )
    if visit is not None:  # the patient told, as a receipt told them of the payment
        how = "handed back to you at the desk." if at_desk else None
        words, visit_format = visit_context(visit), money_format(visit.clinic)
        _tell_given_back(session, refund, f"P-{refund.id}", how, words, visit_format, visit.id)
    return refund


def _tell_given_back(
    session: Session,
    refund: Payment,
    reference: str,
    how: str | None,
    words: dict,
    fmt: ClinicFormat,
    appointment_id: int | None,
) -> notify.Queued:
    """Email the patient what is given back of what they paid, and how (`how`: None for a card
    refund through the provider); `words`: the visit's (visit_context) or a fee's."""
    patient = session.get(Patient, refund.patient_id)
    if patient is None:
        return notify.Queued([], ["the patient's record is gone"])
    return notify.queue_for_patient(
        session,
        patient,
        "payment_given_back",
        {
            **words,
            "amount": format_money(
                refund.amount_cents, refund.currency or fmt.currency, fmt.locale
            ),
            "reference": reference,
            "how": how
            or "it goes back to your card, and reaches your account within a few working days.",
        },
        appointment_id=appointment_id,
        channels=[notify.Channel.EMAIL],
    )


@dataclass(frozen=True)
class Refundable:
    payment_id: int
    label: str  # "P-3, Cash £60.00: £60.00 left"
    left_cents: int


def refundable_payments(
    session: Session, appointment_id: int, fmt: ClinicFormat
) -> list[Refundable]:
    """The money received for the visit that can still be given back, with what is left."""
    paid = list(
        session.scalars(
            select(Payment)
            .where(
                Payment.appointment_id == appointment_id,
                Payment.kind.in_(PAID_KINDS),
                Payment.status == "paid",
                Payment.method != "points",
            )
            .order_by(Payment.id)
        )
    )
    back = given_back(session, [p.id for p in paid])
    out = []
    for p in paid:
        left = p.amount_cents - back.get(p.id, (0, 0))[0]
        if left > 0:
            code = p.currency or fmt.currency
            money = format_money(p.amount_cents, code, fmt.locale)
            label = f"P-{p.id}, {METHOD_LABELS.get(p.method, p.method)} {money}"
            out.append(
                Refundable(p.id, f"{label}: {format_money(left, code, fmt.locale)} left", left)
            )
    return out


def pay_fee(
    session: Session,
    actor: Actor,
    ledger_entry_id: int,
    *,
    method: str,
    provider: PaymentProvider,
) -> Payment:
    """A late-cancellation or no-show fee paid at the desk (card or cash). A charge to the card
    on file is `charge_fee_on_file`, which commits its attempt before the provider is asked."""
    ensure(actor, Permission.PAYMENTS_RECORD)
    entry, owed = _owed_fee(session, ledger_entry_id)
    if method == "card_on_file":
        raise ValidationError(
            "A charge to the card on file is made with 'Charge the card on file', which keeps "
            "the attempt so it is never taken twice."
        )
    if method not in DESK_METHODS:
        raise ValidationError("Choose card, cash or the card on file.")
    if (started := _charge_started(session, entry.id)) and started.provider_ref:
        raise Conflict(
            f"The card provider is still finishing the charge of fee #{entry.id} to the card on "
            f"file ({_ref(started)}): the fee is marked paid when the provider says the money "
            "came in, or shown as declined if it does not. Take no other payment of it meanwhile. "
            "Press 'Charge the card on file' again to ask the provider now (nothing is charged "
            "again)."
        )
    if started:
        raise Conflict(
            f"A charge of fee #{entry.id} to the card on file ({_ref(started)}) was started and "
            "not finished: the provider may have taken it. Choose 'Charge the card on file' and "
            "press 'Charge the card on file' again to finish it (the provider answers with that "
            "charge, not a second one); the fee is then paid, or its decline is shown."
        )
    payment = _fee_payment(session, entry, owed, method)
    payment.status, payment.paid_at = "paid", utcnow()
    session.flush()
    _fee_paid_audit(session, actor, entry, payment)
    return payment


def _ref(payment: Payment) -> str:
    return f"P-{payment.id}"


def _owed_fee(session: Session, ledger_entry_id: int) -> tuple[LedgerEntry, int]:
    """The fee, locked (two desks recording it at once take it once: the second waits, then
    reads it paid), and what is owed of it; refused when waived, paid or given back. Its visit
    is locked first, as a cancellation and a checkout paid after one lock it before the fee
    (before, on PostgreSQL, a desk holding the fee waited for the visit the checkout held while
    the checkout waited for the fee: a deadlock)."""
    _lock_fee_visit(session, ledger_entry_id)
    entry = session.get(LedgerEntry, ledger_entry_id, with_for_update=True, populate_existing=True)
    if entry is None or entry.kind not in (LedgerKind.LATE_CANCEL_FEE, LedgerKind.NO_SHOW_FEE):
        raise NotFound(f"There is no fee #{ledger_entry_id}.")
    if entry.waived_at is not None:
        raise Conflict(f"Fee #{entry.id} was waived.")
    owed = entry.amount_cents - int(session.scalar(_fee_paid(entry.id)))
    if owed <= 0 or session.scalar(
        select(Payment.id).where(Payment.ledger_entry_id == entry.id, Payment.kind == "fee_refund")
    ):
        raise Conflict(f"Fee #{entry.id} is paid already.")
    return entry, owed


def _lock_fee_visit(session: Session, ledger_entry_id: int) -> None:
    """Lock the fee's visit (if it has one) before the fee: the order a cancellation and a
    checkout paid after one lock them in, so a desk or a waiver at the same time waits."""
    found = session.get(LedgerEntry, ledger_entry_id)
    if found is not None and found.appointment_id is not None:
        session.get(Appointment, found.appointment_id, with_for_update=True)


def _fee_payment(session: Session, entry: LedgerEntry, owed: int, method: str) -> Payment:
    payment = Payment(
        appointment_id=entry.appointment_id,
        patient_id=entry.patient_id,
        ledger_entry_id=entry.id,
        kind="fee",
        method=method,
        status="pending",
        amount_cents=owed,  # the whole fee, or what money kept from a prepayment left owed
        currency=_fee_format(session, entry).currency,
    )
    session.add(payment)
    session.flush()
    return payment


def _fee_paid_audit(session: Session, actor: Actor, entry: LedgerEntry, payment: Payment) -> None:
    payment.recorded_by_user_id = actor.user_id
    audit.record(
        session,
        actor,
        "fee_paid",
        "ledger_entry",
        entry.id,
        patient_id=entry.patient_id,
        details={"payment_id": payment.id, "method": payment.method, "cents": payment.amount_cents},
    )


# a charge to the card on file not finished: sent or to be sent, or answered 'processing'
_UNFINISHED = (Payment.kind == "fee", Payment.method == "stripe", Payment.status == "pending")


def _charge_started(session: Session, entry_id: int) -> Payment | None:
    """The fee's charge to the card on file begun and not finished (the process stopped
    between the provider's answer and our commit, or it is under way at another desk)."""
    return session.scalar(
        select(Payment)
        .where(Payment.ledger_entry_id == entry_id, *_UNFINISHED)
        .order_by(Payment.id)
        .limit(1)
    )


def fee_charge_key(attempt: Payment) -> str:
    """The idempotency key a charge to the card on file is sent with: one per attempt (our row,
    committed before the provider is asked), so an attempt sent again after a crash is
    answered with its first charge, and a new attempt after a decline is a new charge."""
    return f"clinicdesk-fee-charge-{attempt.id}-of-fee-{attempt.ledger_entry_id}"


def charge_fee_on_file(
    write: Callable[[], AbstractContextManager[Session]],
    actor: Actor,
    ledger_entry_id: int,
    *,
    provider: PaymentProvider,
) -> Payment:
    """Charge what is owed of a fee to the patient's card on file through the provider, in
    three steps, each its own transaction (`write`: Database.write): the attempt is recorded
    (pending, with its key: `fee_charge_key`) and committed; the provider is asked, with the
    key; the answer is recorded. An attempt left pending (the process stopped after the
    provider charged, or it is under way at another desk) is sent again with its own key, so
    the provider answers with its first charge and it is completed, never taken twice; one the
    provider declined is kept as failed, with what it said, and the next press is a new
    attempt (a new key). The provider's refusal is raised after it is recorded. A charge the
    provider took but has not finished ('processing', 'requires_action') stays pending, counted
    nowhere as money in, and `ChargePending` says so: the provider's webhook completes or fails
    it (`charge_answered`). Pressed again, such a charge is not sent again (the provider
    forgets its key after a day, and could take it twice): the provider is asked how it stands
    (`_check_attempt`), as the payments job asks of one whose webhook has not come (one still
    unfinished a day on, CHARGE_CANCEL_AFTER, is canceled there and failed, the fee owed
    again); one cut off before the provider answered is sent again by the payments job
    (`finish_charges`)."""
    with write() as session:
        ensure(actor, Permission.PAYMENTS_RECORD)
        entry, owed = _owed_fee(session, ledger_entry_id)
        attempt = _charge_started(session, entry.id)
        reference = attempt.provider_ref if attempt is not None else None
        customer = _customer(session, entry.patient_id) or ""
        if not customer and not reference:
            raise ValidationError("The patient has no card on file with the payment provider.")
        if attempt is None:
            attempt = _fee_payment(session, entry, owed, "stripe")
            audit.record(
                session,
                actor,
                "fee_charge_started",
                "ledger_entry",
                entry.id,
                patient_id=entry.patient_id,
                details={"payment_id": attempt.id, "cents": attempt.amount_cents},
            )
        sent = _Attempt.of(attempt, customer)
        overdue = _overdue(attempt, utcnow())
        key_gone = as_utc(attempt.created_at) <= utcnow() - CHARGE_KEY_KEPT
    if reference:  # the provider answered it, not finished: asked how it stands, not sent again
        return _check_attempt(write, actor, sent, reference, provider, overdue=overdue)
    if key_gone:  # never answered, and its key soon forgotten: sent again, it could be taken twice
        status, said = _give_up(write, sent.id)
        if status == "paid":
            raise Conflict(f"Fee #{sent.fee_id} is paid already.")
        if status == "pending":  # the provider's answer recorded meanwhile (another desk)
            raise _pending(sent.fee_id, f"P-{sent.id}", "answered meanwhile")
        raise ProviderError(said)
    return _send_attempt(write, actor, sent, provider)


class ChargePending(DomainError):
    """The provider took the charge to the card on file but has not finished it: the fee is not
    paid yet (the provider's word when it ends completes or fails it)."""


CHARGE_RETRY_AFTER = timedelta(minutes=5)  # an attempt not answered by then was cut off
# a charge answered unfinished whose webhook has not come by then: the provider is asked (its
# webhook comes within seconds when all is well; it may be lost, or the endpoint down)
CHARGE_CHECK_AFTER = timedelta(minutes=10)
CHARGE_KEY_KEPT = timedelta(hours=23)  # Stripe keeps an idempotency key 24 h: resent within it
# a charge the provider answered and has still not finished by then is canceled there and failed
# (the fee owed again). A card charge finishes within minutes; one left 'requires_action' (the
# patient's bank wants them to confirm it) or 'requires_confirmation' waits for a patient who,
# charged off-session, is not there to do it, so it would wait for ever and block the fee. A
# day leaves time for the patient to be reached and for a slow webhook, and ends every attempt
# within the day Stripe keeps its key, as CHARGE_KEY_KEPT does for one never answered.
CHARGE_CANCEL_AFTER = timedelta(hours=23)
# the settings row keeping the last charge the payments job asked about, so it asks in turn
CHARGES_ASKED = "payments_charges_asked"


def _customer(session: Session, patient_id: int) -> str | None:
    """The patient's customer at the provider (their card on file), the latest one recorded."""
    return session.scalar(
        select(Payment.provider_customer)
        .where(Payment.patient_id == patient_id, Payment.provider_customer.is_not(None))
        .order_by(Payment.id.desc())
        .limit(1)
    )


class _Attempt(NamedTuple):
    """A committed attempt to charge the card on file, as it is sent to the provider."""

    id: int
    fee_id: int
    key: str
    customer: str
    cents: int
    currency: str

    @classmethod
    def of(cls, attempt: Payment, customer: str) -> _Attempt:
        return cls(
            attempt.id,
            attempt.ledger_entry_id,
            fee_charge_key(attempt),
            customer,
            attempt.amount_cents,
            attempt.currency,
        )


def _send_attempt(
    write: Callable[[], AbstractContextManager[Session]],
    actor: Actor,
    sent: _Attempt,
    provider: PaymentProvider,
) -> Payment:
    """Send a committed attempt to the provider with its own key, then record the answer. No
    answer (`ProviderUnanswered`: it may have been taken) records nothing: the attempt stays
    pending, to be sent again with the same key (the next press, or `finish_charges`), never
    failed (before, it was, and the next press charged the card a second time)."""
    attempt_id, fee_id, key = sent.id, sent.fee_id, sent.key
    customer, cents, currency = sent.customer, sent.cents, sent.currency
    refused: DomainError | None = None
    charge = None
    try:
        charge = provider.charge_saved_card(customer, cents, currency, f"Fee #{fee_id}", key=key)
    except ProviderUnanswered as error:
        raise ProviderUnanswered(
            f"{error} The charge of fee #{fee_id} to the card on file (P-{attempt_id}) may have "
            "been taken, so the fee takes no other payment meanwhile: press 'Charge the card on "
            "file' again in a minute, or the payments job sends it again within minutes, with "
            "the same key (the provider answers with that charge, never a second one)."
        ) from error
    except DomainError as error:
        refused = error
    with write() as session:
        attempt = _locked_attempt(session, attempt_id)
        if attempt.status != "pending":  # another press finished it meanwhile
            raise Conflict(f"Fee #{fee_id} is paid already.")
        entry = session.get(LedgerEntry, fee_id)
        if charge is not None:
            attempt.provider_ref = charge.reference
            if charge.status == "succeeded":
                attempt.status, attempt.paid_at = "paid", utcnow()
                _fee_paid_audit(session, actor, entry, attempt)
            else:
                refused = _pending(fee_id, _ref(attempt), charge.status)
                audit.record(
                    session,
                    actor,
                    "fee_charge_pending",
                    "ledger_entry",
                    entry.id,
                    patient_id=entry.patient_id,
                    details={"payment_id": attempt.id, "status": charge.status},
                )
        else:
            attempt.status, attempt.last_error = "failed", str(refused)[:500]
            audit.record(
                session,
                actor,
                "fee_charge_refused",
                "ledger_entry",
                entry.id,
                patient_id=entry.patient_id,
                details={"payment_id": attempt.id, "said": attempt.last_error},
            )
    if refused is not None:
        raise refused
    return attempt


def _pending(fee_id: int, ref: str, status: str) -> ChargePending:
    return ChargePending(
        f"The card provider has not finished the charge of fee #{fee_id} to the card on file "
        f"({ref}, {status.replace('_', ' ')}): the fee is not paid yet. It is marked "
        "paid when the provider says the money came in, or shown as declined if it does not; "
        "nothing else to do now."
    )


def _check_attempt(
    write: Callable[[], AbstractContextManager[Session]],
    actor: Actor,
    sent: _Attempt,
    reference: str,
    provider: PaymentProvider,
    *,
    overdue: bool = False,
) -> Payment:
    """Ask the provider how a charge it answered unfinished (`reference`) stands now, and record
    how it ended as its webhook does (`_charge_ended`): paid, or failed with what the provider
    said (raised as the provider's refusal, as a decline is). Not finished yet:
    `ChargePending`; finished meanwhile (its webhook, another desk): `Conflict` when paid. One
    still unfinished CHARGE_CANCEL_AFTER after it was sent (`overdue`) is canceled at the
    provider (`fee_cancel_key`) and failed, saying so: the fee is owed again; one the provider
    would not cancel because it went through meanwhile is paid. A cancel cut off before its
    commit leaves the attempt pending: its webhook or the next ask finds it canceled and fails
    it in the provider's words ('canceled (abandoned)'), sending no second cancel."""
    charge = provider.charge_state(reference)  # its refusal raised: nothing is recorded
    canceled = ""  # the state it was left in, when it is canceled here
    if charge.ended is None and overdue:
        left_in = charge.status
        charge = provider.cancel_charge(reference, key=fee_cancel_key(sent))
        canceled = left_in if charge.status == "canceled" else ""
    with write() as session:
        if charge.ended is None:
            attempt = session.get(Payment, sent.id)
        else:
            said = charge.said or "the charge failed."
            if canceled:
                said = _canceled_words(canceled)
            attempt = _charge_ended(session, reference, charge.ended, said, actor)
            if attempt is not None and attempt.status == "paid":
                return attempt
            attempt = attempt or session.get(Payment, sent.id, populate_existing=True)
        status, ref, last_error = attempt.status, _ref(attempt), attempt.last_error
    if status == "paid":
        raise Conflict(f"Fee #{sent.fee_id} is paid already.")
    if status == "failed":
        raise ProviderError(last_error or f"The charge {ref} to the card on file failed.")
    raise _pending(sent.fee_id, ref, charge.status)


def fee_cancel_key(sent: _Attempt) -> str:
    """The idempotency key the cancel of an unfinished charge to the card on file is sent
    with: one per attempt, so a cancel sent again (the process stopped before recording it)
    is answered with the first."""
    return f"clinicdesk-fee-cancel-{sent.id}-of-fee-{sent.fee_id}"


def _canceled_words(status: str) -> str:
    hours = int(CHARGE_CANCEL_AFTER.total_seconds() // 3600)
    return (
        f"it was still unfinished ({status.replace('_', ' ')}) {hours} hours after it was "
        "sent, so it was canceled at Stripe and nothing was taken. The fee is owed again: "
        "charge the card on file again, or take it another way at the desk."
    )


def _locked_attempt(session: Session, attempt_id: int) -> Payment:
    """A charge to the card on file, locked to record how it ended: its visit and fee first, as
    a press locks them (before, an answer recorded while another desk held the fee, between
    reading it owed and looking for an attempt under way, let that desk send a new attempt:
    the fee was taken twice)."""
    fee_id = session.scalar(select(Payment.ledger_entry_id).where(Payment.id == attempt_id))
    _lock_fee_visit(session, fee_id)
    session.get(LedgerEntry, fee_id, with_for_update=True)
    return session.get(Payment, attempt_id, with_for_update=True, populate_existing=True)


def charge_answered(session: Session, reference: str, succeeded: bool, said: str) -> Payment | None:
    """The provider's webhook says how a charge to the card on file ended (`reference`: its
    payment intent): a pending attempt becomes paid, or failed with what the provider `said`
    (the fee stays owed; the next press is a new charge). None when no pending attempt has it
    (one finished already, or a payment not ours)."""
    return _charge_ended(session, reference, succeeded, said, SYSTEM)


def _charge_ended(
    session: Session, reference: str, succeeded: bool, said: str, actor: Actor
) -> Payment | None:
    """A charge to the card on file ended as the provider says, recorded by `actor`: the
    system for its webhook and the payments job, the desk that pressed again and asked."""
    found = session.scalar(
        select(Payment.id).where(
            Payment.provider_ref == reference,
            Payment.kind == "fee",
            Payment.method == "stripe",
        )
    )
    attempt = found and _locked_attempt(session, found)
    if not attempt or attempt.status != "pending":
        return None
    entry = session.get(LedgerEntry, attempt.ledger_entry_id)
    if succeeded:
        attempt.status, attempt.paid_at = "paid", utcnow()
        _fee_paid_audit(session, actor, entry, attempt)
    else:
        attempt.status = "failed"
        attempt.last_error = f"Stripe did not charge the card on file: {said}"[:500]
        audit.record(
            session,
            actor,
            "fee_charge_refused",
            "ledger_entry",
            entry.id,
            patient_id=entry.patient_id,
            details={"payment_id": attempt.id, "said": attempt.last_error},
        )
    return attempt


def refunds_job(database: Database, settings: Settings) -> None:
    """The payments job: card refunds due (core.payments.prepay.process_refunds), then charges
    to the card on file cut off before the provider answered or left unfinished there
    (`finish_charges`: asked in turn, canceled a day on). Nothing without a card provider."""
    if settings.stripe is None:
        return
    provider = provider_for(settings.stripe)
    process_refunds(database.write, provider)
    finish_charges(database.write, provider)


def finish_charges(
    write: Callable[[], AbstractContextManager[Session]],
    provider: PaymentProvider,
    limit: int = 20,
) -> int:
    """The payments job's step for charges to the card on file left pending. One cut off
    before the provider answered (the process stopped): each pending attempt with no answer,
    older than CHARGE_RETRY_AFTER, is sent again with its own key as the system (the provider
    answers with its first result, so it is completed or failed, never taken twice); one older
    than CHARGE_KEY_KEPT (the provider forgets the key at 24 h, so sending it again could
    charge twice) is marked failed, saying so, and the fee stays owed. One the provider
    answered unfinished whose webhook has not come (lost, the endpoint down), older than
    CHARGE_CHECK_AFTER: the provider is asked how it stands (at most `limit` a run, in turn:
    `_to_ask`), and one that ended is completed or failed as its webhook would
    (`_charge_ended`); one still unfinished is asked again on a later run, and one still
    unfinished CHARGE_CANCEL_AFTER after it was sent is canceled at the provider and failed,
    the fee owed again (paid, if it went through meanwhile). With no card provider
    (`DeskProvider`) nothing can be asked: it is left for the provider's webhook. Returns how
    many attempts were sent again, given up or asked."""
    now = utcnow()
    with write() as session:
        answered = _to_ask(session, now, limit) if provider.online else []
        checks = [(_Attempt.of(p, ""), p.provider_ref, _overdue(p, now)) for p in answered]
        found = session.scalars(
            select(Payment)
            .where(
                *_UNFINISHED,
                Payment.provider_ref.is_(None),
                Payment.created_at <= now - CHARGE_RETRY_AFTER,
            )
            .order_by(Payment.id)
            .limit(limit)
        ).all()
        rows = [
            (
                _Attempt.of(p, _customer(session, p.patient_id) or ""),
                as_utc(p.created_at) <= now - CHARGE_KEY_KEPT,
            )
            for p in found
        ]
    for sent, too_old in rows:
        try:
            if too_old:
                _give_up(write, sent.id)
            else:
                _send_attempt(write, SYSTEM, sent, provider)
        except DomainError as error:  # declined, still unfinished or finished meanwhile
            log.warning("charge P-%s: %s", sent.id, error)
    for sent, reference, overdue in checks:
        try:
            _check_attempt(write, SYSTEM, sent, reference, provider, overdue=overdue)
        except DomainError as error:  # failed, still unfinished or finished meanwhile
            log.warning("charge P-%s: %s", sent.id, error)
    return len(rows) + len(checks)


def _to_ask(session: Session, now: datetime, limit: int) -> list[Payment]:
    """The charges answered unfinished the payments job asks of this run: at most `limit`, in
    turn, from the one after the last it asked (kept in the settings row CHARGES_ASKED), round
    again from the oldest; before, the oldest `limit` were asked on every run and never the
    newer ones. The row is locked until the transaction ends, so jobs of several processes
    take turns and ask of the next ones."""
    marker = setting_row(session, CHARGES_ASKED)
    after = int((marker.value or {}).get("after", 0))
    waiting = (
        select(Payment)
        .where(
            *_UNFINISHED,
            Payment.provider_ref.is_not(None),
            Payment.created_at <= now - CHARGE_CHECK_AFTER,
        )
        .order_by(Payment.id)
    )
    found = list(session.scalars(waiting.where(Payment.id > after).limit(limit)))
    if len(found) < limit:
        found += session.scalars(waiting.where(Payment.id <= after).limit(limit - len(found)))
    if found:
        marker.value = {"after": found[-1].id}
    return found


def _overdue(attempt: Payment, now: datetime) -> bool:
    """A charge the provider answered unfinished that is to be canceled (CHARGE_CANCEL_AFTER)."""
    return as_utc(attempt.created_at) <= now - CHARGE_CANCEL_AFTER


def _give_up(
    write: Callable[[], AbstractContextManager[Session]], attempt_id: int
) -> tuple[str, str]:
    """Fail an attempt the provider never answered within CHARGE_KEY_KEPT, saying what to do;
    its status and last error then (another desk or the webhook may have finished it)."""
    with write() as session:
        attempt = _locked_attempt(session, attempt_id)
        if attempt.status != "pending" or attempt.provider_ref is not None:
            return attempt.status, attempt.last_error
        attempt.status = "failed"
        attempt.last_error = (
            "The card provider never answered this charge to the card on file and it can no "
            "longer be checked safely (after 24 hours). Check the card provider's dashboard: if "
            "it was not taken, charge the fee again or take it at the desk; if it was, refund "
            "it there or record it."
        )
        entry = session.get(LedgerEntry, attempt.ledger_entry_id)
        audit.record(
            session,
            SYSTEM,
            "fee_charge_refused",
            "ledger_entry",
            entry.id,
            patient_id=entry.patient_id,
            details={"payment_id": attempt.id, "said": "no answer within 23 hours"},
        )
        return attempt.status, attempt.last_error


def _fee_paid(entry_id: int | ColumnElement[int]) -> Select[tuple[int]]:
    """What was paid towards a fee: at the desk, to the card on file, or kept from a
    prepayment (which may cover only part of it; the rest stays owed). `entry_id` is a fee's
    id, or LedgerEntry.id for each fee of a query (as a scalar subquery there)."""
    return select(func.coalesce(func.sum(Payment.amount_cents), 0)).where(
        Payment.ledger_entry_id == entry_id, Payment.kind == "fee", Payment.status == "paid"
    )


def _fee_format(session: Session, entry: LedgerEntry) -> ClinicFormat:
    """A fee is in its appointment's clinic's currency; one on no appointment, in that of the
    patient's latest clinic (the practice's first clinic for a patient with none)."""
    appointment = session.get(Appointment, entry.appointment_id) if entry.appointment_id else None
    if appointment is not None:
        return money_format(appointment.clinic)
    clinic_id = latest_clinic_id(session, entry.patient_id)
    return money_format(session.get(Clinic, clinic_id)) if clinic_id else clinic_format(session)


def export_payments(
    session: Session, actor: Actor, first: date, last: date, clinic_id: int | None = None
) -> bytes:
    """The money of each clinic (or one) on its own days first..last as CSV (audited): every
    payment, fee paid and refund when the money moved, on the clinic's clock, signed in its
    currency, then the refunds due not yet made (core.payments.cashup)."""
    ensure(actor, Permission.DATA_EXPORT)
    rows = cashup.movements(session, first, last, clinic_id)
    exports.record_export(
        session, actor, "payments", len(rows), {"from": first, "to": last, "clinic": clinic_id}
    )
    return exports.to_csv(cashup.HEADER, cashup.csv_rows(rows))


@dataclass(frozen=True)
class OpenFee:
    ledger_entry_id: int
    kind: str  # in words: 'no-show fee', 'late-cancellation fee' (policy.FEE_WORDS)
    amount: str


def unpaid_fees(session: Session, actor: Actor, appointment_id: int) -> list[OpenFee]:
    """Late-cancellation and no-show fees on the appointment, not waived, with what is still
    owed of each (a fee part paid from a prepayment shows the rest)."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    appointment = session.get(Appointment, appointment_id)
    fmt = money_format(appointment.clinic if appointment else None)
    paid = _fee_paid(LedgerEntry.id).scalar_subquery()
    refunded = select(Payment.ledger_entry_id).where(
        Payment.ledger_entry_id.is_not(None), Payment.kind == "fee_refund"
    )
    owed = LedgerEntry.amount_cents - paid
    rows = session.execute(
        select(LedgerEntry.id, LedgerEntry.kind, owed)
        .where(
            LedgerEntry.appointment_id == appointment_id,
            LedgerEntry.kind.in_((LedgerKind.LATE_CANCEL_FEE, LedgerKind.NO_SHOW_FEE)),
            LedgerEntry.waived_at.is_(None),
            owed > 0,
            LedgerEntry.id.not_in(refunded),
        )
        .order_by(LedgerEntry.id)
    )
    return [OpenFee(i, policy.FEE_WORDS[kind], fmt.money(cents)) for i, kind, cents in rows]


@dataclass(frozen=True)
class Summary:
    badge: str
    due: str
    outstanding: str
    rows: list[PaymentRow]
    fees: list[OpenFee]
    clinic_id: int  # whose local time and locale the rows are shown in
    currency: str  # the clinic's: what a desk payment is recorded in
    refundable: list[Refundable] = field(default_factory=list)  # money that can be given back
    closed: str = ""  # 'cancelled' or 'declined': nothing is owed for the visit itself


def summary(session: Session, actor: Actor, appointment_id: int) -> Summary:
    """What the appointment page shows: the badge, what is asked and owed, every payment."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound(f"There is no appointment #{appointment_id}.")
    fmt = money_format(appointment.clinic)
    owed = due(session, appointment)
    if appointment.status not in (AppointmentStatus.SCHEDULED, AppointmentStatus.CHECKED_IN):
        owed = replace(owed, asked_cents=0)  # nothing is asked of a closed appointment
    return Summary(
        badges(session, [appointment_id]).get(appointment_id, ""),
        fmt.money(owed.asked_cents) if owed.asked_cents else "",
        fmt.money(owed.outstanding_cents) if owed.outstanding_cents else "",
        list_payments(session, actor, appointment_id),
        unpaid_fees(session, actor, appointment_id),
        appointment.clinic_id,
        fmt.currency,
        refundable_payments(session, appointment_id, fmt),
        appointment.status.value if appointment.status in CLOSED else "",
    )
