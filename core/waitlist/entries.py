"""Waitlist entries: added by staff, from a request that cannot be placed, or by the patient
(through the portal); listed with their age and the free slots that match them now; withdrawn
by staff or by the patient (their own entries only), which closes the entry's open offers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from core.kernel import audit, tokens
from core.kernel.authz import Actor, Permission, ensure, patient_actor
from core.kernel.clock import local_today, to_local
from core.kernel.errors import NotFound, ValidationError
from core.kernel.locks import hold
from core.kernel.money import clinic_time, format_day_range, weekday_name
from core.kernel.times_of_day import time_of_day_label
from core.messaging import notify
from core.messaging.recipients import channels_for
from core.patients import merge
from core.policy.cancellation import online_booking_blocked
from core.practice.packages import package_services
from core.practice.timing import Timing, timing_of
from core.requests.decisions import decline_request
from core.scheduling.availability import TIME_OF_DAY_WINDOWS, patients_visits, suggest_slots
from core.scheduling.lifecycle import treatment_text
from db.models import (
    Appointment,
    AppointmentStatus,
    Clinic,
    OfferStatus,
    Package,
    PackageService,
    Patient,
    Provider,
    Service,
    TimeOfDay,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from db.types import utcnow

ENTITY = "waitlist_entry"
ALREADY_STAFF = (
    "This patient already waits for this {what} at this clinic (entry #{entry}); "
    "change or withdraw that entry instead."
)
ALREADY_PATIENT = (
    "You are already on the waitlist for this {what} at this clinic; withdraw that entry below "
    "to change it."
)
NOT_YOURS = "There is no such waitlist entry in your portal."
NOT_SENT_LEFT = "Not sent: the patient left the waitlist before this offer went out."
MAX_DAYS = 366
PAGE_SIZE = 50
MATCH_DAYS = 14  # "current matches" look this far ahead
MATCHES = 20  # at most this many listed for an entry
FIRST_SLOTS = 200  # free slots of any kind looked at first for them
ALL_SLOTS = 1_000_000  # then every one (suggest_slots stops only after a whole day)


@dataclass(frozen=True)
class Wish:
    """What the patient waits for (plain values: staff form, request, or portal): a service,
    or a package (`package_id`; then `service_id` may be None)."""

    patient_id: int
    clinic_id: int
    service_id: int | None
    earliest: date
    latest: date
    provider_id: int | None = None
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    windows: tuple[TimeOfDay, ...] = ()  # empty: any time of day
    note: str = ""
    package_id: int | None = None


def _first_service(session: Session, wish: Wish) -> int:
    """The service the entry is stored under: the package's first, or the one chosen."""
    if wish.package_id is not None:
        return package_services(session, wish.package_id)[1][0].id
    service = session.get(Service, wish.service_id) if wish.service_id is not None else None
    if service is None or not service.active:
        raise ValidationError("Choose a service or a package the practice offers.")
    return service.id


def _validate(session: Session, wish: Wish, today: date) -> None:
    patient = session.get(Patient, wish.patient_id)
    if patient is None:
        raise ValidationError("Choose a known patient.")
    merge.refuse_merged(patient, "put on the waitlist")
    if session.get(Clinic, wish.clinic_id) is None:
        raise ValidationError("Choose one of the practice's clinics.")
    if wish.provider_id is not None:
        provider = session.get(Provider, wish.provider_id)
        if provider is None or not provider.active:
            raise ValidationError("Choose an active provider, or any provider.")
    if wish.latest < wish.earliest:
        raise ValidationError("The last day must not be before the first day.")
    if wish.latest < today:
        raise ValidationError("The date range has passed; choose days from today on.")
    if (wish.latest - wish.earliest).days > MAX_DAYS:
        raise ValidationError("Wait for at most a year at once.")
    if not wish.weekdays or any(not 0 <= d <= 6 for d in wish.weekdays):
        raise ValidationError("Choose at least one weekday.")
    if len(wish.note) > 1000:
        raise ValidationError("Keep the note under 1,000 characters.")


def _insert(
    session: Session,
    actor: Actor,
    wish: Wish,
    source: str,
    already: str = ALREADY_STAFF,
    **extra,
) -> WaitlistEntry:
    clinic = session.get(Clinic, wish.clinic_id)
    _validate(session, wish, to_local(utcnow(), clinic.timezone).date() if clinic else date.min)
    service_id = _first_service(session, wish)
    # one patient's adds one at a time: two at once (two tabs, a portal join while the desk
    # adds) both passed the check below on PostgreSQL before either insert was committed
    hold(session, f"waitlist_entry:{wish.patient_id}")
    same = (
        WaitlistEntry.package_id == wish.package_id
        if wish.package_id is not None
        else (WaitlistEntry.service_id == service_id) & WaitlistEntry.package_id.is_(None)
    )
    waiting = session.scalar(
        select(WaitlistEntry.id).where(
            WaitlistEntry.patient_id == wish.patient_id,
            same,
            WaitlistEntry.clinic_id == wish.clinic_id,
            WaitlistEntry.status == WaitlistStatus.WAITING,
        )
    )
    if waiting is not None:
        what = "package" if wish.package_id is not None else "service"
        raise ValidationError(already.format(what=what, entry=waiting))
    entry = WaitlistEntry(
        patient_id=wish.patient_id,
        clinic_id=wish.clinic_id,
        service_id=service_id,
        package_id=wish.package_id,
        provider_id=wish.provider_id,
        earliest=wish.earliest,
        latest=wish.latest,
        weekdays="".join(str(d) for d in sorted(set(wish.weekdays))),
        windows=",".join(TimeOfDay(w).value for w in wish.windows),
        note=wish.note.strip(),
        source=source,
        created_by_user_id=actor.user_id,
        **extra,
    )
    session.add(entry)
    session.flush()
    audit.record(
        session,
        actor,
        "waitlist_added",
        ENTITY,
        entry.id,
        patient_id=entry.patient_id,
        to_status=entry.status.value,
        details={
            "source": source,
            "service_id": service_id,
            "package_id": wish.package_id,
            "clinic_id": wish.clinic_id,
        },
    )
    return entry


def add_entry(session: Session, actor: Actor, wish: Wish) -> WaitlistEntry:
    """Staff put a patient on the waitlist."""
    ensure(actor, Permission.WAITLIST_EDIT)
    return _insert(session, actor, wish, "staff")


def add_for_patient(session: Session, wish: Wish) -> WaitlistEntry:
    """The patient joins the waitlist through the portal (the caller verified their link)."""
    patient = session.get(Patient, wish.patient_id)
    if patient is None:
        raise NotFound("We could not find your record; please contact the practice.")
    actor = patient_actor(patient.full_name)
    return _insert(session, actor, wish, "portal", already=ALREADY_PATIENT)


@dataclass(frozen=True)
class FromRequest:
    """What putting a request's patient on the waitlist did: the entry, the desk's words for
    it (`said`: whether the patient was told of the decline), and `warning`, why no offer can
    reach them (unreached's words; "" when one can)."""

    entry: WaitlistEntry
    said: str
    warning: str = ""


def add_from_request(
    session: Session, actor: Actor, appointment_id: int, *, latest: date | None = None
) -> FromRequest:
    """A booking request that cannot be placed: decline it (the patient is told) and wait-list
    the patient for the same service or package, clinic, provider and time of day."""
    ensure(actor, Permission.WAITLIST_EDIT)
    request = session.get(Appointment, appointment_id)
    if request is None or request.status != AppointmentStatus.REQUESTED:
        raise NotFound(f"Appointment #{appointment_id} is not an open booking request.")
    if request.patient_id is None or (request.service_id is None and request.package_id is None):
        raise ValidationError("The request needs a patient and a service to wait-list them.")
    today = to_local(utcnow(), request.clinic.timezone).date()
    earliest = max(request.requested_day or today, today)
    wish = Wish(
        patient_id=request.patient_id,
        clinic_id=request.clinic_id,
        service_id=request.service_id,
        provider_id=request.provider_id,
        package_id=request.package_id,
        earliest=earliest,
        latest=latest or earliest + timedelta(days=28),
        weekdays=tuple(range(7)),
        windows=(request.time_of_day,) if request.time_of_day else (),
        note="From a booking request that could not be placed.",
    )
    entry = _insert(session, actor, wish, "request", request_appointment_id=request.id)
    declined = decline_request(
        session,
        actor,
        appointment_id,
        reason="No time is free for this request; you are on our waitlist and we will offer "
        "you the first matching time that frees up.",
    )
    said = "Put on the waitlist: the patient is told the request is declined."
    if not declined.notified:
        why = "; ".join(declined.skipped) or "no way to reach them"
        said = (
            f"Put on the waitlist and the request declined, but the patient was not told ({why}): "
            "call them to say so."
        )
    unreached = _unreached(session.get(Patient, entry.patient_id))
    return FromRequest(entry, said, f"{unreached}: {NO_OFFER_UNTIL}." if unreached else "")


def add_after_cancellation(
    session: Session, actor: Actor, appointment_id: int, *, weeks: int = 4
) -> WaitlistEntry:
    """A visit the practice cancelled (its provider off sick, say): wait-list the patient for
    the same service or package at the same clinic, with any provider, on any day from today
    until `weeks` weeks after the visit's day."""
    ensure(actor, Permission.WAITLIST_EDIT)
    visit = session.get(Appointment, appointment_id)
    if visit is None or visit.status != AppointmentStatus.CANCELLED:
        raise NotFound(f"Appointment #{appointment_id} is not a cancelled appointment.")
    if visit.patient_id is None or (visit.service_id is None and visit.package_id is None):
        raise ValidationError("The visit needs a patient and a service to wait-list them.")
    today = local_today(visit.clinic.timezone)
    day = to_local(visit.start_at, visit.clinic.timezone).date() if visit.start_at else today
    wish = Wish(
        patient_id=visit.patient_id,
        clinic_id=visit.clinic_id,
        service_id=visit.service_id,
        package_id=visit.package_id,
        earliest=today,
        latest=max(day, today) + timedelta(weeks=weeks),
        weekdays=tuple(range(7)),
        note=f"Appointment #{visit.id} was cancelled by the practice.",
    )
    return _insert(session, actor, wish, "staff")


def _withdraw(session: Session, actor: Actor, entry: WaitlistEntry, reason: str, via: str) -> None:
    """Stop the entry waiting; an offer out to it (or queued for it) is withdrawn and its link
    revoked (its message, still waiting to go out, is not sent), so the jobs loop offers that
    slot to the next patient in line."""
    now = utcnow()
    entry.status, entry.closed_at = WaitlistStatus.WITHDRAWN, now
    open_offers = session.scalars(
        select(WaitlistOffer).where(
            WaitlistOffer.entry_id == entry.id,
            WaitlistOffer.status.in_((OfferStatus.QUEUED, OfferStatus.SENT)),
        )
    ).all()
    for offer in open_offers:
        offer.status, offer.answered_at = OfferStatus.WITHDRAWN, now
        if offer.token_id:
            tokens.revoke(session, offer.token_id)
            notify.withdraw_offer_unsent(session, offer.id, NOT_SENT_LEFT)
    audit.record(
        session,
        actor,
        "waitlist_withdrawn",
        ENTITY,
        entry.id,
        patient_id=entry.patient_id,
        from_status=WaitlistStatus.WAITING.value,
        to_status=entry.status.value,
        reason=reason.strip() or None,
        details={"via": via, "offers_withdrawn": [o.id for o in open_offers]},
    )


def _locked(session: Session, entry_id: int) -> WaitlistEntry | None:
    """The entry, locked and read afresh: a withdrawal and the accepting of its offer at once
    (which locks it too, core.waitlist.offers) wait for each other, and the later is refused
    (before, each overwrote what the other wrote: a visit booked for a withdrawn entry)."""
    return session.get(WaitlistEntry, entry_id, with_for_update=True, populate_existing=True)


def withdraw(session: Session, actor: Actor, entry_id: int, reason: str = "") -> None:
    ensure(actor, Permission.WAITLIST_EDIT)
    entry = _locked(session, entry_id)
    if entry is None:
        raise NotFound(f"There is no waitlist entry #{entry_id}.")
    if entry.status != WaitlistStatus.WAITING:
        raise ValidationError(f"Entry #{entry_id} is {entry.status.value} already.")
    _withdraw(session, actor, entry, reason, "staff")


def withdraw_for_patient(
    session: Session, patient_id: int, entry_id: int, reason: str = ""
) -> None:
    """The patient withdraws one of their own entries (the portal): another patient's entry
    is refused exactly like an unknown one."""
    entry = _locked(session, entry_id)
    if entry is None or entry.patient_id != patient_id:
        raise NotFound(NOT_YOURS)
    if entry.status != WaitlistStatus.WAITING:
        raise ValidationError(f"This entry is {entry.status.value} already; nothing to withdraw.")
    patient = session.get(Patient, patient_id)
    _withdraw(session, patient_actor(patient.full_name), entry, reason, "portal")


def expire_entries(session: Session, now: datetime | None = None) -> int:
    """Entries whose last day has passed in their clinic's zone stop waiting (in New York the
    evening of their last day is still theirs when the UTC date has moved on)."""
    now = now or utcnow()
    expired = 0
    for clinic_id, tz in session.execute(select(Clinic.id, Clinic.timezone)).all():
        rows = session.scalars(
            select(WaitlistEntry).where(
                WaitlistEntry.clinic_id == clinic_id,
                WaitlistEntry.status == WaitlistStatus.WAITING,
                WaitlistEntry.latest < local_today(tz, now),
            )
        ).all()
        for entry in rows:
            entry.status, entry.closed_at = WaitlistStatus.EXPIRED, now
        expired += len(rows)
    return expired


def services_of(session: Session, entry: WaitlistEntry) -> list[Service]:
    """The services the entry waits for, in booking order: its package's, or its one."""
    if entry.package_id is None:
        return [entry.service]
    return list(
        session.scalars(
            select(Service)
            .join(PackageService, PackageService.service_id == Service.id)
            .where(PackageService.package_id == entry.package_id)
            .order_by(PackageService.position, Service.id)
        )
    )


def timing(session: Session, entry: WaitlistEntry) -> Timing:
    """How long the visit lasts (a package's services and the buffers between them) and the
    buffers kept free around it."""
    return timing_of(services_of(session, entry))


def treatment(session: Session, entry: WaitlistEntry) -> str:
    """What the entry waits for, in words: "Skin renewal (Skin check + Chemical peel)"."""
    package = entry.package.name if entry.package_id is not None else None
    return treatment_text([s.name for s in services_of(session, entry)], package)


def stopped_by(session: Session, entry: WaitlistEntry) -> tuple[str, str] | None:
    """What withdrawn while the entry waited stops it being booked: ("treatment", its package
    or services' names) or ("provider", their name); None when nothing does."""
    if entry.package_id is not None and not entry.package.active:
        return "treatment", entry.package.name
    gone = [s.name for s in services_of(session, entry) if not s.active]
    if gone:
        return "treatment", " and ".join(gone)
    if entry.provider_id is not None:
        provider = session.get(Provider, entry.provider_id)
        if provider is not None and not provider.active:
            return "provider", provider.name
    return None


def bookable() -> ColumnElement[bool]:
    """SQL: nothing the entry waits for was withdrawn (stopped_by is None), for a query over
    many entries instead of a read for each."""
    gone_service = select(Service.id).where(Service.id == WaitlistEntry.service_id, ~Service.active)
    gone_package = select(Package.id).where(Package.id == WaitlistEntry.package_id, ~Package.active)
    gone_in_package = (
        select(PackageService.service_id)
        .join(Service, Service.id == PackageService.service_id)
        .where(PackageService.package_id == WaitlistEntry.package_id, ~Service.active)
    )
    gone_provider = select(Provider.id).where(
        Provider.id == WaitlistEntry.provider_id, ~Provider.active
    )
    gone_service, gone_package, gone_in_package, gone_provider = (  # correlated on the entry
        query.correlate(WaitlistEntry).exists()  # alone: a query joining Service keeps its own
        for query in (gone_service, gone_package, gone_in_package, gone_provider)
    )
    return and_(
        or_(WaitlistEntry.package_id.is_not(None), ~gone_service),
        ~gone_package,
        ~gone_in_package,
        ~gone_provider,
    )


def unbookable(session: Session, entry: WaitlistEntry) -> str | None:
    """Why the entry can no longer be booked, in the staff list's words (its package or a
    service withdrawn, or its provider deactivated, while it waited), or None: such an entry
    is offered nothing, and the list says what to do, within the four lines of its cell: the
    package's and the provider's names are beside it ("Dr Aisha Rahman is inactive; withdraw,
    then add f…" was cut), a service of a package withdrawn is named. Its first part is a
    withdrawn offer's why (offers)."""
    match stopped_by(session, entry):
        case ("treatment", names):
            package = entry.package_id is not None and not entry.package.active
            return f"None: {'package' if package else names} no longer offered; withdraw it"
        case ("provider", _):
            return "None: provider inactive; withdraw, add for any provider"
    return None


BARRED = (  # the staff list's words for a barred patient's entry (barred)
    "None: online booking barred for the patient (no points left); offered nothing until "
    "points are added"
)


UNREACHABLE = (  # the staff list's words for an entry whose patient no offer can reach
    "None: cannot be reached ({why}); record consent to email or text, with the address, on "
    "their record"
)


def barred(patient: Patient) -> bool:
    """Whether the practice barred the patient's online booking (policy's
    online_booking_blocked): a waitlist offer books online, so none is made to them and one
    already out cannot be accepted."""
    return online_booking_blocked(patient)


def cannot_reach(patient: Patient) -> str | None:
    """Why no offer message can reach the patient, in the words of the rule every message to
    a patient follows (core.messaging.recipients.channels_for: an address with consent on a
    channel, a record not merged away), or None when one can: "no consent to email; no consent
    to text messages". Such a patient is offered nothing (core.waitlist.offers)."""
    usable, skipped = channels_for(patient)
    return None if usable else "; ".join(skipped)


NO_OFFER_UNTIL = (  # the desk's words for what follows (reach_warning, add_from_request)
    "no time will be offered to them until their consent to email or text, with the address, "
    "is on their record"
)


def _unreached(patient: Patient | None) -> str:
    """ "Sam Morgan cannot be reached (no consent to email; …)", or "" when an offer can reach
    the patient (cannot_reach)."""
    if patient is None or (why := cannot_reach(patient)) is None:
        return ""
    return f"{patient.full_name} cannot be reached ({why})"


def reach_warning(session: Session, actor: Actor, patient_id: int) -> str:
    """The desk's warning on choosing a patient to add whom no offer can reach ("" when one
    can): they may still be added, as consent can be recorded later."""
    ensure(actor, Permission.PATIENTS_READ)
    unreached = _unreached(session.get(Patient, patient_id))
    return f"{unreached}: they can be added, but {NO_OFFER_UNTIL}." if unreached else ""


def fits(entry: WaitlistEntry, start: datetime, end: datetime, tz: str) -> bool:
    """Does [start, end) suit the entry's days, weekdays and time-of-day windows?"""
    local_start, local_end = to_local(start, tz), to_local(end, tz)
    day = local_start.date()
    if not entry.earliest <= day <= entry.latest or str(day.weekday()) not in entry.weekdays:
        return False
    if not entry.windows:
        return True
    for value in entry.windows.split(","):
        low, high = TIME_OF_DAY_WINDOWS[TimeOfDay(value)]
        if low <= local_start.time() and local_end.time() <= high and local_end.date() == day:
            return True
    return False


# how an entry came, as the desk reads it (EntryRow.source is the stored value)
SOURCE_WORDS = {
    "staff": "added by staff",
    "portal": "joined in the portal",
    "request": "from a request",
}


@dataclass(frozen=True)
class EntryRow:
    id: int
    patient_id: int
    patient: str
    service: str
    provider: str
    days: str
    weekdays: str
    windows: str
    note: str
    status: str
    source: str
    waiting_days: int
    matches: int | None  # free matching slots in the next two weeks (waiting entries)
    next_match: str


def _filtered(
    query,
    clinic_id: int,
    status: WaitlistStatus | None,
    service_id: int | None,
    provider_id: int | None,
):
    query = query.where(WaitlistEntry.clinic_id == clinic_id)
    if status is not None:
        query = query.where(WaitlistEntry.status == status)
    if service_id is not None:  # a package entry waits for each of its services
        in_package = select(PackageService.package_id).where(
            PackageService.service_id == service_id
        )
        query = query.where(
            (WaitlistEntry.service_id == service_id) | WaitlistEntry.package_id.in_(in_package)
        )
    if provider_id is not None:
        query = query.where(
            (WaitlistEntry.provider_id == provider_id) | WaitlistEntry.provider_id.is_(None)
        )
    return query


def count_entries(
    session: Session,
    actor: Actor,
    *,
    clinic_id: int,
    status: WaitlistStatus | None = WaitlistStatus.WAITING,
    service_id: int | None = None,
    provider_id: int | None = None,
) -> int:
    """How many entries `list_entries` pages through with the same filters."""
    ensure(actor, Permission.PATIENTS_READ)
    query = select(func.count()).select_from(WaitlistEntry)
    return session.scalar(_filtered(query, clinic_id, status, service_id, provider_id))


def list_entries(
    session: Session,
    actor: Actor,
    *,
    clinic_id: int,
    status: WaitlistStatus | None = WaitlistStatus.WAITING,
    service_id: int | None = None,
    provider_id: int | None = None,
    with_matches: bool = True,
    now: datetime | None = None,
    page: int = 0,
) -> list[EntryRow]:
    """One page of PAGE_SIZE entries, longest waiting first (`page` 0 is the first);
    `count_entries` says how many there are in all."""
    ensure(actor, Permission.PATIENTS_READ)
    now = now or utcnow()
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    query = (
        select(WaitlistEntry, Patient, Service.name, Provider.name, bookable())
        .join(Patient, Patient.id == WaitlistEntry.patient_id)
        .join(Service, Service.id == WaitlistEntry.service_id)
        .outerjoin(Provider, Provider.id == WaitlistEntry.provider_id)
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
        .limit(PAGE_SIZE)
        .offset(max(page, 0) * PAGE_SIZE)
    )
    query = _filtered(query, clinic_id, status, service_id, provider_id)
    today = to_local(now, clinic.timezone).date()
    letters = [weekday_name(d, clinic.locale, width="narrow") for d in range(7)]
    rows = []
    packages: dict[int, str] = {}  # a package's words, read once per page
    found_rows = session.execute(query).all()
    busy = (
        _visits_ahead(session, [(r[0], r[1].id) for r in found_rows], today, now)
        if with_matches
        else {}
    )
    for entry, patient, service, provider, can_book in found_rows:
        if entry.package_id is not None:
            if entry.package_id not in packages:
                packages[entry.package_id] = treatment(session, entry)
            service = packages[entry.package_id]
        matches, first = None, ""
        waiting = entry.status == WaitlistStatus.WAITING
        gone = unbookable(session, entry) if waiting and not can_book else None
        gone = gone or (BARRED if waiting and barred(patient) else None)
        unreached = cannot_reach(patient) if waiting and not gone else None
        gone = gone or (UNREACHABLE.format(why=unreached) if unreached else None)
        if gone:
            matches, first = 0, gone
        elif with_matches and waiting:
            found = current_matches(
                session, entry, clinic.timezone, today, now, busy=busy.get(patient.id, ())
            )
            matches = len(found)
            if found:
                first = clinic_time(clinic, found[0].start_at)
        rows.append(
            EntryRow(
                entry.id,
                patient.id,
                patient.full_name,
                service,
                provider or "any",
                format_day_range(entry.earliest, entry.latest, clinic.locale),
                "".join(letters[d] if str(d) in entry.weekdays else "·" for d in range(7)),
                ", ".join(
                    time_of_day_label(w, clinic.locale) for w in entry.windows.split(",") if w
                )
                or "any time",
                entry.note,
                entry.status.value,
                entry.source,
                ((entry.closed_at or now) - entry.created_at).days,  # waited, if it stopped
                matches,
                first,
            )
        )
    return rows


def _visits_ahead(
    session: Session, found: list[tuple[WaitlistEntry, int]], today: date, now: datetime
) -> dict[int, list[tuple[datetime, datetime]]]:
    """Each patient's visits from now to the end of the page's matching days (an entry from
    three weeks on is matched then), an original time held for a proposal of theirs included
    (availability.patients_visits), two queries a page."""
    last = max(
        (min(e.latest, max(e.earliest, today) + timedelta(days=MATCH_DAYS)) for e, _ in found),
        default=today,
    )
    until = now + timedelta(days=(last - today).days + 2)  # the whole last day, in any zone
    visits = patients_visits(session, {pid for _, pid in found}, now, until)
    return {pid: [(v.start_at, v.end_at) for v in theirs] for pid, theirs in visits.items()}


def current_matches(
    session: Session,
    entry: WaitlistEntry,
    tz: str,
    today: date,
    now: datetime,
    busy=(),
):
    """Free slots suiting the entry in the next two weeks (at most MATCHES), none at a time the
    patient has another visit (`busy`: their visits' start and end)."""
    first = max(entry.earliest, today)
    days = min(MATCH_DAYS, (entry.latest - first).days + 1)
    if days <= 0:
        return []
    visit = timing(session, entry)
    windows = entry.windows.split(",") if entry.windows else []
    found: list = []
    # the first 200 free slots usually hold the matches; else every slot of the days is looked
    # at, as the first 200 may fill a week of times the entry's weekdays and times leave out
    for limit in (FIRST_SLOTS, ALL_SLOTS):
        slots = suggest_slots(
            session,
            clinic_id=entry.clinic_id,
            duration_minutes=visit.minutes,
            buffer_before_minutes=visit.before,
            buffer_after_minutes=visit.after,
            day=first,
            provider_id=entry.provider_id,
            time_of_day=windows[0] if len(windows) == 1 else None,  # fewer to look through
            limit=limit,
            search_days=days,
            step_minutes=15,
            now=now,
            service_ids=[s.id for s in services_of(session, entry)],  # who performs it; rooms
        )
        found = [
            s
            for s in slots
            if fits(entry, s.start_at, s.end_at, tz)
            and not any(b < s.end_at and e > s.start_at for b, e in busy)
        ][:MATCHES]
        if len(found) == MATCHES or len(slots) < limit:  # enough, or every slot seen
            break
    return found


def waiting_count(session: Session, clinic_id: int) -> int:
    return session.scalar(
        select(func.count())
        .select_from(WaitlistEntry)
        .where(WaitlistEntry.clinic_id == clinic_id, WaitlistEntry.status == WaitlistStatus.WAITING)
    )
