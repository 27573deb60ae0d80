"""Every message of one appointment, sent or queued, with its delivery status (the appointment
page's "Messages" list)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.authz import Actor, Permission, ensure
from db.models import DeliveryStatus, Notification


@dataclass(frozen=True)
class MessageRow:
    id: int
    created_at: datetime
    template: str
    channel: str
    to_address: str
    subject: str
    status: str  # queued, sent, failed (retrying), failed
    attempts: int
    last_error: str
    sent_at: datetime | None


def messages_of(session: Session, actor: Actor, appointment_id: int) -> list[MessageRow]:
    ensure(actor, Permission.NOTIFICATIONS_READ)
    rows = session.scalars(
        select(Notification)
        .where(Notification.appointment_id == appointment_id)
        .order_by(Notification.id.desc())
        .limit(500)
    )
    return [
        MessageRow(
            n.id,
            n.created_at,
            n.template,
            n.channel.value,
            n.to_address,
            n.subject,
            n.status.value
            + (" (retrying)" if n.status == DeliveryStatus.FAILED and n.attempts < 6 else ""),
            n.attempts,
            n.last_error or "",
            n.sent_at,
        )
        for n in rows
    ]
