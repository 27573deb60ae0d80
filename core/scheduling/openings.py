"""Freed time for the waitlist: one call from each transition that opens a slot.

A transition (cancel, move, a declined proposal, added working hours, removed time off) calls
`slot_opened` in its own transaction; the row it writes is cheap, and the jobs loop
(core.waitlist.offers.process_openings) matches, ranks and offers it later.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from db.models import Appointment, AppointmentKind, SlotOpening
from db.types import utcnow

HOURS_HORIZON = timedelta(days=28)  # added weekly hours are offered this far ahead


def slot_opened(
    session: Session,
    *,
    clinic_id: int,
    provider_id: int | None,
    start_at: datetime | None,
    end_at: datetime | None,
    reason: str,
    appointment_id: int | None = None,
    now: datetime | None = None,
) -> SlotOpening | None:
    """Queue freed time [start_at, end_at) for the waitlist; nothing when it is already past."""
    now = now or utcnow()
    if provider_id is None or start_at is None or end_at is None or end_at <= now:
        return None
    row = SlotOpening(
        clinic_id=clinic_id,
        provider_id=provider_id,
        start_at=max(start_at, now),
        end_at=end_at,
        reason=reason,
        appointment_id=appointment_id,
    )
    if row.start_at >= row.end_at:
        return None
    session.add(row)
    return row


def appointment_freed(
    session: Session,
    appointment: Appointment,
    reason: str,
    *,
    provider_id: int | None = None,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
) -> SlotOpening | None:
    """The time an appointment held (or held before a move: give the old values) is free."""
    if appointment.kind != AppointmentKind.APPOINTMENT:
        return None
    return slot_opened(
        session,
        clinic_id=appointment.clinic_id,
        provider_id=provider_id or appointment.provider_id,
        start_at=start_at or appointment.start_at,
        end_at=end_at or appointment.end_at,
        reason=reason,
        appointment_id=appointment.id,
    )
