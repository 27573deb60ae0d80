"""The managers' request queue: four kinds of pending work, counted and listed in SQL.

- requests: booking requests waiting for a decision (status requested)
- reschedules / cancellations: patients' open change requests on scheduled appointments
- proposals: times the practice proposed, waiting for the patient (status tentative)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import to_local
from core.kernel.errors import NotFound, ValidationError
from core.kernel.locks import setting_row
from core.kernel.money import clinic_money, format_day, format_moment, format_moment_range
from core.practice.timing import Timing, timing_of
from core.practice.treatment import treatment_texts
from core.requests import flags
from core.scheduling.availability import (
    Slot,
    suggest_slots,
    time_asked_padded,
    time_of_day_label,
)
from core.scheduling.lifecycle import duration_of, services_of
from db.models import (
    Appointment,
    AppointmentService,
    AppointmentStatus,
    ChangeKind,
    ChangeRequest,
    ChangeStatus,
    Clinic,
    LinkToken,
    Patient,
    Provider,
    RequestFlag,
    Service,
    Setting,
    TimeOff,
    VisitMode,
)
from db.types import utcnow

STALE_KEY = "queue_stale_hours"
DEFAULT_STALE_HOURS = 24
PAGE_SIZE = 20  # a screenful: the table, the item picker and the bulk picker show one page


class QueueKind(enum.StrEnum):
    REQUESTS = "requests"
    RESCHEDULES = "reschedules"
    CANCELLATIONS = "cancellations"
    PROPOSALS = "proposals"


KIND_LABELS = {
    QueueKind.REQUESTS: "New requests",
    QueueKind.RESCHEDULES: "Reschedule requests",
    QueueKind.CANCELLATIONS: "Cancellation requests",
    QueueKind.PROPOSALS: "Waiting for the patient",
}


class QueueSort(enum.StrEnum):
    AGE = "age"  # oldest first
    SOON = "soon"  # the appointment (or requested day) soonest first


@dataclass(frozen=True)
class QueueRow:
    kind: QueueKind
    appointment_id: int
    version: int
    change_id: int | None
    change_version: int | None
    patient_name: str
    clinic_id: int
    clinic_name: str
    timezone: str
    service_name: str
    duration_minutes: int  # the whole visit's (all its services, as lifecycle.duration_of)
    provider_id: int | None
    provider_name: str
    source: str
    requested_day: date | None
    time_of_day: str | None
    start_at: datetime | None  # the booked / proposed / exact requested time
    requested_start_at: datetime | None  # a reschedule request's new time
    created_at: datetime  # when the request arrived (the proposal was made)
    age_hours: float
    stale: bool
    inside_window: bool
    fee_cents: int
    points: int
    reason: str
    notes: str
    check: str = ""  # a public request's flag for a person to check (db RequestFlag)
    check_choices: tuple[flags.FlagChoice, ...] = ()  # what the desk may do about it
    # a change request's appointment time when the patient asked (moved by the desk since
    # when it differs from start_at)
    original_start_at: datetime | None = None
    wish_passed: bool = False  # the day (or time) the patient asked for has passed
    answer_by: datetime | None = None  # a proposal: until when the patient's link answers it
    lapsed: bool = False  # a proposal whose link lapsed unanswered: the patient cannot answer
    # the provider's time off touching the asked-for (or proposed) time (_with_away): booked
    # as asked, the visit would land on a provider who is away, which the booking rule refuses
    away_from: datetime | None = None
    away_until: datetime | None = None
    away_whole_day: bool = False  # the ask is a whole day (no time, no time of day)
    locale: str = "en-GB"  # the clinic's: how times and money are shown
    currency: str = "GBP"
    # the time the visit keeps its provider free before and after it (its services' buffers,
    # core.practice.timing): time off may touch neither (availability.away_span)
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0

    def local(self, moment: datetime | None) -> datetime | None:
        return to_local(moment, self.timezone) if moment else None

    @property
    def moved_since_asked(self) -> bool:
        return self.original_start_at is not None and self.original_start_at != self.start_at


def stale_hours(session: Session) -> int:
    row = session.get(Setting, STALE_KEY)
    try:
        return (
            int((row.value or {}).get("hours", DEFAULT_STALE_HOURS)) if row else DEFAULT_STALE_HOURS
        )
    except (TypeError, ValueError):
        return DEFAULT_STALE_HOURS


def set_stale_hours(session: Session, actor: Actor, hours: int) -> None:
    ensure(actor, Permission.REQUESTS_DECIDE)
    if not isinstance(hours, int) or not 1 <= hours <= 24 * 30:
        raise ValidationError("The stale limit must be a whole number of hours from 1 to 720.")
    row = setting_row(session, STALE_KEY)
    row.value, row.updated_by_user_id = {"hours": hours}, actor.user_id
    session.add(row)
    audit.record(
        session, actor, "setting_saved", "setting", None, details={"key": STALE_KEY, "hours": hours}
    )


def _filtered(query: Select, clinic_id: int | None, provider_id: int | None) -> Select:
    if clinic_id is not None:
        query = query.where(Appointment.clinic_id == clinic_id)
    if provider_id is not None:
        query = query.where(Appointment.provider_id == provider_id)
    return query


def _appointments_of(status: AppointmentStatus) -> Select:
    return select(Appointment).where(Appointment.status == status)


def _changes_of(kind: ChangeKind) -> Select:
    """Open change requests on appointments still scheduled: one whose appointment was since
    cancelled, checked in or completed at the desk waits for nothing (and allows nothing)."""
    return (
        select(ChangeRequest)
        .join(Appointment, Appointment.id == ChangeRequest.appointment_id)
        .where(
            ChangeRequest.status == ChangeStatus.OPEN,
            ChangeRequest.kind == kind,
            Appointment.status == AppointmentStatus.SCHEDULED,
        )
    )


def queue_counts(
    session: Session, actor: Actor, *, clinic_id: int | None = None, provider_id: int | None = None
) -> dict[QueueKind, int]:
    """How many items of each kind wait: four index-backed counts in one statement."""
    ensure(actor, Permission.QUEUE_WORK)
    bases = {
        QueueKind.REQUESTS: _appointments_of(AppointmentStatus.REQUESTED),
        QueueKind.RESCHEDULES: _changes_of(ChangeKind.RESCHEDULE),
        QueueKind.CANCELLATIONS: _changes_of(ChangeKind.CANCEL),
        QueueKind.PROPOSALS: _appointments_of(AppointmentStatus.TENTATIVE),
    }
    counts = [
        _filtered(base, clinic_id, provider_id)
        .with_only_columns(func.count())
        .order_by(None)
        .scalar_subquery()
        for base in bases.values()
    ]
    return {
        kind: n or 0 for kind, n in zip(bases, session.execute(select(*counts)).one(), strict=True)
    }


# what a queue row reads of the appointment and, for change requests, of the request
_APPOINTMENT_COLUMNS = (
    Appointment.id,
    Appointment.version,
    Appointment.clinic_id,
    Appointment.provider_id,
    Appointment.source,
    Appointment.requested_day,
    Appointment.time_of_day,
    Appointment.start_at,
    Appointment.notes,
)
_CHANGE_COLUMNS = (
    ChangeRequest.id,
    ChangeRequest.version,
    ChangeRequest.requested_day,
    ChangeRequest.time_of_day,
    ChangeRequest.requested_start_at,
    ChangeRequest.inside_window,
    ChangeRequest.fee_cents,
    ChangeRequest.points,
    ChangeRequest.reason,
    ChangeRequest.original_start_at,
)


def list_queue(
    session: Session,
    actor: Actor,
    kind: QueueKind | str,
    *,
    clinic_id: int | None = None,
    provider_id: int | None = None,
    sort: QueueSort | str = QueueSort.AGE,
    page: int = 0,
    page_size: int = PAGE_SIZE,
    now: datetime | None = None,
) -> list[QueueRow]:
    """One page of one kind, sorted and filtered in SQL (plain columns, no ORM objects)."""
    ensure(actor, Permission.QUEUE_WORK)
    kind, sort = QueueKind(kind), QueueSort(sort)
    now = now or utcnow()
    limit = timedelta(hours=stale_hours(session))
    provider = aliased(Provider)
    is_change = kind in (QueueKind.RESCHEDULES, QueueKind.CANCELLATIONS)
    if is_change:
        arrived = ChangeRequest.created_at
        query = _changes_of(
            ChangeKind.RESCHEDULE if kind == QueueKind.RESCHEDULES else ChangeKind.CANCEL
        ).with_only_columns(*_APPOINTMENT_COLUMNS, *_CHANGE_COLUMNS)
        soon = [Appointment.start_at]
    else:
        status = (
            AppointmentStatus.REQUESTED
            if kind == QueueKind.REQUESTS
            else AppointmentStatus.TENTATIVE
        )
        arrived = Appointment.created_at if kind == QueueKind.REQUESTS else Appointment.updated_at
        query = _appointments_of(status).with_only_columns(*_APPOINTMENT_COLUMNS)
        soon = (
            [Appointment.requested_day, Appointment.start_at]
            if kind == QueueKind.REQUESTS
            else [Appointment.start_at]
        )
    query = _filtered(query, clinic_id, provider_id)
    query = query.add_columns(
        arrived,
        Patient.first_name,
        Patient.last_name,
        Clinic.name,
        Clinic.timezone,
        Service.name,
        Service.duration_minutes,
        provider.name,
        Clinic.locale,
        Clinic.currency,
    )
    query = (
        query.join(Clinic, Clinic.id == Appointment.clinic_id)
        .outerjoin(Patient, Patient.id == Appointment.patient_id)
        .outerjoin(Service, Service.id == Appointment.service_id)
        .outerjoin(provider, provider.id == Appointment.provider_id)
    )
    order = (
        [arrived, Appointment.id]
        if sort == QueueSort.AGE
        else [*(c.asc().nulls_last() for c in soon), arrived, Appointment.id]
    )
    query = query.order_by(*order).limit(page_size).offset(max(page, 0) * page_size)
    rows = []
    for record in session.execute(query):
        (
            appointment_id,
            version,
            clinic,
            provider_id_,
            source,
            requested_day,
            time_of_day,
            start_at,
            notes,
        ) = record[:9]
        change = record[9:19] if is_change else None
        created, first, last, clinic_name, tz, service_name, minutes, provider_name = record[-10:-2]
        locale, currency = record[-2:]
        if change:
            (
                change_id,
                change_version,
                requested_day,
                time_of_day,
                requested_start_at,
                inside_window,
                fee_cents,
                points,
                reason,
                original_start_at,
            ) = change
        else:
            change_id = change_version = requested_start_at = original_start_at = None
            inside_window, fee_cents, points, reason = False, 0, 0, ""
        age = (now - created).total_seconds() / 3600
        wished = requested_start_at if is_change else start_at
        wish_passed = kind in (QueueKind.REQUESTS, QueueKind.RESCHEDULES) and (
            wished < now
            if wished is not None
            else requested_day is not None and requested_day < to_local(now, tz).date()
        )
        rows.append(
            QueueRow(
                kind=kind,
                appointment_id=appointment_id,
                version=version,
                change_id=change_id,
                change_version=change_version,
                patient_name=f"{first or ''} {last or ''}".strip() or "—",
                clinic_id=clinic,
                clinic_name=clinic_name,
                timezone=tz,
                locale=locale or "en-GB",
                currency=currency or "GBP",
                service_name=service_name or "—",
                duration_minutes=minutes or 30,
                provider_id=provider_id_,
                provider_name=provider_name or "",
                source=source.value,
                requested_day=requested_day,
                time_of_day=time_of_day or None,
                start_at=start_at,
                requested_start_at=requested_start_at,
                created_at=created,
                age_hours=round(age, 1),
                stale=now - created > limit,
                inside_window=inside_window,
                fee_cents=fee_cents,
                points=points,
                reason=reason or "",
                notes=notes or "",
                original_start_at=original_start_at,
                wish_passed=wish_passed,
            )
        )
    # a package (or several services) by its name, as its page and the calendar name it:
    # the join above reads only the visit's first service
    named = treatment_texts(session, [r.appointment_id for r in rows])
    rows = [replace(r, service_name=named.get(r.appointment_id, r.service_name)) for r in rows]
    rows = _with_timing(session, rows)
    rows = _with_flags(session, rows)
    rows = _with_away(session, rows)
    return _with_answer_by(session, rows, now) if kind == QueueKind.PROPOSALS else rows


def _with_answer_by(session: Session, rows: list[QueueRow], now: datetime) -> list[QueueRow]:
    """Proposals with the time their patient's link answers them until (the latest live
    proposal link: core.requests.decisions.send_proposal). Past it the patient cannot answer:
    the proposal has lapsed, still holding its time (and a change request's original time),
    so it is flagged for the practice to propose again, or decline."""
    ids = [r.appointment_id for r in rows]
    live = (
        dict(
            session.execute(
                select(LinkToken.subject_id, func.max(LinkToken.expires_at))
                .where(
                    LinkToken.purpose == "proposal",
                    LinkToken.subject_id.in_(ids),
                    LinkToken.revoked_at.is_(None),
                    LinkToken.used_at.is_(None),
                    LinkToken.expires_at > now,
                )
                .group_by(LinkToken.subject_id)
            ).all()
        )
        if ids
        else {}
    )
    return [
        replace(
            r,
            answer_by=live.get(r.appointment_id),
            lapsed=r.appointment_id not in live,
            stale=r.stale or r.appointment_id not in live,
        )
        for r in rows
    ]


def _with_timing(session: Session, rows: list[QueueRow]) -> list[QueueRow]:
    """The page's rows with their visit's length and buffers as the booking rule reads them
    (timing_of the visit's services in order: lifecycle.place), in one query: the join in
    list_queue reads only the first service."""
    ids = [r.appointment_id for r in rows]
    if not ids:
        return rows
    services: dict[int, list[Any]] = {}
    for found in session.execute(
        select(
            Appointment.id,
            Service.duration_minutes,
            Service.buffer_before_minutes,
            Service.buffer_after_minutes,
        )
        .select_from(Appointment)
        .outerjoin(AppointmentService, AppointmentService.appointment_id == Appointment.id)
        # a visit without service rows (an old one): its one service (treatment.services_of)
        .join(
            Service,
            Service.id == func.coalesce(AppointmentService.service_id, Appointment.service_id),
        )
        .where(Appointment.id.in_(ids))
        .order_by(Appointment.id, AppointmentService.position)
    ):
        services.setdefault(found.id, []).append(found)
    timed = []
    for r in rows:
        timing = timing_of(services.get(r.appointment_id, []))
        timed.append(
            replace(
                r,
                duration_minutes=timing.minutes or r.duration_minutes,
                buffer_before_minutes=timing.before,
                buffer_after_minutes=timing.after,
            )
        )
    return timed


def _exact(row: QueueRow) -> datetime | None:
    """The exact time a row asks for: a reschedule's new time, else a proposal's or an exact
    request's time; None when it asks for a day or a time of day."""
    return row.requested_start_at if row.kind == QueueKind.RESCHEDULES else row.start_at


def _asks_exact_time(row: QueueRow) -> bool:
    return _exact(row) is not None


def away_asked(row: QueueRow) -> tuple[datetime, datetime] | None:
    """The time no time off of the row's provider may touch, in UTC, by the rule the time-off
    cover list reads a request by (availability.time_asked_padded, as
    core.scheduling.cover.asked_span, padded): an exact time's visit and its buffers, as the booking
    rule refuses it (accepting a proposal whose clean-up runs into time off is refused); a day
    or a time-of-day window as asked (the visit goes somewhere inside it). None for a
    cancellation, or with no provider."""
    if row.kind == QueueKind.CANCELLATIONS or row.provider_id is None:
        return None
    return time_asked_padded(
        _exact(row),
        timedelta(minutes=row.duration_minutes),
        row.requested_day,
        row.time_of_day,
        row.timezone,
        timedelta(minutes=row.buffer_before_minutes),
        timedelta(minutes=row.buffer_after_minutes),
    )


def _with_away(session: Session, rows: list[QueueRow]) -> list[QueueRow]:
    """The page's rows whose provider (the one asked for, the booking's, the proposal's) has
    time off touching the asked-for time (away_asked), with that time off: one query for the
    page."""
    spans = {r.appointment_id: span for r in rows if (span := away_asked(r)) is not None}
    if not spans:
        return rows
    providers = {r.provider_id for r in rows if r.appointment_id in spans}
    offs = session.execute(
        select(TimeOff.provider_id, TimeOff.starts_at, TimeOff.ends_at)
        .where(
            TimeOff.provider_id.in_(providers),
            TimeOff.starts_at < max(end for _, end in spans.values()),
            TimeOff.ends_at > min(start for start, _ in spans.values()),
        )
        .order_by(TimeOff.starts_at)
    ).all()
    marked = []
    for r in rows:
        span = spans.get(r.appointment_id)
        hit = span and next(
            (
                (starts, ends)
                for provider_id, starts, ends in offs
                if provider_id == r.provider_id and starts < span[1] and ends > span[0]
            ),
            None,
        )
        if hit:
            whole_day = not _asks_exact_time(r)
            r = replace(
                r,
                away_from=hit[0],
                away_until=hit[1],
                away_whole_day=whole_day and not r.time_of_day,
            )
        marked.append(r)
    return marked


def away_words(row: QueueRow) -> str:
    """The queue table's short mark: "Dr Test away that day" ('' when not away)."""
    if row.away_from is None:
        return ""
    return f"⚠ {row.provider_name} away {'that day' if row.away_whole_day else 'then'}"


def _with_flags(session: Session, rows: list[QueueRow]) -> list[QueueRow]:
    """The page's rows with their "check identity" (and similar) flags not handled yet, and
    what the desk may do about each (core.requests.flags), in three queries at most."""
    ids = [r.appointment_id for r in rows]
    found = (
        session.execute(
            select(RequestFlag, Patient)
            .join(Appointment, Appointment.id == RequestFlag.appointment_id)
            .join(Patient, Patient.id == Appointment.patient_id)
            .where(RequestFlag.appointment_id.in_(ids), RequestFlag.handled_at.is_(None))
        ).all()
        if ids
        else []
    )
    known = flags.known_records(session, [flag for flag, _ in found])  # maybe a known patient
    found_by = {flag.appointment_id: (flag, patient) for flag, patient in found}
    waiting = flags.undecided(session, list(found_by))  # asked, or a time proposed to them
    return [
        replace(
            r,
            check=found_by[r.appointment_id][0].flag,
            check_choices=tuple(
                flags.choices(
                    *found_by[r.appointment_id],
                    r.locale,
                    known,
                    waiting=r.appointment_id in waiting,
                )
            ),
        )
        if r.appointment_id in found_by
        else r
        for r in rows
    ]


def queue_view(
    session: Session,
    actor: Actor,
    kind: QueueKind | str,
    *,
    clinic_id: int | None = None,
    provider_id: int | None = None,
    sort: str = "age",
    page: int = 0,
) -> tuple[dict[QueueKind, int], list[QueueRow], int]:
    """What the queue page shows, in one session: the counts, a page of one kind, the stale
    limit in hours."""
    counts = queue_counts(session, actor, clinic_id=clinic_id, provider_id=provider_id)
    rows = list_queue(
        session, actor, kind, clinic_id=clinic_id, provider_id=provider_id, sort=sort, page=page
    )
    return counts, rows, stale_hours(session)


@dataclass(frozen=True)
class FilterOptions:
    clinics: list[tuple[int, str]]
    providers: list[tuple[int, str]]


def filter_options(session: Session, actor: Actor) -> FilterOptions:
    ensure(actor, Permission.APPOINTMENTS_READ)
    clinics = session.execute(select(Clinic.id, Clinic.name).order_by(Clinic.name)).all()
    providers = session.execute(
        select(Provider.id, Provider.name).where(Provider.active.is_(True)).order_by(Provider.name)
    ).all()
    return FilterOptions([tuple(c) for c in clinics], [tuple(p) for p in providers])


def suggest_for(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    change_id: int | None = None,
    provider_id: int | None = None,
    day: date | None = None,
    limit: int = 5,
) -> list[Slot]:
    """Slot suggestions for a request (or a change request): its service's duration, its
    requested day (or today) and time-of-day preference."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound(f"There is no appointment #{appointment_id}.")
    change = session.get(ChangeRequest, change_id) if change_id else None
    tz = appointment.clinic.timezone
    today = to_local(utcnow(), tz).date()
    wanted = change.requested_day if change else appointment.requested_day
    if change and change.requested_start_at:
        wanted = to_local(change.requested_start_at, tz).date()
    time_of_day = change.time_of_day if change else appointment.time_of_day
    minutes = int(duration_of(appointment).total_seconds() // 60)
    timing = timing_of(services_of(appointment))
    # Days are searched in order and the search stops at `limit`, so a short window that
    # already fills the list gives the same slots as the full two weeks while reading a
    # fraction of the bookings (a busy clinic has thousands in two weeks).
    slots: list[Slot] = []
    for days in SEARCH_WINDOWS:
        slots = suggest_slots(
            session,
            clinic_id=appointment.clinic_id,
            duration_minutes=minutes,
            day=max(day or wanted or today, today),
            provider_id=provider_id,
            time_of_day=time_of_day,
            limit=limit,
            search_days=days,
            service_ids=[s.id for s in services_of(appointment)],
            buffer_before_minutes=timing.before,
            buffer_after_minutes=timing.after,
            virtual=appointment.mode == VisitMode.VIRTUAL,  # no travel time around it
        )
        if len(slots) >= limit:
            break
    return slots


SEARCH_WINDOWS = (1, 14)  # days: the short first try, then suggest_slots' full window


def notices(row: QueueRow) -> list[str]:
    """What the manager should know before deciding on `row`, as sentences saying what to do."""

    def fmt(moment):
        return format_moment(moment, row.timezone, row.locale)

    said = []
    if row.wish_passed:
        asked = fmt(row.requested_start_at if row.change_id else row.start_at) or format_day(
            row.requested_day, row.locale
        )
        said.append(
            f"The time the patient asked for ({asked}) has passed. Propose a later time for "
            "them to accept, or decline saying why."
        )
    if row.moved_since_asked:
        said.append(
            f"The appointment was moved from {fmt(row.original_start_at)} to "
            f"{fmt(row.start_at)} after the patient asked"
            + (
                ": approving the cancellation is refused, since what it would cost may differ "
                "from what they were told. Ask the patient, then deny it to keep the new time, "
                "or cancel it from the appointment page."
                if row.kind == QueueKind.CANCELLATIONS
                else "; check with the patient that the new time is still what they want."
            )
        )
    if row.away_from is not None:
        off = format_moment_range(row.away_from, row.away_until, row.timezone, row.locale)
        kept = Timing(0, row.buffer_before_minutes, row.buffer_after_minutes).words()
        kept = f" (with {kept})" if kept and _asks_exact_time(row) else ""
        said.append(
            f"{row.provider_name} is on time off {off}, "
            + (
                f"which this proposed time{kept} runs into: the patient cannot accept it. "
                "Propose another time or provider (a new link is sent), or decline the request."
                if row.kind == QueueKind.PROPOSALS
                else f"touching the time the patient asked for{kept}: a time with them then is "
                "refused. Choose another provider or time, or decline saying why."
            )
        )
    if row.kind == QueueKind.PROPOSALS:
        if row.lapsed:
            said.append(
                "The patient did not answer and their link has lapsed, so they cannot answer "
                "now. The proposed time stays held until you act: propose a time again (a new "
                "link is sent), record their answer if they gave it on the phone, or decline "
                "the request."
            )
        else:
            said.append(f"The patient's link answers this proposal until {fmt(row.answer_by)}.")
    return said


def describe(row: QueueRow) -> dict[str, Any]:
    """A row as the queue table shows it (clinic-local times)."""

    def fmt(moment):
        return format_moment(moment, row.timezone, row.locale)

    wish = ""
    if row.requested_day:
        wish = format_day(row.requested_day, row.locale)
        if row.time_of_day:
            wish += f", {time_of_day_label(row.time_of_day, row.locale, in_text=True)}"
    base = {
        "#": row.appointment_id,
        "Patient": row.patient_name,
        "Service": row.service_name,
        "Clinic": row.clinic_name,
    }
    passed = " (passed)" if row.wish_passed else ""
    moved = f" (moved; asked when it was {fmt(row.original_start_at)})"
    if row.kind == QueueKind.REQUESTS:
        base |= {
            "Check": f"⚠ {row.check}" if row.check else "",
            "Requested": (fmt(row.start_at) or wish) + passed,
            "Away": away_words(row),
            "Source": row.source,
            "Notes": row.notes,
        }
    elif row.kind == QueueKind.RESCHEDULES:
        base |= {
            "Provider": row.provider_name,
            "Original": fmt(row.start_at) + (moved if row.moved_since_asked else ""),
            "Requested": (fmt(row.requested_start_at) or wish) + passed,
            "Away": away_words(row),
            "Reason": row.reason,
        }
    elif row.kind == QueueKind.CANCELLATIONS:
        alert = "⚠ inside window" if row.inside_window else ""
        cost = ", ".join(
            filter(
                None,
                [
                    f"fee {clinic_money(row, row.fee_cents)}" if row.fee_cents else "",
                    f"{row.points} points" if row.points else "",
                ],
            )
        )
        base |= {
            "Provider": row.provider_name,
            "Appointment": fmt(row.start_at) + (moved if row.moved_since_asked else ""),
            "Policy": alert,
            "Would cost": cost,
            "Reason": row.reason,
        }
    else:
        base |= {
            "Provider": row.provider_name,
            "Proposed": fmt(row.start_at),
            "Answer by": "⚠ lapsed: no answer" if row.lapsed else fmt(row.answer_by),
            "Away": away_words(row),
        }
    base |= {
        # the clinic's time, as every time the page shows (a proposal: when it was sent)
        ("Sent" if row.kind == QueueKind.PROPOSALS else "Arrived"): fmt(row.created_at),
        "Waiting (h)": row.age_hours,
        "Stale": "● stale" if row.stale else "",
    }
    return base
