"""Post-visit surveys: feedback requests (by staff or automatically after a completed visit) and
the patient's answer through a signed link.

Feedback on a visit is its own small state on the appointment: none → pending (a request was
sent; at most one per appointment per clinic-local day) → collected (the patient answered).
Requests respect consent: `core.messaging.notify` sends only on channels the patient has an
address and consent for, and a request with no usable channel is refused with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.kernel import audit, tokens
from core.kernel.authz import SYSTEM, Actor, Permission, ensure, patient_actor
from core.kernel.clock import to_local
from core.kernel.config import Settings
from core.kernel.errors import (
    Conflict,
    DomainError,
    InvalidTransition,
    LinkInvalid,
    NotFound,
    ValidationError,
)
from core.kernel.locks import setting_row
from core.kernel.money import clinic_time, format_clock
from core.kernel.text import clean
from core.messaging import clinic_events, notify, preferences, reminders
from core.payments import points
from core.policy import balance as ledger_balance
from core.practice.treatment import treatment_of
from core.scheduling.lifecycle import base_url
from core.scheduling.states import status_is
from db.engine import Database
from db.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    Clinic,
    FeedbackRequest,
    FeedbackStatus,
    Patient,
    Provider,
    Setting,
    SurveyResponse,
)
from db.types import utcnow

log = logging.getLogger("clinicdesk.surveys")

PURPOSE = "survey"
TOKEN_TTL = timedelta(days=30)
LOOKBACK = timedelta(days=7)  # the job never asks about visits completed longer ago than this
BATCH = 50  # requests the job sends per run at most
COMMENT_MAX = 4000
DEFAULT_DELAY_HOURS = 2
SURVEY_LINE = "\n\nHow was it? Tell us in two minutes: {link}"
DEFAULT_QUESTIONS: tuple[tuple[str, str], ...] = (
    ("timely", "Getting a timely appointment"),
    ("courtesy", "Courtesy of the staff"),
    ("explained", "How well the provider explained things"),
)
ANSWERED = "You have answered the survey for this visit already. Thank you!"
# a link revoked by a resend before resends left the earlier links working
REPLACED = (
    "A newer survey link was sent for this visit: please use the one in the practice's latest "
    "message."
)
ANSWERED_FIRST = "Not sent: the patient answered the survey before it went out."
SETTING_AUTO, SETTING_DELAY, SETTING_QUESTIONS = (
    "feedback_auto",
    "feedback_delay_hours",
    "survey_questions",
)


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class SurveySettings:
    auto: bool = True
    delay_hours: int = DEFAULT_DELAY_HOURS
    questions: tuple[tuple[str, str], ...] = DEFAULT_QUESTIONS  # (key, label), each rated 1–5


def _setting(session: Session, key: str, default: Any) -> Any:
    row = session.get(Setting, key)
    if row is None or row.value is None:
        return default
    value = row.value
    return value.get("value", default) if isinstance(value, dict) else value


def survey_settings(session: Session) -> SurveySettings:
    """The feedback settings, with defaults for anything not set (malformed values fall back)."""
    auto = _setting(session, SETTING_AUTO, True)
    delay = _setting(session, SETTING_DELAY, DEFAULT_DELAY_HOURS)
    raw_questions = _setting(session, SETTING_QUESTIONS, None)
    questions = DEFAULT_QUESTIONS
    if isinstance(raw_questions, list) and raw_questions:
        parsed = _unique_keys(
            (str(q["key"]), str(q["label"]))
            for q in raw_questions
            if isinstance(q, dict) and q.get("key") and q.get("label")
        )
        questions = parsed or DEFAULT_QUESTIONS
    try:
        delay = max(0, int(delay))
    except (TypeError, ValueError):
        delay = DEFAULT_DELAY_HOURS
    return SurveySettings(bool(auto), delay, questions)


def save_survey_settings(
    session: Session,
    actor: Actor,
    *,
    auto: bool,
    delay_hours: int,
    questions: list[str],
) -> SurveySettings:
    """Set automatic sending, its delay after completion, and the 1–5 questions (one label each;
    existing questions keep their keys so earlier answers stay comparable)."""
    ensure(actor, Permission.SURVEYS_MANAGE)
    if not 0 <= int(delay_hours) <= 24 * 14:
        raise ValidationError("The delay after the visit must be from 0 to 336 hours.")
    typed = (clean(q or "", field="survey question", limit=None) or "" for q in questions)
    labels = [label.strip() for label in typed if label.strip()]
    if not 1 <= len(labels) <= 8:
        raise ValidationError("Give from one to eight survey questions, one per line.")
    if any(len(label) > 200 for label in labels):
        raise ValidationError("Each survey question must be 200 characters or fewer.")
    folded = [label.casefold() for label in labels]
    if twice := next((q for i, q in enumerate(labels) if folded[i] in folded[:i]), None):
        raise ValidationError(
            f"The question “{twice}” is there twice; give each survey question once."
        )
    known = {label: key for key, label in survey_settings(session).questions}
    # the questions kept hold their keys first, so a new one never takes a kept one's key
    used = {known[label] for label in labels if label in known}
    stored = []
    for label in labels:
        key = known.get(label) or _key_for(label, used)
        used.add(key)
        stored.append({"key": key, "label": label})
    for key, value in (
        (SETTING_AUTO, bool(auto)),
        (SETTING_DELAY, int(delay_hours)),
        (SETTING_QUESTIONS, stored),
    ):
        row = setting_row(session, key)
        row.value, row.updated_by_user_id = {"value": value}, actor.user_id
        session.add(row)
    audit.record(
        session,
        actor,
        "survey_settings_saved",
        "setting",
        None,
        details={"auto": bool(auto), "delay_hours": int(delay_hours), "questions": labels},
    )
    session.flush()
    return survey_settings(session)


def _unique_keys(questions: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The questions with one key each: a key met again (settings saved before keys were kept
    apart) is given to the later question afresh, so no two questions share a form field or
    an answer."""
    used: set[str] = set()
    unique = []
    for key, label in questions:
        key = key if key not in used else _key_for(label, used | {key})
        used.add(key)
        unique.append((key, label))
    return tuple(unique)


def _key_for(label: str, used: set[str]) -> str:
    base = "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")[:24] or "q"
    key, n = base, 2
    while key in used:
        key, n = f"{base}_{n}", n + 1
    return key


# ---------------------------------------------------------------- feedback requests


@dataclass(frozen=True)
class FeedbackSent:
    request_id: int
    channels: list[str]  # the stored values ('email', 'sms'); said names them in words
    skipped: list[str]  # channels not used and why (no consent, no address), for the screen
    link: str = field(repr=False)

    @property
    def said(self) -> str:
        """What the desk reads: 'Survey link sent by email and text message.', and the channels
        not used and why."""
        by = " and ".join(notify.CHANNEL_WORDS[Channel(c)] for c in self.channels)
        return f"Survey link sent by {by}." + (
            f" Not sent by: {'; '.join(self.skipped)}." if self.skipped else ""
        )


def _visit_context(appointment: Appointment) -> dict[str, object]:
    clinic = appointment.clinic
    return {
        "clinic_name": clinic.name,
        "clinic_phone": clinic.phone,
        "when": clinic_time(clinic, appointment.start_at),
        "provider_name": appointment.provider.name if appointment.provider else "",
        "service_name": treatment_of(appointment),  # a package by its name, as reminders
    }


def request_feedback(
    session: Session,
    actor: Actor,
    appointment_id: int,
    *,
    base_url: str,
    now: datetime | None = None,
) -> FeedbackSent:
    """Send the survey link for a completed visit (the "Collect feedback" action and the job)."""
    ensure(actor, Permission.FEEDBACK_REQUEST)
    now = now or utcnow()
    # the patient's row, then the visit's (read afresh), the order an answer being stored locks
    # them in: a request pressed meanwhile waits for the answer and is refused (not sent, the
    # visit not put back to "pending"). The request's rows point at the patient, so on
    # PostgreSQL it needs the patient's row anyway; taken after the visit's, it deadlocked
    # with an answer holding the patient and waiting for the visit.
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound(f"There is no appointment #{appointment_id}.")
    if appointment.patient_id is not None:
        session.execute(
            select(Patient.id)
            .where(Patient.id == appointment.patient_id)
            .with_for_update(read=True, key_share=True)  # FOR KEY SHARE: as its new rows take
        )
    _lock_afresh(session, appointment)
    if appointment.status != AppointmentStatus.COMPLETED:
        raise InvalidTransition(
            "Feedback can be asked for only after the visit is completed; this appointment is "
            f"{status_is(appointment.status)}."
        )
    patient = appointment.patient
    if patient is None:
        raise ValidationError("This appointment has no patient to ask for feedback.")
    if answered(session, appointment):
        raise InvalidTransition("The patient has already answered the survey for this visit.")
    tz = appointment.clinic.timezone
    today = to_local(now, tz).date()
    earlier = session.scalar(
        select(FeedbackRequest).where(
            FeedbackRequest.appointment_id == appointment.id, FeedbackRequest.sent_on == today
        )
    )
    if earlier is not None:
        raise Conflict(_already_sent(earlier, appointment.clinic))
    usable, skipped = notify.channels_for(patient)
    if not usable:
        raise ValidationError(
            f"{patient.full_name} cannot be asked for feedback: {'; '.join(skipped)}. "
            "Update the patient's contact details or consent first."
        )
    request, link = _open_request(session, actor, appointment, now, today, base_url)
    queued = notify.queue_for_patient(
        session,
        patient,
        "feedback_request",
        {**_visit_context(appointment), "link": link},
        appointment_id=appointment.id,
        feedback_request_id=request.id,
    )
    _mark_pending(
        session,
        actor,
        appointment,
        {
            "request_id": request.id,
            "channels": [n.channel.value for n in queued.notifications],
            "skipped": queued.skipped,
        },
    )
    return FeedbackSent(
        request.id, [n.channel.value for n in queued.notifications], queued.skipped, link
    )


def _open_request(
    session: Session,
    actor: Actor,
    appointment: Appointment,
    now: datetime,
    today: date,
    base_url: str,
) -> tuple[FeedbackRequest, str]:
    """Record today's request and issue its link. Earlier links of the visit keep answering
    until their own expiry: a patient with the first email's form open still sends the answer,
    and whichever link answers first is the visit's one answer."""
    request = FeedbackRequest(
        appointment_id=appointment.id,
        patient_id=appointment.patient_id,
        sent_at=now,
        sent_on=today,
        created_by_user_id=actor.user_id,
    )
    try:
        with session.begin_nested():
            session.add(request)
            session.flush()
    except IntegrityError:
        raise Conflict(
            "A feedback request for this visit was sent a moment ago by someone else; "
            "you can send another tomorrow."
        ) from None
    token = tokens.issue(session, PURPOSE, request.id, TOKEN_TTL)
    request.token_id = token.row.id
    return request, tokens.link(base_url, PURPOSE, token.raw)


def _mark_pending(
    session: Session, actor: Actor, appointment: Appointment, details: dict[str, Any]
) -> None:
    before = appointment.feedback_status
    _set_feedback_status(session, appointment.id, FeedbackStatus.PENDING)
    audit.record(
        session,
        actor,
        "feedback_requested",
        "appointment",
        appointment.id,
        patient_id=appointment.patient_id,
        from_status=before.value,
        to_status=FeedbackStatus.PENDING.value,
        details=details,
    )


def thank_you_survey(session: Session, appointment: Appointment, now: datetime) -> str:
    """The survey line of a just-completed visit's thank-you (core.scheduling.visits).

    The link rides in the thank-you exactly when the feedback rules would ask now: automatic
    requests on with no delay after the visit, a channel the patient agreed to, and the visit
    neither asked about nor answered yet. The request is recorded as the job would record it,
    so the job sends no second one. Otherwise the thank-you has no link and the job (or staff)
    asks later under the same rules, after the practice's delay."""
    config = survey_settings(session)
    patient = appointment.patient
    if not config.auto or config.delay_hours or patient is None:
        return ""
    if appointment.feedback_status != FeedbackStatus.NONE or not notify.channels_for(patient)[0]:
        return ""
    if session.scalar(select(exists().where(FeedbackRequest.appointment_id == appointment.id))):
        return ""
    today = to_local(now, appointment.clinic.timezone).date()
    request, link = _open_request(session, SYSTEM, appointment, now, today, base_url(session))
    _mark_pending(session, SYSTEM, appointment, {"request_id": request.id, "with": "thank-you"})
    return SURVEY_LINE.format(link=link)


def _already_sent(earlier: FeedbackRequest, clinic: Clinic) -> str:
    at = format_clock(to_local(earlier.sent_at, clinic.timezone).time(), clinic.locale)
    return (
        f"A feedback request for this visit was already sent today at {at}; you can send "
        "another tomorrow."
    )


def _set_feedback_status(session: Session, appointment_id: int, status: FeedbackStatus) -> None:
    # A plain UPDATE that bumps the version: feedback never conflicts with a colleague's edit of
    # the appointment, but their stale copy must still notice the row changed.
    session.execute(
        update(Appointment)
        .where(Appointment.id == appointment_id)
        .values(feedback_status=status, version=Appointment.version + 1)
        .execution_options(synchronize_session="fetch")
    )


def _consented():
    return or_(
        and_(Patient.email.is_not(None), Patient.email != "", Patient.consent_email.is_(True)),
        and_(Patient.phone.is_not(None), Patient.phone != "", Patient.consent_sms.is_(True)),
    )


def due_for_feedback(session: Session, *, now: datetime | None = None, limit: int = BATCH):
    """Ids of completed visits the job should ask about now: completed at least the configured
    delay ago (and not more than LOOKBACK before that), never asked, with a consented channel,
    at a clinic outside its quiet hours (a visit ending at 19:30 is asked about at 08:00, not at
    21:30 when the delay runs out)."""
    config = survey_settings(session)
    if not config.auto:
        return []
    now = now or utcnow()
    cutoff = now - timedelta(hours=config.delay_hours)
    oldest = cutoff - LOOKBACK
    quiet = [
        clinic.id
        for clinic in session.scalars(select(Clinic))
        if reminders.quiet_now(now, clinic.timezone, preferences.preferences(session, clinic.id))
    ]
    query = (
        select(Appointment.id)
        .join(Patient, Patient.id == Appointment.patient_id)
        .where(
            Appointment.clinic_id.not_in(quiet),
            Appointment.status == AppointmentStatus.COMPLETED,
            Appointment.start_at > oldest - timedelta(days=1),  # the (status, start_at) index
            Appointment.start_at <= cutoff,
            Appointment.completed_at > oldest,
            Appointment.completed_at <= cutoff,
            Appointment.feedback_status == FeedbackStatus.NONE,
            _consented(),
            ~exists().where(FeedbackRequest.appointment_id == Appointment.id),
        )
        .order_by(Appointment.completed_at, Appointment.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def send_due_feedback_requests(
    session: Session, *, base_url: str, now: datetime | None = None, limit: int = BATCH
) -> int:
    """The automatic requests, sent as the system; each in its own savepoint so one refusal
    (a colleague sent one a moment ago, say) does not stop the rest."""
    sent = 0
    for appointment_id in due_for_feedback(session, now=now, limit=limit):
        try:
            with session.begin_nested():
                request_feedback(session, SYSTEM, appointment_id, base_url=base_url, now=now)
            sent += 1
        except DomainError as error:
            log.info("no feedback request for appointment %s: %s", appointment_id, error)
    return sent


def feedback_job(database: Database, settings: Settings) -> None:
    """The periodic job (core.jobs.JOBS): one bounded batch per run."""
    with database.write() as session:
        sent = send_due_feedback_requests(session, base_url=settings.base_url)
    if sent:
        log.info("sent %d feedback request(s)", sent)


# ---------------------------------------------------------------- the appointment's feedback


# a visit's feedback as the desk reads it (the appointment's panel), not its stored value
FEEDBACK_WORDS = {
    FeedbackStatus.NONE: "Feedback not asked for yet",
    FeedbackStatus.PENDING: "Feedback asked for, not answered yet",
    FeedbackStatus.COLLECTED: "Feedback collected",
}


@dataclass(frozen=True)
class FeedbackInfo:
    appointment_id: int
    status: str  # none, pending, collected (FeedbackStatus); said names it in words
    completed: bool
    requests: list[tuple[str, bool]]  # (sent, clinic-local text; answered)
    sent_today: bool
    nps: int | None
    rating: int | None

    @property
    def can_request(self) -> bool:
        return self.completed and self.status != "collected" and not self.sent_today

    @property
    def said(self) -> str:
        return FEEDBACK_WORDS[FeedbackStatus(self.status)]


def get_feedback(
    session: Session, actor: Actor, appointment_id: int, *, now: datetime | None = None
) -> FeedbackInfo:
    ensure(actor, Permission.APPOINTMENTS_READ)
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound(f"There is no appointment #{appointment_id}.")
    clinic = appointment.clinic
    today = to_local(now or utcnow(), clinic.timezone).date()
    rows = session.execute(
        select(FeedbackRequest.sent_at, FeedbackRequest.sent_on, FeedbackRequest.answered_at)
        .where(FeedbackRequest.appointment_id == appointment_id)
        .order_by(FeedbackRequest.sent_at.desc())
        .limit(20)
    ).all()
    response = session.execute(
        select(SurveyResponse.nps, SurveyResponse.rating)
        .where(SurveyResponse.appointment_id == appointment_id)
        .limit(1)
    ).first()
    return FeedbackInfo(
        appointment_id,
        appointment.feedback_status.value,
        appointment.status == AppointmentStatus.COMPLETED,
        [(clinic_time(clinic, sent_at), answered is not None) for sent_at, _, answered in rows],
        any(sent_on == today for _, sent_on, _ in rows),
        response.nps if response else None,
        response.rating if response else None,
    )


# ---------------------------------------------------------------- the patient's survey


@dataclass(frozen=True)
class SurveyForm:
    clinic_name: str
    visit: str  # clinic-local date and time of the visit
    provider_name: str
    questions: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SurveyAnswers:
    nps: int | None  # would you recommend us, 0–10
    rating: int | None  # overall, 1–5
    answers: dict[str, int | None] = field(default_factory=dict)  # question key → 1–5
    comment: str = ""


def _lock_afresh(session: Session, appointment: Appointment) -> None:
    """Lock the visit's row until the transaction ends and read it again (a plain refresh: the
    row's version may have moved on since it was read, which is no conflict here)."""
    session.execute(
        select(Appointment.id).where(Appointment.id == appointment.id).with_for_update()
    )
    session.refresh(appointment)


def answered(session: Session, appointment: Appointment) -> bool:
    """The visit's survey was answered: through any of its links, the portal or an import."""
    if appointment.feedback_status == FeedbackStatus.COLLECTED:
        return True
    return bool(
        session.scalar(select(exists().where(SurveyResponse.appointment_id == appointment.id)))
    )


def _live_request(
    session: Session, raw: str | None, now: datetime | None
) -> tuple[Any, FeedbackRequest, Appointment]:
    """The link's request and visit, while the visit's survey is unanswered: any live link of
    the visit (a resend leaves the earlier ones working until they expire). A link of a real
    request that cannot be used says why when the patient can act on it (answered already;
    revoked by a resend before resends kept it); any other link is LinkInvalid, which reveals
    nothing."""
    try:
        token = tokens.verify(session, raw, PURPOSE, now=now)
    except LinkInvalid:
        _explain_dead_link(session, raw)
        raise
    request = session.get(FeedbackRequest, token.subject_id)
    if request is None:
        raise LinkInvalid()
    appointment = session.get(Appointment, request.appointment_id)
    if request.answered_at is not None or answered(session, appointment):
        raise ValidationError(ANSWERED)
    return token, request, appointment


def _explain_dead_link(session: Session, raw: str | None) -> None:
    row = tokens.find(session, raw, PURPOSE)
    request = session.get(FeedbackRequest, row.subject_id) if row is not None else None
    if request is None:
        return
    appointment = session.get(Appointment, request.appointment_id)
    if request.answered_at is not None or answered(session, appointment):
        raise ValidationError(ANSWERED)
    newer = session.scalar(
        select(FeedbackRequest.id)
        .where(
            FeedbackRequest.appointment_id == appointment.id,
            FeedbackRequest.id > request.id,
        )
        .limit(1)
    )
    if row.revoked_at is not None and newer is not None:
        raise ValidationError(REPLACED)


def open_survey(session: Session, raw: str | None, *, now: datetime | None = None) -> SurveyForm:
    """What the survey page shows for a live link; LinkInvalid for an expired or used one.
    The signed link is the patient's only credential, so there is no actor here."""
    _, _, appointment = _live_request(session, raw, now)
    clinic: Clinic = appointment.clinic
    provider: Provider | None = appointment.provider
    return SurveyForm(
        clinic.name,
        clinic_time(clinic, appointment.start_at),
        provider.name if provider else "",
        survey_settings(session).questions,
    )


def _score(value: object, low: int, high: int) -> int | None:
    """A whole number from `low` to `high` as answered, or None (9.5, '4', True are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return None
    return int(value) if low <= value <= high else None


def _validate(answers: SurveyAnswers, questions: tuple[tuple[str, str], ...]) -> dict[str, int]:
    if _score(answers.nps, 0, 10) is None:
        raise ValidationError("Please choose how likely you are to recommend us, from 0 to 10.")
    if _score(answers.rating, 1, 5) is None:
        raise ValidationError("Please rate your visit overall, from 1 to 5 stars.")
    keys = {key for key, _ in questions}
    given: dict[str, int] = {}
    for key, value in (answers.answers or {}).items():
        # a question may be left out; one the practice took out (or reworded) while the patient
        # had the form open is no longer asked: the rest of the answer stands without it
        if value is None or key not in keys:
            continue
        if (score := _score(value, 1, 5)) is None:
            raise ValidationError("Each question is answered from 1 to 5.")
        given[key] = score
    if len(answers.comment or "") > COMMENT_MAX:
        raise ValidationError(f"Please keep your comment under {COMMENT_MAX} characters.")
    return given


def submit_survey(
    session: Session, raw: str | None, answers: SurveyAnswers, *, now: datetime | None = None
) -> int:
    """Store the patient's answers (comment exactly as typed) and consume the link, once per
    visit: a second or concurrent answer (the same link, another request's link, the portal)
    is told the survey was answered already and stores nothing."""
    now = now or utcnow()
    token, request, appointment = _live_request(session, raw, now)
    # One answer per visit, whichever of its links (emailed, a later request's, the portal's)
    # sends it: the patient's row locked first (as every points change and the portal's answer
    # lock it, so the order is always patient then visit), then the visit's, read afresh.
    ledger_balance.locked(session, appointment.patient_id or request.patient_id)
    _lock_afresh(session, appointment)
    if answered(session, appointment):
        raise ValidationError(ANSWERED)
    given = _validate(answers, survey_settings(session).questions)
    try:
        tokens.consume(session, token)
    except LinkInvalid:  # the same link sent a moment ago (a double press, another tab)
        raise ValidationError(ANSWERED) from None
    response = SurveyResponse(
        feedback_request_id=request.id,
        appointment_id=appointment.id,
        clinic_id=appointment.clinic_id,
        provider_id=appointment.provider_id,
        service_id=appointment.service_id,
        package_id=appointment.package_id,  # its answers are the package's in the figures
        submitted_at=now,
        nps=int(answers.nps),
        rating=int(answers.rating),
        answers=given,
        # as typed; a comment of only spaces or line breaks is no comment (not a blank line in
        # the practice's comment feed)
        comment=answers.comment if (answers.comment or "").strip() else "",
        source="link",
    )
    try:
        with session.begin_nested():
            session.add(response)
            session.flush()
    except IntegrityError:
        raise ValidationError(ANSWERED) from None
    request.answered_at = now
    earned = points.award_survey_points(session, appointment)
    before = appointment.feedback_status
    _set_feedback_status(session, appointment.id, FeedbackStatus.COLLECTED)
    # the visit's survey messages still waiting (a resend's, when an earlier link answered)
    # would only bring a link that says "answered already"
    notify.withdraw_unsent(session, appointment.id, "feedback_request", ANSWERED_FIRST)
    patient = session.get(Patient, request.patient_id)
    audit.record(
        session,
        patient_actor(patient.full_name if patient else ""),
        "survey_received",
        "appointment",
        appointment.id,
        patient_id=request.patient_id,
        from_status=before.value,
        to_status=FeedbackStatus.COLLECTED.value,
        details={
            "response_id": response.id,
            "nps": response.nps,
            "rating": response.rating,
            "points_earned": earned,
        },
    )
    context = {**_visit_context(appointment), "nps": response.nps, "rating": response.rating}
    clinic_events.tell_clinic(
        session,
        appointment.clinic_id,
        "survey_received",
        f"A patient answered the survey for the visit on {context['when']}: recommend "
        f"{response.nps}/10, rating {response.rating}/5.",
        appointment_id=appointment.id,
        link=clinic_events.item_link(base_url(session), appointment.id),
        template="survey_received",
        context=context,
    )
    return response.id
