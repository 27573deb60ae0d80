"""Check-in codes: each scheduled appointment gets a signed, single-use token shown as a QR code.

A leaf module: the life cycle attaches the code to confirmations, check-in reads it back."""

from __future__ import annotations

import io
from datetime import timedelta

import qrcode
from sqlalchemy.orm import Session

from core.kernel import tokens
from db.models import Appointment
from db.types import utcnow

CODE_PREFIX = "CDCHK:"  # what the QR encodes: prefix + raw token; a scanner types it back


def issue_code(session: Session, appointment: Appointment) -> str:
    """A new check-in code for the appointment, valid until a day after its start."""
    ttl = max(appointment.start_at - utcnow() + timedelta(days=1), timedelta(hours=1))
    issued = tokens.issue(session, "check_in", appointment.id, ttl)
    return CODE_PREFIX + issued.raw


def qr_png(text: str, box_size: int = 8) -> bytes:
    image = qrcode.make(text, box_size=box_size, border=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def confirmation_attachment(session: Session, appointment: Appointment) -> tuple[str, bytes]:
    """The QR code attached to a confirmation email."""
    return f"check-in-{appointment.id}.png", qr_png(issue_code(session, appointment))
