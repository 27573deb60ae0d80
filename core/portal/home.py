"""The signed-in patient's portal: what they see (upcoming appointments, a calendar, completed
visits with their survey state, history, points and ledger) and what they do (request, ask to
cancel or reschedule, answer a proposal, answer a survey, answer or sign the forms sent after
booking, prepay). Their waitlist is core.portal.waitlist.

Every function takes the signed-in patient's id (from the portal session, core.portal.sign_in)
and only ever reads or acts on that patient's rows: another patient's appointment id is refused
with the same "no such appointment" as an unknown one. Actions go through the same services as
the emailed links (core.requests, core.feedback, core.forms, core.payments),
acting as the patient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.feedback import surveys
from core.forms import after_booking
from core.kernel import tokens
from core.kernel.authz import patient_actor
from core.kernel.clock import local_today, to_local
from core.kernel.config import DEFAULT_BASE_URL
from core.kernel.errors import NotFound, ValidationError
from core.kernel.money import (
    DEFAULT_LOCALE,
    clinic_format,
    clinic_time,
    clinic_time_range,
    format_clock,
    format_day,
    format_moment,
    format_number,
)
from core.messaging import visit_calendar
from core.payments import points as ledger_points
from core.payments import prepay
from core.payments.providers import PaymentProvider
from core.payments.rules import get_settings, money_format
from core.policy import balance as ledger_balance
from core.policy.cancellation import Evaluation, evaluate, online_booking_blocked
from core.portal.patient_links import (
    check_terms,
    request_answer,
    terms_of,
)
from core.practice.packages import offered_packages
from core.requests import changes, decisions
from core.scheduling.availability import time_of_day_label
from core.scheduling.calendar import STATUS_COLOURS, STATUS_LABELS
from core.scheduling.lifecycle import treatment_of
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    ChangeKind,
    ChangeRequest,
    ChangeStatus,
    Clinic,
    FeedbackRequest,
    FeedbackStatus,
    Patient,
    Service,
    Source,
    TimeOfDay,
)
from db.types import utcnow

S = AppointmentStatus
UPCOMING = (S.REQUESTED, S.TENTATIVE, S.SCHEDULED, S.CHECKED_IN)
PAST = (S.COMPLETED, S.CANCELLED, S.DECLINED, S.NO_SHOW)
NOT_YOURS = "There is no such appointment in your portal."
LOCKED = (
    "Your points balance is zero, so online requests are paused (the waitlist too) until you "
    "have points again."
)
ASK_BY_PHONE = (
    "Please choose a treatment from the list. Treatments not listed are booked by the "
    "practice: please call them."
)
IN_CALENDAR = (S.SCHEDULED, S.CHECKED_IN)  # a time agreed: "Add to my calendar"
PENDING_CHANGE = {  # a change request waiting for the practice, as the card says it
    ChangeKind.CANCEL: "Cancellation requested — waiting for the practice",
    ChangeKind.RESCHEDULE: "Reschedule requested — waiting for the practice",
}
FEEDBACK_LABELS = {
    FeedbackStatus.NONE: "Take survey",
    FeedbackStatus.PENDING: "Take survey",
    FeedbackStatus.COLLECTED: "Answered — thank you",
}


@dataclass(frozen=True)
class PortalAppointment:
    id: int
    status: str
    status_label: str
    when: str  # clinic-local
    start_iso: str | None
    end_iso: str | None
    provider: str
    service: str
    clinic: str
    payment: str  # "Paid", "Deposit paid", "Part paid", "Not paid" or "" (nothing to pay)
    outstanding: str
    payable: bool  # something is asked in advance and the visit is still ahead
    feedback: str
    survey_open: bool
    forms: tuple[after_booking.PatientForm, ...] = ()  # a scheduled appointment's documents
    points_usable: int = 0  # the most points the patient can put towards it now
    change_pending: str = ""  # PENDING_CHANGE's line while a change request waits
    can_ask_change: bool = False  # "Cancel or reschedule" leads somewhere (none is waiting)
    clock: str = ""  # the start's wall-clock time in its clinic's zone and locale
    change_by_phone: str = ""  # instead of "Cancel or reschedule": the policy leaves no choice
    calendar_file: tuple[str, bytes] | None = None  # (name, .ics) of a visit whose time is agreed

    @property
    def forms_outstanding(self) -> int:
        return sum(f.state == "outstanding" for f in self.forms)

    def pay_online(self, card_online: bool) -> bool:
        """Whether Pay leads anywhere: points to spend on it, or a card provider (Stripe) for
        the rest. Otherwise what is owed is paid at the desk."""
        return self.payable and (card_online or self.points_usable > 0)


@dataclass(frozen=True)
class Home:
    """The patient's home. Each visit and each amount is in its own clinic's zone, locale and
    currency. What belongs to no single clinic (today on the calendar, the calendar's own
    clock, counts, the point value quoted on the Points tab, ledger rows not tied to a visit)
    is in the patient's home clinic's: the clinic of their latest booking, the one the request
    form is prefilled with (the practice's first clinic before any booking)."""

    patient_id: int
    first_name: str
    points_balance: int
    locked: bool
    point_value: str  # in the home clinic's currency
    survey_points: int
    timezone: str  # the home clinic's
    locale: str
    upcoming: list[PortalAppointment]
    completed: list[PortalAppointment]
    history: list[PortalAppointment]
    ledger: list[ledger_points.LedgerRow]
    home_clinic: str = ""
    # one point at each of the patient's clinics, the home clinic first: (clinic, value)
    point_values: tuple[tuple[str, str], ...] = ()
    # a visit's clinic's (zone, locale), for the ledger rows tied to a visit
    visit_zones: dict[int, tuple[str, str]] = field(default_factory=dict)
    # a ledger row's visit in words: 'Massage · Mon, 7 Dec 2026' (the patient never sees #57)
    visit_names: dict[int, str] = field(default_factory=dict)
    locked_text: str = ""  # why online requests are paused and how to get going again

    @property
    def today(self) -> date:
        """Today in the home clinic (the calendar's today)."""
        return local_today(self.timezone)

    @property
    def several_clinics(self) -> bool:
        return len(self.point_values) > 1

    def ledger_time(self, row: ledger_points.LedgerRow) -> str:
        """When a ledger row happened, in its visit's clinic's zone and locale (the home
        clinic's for a row tied to no visit, such as a staff adjustment)."""
        tz, locale = self.visit_zones.get(row.appointment_id, (self.timezone, self.locale))
        return format_moment(row.at, tz, locale)

    def count(self, n: int, signed: bool = False) -> str:
        """A count (points, visits) in the home clinic's locale: 1.250 in pt-BR; `signed`, a
        change with its sign (+10)."""
        return format_number(n, 0, self.locale, signed)

    def calendar_events(self) -> list[dict[str, object]]:
        """FullCalendar events in the staff calendar's colours (no one else's data). Each is
        placed at its clinic's wall-clock time, which its title also gives in its clinic's
        locale (the calendar itself draws no event time: it has one locale for all)."""
        return [
            {
                "id": str(a.id),
                "title": " ".join(
                    t for t in (a.clock, f"{a.service or 'Appointment'} · {a.provider}") if t
                ).strip(" ·"),
                "start": a.start_iso,
                "end": a.end_iso,
                "color": STATUS_COLOURS[a.status],
            }
            for a in self.upcoming + self.history
            if a.start_iso
        ]


def portal_patient(session: Session, patient_id: int) -> Patient:
    """The signed-in patient, or NotFound when they are no longer enrolled in the portal."""
    patient = session.get(Patient, patient_id)
    if patient is None or patient.portal_enrolled_at is None:
        raise NotFound("Please sign in to the portal again.")
    return patient


def own_appointment(session: Session, patient_id: int, appointment_id: int) -> Appointment:
    """The patient's own appointment, or NotFound (also for another patient's id)."""
    appointment = session.get(Appointment, appointment_id)
    if (
        appointment is None
        or appointment.patient_id != patient_id
        or appointment.kind != AppointmentKind.APPOINTMENT
    ):
        raise NotFound(NOT_YOURS)
    return appointment


def _open_changes(session: Session, patient_id: int) -> dict[int, ChangeRequest]:
    """The patient's change requests still waiting: open (for the practice) or answered with
    a proposed time (for the patient), by appointment."""
    waiting = session.scalars(
        select(ChangeRequest)
        .join(Appointment, Appointment.id == ChangeRequest.appointment_id)
        .where(
            Appointment.patient_id == patient_id,
            ChangeRequest.status.in_((ChangeStatus.OPEN, ChangeStatus.PROPOSED)),
        )
        .order_by(ChangeRequest.id)
    )
    return {c.appointment_id: c for c in waiting}


def _view(
    session, appointment: Appointment, badges, rules, now, forms, balance: int, change=None
) -> PortalAppointment:
    clinic: Clinic = appointment.clinic
    tz = clinic.timezone
    when = clinic_time_range(clinic, appointment.start_at, appointment.end_at, zone=True)
    if appointment.start_at is None and appointment.requested_day:
        day = format_day(appointment.requested_day, clinic.locale)
        when = f"Requested for {day}"
        if appointment.time_of_day:
            when += f", {time_of_day_label(appointment.time_of_day, clinic.locale, in_text=True)}"
    payment, outstanding, payable, usable = badges.get(appointment.id, ""), "", False, 0
    if appointment.status == S.SCHEDULED:
        owed = prepay.due(session, appointment, rules)
        payable = owed.payable and appointment.start_at is not None and appointment.start_at > now
        if change is not None and change.kind == ChangeKind.CANCEL:
            payable = False  # nothing is asked in advance for a visit the patient asked to cancel
        usable = prepay.usable_points(balance, owed.outstanding_cents, rules) if payable else 0
        money = money_format(clinic).money
        outstanding = money(owed.outstanding_cents) if owed.outstanding_cents else ""
        if not payment and owed.asked_cents:
            payment = "Not paid"
    changeable = change is None and appointment.status in (S.SCHEDULED, S.TENTATIVE)
    by_phone = (
        _by_phone_only(appointment, evaluate(session, appointment, now)) if changeable else ""
    )
    survey_open = appointment.status == S.COMPLETED and (
        appointment.feedback_status != FeedbackStatus.COLLECTED
    )
    return PortalAppointment(
        appointment.id,
        appointment.status.value,
        STATUS_LABELS[appointment.status.value],
        when,
        to_local(appointment.start_at, tz).isoformat() if appointment.start_at else None,
        to_local(appointment.end_at, tz).isoformat() if appointment.end_at else None,
        appointment.provider.name if appointment.provider else "",
        treatment_of(appointment),
        clinic.name,
        payment,
        outstanding,
        payable,
        FEEDBACK_LABELS[appointment.feedback_status] if appointment.status == S.COMPLETED else "",
        survey_open,
        tuple(forms.get(appointment.id, ())),
        usable,
        PENDING_CHANGE[change.kind] if change and change.status == ChangeStatus.OPEN else "",
        changeable and not by_phone,
        format_clock(to_local(appointment.start_at, tz), clinic.locale)
        if appointment.start_at
        else "",
        by_phone,
        visit_calendar.visit_file(
            appointment,
            base_url=session.info.get("base_url", DEFAULT_BASE_URL),
            sender=session.info.get(visit_calendar.SENDER, visit_calendar.DEFAULT_SENDER),
            now=now,
        )
        if appointment.status in IN_CALENDAR
        else None,
    )


def home(session: Session, patient_id: int, *, now: datetime | None = None) -> Home:
    patient = portal_patient(session, patient_id)
    now = now or utcnow()
    rules = get_settings(session)
    rows = list(
        session.scalars(
            select(Appointment)
            .where(
                Appointment.patient_id == patient.id,
                Appointment.kind == AppointmentKind.APPOINTMENT,
            )
            .order_by(Appointment.start_at.desc(), Appointment.id.desc())
            .limit(500)
        )
    )
    badges = prepay.badges(session, [a.id for a in rows])
    forms = after_booking.patient_forms(
        session, patient.id, [a.id for a in rows if a.status in after_booking.OPEN_FOR]
    )
    balance, waiting = patient.points_balance, _open_changes(session, patient.id)
    views = {
        a.id: _view(session, a, badges, rules, now, forms, balance, waiting.get(a.id)) for a in rows
    }
    upcoming = sorted(
        (views[a.id] for a in rows if a.status in UPCOMING),
        key=lambda v: (v.start_iso or "9999", v.id),
    )
    completed = [views[a.id] for a in rows if a.status == S.COMPLETED]
    history = [views[a.id] for a in rows if a.status in PAST]
    latest = _latest_booking(session, patient.id)
    local = clinic_format(session, latest.clinic_id if latest else None)
    ledger = ledger_points.ledger_rows(session, patient.id)
    clinics = {a.clinic_id: a.clinic for a in rows}
    if latest is not None:
        clinics = {latest.clinic_id: latest.clinic} | clinics
    return Home(
        patient.id,
        patient.first_name,
        patient.points_balance,
        online_booking_blocked(patient),
        local.money(rules.point_value_cents),
        rules.survey_points if rules.survey_points_enabled else 0,
        local.timezone,
        local.locale,
        upcoming,
        completed,
        history,
        ledger,
        latest.clinic.name if latest else "",
        tuple((c.name, money_format(c).money(rules.point_value_cents)) for c in clinics.values()),
        _visit_zones(session, [r.appointment_id for r in ledger if r.appointment_id]),
        _visit_names(session, patient.id, [r.appointment_id for r in ledger if r.appointment_id]),
        locked_text(session, patient) if online_booking_blocked(patient) else "",
    )


def _latest_booking(session: Session, patient_id: int) -> Appointment | None:
    """The patient's latest booking (by when it was made): its clinic is their home clinic."""
    return session.scalar(
        select(Appointment)
        .where(Appointment.patient_id == patient_id)
        .order_by(Appointment.created_at.desc(), Appointment.id.desc())
        .limit(1)
    )


def _visit_zones(session: Session, appointment_ids: list[int]) -> dict[int, tuple[str, str]]:
    if not appointment_ids:
        return {}
    rows = session.execute(
        select(Appointment.id, Clinic.timezone, Clinic.locale)
        .join(Clinic, Clinic.id == Appointment.clinic_id)
        .where(Appointment.id.in_(set(appointment_ids)))
    )
    return {i: (tz, locale or DEFAULT_LOCALE) for i, tz, locale in rows}


def locked_text(session: Session, patient: Patient) -> str:
    """Why the patient's online requests are paused and how to get going again: the number
    of their clinic (that of their latest booking, else the practice's first open one), and
    the surveys they can answer for points when there are any."""
    latest = _latest_booking(session, patient.id)
    clinic = latest.clinic if latest is not None else None
    if clinic is None or not clinic.phone:
        clinic = (
            session.scalar(
                select(Clinic).where(Clinic.active.is_(True)).order_by(Clinic.id).limit(1)
            )
            or clinic
        )
    call = "Please call the practice"
    if clinic is not None and clinic.phone:
        call = f"Please call {clinic.name} on {clinic.phone}"
    said = f"{LOCKED} {call}: they can add points and book for you."
    rules = get_settings(session)
    if rules.survey_points_enabled and rules.survey_points > 0:
        waiting = session.scalar(
            select(func.count(Appointment.id)).where(
                Appointment.patient_id == patient.id,
                Appointment.kind == AppointmentKind.APPOINTMENT,
                Appointment.status == S.COMPLETED,
                Appointment.feedback_status != FeedbackStatus.COLLECTED,
            )
        )
        if waiting:
            which = "a survey" if waiting == 1 else "one of your surveys"
            said += (
                f" Or answer {which} under Visits and surveys: each earns you "
                f"{rules.survey_points} points, and online requests open again at once."
            )
    return said


def _visit_names(session: Session, patient_id: int, ids: list[int]) -> dict[int, str]:
    """The patient's visits the ledger rows are tied to, as the patient knows them: the
    treatment and the day in its clinic's locale (a visit merged away from them has none)."""
    if not ids:
        return {}
    visits = session.scalars(
        select(Appointment).where(
            Appointment.id.in_(set(ids)), Appointment.patient_id == patient_id
        )
    )
    names = {}
    for a in visits:
        clinic = a.clinic
        moment = a.start_at and to_local(a.start_at, clinic.timezone).date()
        day = format_day(moment or a.requested_day, clinic.locale or DEFAULT_LOCALE)
        names[a.id] = " · ".join(part for part in (treatment_of(a) or "Visit", day) if part)
    return names


# ---------------------------------------------------------------- cancel or reschedule


@dataclass(frozen=True)
class ChangePreview:
    appointment_id: int
    changeable: bool
    reason_not: str
    inside_window: bool
    window_hours: int
    fee: str  # the late fee in words for this visit, '' when it costs none
    points: int
    balance_after: int
    locks: bool  # the deduction leaves a zero balance: online requests are blocked
    prepayment: str  # what happens to what was paid
    cancel_online: bool
    reschedules_left: int
    policy_text: str
    today: date  # in the appointment's clinic: the first day a move may ask for
    locale: str  # the appointment's clinic's, for the day picker
    terms: str = ""  # patient_links.terms_of: what the form sends back with the request
    when: str = ""  # the appointment's time as the patient reads it


def _by_phone_only(appointment: Appointment, ev: Evaluation) -> str:
    """Why the visit can be changed only by calling, when its policy leaves neither choice
    online (no online cancellation, no moves left): the change form would offer nothing."""
    if ev.online_allowed or appointment.reschedule_count < ev.max_reschedules:
        return ""
    phone = appointment.clinic.phone
    return (
        "This appointment cannot be cancelled or moved online any more under the "
        f"practice's policy: please call the practice{f' on {phone}' if phone else ''}."
    )


def change_preview(
    session: Session, patient_id: int, appointment_id: int, *, now: datetime | None = None
) -> ChangePreview:
    """What cancelling now would cost, in the policy's one evaluation."""
    patient = portal_patient(session, patient_id)
    appointment = own_appointment(session, patient_id, appointment_id)
    now = now or utcnow()
    ev = evaluate(session, appointment, now)
    reason = ""
    if appointment.status not in (S.SCHEDULED, S.TENTATIVE):
        reason = f"This appointment is {STATUS_LABELS[appointment.status.value].lower()}."
    elif appointment.start_at is None or appointment.start_at <= now:
        reason = "This appointment has started or passed."
    elif change := _open_changes(session, patient.id).get(appointment.id):
        reason = (
            f"{PENDING_CHANGE[change.kind]}."
            if change.status == ChangeStatus.OPEN
            else "The practice has proposed a new time: please accept or decline it."
        )
    elif by_phone := _by_phone_only(appointment, ev):
        reason = by_phone
    money = money_format(appointment.clinic).money
    fee = ev.fee_cents if appointment.status == S.SCHEDULED else 0  # as cancelling assesses it
    plan = prepay.settlement(session, appointment, keep_cents=fee)
    # prepaid points come back before the policy deducts its own (prepay.settle_on_cancel)
    # of those, a record merged since passes on only what one balance would have had
    after = max(0, patient.points_balance + plan.points_reaching - ev.points)
    return ChangePreview(
        appointment.id,
        not reason,
        reason,
        ev.inside_window,
        ev.window_hours,
        ev.fee_text,  # "£25.00", or "50% of the visit's price (£40.00 for this visit)"
        ev.points,
        after,
        bool(ev.points) and after <= 0,
        _prepayment_text(plan, fee, money),
        ev.online_allowed,
        max(0, ev.max_reschedules - appointment.reschedule_count),
        ev.policy_text,
        local_today(appointment.clinic.timezone, now),
        appointment.clinic.locale,
        terms_of(appointment, ev),
        clinic_time(appointment.clinic, appointment.start_at) if appointment.start_at else "",
    )


def _prepayment_text(plan: prepay.Settlement, fee_cents: int, money) -> str:
    """What cancelling does to a prepayment, from the same split the cancellation makes: a fee
    is kept only from money (card, cash); points always go back as points."""
    said = []
    if plan.kept_cents:
        said.append(
            f"Of what you paid by card or cash, {money(plan.kept_cents)} is kept for the "
            "late-cancellation fee"
            + (f"; {money(plan.refund_cents)} is refunded." if plan.refund_cents else ".")
        )
    elif plan.refund_cents:
        said.append(f"What you paid by card or cash ({money(plan.refund_cents)}) is refunded.")
    # points prepaid on a record merged since: what reaches their one balance, in their words
    partly = [f.for_patient for f in plan.merged if f.not_carried]
    whole = plan.points_back - sum(f.given for f in plan.merged if f.not_carried)
    if whole:
        said.append(f"The {whole} points you paid with go back to your balance.")
    said += partly
    owed = fee_cents - plan.kept_cents
    if said and plan.points_back and owed > 0:
        rest = f"the {money(owed)} fee"
        if plan.kept_cents:
            rest = f"the remaining {money(owed)} of the fee"
        said.append(
            f"Points do not pay the late-cancellation fee: {rest} is still owed to the practice."
        )
    return " ".join(said)


def ask_change(
    session: Session,
    patient_id: int,
    appointment_id: int,
    *,
    kind: str,
    requested_day: date | None = None,
    time_of_day: str | None = None,
    reason: str = "",
    shown: str | None = None,
) -> str:
    """Ask to cancel or reschedule (core.requests.changes decides, as for the emailed link);
    `shown`: the terms the page showed (ChangePreview.terms), refused if they changed since."""
    patient = portal_patient(session, patient_id)
    preview = change_preview(session, patient_id, appointment_id)
    if not preview.changeable:
        raise ValidationError(preview.reason_not + " Please contact the practice.")
    check_terms(shown, preview.terms, preview.when)
    if kind not in {k.value for k in ChangeKind}:
        raise ValidationError("Please choose whether to cancel or to move the appointment.")
    kind = ChangeKind(kind)
    if kind == ChangeKind.RESCHEDULE and requested_day is None:
        raise ValidationError("Please choose the day you would prefer.")
    request = changes.request_change(
        session,
        patient_actor(patient.first_name, via="portal"),
        appointment_id,
        kind=kind,
        requested_day=requested_day if kind == ChangeKind.RESCHEDULE else None,
        time_of_day=TimeOfDay(time_of_day) if time_of_day else None,
        reason=(reason or "").strip()[:1000],
    )
    return request_answer(patient, "cancelled" if request.status.value == "approved" else None)


def withdraw_request(session: Session, patient_id: int, appointment_id: int) -> str:
    """Withdraw the patient's own request still waiting for the practice."""
    patient = portal_patient(session, patient_id)
    appointment = own_appointment(session, patient_id, appointment_id)
    if appointment.status != S.REQUESTED:
        raise ValidationError(
            "Only a request still waiting for the practice can be withdrawn; for a booked "
            "appointment use Cancel or reschedule."
        )
    actor = patient_actor(patient.first_name, via="portal")
    decisions.withdraw_request(session, actor, appointment.id)
    return "Your request has been withdrawn."


def answer_proposal(session: Session, patient_id: int, appointment_id: int, *, accept: bool):
    patient = portal_patient(session, patient_id)
    appointment = own_appointment(session, patient_id, appointment_id)
    if appointment.status != S.TENTATIVE:
        raise ValidationError("There is no proposed time waiting for your answer here.")
    decisions.respond_to_proposal(
        session, patient_actor(patient.first_name, via="portal"), appointment.id, accept=accept
    )
    return "Thank you: your appointment is confirmed." if accept else "Thank you for telling us."


# ---------------------------------------------------------------- surveys


def _survey_token(session: Session, patient_id: int, appointment_id: int) -> str:
    appointment = own_appointment(session, patient_id, appointment_id)
    if appointment.status != S.COMPLETED:
        raise ValidationError("A survey opens once the visit is completed.")
    if appointment.feedback_status == FeedbackStatus.COLLECTED:
        raise ValidationError(surveys.ANSWERED)
    request = session.scalar(
        select(FeedbackRequest)
        .where(
            FeedbackRequest.appointment_id == appointment.id,
            FeedbackRequest.answered_at.is_(None),
        )
        .order_by(FeedbackRequest.id.desc())
        .limit(1)
    )
    if request is None:
        request = FeedbackRequest(
            appointment_id=appointment.id,
            patient_id=patient_id,
            sent_on=to_local(utcnow(), appointment.clinic.timezone).date(),
        )
        session.add(request)
        session.flush()
    return tokens.issue(session, surveys.PURPOSE, request.id, timedelta(hours=2)).raw


def survey_form(session: Session, patient_id: int, appointment_id: int) -> surveys.SurveyForm:
    appointment = own_appointment(session, patient_id, appointment_id)
    if appointment.status != S.COMPLETED:
        raise ValidationError("There is no survey waiting for this visit.")
    if surveys.answered(session, appointment):  # through the emailed link, say, meanwhile
        raise ValidationError(surveys.ANSWERED)
    return surveys.SurveyForm(
        appointment.clinic.name,
        clinic_time(appointment.clinic, appointment.start_at),
        appointment.provider.name if appointment.provider else "",
        surveys.survey_settings(session).questions,
    )


def answer_survey(
    session: Session, patient_id: int, appointment_id: int, answers: surveys.SurveyAnswers
) -> str:
    """The same survey as the emailed link (and the same points earned)."""
    portal_patient(session, patient_id)
    # read under the patient's lock: another change of the balance cannot fall in between
    before = ledger_balance.locked(session, patient_id).points_balance
    surveys.submit_survey(session, _survey_token(session, patient_id, appointment_id), answers)
    earned = session.get(Patient, patient_id).points_balance - before
    thanks = "Thank you for your feedback!"
    return f"{thanks} {earned} points were added to your balance." if earned else thanks


# ---------------------------------------------------------------- forms after booking


def open_form(
    session: Session, patient_id: int, form_id: int, *, client_address: str = ""
) -> after_booking.FormView:
    """One of the patient's own forms, opened (and audited) as its emailed link would be."""
    portal_patient(session, patient_id)
    return after_booking.open_patient_form(
        session, patient_id, form_id, client_address=client_address
    )


def answer_form(
    session: Session, patient_id: int, form_id: int, answer: after_booking.Answer
) -> str:
    """Answer the questionnaire, sign the consent or mark the instructions read: the link's
    rules and record; the form's emailed link then works no more."""
    portal_patient(session, patient_id)
    return after_booking.submit_patient_form(session, patient_id, form_id, answer)


# ---------------------------------------------------------------- request and pay


@dataclass(frozen=True)
class RequestForm:
    clinics: list[tuple[int, str]]
    services: list[tuple[int, str]]
    clinic_id: int | None  # prefilled: the clinic of the latest appointment
    service_id: int | None  # prefilled: the latest service
    first_day: date  # today in the prefilled clinic
    locked: bool
    packages: list[tuple[int, str]] = field(default_factory=list)  # after the services
    package_id: int | None = None  # prefilled: the latest package, if it was one
    locale: str = DEFAULT_LOCALE  # the prefilled clinic's, for the day pickers


def open_clinic(session: Session, clinic_id: int | None) -> Clinic:
    """The clinic a portal request or waitlist entry is for, refused once it is closed (a
    deactivated clinic keeps its past visits but takes no new ones), as the forms list it."""
    clinic = session.get(Clinic, clinic_id) if clinic_id is not None else None
    if clinic is None or not clinic.active:
        raise ValidationError("Please choose one of the clinics listed.")
    return clinic


def request_form(session: Session, patient_id: int) -> RequestForm:
    """What the portal's request and waitlist forms offer: the open clinics, the active
    services and the packages offered."""
    patient = portal_patient(session, patient_id)
    last = _latest_booking(session, patient.id)
    clinics = [
        tuple(r)
        for r in session.execute(
            select(Clinic.id, Clinic.name).where(Clinic.active.is_(True)).order_by(Clinic.name)
        )
    ]
    services = _online_services(session)
    open_ids = {i for i, _ in clinics}
    clinic_id = last.clinic_id if last and last.clinic_id in open_ids else None
    clinic_id = clinic_id if clinic_id is not None else (clinics[0][0] if clinics else None)
    clinic = session.get(Clinic, clinic_id) if clinic_id is not None else None
    return RequestForm(
        clinics,
        services,
        clinic_id,
        last.service_id if last else None,
        local_today(clinic.timezone) if clinic else utcnow().date(),
        online_booking_blocked(patient),
        [(p.id, p.label) for p in offered_packages(session, online_only=True)],
        last.package_id if last else None,
        clinic.locale if clinic else DEFAULT_LOCALE,
    )


def _online_services(session: Session) -> list[tuple[int, str]]:
    """The services a patient may ask for online (the Services page's 'Patients may request
    it online'), as the signed booking link offers them."""
    query = select(Service.id, Service.name).where(
        Service.active.is_(True), Service.online_allowed.is_(True)
    )
    return [tuple(r) for r in session.execute(query.order_by(Service.name))]


def asked_online(session: Session, service_id: int | None, package_id: int | None) -> None:
    """Refuse a service or package the practice books itself (one the forms do not list)."""
    if package_id is not None:
        offered = {p.id for p in offered_packages(session, online_only=True)}
        if package_id not in offered:
            raise ValidationError(ASK_BY_PHONE)
        return
    online = select(Service.id).where(
        Service.id == service_id, Service.active.is_(True), Service.online_allowed.is_(True)
    )
    if service_id is None or session.scalar(online) is None:
        raise ValidationError(ASK_BY_PHONE)


def request_appointment(
    session: Session,
    patient_id: int,
    *,
    clinic_id: int,
    service_id: int | None = None,
    package_id: int | None = None,
    requested_day: date,
    time_of_day: str,
    notes: str = "",
    now: datetime | None = None,
) -> str:
    """Ask for a service or a package (booked as one) on a day and time of day, from today
    in the chosen clinic onwards."""
    patient = portal_patient(session, patient_id)
    if online_booking_blocked(patient):
        raise ValidationError(locked_text(session, patient))
    if requested_day is None:  # a past day is refused by decisions, in the clinic's zone
        raise ValidationError("Please choose a day from today onwards.")
    try:  # none chosen: the form chooses none for the patient
        moment = TimeOfDay(time_of_day)
    except ValueError:
        raise ValidationError("Please choose a time of day.") from None
    open_clinic(session, clinic_id)
    asked_online(session, service_id, package_id)
    decisions.request_appointment(
        session,
        patient_actor(patient.first_name, via="portal"),
        patient_id=patient.id,
        clinic_id=clinic_id,
        service_id=service_id,
        package_id=package_id,
        requested_day=requested_day,
        time_of_day=moment,
        notes=(notes or "").strip()[:2000],
        source=Source.ONLINE,
        now=now,
    )
    return "Thank you: your request has been received. The practice will confirm a time."


@dataclass(frozen=True)
class PayView:
    appointment_id: int
    outstanding_cents: int
    outstanding: str
    deposit: bool
    balance: int
    point_value_cents: int  # minor units of the clinic's currency
    point_value: str
    max_points: int
    card_online: bool
    payments: list[prepay.PaymentRow]
    suggested_points: int = 0  # the form's default: the most that keeps a point in the balance
    balance_text: str = ""  # the balance in the clinic's locale (1.250 in de-DE)


def pay_view(
    session: Session, patient_id: int, appointment_id: int, *, card_online: bool
) -> PayView:
    patient = portal_patient(session, patient_id)
    appointment = own_appointment(session, patient_id, appointment_id)
    rules = get_settings(session)
    money = money_format(appointment.clinic).money
    owed = prepay.due(session, appointment, rules)
    value = rules.point_value_cents
    most = prepay.usable_points(patient.points_balance, owed.outstanding_cents, rules)
    return PayView(
        appointment.id,
        owed.outstanding_cents,
        money(owed.outstanding_cents),
        owed.mode == "deposit",
        patient.points_balance,
        value,
        money(value),
        most,
        card_online,
        prepay.patient_payments(session, patient_id, appointment.id),
        min(most, max(0, patient.points_balance - 1)),  # a zero balance pauses online requests
        format_number(patient.points_balance, 0, appointment.clinic.locale or DEFAULT_LOCALE),
    )


def pay(
    session: Session,
    patient_id: int,
    appointment_id: int,
    *,
    points: int,
    card: bool,
    provider: PaymentProvider,
    return_url: str,
) -> prepay.PayResult:
    portal_patient(session, patient_id)
    own_appointment(session, patient_id, appointment_id)
    return prepay.prepay(
        session,
        patient_id,
        appointment_id,
        points=points,
        card=card,
        provider=provider,
        return_url=return_url,
    )
