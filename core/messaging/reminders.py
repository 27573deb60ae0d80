"""Appointment reminders and the patient's confirmation.

The schedule, per clinic (core.messaging.preferences): one reminder per offset (default 72 h
and 24 h before, to every channel the patient consented to) and optionally a 2-hour text.
Whole days count in clinic-local wall time, so a 24-hour reminder for a 09:00 appointment goes
at 09:00 the day before even across a DST change; the rest is real time. A reminder that falls
in the clinic's quiet hours waits until they end, or, when that is less than an hour before the
appointment, goes just before they begin.

Rules: only scheduled appointments are reminded (never a cancelled one); a moved appointment
is reminded for its new time (the key is the start time reminded of); a patient with reminders
off gets none (status-change messages are not reminders and still go); a confirmed appointment
gets no further reminder except, where the practice chooses, the last one. The job queues the
one reminder most recently due (never one more than MAX_LATE late), once: a unique row per
appointment, offset and start time holds that across instances.

Nothing goes out while the clinic is in its quiet hours, whatever the schedule said: a reminder
the job reaches late (the app was down, or the booking was made after it was due) and that
falls in quiet hours waits until they end. Lateness counts only time outside quiet hours (a
night spent waiting does not age a reminder: one due at 18:00 and reached at 23:00 is 3 hours
late, and still 3 hours late at 08:00, so it goes then); one that is more than MAX_LATE late in
that count, or that after waiting would leave less than MIN_LEAD before the appointment, is not
sent, and that is recorded.

A visit whose stored no-show probability (core.analytics.risk_scores) is at least HIGH_RISK
gets one extra reminder at the clinic's extra offset (default 48 h; quiet hours apply), by text
message when the patient consented to texts, otherwise by email; a confirmed one gets it only
where the practice says so. It is keyed like the others (appointment, offset, start time), so
it goes once, and again only for a moved visit that is still high risk once scored again (the
score of its old time does not count).

A reminder's email carries three links: confirm (core.kernel.tokens purpose "confirm"), ask to
cancel and ask to reschedule (purpose "change": the page shows the policy and any fee first). Its
text carries the confirm link alone (three are more than three parts in UCS-2), whose page
offers to ask to cancel or move the visit too: the two tokens are issued together here, for the
same visit and expiring together, so the confirm token opens nothing the three links did not
(core.portal.patient_links.CHANGE_PURPOSES); no other code issues a confirm token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.kernel import audit, tokens
from core.kernel.authz import SYSTEM, Actor
from core.kernel.clock import local_edge_to_utc, local_to_utc, quiet_ends, to_local
from core.kernel.config import Settings
from core.kernel.money import DEFAULT_LOCALE, clinic_time, format_clock_range
from core.messaging import notify, quiet
from core.messaging.delivery import stopped
from core.messaging.preferences import (
    HIGH_RISK,
    MessagePreferences,
    in_quiet_hours,
    preferences,
)
from core.practice.treatment import treatment_of
from db.engine import Database
from db.models import (
    Appointment,
    AppointmentConfirmation,
    AppointmentKind,
    AppointmentStatus,
    Channel,
    Clinic,
    DeliveryStatus,
    Notification,
    Patient,
    ReminderSent,
    RiskScore,
    StopKind,
    VisitMode,
)
from db.types import utcnow

log = logging.getLogger("clinicdesk.reminders")
MAX_LATE = timedelta(hours=6)  # a reminder missed by more than this (app down) is not sent
MIN_LEAD = quiet.MIN_LEAD  # waiting out quiet hours must leave at least this much notice
WINDOW_BEFORE = MAX_LATE + timedelta(hours=25)  # a DST hour and quiet hours may delay one,
# and a late one may wait out the quiet hours once more (quiet_length, added per clinic)
WINDOW_AFTER = timedelta(hours=25)  # quiet hours may bring one forward to the evening before
BATCH = 500


# ---------------------------------------------------------------- the schedule


@dataclass(frozen=True)
class Planned:
    offset_minutes: int
    sms_only: bool
    due_at: datetime  # UTC, after quiet hours


def _before(start_at: datetime, tz: str, minutes: int) -> datetime:
    """`minutes` before the start: whole days in clinic-local wall time, the rest real time."""
    days, rest = divmod(minutes, 24 * 60)
    local = to_local(start_at, tz)
    wall_day = local.date() - timedelta(days=days)
    moment = local_to_utc(wall_day, local.time().replace(tzinfo=None), tz)
    return moment - timedelta(minutes=rest)


def _out_of_quiet(due_at: datetime, start_at: datetime, tz: str, prefs: MessagePreferences):
    after = quiet_ends(due_at, prefs.quiet_start, prefs.quiet_end, tz)
    if after is None or after <= start_at - MIN_LEAD:
        return after or due_at
    end_day = to_local(after, tz).date()
    begin_day = end_day - timedelta(days=1) if prefs.quiet_start > prefs.quiet_end else end_day
    return local_edge_to_utc(begin_day, prefs.quiet_start, tz) - timedelta(minutes=1)


def plan(start_at: datetime, tz: str, prefs: MessagePreferences) -> list[Planned]:
    """Every reminder of one appointment, earliest first."""
    planned = []
    for minutes, sms_only in prefs.offsets_minutes:
        due = _out_of_quiet(_before(start_at, tz, minutes), start_at, tz, prefs)
        planned.append(Planned(minutes, sms_only, due))
    return sorted(planned, key=lambda p: p.due_at)


def quiet_now(now: datetime, tz: str, prefs: MessagePreferences) -> bool:
    """Whether `now` falls in the clinic's quiet hours (clinic-local wall time)."""
    return in_quiet_hours(to_local(now, tz).time().replace(tzinfo=None), prefs)


def quiet_length(prefs: MessagePreferences) -> timedelta:
    """How long the clinic's quiet hours last on a day without a clock change."""
    start, end = (t.hour * 60 + t.minute for t in (prefs.quiet_start, prefs.quiet_end))
    return timedelta(minutes=(end - start) % (24 * 60))


def quiet_between(first: datetime, last: datetime, tz: str, prefs: MessagePreferences):
    """How much of [first, last) lies in the clinic's quiet hours (real time, across DST)."""
    total = timedelta(0)
    if prefs.quiet_start == prefs.quiet_end or last <= first:
        return total
    overnight = prefs.quiet_start > prefs.quiet_end
    day = to_local(first, tz).date() - timedelta(days=1)
    while day <= to_local(last, tz).date():
        begins = local_edge_to_utc(day, prefs.quiet_start, tz)
        ends = local_edge_to_utc(day + timedelta(days=1) if overnight else day, prefs.quiet_end, tz)
        total += max(timedelta(0), min(last, ends) - max(first, begins))
        day += timedelta(days=1)
    return total


def missed(
    item: Planned, now: datetime, start_at: datetime, tz: str, prefs: MessagePreferences
) -> str:
    """Why a reminder due by now will never go ("" while it still may): see the module's rules
    on lateness and quiet hours."""
    waited = quiet_between(item.due_at, now, tz, prefs)
    if now - item.due_at - waited > MAX_LATE:
        return "missed by more than 6 hours"
    if waited and start_at - now < MIN_LEAD:
        return "quiet hours left too little notice"
    return ""


def due_now(
    planned: list[Planned],
    now: datetime,
    *,
    confirmed: bool,
    confirmed_get_last: bool,
    start_at: datetime,
    tz: str,
    prefs: MessagePreferences,
) -> Planned | None:
    """The one reminder to queue now, if any (see the module's rules): none in quiet hours."""
    ready = [p for p in planned if p.due_at <= now]
    if not ready or quiet_now(now, tz, prefs):
        return None
    latest = ready[-1]
    if missed(latest, now, start_at, tz, prefs):
        return None
    if confirmed and not (confirmed_get_last and latest is planned[-1]):
        return None
    return latest


# ---------------------------------------------------------------- confirmation


@dataclass(frozen=True)
class Confirmation:
    confirmed_at: datetime
    channel: str

    def text(self, clinic) -> str:
        """In the clinic's (anything with .timezone and .locale) local time and locale."""
        when = clinic_time(clinic, self.confirmed_at)
        return f"Confirmed by the patient · {when} · {self.channel}"


def confirmations(session: Session, appointment_ids: list[int]) -> dict[int, Confirmation]:
    """The confirmation of each appointment for its current start time (a move voids it)."""
    if not appointment_ids:
        return {}
    rows = session.execute(
        select(
            AppointmentConfirmation.appointment_id,
            AppointmentConfirmation.confirmed_at,
            AppointmentConfirmation.channel,
        )
        .join(Appointment, Appointment.id == AppointmentConfirmation.appointment_id)
        .where(
            AppointmentConfirmation.appointment_id.in_(appointment_ids),
            AppointmentConfirmation.start_at == Appointment.start_at,
        )
        .order_by(AppointmentConfirmation.confirmed_at)
    )
    return {ident: Confirmation(at, channel) for ident, at, channel in rows}


def record_confirmation(
    session: Session, actor: Actor, appointment: Appointment, channel: str
) -> tuple[Confirmation, bool]:
    """Confirm for the current start time; a second confirmation changes nothing.
    Returns the confirmation and whether it is new."""
    earlier = confirmations(session, [appointment.id]).get(appointment.id)
    if earlier is not None:
        return earlier, False
    row = AppointmentConfirmation(
        appointment_id=appointment.id, start_at=appointment.start_at, channel=channel
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "confirmed_by_patient",
        "appointment",
        appointment.id,
        patient_id=appointment.patient_id,
        details={"channel": channel, "start_at": appointment.start_at.isoformat()},
    )
    return Confirmation(row.confirmed_at, channel), True


# ---------------------------------------------------------------- queueing


def reminder_links(session: Session, appointment: Appointment, base_url: str) -> dict[str, str]:
    ttl = max(appointment.start_at - utcnow(), timedelta(hours=1))
    confirm = tokens.issue(session, "confirm", appointment.id, ttl, single_use=False)
    change = tokens.issue(session, "change", appointment.id, ttl, single_use=False)
    base = base_url.rstrip("/")
    change_link = tokens.link(base, "change", change.raw)
    return {
        "confirm_link": tokens.link(base, "confirm", confirm.raw),
        "cancel_link": f"{change_link}&k=cancel",
        "reschedule_link": f"{change_link}&k=reschedule",
    }


def appointment_context(appointment: Appointment) -> dict[str, object]:
    clinic = appointment.clinic
    return {
        "clinic_name": clinic.name,
        "clinic_phone": clinic.phone,
        "where": notify.visit_place(clinic, appointment.mode == VisitMode.VIRTUAL),
        "when": clinic_time(clinic, appointment.start_at, zone=True),
        "service_name": treatment_of(appointment) or "your appointment",
        "provider_name": appointment.provider.name if appointment.provider else "our team",
    }


def queue_reminder(
    session: Session,
    appointment: Appointment,
    planned: Planned,
    base_url: str,
    *,
    channels: list[Channel] | None = None,
) -> ReminderSent | None:
    """Queue one reminder (in a savepoint: a concurrent instance that queued it first wins),
    to every consented channel, or only to `channels`."""
    patient = appointment.patient
    try:
        with session.begin_nested():
            sent = ReminderSent(
                appointment_id=appointment.id,
                offset_minutes=planned.offset_minutes,
                start_at=appointment.start_at,
            )
            session.add(sent)
            session.flush()
    except IntegrityError:
        return None
    if planned.sms_only:
        channels = [Channel.SMS]
    context = appointment_context(appointment) | reminder_links(session, appointment, base_url)
    queued = notify.queue_for_patient(
        session,
        patient,
        "appointment_reminder",
        context,
        appointment_id=appointment.id,
        channels=channels,
    )
    sent.channels = ",".join(n.channel.value for n in queued.notifications)
    sent.skipped = "; ".join(queued.skipped)
    audit.record(
        session,
        SYSTEM,
        "reminder_queued",
        "appointment",
        appointment.id,
        patient_id=patient.id,
        details={
            "offset_minutes": planned.offset_minutes,
            "channels": sent.channels,
            "skipped": sent.skipped,
        },
    )
    return sent


def renew_waiting(session: Session, appointment: Appointment, base_url: str) -> int:
    """A reminder queued and not gone yet (held for quiet hours, or to be tried again) names
    the visit's provider as it was then: when another provider takes the visit at the same
    time (the first called in sick), each such reminder is stopped and written again now, to
    the same channels, naming the new one. Returns how many were renewed. (A new time needs
    nothing here: the sender stops a reminder of the old time, and the job queues one for the
    new time.)"""
    waiting = session.scalars(
        select(Notification).where(
            Notification.appointment_id == appointment.id,
            Notification.template == quiet.REMINDER,
            Notification.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.FAILED]),
            Notification.permanent_failure.is_(False),
            Notification.claim_token.is_(None),
        )
    ).all()
    if not waiting or appointment.patient is None:
        return 0
    reason = "Not sent: another provider took the appointment; a new reminder says who."
    for message in waiting:
        for field, value in stopped(StopKind.PURPOSE, reason).items():
            setattr(message, field, value)
    context = appointment_context(appointment) | reminder_links(session, appointment, base_url)
    notify.queue_for_patient(
        session,
        appointment.patient,
        quiet.REMINDER,
        context,
        appointment_id=appointment.id,
        channels=sorted({m.channel for m in waiting}, key=lambda c: c.value),
    )
    return len(waiting)


def _claim(session: Session, appointment: Appointment, offset: int, why: str) -> bool:
    """Record that this reminder will not be sent (and why), so the job stops looking at it."""
    try:
        with session.begin_nested():
            session.add(
                ReminderSent(
                    appointment_id=appointment.id,
                    offset_minutes=offset,
                    start_at=appointment.start_at,
                    skipped=f"not sent: {why}",
                )
            )
            session.flush()
    except IntegrityError:
        return False
    return True


def _why_not(
    planned: list[Planned], item: Planned, now: datetime, confirmed: bool, appointment, prefs
) -> str:
    if any(p.due_at <= now for p in planned if p.due_at > item.due_at):
        return "a later reminder was due"
    why = missed(item, now, appointment.start_at, appointment.clinic.timezone, prefs)
    return why or ("confirmed by the patient" if confirmed else "not due")


def _candidates(
    session: Session,
    now: datetime,
    minutes: int,
    clinic_ids: list[int],
    limit: int,
    *,
    high_risk: bool = False,
    before: timedelta = WINDOW_BEFORE,
):
    """Scheduled appointments of the clinics using this offset whose reminder at it may be due:
    the start lies within the offset of now, widened for late runs, DST and quiet hours; the
    ones already decided (sent or skipped) are left out in SQL. `high_risk`: only those whose
    stored no-show probability is at least HIGH_RISK."""
    decided = exists().where(
        ReminderSent.appointment_id == Appointment.id,
        ReminderSent.start_at == Appointment.start_at,
        ReminderSent.offset_minutes == minutes,
    )
    offset = timedelta(minutes=minutes)
    query = (
        select(Appointment)
        .join(Patient, Patient.id == Appointment.patient_id)
        .where(
            Appointment.status == AppointmentStatus.SCHEDULED,
            Appointment.clinic_id.in_(clinic_ids),
            Appointment.start_at > now,
            Appointment.start_at >= now + offset - before,
            Appointment.start_at <= now + offset + WINDOW_AFTER,
            Appointment.kind == AppointmentKind.APPOINTMENT,
            Patient.reminders_enabled.is_(True),
            ~decided,
        )
        .order_by(Appointment.start_at, Appointment.id)
        .limit(limit)
    )
    if high_risk:
        query = query.join(RiskScore, RiskScore.appointment_id == Appointment.id).where(
            RiskScore.probability >= HIGH_RISK,
            # scored for its present time and provider (risk_scores.current_score): a moved
            # visit's score was of its old time, so it waits for the daily run to score it again
            RiskScore.describes_visit(),
        )
    return list(session.scalars(query))


def queue_due_reminders(
    session: Session, *, base_url: str, now: datetime | None = None, limit: int = BATCH
) -> list[ReminderSent]:
    """Queue every reminder due now, once; record the ones that will never go (a later one was
    due, missed while the app was down, the patient confirmed) so they are not looked at again."""
    now = now or utcnow()
    prefs = {c: preferences(session, c) for c in session.scalars(select(Clinic.id))}
    by_offset: dict[int, list[int]] = {}
    for clinic_id, p in prefs.items():
        for minutes, _ in p.offsets_minutes:
            by_offset.setdefault(minutes, []).append(clinic_id)
    done = []
    for minutes, clinic_ids in sorted(by_offset.items()):
        before = _window_before(prefs, clinic_ids)
        for appointment in _candidates(session, now, minutes, clinic_ids, limit, before=before):
            clinic_prefs = prefs[appointment.clinic_id]
            tz = appointment.clinic.timezone
            planned = plan(appointment.start_at, tz, clinic_prefs)
            item = next(p for p in planned if p.offset_minutes == minutes)
            if item.due_at > now or quiet_now(now, tz, clinic_prefs):
                continue  # not due yet, or due but waiting for the quiet hours to end
            confirmed = appointment.id in confirmations(session, [appointment.id])
            pick = due_now(
                planned,
                now,
                confirmed=confirmed,
                confirmed_get_last=clinic_prefs.confirmed_get_last,
                start_at=appointment.start_at,
                tz=tz,
                prefs=clinic_prefs,
            )
            if pick is not item:
                why = _why_not(planned, item, now, confirmed, appointment, clinic_prefs)
                _claim(session, appointment, minutes, why)
                continue
            row = queue_reminder(session, appointment, pick, base_url)
            if row is not None:
                done.append(row)
    return done + queue_high_risk_reminders(session, prefs, base_url=base_url, now=now, limit=limit)


def _window_before(prefs: dict[int, MessagePreferences], clinic_ids: list[int]) -> timedelta:
    return WINDOW_BEFORE + max(quiet_length(prefs[c]) for c in clinic_ids)


def queue_high_risk_reminders(
    session: Session,
    prefs: dict[int, MessagePreferences],
    *,
    base_url: str,
    now: datetime,
    limit: int = BATCH,
) -> list[ReminderSent]:
    """The extra reminder of high-risk visits (see the module's rules), once each."""
    by_offset: dict[int, list[int]] = {}
    for clinic_id, p in prefs.items():
        if p.high_risk_minutes:
            by_offset.setdefault(p.high_risk_minutes, []).append(clinic_id)
    done = []
    for minutes, clinic_ids in sorted(by_offset.items()):
        before = _window_before(prefs, clinic_ids)
        for appointment in _candidates(
            session, now, minutes, clinic_ids, limit, high_risk=True, before=before
        ):
            clinic_prefs = prefs[appointment.clinic_id]
            tz = appointment.clinic.timezone
            due = _out_of_quiet(
                _before(appointment.start_at, tz, minutes), appointment.start_at, tz, clinic_prefs
            )
            if due > now or quiet_now(now, tz, clinic_prefs):
                continue  # not due yet, or waiting for the quiet hours to end
            planned = Planned(minutes, False, due)
            why = missed(planned, now, appointment.start_at, tz, clinic_prefs)
            if why:
                _claim(session, appointment, minutes, why)
                continue
            confirmed = appointment.id in confirmations(session, [appointment.id])
            if confirmed and not clinic_prefs.high_risk_confirmed:
                _claim(session, appointment, minutes, "confirmed by the patient")
                continue
            usable, _ = notify.channels_for(appointment.patient)
            channel = Channel.SMS if Channel.SMS in usable else Channel.EMAIL
            row = queue_reminder(session, appointment, planned, base_url, channels=[channel])
            if row is not None:
                done.append(row)
    return done


def reminders_job(database: Database, settings: Settings) -> None:
    """The periodic job (core.jobs.JOBS): queue the reminders due now, once."""
    with database.write() as session:
        queued = queue_due_reminders(session, base_url=settings.base_url)
    if queued:
        log.info("queued %d reminder(s)", len(queued))


def quiet_window_text(prefs: MessagePreferences, locale: str | None = DEFAULT_LOCALE) -> str:
    if prefs.quiet_start == prefs.quiet_end:
        return "no quiet hours"
    return f"no reminders {format_clock_range(prefs.quiet_start, prefs.quiet_end, locale)}"
