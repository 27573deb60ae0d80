"""Golden path in real Chromium against serve.py: a patient new to the practice opens the
clinic's public booking link, asks for a Consultation on a day and a time of day, gives their
name, date of birth, email and mobile and consent to emails, and is told the request was
received (in the words a known patient's request gets too); the acknowledgement email arrives at
the loopback SMTP server; a manager finds the request in the queue, approves it with the first
suggested time, and the patient's confirmation email arrives with that time."""

from __future__ import annotations

import re
from datetime import date, timedelta

from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from core.kernel import accounts
from core.kernel.clock import to_local
from core.kernel.config import load_settings
from core.kernel.money import clinic_time, format_day
from core.portal import patient_links
from core.startup import open_database
from db.models import Appointment, AppointmentStatus, Clinic, Patient, Source, TimeOfDay, User
from db.types import utcnow
from tests.support.browser import wait_for_app_idle
from tests.support.smtp import text_of

EMAIL = "wren.fairweather@patients.example"
BORN = date(1984, 7, 19)
MOBILE = "07911 123456"
# a time in the clinic's en-GB: Tue, 12 Jan 2027, 09:00 (Tue, 7 Sept 2027, 09:00)
LOCAL_TIME = re.compile(r"\w{3}, \d{1,2} \w{3,4} \d{4}, \d{2}:\d{2}")
CLINIC = "Harbour Street Clinic"  # Europe/London, en-GB: Dr Rahman and Dr Becker on Tuesdays
SERVICE = "Consultation"
MORNING = patient_links.time_of_day_labels("en-GB")[TimeOfDay.MORNING]


def _database(tmp_path):
    return open_database(
        load_settings(
            {"DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}", "CLINICDESK_SECRET_KEY": "k" * 40}
        )
    )


def _booking_link(database, base_url: str) -> tuple[str, date, Patient]:
    """The clinic's public link (the owner issues it for the website), a Tuesday five weeks
    ahead (clear of the demo's bookings and requests) and a known patient's name and email."""
    with database.write() as session:
        clinic = session.scalars(select(Clinic).where(Clinic.name == CLINIC)).one()
        owner = accounts.actor_of(
            session.scalars(select(User).where(User.username == "owner")).one()
        )
        link = patient_links.issue_booking_link(session, owner, clinic.id, base_url=base_url)
        day = to_local(utcnow(), clinic.timezone).date() + timedelta(days=35)
        day += timedelta(days=(1 - day.weekday()) % 7)  # a Tuesday
        known = session.scalars(
            select(Patient)
            .where(Patient.email != "", Patient.merged_into_id.is_(None))
            .order_by(Patient.id)
            .limit(1)
        ).one()
        session.expunge(known)
        return link, day, known


def _type_day(page: Page, label: str, day: date) -> None:
    """A date input's three parts typed one by one (their order on screen is the clinic's)."""
    for part, value in (("day", f"{day:%d}"), ("month", f"{day:%m}"), ("year", f"{day:%Y}")):
        page.get_by_role("spinbutton", name=f"{part}, {label}").click()
        page.keyboard.type(value)
    page.keyboard.press("Escape")  # close the calendar pop-over


def _send(page: Page, name: tuple[str, str], email: str, day: date) -> Locator:
    """A person not signed in, the booking link open, asks for a Consultation on a morning of
    `day`; the page's answer."""
    expect(page.get_by_role("heading", name=f"Request an appointment at {CLINIC}")).to_be_visible(
        timeout=20000
    )
    wait_for_app_idle(page)
    page.locator(".st-key-patient_booking_service input").click()
    page.get_by_role("option", name=SERVICE, exact=True).click()
    _type_day(page, "Preferred day", day)
    page.locator(".st-key-patient_booking_time input").click()
    page.get_by_role("option", name=MORNING, exact=True).click()
    page.get_by_role("textbox", name="First name").fill(name[0])
    page.get_by_role("textbox", name="Last name").fill(name[1])
    page.get_by_role("textbox", name="Email").fill(email)
    if email == EMAIL:  # the new patient gives all the form asks
        _type_day(page, "Date of birth (optional)", BORN)
        page.get_by_role("textbox", name="Phone").fill(MOBILE)
        page.get_by_text("You may email me about my appointments").click()
    page.get_by_role("button", name="Send request").click()
    return page.get_by_test_id("stAlertContentSuccess").get_by_role("paragraph")


def test_a_new_patient_requests_online_and_the_manager_approves_it(
    chromium_browser, app_server, sign_in, loopback_smtp, tmp_path
):
    database = _database(tmp_path)
    link, day, known = _booking_link(database, app_server.url)
    loopback_smtp.clear()

    patient_context = chromium_browser.new_context()  # the patient: never signed in
    # and a patient on file, who asks through the same link (their page opening meanwhile)
    known_context = chromium_browser.new_context()
    pages = patient_context.new_page(), known_context.new_page()
    for page in pages:
        page.goto(link)
    received = _send(pages[0], ("Wren", "Fairweather"), EMAIL, day)
    expect(received).to_have_text(patient_links.BOOKING_RECEIVED, timeout=20000)
    # the patient on file is answered in the same words
    answer = _send(pages[1], (known.first_name, known.last_name), known.email, day)
    expect(answer).to_have_text(patient_links.BOOKING_RECEIVED, timeout=20000)
    known_context.close()
    patient_context.close()

    acknowledged = loopback_smtp.wait_for(
        lambda m: EMAIL in str(m["To"]) and "received" in m["Subject"], timeout=30
    )
    asked_for = f"{SERVICE} on {format_day(day, 'en-GB')}, morning"  # Tue, 12 Jan 2027
    assert "Dear Wren Fairweather" in text_of(acknowledged), text_of(acknowledged)
    assert asked_for in text_of(acknowledged), text_of(acknowledged)
    with database.read() as session:
        asked = session.scalars(select(Appointment).join(Patient).where(Patient.email == EMAIL))
        request = asked.one()
        request_id, wren = request.id, request.patient
        assert (request.status, request.source) == (AppointmentStatus.REQUESTED, Source.ONLINE)
        assert (request.requested_day, request.time_of_day) == (day, TimeOfDay.MORNING)
        assert (wren.date_of_birth, wren.phone, wren.consent_email) == (BORN, MOBILE, True)
        assert not wren.consent_sms  # its box was left unticked
        # the known contact's request went to their record (a new one would have taken it)
        theirs = select(Appointment.id).where(
            Appointment.patient_id == known.id,
            Appointment.requested_day == day,
            Appointment.status == AppointmentStatus.REQUESTED,
        )
        assert len(session.scalars(theirs).all()) == 1

    manager = chromium_browser.new_context().new_page()
    sign_in(manager, "manager")
    manager.get_by_test_id("stSidebarNav").get_by_role("link", name="Request queue").click()
    expect(manager.get_by_role("heading", name="Request queue")).to_be_visible(timeout=20000)
    wait_for_app_idle(manager)
    manager.locator(".st-key-queue_clinic input").click()  # the demo's requests fill a screen
    manager.get_by_role("option", name=CLINIC, exact=True).click()
    table = manager.get_by_test_id("stDataFrame").first
    row = table.locator("tr").filter(has_text=f"{request_id}Wren Fairweather{SERVICE}")
    expect(row).to_have_count(1, timeout=20000)
    wait_for_app_idle(manager)
    # a canvas grid: click the row's tick box, at its place (rows 35 px, the header row first;
    # the clinic's 7 demo requests, this one and the known patient's fit without scrolling)
    place = int(row.get_attribute("aria-rowindex")) - 1
    table.click(position={"x": 17, "y": 35 * place + 17})
    expect(manager.get_by_role("heading", name=f"#{request_id} · Wren Fairweather")).to_be_visible(
        timeout=20000
    )
    wait_for_app_idle(manager)

    prefix = f"queue_requests_{request_id}"
    manager.locator(f".st-key-{prefix}_choice").get_by_text("Approve", exact=True).click()
    slot = manager.locator(f".st-key-{prefix}_slot")
    expect(slot).to_be_visible(timeout=20000)
    wait_for_app_idle(manager)
    offered = LOCAL_TIME.search(slot.inner_html())
    assert offered, slot.inner_html()
    manager.locator(f".st-key-{prefix}_go button").click()
    expect(manager.get_by_text("Approved.", exact=False)).to_be_visible(timeout=20000)
    wait_for_app_idle(manager)

    confirmed = loopback_smtp.wait_for(
        lambda m: EMAIL in str(m["To"]) and "confirmed" in m["Subject"], timeout=30
    )
    with database.read() as session:
        approved = session.get(Appointment, request_id)
        when = clinic_time(approved.clinic, approved.start_at, zone=True)
        assert approved.status == AppointmentStatus.SCHEDULED
        assert to_local(approved.start_at, approved.clinic.timezone).date() == day
    database.dispose()
    assert when.startswith(offered.group(0))  # the time the manager was offered
    assert when in confirmed["Subject"] and when in text_of(confirmed)
    assert "Wren" in text_of(confirmed)
    manager.context.close()
