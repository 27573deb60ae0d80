"""The appointment life cycle: the one place where status transitions are decided.

Every service here is one step of the state machine. It checks the permission, loads the
appointment (row-locked, version-checked), validates, changes it, writes exactly one audit event
on the appointment and queues the patient's notifications — all in the caller's transaction.

Choices worth knowing:
- A patient who declines a proposal for a *new request* puts the request back into the queue
  (tentative → requested) so the practice can offer another time; declining a proposal made in
  answer to a *change request* restores the original booking (tentative → scheduled).
- A practice-initiated cancellation records the policy version but charges nothing; a patient's
  cancellation (by_patient=True) is assessed under the policy (late flag, fee, points).
- Patients are told about every status change they did not cause (consent per channel is
  respected by core.notify; reminders being off does not matter). Check-in and completion are
  not messaged: the patient is at the desk.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from core import audit, notify, policy, tokens
from core.authz import Actor, Permission, ensure
from core.availability import (
    MAX_LENGTH,
    TIME_OF_DAY_LABELS,
    find_conflicts,
    lock_provider,
    working_hours_cover,
)
from core.checkin import confirmation_attachment
from core.clock import format_local, to_local
from core.errors import Conflict, InvalidTransition, NotFound, ValidationError
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentService,
    AppointmentStatus,
    AuditEvent,
    ChangeKind,
    ChangeRequest,
    ChangeStatus,
    Channel,
    Clinic,
    Patient,
    Provider,
    Service,
    Source,
    TimeOfDay,
    VisitMode,
)
from db.types import utcnow

S = AppointmentStatus
P = Permission
ENTITY = "appointment"
PROPOSAL_TTL = timedelta(days=7)
PAST_GRACE = timedelta(minutes=15)  # a booking may start this much before "now"


class Action(enum.StrEnum):
    REQUEST = "request"
    SCHEDULE = "schedule"
    APPROVE = "approve"
    DECLINE = "decline"
    PROPOSE = "propose"
    ACCEPT_PROPOSAL = "accept_proposal"
    DECLINE_PROPOSAL = "decline_proposal"
    RESCHEDULE = "reschedule"
    UPDATE = "update"
    CANCEL = "cancel"
    CHECK_IN = "check_in"
    COMPLETE = "complete"
    NO_SHOW = "no_show"
    REQUEST_CHANGE = "request_change"
    APPROVE_CHANGE = "approve_change"
    DENY_CHANGE = "deny_change"
    PROPOSE_FOR_CHANGE = "propose_for_change"


@dataclass(frozen=True)
class Rule:
    sources: frozenset[AppointmentStatus]
    target: AppointmentStatus | None  # None: the status stays as it is
    permission: Permission | None  # None: a patient through a verified link (or staff)
    verb: str  # "A completed appointment cannot be {verb}"


def _rule(sources, target, permission, verb) -> Rule:
    return Rule(frozenset(sources), target, permission, verb)


RULES: dict[Action, Rule] = {
    Action.REQUEST: _rule((), S.REQUESTED, P.APPOINTMENTS_BOOK, "requested"),
    Action.SCHEDULE: _rule((), S.SCHEDULED, P.APPOINTMENTS_BOOK, "booked"),
    Action.APPROVE: _rule((S.REQUESTED,), S.SCHEDULED, P.REQUESTS_DECIDE, "approved"),
    Action.DECLINE: _rule((S.REQUESTED, S.TENTATIVE), S.DECLINED, P.REQUESTS_DECIDE, "declined"),
    Action.PROPOSE: _rule((S.REQUESTED, S.TENTATIVE), S.TENTATIVE, P.REQUESTS_DECIDE, "proposed"),
    Action.ACCEPT_PROPOSAL: _rule((S.TENTATIVE,), S.SCHEDULED, None, "accepted"),
    Action.DECLINE_PROPOSAL: _rule((S.TENTATIVE,), S.REQUESTED, None, "turned down"),
    Action.RESCHEDULE: _rule((S.SCHEDULED,), S.SCHEDULED, P.APPOINTMENTS_RESCHEDULE, "moved"),
    Action.UPDATE: _rule((S.SCHEDULED,), S.SCHEDULED, P.APPOINTMENTS_RESCHEDULE, "updated"),
    Action.CANCEL: _rule(
        (S.REQUESTED, S.TENTATIVE, S.SCHEDULED), S.CANCELLED, P.APPOINTMENTS_CANCEL, "cancelled"
    ),
    Action.CHECK_IN: _rule((S.SCHEDULED,), S.CHECKED_IN, P.APPOINTMENTS_CHECK_IN, "checked in"),
    Action.COMPLETE: _rule(
        (S.SCHEDULED, S.CHECKED_IN), S.COMPLETED, P.APPOINTMENTS_CHECK_IN, "completed"
    ),
    Action.NO_SHOW: _rule((S.SCHEDULED,), S.NO_SHOW, P.APPOINTMENTS_CHECK_IN, "marked no-show"),
    Action.REQUEST_CHANGE: _rule((S.SCHEDULED,), None, None, "changed on request"),
    Action.APPROVE_CHANGE: _rule((S.SCHEDULED,), None, P.REQUESTS_DECIDE, "changed"),
    Action.DENY_CHANGE: _rule((S.SCHEDULED,), S.SCHEDULED, P.REQUESTS_DECIDE, "kept"),
    Action.PROPOSE_FOR_CHANGE: _rule((S.SCHEDULED,), S.TENTATIVE, P.REQUESTS_DECIDE, "proposed"),
}

# status → the statuses it may move to (derived from RULES, so the two cannot disagree)
TRANSITIONS: dict[AppointmentStatus, frozenset[AppointmentStatus]] = {
    status: frozenset(rule.target or status for rule in RULES.values() if status in rule.sources)
    | (frozenset({S.CANCELLED}) if status in RULES[Action.APPROVE_CHANGE].sources else frozenset())
    for status in AppointmentStatus
}
TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)

FHIR_STATUS = {
    S.REQUESTED: "proposed",
    S.TENTATIVE: "pending",
    S.SCHEDULED: "booked",
    S.CHECKED_IN: "arrived",
    S.COMPLETED: "fulfilled",
    S.NO_SHOW: "noshow",
    S.DECLINED: "cancelled",
    S.CANCELLED: "cancelled",
}

STATUS_WORDS = {
    S.REQUESTED: "requested",
    S.TENTATIVE: "tentative",
    S.SCHEDULED: "scheduled",
    S.CHECKED_IN: "checked-in",
    S.COMPLETED: "completed",
    S.NO_SHOW: "no-show",
    S.DECLINED: "declined",
    S.CANCELLED: "cancelled",
}
ACTION_LABELS = {
    Action.APPROVE: "approve",
    Action.DECLINE: "decline",
    Action.PROPOSE: "propose a time",
    Action.ACCEPT_PROPOSAL: "accept the proposal",
    Action.DECLINE_PROPOSAL: "turn down the proposal",
    Action.RESCHEDULE: "reschedule",
    Action.UPDATE: "update",
    Action.CANCEL: "cancel",
    Action.CHECK_IN: "check in",
    Action.COMPLETE: "complete",
    Action.NO_SHOW: "mark no-show",
}


def fhir_status(status: AppointmentStatus | str) -> str:
    """FHIR R4 Appointment.status for a ClinicDesk status (DESIGN.md's table)."""
    return FHIR_STATUS[AppointmentStatus(status)]


def _article(word: str) -> str:
    return "An" if word[0] in "aeiou" else "A"


def allowed_actions(status: AppointmentStatus, actor: Actor | None = None) -> list[Action]:
    """The actions a status allows (and, given an actor, that the actor may take)."""
    return [
        action
        for action, rule in RULES.items()
        if status in rule.sources
        and action in ACTION_LABELS
        and (actor is None or (rule.permission is not None and actor.can(rule.permission)))
    ]


def _check_transition(appointment: Appointment, action: Action) -> None:
    rule = RULES[action]
    if appointment.status in rule.sources:
        return
    words = STATUS_WORDS[appointment.status]
    message = f"{_article(words)} {words} appointment cannot be {rule.verb}."
    options = [ACTION_LABELS[a] for a in allowed_actions(appointment.status)]
    message += (
        f" What it allows: {', '.join(options)}." if options else " Nothing more can happen to it."
    )
    raise InvalidTransition(message)


def _ensure(actor: Actor, action: Action) -> None:
    permission = RULES[action].permission
    if permission is None:  # patient link paths: a signed-in user still needs the decide right
        if actor.role is not None:
            ensure(actor, P.REQUESTS_DECIDE)
        return
    ensure(actor, permission)


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Outcome:
    """What a transition did: the new status and version, and who was told what."""

    appointment_id: int
    status: AppointmentStatus
    version: int
    notified: list[str] = field(default_factory=list)  # "email to a@b" …
    skipped: list[str] = field(default_factory=list)  # why a channel was not used

    @property
    def summary(self) -> str:
        told = "; ".join(self.notified) or "nobody"
        text = f"Now {STATUS_WORDS[self.status]}. Notified: {told}."
        return text + (f" Not sent: {'; '.join(self.skipped)}." if self.skipped else "")


@dataclass(frozen=True)
class RowResult:
    id: int
    ok: bool
    message: str


# ---------------------------------------------------------------- loading and locking


def _latest_event(session: Session, appointment_id: int) -> AuditEvent | None:
    return session.scalar(
        select(AuditEvent)
        .where(AuditEvent.entity == ENTITY, AuditEvent.entity_id == appointment_id)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(1)
    )


def _handled_message(session: Session, appointment: Appointment) -> str:
    event = _latest_event(session, appointment.id)
    words = STATUS_WORDS[appointment.status]
    if event is None:
        return f"Appointment #{appointment.id} was changed meanwhile (now {words}). Reload it."
    when = format_local(event.at, appointment.clinic.timezone)
    return (
        f"Appointment #{appointment.id} was already handled by {event.actor_label} at {when} "
        f"(now {words}). Reload to see it."
    )


def _load(
    session: Session,
    appointment_id: int,
    action: Action,
    expected_version: int | None = None,
    *,
    handled_if_moved: bool = False,
) -> Appointment:
    """The appointment, row-locked on PostgreSQL (SQLite serialises writers), checked against
    the version the user saw and against the rules."""
    appointment = session.execute(
        select(Appointment)
        .where(Appointment.id == appointment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar()
    if appointment is None or appointment.kind != AppointmentKind.APPOINTMENT:
        raise NotFound(f"There is no appointment #{appointment_id}.")
    if expected_version is not None and appointment.version != expected_version:
        raise Conflict(_handled_message(session, appointment))
    if handled_if_moved and appointment.status not in RULES[action].sources:
        raise Conflict(_handled_message(session, appointment))
    _check_transition(appointment, action)
    return appointment


def _flush(session: Session, appointment: Appointment) -> None:
    """Write now, so a concurrent change surfaces here as a Conflict, not at commit."""
    try:
        session.flush()
    except StaleDataError:
        raise Conflict(
            f"Appointment #{appointment.id} was changed by someone else at the same moment. "
            "Reload it to see what was done."
        ) from None


# ---------------------------------------------------------------- helpers


def _base_url() -> str:
    from core.config import load_settings

    try:
        return load_settings().base_url
    except Exception:  # noqa: BLE001 - a link with the default address beats no message
        return "http://localhost:8501"


def _services_of(appointment: Appointment) -> list[Service]:
    if appointment.services:
        return [s.service for s in appointment.services]
    return [appointment.service] if appointment.service else []


def duration_of(appointment: Appointment) -> timedelta:
    minutes = sum(s.duration_minutes for s in _services_of(appointment))
    if not minutes and appointment.start_at and appointment.end_at:
        return appointment.end_at - appointment.start_at
    return timedelta(minutes=minutes or 30)


def when_text(appointment: Appointment) -> str:
    tz = appointment.clinic.timezone
    if appointment.start_at is not None:
        return format_local(appointment.start_at, tz, with_zone=True)
    if appointment.requested_day is not None:
        text = f"{appointment.requested_day:%a %d %b %Y}"
        if appointment.time_of_day:
            text += f", {TIME_OF_DAY_LABELS[appointment.time_of_day]}"
        return text
    return "a time to be agreed"


def _context(appointment: Appointment, *, message: str = "", **extra: Any) -> dict[str, Any]:
    clinic = appointment.clinic
    services = _services_of(appointment)
    context = {
        "clinic_name": clinic.name,
        "clinic_phone": clinic.phone,
        "when": when_text(appointment),
        "service_name": " + ".join(s.name for s in services) or "your appointment",
        "provider_name": appointment.provider.name if appointment.provider else "our team",
        "message": f"\n\nMessage from the practice: {message.strip()}" if message.strip() else "",
    }
    context.update(extra)
    return context


def _tell_patient(
    session: Session,
    appointment: Appointment,
    key: str,
    *,
    message: str = "",
    channels: list[Channel] | None = None,
    attachment: tuple[str, bytes] | None = None,
    subject: str | None = None,
    body: str | None = None,
    **extra: Any,
) -> notify.Queued:
    patient = appointment.patient
    if patient is None:
        return notify.Queued([], ["no patient on this appointment"])
    return notify.queue_for_patient(
        session,
        patient,
        key,
        _context(appointment, message=message, **extra),
        appointment_id=appointment.id,
        channels=channels,
        attachment=attachment,
        subject=subject,
        body=body,
    )


def _outcome(appointment: Appointment, queued: notify.Queued | None = None) -> Outcome:
    notified = [
        f"{n.channel.value} to {n.to_address}" for n in (queued.notifications if queued else [])
    ]
    return Outcome(appointment.id, appointment.status, appointment.version, notified,
                   list(queued.skipped) if queued else [])  # fmt: skip


def _record(
    session: Session,
    actor: Actor,
    appointment: Appointment,
    action: Action,
    from_status: AppointmentStatus | None,
    *,
    reason: str | None = None,
    message: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    audit.record(session, actor, action.value, ENTITY, appointment.id,
                 patient_id=appointment.patient_id,
                 from_status=from_status.value if from_status else None,
                 to_status=appointment.status.value, reason=reason or None,
                 message=message.strip() if message and message.strip() else None,
                 details=details)  # fmt: skip


def _aware(moment: datetime | None, name: str = "time") -> datetime:
    if moment is None:
        raise ValidationError(f"Choose a {name}.")
    if moment.tzinfo is None:
        raise ValidationError(f"The {name} needs a time zone (times are stored in UTC).")
    return moment.astimezone(UTC)


def _require_reason(reason: str | None, what: str) -> str:
    if not reason or not reason.strip():
        raise ValidationError(f"Give a reason for the {what}; the patient is told.")
    if len(reason) > 2000:
        raise ValidationError("Keep the reason under 2,000 characters.")
    return reason.strip()


def _place(
    session: Session,
    appointment: Appointment,
    *,
    provider_id: int,
    start_at: datetime,
    allow_double_booking: bool,
    outside_hours_override: bool,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Put the appointment at provider/start (duration from its services), refusing a past
    time, a time outside the provider's hours and a taken slot unless explicitly allowed.
    Returns the audit details worth keeping."""
    start_at = _aware(start_at, "start time")
    now = now or utcnow()
    if start_at < now - PAST_GRACE:
        raise ValidationError("That time has passed; choose a time in the future.")
    provider = session.get(Provider, provider_id)
    if provider is None or not provider.active:
        raise ValidationError("Choose an active provider.")
    end_at = start_at + duration_of(appointment)
    if end_at - start_at > MAX_LENGTH:
        raise ValidationError("An appointment can last at most 12 hours.")
    details: dict[str, Any] = {"provider_id": provider_id, "start_at": start_at.isoformat()}
    if not working_hours_cover(session, provider_id, appointment.clinic_id, start_at, end_at):
        if not outside_hours_override:
            tz = appointment.clinic.timezone
            raise ValidationError(
                f"{provider.name} is not working at {appointment.clinic.name} from "
                f"{format_local(start_at, tz)} to {format_local(end_at, tz)[-5:]} (or is on time "
                "off). Choose another time, or book outside working hours explicitly."
            )
        details["outside_hours_override"] = True
        appointment.outside_hours_override = True
    lock_provider(session, provider_id)
    conflicts = find_conflicts(session, provider_id, start_at, end_at, appointment.id)
    if conflicts:
        if not allow_double_booking:
            raise Conflict(_conflict_message(provider, conflicts))
        details["double_booked_with"] = [c.id for c in conflicts]
        appointment.allow_double_booking = True
    appointment.provider_id, appointment.provider = provider_id, provider
    appointment.start_at, appointment.end_at = start_at, end_at
    return details


def _conflict_message(provider: Provider, conflicts: list[Appointment]) -> str:
    first = conflicts[0]
    tz = first.clinic.timezone
    what = (
        "is out of office"
        if first.kind == AppointmentKind.OUT_OF_OFFICE
        else f"already has appointment #{first.id}"
    )
    more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
    return (
        f"{provider.name} {what} from {format_local(first.start_at, tz)} to "
        f"{format_local(first.end_at, tz)[-5:]}{more}. Choose another time or allow double "
        "booking for this appointment."
    )


def _confirm(session: Session, appointment: Appointment, *, message: str = "",
             channels=None, subject=None, body=None) -> notify.Queued:  # fmt: skip
    change = tokens.issue(session, "change", appointment.id,
                          max(appointment.start_at - utcnow(), timedelta(hours=1)), single_use=False)  # fmt: skip
    return _tell_patient(
        session, appointment, "appointment_scheduled", message=message, channels=channels,
        attachment=confirmation_attachment(session, appointment), subject=subject, body=body,
        link=tokens.link(_base_url(), "change", change.raw),
    )  # fmt: skip


# ---------------------------------------------------------------- requests


def request_appointment(
    session: Session,
    actor: Actor,
    *,
    patient_id: int,
    clinic_id: int,
    service_id: int,
    requested_day: date,
    time_of_day: TimeOfDay | str | None,
    notes: str = "",
    source: Source = Source.STAFF,
    start_at: datetime | None = None,
    provider_id: int | None = None,
    today: date | None = None,
) -> Appointment:
    """A booking request (staff on the phone, or online through a patient link)."""
    if actor.role is not None:  # online requests come through a patient link
        _ensure(actor, Action.REQUEST)
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise ValidationError("Choose a known patient (search by name, email or phone).")
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise ValidationError("Choose one of the practice's clinics.")
    service = session.get(Service, service_id)
    if service is None or not service.active:
        raise ValidationError("Choose a service the practice offers.")
    if not isinstance(requested_day, date) or isinstance(requested_day, datetime):
        raise ValidationError("Give the requested day as a date.")
    if time_of_day not in (None, ""):
        try:
            time_of_day = TimeOfDay(time_of_day)
        except ValueError:
            raise ValidationError(
                "The time of day must be early morning, morning, afternoon or evening."
            ) from None
    else:
        time_of_day = None
    local_today = today or to_local(utcnow(), clinic.timezone).date()
    if requested_day < local_today:
        raise ValidationError("The requested day has passed; choose today or a later day.")
    if len(notes) > 4000:
        raise ValidationError("Keep the notes under 4,000 characters.")
    appointment = Appointment(
        clinic_id=clinic.id, clinic=clinic, patient_id=patient.id, patient=patient,
        service_id=service.id, service=service, status=S.REQUESTED, requested_day=requested_day,
        time_of_day=time_of_day, notes=notes.strip(), source=Source(source),
        created_by_user_id=actor.user_id, booked_at=utcnow(), provider_id=provider_id,
    )  # fmt: skip
    appointment.services.append(AppointmentService(service_id=service.id, service=service))
    if start_at is not None:  # the patient asked for an exact time
        appointment.start_at = _aware(start_at, "requested time")
        appointment.end_at = appointment.start_at + timedelta(minutes=service.duration_minutes)
    session.add(appointment)
    session.flush()
    _record(session, actor, appointment, Action.REQUEST, None, message=notes or None)
    _tell_patient(session, appointment, "request_received")
    return appointment


def approve_request(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    provider_id: int,
    start_at: datetime,
    expected_version: int | None = None,
    message: str = "",
    allow_double_booking: bool = False,
    outside_hours_override: bool = False,
) -> Outcome:
    _ensure(actor, Action.APPROVE)
    appointment = _load(session, appointment_id, Action.APPROVE, expected_version,
                        handled_if_moved=True)  # fmt: skip
    before = appointment.status
    details = _place(session, appointment, provider_id=provider_id, start_at=start_at,
                     allow_double_booking=allow_double_booking,
                     outside_hours_override=outside_hours_override)  # fmt: skip
    appointment.status, appointment.decided_at = S.SCHEDULED, utcnow()
    _flush(session, appointment)
    _record(session, actor, appointment, Action.APPROVE, before, message=message, details=details)
    return _outcome(appointment, _confirm(session, appointment, message=message))


def decline_request(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    reason: str,
    message: str = "",
    expected_version: int | None = None,
) -> Outcome:
    _ensure(actor, Action.DECLINE)
    reason = _require_reason(reason, "decline")
    appointment = _load(session, appointment_id, Action.DECLINE, expected_version,
                        handled_if_moved=True)  # fmt: skip
    before = appointment.status
    appointment.status, appointment.decided_at = S.DECLINED, utcnow()
    appointment.decline_reason = reason
    _flush(session, appointment)
    _record(session, actor, appointment, Action.DECLINE, before, reason=reason, message=message)
    queued = _tell_patient(session, appointment, "appointment_declined", message=message,
                           reason=reason)  # fmt: skip
    return _outcome(appointment, queued)


def propose_time(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    provider_id: int,
    start_at: datetime,
    message: str = "",
    expected_version: int | None = None,
    allow_double_booking: bool = False,
    outside_hours_override: bool = False,
) -> str:
    """Offer a time (→ tentative); the patient answers through the returned link token."""
    _ensure(actor, Action.PROPOSE)
    appointment = _load(session, appointment_id, Action.PROPOSE, expected_version,
                        handled_if_moved=True)  # fmt: skip
    before = appointment.status
    details = _place(session, appointment, provider_id=provider_id, start_at=start_at,
                     allow_double_booking=allow_double_booking,
                     outside_hours_override=outside_hours_override)  # fmt: skip
    appointment.status = S.TENTATIVE
    _flush(session, appointment)
    _record(session, actor, appointment, Action.PROPOSE, before, message=message, details=details)
    return _send_proposal(session, appointment, message)


def _send_proposal(session: Session, appointment: Appointment, message: str) -> str:
    ttl = min(PROPOSAL_TTL, max(appointment.start_at - utcnow(), timedelta(hours=1)))
    issued = tokens.issue(session, "proposal", appointment.id, ttl)
    _tell_patient(session, appointment, "appointment_proposed", message=message,
                  link=tokens.link(_base_url(), "proposal", issued.raw))  # fmt: skip
    return issued.raw


def _open_change(session: Session, appointment_id: int, *statuses: ChangeStatus):
    return session.scalar(
        select(ChangeRequest)
        .where(ChangeRequest.appointment_id == appointment_id,
               ChangeRequest.status.in_(statuses or (ChangeStatus.OPEN,)))
        .order_by(ChangeRequest.id.desc())
        .limit(1)
    )  # fmt: skip


def respond_to_proposal(
    session: Session, actor: Actor, appointment_id: int, *, accept: bool
) -> Outcome:
    """The patient's answer to a tentative time (the caller verified the proposal link).
    Accept → scheduled (checked again for conflicts). Decline → back in the queue as a request,
    or, when the proposal answered a change request, back to the original booking."""
    action = Action.ACCEPT_PROPOSAL if accept else Action.DECLINE_PROPOSAL
    _ensure(actor, action)
    appointment = _load(session, appointment_id, action)
    before = appointment.status
    change = _open_change(session, appointment.id, ChangeStatus.PROPOSED)
    proposed_when = when_text(appointment)
    details: dict[str, Any] = {"change_request_id": change.id} if change else {}
    if accept:
        lock_provider(session, appointment.provider_id)
        conflicts = find_conflicts(session, appointment.provider_id, appointment.start_at,
                                   appointment.end_at, appointment.id)  # fmt: skip
        if conflicts and not appointment.allow_double_booking:
            raise Conflict("Sorry, this time has just been taken. Please contact the practice "
                           "for another one.")  # fmt: skip
        appointment.status, appointment.decided_at = S.SCHEDULED, utcnow()
        if change:
            change.status = ChangeStatus.APPROVED
            appointment.reschedule_count += 1
    elif change:  # restore the booking the patient had
        original = _proposal_original(session, appointment.id)
        appointment.start_at = change.original_start_at
        appointment.end_at = change.original_start_at + duration_of(appointment)
        if original.get("provider_id"):
            appointment.provider_id = original["provider_id"]
        appointment.status = S.SCHEDULED
        change.status = ChangeStatus.DENIED
        change.decision_note = "The patient turned down the proposed time."
    else:
        appointment.status = S.REQUESTED
    _flush(session, appointment)
    reason = None if accept else "The patient turned down the proposed time."
    _record(session, actor, appointment, action, before, reason=reason, details=details or None)
    notify.queue_to_address(session, Channel.EMAIL, appointment.clinic.email, "proposal_answered",
                            _context(appointment, when=proposed_when,
                                     patient_name=appointment.patient.full_name if appointment.patient else "",
                                     answer="accepted" if accept else "declined"))  # fmt: skip
    queued = _confirm(session, appointment) if appointment.status == S.SCHEDULED else None
    return _outcome(appointment, queued)


def _proposal_original(session: Session, appointment_id: int) -> dict[str, Any]:
    event = session.scalar(
        select(AuditEvent)
        .where(AuditEvent.entity == ENTITY, AuditEvent.entity_id == appointment_id,
               AuditEvent.action == Action.PROPOSE_FOR_CHANGE.value)
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )  # fmt: skip
    return (event.details or {}).get("original", {}) if event else {}


# ---------------------------------------------------------------- booking and moving


def schedule_appointment(
    session: Session,
    actor: Actor,
    *,
    patient_id: int | None,
    clinic_id: int,
    provider_id: int,
    service_ids: list[int],
    start_at: datetime,
    mode: VisitMode | str = VisitMode.IN_PERSON,
    notes: str = "",
    allow_double_booking: bool = False,
    outside_hours_override: bool = False,
    source: Source = Source.STAFF,
    kind: AppointmentKind = AppointmentKind.APPOINTMENT,
    notify_channels: list[Channel] | None = None,
    subject: str | None = None,
    body: str | None = None,
    end_at: datetime | None = None,
) -> Appointment:
    """Book in office. An out-of-office block needs no patient or service (give `end_at`).
    The returned appointment carries `notify_skipped` (why a channel was not used)."""
    _ensure(actor, Action.SCHEDULE)
    kind = AppointmentKind(kind)
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise ValidationError("Choose one of the practice's clinics.")
    services = [session.get(Service, sid) for sid in dict.fromkeys(service_ids or [])]
    if any(s is None or not s.active for s in services):
        raise ValidationError("Choose services the practice offers.")
    patient = session.get(Patient, patient_id) if patient_id is not None else None
    if kind == AppointmentKind.APPOINTMENT:
        if patient is None:
            raise ValidationError("Choose a known patient (search by name, email or phone).")
        if not services:
            raise ValidationError("Choose at least one service.")
    mode = VisitMode(mode)
    if mode == VisitMode.VIRTUAL and not all(s.virtual_allowed for s in services):
        names = ", ".join(s.name for s in services if not s.virtual_allowed)
        raise ValidationError(f"{names} cannot be done virtually; choose in person.")
    appointment = Appointment(
        clinic_id=clinic.id, clinic=clinic, patient_id=patient.id if patient else None,
        patient=patient, service_id=services[0].id if services else None,
        service=services[0] if services else None, kind=kind, mode=mode, status=S.SCHEDULED,
        notes=(notes or "").strip(), source=Source(source), created_by_user_id=actor.user_id,
        booked_at=utcnow(), decided_at=utcnow(),
    )  # fmt: skip
    for position, service in enumerate(services):
        appointment.services.append(
            AppointmentService(service_id=service.id, service=service, position=position)
        )
    session.add(appointment)
    session.flush()
    if kind == AppointmentKind.OUT_OF_OFFICE:
        start_at, end_at = _aware(start_at, "start time"), _aware(end_at, "end time")
        if not start_at < end_at <= start_at + MAX_LENGTH:
            raise ValidationError("An out-of-office block lasts between 1 minute and 12 hours.")
        appointment.provider_id, appointment.start_at, appointment.end_at = (
            provider_id,
            start_at,
            end_at,
        )
        details = {"provider_id": provider_id, "start_at": start_at.isoformat()}
    else:
        details = _place(session, appointment, provider_id=provider_id, start_at=start_at,
                         allow_double_booking=allow_double_booking,
                         outside_hours_override=outside_hours_override)  # fmt: skip
    session.flush()
    _record(session, actor, appointment, Action.SCHEDULE, None, details=details)
    queued = (
        _confirm(session, appointment, channels=notify_channels, subject=subject, body=body)
        if patient
        else None
    )
    appointment.notify_skipped = list(queued.skipped) if queued else []
    return appointment


def reschedule(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    start_at: datetime,
    provider_id: int | None = None,
    notify: bool = True,
    message: str = "",
    expected_version: int | None = None,
    allow_double_booking: bool = False,
    outside_hours_override: bool = False,
) -> Outcome:
    """Move a scheduled appointment (the patient agreed, e.g. on the phone) and tell them."""
    return _move(session, actor, appointment_id, Action.RESCHEDULE, start_at=start_at,
                 provider_id=provider_id, tell=notify, message=message,
                 expected_version=expected_version, allow_double_booking=allow_double_booking,
                 outside_hours_override=outside_hours_override)  # fmt: skip


def update_appointment(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    start_at: datetime | None = None,
    provider_id: int | None = None,
    notes: str | None = None,
    message: str = "",
    expected_version: int | None = None,
    allow_double_booking: bool = False,
    outside_hours_override: bool = False,
) -> Outcome:
    """Change time, provider or notes directly without asking the patient; they are informed."""
    return _move(session, actor, appointment_id, Action.UPDATE, start_at=start_at,
                 provider_id=provider_id, tell=True, message=message, notes=notes,
                 expected_version=expected_version, allow_double_booking=allow_double_booking,
                 outside_hours_override=outside_hours_override)  # fmt: skip


def _move(session, actor, appointment_id, action, *, start_at, provider_id, tell, message,
          expected_version, allow_double_booking, outside_hours_override, notes=None,
          extra: dict | None = None) -> Outcome:  # fmt: skip
    _ensure(actor, action)
    appointment = _load(session, appointment_id, action, expected_version)
    before, previous = appointment.status, when_text(appointment)
    old = {"provider_id": appointment.provider_id,
           "start_at": appointment.start_at.isoformat() if appointment.start_at else None}  # fmt: skip
    details = _place(session, appointment, provider_id=provider_id or appointment.provider_id,
                     start_at=start_at or appointment.start_at,
                     allow_double_booking=allow_double_booking or appointment.allow_double_booking,
                     outside_hours_override=outside_hours_override)  # fmt: skip
    details["previous"] = old
    details.update(extra or {})
    if notes is not None:
        appointment.notes = notes.strip()
    if action == Action.RESCHEDULE:
        appointment.reschedule_count += 1
    _flush(session, appointment)
    _record(session, actor, appointment, action, before, message=message, details=details)
    key = "appointment_rescheduled" if action == Action.RESCHEDULE else "appointment_updated"
    queued = (
        _tell_patient(session, appointment, key, message=message, previous_when=previous)
        if tell
        else None
    )
    return _outcome(appointment, queued)


def cancel_appointment(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    reason: str,
    message: str = "",
    by_patient: bool = False,
    expected_version: int | None = None,
    at: datetime | None = None,
) -> Outcome:
    """Cancel. A patient's cancellation is assessed under the policy in force (late flag, fee,
    points); the practice's own cancellation records the policy version and charges nothing."""
    _ensure(actor, Action.CANCEL)
    reason = _require_reason(reason, "cancellation")
    appointment = _load(session, appointment_id, Action.CANCEL, expected_version)
    return _cancel(session, actor, appointment, reason=reason, message=message,
                   by_patient=by_patient, at=at)  # fmt: skip


def _cancel(session, actor, appointment, *, reason, message, by_patient, at=None,
            details=None) -> Outcome:  # fmt: skip
    before = appointment.status
    now = at or utcnow()
    evaluation = policy.evaluate(session, appointment, now)
    fee_text = ""
    if by_patient and before == S.SCHEDULED:
        entries = policy.assess_cancellation(session, appointment, evaluation)
        fee = sum(e.amount_cents or 0 for e in entries)
        points = sum(e.points or 0 for e in entries)
        if fee:
            fee_text += f"\nA late-cancellation fee of {fee / 100:.2f} applies."
        if points:
            fee_text += f"\n{points} points were deducted."
    else:
        appointment.policy_id = evaluation.policy_id
        appointment.late_cancellation = False
    appointment.status = S.CANCELLED
    appointment.cancelled_at = now
    appointment.cancelled_by = "patient" if by_patient else actor.name
    appointment.cancel_reason = reason
    _flush(session, appointment)
    record = {"by_patient": by_patient, "late": appointment.late_cancellation,
              "policy_id": appointment.policy_id, **(details or {})}  # fmt: skip
    _record(session, actor, appointment, Action.CANCEL, before, reason=reason, message=message,
            details=record)  # fmt: skip
    queued = _tell_patient(session, appointment, "appointment_cancelled", message=message,
                           reason=reason, fee=fee_text)  # fmt: skip
    return _outcome(appointment, queued)


# ---------------------------------------------------------------- the day itself


def check_in(session: Session, actor: Actor, appointment_id: int, *,
             expected_version: int | None = None) -> Outcome:  # fmt: skip
    _ensure(actor, Action.CHECK_IN)
    appointment = _load(session, appointment_id, Action.CHECK_IN, expected_version)
    before = appointment.status
    appointment.status, appointment.checked_in_at = S.CHECKED_IN, utcnow()
    _flush(session, appointment)
    _record(session, actor, appointment, Action.CHECK_IN, before)
    return _outcome(appointment)


def _require_started(appointment: Appointment, now: datetime, rule: str) -> None:
    if appointment.start_at > now:
        starts = format_local(appointment.start_at, appointment.clinic.timezone)
        raise InvalidTransition(f"This visit starts at {starts}; {rule}.")


def complete(session: Session, actor: Actor, appointment_id: int, *,
             expected_version: int | None = None, now: datetime | None = None) -> Outcome:  # fmt: skip
    _ensure(actor, Action.COMPLETE)
    appointment = _load(session, appointment_id, Action.COMPLETE, expected_version)
    now = now or utcnow()
    _require_started(appointment, now, "it can be completed once it is due")
    before = appointment.status
    appointment.status, appointment.completed_at = S.COMPLETED, now
    _flush(session, appointment)
    _record(session, actor, appointment, Action.COMPLETE, before)
    return _outcome(appointment)


def mark_no_show(session: Session, actor: Actor, appointment_id: int, *,
                 expected_version: int | None = None, now: datetime | None = None) -> Outcome:  # fmt: skip
    _ensure(actor, Action.NO_SHOW)
    appointment = _load(session, appointment_id, Action.NO_SHOW, expected_version)
    now = now or utcnow()
    _require_started(appointment, now, "a no-show can only be recorded after it started")
    before = appointment.status
    appointment.status = S.NO_SHOW
    entries = policy.assess_no_show(session, appointment)
    _flush(session, appointment)
    fee = sum(e.amount_cents or 0 for e in entries)
    _record(session, actor, appointment, Action.NO_SHOW, before,
            details={"fee_cents": fee, "points": sum(e.points or 0 for e in entries)})  # fmt: skip
    queued = _tell_patient(session, appointment, "appointment_no_show",
                           fee=f"\nA no-show fee of {fee / 100:.2f} applies." if fee else "")  # fmt: skip
    return _outcome(appointment, queued)


# ---------------------------------------------------------------- change requests


def _load_change(session: Session, change_id: int, expected_version: int | None) -> ChangeRequest:
    change = session.execute(
        select(ChangeRequest).where(ChangeRequest.id == change_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar()  # fmt: skip
    if change is None:
        raise NotFound(f"There is no change request #{change_id}.")
    stale = expected_version is not None and change.version != expected_version
    if stale or change.status != ChangeStatus.OPEN:
        appointment = change.appointment
        event = _latest_event(session, appointment.id)
        who = (f" by {event.actor_label} at {format_local(event.at, appointment.clinic.timezone)}"
               if event else "")  # fmt: skip
        raise Conflict(f"This change request was already handled{who} "
                       f"(now {change.status.value}). Reload to see it.")  # fmt: skip
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
    kind = ChangeKind(kind)
    appointment = _load(session, appointment_id, Action.REQUEST_CHANGE)
    if _open_change(session, appointment.id, ChangeStatus.OPEN, ChangeStatus.PROPOSED):
        raise ValidationError("There is already an open request for this appointment; "
                              "the practice will answer it first.")  # fmt: skip
    now = now or utcnow()
    evaluation = policy.evaluate(session, appointment, now)
    if kind == ChangeKind.RESCHEDULE:
        if requested_start_at is None and requested_day is None:
            raise ValidationError("Give the new time or at least the day you would prefer.")
        if requested_start_at is not None and _aware(requested_start_at) < now:
            raise ValidationError("The new time has passed; choose a later one.")
        if appointment.reschedule_count >= evaluation.max_reschedules:
            raise ValidationError(
                f"This appointment was moved {appointment.reschedule_count} times already, the "
                "most the policy allows online. Please call the practice."
            )
    elif actor.role is None and not evaluation.online_allowed:
        raise ValidationError("Cancelling online is not possible for this appointment; "
                              "please call the practice.")  # fmt: skip
    change = ChangeRequest(
        appointment_id=appointment.id, appointment=appointment, kind=kind,
        original_start_at=appointment.start_at,
        requested_start_at=_aware(requested_start_at) if requested_start_at else None,
        requested_day=requested_day, time_of_day=TimeOfDay(time_of_day) if time_of_day else None,
        reason=(reason or "").strip(), inside_window=evaluation.inside_window,
        fee_cents=evaluation.fee_cents if kind == ChangeKind.CANCEL else 0,
        points=evaluation.points if kind == ChangeKind.CANCEL else 0, created_at=now,
    )  # fmt: skip
    session.add(change)
    session.flush()
    details = {"change_request_id": change.id, "kind": kind.value,
               "inside_window": evaluation.inside_window, "fee_cents": change.fee_cents,
               "points": change.points}  # fmt: skip
    if kind == ChangeKind.CANCEL and evaluation.auto_accept:
        change.status, change.decided_at = ChangeStatus.APPROVED, now
        change.decision_note = "Accepted at once: outside the cancellation window."
        _cancel(session, actor, appointment, reason=change.reason or "Cancelled by the patient.",
                message="", by_patient=True, at=now,
                details={**details, "auto_accepted": True})  # fmt: skip
        return change
    _record(session, actor, appointment, Action.REQUEST_CHANGE, appointment.status,
            reason=change.reason, details=details)  # fmt: skip
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
    assessed under the policy."""
    _ensure(actor, Action.APPROVE_CHANGE)
    change = _load_change(session, change_id, expected_version)
    appointment = _load(session, change.appointment_id, Action.APPROVE_CHANGE)
    change.status, change.decided_at = ChangeStatus.APPROVED, utcnow()
    change.decided_by_user_id, change.decision_note = actor.user_id, reason or None
    if change.kind == ChangeKind.CANCEL:
        return _cancel(session, actor, appointment,
                       reason=(reason or change.reason or "Cancelled at the patient's request."),
                       message=message, by_patient=True,
                       details={"change_request_id": change.id})  # fmt: skip
    target = start_at or change.requested_start_at
    if target is None:
        raise ValidationError("The patient asked only for a day; choose the exact new time.")
    outcome = _move(session, actor, appointment.id, Action.RESCHEDULE, start_at=target,
                    provider_id=provider_id, tell=True, message=message, expected_version=None,
                    allow_double_booking=allow_double_booking,
                    outside_hours_override=outside_hours_override,
                    extra={"change_request_id": change.id})  # fmt: skip
    return outcome


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
    _ensure(actor, Action.DENY_CHANGE)
    reason = _require_reason(reason, "refusal")
    change = _load_change(session, change_id, expected_version)
    appointment = _load(session, change.appointment_id, Action.DENY_CHANGE)
    change.status, change.decided_at = ChangeStatus.DENIED, utcnow()
    change.decided_by_user_id, change.decision_note = actor.user_id, reason
    _flush(session, appointment)
    _record(session, actor, appointment, Action.DENY_CHANGE, appointment.status, reason=reason,
            message=message, details={"change_request_id": change.id})  # fmt: skip
    queued = _tell_patient(session, appointment, "change_request_denied", message=message,
                           reason=reason)  # fmt: skip
    return _outcome(appointment, queued)


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
) -> str:
    """Answer a change request with another time (→ tentative). If the patient turns it down
    the original booking is restored. Returns the raw proposal link token."""
    _ensure(actor, Action.PROPOSE_FOR_CHANGE)
    change = _load_change(session, change_id, expected_version)
    appointment = _load(session, change.appointment_id, Action.PROPOSE_FOR_CHANGE)
    before = appointment.status
    original = {"provider_id": appointment.provider_id,
                "start_at": appointment.start_at.isoformat()}  # fmt: skip
    details = _place(session, appointment, provider_id=provider_id or appointment.provider_id,
                     start_at=start_at, allow_double_booking=allow_double_booking,
                     outside_hours_override=outside_hours_override)  # fmt: skip
    details.update(original=original, change_request_id=change.id)
    appointment.status = S.TENTATIVE
    change.status, change.decided_at = ChangeStatus.PROPOSED, utcnow()
    change.decided_by_user_id = actor.user_id
    _flush(session, appointment)
    _record(session, actor, appointment, Action.PROPOSE_FOR_CHANGE, before, message=message,
            details=details)  # fmt: skip
    return _send_proposal(session, appointment, message)


# ---------------------------------------------------------------- bulk


def _exact_free_provider(session: Session, appointment: Appointment) -> int:
    if appointment.start_at is None:
        raise ValidationError("The patient gave no exact time; approve it on its own with a time.")
    end_at = appointment.start_at + duration_of(appointment)
    if appointment.provider_id:
        candidates = [appointment.provider_id]
    else:
        from db.models import WorkingHours

        candidates = list(session.scalars(
            select(WorkingHours.provider_id).join(Provider)
            .where(WorkingHours.clinic_id == appointment.clinic_id, Provider.active.is_(True))
            .distinct().order_by(WorkingHours.provider_id)
        ))  # fmt: skip
    for provider_id in candidates:
        if working_hours_cover(session, provider_id, appointment.clinic_id,
                               appointment.start_at, end_at) and not find_conflicts(
            session, provider_id, appointment.start_at, end_at, appointment.id
        ):  # fmt: skip
            return provider_id
    raise Conflict("No provider is free and working at the requested time.")


def bulk_approve(session: Session, actor: Actor, appointment_ids: list[int]) -> list[RowResult]:
    """Approve each request whose requested time is exact and free; each row in its own
    savepoint, so one refusal does not undo the others."""
    ensure(actor, P.REQUESTS_DECIDE)
    results = []
    for appointment_id in appointment_ids:
        try:
            with session.begin_nested():
                appointment = _load(session, appointment_id, Action.APPROVE,
                                    handled_if_moved=True)  # fmt: skip
                provider_id = _exact_free_provider(session, appointment)
                outcome = approve_request(session, actor, appointment_id,
                                          provider_id=provider_id, start_at=appointment.start_at)  # fmt: skip
            results.append(RowResult(appointment_id, True, f"Approved. {outcome.summary}"))
        except (ValidationError, Conflict, InvalidTransition, NotFound) as error:
            results.append(RowResult(appointment_id, False, str(error)))
    return results


def bulk_decline(
    session: Session, actor: Actor, appointment_ids: list[int], reason: str, message: str = ""
) -> list[RowResult]:
    ensure(actor, P.REQUESTS_DECIDE)
    reason = _require_reason(reason, "decline")
    results = []
    for appointment_id in appointment_ids:
        try:
            with session.begin_nested():
                outcome = decline_request(session, actor, appointment_id, reason=reason,
                                          message=message)  # fmt: skip
            results.append(RowResult(appointment_id, True, f"Declined. {outcome.summary}"))
        except (ValidationError, Conflict, InvalidTransition, NotFound) as error:
            results.append(RowResult(appointment_id, False, str(error)))
    return results


def count_audit_events(session: Session, appointment_id: int) -> int:
    """How many audit events an appointment has (tests and the detail page use it)."""
    return session.scalar(
        select(func.count()).select_from(AuditEvent)
        .where(AuditEvent.entity == ENTITY, AuditEvent.entity_id == appointment_id)
    )  # fmt: skip
