"""The audit trail: one event per change, written in the caller's transaction."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.kernel.authz import Actor, Permission, ensure
from core.kernel.money import ClinicFormat
from db.models import AuditEvent, Patient

PAGE_SIZE = 200


def record(
    session: Session,
    actor: Actor,
    action: str,
    entity: str,
    entity_id: int | None = None,
    *,
    patient_id: int | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    message: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        user_id=actor.user_id,
        actor_label=actor.label[:120],  # a label, never refused for its length
        action=action,
        entity=entity,
        entity_id=entity_id,
        patient_id=patient_id,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        message=message,
        details=details,
    )
    session.add(event)
    return event


def list_events(
    session: Session,
    actor: Actor,
    *,
    user_id: int | None = None,
    action: str | None = None,
    patient_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 0,
    page_size: int = PAGE_SIZE,
) -> list[AuditEvent]:
    """Newest first, filtered and paginated in SQL. A patient's events include those of the
    records merged into it (core.patients.merge), each still about the record it was written
    about: the trail is never rewritten, and the kept record's history shows both."""
    ensure(actor, Permission.AUDIT_READ)
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if user_id is not None:
        query = query.where(AuditEvent.user_id == user_id)
    if action:
        query = query.where(AuditEvent.action == action)
    if patient_id is not None:
        # a merge points every record merged into this one, earlier merges' too, straight at it
        merged = select(Patient.id).where(Patient.merged_into_id == patient_id)
        query = query.where(
            or_(AuditEvent.patient_id == patient_id, AuditEvent.patient_id.in_(merged))
        )
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    return list(session.scalars(query.limit(page_size).offset(page * page_size)))


def list_actions(session: Session, actor: Actor) -> list[str]:
    ensure(actor, Permission.AUDIT_READ)
    return list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))


def history_of(session: Session, entity: str, entity_id: int) -> list[AuditEvent]:
    """Every event of one record, oldest first (callers check their own read permission)."""
    query = (
        select(AuditEvent)
        .where(AuditEvent.entity == entity, AuditEvent.entity_id == entity_id)
        .order_by(AuditEvent.at, AuditEvent.id)
    )
    return list(session.scalars(query))


# a stored day or moment: '2026-11-04', '2026-11-04 23:00:00+00:00', '2026-11-05T09:00:00Z'
_STORED_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)


def details_text(details: Any, fmt: ClinicFormat) -> str:
    """An event's details as a reader takes them, stored values unchanged: 'key: value' pairs
    joined by '; ', a nested record in parentheses, a stored UTC moment in the clinic's zone and
    locale, a day in its locale, yes or no; an empty value (None, the text 'None' that exports
    used to store for a filter not set, '', [] or {}) is left out."""
    return _detail(details, fmt)


def _detail(value: Any, fmt: ClinicFormat) -> str:
    if isinstance(value, dict):
        pairs = ((str(k).replace("_", " "), _part(v, fmt)) for k, v in value.items())
        return "; ".join(f"{key}: {shown}" for key, shown in pairs if shown)
    if isinstance(value, list | tuple):
        return ", ".join(shown for v in value if (shown := _part(v, fmt)))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return fmt.moment(value if value.tzinfo else value.replace(tzinfo=UTC))
    text = "" if value is None else str(value).strip()
    if text == "None":
        return ""
    if _STORED_TIME.fullmatch(text):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:  # shaped like one but no date (a name typed '2026-02-30'): as typed
            return text
        if len(text) == 10:
            return fmt.day(moment.date())
        return fmt.moment(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return text


def _part(value: Any, fmt: ClinicFormat) -> str:
    """A value inside a record or list; a nested record in parentheses."""
    shown = _detail(value, fmt)
    return f"({shown})" if shown and isinstance(value, dict) else shown
