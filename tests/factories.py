"""Small, explicit test data built through the models (no demo data)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.kernel import accounts
from core.kernel.authz import SYSTEM, Actor
from core.payments import points
from db.models import (
    Appointment,
    Clinic,
    Notification,
    Patient,
    Provider,
    Role,
    Service,
    WorkingHours,
)
from db.types import utcnow

PASSWORD = "correct horse battery"


@dataclass
class World:
    clinic_id: int
    provider_id: int
    service_id: int
    patient_id: int
    owner: Actor
    manager: Actor
    staff: Actor


def make_user(session: Session, username: str, role: Role) -> Actor:
    user = accounts.insert_user(
        session, SYSTEM, username, username.title(), role, PASSWORD, f"{username}@example.org"
    )
    return accounts.actor_of(user)


def make_patient(session: Session, **fields) -> Patient:
    values = dict(
        first_name="Alex",
        last_name="Morgan",
        date_of_birth=date(1985, 4, 12),
        email="alex@example.org",
        phone="07700 900123",
        consent_email=True,
        consent_sms=True,
    )
    patient = Patient(**(values | fields))
    session.add(patient)
    session.flush()
    # opened as every way of adding a patient opens it: the ledger adds up to the balance
    points.open_account(session, patient, fields.get("points_balance", points.OPENING_POINTS))
    return patient


def invitations_sent_a_while_ago(session: Session, patient_id: int) -> None:
    """The patient's invitation messages as if queued before the resend gap
    (core.patients.invitations.RESEND_GAP): a resend now is no second press."""
    session.execute(
        update(Notification)
        .where(Notification.patient_id == patient_id)
        .values(created_at=utcnow() - timedelta(minutes=10))
    )


def make_visit(session: Session, world: World, **fields) -> Appointment:
    """An appointment of the world's patient with its provider, for its service at its clinic,
    written as it is (`fields`: its status and times, at least), flushed for its id."""
    visit = Appointment(
        clinic_id=world.clinic_id,
        provider_id=world.provider_id,
        patient_id=world.patient_id,
        service_id=world.service_id,
        **fields,
    )
    session.add(visit)
    session.flush()
    return visit


def build_world(session: Session, tz: str = "Europe/London") -> World:
    clinic = Clinic(
        name="Test Clinic", timezone=tz, phone="020 0000 0000", email="clinic@example.org"
    )
    service = Service(
        name="Consultation", duration_minutes=30, price_cents=6000, virtual_allowed=True
    )
    provider = Provider(name="Dr Test")
    session.add_all([clinic, service, provider])
    session.flush()
    for weekday in range(7):
        provider.working_hours.append(
            WorkingHours(clinic_id=clinic.id, weekday=weekday, starts=time(9), ends=time(17))
        )
    patient = make_patient(session)
    return World(
        clinic.id,
        provider.id,
        service.id,
        patient.id,
        owner=make_user(session, "owner", Role.OWNER),
        manager=make_user(session, "manager", Role.MANAGER),
        staff=make_user(session, "staff", Role.STAFF),
    )
