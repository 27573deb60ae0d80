"""Each clinic's message preferences: reminder offsets, the optional 2-hour text, quiet hours,
whether confirmed appointments still get the last reminder, the extra reminder for visits with a
high predicted no-show risk, the check-in message, and which events the clinic's inbox hears of
(one email each, or one daily digest).

Stored as one settings row per clinic (`messaging_clinic_<id>`); anything unset or malformed
falls back to the defaults below, so a fresh clinic works without being configured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import time
from typing import Any

from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import in_quiet
from core.kernel.errors import NotFound, ValidationError
from core.kernel.locks import setting_row
from db.models import Clinic, Setting

CLINIC_EVENTS: dict[str, str] = {
    "new_request": "New online request",
    "change_request": "Patient cancellation or change request",
    "proposal_answered": "Proposal answered",
    "late_cancellation": "Late cancellation",
    "no_show": "No-show",
    "survey_received": "Survey received",
    "confirmed": "Appointment confirmed by the patient",
    "sms_reply": "Text reply waiting for staff",
    "form_completed": "Form answered or consent signed",
    "payment_problem": "Card payment problem",
}
DEFAULT_EVENTS = (
    "new_request",
    "change_request",
    "proposal_answered",
    "late_cancellation",
    "no_show",
    "survey_received",
    "payment_problem",
)
MAX_OFFSET_HOURS = 14 * 24
HIGH_RISK = 0.30  # predicted no-show probability from which a visit is high risk (badge, call
# list, extra reminder; core.analytics.risk_scores reads it from here)


@dataclass(frozen=True)
class MessagePreferences:
    reminder_hours: tuple[int, ...] = (72, 24)  # before the start, each to every consented channel
    sms_two_hours: bool = False  # an extra text message 2 hours before
    quiet_start: time = time(21, 0)  # clinic-local; no reminder between quiet_start and quiet_end
    quiet_end: time = time(8, 0)
    confirmed_get_last: bool = True  # a confirmed appointment still gets the last reminder
    high_risk_hours: int = 48  # one extra reminder this long before a high-risk visit; 0 = none
    high_risk_confirmed: bool = False  # whether a confirmed high-risk visit still gets it
    tell_checked_in: bool = False  # message the patient on check-in
    clinic_events: tuple[str, ...] = DEFAULT_EVENTS
    clinic_digest: bool = False  # one email a day instead of one per event
    digest_hour: int = 7  # clinic-local hour the digest goes out

    @property
    def offsets_minutes(self) -> list[tuple[int, bool]]:
        """(minutes before the start, SMS only), largest first."""
        pairs = [(h * 60, False) for h in sorted(set(self.reminder_hours), reverse=True)]
        if self.sms_two_hours and 2 not in self.reminder_hours:
            pairs.append((120, True))
        return sorted(pairs, key=lambda p: -p[0])

    @property
    def high_risk_minutes(self) -> int | None:
        """The extra reminder's offset; None when off or when it is one of the usual ones
        (every visit gets that one already)."""
        minutes = self.high_risk_hours * 60
        if not minutes or minutes in {m for m, _ in self.offsets_minutes}:
            return None
        return minutes


def key(clinic_id: int) -> str:
    """The clinic's settings row."""
    return f"messaging_clinic_{clinic_id}"


def _time(value: Any, default: time) -> time:
    try:
        return time.fromisoformat(str(value))
    except (TypeError, ValueError):
        return default


def preferences(session: Session, clinic_id: int) -> MessagePreferences:
    row = session.get(Setting, key(clinic_id))
    return read_preferences(row.value if row is not None else None)


def read_preferences(raw: Any) -> MessagePreferences:
    """The preferences a clinic's settings row holds (its value; None: not saved)."""
    if not isinstance(raw, dict):
        raw = {}
    base = MessagePreferences()
    try:
        hours = tuple(int(h) for h in raw.get("reminder_hours", base.reminder_hours))
    except (TypeError, ValueError):
        hours = base.reminder_hours
    events = raw.get("clinic_events", base.clinic_events)
    if not isinstance(events, list | tuple):
        events = base.clinic_events
    try:
        digest_hour = min(23, max(0, int(raw.get("digest_hour", base.digest_hour))))
    except (TypeError, ValueError):
        digest_hour = base.digest_hour
    try:
        high_risk_hours = int(raw.get("high_risk_hours", base.high_risk_hours))
    except (TypeError, ValueError):
        high_risk_hours = base.high_risk_hours
    if not 0 <= high_risk_hours <= MAX_OFFSET_HOURS:
        high_risk_hours = base.high_risk_hours
    return MessagePreferences(
        reminder_hours=tuple(h for h in hours if 0 < h <= MAX_OFFSET_HOURS),
        sms_two_hours=bool(raw.get("sms_two_hours", base.sms_two_hours)),
        quiet_start=_time(raw.get("quiet_start"), base.quiet_start),
        quiet_end=_time(raw.get("quiet_end"), base.quiet_end),
        confirmed_get_last=bool(raw.get("confirmed_get_last", base.confirmed_get_last)),
        high_risk_hours=high_risk_hours,
        high_risk_confirmed=bool(raw.get("high_risk_confirmed", base.high_risk_confirmed)),
        tell_checked_in=bool(raw.get("tell_checked_in", base.tell_checked_in)),
        clinic_events=tuple(e for e in events if e in CLINIC_EVENTS),
        clinic_digest=bool(raw.get("clinic_digest", base.clinic_digest)),
        digest_hour=digest_hour,
    )


@dataclass(frozen=True)
class PreferencesForm:
    """What the settings page sends; validated by save_preferences."""

    reminder_hours: list[int] = field(default_factory=lambda: [72, 24])
    sms_two_hours: bool = False
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    confirmed_get_last: bool = True
    high_risk_hours: int = 48
    high_risk_confirmed: bool = False
    tell_checked_in: bool = False
    clinic_events: list[str] = field(default_factory=lambda: list(DEFAULT_EVENTS))
    clinic_digest: bool = False
    digest_hour: int = 7


def save_preferences(
    session: Session, actor: Actor, clinic_id: int, form: PreferencesForm
) -> MessagePreferences:
    ensure(actor, Permission.NOTIFICATIONS_MANAGE)
    if session.get(Clinic, clinic_id) is None:
        raise NotFound(f"There is no clinic #{clinic_id}.")
    hours = sorted({int(h) for h in form.reminder_hours}, reverse=True)
    if len(hours) > 4:
        raise ValidationError("Choose at most four reminder times.")
    if any(not 1 <= h <= MAX_OFFSET_HOURS for h in hours):
        raise ValidationError(f"Reminder times must be from 1 to {MAX_OFFSET_HOURS} hours before.")
    extra = int(form.high_risk_hours)
    if not 0 <= extra <= MAX_OFFSET_HOURS:
        raise ValidationError(
            f"The extra reminder for high-risk visits must be from 1 to {MAX_OFFSET_HOURS} hours "
            "before, or 0 for none."
        )
    if form.quiet_start == form.quiet_end and form.quiet_start != time(0):
        raise ValidationError(
            "Quiet hours that start and end at the same time are empty; set both to 00:00 for "
            "no quiet hours."
        )
    unknown = [e for e in form.clinic_events if e not in CLINIC_EVENTS]
    if unknown:
        raise ValidationError(f"Unknown clinic event {unknown[0]!r}.")
    if not 0 <= int(form.digest_hour) <= 23:
        raise ValidationError("The digest hour must be from 0 to 23.")
    value = asdict(form) | {
        "reminder_hours": hours,
        "quiet_start": form.quiet_start.strftime("%H:%M"),
        "quiet_end": form.quiet_end.strftime("%H:%M"),
        "digest_hour": int(form.digest_hour),
        "high_risk_hours": extra,
    }
    row = setting_row(session, key(clinic_id))
    row.value, row.updated_by_user_id = value, actor.user_id
    session.add(row)
    audit.record(session, actor, "message_preferences_saved", "clinic", clinic_id, details=value)
    session.flush()
    return preferences(session, clinic_id)


def in_quiet_hours(local: time, prefs: MessagePreferences) -> bool:
    return in_quiet(local, prefs.quiet_start, prefs.quiet_end)
