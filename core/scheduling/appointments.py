"""One appointment as the detail panel shows it: who, what, when (clinic-local), who created it,
its full history from the audit trail, and the actions this actor may take now."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import NotFound
from core.kernel.money import clinic_time, clinic_time_range, format_day
from core.messaging import reminders
from core.practice.timing import timing_of
from core.scheduling.availability import time_of_day_label
from core.scheduling.lifecycle import treatment_text
from core.scheduling.notes import notes_of
from core.scheduling.states import RULES, STATUS_WORDS, Action, allowed_actions, fhir_status
from core.scheduling.visits import (
    has_started,
    is_check_in_day,
    no_show_recorded_at,
    undo_no_show_open,
)
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    ChangeRequest,
    ChangeStatus,
    RequestFlag,
    Source,
    User,
)


@dataclass(frozen=True)
class HistoryEntry:
    at: str  # clinic-local
    who: str
    action: str
    from_status: str
    to_status: str
    reason: str
    message: str


@dataclass(frozen=True)
class NoteEntry:
    at: str  # clinic-local ("" when not known)
    who: str  # as named when written
    text: str  # as typed


@dataclass(frozen=True)
class OpenChange:
    id: int
    version: int
    kind: str
    requested: str
    reason: str
    inside_window: bool
    fee_cents: int
    points: int


@dataclass(frozen=True)
class AppointmentDetail:
    id: int
    version: int
    status: str
    status_words: str
    fhir_status: str
    kind: str
    mode: str
    patient_id: int | None
    patient_name: str
    patient_email: str
    patient_phone: str
    clinic_id: int
    clinic_name: str
    timezone: str
    service_ids: list[int]
    services: str
    duration_minutes: int
    provider_id: int | None
    provider_name: str
    start_at: datetime | None
    end_at: datetime | None
    when: str  # clinic-local text ("" for a request without a time)
    requested: str  # requested day and time of day, for requests
    requested_day: date | None
    time_of_day: str | None
    created_by: str
    notes: str
    decline_reason: str
    cancel_reason: str
    cancelled_by: str
    late_cancellation: bool
    double_booked: bool
    history: list[HistoryEntry]
    actions: list[Action]  # what the status and the actor allow
    open_change: OpenChange | None
    check_in_open: bool  # the visit's clinic-local day: Check in is offered then only
    undo_no_show_open: bool  # a no-show recorded today (clinic-local): Undo is offered then only
    started: bool = False  # the visit's start has come: Complete and No-show are offered then only
    check: str = ""  # a public request's flag for a person to check ("Check identity: …")
    confirmed: str = ""  # "Confirmed by the patient · when · channel" for the current time
    package: str = ""  # the package booked, when the services are one
    notes_written: list[NoteEntry] = field(default_factory=list)  # newest first
    may_add_note: bool = False  # an appointment (not a block) and the actor may update them


def get_appointment_detail(
    session: Session, actor: Actor, appointment_id: int
) -> AppointmentDetail:
    ensure(actor, Permission.APPOINTMENTS_READ)
    # a number typed or pasted into an address can be any length; the ids are 32-bit (SQLite
    # cannot even be asked about one past 64 bits)
    a = session.get(Appointment, appointment_id) if 0 < appointment_id < 2**31 else None
    if a is None:
        raise NotFound(f"There is no appointment #{appointment_id}.")
    clinic = a.clinic
    tz = clinic.timezone
    services = [s.service for s in a.services] or ([a.service] if a.service else [])
    if a.source == Source.ONLINE:
        created_by = f"Online appointment · {clinic_time(clinic, a.booked_at or a.created_at)}"
    else:
        user = session.get(User, a.created_by_user_id) if a.created_by_user_id else None
        origin = (
            "Imported" if a.source == Source.IMPORT else (user.display_name if user else "Staff")
        )
        created_by = f"{origin} · {clinic_time(clinic, a.created_at)}"
    requested = ""
    if a.requested_day:
        requested = format_day(a.requested_day, clinic.locale)
        if a.time_of_day:
            requested += f", {time_of_day_label(a.time_of_day, clinic.locale, in_text=True)}"
    history = [
        HistoryEntry(
            clinic_time(clinic, e.at),
            e.actor_label,
            audit.action_words(e.action),  # "Marked no-show", as the audit log says it
            e.from_status or "",
            e.to_status or "",
            e.reason or "",
            e.message or "",
        )
        for e in audit.history_of(session, "appointment", a.id)
    ]
    change = session.scalar(
        select(ChangeRequest)
        .where(ChangeRequest.appointment_id == a.id, ChangeRequest.status == ChangeStatus.OPEN)
        .order_by(ChangeRequest.id.desc())
        .limit(1)
    )
    open_change = None
    if change:
        wish = clinic_time(clinic, change.requested_start_at)
        if not wish and change.requested_day:
            wish = format_day(change.requested_day, clinic.locale)
        open_change = OpenChange(
            change.id,
            change.version,
            change.kind.value,
            wish,
            change.reason,
            change.inside_window,
            change.fee_cents,
            change.points,
        )
    patient = a.patient
    confirmed = reminders.confirmations(session, [a.id])
    return AppointmentDetail(
        id=a.id,
        version=a.version,
        status=a.status.value,
        status_words=STATUS_WORDS[a.status],
        fhir_status=fhir_status(a.status),
        kind=a.kind.value,
        mode=a.mode.value,
        patient_id=a.patient_id,
        patient_name=patient.full_name if patient else "",
        patient_email=(patient.email or "") if patient else "",
        patient_phone=(patient.phone or "") if patient else "",
        clinic_id=a.clinic_id,
        clinic_name=a.clinic.name,
        timezone=tz,
        service_ids=[s.id for s in services],
        services=treatment_text([s.name for s in services], a.package.name if a.package else None),
        duration_minutes=timing_of(services).minutes or 30,
        provider_id=a.provider_id,
        provider_name=a.provider.name if a.provider else "",
        start_at=a.start_at,
        end_at=a.end_at,
        when=clinic_time_range(clinic, a.start_at, a.end_at, zone=True),
        requested=requested,
        requested_day=a.requested_day,
        time_of_day=a.time_of_day.value if a.time_of_day else None,
        created_by=created_by,
        notes=a.notes or "",
        decline_reason=a.decline_reason or "",
        cancel_reason=a.cancel_reason or "",
        cancelled_by=a.cancelled_by or "",
        late_cancellation=a.late_cancellation,
        double_booked=a.allow_double_booking,
        history=history,
        actions=allowed_actions(a.status, actor),
        check_in_open=is_check_in_day(a.start_at, clinic.timezone),
        started=has_started(a.start_at),
        undo_no_show_open=a.status == AppointmentStatus.NO_SHOW
        and undo_no_show_open(no_show_recorded_at(session, [a.id]).get(a.id), clinic.timezone),
        open_change=open_change,
        check=session.scalar(  # a handled flag is not shown (as the queue hides it)
            select(RequestFlag.flag).where(
                RequestFlag.appointment_id == a.id, RequestFlag.handled_at.is_(None)
            )
        )
        or "",
        confirmed=confirmed[a.id].text(clinic) if a.id in confirmed else "",
        package=a.package.name if a.package else "",
        notes_written=[
            NoteEntry(clinic_time(clinic, n.written_at) if n.written_at else "", n.author, n.text)
            for n in notes_of(session, [a])[a.id]
        ],
        may_add_note=a.kind == AppointmentKind.APPOINTMENT
        and actor.can(RULES[Action.UPDATE].permission),
    )
