"""The day itself: check-in, completion and no-show, and undoing a mistaken check-in or no-show.

A no-show recorded by mistake (the patient was in the waiting room) can be undone on the
clinic-local day it was recorded, the day the desk works on the Today board: the visit goes back
to scheduled (a no-show is only ever recorded from scheduled), the fee and points the policy
assessed are waived (the ledger keeps the entries), a no-show message not sent yet is stopped and
a patient it reached is told it was a mistake; the clinic's inbox hears that it was undone. A
no-show does not hold its time, so the undo checks the time as a booking does: another booking
made meanwhile (the provider's, a room's or the patient's own) refuses it unless staff allow
double booking. Later, the no-show stands and a manager may waive the fee; a fee already paid is
not undone here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.kernel.authz import Actor
from core.kernel.clock import local_today
from core.kernel.errors import Conflict, InvalidTransition, NotFound
from core.kernel.money import clinic_money, clinic_time
from core.messaging import clinic_events, notify
from core.messaging.preferences import preferences
from core.payments import desk
from core.policy import cancellation as policy
from core.practice.timing import Timing
from core.practice.travel import travel_time
from core.scheduling.availability import (
    find_conflicts,
    lock_provider,
    lock_resources,
    patient_visits,
    required_resources,
    resources_taken,
)
from core.scheduling.lifecycle import (
    Outcome,
    base_url,
    clash_margin,
    flush,
    latest_event,
    load,
    message_context,
    outcome_of,
    record,
    reopen_changes,
    services_of,
    tell_patient,
    visit_when,
    when_text,
    withdraw_changes,
)
from core.scheduling.states import ENTITY, Action, S, check_transition, ensure_allowed
from db.models import (
    Appointment,
    AppointmentKind,
    AuditEvent,
    Channel,
    Clinic,
    LedgerEntry,
    LedgerKind,
    Patient,
    Payment,
    VisitMode,
)
from db.types import utcnow

NO_SHOW_NOTICE = "appointment_no_show"
WITHDRAWN_NOTICE = "appointment_no_show_withdrawn"  # to a patient the no-show notice reached
DOUBLE_BOOKING_UNDO = "Allow double booking: undo it anyway, both stay on that time"
UNDONE_EVENT = "no_show_undone"  # the clinic's inbox (a follow-up of its "no_show" event)

# The survey line of a completed visit's thank-you. Surveys sit above scheduling, so the
# feedback layer hands it in (core.startup.install_session_rules, also run by the test
# fixtures); without it the thank-you simply has no survey line.
SurveyLine = Callable[[Session, Appointment, datetime], str]
_survey_line: list[SurveyLine] = []


def use_survey_line(line: SurveyLine) -> None:
    _survey_line[:] = [line]


# ---------------------------------------------------------------- the day itself


def is_check_in_day(start_at: datetime | None, tz: str, now: datetime | None = None) -> bool:
    """Whether `now` falls on the appointment's clinic-local day: check-in is open that day only."""
    return start_at is not None and local_today(tz, start_at) == local_today(tz, now)


def check_in_day_refusal(
    appointment: Appointment, now: datetime | None = None, what: str = "This appointment"
) -> str:
    """Why the appointment cannot be checked in at `now` ('' on its clinic-local day); `what`
    names what was tried ("This code" at the check-in desk)."""
    clinic = appointment.clinic
    if is_check_in_day(appointment.start_at, clinic.timezone, now):
        return ""
    when = clinic_time(clinic, appointment.start_at)
    if appointment.start_at > (now or utcnow()):
        return f"{what} is for {when}; check-in opens on the day."
    return (
        f"{what} was for {when}; it can no longer be checked in. Record the visit as "
        "completed or a no-show instead."
    )


def check_in(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Mark the patient arrived, on the appointment's clinic-local day only."""
    ensure_allowed(actor, Action.CHECK_IN)
    appointment = load(session, appointment_id, Action.CHECK_IN, expected_version)
    refusal = check_in_day_refusal(appointment, now)
    if refusal:
        raise InvalidTransition(refusal)
    before = appointment.status
    appointment.status, appointment.checked_in_at = S.CHECKED_IN, utcnow()
    flush(session, appointment)
    closed = withdraw_changes(session, actor, appointment, Action.CHECK_IN)
    record(session, actor, appointment, Action.CHECK_IN, before, details=closed or None)
    queued = None
    if preferences(session, appointment.clinic_id).tell_checked_in:  # the practice's choice
        queued = tell_patient(session, appointment, "appointment_checked_in")
    return outcome_of(appointment, queued)


def undo_check_in(
    session: Session, actor: Actor, appointment_id: int, *, expected_version: int | None = None
) -> Outcome:
    """A mistaken check-in undone: back to scheduled, audited; the patient is not messaged."""
    ensure_allowed(actor, Action.UNDO_CHECK_IN)
    appointment = load(session, appointment_id, Action.UNDO_CHECK_IN, expected_version)
    before = appointment.status
    appointment.status, appointment.checked_in_at = S.SCHEDULED, None
    flush(session, appointment)
    reopened = reopen_changes(session, appointment, Action.CHECK_IN)
    record(session, actor, appointment, Action.UNDO_CHECK_IN, before, details=reopened or None)
    return outcome_of(appointment)


def has_started(start_at: datetime | None, now: datetime | None = None) -> bool:
    """Whether the visit's start has come: it can be completed, or recorded as a no-show, from
    then on only (the pages offer those actions then only)."""
    return start_at is not None and start_at <= (now or utcnow())


def _require_started(appointment: Appointment, now: datetime, rule: str) -> None:
    if not has_started(appointment.start_at, now):
        starts = clinic_time(appointment.clinic, appointment.start_at)
        raise InvalidTransition(f"This visit starts at {starts}; {rule}.")


def complete(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> Outcome:
    ensure_allowed(actor, Action.COMPLETE)
    appointment = load(session, appointment_id, Action.COMPLETE, expected_version)
    now = now or utcnow()
    _require_started(appointment, now, "it can be completed once it is due")
    before = appointment.status
    appointment.status, appointment.completed_at = S.COMPLETED, now
    flush(session, appointment)
    closed = withdraw_changes(session, actor, appointment, Action.COMPLETE)
    record(session, actor, appointment, Action.COMPLETE, before, details=closed or None)
    # the thank-you, with the survey link only when the feedback rules would ask right now
    survey = _survey_line[0](session, appointment, now) if _survey_line else ""
    queued = tell_patient(session, appointment, "appointment_completed", survey=survey)
    return outcome_of(appointment, queued)


def no_show_consequences(session: Session, actor: Actor, appointment_id: int) -> str:
    """What recording a no-show will do, for the confirmation before it: the fee and points
    of the cancellation policy in force (if any) and that the patient is told."""
    ensure_allowed(actor, Action.NO_SHOW)
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound(f"There is no appointment #{appointment_id}.")
    who = appointment.patient.full_name if appointment.patient else "the patient"
    charges = []
    rules = policy.visit_policy(session, appointment)
    if rules is not None and appointment.patient_id is not None:
        fee_cents, fee = policy.no_show_cost(session, appointment)
        if fee_cents:  # "£40.00", or "50% of the visit's price (£40.00 for this visit)"
            charges.append(f"a no-show fee of {fee} is recorded")
        if rules.points_deducted:
            charges.append(f"{rules.points_deducted} points are deducted")
    text = f"Record {who} as a no-show? " + (
        f"Under the cancellation policy {' and '.join(charges)}. "
        if charges
        else "No fee applies. "
    )
    told = "They are told at once (email and text, as they agreed)."
    return text + (told if appointment.patient else "")


def mark_no_show(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> Outcome:
    ensure_allowed(actor, Action.NO_SHOW)
    appointment = load(session, appointment_id, Action.NO_SHOW, expected_version)
    now = now or utcnow()
    _require_started(appointment, now, "a no-show can only be recorded after it started")
    before = appointment.status
    appointment.status = S.NO_SHOW
    entries = policy.assess_no_show(session, appointment)
    flush(session, appointment)
    fee = sum(e.amount_cents or 0 for e in entries)
    # the deduction's entry records what it took, read under the patient's lock (a balance
    # read before it could be another writer's older one)
    taken = sum(e.points or 0 for e in entries if e.kind == LedgerKind.POINTS)
    record(
        session,
        actor,
        appointment,
        Action.NO_SHOW,
        before,
        # points_taken: what the deduction took (a balance stops at zero); an undo gives it back
        details={
            "fee_cents": fee,
            "points": sum(e.points or 0 for e in entries),
            "points_taken": taken,
            **withdraw_changes(session, actor, appointment, Action.NO_SHOW),
        },
    )
    charged = "".join(
        f"\nA no-show fee of {policy.charge_text(session, e)} applies."
        for e in entries
        if e.kind == LedgerKind.NO_SHOW_FEE and e.amount_cents
    )
    if taken:  # as a late cancellation's message says them (core.scheduling.moves.cancel)
        charged += f"\n{taken} points were deducted."
    queued = tell_patient(session, appointment, NO_SHOW_NOTICE, fee=charged)
    return outcome_of(appointment, queued)


# ---------------------------------------------------------------- undoing a no-show


def no_show_recorded_at(session: Session, appointment_ids: list[int]) -> dict[int, datetime]:
    """When each appointment's latest no-show was recorded (its audit event)."""
    if not appointment_ids:
        return {}
    rows = session.execute(
        select(AuditEvent.entity_id, func.max(AuditEvent.at))
        .where(
            AuditEvent.entity == ENTITY,
            AuditEvent.entity_id.in_(appointment_ids),
            AuditEvent.action == Action.NO_SHOW.value,
        )
        .group_by(AuditEvent.entity_id)
    )
    return {ident: at for ident, at in rows}


def undo_no_show_open(recorded_at: datetime | None, tz: str, now: datetime | None = None) -> bool:
    """Whether a no-show recorded at `recorded_at` may still be undone at `now`: on the same
    clinic-local day only."""
    return recorded_at is not None and local_today(tz, recorded_at) == local_today(tz, now)


@dataclass(frozen=True)
class _Undo:
    event: AuditEvent
    charges: list[LedgerEntry]
    points_taken: int | None  # what the deduction took (None: not recorded, all of it)
    reached: list[Channel]  # where the no-show message went (or is going) out
    waiting: list[Channel]  # where it still waits, and is stopped
    since: datetime | None  # an earlier undo: the no-show messages before it were dealt with
    paid: list[Payment]  # the fee paid meanwhile: given back
    # points given back on a record merged since: what goes on to the record kept
    # (core.policy.merge_preview before the undo; follow_merge's result after it)
    merged: tuple[policy.Followed, ...] = ()

    @property
    def fee_cents(self) -> int:
        return sum(e.amount_cents or 0 for e in self.charges if e.kind != LedgerKind.POINTS)

    @property
    def points_back(self) -> int:
        points = sum(e.points or 0 for e in self.charges if e.kind == LedgerKind.POINTS)
        return points if self.points_taken is None else min(points, max(0, self.points_taken))

    def reversed_text(self, appointment: Appointment) -> str:
        """'the no-show fee of £25.00 is waived and the 5 points deducted are given back'; on
        a record merged since, 'the deduction of 5 points is waived' (where they go:
        `merged_text`)."""
        parts = []
        if self.fee_cents:
            fee = clinic_money(appointment.clinic, self.fee_cents)
            parts.append(f"the no-show fee of {fee} is waived")
        if self.points_back and self.merged:
            parts.append(f"the deduction of {self.points_back} points is waived")
        elif self.points_back:
            parts.append(f"the {self.points_back} points deducted are given back")
        elif any(e.kind == LedgerKind.POINTS for e in self.charges):
            parts.append("the points deduction is waived (it took none: the balance was 0)")
        if self.paid:
            paid = clinic_money(appointment.clinic, sum(p.amount_cents for p in self.paid))
            parts.append(f"the {paid} paid for it is refunded")
        return " and ".join(parts)

    def merged_text(self, *, for_patient: bool = False) -> str:
        """Where points given back on a record merged since go: the desk's sentence
        (Followed.words) or the patient's, without record numbers; '' when not merged."""
        return " ".join(f.told("deducted") if for_patient else f.words for f in self.merged)

    def refund_text(self) -> str:
        """How the paid fee goes back, for the staff's confirmation ('' when none was paid)."""
        if not self.paid:
            return ""
        refs = ", ".join(f"P-{p.id}" for p in self.paid)
        if all(p.method == "stripe" for p in self.paid):
            return f"The fee paid ({refs}) goes back to the card through the payment provider."
        return (
            f"The fee paid ({refs}) is due back at the desk: hand it back, then mark the refund "
            "on the appointment's Payments."
        )


def _undo_plan(
    session: Session, appointment: Appointment, now: datetime | None, *, lock: bool = False
) -> _Undo:
    """What undoing this no-show reverses, or InvalidTransition saying why it cannot be."""
    event = latest_event(session, appointment.id, Action.NO_SHOW)
    clinic = appointment.clinic
    if event is None:
        raise InvalidTransition(
            "This no-show has no record of when it was recorded, so it cannot be undone here."
        )
    if not undo_no_show_open(event.at, clinic.timezone, now):
        raise InvalidTransition(
            f"This no-show was recorded on {clinic_time(clinic, event.at)}; it can be undone "
            "only on the day it was recorded. A manager can still waive its fee."
        )
    charges = policy.no_show_charges(session, appointment.id, lock=lock)
    paid = desk.paid_fees(session, [e.id for e in charges], lock=lock)
    taken = (event.details or {}).get("points_taken")
    # only this no-show's message counts: after an earlier undo (no-show, undo, no-show again)
    # the first one's message was put right or stopped then
    since = session.scalar(
        select(func.max(AuditEvent.at)).where(
            AuditEvent.entity == ENTITY,
            AuditEvent.entity_id == appointment.id,
            AuditEvent.action == Action.UNDO_NO_SHOW.value,
            AuditEvent.id < event.id,
        )
    )
    reached, waiting = notify.reached_channels(session, appointment.id, NO_SHOW_NOTICE, since=since)
    points = taken if isinstance(taken, int) else None
    merged = []
    for entry in charges:  # what the waiver's follow_merge will do, nothing written
        given = policy.points_given_back(entry, points)
        owner = session.get(Patient, entry.patient_id) if given else None
        if owner is not None and owner.merged_into_id is not None:
            merged.append(policy.merge_preview(session, owner, given))
    return _Undo(event, charges, points, reached, waiting, since, paid, tuple(merged))


def _given_back_to(session: Session, plan: _Undo) -> frozenset[int]:
    """The records the undo gives points back to, and the record each was merged into since
    (core.policy.follow_merge passes them on): locked with the visit's patient, in id order."""
    ids: set[int] = set()
    for entry in plan.charges:
        owner = session.get(Patient, entry.patient_id) if entry.kind == LedgerKind.POINTS else None
        if owner is not None:
            ids |= {owner.id} | ({owner.merged_into_id} if owner.merged_into_id else set())
    return frozenset(ids)


@dataclass(frozen=True)
class _Clashes:
    """What holds the visit's time now: a no-show does not, so it may have been booked since."""

    words: list[str]  # each clash, naming the booking
    details: dict[str, list]  # for the audit, as a booking's double-booking override records it


def _clashes(
    session: Session, appointment: Appointment, *, lock: bool = False, also: frozenset = frozenset()
) -> _Clashes:
    """The provider's bookings and time off, the rooms and equipment fully in use, and the
    patient's own appointments overlapping the visit (its buffers included), as a booking checks
    them (core.scheduling.lifecycle.place, .hold_resources; core.scheduling.moves). With `lock`,
    the provider, resources and patient rows are locked in the booking's order until the
    transaction ends, so a booking cannot take the time while the undo checks it; the patients
    `also` (the records the undo gives points back to) are locked with the visit's patient, all
    in the order of their ids, as a merge locks them."""
    clinic, start, end = appointment.clinic, appointment.start_at, appointment.end_at
    timing = Timing(
        0, appointment.buffer_before_minutes or 0, appointment.buffer_after_minutes or 0
    )
    before, after = timing.padding
    words: list[str] = []
    details: dict[str, list] = {}
    provider = appointment.provider
    virtual = appointment.mode == VisitMode.VIRTUAL  # no travel time around a video visit
    if provider is not None:
        if lock:
            lock_provider(session, provider.id)
        taken = find_conflicts(
            session,
            provider.id,
            start,
            end,
            appointment.id,
            before=before,
            after=after,
            clinic_id=appointment.clinic_id,
            virtual=virtual,
        )
        if taken:  # as a booking's refusal: only the travel time or the buffers, said so
            travel = timedelta(0) if virtual else travel_time(session)
            margin = clash_margin(clinic, taken[0], start, end, timing, travel)
            words.append(f"{provider.name} {_bookings_words(clinic, taken, margin)}")
            details["double_booked_with"] = [a.id for a in taken]
    service_ids = [s.id for s in services_of(appointment)]
    if lock:
        needed = required_resources(session, appointment.clinic_id, service_ids)
        lock_resources(session, [r.id for r in needed])
    busy = resources_taken(
        session, appointment.clinic_id, service_ids, start, end, timing, appointment.id
    )
    if busy:
        words += [b.message(clinic.name) for b in busy]
        details["resources_overbooked"] = [b.name for b in busy]
    patient = appointment.patient
    if lock:  # in id order, as a merge locks two records (core.patients.merge)
        for ident in sorted(also | ({patient.id} if patient is not None else set())):
            session.execute(select(Patient.id).where(Patient.id == ident).with_for_update())
    if patient is not None:
        theirs = patient_visits(
            session, patient.id, start, end, exclude_appointment_id=appointment.id
        )
        if theirs:
            words.append(f"{patient.full_name} {_bookings_words(clinic, theirs)}")
            details["patient_double_booked_with"] = [a.id for a in theirs]
    return _Clashes(words, details)


def _bookings_words(here: Clinic, bookings: list[Appointment], margin: str = "") -> str:
    """'has appointment #12 (Sam Lee with Dr Rivera) on 10:05–10:35 (and 1 more)', on the
    clock of `here` (the undone visit's clinic; one at another clinic is named:
    lifecycle.visit_when), with `margin` after the time (lifecycle.clash_margin)."""
    first = bookings[0]
    when = visit_when(here, first) + margin
    more = f" (and {len(bookings) - 1} more)" if len(bookings) > 1 else ""
    if first.kind == AppointmentKind.OUT_OF_OFFICE:
        return f"is out of office {when}{more}"
    who = [first.patient.full_name] if first.patient else []
    who += [f"with {first.provider.name}"] if first.provider else []
    return f"has appointment #{first.id} ({' '.join(who)}) {when}{more}"


def _clash_text(clashes: _Clashes) -> str:
    return (
        "Its time is taken now (a no-show does not hold it): "
        f"{'; '.join(clashes.words)}. Allow double booking to undo it anyway, or keep the "
        "no-show and book a new time."
    )


def _channel_words(channels: list[Channel]) -> str:
    return " and ".join(notify.CHANNEL_WORDS[c] for c in channels)


@dataclass(frozen=True)
class UndoPreview:
    """The confirmation before an undo: what it reverses, and what holds the visit's time now
    ('' when nothing does; otherwise the undo needs double booking allowed)."""

    text: str
    clash: str


def undo_no_show_consequences(
    session: Session, actor: Actor, appointment_id: int, *, now: datetime | None = None
) -> str:
    """What undoing the no-show will reverse and what holds its time now, for the confirmation
    before it (or InvalidTransition when it cannot be undone)."""
    return undo_no_show_preview(session, actor, appointment_id, now=now).text


def undo_no_show_preview(
    session: Session, actor: Actor, appointment_id: int, *, now: datetime | None = None
) -> UndoPreview:
    """undo_no_show_consequences, with the clash on its own for the page to offer the
    double-booking override."""
    ensure_allowed(actor, Action.UNDO_NO_SHOW)
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound(f"There is no appointment #{appointment_id}.")
    check_transition(appointment, Action.UNDO_NO_SHOW)
    plan = _undo_plan(session, appointment, now)
    clashes = _clashes(session, appointment)
    clash = _clash_text(clashes) if clashes.words else ""
    patient = appointment.patient
    who = f"{patient.full_name}'s" if patient else "this"
    recorded = clinic_time(appointment.clinic, plan.event.at)
    text = f"Undo {who} no-show (recorded by {plan.event.actor_label}, {recorded})? " + (
        f"{clash} " if clash else ""
    )
    text += "The visit goes back to scheduled: check them in once they are here. "
    reversed_ = plan.reversed_text(appointment)
    text += (
        f"Under the cancellation policy {reversed_}; the ledger keeps the entries, marked waived. "
        if reversed_
        else "No fee or points were charged. "
    )
    if merged := plan.merged_text():
        text += f"{merged} "
    if plan.paid:
        text += f"{plan.refund_text()} "
    if plan.reached:
        text += (
            f"They were told of the no-show ({_channel_words(plan.reached)}), so they are told "
            "it was a mistake, as they agreed to be contacted. "
        )
    if plan.waiting:
        text += f"The no-show message not sent yet ({_channel_words(plan.waiting)}) is stopped. "
    return UndoPreview(text.strip(), clash)


def undo_no_show(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    expected_version: int | None = None,
    now: datetime | None = None,
    allow_double_booking: bool = False,
) -> Outcome:
    """A no-show recorded by mistake undone, on the clinic-local day it was recorded: back to
    scheduled, the no-show's fee and points waived (the entries stay), its message stopped if
    not sent yet, a fee paid meanwhile refunded, a patient it reached told it was a mistake and
    the clinic's inbox told it was undone; audited. Refused (Conflict, naming the booking) when
    the visit's time was taken meanwhile, unless double booking is explicitly allowed, which
    the audit records."""
    ensure_allowed(actor, Action.UNDO_NO_SHOW)
    appointment = load(session, appointment_id, Action.UNDO_NO_SHOW, expected_version)
    plan = _undo_plan(session, appointment, now, lock=True)
    clashes = _clashes(session, appointment, lock=True, also=_given_back_to(session, plan))
    if clashes.words and not allow_double_booking:
        raise Conflict(f"The no-show cannot be undone as it is. {_clash_text(clashes)}")
    if clashes.words:
        appointment.allow_double_booking = True
    before = appointment.status
    appointment.status = S.SCHEDULED
    reason = f"No-show recorded by mistake; undone by {actor.label}."
    done = policy.reverse_no_show(session, actor, plan.charges, reason, plan.points_taken)
    # points given back on a record merged since: where they went, and why not all of them
    plan = replace(plan, merged=tuple(done))
    followed = plan.merged_text()
    refunds = desk.refund_fees(session, actor, plan.paid, reason)
    notify.withdraw_unsent(
        session, appointment.id, NO_SHOW_NOTICE, "Not sent: the no-show was undone."
    )
    flush(session, appointment)
    record(
        session,
        actor,
        appointment,
        Action.UNDO_NO_SHOW,
        before,
        message=followed or None,
        details={
            "no_show_event_id": plan.event.id,
            "fee_cents_waived": plan.fee_cents,
            "points_given_back": plan.points_back,
            "ledger_entry_ids": [e.id for e in plan.charges],
            **({"fee_refunds": [r.id for r in refunds]} if refunds else {}),
            **clashes.details,
            **reopen_changes(session, appointment, Action.NO_SHOW),
        },
    )
    _tell_clinic_undone(session, actor, appointment)
    queued = None
    reached, _ = notify.reached_channels(session, appointment.id, NO_SHOW_NOTICE, since=plan.since)
    if reached:  # a message that reached them (or is going out right now) is put right
        reversed_ = plan.reversed_text(appointment)
        fee = f"\n{reversed_[0].upper()}{reversed_[1:]}." if reversed_ else ""
        if told := plan.merged_text(for_patient=True):
            fee += f"\n{told}"
        queued = tell_patient(session, appointment, WITHDRAWN_NOTICE, channels=reached, fee=fee)
    return replace(outcome_of(appointment, queued), money=followed)


def _tell_clinic_undone(session: Session, actor: Actor, appointment: Appointment) -> None:
    """The clinic's inbox heard of the no-show (core.scheduling.lifecycle.tell_clinic_of): its
    email is stopped if it has not gone out yet, and the inbox hears the no-show was undone."""
    heard = clinic_events.latest_event(session, appointment.id, ("no_show", UNDONE_EVENT))
    if heard is None or heard.event != "no_show":
        return
    clinic_events.withdraw_email(session, heard, "Not sent: the no-show was undone.")
    patient = appointment.patient.full_name if appointment.patient else "A patient"
    service = message_context(appointment)["service_name"]
    clinic_events.tell_clinic(
        session,
        appointment.clinic_id,
        UNDONE_EVENT,
        f"{patient} was recorded as a no-show for {service} on {when_text(appointment)} by "
        f"mistake; {actor.label} undid it, and the visit is scheduled again.",
        appointment_id=appointment.id,
        link=clinic_events.item_link(base_url(session), appointment.id),
    )
