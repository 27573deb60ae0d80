"""Bulk decisions: approve several requests with an exact free time, decline several with one
reason; one savepoint per row, results row by row.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.authz import Actor, ensure
from core.kernel.errors import Conflict, InvalidTransition, NotFound, ValidationError
from core.kernel.money import clinic_time_range
from core.practice.skills import able
from core.practice.timing import timing_of
from core.requests.decisions import approve_request, decline_request
from core.scheduling.availability import (
    away_span,
    find_conflicts,
    working_hours_cover,
)
from core.scheduling.lifecycle import RowResult, duration_of, load, require_reason, services_of
from core.scheduling.states import Action, P
from db.models import (
    Appointment,
    Provider,
    TimeOff,
    VisitMode,
    WorkingHours,
)

# ---------------------------------------------------------------- bulk


def _exact_free_provider(session: Session, appointment: Appointment) -> int:
    if appointment.start_at is None:
        raise ValidationError("The patient gave no exact time; approve it on its own with a time.")
    end_at = appointment.start_at + duration_of(appointment)
    before, after = timing_of(services_of(appointment)).padding
    if appointment.provider_id:
        candidates = [appointment.provider_id]
    else:  # who works at the clinic and performs the visit (core.practice.skills)
        working = session.scalars(
            select(WorkingHours.provider_id)
            .join(Provider)
            .where(WorkingHours.clinic_id == appointment.clinic_id, Provider.active.is_(True))
            .distinct()
            .order_by(WorkingHours.provider_id)
        ).all()
        performing = able(session, working, [s.id for s in services_of(appointment)])
        candidates = [p for p in working if p in performing]
    # the booking rule's own arguments (lifecycle.place): the visit's buffers kept clear of
    # time off, and no travel time between clinics around a video visit
    away = _away(session, candidates, *away_span(appointment.start_at, end_at, before, after))
    for provider_id in candidates:
        if (
            provider_id not in away
            and working_hours_cover(
                session,
                provider_id,
                appointment.clinic_id,
                appointment.start_at,
                end_at,
                before=before,
                after=after,
            )
            and not find_conflicts(
                session,
                provider_id,
                appointment.start_at,
                end_at,
                appointment.id,
                before=before,
                after=after,
                clinic_id=appointment.clinic_id,
                virtual=appointment.mode == VisitMode.VIRTUAL,
            )
        ):
            return provider_id
    clinic = appointment.clinic
    if appointment.provider_id in away:  # the provider asked for: the time off is why
        off = away[appointment.provider_id]
        when = clinic_time_range(clinic, off.starts_at, off.ends_at)
        asked = clinic_time_range(clinic, appointment.start_at, end_at)
        name = session.get(Provider, off.provider_id).name
        raise Conflict(
            f"{name} is on time off {when}, and the patient asked for {asked} with "
            "them: approve it on its own with another provider or time, or decline it."
        )
    names = ", ".join(sorted(session.get(Provider, pid).name for pid in away))
    raise Conflict(
        "No provider is free and working at the requested time"
        + (f" ({names} on time off then)." if names else ".")
    )


def _away(session: Session, provider_ids: list[int], start_at, end_at) -> dict[int, TimeOff]:
    """The candidates on time off touching [start_at, end_at), the visit and its buffers
    (availability.away_span: the booking rule refuses them even outside the hours,
    core.scheduling.lifecycle.place), each with its first time off."""
    found: dict[int, TimeOff] = {}
    for off in session.scalars(
        select(TimeOff)
        .where(
            TimeOff.provider_id.in_(provider_ids),
            TimeOff.starts_at < end_at,
            TimeOff.ends_at > start_at,
        )
        .order_by(TimeOff.starts_at)
    ):
        found.setdefault(off.provider_id, off)
    return found


def bulk_approve(session: Session, actor: Actor, appointment_ids: list[int]) -> list[RowResult]:
    """Approve each request whose requested time is exact and free; each row in its own
    savepoint, so one refusal does not undo the others."""
    ensure(actor, P.REQUESTS_DECIDE)
    results = []
    for appointment_id in appointment_ids:
        try:
            with session.begin_nested():
                appointment = load(session, appointment_id, Action.APPROVE, handled_if_moved=True)
                provider_id = _exact_free_provider(session, appointment)
                outcome = approve_request(
                    session,
                    actor,
                    appointment_id,
                    provider_id=provider_id,
                    start_at=appointment.start_at,
                )
            results.append(RowResult(appointment_id, True, f"Approved. {outcome.summary}"))
        except (ValidationError, Conflict, InvalidTransition, NotFound) as error:
            results.append(RowResult(appointment_id, False, str(error)))
    return results


def bulk_decline(
    session: Session, actor: Actor, appointment_ids: list[int], reason: str, message: str = ""
) -> list[RowResult]:
    ensure(actor, P.REQUESTS_DECIDE)
    reason = require_reason(reason, "decline")
    results = []
    for appointment_id in appointment_ids:
        try:
            with session.begin_nested():
                outcome = decline_request(
                    session, actor, appointment_id, reason=reason, message=message
                )
            results.append(RowResult(appointment_id, True, f"Declined. {outcome.summary}"))
        except (ValidationError, Conflict, InvalidTransition, NotFound) as error:
            results.append(RowResult(appointment_id, False, str(error)))
    return results
