"""Golden path in real Chromium against serve.py: staff send a portal invitation from the patient's
record, the email arrives at the loopback SMTP server, the patient opens the link from the email,
confirms their date of birth, accepts the terms and is enrolled, and the Portal invitations page
counts them as Enrolled. Then a patient declines a proposed time through the proposal link and
the manager's request queue shows the request waiting again."""

from __future__ import annotations

import re
import shutil
from datetime import date, time, timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from core.kernel import accounts, tokens
from core.kernel.clock import local_to_utc, to_local
from core.kernel.config import load_settings
from core.patients import invitations
from core.practice import skills
from core.requests import decisions
from core.startup import open_database
from db.models import (
    Appointment,
    AppointmentStatus,
    Patient,
    PortalInvitation,
    Provider,
    User,
    WorkingHours,
)
from db.types import utcnow
from tests.pages.conftest import ROOT
from tests.support.browser import StreamlitServer, wait_for_app_idle
from tests.support.postgres import free_port
from tests.support.smtp import text_of

EMAIL = "e2e.enrol@patients.example"
BORN = date(1980, 2, 3)
ORDERS = {"en-GB": ("day", "month", "year"), "en-US": ("month", "day", "year")}  # the demo's
LINK = re.compile(r"https?://\S+/patient\?p=enroll&t=[\w-]+")


@pytest.fixture
def portal_server(e2e_template, tmp_path, loopback_smtp, zygote):
    shutil.copy(e2e_template, tmp_path / "app.db")
    port = free_port()
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "CLINICDESK_DATA_DIR": str(tmp_path),
        "CLINICDESK_SECRET_KEY": "e2e-" + "p" * 40,
        "SMTP_HOST": loopback_smtp.host,
        "SMTP_PORT": str(loopback_smtp.port),
        "CLINICDESK_JOB_SECONDS": "1",
        "CLINICDESK_BASE_URL": f"http://127.0.0.1:{port}",
    }
    with StreamlitServer("serve.py", cwd=ROOT, env=env, port=port, zygote=zygote) as server:
        yield server


def _database(tmp_path):
    return open_database(
        load_settings(
            {"DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}", "CLINICDESK_SECRET_KEY": "k" * 40}
        )
    )


def _sign_in(page: Page, url: str, username: str) -> None:
    page.goto(url)
    wait_for_app_idle(page)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(f"{username}-demo-pass")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as")).to_be_visible(timeout=20000)
    wait_for_app_idle(page)


def _go(page: Page, link_name: str, heading: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=link_name).click()
    expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=60000)
    wait_for_app_idle(page)


def test_staff_invite_the_patient_enrols_from_the_email_and_the_page_shows_enrolled(
    chromium_browser, portal_server, loopback_smtp, tmp_path
):
    database = _database(tmp_path)
    with database.write() as session:  # a known, not yet invited patient
        invited = select(PortalInvitation.patient_id)
        patient = session.scalars(
            select(Patient)
            .where(Patient.id.not_in(invited), Patient.portal_enrolled_at.is_(None))
            .order_by(Patient.id)
            .limit(1)
        ).one()
        patient.email, patient.consent_email, patient.date_of_birth = EMAIL, True, BORN
        patient_id = patient.id
        # the date of birth is picked in the order of the patient's clinic's locale
        shown = ORDERS[invitations.clinic_for(session, patient_id).locale]
    loopback_smtp.clear()

    staff = chromium_browser.new_context().new_page()
    _sign_in(staff, portal_server.url, "staff")
    _go(staff, "Patients", "Patients")
    staff.get_by_label("Find a patient").fill(EMAIL)
    staff.get_by_label("Find a patient").press("Enter")
    expect(staff.get_by_text("Portal: Not invited.")).to_be_visible(timeout=20000)
    wait_for_app_idle(staff)
    staff.get_by_role("button", name="Send portal invitation").click()
    expect(staff.get_by_text("Portal: Invited (expires")).to_be_visible(timeout=20000)
    wait_for_app_idle(staff)

    email = loopback_smtp.wait_for(
        lambda m: EMAIL in str(m["To"]) and "invitation" in m["Subject"], timeout=30
    )
    found = LINK.search(text_of(email))
    assert found, text_of(email)
    assert found.group(0).startswith(portal_server.url + "/patient?p=enroll&t=")

    patient_context = chromium_browser.new_context()  # the patient: not signed in
    visitor = patient_context.new_page()
    visitor.goto(found.group(0))
    expect(visitor.get_by_role("heading", name="Patient portal")).to_be_visible(timeout=20000)
    wait_for_app_idle(visitor)
    segments = visitor.get_by_role("group", name="Your date of birth").get_by_role("spinbutton")
    for i, part in enumerate(shown):  # the clinic's order on screen (en-US: month first)
        expect(segments.nth(i)).to_have_accessible_name(f"{part}, Your date of birth")
    for part, value in (("day", f"{BORN:%d}"), ("month", f"{BORN:%m}"), ("year", f"{BORN:%Y}")):
        visitor.get_by_role("spinbutton", name=f"{part}, Your date of birth").click()
        visitor.keyboard.type(value)
    visitor.keyboard.press("Escape")  # close the calendar pop-over
    visitor.get_by_text("I accept the terms of use").click()
    visitor.get_by_role("button", name="Enrol").click()
    expect(visitor.get_by_text("you are now enrolled")).to_be_visible(timeout=20000)
    wait_for_app_idle(visitor)

    _go(staff, "Portal invitations", "Portal invitations")
    staff.get_by_role("textbox", name="Search").fill(EMAIL)
    staff.get_by_role("button", name="Apply").click()
    enrolled = staff.get_by_test_id("stMetric").filter(has_text=re.compile(r"^Enrolled"))
    expect(enrolled.get_by_test_id("stMetricValue")).to_have_text("1", timeout=20000)
    not_invited = staff.get_by_test_id("stMetric").filter(has_text=re.compile(r"^Not invited"))
    expect(not_invited.get_by_test_id("stMetricValue")).to_have_text("0")
    with database.read() as session:
        assert session.get(Patient, patient_id).portal_enrolled_at is not None
    database.dispose()

    # the link worked once: opened again, it says so and points to the portal's sign-in
    again = patient_context.new_page()
    again.goto(found.group(0))
    expect(again.get_by_text("You enrolled in the patient portal on")).to_be_visible(timeout=20000)
    expect(again.get_by_role("link", name="Sign in to my patient portal")).to_be_visible()
    patient_context.close()


def _propose(database, base_url: str) -> tuple[int, str, str, str]:
    """The practice proposes a time for the oldest open request (it heads the queue)."""
    with database.write() as session:
        request = session.scalars(
            select(Appointment)
            .where(Appointment.status == AppointmentStatus.REQUESTED)
            .order_by(Appointment.created_at, Appointment.id)
            .limit(1)
        ).one()
        rows = session.scalars(
            select(WorkingHours)
            .where(WorkingHours.clinic_id == request.clinic_id)
            .order_by(WorkingHours.id)
        ).all()
        able = skills.able(session, {h.provider_id for h in rows}, [request.service_id])
        hours = next(h for h in rows if h.provider_id in able)  # one who performs the service
        provider = session.get(Provider, hours.provider_id)
        day = to_local(utcnow(), request.clinic.timezone).date() + timedelta(days=60)
        day += timedelta(days=(hours.weekday - day.weekday()) % 7)
        start = local_to_utc(day, time(hours.starts.hour + 1), request.clinic.timezone)
        manager = accounts.actor_of(
            session.scalars(select(User).where(User.username == "manager")).one()
        )
        raw = decisions.propose_time(
            session,
            manager,
            request.id,
            provider_id=provider.id,
            start_at=start,
            allow_double_booking=True,
        )
        link = tokens.link(base_url, "proposal", raw)
        return request.id, request.patient.full_name, request.service.name, link


def test_patient_declines_a_proposal_and_the_queue_shows_it(
    chromium_browser, portal_server, tmp_path
):
    database = _database(tmp_path)
    request_id, name, service, link = _propose(database, portal_server.url)

    visitor = chromium_browser.new_context().new_page()
    visitor.goto(link)
    expect(visitor.get_by_role("heading", name="Your proposed appointment")).to_be_visible(
        timeout=20000
    )
    wait_for_app_idle(visitor)
    visitor.get_by_role("button", name="Decline").click()
    expect(visitor.get_by_text("The practice will be in touch")).to_be_visible(timeout=20000)
    wait_for_app_idle(visitor)
    with database.read() as session:
        assert session.get(Appointment, request_id).status == AppointmentStatus.REQUESTED
    database.dispose()

    manager = chromium_browser.new_context().new_page()
    _sign_in(manager, portal_server.url, "manager")
    _go(manager, "Request queue", "Request queue")
    # the oldest request heads the queue, and its decision panel opens beside the table
    expect(manager.get_by_role("heading", name=f"#{request_id} · {name}")).to_be_visible(
        timeout=20000
    )
    expect(manager.get_by_text("Choose an action to see the suggested times")).to_be_visible()
