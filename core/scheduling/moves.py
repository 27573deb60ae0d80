"""Booking, moving and cancelling appointments (schedule, reschedule, update, cancel)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.authz import Actor
from core.kernel.errors import Conflict, ValidationError
from core.kernel.money import clinic_time_range
from core.messaging import reminders
from core.patients import merge
from core.payments import prepay
from core.policy import cancellation as policy
from core.practice.packages import package_services
from core.scheduling.availability import (
    MAX_LENGTH,
    Held,
    on_time_off,
    patient_visits,
)
from core.scheduling.lifecycle import (
    Outcome,
    aware,
    base_url,
    confirm,
    flush,
    handled_message,
    load,
    outcome_of,
    place,
    record,
    require_reason,
    tell_patient,
    visit_when,
    when_text,
    withdraw_changes,
)
from core.scheduling.notes import append_note
from core.scheduling.openings import appointment_freed
from core.scheduling.states import Action, S, ensure_allowed
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentService,
    Channel,
    Clinic,
    Patient,
    Service,
    Source,
    VisitMode,
)
from db.types import utcnow

# ---------------------------------------------------------------- booking and moving


class PatientBusy(Conflict):
    """The patient already has a visit at that time (`visits`: theirs overlapping, earliest
    first), as staff read it; a patient's own answer (a waitlist offer) words it for them."""

    def __init__(self, message: str, visits: list[Appointment]) -> None:
        super().__init__(message)
        self.visits = visits


def own_visit(clinic: Clinic, visit: Appointment | Held, *, verb: str, kind: str, then: str) -> str:
    """The patient's own clash, as they read it (answering a proposal, accepting a waitlist
    offer): their visit's day and time in `clinic`'s zone and locale, not its provider,
    treatment or number; what they cannot do (`verb` the `kind` time) and may do (`then`)."""
    when = clinic_time_range(clinic, visit.start_at, visit.end_at, zone=True)
    return (
        f"Sorry, we cannot {verb} this time for you: you already have a visit on {when}. To "
        f"come at the {kind} time instead, cancel or move that visit first, then {then}"
    )


@dataclass(frozen=True)
class NewBooking:
    """What schedule_appointment books: where and when, for whom, and what the booking
    explicitly overrides. An out-of-office block has no patient or service but an `end_at`."""

    clinic_id: int
    provider_id: int
    start_at: datetime
    patient_id: int | None = None
    service_ids: tuple[int, ...] | list[int] = ()
    package_id: int | None = None  # booked as one: its services, its price
    end_at: datetime | None = None
    kind: AppointmentKind | str = AppointmentKind.APPOINTMENT
    mode: VisitMode | str = VisitMode.IN_PERSON
    notes: str = ""
    allow_double_booking: bool = False
    outside_hours_override: bool = False
    source: Source = Source.STAFF
    notify_channels: list[Channel] | None = None  # None: every channel with consent
    subject: str | None = None
    body: str | None = None


def schedule_appointment(session: Session, actor: Actor, booking: NewBooking) -> Appointment:
    """Book in office. An out-of-office block needs no patient or service (give `end_at`).
    The returned appointment carries `notify_sent` (who was told: "email to a@b") and
    `notify_skipped` (why a channel was not used)."""
    ensure_allowed(actor, Action.SCHEDULE)
    b = booking
    kind = AppointmentKind(b.kind)
    clinic = session.get(Clinic, b.clinic_id)
    if clinic is None:
        raise ValidationError("Choose one of the practice's clinics.")
    services = [session.get(Service, sid) for sid in dict.fromkeys(b.service_ids or [])]
    if any(s is None or not s.active for s in services):
        raise ValidationError("Choose services the practice offers.")
    package = None
    if b.package_id is not None:
        package, members = package_services(session, b.package_id)
        if services and services != members:
            raise ValidationError(
                f"The package {package.name} is booked on its own; book other services as a "
                "separate appointment."
            )
        services = members
    patient = session.get(Patient, b.patient_id) if b.patient_id is not None else None
    if kind == AppointmentKind.APPOINTMENT:
        if patient is None:
            raise ValidationError("Choose a known patient (search by name, email or phone).")
        merge.refuse_merged(patient, "book an appointment for")
        if not services:
            raise ValidationError("Choose at least one service.")
    mode = VisitMode(b.mode)
    if mode == VisitMode.VIRTUAL and not all(s.virtual_allowed for s in services):
        names = ", ".join(s.name for s in services if not s.virtual_allowed)
        raise ValidationError(f"{names} cannot be done virtually; choose in person.")
    appointment = Appointment(
        clinic_id=clinic.id,
        clinic=clinic,
        patient_id=patient.id if patient else None,
        patient=patient,
        service_id=services[0].id if services else None,
        service=services[0] if services else None,
        package_id=package.id if package else None,
        package=package,
        kind=kind,
        mode=mode,
        status=S.SCHEDULED,
        notes=(b.notes or "").strip(),
        source=Source(b.source),
        created_by_user_id=actor.user_id,
        booked_at=utcnow(),
        decided_at=utcnow(),
    )
    for position, service in enumerate(services):
        appointment.services.append(
            AppointmentService(service_id=service.id, service=service, position=position)
        )
    session.add(appointment)
    session.flush()
    append_note(session, appointment, actor, b.notes)  # the first note, by whoever booked
    if kind == AppointmentKind.OUT_OF_OFFICE:
        start_at, end_at = aware(b.start_at, "start time"), aware(b.end_at, "end time")
        if not start_at < end_at <= start_at + MAX_LENGTH:
            raise ValidationError("An out-of-office block lasts between 1 minute and 12 hours.")
        appointment.provider_id, appointment.start_at, appointment.end_at = (
            b.provider_id,
            start_at,
            end_at,
        )
        details = {"provider_id": b.provider_id, "start_at": start_at.isoformat()}
    else:
        details = place(
            session,
            appointment,
            provider_id=b.provider_id,
            start_at=b.start_at,
            allow_double_booking=b.allow_double_booking,
            outside_hours_override=b.outside_hours_override,
        )
        if patient is not None:
            details.update(patient_free(session, appointment, b.allow_double_booking))
    session.flush()
    record(session, actor, appointment, Action.SCHEDULE, None, details=details)
    queued = (
        confirm(session, appointment, channels=b.notify_channels, subject=b.subject, body=b.body)
        if patient
        else None
    )
    appointment.notify_skipped = list(queued.skipped) if queued else []
    appointment.notify_sent = outcome_of(appointment, queued).notified if queued else []
    return appointment


def patient_free(
    session: Session, appointment: Appointment, allow_double_booking: bool
) -> dict[str, list[int]]:
    """Refuse a time at which the appointment's patient already has another active visit
    overlapping it (e.g. "Book" pressed twice, the second time with the next free provider;
    a request approved or proposed over their own visit), naming it, unless double booking is
    explicitly allowed, which the returned audit details record. The patient's row is locked
    until the transaction ends, so two such bookings cannot both pass (PostgreSQL; SQLite's
    writers are serialised already). Nothing is flushed here: the caller's flush writes the
    decision once (one version)."""
    with session.no_autoflush:
        patient = appointment.patient
        if patient is None:
            return {}
        session.execute(select(Patient.id).where(Patient.id == patient.id).with_for_update())
        theirs = patient_visits(
            session,
            patient.id,
            appointment.start_at,
            appointment.end_at,
            exclude_appointment_id=appointment.id,
        )
        if not theirs:
            return {}
        if not allow_double_booking:
            first = theirs[0]
            who = f" with {first.provider.name}" if first.provider else ""
            more = f" (and {len(theirs) - 1} more)" if len(theirs) > 1 else ""
            raise PatientBusy(
                f"{patient.full_name} already has appointment #{first.id} "
                f"{visit_when(appointment.clinic, first)}{who}{more}. "
                "Choose another time, or allow double booking to book them twice.",
                theirs,
            )
        appointment.allow_double_booking = True
        return {"patient_double_booked_with": [a.id for a in theirs]}


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
    moved_from: tuple[datetime, int | None] | None = None,
) -> Outcome:
    """Move a scheduled appointment (the patient agreed, e.g. on the phone) and tell them.
    `moved_from`: where the person moving it saw it (a calendar drag's start and provider, the
    provider None when the view showed none); moved or cancelled since, it is refused, saying
    by whom and when, as a stale `expected_version` is. A move to where it already is (a
    calendar resize, a drop back in place, the same time chosen) is refused: counted as a
    reschedule, it used up one of the patient's own under the cancellation policy; so does a
    move off a provider on time off at the visit's time (the practice's doing), which is not
    counted. A new provider is told with the old one: "(was Mon 09:00 with Dr Test)"."""
    return move(
        session,
        actor,
        appointment_id,
        Action.RESCHEDULE,
        start_at=start_at,
        provider_id=provider_id,
        tell=notify,
        message=message,
        expected_version=expected_version,
        allow_double_booking=allow_double_booking,
        outside_hours_override=outside_hours_override,
        moved_from=moved_from,
        refuse_unmoved=True,
    )


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
    """Change time, provider or notes directly without asking the patient; they are informed.
    New `notes` text is appended as a note (core.scheduling.notes): earlier notes stay."""
    return move(
        session,
        actor,
        appointment_id,
        Action.UPDATE,
        start_at=start_at,
        provider_id=provider_id,
        tell=True,
        message=message,
        notes=notes,
        expected_version=expected_version,
        allow_double_booking=allow_double_booking,
        outside_hours_override=outside_hours_override,
    )


def move(
    session,
    actor,
    appointment_id,
    action,
    *,
    start_at,
    provider_id,
    tell,
    message,
    expected_version,
    allow_double_booking,
    outside_hours_override,
    notes=None,
    extra: dict | None = None,
    moved_from: tuple[datetime, int | None] | None = None,
    refuse_unmoved: bool = False,
) -> Outcome:
    ensure_allowed(actor, action)
    appointment = load(
        session, appointment_id, action, expected_version, handled_if_moved=bool(moved_from)
    )
    if moved_from and (
        appointment.start_at != aware(moved_from[0])
        or moved_from[1] not in (None, appointment.provider_id)
    ):
        raise Conflict(handled_message(session, appointment))
    if refuse_unmoved and (
        (start_at is None or aware(start_at, "start time") == appointment.start_at)
        and provider_id in (None, appointment.provider_id)
    ):
        who = f" with {appointment.provider.name}" if appointment.provider else ""
        when = clinic_time_range(appointment.clinic, appointment.start_at, appointment.end_at)
        raise ValidationError(
            f"Appointment #{appointment.id} is already on {when}{who}: nothing was moved. "
            "To move it, choose another time or provider (on the calendar, drag it there); "
            "its length follows its services."
        )
    before, previous, was_with = appointment.status, when_text(appointment), appointment.provider
    old = {
        "provider_id": appointment.provider_id,
        "start_at": appointment.start_at.isoformat() if appointment.start_at else None,
    }
    held = (appointment.provider_id, appointment.start_at, appointment.end_at)
    # moved off a provider on time off then (called in sick; its buffers count, as the booking
    # rule's): the practice's doing, not one of the patient's own reschedules under the policy
    practice_move = None not in held and on_time_off(
        session,
        *held,
        before=timedelta(minutes=appointment.buffer_before_minutes or 0),
        after=timedelta(minutes=appointment.buffer_after_minutes or 0),
    )
    details = place(
        session,
        appointment,
        provider_id=provider_id or appointment.provider_id,
        start_at=start_at or appointment.start_at,
        allow_double_booking=allow_double_booking or appointment.allow_double_booking,
        outside_hours_override=outside_hours_override,
    )
    details["previous"] = old
    details.update(extra or {})
    # new notes text is added as a note, never written over the earlier ones
    same = notes is None or notes.strip() == (appointment.notes or "").strip()
    note = None if same else append_note(session, appointment, actor, notes)
    if action == Action.RESCHEDULE and practice_move:
        details["not_counted"] = "the provider is on time off then"
    elif action == Action.RESCHEDULE:
        appointment.reschedule_count += 1
    flush(session, appointment)
    if note is not None:
        details["note_id"] = note.id
    moved = held != (appointment.provider_id, appointment.start_at, appointment.end_at)
    if was_with is not None and appointment.provider_id != was_with.id:
        previous += f" with {was_with.name}"  # "(was Mon 09:00 with Dr Test)": who changed
    if moved:
        appointment_freed(
            session, appointment, "moved", provider_id=held[0], start_at=held[1], end_at=held[2]
        )
    if appointment.provider_id != held[0] and appointment.start_at == held[1]:
        reminders.renew_waiting(session, appointment, base_url(session))
    record(session, actor, appointment, action, before, message=message, details=details)
    key = "appointment_rescheduled" if action == Action.RESCHEDULE else "appointment_updated"
    # nothing the patient would notice changed (the notes only): no message, unless staff
    # wrote one to them
    queued = (
        tell_patient(session, appointment, key, message=message, previous_when=previous)
        if tell and (moved or message.strip())
        else None
    )
    return outcome_of(appointment, queued)


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
    ensure_allowed(actor, Action.CANCEL)
    reason = require_reason(reason, "cancellation")
    appointment = load(session, appointment_id, Action.CANCEL, expected_version)
    return cancel(
        session, actor, appointment, reason=reason, message=message, by_patient=by_patient, at=at
    )


def cancel(
    session, actor, appointment, *, reason, message, by_patient, at=None, details=None
) -> Outcome:
    before = appointment.status
    now = at or utcnow()
    evaluation = policy.evaluate(session, appointment, now)
    fee_text = ""
    entries = []
    assessed = by_patient and before == S.SCHEDULED
    settled = prepay.settle_on_cancel(  # refunds first, then the policy's deduction
        session,
        actor,
        appointment,
        by_patient=by_patient,
        keep_cents=evaluation.fee_cents if assessed else 0,
    )
    if assessed:
        entries = policy.assess_cancellation(session, appointment, evaluation)
        session.flush()
        prepay.link_fee(settled, entries)
        fee_text += policy.cancellation_charged(session, entries)
    else:
        appointment.policy_id = evaluation.policy_id
        appointment.late_cancellation = False
    fee_text += prepay.settled_text(appointment, settled)  # one message says both
    appointment.status = S.CANCELLED
    appointment.cancelled_at = now
    appointment.cancelled_by = "patient" if by_patient else actor.name
    appointment.cancel_reason = reason
    appointment.ask_kept = False  # a proposal cancelled gives no ask back
    appointment.asked_start_at = appointment.asked_provider_id = None
    flush(session, appointment)
    if before in (S.SCHEDULED, S.TENTATIVE):
        appointment_freed(session, appointment, "cancelled")
    recorded = {
        "by_patient": by_patient,
        "late": appointment.late_cancellation,
        "policy_id": appointment.policy_id,
        **(details or {}),
        **withdraw_changes(session, actor, appointment, Action.CANCEL),
    }
    record(
        session,
        actor,
        appointment,
        Action.CANCEL,
        before,
        reason=reason,
        message=message,
        details=recorded,
    )
    queued = tell_patient(
        session, appointment, "appointment_cancelled", message=message, reason=reason, fee=fee_text
    )
    return replace(outcome_of(appointment, queued), money=fee_text.strip())
