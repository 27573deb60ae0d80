"""Cover for a provider's time off: the visits booked in it, who could take each over at the
same time, and handling them in one go (each moved to another provider or cancelled as the
practice), each visit in a savepoint of its own with its outcome in words.

The waitlist sits above scheduling, so whoever calls `handle_time_off_visits` hands in the
waitlist's own service (core.waitlist.entries.add_after_cancellation) to wait-list the
patients of cancelled visits.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import DomainError, NotFound, PermissionDenied, ValidationError
from core.kernel.money import clinic_time_range
from core.practice.skills import able
from core.practice.timing import timing_of
from core.practice.treatment import services_of, treatment_of
from core.scheduling.availability import find_conflicts, resources_taken, working_hours_cover
from core.scheduling.lifecycle import RowResult, duration_of, require_reason
from core.scheduling.moves import cancel_appointment, reschedule
from core.scheduling.schedules import BookedVisit, booked_in
from core.scheduling.states import RULES, STATUS_WORDS, Action
from db.models import Appointment, Provider, TimeOff, WorkingHours

# the waitlist's service for a cancelled visit: (session, actor, appointment id) → its entry
WaitList = Callable[[Session, Actor, int], Any]


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
    free at its very time: working then, not on time off, no clash with their bookings or
    their buffers, and the rooms and equipment it needs not taken; by name."""
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
        and working_hours_cover(session, pid, visit.clinic_id, start, end)
        and not find_conflicts(
            session,
            pid,
            start,
            end,
            visit.id,
            before=before,
            after=after,
            clinic_id=visit.clinic_id,
        )
    ]
    return sorted(free, key=lambda p: (p.name, p.id))


def _time_off(session: Session, time_off_id: int) -> TimeOff:
    off = session.get(TimeOff, time_off_id)
    if off is None:
        raise NotFound(f"There is no time off #{time_off_id} (removed meanwhile?).")
    return off


def _row(session: Session, booked: BookedVisit, away_id: int) -> TimeOffVisit:
    visit = session.get(Appointment, booked.id)
    scheduled = visit.status in RULES[Action.RESCHEDULE].sources and not booked.held
    cover = _free_cover(session, visit, away_id) if scheduled else []
    if booked.held:
        note = "Its original time, held while the patient answers a proposed new time."
    elif not scheduled:
        note = f"{STATUS_WORDS[visit.status].capitalize()}: it cannot be moved from here."
    elif not cover:
        note = "Nobody else who performs it is free then."
    else:
        others = ", ".join(p.name for p in cover[1:])
        note = f"Also free: {others}." if others else ""
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


def list_time_off_visits(session: Session, actor: Actor, time_off_id: int) -> list[TimeOffVisit]:
    """The live visits booked in a time off (the existing rule: tentative, scheduled or
    checked in, and original times held for waiting proposals), soonest first, each with every
    other provider free to take it over at the same time (by name; none: it cannot be moved)."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    off = _time_off(session, time_off_id)
    return [
        _row(session, booked, off.provider_id)
        for booked in booked_in(session, off.provider_id, off.starts_at, off.ends_at)
    ]


class Choice(enum.StrEnum):
    MOVE = "move"  # to another provider, at the same time
    CANCEL = "cancel"  # as the practice: no fee, prepayment refunded


@dataclass(frozen=True)
class Handling:
    """What to do with one visit in the time off: move it to `provider_id` (any of its row's
    free colleagues; one not free then is refused by the booking rules), or cancel it.
    `version`: the one the desk saw (changed since: refused)."""

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
) -> list[RowResult]:
    """Move or cancel each chosen visit of a time off, each in a savepoint of its own, so a
    refusal (changed meanwhile, the other provider busy now) undoes nothing else; each row's
    outcome in words. A move keeps the time and tells the patient as any move does (not
    counted as one of their own reschedules); a cancellation is the practice's (no fee, any
    prepayment refunded), tells the patient `reason`, and with `wait_list` puts them on the
    waitlist for the same service and clinic."""
    ensure(actor, Permission.SCHEDULES_MANAGE)
    chosen = list({h.appointment_id: h for h in handlings}.values())
    if not chosen or any(h.choice not in tuple(Choice) for h in chosen):
        raise ValidationError("Choose for each visit to handle: move it or cancel it.")
    kinds = {Choice(h.choice) for h in chosen}
    if Choice.MOVE in kinds:
        ensure(actor, RULES[Action.RESCHEDULE].permission)
    if Choice.CANCEL in kinds:
        ensure(actor, RULES[Action.CANCEL].permission)
        if wait_list is not None:
            ensure(actor, Permission.WAITLIST_EDIT)
        reason = require_reason(reason, "cancellation")
    off = _time_off(session, time_off_id)
    inside = {b.id for b in booked_in(session, off.provider_id, off.starts_at, off.ends_at)}
    results = []
    for handling in chosen:
        number = handling.appointment_id
        try:
            with session.begin_nested():
                if number not in inside:
                    raise NotFound(
                        f"Appointment #{number} is not booked in this time off (any more); "
                        "nothing was done to it."
                    )
                if Choice(handling.choice) == Choice.MOVE:
                    words = _move(session, actor, off, handling)
                else:
                    words = _cancel(session, actor, handling, reason, wait_list)
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
            "refused": [r.id for r in results if not r.ok],
            "wait_listed": wait_list is not None and Choice.CANCEL in kinds,
        },
    )
    return results


def _move(session: Session, actor: Actor, off: TimeOff, handling: Handling) -> str:
    if handling.provider_id is None:
        raise ValidationError(
            f"Choose who takes over appointment #{handling.appointment_id} (a colleague free "
            "at its time); when nobody is, cancel it or leave it."
        )
    visit = session.get(Appointment, handling.appointment_id)
    outcome = reschedule(
        session,
        actor,
        visit.id,
        start_at=visit.start_at,
        provider_id=handling.provider_id,
        expected_version=handling.version,
        moved_from=(visit.start_at, off.provider_id),  # still with the provider who is off
    )
    return f"Moved to {visit.provider.name}, same time. {outcome.summary}"


def _cancel(
    session: Session, actor: Actor, handling: Handling, reason: str, wait_list: WaitList | None
) -> str:
    outcome = cancel_appointment(
        session, actor, handling.appointment_id, reason=reason, expected_version=handling.version
    )
    money = f" {outcome.money}" if outcome.money else ""
    words = f"Cancelled as the practice, no fee.{money} {outcome.summary}"
    if wait_list is not None:
        try:
            with session.begin_nested():
                entry = wait_list(session, actor, handling.appointment_id)
            words += f" On the waitlist (entry #{entry.id})."
        except DomainError as error:  # the cancellation stands; the desk is told why
            words += f" Not put on the waitlist: {error}"
    return words.replace("\n", " ")
