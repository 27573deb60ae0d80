"""Every message of one appointment (the appointment page's "Messages" list), or of one patient
(the patient's record: every appointment's and those about none, such as a portal invitation),
newest first, its times in the clinic's zone and locale: what ClinicDesk sent or queued, with its
delivery status, and the patient's text replies with the answer texted back to each.

A reply belongs to an appointment only when it came from the one patient with that number and
was about that appointment (core.portal.replies: the visit it confirmed or asked to cancel, or
the patient's next one); a reply from an unknown or shared number is on no appointment's list.
The answer goes back in the reply webhook's own response (Twilio's TwiML, the HTTP adapter's
JSON), not through the outbox: it is listed as sent when the reply came, with no attempts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.authz import Actor, Permission, ensure
from core.kernel.money import clinic_format, format_moment
from core.kernel.text import clean
from core.messaging.delivery import MAX_ATTEMPTS
from core.messaging.notify import CHANNEL_WORDS
from db.models import (
    Appointment,
    Channel,
    Clinic,
    DeliveryStatus,
    Notification,
    SmsReply,
    StopKind,
)

LIMIT = 500  # rows of each kind read
TEXT_SHOWN = 300  # characters of a reply or an answer shown; Text replies has the whole text
REPLY = "text reply from the patient"
ANSWER = "automatic answer"


@dataclass(frozen=True)
class MessageRow:
    id: int  # the outbox row's, or the text reply's (kind "reply" or "answer")
    queued: str  # when it was queued, or the reply received, clinic-local
    template: str  # the template; REPLY or ANSWER for a text reply and its answer
    channel: str  # "email", "text message"
    to_address: str  # the recipient; the patient's number for a reply (its sender)
    status: str  # queued, sent, failed (retrying), failed, not sent (stopped); received (reply)
    sent: str  # when it was sent, clinic-local ("" while not)
    subject: str = ""
    attempts: int | None = None  # None for a reply and its answer (no outbox delivery)
    last_error: str = ""
    kind: str = "outbox"  # "outbox", "reply" (from the patient), "answer" (to the reply)
    text: str = ""  # a reply's or an answer's words: one line, no control characters, capped
    appointment_id: int | None = None  # the appointment it is about (a patient's list shows it)


def shown_text(text: str) -> str:
    """Words as typed or sent, for one cell of the list: control characters dropped, line
    breaks and tabs made spaces, at most TEXT_SHOWN characters."""
    line = (clean(text or "", field="text") or "").strip()
    return line if len(line) <= TEXT_SHOWN else line[: TEXT_SHOWN - 1].rstrip() + "…"


def _status(n: Notification) -> str:
    """Queued, sent; "not sent (stopped)" for one stopped before it went out (a withdrawn
    consent, an undone no-show: marked failed for good with a "Not sent: …" reason, shown as
    its error); failed for good (a permanent refusal, or every attempt used); else failed
    (retrying), which the sender tries again."""
    if n.status != DeliveryStatus.FAILED:
        return n.status.value
    if n.permanent_failure:
        return "failed" if n.stop_kind == StopKind.REFUSED else "not sent (stopped)"
    return "failed (retrying)" if n.attempts < MAX_ATTEMPTS else "failed"


def _outbox_row(n: Notification, moment: Callable[[datetime | None], str]) -> MessageRow:
    return MessageRow(
        n.id,
        moment(n.created_at),
        n.template,
        CHANNEL_WORDS[n.channel],
        n.to_address,
        _status(n),
        moment(n.sent_at),
        n.subject,
        n.attempts,
        n.last_error or "",
        appointment_id=n.appointment_id,
    )


def _reply_rows(r: SmsReply, moment: Callable[[datetime | None], str]) -> list[MessageRow]:
    """The patient's text and, when there was one, the answer sent back at once in the
    webhook's response (so sent when the reply came)."""
    at, by = moment(r.received_at), CHANNEL_WORDS[Channel.SMS]
    text = shown_text(r.body)
    about = {"appointment_id": r.appointment_id}
    rows = [
        MessageRow(
            r.id, at, REPLY, by, r.from_number, "received", "", kind="reply", text=text, **about
        )
    ]
    if r.answer:
        text = shown_text(r.answer)
        rows.append(
            MessageRow(
                r.id, at, ANSWER, by, r.from_number, "sent", at, kind="answer", text=text, **about
            )
        )
    return rows


def messages_of(session: Session, actor: Actor, appointment_id: int) -> list[MessageRow]:
    ensure(actor, Permission.NOTIFICATIONS_READ)
    clinic = session.execute(
        select(Clinic.id)
        .join(Appointment, Appointment.clinic_id == Clinic.id)
        .where(Appointment.id == appointment_id)
    ).scalar()
    shown = clinic_format(session, clinic)

    def moment(at: datetime | None) -> str:
        return format_moment(at, shown.timezone, shown.locale)

    dated: list[tuple[datetime, int, MessageRow]] = []  # newest first; an answer above its reply
    outbox = session.scalars(
        select(Notification)
        .where(Notification.appointment_id == appointment_id)
        .order_by(Notification.id.desc())
        .limit(LIMIT)
    )
    dated += [(n.created_at, n.id, _outbox_row(n, moment)) for n in outbox]
    texts = session.scalars(
        select(SmsReply)
        .where(SmsReply.appointment_id == appointment_id)
        .order_by(SmsReply.received_at.desc(), SmsReply.id.desc())
        .limit(LIMIT)
    )
    for r in texts:
        dated += [(r.received_at, r.id, row) for row in _reply_rows(r, moment)]
    dated.sort(key=lambda d: (d[0], d[1], d[2].kind == "answer"), reverse=True)
    return [row for *_, row in dated[:LIMIT]]


PATIENT_LIMIT = 100  # a patient's newest messages on the record; years of them stay in the export


def messages_of_patient(
    session: Session, actor: Actor, patient_id: int, limit: int = PATIENT_LIMIT
) -> list[MessageRow]:
    """The patient's newest messages (at most `limit`), whatever they were about: reminders,
    confirmations, forms and fee notices of every appointment, portal invitations, and the
    patient's text replies with their answers; each time in its appointment's clinic's zone and
    locale (the practice's first clinic's for one about no appointment), that zone named where
    it is not the practice's ('Fri, Dec 4, 2026, 9:22 PM (EST)')."""
    ensure(actor, Permission.NOTIFICATIONS_READ)
    practice = clinic_format(session)
    formats = {
        clinic_id: (tz, locale or practice.locale)
        for clinic_id, tz, locale in session.execute(
            select(Clinic.id, Clinic.timezone, Clinic.locale)
        )
    }

    def moment_in(clinic_id: int | None) -> Callable[[datetime | None], str]:
        tz, locale = formats.get(clinic_id, (practice.timezone, practice.locale))
        other_zone = tz != practice.timezone  # named: the list mixes clinics' clocks
        return lambda at: format_moment(at, tz, locale, zone=other_zone)

    dated: list[tuple[datetime, int, MessageRow]] = []
    outbox = session.execute(
        select(Notification, Appointment.clinic_id)
        .outerjoin(Appointment, Appointment.id == Notification.appointment_id)
        .where(Notification.patient_id == patient_id)
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    dated += [(n.created_at, n.id, _outbox_row(n, moment_in(clinic))) for n, clinic in outbox]
    texts = session.execute(
        select(SmsReply, Appointment.clinic_id)
        .outerjoin(Appointment, Appointment.id == SmsReply.appointment_id)
        .where(SmsReply.patient_id == patient_id)
        .order_by(SmsReply.received_at.desc(), SmsReply.id.desc())
        .limit(limit)
    )
    for r, clinic in texts:
        dated += [(r.received_at, r.id, row) for row in _reply_rows(r, moment_in(clinic))]
    dated.sort(key=lambda d: (d[0], d[1], d[2].kind == "answer"), reverse=True)
    return [row for *_, row in dated[:limit]]
