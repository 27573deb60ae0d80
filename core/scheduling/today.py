"""The Today board: one clinic's appointments of the clinic-local day, by provider, with where
each patient is (expected, late, waiting, with the provider, done) and how long they waited.

There is no "called in" timestamp: a checked-in patient counts as waiting until the appointment's
start and as with the provider from then on; waiting time runs from arrival to the start (or to
now while still before it)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import local_day_bounds, to_local, zone_words
from core.kernel.errors import NotFound
from core.kernel.money import clinic_clock_range, clinic_time, format_clock, format_day
from core.messaging import reminders
from core.payments import prepay
from core.practice.treatment import service_names, treatment_text
from core.scheduling.visits import has_started, no_show_recorded_at, undo_no_show_open
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    Clinic,
    Package,
    Patient,
    Provider,
    ProviderClinic,
    Service,
    TimeOff,
    WorkingHours,
)
from db.types import utcnow

S = AppointmentStatus
SHOWN = (S.SCHEDULED, S.CHECKED_IN, S.COMPLETED, S.NO_SHOW)
STAGES = ("Expected", "Not arrived yet", "Waiting", "With provider", "Done", "No-show")


@dataclass(frozen=True)
class TodayRow:
    id: int
    version: int
    time: str  # clinic-local "09:30–10:00"
    start_at: datetime
    provider_id: int | None
    provider: str
    patient: str
    service: str
    status: str
    stage: str
    waited_minutes: int | None
    can_check_in: bool
    can_undo_check_in: bool
    can_complete: bool
    can_no_show: bool
    can_undo_no_show: bool = False  # a no-show recorded today (clinic-local) may be undone
    confirmed: str = ""  # "Confirmed by the patient · when · channel"
    payment: str = ""  # "Paid", "Deposit paid", "Part paid" or ""
    starts: str = ""  # the clinic-local start on the clinic's clock: "09:30", "9:30 AM"
    away: bool = False  # still to be seen, with a provider whose time off covers part of it


def _stage(status: S, start: datetime, now: datetime) -> str:
    if status == S.COMPLETED:
        return "Done"
    if status == S.NO_SHOW:
        return "No-show"
    if status == S.CHECKED_IN:
        return "Waiting" if now < start else "With provider"
    return "Expected" if now < start else "Not arrived yet"


def _waited(status: S, start: datetime, checked_in: datetime | None, now: datetime) -> int | None:
    if checked_in is None or status not in (S.CHECKED_IN, S.COMPLETED):
        return None
    until = min(now, max(start, checked_in))
    return max(0, int((until - checked_in) / timedelta(minutes=1)))


def _treatments(session: Session, rows: list) -> dict[int, str]:
    """Each visit in words as its page names it ("Glow (Facial + Peel)" for a package), from
    rows starting (appointment id, …, first service name, package name)."""
    names = service_names(session, [r[0] for r in rows])
    return {
        r[0]: treatment_text(names.get(r[0]) or ([r[-2]] if r[-2] else []), r[-1]) for r in rows
    }


def list_today(
    session: Session,
    actor: Actor,
    clinic_id: int,
    *,
    day: date | None = None,
    now: datetime | None = None,
) -> list[TodayRow]:
    """The clinic-local day's appointments (not cancelled or declined), by provider and time."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    now = now or utcnow()
    day = day or to_local(now, clinic.timezone).date()
    first, last = local_day_bounds(day, clinic.timezone)
    query = (
        select(
            Appointment.id,
            Appointment.version,
            Appointment.start_at,
            Appointment.end_at,
            Appointment.status,
            Appointment.checked_in_at,
            Appointment.provider_id,
            Provider.name,
            Patient.first_name,
            Patient.last_name,
            Service.name,
            Package.name,
        )
        .outerjoin(Provider, Provider.id == Appointment.provider_id)
        .outerjoin(Patient, Patient.id == Appointment.patient_id)
        .outerjoin(Service, Service.id == Appointment.service_id)
        .outerjoin(Package, Package.id == Appointment.package_id)
        .where(
            Appointment.clinic_id == clinic_id,
            Appointment.start_at >= first,
            Appointment.start_at < last,
            Appointment.kind == AppointmentKind.APPOINTMENT,
            Appointment.status.in_(SHOWN),
        )
        .order_by(Provider.name, Appointment.start_at, Appointment.id)
    )
    rows = []
    result = session.execute(query).all()
    confirmed = reminders.confirmations(session, [r[0] for r in result])
    no_shows = no_show_recorded_at(session, [r[0] for r in result if r[4] == S.NO_SHOW])
    treatments = _treatments(session, result)
    for (
        ident,
        version,
        start,
        end,
        status,
        checked_in,
        provider_id,
        provider,
        first_name,
        last_name,
        _service,
        _package,
    ) in result:
        rows.append(
            TodayRow(
                id=ident,
                version=version,
                start_at=start,
                time=clinic_clock_range(clinic, start, end),
                starts=format_clock(to_local(start, clinic.timezone), clinic.locale),
                provider_id=provider_id,
                provider=provider or "No provider",
                patient=f"{first_name or ''} {last_name or ''}".strip() or "—",
                service=treatments[ident],
                status=status.value,
                stage=_stage(status, start, now),
                waited_minutes=_waited(status, start, checked_in, now),
                can_check_in=status == S.SCHEDULED,
                can_undo_check_in=status == S.CHECKED_IN,
                can_complete=status in (S.SCHEDULED, S.CHECKED_IN) and has_started(start, now),
                can_no_show=status == S.SCHEDULED and has_started(start, now),
                can_undo_no_show=status == S.NO_SHOW
                and undo_no_show_open(no_shows.get(ident), clinic.timezone, now),
                confirmed=confirmed[ident].text(clinic) if ident in confirmed else "",
            )
        )
    paid = prepay.badges(session, [r.id for r in rows])
    off = _away(session, result, first, last)
    return [
        replace(r, payment=paid.get(r.id, r.payment), away=r.id in off)
        if r.id in paid or r.id in off
        else r
        for r in rows
    ]


@dataclass(frozen=True)
class OwnDay:
    """The signed-in provider's own day: their provider record and the clinic it is at."""

    provider_id: int
    provider: str
    clinic_id: int | None  # where they work today (None: no active clinic of theirs)
    clinic_ids: tuple[int, ...]  # every active clinic they work at


def own_day(session: Session, actor: Actor, *, now: datetime | None = None) -> OwnDay | None:
    """Where a provider who signs in (their user account linked to their provider record) sees
    their own day first (None for anyone else). A provider of several clinics lands where they
    work today, on each clinic's own day: where a visit of theirs is still to be seen (the one
    due soonest), else where they saw patients today, else where their weekly hours fall
    today, else at the first of their clinics by name."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    if actor.user_id is None:
        return None
    provider = session.scalar(
        select(Provider)
        .where(Provider.user_id == actor.user_id, Provider.active.is_(True))
        .order_by(Provider.id)
        .limit(1)
    )
    if provider is None:
        return None
    theirs = select(ProviderClinic.clinic_id).where(ProviderClinic.provider_id == provider.id)
    hours = select(WorkingHours.clinic_id).where(WorkingHours.provider_id == provider.id)
    clinics = list(
        session.scalars(
            select(Clinic)
            .where(Clinic.active.is_(True), Clinic.id.in_(theirs.union(hours)))
            .order_by(Clinic.name, Clinic.id)
        )
    )
    if not clinics:
        return OwnDay(provider.id, provider.name, None, ())
    now = now or utcnow()
    days = {c.id: local_day_bounds(to_local(now, c.timezone).date(), c.timezone) for c in clinics}
    visits = session.execute(
        select(Appointment.clinic_id, Appointment.start_at, Appointment.status).where(
            Appointment.provider_id == provider.id,
            Appointment.clinic_id.in_(days),
            Appointment.kind == AppointmentKind.APPOINTMENT,
            Appointment.status.in_(SHOWN),
            Appointment.start_at >= min(first for first, _ in days.values()),
            Appointment.start_at < max(last for _, last in days.values()),
        )
    ).all()
    weekdays = {c.id: to_local(now, c.timezone).weekday() for c in clinics}
    working = {
        clinic_id
        for clinic_id, weekday in session.execute(
            select(WorkingHours.clinic_id, WorkingHours.weekday).where(
                WorkingHours.provider_id == provider.id
            )
        )
        if weekdays.get(clinic_id) == weekday
    }

    def rank(clinic: Clinic) -> tuple:
        first, last = days[clinic.id]
        today = [(start, status) for cid, start, status in visits if cid == clinic.id]
        today = [(start, status) for start, status in today if first <= start < last]
        waiting = [start for start, status in today if status in (S.SCHEDULED, S.CHECKED_IN)]
        if waiting:
            return (0, min(waiting))
        return (1 if today else 2 if clinic.id in working else 3,)

    home = min(clinics, key=rank)  # min keeps the first by name among equals
    return OwnDay(provider.id, provider.name, home.id, tuple(c.id for c in clinics))


def board_day(name: str, tz: str, locale: str | None, now: datetime | None = None) -> str:
    """Which day the board shows and on whose clock, for a desk that may sit in another zone:
    "Sat, Dec 5, 2026 at Lakeside · times are New York time (EST)"."""
    now = now or utcnow()
    day = format_day(to_local(now, tz).date(), locale)
    return f"{day} at {name} · times are {zone_words(tz, now)}"


def _away(session: Session, result: list, first: datetime, last: datetime) -> set[int]:
    """The day's visits still to be seen (scheduled or checked in) whose provider has time
    off covering part of them: left booked with a provider who is not there, to be moved or
    cancelled. One query for the day's time off."""
    live = [r for r in result if r[4] in (S.SCHEDULED, S.CHECKED_IN) and r[6] is not None]
    if not live:
        return set()
    spans: dict[int, list[tuple[datetime, datetime]]] = {}
    for provider_id, starts, ends in session.execute(
        select(TimeOff.provider_id, TimeOff.starts_at, TimeOff.ends_at).where(
            TimeOff.provider_id.in_({r[6] for r in live}),
            TimeOff.starts_at < last,
            TimeOff.ends_at > first,
        )
    ):
        spans.setdefault(provider_id, []).append((starts, ends))
    return {
        r[0]
        for r in live
        if any(starts < r[3] and r[2] < ends for starts, ends in spans.get(r[6], ()))
    }


def away_warning(rows: list[TodayRow], shown: int = 5) -> str:
    """What the board says of the visits left booked with a provider on time off ("" for
    none): how many, the first `shown` by time, patient and provider, and what to do."""
    away = sorted((r for r in rows if r.away), key=lambda r: (r.start_at, r.id))
    if not away:
        return ""
    named = "; ".join(f"{r.starts} {r.patient} with {r.provider}" for r in away[:shown])
    more = f" and {len(away) - shown} more" if len(away) > shown else ""
    visits = "visit is" if len(away) == 1 else "visits are"
    return (
        f"{len(away)} {visits} still booked with a provider on time off ({named}{more}). "
        "Move each to another provider, or cancel it as the practice (no fee), on the Calendar."
    )


def stage_counts(rows: list[TodayRow]) -> dict[str, int]:
    counts = dict.fromkeys(STAGES, 0)
    for row in rows:
        counts[row.stage] += 1
    return counts


@dataclass(frozen=True)
class CallRow:
    id: int
    time: str  # clinic-local
    patient: str
    phone: str
    provider: str
    service: str


def call_list(
    session: Session, actor: Actor, clinic_id: int, *, now: datetime | None = None
) -> list[CallRow]:
    """Tomorrow's (clinic-local) scheduled appointments the patient has not confirmed yet."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    now = now or utcnow()
    first, last = local_day_bounds(
        to_local(now, clinic.timezone).date() + timedelta(days=1), clinic.timezone
    )
    query = (
        select(
            Appointment.id,
            Appointment.start_at,
            Patient.first_name,
            Patient.last_name,
            Patient.phone,
            Provider.name,
            Service.name,
            Package.name,
        )
        .join(Patient, Patient.id == Appointment.patient_id)
        .outerjoin(Provider, Provider.id == Appointment.provider_id)
        .outerjoin(Service, Service.id == Appointment.service_id)
        .outerjoin(Package, Package.id == Appointment.package_id)
        .where(
            Appointment.clinic_id == clinic_id,
            Appointment.start_at >= first,
            Appointment.start_at < last,
            Appointment.kind == AppointmentKind.APPOINTMENT,
            Appointment.status == S.SCHEDULED,
        )
        .order_by(Appointment.start_at, Appointment.id)
    )
    rows = session.execute(query).all()
    confirmed = reminders.confirmations(session, [r[0] for r in rows])
    treatments = _treatments(session, rows)
    return [
        CallRow(
            ident,
            clinic_time(clinic, start),
            f"{first_name} {last_name}".strip(),
            phone or "",
            provider or "",
            treatments[ident],
        )
        for ident, start, first_name, last_name, phone, provider, _service, _package in rows
        if ident not in confirmed
    ]
