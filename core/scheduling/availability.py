"""Provider availability: conflicts, working hours and free-slot suggestions.

Working hours are weekly, clinic-local wall times; every comparison is done in UTC after turning
the local period into UTC with core.kernel.clock (DST days are 23 or 25 hours long, still right).
On the day clocks change a period keeps its wall times: 09:00–17:00 is 8 real hours unless the
change falls inside it (00:00–06:00 is 5 real hours in spring, 7 in autumn, and the repeated
01:00–02:00 is worked, and offered, twice); a bound the spring change skips (01:30 in London)
is the change itself (local_edge_to_utc), so no slot starts or ends at a wall time outside the
hours.
An appointment is at most 12 hours long, which bounds every range scan on (provider_id, start_at).

Buffers: a service's buffer before and after keeps the provider and the rooms it uses free
around the visit. An appointment stores the buffers of its first and last service when placed
(the ones between its services are part of the visit), and two bookings conflict when their
visits widened by their buffers overlap. A buffer is at most MAX_BUFFER, which widens the scans.
Time off is kept clear of the visit and its buffers alike (time_off_during): the provider is
away then, so neither the preparation nor the clean-up can happen.

Travel time between clinics (core.practice.travel) is kept free between bookings at two
clinics, unless either is a video visit (VisitMode.VIRTUAL): nobody travels to one (travel_for).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.clock import local_edge_to_utc, local_to_utc, to_local
from core.kernel.errors import NotFound, ValidationError

# the windows and their one label live in the kernel (core.patients and core.messaging, below
# scheduling, say them too); re-exported here for scheduling's own callers and those above
from core.kernel.times_of_day import TIME_OF_DAY_WINDOWS as TIME_OF_DAY_WINDOWS
from core.kernel.times_of_day import time_of_day_label as time_of_day_label
from core.kernel.times_of_day import time_of_day_labels as time_of_day_labels
from core.practice.skills import able
from core.practice.timing import Timing
from core.practice.travel import travel_time
from db.models import (
    OCCUPYING,
    Appointment,
    AppointmentKind,
    AppointmentService,
    AppointmentStatus,
    ChangeRequest,
    ChangeStatus,
    Clinic,
    Patient,
    Provider,
    Resource,
    ServiceResource,
    TimeOfDay,
    TimeOff,
    VisitMode,
    WorkingHours,
)
from db.types import utcnow

MAX_LENGTH = timedelta(hours=12)
MAX_BUFFER = timedelta(minutes=240)  # core.practice.setup refuses a longer buffer


def time_asked(
    start_at: datetime | None,
    length: timedelta,
    day: date | None,
    time_of_day: TimeOfDay | str | None,
    tz: str,
) -> tuple[datetime, datetime] | None:
    """The time a request asks for, in UTC, from plain values: its exact time `start_at` for
    `length`, else the clinic-local (`tz`) `day`'s time-of-day window, else that whole day
    (23 or 25 hours on the days clocks change); None with neither a time nor a day. One
    reading for the time-off cover list (core.scheduling.cover.asked_span, from a request);
    time_asked_padded widens an exact time by the visit's buffers, as time off must keep clear
    of them (cover.asked_span padded, and the requests queue's away mark, queue.away_asked)."""
    if start_at is not None:
        return start_at, start_at + length
    if day is None:
        return None
    if time_of_day:
        first, last = TIME_OF_DAY_WINDOWS[TimeOfDay(time_of_day)]
        return local_edge_to_utc(day, first, tz), local_edge_to_utc(day, last, tz)
    return local_edge_to_utc(day, time(0), tz), local_edge_to_utc(day + timedelta(1), time(0), tz)


@dataclass(frozen=True)
class Slot:
    provider_id: int
    provider_name: str
    start_at: datetime
    end_at: datetime


def padded(appointment: Any) -> tuple[datetime, datetime]:
    """The time an appointment keeps its provider and rooms: its visit and its buffers."""
    return (
        appointment.start_at - timedelta(minutes=appointment.buffer_before_minutes or 0),
        appointment.end_at + timedelta(minutes=appointment.buffer_after_minutes or 0),
    )


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise ValidationError(f"The {name} needs a time zone (times are stored in UTC).")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Held:
    """An appointment's original time, held while a proposal answering its patient's change
    request waits: if they turn the proposal down, the booking goes back there, so nobody else
    may take it meanwhile. Read as a booking is: its provider, patient, visit and buffers."""

    id: int  # the appointment's
    clinic: Clinic
    provider: Provider | None
    patient: Patient | None
    start_at: datetime
    end_at: datetime
    buffer_before_minutes: int
    buffer_after_minutes: int
    kind: AppointmentKind = AppointmentKind.APPOINTMENT
    mode: VisitMode = VisitMode.IN_PERSON
    held: bool = True  # conflict messages say the time is held, not booked

    @property
    def clinic_id(self) -> int:
        return self.clinic.id


# a change request whose proposal waits for the patient holds its appointment's original time
HOLDING = (
    ChangeRequest.status == ChangeStatus.PROPOSED,
    Appointment.status == AppointmentStatus.TENTATIVE,
)


def held(
    session: Session,
    start_at: datetime,
    end_at: datetime,
    *,
    provider_ids: Collection[int] | None = None,
    patient_ids: Collection[int] | None = None,
    clinic_id: int | None = None,
    exclude_appointment_id: int | None = None,
    buffers: bool = True,
) -> list[Held]:
    """The original times held by proposals waiting for the patient (change requests
    proposed, their appointment tentative) that overlap [start_at, end_at), their buffers
    included unless `buffers=False`; of these providers, these patients or this clinic.
    One query, whatever the number of holds: each comes with its clinic, provider and
    patient."""
    query = (
        select(
            Appointment.id,
            Clinic,
            Provider,
            Patient,
            ChangeRequest.original_start_at,
            Appointment.start_at,
            Appointment.end_at,
            Appointment.buffer_before_minutes,
            Appointment.buffer_after_minutes,
            Appointment.mode,
        )
        .join(Appointment, Appointment.id == ChangeRequest.appointment_id)
        .join(Clinic, Clinic.id == Appointment.clinic_id)
        .outerjoin(Provider, Provider.id == ChangeRequest.original_provider_id)
        .outerjoin(Patient, Patient.id == Appointment.patient_id)
        .where(
            *HOLDING,
            ChangeRequest.original_start_at > start_at - MAX_LENGTH - MAX_BUFFER,
            ChangeRequest.original_start_at < end_at + MAX_BUFFER,
            Appointment.start_at.is_not(None),
            Appointment.end_at.is_not(None),
        )
        .order_by(ChangeRequest.original_start_at, Appointment.id)
    )
    if provider_ids is not None:
        query = query.where(ChangeRequest.original_provider_id.in_(list(provider_ids)))
    if patient_ids is not None:
        query = query.where(Appointment.patient_id.in_(list(patient_ids)))
    if clinic_id is not None:
        query = query.where(Appointment.clinic_id == clinic_id)
    if exclude_appointment_id is not None:
        query = query.where(Appointment.id != exclude_appointment_id)
    found = []
    for (
        aid,
        clinic,
        provider,
        patient,
        original,
        start,
        end,
        ahead,
        behind,
        mode,
    ) in session.execute(query):
        hold = Held(
            aid,
            clinic,
            provider,
            patient,
            original,
            original + (end - start),
            ahead or 0,
            behind or 0,
            mode=VisitMode(mode or VisitMode.IN_PERSON),
        )
        first, last = padded(hold) if buffers else (hold.start_at, hold.end_at)
        if first < end_at and last > start_at:
            found.append(hold)
    return found


def patients_visits(
    session: Session,
    patient_ids: Collection[int],
    start_at: datetime,
    end_at: datetime,
    *,
    exclude_appointment_id: int | None = None,
) -> dict[int, list[Appointment | Held]]:
    """Each patient's visits overlapping [start_at, end_at), an original time held for a
    waiting proposal of theirs included, earliest first: what they cannot be booked over (a
    patient with none is absent). One query for the visits and one for the held times,
    however many patients."""
    ids = list(dict.fromkeys(patient_ids))
    if not ids:
        return {}
    query = select(Appointment).where(
        Appointment.patient_id.in_(ids),
        Appointment.kind == AppointmentKind.APPOINTMENT,
        Appointment.status.in_(OCCUPYING),
        Appointment.start_at < end_at,
        Appointment.end_at > start_at,
    )
    if exclude_appointment_id is not None:
        query = query.where(Appointment.id != exclude_appointment_id)
    found: dict[int, list[Appointment | Held]] = defaultdict(list)
    for visit in session.scalars(query):
        found[visit.patient_id].append(visit)
    for hold in held(  # their visit's original time, if a proposal for it waits
        session,
        start_at,
        end_at,
        patient_ids=ids,
        exclude_appointment_id=exclude_appointment_id,
        buffers=False,
    ):
        found[hold.patient.id].append(hold)
    return {pid: sorted(v, key=lambda a: (a.start_at, a.id)) for pid, v in found.items()}


def patient_visits(
    session: Session,
    patient_id: int,
    start_at: datetime,
    end_at: datetime,
    *,
    exclude_appointment_id: int | None = None,
) -> list[Appointment | Held]:
    """The patient's visits overlapping [start_at, end_at), an original time held for a
    waiting proposal of theirs included, earliest first (patients_visits for one)."""
    found = patients_visits(
        session, [patient_id], start_at, end_at, exclude_appointment_id=exclude_appointment_id
    )
    return found.get(patient_id, [])


def find_conflicts(
    session: Session,
    provider_id: int,
    start_at: datetime,
    end_at: datetime,
    exclude_appointment_id: int | None = None,
    *,
    before: timedelta = timedelta(0),
    after: timedelta = timedelta(0),
    clinic_id: int | None = None,
    virtual: bool = False,
) -> list[Appointment | Held]:
    """Appointments and out-of-office blocks of the provider whose visit and buffers overlap
    [start_at - before, end_at + after) (a new booking's own buffers), and the original times
    held for proposals waiting (Held). With `clinic_id`, the clinic the time is asked at, a
    booking at another clinic also clashes when it ends or starts less than the practice's
    travel time between clinics (core.practice.travel) before or after (travel_gap), unless
    it or the time asked (`virtual`) is a video visit (travel_for)."""
    found = providers_conflicts(
        session,
        [provider_id],
        start_at,
        end_at,
        exclude_appointment_id,
        before=before,
        after=after,
        clinic_id=clinic_id,
        virtual=virtual,
    )
    return found.get(provider_id, [])


def providers_conflicts(
    session: Session,
    provider_ids: Collection[int],
    start_at: datetime,
    end_at: datetime,
    exclude_appointment_id: int | None = None,
    *,
    before: timedelta = timedelta(0),
    after: timedelta = timedelta(0),
    clinic_id: int | None = None,
    travel: timedelta | None = None,
    virtual: bool = False,
) -> dict[int, list[Appointment | Held]]:
    """find_conflicts for several providers at once, in the same few queries (the booking
    form's free providers): each provider with a clash, and theirs in time order. `travel` is
    the practice's travel time when the caller has read it already."""
    start_at, end_at = _aware(start_at, "start") - before, _aware(end_at, "end") + after
    if clinic_id is None or virtual:  # a video visit needs no travel either side
        travel = timedelta(0)
    elif travel is None:
        travel = travel_time(session)
    ids = list(provider_ids)
    query = (
        select(Appointment)
        .where(
            Appointment.provider_id.in_(ids),
            Appointment.start_at > start_at - MAX_LENGTH - MAX_BUFFER - travel,
            Appointment.start_at < end_at + MAX_BUFFER + travel,
            Appointment.end_at > start_at - MAX_BUFFER - travel,
            Appointment.status.in_(OCCUPYING),
        )
        .order_by(Appointment.start_at, Appointment.id)
    )
    if exclude_appointment_id is not None:
        query = query.where(Appointment.id != exclude_appointment_id)
    kept = held(
        session,
        start_at - travel,
        end_at + travel,
        provider_ids=ids,
        exclude_appointment_id=exclude_appointment_id,
    )
    found: dict[int, list[Appointment | Held]] = {}
    for other in [*session.scalars(query), *kept]:
        gap = travel_for(travel, clinic_id, other.clinic_id, other.mode)
        first, last = padded(other)
        if first < end_at + gap and last > start_at - gap:
            whose = other.provider.id if isinstance(other, Held) else other.provider_id
            found.setdefault(whose, []).append(other)
    return {pid: sorted(them, key=lambda a: (a.start_at, a.id)) for pid, them in found.items()}


def travel_for(
    travel: timedelta,
    here_id: int | None,
    there_id: int | None,
    there_mode: VisitMode | str | None,
) -> timedelta:
    """The travel time kept free between a time asked at clinic `here_id` and a booking at
    `there_id`: the practice's `travel` between two clinics, none at the same clinic or around
    a video visit (nobody travels to one; a caller asking for a video visit passes `travel` 0).
    """
    if here_id == there_id or there_mode == VisitMode.VIRTUAL:
        return timedelta(0)
    return travel


def travel_gap(here_id: int, other: Any, start_at: datetime, end_at: datetime) -> bool:
    """Whether `other` (a booking or a held time found by find_conflicts for a time at clinic
    `here_id`) clashes only through the travel time between clinics: at another clinic, and
    clear of [start_at, end_at) widened by both bookings' buffers (start_at and end_at already
    the new booking's buffers wide)."""
    first, last = padded(other)
    return other.clinic_id != here_id and not (first < end_at and last > start_at)


def lock_provider(session: Session, provider_id: int) -> None:
    """Serialise bookings of one provider: PostgreSQL takes a row lock until the transaction
    ends (SQLite's writers are serialised by BEGIN IMMEDIATE already)."""
    found = session.execute(
        select(Provider.id).where(Provider.id == provider_id).with_for_update()
    ).scalar()
    if found is None:
        raise NotFound(f"There is no provider #{provider_id}.")


def working_periods(
    hours: list[WorkingHours], day: date, tz: str
) -> list[tuple[datetime, datetime]]:
    """The provider's working periods on one clinic-local day, in UTC, merged when they touch
    (a bound the spring change skips is the change: local_edge_to_utc)."""
    spans = sorted(
        (local_edge_to_utc(day, h.starts, tz), local_edge_to_utc(day, h.ends, tz))
        for h in hours
        if h.weekday == day.weekday()
    )
    merged: list[tuple[datetime, datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def working_hours_cover(
    session: Session,
    provider_id: int,
    clinic_id: int,
    start_at: datetime,
    end_at: datetime,
    *,
    before: timedelta = timedelta(0),
    after: timedelta = timedelta(0),
) -> bool:
    """True when [start_at, end_at) lies inside one working period at that clinic and neither
    it nor its buffers (`before`, `after`) touch time off (time_off_during)."""
    start_at, end_at = _aware(start_at, "start"), _aware(end_at, "end")
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    hours = list(
        session.scalars(
            select(WorkingHours).where(
                WorkingHours.provider_id == provider_id, WorkingHours.clinic_id == clinic_id
            )
        )
    )
    day = to_local(start_at, clinic.timezone).date()
    covered = any(
        start <= start_at and end_at <= end
        for d in (day - timedelta(days=1), day)
        for start, end in working_periods(hours, d, clinic.timezone)
    )
    return covered and not on_time_off(
        session, provider_id, start_at, end_at, before=before, after=after
    )


def on_time_off(
    session: Session,
    provider_id: int,
    start_at: datetime,
    end_at: datetime,
    *,
    before: timedelta = timedelta(0),
    after: timedelta = timedelta(0),
) -> bool:
    """True when the provider has time off touching [start_at, end_at) or its buffers."""
    found = time_off_during(session, provider_id, start_at, end_at, before=before, after=after)
    return found is not None


def away_span(
    start_at: datetime,
    end_at: datetime,
    before: timedelta = timedelta(0),
    after: timedelta = timedelta(0),
) -> tuple[datetime, datetime]:
    """The time a visit [start_at, end_at) with its buffers `before` and `after` needs its
    provider there, which no time off may touch: the visit and its buffers (the provider is
    away, so neither the preparation nor the clean-up can happen). The one rule for time off:
    time_off_during, suggest_slots and the booking form's free providers ask it."""
    return start_at - before, end_at + after


def time_asked_padded(
    start_at: datetime | None,
    length: timedelta,
    day: date | None,
    time_of_day: TimeOfDay | str | None,
    tz: str,
    before: timedelta = timedelta(0),
    after: timedelta = timedelta(0),
) -> tuple[datetime, datetime] | None:
    """The time a request keeps its provider from time off, in UTC, from plain values: an exact
    time's visit widened by its buffers `before` and `after` (away_span: approved as asked, time
    off touching either is refused); a day or a time-of-day window as asked (time_asked), not
    padded: the visit goes somewhere inside it, and a padded day would catch time off ending at
    midnight the day before. None with neither a time nor a day."""
    span = time_asked(start_at, length, day, time_of_day, tz)
    if span is None or start_at is None:
        return span
    return away_span(*span, before, after)


def time_off_during(
    session: Session,
    provider_id: int,
    start_at: datetime,
    end_at: datetime,
    *,
    before: timedelta = timedelta(0),
    after: timedelta = timedelta(0),
) -> TimeOff | None:
    """The provider's first time off touching the visit [start_at, end_at) or its buffers
    (away_span), or None: what lifecycle.place refuses."""
    first, last = away_span(start_at, end_at, before, after)
    return session.scalar(
        select(TimeOff)
        .where(
            TimeOff.provider_id == provider_id,
            TimeOff.starts_at < last,
            TimeOff.ends_at > first,
        )
        .order_by(TimeOff.starts_at, TimeOff.id)
        .limit(1)
    )


def suggest_slots(
    session: Session,
    *,
    clinic_id: int,
    duration_minutes: int,
    day: date,
    provider_id: int | None = None,
    time_of_day: TimeOfDay | str | None = None,
    limit: int = 5,
    search_days: int = 14,
    step_minutes: int = 15,
    now: datetime | None = None,
    service_ids: list[int] | None = None,
    buffer_before_minutes: int = 0,
    buffer_after_minutes: int = 0,
    virtual: bool = False,
) -> list[Slot]:
    """The earliest free slots from `day` on (clinic-local) that fit the duration, the providers'
    working hours and time off, existing bookings and their buffers, the rooms and equipment
    the services need (`service_ids`, whose every service the provider must perform) and the
    time-of-day preference. The visit lies inside
    working hours; the visit and its buffers must be free of other bookings and time off
    (away_span). A booking at another clinic keeps the practice's travel time between clinics
    free before and after it too, unless it or the visit asked (`virtual`) is a video visit.

    One query each for hours, time off and bookings over the whole window; the rest is Python."""
    if duration_minutes <= 0 or duration_minutes > 12 * 60:
        raise ValidationError("The duration must be between 1 minute and 12 hours.")
    if step_minutes <= 0:
        raise ValidationError("The step must be at least one minute.")
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    tz = clinic.timezone
    window = TIME_OF_DAY_WINDOWS[TimeOfDay(time_of_day)] if time_of_day else None
    now = now or utcnow()
    duration, step = timedelta(minutes=duration_minutes), timedelta(minutes=step_minutes)
    before, after = Timing(0, buffer_before_minutes, buffer_after_minutes).padding

    hours_query = (
        select(WorkingHours, Provider.name)
        .join(Provider, Provider.id == WorkingHours.provider_id)
        .where(WorkingHours.clinic_id == clinic_id, Provider.active.is_(True))
    )
    if provider_id is not None:
        hours_query = hours_query.where(WorkingHours.provider_id == provider_id)
    hours: dict[int, list[WorkingHours]] = defaultdict(list)
    names: dict[int, str] = {}
    for row, name in session.execute(hours_query):
        hours[row.provider_id].append(row)
        names[row.provider_id] = name
    if service_ids:  # only providers who perform every service of the visit
        performers = able(session, hours, service_ids)
        hours = defaultdict(list, {p: rows for p, rows in hours.items() if p in performers})
    if not hours:
        return []

    first, last = day - timedelta(days=1), day + timedelta(days=search_days + 1)
    scan_start, scan_end = local_to_utc(first, time(0), tz), local_to_utc(last, time(0), tz)
    busy: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    # kept free around a booking at another clinic; a video visit needs none (travel_for)
    travel = timedelta(0) if virtual else travel_time(session)
    bookings = session.execute(
        select(
            Appointment.provider_id,
            Appointment.start_at,
            Appointment.end_at,
            Appointment.buffer_before_minutes,
            Appointment.buffer_after_minutes,
            Appointment.clinic_id,
            Appointment.mode,
        ).where(
            Appointment.provider_id.in_(list(hours)),
            Appointment.start_at > scan_start - MAX_LENGTH - MAX_BUFFER - travel,
            Appointment.start_at < scan_end + MAX_BUFFER + travel,
            Appointment.status.in_(OCCUPYING),
        )
    )
    for pid, start, end, ahead, behind, where, mode in bookings:
        if end is not None:
            gap = travel_for(travel, clinic_id, where, mode)
            busy[pid].append(
                (
                    start - timedelta(minutes=ahead or 0) - gap,
                    end + timedelta(minutes=behind or 0) + gap,
                )
            )
    for hold in held(session, scan_start - travel, scan_end + travel, provider_ids=list(hours)):
        gap = travel_for(travel, clinic_id, hold.clinic_id, hold.mode)
        first_held, last_held = padded(hold)
        busy[hold.provider.id].append((first_held - gap, last_held + gap))
    for pid, start, end in session.execute(
        select(TimeOff.provider_id, TimeOff.starts_at, TimeOff.ends_at).where(
            TimeOff.provider_id.in_(list(hours)),
            TimeOff.starts_at < scan_end,
            TimeOff.ends_at > scan_start - timedelta(days=366),
        )
    ):
        busy[pid].append((start, end))
    full = resource_full_spans(session, clinic_id, service_ids or [], scan_start, scan_end)
    intervals = {pid: _Busy(spans + full) for pid, spans in busy.items()}
    empty = _Busy(full)

    found: list[Slot] = []
    for offset in range(search_days):
        current = day + timedelta(days=offset)
        todays: list[Slot] = []
        for pid, rows in hours.items():
            taken = intervals.get(pid, empty)
            for period_start, period_end in working_periods(rows, current, tz):
                if window:
                    period_start = max(period_start, local_edge_to_utc(current, window[0], tz))
                    period_end = min(period_end, local_edge_to_utc(current, window[1], tz))
                cursor = period_start
                while cursor + duration <= period_end:
                    if cursor >= now:  # bookings and time off alike, buffers included
                        blocker = taken.first_overlap(
                            *away_span(cursor, cursor + duration, before, after)
                        )
                        if blocker is None:
                            todays.append(Slot(pid, names[pid], cursor, cursor + duration))
                        else:  # jump past the blocking booking, staying on the step grid
                            skip = max(1, -(-(blocker + before - cursor) // step))
                            cursor += step * skip
                            continue
                    cursor += step
        todays.sort(key=lambda s: (s.start_at, s.provider_name, s.provider_id))
        found.extend(todays)
        if len(found) >= limit:
            break
    return found[:limit]


class _Busy:
    """Sorted busy intervals of one provider; `first_overlap` returns when the blocking
    interval ends (or None when [start, end) is free)."""

    def __init__(self, spans: list[tuple[datetime, datetime]]) -> None:
        self.spans = sorted(spans)
        self.starts = [s for s, _ in self.spans]
        # running maximum of ends, so one bisect answers "does anything before end overlap?"
        self.max_end: list[datetime] = []
        for _, end in self.spans:
            self.max_end.append(max(end, self.max_end[-1]) if self.max_end else end)

    def first_overlap(self, start: datetime, end: datetime) -> datetime | None:
        index = bisect.bisect_left(self.starts, end)  # spans starting before `end`
        if index == 0 or self.max_end[index - 1] <= start:
            return None
        return self.max_end[index - 1]


# ---------------------------------------------------------------- rooms and equipment


@dataclass(frozen=True)
class BusyResource:
    """A room or piece of equipment whose every unit is taken during part of a period."""

    resource_id: int
    name: str
    quantity: int
    appointment_ids: tuple[int, ...]  # the bookings using it then

    def message(self, clinic_name: str) -> str:
        taken = ", ".join(f"#{i}" for i in self.appointment_ids[:3])
        plural = "s" if len(self.appointment_ids) > 1 else ""
        units = "in use" if self.quantity == 1 else f"all {self.quantity} in use"
        return f"{self.name} at {clinic_name} is busy then ({units} by appointment{plural} {taken})"


def required_resources(session: Session, clinic_id: int, service_ids: list[int]) -> list[Resource]:
    """The active rooms and equipment of this clinic that any of the services needs, by id."""
    if not service_ids:
        return []
    return list(
        session.scalars(
            select(Resource)
            .join(ServiceResource, ServiceResource.resource_id == Resource.id)
            .where(
                ServiceResource.service_id.in_(service_ids),
                Resource.clinic_id == clinic_id,
                Resource.active.is_(True),
            )
            .distinct()
            .order_by(Resource.id)
        )
    )


def lock_resources(session: Session, resource_ids: list[int]) -> None:
    """Serialise bookings that need the same room or equipment (PostgreSQL row locks, in id
    order so two bookings never wait on each other; SQLite serialises writers already)."""
    if resource_ids:
        session.execute(
            select(Resource.id)
            .where(Resource.id.in_(sorted(resource_ids)))
            .order_by(Resource.id)
            .with_for_update()
        ).all()


def resource_use(
    session: Session,
    clinic_id: int,
    resource_ids: list[int],
    start_at: datetime,
    end_at: datetime,
    exclude_appointment_id: int | None = None,
    *,
    buffers: bool = True,
) -> dict[int, list[tuple[datetime, datetime, int]]]:
    """Per resource: (start, end, appointment id) of the clinic's occupying bookings that need it
    and overlap [start_at, end_at), their buffers included (the visits alone: `buffers=False`)."""
    first_service = select(Appointment.id.label("aid"), Appointment.service_id.label("sid")).where(
        Appointment.service_id.is_not(None)
    )
    listed = select(AppointmentService.appointment_id, AppointmentService.service_id)
    uses = first_service.union(listed).subquery()
    query = (
        select(
            ServiceResource.resource_id,
            Appointment.start_at,
            Appointment.end_at,
            Appointment.id,
            Appointment.buffer_before_minutes,
            Appointment.buffer_after_minutes,
        )
        .join(uses, uses.c.aid == Appointment.id)
        .join(ServiceResource, ServiceResource.service_id == uses.c.sid)
        .where(
            Appointment.clinic_id == clinic_id,
            Appointment.start_at > start_at - MAX_LENGTH - MAX_BUFFER,
            Appointment.start_at < end_at + MAX_BUFFER,
            Appointment.end_at > start_at - MAX_BUFFER,
            Appointment.status.in_(OCCUPYING),
            ServiceResource.resource_id.in_(resource_ids),
        )
        .distinct()
    )
    if exclude_appointment_id is not None:
        query = query.where(Appointment.id != exclude_appointment_id)
    found: dict[int, list[tuple[datetime, datetime, int]]] = defaultdict(list)
    for rid, start, end, aid, ahead, behind in session.execute(query):
        if buffers:
            start, end = start - timedelta(minutes=ahead or 0), end + timedelta(minutes=behind or 0)
        if start < end_at and end > start_at:
            found[rid].append((start, end, aid))
    kept = held(
        session,
        start_at,
        end_at,
        clinic_id=clinic_id,
        exclude_appointment_id=exclude_appointment_id,
        buffers=buffers,
    )
    if kept:  # the rooms and equipment their services need stay held with them
        needs = session.execute(
            select(uses.c.aid, ServiceResource.resource_id)
            .join(ServiceResource, ServiceResource.service_id == uses.c.sid)
            .where(
                uses.c.aid.in_([h.id for h in kept]),
                ServiceResource.resource_id.in_(resource_ids),
            )
            .distinct()
        ).all()
        by_id = {h.id: h for h in kept}
        for aid, rid in needs:
            hold = by_id[aid]
            start, end = padded(hold) if buffers else (hold.start_at, hold.end_at)
            found[rid].append((start, end, -aid))  # its own use: the proposal may overlap it
    return found


def _full_spans(
    uses: list[tuple[datetime, datetime, int]], quantity: int
) -> list[tuple[datetime, datetime, tuple[int, ...]]]:
    """The periods in which at least `quantity` bookings use the resource at once."""
    edges = sorted(
        [(s, 1, aid) for s, _, aid in uses] + [(e, -1, aid) for _, e, aid in uses],
        key=lambda edge: (edge[0], edge[1]),  # an end before a start at the same moment
    )
    active: set[int] = set()
    spans: list[tuple[datetime, datetime, tuple[int, ...]]] = []
    opened: datetime | None = None
    for moment, step, aid in edges:
        if opened is not None and moment > opened:
            spans.append((opened, moment, tuple(sorted(active))))
        if step == 1:
            active.add(aid)
        else:
            active.discard(aid)
        opened = moment if len(active) >= quantity else None
    return spans


def resource_conflicts(
    session: Session,
    clinic_id: int,
    service_ids: list[int],
    start_at: datetime,
    end_at: datetime,
    exclude_appointment_id: int | None = None,
) -> list[BusyResource]:
    """The rooms and equipment the services need that are fully in use during part of
    [start_at, end_at) at this clinic (an appointment using them counts once per resource)."""
    start_at, end_at = _aware(start_at, "start"), _aware(end_at, "end")
    needed = required_resources(session, clinic_id, service_ids)
    if not needed:
        return []
    uses = resource_use(
        session, clinic_id, [r.id for r in needed], start_at, end_at, exclude_appointment_id
    )
    busy = []
    for resource in needed:
        spans = [
            holders
            for s, e, holders in _full_spans(uses.get(resource.id, []), resource.quantity)
            if s < end_at and e > start_at
        ]
        if spans:
            holders = tuple(sorted({abs(aid) for h in spans for aid in h}))  # held: -id
            busy.append(BusyResource(resource.id, resource.name, resource.quantity, holders))
    return busy


def resources_taken(
    session: Session,
    clinic_id: int,
    service_ids: list[int],
    start_at: datetime,
    end_at: datetime,
    timing: Timing,
    exclude_appointment_id: int | None = None,
) -> list[BusyResource]:
    """The check a booking must pass (core.scheduling.lifecycle.hold_resources) and the booking
    form warns of: the needed rooms and equipment fully in use during the visit [start_at,
    end_at) widened by its buffers (`timing`)."""
    before, after = timing.padding
    return resource_conflicts(
        session, clinic_id, service_ids, start_at - before, end_at + after, exclude_appointment_id
    )


def resource_full_spans(
    session: Session,
    clinic_id: int,
    service_ids: list[int],
    scan_start: datetime,
    scan_end: datetime,
) -> list[tuple[datetime, datetime]]:
    """Every period in the scan window when a resource the services need is fully in use
    (slot suggestions skip them)."""
    needed = required_resources(session, clinic_id, service_ids)
    if not needed:
        return []
    uses = resource_use(session, clinic_id, [r.id for r in needed], scan_start, scan_end)
    return [
        (s, e)
        for resource in needed
        for s, e, _ in _full_spans(uses.get(resource.id, []), resource.quantity)
    ]
