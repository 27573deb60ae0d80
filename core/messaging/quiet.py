"""Quiet hours at the sender: which messages they hold, until when, and which never go.

Queueing already keeps the patient's automatic messages out of quiet hours; this holds them at
the moment they would leave, so a retry after a failure, a message that waited for a transport
to be configured, or one queued a moment before quiet hours began does not go out inside them.

Held (patient-facing, automatic, nobody is waiting for them):
- reminders, the high-risk extra reminder included (template "appointment_reminder"), by the
  quiet hours of the appointment's clinic (core.messaging.preferences);
- survey requests the job sent ("feedback_request" whose request no person made), by the same;
- waitlist offers ("waitlist_offer"), by the waitlist's offer rules (their own quiet hours,
  core.waitlist.rules, which queue the offer) in the clinic of the time offered.
Everything else goes at once: what a person just caused (a confirmation, a sign-in link, a
reply, a survey request staff asked for), the clinic's own notices, the set-up's test message.

A held message goes when its clinic's quiet hours end. A reminder that would then leave less
than MIN_LEAD before its appointment, and an offer whose hold ends before then (or has ended,
or was taken or withdrawn: its link no longer works), is not sent: marked failed for good with
the reason, as a stopped reminder is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.clock import quiet_ends, to_local
from core.kernel.money import format_clock
from core.kernel.tokens import hash_token
from core.messaging.preferences import preferences
from db.models import (
    Appointment,
    Clinic,
    FeedbackRequest,
    LinkToken,
    Notification,
    OfferStatus,
    Setting,
    SlotOpening,
    WaitlistOffer,
)

REMINDER = "appointment_reminder"
SURVEY = "feedback_request"
OFFER = "waitlist_offer"
HELD = (REMINDER, SURVEY, OFFER)
MIN_LEAD = timedelta(hours=1)  # a reminder must leave at least this much notice (as queued)
WAITLIST_RULES = "waitlist_rules"  # core.waitlist.rules.KEY: messaging may not import it
_TOKEN = re.compile(r"[?&]t=([A-Za-z0-9_\-]{16,128})")


@dataclass(frozen=True)
class Window:
    """Clinic-local quiet hours (start == end: none) in a clinic's zone."""

    start: time
    end: time
    tz: str

    def ends_after(self, now: datetime) -> datetime | None:
        """When the quiet hours `now` falls in end (UTC); None outside them."""
        return quiet_ends(now, self.start, self.end, self.tz)


@dataclass(frozen=True)
class Decision:
    """Hold until `until` (UTC; `note` says so on screen), or stop for good with `stopped`."""

    until: datetime | None = None
    note: str = ""
    stopped: str = ""


def _clock(value: object, default: time) -> time:
    try:
        return time.fromisoformat(str(value))
    except (TypeError, ValueError):
        return default


def _offer_window(session: Session, clinic: Clinic) -> Window:
    """The waitlist rules' quiet hours (defaults 21:00–08:00, as core.waitlist.rules reads)."""
    row = session.get(Setting, WAITLIST_RULES)
    value = row.value if row is not None and isinstance(row.value, dict) else {}
    return Window(
        _clock(value.get("quiet_start", "21:00"), time(21)),
        _clock(value.get("quiet_end", "08:00"), time(8)),
        clinic.timezone,
    )


def _messages_window(session: Session, clinic: Clinic) -> Window:
    prefs = preferences(session, clinic.id)
    return Window(prefs.quiet_start, prefs.quiet_end, clinic.timezone)


def _link_token(session: Session, row: Notification, purpose: str) -> LinkToken | None:
    found = _TOKEN.search(row.body)
    if found is None:
        return None
    return session.scalar(
        select(LinkToken).where(
            LinkToken.token_hash == hash_token(found[1]), LinkToken.purpose == purpose
        )
    )


def _held(clinic: Clinic, until: datetime) -> str:
    when = format_clock(to_local(until, clinic.timezone), clinic.locale)
    return f"Held for the clinic's quiet hours: it goes out at {when} (clinic time)."


def decide(session: Session, row: Notification, now: datetime) -> Decision | None:
    """What quiet hours do to `row` at `now` (see the module); None: send it now."""
    if row.template not in HELD:
        return None
    if row.template == OFFER:
        return _offer(session, row, now)
    if row.template == SURVEY:
        token = _link_token(session, row, "survey")
        request = session.get(FeedbackRequest, token.subject_id) if token else None
        if request is None or request.created_by_user_id is not None:
            return None  # a person asked for it (or it is not the job's): it goes now
    appointment = session.get(Appointment, row.appointment_id) if row.appointment_id else None
    if appointment is None:
        return None
    clinic = session.get(Clinic, appointment.clinic_id)
    until = _messages_window(session, clinic).ends_after(now)
    if until is None:
        return None
    if row.template == REMINDER and appointment.start_at - until < MIN_LEAD:
        return Decision(
            stopped="Not sent: the clinic's quiet hours began before it went out, and waiting "
            "for their end would leave less than an hour before the appointment."
        )
    return Decision(until, _held(clinic, until))


def _offer(session: Session, row: Notification, now: datetime) -> Decision | None:
    token = _link_token(session, row, OFFER)
    offer = session.get(WaitlistOffer, token.subject_id) if token else None
    if token is None or offer is None:
        return None  # not an offer link we know of: not ours to judge
    lapsed = (
        offer.status != OfferStatus.SENT
        or token.revoked_at is not None
        or offer.expires_at is None
        or offer.expires_at <= now
    )
    if lapsed:
        return Decision(
            stopped="Not sent: the offer had ended (its hold ran out, or the time was taken or "
            "withdrawn) before the message could go out."
        )
    clinic = session.get(Clinic, session.get(SlotOpening, offer.opening_id).clinic_id)
    until = _offer_window(session, clinic).ends_after(now)
    if until is None:
        return None
    if offer.expires_at <= until:
        return Decision(
            stopped="Not sent: the waitlist's quiet hours began before it went out, and the "
            "offer's hold ends before they do."
        )
    return Decision(until, _held(clinic, until))
