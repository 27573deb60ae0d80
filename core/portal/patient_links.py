"""The public services behind signed patient links (no staff sign-in).

Each service takes the raw token from the link, verifies it for its one purpose
(core.kernel.tokens: hashed, expiring, constant-time) and acts as the patient. A wrong,
expired, used or revoked token raises LinkInvalid, whose message says nothing about the
patient or whether the token ever existed. Patient-typed text is stored as typed; pages show
it escaped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.kernel import audit, locks, rate_limits, tokens
from core.kernel.authz import Actor, Permission, ensure, patient_actor
from core.kernel.clock import local_today, to_local
from core.kernel.config import BookingLimits
from core.kernel.errors import Conflict, LinkInvalid, ValidationError
from core.kernel.money import DEFAULT_LOCALE, clinic_time, format_day
from core.kernel.phones import not_for_texts
from core.kernel.text import clean, plain_name, same_name
from core.messaging import notify
from core.messaging.notify import CHANNEL_WORDS
from core.patients import invitations, merge
from core.patients.records import (
    birth_problem,
    check_texts,
    practice_regions,
    typed_names,
    validate_contact,
)
from core.payments import points as ledger_points
from core.policy.cancellation import evaluate
from core.portal import sign_in
from core.practice.packages import offered_packages
from core.requests import changes, decisions
from core.scheduling.availability import time_of_day_labels
from core.scheduling.lifecycle import treatment_of
from core.scheduling.states import status_is
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    ChangeKind,
    Clinic,
    InvitationStatus,
    LinkToken,
    Patient,
    PortalInvitation,
    Provider,
    RequestFlag,
    Service,
    Source,
    TimeOfDay,
)
from db.types import utcnow

MAX_IDENTITY_ATTEMPTS = 5  # wrong dates of birth before an enrolment link stops working
BOOKING_DAYS_AHEAD = 180


def _actor_for(patient: Patient | None) -> Actor:
    return patient_actor(patient.first_name if patient else "")


# ---------------------------------------------------------------- enrolment


@dataclass(frozen=True)
class EnrollView:
    first_name: str
    clinic_name: str
    expires_at: datetime
    locale: str = DEFAULT_LOCALE  # the clinic's, for the date of birth's picker
    held: str = ""  # why the patient cannot enrol yet and what to do (no_birth_on_file)


def no_birth_on_file(session: Session, patient: Patient, invitation) -> str:
    """What the patient reads when their record has no date of birth to confirm (added
    without one, or cleared after the invitation went out), or "" when it has one. Nothing is
    counted against the link: no answer could be right until the practice adds it."""
    if patient.date_of_birth is not None:
        return ""
    clinic = invitations.clinic_for(session, patient.id)
    call = f" on {clinic.phone}" if clinic and clinic.phone else ""
    day = invitations.clinic_day(session, patient.id, invitation.expires_at)
    return (
        "We cannot confirm it is you yet: the practice has no date of birth on file for you. "
        f"Please call them{call} and ask them to add it; this link keeps working until {day}."
    )


class EnrolmentClosed(Conflict):
    """A real enrolment link that can no longer be used, saying why: its holder learns only
    what became of their own invitation (an unknown link, or one revoked for any reason but a
    newer invitation, stays LinkInvalid). `portal`: the page offers the portal's sign-in."""

    portal = False


class EnrolledAlready(EnrolmentClosed):
    """The link was used to enrol (by whoever confirmed the patient's date of birth): opened
    again, from the email or another device, it says where to go instead of 'ask for a new
    one', which the practice could not give."""

    portal = True

    def __init__(self, day: str) -> None:
        super().__init__(
            f"You enrolled in the patient portal on {day}, so this link is not needed any more. "
            "To open your portal, sign in with the email address or mobile number the practice "
            "has for you: we send you a one-time sign-in link."
        )


class InvitationReplaced(EnrolmentClosed):
    def __init__(self) -> None:
        super().__init__(
            "This invitation was replaced by a newer one. Please use the link in the practice's "
            "latest invitation (by email or text message)."
        )


def _closed(session: Session, raw: str | None) -> EnrolmentClosed | None:
    """Why a dead enrolment link is dead, when its holder may be told: enrolled with it, or
    its invitation replaced by a resend. None for anything else."""
    row = tokens.find(session, raw, "enroll")
    invitation = invitations.enrolment_target(session, row.id) if row else None
    if invitation is None:
        return None
    if invitation.status == InvitationStatus.ENROLLED and invitation.enrolled_at is not None:
        return EnrolledAlready(
            invitations.clinic_day(session, invitation.patient_id, invitation.enrolled_at)
        )
    if (
        invitation.status == InvitationStatus.REVOKED
        and invitation.revoked_reason == invitations.REPLACED
    ):
        return InvitationReplaced()
    return None


def _live_invitation(
    session: Session, raw: str | None, *, lock: bool = False
) -> tuple[LinkToken, object]:
    """The enrolment link's token and its pending invitation. With `lock`, the invitation's
    row is locked (and read afresh) first, so attempts at once are weighed one after another:
    each counts the wrong dates of birth before it, and none outlives the revocation. A link
    used to enrol, or replaced by a newer invitation, is EnrolmentClosed; any other dead link
    LinkInvalid."""
    try:
        token = tokens.verify(session, raw, "enroll")
    except LinkInvalid:
        if closed := _closed(session, raw):
            raise closed from None
        raise
    invitation = invitations.enrolment_target(session, token.id)
    if invitation is not None and lock:
        invitation = session.execute(
            select(PortalInvitation)
            .where(PortalInvitation.id == invitation.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()
    if invitation is None or invitation.status != InvitationStatus.PENDING:
        raise _closed(session, raw) or LinkInvalid()
    if invitation.expires_at <= utcnow():
        raise LinkInvalid()
    return token, invitation


def enrollment_view(session: Session, raw: str | None) -> EnrollView:
    _, invitation = _live_invitation(session, raw)
    patient = session.get(Patient, invitation.patient_id)
    clinic = invitations.clinic_for(session, patient.id)
    return EnrollView(
        patient.first_name,
        clinic.name if clinic else "",
        invitation.expires_at,
        clinic.locale if clinic else DEFAULT_LOCALE,
        no_birth_on_file(session, patient, invitation),
    )


@dataclass(frozen=True)
class EnrollResult:
    enrolled: bool
    message: str
    portal_token: str | None = None  # a one-time portal sign-in (enrolment opens the portal)


def enroll(
    session: Session, raw: str | None, *, date_of_birth: date | None, accept_terms: bool
) -> EnrollResult:
    """Confirm identity (date of birth) and the terms; the link then works no more.
    A wrong date of birth is recorded (so the caller commits) and after
    MAX_IDENTITY_ATTEMPTS wrong answers the link is revoked."""
    token, invitation = _live_invitation(session, raw, lock=True)
    patient = session.get(Patient, invitation.patient_id)
    if held := no_birth_on_file(session, patient, invitation):
        return EnrollResult(False, held)
    if not accept_terms:
        raise ValidationError("Please read and accept the terms of use to continue.")
    if date_of_birth is None:
        raise ValidationError("Please enter your date of birth.")
    actor = _actor_for(patient)
    if patient.date_of_birth is None or patient.date_of_birth != date_of_birth:
        audit.record(
            session,
            actor,
            "enrollment_identity_failed",
            "invitation",
            invitation.id,
            patient_id=patient.id,
        )
        failures = session.scalar(
            select(func.count()).where(
                AuditEvent.entity == "invitation",
                AuditEvent.entity_id == invitation.id,
                AuditEvent.action == "enrollment_identity_failed",
            )
        )
        if failures >= MAX_IDENTITY_ATTEMPTS:
            invitation.status, invitation.revoked_at = InvitationStatus.REVOKED, utcnow()
            invitation.revoked_reason = "Too many wrong dates of birth"
            tokens.revoke(session, token.id)
            audit.record(
                session,
                actor,
                "invitation_revoked",
                "invitation",
                invitation.id,
                patient_id=patient.id,
                from_status="pending",
                to_status="revoked",
                reason=invitation.revoked_reason,
            )
            return EnrollResult(False, LinkInvalid().args[0])
        return EnrollResult(
            False,
            "The date of birth does not match our records. Please check it and try again, "
            "or contact the practice.",
        )
    tokens.consume(session, token)
    invitations.mark_enrolled(session, actor, invitation, utcnow())
    session.flush()
    return EnrollResult(
        True,
        f"Welcome, {patient.first_name}: you are now enrolled.",
        sign_in.issue_sign_in(session, patient.id),
    )


# ---------------------------------------------------------------- appointments by link


@dataclass(frozen=True)
class AppointmentView:
    appointment_id: int
    first_name: str
    service: str  # the treatment: a package and its services, or the services
    provider: str
    clinic: str
    clinic_phone: str
    when: str  # clinic-local, with the zone
    status: str
    locale: str  # the clinic's, for the day picker of a move


def appointment_view(session: Session, appointment: Appointment) -> AppointmentView:
    patient = session.get(Patient, appointment.patient_id) if appointment.patient_id else None
    provider = session.get(Provider, appointment.provider_id) if appointment.provider_id else None
    clinic = session.get(Clinic, appointment.clinic_id)
    return AppointmentView(
        appointment.id,
        patient.first_name if patient else "",
        treatment_of(appointment),
        provider.name if provider else "",
        clinic.name,
        clinic.phone,
        clinic_time(clinic, appointment.start_at, zone=True),
        appointment.status.value,
        clinic.locale,
    )


def _appointment_for(session: Session, raw: str | None, purpose: str | tuple[str, ...]):
    token = tokens.verify(session, raw, purpose)
    appointment = session.get(Appointment, token.subject_id)
    if appointment is None or appointment.patient_id is None:
        raise LinkInvalid()
    return token, appointment


class ProposalClosed(Conflict):
    """A real proposal link that can no longer be answered, saying why: the holder of the
    link learns only what became of their own proposal (an unknown link stays LinkInvalid)."""


class ProposalReplaced(ProposalClosed):
    """The link of a proposal the practice has since replaced with a newer one."""

    def __init__(self) -> None:
        super().__init__(
            "This proposal was replaced by a newer one. Please use the link in the practice's "
            "latest message."
        )


class ProposalAnswered(ProposalClosed):
    def __init__(self) -> None:
        super().__init__(
            "You have answered this proposal already. The practice's latest message says "
            "where your appointment stands."
        )


class ProposalLapsed(ProposalClosed):
    def __init__(self, phone: str) -> None:
        call = f" or call them on {phone}" if phone else ""
        super().__init__(
            "This proposal has lapsed: we did not hear back in time, so that time is no longer "
            f"held for you. The practice will be in touch{call}."
        )


def _proposal_for(session: Session, raw: str | None):
    """The proposal link's token and appointment. A link revoked because the practice sent a
    newer proposal for the appointment says so (and nothing of the new time), as do one
    answered already and one that lapsed unanswered; any other dead link is LinkInvalid."""
    try:
        return _appointment_for(session, raw, "proposal")
    except LinkInvalid:
        row = tokens.find(session, raw, "proposal")
        if row is None:
            raise
        newer = row.revoked_at is not None and session.scalar(
            select(LinkToken.id)
            .where(
                LinkToken.purpose == "proposal",
                LinkToken.subject_id == row.subject_id,
                LinkToken.id > row.id,
            )
            .limit(1)
        )
        if newer:
            raise ProposalReplaced() from None
        if row.used_at is not None:
            raise ProposalAnswered() from None
        appointment = session.get(Appointment, row.subject_id)
        if row.revoked_at is None and appointment is not None:  # past its time, unanswered
            raise ProposalLapsed(appointment.clinic.phone or "") from None
        raise


def proposal_view(session: Session, raw: str | None) -> AppointmentView:
    _, appointment = _proposal_for(session, raw)
    if appointment.status != AppointmentStatus.TENTATIVE:
        raise LinkInvalid()
    return appointment_view(session, appointment)


def answer_proposal(session: Session, raw: str | None, *, accept: bool) -> str:
    """Accept or decline the time the practice proposed (decisions.respond_to_proposal)."""
    token, appointment = _proposal_for(session, raw)
    if appointment.status != AppointmentStatus.TENTATIVE:
        raise LinkInvalid()
    if token.single_use:
        tokens.consume(session, token)
    patient = session.get(Patient, appointment.patient_id)
    decisions.respond_to_proposal(session, _actor_for(patient), appointment.id, accept=accept)
    if accept:
        return "Thank you: your appointment is confirmed. We have sent you the details."
    return "Thank you for letting us know. The practice will be in touch about another time."


@dataclass(frozen=True)
class ChangeView:
    appointment: AppointmentView
    changeable: bool
    reason_not: str  # why it cannot be changed online, when it cannot
    inside_window: bool
    fee: str  # the late fee in words for this visit ("£25.00", "50% of the visit's price
    # (£40.00 for this visit)"), '' when it costs none
    points: int
    window_hours: int
    policy_text: str
    cancel_online: bool
    reschedules_left: int
    needs_approval: bool
    auto_accept: bool
    today: date  # in the appointment's clinic: the first day a move may ask for
    terms: str = ""  # terms_of: what the form sends back with the request


CHANGEABLE = (AppointmentStatus.SCHEDULED, AppointmentStatus.TENTATIVE)


def terms_of(appointment: Appointment, ev) -> str:
    """What a patient reads before asking to change a visit and may rely on: its time, and
    whether it is inside the policy's window and at what cost. A change form sends back the
    terms it showed; `check_terms` refuses the request when they no longer hold."""
    start = appointment.start_at.isoformat() if appointment.start_at else ""
    return f"{start}|{ev.inside_window}|{ev.fee_text}|{ev.points}"


def check_terms(shown: str | None, terms: str, when: str) -> None:
    """Refuse a change asked for on terms that changed since the page showed them (a desk
    moved the visit, or the cancellation window began): the patient reads them again."""
    if shown is None or shown == terms:
        return
    if shown.split("|")[0] != terms.split("|")[0]:
        what = f"your appointment was moved: it is now on {when}"
    else:
        what = "the cancellation window has begun, so what changing it costs has changed"
    raise Conflict(
        f"Since this page was opened, {what}. Nothing was sent: please read the page again, "
        "then send your request."
    )


# the links that ask to cancel or reschedule: a change link, and a reminder's confirm link,
# the one link of its text, whose page offers to ask for a change too. A confirm token is only
# ever issued beside a change token for the same visit, expiring with it, neither of them
# revoked (core.messaging.reminders.reminder_links), so it opens nothing its reminder's links
# did not. A change link confirms nothing (core.portal.replies reads "confirm" only).
CHANGE_PURPOSES = ("change", "confirm")


def _change_target(session: Session, raw: str | None):
    """The token and appointment of a link of CHANGE_PURPOSES, its token read once (before,
    once for each purpose looked for, then again); LinkInvalid otherwise."""
    return _appointment_for(session, raw, CHANGE_PURPOSES)


def change_view(session: Session, raw: str | None, *, now: datetime | None = None) -> ChangeView:
    """What the patient sees before asking to cancel or reschedule: the policy and, inside
    the window, the fee and points it will cost (core.policy.evaluate, as everywhere else)."""
    _, appointment = _change_target(session, raw)
    return _change_view(session, appointment, now or utcnow())


def _change_view(session: Session, appointment: Appointment, now: datetime) -> ChangeView:
    ev = evaluate(session, appointment, now)
    reason = ""
    if appointment.status not in CHANGEABLE:
        reason = f"This appointment is {status_is(appointment.status, already=True)}."
    elif appointment.start_at is None or appointment.start_at <= now:
        reason = "This appointment has started or passed."
    left = max(0, ev.max_reschedules - appointment.reschedule_count)
    return ChangeView(
        appointment_view(session, appointment),
        not reason,
        reason,
        ev.inside_window,
        ev.fee_text,  # "£25.00", or "50% of the visit's price (£40.00 for this visit)"
        ev.points,
        ev.window_hours,
        ev.policy_text,
        ev.online_allowed,
        left,
        ev.needs_approval,
        ev.auto_accept,
        local_today(appointment.clinic.timezone, now),
        terms_of(appointment, ev),
    )


def submit_change(
    session: Session,
    raw: str | None,
    *,
    kind: str,
    requested_day: date | None = None,
    time_of_day: str | None = None,
    reason: str = "",
    shown: str | None = None,
) -> str:
    """Ask to cancel or reschedule; the request lands in the managers' queue, or is accepted
    at once where the policy allows (core.scheduling.lifecycle.request_change decides).
    `shown`: the terms the page showed (ChangeView.terms), refused if they changed since."""

    token, appointment = _change_target(session, raw)
    view = _change_view(session, appointment, utcnow())
    if not view.changeable:
        raise ValidationError(view.reason_not + " Please contact the practice.")
    check_terms(shown, view.terms, view.appointment.when)
    kind = ChangeKind(kind)
    if kind == ChangeKind.CANCEL and not view.cancel_online:
        raise ValidationError(
            "This appointment cannot be cancelled online. Please call the practice."
        )
    if kind == ChangeKind.RESCHEDULE:
        if view.reschedules_left <= 0:
            raise ValidationError(
                "This appointment has been moved as often as we can arrange online. "
                "Please call the practice."
            )
        if requested_day is None:
            raise ValidationError("Please choose the day you would prefer.")
        if requested_day < to_local(utcnow(), appointment.clinic.timezone).date():
            raise ValidationError("Please choose a day from today onwards.")
    reason = (reason or "").strip()[:1000]
    if token.single_use:
        tokens.consume(session, token)
    patient = session.get(Patient, appointment.patient_id)
    request = changes.request_change(
        session,
        _actor_for(patient),
        appointment.id,
        kind=kind,
        requested_day=requested_day if kind == ChangeKind.RESCHEDULE else None,
        time_of_day=TimeOfDay(time_of_day) if time_of_day else None,
        reason=reason,
    )
    status = getattr(getattr(request, "status", None), "value", "open")
    done = "cancelled" if kind == ChangeKind.CANCEL else "changed"
    return request_answer(patient, done if status == "approved" else None)


def request_answer(patient: Patient, done: str | None) -> str:
    """What a patient reads after asking to change or cancel a visit: done at once ("cancelled")
    or sent to the practice (`done` None), and how they will hear, by the channels they can be
    told on (a patient who takes texts only was promised an email)."""
    usable, _ = notify.channels_for(patient)
    how = " and ".join(CHANNEL_WORDS[c] for c in usable)
    if done:
        told = f" We have sent you a confirmation by {how}." if how else ""
        return f"Your appointment has been {done}.{told}"
    hear = f"We will let you know by {how}." if how else "The practice will contact you."
    return f"Thank you: your request has been sent to the practice. {hear}"


def change_link(session: Session, appointment: Appointment, base_url: str) -> str:
    """A reusable link to ask for a change, valid until the appointment starts."""
    ttl = max(appointment.start_at - utcnow(), timedelta(hours=1))
    issued = tokens.issue(session, "change", appointment.id, ttl, single_use=False)
    return tokens.link(base_url.rstrip("/"), "change", issued.raw)


# ---------------------------------------------------------------- public booking request


@dataclass(frozen=True)
class BookingView:
    clinic_id: int
    clinic_name: str
    clinic_phone: str
    services: list[tuple[int, str]]
    first_day: date
    last_day: date
    link_id: int = 0  # the booking link's token row (its own request limit)
    locale: str = DEFAULT_LOCALE  # the clinic's, for the days it names
    packages: list[tuple[int, str]] = field(default_factory=list)  # after the services


def issue_booking_link(
    session: Session, actor: Actor, clinic_id: int, *, base_url: str, days: int = 365
) -> str:
    """A clinic's public booking-request link (for its website), reusable until it expires."""
    ensure(actor, Permission.NOTIFICATIONS_MANAGE)
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise ValidationError("Choose a clinic for the booking link.")
    if not 1 <= days <= 3650:
        raise ValidationError("A booking link must last between 1 and 3650 days.")
    issued = tokens.issue(session, "booking", clinic.id, timedelta(days=days), single_use=False)
    audit.record(
        session,
        actor,
        "booking_link_issued",
        "clinic",
        clinic.id,
        details={"token_id": issued.row.id, "days": days},
    )
    return tokens.link(base_url.rstrip("/"), "booking", issued.raw)


def booking_view(session: Session, raw: str | None) -> BookingView:
    token = tokens.verify(session, raw, "booking")
    clinic = session.get(Clinic, token.subject_id)
    if clinic is None:
        raise LinkInvalid()
    services = session.execute(
        select(Service.id, Service.name)
        .where(Service.active.is_(True), Service.online_allowed.is_(True))
        .order_by(Service.name)
    ).all()
    today = to_local(utcnow(), clinic.timezone).date()
    return BookingView(
        clinic.id,
        clinic.name,
        clinic.phone,
        [tuple(s) for s in services],
        today,
        today + timedelta(days=BOOKING_DAYS_AHEAD),
        token.id,
        clinic.locale,
        [(p.id, p.label) for p in offered_packages(session, online_only=True)],
    )


def _hashed(kind: str, value: str) -> str:
    return f"booking:{kind}:" + hashlib.sha256(value.encode()).hexdigest()[:64]


def _limit_keys(
    view: BookingView, limits: BookingLimits, email: str | None, phone: str | None, ip: str | None
) -> dict[str, int]:
    """Each rate-limit key of this request and its hourly limit: strict per email and phone,
    loose per client network (as portal sign-in: a waiting room's Wi-Fi is one address for
    every patient in it; an IPv6 client counts with its /64). The link and clinic keys hold
    whether or not the client's address is known (without a proxy it is not). `phone` is the
    number's one key for all its forms (sign_in.phone_key)."""
    keys = {
        f"booking:link:{view.link_id}": limits.per_link,
        f"booking:clinic:{view.clinic_id}": limits.per_clinic,
    }
    if ip:
        keys[_hashed("network", sign_in.network(ip))] = limits.per_network
    if email:
        keys[_hashed("email", email)] = limits.per_contact
    if phone:
        keys[_hashed("phone", phone)] = limits.per_contact
    return keys


def submit_booking(
    session: Session,
    raw: str | None,
    *,
    service_id: int | None = None,
    package_id: int | None = None,
    requested_day: date,
    time_of_day: str,
    first_name: str,
    last_name: str,
    email: str = "",
    phone: str = "",
    notes: str = "",
    consent_email: bool = False,
    consent_sms: bool = False,
    date_of_birth: date | None = None,
    ip: str | None = None,
    limits: BookingLimits = BookingLimits(),
    now: datetime | None = None,
) -> str:
    """A booking request from the clinic's public link, answered the same whether or not the
    contact details belong to a known patient. A known email or phone with another name or
    another date of birth, or a date of birth its record lacks (kept in the flag only: a
    public form never changes a record's), or a patient who may not book online, is not
    refused and not attached silently: the request goes to the queue flagged for a person to
    check. So does a new contact's request when a patient on file has the typed name (a
    returning patient writing from a new address): the new record is made (with the date of
    birth, if typed) and the flag names the patient on file, for the desk to merge; a
    namesake born on another day is someone else. Consent is asked per channel: a new record
    takes consent to email and to texts as each was ticked, each only with its address or
    number (a known patient's record keeps its own), and a flag keeps both as typed."""

    view = booking_view(session, raw)
    now = now or utcnow()
    # one name only (a mononym) in either box; a letter in each given (core.patients.records)
    first_name, last_name = typed_names(first_name, last_name, yours=True)
    email, phone = validate_contact(email, phone, practice_regions(session, view.locale))
    if not email and not phone:
        raise ValidationError("Please give an email address or a phone number so we can reply.")
    try:  # the typed number alone decides: the same answer for anyone, whatever is on file
        check_texts(phone, consent_sms, practice_regions(session, view.locale))
    except ValidationError:
        raise ValidationError(
            f"{not_for_texts(phone)}. Untick text messages, or type a mobile number instead."
        ) from None
    if problem := birth_problem(date_of_birth):  # the typed day alone: nothing about records
        raise ValidationError(f"Please check your date of birth: it is {problem}.")
    if package_id is not None:
        if package_id not in {p for p, _ in view.packages}:
            raise ValidationError("Please choose a treatment from the list.")
        service_id = None
    elif service_id not in {s for s, _ in view.services}:
        raise ValidationError("Please choose a treatment from the list.")
    if not view.first_day <= requested_day <= view.last_day:
        first, last = (
            format_day(d, view.locale, weekday=False) for d in (view.first_day, view.last_day)
        )
        raise ValidationError(f"Please choose a day between {first} and {last}.")
    try:
        moment = TimeOfDay(time_of_day)
    except ValueError:
        raise ValidationError("Please choose a time of day.") from None
    note = (clean(notes, field="note", limit=2000, multiline=True) or "").strip()
    number = sign_in.phone_key(session, phone) if phone else None
    keys = _limit_keys(view, limits, email, number, ip)
    if rate_limits.over_limit(session, keys, now):
        raise ValidationError(
            "We have received many requests in the last hour. Please try again later, or call "
            f"us on {view.clinic_phone}."
        )
    rate_limits.hit(session, keys, now)
    typed = f"{first_name} {last_name}".strip()
    # one request of a contact at a time looks for its record and makes it if there is none:
    # two first requests at once were two records of one person on PostgreSQL
    locks.hold(session, *_contact_locks(email, phone))
    patient = _find_patient(session, email, phone, typed, date_of_birth)
    flags, known = [], []
    if patient is None:
        namesakes = _namesakes(session, typed, date_of_birth)
        patient = Patient(
            first_name=first_name,
            last_name=last_name,
            date_of_birth=date_of_birth,
            email=email,
            phone=phone,
            consent_email=consent_email and bool(email),
            consent_sms=consent_sms and bool(phone),
        )
        session.add(patient)
        session.flush()
        ledger_points.open_account(session, patient)
        audit.record(
            session,
            _actor_for(patient),
            "patient_created",
            "patient",
            patient.id,
            patient_id=patient.id,
            message="Created by an online booking request",
        )
        if namesakes:
            flags.append(_maybe_known(patient, namesakes, view.locale, date_of_birth))
            known = [p.id for p in _named(namesakes, date_of_birth)]
    else:
        flags += _identity_checks(patient, typed, email, date_of_birth, view.locale)
        if patient.points_balance <= 0:
            flags.append("No online booking for this patient (points used up): call them.")
    try:
        appointment = decisions.request_appointment(
            session,
            _actor_for(patient),
            patient_id=patient.id,
            clinic_id=view.clinic_id,
            service_id=service_id,
            package_id=package_id,
            requested_day=requested_day,
            time_of_day=moment,
            notes=note,
            source=Source.ONLINE,
        )
    except decisions.AlreadyAsked:  # the patient's own request stands; a stranger learns nothing
        return BOOKING_RECEIVED
    if flags:
        flag = _one_flag(flags)
        session.add(
            RequestFlag(
                appointment_id=appointment.id,
                flag=flag,
                typed_name=typed,
                # as data too, for the desk's actions on it (core.requests.flags)
                typed_birth=date_of_birth,
                typed={
                    "first_name": first_name,
                    "last_name": last_name,
                    "email": email or "",
                    "phone": phone or "",
                    "consent_email": bool(consent_email),
                    "consent_sms": bool(consent_sms),
                },
                known_ids=known or None,
            )
        )
        audit.record(
            session,
            _actor_for(None),
            "request_flagged",
            "appointment",
            appointment.id,
            patient_id=patient.id,
            reason=flag,
        )
    return BOOKING_RECEIVED


BOOKING_RECEIVED = (
    "Thank you: your request has been received. The practice will contact you to confirm a time."
)


def _identity_checks(
    patient: Patient, typed: str, email: str | None, born: date | None, locale: str
) -> list[str]:
    """Why a request found by its email or phone may not be that patient's: another name, or
    another date of birth (a family member sharing the contact?); and a day typed for a record
    with none, for the desk to confirm and add. The typed day is kept here only: a public form
    never changes the record's."""
    contact = "email address" if email and (patient.email or "") == email else "phone number"
    checks = []
    if not same_name(typed, patient.full_name):
        checks.append(
            f"typed as “{typed}”, but the {contact} belongs to patient #{patient.id}, "
            f"{patient.full_name}."
        )
    if born is not None and patient.date_of_birth not in (None, born):
        typed_day, on_file = (
            format_day(d, locale, weekday=False) for d in (born, patient.date_of_birth)
        )
        checks.append(
            f"the typed date of birth ({typed_day}) differs from #{patient.id}'s ({on_file}): "
            f"a family member sharing the {contact}? Call them before confirming."
        )
    # one "Check identity:", the name first (_one_flag shortens it to keep the day)
    checks = [
        f"Check identity: {c}" if i == 0 else c[0].upper() + c[1:] for i, c in enumerate(checks)
    ]
    if born is not None and patient.date_of_birth is None:
        checks.append(
            f"Date of birth typed: {format_day(born, locale, weekday=False)}; #{patient.id} has "
            "none on file: confirm it and add it to the record."
        )
    return checks


FLAG_LIMIT = 300  # characters (db RequestFlag.flag)


def _one_flag(flags: list[str]) -> str:
    """The flags in one text that fits: a long typed name (kept whole in typed_name too) is
    shortened, not what follows it (a typed date of birth is kept nowhere else)."""
    text = " ".join(flags)
    if len(text) > FLAG_LIMIT and len(flags) > 1:
        first = flags[0][: max(len(flags[0]) - (len(text) - FLAG_LIMIT) - 1, 0)] + "…"
        text = " ".join([first, *flags[1:]])
    return text[:FLAG_LIMIT]


def _contact_locks(email: str | None, phone: str | None) -> list[str]:
    """The lock names of a request's contact, one per detail: what _find_patient matches on,
    so any two requests that could find one record share one. A number's last seven digits
    are the same in every form it is typed (07700 900123, +44 7700 900123); the names are
    hashed, as the rate limits' keys (a number of another country with the same last digits
    only waits its turn)."""
    names = [_hashed("patient-email", email)] if email else []
    digits = "".join(c for c in phone or "" if c.isdigit())
    return names + ([_hashed("patient-phone", digits[-7:])] if digits else [])


def _find_patient(
    session: Session,
    email: str | None,
    phone: str | None,
    typed: str = "",
    born: date | None = None,
) -> Patient | None:
    """The record this contact belongs to: of the patients with this email address or phone
    number (families share them), the one of the typed name (of two, the one born on the typed
    day: a father and son of one name); else the first with the email, else the first with the
    number (in another form only when one patient has it)."""
    with_email = (
        list(
            session.scalars(
                select(Patient)
                .where(func.lower(Patient.email) == email)
                .order_by(Patient.id)
                .limit(SHARED_CONTACT)
            )
        )
        if email
        else []
    )
    with_phone = (
        list(
            session.scalars(
                select(Patient)
                .where(func.replace(Patient.phone, " ", "") == phone.replace(" ", ""))
                .order_by(Patient.id)
                .limit(SHARED_CONTACT)
            )
        )
        if phone
        else []
    )
    if phone and not with_phone:  # the number in another form: +44 7700 900123, 07700-900123
        with_phone = sign_in.patients_by_phone(session, phone, limit=SHARED_CONTACT)
        if len(with_phone) > 1 and not any(same_name(typed, p.full_name) for p in with_phone):
            with_phone = []  # whose it is, only the name could tell
    # a merged duplicate's contact: the kept record
    found = [merge.current_record(session, p) for p in (*with_email, *with_phone)]
    named = [p for p in found if same_name(typed, p.full_name)]
    born_then = [p for p in named if born is not None and p.date_of_birth == born]
    return next(iter(born_then or named or found), None)


SHARED_CONTACT = 20  # the records of one email or phone read to find the typed name's


def _namesakes(session: Session, typed: str, born: date | None = None) -> list[Patient]:
    """The patients (not merged away) of the typed name, for a new contact's request: a
    patient who has come before may write from another email or phone without saying so.
    With a date of birth typed, one born on another day is someone else (left out), and those
    born that day come first."""
    name = plain_name(typed)
    query = (
        select(Patient)
        .where(
            Patient.merged_into_id.is_(None),
            or_(
                Patient.search_text == name,
                Patient.search_text.startswith(f"{name} ", autoescape=True),
            ),
        )
        .order_by(Patient.id)
        .limit(10)
    )
    if born is not None:
        query = query.where(or_(Patient.date_of_birth.is_(None), Patient.date_of_birth == born))
    found = [p for p in session.scalars(query) if same_name(typed, p.full_name)]
    return sorted(found, key=lambda p: born is None or p.date_of_birth != born)[:3]


def _named(namesakes: list[Patient], born: date | None) -> list[Patient]:
    """The patients on file a "maybe a known patient" flag names (two at most): those born on
    the typed day when there are any, else the first namesakes."""
    twins = [p for p in namesakes if born is not None and p.date_of_birth == born]
    return (twins or namesakes)[:2]


def _maybe_known(
    patient: Patient, namesakes: list[Patient], locale: str, born: date | None = None
) -> str:
    """The flag of a new record whose name a patient on file has: who, and what to do (two
    named at most: the flag holds 300 characters). Strong when one of them has the typed date
    of birth too."""
    merge = (
        f"New record #{patient.id} was made; if it is them, merge #{patient.id} into theirs "
        "(the request moves with it)."
    )
    twins = [p for p in namesakes if born is not None and p.date_of_birth == born]
    if twins:
        day = format_day(born, locale, weekday=False)
        who = " and ".join(f"#{p.id} {p.full_name}" for p in _named(namesakes, born))
        have = "have" if len(twins) > 1 else "has"
        return (
            f"Very likely a known patient: {who} on file {have} the same name and date of birth "
            f"(born {day}), with other contact details. {merge}"
        )
    who = ", ".join(
        f"#{p.id} {p.full_name}"
        + (
            f" (born {format_day(p.date_of_birth, locale, weekday=False)})"
            if p.date_of_birth
            else ""
        )
        for p in namesakes[:2]
    ) + (" and others" if len(namesakes) > 2 else "")
    return f"Maybe a known patient: {who} on file, with other contact details. {merge}"


__all__ = [
    "time_of_day_labels",
    "EnrollView",
    "EnrollResult",
    "enrollment_view",
    "enroll",
    "AppointmentView",
    "ProposalAnswered",
    "ProposalClosed",
    "ProposalLapsed",
    "ProposalReplaced",
    "proposal_view",
    "answer_proposal",
    "ChangeView",
    "change_view",
    "submit_change",
    "change_link",
    "BookingView",
    "issue_booking_link",
    "booking_view",
    "submit_booking",
]
