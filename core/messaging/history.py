"""Every message of one appointment, sent or queued, with its delivery status (the appointment
page's "Messages" list), its times in the clinic's zone and locale.

The answers texted back to a patient's reply (core.portal.replies) are not here: they go back in
the reply webhook's own response (Twilio's TwiML, the HTTP adapter's JSON), not through the
outbox, so there is no message row or delivery status for them. They show with the reply they
answer, in the appointment's "Text replies"."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.authz import Actor, Permission, ensure
from core.kernel.money import clinic_format, format_moment
from db.models import Appointment, Clinic, DeliveryStatus, Notification


@dataclass(frozen=True)
class MessageRow:
    id: int
    queued: str  # when it was queued, clinic-local
    template: str
    channel: str
    to_address: str
    subject: str
    status: str  # queued, sent, failed (retrying), failed
    attempts: int
    last_error: str
    sent: str  # when it was sent, clinic-local ("" while not)


def messages_of(session: Session, actor: Actor, appointment_id: int) -> list[MessageRow]:
    ensure(actor, Permission.NOTIFICATIONS_READ)
    clinic = session.execute(
        select(Clinic.id)
        .join(Appointment, Appointment.clinic_id == Clinic.id)
        .where(Appointment.id == appointment_id)
    ).scalar()
    shown = clinic_format(session, clinic)
    rows = session.scalars(
        select(Notification)
        .where(Notification.appointment_id == appointment_id)
        .order_by(Notification.id.desc())
        .limit(500)
    )
    return [
        MessageRow(
            n.id,
            format_moment(n.created_at, shown.timezone, shown.locale),
            n.template,
            n.channel.value,
            n.to_address,
            n.subject,
            n.status.value
            + (" (retrying)" if n.status == DeliveryStatus.FAILED and n.attempts < 6 else ""),
            n.attempts,
            n.last_error or "",
            format_moment(n.sent_at, shown.timezone, shown.locale),
        )
        for n in rows
    ]
