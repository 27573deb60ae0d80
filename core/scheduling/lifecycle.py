"""The life cycle's shared steps: load (row-locked, version-checked), place, record the audit
event, tell the patient. Every transition module (core.requests.decisions, .changes, .bulk;
core.scheduling.moves, .visits) is built from these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from core.kernel import audit, tokens
from core.kernel.authz import Actor
from core.kernel.clock import to_local
from core.kernel.config import DEFAULT_BASE_URL
from core.kernel.errors import Conflict, NotFound, ValidationError
from core.kernel.money import clinic_clock_range, clinic_time, clinic_time_range, format_day
from core.messaging import clinic_events, notify
from core.practice.skills import ensure_performs
from core.practice.timing import Timing, timing_of
from core.practice.travel import travel_time, travel_words
from core.practice.treatment import services_of, treatment_of
from core.practice.treatment import treatment_text as treatment_text  # re-exported
from core.scheduling.availability import (
    MAX_LENGTH,
    OCCUPYING,
    Held,
    find_conflicts,
    lock_provider,
    lock_resources,
    required_resources,
    resources_taken,
    time_of_day_label,
    time_off_during,
    travel_gap,
    working_hours_cover,
)
from core.scheduling.codes import confirmation_attachment
from core.scheduling.openings import appointment_freed
from core.scheduling.states import ENTITY, PAST_GRACE, RULES, STATUS_WORDS, Action, check_transition
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    AuditEvent,
    ChangeRequest,
    ChangeStatus,
    Channel,
    Clinic,
    LinkToken,
    Provider,
    Source,
    VisitMode,
)
from db.types import utcnow

# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Outcome:
    """What a transition did: the new status and version, and who was told what."""

    appointment_id: int
    status: AppointmentStatus
    version: int
    notified: list[str] = field(default_factory=list)  # "email to a@b" …
    skipped: list[str] = field(default_factory=list)  # why a channel was not used
    # declining a proposal made for the patient's change request keeps the booking they had
    # (scheduled again, the request denied): the practice is told so, not "declined"
    kept_booking: bool = False
    money: str = ""  # a cancellation's refunds and fees, a line each (as the patient is told)

    @property
    def told(self) -> str:
        """Who was told, and why a channel was not used."""
        text = f"Notified: {'; '.join(self.notified) or 'nobody'}."
        return text + (f" Not sent: {'; '.join(self.skipped)}." if self.skipped else "")

    @property
    def summary(self) -> str:
        return f"Now {STATUS_WORDS[self.status]}. {self.told}"

    def after(self, headline: str) -> str:
        """`headline`, then the new status unless the headline names it ("Declined." is not
        followed by "Now declined."), then who was told."""
        said = STATUS_WORDS[self.status] in headline.lower()
        return f"{headline} {self.told if said else self.summary}"


@dataclass(frozen=True)
class RowResult:
    id: int
    ok: bool
    message: str


# ---------------------------------------------------------------- loading and locking


def latest_event(
    session: Session, appointment_id: int, action: Action | None = None
) -> AuditEvent | None:
    """The appointment's newest audit event (of `action`, when given)."""
    query = select(AuditEvent).where(
        AuditEvent.entity == ENTITY, AuditEvent.entity_id == appointment_id
    )
    if action is not None:
        query = query.where(AuditEvent.action == action.value)
    return session.scalar(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(1))


def handled_message(session: Session, appointment: Appointment) -> str:
    event = latest_event(session, appointment.id)
    words = STATUS_WORDS[appointment.status]
    if event is None:
        return f"Appointment #{appointment.id} was changed meanwhile (now {words}). Reload it."
    when = clinic_time(appointment.clinic, event.at, zone=True)  # the visit's clinic's clock
    return (
        f"Appointment #{appointment.id} was already handled by {event.actor_label} at {when} "
        f"(now {words}). Reload to see it."
    )


def load(
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
        raise Conflict(handled_message(session, appointment))
    if handled_if_moved and appointment.status not in RULES[action].sources:
        raise Conflict(handled_message(session, appointment))
    check_transition(appointment, action)
    return appointment


def flush(session: Session, appointment: Appointment) -> None:
    """Write now, so a concurrent change surfaces here as a Conflict, not at commit."""
    try:
        session.flush()
    except StaleDataError:
        raise Conflict(
            f"Appointment #{appointment.id} was changed by someone else at the same moment. "
            "Reload it to see what was done."
        ) from None


# what became of an appointment whose waiting change requests it closes (withdraw_changes)
LEFT_SCHEDULED = {
    Action.CANCEL: "the appointment was cancelled",
    Action.CHECK_IN: "the patient was checked in",
    Action.COMPLETE: "the visit was completed",
    Action.NO_SHOW: "the patient was recorded as a no-show",
}


def withdraw_changes(
    session: Session, actor: Actor, appointment: Appointment, action: Action
) -> dict[str, Any]:
    """Close the patient's change requests still waiting on an appointment that has just left
    scheduled (or a proposal) another way: nothing is left to answer, so they are withdrawn,
    saying why, and leave the queue, the portal and the reports' open requests. The audit
    details of the transition that closed them."""
    waiting = session.scalars(
        select(ChangeRequest)
        .where(
            ChangeRequest.appointment_id == appointment.id,
            ChangeRequest.status.in_((ChangeStatus.OPEN, ChangeStatus.PROPOSED)),
        )
        .order_by(ChangeRequest.id)
        .with_for_update()
    ).all()
    now = utcnow()
    for change in waiting:
        if change.status == ChangeStatus.PROPOSED and change.original_start_at is not None:
            appointment_freed(  # the original time held for the proposal is free now
                session,
                appointment,
                "cancelled",
                provider_id=change.original_provider_id,
                start_at=change.original_start_at,
                end_at=change.original_start_at + (appointment.end_at - appointment.start_at),
            )
        change.status, change.decided_at = ChangeStatus.WITHDRAWN, now
        change.decided_by_user_id = actor.user_id
        change.decision_note = (
            f"Withdrawn: {LEFT_SCHEDULED[action]} by {actor.name} before it was answered."
        )
    return {"change_requests_withdrawn": [c.id for c in waiting]} if waiting else {}


def reopen_changes(session: Session, appointment: Appointment, action: Action) -> dict[str, Any]:
    """A transition undone (a mistaken check-in or no-show): the change requests it withdrew
    (its audit event lists them) wait in the queue again, as they did before it. Those the
    practice answered since stay as they are. The audit details of the undo."""
    event = latest_event(session, appointment.id, action)
    ids = (event.details or {}).get("change_requests_withdrawn", []) if event else []
    reopened = session.scalars(
        select(ChangeRequest)
        .where(ChangeRequest.id.in_(ids), ChangeRequest.status == ChangeStatus.WITHDRAWN)
        .order_by(ChangeRequest.id)
        .with_for_update()
    ).all()
    for change in reopened:  # only an open request can be withdrawn from a scheduled visit
        change.status, change.decided_at = ChangeStatus.OPEN, None
        change.decided_by_user_id, change.decision_note = None, None
    return {"change_requests_reopened": [c.id for c in reopened]} if reopened else {}


# ---------------------------------------------------------------- helpers


def base_url(session: Session) -> str:
    """The public address patient links start with: the app hands it to every session
    (core.startup), so no service reads the settings itself."""
    return session.info.get("base_url", DEFAULT_BASE_URL)


def duration_of(appointment: Appointment) -> timedelta:
    minutes = timing_of(services_of(appointment)).minutes
    if not minutes and appointment.start_at and appointment.end_at:
        return appointment.end_at - appointment.start_at
    return timedelta(minutes=minutes or 30)


def when_text(appointment: Appointment) -> str:
    clinic = appointment.clinic
    if appointment.start_at is not None:
        return clinic_time(clinic, appointment.start_at, zone=True)
    if appointment.requested_day is not None:
        text = format_day(appointment.requested_day, clinic.locale)
        if appointment.time_of_day:
            text += f", {time_of_day_label(appointment.time_of_day, clinic.locale, in_text=True)}"
        return text
    return "a time to be agreed"


def message_context(appointment: Appointment, *, message: str = "", **extra: Any) -> dict[str, Any]:
    clinic = appointment.clinic
    context = {
        "clinic_name": clinic.name,
        "clinic_phone": clinic.phone,
        "where": notify.visit_place(clinic, appointment.mode == VisitMode.VIRTUAL),
        "when": when_text(appointment),
        "service_name": treatment_of(appointment) or "your appointment",
        "provider_name": appointment.provider.name if appointment.provider else "our team",
        "message": f"\n\nMessage from the practice: {message.strip()}" if message.strip() else "",
    }
    context.update(extra)
    return context


def tell_patient(
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
        message_context(appointment, message=message, **extra),
        appointment_id=appointment.id,
        channels=channels,
        attachment=attachment,
        subject=subject,
        body=body,
    )


def outcome_of(appointment: Appointment, queued: notify.Queued | None = None) -> Outcome:
    notified = [
        f"{n.channel.value} to {n.to_address}" for n in (queued.notifications if queued else [])
    ]
    return Outcome(
        appointment.id,
        appointment.status,
        appointment.version,
        notified,
        list(queued.skipped) if queued else [],
    )


def record(
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
    audit.record(
        session,
        actor,
        action.value,
        ENTITY,
        appointment.id,
        patient_id=appointment.patient_id,
        from_status=from_status.value if from_status else None,
        to_status=appointment.status.value,
        reason=reason or None,
        message=message.strip() if message and message.strip() else None,
        details=details,
    )
    tell_clinic_of(session, appointment, action, details or {})


def _clinic_events_for(appointment: Appointment, action: Action, details: dict[str, Any]):
    """The clinic events (core.messaging.preferences.CLINIC_EVENTS) a transition may raise,
    most specific first; the clinic hears of the first one it selected."""
    if action == Action.REQUEST and appointment.source == Source.ONLINE:
        return ["new_request"]
    if action == Action.REQUEST_CHANGE:
        return ["change_request"]
    if action == Action.CANCEL and appointment.cancelled_by == "patient":
        late = ["late_cancellation"] if appointment.late_cancellation else []
        # a request staff approved: the clinic heard of it when it was made (REQUEST_CHANGE)
        heard = details.get("change_request_id") and not details.get("auto_accepted")
        return late + ([] if heard else ["change_request"])
    if action in (Action.ACCEPT_PROPOSAL, Action.DECLINE_PROPOSAL):
        return ["proposal_answered"]
    if action == Action.NO_SHOW:
        return ["no_show"]
    return []


CLINIC_SUMMARIES = {
    "new_request": "{patient} asked online for {service} on {when}.",
    "change_request": "{patient} asked to {kind} {service} on {when}.",
    # a patient's cancellation the policy accepted at once: done, nothing waits in the queue
    "cancelled_at_once": "{patient} cancelled {service} on {when} (accepted at once under the "
    "cancellation policy).",
    "request_withdrawn": "{patient} withdrew their request for {service} on {when}.",
    "late_cancellation": "{patient} cancelled {service} on {when}, inside the policy window.",
    "proposal_answered": "{patient} {answer} the proposed time {proposed} for {service} "
    "(now {status}).",
    "no_show": "{patient} did not come to {service} on {when}.",
}


def tell_clinic_of(
    session: Session, appointment: Appointment, action: Action, details: dict[str, Any]
) -> None:
    """Tell the clinic's inbox of this transition, if it raises an event the clinic selected."""
    for event in _clinic_events_for(appointment, action, details):
        kind = details.get("kind") or ("cancel" if action == Action.CANCEL else "change")
        words = (
            ("request_withdrawn" if details.get("withdrawn") else "cancelled_at_once")
            if (event, action) == ("change_request", Action.CANCEL)
            else event
        )
        summary = CLINIC_SUMMARIES[words].format(
            patient=appointment.patient.full_name if appointment.patient else "A patient",
            service=message_context(appointment)["service_name"],
            when=when_text(appointment),
            kind=kind,
            answer="accepted" if action == Action.ACCEPT_PROPOSAL else "turned down",
            status=STATUS_WORDS[appointment.status],
            proposed=details.get("proposed_when", ""),
        )
        link = clinic_events.item_link(base_url(session), appointment.id)
        extra: dict[str, Any] = {}
        if event == "proposal_answered":  # the clinic's own (editable) template for it
            extra = dict(
                template="proposal_answered",
                context=message_context(
                    appointment,
                    when=details.get("proposed_when", ""),
                    patient_name=appointment.patient.full_name if appointment.patient else "",
                    answer="accepted" if action == Action.ACCEPT_PROPOSAL else "declined",
                ),
            )
        row = clinic_events.tell_clinic(
            session,
            appointment.clinic_id,
            event,
            summary,
            appointment_id=appointment.id,
            link=link,
            **extra,
        )
        if row is not None:
            return


def aware(moment: datetime | None, name: str = "time") -> datetime:
    if moment is None:
        raise ValidationError(f"Choose a {name}.")
    if moment.tzinfo is None:
        raise ValidationError(f"The {name} needs a time zone (times are stored in UTC).")
    return moment.astimezone(UTC)


def require_reason(reason: str | None, what: str) -> str:
    if not reason or not reason.strip():
        raise ValidationError(f"Give a reason for the {what}; the patient is told.")
    if len(reason) > 2000:
        raise ValidationError("Keep the reason under 2,000 characters.")
    return reason.strip()


def place(
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
    time, a provider who does not perform its services (core.practice.skills; no override),
    and a time outside the provider's hours or a taken slot unless explicitly allowed.
    Returns the audit details worth keeping."""
    start_at = aware(start_at, "start time")
    now = now or utcnow()
    if start_at < now - PAST_GRACE:
        raise ValidationError("That time has passed; choose a time in the future.")
    provider = session.get(Provider, provider_id)
    if provider is None or not provider.active:
        raise ValidationError("Choose an active provider.")
    if appointment.provider_id != provider_id or appointment.status not in OCCUPYING:
        # a booking that keeps its provider (a move in time) was checked when it was placed
        ensure_performs(session, provider, [s.id for s in services_of(appointment)])
    end_at = start_at + duration_of(appointment)
    timing = timing_of(services_of(appointment))
    appointment.buffer_before_minutes, appointment.buffer_after_minutes = (
        timing.before,
        timing.after,
    )
    if end_at - start_at > MAX_LENGTH:
        raise ValidationError("An appointment can last at most 12 hours.")
    details: dict[str, Any] = {"provider_id": provider_id, "start_at": start_at.isoformat()}
    before, after = timing.padding
    # the visit and its buffers (availability.away_span, as the free times keep them)
    away = time_off_during(session, provider_id, start_at, end_at, before=before, after=after)
    if away is not None:  # the override is for working hours: a provider away is not booked
        clinic = appointment.clinic
        off = clinic_time_range(clinic, away.starts_at, away.ends_at)
        kept = f", with {timing.words()}" if timing.words() else ""
        raise ValidationError(
            f"{provider.name} is on time off {off}, and the visit would be "
            f"{clinic_time_range(clinic, start_at, end_at)}{kept}: choose "
            "another provider or time (or change the time off first)."
        )
    if not working_hours_cover(session, provider_id, appointment.clinic_id, start_at, end_at):
        if not outside_hours_override:
            clinic = appointment.clinic
            raise ValidationError(
                f"{provider.name} is not working at {clinic.name} on "
                f"{clinic_time_range(clinic, start_at, end_at)}. Choose another time, or book "
                "outside working hours explicitly."
            )
        details["outside_hours_override"] = True
        appointment.outside_hours_override = True
    lock_provider(session, provider_id)
    session.refresh(provider, ["active"])  # as committed by whoever held the lock before
    if not provider.active:
        raise ValidationError(
            f"{provider.name} was deactivated meanwhile; choose another provider. Nothing "
            "was booked."
        )
    virtual = appointment.mode == VisitMode.VIRTUAL  # no travel time around a video visit
    conflicts = find_conflicts(
        session,
        provider_id,
        start_at,
        end_at,
        appointment.id,
        before=before,
        after=after,
        clinic_id=appointment.clinic_id,
        virtual=virtual,
    )
    if conflicts:
        if not allow_double_booking:
            raise Conflict(
                _conflict_message(
                    appointment.clinic,
                    provider,
                    conflicts,
                    start_at,
                    end_at,
                    timing,
                    timedelta(0) if virtual else travel_time(session),
                )
            )
        details["double_booked_with"] = [c.id for c in conflicts]
        appointment.allow_double_booking = True
    details.update(hold_resources(session, appointment, start_at, end_at, allow_double_booking))
    appointment.provider_id, appointment.provider = provider_id, provider
    appointment.start_at, appointment.end_at = start_at, end_at
    # its check-in code (core.scheduling.codes) is kept until a day after the visit wherever
    # it moves: pruned by the first time's expiry, a visit moved a month on lost its code
    # (no flush here: the visit's version counts the transition's one write)
    with session.no_autoflush:
        session.execute(
            update(LinkToken)
            .where(
                LinkToken.purpose == "check_in",
                LinkToken.subject_id == appointment.id,
                LinkToken.used_at.is_(None),
            )
            .values(expires_at=start_at + timedelta(days=1))
            .execution_options(synchronize_session=False)
        )
    return details


def hold_resources(
    session: Session,
    appointment: Appointment,
    start_at: datetime,
    end_at: datetime,
    allow_double_booking: bool,
) -> dict[str, Any]:
    """Refuse the time when a room or piece of equipment the appointment's services need is
    fully in use at its clinic during the visit or its buffers (naming it), unless double
    booking is explicitly allowed, which the returned audit details record. Locks the
    resources until the transaction ends."""
    service_ids = [s.id for s in services_of(appointment)]
    needed = required_resources(session, appointment.clinic_id, service_ids)
    if not needed:
        return {}
    lock_resources(session, [r.id for r in needed])
    timing = Timing(0, appointment.buffer_before_minutes, appointment.buffer_after_minutes)
    busy = resources_taken(
        session, appointment.clinic_id, service_ids, start_at, end_at, timing, appointment.id
    )
    if not busy:
        return {}
    if not allow_double_booking:
        clinic = appointment.clinic
        names = "; ".join(b.message(clinic.name) for b in busy)
        kept = f" (with {timing.words()})" if timing.words() else ""
        raise Conflict(
            f"{names}, on {clinic_time_range(clinic, start_at, end_at)}"
            f"{kept}. Choose another time or allow double booking for this appointment."
        )
    appointment.allow_double_booking = True
    return {"resources_overbooked": [b.name for b in busy]}


def visit_when(here: Clinic, visit: Appointment | Held) -> str:
    """Another visit that clashes with a booking at `here`, as its desk reads it: "on" its
    times on `here`'s clock, the booking form's. One at another clinic (a provider or a patient
    of two clinics) is named, with both zones and its own clock, since that is not the form's:
    "at Lakeside on Thu, 10 Dec 2026, 15:00–15:30 (GMT; 10:00 – 10:30 AM EST there)"."""
    there = visit.clinic
    ours = clinic_time_range(here, visit.start_at, visit.end_at)
    if there is None or there.id == here.id:
        return f"on {ours}"

    def zones(clinic: Clinic) -> str:
        ends = (to_local(visit.start_at, clinic.timezone), to_local(visit.end_at, clinic.timezone))
        return "/".join(dict.fromkeys(e.tzname() for e in ends))

    if (
        to_local(visit.start_at, there.timezone).date()
        == to_local(visit.start_at, here.timezone).date()
    ):
        theirs = clinic_clock_range(there, visit.start_at, visit.end_at).split(" (")[0]
    else:  # another day there
        theirs = clinic_time_range(there, visit.start_at, visit.end_at)
    return f"at {there.name} on {ours} ({zones(here)}; {theirs} {zones(there)} there)"


def _conflict_message(
    here: Clinic,
    provider: Provider,
    conflicts: list[Appointment | Held],
    start_at: datetime,
    end_at: datetime,
    timing: Timing,
    travel: timedelta = timedelta(0),
) -> str:
    """Who is busy when; when only buffers overlap, which ones keep the time free; when only
    the travel time between clinics does, that."""
    first = conflicts[0]
    what = (
        "is out of office"
        if first.kind == AppointmentKind.OUT_OF_OFFICE
        else f"keeps the original time of appointment #{first.id}, held while its patient "
        "answers a proposed new time,"
        if getattr(first, "held", False)
        else f"already has appointment #{first.id}"
    )
    more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
    kept = clash_margin(here, first, start_at, end_at, timing, travel)
    return (
        f"{provider.name} {what} {visit_when(here, first)}{kept}{more}. Choose another time "
        "or allow double booking for this appointment."
    )


def travel_margin(travel: timedelta) -> str:
    """ ", with 30 minutes' travel between clinics": a clash only through the travel time, as
    the booking form's free providers, a booking's or move's refusal and the no-show undo say."""
    return f", with {travel_words(travel)}"


def clash_margin(
    here: Clinic,
    first: Appointment | Held,
    start_at: datetime,
    end_at: datetime,
    timing: Timing,
    travel: timedelta,
) -> str:
    """Why `first` (found by find_conflicts for a visit at `here` from start_at to end_at,
    `timing` its buffers) clashes when it does not overlap the visit itself: only the travel
    time between clinics (travel_margin), or only the buffers, which ones; '' when it does."""
    before, after = timing.padding
    if travel_gap(here.id, first, start_at - before, end_at + after):  # only the travel time
        return travel_margin(travel)
    if first.start_at < end_at and first.end_at > start_at:
        return ""
    theirs = Timing(0, first.buffer_before_minutes, first.buffer_after_minutes).words()
    ours = timing.words()
    parts = ([f"{theirs} it"] if theirs else []) + ([f"{ours} this booking"] if ours else [])
    return f", with {' and '.join(parts)} (buffers)"


# what the confirmation staff may edit before sending shows where the patient's link goes
LINK_PLACEHOLDER = "(a personal link to cancel or reschedule is added when sending)"


def with_link(body: str, link: str) -> str:
    """A confirmation staff edited, with the patient's change link where the placeholder
    stood, or after the text when they took the placeholder out."""
    if LINK_PLACEHOLDER in body:
        return body.replace(LINK_PLACEHOLDER, link)
    return f"{body.rstrip()}\n\nTo cancel or reschedule: {link}"


def confirm(
    session: Session,
    appointment: Appointment,
    *,
    message: str = "",
    channels=None,
    subject=None,
    body=None,
) -> notify.Queued:
    change = tokens.issue(
        session,
        "change",
        appointment.id,
        max(appointment.start_at - utcnow(), timedelta(hours=1)),
        single_use=False,
    )
    link = tokens.link(base_url(session), "change", change.raw)
    return tell_patient(
        session,
        appointment,
        "appointment_scheduled",
        message=message,
        channels=channels,
        attachment=confirmation_attachment(session, appointment),
        subject=subject,
        body=with_link(body, link) if body else None,
        link=link,
    )


def count_audit_events(session: Session, appointment_id: int) -> int:
    """How many audit events an appointment has (tests and the detail page use it)."""
    return session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.entity == ENTITY, AuditEvent.entity_id == appointment_id)
    )
