"""Patients' change requests (reschedule or cancel) and the practice's answers to them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.authz import Actor, ensure
from core.kernel.clock import local_today
from core.kernel.errors import Conflict, NotFound, ValidationError
from core.kernel.money import clinic_time
from core.policy import cancellation as policy
from core.requests.decisions import Proposed, choice, open_change, send_proposal
from core.scheduling.lifecycle import (
    Outcome,
    aware,
    flush,
    latest_event,
    load,
    outcome_of,
    place,
    record,
    require_reason,
    tell_patient,
)
from core.scheduling.moves import cancel, move, patient_free
from core.scheduling.states import STATUS_WORDS, Action, P, S, ensure_allowed
from db.models import (
    ChangeKind,
    ChangeRequest,
    ChangeStatus,
    TimeOfDay,
)
from db.types import utcnow

# ---------------------------------------------------------------- change requests


def _load_change(session: Session, change_id: int, expected_version: int | None) -> ChangeRequest:
    change = session.execute(
        select(ChangeRequest)
        .where(ChangeRequest.id == change_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar()
    if change is None:
        raise NotFound(f"There is no change request #{change_id}.")
    stale = expected_version is not None and change.version != expected_version
    if stale or change.status != ChangeStatus.OPEN:
        appointment = change.appointment
        event = latest_event(session, appointment.id)
        who = (
            f" by {event.actor_label} at {clinic_time(appointment.clinic, event.at)}"
            if event
            else ""
        )
        now = (  # withdrawn when the appointment was cancelled, checked in, …: say that
            STATUS_WORDS[appointment.status]
            if change.status == ChangeStatus.WITHDRAWN
            else change.status.value
        )
        raise Conflict(
            f"This change request was already handled{who} (now {now}). Reload to see it."
        )
    return change


def request_change(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    kind: ChangeKind | str,
    requested_start_at: datetime | None = None,
    requested_day: date | None = None,
    time_of_day: TimeOfDay | str | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> ChangeRequest:
    """A patient's (or staff on their behalf) request to reschedule or cancel. The policy
    evaluation is stored; where the policy auto-accepts a cancellation, it is done at once."""
    if actor.role is not None:  # staff recording a patient's request
        ensure(actor, P.APPOINTMENTS_RESCHEDULE)
    kind = choice(ChangeKind, kind, "The kind of change")
    if time_of_day not in (None, ""):
        time_of_day = choice(TimeOfDay, time_of_day, "The time of day")
    appointment = load(session, appointment_id, Action.REQUEST_CHANGE)
    if open_change(session, appointment.id, ChangeStatus.OPEN, ChangeStatus.PROPOSED):
        raise ValidationError(
            "There is already an open request for this appointment; "
            "the practice will answer it first."
        )
    now = now or utcnow()
    evaluation = policy.evaluate(session, appointment, now)
    if kind == ChangeKind.RESCHEDULE:
        if requested_start_at is None and requested_day is None:
            raise ValidationError("Give the new time or at least the day you would prefer.")
        if requested_start_at is not None and aware(requested_start_at) < now:
            raise ValidationError("The new time has passed; choose a later one.")
        if requested_day is not None and requested_day < local_today(
            appointment.clinic.timezone, now
        ):
            raise ValidationError("The requested day has passed; choose today or a later day.")
        if appointment.reschedule_count >= evaluation.max_reschedules:
            raise ValidationError(
                f"This appointment was moved {appointment.reschedule_count} times already, the "
                "most the policy allows online. Please call the practice."
            )
    elif actor.role is None and not evaluation.online_allowed:
        raise ValidationError(
            "Cancelling online is not possible for this appointment; please call the practice."
        )
    change = ChangeRequest(
        appointment_id=appointment.id,
        appointment=appointment,
        kind=kind,
        original_start_at=appointment.start_at,
        requested_start_at=aware(requested_start_at) if requested_start_at else None,
        requested_day=requested_day,
        time_of_day=time_of_day or None,
        reason=(reason or "").strip(),
        inside_window=evaluation.inside_window,
        fee_cents=evaluation.fee_cents if kind == ChangeKind.CANCEL else 0,
        points=evaluation.points if kind == ChangeKind.CANCEL else 0,
        created_at=now,
    )
    session.add(change)
    session.flush()
    details = {
        "change_request_id": change.id,
        "kind": kind.value,
        "inside_window": evaluation.inside_window,
        "fee_cents": change.fee_cents,
        "points": change.points,
    }
    late_without_approval = evaluation.inside_window and not evaluation.needs_approval
    if kind == ChangeKind.CANCEL and (evaluation.auto_accept or late_without_approval):
        change.status, change.decided_at = ChangeStatus.APPROVED, now
        change.decision_note = (
            "Accepted at once: inside the window, the policy needs no approval."
            if late_without_approval
            else "Accepted at once: outside the cancellation window."
        )
        cancel(
            session,
            actor,
            appointment,
            reason=change.reason or "Cancelled by the patient.",
            message="",
            by_patient=True,
            at=now,
            details={**details, "auto_accepted": True},
        )
        return change
    record(
        session,
        actor,
        appointment,
        Action.REQUEST_CHANGE,
        appointment.status,
        reason=change.reason,
        details=details,
    )
    return change


def approve_change(
    session: Session,
    actor: Actor,
    change_id: int,
    *,
    reason: str = "",
    message: str = "",
    start_at: datetime | None = None,
    provider_id: int | None = None,
    expected_version: int | None = None,
    allow_double_booking: bool = False,
    outside_hours_override: bool = False,
) -> Outcome:
    """Reschedule: move to the requested (or given) time. Cancel: cancel as the patient asked,
    assessed under the policy as it stood when they asked (the fee, or none, they were shown):
    the time a manager takes to approve never makes a cancellation late. The cancellation is
    dated from the request, so its notice agrees with that assessment."""
    ensure_allowed(actor, Action.APPROVE_CHANGE)
    change = _load_change(session, change_id, expected_version)
    appointment = load(session, change.appointment_id, Action.APPROVE_CHANGE, handled_if_moved=True)
    if change.kind == ChangeKind.CANCEL:
        _unmoved_since_asked(appointment, change)
    else:  # refused before anything is written
        target = start_at or change.requested_start_at
        if target is None:
            raise ValidationError("The patient asked only for a day; choose the exact new time.")
        left = appointment.provider
        if provider_id is None and left is not None and not left.active:
            raise ValidationError(
                f"{left.name} no longer works at the practice, so the new time cannot be kept "
                "with them. Propose a different time with another provider (the patient "
                "accepts it), or deny the request saying why."
            )
    change.status, change.decided_at = ChangeStatus.APPROVED, utcnow()
    change.decided_by_user_id, change.decision_note = actor.user_id, reason or None
    if change.kind == ChangeKind.CANCEL:
        return cancel(
            session,
            actor,
            appointment,
            reason=(reason or change.reason or "Cancelled at the patient's request."),
            message=message,
            by_patient=True,
            at=change.created_at,
            details={"change_request_id": change.id},
        )
    outcome = move(
        session,
        actor,
        appointment.id,
        Action.RESCHEDULE,
        start_at=target,
        provider_id=provider_id,
        tell=True,
        message=message,
        expected_version=None,
        allow_double_booking=allow_double_booking,
        outside_hours_override=outside_hours_override,
        extra={"change_request_id": change.id},
    )
    # the patient's other visits, once the new time is set (the desk's moves do not check them)
    patient_free(session, appointment, allow_double_booking or appointment.allow_double_booking)
    return outcome


def _unmoved_since_asked(appointment, change: ChangeRequest) -> None:
    """A cancellation is approved on the visit the patient asked to cancel: one the desk moved
    since would be assessed at its new time, which the patient was never shown (a late fee
    they were told they would not pay, or none where they were told of one)."""
    asked_for = change.original_start_at
    if asked_for is None or appointment.start_at == asked_for:
        return
    clinic = appointment.clinic
    raise Conflict(
        f"Appointment #{appointment.id} was moved from {clinic_time(clinic, asked_for)} to "
        f"{clinic_time(clinic, appointment.start_at)} after the patient asked to cancel it, so "
        "what they were told it would cost may no longer hold. Ask the patient: Deny this "
        "request to keep the new time, or cancel it from the appointment page."
    )


def deny_change(
    session: Session,
    actor: Actor,
    change_id: int,
    *,
    reason: str,
    message: str = "",
    expected_version: int | None = None,
) -> Outcome:
    """Keep the original appointment; the patient is told why."""
    ensure_allowed(actor, Action.DENY_CHANGE)
    reason = require_reason(reason, "refusal")
    change = _load_change(session, change_id, expected_version)
    appointment = load(session, change.appointment_id, Action.DENY_CHANGE, handled_if_moved=True)
    change.status, change.decided_at = ChangeStatus.DENIED, utcnow()
    change.decided_by_user_id, change.decision_note = actor.user_id, reason
    flush(session, appointment)
    record(
        session,
        actor,
        appointment,
        Action.DENY_CHANGE,
        appointment.status,
        reason=reason,
        message=message,
        details={"change_request_id": change.id},
    )
    queued = tell_patient(
        session, appointment, "change_request_denied", message=message, reason=reason
    )
    return outcome_of(appointment, queued)


def propose_for_change(
    session: Session,
    actor: Actor,
    change_id: int,
    *,
    provider_id: int | None = None,
    start_at: datetime,
    message: str = "",
    expected_version: int | None = None,
    allow_double_booking: bool = False,
    outside_hours_override: bool = False,
) -> Proposed:
    """Answer a change request with another time (→ tentative). Until the patient answers, the
    original time stays held for the booking (nobody else is booked with its provider, rooms or
    patient then: core.scheduling.availability.held); if they turn it down the original booking
    is restored. Returns the raw proposal link token."""
    ensure_allowed(actor, Action.PROPOSE_FOR_CHANGE)
    change = _load_change(session, change_id, expected_version)
    appointment = load(
        session, change.appointment_id, Action.PROPOSE_FOR_CHANGE, handled_if_moved=True
    )
    before, booked_at = appointment.status, appointment.start_at
    original = {
        "provider_id": appointment.provider_id,
        "start_at": appointment.start_at.isoformat(),
    }
    details = place(
        session,
        appointment,
        provider_id=provider_id or appointment.provider_id,
        start_at=start_at,
        allow_double_booking=allow_double_booking,
        outside_hours_override=outside_hours_override,
    )
    details.update(patient_free(session, appointment, allow_double_booking))
    details.update(original=original, change_request_id=change.id)
    appointment.status = S.TENTATIVE
    # the original time stays held for the booking until the patient answers (availability.held)
    change.original_start_at, change.original_provider_id = booked_at, original["provider_id"]
    change.status, change.decided_at = ChangeStatus.PROPOSED, utcnow()
    change.decided_by_user_id = actor.user_id
    flush(session, appointment)
    record(
        session,
        actor,
        appointment,
        Action.PROPOSE_FOR_CHANGE,
        before,
        message=message,
        details=details,
    )
    return send_proposal(session, appointment, message)
