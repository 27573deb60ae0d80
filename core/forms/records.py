"""The staff's view of each appointment's forms (state, when sent, answered or signed), the
answers opened by staff (audited), and the forms in a patient's export."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import NotFound
from core.kernel.money import clinic_time, format_day
from db.models import Appointment, AuditEvent, Clinic, DocumentKind, FormRequest

KIND_WORDS = {
    DocumentKind.QUESTIONNAIRE: "Questionnaire",
    DocumentKind.CONSENT: "Consent",
    DocumentKind.INSTRUCTIONS: "Instructions",
}
FORM_DONE_WORDS = {
    DocumentKind.QUESTIONNAIRE: "answered",
    DocumentKind.CONSENT: "signed",
    DocumentKind.INSTRUCTIONS: "read",
}


@dataclass(frozen=True)
class FormRow:
    id: int
    kind: str
    title: str
    version: int
    state: str  # outstanding, answered, signed, read
    sent: str
    times_sent: int
    completed: str
    signed: str  # "Name · date · address" for a consent
    not_sent: str = ""  # why the message never went out ("no consent to email; …"), or ""


def form_state(form: FormRequest) -> str:
    if form.completed_at is None:
        return "outstanding"
    return FORM_DONE_WORDS[form.kind]


def forms_of(session: Session, actor: Actor, appointment_id: int) -> list[FormRow]:
    ensure(actor, Permission.APPOINTMENTS_READ)
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound(f"There is no appointment #{appointment_id}.")
    clinic = appointment.clinic
    rows = session.scalars(
        select(FormRequest)
        .where(FormRequest.appointment_id == appointment_id)
        .order_by(FormRequest.id)
    )
    unsent = _unsent(session, appointment_id)
    return [
        FormRow(
            f.id,
            KIND_WORDS[f.kind],
            f.document.title,
            f.document.version,
            form_state(f),
            clinic_time(clinic, f.sent_at),
            f.times_sent,
            clinic_time(clinic, f.completed_at),
            f"{f.signed_name} · {_signed_on(f, clinic)} · {f.client_address or 'address unknown'}"
            if f.signed_name
            else "",
            unsent.get(f.document_id, "") if f.times_sent == 1 else "",
        )
        for f in rows
    ]


def _unsent(session: Session, appointment_id: int) -> dict[int, str]:
    """Documents whose first sending reached no channel (no address, no consent), with why,
    from the sending's audit event. A resend is refused unless a channel is left, so a form
    sent again did go out."""
    found: dict[int, str] = {}
    for details in session.scalars(
        select(AuditEvent.details).where(
            AuditEvent.entity == "appointment",
            AuditEvent.entity_id == appointment_id,
            AuditEvent.action == "forms_sent",
        )
    ):
        if details and not details.get("channels"):
            why = "; ".join(details.get("skipped") or []) or "no channel"
            found |= {int(d): why for d in details.get("documents") or []}
    return found


def form_summaries(session: Session, actor: Actor, appointment_ids: list[int]) -> dict[int, str]:
    """'2 outstanding · 1 signed' per appointment (Today's column)."""
    ensure(actor, Permission.APPOINTMENTS_READ)
    if not appointment_ids:
        return {}
    counts: dict[int, dict[str, int]] = {}
    for form in session.scalars(
        select(FormRequest).where(FormRequest.appointment_id.in_(appointment_ids))
    ):
        state = form_state(form)
        counts.setdefault(form.appointment_id, {}).setdefault(state, 0)
        counts[form.appointment_id][state] += 1
    return {
        ident: " · ".join(f"{n} {state}" for state, n in sorted(by_state.items()))
        for ident, by_state in counts.items()
    }


def _signed_on(form: FormRequest, clinic: Clinic) -> str:
    """The day the patient wrote beside their signature, in the clinic's locale."""
    return format_day(form.signed_on, clinic.locale, weekday=False)


@dataclass(frozen=True)
class FormAnswers:
    title: str
    kind: str
    version: int
    body: str
    answers: list[tuple[str, str]]  # (question, answer)
    signed: str


def read_answers(session: Session, actor: Actor, form_id: int) -> FormAnswers:
    """A patient's answers or signature; reading them is audited."""
    ensure(actor, Permission.PATIENTS_READ)
    form = session.get(FormRequest, form_id)
    if form is None:
        raise NotFound(f"There is no form #{form_id}.")
    document = form.document
    labels = {str(q.get("key")): str(q.get("label") or q.get("key")) for q in document.questions}
    answers = [(labels.get(k, k), _answer_text(v)) for k, v in (form.answers or {}).items()]
    audit.record(
        session,
        actor,
        "form_answers_viewed",
        "appointment",
        form.appointment_id,
        patient_id=form.patient_id,
        details={"form_id": form.id},
    )
    clinic = session.get(Appointment, form.appointment_id).clinic
    signed = (
        f"Signed by {form.signed_name} on {_signed_on(form, clinic)} at "
        f"{clinic_time(clinic, form.completed_at, weekday=False, zone=True)} from "
        f"{form.client_address or 'an unknown address'}"
        if form.signed_name
        else ""
    )
    return FormAnswers(
        document.title, KIND_WORDS[form.kind], document.version, document.body, answers, signed
    )


def _answer_text(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def patient_forms_export(session: Session, patient_id: int) -> list[dict[str, Any]]:
    """Every form of one patient with its answers, for the patient's data export (the caller
    checks DATA_EXPORT and records the export)."""
    rows = []
    for form in session.scalars(
        select(FormRequest).where(FormRequest.patient_id == patient_id).order_by(FormRequest.id)
    ):
        rows.append(
            {
                "appointment_id": form.appointment_id,
                "kind": form.kind.value,
                "title": form.document.title,
                "version": form.document.version,
                "sent_at": form.sent_at.isoformat(),
                "completed_at": form.completed_at.isoformat() if form.completed_at else None,
                "answers": form.answers or {},
                "signed_name": form.signed_name,
                "signed_on": form.signed_on.isoformat() if form.signed_on else None,
                "client_address": form.client_address,
            }
        )
    return rows
