"""What the clinic's own inbox (the clinic's email) hears of.

The practice selects the events per clinic (core.messaging.preferences; defaults: new online
request, patient cancellation or change request, proposal answered, late cancellation, no-show,
survey received, card payment problem). Each selected event is kept as a ClinicEvent row and
either emailed at once, linking to the item, or gathered into one daily digest sent at the
clinic-local digest hour and titled with the day (or days) its events happened on. A day with
more events than one email holds (MAX_TEXT characters) is sent as several digests, each with its
own count and days.
An event the clinic did not select leaves no trace here (the audit trail has it anyway).

A follow-up (FOLLOW_UPS: a no-show undone) goes where the event it follows went: the clinic
hears of it when it selected that event. The follow-up stops the earlier event's email if it has
not gone out yet (`withdraw_email`); in the digest both stand, one after the other.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.kernel.clock import to_local
from core.kernel.config import Settings
from core.kernel.locks import setting_row
from core.kernel.money import clinic_time, format_day, format_day_range
from core.kernel.text import MAX_TEXT
from core.messaging import notify
from core.messaging.preferences import CLINIC_EVENTS, preferences
from db.engine import Database
from db.models import Channel, Clinic, ClinicEvent, DeliveryStatus, Notification
from db.types import utcnow

log = logging.getLogger("clinicdesk.clinic_events")
DIGEST_LIMIT = 500
# follow-up event: (the event whose selection it goes with, its name in the inbox)
FOLLOW_UPS: dict[str, tuple[str, str]] = {"no_show_undone": ("no_show", "No-show undone")}


def event_label(event: str) -> str:
    """An event's name in the clinic's inbox ("No-show", "No-show undone")."""
    return FOLLOW_UPS[event][1] if event in FOLLOW_UPS else CLINIC_EVENTS[event]


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
    event's own values). Returns the row, or None when the clinic does not want this event
    (a follow-up: when it does not want the event it follows)."""
    selected_by = FOLLOW_UPS[event][0] if event in FOLLOW_UPS else event
    if selected_by not in CLINIC_EVENTS:
        raise ValueError(f"unknown clinic event {event!r}")
    prefs = preferences(session, clinic_id)
    if selected_by not in prefs.clinic_events:
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
        email = notify.queue_to_address(
            session,
            Channel.EMAIL,
            clinic.email,
            template,
            {
                "clinic_name": clinic.name,
                "event": event_label(event),
                "summary": summary,
                "link": link,
                **(context or {}),
            },
        )
        row.emailed = True
        session.flush()
        row.email_id = email.id
    session.flush()
    return row


def latest_event(
    session: Session, appointment_id: int, events: Sequence[str]
) -> ClinicEvent | None:
    """The appointment's latest clinic event among `events` (None: the clinic heard of none)."""
    return session.scalar(
        select(ClinicEvent)
        .where(ClinicEvent.appointment_id == appointment_id, ClinicEvent.event.in_(events))
        .order_by(ClinicEvent.id.desc())
        .limit(1)
    )


def withdraw_email(session: Session, row: ClinicEvent, reason: str) -> int:
    """Stop the email `tell_clinic` queued for `row` if it has not gone out yet: marked failed
    for good with `reason`, as notify.withdraw_unsent does a patient's; one a sender holds
    right now is left to go. Returns how many were stopped (0 or 1)."""
    if row.email_id is None:
        return 0
    result = session.execute(
        update(Notification)
        .where(
            Notification.id == row.email_id,
            Notification.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.FAILED]),
            Notification.permanent_failure.is_(False),
            Notification.claim_token.is_(None),
        )
        .values(**notify.stopped_on_purpose(reason))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


# ---------------------------------------------------------------- the daily digest


def _digest_key(clinic_id: int) -> str:
    return f"clinic_digest_day_{clinic_id}"


def _item(event: ClinicEvent, clinic: Clinic) -> str:
    line = (
        f"- {clinic_time(clinic, event.created_at)} · {event_label(event.event)}: {event.summary}"
    )
    return f"{line}\n  {event.link}" if event.link else line


def digest_text(events: list[ClinicEvent], clinic: Clinic) -> str:
    return "\n".join(_item(e, clinic) for e in events)


def _parts(events: list[ClinicEvent], clinic: Clinic, room: int) -> list[list[ClinicEvent]]:
    """The events in time order, cut into runs whose digest_text fits in `room` characters
    (an event longer than that alone has a run of its own, its summary cut to fit)."""
    parts: list[list[ClinicEvent]] = [[]]
    used = 0
    for event in events:
        size = len(_item(event, clinic)) + 1
        if parts[-1] and used + size > room:
            parts.append([])
            used = 0
        parts[-1].append(event)
        used += size
    return parts


def _fitted(part: list[ClinicEvent], clinic: Clinic, room: int) -> str:
    text = digest_text(part, clinic)
    return text if len(text) <= room else text[: room - 1] + "…"


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
    marker = setting_row(session, _digest_key(clinic.id))  # one server sends it
    today = local.date().isoformat()
    if (marker.value or {}).get("day") == today:
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
    marker.value = {"day": today, "events": len(events)}
    if not events:
        session.flush()
        return 0
    session.execute(
        update(ClinicEvent)
        .where(ClinicEvent.id.in_([e.id for e in events]))
        .values(digested_at=now)
        .execution_options(synchronize_session=False)
    )
    room = _digest_room(session, clinic)
    for part in _parts(events, clinic, room):
        notify.queue_to_address(
            session,
            Channel.EMAIL,
            clinic.email,
            "clinic_digest",
            {
                "clinic_name": clinic.name,
                "day": _days_of(part, clinic),
                "count": str(len(part)),
                "items": _fitted(part, clinic, room),
            },
        )
    session.flush()
    return len(events)


def _digest_room(session: Session, clinic: Clinic) -> int:
    """How many characters of events one digest email holds: what a message holds (MAX_TEXT)
    less the template's own words (as the practice wrote them) and room for the days."""
    _, frame = notify.render(
        notify.template_for(session, "clinic_digest"),
        {"clinic_name": clinic.name, "day": "", "count": "", "items": ""},
    )
    return max(MAX_TEXT - len(frame) - 200, 1_000)


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
