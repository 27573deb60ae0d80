"""Cancellation policy: the one evaluation every cancellation path uses.

`evaluate` answers, for an appointment and a moment, which policy version applies, whether the
moment falls inside the late-cancellation window, and what it would cost. The queue's alert, the
patient's warning and the actual cancellation all call it, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Appointment, CancellationPolicy, LedgerEntry, LedgerKind, Patient
from db.types import utcnow


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

    @property
    def late(self) -> bool:
        return self.inside_window


NO_POLICY = Evaluation(None, False, 0, 0, 0, True, False, True, 99, "")


def current_policy(
    session: Session, clinic_id: int, service_id: int | None, at: datetime | None = None
) -> CancellationPolicy | None:
    """The version in force at `at`: a service override wins over the clinic's policy."""
    at = at or utcnow()
    query = (
        select(CancellationPolicy)
        .where(CancellationPolicy.clinic_id == clinic_id, CancellationPolicy.effective_at <= at)
        .order_by(CancellationPolicy.effective_at.desc(), CancellationPolicy.id.desc())
        .limit(1)
    )
    if service_id is not None:
        override = session.scalar(query.where(CancellationPolicy.service_id == service_id))
        if override is not None:
            return override
    return session.scalar(query.where(CancellationPolicy.service_id.is_(None)))


def inside_window(start_at: datetime, at: datetime, window_hours: int) -> bool:
    """Late when fewer than `window_hours` remain before the start (or it has started)."""
    return start_at - at < timedelta(hours=window_hours)


def evaluate(session: Session, appointment: Appointment, at: datetime | None = None) -> Evaluation:
    at = at or utcnow()
    policy = current_policy(session, appointment.clinic_id, appointment.service_id, at)
    if policy is None or appointment.start_at is None:
        return NO_POLICY
    late = inside_window(appointment.start_at, at, policy.window_hours)
    return Evaluation(
        policy_id=policy.id,
        inside_window=late,
        fee_cents=policy.late_cancel_fee_cents if late else 0,
        points=policy.points_deducted if late else 0,
        window_hours=policy.window_hours,
        needs_approval=late and policy.inside_window_needs_approval,
        auto_accept=not late and policy.outside_window_auto_accept,
        online_allowed=policy.online_cancel_allowed,
        max_reschedules=policy.max_reschedules,
        policy_text=policy.policy_text,
    )


def assess_cancellation(
    session: Session, appointment: Appointment, evaluation: Evaluation
) -> list[LedgerEntry]:
    """Record what a cancellation costs under `evaluation` (late: fee and/or points)."""
    appointment.policy_id = evaluation.policy_id
    appointment.late_cancellation = evaluation.inside_window
    if not evaluation.inside_window or appointment.patient_id is None:
        return []
    entries = []
    if evaluation.fee_cents:
        entries.append(LedgerEntry(patient_id=appointment.patient_id, appointment_id=appointment.id,
                                   kind=LedgerKind.LATE_CANCEL_FEE, amount_cents=evaluation.fee_cents,
                                   policy_id=evaluation.policy_id))  # fmt: skip
    if evaluation.points:
        entries.append(
            _deduct_points(session, appointment, evaluation.points, evaluation.policy_id)
        )
    session.add_all(entries)
    return entries


def assess_no_show(session: Session, appointment: Appointment) -> list[LedgerEntry]:
    """A no-show costs the no-show fee (and the policy's points) of the version in force."""
    policy = current_policy(session, appointment.clinic_id, appointment.service_id)
    if policy is None or appointment.patient_id is None:
        return []
    appointment.policy_id = policy.id
    entries = []
    if policy.no_show_fee_cents:
        entries.append(LedgerEntry(patient_id=appointment.patient_id, appointment_id=appointment.id,
                                   kind=LedgerKind.NO_SHOW_FEE, amount_cents=policy.no_show_fee_cents,
                                   policy_id=policy.id))  # fmt: skip
    if policy.points_deducted:
        entries.append(_deduct_points(session, appointment, policy.points_deducted, policy.id))
    session.add_all(entries)
    return entries


def _deduct_points(
    session: Session, appointment: Appointment, points: int, policy_id
) -> LedgerEntry:
    patient = session.get(Patient, appointment.patient_id)
    patient.points_balance = max(0, patient.points_balance - points)
    return LedgerEntry(patient_id=patient.id, appointment_id=appointment.id, kind=LedgerKind.POINTS,
                       points=points, policy_id=policy_id)  # fmt: skip
