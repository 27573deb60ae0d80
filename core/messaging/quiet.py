"""Quiet hours at the sender: which messages they hold, until when, and which never go.

Queueing already keeps the patient's automatic messages out of quiet hours; this holds them at
the moment they would leave, so a retry after a failure, a message that waited for a transport
to be configured, or one queued a moment before quiet hours began does not go out inside them.

Held (patient-facing, automatic, nobody is waiting for them):
- reminders, the high-risk extra reminder included (template "appointment_reminder"), by the
  quiet hours of the appointment's clinic (core.messaging.preferences);
- survey requests the job sent ("feedback_request" whose request no person made), by the same;
- waitlist offers ("waitlist_offer"), by the waitlist's offer rules (their own quiet hours,
  read by `offer_quiet_hours` for core.waitlist.rules too, which queue the offer) in the
  clinic of the time offered.
Everything else goes at once: what a person just caused (a confirmation, a sign-in link, a
reply, a survey request staff asked for), the clinic's own notices, the set-up's test message.

A held message goes when its clinic's quiet hours end. A reminder that would then leave less
than MIN_LEAD before its appointment, and an offer whose hold ends before then (or has ended,
or was taken or withdrawn: its link no longer works), is not sent: marked failed for good with
the reason, as a stopped reminder is.

The sender asks for a claimed batch at once: `gather` reads what the decisions need (the
appointments, survey requests, offers with their openings and links, clinics, and the message
preferences and waitlist rules) in a few queries for the whole batch, not per message, and
`Facts.decide` judges each message from them without a query, so the sender can judge one
again at the moment it goes.
A survey request or offer message names its request or offer (Notification.feedback_request_id,
waitlist_offer_id, set when it is queued).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel.clock import quiet_ends, to_local
from core.kernel.money import format_clock
from core.messaging import preferences
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
# The waitlist rules' settings row (core.waitlist.rules.KEY) and their quiet hours' defaults:
# here, because the sender holds offers by them and messaging may not import core.waitlist
WAITLIST_RULES = "waitlist_rules"
OFFER_QUIET_START, OFFER_QUIET_END = time(21), time(8)


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


def offer_quiet_hours(value: object) -> tuple[time, time]:
    """The waitlist rules' quiet hours (start, end; clinic-local) from their settings row's
    value (None: not saved): no offer is sent between them. Each stored "HH:MM" that is missing
    or malformed is its default. The one reading of them: core.waitlist.rules builds its Rules
    with it, and the sender holds offers by it."""
    value = value if isinstance(value, dict) else {}
    return (
        _clock(value.get("quiet_start"), OFFER_QUIET_START),
        _clock(value.get("quiet_end"), OFFER_QUIET_END),
    )


@dataclass(frozen=True)
class _Clinic:
    tz: str
    locale: str
    messages: Window  # the clinic's message preferences' quiet hours
    offers: Window  # the waitlist rules' quiet hours, in its zone


@dataclass(frozen=True)
class _Offer:
    ended: bool  # no longer sent (expired, taken, withdrawn, answered) or its link revoked
    expires_at: datetime | None
    clinic_id: int


@dataclass
class Facts:
    """What the quiet hours need to decide on a batch of messages, read at once (`gather`)."""

    visits: dict[int, tuple[datetime, int]] = field(default_factory=dict)  # start, clinic
    automatic: set[int] = field(default_factory=set)  # survey requests no person made
    offers: dict[int, _Offer] = field(default_factory=dict)
    clinics: dict[int, _Clinic] = field(default_factory=dict)

    def decide(self, row: Notification, now: datetime) -> Decision | None:
        """What quiet hours do to `row` at `now` (see the module); None: send it now."""
        if row.template not in HELD:
            return None
        if row.template == OFFER:
            return self._offer(row, now)
        if row.template == SURVEY and row.feedback_request_id not in self.automatic:
            return None  # a person asked for it (or it is not the job's): it goes now
        visit = self.visits.get(row.appointment_id) if row.appointment_id else None
        if visit is None:
            return None
        start_at, clinic_id = visit
        clinic = self.clinics[clinic_id]
        until = clinic.messages.ends_after(now)
        if until is None:
            return None
        if row.template == REMINDER and start_at - until < MIN_LEAD:
            return Decision(
                stopped="Not sent: the clinic's quiet hours began before it went out, and "
                "waiting for their end would leave less than an hour before the appointment."
            )
        return Decision(until, _held(clinic, until))

    def _offer(self, row: Notification, now: datetime) -> Decision | None:
        offer = self.offers.get(row.waitlist_offer_id) if row.waitlist_offer_id else None
        if offer is None:
            return None  # not an offer we know of: not ours to judge
        if offer.ended or offer.expires_at is None or offer.expires_at <= now:
            return Decision(
                stopped="Not sent: the offer had ended (its hold ran out, or the time was taken "
                "or withdrawn) before the message could go out."
            )
        clinic = self.clinics[offer.clinic_id]
        until = clinic.offers.ends_after(now)
        if until is None:
            return None
        if offer.expires_at <= until:
            return Decision(
                stopped="Not sent: the waitlist's quiet hours began before it went out, and the "
                "offer's hold ends before they do."
            )
        return Decision(until, _held(clinic, until))


def gather(session: Session, rows: list[Notification]) -> Facts:
    """What deciding on `rows` needs, in at most five queries whatever their number."""
    facts = Facts()
    requests = {r.feedback_request_id for r in rows if r.template == SURVEY} - {None}
    offers = {r.waitlist_offer_id for r in rows if r.template == OFFER} - {None}
    if requests:
        facts.automatic = set(
            session.scalars(
                select(FeedbackRequest.id).where(
                    FeedbackRequest.id.in_(requests), FeedbackRequest.created_by_user_id.is_(None)
                )
            )
        )
    visits = {r.appointment_id for r in rows if _needs_visit(r, facts)} - {None}
    if visits:
        facts.visits = {
            id_: (start_at, clinic_id)
            for id_, start_at, clinic_id in session.execute(
                select(Appointment.id, Appointment.start_at, Appointment.clinic_id).where(
                    Appointment.id.in_(visits)
                )
            )
        }
    if offers:
        found = session.execute(
            select(
                WaitlistOffer.id,
                WaitlistOffer.status,
                WaitlistOffer.expires_at,
                SlotOpening.clinic_id,
                LinkToken.revoked_at,
            )
            .join(SlotOpening, SlotOpening.id == WaitlistOffer.opening_id)
            .outerjoin(LinkToken, LinkToken.id == WaitlistOffer.token_id)
            .where(WaitlistOffer.id.in_(offers))
        )
        facts.offers = {
            id_: _Offer(status != OfferStatus.SENT or revoked is not None, expires, clinic_id)
            for id_, status, expires, clinic_id, revoked in found
        }
    by_messages = {clinic_id for _, clinic_id in facts.visits.values()}
    by_offers = {offer.clinic_id for offer in facts.offers.values()}
    if by_messages | by_offers:
        keys = [preferences.key(c) for c in by_messages] + ([WAITLIST_RULES] if by_offers else [])
        settings = dict(
            session.execute(select(Setting.key, Setting.value).where(Setting.key.in_(keys))).all()
        )
        offer_hours = offer_quiet_hours(settings.get(WAITLIST_RULES))
        for id_, tz, locale in session.execute(
            select(Clinic.id, Clinic.timezone, Clinic.locale).where(
                Clinic.id.in_(by_messages | by_offers)
            )
        ):
            prefs = preferences.read_preferences(settings.get(preferences.key(id_)))
            facts.clinics[id_] = _Clinic(
                tz,
                locale,
                Window(prefs.quiet_start, prefs.quiet_end, tz),
                Window(*offer_hours, tz),
            )
    return facts


def _needs_visit(row: Notification, facts: Facts) -> bool:
    """A reminder, or a survey request the job sent: judged by its appointment's clinic."""
    return row.template == REMINDER or (
        row.template == SURVEY and row.feedback_request_id in facts.automatic
    )


def _held(clinic: _Clinic, until: datetime) -> str:
    when = format_clock(to_local(until, clinic.tz), clinic.locale)
    return f"Held for the clinic's quiet hours: it goes out at {when} (clinic time)."
