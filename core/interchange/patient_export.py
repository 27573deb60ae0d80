"""One patient's data as a JSON file (right of access): everything the practice holds about
them, readable without the database. The record (postal address and imported attributes
included) and the records merged into it; each appointment with its service, provider and clinic
by name, its clinic-local time, notes (each with who wrote it and when), cancellation, change
requests, reminder calls and no-show risk score; every form with its answers or signature; every
message sent or queued (the text included) and every text reply; payments, fees and the points
history; survey answers; waitlist entries and portal invitations. Times are UTC (ISO 8601) with
the clinic-local time beside them; amounts in minor units with the amount as written. Audited
like every export."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from core.analytics.cancellation_parts import booked_when
from core.forms.records import patient_forms_export
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import NotFound
from core.kernel.exports import record_export
from core.kernel.money import ClinicFormat, clinic_format
from core.messaging import attachments
from core.patients.invitations import channel_of
from core.patients.records import ADDRESS
from core.scheduling.notes import notes_of
from db.models import (
    Appointment,
    ChangeRequest,
    Clinic,
    LedgerEntry,
    Notification,
    Patient,
    Payment,
    PortalInvitation,
    Provider,
    RiskCall,
    RiskScore,
    Service,
    SmsReply,
    SurveyResponse,
    User,
    WaitlistEntry,
)

ABOUT = (
    "Everything the practice holds about this patient, exported on request. Times are UTC "
    "(ISO 8601); a 'local' beside one is the clinic's own clock. Amounts are in minor units "
    "(cents, pence) with the amount as written beside them."
)


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value else None


def export_patient(session: Session, actor: Actor, patient_id: int) -> bytes:
    ensure(actor, Permission.DATA_EXPORT)
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"There is no patient #{patient_id}.")
    practice = clinic_format(session)
    formats = {
        c.id: ClinicFormat(c.timezone, c.locale or practice.locale, c.currency or practice.currency)
        for c in session.scalars(select(Clinic))
    }
    clinics = {c.id: c.name for c in session.scalars(select(Clinic))}
    services = dict(session.execute(select(Service.id, Service.name)).all())
    providers = dict(session.execute(select(Provider.id, Provider.name)).all())
    staff = dict(session.execute(select(User.id, User.display_name)).all())
    visits = list(
        session.scalars(
            select(Appointment).where(Appointment.patient_id == patient_id).order_by(Appointment.id)
        )
    )
    visit_ids = [a.id for a in visits]
    clinic_of = {a.id: a.clinic_id for a in visits}

    def fmt(appointment_id: int | None) -> ClinicFormat:
        return formats.get(clinic_of.get(appointment_id), practice)

    def local(at: datetime | None, appointment_id: int | None = None) -> str | None:
        return fmt(appointment_id).moment(at, zone=True) if at else None

    def by_visit(model, *order) -> dict[int, list]:
        found: dict[int, list] = {}
        if visit_ids:
            for row in session.scalars(
                select(model).where(model.appointment_id.in_(visit_ids)).order_by(*order)
            ):
                found.setdefault(row.appointment_id, []).append(row)
        return found

    changes = by_visit(ChangeRequest, ChangeRequest.id)
    calls = by_visit(RiskCall, RiskCall.id)
    scores = by_visit(RiskScore, RiskScore.appointment_id)
    notes = notes_of(session, visits)
    appointments = [
        {
            "id": a.id,
            "status": a.status.value,
            "start_at": _iso(a.start_at),
            "end_at": _iso(a.end_at),
            "local": local(a.start_at, a.id),
            "requested_day": _iso(a.requested_day),
            "time_of_day": a.time_of_day.value if a.time_of_day else None,
            "service_id": a.service_id,
            "services": [services.get(s.service_id, "") for s in a.services]
            or ([services.get(a.service_id, "")] if a.service_id else []),
            "provider_id": a.provider_id,
            "provider": providers.get(a.provider_id),
            "clinic_id": a.clinic_id,
            "clinic": clinics.get(a.clinic_id),
            "mode": a.mode.value,
            "source": a.source.value,
            # None: imported without it (not the visit's start)
            "booked_at": _iso(booked_when(a.source, a.booked_at, a.start_at)),
            "booked_by": staff.get(a.created_by_user_id),
            "notes": a.notes,  # the latest; every note, newest first, in notes_written
            "notes_written": [
                {
                    "written_at": _iso(n.written_at),
                    "local": local(n.written_at, a.id),
                    "by": n.author,
                    "text": n.text,
                }
                for n in notes.get(a.id, [])
            ],
            "checked_in_at": _iso(a.checked_in_at),
            "completed_at": _iso(a.completed_at),
            "cancelled_at": _iso(a.cancelled_at),
            "cancelled_by": a.cancelled_by,
            "cancel_reason": a.cancel_reason,
            "late_cancellation": a.late_cancellation,
            "decline_reason": a.decline_reason,
            "change_requests": [
                {
                    "kind": c.kind.value,
                    "status": c.status.value,
                    "asked_at": _iso(c.created_at),
                    "from": local(c.original_start_at, a.id),
                    "to": local(c.requested_start_at, a.id) or _iso(c.requested_day),
                    "reason": c.reason,
                    "decided_at": _iso(c.decided_at),
                    "decided_by": staff.get(c.decided_by_user_id),
                    "decision_note": c.decision_note,
                }
                for c in changes.get(a.id, [])
            ],
            "reminder_calls": [
                {
                    "called_at": _iso(c.called_at),
                    "by": staff.get(c.called_by_user_id),
                    "outcome": c.outcome,
                    "note": c.note,
                }
                for c in calls.get(a.id, [])
            ],
            "no_show_risk": [
                {"probability": round(s.probability, 3), "scored_at": _iso(s.scored_at)}
                for s in scores.get(a.id, [])
            ],
        }
        for a in visits
    ]
    messages = [
        {
            "queued_at": _iso(n.created_at),
            "local": local(n.created_at, n.appointment_id),
            "appointment_id": n.appointment_id,
            "channel": n.channel.value,
            "to": n.to_address,
            "message": n.template,
            "subject": n.subject,
            "text": n.body,
            "attachment": attachments.names_of(n),
            "status": n.status.value,
            "sent_at": _iso(n.sent_at),
            "error": n.last_error,
        }
        for n in session.scalars(
            select(Notification)
            .where(Notification.patient_id == patient_id)
            .order_by(Notification.id)
            .options(selectinload(Notification.attachments))
        )
    ]
    text_replies = [
        {
            "received_at": _iso(r.received_at),
            "from": r.from_number,
            "text": r.body,
            "appointment_id": r.appointment_id,
            "outcome": r.outcome,
            "answer": r.answer,
            "note": r.note,
        }
        for r in session.scalars(
            select(SmsReply).where(SmsReply.patient_id == patient_id).order_by(SmsReply.id)
        )
    ]
    payments = [
        {
            "at": _iso(p.created_at),
            "paid_at": _iso(p.paid_at),
            "appointment_id": p.appointment_id,
            "kind": p.kind,
            "method": p.method,
            "status": p.status,
            "amount_cents": p.amount_cents,
            "currency": p.currency,
            "amount": ClinicFormat(locale=fmt(p.appointment_id).locale, currency=p.currency).money(
                p.amount_cents
            ),
            "points": p.points,
            "refund_of": p.refund_of_id,
            "note": p.note,
        }
        for p in session.scalars(
            select(Payment).where(Payment.patient_id == patient_id).order_by(Payment.id)
        )
    ]
    ledger = [
        {
            "at": _iso(e.created_at),
            "appointment_id": e.appointment_id,
            "kind": e.kind.value,
            "amount_cents": e.amount_cents,
            "amount": fmt(e.appointment_id).money(e.amount_cents) if e.amount_cents else None,
            "points": e.points,
            "waived_at": _iso(e.waived_at),
            "waive_reason": e.waive_reason,
        }
        for e in session.scalars(
            select(LedgerEntry).where(LedgerEntry.patient_id == patient_id).order_by(LedgerEntry.id)
        )
    ]
    surveys = (
        [
            {
                "submitted_at": _iso(r.submitted_at),
                "appointment_id": r.appointment_id,
                "nps": r.nps,
                "rating": r.rating,
                "answers": r.answers or {},
                "comment": r.comment,
            }
            for r in session.scalars(
                select(SurveyResponse)
                .where(SurveyResponse.appointment_id.in_(visit_ids))
                .order_by(SurveyResponse.id)
            )
        ]
        if visit_ids
        else []
    )
    waitlist = [
        {
            "added_at": _iso(w.created_at),
            "service": services.get(w.service_id),
            "clinic": clinics.get(w.clinic_id),
            "provider": providers.get(w.provider_id) if w.provider_id else "any",
            "earliest": _iso(w.earliest),
            "latest": _iso(w.latest),
            "note": w.note,
            "status": w.status.value,
        }
        for w in session.scalars(
            select(WaitlistEntry)
            .where(WaitlistEntry.patient_id == patient_id)
            .order_by(WaitlistEntry.id)
        )
    ]
    invitations = [
        {
            "sent_at": _iso(i.sent_at),
            "channel": channel_of(i.email).value,  # the address it went to says which
            "sent_to": i.email,
            "status": i.status.value,
            "enrolled_at": _iso(i.enrolled_at),
            "revoked_at": _iso(i.revoked_at),
            "revoked_reason": i.revoked_reason,
        }
        for i in session.scalars(
            select(PortalInvitation)
            .where(PortalInvitation.patient_id == patient_id)
            .order_by(PortalInvitation.id)
        )
    ]
    merged = [
        {**_person(p), "merged_at": _iso(p.merged_at)}
        for p in session.scalars(
            select(Patient).where(Patient.merged_into_id == patient_id).order_by(Patient.id)
        )
    ]
    data: dict[str, Any] = {
        "about": ABOUT,
        "exported_at": datetime.now(UTC).isoformat(),
        "patient": {
            **_person(patient),
            "consent_email": patient.consent_email,
            "consent_sms": patient.consent_sms,
            "consent_marketing": patient.consent_marketing,
            "reminders_enabled": patient.reminders_enabled,
            "card_on_file": patient.card_on_file,
            "points_balance": patient.points_balance,
            "portal_enrolled_at": _iso(patient.portal_enrolled_at),
            "added_at": _iso(patient.created_at),
            "merged_into": patient.merged_into_id,
        },
        "records_merged_into_this_one": merged,
        "appointments": appointments,
        "forms": patient_forms_export(session, patient_id),
        "messages": messages,
        "text_replies": text_replies,
        "payments": payments,
        "fees_and_points": ledger,
        "survey_answers": surveys,
        "waitlist": waitlist,
        "portal_invitations": invitations,
    }
    record_export(
        session, actor, "patient_file", 1, {"patient_id": patient_id}, patient_id=patient_id
    )
    return json.dumps(data, indent=1, ensure_ascii=False, default=str).encode()


def _person(p: Patient) -> dict[str, Any]:
    return {
        "id": p.id,
        "first_name": p.first_name,
        "last_name": p.last_name,
        "date_of_birth": _iso(p.date_of_birth),
        "gender": p.gender,
        "email": p.email,
        "phone": p.phone,
        "address": {f: getattr(p, f) for f in ADDRESS},
        "external_ref": p.external_ref,
        "imported_attributes": p.extra or {},
    }
