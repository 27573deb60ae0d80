"""Booking requests: a patient's request, and the practice's approval, decline or proposal,
and the patient's answer to a proposal.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.kernel import tokens
from core.kernel.authz import Actor
from core.kernel.clock import local_today
from core.kernel.errors import Conflict, ValidationError
from core.kernel.money import clinic_time_range, format_day
from core.messaging import clinic_events, notify
from core.patients import merge
from core.practice.packages import package_services
from core.practice.timing import timing_of
from core.scheduling.availability import (
    time_of_day_label,
    time_off_during,
)
from core.scheduling.lifecycle import (
    Outcome,
    aware,
    base_url,
    confirm,
    duration_of,
    flush,
    load,
    message_context,
    outcome_of,
    place,
    record,
    require_reason,
    services_of,
    tell_patient,
    when_text,
)
from core.scheduling.moves import PatientBusy, cancel, own_visit, patient_free
from core.scheduling.notes import append_note
from core.scheduling.openings import appointment_freed
from core.scheduling.states import ENTITY, PROPOSAL_TTL, Action, S, ensure_allowed
from db.models import (
    Appointment,
    AppointmentService,
    AuditEvent,
    ChangeRequest,
    ChangeStatus,
    Clinic,
    LinkToken,
    Patient,
    Provider,
    Service,
    Source,
    TimeOfDay,
    TimeOff,
)
from db.types import utcnow

# ---------------------------------------------------------------- requests


def choice(kind: type[StrEnum], value: Any, what: str) -> Any:
    """`value` as one of `kind`'s members, or a ValidationError naming the accepted values (the
    forms offer only those, but the portal, links and the CLI call these services too)."""
    try:
        return kind(value)
    except ValueError:
        accepted = ", ".join(member.value for member in kind)
        raise ValidationError(f"{what} must be one of {accepted}, not {value!r}.") from None


def request_appointment(
    session: Session,
    actor: Actor,
    *,
    patient_id: int,
    clinic_id: int,
    service_id: int | None = None,
    package_id: int | None = None,
    requested_day: date,
    time_of_day: TimeOfDay | str | None,
    notes: str = "",
    source: Source = Source.STAFF,
    start_at: datetime | None = None,
    provider_id: int | None = None,
    now: datetime | None = None,
) -> Appointment:
    """A booking request (staff on the phone, or online through a patient link) for a service
    or a package (its services, booked as one)."""
    if actor.role is not None:  # online requests come through a patient link
        ensure_allowed(actor, Action.REQUEST)
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise ValidationError("Choose a known patient (search by name, email or phone).")
    if actor.role is None:  # the patient, through a link kept from before a merge: the record kept
        patient = merge.current_record(session, patient)
    merge.refuse_merged(patient, "request an appointment for")
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise ValidationError("Choose one of the practice's clinics.")
    package = None
    if package_id is not None:
        package, services = package_services(session, package_id)
    else:
        service = session.get(Service, service_id) if service_id is not None else None
        if service is None or not service.active:
            raise ValidationError("Choose a service the practice offers.")
        services = [service]
    if not isinstance(requested_day, date) or isinstance(requested_day, datetime):
        raise ValidationError("Give the requested day as a date.")
    time_of_day = (
        None if time_of_day in (None, "") else choice(TimeOfDay, time_of_day, "The time of day")
    )
    source = choice(Source, source, "The request's source")
    if requested_day < local_today(clinic.timezone, now):
        raise ValidationError("The requested day has passed; choose today or a later day.")
    if len(notes) > 4000:
        raise ValidationError("Keep the notes under 4,000 characters.")
    exact = aware(start_at, "requested time") if start_at is not None else None
    _not_asked_already(
        session, actor, patient, clinic, services[0], package, requested_day, time_of_day, exact
    )
    appointment = Appointment(
        clinic_id=clinic.id,
        clinic=clinic,
        patient_id=patient.id,
        patient=patient,
        service_id=services[0].id,
        service=services[0],
        package_id=package.id if package else None,
        package=package,
        status=S.REQUESTED,
        requested_day=requested_day,
        time_of_day=time_of_day,
        notes=notes.strip(),
        source=source,
        created_by_user_id=actor.user_id,
        booked_at=utcnow(),
        provider_id=provider_id,
    )
    for position, service in enumerate(services):
        appointment.services.append(
            AppointmentService(service_id=service.id, service=service, position=position)
        )
    if exact is not None:  # the patient asked for an exact time
        appointment.start_at = exact
        appointment.end_at = appointment.start_at + duration_of(appointment)
    session.add(appointment)
    session.flush()
    append_note(session, appointment, actor, notes)  # the request's note, by whoever asked
    record(session, actor, appointment, Action.REQUEST, None, message=notes or None)
    acknowledge(session, appointment)
    return appointment


def acknowledge(session: Session, appointment: Appointment) -> notify.Queued:
    """Tell the request's patient it arrived, on each channel their record takes: as it is
    made, and for a request moved to a new record before its acknowledgement went
    (core.requests.flags), written for that record's patient."""
    return tell_patient(session, appointment, "request_received")


class AlreadyAsked(ValidationError):
    """The same request is already waiting (_not_asked_already). The public booking link
    answers it as any request (core.portal.patient_links.submit_booking): whoever typed a
    patient's address must not learn that it is one, nor what they asked for."""


def _not_asked_already(
    session, actor, patient, clinic, service, package, requested_day, time_of_day, start_at
) -> None:
    """Refuse the same request twice (a double press, or asking again before the practice has
    answered): the same patient, clinic, service or package, day, time of day and exact time,
    still waiting for a decision (or, proposed, for the patient's answer). Approving both would
    book the patient twice."""

    def same(column, value):
        return column.is_(None) if value is None else column == value

    # two presses at once wait for each other here (PostgreSQL; SQLite's writer is serialised)
    session.execute(select(Patient.id).where(Patient.id == patient.id).with_for_update())
    found = session.execute(
        select(Appointment.id, Appointment.status)
        .where(
            Appointment.patient_id == patient.id,
            Appointment.clinic_id == clinic.id,
            Appointment.status.in_((S.REQUESTED, S.TENTATIVE)),
            Appointment.requested_day == requested_day,
            Appointment.service_id == service.id,
            same(Appointment.package_id, package.id if package else None),
            same(Appointment.time_of_day, time_of_day),
            # a proposal's start is the practice's time, not the one asked for
            or_(Appointment.status == S.TENTATIVE, same(Appointment.start_at, start_at)),
        )
        .order_by(Appointment.id)
        .limit(1)
    ).first()
    if found is None:
        return
    waiting, status = found
    what = package.name if package else service.name
    asked = format_day(requested_day, clinic.locale)
    if time_of_day:
        asked += f", {time_of_day_label(time_of_day, clinic.locale, in_text=True)}"
    if actor.role is None:
        call = f"call us on {clinic.phone}" if clinic.phone else "call us"
        raise AlreadyAsked(
            f"You have already asked for {what} on {asked}: this request was not sent again. "
            + (
                f"We have proposed a time for it: please answer through the link we sent you, "
                f"or {call}."
                if status == S.TENTATIVE
                else f"The practice will answer it soon; to change it, {call}."
            )
        )
    raise AlreadyAsked(
        f"{patient.full_name} already asked for {what} on {asked} (request #{waiting}, "
        f"waiting in the queue): this one was not added. Open #{waiting} to decide on it or "
        "change it."
    )


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
    ensure_allowed(actor, Action.APPROVE)
    appointment = load(
        session, appointment_id, Action.APPROVE, expected_version, handled_if_moved=True
    )
    before = appointment.status
    details = place(
        session,
        appointment,
        provider_id=provider_id,
        start_at=start_at,
        allow_double_booking=allow_double_booking,
        outside_hours_override=outside_hours_override,
    )
    details.update(patient_free(session, appointment, allow_double_booking))
    appointment.status, appointment.decided_at = S.SCHEDULED, utcnow()
    flush(session, appointment)
    record(session, actor, appointment, Action.APPROVE, before, message=message, details=details)
    return outcome_of(appointment, confirm(session, appointment, message=message))


def decline_request(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    reason: str,
    message: str = "",
    expected_version: int | None = None,
) -> Outcome:
    ensure_allowed(actor, Action.DECLINE)
    reason = require_reason(reason, "decline")
    appointment = load(
        session, appointment_id, Action.DECLINE, expected_version, handled_if_moved=True
    )
    before = appointment.status
    _forget_ask(appointment)  # a proposal declined by the practice gives nothing back
    change = open_change(session, appointment.id, ChangeStatus.PROPOSED)
    if before == S.TENTATIVE and change is not None:  # the proposal answered a change request
        return _keep_original(session, actor, appointment, change, reason, message)
    appointment.status, appointment.decided_at = S.DECLINED, utcnow()
    appointment.decline_reason = reason
    flush(session, appointment)
    if before == S.TENTATIVE:
        appointment_freed(session, appointment, "declined")
    record(session, actor, appointment, Action.DECLINE, before, reason=reason, message=message)
    queued = tell_patient(
        session, appointment, "appointment_declined", message=message, reason=reason
    )
    return outcome_of(appointment, queued)


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
) -> Proposed:
    """Offer a time (→ tentative); the patient answers through the returned link token."""
    ensure_allowed(actor, Action.PROPOSE)
    appointment = load(
        session, appointment_id, Action.PROPOSE, expected_version, handled_if_moved=True
    )
    before = appointment.status
    # what the patient asked, for the request to ask it again if the time is let go (let_go)
    asked_provider_id, asked_start_at = appointment.provider_id, appointment.start_at
    held = (appointment.provider_id, appointment.start_at, appointment.end_at)
    details = place(
        session,
        appointment,
        provider_id=provider_id,
        start_at=start_at,
        allow_double_booking=allow_double_booking,
        outside_hours_override=outside_hours_override,
    )
    details.update(patient_free(session, appointment, allow_double_booking))
    if before == S.REQUESTED:  # a second proposal: the request keeps the first one's ask
        appointment.ask_kept = True
        appointment.asked_start_at = asked_start_at
        appointment.asked_provider_id = asked_provider_id
        details["asked"] = {  # the history says it too
            "provider_id": asked_provider_id,
            "start_at": asked_start_at.isoformat() if asked_start_at else None,
        }
    appointment.status = S.TENTATIVE
    flush(session, appointment)
    if before == S.TENTATIVE and held != (
        appointment.provider_id,
        appointment.start_at,
        appointment.end_at,
    ):  # the time the last proposal held is free: the waitlist hears of it, as of a move
        appointment_freed(
            session, appointment, "moved", provider_id=held[0], start_at=held[1], end_at=held[2]
        )
    record(session, actor, appointment, Action.PROPOSE, before, message=message, details=details)
    return send_proposal(session, appointment, message)


WITHDRAWN = "Withdrawn by the patient."


def withdraw_request(session: Session, actor: Actor, appointment_id: int) -> Outcome:
    """The patient withdraws a booking request still waiting for the practice (through the
    portal, which checked it is theirs): cancelled by the patient, with no fee, as nothing was
    booked; it leaves the queue. One the practice answered meanwhile is refused."""
    if actor.role is not None:  # staff cancel a request as any appointment
        ensure_allowed(actor, Action.CANCEL)
    appointment = load(session, appointment_id, Action.CANCEL)
    if appointment.status != S.REQUESTED:
        raise Conflict(
            "The practice has just answered this request, so it cannot be withdrawn here: see "
            "their latest message, or cancel the appointment instead."
        )
    return cancel(
        session,
        actor,
        appointment,
        reason=WITHDRAWN,
        message="",
        by_patient=True,
        details={"withdrawn": True},
    )


REPLACED = "Not sent: a newer proposal replaced it before it went out."


class Proposed(str):
    """The raw proposal link token (what the patient's link carries), with the `outcome`:
    who was told. Nobody told, the patient cannot answer: the page says so."""

    outcome: Outcome

    def __new__(cls, raw: str, outcome: Outcome) -> Proposed:
        made = super().__new__(cls, raw)
        made.outcome = outcome
        return made


def send_proposal(session: Session, appointment: Appointment, message: str) -> Proposed:
    """Email (and text) the patient a link to answer the appointment's proposed time. The
    links of its earlier proposals stop working: they would show and answer this one (they
    say it was replaced, core.portal.patient_links)."""
    earlier = session.scalars(
        select(LinkToken.id).where(
            LinkToken.purpose == "proposal",
            LinkToken.subject_id == appointment.id,
            LinkToken.revoked_at.is_(None),
            LinkToken.used_at.is_(None),
        )
    ).all()
    for token_id in earlier:
        tokens.revoke(session, token_id)
    # an earlier proposal's message not sent yet would only carry a replaced time and link
    notify.withdraw_unsent(session, appointment.id, "appointment_proposed", REPLACED)
    ttl = min(PROPOSAL_TTL, max(appointment.start_at - utcnow(), timedelta(hours=1)))
    issued = tokens.issue(session, "proposal", appointment.id, ttl)
    queued = tell_patient(
        session,
        appointment,
        "appointment_proposed",
        message=message,
        link=tokens.link(base_url(session), "proposal", issued.raw),
    )
    return Proposed(issued.raw, outcome_of(appointment, queued))


def open_change(session: Session, appointment_id: int, *statuses: ChangeStatus):
    return session.scalar(
        select(ChangeRequest)
        .where(
            ChangeRequest.appointment_id == appointment_id,
            ChangeRequest.status.in_(statuses or (ChangeStatus.OPEN,)),
        )
        .order_by(ChangeRequest.id.desc())
        .limit(1)
    )


def respond_to_proposal(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    accept: bool,
    expected_version: int | None = None,
) -> Outcome:
    """The patient's answer to a tentative time (the caller verified the proposal link, or a
    manager records the answer the patient gave on the phone, against the `expected_version`
    they saw). Accept → scheduled (checked again by the booking rule: _still_bookable).
    Decline → back in the queue as a request, or, when the proposal answered a change
    request, back to the original booking."""
    action = Action.ACCEPT_PROPOSAL if accept else Action.DECLINE_PROPOSAL
    ensure_allowed(actor, action)
    appointment = load(
        session,
        appointment_id,
        action,
        expected_version,
        handled_if_moved=expected_version is not None,
    )
    before = appointment.status
    change = open_change(session, appointment.id, ChangeStatus.PROPOSED)
    proposed_when = when_text(appointment)
    details: dict[str, Any] = {"change_request_id": change.id} if change else {}
    details["proposed_when"] = proposed_when
    if accept:
        _still_bookable(session, actor, appointment)
        try:  # the patient may have been booked elsewhere at that time since the proposal
            patient_free(session, appointment, appointment.allow_double_booking)
        except PatientBusy as busy:
            visit = busy.visits[0]
            then = "accept this time; or contact the practice for another one."
            words = own_visit(visit.clinic, visit, verb="confirm", kind="proposed", then=then)
            raise Conflict(words) from None
        appointment.status, appointment.decided_at = S.SCHEDULED, utcnow()
        _forget_ask(appointment)  # the patient took the proposal instead
        if change:
            change.status = ChangeStatus.APPROVED
            appointment.reschedule_count += 1
            if change.original_start_at is not None:  # the held original time is free now
                appointment_freed(
                    session,
                    appointment,
                    "moved",
                    provider_id=change.original_provider_id,
                    start_at=change.original_start_at,
                    end_at=change.original_start_at + duration_of(appointment),
                )
    else:
        let_go(session, appointment, change, "The patient turned down the proposed time.")
    flush(session, appointment)
    reason = None if accept else "The patient turned down the proposed time."
    record(session, actor, appointment, action, before, reason=reason, details=details or None)
    # the clinic hears of the answer through lifecycle.record (core.messaging.clinic_events)
    queued = confirm(session, appointment) if appointment.status == S.SCHEDULED else None
    return outcome_of(appointment, queued)


TAKEN = "Sorry, this time has just been taken. Please contact the practice for another one."
GONE = "Sorry, this time is no longer available. Please contact the practice for another one."


def _still_bookable(session: Session, actor: Actor, appointment: Appointment) -> None:
    """The proposed time, checked again by the booking rule itself (lifecycle.place) as the
    proposal allowed it (double booking, outside the hours): since it was proposed, its
    provider may have taken time off, stopped working then, or been booked, and a room may
    be taken. The patient is told only that the time is gone (nothing of the practice's
    diary); staff recording the patient's answer are told why. Nothing is changed: the
    proposal waits as it was, the queue marking a provider away then."""
    try:
        place(
            session,
            appointment,
            provider_id=appointment.provider_id,
            start_at=appointment.start_at,
            allow_double_booking=appointment.allow_double_booking,
            outside_hours_override=appointment.outside_hours_override,
        )
    except (Conflict, ValidationError) as refused:
        if actor.role is not None:
            raise Conflict(
                f"The patient's acceptance cannot be recorded: {refused} Propose another time, "
                "or decline the request."
            ) from None
        raise Conflict(TAKEN if isinstance(refused, Conflict) else GONE) from None


def let_go(
    session: Session, appointment: Appointment, change: ChangeRequest | None, reason: str
) -> None:
    """A proposed time let go (the patient turned it down, or never answered): a change
    request's proposal gives way to the booking the patient had, denied with `reason`; a
    booking request goes back to the queue, its time freed for the waitlist, asking again what
    its patient asked (_as_asked), not the time let go."""
    if change is not None:
        restore_original(session, appointment, change, reason)
    else:
        appointment_freed(session, appointment, "declined")
        appointment.status = S.REQUESTED
        _as_asked(appointment)
    _forget_ask(appointment)


def _as_asked(appointment: Appointment) -> None:
    """A booking request back in the queue asks what its patient asked, as propose_time kept
    it on the request: its exact time or none (its day and time of day stay on the request),
    and the provider asked for or any. Before, it kept the proposed time as if asked for, and
    bulk approve booked the patient at the time they had turned down. A proposal made before
    the ask was kept (migration 0028 took it from the proposal's audit event where that had
    it) leaves the request as it is."""
    if not appointment.ask_kept:
        return
    start_at = appointment.asked_start_at
    length = duration_of(appointment)  # read first: loading the services flushes
    appointment.start_at = start_at
    appointment.end_at = start_at + length if start_at else None
    appointment.provider_id = appointment.asked_provider_id


def _forget_ask(appointment: Appointment) -> None:
    """The proposal is over: the request keeps no ask (given back, or no longer wanted)."""
    appointment.ask_kept = False
    appointment.asked_start_at = appointment.asked_provider_id = None


def restore_original(
    session: Session, appointment: Appointment, change: ChangeRequest, note: str
) -> None:
    """Put a proposal made for a change request back to the booking the patient had; the
    change request is denied with `note`. The patient keeps the visit even when its provider
    took time off touching it meanwhile (the visit and its buffers: availability.away_span);
    the clinic is told then (_tell_clinic_away), and the time off's cover list lists it."""
    appointment_freed(session, appointment, "declined")
    provider_id = (
        change.original_provider_id
        or _proposal_original(session, appointment.id).get("provider_id")  # before 0009
    )
    length = duration_of(appointment)  # read first: loading the services flushes
    appointment.start_at = change.original_start_at
    appointment.end_at = change.original_start_at + length
    if provider_id:
        appointment.provider_id = provider_id
    appointment.status = S.SCHEDULED
    change.status, change.decision_note = ChangeStatus.DENIED, note
    before, after = timing_of(services_of(appointment)).padding
    flush(session, appointment)  # as the callers do next: a concurrent change is a Conflict
    away = time_off_during(
        session,
        appointment.provider_id,
        appointment.start_at,
        appointment.end_at,
        before=before,
        after=after,
    )
    if away is not None:
        _tell_clinic_away(session, appointment, away)


def _tell_clinic_away(session: Session, appointment: Appointment, away: TimeOff) -> None:
    """The clinic's inbox hears that a visit went back to its original time inside its
    provider's time off (as a patient's change request is heard of), to find cover or move it."""
    clinic, provider = appointment.clinic, session.get(Provider, appointment.provider_id)
    summary = (
        f"{appointment.patient.full_name if appointment.patient else 'A patient'} keeps "
        f"{message_context(appointment)['service_name']} on {when_text(appointment)} with "
        f"{provider.name}, who is on time off "
        f"{clinic_time_range(clinic, away.starts_at, away.ends_at)}: the new time proposed for "
        "their reschedule was not taken, so the visit went back to its original time. Give it "
        "another provider or time (the time off's cover list lists it)."
    )
    clinic_events.tell_clinic(
        session,
        appointment.clinic_id,
        "change_request",
        summary,
        appointment_id=appointment.id,
        link=clinic_events.item_link(base_url(session), appointment.id),
    )


def _keep_original(
    session: Session,
    actor: Actor,
    appointment: Appointment,
    change: ChangeRequest,
    reason: str,
    message: str,
) -> Outcome:
    """The practice declines a proposal it made in answer to a patient's change request: the
    request is denied and the booking the patient had stays, as when the patient turns the
    proposal down; the patient is told their appointment stays, not that it was declined."""
    before, proposed_when = appointment.status, when_text(appointment)
    restore_original(session, appointment, change, reason)
    change.decided_at, change.decided_by_user_id = utcnow(), actor.user_id
    flush(session, appointment)
    details = {"change_request_id": change.id, "proposed_when": proposed_when}
    record(
        session,
        actor,
        appointment,
        Action.DENY_CHANGE,
        before,
        reason=reason,
        message=message,
        details=details,
    )
    queued = tell_patient(
        session, appointment, "change_request_denied", message=message, reason=reason
    )
    return replace(outcome_of(appointment, queued), kept_booking=True)


def _proposal_original(session: Session, appointment_id: int) -> dict[str, Any]:
    event = session.scalar(
        select(AuditEvent)
        .where(
            AuditEvent.entity == ENTITY,
            AuditEvent.entity_id == appointment_id,
            AuditEvent.action == Action.PROPOSE_FOR_CHANGE.value,
        )
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    return (event.details or {}).get("original", {}) if event else {}
