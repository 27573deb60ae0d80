"""The practice's money at the end of the day: what the till, the card terminal and the card
provider should show for each clinic's days, and the rows the payments export lists.

A row is money that moved, when it moved (`paid_at`), on its clinic's own days and clock, signed
in the clinic's currency: money received (a prepayment, a deposit, a fee paid at the desk or to
the card on file) is in, a refund made is out. Nothing else is money moving: a checkout still
pending or closed unpaid and a payment recorded as failed move nothing; a fee kept from a
prepayment is that prepayment's money, counted once when it came in (its row says so, at 0); a
refund due but not yet made at the end of the days is listed apart, owed back, not out (a
past range says what was owed at its end, though the refund was made since: every status is as
at the end of the days, never as of today). Points are their own method
(their value, never in a till). A payment belongs to its appointment's clinic; a fee on no
appointment to the patient's latest clinic's (as it was charged, core.payments.desk).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import local_days_bounds, to_local
from core.kernel.errors import NotFound, ValidationError
from core.kernel.money import ClinicFormat, clinic_time, to_major
from core.payments.prepay import PAID_KINDS, REFUND_KINDS, refund_waits
from core.payments.rules import latest_clinic_id, money_format
from db.models import Appointment, Clinic, Patient, Payment

# the till, the card terminal, the card provider and the points ledger: where a method's money is
METHODS = {"cash": "Cash", "card": "Card terminal", "stripe": "Card online", "points": "Points"}
MAX_DAYS = 366


@dataclass(frozen=True)
class Movement:
    """One row of the cash-up: money that moved (or a refund owed back), on its clinic's clock."""

    payment_id: int
    clinic_id: int
    clinic: str
    fmt: ClinicFormat  # the clinic's zone, locale and currency
    at: datetime  # when the money moved (a refund due: when it fell due), clinic-local, aware
    appointment_id: int | None
    patient: str
    kind: str
    method: str  # METHODS' word
    status: str  # received, refunded, kept for a fee, refund due
    cents: int  # signed: in +, out -; 0 for what moved no money
    due_cents: int  # a refund due, not yet made: what is owed back
    currency: str
    points: int
    refund_of: int | None
    note: str
    last_error: str
    unanswered_at: datetime | None = None  # a card refund the provider may have made


def _due_at(p: Payment, end: datetime) -> bool:
    """A refund owed back at `end`: fallen due before it and not made by then (still due, or
    made later: a past range's export says what was owed at its end, not what is now)."""
    if p.kind not in REFUND_KINDS or p.created_at >= end:
        return False
    made_after = p.status == "refunded" and p.paid_at is not None and p.paid_at >= end
    return p.status == "refund_due" or made_after


def _status(p: Payment, due: bool) -> tuple[str, int, int]:
    """The row's plain status, its signed cents and the cents owed back."""
    if due:
        return "refund due", 0, p.amount_cents
    if p.kind in REFUND_KINDS:
        return "refunded", -p.amount_cents, 0
    if p.kind == "fee" and p.refund_of_id is not None:
        return f"kept for a fee from P-{p.refund_of_id}", 0, 0
    return "received", p.amount_cents, 0


def _clinics(session: Session, clinic_id: int | None) -> list[Clinic]:
    query = select(Clinic).order_by(Clinic.id)
    if clinic_id is not None:
        query = query.where(Clinic.id == clinic_id)
    clinics = list(session.scalars(query))
    if clinic_id is not None and not clinics:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    return clinics


def _check_days(first: date, last: date) -> None:
    if not isinstance(first, date) or not isinstance(last, date):
        raise ValidationError("Choose the first and the last day.")
    if first > last:
        raise ValidationError(
            f"The first day ({first.isoformat()}) is after the last ({last.isoformat()}): "
            "swap them."
        )
    if (last - first).days >= MAX_DAYS:
        raise ValidationError(f"Choose at most {MAX_DAYS} days at a time.")


def _patients_clinic(session: Session, patient_ids: Iterable[int]) -> dict[int, int]:
    """The clinic of each patient's latest appointment (where a fee on no visit is charged)."""
    found = {p: latest_clinic_id(session, p) for p in set(patient_ids)}
    return {p: clinic for p, clinic in found.items() if clinic is not None}


def movements(
    session: Session, first: date, last: date, clinic_id: int | None = None
) -> list[Movement]:
    """Each clinic's money on its own days first..last (both included), then the refunds due
    at the end of them (made since or not), in order of clinic and time. The caller checked
    the permission."""
    _check_days(first, last)
    clinics = {c.id: c for c in _clinics(session, clinic_id)}
    if not clinics:
        return []
    bounds = {i: local_days_bounds(first, last, c.timezone) for i, c in clinics.items()}
    lo, hi = min(b[0] for b in bounds.values()), max(b[1] for b in bounds.values())
    moved = (Payment.status.in_(("paid", "refunded"))) & (Payment.paid_at >= lo)
    moved &= Payment.paid_at < hi
    # owed back at the end of the days: due then, made after them or not yet (`_due_at`)
    owed = (Payment.status == "refund_due") | (
        (Payment.status == "refunded") & (Payment.paid_at >= min(b[1] for b in bounds.values()))
    )
    owed &= Payment.kind.in_(REFUND_KINDS) & (Payment.created_at < hi)
    rows = session.execute(
        select(Payment, Appointment.clinic_id, Patient.first_name, Patient.last_name)
        .join(Patient, Patient.id == Payment.patient_id)
        .outerjoin(Appointment, Appointment.id == Payment.appointment_id)
        .where(moved | owed, Payment.kind.in_((*PAID_KINDS, "fee", *REFUND_KINDS)))
        .order_by(Payment.id)
    ).all()
    homeless = [p.patient_id for p, where, _, _ in rows if where is None]
    latest = _patients_clinic(session, homeless)
    first_clinic = session.scalar(select(Clinic.id).order_by(Clinic.id).limit(1))
    out = []
    for p, where, first_name, last_name in rows:
        where = where if where is not None else latest.get(p.patient_id, first_clinic)
        if where not in clinics:
            continue
        start, end = bounds[where]
        due = _due_at(p, end)
        when = p.created_at if due else p.paid_at
        if not due and (p.status == "refund_due" or not start <= when < end):
            continue
        status, cents, due_cents = _status(p, due)
        clinic = clinics[where]
        fmt = money_format(clinic)
        out.append(
            Movement(
                p.id,
                clinic.id,
                clinic.name,
                fmt,
                to_local(when, clinic.timezone),
                p.appointment_id,
                f"{first_name} {last_name}",
                p.kind,
                METHODS.get(p.method, p.method),
                status,
                cents,
                due_cents,
                p.currency or fmt.currency,
                p.points,
                p.refund_of_id,
                p.note,
                p.last_error,
                p.unanswered_at,
            )
        )
    # the refunds due after the day's money, each part in its clinic's order of time
    return sorted(out, key=lambda m: (m.clinic_id, m.due_cents > 0, m.at, m.payment_id))


@dataclass(frozen=True)
class CashUpLine:
    """One clinic's money by one method over the days: what the till or provider should show."""

    clinic: str
    method: str
    currency: str
    in_cents: int
    out_cents: int  # refunds made (positive)
    due_cents: int  # refunds due, not yet made
    money_in: str
    money_out: str
    net: str  # in less out: what the till or provider shows for these days
    refunds_due: str

    @property
    def net_cents(self) -> int:
        return self.in_cents - self.out_cents


def cash_up(
    session: Session, actor: Actor, first: date, last: date | None = None, clinic_id=None
) -> list[CashUpLine]:
    """Per clinic and method, the money in, out and owed back on the clinic's days first..last
    (one day when `last` is left out): money in less money out is what the till, the card
    terminal and the card provider show for them."""
    ensure(actor, Permission.PAYMENTS_RECORD)
    rows = movements(session, first, last or first, clinic_id)
    sums: dict[tuple, list[int]] = {}
    formats: dict[tuple, ClinicFormat] = {}
    order = list(METHODS.values())
    for m in rows:
        key = (m.clinic_id, m.clinic, m.method, m.currency)
        total = sums.setdefault(key, [0, 0, 0])
        total[0] += max(m.cents, 0)
        total[1] += max(-m.cents, 0)
        total[2] += m.due_cents
        formats[key] = m.fmt
    out = []
    for key in sorted(sums, key=lambda k: (k[0], _rank(order, k[2]), k[3])):
        _, clinic, method, currency = key
        cents_in, cents_out, cents_due = sums[key]
        money = ClinicFormat(formats[key].timezone, formats[key].locale, currency).money
        out.append(
            CashUpLine(
                clinic,
                method,
                currency,
                cents_in,
                cents_out,
                cents_due,
                money(cents_in),
                money(cents_out),
                money(cents_in - cents_out),
                money(cents_due) if cents_due else "",
            )
        )
    return out


@dataclass(frozen=True)
class OwedBack:
    """A refund owed back at the end of the day, as the cash-up lists it to hand back."""

    payment_id: int
    clinic: str
    since: str  # when it fell due, on the clinic's clock
    patient: str
    appointment_id: int | None
    method: str
    amount: str
    note: str
    at_desk: bool  # to hand back at the desk; else the refund job sends it to the card
    why: str = ""  # why a card refund is handed back at the desk, or waits ('' for neither)


PROVIDER_REFUSED = "the card provider refused it"
PROVIDER_OFF = "card payments are switched off, so the refund job cannot send it to the card"


def owed_back(
    session: Session,
    actor: Actor,
    day: date,
    clinic_id: int | None = None,
    *,
    provider_online: bool = True,
) -> list[OwedBack]:
    """The refunds owed back at the end of the clinic's day (made since or not), each clinic's
    in its order of time: what the desk hands back (`desk.mark_refunded`), a fee on no visit's
    too, and a card refund the provider refused or that waits while card payments are off
    (`provider_online` False), saying which. A card refund whose last attempt had no answer,
    or whose look-up the provider refused (it may have made it), is the refund job's to
    settle, saying why it waits."""
    ensure(actor, Permission.PAYMENTS_RECORD)
    out = []
    for m in movements(session, day, day, clinic_id):
        if m.due_cents <= 0:
            continue
        money = ClinicFormat(m.fmt.timezone, m.fmt.locale, m.currency).money
        since = clinic_time(m.fmt, m.at, weekday=False)
        card = m.method == METHODS["stripe"]
        unsettled = card and m.unanswered_at is not None  # cleared once the provider answers
        why = "" if not card else PROVIDER_REFUSED if m.last_error else ""
        why = PROVIDER_OFF if card and not why and not provider_online else why
        at_desk = not card or bool(why)
        if unsettled:  # it may have been made: not handed back, the job settles it
            why, at_desk = refund_waits(m.last_error, online=provider_online), False
        out.append(
            OwedBack(
                m.payment_id,
                m.clinic,
                since,
                m.patient,
                m.appointment_id,
                m.method,
                money(m.due_cents),
                m.note,
                at_desk,
                why,
            )
        )
    return out


def _rank(order: list[str], method: str) -> int:
    return order.index(method) if method in order else len(order)


HEADER = [
    "reference",
    "clinic",
    "moved_at",
    "time_zone",
    "appointment",
    "patient",
    "kind",
    "method",
    "status",
    "amount",
    "currency",
    "refund_due",
    "points",
    "refund_of",
    "note",
    "last_error",
]


def csv_rows(rows: list[Movement]) -> Iterable[tuple]:
    """The export's rows: `amount` signed in major units of `currency` (in +, out -), so a
    clinic's amounts by method add up to its till and card provider; `refund_due` apart."""
    for m in rows:
        yield (
            f"P-{m.payment_id}",
            m.clinic,
            m.at.replace(microsecond=0).isoformat(),
            m.fmt.timezone,
            m.appointment_id or "",
            m.patient,
            m.kind,
            m.method,
            m.status,
            _major(m.cents, m.currency),
            m.currency,
            _major(m.due_cents, m.currency) if m.due_cents else "",
            m.points or "",
            f"P-{m.refund_of}" if m.refund_of else "",
            m.note,
            m.last_error,
        )


def _major(cents: int, currency: str) -> Decimal:
    """Minor units as a plain signed decimal (-45.00; 4500 for yen): what a spreadsheet sums (a
    number, not text, so the export's formula guard leaves its minus sign alone)."""
    return to_major(cents, currency)
