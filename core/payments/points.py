"""The points ledger: every change to a patient's points balance writes a LedgerEntry.
A new patient's balance opens with an entry (`open_account`, OPENING_POINTS), earned per
answered survey, spent on a prepayment, deducted by the cancellation policy
(core.policy), adjusted by staff with a reason, given back when a prepaid appointment is
cancelled. A zero balance blocks online requests (core.policy.cancellation). Each change goes
through core.policy.balance, which locks the patient's row first: two at once both count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure, patient_actor
from core.kernel.errors import NotFound, ValidationError
from core.payments.rules import get_settings
from core.policy import balance
from core.policy.balance import delta
from core.policy.cancellation import FEE_WORDS
from db.models import Appointment, AppointmentStatus, LedgerEntry, LedgerKind, Patient
from db.types import utcnow

OPENING_POINTS = 100  # the points every new patient starts with (staff, import, online, demo)
LABELS = {
    LedgerKind.POINTS_OPENING: "Opening balance",
    LedgerKind.POINTS: "Deducted by the cancellation policy",
    LedgerKind.POINTS_EARNED: "Earned",
    LedgerKind.POINTS_SPENT: "Spent on a prepayment",
    LedgerKind.POINTS_ADJUSTED: "Adjusted by the practice",
    LedgerKind.POINTS_REFUNDED: "Given back",
    # a fee as every screen names it (FEE_WORDS), capitalised where it stands alone
    LedgerKind.LATE_CANCEL_FEE: FEE_WORDS[LedgerKind.LATE_CANCEL_FEE].capitalize(),
    LedgerKind.NO_SHOW_FEE: FEE_WORDS[LedgerKind.NO_SHOW_FEE].capitalize(),
}
MAX_ADJUST = 100_000


@dataclass(frozen=True)
class LedgerRow:
    id: int
    at: datetime
    what: str
    appointment_id: int | None
    points: int  # signed change of the balance
    amount_cents: int  # fees
    waived: bool
    note: str
    balance_after: int = 0  # the balance once this entry was made (as the ledger reads now)
    words: str = ""  # why, in the patient's words, with the practice's reason


def _words(entry: LedgerEntry, status: AppointmentStatus | None) -> str:
    """Why a points entry changed the balance, in words a patient understands."""
    kind, note = entry.kind, (entry.waive_reason or "").strip()
    if kind == LedgerKind.POINTS:
        if status == AppointmentStatus.NO_SHOW:
            return "Deducted for a missed appointment (no-show)"
        if status == AppointmentStatus.CANCELLED:
            return "Deducted for a late cancellation"
        return LABELS[kind]
    if kind == LedgerKind.POINTS_EARNED and entry.appointment_id:
        return "Earned for answering a survey"
    if kind == LedgerKind.POINTS_SPENT:
        return "Spent on paying for an appointment in advance"
    if kind == LedgerKind.POINTS_REFUNDED:
        return "Given back: the appointment paid with them was cancelled"
    if kind == LedgerKind.POINTS_ADJUSTED:
        said = "Added by the practice" if entry.points > 0 else "Removed by the practice"
        return f"{said}: {note}" if note else said
    return LABELS.get(kind, kind.value)


def ledger_rows(session: Session, patient_id: int, limit: int = 200) -> list[LedgerRow]:
    """A patient's ledger, newest first, each row with the balance it left (the balance now
    less the newer rows' changes, so the column ends at the balance shown above it) and its
    reason in words (callers check who may see it)."""
    entries = session.execute(
        select(LedgerEntry, Appointment.status)
        .outerjoin(Appointment, Appointment.id == LedgerEntry.appointment_id)
        .where(LedgerEntry.patient_id == patient_id)
        .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
        .limit(limit)
    ).all()
    after = session.scalar(select(Patient.points_balance).where(Patient.id == patient_id)) or 0
    rows = []
    for e, status in entries:
        rows.append(
            LedgerRow(
                e.id,
                e.created_at,
                LABELS.get(e.kind, e.kind.value),
                e.appointment_id,
                delta(e),
                e.amount_cents,
                e.waived_at is not None,
                e.waive_reason or "",
                after,
                _words(e, status),
            )
        )
        after -= delta(e)
    return rows


def points_history(
    session: Session, actor: Actor, patient_id: int, limit: int = 200
) -> list[LedgerRow]:
    """A patient's points ledger for staff, newest first; the entries add up to the balance."""
    ensure(actor, Permission.PATIENTS_READ)
    if session.get(Patient, patient_id) is None:
        raise NotFound(f"There is no patient #{patient_id}.")
    return [r for r in ledger_rows(session, patient_id, limit) if r.points]


def open_account(session: Session, patient: Patient, points: int = OPENING_POINTS) -> None:
    """Give a new patient (flushed, so it has an id) their balance and its opening entry, in
    the caller's transaction. Every way a patient is created calls this or `open_accounts`."""
    patient.points_balance = points
    if points:
        session.add(
            LedgerEntry(
                patient_id=patient.id,
                kind=LedgerKind.POINTS_OPENING,
                points=points,
                created_at=patient.created_at or utcnow(),
            )
        )


def open_accounts(
    session: Session,
    patient_ids: list[int],
    points: int = OPENING_POINTS,
    *,
    created_at: datetime,
) -> None:
    """The opening entries of patients just inserted in bulk with `points` each (an import),
    dated `created_at`: the time the caller gave those patients, as `open_account` dates a
    single patient's entry with their created_at. A Core executemany of the table given every
    column the ORM would fill: the same statement as the ORM's bulk insert (on PostgreSQL
    psycopg's executemany, no RETURNING) without taking each row through the mapper and its
    defaults, which cost half as much CPU again (the Kaggle file's 62,299 patients in chunks
    of 1,000, best of 3 and of 5: SQLite 1.10-1.18 -> 0.74-0.78 s, PostgreSQL 1.29-1.57 ->
    0.95 s)."""
    if points and patient_ids:
        kind = LedgerKind.POINTS_OPENING
        rows = [
            {
                "patient_id": i,
                "kind": kind,
                "amount_cents": 0,
                "points": points,
                "created_at": created_at,
            }
            for i in patient_ids
        ]
        session.execute(insert(LedgerEntry.__table__), rows)


def opening_points(session: Session, patient_id: int) -> int:
    """The points the patient's balance opened with (its opening entries, signed: 0 for a
    record opened with none, less what a merge did not carry, `close_opening`)."""
    return (
        session.scalar(
            select(func.sum(LedgerEntry.points)).where(
                LedgerEntry.patient_id == patient_id, LedgerEntry.kind == LedgerKind.POINTS_OPENING
            )
        )
        or 0
    )


def close_opening(session: Session, patient: Patient, points: int, *, note: str) -> None:
    """Take `points` of the patient's opening balance off it again, as a signed opening entry
    with `note` (a merged duplicate's opening, not carried to the record kept: one person
    opens one balance), so its ledger keeps adding up to its balance."""
    balance.post(session, patient.id, LedgerKind.POINTS_OPENING, -points, note=note)


def award_survey_points(session: Session, appointment: Appointment) -> int:
    """Points for an answered survey (settings: on by default); returns the points added."""
    rules = get_settings(session)
    if not rules.survey_points_enabled or rules.survey_points <= 0 or not appointment.patient_id:
        return 0
    balance.post(
        session,
        appointment.patient_id,
        LedgerKind.POINTS_EARNED,
        rules.survey_points,
        appointment_id=appointment.id,
    )
    patient = session.get(Patient, appointment.patient_id)
    audit.record(
        session,
        patient_actor(patient.first_name),
        "points_earned",
        "patient",
        patient.id,
        patient_id=patient.id,
        details={"points": rules.survey_points, "appointment_id": appointment.id},
    )
    return rules.survey_points


def spend(session: Session, patient: Patient, points: int, appointment_id: int) -> LedgerEntry:
    """Points spent on a prepayment, at most the balance (read under the row's lock)."""
    if points <= 0:
        raise ValidationError("Choose a positive number of points.")
    have = balance.locked(session, patient.id).points_balance
    if points > have:
        raise ValidationError(f"You have {have} points; choose at most that many.")
    return balance.post(
        session, patient.id, LedgerKind.POINTS_SPENT, points, appointment_id=appointment_id
    )


def give_back(session: Session, patient: Patient, points: int, appointment_id: int | None):
    """Points of a prepayment given back to the balance (a cancelled visit)."""
    return balance.post(
        session, patient.id, LedgerKind.POINTS_REFUNDED, points, appointment_id=appointment_id
    )


def transfer(
    session: Session, source: Patient, target: Patient, points: int, *, out_note: str, in_note: str
) -> None:
    """Move `points` of one patient's balance to another's (a merged duplicate's to the record
    kept) as one entry on each side, so both ledgers keep adding up to their balances."""
    balance.transfer(session, source.id, target.id, points, out_note=out_note, in_note=in_note)


def adjusted_text(patient: Patient, points: int) -> str:
    """What the desk is told after an adjustment: whose points, how many, the balance now
    (a mistyped patient number shows at once whose balance changed)."""
    did = "added to" if points > 0 else "removed from"
    return (
        f"{abs(points)} points {did} {patient.full_name} (#{patient.id}); "
        f"their balance is now {patient.points_balance}."
    )


def adjust_points(
    session: Session, actor: Actor, patient_id: int, points: int, reason: str
) -> Patient:
    """Staff add (positive) or remove (negative) points with a reason; the ledger and the audit
    log keep it. Adding to a zero balance lifts the online-request block."""
    ensure(actor, Permission.POINTS_ADJUST)
    if not isinstance(points, int) or points == 0 or abs(points) > MAX_ADJUST:
        raise ValidationError(
            f"Enter a whole number of points other than 0 (at most {MAX_ADJUST} either way)."
        )
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Say why the points change; the reason is kept in the ledger.")
    patient = balance.locked(session, patient_id)  # two changes at once both count
    if patient is None:
        raise NotFound(f"There is no patient #{patient_id}.")
    if patient.merged_into_id is not None:
        raise ValidationError(
            f"{patient.full_name} (#{patient.id}) was merged into record "
            f"#{patient.merged_into_id}. Open #{patient.merged_into_id} to adjust their points."
        )
    if patient.points_balance + points < 0:
        raise ValidationError(
            f"{patient.full_name} has {patient.points_balance} points; "
            f"remove at most {patient.points_balance}."
        )
    before = patient.points_balance
    balance.post(session, patient.id, LedgerKind.POINTS_ADJUSTED, points, note=reason)
    audit.record(
        session,
        actor,
        "points_adjusted",
        "patient",
        patient.id,
        patient_id=patient.id,
        reason=reason,
        details={"points": points, "balance_before": before, "balance_after": before + points},
    )
    return patient
