"""Cover for a provider's time off: the visits booked in it, who could take each over at the
same time, and handling them in one go (each moved to another provider or cancelled as the
practice), each visit in a savepoint of its own with its outcome in words. Booking requests
still waiting with the provider away, for a day (or an exact time) in the time off, are listed
too: released to any provider or a colleague free then, or declined as the practice.

The waitlist and the request queue sit above scheduling, so whoever calls
`handle_time_off_visits` hands in the waitlist's own service
(core.waitlist.entries.add_after_cancellation) to wait-list the patients of cancelled visits,
and the queue's (core.requests.decisions.decline_request) to decline requests, and its
propose_time to propose a time waiting for the patient (tentative) again with a colleague: a
proposal is moved as a booked visit is, the patient sent the new proposal. A new time proposed
for a patient's change request is not (their booking keeps its original time until they answer,
and the queue proposes another); its row says so.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import Conflict, DomainError, NotFound, PermissionDenied, ValidationError
from core.kernel.money import clinic_time_range, format_day
from core.practice.skills import able
from core.practice.timing import timing_of
from core.practice.treatment import services_of, treatment_of
from core.scheduling.availability import (
    MAX_BUFFER,
    MAX_LENGTH,
    find_conflicts,
    resources_taken,
    suggest_slots,
    time_asked_padded,
    time_of_day_label,
    working_hours_cover,
)
from core.scheduling.lifecycle import (
    Outcome,
    RowResult,
    duration_of,
    flush,
    handled_message,
    load,
    require_reason,
)
from core.scheduling.moves import cancel_appointment, reschedule
from core.scheduling.schedules import BookedVisit, booked_in
from core.scheduling.states import ENTITY, PAST_GRACE, RULES, STATUS_WORDS, Action
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    ChangeRequest,
    ChangeStatus,
    Provider,
    TimeOff,
    VisitMode,
    WorkingHours,
)
from db.types import utcnow

# the waitlist's service for a cancelled visit: (session, actor, appointment id) → its entry
WaitList = Callable[[Session, Actor, int], Any]
# the queue's decline (core.requests.decisions.decline_request): (session, actor, appointment
# id, reason=, expected_version=) → its Outcome
Decline = Callable[..., Outcome]
# the queue's proposal (core.requests.decisions.propose_time): (session, actor, appointment id,
# provider_id=, start_at=, expected_version=) → the new proposal's link token, with `outcome`
Propose = Callable[..., Any]


@dataclass(frozen=True)
class Colleague:
    """A provider free to take a visit over at its time."""

    id: int
    name: str


@dataclass(frozen=True)
class TimeOffVisit:
    """A visit booked in a provider's time off, as the desk handles it."""

    id: int
    version: int  # as read: changed since, handling it is refused
    status: str  # in words
    clinic_id: int
    when: str  # its clinic's time
    patient: str
    treatment: str
    can_move: bool
    can_cancel: bool
    free: tuple[Colleague, ...]  # every active provider free to take it over then, by name
    note: str  # why it cannot be moved, or who else is free
    # a booking request waiting with the provider away then: released to any provider or a
    # free colleague, or declined (never moved or cancelled from here)
    request: bool = False
    can_release: bool = False
    can_decline: bool = False

    @property
    def cover_id(self) -> int | None:
        """The one offered first (None: nobody is free)."""
        return self.free[0].id if self.free else None

    @property
    def cover_name(self) -> str:
        return self.free[0].name if self.free else ""


def _provider_ids_at(session: Session, clinic_id: int, away_id: int) -> list[int]:
    return list(
        session.scalars(
            select(WorkingHours.provider_id)
            .join(Provider, Provider.id == WorkingHours.provider_id)
            .where(
                WorkingHours.clinic_id == clinic_id,
                Provider.active.is_(True),
                Provider.id != away_id,
            )
            .distinct()
            .order_by(WorkingHours.provider_id)
        )
    )


def _free_cover(session: Session, visit: Appointment, away_id: int) -> list[Provider]:
    """The other active providers of the visit's clinic who perform its services and are
    free at its very time: working then, not on time off (nor during its buffers), no clash
    with their bookings or their buffers (no travel time around a video visit), and the rooms
    and equipment it needs not taken; by name: lifecycle.place's rules."""
    start, end = visit.start_at, visit.start_at + duration_of(visit)
    services = services_of(visit)
    timing = timing_of(services)
    before, after = timing.padding
    service_ids = [s.id for s in services]
    if not visit.allow_double_booking and resources_taken(
        session, visit.clinic_id, service_ids, start, end, timing, visit.id
    ):
        return []
    candidates = _provider_ids_at(session, visit.clinic_id, away_id)
    performing = able(session, candidates, service_ids)
    free = [
        session.get(Provider, pid)
        for pid in candidates
        if pid in performing
        and working_hours_cover(
            session, pid, visit.clinic_id, start, end, before=before, after=after
        )
        and not find_conflicts(
            session,
            pid,
            start,
            end,
            visit.id,
            before=before,
            after=after,
            clinic_id=visit.clinic_id,
            virtual=visit.mode == VisitMode.VIRTUAL,
        )
    ]
    return sorted(free, key=lambda p: (p.name, p.id))


def _time_off(session: Session, time_off_id: int) -> TimeOff:
    off = session.get(TimeOff, time_off_id)
    if off is None:
        raise NotFound(f"There is no time off #{time_off_id} (removed meanwhile?).")
    return off


def _answers_change(session: Session, appointment_id: int) -> bool:
    """Whether the appointment's proposed time answers its patient's change request (their
    booking's original time held meanwhile: availability.HOLDING)."""
    return (
        session.scalar(
            select(ChangeRequest.id)
            .where(
                ChangeRequest.appointment_id == appointment_id,
                ChangeRequest.status == ChangeStatus.PROPOSED,
            )
            .limit(1)
        )
        is not None
    )


FOR_CHANGE = (
    "A new time proposed for the patient's change request (their booking keeps its original "
    "time until they answer): propose another time for it in the queue, or cancel it."
)
PASSED = (
    "Its time has passed: it cannot be moved; record how it went (completed, no-show) or cancel it."
)
PROPOSAL = "A time proposed to the patient: moved, it is proposed again with the colleague"


def _row(session: Session, booked: BookedVisit, away_id: int) -> TimeOffVisit:
    visit = session.get(Appointment, booked.id)
    proposal = visit.status == AppointmentStatus.TENTATIVE and not booked.held
    for_change = proposal and _answers_change(session, visit.id)
    movable = not booked.held and (
        visit.status in RULES[Action.RESCHEDULE].sources or (proposal and not for_change)
    )
    # a time off under way: a visit of its past is not booked anew (lifecycle.place)
    passed = visit.start_at < utcnow() - PAST_GRACE
    cover = _free_cover(session, visit, away_id) if movable and not passed else []
    if booked.held:
        note = "Its original time, held while the patient answers a proposed new time."
    elif for_change:
        note = FOR_CHANGE
    elif not movable:
        note = f"{STATUS_WORDS[visit.status].capitalize()}: it cannot be moved from here."
    elif passed:
        note = PASSED
    elif not cover:
        note = "Nobody else who performs it is free then."
    else:
        others = ", ".join(p.name for p in cover[1:])
        note = f"Also free: {others}." if others else ""
    if proposal and cover:
        note = f"{PROPOSAL} and sent to the patient anew. {note}".strip()
    return TimeOffVisit(
        id=visit.id,
        version=visit.version,
        status=STATUS_WORDS[visit.status],
        clinic_id=visit.clinic_id,
        when=clinic_time_range(booked.clinic, booked.start_at, booked.end_at),
        patient=booked.patient.full_name if booked.patient else "",
        treatment=treatment_of(visit),
        can_move=bool(cover),
        can_cancel=visit.status in RULES[Action.CANCEL].sources,
        free=tuple(Colleague(p.id, p.name) for p in cover),
        note=note,
    )


def asked_span(request: Appointment, padded: bool = False) -> tuple[datetime, datetime]:
    """The time a booking request asks for, in UTC: its exact time, else its clinic-local day's
    time-of-day window, else the whole day (23 or 25 hours on the days clocks change).
    `padded`: the time it keeps its provider from time off (availability.time_asked_padded),
    an exact time's visit, all its services, widened by their buffers, as approving it refuses
    time off touching either; a day or its window as asked."""
    exact = request.start_at is not None
    padding = timing_of(services_of(request)).padding if padded and exact else ()
    span = time_asked_padded(
        request.start_at,
        duration_of(request) if exact else timedelta(0),
        request.requested_day,
        request.time_of_day,
        request.clinic.timezone,
        *padding,
    )
    if span is None:  # callers read only requests with a time or a day
        raise ValueError(f"request #{request.id} asks for neither a time nor a day")
    return span


def requests_in(session: Session, off: TimeOff) -> list[Appointment]:
    """The booking requests waiting for a decision with the provider away whose time
    (asked_span, padded: an exact time with its buffers) touches the time off, by the time
    asked: approved as asked, they would be booked with a provider who is away."""
    first, last = off.starts_at.date() - timedelta(1), off.ends_at.date() + timedelta(1)
    found = session.scalars(
        select(Appointment).where(
            Appointment.provider_id == off.provider_id,
            Appointment.kind == AppointmentKind.APPOINTMENT,
            Appointment.status == AppointmentStatus.REQUESTED,
            or_(
                # its buffers reach MAX_BUFFER beyond it; its length is read from its services
                # (a service lengthened since: not the end_at stored), at most MAX_LENGTH
                and_(
                    Appointment.start_at < off.ends_at + MAX_BUFFER,
                    Appointment.start_at > off.starts_at - MAX_LENGTH - MAX_BUFFER,
                ),
                and_(
                    Appointment.start_at.is_(None),
                    Appointment.requested_day >= first,  # any zone's day: a day either side
                    Appointment.requested_day <= last,
                ),
            ),
        )
    ).all()
    asked = [(asked_span(a, padded=True), a) for a in found if a.start_at or a.requested_day]
    inside = [
        (asked_span(a)[0], a)
        for (start, end), a in asked
        if start < off.ends_at and end > off.starts_at
    ]
    return [a for _, a in sorted(inside, key=lambda pair: (pair[0], pair[1].id))]


def _free_for_request(session: Session, request: Appointment, away_id: int) -> list[Provider]:
    """The colleagues who could take a request instead, by the booking rules: at its exact
    time (as a booked visit's cover), or with a free time in its day's window (suggest_slots:
    hours, time off, bookings, buffers, rooms and equipment), by name."""
    if request.start_at is not None:
        return _free_cover(session, request, away_id)
    services = services_of(request)
    timing = timing_of(services)
    service_ids = [s.id for s in services]
    candidates = _provider_ids_at(session, request.clinic_id, away_id)
    free = [
        session.get(Provider, pid)
        for pid in candidates
        if suggest_slots(
            session,
            clinic_id=request.clinic_id,
            duration_minutes=timing.minutes or 30,
            day=request.requested_day,
            provider_id=pid,
            time_of_day=request.time_of_day,
            limit=1,
            search_days=1,
            now=utcnow(),
            service_ids=service_ids,
            buffer_before_minutes=timing.before,
            buffer_after_minutes=timing.after,
            virtual=request.mode == VisitMode.VIRTUAL,
        )
    ]
    return sorted(free, key=lambda p: (p.name, p.id))


def _asked_words(request: Appointment) -> str:
    """ "Requested for Mon, 7 Dec 2026, morning (09–12)", or for its exact time."""
    clinic = request.clinic
    if request.start_at is not None:
        return f"Requested for {clinic_time_range(clinic, *asked_span(request))}"
    day = format_day(request.requested_day, clinic.locale)
    part = (
        f", {time_of_day_label(request.time_of_day, clinic.locale, in_text=True)}"
        if request.time_of_day
        else ""
    )
    return f"Requested for {day}{part}"


def _request_row(session: Session, request: Appointment, away_id: int) -> TimeOffVisit:
    free = _free_for_request(session, request, away_id)
    others = ", ".join(p.name for p in free[1:])
    note = f"Also free: {others}." if others else ""
    if not free:
        note = (
            "Nobody else who performs it is free then; release it to any provider, or decline it."
        )
    return TimeOffVisit(
        id=request.id,
        version=request.version,
        status=STATUS_WORDS[request.status],
        clinic_id=request.clinic_id,
        when=_asked_words(request),
        patient=request.patient.full_name if request.patient else "",
        treatment=treatment_of(request),
        can_move=False,
        can_cancel=False,
        free=tuple(Colleague(p.id, p.name) for p in free),
        note=note,
        request=True,
        can_release=True,
        can_decline=True,
    )


def list_time_off_visits(session: Session, actor: Actor, time_off_id: int) -> list[TimeOffVisit]:
    """The live visits booked in a time off (the existing rule: tentative, scheduled or
    checked in, and original times held for waiting proposals), soonest first, each with every
    other provider free to take it over at the same time (by name; none: it cannot be moved);
    then the booking requests waiting with the provider away for a time in it (requests_in),
    each with the colleagues free then."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    off = _time_off(session, time_off_id)
    return [
        _row(session, booked, off.provider_id)
        for booked in booked_in(session, off.provider_id, off.starts_at, off.ends_at)
    ] + [_request_row(session, request, off.provider_id) for request in requests_in(session, off)]


class Choice(enum.StrEnum):
    MOVE = "move"  # to another provider, at the same time
    CANCEL = "cancel"  # as the practice: no fee, prepayment refunded
    RELEASE = "release"  # a request: to the colleague chosen, or any provider (None)
    DECLINE = "decline"  # a request: declined as the practice, the patient told the reason


BOOKED_CHOICES = (Choice.MOVE, Choice.CANCEL)
REQUEST_CHOICES = (Choice.RELEASE, Choice.DECLINE)


@dataclass(frozen=True)
class Handling:
    """What to do with one visit in the time off: move it to `provider_id` (any of its row's
    free colleagues; one not free then is refused by the booking rules), or cancel it; or with
    a request, release it to `provider_id` (a colleague free then; None: any provider), or
    decline it. `version`: the one the desk saw (changed since: refused)."""

    appointment_id: int
    choice: Choice | str
    provider_id: int | None = None
    version: int | None = None


def handle_time_off_visits(
    session: Session,
    actor: Actor,
    time_off_id: int,
    handlings: list[Handling],
    *,
    reason: str = "",
    wait_list: WaitList | None = None,
    decline: Decline | None = None,
    propose: Propose | None = None,
) -> list[RowResult]:
    """Move or cancel each chosen visit of a time off, and release or decline each chosen
    request, each in a savepoint of its own, so a refusal (changed meanwhile, the other
    provider busy now) undoes nothing else; each row's outcome in words. A move keeps the time
    and tells the patient as any move does (not counted as one of their own reschedules); a
    cancellation is the practice's (no fee, any prepayment refunded), tells the patient
    `reason`, and with `wait_list` puts them on the waitlist for the same service and clinic.
    A time proposed to the patient (tentative) is moved through `propose` (the queue's own
    propose_time): proposed again with the colleague at the same time, the patient sent it.
    A released request stays in the queue for a decision, with the colleague chosen or any
    provider; a declined one is declined through `decline` (the queue's own service), the
    patient told `reason`."""
    ensure(actor, Permission.SCHEDULES_MANAGE)
    chosen = list({h.appointment_id: h for h in handlings}.values())
    if not chosen or any(h.choice not in tuple(Choice) for h in chosen):
        raise ValidationError(
            "Choose for each visit to handle: move it or cancel it; for each request, release "
            "it to another provider or decline it."
        )
    kinds = {Choice(h.choice) for h in chosen}
    if Choice.MOVE in kinds:
        ensure(actor, RULES[Action.RESCHEDULE].permission)
    if Choice.CANCEL in kinds:
        ensure(actor, RULES[Action.CANCEL].permission)
        if wait_list is not None:
            ensure(actor, Permission.WAITLIST_EDIT)
    if kinds & set(REQUEST_CHOICES):
        ensure(actor, RULES[Action.APPROVE].permission)  # deciding on requests
    if Choice.DECLINE in kinds and decline is None:
        raise ValidationError("Declining requests is not offered here; decline them in the queue.")
    if Choice.CANCEL in kinds or Choice.DECLINE in kinds:
        reason = require_reason(reason, "cancellation" if Choice.CANCEL in kinds else "decline")
    off = _time_off(session, time_off_id)
    inside = {b.id for b in booked_in(session, off.provider_id, off.starts_at, off.ends_at)}
    asked = {a.id for a in requests_in(session, off)}
    results = []
    for handling in chosen:
        number, choice = handling.appointment_id, Choice(handling.choice)
        try:
            with session.begin_nested():
                if number in inside and choice not in BOOKED_CHOICES:
                    raise ValidationError(
                        f"Appointment #{number} is booked: move it or cancel it (or leave it)."
                    )
                if number in asked and choice not in REQUEST_CHOICES:
                    raise ValidationError(
                        f"Appointment #{number} is a request: release it to another provider "
                        "or decline it (or leave it)."
                    )
                if number not in inside | asked:
                    raise NotFound(
                        f"Appointment #{number} is not booked or requested in this time off "
                        "(any more); nothing was done to it."
                    )
                if choice == Choice.MOVE:
                    words = _move(session, actor, off, handling, propose)
                elif choice == Choice.CANCEL:
                    words = _cancel(session, actor, handling, reason, wait_list)
                elif choice == Choice.RELEASE:
                    words = _release(session, actor, off, handling)
                else:
                    words = _decline(session, actor, off, handling, reason, decline)
            results.append(RowResult(number, True, words))
        except PermissionDenied:
            raise
        except DomainError as error:
            results.append(RowResult(number, False, str(error)))
    done = {
        h.appointment_id: Choice(h.choice) for h, r in zip(chosen, results, strict=True) if r.ok
    }
    audit.record(  # each visit's own event says what was done to it; this, why and together
        session,
        actor,
        "time_off_visits_handled",
        "provider",
        off.provider_id,
        reason=reason or None,
        details={
            "time_off_id": off.id,
            "moved": [i for i, c in done.items() if c == Choice.MOVE],
            "cancelled": [i for i, c in done.items() if c == Choice.CANCEL],
            "released": [i for i, c in done.items() if c == Choice.RELEASE],
            "declined": [i for i, c in done.items() if c == Choice.DECLINE],
            "refused": [r.id for r in results if not r.ok],
            "wait_listed": wait_list is not None and Choice.CANCEL in kinds,
        },
    )
    return results


def _move(
    session: Session, actor: Actor, off: TimeOff, handling: Handling, propose: Propose | None
) -> str:
    if handling.provider_id is None:
        raise ValidationError(
            f"Choose who takes over appointment #{handling.appointment_id} (a colleague free "
            "at its time); when nobody is, cancel it or leave it."
        )
    visit = session.get(Appointment, handling.appointment_id)
    if visit.status == AppointmentStatus.TENTATIVE:
        return _propose_again(session, actor, visit, handling, propose)
    outcome = reschedule(
        session,
        actor,
        visit.id,
        start_at=visit.start_at,
        provider_id=handling.provider_id,
        expected_version=handling.version,
        moved_from=(visit.start_at, off.provider_id),  # still with the provider who is off
    )
    return outcome.after(f"Moved to {visit.provider.name}, same time.")


def _propose_again(
    session: Session,
    actor: Actor,
    visit: Appointment,
    handling: Handling,
    propose: Propose | None,
) -> str:
    """A time proposed to the patient, proposed again with the colleague at the same time
    through the queue's own propose_time (the booking rules, a new link sent, the old one
    stopped); one answering a change request is refused, saying where to go."""
    if _answers_change(session, visit.id):
        raise ValidationError(f"Appointment #{visit.id}: {FOR_CHANGE}")
    if propose is None:
        raise ValidationError(
            "Proposing a time again is not offered here; propose it in the queue."
        )
    proposed = propose(
        session,
        actor,
        visit.id,
        provider_id=handling.provider_id,
        start_at=visit.start_at,
        expected_version=handling.version,
    )
    return (
        f"Proposed again with {visit.provider.name}, same time; the patient is sent the new "
        f"proposal (the earlier link stops working). {proposed.outcome.summary}"
    ).replace("\n", " ")


def _cancel(
    session: Session, actor: Actor, handling: Handling, reason: str, wait_list: WaitList | None
) -> str:
    outcome = cancel_appointment(
        session, actor, handling.appointment_id, reason=reason, expected_version=handling.version
    )
    money = f" {outcome.money}" if outcome.money else ""
    words = outcome.after(f"Cancelled as the practice, no fee.{money}")
    if wait_list is not None:
        try:
            with session.begin_nested():
                entry = wait_list(session, actor, handling.appointment_id)
            words += f" On the waitlist (entry #{entry.id})."
        except DomainError as error:  # the cancellation stands; the desk is told why
            words += f" Not put on the waitlist: {error}"
    return words.replace("\n", " ")


def _waiting_request(session: Session, off: TimeOff, handling: Handling) -> Appointment:
    """The request, row-locked, still waiting with the provider away and as the desk saw it
    (another desk's decision, or its release, meanwhile: refused with who did it and when)."""
    request = load(
        session, handling.appointment_id, Action.APPROVE, handling.version, handled_if_moved=True
    )
    if request.provider_id != off.provider_id:
        raise Conflict(handled_message(session, request))
    return request


def _release(session: Session, actor: Actor, off: TimeOff, handling: Handling) -> str:
    """The request's provider preference given up for a colleague free then, or any provider;
    it stays in the queue for a decision (the patient hears with it)."""
    request = _waiting_request(session, off, handling)
    away = session.get(Provider, off.provider_id)
    to = None
    if handling.provider_id is not None:
        to = session.get(Provider, handling.provider_id)
        free = {p.id for p in _free_for_request(session, request, off.provider_id)}
        if to is None or to.id not in free:
            name = to.name if to else f"Provider #{handling.provider_id}"
            raise ValidationError(
                f"{name} is not free for it then (or does not perform it): choose a colleague "
                "its row names, or any provider. Nothing was done to it."
            )
    request.provider_id, request.provider = (to.id, to) if to else (None, None)
    flush(session, request)
    audit.record(
        session,
        actor,
        "request_provider_released",
        ENTITY,
        request.id,
        patient_id=request.patient_id,
        from_status=request.status.value,
        to_status=request.status.value,
        details={
            "time_off_id": off.id,
            "from_provider_id": off.provider_id,
            "to_provider_id": to.id if to else None,
        },
    )
    who = f"with {to.name}" if to else "for any provider"
    return (
        f"Now {who} ({away.name} is away then); still a request waiting for a decision in the "
        "queue. The patient is told when it is decided."
    )


def _decline(
    session: Session,
    actor: Actor,
    off: TimeOff,
    handling: Handling,
    reason: str,
    decline: Decline,
) -> str:
    request = _waiting_request(session, off, handling)
    outcome = decline(session, actor, request.id, reason=reason, expected_version=request.version)
    return outcome.after("Declined as the practice.").replace("\n", " ")
