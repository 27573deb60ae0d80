"""The patient's answers to reminders: the confirm link, and text-message replies.

A confirm link (token purpose "confirm", valid until the appointment starts) records "Confirmed
by the patient" for the appointment's current time (its page offers to ask to cancel or move the
visit too, core.portal.patient_links.CHANGE_PURPOSES). A text reply arrives on the inbound SMS
route (serve.py, authenticated by core.messaging.sms_inbound): "C"/"YES" confirms the patient's
next scheduled appointment, "X"/"CANCEL" asks to cancel it under the cancellation policy
(core.requests.changes.request_change decides: the queue, or at once outside the window), and
anything else — or a reply that cannot be acted on — lands in the staff inbox on that
appointment. STOP (and the other opt-out words of core.messaging.sms_inbound) withdraws the text
consent of every patient with that number, audited; the texts still waiting for them are not
sent and their pending invitations by text are revoked (core.patients.invitations, the rule a
staff edit follows). START gives consent back, except to a record whose number the practice
reads as a landline (core.kernel.phones.landline, the rule the desk and the booking form apply):
a fixed line can send a text (a landline texting service, a number moved to VoIP), but none
reaches it, so that START waits in the staff inbox saying why. Each is answered once (a second
STOP gets no answer). Every reply is stored and audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel import audit, tokens
from core.kernel.authz import SYSTEM, Actor, Permission, ensure, patient_actor
from core.kernel.errors import Conflict, DomainError, LinkInvalid, NotFound, ValidationError
from core.kernel.money import clinic_format, clinic_time, format_moment
from core.kernel.phones import landline, practice_regions
from core.messaging import clinic_events, notify, reminders
from core.messaging.sms_inbound import Intent, parse_reply
from core.patients import invitations
from core.policy import cancellation
from core.portal import sign_in
from core.portal.patient_links import AppointmentView, appointment_view
from core.requests import changes
from core.scheduling.lifecycle import base_url
from core.scheduling.states import status_is
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    ChangeKind,
    ChangeStatus,
    Channel,
    Clinic,
    DeliveryStatus,
    Notification,
    Patient,
    SmsReply,
    User,
)
from db.types import utcnow

LINK_CHANNEL = "reminder link"
SMS_CHANNEL = "SMS reply"
SHARED_PHONE_MAX = 20  # patients one STOP reaches (a family may share a phone)
STOP_ANSWER = "You will get no more text messages from us. Reply START to get them again."
START_ANSWER = "You will get our text messages again. Reply STOP to stop them."
STOP_HINT = "Reply STOP to stop text messages."
STOPPED = "Not sent: the patient replied STOP to stop text messages."
START_ON_LANDLINE = (
    "START from a number on file as a landline: texts cannot reach it, so text consent was not "
    "given. Ask the patient for a mobile number."
)


# ---------------------------------------------------------------- the confirm link


@dataclass(frozen=True)
class ConfirmView:
    appointment: AppointmentView
    confirmable: bool
    reason_not: str
    confirmed: str  # "" or "Confirmed by the patient · …"


def _confirm_target(session: Session, raw: str | None) -> Appointment:
    token = tokens.verify(session, raw, "confirm")
    appointment = session.get(Appointment, token.subject_id)
    if appointment is None or appointment.patient_id is None:
        raise LinkInvalid()
    return appointment


def _why_not(appointment: Appointment, now: datetime) -> str:
    if appointment.status != AppointmentStatus.SCHEDULED:
        return f"This appointment is {status_is(appointment.status)}."
    if appointment.start_at is None or appointment.start_at <= now:
        return "This appointment has started or passed."
    return ""


def confirm_view(session: Session, raw: str | None) -> ConfirmView:
    appointment = _confirm_target(session, raw)
    done = reminders.confirmations(session, [appointment.id]).get(appointment.id)
    reason = _why_not(appointment, utcnow())
    return ConfirmView(
        appointment_view(session, appointment),
        not reason,
        reason,
        done.text(appointment.clinic) if done else "",
    )


def _confirm(session: Session, appointment: Appointment, channel: str) -> bool:
    actor = patient_actor(
        appointment.patient.first_name if appointment.patient else "", via="text message"
    )
    confirmation, new = reminders.record_confirmation(session, actor, appointment, channel)
    if new:
        clinic_events.tell_clinic(
            session,
            appointment.clinic_id,
            "confirmed",
            f"{appointment.patient.full_name} confirmed {_when(appointment)} ({channel}).",
            appointment_id=appointment.id,
            link=clinic_events.item_link(base_url(session), appointment.id),
        )
    return new


def confirm_by_link(session: Session, raw: str | None) -> str:
    appointment = _confirm_target(session, raw)
    reason = _why_not(appointment, utcnow())
    if reason:
        raise ValidationError(reason + " Please contact the practice if you need help.")
    new = _confirm(session, appointment, LINK_CHANNEL)
    when = clinic_time(appointment.clinic, appointment.start_at, zone=True)
    if new:
        return f"Thank you: your appointment on {when} is confirmed. See you then."
    return f"Your appointment on {when} was confirmed already. See you then."


# ---------------------------------------------------------------- text replies


def find_patient_by_phone(session: Session, number: str) -> Patient | None:
    """The one patient with this number (see patients_by_phone); None when nobody or more than
    one patient matches."""
    matches = sign_in.patients_by_phone(session, number)
    return matches[0] if len(matches) == 1 else None


def _set_text_consent(session: Session, number: str, given: bool) -> tuple[int, int, int]:
    """Give or withdraw the text consent of every patient with this number, each audited; on
    withdrawal their texts still waiting are not sent and their pending invitation by text is
    revoked, as a staff edit withdrawing it would. Consent is never given to a number on file
    as a landline (core.patients.records.check_texts' rule). (How many matched, how many
    changed, how many were left without consent as landlines.)"""
    matched = sign_in.patients_by_phone(session, number, limit=SHARED_PHONE_MAX)
    fixed = set()
    if given and matched:
        regions = practice_regions(session)
        fixed = {p.id for p in matched if landline(p.phone, regions)}
    changed = [p for p in matched if p.consent_sms != given and p.id not in fixed]
    for patient in changed:
        patient.consent_sms = given
        audit.record(
            session,
            patient_actor(patient.first_name, via="text message"),
            "sms_consent_given" if given else "sms_consent_withdrawn",
            "patient",
            patient.id,
            patient_id=patient.id,
            details={"via": SMS_CHANNEL, "consent_sms": {"from": not given, "to": given}},
        )
    if changed and not given:
        notify.withdraw_queued(session, [p.id for p in changed], Channel.SMS, STOPPED)
        for patient in changed:  # a texted invitation's link would still enrol them
            invitations.revoke_for_opt_out(session, patient, Channel.SMS, via="text message")
    return len(matched), len(changed), len(fixed)


def next_appointment(session: Session, patient_id: int, now: datetime) -> Appointment | None:
    return session.scalar(
        select(Appointment)
        .where(
            Appointment.patient_id == patient_id,
            Appointment.kind == AppointmentKind.APPOINTMENT,
            Appointment.status == AppointmentStatus.SCHEDULED,
            Appointment.start_at > now,
        )
        .order_by(Appointment.start_at, Appointment.id)
        .limit(1)
    )


def _help_answer(session: Session, appointment: Appointment | None) -> str:
    """Who is texting and how to reach or stop them: the appointment's clinic, else the first
    active one (public details only, so any number may ask)."""
    clinic = (
        appointment.clinic
        if appointment
        else session.scalar(
            select(Clinic).where(Clinic.active.is_(True)).order_by(Clinic.id).limit(1)
        )
    )
    if clinic is None:
        return STOP_HINT
    reach = " or ".join(x for x in (clinic.phone, clinic.email) if x)
    contact = f" Contact us: {reach}." if reach else ""
    return f"{clinic.name}: appointment messages.{contact} {STOP_HINT}"


@dataclass(frozen=True)
class ReplyOutcome:
    reply_id: int
    outcome: str  # confirmed, cancel_requested, cancelled, inbox, duplicate
    answer: str  # what to text back to the patient ("" for nothing)


def receive_sms(
    session: Session,
    *,
    from_number: str,
    body: str,
    provider_ref: str | None = None,
    now: datetime | None = None,
) -> ReplyOutcome:
    """Act on one inbound text (the route authenticated it) and keep it."""
    now = now or utcnow()
    if provider_ref:
        earlier = session.scalar(select(SmsReply).where(SmsReply.provider_ref == provider_ref))
        if earlier is not None:  # the provider retried a delivery: act once
            return ReplyOutcome(earlier.id, "duplicate", "")
    body = (body or "")[:2000]
    patient = find_patient_by_phone(session, from_number)
    appointment = next_appointment(session, patient.id, now) if patient else None
    intent = parse_reply(body)
    outcome, note, answer = "inbox", "", ""
    actor = patient_actor(patient.first_name if patient else "", via="text message")
    if intent in (Intent.STOP, Intent.START):
        given = intent == Intent.START
        matched, changed, fixed = _set_text_consent(session, from_number, given)
        if not matched:
            note = "No patient has this phone number: there is no text consent to change."
        elif fixed == matched:
            note = START_ON_LANDLINE
        else:
            outcome = "opted_in" if given else "opted_out"
            answer = (START_ANSWER if given else STOP_ANSWER) if changed else ""
            if matched > 1:
                note = f"{matched} patients share this number; the change applies to each."
            if fixed:
                note = (
                    f"{matched} patients share this number; the change applies to each but "
                    f"{fixed}, whose number is on file as a landline."
                )
    elif intent == Intent.HELP:
        outcome, answer = "help", _help_answer(session, appointment)
    elif patient is None:
        note = "No single patient has this phone number."
    elif appointment is None:
        note = "The patient has no upcoming scheduled appointment."
    elif intent == Intent.CONFIRM:
        _confirm(session, appointment, SMS_CHANNEL)
        outcome = "confirmed"
        answer = f"Thank you, your appointment on {_when(appointment)} is confirmed."
    elif intent == Intent.CANCEL:
        try:
            with session.begin_nested():
                request = changes.request_change(
                    session,
                    actor,
                    appointment.id,
                    kind=ChangeKind.CANCEL,
                    reason="Asked by text message.",
                    now=now,
                )
            if request.status == ChangeStatus.APPROVED:
                outcome = "cancelled"
                # the cancellation's own text (with any fee) is the answer when it goes by text:
                # the patient is told once, not twice
                if not _texted_cancellation(session, request.appointment_id):
                    # what a late one charged, as its message says it: it may go by email only
                    charged = cancellation.late_cancellation_charged(session, request.appointment)
                    answer = " ".join(
                        [
                            f"Your appointment on {_when(request.appointment)} is cancelled.",
                            *(line for line in charged.splitlines() if line),
                        ]
                    )
            else:
                outcome = "cancel_requested"
                # the fee in the policy's words: "£25.00", or "50% of the visit's price
                # (£40.00 for this visit)", as the request's own evaluation found it
                fee = cancellation.evaluate(session, request.appointment, now).fee_text
                cost = (
                    f" It is inside the cancellation window: a fee of {fee} may apply."
                    if request.inside_window and request.fee_cents and fee
                    else ""
                )
                answer = f"Your request to cancel is with the practice.{cost}"
        except DomainError as error:
            note = f"Could not ask to cancel: {error}"
    else:
        note = "Not a C/YES or X/CANCEL reply."
    reply = SmsReply(
        received_at=now,
        provider_ref=provider_ref,
        from_number=from_number[:40],
        body=body,
        patient_id=patient.id if patient else None,
        appointment_id=appointment.id if appointment else None,
        outcome=outcome,
        note=note,
        answer=answer,  # it goes back in the webhook's response: kept with the reply it answers
    )
    session.add(reply)
    session.flush()
    audit.record(
        session,
        actor if patient else SYSTEM,
        "sms_reply_received",
        "appointment" if appointment else "sms_reply",
        appointment.id if appointment else reply.id,
        patient_id=patient.id if patient else None,
        # what the patient wrote stays with the reply (Text replies), which staff can read
        # and handle; the append-only audit log keeps how it was read, not their words
        message=f"Text reply #{reply.id}, read as {intent.value}",
        details={"reply_id": reply.id, "outcome": outcome, "intent": intent.value},
    )
    if outcome == "inbox" and appointment is not None:
        clinic_events.tell_clinic(
            session,
            appointment.clinic_id,
            "sms_reply",
            f"{patient.full_name} replied by text about {_when(appointment)}.",
            appointment_id=appointment.id,
            link=clinic_events.item_link(base_url(session), appointment.id),
        )
    return ReplyOutcome(reply.id, outcome, answer)


def _texted_cancellation(session: Session, appointment_id: int) -> bool:
    """Whether the visit's cancellation message is queued to the patient by text."""
    return (
        session.scalar(
            select(Notification.id).where(
                Notification.appointment_id == appointment_id,
                Notification.template == "appointment_cancelled",
                Notification.channel == Channel.SMS,
                Notification.status == DeliveryStatus.QUEUED,
            )
        )
        is not None
    )


def _when(appointment: Appointment) -> str:
    return clinic_time(appointment.clinic, appointment.start_at)


# ---------------------------------------------------------------- the staff inbox


@dataclass(frozen=True)
class InboxRow:
    id: int
    received: str
    from_number: str
    patient: str
    appointment_id: int | None
    body: str
    outcome: str
    note: str
    handled: bool
    answer: str  # texted back at once ("" for nothing)


def list_replies(
    session: Session,
    actor: Actor,
    *,
    appointment_id: int | None = None,
    open_only: bool = False,
    limit: int = 200,
) -> list[InboxRow]:
    """Text replies, newest first: the inbox (open_only) or one appointment's."""
    ensure(actor, Permission.NOTIFICATIONS_READ)
    practice = clinic_format(session)  # for a reply tied to no appointment
    query = (
        select(SmsReply, Patient, Clinic.timezone, Clinic.locale)
        .outerjoin(Patient, Patient.id == SmsReply.patient_id)
        .outerjoin(Appointment, Appointment.id == SmsReply.appointment_id)
        .outerjoin(Clinic, Clinic.id == Appointment.clinic_id)
        .order_by(SmsReply.received_at.desc(), SmsReply.id.desc())
        .limit(limit)
    )
    if appointment_id is not None:
        query = query.where(SmsReply.appointment_id == appointment_id)
    if open_only:
        query = query.where(SmsReply.outcome == "inbox", SmsReply.handled_at.is_(None))
    return [
        InboxRow(
            r.id,
            format_moment(r.received_at, tz or practice.timezone, locale or practice.locale),
            r.from_number,
            p.full_name if p else "",
            r.appointment_id,
            r.body,
            r.outcome,
            r.note,
            r.handled_at is not None,
            r.answer,
        )
        for r, p, tz, locale in session.execute(query)
    ]


def _handled_already(session: Session, reply: SmsReply) -> str:
    """Who marked a reply handled and when, in its appointment's clinic's time."""
    who = session.get(User, reply.handled_by_user_id) if reply.handled_by_user_id else None
    appointment = session.get(Appointment, reply.appointment_id) if reply.appointment_id else None
    when = clinic_time(
        appointment.clinic if appointment else clinic_format(session), reply.handled_at
    )
    by = f" by {who.display_name}" if who else ""
    return f"This reply was already marked handled{by} at {when}."


def mark_handled(session: Session, actor: Actor, reply_id: int, note: str = "") -> None:
    ensure(actor, Permission.NOTIFICATIONS_READ)
    reply = session.execute(  # locked: of two desks marking it at once, one does (PostgreSQL)
        select(SmsReply)
        .where(SmsReply.id == reply_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar()
    if reply is None:
        raise NotFound(f"There is no text reply #{reply_id}.")
    if reply.handled_at is not None:
        kept = " Your note was not saved." if note.strip() else ""
        raise Conflict(_handled_already(session, reply) + kept)
    reply.handled_at, reply.handled_by_user_id = utcnow(), actor.user_id
    if note.strip():
        reply.note = (reply.note + "\n" if reply.note else "") + note.strip()[:1000]
    audit.record(
        session,
        actor,
        "sms_reply_handled",
        "appointment" if reply.appointment_id else "sms_reply",
        reply.appointment_id or reply.id,
        patient_id=reply.patient_id,
        reason=note.strip() or None,
        details={"reply_id": reply.id},
    )
