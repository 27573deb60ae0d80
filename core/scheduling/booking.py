"""In-office booking: finding or creating the patient, saying which providers are free, and
handing the booking itself to the life cycle (core.scheduling.moves.schedule_appointment),
which owns the rules (working hours, conflicts, double booking, overrides) and the
confirmation message."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import to_local, utcnow
from core.kernel.errors import DomainError, NotFound, ValidationError
from core.kernel.money import clinic_clock_range, clinic_time, clinic_time_range, format_clock
from core.messaging import notify
from core.patients import records as patients
from core.patients.invitations import send_invitation
from core.practice.skills import listed_services, performs
from core.practice.timing import Timing, timing_of
from core.practice.travel import travel_time
from core.practice.treatment import treatment_of
from core.scheduling import moves
from core.scheduling.availability import (
    Held,
    away_span,
    held,
    padded,
    providers_conflicts,
    resources_taken,
    suggest_slots,
    travel_gap,
    working_periods,
)
from core.scheduling.calendar import list_providers
from core.scheduling.lifecycle import LINK_PLACEHOLDER, base_url, travel_margin, treatment_text
from core.scheduling.moves import NewBooking
from db.models import (
    Appointment,
    AppointmentKind,
    Channel,
    Clinic,
    Patient,
    Service,
    TimeOff,
    VisitMode,
    WorkingHours,
)

NOTIFY_CHOICES = {
    "Email and SMS": [Channel.EMAIL, Channel.SMS],
    "Email": [Channel.EMAIL],
    "SMS": [Channel.SMS],
    "Do not notify": [],
}


@dataclass(frozen=True)
class ProviderChoice:
    id: int
    name: str
    free: bool
    why: str  # empty when free
    performs: bool = True  # every chosen service (no override books one who does not)


@dataclass(frozen=True)
class NewPatient:
    first_name: str
    last_name: str
    date_of_birth: date | None = None
    email: str | None = None
    phone: str | None = None
    consent_email: bool = False
    consent_sms: bool = False
    # same name and date of birth as a patient on file, and staff say it is someone else
    different_person: bool = False


@dataclass(frozen=True)
class Booked:
    appointment_id: int
    patient_id: int | None
    start_at: datetime
    notes: list[str] = field(default_factory=list)  # what else happened, in words
    # who, what, with whom and when, for the desk to read back to the patient: "Pat Pioneer,
    # Consultation with Dr Ada First, Mon, 7 Dec 2026, 09:00–09:30 (GMT)"
    summary: str = ""


def clinic_clock(clinic: Clinic, moment: datetime) -> str:
    """A UTC moment's wall-clock time (no day) in the clinic's zone and locale."""
    return format_clock(to_local(moment, clinic.timezone).time(), clinic.locale)


def total_minutes(session: Session, service_ids: list[int]) -> int:
    """The booking's length: the services' durations and the buffers between them."""
    if not service_ids:
        return 0
    found = {s.id: s for s in session.scalars(select(Service).where(Service.id.in_(service_ids)))}
    return timing_of([found[i] for i in dict.fromkeys(service_ids) if i in found]).minutes


def _clinic_and_start(
    session: Session, clinic_id: int, start_at: datetime
) -> tuple[Clinic, datetime]:
    """The clinic a time is asked at, and the time in UTC (a naive one is refused)."""
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    if start_at.tzinfo is None:
        raise ValidationError("The start time needs a time zone.")
    return clinic, start_at.astimezone(UTC)


def provider_choices(
    session: Session,
    actor: Actor,
    *,
    clinic_id: int,
    start_at: datetime,
    minutes: int,
    before: int = 0,
    after: int = 0,
    service_ids: tuple[int, ...] | list[int] = (),
    virtual: bool = False,
) -> list[ProviderChoice]:
    """Every provider of the clinic for that time: free ones first, the others with the reason.
    `before` and `after` are the booking's buffers (minutes kept free around the visit, clear
    of time off too); a provider who does not perform every one of `service_ids` is not free,
    and says which. A video visit (`virtual`) keeps no travel time between clinics."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    clinic, start_at = _clinic_and_start(session, clinic_id, start_at)
    end_at = start_at + timedelta(minutes=max(minutes, 1))
    tz = clinic.timezone
    providers = list_providers(session, clinic_id)
    ids = [p.id for p in providers]
    # a few queries for the whole clinic (not two per provider): hours and time off by
    # availability.working_hours_cover's rules, clashes by find_conflicts' own (held included)
    hours: dict[int, list[WorkingHours]] = defaultdict(list)
    # a provider of two clinics: their hours at the others, to say where they are instead
    elsewhere: dict[int, dict[Clinic, list[WorkingHours]]] = defaultdict(lambda: defaultdict(list))
    for row, other in session.execute(
        select(WorkingHours, Clinic)
        .join(Clinic, Clinic.id == WorkingHours.clinic_id)
        .where(WorkingHours.provider_id.in_(ids))
    ):
        if other.id == clinic_id:
            hours[row.provider_id].append(row)
        else:
            elsewhere[row.provider_id][other].append(row)
    wanted = Timing(0, before, after)
    # the visit and its buffers, clear of time off as lifecycle.place asks (away_span)
    free_from, free_until = away_span(start_at, end_at, *wanted.padding)
    away: dict[int, tuple[datetime, datetime]] = {}  # the first time off touching them
    for pid, off_from, off_until in session.execute(
        select(TimeOff.provider_id, TimeOff.starts_at, TimeOff.ends_at)
        .where(
            TimeOff.provider_id.in_(ids),
            TimeOff.starts_at < free_until,
            TimeOff.ends_at > free_from,
        )
        .order_by(TimeOff.starts_at, TimeOff.id)
    ):
        away.setdefault(pid, (off_from, off_until))
    # a booking at another clinic keeps it free around it too; none around a video visit
    travel = timedelta(0) if virtual else travel_time(session)
    # the one rule bookings pass (lifecycle.place asks find_conflicts): bookings, held times
    # for proposals waiting for the patient, buffers and the travel time between clinics
    clashes = providers_conflicts(
        session,
        ids,
        start_at,
        end_at,
        before=wanted.padding[0],
        after=wanted.padding[1],
        clinic_id=clinic_id,
        travel=travel,
        virtual=virtual,
    )
    day = to_local(start_at, tz).date()
    listed = listed_services(session, ids)
    names = dict(
        session.execute(select(Service.id, Service.name).where(Service.id.in_(service_ids))).all()
    )
    choices = []
    for provider in providers:
        why = ""
        able = performs(listed.get(provider.id), service_ids)
        if not able:
            gap = [i for i in dict.fromkeys(service_ids) if i not in listed[provider.id]]
            why = f"does not perform {', '.join(names.get(i, f'#{i}') for i in gap)}"
        periods = [
            period
            for d in (day - timedelta(days=1), day)
            for period in working_periods(hours[provider.id], d, tz)
        ]
        covered = any(start <= start_at and end_at <= end for start, end in periods)
        # the period the visit starts in but outlasts: closing time, or a break
        closes = next((end for start, end in periods if start <= start_at < end), None)
        off = ""
        if provider.id in away:
            off = f"on time off {clinic_time_range(clinic, *away[provider.id])}"
        elif not covered and closes is not None:
            off = (
                f"works until {clinic_clock(clinic, closes)}, and the visit would end at "
                f"{clinic_clock(clinic, end_at)}"
            )
        elif not covered:
            there = _working_elsewhere(clinic, elsewhere.get(provider.id, {}), start_at, end_at)
            off = there or "not working then (outside their hours)"
        if off:
            why = f"{why}; {off}" if why else off
        if provider.id in clashes:
            first = clashes[provider.id][0]
            first_start, first_end, where = first.start_at, first.end_at, first.clinic_id
            theirs = Timing(0, first.buffer_before_minutes or 0, first.buffer_after_minutes or 0)
            when = clinic_clock_range(clinic, first_start, first_end)
            if where != clinic.id:  # a provider of two clinics: on this clinic's clock, named
                when += f" at {session.get(Clinic, where).name}"
            what = "out of office" if first.kind == AppointmentKind.OUT_OF_OFFICE else "booked"
            busy = f"{what} {when}"
            if isinstance(first, Held):  # as availability's conflict names it
                busy = (
                    f"keeps {when} for appointment #{first.id}, held while its patient answers "
                    "a proposed new time"
                )
            if travel_gap(clinic.id, first, free_from, free_until):  # only the travel time
                busy += travel_margin(travel)
            elif not (first_start < end_at and first_end > start_at):  # only the buffers meet
                kept = [f"{theirs.words()} it"] if theirs.words() else []
                kept += [f"{wanted.words()} this booking"] if wanted.words() else []
                busy += f", with {' and '.join(kept)}"
            why = f"{why}; {busy}" if why else busy
        choices.append(ProviderChoice(provider.id, provider.name, not why, why, able))
    return sorted(choices, key=lambda c: (not c.free, not c.performs, c.name))


def _working_elsewhere(
    here: Clinic,
    hours: dict[Clinic, list[WorkingHours]],
    start_at: datetime,
    end_at: datetime,
) -> str:
    """Where a provider not working at `here` then works instead, their hours there overlapping
    [start_at, end_at) ("working at Lakeside then, 15:00–22:00", on `here`'s clock), or ""."""
    for other, rows in sorted(hours.items(), key=lambda pair: pair[0].name):
        local = to_local(start_at, other.timezone).date()
        for start, end in (
            period
            for d in (local - timedelta(days=1), local)
            for period in working_periods(rows, d, other.timezone)
        ):
            if start < end_at and start_at < end:
                return f"working at {other.name} then, {clinic_clock_range(here, start, end)}"
    return ""


@dataclass(frozen=True)
class FreeTime:
    """A time the booking fits from a wanted time on: its provider, and how the desk reads it
    (the clinic's zone and locale)."""

    provider_id: int
    provider_name: str
    start_at: datetime  # UTC
    day: date  # clinic-local, as the form's date and time pickers take it
    at: time
    label: str  # "Tue, 8 Dec 2026, 11:15 with Dr Test"


def next_free_times(
    session: Session,
    actor: Actor,
    *,
    clinic_id: int,
    start_at: datetime,
    service_ids: tuple[int, ...] | list[int],
    provider_id: int | None = None,
    limit: int = 3,
    virtual: bool = False,
) -> list[FreeTime]:
    """The first `limit` times from `start_at` on (the next 14 days) at which the services fit
    a provider's hours, time off, bookings and buffers and the rooms and equipment they need,
    with a provider who performs them all (`provider_id`: only that one), by the rules that
    refuse a booking (availability.suggest_slots); one provider per time, the first by name.
    What the form offers when nobody is free at the time asked."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    clinic, start_at = _clinic_and_start(session, clinic_id, start_at)
    found = {s.id: s for s in session.scalars(select(Service).where(Service.id.in_(service_ids)))}
    timing = timing_of([found[i] for i in dict.fromkeys(service_ids) if i in found])
    if not timing.minutes:
        return []
    slots = suggest_slots(
        session,
        clinic_id=clinic_id,
        duration_minutes=timing.minutes,
        day=to_local(start_at, clinic.timezone).date(),
        provider_id=provider_id,
        limit=limit * 10,  # several providers free at one time count once
        now=max(start_at, utcnow()),
        service_ids=list(found),
        buffer_before_minutes=timing.before,
        buffer_after_minutes=timing.after,
        virtual=virtual,
    )
    times: dict[datetime, FreeTime] = {}
    for slot in slots:
        if slot.start_at not in times and len(times) < limit:
            local = to_local(slot.start_at, clinic.timezone)
            label = f"{clinic_time(clinic, slot.start_at)} with {slot.provider_name}"
            times[slot.start_at] = FreeTime(
                slot.provider_id,
                slot.provider_name,
                slot.start_at,
                local.date(),
                local.time(),
                label,
            )
    return list(times.values())


@dataclass(frozen=True)
class Holder:
    """A booking using a room or piece of equipment: its clinic-local times, and the buffers
    that keep the time when only they meet the new booking."""

    appointment_id: int
    when: str  # "10:00–10:45"
    kept: str = ""  # "15 minutes kept free after it"
    held: bool = False  # its original time, held while a proposal waits (availability.held)

    def text(self) -> str:
        return (
            f"{self.when} by #{self.appointment_id}"
            + (", held while its patient answers a proposed new time" if self.held else "")
            + (f" ({self.kept})" if self.kept else "")
        )


@dataclass(frozen=True)
class TakenResource:
    """A room or piece of equipment the booking needs, every unit taken then, and by whom."""

    name: str
    quantity: int
    held: tuple[Holder, ...]  # by start

    def text(self) -> str:
        """ "Laser (1 of 1) is booked 10:00–10:45 by #123"."""
        by = ", ".join(h.text() for h in self.held)
        return f"{self.name} ({self.quantity} of {self.quantity}) is booked {by}"


def taken_resources(
    session: Session,
    actor: Actor,
    *,
    clinic_id: int,
    service_ids: list[int],
    start_at: datetime,
) -> list[TakenResource]:
    """The rooms and equipment the services (in booking order) need that are fully taken at
    that start, by the check that refuses the booking (availability.resources_taken): what
    the form warns of before the booking is submitted."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    if start_at.tzinfo is None:
        raise ValidationError("The start time needs a time zone.")
    if not service_ids:
        return []
    found = {s.id: s for s in session.scalars(select(Service).where(Service.id.in_(service_ids)))}
    services = [found[i] for i in dict.fromkeys(service_ids) if i in found]
    timing = timing_of(services)
    start_at = start_at.astimezone(UTC)
    end_at = start_at + timedelta(minutes=timing.minutes or 30)  # as lifecycle.duration_of
    busy = resources_taken(session, clinic_id, [s.id for s in services], start_at, end_at, timing)
    ids = {aid for b in busy for aid in b.appointment_ids}
    rows = session.scalars(
        select(Appointment)
        .where(Appointment.id.in_(ids))
        .order_by(Appointment.start_at, Appointment.id)
    )
    before, after = timing.padding
    # an appointment whose proposal waits holds the rooms at its original time: say that time
    holds = {h.id: h for h in held(session, start_at - before, end_at + after, clinic_id=clinic_id)}
    holders = {}
    for a in rows:
        first, last = padded(a)
        use = a
        if a.id in holds and not (first < end_at + after and last > start_at - before):
            use = holds[a.id]
        kept = []
        if not (use.start_at < end_at and use.end_at > start_at):  # only the buffers meet
            theirs = Timing(0, use.buffer_before_minutes or 0, use.buffer_after_minutes or 0)
            kept = [f"{theirs.words()} it"] if theirs.words() else []
            kept += [f"{timing.words()} this booking"] if timing.words() else []
        when = clinic_clock_range(clinic, use.start_at, use.end_at)
        holders[a.id] = (use.start_at, Holder(a.id, when, " and ".join(kept), use is not a))
    ordered = [h for _, h in sorted(holders.values(), key=lambda pair: pair[0])]
    return [
        TakenResource(
            b.name, b.quantity, tuple(h for h in ordered if h.appointment_id in b.appointment_ids)
        )
        for b in busy
    ]


def preview_confirmation(
    session: Session,
    actor: Actor,
    *,
    clinic_id: int,
    provider_name: str,
    service_names: list[str],
    start_at: datetime,
    patient_name: str,
    package_name: str | None = None,
    mode: VisitMode | str = VisitMode.IN_PERSON,
) -> tuple[str, str]:
    """The confirmation as the patient would get it, for staff to edit before sending (where
    to come: the clinic's address for a visit in person)."""
    ensure(actor, Permission.APPOINTMENTS_BOOK)
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    return notify.preview(
        session,
        "appointment_scheduled",
        {
            "patient_name": patient_name or "the patient",
            "clinic_name": clinic.name,
            "clinic_phone": clinic.phone,
            "where": notify.visit_place(clinic, VisitMode(mode) == VisitMode.VIRTUAL),
            "when": clinic_time(clinic, start_at, zone=True),
            "service_name": treatment_text(service_names, package_name) or "your appointment",
            "provider_name": provider_name,
            "message": "",
            "link": LINK_PLACEHOLDER,
        },
    )


@dataclass(frozen=True)
class InOffice(NewBooking):
    """The booking form's values: a NewBooking plus who the patient is (found or new), the card
    on file and the portal invitation."""

    new_patient: NewPatient | None = None
    card_on_file: bool = False
    invite_to_portal: bool = False


def book(session: Session, actor: Actor, request: InOffice) -> Booked:
    """Book an appointment (or an out-of-office block) in office, in one transaction."""
    ensure(actor, Permission.APPOINTMENTS_BOOK)
    r = request
    kind = AppointmentKind(r.kind)
    if r.start_at is None or r.start_at.tzinfo is None:
        raise ValidationError("Choose the date and time of the appointment.")
    done: list[str] = []
    patient: Patient | None = None
    if kind == AppointmentKind.APPOINTMENT:
        if r.new_patient is not None and r.patient_id is None:
            patient = patients.create_patient(
                session, actor, **vars(r.new_patient), card_on_file=r.card_on_file
            )
            done.append(f"New patient {patient.full_name} created.")
        elif r.patient_id is not None:
            patient = patients.get_patient(session, actor, r.patient_id)
            if r.card_on_file and not patient.card_on_file:
                patient.card_on_file = True
                done.append("Card on file recorded.")
        else:
            raise ValidationError("Find the patient (name, phone or email) or add a new one.")
    appointment = moves.schedule_appointment(
        session,
        actor,
        NewBooking(
            **{f.name: getattr(r, f.name) for f in fields(NewBooking)}
            | {
                "patient_id": patient.id if patient else None,
                "start_at": r.start_at.astimezone(UTC),
                "end_at": r.end_at.astimezone(UTC) if r.end_at else None,
            }
        ),
    )
    if appointment.outside_hours_override:
        done.append("Booked outside working hours (override recorded).")
    skipped = "; ".join(getattr(appointment, "notify_skipped", []))
    if patient is not None and r.notify_channels != []:
        sent = "; ".join(getattr(appointment, "notify_sent", []))
        done.append(
            (f"Confirmation queued ({sent})." if sent else "No confirmation was sent.")
            + (f" Not sent: {skipped}." if skipped else "")
        )
    if patient is not None and r.invite_to_portal:
        done.append(_invite(session, actor, patient.id))
    return Booked(
        appointment.id,
        patient.id if patient else None,
        appointment.start_at,
        done,
        _summary(appointment, patient),
    )


def _summary(appointment: Appointment, patient: Patient | None) -> str:
    what = treatment_of(appointment) if patient is not None else "Out of office"
    who = appointment.provider.name if appointment.provider else ""
    when = clinic_time_range(
        appointment.clinic, appointment.start_at, appointment.end_at, zone=True
    )
    parts = [patient.full_name if patient else "", f"{what} with {who}" if who else what, when]
    return ", ".join(p for p in parts if p)


def _invite(session: Session, actor: Actor, patient_id: int) -> str:
    try:
        with session.begin_nested():
            send_invitation(session, actor, patient_id, base_url=base_url(session))
    except DomainError as error:
        return f"No portal invitation sent: {error}"
    return "Portal invitation sent."
