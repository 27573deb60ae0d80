"""Provider schedules: weekly working hours per clinic and time off.

Hours are clinic-local wall times per weekday (0 = Monday); time off is a UTC period. Booking
outside these needs an explicit override, which the life cycle records on the appointment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import local_edge_to_utc, local_today, to_local
from core.kernel.errors import Conflict, NotFound, ValidationError
from core.kernel.money import (
    DEFAULT_LOCALE,
    clinic_format,
    clinic_time,
    clinic_time_range,
    format_clock_range,
    weekday_name,
)
from core.scheduling import openings
from core.scheduling.availability import (
    MAX_BUFFER,
    OCCUPYING,
    away_span,
    held,
    lock_provider,
    working_periods,
)
from db.models import (
    Appointment,
    AppointmentKind,
    AuditEvent,
    Clinic,
    Patient,
    Provider,
    TimeOff,
    WorkingHours,
)
from db.types import utcnow

# The practice file's day names (a file format, not a display: screens use `weekday_name`)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAX_TIME_OFF = timedelta(days=366)
HELD_AHEAD = timedelta(days=3660)  # every held original time to come
CLASH_DAYS = 371  # hours at two clinics are compared over a year and a week of days


@dataclass(frozen=True)
class HoursRow:
    weekday: int
    starts: time
    ends: time

    def label(self, locale: str | None = DEFAULT_LOCALE) -> str:
        """The day and hours in the clinic's locale: en-GB 'Monday 09:00–12:00', de-DE
        'Montag 09:00–12:00'."""
        hours = format_clock_range(self.starts, self.ends, locale)
        return f"{weekday_name(self.weekday, locale)} {hours}"

    @property
    def record(self) -> dict:
        """For the audit trail: the ISO weekday (1 = Monday) and 24-hour times."""
        return {
            "weekday": self.weekday + 1,
            "starts": f"{self.starts:%H:%M}",
            "ends": f"{self.ends:%H:%M}",
        }


@dataclass(frozen=True)
class WorkDay:
    """One weekday's hours as a practice says them: from, to and an optional break (09:00–17:00
    with lunch 13:00–14:00 is the periods 09:00–13:00 and 14:00–17:00)."""

    weekday: int
    starts: time | None
    ends: time | None
    break_starts: time | None = None
    break_ends: time | None = None


def week_of(hours: list[HoursRow]) -> dict[int, WorkDay]:
    """The stored periods read as working days: a day's first start, its last end and the gap
    after its first period as the break (periods that touch are one). A day of three or more
    periods (a practice file's) shows its first break only; `periods_of` tells it apart."""
    days: dict[int, WorkDay] = {}
    for weekday, spans in _merged(hours).items():
        gap = (spans[0][1], spans[1][0]) if len(spans) > 1 else (None, None)
        days[weekday] = WorkDay(weekday, spans[0][0], spans[-1][1], *gap)
    return days


def periods_of(hours: list[HoursRow]) -> dict[int, int]:
    """How many separate periods each worked weekday has (touching ones counted as one)."""
    return {weekday: len(spans) for weekday, spans in _merged(hours).items()}


def _merged(hours: list[HoursRow]) -> dict[int, list[tuple[time, time]]]:
    spans: dict[int, list[tuple[time, time]]] = {}
    for row in sorted(hours, key=lambda r: (r.weekday, r.starts)):
        day = spans.setdefault(row.weekday, [])
        if day and row.starts <= day[-1][1]:
            day[-1] = (day[-1][0], max(row.ends, day[-1][1]))
        else:
            day.append((row.starts, row.ends))
    return spans


def _split(day: WorkDay, locale: str) -> list[HoursRow]:
    """A working day as its periods: the hours, less the break when one is given."""
    name = weekday_name(day.weekday, locale) if 0 <= day.weekday <= 6 else ""
    if day.break_starts is None and day.break_ends is None:
        return [HoursRow(day.weekday, day.starts, day.ends)]
    if day.break_starts is None or day.break_ends is None:
        raise ValidationError(
            f"{name}: give the time the break starts and ends, or leave both empty."
        )
    pause = format_clock_range(day.break_starts, day.break_ends, locale)
    if not day.break_starts < day.break_ends:
        raise ValidationError(f"{name}: the break must end after it starts ({pause}).")
    if day.starts is None or day.ends is None:
        raise ValidationError(f"{name}: give the time work starts and ends.")
    if not day.starts < day.break_starts or not day.break_ends < day.ends:
        hours = format_clock_range(day.starts, day.ends, locale)
        raise ValidationError(
            f"{name}: the break {pause} must fall within the hours {hours}, with work "
            "before and after it."
        )
    return [
        HoursRow(day.weekday, day.starts, day.break_starts),
        HoursRow(day.weekday, day.break_ends, day.ends),
    ]


@dataclass(frozen=True)
class TimeOffRow:
    id: int
    provider_id: int
    provider_name: str
    starts_at: datetime
    ends_at: datetime
    reason: str


def _provider(session: Session, provider_id: int) -> Provider:
    provider = session.get(Provider, provider_id)
    if provider is None:
        raise NotFound(f"There is no provider #{provider_id}.")
    return provider


def _clinic(session: Session, clinic_id: int) -> Clinic:
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    return clinic


def get_hours(session: Session, actor: Actor, provider_id: int, clinic_id: int) -> list[HoursRow]:
    ensure(actor, Permission.APPOINTMENTS_READ)
    rows = session.scalars(
        select(WorkingHours)
        .where(WorkingHours.provider_id == provider_id, WorkingHours.clinic_id == clinic_id)
        .order_by(WorkingHours.weekday, WorkingHours.starts)
    )
    return [HoursRow(r.weekday, r.starts, r.ends) for r in rows]


def _validate(hours: list[HoursRow], locale: str) -> list[HoursRow]:
    def span(row: HoursRow) -> str:
        return format_clock_range(row.starts, row.ends, locale)

    def day(row: HoursRow) -> str:
        return weekday_name(row.weekday, locale)

    cleaned = []
    for row in hours:
        if not 0 <= row.weekday <= 6:
            raise ValidationError("A weekday is a number from 0 (Monday) to 6 (Sunday).")
        if row.starts is None or row.ends is None:  # a cleared cell of the weekly table
            raise ValidationError(f"{day(row)}: give the time work starts and ends.")
        if not row.starts < row.ends:
            raise ValidationError(
                f"{day(row)}: the hours must end after they start "
                f"({span(row)}); a shift cannot run past midnight."
            )
        cleaned.append(row)
    cleaned.sort(key=lambda r: (r.weekday, r.starts))
    for before, after in zip(cleaned, cleaned[1:], strict=False):
        if before.weekday == after.weekday and after.starts < before.ends:
            raise ValidationError(
                f"{day(after)}: {span(before)} and {span(after)} overlap; merge them "
                "into one period."
            )
    return cleaned


def set_weekly_hours(
    session: Session, actor: Actor, *, provider_id: int, clinic_id: int, hours: list[HoursRow]
) -> list[HoursRow]:
    """Replace the provider's weekly hours at the clinic (an empty list: not working there).
    The provider's row is locked first, so two saves (here or at another clinic), a time off
    and a booking of the provider wait for each other rather than each checking a week the
    other is replacing."""
    ensure(actor, Permission.SCHEDULES_MANAGE)
    lock_provider(session, provider_id)
    provider, clinic = _provider(session, provider_id), _clinic(session, clinic_id)
    cleaned = _validate([HoursRow(int(h.weekday), h.starts, h.ends) for h in hours], clinic.locale)
    _refuse_clash_elsewhere(session, provider, clinic, cleaned)
    previous = get_hours(session, actor, provider_id, clinic_id)
    before = [h.record for h in previous]
    session.execute(
        delete(WorkingHours).where(
            WorkingHours.provider_id == provider_id, WorkingHours.clinic_id == clinic_id
        )
    )
    session.add_all(
        WorkingHours(
            provider_id=provider_id,
            clinic_id=clinic_id,
            weekday=r.weekday,
            starts=r.starts,
            ends=r.ends,
        )
        for r in cleaned
    )
    session.flush()
    session.expire(provider, ["working_hours"])
    _hours_added(session, provider_id, clinic, previous, cleaned)
    audit.record(
        session,
        actor,
        "working_hours_set",
        "provider",
        provider_id,
        message=f"Weekly hours at {clinic.name}",
        details={"clinic_id": clinic_id, "before": before, "after": [r.record for r in cleaned]},
    )
    return cleaned


def set_week(
    session: Session,
    actor: Actor,
    *,
    provider_id: int,
    clinic_id: int,
    days: list[WorkDay],
    seen: list[HoursRow] | None = None,
) -> list[HoursRow]:
    """Replace the provider's weekly hours at the clinic with working days as the week table
    gives them (from, to, an optional break). A day given as `week_of` reads the stored hours
    keeps its periods as they are (a practice file's three periods are not cut to two).
    `seen`: the hours the table was filled from; changed since (at another desk), nothing is
    saved, since the whole week would put back what was changed there."""
    ensure(actor, Permission.SCHEDULES_MANAGE)
    lock_provider(session, provider_id)
    clinic = _clinic(session, clinic_id)
    stored = get_hours(session, actor, provider_id, clinic_id)
    if seen is not None and _ordered(seen) != _ordered(stored):
        raise _changed_meanwhile(session, _provider(session, provider_id), clinic)
    shown = week_of(stored)
    hours: list[HoursRow] = []
    for day in days:
        if shown.get(day.weekday) == day:
            hours += [h for h in stored if h.weekday == day.weekday]
        else:
            hours += _split(day, clinic.locale)
    return set_weekly_hours(
        session, actor, provider_id=provider_id, clinic_id=clinic_id, hours=hours
    )


def _ordered(hours: list[HoursRow]) -> list[tuple[int, time, time]]:
    return sorted((h.weekday, h.starts, h.ends) for h in hours)


def _changed_meanwhile(session: Session, provider: Provider, clinic: Clinic) -> Conflict:
    """The refusal of a week saved over hours changed since it was opened: by whom and when."""
    events = session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.action == "working_hours_set",
            AuditEvent.entity == "provider",
            AuditEvent.entity_id == provider.id,
        )
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(20)
    )
    here = (e for e in events if (e.details or {}).get("clinic_id") == clinic.id)
    event = next(here, None)
    by = f" by {event.actor_label} at {clinic_time(clinic, event.at, zone=True)}" if event else ""
    return Conflict(
        f"{provider.name}'s weekly hours at {clinic.name} were changed{by} since this table "
        "was opened, so nothing was saved. Reload the page to see them, then make your "
        "change again."
    )


def _refuse_clash_elsewhere(
    session: Session, provider: Provider, clinic: Clinic, hours: list[HoursRow]
) -> None:
    """Refuse hours covering a moment the provider works at another clinic. Each clinic's hours
    are its own wall times, so they are compared as the moments they are, day by day over the
    coming year (every daylight-saving change of both zones, which do not change together)."""
    elsewhere = session.execute(
        select(WorkingHours, Clinic)
        .join(Clinic, Clinic.id == WorkingHours.clinic_id)
        .where(WorkingHours.provider_id == provider.id, WorkingHours.clinic_id != clinic.id)
        .order_by(WorkingHours.weekday, WorkingHours.starts, WorkingHours.id)
    ).all()
    if not elsewhere or not hours:
        return
    today = local_today(clinic.timezone)
    for offset in range(CLASH_DAYS):
        day = today + timedelta(days=offset)
        mine = _moments(hours, (day,), clinic.timezone)
        near = (day - timedelta(days=1), day, day + timedelta(days=1))
        for other, there in elsewhere if mine else ():
            for start, end in _moments([other], near, there.timezone):
                for my_start, my_end in mine:
                    if start < my_end and my_start < end:
                        both = (max(start, my_start), min(end, my_end))
                        raise _clash(provider, clinic, other, there, both)


def _moments(hours, days, tz: str) -> list[tuple[datetime, datetime]]:
    """The UTC periods the weekly `hours` cover on the clinic-local `days` (as working_periods
    reads them)."""
    return [
        (local_edge_to_utc(day, h.starts, tz), local_edge_to_utc(day, h.ends, tz))
        for day in days
        for h in hours
        if h.weekday == day.weekday()
    ]


def _clash(
    provider: Provider,
    clinic: Clinic,
    other: WorkingHours,
    there: Clinic,
    both: tuple[datetime, datetime],
) -> ValidationError:
    """The refusal naming the other clinic's hours (and, on another clock, when they are here)."""
    hours = format_clock_range(other.starts, other.ends, clinic.locale)
    when = f"{weekday_name(other.weekday, clinic.locale, in_text=True)} {hours}"
    if there.timezone != clinic.timezone:
        when += f" ({there.timezone}), here {clinic_time_range(clinic, *both)}"
    return ValidationError(
        f"{provider.name} already works at {there.name} on {when}; change those hours first."
    )


def first_working_day(session: Session, actor: Actor, clinic_id: int, day: date) -> date:
    """`day`, or the first day of the week from it on which an active provider works at the
    clinic (`day` itself when nobody has hours there yet)."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    worked = set(
        session.scalars(
            select(WorkingHours.weekday)
            .join(Provider, Provider.id == WorkingHours.provider_id)
            .where(WorkingHours.clinic_id == clinic_id, Provider.active.is_(True))
            .distinct()
        )
    )
    ahead = next((n for n in range(7) if (day + timedelta(days=n)).weekday() in worked), 0)
    return day + timedelta(days=ahead)


def _aware(moment: datetime, name: str) -> datetime:
    if moment is None or moment.tzinfo is None:
        raise ValidationError(f"The {name} needs a date, a time and a time zone.")
    return moment.astimezone(UTC)


def time_off_span(
    first: date, first_at: time | None, last: date, last_at: time | None, tz: str
) -> tuple[datetime, datetime]:
    """Time off typed as clinic-local days and times, in UTC: an empty start time is the first
    day's midnight, an empty end time the midnight after the last day (whole days: 23 or 25
    hours on the days clocks change). A time the spring change skips is the change itself
    (local_edge_to_utc): time off to 01:30 in London on 29 March 2026 ends at 02:00 BST."""
    ends = (last, last_at) if last_at is not None else (last + timedelta(days=1), time(0))
    return local_edge_to_utc(first, first_at or time(0), tz), local_edge_to_utc(*ends, tz)


def add_time_off(
    session: Session,
    actor: Actor,
    *,
    provider_id: int,
    starts_at: datetime,
    ends_at: datetime,
    reason: str = "",
    clinic_id: int | None = None,
    past: bool = False,
) -> TimeOff:
    """Time off for a provider; `clinic_id` is whose local time a refusal is told in (the
    practice's first clinic when not given). Time off already over is refused (it would be
    listed nowhere and change nothing) unless `past` (a practice file restoring its record)."""
    ensure(actor, Permission.SCHEDULES_MANAGE)
    lock_provider(session, provider_id)  # two at once: the second sees the first's overlap
    provider = _provider(session, provider_id)
    starts_at, ends_at = _aware(starts_at, "start of the time off"), _aware(ends_at, "end")
    if not starts_at < ends_at:
        raise ValidationError("Time off must end after it starts.")
    if ends_at - starts_at > MAX_TIME_OFF:
        raise ValidationError("Enter time off of at most a year at once.")
    if not past and ends_at <= utcnow():
        when = clinic_time_range(clinic_format(session, clinic_id), starts_at, ends_at, zone=True)
        raise ValidationError(
            f"That time off ({when}) is over already; enter time off that is still to come."
        )
    reason = (reason or "").strip()
    if len(reason) > 200:
        raise ValidationError("Keep the reason under 200 characters.")
    overlap = session.scalar(
        select(TimeOff).where(
            TimeOff.provider_id == provider_id,
            TimeOff.starts_at < ends_at,
            TimeOff.ends_at > starts_at,
        )
    )
    if overlap is not None:
        when = clinic_time_range(
            clinic_format(session, clinic_id), overlap.starts_at, overlap.ends_at, zone=True
        )
        raise ValidationError(
            f"{provider.name} already has time off ({when}) that overlaps; change that one instead."
        )
    row = TimeOff(provider_id=provider_id, starts_at=starts_at, ends_at=ends_at, reason=reason)
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "time_off_added",
        "provider",
        provider_id,
        reason=reason or None,
        details={
            "time_off_id": row.id,
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
        },
    )
    return row


def remove_time_off(session: Session, actor: Actor, time_off_id: int) -> None:
    ensure(actor, Permission.SCHEDULES_MANAGE)
    # locked and read afresh: of two removals at once, the second finds it gone
    row = session.get(TimeOff, time_off_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFound(f"There is no time off #{time_off_id} (removed already?).")
    details = {
        "time_off_id": row.id,
        "starts_at": row.starts_at.isoformat(),
        "ends_at": row.ends_at.isoformat(),
    }
    provider_id, reason = row.provider_id, row.reason
    for clinic_id in _clinics_of(session, provider_id):
        openings.slot_opened(
            session,
            clinic_id=clinic_id,
            provider_id=provider_id,
            start_at=row.starts_at,
            end_at=min(row.ends_at, utcnow() + openings.HOURS_HORIZON),
            reason="time_off",
        )
    session.delete(row)
    session.flush()
    audit.record(
        session,
        actor,
        "time_off_removed",
        "provider",
        provider_id,
        reason=reason or None,
        details=details,
    )


def list_time_off(
    session: Session,
    actor: Actor,
    *,
    since: datetime,
    provider_id: int | None = None,
    limit: int = 200,
) -> list[TimeOffRow]:
    """Time off ending after `since`, soonest first."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    query = (
        select(
            TimeOff.id,
            TimeOff.provider_id,
            Provider.name,
            TimeOff.starts_at,
            TimeOff.ends_at,
            TimeOff.reason,
        )
        .join(Provider, Provider.id == TimeOff.provider_id)
        .where(TimeOff.ends_at > since)
        .order_by(TimeOff.starts_at, TimeOff.id)
        .limit(limit)
    )
    if provider_id is not None:
        query = query.where(TimeOff.provider_id == provider_id)
    return [TimeOffRow(*row) for row in session.execute(query)]


def bookings_during(
    session: Session, actor: Actor, provider_id: int, starts_at: datetime, ends_at: datetime
) -> int:
    """How many live appointments the provider has in a period (to warn before time off),
    counting an original time held for a waiting proposal, where a refusal puts it back."""
    return bookings_in_time_off(session, actor, provider_id, starts_at, ends_at)[0]


@dataclass(frozen=True)
class BookedVisit:
    """A live visit of a provider in a period: its times there (an original time held for a
    waiting proposal: that time, `held`), its clinic and patient."""

    id: int
    start_at: datetime
    end_at: datetime
    clinic: Clinic
    patient: Patient | None
    held: bool = False


def _touches(visit: Appointment, starts_at: datetime, ends_at: datetime) -> bool:
    """Whether the visit or its buffers touch [starts_at, ends_at) (availability.away_span)."""
    first, last = away_span(
        visit.start_at,
        visit.end_at,
        timedelta(minutes=visit.buffer_before_minutes or 0),
        timedelta(minutes=visit.buffer_after_minutes or 0),
    )
    return first < ends_at and last > starts_at


def booked_in(
    session: Session, provider_id: int, starts_at: datetime, ends_at: datetime
) -> list[BookedVisit]:
    """The provider's live appointments overlapping a period (a time off), their buffers
    included as the booking rule keeps them clear of time off (availability.away_span: the
    provider away, the clean-up cannot happen), soonest first, counting an original time held
    for a waiting proposal (a refusal puts the visit back there) once."""
    booked = session.execute(
        select(Appointment, Clinic, Patient)
        .join(Clinic, Clinic.id == Appointment.clinic_id)
        .outerjoin(Patient, Patient.id == Appointment.patient_id)
        .where(
            Appointment.provider_id == provider_id,
            Appointment.kind == AppointmentKind.APPOINTMENT,
            Appointment.status.in_(OCCUPYING),
            Appointment.start_at < ends_at + MAX_BUFFER,
            Appointment.end_at > starts_at - MAX_BUFFER,
        )
    ).all()
    kept = held(session, starts_at, ends_at, provider_ids=[provider_id])
    found = {
        a.id: BookedVisit(a.id, a.start_at, a.end_at, clinic, patient)
        for a, clinic, patient in booked
        if _touches(a, starts_at, ends_at)
    }
    for h in kept:  # its visit may be booked in the period too (proposed there): named once
        found.setdefault(h.id, BookedVisit(h.id, h.start_at, h.end_at, h.clinic, h.patient, True))
    return sorted(found.values(), key=lambda b: (b.start_at, b.id))


def bookings_in_time_off(
    session: Session,
    actor: Actor,
    provider_id: int,
    starts_at: datetime,
    ends_at: datetime,
    shown: int = 5,
) -> tuple[int, list[str]]:
    """The provider's live appointments in a period (time off just added), to be moved or
    cancelled: how many, and the first `shown` as '#12 Mon, 7 Dec 2026, 09:00–09:30 Alex
    Morgan' in their clinic's time, so the desk knows whom to call. An original time held for
    a waiting proposal counts (a refusal puts the visit back there) and reads '(held)'."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    ordered = booked_in(session, provider_id, starts_at, ends_at)
    return len(ordered), [
        f"#{b.id} {clinic_time_range(b.clinic, b.start_at, b.end_at)} "
        f"{b.patient.full_name if b.patient else ''}{' (held)' if b.held else ''}".rstrip()
        for b in ordered[:shown]
    ]


def bookings_outside_hours(
    session: Session, actor: Actor, provider_id: int, clinic_id: int, shown: int = 5
) -> tuple[int, list[str]]:
    """The provider's coming appointments at the clinic that its weekly hours no longer cover
    (to warn after the hours change, as time off does): how many, and the first `shown` as
    '#12 Mon, 7 Dec 2026, 09:00–09:30 Alex Morgan' in the clinic's time, so the desk knows
    whom to call. Ones booked with the outside-hours override were outside already and are
    not counted again."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    clinic = _clinic(session, clinic_id)
    hours = get_hours(session, actor, provider_id, clinic_id)
    rows = session.execute(
        select(Appointment.id, Appointment.start_at, Appointment.end_at, Patient)
        .outerjoin(Patient, Patient.id == Appointment.patient_id)
        .where(
            Appointment.provider_id == provider_id,
            Appointment.clinic_id == clinic_id,
            Appointment.kind == AppointmentKind.APPOINTMENT,
            Appointment.status.in_(OCCUPYING),
            Appointment.outside_hours_override.is_(False),
            Appointment.end_at > utcnow(),
        )
        .order_by(Appointment.start_at, Appointment.id)
    ).all()

    def covered(start_at: datetime, end_at: datetime) -> bool:  # as booking's check reads it
        day = to_local(start_at, clinic.timezone).date()
        return any(
            start <= start_at and end_at <= end
            for d in (day - timedelta(days=1), day)
            for start, end in working_periods(hours, d, clinic.timezone)
        )

    now = utcnow()
    kept = [  # an original time held for a waiting proposal: a refusal puts the visit back there
        (h.id, h.start_at, h.end_at, h.patient, " (held)")
        for h in held(
            session,
            now,
            now + HELD_AHEAD,
            provider_ids=[provider_id],
            clinic_id=clinic_id,
            buffers=False,
        )
    ]
    outside = sorted(
        [(i, s, e, patient, "") for i, s, e, patient in rows if not covered(s, e)]
        + [h for h in kept if not covered(h[1], h[2])],
        key=lambda r: (r[1], r[0]),
    )
    return len(outside), [
        f"#{i} {clinic_time_range(clinic, s, e)} {patient.full_name if patient else ''}"
        f"{why}".rstrip()
        for i, s, e, patient, why in outside[:shown]
    ]


def _clinics_of(session: Session, provider_id: int) -> list[int]:
    return list(
        session.scalars(
            select(WorkingHours.clinic_id).where(WorkingHours.provider_id == provider_id).distinct()
        )
    )


def _hours_added(
    session: Session, provider_id: int, clinic: Clinic, old: list[HoursRow], new: list[HoursRow]
) -> None:
    """Queue the coming weeks' occurrences of newly added hours for the waitlist."""

    def covered(row: HoursRow) -> bool:
        return any(
            o.weekday == row.weekday and o.starts <= row.starts <= row.ends <= o.ends for o in old
        )

    added = [r for r in new if not covered(r)]
    if not added:
        return
    today = to_local(utcnow(), clinic.timezone).date()
    for offset in range(openings.HOURS_HORIZON.days):
        day = today + timedelta(days=offset)
        for row in added:
            if row.weekday == day.weekday():
                openings.slot_opened(
                    session,
                    clinic_id=clinic.id,
                    provider_id=provider_id,
                    start_at=local_edge_to_utc(day, row.starts, clinic.timezone),
                    end_at=local_edge_to_utc(day, row.ends, clinic.timezone),
                    reason="hours",
                )
