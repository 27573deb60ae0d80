"""A patient's points balance: the one way to change it, each change with its ledger entry.

Every writer (a manager's adjustment, survey points, the cancellation policy's deduction and
its waiver, a prepayment in points and its refund, a merge) goes through `post`, `deduct`,
`restore` or `transfer`. Each locks the patient's row (SELECT … FOR UPDATE) and reads the
balance afresh before changing it, so two changes at once wait for each other and both count
(PostgreSQL's READ COMMITTED would otherwise let the second write over the first; SQLite
serialises writers already). A writer that checks the balance before changing it (pay with
points, a manager removing points) reads it through `locked` first. The opening balance of a
patient being created (core.payments.points.open_account, an import's bulk insert) needs no
lock: nobody else sees the row yet; nor does the demo's loader, which replays its patients'
history in the transaction that creates them (core.demo).

Here, below every writer (core.policy is the lowest layer that changes a balance);
core.payments.points keeps the ledger's reads and the services. Imports only core.kernel."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.kernel.errors import NotFound
from db.models import LedgerEntry, LedgerKind, Patient


def delta(entry: LedgerEntry) -> int:
    """The entry's effect on the points balance (a waived deduction has none)."""
    if entry.kind == LedgerKind.POINTS:
        return 0 if entry.waived_at else -entry.points
    if entry.kind == LedgerKind.POINTS_SPENT:
        return -entry.points
    if entry.kind in (LedgerKind.POINTS_EARNED, LedgerKind.POINTS_REFUNDED):
        return entry.points
    if entry.kind in (LedgerKind.POINTS_ADJUSTED, LedgerKind.POINTS_OPENING):
        return entry.points  # signed
    return 0


def locked(session: Session, patient_id: int) -> Patient | None:
    """The patient, their row locked until the transaction ends and read afresh: the balance
    it shows is the one the change will be applied to. A change of the row not written yet is
    written first, so reading it afresh cannot lose it."""
    known = session.identity_map.get(session.identity_key(Patient, patient_id))
    if known is not None and session.is_modified(known):
        session.flush()
    return session.get(Patient, patient_id, with_for_update=True, populate_existing=True)


def locked_with_kept(session: Session, patient_id: int) -> Patient | None:
    """`locked`, and for a record merged into another (core.patients.merge) the record kept
    locked with it, both in the order of their ids, as a merge and `transfer` lock them: points
    given back on a merged record go on to the record kept (core.policy.follow_merge), and
    locking the duplicate first, the kept record after, could wait on a transaction locking
    them the other way round while it waits on this one."""
    patient = session.get(Patient, patient_id)
    kept_id = patient.merged_into_id if patient is not None else None
    for ident in sorted({patient_id, kept_id} - {None}):
        locked(session, ident)
    return locked(session, patient_id)


def _locked(session: Session, patient_id: int) -> Patient:
    patient = locked(session, patient_id)
    if patient is None:
        raise NotFound(f"There is no patient #{patient_id}.")
    return patient


def _apply(session: Session, patient: Patient, entry: LedgerEntry) -> LedgerEntry:
    patient.points_balance += delta(entry)
    session.add(entry)
    return entry


def post(
    session: Session,
    patient_id: int,
    kind: LedgerKind,
    points: int,
    *,
    appointment_id: int | None = None,
    note: str = "",
    policy_id: int | None = None,
) -> LedgerEntry:
    """Write the entry and change the locked balance by what it means (`delta`), so the ledger
    keeps adding up to the balance. The caller checked any limit under `locked`."""
    entry = LedgerEntry(
        patient_id=patient_id,
        appointment_id=appointment_id,
        kind=kind,
        points=points,
        policy_id=policy_id,
        waive_reason=note or None,
    )
    return _apply(session, _locked(session, patient_id), entry)


def deduct(
    session: Session, patient_id: int, points: int, *, appointment_id: int, policy_id: int | None
) -> LedgerEntry:
    """The cancellation policy's deduction as far as the balance goes (it stops at zero): the
    entry records what was taken, so the ledger adds up and a waiver gives back no more."""
    patient = _locked(session, patient_id)
    taken = min(points, max(0, patient.points_balance))
    entry = LedgerEntry(
        patient_id=patient_id,
        appointment_id=appointment_id,
        kind=LedgerKind.POINTS,
        points=taken,
        policy_id=policy_id,
    )
    return _apply(session, patient, entry)


def restore(session: Session, patient_id: int, points: int) -> Patient:
    """Points a waived deduction gives back: the deduction's entry, now marked waived, is the
    ledger's record of it (core.policy.cancellation sets it before calling)."""
    patient = _locked(session, patient_id)
    patient.points_balance += points
    return patient


def transfer(
    session: Session, source_id: int, target_id: int, points: int, *, out_note: str, in_note: str
) -> None:
    """Move `points` of one patient's balance to another's (a merged duplicate's to the record
    kept) as one entry on each side, so both ledgers keep adding up to their balances. Both
    rows are locked in the order of their ids, as a merge locks them: no deadlock."""
    for patient_id in sorted((source_id, target_id)):
        _locked(session, patient_id)
    post(session, source_id, LedgerKind.POINTS_ADJUSTED, -points, note=out_note)
    post(session, target_id, LedgerKind.POINTS_ADJUSTED, points, note=in_note)
