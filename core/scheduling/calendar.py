"""Calendar reads: the events of one clinic inside the visible window, providers (or rooms and
equipment) as resources, and working hours for shading.

Only the window the calendar shows is read, through the (clinic_id, start_at) index: an
appointment lasts at most 12 hours, so `start_at` in (window start − 12 h, window end) bounds the
scan. Times leave here as clinic-local ISO strings with their UTC offset.

The calendar component (FullCalendar) runs with the clinic's IANA zone as its `timeZone` and no
time-zone plugin, so it shows each event at the wall time written in its string and hands
clicked times back as wall times labelled "Z". `callback_time` turns any time the component sends
back into UTC by reading its wall-clock part in the clinic's zone (DST-safe: core.kernel.clock).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import local_to_utc, to_local, zone
from core.kernel.errors import NotFound, ValidationError
from core.payments import prepay
from core.practice.travel import travel_time
from core.practice.treatment import more_services, treatment_text
from core.scheduling.availability import HOLDING, MAX_BUFFER, MAX_LENGTH, travel_for
from db.models import (
    OCCUPYING,
    Appointment,
    AppointmentKind,
    AppointmentService,
    AppointmentStatus,
    ChangeRequest,
    Clinic,
    Package,
    Patient,
    Provider,
    Resource,
    ResourceKind,
    Service,
    ServiceResource,
    TimeOff,
    WorkingHours,
)

S = AppointmentStatus
STATUS_COLOURS: dict[str, str] = {
    S.REQUESTED.value: "#7e57c2",  # purple
    S.TENTATIVE.value: "#f9a825",  # amber
    S.SCHEDULED.value: "#2e7d32",  # green
    S.CHECKED_IN.value: "#1565c0",  # blue
    S.COMPLETED.value: "#455a64",  # slate
    S.NO_SHOW.value: "#c62828",  # red
    S.DECLINED.value: "#8d6e63",  # brown
    S.CANCELLED.value: "#9e9e9e",  # grey
}
OUT_OF_OFFICE_COLOUR = "#616161"  # dark grey, drawn striped (class cd-out-of-office)
# a provider of several clinics booked at another one then (its travel time included):
# read-only background in their column, named by the clinic only (whose visit is not shown)
ELSEWHERE_COLOUR = "#5c6bc0"  # indigo
ELSEWHERE_LABEL = "Busy at another clinic"
OUT_OF_OFFICE_CLASS = "cd-out-of-office"
# an appointment's original time, held while a proposal answering its patient's change request
# waits (core.scheduling.availability.held): pale amber, outlined dashed (class cd-held)
HELD_COLOUR = "#ffe082"
HELD_CLASS = "cd-held"
TENTATIVE_COLOUR = STATUS_COLOURS[S.TENTATIVE.value]  # the held time's dashed outline
HELD_LABEL = "Held (original time)"
HELD_PREFIX = "held-"  # its event id: "held-12" (12 the appointment's, which a click opens)
STATUS_LABELS = {
    S.REQUESTED.value: "Requested",
    S.TENTATIVE.value: "Tentative (proposed)",
    S.SCHEDULED.value: "Scheduled",
    S.CHECKED_IN.value: "Checked in",
    S.COMPLETED.value: "Completed",
    S.NO_SHOW.value: "No-show",
    S.DECLINED.value: "Declined",
    S.CANCELLED.value: "Cancelled",
}
MOVABLE = (S.SCHEDULED,)  # what a drag may move (the life cycle decides the rest)
MAX_WINDOW = timedelta(days=62)  # a month view with its leading and trailing weeks fits
MAX_EVENTS = 5000


def legend() -> list[tuple[str, str]]:
    """(label, colour) for the page's legend, held, out-of-office and elsewhere last."""
    return [(STATUS_LABELS[s], c) for s, c in STATUS_COLOURS.items()] + [
        (HELD_LABEL, HELD_COLOUR),
        ("Out of office", OUT_OF_OFFICE_COLOUR),
        (ELSEWHERE_LABEL, ELSEWHERE_COLOUR),
    ]


def appointment_of(event_id: str) -> int:
    """The appointment an event shows: its id, or the one whose original time it holds."""
    return int(str(event_id).removeprefix(HELD_PREFIX))


def _clinic(session: Session, clinic_id: int) -> Clinic:
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    return clinic


def local_iso(moment: datetime, tz: str) -> str:
    """A UTC moment as the clinic's wall time with its offset, e.g. 2026-03-29T09:00:00+01:00."""
    return to_local(moment, tz).isoformat(timespec="seconds")


def _window_query(
    start: datetime,
    end: datetime,
    clinic_id: int,
    provider_ids: list[int] | None,
    statuses: list[str] | None,
):
    """The clinic's appointments overlapping [start, end): an indexed range on
    (clinic_id, start_at), longest appointment as the look-back."""
    query = (
        select(
            Appointment.id,
            Appointment.start_at,
            Appointment.end_at,
            Appointment.status,
            Appointment.kind,
            Appointment.provider_id,
            Appointment.notes,
            Patient.first_name,
            Patient.last_name,
            Service.name,
            Package.name,
        )
        .outerjoin(Patient, Patient.id == Appointment.patient_id)
        .outerjoin(Service, Service.id == Appointment.service_id)
        .outerjoin(Package, Package.id == Appointment.package_id)
        .where(*_in_window(start, end, clinic_id, provider_ids, statuses))
        .order_by(Appointment.start_at, Appointment.id)
        .limit(MAX_EVENTS)
    )
    return query


def _in_window(start, end, clinic_id, provider_ids, statuses) -> list:
    """The conditions of the window's appointments (_window_query's, and its visits' ids for the
    reads beside it: their services, what was paid)."""
    where = [
        Appointment.clinic_id == clinic_id,
        Appointment.start_at > start - MAX_LENGTH,
        Appointment.start_at < end,
        Appointment.end_at > start,
    ]
    if provider_ids:
        where.append(Appointment.provider_id.in_(provider_ids))
    if statuses:
        where.append(Appointment.status.in_([S(s) for s in statuses]))
    return where


def _held_query(start: datetime, end: datetime, clinic_id: int, provider_ids: list[int] | None):
    """The original times held for the clinic's proposals waiting for the patient, on
    core.scheduling.availability.held's conditions (HOLDING), starting in (start − 12 h, end):
    one query on the change requests' status index, with the patient's name (the end is the
    visit's length after the original start)."""
    query = (
        select(
            Appointment.id,
            ChangeRequest.original_start_at,
            Appointment.start_at,
            Appointment.end_at,
            ChangeRequest.original_provider_id,
            Patient.first_name,
            Patient.last_name,
        )
        .join(Appointment, Appointment.id == ChangeRequest.appointment_id)
        .outerjoin(Patient, Patient.id == Appointment.patient_id)
        .where(
            *HOLDING,
            Appointment.clinic_id == clinic_id,
            ChangeRequest.original_start_at > start - MAX_LENGTH,
            ChangeRequest.original_start_at < end,
        )
        .order_by(ChangeRequest.original_start_at, Appointment.id)
        .limit(MAX_EVENTS)
    )
    if provider_ids:
        query = query.where(ChangeRequest.original_provider_id.in_(provider_ids))
    return query


def _held_events(session, iso, clinic_id, start, end, provider_ids) -> list[dict[str, Any]]:
    """Each held original time as an event in its provider's column: not movable; a click
    opens the appointment whose time it is."""
    events = []
    for ident, original, start_at, end_at, provider_id, first, last in session.execute(
        _held_query(start, end, clinic_id, provider_ids)
    ):
        if start_at is None or end_at is None:
            continue
        ends = original + (end_at - start_at)
        if ends <= start:
            continue
        patient = f"{first} {last}".strip() if first is not None else ""
        who = f"{patient} (#{ident})" if patient else f"#{ident}"
        events.append(
            {
                "id": f"{HELD_PREFIX}{ident}",
                "title": f"Held: {who} — answering a proposed time",
                "start": iso(original),
                "end": iso(ends),
                "color": HELD_COLOUR,
                "resourceId": str(provider_id or ""),
                "editable": False,
                "classNames": [HELD_CLASS],
            }
        )
    return events


def _checked_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationError("The calendar window needs time zones (times are stored in UTC).")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if not start < end:
        raise ValidationError("The calendar window must end after it starts.")
    if end - start > MAX_WINDOW:
        raise ValidationError("Show at most two months at a time.")
    return start, end


def _title(out_of_office: bool, notes: str | None, patient: str, service: str | None) -> str:
    if out_of_office:
        return "Out of office" + (f": {notes}" if notes else "")
    return " · ".join(part for part in (patient, service) if part) or "Appointment"


def _open_window(session, actor, clinic_id, start, end) -> tuple[datetime, datetime, str]:
    """Permission, the checked UTC window and the clinic's time zone."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    start, end = _checked_window(start, end)
    return start, end, _clinic(session, clinic_id).timezone


def _events(session, tz, clinic_id, start, end, provider_ids, statuses) -> list[dict[str, Any]]:
    local, stamps = zone(tz), {}

    def iso(moment: datetime) -> str:  # appointments share their start and end times
        text = stamps.get(moment)
        if text is None:
            text = stamps[moment] = moment.astimezone(local).isoformat(timespec="seconds")
        return text

    colours = {S(k): v for k, v in STATUS_COLOURS.items()}
    ooo = AppointmentKind.OUT_OF_OFFICE
    rows = session.execute(_window_query(start, end, clinic_id, provider_ids, statuses)).all()
    # the window's visits as a query, not a list of a thousand ids to bind (10 ms on PostgreSQL)
    visits = select(Appointment.id).where(
        *_in_window(start, end, clinic_id, provider_ids, statuses), Appointment.kind != ooo
    )
    listed = more_services(session, visits)  # a visit of one service is named by its row
    events = []
    for (
        ident,
        start_at,
        end_at,
        status,
        kind,
        provider_id,
        notes,
        first,
        last,
        first_service,
        package,
    ) in rows:
        out_of_office = kind == ooo
        patient = f"{first} {last}".strip() if first is not None else ""
        # as the appointment page and Today name it: "Glow (Facial + Peel)", "Facial + Peel"
        names = listed.get(ident) or ([first_service] if first_service else [])
        event = {
            "id": str(ident),
            "title": _title(out_of_office, notes, patient, treatment_text(names, package)),
            "start": iso(start_at),
            "end": iso(end_at),
            "color": OUT_OF_OFFICE_COLOUR if out_of_office else colours[status],
            "resourceId": str(provider_id or ""),
            "editable": status in MOVABLE and not out_of_office,
        }
        if out_of_office:
            event["classNames"] = [OUT_OF_OFFICE_CLASS]
        events.append(event)
    paid = prepay.badges(session, visits)
    for event in events:  # the paid or deposit badge
        if badge := paid.get(int(event["id"])):
            event["title"] += f" · {badge}"
    if not statuses or S.TENTATIVE.value in statuses:  # shown with the proposals holding them
        events += _held_events(session, iso, clinic_id, start, end, provider_ids)
    return events


@dataclass(frozen=True)
class ProviderOption:
    id: int
    name: str
    colour: str


def list_providers(session: Session, clinic_id: int) -> list[ProviderOption]:
    """Active providers who work at the clinic (have weekly hours there), by name."""
    rows = session.execute(
        select(Provider.id, Provider.name, Provider.colour)
        .where(
            Provider.active.is_(True),
            Provider.id.in_(
                select(WorkingHours.provider_id).where(WorkingHours.clinic_id == clinic_id)
            ),
        )
        .order_by(Provider.name, Provider.id)
    )
    return [ProviderOption(*row) for row in rows]


def _hours_spec(rows: list[Any]) -> list[dict[str, Any]]:
    """Weekly hours as FullCalendar businessHours (daysOfWeek: 0 = Sunday)."""
    spans: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in rows:
        spans[(f"{row.starts:%H:%M}", f"{row.ends:%H:%M}")].append((row.weekday + 1) % 7)
    return [
        {"daysOfWeek": sorted(days), "startTime": s, "endTime": e}
        for (s, e), days in sorted(spans.items())
    ]


def _hours_by_provider(session: Session, clinic_id: int) -> dict[int, list[Any]]:
    """Each provider's weekly hours at the clinic: rows with weekday, starts and ends."""
    W = WorkingHours
    found: dict[int, list[Any]] = defaultdict(list)
    for row in session.execute(
        select(W.provider_id, W.weekday, W.starts, W.ends)
        .where(W.clinic_id == clinic_id)
        .order_by(W.weekday, W.starts)
    ):
        found[row.provider_id].append(row)
    return found


def list_resources(
    session: Session,
    clinic_id: int,
    provider_ids: list[int] | None = None,
    *,
    hours: dict[int, list[Any]] | None = None,
    providers: list[ProviderOption] | None = None,
) -> list[dict[str, Any]]:
    """The clinic's providers as FullCalendar resources, each shaded outside its own hours."""
    hours = _hours_by_provider(session, clinic_id) if hours is None else hours
    providers = list_providers(session, clinic_id) if providers is None else providers
    return [
        {
            "id": str(p.id),
            "title": p.name,
            "eventColor": p.colour,
            "businessHours": _hours_spec(hours.get(p.id, [])) or {"daysOfWeek": []},
        }
        for p in providers
        if not provider_ids or p.id in provider_ids
    ]


def business_hours(
    session: Session,
    clinic_id: int,
    provider_ids: list[int] | None = None,
    *,
    hours: dict[int, list[Any]] | None = None,
) -> list[dict[str, Any]]:
    """The union of the chosen providers' hours (all the clinic's when none chosen): plain views
    shade the time when none of them works."""
    hours = _hours_by_provider(session, clinic_id) if hours is None else hours
    rows = [r for pid, rs in hours.items() if not provider_ids or pid in provider_ids for r in rs]
    return _hours_spec(rows)


def _time_off(
    session: Session,
    clinic_id: int,
    tz: str,
    start: datetime,
    end: datetime,
    provider_ids: list[int] | None,
) -> list[dict[str, Any]]:
    """Time off of the clinic's active providers (or the chosen ones) in the window, as
    background events: one query."""
    working_here = select(WorkingHours.provider_id).where(WorkingHours.clinic_id == clinic_id)
    query = (
        select(TimeOff.provider_id, TimeOff.starts_at, TimeOff.ends_at, TimeOff.reason)
        .join(Provider, Provider.id == TimeOff.provider_id)
        .where(
            Provider.active.is_(True),
            TimeOff.provider_id.in_(working_here),
            TimeOff.starts_at < end,
            TimeOff.ends_at > start,
        )
    )
    if provider_ids:
        query = query.where(TimeOff.provider_id.in_(provider_ids))
    return [
        {
            "start": local_iso(s, tz),
            "end": local_iso(e, tz),
            "resourceId": str(pid),
            "display": "background",
            "color": OUT_OF_OFFICE_COLOUR,
            "title": f"Time off{': ' + reason if reason else ''}",
        }
        for pid, s, e, reason in session.execute(query)
    ]


def _elsewhere(
    session: Session,
    clinic_id: int,
    tz: str,
    start: datetime,
    end: datetime,
    provider_ids: list[int] | None,
) -> list[dict[str, Any]]:
    """The clinic's active providers' bookings at other clinics in the window (visits,
    out-of-office blocks there and original times held for proposals, as
    availability.find_conflicts counts them), widened by their buffers and the practice's
    travel time between clinics (none around a video visit, availability.travel_for): "Busy at
    Lakeside" background in their column, merged where they touch, naming no patient. One
    query for the window, however many bookings."""
    travel = travel_time(session)
    reach = MAX_LENGTH + MAX_BUFFER + travel
    ours = select(Provider.id).where(
        Provider.active.is_(True),
        Provider.id.in_(
            select(WorkingHours.provider_id).where(WorkingHours.clinic_id == clinic_id)
        ),
    )
    if provider_ids:
        ours = ours.where(Provider.id.in_(provider_ids))
    booked = (
        select(
            Appointment.provider_id,
            Clinic.name,
            Appointment.start_at.label("shown"),  # drawn from: the visit's own start
            Appointment.start_at,
            Appointment.end_at,
            Appointment.buffer_before_minutes,
            Appointment.buffer_after_minutes,
            Appointment.mode,
        )
        .join(Clinic, Clinic.id == Appointment.clinic_id)
        .where(
            Appointment.provider_id.in_(ours),
            Appointment.clinic_id != clinic_id,
            Appointment.status.in_(OCCUPYING),
            Appointment.start_at > start - reach,
            Appointment.start_at < end + MAX_BUFFER + travel,
            Appointment.end_at.is_not(None),
        )
    )
    kept = (
        select(
            ChangeRequest.original_provider_id,
            Clinic.name,
            ChangeRequest.original_start_at,
            Appointment.start_at,
            Appointment.end_at,
            Appointment.buffer_before_minutes,
            Appointment.buffer_after_minutes,
            Appointment.mode,
        )
        .join(Appointment, Appointment.id == ChangeRequest.appointment_id)
        .join(Clinic, Clinic.id == Appointment.clinic_id)
        .where(
            *HOLDING,
            ChangeRequest.original_provider_id.in_(ours),
            Appointment.clinic_id != clinic_id,
            ChangeRequest.original_start_at > start - reach,
            ChangeRequest.original_start_at < end + MAX_BUFFER + travel,
            Appointment.start_at.is_not(None),
            Appointment.end_at.is_not(None),
        )
    )
    spans: dict[tuple[int, str], list[tuple[datetime, datetime, bool]]] = defaultdict(list)
    rows = session.execute(booked.union_all(kept))
    for pid, name, shown, begins, ends, ahead, behind, mode in rows:
        gap = travel_for(travel, clinic_id, None, mode)  # another clinic: none around video
        first = shown - timedelta(minutes=ahead or 0) - gap
        last = shown + (ends - begins) + timedelta(minutes=behind or 0) + gap
        if first < end and last > start:
            spans[(pid, name)].append((first, last, bool(gap)))
    title = f" (+{travel // timedelta(minutes=1)} min travel)"
    events = []
    for (pid, name), found in sorted(spans.items()):
        merged: list[tuple[datetime, datetime, bool]] = []
        for first, last, travelled in sorted(found):
            if merged and first <= merged[-1][1]:
                was = merged[-1]
                merged[-1] = (was[0], max(last, was[1]), was[2] or travelled)
            else:
                merged.append((first, last, travelled))
        events += [
            {
                "start": local_iso(first, tz),
                "end": local_iso(last, tz),
                "resourceId": str(pid),
                "display": "background",
                "color": ELSEWHERE_COLOUR,
                "title": f"Busy at {name}{title if travelled else ''}",
            }
            for first, last, travelled in merged
        ]
    return events


# ---------------------------------------------------------------- the visible window


def callback_time(value: str, tz: str) -> datetime:
    """A time the calendar component sent back, as UTC.

    dateClick/select send the clicked wall time as "…Z"; events send "…+01:00" with the offset
    they were given (still the old one after a drag across a DST change). Both show the wall time
    the user saw, so the wall-clock part is read in the clinic's zone and the offset ignored,
    but for one case: a wall time the autumn change repeats (01:30 in London on 25 October 2026)
    sent with the offset of one of its two occurrences ("+00:00": the second) means that one, so
    an event there that is resized or dragged within the hour stays in its occurrence rather
    than moving an hour back. Any other repeated time is its first occurrence."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise ValidationError(f"{value!r} is not a date and time.") from None
    wall = parsed.replace(tzinfo=None)
    if parsed.tzinfo is not None and not value.endswith("Z"):  # an event's own offset
        second = wall.replace(tzinfo=zone(tz), fold=1).astimezone(UTC)
        shown = to_local(second, tz)  # a time the spring change skips does not come back
        if shown.fold == 1 and shown.utcoffset() == parsed.utcoffset():
            return second
    return local_to_utc(wall.date(), wall.time(), tz)


def callback_day(value: str) -> date:
    """The calendar date of a component value ("2026-03-29" or a full ISO time)."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except (ValueError, AttributeError):
        try:
            return date.fromisoformat(value[:10])
        except (ValueError, TypeError):
            raise ValidationError(f"{value!r} is not a date.") from None


VIEW_DAYS = {
    "timeGridDay": 1,
    "resourceTimeGridDay": 1,
    "listDay": 1,
    "timeGridWeek": 7,
    "resourceTimeGridWeek": 7,
    "resourceTimelineDay": 1,
    "resourceTimelineWeek": 7,
    "listWeek": 7,
    "dayGridMonth": 42,
}


def visible_window(view: str, anchor: date, tz: str, first_day: int = 1) -> tuple[date, date]:
    """The local days [first, last) a view shows around `anchor` (weeks start on Monday)."""
    days = VIEW_DAYS.get(view)
    if days is None:
        raise ValidationError(f"Unknown calendar view {view!r}.")
    zone(tz)
    if days == 1:
        return anchor, anchor + timedelta(days=1)
    if days == 7:
        start = anchor - timedelta(days=(anchor.weekday() - (first_day - 1)) % 7)
        return start, start + timedelta(days=7)
    first_of_month = anchor.replace(day=1)
    start = first_of_month - timedelta(days=(first_of_month.weekday() - (first_day - 1)) % 7)
    return start, start + timedelta(days=42)


def window_bounds(first: date, last: date, tz: str) -> tuple[datetime, datetime]:
    """UTC bounds of clinic-local days [first, last)."""
    return local_to_utc(first, time(0), tz), local_to_utc(last, time(0), tz)


# ---------------------------------------------------------------- what the page reads


@dataclass(frozen=True)
class CalendarFrame:
    """What a clinic's calendar needs besides its events."""

    clinic_id: int
    clinic_name: str
    timezone: str
    providers: list[ProviderOption]
    resources: list[dict[str, Any]]
    business_hours: list[dict[str, Any]]
    rooms: list[dict[str, Any]] = field(default_factory=list)  # rooms and equipment, by kind


def get_frame(
    session: Session, actor: Actor, clinic_id: int, provider_ids: list[int] | None = None
) -> CalendarFrame:
    ensure(actor, Permission.APPOINTMENTS_READ)
    clinic = _clinic(session, clinic_id)
    providers, hours = list_providers(session, clinic_id), _hours_by_provider(session, clinic_id)
    return CalendarFrame(
        clinic.id,
        clinic.name,
        clinic.timezone,
        providers,
        list_resources(session, clinic_id, provider_ids, hours=hours, providers=providers),
        business_hours(session, clinic_id, provider_ids, hours=hours),
        list_rooms(session, clinic_id),
    )


def window_events(
    session: Session,
    actor: Actor,
    *,
    clinic_id: int,
    start: datetime,
    end: datetime,
    provider_ids: list[int] | None = None,
    statuses: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The window's events as FullCalendar dicts, with providers' time off and their bookings
    at other clinics as background."""
    start, end, tz = _open_window(session, actor, clinic_id, start, end)
    return (
        _events(session, tz, clinic_id, start, end, provider_ids, statuses)
        + _time_off(session, clinic_id, tz, start, end, provider_ids)
        + _elsewhere(session, clinic_id, tz, start, end, provider_ids)
    )


def inactive_resources(
    session: Session, actor: Actor, *, clinic_id: int, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Columns for deactivated providers who still have appointments at the clinic in the
    window, named "(inactive)": the provider views show their bookings until they are moved
    (the frame's columns are the active providers only)."""
    start, end, _ = _open_window(session, actor, clinic_id, start, end)
    booked = select(Appointment.provider_id).where(
        Appointment.clinic_id == clinic_id,
        Appointment.start_at > start - MAX_LENGTH,
        Appointment.start_at < end,
        Appointment.end_at > start,
    )
    rows = session.execute(
        select(Provider.id, Provider.name, Provider.colour)
        .where(Provider.active.is_(False), Provider.id.in_(booked))
        .order_by(Provider.name, Provider.id)
    ).all()
    hours = _hours_by_provider(session, clinic_id) if rows else {}
    return [
        {
            "id": str(pid),
            "title": f"{name} (inactive)",
            "eventColor": colour,
            "businessHours": _hours_spec(hours.get(pid, [])) or {"daysOfWeek": []},
        }
        for pid, name, colour in rows
    ]


# ---------------------------------------------------------------- rooms and equipment

ROOM_PREFIX = "room-"  # resource ids of the room view, apart from the providers' ids
KIND_GROUPS = {ResourceKind.ROOM: "Rooms", ResourceKind.EQUIPMENT: "Equipment"}


def list_rooms(session: Session, clinic_id: int) -> list[dict[str, Any]]:
    """The clinic's active rooms and equipment as FullCalendar resources, grouped by kind."""
    rows = session.scalars(
        select(Resource)
        .where(Resource.clinic_id == clinic_id, Resource.active.is_(True))
        .order_by(Resource.kind.desc(), Resource.name)  # rooms, then equipment
    )
    return [
        {
            "id": f"{ROOM_PREFIX}{r.id}",
            "title": r.name + (f" (×{r.quantity})" if r.quantity > 1 else ""),
            "kind": KIND_GROUPS[r.kind],
        }
        for r in rows
    ]


def _rooms_held(
    session: Session, clinic_id: int, appointment_ids: list[int]
) -> dict[int, tuple[list[int], int, int]]:
    """Per appointment: the active rooms and equipment of the clinic its services need, and
    its buffers before and after (minutes)."""
    if not appointment_ids:
        return {}
    first = select(Appointment.id.label("aid"), Appointment.service_id.label("sid")).where(
        Appointment.id.in_(appointment_ids), Appointment.service_id.is_not(None)
    )
    listed = select(AppointmentService.appointment_id, AppointmentService.service_id).where(
        AppointmentService.appointment_id.in_(appointment_ids)
    )
    uses = first.union(listed).subquery()
    rows = session.execute(
        select(
            uses.c.aid,
            ServiceResource.resource_id,
            Appointment.buffer_before_minutes,
            Appointment.buffer_after_minutes,
        )
        .join(ServiceResource, ServiceResource.service_id == uses.c.sid)
        .join(Resource, Resource.id == ServiceResource.resource_id)
        .join(Appointment, Appointment.id == uses.c.aid)
        .where(Resource.clinic_id == clinic_id, Resource.active.is_(True))
        .distinct()
        .order_by(uses.c.aid, ServiceResource.resource_id)
    )
    held: dict[int, tuple[list[int], int, int]] = {}
    for aid, rid, before, after in rows:
        held.setdefault(aid, ([], before or 0, after or 0))[0].append(rid)
    return held


def room_events(
    session: Session,
    actor: Actor,
    *,
    clinic_id: int,
    start: datetime,
    end: datetime,
    provider_ids: list[int] | None = None,
    statuses: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The window's appointments in the rows of the rooms and equipment they use (one event
    across all of them), with the provider in the title and the buffers kept free around each
    as background; nothing to drag here."""
    start, end, tz = _open_window(session, actor, clinic_id, start, end)
    events = [
        e
        for e in _events(session, tz, clinic_id, start, end, provider_ids, statuses)
        if OUT_OF_OFFICE_CLASS not in e.get("classNames", ())  # these hold no room
    ]
    # a held original time keeps the rooms of its appointment's services, as the proposal does
    held = _rooms_held(session, clinic_id, sorted({appointment_of(e["id"]) for e in events}))
    names = {str(p.id): p.name for p in list_providers(session, clinic_id)}
    shown: list[dict[str, Any]] = []
    for event in events:
        if appointment_of(event["id"]) not in held:
            continue
        resource_ids, before, after = held[appointment_of(event["id"])]
        rows = [f"{ROOM_PREFIX}{r}" for r in resource_ids]
        who = names.get(event.pop("resourceId"), "")
        shown.append(
            event
            | {
                "title": event["title"] + (f" · {who}" if who else ""),
                "resourceIds": rows,
                "editable": False,
            }
        )
        begins, ends = datetime.fromisoformat(event["start"]), datetime.fromisoformat(event["end"])
        for minutes, span in (
            (before, (begins - timedelta(minutes=before), begins)),
            (after, (ends, ends + timedelta(minutes=after))),
        ):
            if minutes:
                shown.append(
                    {
                        "start": span[0].isoformat(timespec="seconds"),
                        "end": span[1].isoformat(timespec="seconds"),
                        "resourceIds": rows,
                        "display": "background",
                        "color": OUT_OF_OFFICE_COLOUR,
                        "title": "Kept free (buffer)",
                    }
                )
    return shown
