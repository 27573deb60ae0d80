"""Golden path of the patient portal in real Chromium against serve.py: an enrolled
patient asks for a sign-in link, opens it from the email (loopback SMTP), sees the upcoming
appointment on the calendar, pays it with points, answers a survey and sees the points added,
cancels late after the warning and sees the points deducted; staff then see the payment on the
appointment."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page, expect
from sqlalchemy import select

from core.kernel.config import load_settings
from core.payments import rules
from core.startup import open_database
from db.models import (
    Appointment,
    AppointmentService,
    AppointmentStatus,
    CancellationPolicy,
    Patient,
    Payment,
    Provider,
    Service,
)
from db.types import utcnow
from tests.e2e.test_calendar_golden_path import CALENDAR_FRAME
from tests.support.browser import wait_for_app_idle
from tests.support.smtp import text_of

EMAIL = "e2e.portal@patients.example"
LINK = re.compile(r"https?://\S+/_clinicdesk/portal/sign-in\?t=[\w-]+")


def _database(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"  # the app_server's copy of the demo database
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def _setup(database) -> tuple[int, int, int, int, str]:
    """An enrolled patient with 1000 points, a visit in 5 hours (inside a 12-hour window whose
    late cancellation costs 20 points, no approval) and a completed visit without a survey."""
    with database.write() as s:
        patient = s.scalars(select(Patient).order_by(Patient.id).limit(1)).one()
        patient.email, patient.consent_email = EMAIL, True
        patient.portal_enrolled_at, patient.points_balance = utcnow(), 1000
        provider = s.scalars(select(Provider).order_by(Provider.id).limit(1)).one()
        service = s.scalars(select(Service).where(Service.price_cents > 0).limit(1)).one()
        clinic_id = s.scalars(select(Appointment.clinic_id).limit(1)).one()
        made = []
        for hours, status in ((5, AppointmentStatus.SCHEDULED), (-72, AppointmentStatus.COMPLETED)):
            start = utcnow() + timedelta(hours=hours)
            appointment = Appointment(
                clinic_id=clinic_id,
                provider_id=provider.id,
                patient_id=patient.id,
                service_id=service.id,
                status=status,
                start_at=start,
                end_at=start + timedelta(minutes=service.duration_minutes),
                allow_double_booking=True,
            )
            appointment.services.append(AppointmentService(service_id=service.id))
            s.add(appointment)
            s.flush()
            made.append(appointment.id)
        for service_id in (None, service.id):
            s.add(
                CancellationPolicy(
                    clinic_id=clinic_id,
                    service_id=service_id,
                    version=99,
                    effective_at=utcnow() - timedelta(minutes=1),
                    window_hours=12,
                    points_deducted=20,
                    inside_window_needs_approval=False,
                    policy_text="Please give us 12 hours' notice.",
                )
            )
        points_needed = service.price_cents // rules.get_settings(s).point_value_cents
        return patient.id, made[0], made[1], points_needed, service.name


def _section(page: Page, name: str):
    """The portal's section button (a row of them that wraps on a phone, not tabs)."""
    return page.locator(".st-key-portal_tab").get_by_role("radio", name=name, exact=True)


def _points(page: Page) -> str:
    metric = page.get_by_test_id("stMetric").filter(has_text="Your points")
    return metric.get_by_test_id("stMetricValue")


def test_the_patient_signs_in_pays_answers_and_cancels_and_staff_see_the_payment(
    chromium_browser, app_server, loopback_smtp, sign_in, tmp_path
):
    database = _database(tmp_path)
    patient_id, appointment_id, visit_id, points_needed, service = _setup(database)
    loopback_smtp.clear()

    page = chromium_browser.new_context().new_page()
    page.goto(f"{app_server.url}/portal")
    expect(page.get_by_role("heading", name="Patient portal")).to_be_visible(timeout=30000)
    wait_for_app_idle(page)
    page.get_by_label("Email or mobile number").fill(EMAIL)
    page.get_by_role("button", name="Send me a sign-in link").click()
    expect(page.get_by_text("we have sent a sign-in link")).to_be_visible(timeout=20000)

    email = loopback_smtp.wait_for(lambda m: EMAIL in str(m["To"]), timeout=30)
    link = LINK.search(text_of(email)).group(0)
    page.goto(link)
    page.get_by_role("button", name="Sign in to my portal").click()
    expect(page.get_by_role("heading", name=re.compile("^Hello"))).to_be_visible(timeout=30000)
    wait_for_app_idle(page)
    # the email's link tapped again opens the portal in the browser signed in by it, and is
    # spent in any other
    page.goto(link)
    page.get_by_role("button", name="Sign in to my portal").click()
    expect(page.get_by_role("heading", name=re.compile("^Hello"))).to_be_visible(timeout=30000)
    wait_for_app_idle(page)
    elsewhere = chromium_browser.new_context().new_page()
    elsewhere.goto(link)
    elsewhere.get_by_role("button", name="Sign in to my portal").click()
    expect(elsewhere.get_by_text("This sign-in link is not valid any more")).to_be_visible()
    elsewhere.context.close()
    expect(_points(page)).to_have_text(f"{1000:,}", timeout=20000)  # the clinic's locale

    _section(page, "Calendar").click()
    frame = page.frame_locator(CALENDAR_FRAME)
    expect(frame.locator(f'.fc-event:has-text("{service}")').first).to_be_visible(timeout=30000)

    _section(page, "Upcoming").click()
    card = page.locator(f".st-key-portal_appt_{appointment_id}")
    card.get_by_role("button", name="Pay", exact=True).click()
    wait_for_app_idle(page)
    page.get_by_role("button", name="Pay now").click()
    expect(page.get_by_text(f"Paid in full with {points_needed} points")).to_be_visible(
        timeout=20000
    )
    wait_for_app_idle(page)
    after_paying = 1000 - points_needed
    expect(_points(page)).to_have_text(f"{after_paying:,}", timeout=20000)

    _section(page, "Visits and surveys").click()
    visit = page.locator(f".st-key-portal_visit_{visit_id}")
    visit.get_by_role("button", name="Take survey").click()
    wait_for_app_idle(page)
    _section(page, "Visits and surveys").click()  # the rerun may reselect a section
    radios = page.get_by_test_id("stRadio")
    radios.filter(has_text="recommend").get_by_text("9", exact=True).click()
    radios.filter(has_text="rate your visit").get_by_text("5", exact=True).click()
    page.get_by_role("button", name="Send my answers").click()
    expect(page.get_by_text("10 points were added")).to_be_visible(timeout=20000)
    wait_for_app_idle(page)
    expect(_points(page)).to_have_text(f"{after_paying + 10:,}", timeout=20000)

    _section(page, "Upcoming").click()
    card.get_by_role("button", name="Cancel or reschedule").click()
    wait_for_app_idle(page)
    expect(page.get_by_text("cancelling now costs 20 points")).to_be_visible(timeout=20000)
    expect(page.get_by_text("a zero points balance locks online requests")).to_be_visible()
    page.get_by_role("button", name="Yes, pretty sure").click()
    expect(page.get_by_text("Your appointment has been cancelled")).to_be_visible(timeout=20000)
    wait_for_app_idle(page)
    # the prepaid points come back, then the policy's 20 are deducted
    expect(_points(page)).to_have_text(f"{1000 + 10 - 20:,}", timeout=20000)

    with database.read() as s:
        assert s.get(Appointment, appointment_id).status == AppointmentStatus.CANCELLED
        assert s.get(Patient, patient_id).points_balance == 990
        methods = s.scalars(select(Payment.kind).where(Payment.appointment_id == appointment_id))
        assert sorted(methods) == ["prepayment", "refund"]
    database.dispose()

    staff = chromium_browser.new_context().new_page()
    sign_in(staff, "staff")
    staff.goto(f"{app_server.url}/appointment?id={appointment_id}")
    expect(staff.get_by_role("heading", name="Payments")).to_be_visible(timeout=30000)
    wait_for_app_idle(staff)
    table = staff.get_by_test_id("stTable")
    expect(table).to_contain_text("prepayment", timeout=30000)
    expect(table).to_contain_text("Points")
    expect(table).to_contain_text("given back")  # the status in words (prepay.STATUS_WORDS)
    expect(table).to_contain_text(str(points_needed))
