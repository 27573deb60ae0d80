"""What the clinic's own inbox (the clinic's email) hears of.

The practice selects the events per clinic (core.messaging.preferences; defaults: new online
request, patient cancellation or change request, proposal answered, late cancellation, no-show,
survey received). Each selected event is kept as a ClinicEvent row and either emailed at once,
linking to the item, or gathered into one daily digest sent at the clinic-local digest hour
and titled with the day (or days) its events happened on.
An event the clinic did not select leaves no trace here (the audit trail has it anyway).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.kernel.clock import to_local
from core.kernel.config import Settings
from core.kernel.money import clinic_time, format_day, format_day_range
from core.messaging import notify
from core.messaging.preferences import CLINIC_EVENTS, preferences
from db.engine import Database
from db.models import Channel, Clinic, ClinicEvent, Setting
from db.types import utcnow

log = logging.getLogger("clinicdesk.clinic_events")
DIGEST_LIMIT = 500


def item_link(base_url: str, appointment_id: int | None, page: str = "appointment") -> str:
    base = base_url.rstrip("/")
    if appointment_id is None:
        return f"{base}/{page}"
    return f"{base}/{page}?id={appointment_id}"


def tell_clinic(
    session: Session,
    clinic_id: int,
    event: str,
    summary: str,
    *,
    appointment_id: int | None = None,
    link: str = "",
    template: str = "clinic_event",
    context: dict[str, object] | None = None,
) -> ClinicEvent | None:
    """Record `event` for the clinic if it selected it, and email it unless it takes the digest
    (with `template`, default the generic "clinic_event", rendered with `context` on top of the
    event's own values). Returns the row, or None when the clinic does not want this event."""
    if event not in CLINIC_EVENTS:
        raise ValueError(f"unknown clinic event {event!r}")
    prefs = preferences(session, clinic_id)
    if event not in prefs.clinic_events:
        return None
    clinic = session.get(Clinic, clinic_id)
    row = ClinicEvent(
        clinic_id=clinic_id,
        event=event,
        appointment_id=appointment_id,
        summary=summary,
        link=link,
    )
    session.add(row)
    if not prefs.clinic_digest and clinic is not None and clinic.email:
        notify.queue_to_address(
            session,
            Channel.EMAIL,
            clinic.email,
            template,
            {
                "clinic_name": clinic.name,
                "event": CLINIC_EVENTS[event],
                "summary": summary,
                "link": link,
                **(context or {}),
            },
        )
        row.emailed = True
    session.flush()
    return row


# ---------------------------------------------------------------- the daily digest


def _digest_key(clinic_id: int) -> str:
    return f"clinic_digest_day_{clinic_id}"


def digest_text(events: list[ClinicEvent], clinic: Clinic) -> str:
    lines = []
    for e in events:
        when = clinic_time(clinic, e.created_at)
        lines.append(f"- {when} · {CLINIC_EVENTS[e.event]}: {e.summary}")
        if e.link:
            lines.append(f"  {e.link}")
    return "\n".join(lines)


def _days_of(events: list[ClinicEvent], clinic: Clinic) -> str:
    """The clinic-local day the events happened on (the digest goes the morning after), or
    the days from the first to the last."""
    first, last = (to_local(e.created_at, clinic.timezone).date() for e in (events[0], events[-1]))
    if first == last:
        return format_day(first, clinic.locale)
    return format_day_range(first, last, clinic.locale)


def send_digest(session: Session, clinic: Clinic, *, now: datetime | None = None) -> int:
    """Gather the clinic's undigested events into one email, once per clinic-local day at or
    after the digest hour. Returns how many events it carried (0: not due or nothing new)."""
    now = now or utcnow()
    prefs = preferences(session, clinic.id)
    local = to_local(now, clinic.timezone)
    if not prefs.clinic_digest or local.hour < prefs.digest_hour or not clinic.email:
        return 0
    marker = session.execute(
        select(Setting).where(Setting.key == _digest_key(clinic.id)).with_for_update()
    ).scalar()
    today = local.date().isoformat()
    if marker is not None and (marker.value or {}).get("day") == today:
        return 0
    events = list(
        session.scalars(
            select(ClinicEvent)
            .where(
                ClinicEvent.clinic_id == clinic.id,
                ClinicEvent.digested_at.is_(None),
                ClinicEvent.emailed.is_(False),
            )
            .order_by(ClinicEvent.created_at, ClinicEvent.id)
            .limit(DIGEST_LIMIT)
        )
    )
    marker = marker or Setting(key=_digest_key(clinic.id))
    marker.value = {"day": today, "events": len(events)}
    session.add(marker)
    if not events:
        session.flush()
        return 0
    session.execute(
        update(ClinicEvent)
        .where(ClinicEvent.id.in_([e.id for e in events]))
        .values(digested_at=now)
        .execution_options(synchronize_session=False)
    )
    notify.queue_to_address(
        session,
        Channel.EMAIL,
        clinic.email,
        "clinic_digest",
        {
            "clinic_name": clinic.name,
            "day": _days_of(events, clinic),
            "count": str(len(events)),
            "items": digest_text(events, clinic),
        },
    )
    session.flush()
    return len(events)


def digest_job(database: Database, settings: Settings) -> None:
    """The periodic job: each clinic's digest when due (one transaction per clinic)."""
    del settings
    with database.read() as session:
        clinic_ids = list(session.scalars(select(Clinic.id)))
    for clinic_id in clinic_ids:
        with database.write() as session:
            clinic = session.get(Clinic, clinic_id)
            if clinic is not None and send_digest(session, clinic):
                log.info("sent the daily digest of clinic %s", clinic_id)
