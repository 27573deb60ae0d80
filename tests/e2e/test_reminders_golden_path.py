"""Golden paths in real Chromium against serve.py with email read from a loopback SMTP server:
a reminder email arrives and its confirm link makes the appointment show as confirmed on Today;
a cancellation asked through a reminder reaches the clinic's inbox and the manager's queue; a
consent signed through its link shows as signed on the appointment."""

from __future__ import annotations

import re
from datetime import time, timedelta

from playwright.sync_api import Page, expect
from sqlalchemy import select

from core.kernel.authz import SYSTEM
from core.kernel.clock import to_local
from core.kernel.config import load_settings
from core.messaging.preferences import PreferencesForm, save_preferences
from core.startup import open_database
from db.models import (
    Appointment,
    AppointmentStatus,
    Clinic,
    DocumentKind,
    Patient,
    Provider,
    Service,
    ServiceDocument,
)
from db.types import utcnow
from tests.support.browser import wait_for_app_idle
from tests.support.smtp import text_of

EMAIL = "e2e.reminders@patients.example"
LINK = re.compile(r"https?://\S+/patient\?p={purpose}&t=[\w-]+(?:&k=\w+)?")


def _database(tmp_path):
    return open_database(
        load_settings(
            {"DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}", "CLINICDESK_SECRET_KEY": "k" * 40}
        )
    )


def _link(purpose: str, text: str) -> str:
    found = re.search(LINK.pattern.format(purpose=purpose), text)
    assert found, text
    return found.group(0)


def _midday_zone() -> str:
    """A fixed-offset zone where it is about noon now (Etc/GMT signs are inverted)."""
    ahead = 12 - utcnow().hour  # hours east of UTC: -11 … +12
    return f"Etc/GMT{-ahead:+d}"


def _appointment(
    tmp_path,
    start_in: timedelta,
    *,
    reminder_hours: int | None = None,
    service_id=None,
    on_today: bool = False,
):
    """A scheduled visit of one patient (our email) at the first clinic (Today's default),
    `start_in` from now; optionally a reminder offset that makes a reminder due at once.
    `on_today`: late in the clinic's evening the visit would fall on tomorrow, off Today's
    list, so the clinic then moves to a zone where it is about noon."""
    database = _database(tmp_path)
    with database.write() as session:
        clinic = session.scalar(select(Clinic).order_by(Clinic.name).limit(1))
        end = utcnow() + start_in + timedelta(minutes=30)
        if (
            on_today
            and to_local(end, clinic.timezone).date() != to_local(utcnow(), clinic.timezone).date()
        ):
            clinic.timezone = _midday_zone()
        if reminder_hours is not None:
            save_preferences(
                session,
                SYSTEM,
                clinic.id,
                PreferencesForm(
                    reminder_hours=[reminder_hours], quiet_start=time(0), quiet_end=time(0)
                ),
            )
        patient = Patient(  # a patient of our own: no demo appointment gets in the way
            first_name="Robin", last_name="Reminder", email=EMAIL, consent_email=True
        )
        session.add(patient)
        service = (
            session.get(Service, service_id)
            if service_id
            else session.scalar(select(Service).order_by(Service.id).limit(1))
        )
        provider = session.scalar(select(Provider).order_by(Provider.id).limit(1))
        start = (utcnow() + start_in).replace(second=0, microsecond=0)
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
        result = appointment.id, patient.full_name, clinic.email, clinic.timezone, service.id
    database.dispose()
    return result


def _sign_in_to(sign_in, browser, username: str) -> Page:
    page = browser.new_context().new_page()
    sign_in(page, username)
    return page


def test_reminder_email_confirm_link_shows_confirmed_on_today(
    chromium_browser, app_server, sign_in, loopback_smtp, tmp_path
):
    loopback_smtp.clear()
    # a 1-hour reminder for a visit 20 minutes from now is due at once (40 minutes ago)
    _, name, _, _, _ = _appointment(
        tmp_path, timedelta(minutes=20), reminder_hours=1, on_today=True
    )
    email = loopback_smtp.wait_for(
        lambda m: EMAIL in str(m["To"]) and m["Subject"].startswith("Reminder:"), timeout=60
    )
    link = _link("confirm", text_of(email))
    assert link.startswith(app_server.url)

    patient = chromium_browser.new_context().new_page()
    patient.goto(link)
    expect(patient.get_by_role("heading", name="Confirm your appointment")).to_be_visible(
        timeout=20000
    )
    wait_for_app_idle(patient)
    patient.get_by_role("button", name="Yes, I will come").click()
    expect(patient.get_by_text("is confirmed", exact=False)).to_be_visible(timeout=20000)

    staff = _sign_in_to(sign_in, chromium_browser, "staff")  # Today is the landing page
    expect(staff.get_by_role("heading", name="Today")).to_be_visible(timeout=20000)
    expect(staff.get_by_text("Confirmed by the patient: ", exact=False)).to_contain_text(
        f"{name} (reminder link)", timeout=20000
    )


def test_cancellation_asked_through_a_reminder_reaches_the_clinic_inbox_and_the_queue(
    chromium_browser, app_server, sign_in, loopback_smtp, tmp_path
):
    loopback_smtp.clear()
    # inside the 24-hour policy window: the 24-hour reminder is 4 hours late, still sent
    appointment_id, name, clinic_email, _, _ = _appointment(
        tmp_path, timedelta(hours=20), reminder_hours=24
    )
    email = loopback_smtp.wait_for(
        lambda m: EMAIL in str(m["To"]) and m["Subject"].startswith("Reminder:"), timeout=60
    )
    assert "&k=reschedule" in text_of(email)
    cancel = next(
        m.group(0)
        for m in re.finditer(LINK.pattern.format(purpose="change"), text_of(email))
        if m.group(0).endswith("&k=cancel")
    )

    patient = chromium_browser.new_context().new_page()
    patient.goto(cancel)
    expect(patient.get_by_role("heading", name="Change your appointment")).to_be_visible(
        timeout=20000
    )
    wait_for_app_idle(patient)
    expect(patient.get_by_role("radio", name="Cancel it")).to_be_checked()
    expect(patient.get_by_text("cancelling now costs a fee of £25.00", exact=False)).to_be_visible()
    patient.get_by_label("Reason (optional)").fill("Away that week.")
    patient.get_by_text("I have read the cancellation policy").click()
    patient.get_by_role("button", name="Send my request").click()
    expect(patient.get_by_text("Thank you", exact=False)).to_be_visible(timeout=20000)

    notice = loopback_smtp.wait_for(
        lambda m: clinic_email in str(m["To"]) and "cancel" in m["Subject"].lower(), timeout=60
    )
    assert f"/appointment?id={appointment_id}" in text_of(notice)
    assert name in text_of(notice)

    manager = _sign_in_to(sign_in, chromium_browser, "manager")
    manager.get_by_test_id("stSidebarNav").get_by_role("link", name="Request queue").click()
    expect(manager.get_by_role("heading", name="Request queue")).to_be_visible(timeout=20000)
    wait_for_app_idle(manager)
    manager.get_by_role("radio", name=re.compile(r"^Cancellation requests")).click()
    wait_for_app_idle(manager)
    # the request is a row of the cancellations table (the demo has others waiting too)
    table = manager.get_by_test_id("stDataFrame").first
    expect(table).to_contain_text(name, timeout=20000)
    expect(table).to_contain_text(str(appointment_id))


def test_consent_signed_through_its_link_shows_as_signed_on_the_appointment(
    chromium_browser, app_server, sign_in, loopback_smtp, tmp_path
):
    loopback_smtp.clear()
    database = _database(tmp_path)
    with database.write() as session:  # a service of its own: no demo visit gets the form
        service = Service(name="Peel (e2e)", duration_minutes=30)
        session.add(service)
        session.flush()
        service_id = service.id
        session.add(
            ServiceDocument(
                service_id=service_id,
                kind=DocumentKind.CONSENT,
                title="Consent to treatment (e2e)",
                body="I agree to the treatment explained to me.",
            )
        )
    database.dispose()
    appointment_id, name, _, tz, _ = _appointment(
        tmp_path, timedelta(days=5), service_id=service_id
    )
    email = loopback_smtp.wait_for(
        lambda m: EMAIL in str(m["To"]) and m["Subject"].startswith("Before your appointment"),
        timeout=60,
    )
    link = _link("form", text_of(email))

    patient = chromium_browser.new_context().new_page()
    patient.goto(link)
    expect(patient.get_by_role("heading", name="Consent to treatment (e2e)")).to_be_visible(
        timeout=20000
    )
    wait_for_app_idle(patient)
    patient.get_by_label("Full name").fill(name)
    today = to_local(utcnow(), tz).date()
    for part, value in (("day", f"{today:%d}"), ("month", f"{today:%m}"), ("year", f"{today:%Y}")):
        patient.get_by_role("spinbutton", name=f"{part}, Today's date").click()
        patient.keyboard.type(value)
    patient.get_by_role("button", name="Sign").click()
    expect(patient.get_by_text("consent is signed", exact=False)).to_be_visible(timeout=20000)

    manager = _sign_in_to(sign_in, chromium_browser, "manager")
    manager.goto(f"{app_server.url}/appointment?id={appointment_id}")
    expect(manager.get_by_role("heading", name="Appointment")).to_be_visible(timeout=20000)
    wait_for_app_idle(manager)
    expect(manager.get_by_text("Consent: Consent to treatment (e2e) — signed")).to_be_visible(
        timeout=20000
    )
