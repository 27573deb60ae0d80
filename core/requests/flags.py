"""A flagged public booking request (db RequestFlag): what the desk may do about its flag, in
one click each, and the flag cleared once handled (its audit events stay).

The flag says why the request needs a person's look: its email or phone belongs to a known
patient but the typed name or date of birth differs ("check identity"), the record has no date
of birth and one was typed, the patient may not book online, or a new record was made whose
name (and perhaps date of birth) a patient on file has ("maybe a known patient"). After
checking (a call, usually), the desk says what it found:

- same person: the request stays on the record; a date of birth typed for a record with none
  can be added to it in the same click (the records' update: its checks and its audit);
- not the same person (a family member sharing the email or phone): the request, while it
  waits for its decision, moves to a new record made from what was typed (the records'
  create_patient), with the shared contact, and waits in the queue there for the usual
  decision. Declining instead would tell the shared contact "declined" for a request a real
  person made in good faith, and leaving it would put someone else's visit in this patient's
  history. Its messages not sent yet (the acknowledgement, a proposal still in the outbox, one
  failed for a person to retry) are stopped in the same transaction: written for the first
  record's patient, they would tell the new record's the first patient's name, or the first
  patient of someone else's visit; what was sent stays on the first record as its history,
  and its desk payments (card or cash) go with the visit. The one the request waits with, if
  it was stopped and went on no channel, is written again for the new record by the code that
  wrote it first, on the channels that record takes: the acknowledgement, or the proposal's
  message with a new link (without the practice's note to the first patient). A request the
  practice proposed a time for waits too (for its patient's answer): it moves with the time
  it holds and what was asked, and a link sent still answers it, for the new record (a
  proposal link names the visit, not the record); with none sent nor written again, the desk
  is told what to do. A visit booked already (a change request's proposal too) stays:
  its messages, payments and points are on the record it was booked on;
- "maybe a known patient": it is them, and the new record is merged into theirs
  (core.patients.merge, the request moving with it), or it is someone else and the new record
  stays. The merge is offered on a decided request too (approved, declined, cancelled): unlike
  the move above, which takes the visit alone (its messages not sent yet stopped), it moves
  everything of the new record (the visit as decided, its messages, payments, fees and
  points) and sends the patient nothing.

Each is one transaction with the permission checked here; the flag's row is locked first, so
of two people acting at once one wins and the other is told who handled it and when.

The queue offers these beside the request; the appointment's page beside the flag's notice
(offered_on), for a request decided without acting on its flag has left the queue.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import Conflict, NotFound, ValidationError
from core.kernel.money import clinic_time, format_day
from core.kernel.phones import not_for_texts
from core.kernel.text import same_name
from core.messaging import notify
from core.messaging.recipients import channels_for
from core.patients import merge
from core.patients.records import (
    check_texts,
    create_patient,
    likely_duplicate,
    practice_regions,
    update_patient,
)
from core.payments.prepay import DESK_METHODS
from core.requests import decisions
from core.scheduling.lifecycle import flush, latest_event
from core.scheduling.states import Action, status_is
from db.models import (
    Appointment,
    AppointmentStatus,
    ChangeRequest,
    ChangeStatus,
    Channel,
    Clinic,
    LinkToken,
    Notification,
    Patient,
    Payment,
    RequestFlag,
)
from db.types import utcnow


class FlagAction(enum.StrEnum):
    SAME_PERSON = "same_person"  # checked: it is the record's patient (or simply checked)
    ADD_BIRTH = "add_birth"  # same person, and the typed date of birth goes on the record
    NEW_RECORD = "new_record"  # not the same person: the request moves to a record of its own
    MERGE = "merge"  # a new record is a known patient's: merged into theirs
    SOMEONE_ELSE = "someone_else"  # a new record is not the known patient's: it stays


@dataclass(frozen=True)
class FlagChoice:
    action: FlagAction
    label: str  # ids and dates only: nothing anyone typed
    keep_id: int | None = None  # MERGE: the record kept
    merge_id: int | None = None  # MERGE: the request's new record, merged into keep_id


def choices(
    flag: RequestFlag,
    patient: Patient,
    locale: str,
    known: dict[int, Patient] | None = None,
    *,
    waiting: bool = True,
) -> list[FlagChoice]:
    """What the desk may do about this flag, for the request on `patient`'s record (rules as
    data: the page offers these, handle_flag accepts only these). `known`: known_records.
    `waiting`: the request still waits for its decision (only such moves to a new record:
    undecided)."""
    if flag.known_ids:  # a new record that may be a known patient's
        known = known or {}
        # each named patient's record in use (one merged since: the record it went into)
        kept = dict.fromkeys(known[k].id for k in flag.known_ids if k in known)
        if patient.id in kept:  # the new record was merged into theirs already (Patients page)
            return [
                FlagChoice(
                    FlagAction.SAME_PERSON,
                    f"Checked: it is #{patient.id} (the new record is merged into it already)",
                )
            ]
        return [
            *(
                FlagChoice(
                    FlagAction.MERGE,
                    f"It is #{k}: merge new record #{patient.id} into #{k} (the request moves "
                    "with it)",
                    k,
                    patient.id,
                )
                for k in kept
            ),
            FlagChoice(
                FlagAction.SOMEONE_ELSE,
                f"Someone else: keep new record #{patient.id} and clear the flag",
            ),
        ]
    offered = []
    if flag.typed_birth is not None and patient.date_of_birth is None:
        day = format_day(flag.typed_birth, locale, weekday=False)
        offered.append(
            FlagChoice(
                FlagAction.ADD_BIRTH,
                f"It is #{patient.id}: add the typed date of birth ({day}) to the record",
            )
        )
    checked = f"Checked: it is #{patient.id}" if flag.typed else "Checked: clear the flag"
    offered.append(FlagChoice(FlagAction.SAME_PERSON, checked))  # before 0024: no more known
    if waiting and flag.typed and _other_identity(flag, patient):
        offered.append(
            FlagChoice(
                FlagAction.NEW_RECORD,
                f"Not #{patient.id}: move the request to a new record made from what was typed",
            )
        )
    return offered


def offered_on(session: Session, actor: Actor, appointment_id: int) -> tuple[FlagChoice, ...]:
    """What `actor` may do about the visit's flag not handled yet, wherever its notice is
    shown (the appointment's page too: a request decided without acting on its flag leaves
    the queue, and its flag could be cleared nowhere else). Nothing when there is no such
    flag or the actor may not decide requests; the move to a new record only while the
    request waits for its decision (undecided), as handle_flag accepts."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    if not actor.can(Permission.REQUESTS_DECIDE):
        return ()
    found = session.execute(
        select(RequestFlag, Appointment, Patient)
        .join(Appointment, Appointment.id == RequestFlag.appointment_id)
        .join(Patient, Patient.id == Appointment.patient_id)
        .where(RequestFlag.appointment_id == appointment_id, RequestFlag.handled_at.is_(None))
    ).first()
    if found is None:
        return ()
    flag, appointment, patient = found
    clinic = session.get(Clinic, appointment.clinic_id)
    waiting = appointment.id in undecided(session, [appointment.id])
    known = known_records(session, [flag])
    return tuple(choices(flag, patient, clinic.locale, known, waiting=waiting))


def undecided(session: Session, appointment_ids: list[int]) -> set[int]:
    """Of these visits, the requests still waiting for their decision, which alone move to a
    new record: asked, or with a time proposed that their patient has not answered yet. A
    change request's proposal is on a visit booked already (tentative as well): not one."""
    if not appointment_ids:
        return set()
    for_a_change = exists().where(
        ChangeRequest.appointment_id == Appointment.id,
        ChangeRequest.status == ChangeStatus.PROPOSED,
    )
    return set(
        session.scalars(
            select(Appointment.id).where(
                Appointment.id.in_(appointment_ids),
                or_(
                    Appointment.status == AppointmentStatus.REQUESTED,
                    and_(Appointment.status == AppointmentStatus.TENTATIVE, ~for_a_change),
                ),
            )
        )
    )


def known_records(session: Session, flags: list[RequestFlag]) -> dict[int, Patient]:
    """Each patient the flags name (by id) and the record in use for them: itself, or the
    record it was merged into since."""
    wanted = {k for flag in flags for k in flag.known_ids or []}
    if not wanted:
        return {}
    found = session.scalars(select(Patient).where(Patient.id.in_(wanted)))
    return {p.id: merge.current_record(session, p) for p in found}


def _other_identity(flag: RequestFlag, patient: Patient) -> bool:
    """The typed name or date of birth is not the record's: it may be someone else."""
    born = flag.typed_birth
    return not same_name(flag.typed_name, patient.full_name) or (
        born is not None and patient.date_of_birth not in (None, born)
    )


def _claim(session: Session, appointment_id: int) -> tuple[RequestFlag, Appointment]:
    """The request's flag, its row locked (SQLite serialises writers) and read afresh, so of
    two acting at once the second waits, then finds it handled."""
    flag = session.execute(
        select(RequestFlag)
        .where(RequestFlag.appointment_id == appointment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar()
    appointment = session.get(Appointment, appointment_id)
    if flag is None or appointment is None:
        raise NotFound(f"Request #{appointment_id} has no flag to act on.")
    if flag.handled_at is not None:
        clinic = session.get(Clinic, appointment.clinic_id)
        raise Conflict(
            f"The flag on request #{appointment_id} was already handled by {flag.handled_by} "
            f"at {clinic_time(clinic, flag.handled_at, zone=True)}. Reload to see it."
        )
    return flag, appointment


def handle_flag(
    session: Session,
    actor: Actor,
    appointment_id: int,
    action: FlagAction | str,
    *,
    keep_id: int | None = None,
    allow_overlap: bool = False,
) -> str:
    """Do what the desk chose about a request's flag and clear it, in the caller's
    transaction; audited. Returns what was done, in words."""
    ensure(actor, Permission.REQUESTS_DECIDE)
    try:
        action = FlagAction(action)
    except ValueError:
        raise ValidationError(f"There is no action {action!r} on a request's flag.") from None
    flag, appointment = _claim(session, appointment_id)
    # what is offered depends on the record's name and date of birth: read under its row lock
    # (after the flag's), so an edit saving meanwhile is waited for and seen, not overwritten.
    # A maybe-known patient's choices depend on the others' records: the merge locks the pair
    # itself, in its own order
    patient = session.get(
        Patient,
        appointment.patient_id,
        with_for_update=not flag.known_ids,
        populate_existing=True,
    )
    clinic = session.get(Clinic, appointment.clinic_id)
    waiting = appointment_id in undecided(session, [appointment_id])
    if action == FlagAction.NEW_RECORD and not waiting:
        _refuse_decided(appointment, patient.id)
    known = known_records(session, [flag])
    offered = choices(flag, patient, clinic.locale, known, waiting=waiting)
    if not any(c.action == action and c.keep_id == keep_id for c in offered):
        raise Conflict(
            f"That is no longer possible for request #{appointment_id} (its record changed "
            "meanwhile). Reload to see what can be done."
        )
    details: dict = {"action": action.value}
    if action == FlagAction.ADD_BIRTH:
        _add_typed_birth(session, actor, flag, patient.id, appointment_id)
        done = f"Date of birth added to #{patient.id}; the flag is cleared."
    elif action == FlagAction.NEW_RECORD:
        ensure(actor, Permission.PATIENTS_EDIT)
        new, no_texts = _record_from_typed(session, actor, flag, appointment_id, patient.id)
        # the relationship too: the messages written again go to appointment.patient
        appointment.patient_id, appointment.patient = new.id, new
        flush(session, appointment)
        # written for the first record's patient (their name, about a visit now someone
        # else's): sent to the new record it would name them, left it would tell them of it
        why = (
            f"Not sent: written for #{patient.id}, and the request moved to new record "
            f"#{new.id} (not the same person)."
        )
        stopped = notify.withdraw_all_unsent(session, appointment_id, patient.id, why)
        payments = _take_desk_payments(session, appointment_id, patient.id, new.id)
        again = _write_again(session, appointment, stopped)
        audit.record(
            session,
            actor,
            "request_moved_to_new_record",
            "appointment",
            appointment_id,
            patient_id=new.id,
            message=f"Not #{patient.id}: moved to new record #{new.id}.",
            details={
                "from": patient.id,
                "to": new.id,
                "stopped": len(stopped),
                "payments": payments,
                "written_again": again.audited(),
            },
        )
        details["new_record"] = new.id
        held = ""
        if appointment.status == AppointmentStatus.TENTATIVE:  # its link names the visit
            link = _proposal_link(session, appointment_id, again, patient.id, new.id)
            held = f" with the time proposed to them ({link})"
        done = (
            f"Request #{appointment_id} moved to new record #{new.id}{held}; the flag is cleared."
        )
        if again.key == RECEIVED:
            done += f" Its acknowledgement, stopped as written for #{patient.id}, " + (
                f"is written again for #{new.id} and goes by {again.by()}."
                if again.channels
                else f"is not written again: #{new.id} takes no messages ({again.why()})."
            )
        if no_texts:
            done += f" {no_texts}, so the new record does not take text messages."
        twin = likely_duplicate(
            session, new.first_name, new.last_name, new.date_of_birth, besides=new.id
        )
        if twin is not None:  # the desk's choice was about #patient; this one may be them
            done += (
                f" Patient #{twin.id} has the same name and date of birth: if it is them, "
                f"merge #{new.id} into #{twin.id} on the Patients page."
            )
    elif action == FlagAction.MERGE:
        merged = merge.merge_patients(
            session,
            actor,
            keep_id,
            patient.id,
            f"Online request #{appointment_id}: the desk checked it is the same person.",
            allow_overlap=allow_overlap,
        )
        details["merged_into"] = keep_id
        done = f"{merged.message} The flag is cleared."
    else:
        done = "The flag is cleared."
    flag.handled_at, flag.handled_by = utcnow(), actor.label[:120]
    audit.record(
        session,
        actor,
        "request_flag_cleared",
        "appointment",
        appointment_id,
        patient_id=session.get(Appointment, appointment_id).patient_id,
        reason=flag.flag,
        details=details,
    )
    session.flush()
    return done


def _take_desk_payments(session: Session, appointment_id: int, from_id: int, to_id: int) -> int:
    """The request's payments taken at the desk (card or cash, and their refunds) are the
    visit's: they go to the new record with it; how many. Points or a card on file are the
    first record's own: a request with one stays (refused, nothing moved)."""
    paid = session.scalars(
        select(Payment).where(
            Payment.appointment_id == appointment_id, Payment.patient_id == from_id
        )
    ).all()
    if any(p.method not in DESK_METHODS or p.ledger_entry_id or p.provider_customer for p in paid):
        raise Conflict(
            f"Request #{appointment_id} has a payment from #{from_id}'s points or card on file, "
            f"so it stays on #{from_id}. Refund that payment first, then move the request."
        )
    for payment in paid:
        payment.patient_id = to_id
    return len(paid)


RECEIVED, PROPOSED = "request_received", "appointment_proposed"


@dataclass(frozen=True)
class _Again:
    """The request's message the move stopped before anyone had it, written again for the new
    record (_write_again): its template ('' when none was), the channels it goes on, why the
    others are not used, and whether the practice's note to the first record's patient was
    left out of it."""

    key: str = ""
    channels: tuple[Channel, ...] = ()
    skipped: tuple[str, ...] = ()
    note_left_out: bool = False

    def by(self) -> str:
        """The channels it goes on in words, and why not the others (channels_for gives a
        reason for each channel it does not use, in their order)."""
        unused = [c for c in notify.CHANNEL_WORDS if c not in self.channels]
        return ", not by ".join(
            [
                " and ".join(notify.CHANNEL_WORDS[c] for c in self.channels),
                *(
                    f"{notify.CHANNEL_WORDS[c]}: {why}"
                    for c, why in zip(unused, self.skipped, strict=True)
                ),
            ]
        )

    def why(self) -> str:
        return "; ".join(self.skipped)

    def audited(self) -> dict | None:
        if not self.key:
            return None
        sent = {"template": self.key, "channels": [c.value for c in self.channels]}
        return sent | ({"note_left_out": True} if self.note_left_out else {})


def _write_again(session: Session, appointment: Appointment, stopped: list[Notification]) -> _Again:
    """The message the request waits with, among those the move `stopped` (notify.
    withdraw_all_unsent) and sent to nobody, written again for the new record's patient by the
    code that wrote it first, on the channels their record takes (core.messaging.recipients):
    a request's acknowledgement (decisions.acknowledge); a proposal's (decisions.send_proposal,
    with a new link, the stopped one's revoked: none had it), without the practice's note,
    which was written to the first record's patient and may name them or their visits. One
    sent on any channel is not written again (it reached them, or the shared address), nor,
    for a proposal waiting for its answer, the acknowledgement (the proposal answers it)."""
    if appointment.status == AppointmentStatus.TENTATIVE:
        key, since = PROPOSED, _proposed_at(session, appointment.id)
    else:
        key, since = RECEIVED, None
    reached, _ = notify.reached_channels(session, appointment.id, key, since=since)
    waiting = any(n.template == key and (since is None or n.created_at > since) for n in stopped)
    if reached or not waiting:
        return _Again()
    if key == RECEIVED:
        queued = decisions.acknowledge(session, appointment)
        return _Again(key, tuple(n.channel for n in queued.notifications), tuple(queued.skipped))
    usable, skipped = channels_for(appointment.patient)  # the rule queue_for_patient applies
    if not usable:  # a new link nobody gets would only hold the time longer
        return _Again(key, (), tuple(skipped))
    proposed = latest_event(session, appointment.id, Action.PROPOSE)
    decisions.send_proposal(session, appointment, "")
    return _Again(key, tuple(usable), tuple(skipped), bool(proposed and proposed.message))


def _proposal_link(
    session: Session, appointment_id: int, again: _Again, first_id: int, new_id: int
) -> str:
    """Whether the proposal's link reached anyone, in words: a message sent answers it
    whichever record the visit is on (its link names the visit); one not sent yet was stopped
    by the move (notify.withdraw_all_unsent) and written again for the new record (`again`),
    where it takes messages. Only this proposal's messages count: an earlier one's link was
    revoked when it was made."""
    if again.key == PROPOSED and again.channels:
        note = f", without the practice's note to #{first_id}" if again.note_left_out else ""
        return (
            f"its message, stopped as written for #{first_id}, is written again for #{new_id} "
            f"with a new link{note} and goes by {again.by()}"
        )
    if again.key == PROPOSED:
        return (
            f"no message took them its link, and #{new_id} takes none: {again.why()}. Tell "
            "them the time by phone, or propose it again once their record takes messages"
        )
    reached, _ = notify.reached_channels(
        session, appointment_id, PROPOSED, since=_proposed_at(session, appointment_id)
    )
    if reached:
        return "the link sent still answers it"
    return "no message took them its link: propose the time again to send it to them"


def _proposed_at(session: Session, appointment_id: int) -> datetime | None:
    """When the visit's latest proposal link was made: decisions.send_proposal writes it
    (tokens.issue flushes) before it queues the proposal's messages, so those queued after it
    are this proposal's, those before it an earlier proposal's, whose link it revoked."""
    return session.scalar(
        select(func.max(LinkToken.created_at)).where(
            LinkToken.purpose == "proposal", LinkToken.subject_id == appointment_id
        )
    )


def _refuse_decided(appointment: Appointment, patient_id: int) -> None:
    """Only a request still waiting for its decision moves to a new record (undecided; choices
    offers the move on those only): one decided meanwhile has its confirmation, reminders,
    payments and points on the record it was decided on, which moving the visit alone leaves
    behind. A change request's proposal is tentative, but on a visit booked already."""
    if appointment.status == AppointmentStatus.TENTATIVE:
        now = "it was booked, and a new time is proposed for the change its patient asked"
    else:
        now = f"it is {status_is(appointment.status)} now"
    raise Conflict(
        f"Request #{appointment.id} is no longer waiting for a decision ({now}), so it stays "
        f"on #{patient_id} with its messages and payments. Mark the flag checked; if the visit "
        "is someone else's, cancel it and book it on their own record."
    )


def _add_typed_birth(
    session: Session, actor: Actor, flag: RequestFlag, patient_id: int, appointment_id: int
) -> None:
    """The typed date of birth on the record, through the records' own update (its permission,
    its checks of the day and its audit, saying which request it came from): a day it refuses
    is refused here, saying what to do instead."""
    try:
        update_patient(
            session,
            actor,
            patient_id,
            date_of_birth=flag.typed_birth,
            note=f"From online request #{appointment_id}",
        )
    except ValidationError as refused:
        raise ValidationError(
            f"The typed date of birth cannot go on record #{patient_id}: {_because(refused)}. "
            "Check it with the patient, then mark the flag checked and put the right day on "
            "their record."
        ) from None


def _record_from_typed(
    session: Session, actor: Actor, flag: RequestFlag, appointment_id: int, flagged_id: int
) -> tuple[Patient, str]:
    """The new record made from what the request typed, by the records' create_patient (its
    name cleaning, contact checks and audit), and why it does not take the texts consented to
    ('' if it does): consent to each channel is copied as typed (_typed_consent), except to
    texts on a landline (core.patients.records.check_texts), which none would reach. The
    desk's "not the same person" is the confirmation create_patient's `different_person`
    stands for: the shared email or phone that raised the flag is no duplicate."""
    typed = flag.typed or {}
    email, phone = typed.get("email") or None, typed.get("phone") or None
    by_email, by_text = _typed_consent(typed)
    sms, no_texts = by_text and bool(phone), ""
    try:
        check_texts(phone, sms, practice_regions(session))
    except ValidationError:
        sms, no_texts = False, not_for_texts(phone)
    try:
        new = create_patient(
            session,
            actor,
            first_name=typed.get("first_name") or "",
            last_name=typed.get("last_name") or "",
            date_of_birth=flag.typed_birth,
            email=email,
            phone=phone,
            consent_email=by_email,
            consent_sms=sms,
            different_person=True,
            note=f"Made from what online request #{appointment_id} typed",
        )
    except ValidationError as refused:
        raise ValidationError(
            f"A new record cannot be made from what request #{appointment_id} typed: "
            f"{_because(refused)}. Check the details with the patient and add them as a new "
            f"patient with the right ones; the request stays on #{flagged_id}, flagged."
        ) from None
    return new, no_texts


def _because(refused: ValidationError) -> str:
    """The records service's refusal as the middle of a sentence: first letter lowered, no
    full stop."""
    why = str(refused).rstrip(".")
    return why[:1].lower() + why[1:]


def _typed_consent(typed: dict[str, object]) -> tuple[bool, bool]:
    """The consent to email and to texts a request typed: a box each (submit_booking's
    "consent_email" and "consent_sms"); a flag kept while the form had one box for both has
    one "consent", given to both as it was given."""
    if "consent_email" in typed or "consent_sms" in typed:
        return bool(typed.get("consent_email")), bool(typed.get("consent_sms"))
    return (bool(typed.get("consent")),) * 2


__all__ = [
    "FlagAction",
    "FlagChoice",
    "choices",
    "handle_flag",
    "known_records",
    "offered_on",
    "undecided",
]
