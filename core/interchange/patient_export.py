"""One patient's data as a JSON file (right of access): the record, consents, appointments and
every form sent after booking with its answers or signature. Audited like every export."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.forms.records import patient_forms_export
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import NotFound
from core.kernel.exports import record_export
from db.models import Appointment, Patient


def export_patient(session: Session, actor: Actor, patient_id: int) -> bytes:
    ensure(actor, Permission.DATA_EXPORT)
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"There is no patient #{patient_id}.")
    appointments = [
        {
            "id": a.id,
            "status": a.status.value,
            "start_at": a.start_at.isoformat() if a.start_at else None,
            "service_id": a.service_id,
            "provider_id": a.provider_id,
            "clinic_id": a.clinic_id,
            "notes": a.notes,
        }
        for a in session.scalars(
            select(Appointment).where(Appointment.patient_id == patient_id).order_by(Appointment.id)
        )
    ]
    data = {
        "exported_at": datetime.now(UTC).isoformat(),
        "patient": {
            "id": patient.id,
            "first_name": patient.first_name,
            "last_name": patient.last_name,
            "date_of_birth": patient.date_of_birth.isoformat() if patient.date_of_birth else None,
            "email": patient.email,
            "phone": patient.phone,
            "consent_email": patient.consent_email,
            "consent_sms": patient.consent_sms,
            "consent_marketing": patient.consent_marketing,
            "reminders_enabled": patient.reminders_enabled,
        },
        "appointments": appointments,
        "forms": patient_forms_export(session, patient_id),
    }
    record_export(
        session, actor, "patient_file", 1, {"patient_id": patient_id}, patient_id=patient_id
    )
    return json.dumps(data, indent=1, ensure_ascii=False).encode()
