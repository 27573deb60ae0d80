"""Sending the service's documents after booking, the patient's single-use form link, and the
staff's view of each appointment's forms.

Sending is a job (core.jobs): every scheduled, future appointment whose services have active
documents that were not sent yet gets one message listing one link per document — so booking,
approval and an accepted proposal all lead here without each transition knowing about forms.
One FormRequest per (appointment, document version) makes that once-only across instances.

A text message with two or more forms carries one link instead, to the visit's forms (token
purpose LIST, its subject the appointment): a link for each went past three UCS-2 parts
(core.messaging.sms_parts). That page lists the visit's forms with their state and opens each
one still to do through the same checks and code as its own link (the visit still open, once
only, the opening audited); the email keeps a link for each form, as the portal has them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from core.forms.records import FORM_DONE_WORDS, KIND_WORDS, form_state
from core.kernel import audit, tokens
from core.kernel.authz import SYSTEM, Actor, Permission, ensure, patient_actor
from core.kernel.clock import to_local
from core.kernel.config import Settings
from core.kernel.errors import LinkInvalid, NotFound, ValidationError
from core.kernel.money import clinic_time, format_day
from core.kernel.text import clean, same_name
from core.messaging import clinic_events, delivery, notify
from core.scheduling.lifecycle import base_url as default_base_url
from core.scheduling.lifecycle import message_context
from db.engine import Database
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentService,
    AppointmentStatus,
    Channel,
    DocumentKind,
    FormRequest,
    LinkToken,
    Patient,
    ServiceDocument,
)
from db.types import utcnow

log = logging.getLogger("clinicdesk.forms")
BATCH = 200
LOOKBACK = timedelta(days=30)  # appointments booked longer ago than this are not sent forms
MIN_TTL = timedelta(days=2)
QUESTION_TYPES = ("text", "yes_no", "choice", "number")
ANSWER_MAX = 4000  # characters in one typed answer (the page's text box allows as many)
OPEN_FOR = delivery.FORMS_OPEN  # forms may be answered
FORMS_CLOSED = (
    "This appointment is no longer scheduled, so its forms are closed. Please contact the practice."
)
LIST = "visit_forms"  # the token purpose of a visit's forms behind one link (a text's)
LIST_LINE = "Your {count} forms: {link}"


# ---------------------------------------------------------------- sending


def _sent_already(appointment_id):
    """SQL: a version of the same service's document of the same kind went to this appointment.
    An edited document (a new active version) is sent to appointments booked from then on; one
    that had the earlier version keeps it, answered or not (its link still opens the text the
    patient was sent), and the patient is not sent the same form twice."""
    earlier = aliased(ServiceDocument)
    return (
        exists()
        .where(
            FormRequest.appointment_id == appointment_id,
            FormRequest.document_id == earlier.id,
            earlier.service_id == ServiceDocument.service_id,
            earlier.kind == ServiceDocument.kind,
        )
        .correlate_except(FormRequest, earlier)  # the appointment and document asked about
    )


def _documents_for(session: Session, appointment: Appointment) -> list[ServiceDocument]:
    service_ids = {s.service_id for s in appointment.services} | (
        {appointment.service_id} if appointment.service_id else set()
    )
    if not service_ids:
        return []
    return list(
        session.scalars(
            select(ServiceDocument)
            .where(
                ServiceDocument.service_id.in_(service_ids),
                ServiceDocument.active.is_(True),
                ~_sent_already(appointment.id),
            )
            .order_by(ServiceDocument.service_id, ServiceDocument.kind, ServiceDocument.id)
        )
    )


def _ttl(appointment: Appointment) -> timedelta:
    """How long a link sent now for this visit works: until a day after it (two at least)."""
    return max(appointment.start_at - utcnow() + timedelta(days=1), MIN_TTL)


def _link(session: Session, form: FormRequest, appointment: Appointment, base: str) -> str:
    issued = tokens.issue(session, "form", form.id, _ttl(appointment), single_use=True)
    if form.token_id:
        tokens.revoke(session, form.token_id)
    form.token_id = issued.row.id
    return tokens.link(base.rstrip("/"), "form", issued.raw)


def _list_link(session: Session, appointment: Appointment, base: str) -> str:
    """The link to the visit's forms: not single-use (each form is answered once, whichever
    way), expiring as the forms' own links do."""
    issued = tokens.issue(session, LIST, appointment.id, _ttl(appointment), single_use=False)
    return tokens.link(base.rstrip("/"), LIST, issued.raw)


def _listing(lines: list[tuple[str, str]]) -> str:
    return "\n".join(f"{title}: {link}" for title, link in lines)


def text_listing(lines: list[tuple[str, str]], list_link: Callable[[], str]) -> str:
    """A text message's {forms}: one form's title and link, or for two or more one line with
    the link to the visit's list of them (`list_link` issues it)."""
    if len(lines) < 2:
        return _listing(lines)
    return LIST_LINE.format(count=len(lines), link=list_link())


def _queue(
    session: Session, appointment: Appointment, lines: list[tuple[str, str]], base: str
) -> notify.Queued:
    """One message on every channel the patient has: the email with a link for each form, a
    text with text_listing's (its own rendering, the list's link issued only for a text)."""
    patient = appointment.patient
    context = message_context(appointment) | {
        "forms": _listing(lines),
        "forms_titles": ", ".join(t for t, _ in lines),
    }
    usable, skipped = notify.channels_for(patient)
    if len(lines) < 2 or Channel.SMS not in usable:
        return notify.queue_for_patient(
            session, patient, delivery.FORMS, context, appointment_id=appointment.id
        )
    texted = text_listing(lines, lambda: _list_link(session, appointment, base))
    rows = []
    for channel in usable:
        rows += notify.queue_for_patient(
            session,
            patient,
            delivery.FORMS,
            context | ({"forms": texted} if channel == Channel.SMS else {}),
            appointment_id=appointment.id,
            channels=[channel],
        ).notifications
    return notify.Queued(rows, skipped)


def send_forms(session: Session, appointment: Appointment, *, base_url: str) -> list[FormRequest]:
    """Send the documents of this appointment's services that were not sent yet."""
    if appointment.patient is None or appointment.start_at is None:
        return []
    created, lines = [], []
    for document in _documents_for(session, appointment):
        try:
            with session.begin_nested():
                form = FormRequest(
                    appointment_id=appointment.id,
                    document_id=document.id,
                    patient_id=appointment.patient_id,
                    kind=document.kind,
                )
                session.add(form)
                session.flush()
        except IntegrityError:
            continue  # sent already (or by another instance a moment ago)
        created.append(form)
        lines.append(
            (
                f"{KIND_WORDS[document.kind]}: {document.title}",
                _link(session, form, appointment, base_url),
            )
        )
    if created:
        queued = _queue(session, appointment, lines, base_url)
        audit.record(
            session,
            SYSTEM,
            "forms_sent",
            "appointment",
            appointment.id,
            patient_id=appointment.patient_id,
            details={
                "documents": [f.document_id for f in created],
                "channels": [n.channel.value for n in queued.notifications],
                "skipped": queued.skipped,
            },
        )
    return created


def due_for_forms(session: Session, *, now: datetime | None = None, limit: int = BATCH):
    now = now or utcnow()
    # this appointment's services (correlated by name: two levels down, SQLAlchemy's automatic
    # correlation would not reach the outer appointments and read every appointment's services)
    services = (
        select(AppointmentService.service_id)
        .where(AppointmentService.appointment_id == Appointment.id)
        .correlate(Appointment)
    )
    has_unsent = exists().where(
        or_(
            ServiceDocument.service_id == Appointment.service_id,
            ServiceDocument.service_id.in_(services),
        ),
        ServiceDocument.active.is_(True),
        ~_sent_already(Appointment.id),
    )
    query = (
        select(Appointment)
        .where(
            Appointment.status == AppointmentStatus.SCHEDULED,
            Appointment.kind == AppointmentKind.APPOINTMENT,
            Appointment.patient_id.is_not(None),
            Appointment.start_at > now,
            Appointment.booked_at > now - LOOKBACK,
            has_unsent,
        )
        .order_by(Appointment.start_at, Appointment.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def send_due_forms(session: Session, *, base_url: str, now: datetime | None = None) -> int:
    sent = 0
    for appointment in due_for_forms(session, now=now):
        sent += len(send_forms(session, appointment, base_url=base_url))
    return sent


def forms_job(database: Database, settings: Settings) -> None:
    with database.write() as session:
        sent = send_due_forms(session, base_url=settings.base_url)
    if sent:
        log.info("sent %d form(s) after booking", sent)


def resend(
    session: Session, actor: Actor, form_id: int, *, base_url: str | None = None
) -> notify.Queued:
    """A fresh single-use link (the old one stops working), sent again."""
    ensure(actor, Permission.APPOINTMENTS_BOOK)
    # locked and read afresh: an answer being stored right now is waited for, not resent
    form = session.get(FormRequest, form_id, with_for_update=True, populate_existing=True)
    if form is None:
        raise NotFound(f"There is no form #{form_id}.")
    if form.completed_at is not None and form.kind != DocumentKind.INSTRUCTIONS:
        raise ValidationError("This form was answered already; there is nothing to resend.")
    appointment = session.get(Appointment, form.appointment_id)
    if appointment.status != AppointmentStatus.SCHEDULED or appointment.start_at <= utcnow():
        raise ValidationError("Forms go only to scheduled appointments that have not started.")
    usable, skipped = notify.channels_for(appointment.patient)
    if not usable:  # nothing would go out, and the link the patient has would stop working
        raise ValidationError(
            f"The form cannot be sent to {appointment.patient.full_name}: {'; '.join(skipped)}. "
            "Update the patient's contact details or consent first; the link sent before "
            "still works."
        )
    base = base_url or default_base_url(session)
    link = _link(session, form, appointment, base)
    form.sent_at, form.times_sent = utcnow(), form.times_sent + 1
    queued = _queue(
        session, appointment, [(f"{KIND_WORDS[form.kind]}: {form.document.title}", link)], base
    )
    audit.record(
        session,
        actor,
        "form_resent",
        "appointment",
        appointment.id,
        patient_id=appointment.patient_id,
        details={"form_id": form.id, "times_sent": form.times_sent},
    )
    return queued


# ---------------------------------------------------------------- the patient's link


@dataclass(frozen=True)
class FormView:
    kind: str
    title: str
    body: str
    questions: list[dict[str, Any]]
    first_name: str
    full_name: str
    when: str
    clinic: str
    today: date  # clinic-local, for the signature's date
    locale: str  # the clinic's, for the signature's date picker


def _live_form(session: Session, raw: str | None) -> tuple[Any, FormRequest]:
    """The link's form, while its appointment is still open (scheduled or checked in): a
    cancelled, declined or missed appointment's forms are closed, as in the portal.

    A dead link of a real form says why when the patient can act on it: the form was answered
    already (a second tab, a double press, the link opened again the next day) or a newer link
    was sent for it. A link that ran out while its appointment was moved later keeps working
    until a day after the visit's new time, as it would have if it had been sent for that time.
    Anything else is LinkInvalid, which reveals nothing."""
    try:
        token = tokens.verify(session, raw, "form")
    except LinkInvalid:
        token = _outlived(session, raw)
    form = session.get(FormRequest, token.subject_id)
    if form is None or form.token_id != token.id:
        raise LinkInvalid()
    _ensure_open(session.get(Appointment, form.appointment_id))
    return token, form


def _outlived(session: Session, raw: str | None) -> LinkToken:
    """The token of a form link that only ran out of time before its moved appointment, or
    the sentence for a link that cannot work any more (answered, replaced), or LinkInvalid."""
    row = tokens.find(session, raw, "form")
    form = session.get(FormRequest, row.subject_id) if row is not None else None
    if form is None:
        raise LinkInvalid()
    if form.completed_at is not None:
        raise ValidationError(already_done(form.kind))
    if form.token_id != row.id:
        raise ValidationError(REPLACED)
    if _kept_for_the_moved_visit(row, session.get(Appointment, form.appointment_id)):
        return row
    raise LinkInvalid()


def _kept_for_the_moved_visit(row: LinkToken, appointment: Appointment | None) -> bool:
    """Whether a link that ran out of time (neither used nor revoked) still works: its visit
    was moved later, and it works until a day after the new time."""
    return (
        appointment is not None
        and row.used_at is None
        and row.revoked_at is None
        and appointment.start_at is not None
        and utcnow() < appointment.start_at + timedelta(days=1)
    )


def _ensure_open(appointment: Appointment) -> None:
    if appointment.status not in OPEN_FOR:
        raise ValidationError(FORMS_CLOSED)


def open_form(session: Session, raw: str | None, *, client_address: str = "") -> FormView:
    """What the patient sees; the opening is audited (so the caller commits)."""
    _, form = _live_form(session, raw)
    return _open(session, form, client_address, via="link")


def _open(session: Session, form: FormRequest, client_address: str, *, via: str) -> FormView:
    appointment = session.get(Appointment, form.appointment_id)
    patient = session.get(Patient, form.patient_id)
    document = form.document
    audit.record(
        session,
        patient_actor(patient.first_name),
        "form_opened",
        "appointment",
        appointment.id,
        patient_id=patient.id,
        details={"form_id": form.id, "client_address": client_address[:64], "via": via},
    )
    clinic = appointment.clinic
    return FormView(
        document.kind.value,
        document.title,
        document.body,
        [q for q in (document.questions or []) if isinstance(q, dict) and q.get("key")],
        patient.first_name,
        patient.full_name,
        clinic_time(clinic, appointment.start_at, zone=True),
        clinic.name,
        to_local(utcnow(), clinic.timezone).date(),
        clinic.locale,
    )


def _clean_answers(questions: list[dict[str, Any]], answers: dict[str, Any]) -> dict[str, Any]:
    """The answers to keep, each as the patient meant it, or a ValidationError naming the
    question to fix: a required one left empty (or only spaces), a typed answer longer than
    ANSWER_MAX (refused, never cut), a number that is none (NaN, infinity), a choice not
    offered. Typed text loses only control characters and direction overrides (the one rule
    of core.kernel.text); emoji, right-to-left script, Markdown and HTML stay as typed."""
    kept: dict[str, Any] = {}
    for q in questions:
        key, label = str(q["key"]), str(q.get("label") or q["key"])
        value = answers.get(key)
        if isinstance(value, str):
            typed = clean(
                value.strip(), field=f"answer to “{label}”", limit=ANSWER_MAX, multiline=True
            )
            value = (typed or "").strip()
        empty = value is None or value == ""
        if empty and q.get("required"):
            raise ValidationError(f"Please answer: {label}")
        if empty:
            continue
        kind = q.get("type", "text")
        if kind == "number":
            try:
                value = None if isinstance(value, bool) else float(value)
            except (TypeError, ValueError):
                value = None
            if value is None or not math.isfinite(value):
                raise ValidationError(f"Please give a number for: {label}")
        elif kind == "yes_no" and value not in ("yes", "no", True, False):
            raise ValidationError(f"Please answer yes or no: {label}")
        elif kind == "choice" and value not in (q.get("options") or []):
            raise ValidationError(f"Please choose one of the options for: {label}")
        kept[key] = value
    return kept


def submit_form(
    session: Session,
    raw: str | None,
    *,
    answers: dict[str, Any] | None = None,
    signed_name: str = "",
    signed_on: date | None = None,
    client_address: str = "",
) -> str:
    """Answer the questionnaire, sign the consent (typed full name and today's date), or mark
    the instructions read. The link then works no more."""
    token, form = _live_form(session, raw)
    answer = Answer(answers, signed_name, signed_on, client_address)

    def consume() -> None:
        try:
            tokens.consume(session, token)
        except LinkInvalid:  # the same link sent a moment ago (a double press, another tab)
            raise ValidationError(already_done(form.kind)) from None

    return _complete(session, form, answer, via="link", then=consume)


@dataclass(frozen=True)
class Answer:
    """What the patient sent: the questionnaire's answers, or the consent's typed name and
    date; the client address is recorded with it."""

    answers: dict[str, Any] | None = None
    signed_name: str = ""
    signed_on: date | None = None
    client_address: str = ""


def _complete(
    session: Session,
    form: FormRequest,
    answer: Answer,
    *,
    via: str,
    then: Callable[[], None] | None = None,
) -> str:
    """Validate and record one answer (the link's and the portal's one rule set): once only,
    audited, and the clinic told. `then` runs once the answer is valid (the link's token is
    consumed there, so a refused answer leaves the link working)."""
    appointment = session.get(Appointment, form.appointment_id)
    patient = session.get(Patient, form.patient_id)
    document = form.document
    now = utcnow()
    details: dict[str, Any] = {"form_id": form.id, "kind": form.kind.value, "via": via}
    if form.kind == DocumentKind.QUESTIONNAIRE:
        kept = _clean_answers(document.questions or [], answer.answers or {})
        done = "Thank you: your answers have been sent to the practice."
    elif form.kind == DocumentKind.CONSENT:
        typed = " ".join((answer.signed_name or "").split())
        # compared as a person compares names (case, accents, punctuation and spacing aside):
        # a phone's curly apostrophe in O’Brien, or a name stored decomposed by an import,
        # must not stop a patient from signing; the name is recorded as typed
        if not typed or not same_name(typed, patient.full_name):
            raise ValidationError(
                "To sign, type your full name as the practice has it: "
                f"{patient.first_name} and your last name."
            )
        clinic = appointment.clinic
        today = to_local(now, clinic.timezone).date()
        if answer.signed_on != today:
            shown = format_day(today, clinic.locale, weekday=False)  # unambiguous in any locale
            raise ValidationError(f"To sign, give today's date ({shown}).")
        details["signed_name"] = typed
        done = "Thank you: your consent is signed and recorded."
    else:
        done = "Thank you for reading the instructions."
    # Claimed in one statement: of two answers racing (link and portal), one wins. The form's
    # row is locked before the link's token (consumed by `then`, revoked below) on both paths:
    # the link's consuming its token first deadlocked with the portal's answer on PostgreSQL.
    claimed = session.execute(
        update(FormRequest)
        .where(FormRequest.id == form.id, FormRequest.completed_at.is_(None))
        .values(completed_at=now)
    )
    if claimed.rowcount != 1:
        raise ValidationError(already_done(form.kind))
    if then is not None:
        then()
    session.expire(form, ["completed_at"])
    if form.kind == DocumentKind.QUESTIONNAIRE:
        form.answers = kept
    elif form.kind == DocumentKind.CONSENT:
        form.signed_name, form.signed_on = details["signed_name"], answer.signed_on
    form.client_address = (answer.client_address or "")[:64] or None
    details["client_address"] = form.client_address
    if form.token_id:
        tokens.revoke(session, form.token_id)  # the emailed link stops working
    audit.record(
        session,
        patient_actor(patient.first_name),
        "form_completed",
        "appointment",
        appointment.id,
        patient_id=patient.id,
        details=details,
    )
    clinic_events.tell_clinic(
        session,
        appointment.clinic_id,
        "form_completed",
        f"{patient.full_name}: {KIND_WORDS[form.kind].lower()} “{document.title}” "
        f"{FORM_DONE_WORDS[form.kind]}.",
        appointment_id=appointment.id,
        link=clinic_events.item_link(default_base_url(session), appointment.id),
    )
    return done


DONE_ALREADY = {
    DocumentKind.QUESTIONNAIRE: "This questionnaire was answered already. Thank you!",
    DocumentKind.CONSENT: "This consent was signed already. Thank you!",
    DocumentKind.INSTRUCTIONS: "These instructions were marked read already. Thank you!",
}
REPLACED = (
    "The practice sent a newer link for this form: please use the one in their latest message."
)


def already_done(kind: DocumentKind) -> str:
    """The sentence for a form answered, signed or read already (link or portal)."""
    return DONE_ALREADY[kind]


# ---------------------------------------------------------------- a visit's forms behind one link

NOT_LISTED = "There is no such form for this appointment."
VIA_LIST = "visit link"  # the audit's `via` of a form opened or answered from the list


@dataclass(frozen=True)
class VisitForms:
    """What the link to a visit's forms shows: the visit, and each form with its state."""

    first_name: str
    when: str  # the visit's time now (moved, if it was)
    clinic: str
    forms: list[PatientForm]


def _visit_of(session: Session, raw: str | None) -> Appointment:
    """The visit of a LIST link while its forms are open, the link live (or only out of time
    before its moved visit, as a form's link): FORMS_CLOSED once it is cancelled, declined or
    missed, LinkInvalid for anything else."""
    try:
        token = tokens.verify(session, raw, LIST)
    except LinkInvalid:
        token = tokens.find(session, raw, LIST)
        if token is None or not _kept_for_the_moved_visit(
            token, session.get(Appointment, token.subject_id)
        ):
            raise
    appointment = session.get(Appointment, token.subject_id)
    if appointment is None or appointment.patient_id is None:
        raise LinkInvalid()
    _ensure_open(appointment)
    return appointment


def visit_forms(session: Session, raw: str | None) -> VisitForms:
    """The visit's forms, each with its state (the portal's rows)."""
    appointment = _visit_of(session, raw)
    patient = session.get(Patient, appointment.patient_id)
    clinic = appointment.clinic
    return VisitForms(
        patient.first_name,
        clinic_time(clinic, appointment.start_at, zone=True),
        clinic.name,
        patient_forms(session, patient.id, [appointment.id]).get(appointment.id, []),
    )


def _listed_form(session: Session, raw: str | None, form_id: int) -> FormRequest:
    """A form of the link's visit, sent to its patient, still to do: what the form's own link
    would open. Another visit's form reads like an unknown one; a done one says so."""
    appointment = _visit_of(session, raw)
    form = session.get(FormRequest, form_id) if isinstance(form_id, int) else None
    if (
        form is None
        or form.appointment_id != appointment.id
        or form.patient_id != appointment.patient_id
    ):
        raise NotFound(NOT_LISTED)
    if form.completed_at is not None:
        raise ValidationError(already_done(form.kind))
    return form


def open_listed_form(
    session: Session, raw: str | None, form_id: int, *, client_address: str = ""
) -> FormView:
    """A form opened from the visit's list, audited as its own link's opening (the caller
    commits)."""
    return _open(session, _listed_form(session, raw, form_id), client_address, via=VIA_LIST)


def submit_listed_form(session: Session, raw: str | None, form_id: int, answer: Answer) -> str:
    """The list's answer, under the link's rules: once, and the form's own link then works no
    more (the list's keeps working for the other forms)."""
    return _complete(session, _listed_form(session, raw, form_id), answer, via=VIA_LIST)


# ---------------------------------------------------------------- the patient's portal

NO_SUCH_FORM = "There is no such form in your portal."


@dataclass(frozen=True)
class PatientForm:
    id: int
    appointment_id: int
    kind: str  # questionnaire, consent, instructions
    kind_word: str  # Questionnaire, Consent, Instructions
    title: str
    state: str  # outstanding, answered, signed, read


def _own_form(session: Session, patient_id: int, form_id: int) -> FormRequest:
    """The patient's own form, or NotFound: another patient's id reads like an unknown one."""
    form = session.get(FormRequest, form_id) if isinstance(form_id, int) else None
    if form is None or form.patient_id != patient_id:
        raise NotFound(NO_SUCH_FORM)
    appointment = session.get(Appointment, form.appointment_id)
    if appointment.patient_id != patient_id:
        raise NotFound(NO_SUCH_FORM)
    _ensure_open(appointment)
    return form


def patient_forms(
    session: Session, patient_id: int, appointment_ids: list[int]
) -> dict[int, list[PatientForm]]:
    """The forms of these appointments of this patient, by appointment (the portal's cards)."""
    if not appointment_ids:
        return {}
    rows: dict[int, list[PatientForm]] = {}
    for form in session.scalars(
        select(FormRequest)
        .where(
            FormRequest.patient_id == patient_id,
            FormRequest.appointment_id.in_(appointment_ids),
        )
        .order_by(FormRequest.appointment_id, FormRequest.id)
    ):
        rows.setdefault(form.appointment_id, []).append(
            PatientForm(
                form.id,
                form.appointment_id,
                form.kind.value,
                KIND_WORDS[form.kind],
                form.document.title,
                form_state(form),
            )
        )
    return rows


def open_patient_form(
    session: Session, patient_id: int, form_id: int, *, client_address: str = ""
) -> FormView:
    """A form opened from the portal, audited as the link's opening is. Instructions stay
    readable once read; an answered questionnaire or a signed consent is not reopened."""
    form = _own_form(session, patient_id, form_id)
    if form.completed_at is not None and form.kind != DocumentKind.INSTRUCTIONS:
        raise ValidationError(already_done(form.kind))
    return _open(session, form, client_address, via="portal")


def submit_patient_form(session: Session, patient_id: int, form_id: int, answer: Answer) -> str:
    """The portal's answer, under the link's rules; the emailed link then works no more."""
    form = _own_form(session, patient_id, form_id)
    if form.completed_at is not None:
        raise ValidationError(already_done(form.kind))
    return _complete(session, form, answer, via="portal")
