"""Golden path in real Chromium against serve.py: a patient 18 hours before a visit opens the
change link and is warned that cancelling is late under the 24-hour policy; the owner sets a
12-hour window on the policy page; the patient's page no longer warns and shows the new text."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import select

from core.portal import patient_links
from db.engine import Database
from db.models import Appointment, AppointmentStatus, Clinic, Patient, Provider, Service
from db.types import utcnow
from tests.support.browser import wait_for_app_idle

NEW_TEXT = "From today: please give us 12 hours' notice (e2e)."


def upcoming_link(database: Database, base_url: str) -> str:
    """A visit 18 hours from now at the London clinic, and its patient's change link."""
    with database.write() as session:
        clinic = session.scalar(select(Clinic).where(Clinic.timezone == "Europe/London"))
        patient = session.scalar(select(Patient).where(Patient.email.is_not(None)).limit(1))
        service = session.scalar(select(Service).where(Service.name == "Consultation"))
        provider = session.scalar(select(Provider).order_by(Provider.id).limit(1))
        start = (utcnow() + timedelta(hours=18)).replace(second=0, microsecond=0)
        appointment = Appointment(
            clinic_id=clinic.id,
            provider_id=provider.id,
            patient_id=patient.id,
            service_id=service.id,
            status=AppointmentStatus.SCHEDULED,
            start_at=start,
            end_at=start + timedelta(minutes=30),
            allow_double_booking=True,
        )
        session.add(appointment)
        session.flush()
        return patient_links.change_link(session, appointment, base_url)


def test_owner_changes_the_window_and_the_patients_warning_changes(
    chromium_browser, app_server, sign_in, tmp_path
):
    link = upcoming_link(Database(f"sqlite:///{tmp_path / 'app.db'}"), app_server.url)

    patient = chromium_browser.new_context().new_page()
    patient.goto(link)
    expect(patient.get_by_text("less than 24 hours away")).to_be_visible(timeout=20000)
    wait_for_app_idle(patient)

    owner = chromium_browser.new_context().new_page()
    sign_in(owner, "owner")
    owner.goto(f"{app_server.url}/policy")
    expect(owner.get_by_role("heading", name="Cancellation policy")).to_be_visible(timeout=20000)
    wait_for_app_idle(owner)
    owner.get_by_role("spinbutton", name="Late-cancellation window (hours)").fill("12")
    owner.get_by_label("Policy text shown to patients").fill(NEW_TEXT)
    owner.get_by_role("button", name="Save as a new version").click()
    expect(owner.get_by_text("Version 2 since")).to_be_visible(timeout=20000)
    wait_for_app_idle(owner)

    patient.reload()
    expect(patient.get_by_text(NEW_TEXT)).to_be_visible(timeout=20000)
    wait_for_app_idle(patient)
    expect(patient.get_by_text("less than 24 hours away")).to_have_count(0)
    expect(patient.get_by_text("hours away")).to_have_count(0)
