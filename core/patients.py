"""Patient records: search with suggestions, create, read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core import audit
from core.authz import Actor, Permission, ensure
from core.errors import NotFound, ValidationError
from db.models import Patient

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9 ()-]{6,20}$")


@dataclass(frozen=True)
class PatientSummary:
    id: int
    name: str
    date_of_birth: date | None
    email: str | None
    phone: str | None

    @property
    def label(self) -> str:
        born = f", born {self.date_of_birth:%d %b %Y}" if self.date_of_birth else ""
        contact = self.email or self.phone or "no contact details"
        return f"{self.name}{born} · {contact}"


def _summary(p: Patient) -> PatientSummary:
    return PatientSummary(p.id, p.full_name, p.date_of_birth, p.email, p.phone)


def search_patients(
    session: Session, actor: Actor, text: str, limit: int = 20
) -> list[PatientSummary]:
    """Patients whose name, email or phone contains `text` (case-insensitive), best first."""
    ensure(actor, Permission.PATIENTS_READ)
    words = text.strip().lower().split()
    if not words:
        return []
    query = select(Patient)
    for word in words:
        like = f"%{word}%"
        digits = re.sub(r"\D", "", word)
        conditions = [func.lower(Patient.first_name).like(like),
                      func.lower(Patient.last_name).like(like),
                      func.lower(Patient.email).like(like)]  # fmt: skip
        if len(digits) >= 3:
            conditions.append(func.replace(Patient.phone, " ", "").like(f"%{digits}%"))
        query = query.where(or_(*conditions))
    query = query.order_by(Patient.last_name, Patient.first_name, Patient.id).limit(limit)
    return [_summary(p) for p in session.scalars(query)]


def get_patient(session: Session, actor: Actor, patient_id: int) -> Patient:
    ensure(actor, Permission.PATIENTS_READ)
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"There is no patient #{patient_id}.")
    return patient


def validate_contact(email: str | None, phone: str | None) -> tuple[str | None, str | None]:
    email = (email or "").strip().lower() or None
    phone = (phone or "").strip() or None
    if email and not EMAIL.match(email):
        raise ValidationError(f"{email!r} is not an email address (like name@example.org).")
    if phone and not PHONE.match(phone):
        raise ValidationError(
            f"{phone!r} is not a phone number: use digits, spaces and an optional +."
        )
    return email, phone


def create_patient(
    session: Session,
    actor: Actor,
    *,
    first_name: str,
    last_name: str,
    date_of_birth: date | None = None,
    email: str | None = None,
    phone: str | None = None,
    consent_email: bool = False,
    consent_sms: bool = False,
    card_on_file: bool = False,
) -> Patient:
    ensure(actor, Permission.PATIENTS_EDIT)
    if not first_name.strip() or not last_name.strip():
        raise ValidationError("Enter the patient's first and last name.")
    if date_of_birth and date_of_birth > date.today():
        raise ValidationError("The date of birth cannot be in the future.")
    email, phone = validate_contact(email, phone)
    patient = Patient(first_name=first_name.strip(), last_name=last_name.strip(),
                      date_of_birth=date_of_birth, email=email, phone=phone,
                      consent_email=consent_email and bool(email),
                      consent_sms=consent_sms and bool(phone), card_on_file=card_on_file)  # fmt: skip
    session.add(patient)
    session.flush()
    audit.record(session, actor, "patient_created", "patient", patient.id, patient_id=patient.id,
                 details={"consent_email": patient.consent_email, "consent_sms": patient.consent_sms})  # fmt: skip
    return patient
