"""Travel time between clinics: the minutes a provider of several clinics needs between a
booking at one and a booking at another. Practice-wide, set by the owner, kept in `settings`
(row `travel_minutes_between_clinics`); 0, the default, lets one visit end at 09:30 at one
clinic and the next start at 09:30 at the other. core.scheduling.availability enforces it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import ValidationError
from core.kernel.locks import setting_row
from db.models import Setting

TRAVEL_KEY = "travel_minutes_between_clinics"
MAX_TRAVEL_MINUTES = 240


def travel_minutes(session: Session) -> int:
    """The practice's travel time between clinics, in minutes (0 when never set)."""
    row = session.get(Setting, TRAVEL_KEY)
    value = (row.value or {}).get("minutes") if row else None
    if isinstance(value, int) and 0 <= value <= MAX_TRAVEL_MINUTES:
        return value
    return 0


def travel_time(session: Session) -> timedelta:
    return timedelta(minutes=travel_minutes(session))


def travel_words(travel: timedelta) -> str:
    """How a clash through the travel time is named: "30 minutes' travel between clinics"."""
    minutes = int(travel.total_seconds() // 60)
    unit = "minute's" if minutes == 1 else "minutes'"
    return f"{minutes} {unit} travel between clinics"


def get_travel_minutes(session: Session, actor: Actor) -> int:
    """What the Practice set-up page shows."""
    ensure(actor, Permission.PRACTICE_READ)
    return travel_minutes(session)


def set_travel_minutes(session: Session, actor: Actor, minutes: int) -> int:
    """Set the travel time between clinics (0 to MAX_TRAVEL_MINUTES), audited with the old and
    new value. Bookings already made stay; the next check of a time uses the new value."""
    ensure(actor, Permission.TRAVEL_TIME_SET)
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise ValidationError("Type the travel time between clinics as whole minutes.")
    if not 0 <= minutes <= MAX_TRAVEL_MINUTES:
        raise ValidationError(
            f"The travel time between clinics must be 0 to {MAX_TRAVEL_MINUTES} minutes "
            f"(you typed {minutes}); 0 lets a provider be booked at two clinics back to back."
        )
    row = setting_row(session, TRAVEL_KEY)
    before = (row.value or {}).get("minutes", 0)
    if before == minutes:
        return minutes
    row.value, row.updated_by_user_id = {"minutes": minutes}, actor.user_id
    session.add(row)
    audit.record(
        session,
        actor,
        "setting_changed",
        "setting",
        None,
        details={"key": TRAVEL_KEY, "from": before, "to": minutes},
    )
    return minutes
