"""Golden path in real Chromium against serve.py: staff asks a patient for feedback on a completed
demo visit, the email arrives at the loopback SMTP server, the patient opens the link from the
email, answers, sees the thank-you page, and the owner's survey analytics count the answer."""

from __future__ import annotations

import re
import shutil
import time
from datetime import date, timedelta

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import select

from core.analytics import surveys as sa
from core.kernel.authz import SYSTEM
from core.kernel.money import clinic_format
from db.engine import Database
from db.models import Appointment, AppointmentStatus, Clinic, FeedbackStatus, Patient
from db.types import utcnow
from tests.pages.conftest import ROOT
from tests.support.browser import StreamlitServer, wait_for_app_idle
from tests.support.postgres import free_port
from tests.support.smtp import text_of

COMMENT = "Dr was kind <b>and</b> on time — e2e"


@pytest.fixture
def survey_server(e2e_template, tmp_path, loopback_smtp, zygote):
    shutil.copy(e2e_template, tmp_path / "app.db")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    port = free_port()
    env = {
        "DATABASE_URL": url,
        "CLINICDESK_DATA_DIR": str(tmp_path),
        "CLINICDESK_SECRET_KEY": "e2e-" + "s" * 40,
        "SMTP_HOST": loopback_smtp.host,
        "SMTP_PORT": str(loopback_smtp.port),
        "CLINICDESK_JOB_SECONDS": "1",
        "CLINICDESK_BASE_URL": f"http://127.0.0.1:{port}",
    }
    with StreamlitServer("serve.py", cwd=ROOT, env=env, port=port, zygote=zygote) as server:
        yield server, Database(url)


def older_visit(database: Database) -> tuple[int, str]:
    """A completed visit of ten days ago or more (the job asks only about the last week), of a
    patient who consented to email."""
    with database.read() as session:
        row = session.execute(
            select(Appointment.id, Patient.email)
            .join(Patient, Patient.id == Appointment.patient_id)
            .where(
                Appointment.status == AppointmentStatus.COMPLETED,
                Appointment.feedback_status == FeedbackStatus.NONE,
                Appointment.start_at < utcnow() - timedelta(days=10),
                Patient.consent_email.is_(True),
                Patient.email.is_not(None),
            )
            .order_by(Appointment.start_at.desc())
            .limit(1)
        ).one()
    return row.id, row.email


def responses_shown(database: Database) -> int:
    """The page's default figure: the last 90 days, as days in the practice's own zone, each
    clinic's responses on its own clinic's days."""
    today = date.today()
    with database.read() as session:
        tz = clinic_format(session).timezone
        zones = [tuple(z) for z in session.execute(select(Clinic.id, Clinic.timezone))]
        f = sa.filter_for_days(today - timedelta(days=89), today, tz, None, zones)
        return sa.summary(session, SYSTEM, f).responses


def sign_in(context: BrowserContext, base: str, username: str) -> Page:
    page = context.new_page()
    page.goto(base)
    wait_for_app_idle(page)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(f"{username}-demo-pass")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as")).to_be_visible(timeout=20000)
    wait_for_app_idle(page)
    deadline = time.monotonic() + 20  # the browser swaps the sign-in code for the cookie
    while not any(c["name"] == "clinicdesk_session" for c in context.cookies()):
        assert time.monotonic() < deadline, "no session cookie after signing in"
        page.wait_for_timeout(100)
    return page


def close_page_not_found(page: Page) -> None:
    """A hidden page opened by its address (as the links to /appointment?id=N are) may come up
    under Streamlit's "Page not found" notice from the run before the session was resumed."""
    notice = page.get_by_role("dialog").filter(has_text="Page not found")
    if notice.count():
        notice.get_by_role("button").first.click()
        expect(notice).to_have_count(0)


def test_feedback_request_email_survey_and_analytics(
    chromium_browser, survey_server, loopback_smtp
):
    server, database = survey_server
    loopback_smtp.clear()  # the inbox is shared: an earlier server may have mailed this patient
    appointment_id, email = older_visit(database)
    before = responses_shown(database)

    staff = chromium_browser.new_context()
    page = sign_in(staff, server.url, "staff")
    page.goto(f"{server.url}/appointment?id={appointment_id}")
    expect(page.get_by_text("Feedback not asked for yet")).to_be_visible(timeout=20000)
    wait_for_app_idle(page)
    close_page_not_found(page)
    page.get_by_role("button", name="Collect feedback").click()
    expect(page.get_by_text("Feedback asked for, not answered yet")).to_be_visible(timeout=20000)
    wait_for_app_idle(page)
    staff.close()

    message = loopback_smtp.wait_for(
        lambda m: email in m["X-RcptTo"] and m["Subject"].startswith("How was your visit"),
        timeout=30,
    )
    link = re.search(r"http://\S+/patient\?p=survey&t=[\w-]+", text_of(message)).group(0)
    assert link.startswith(server.url)

    patient = chromium_browser.new_context()
    page = patient.new_page()
    page.goto(link)
    expect(page.get_by_role("heading", name=re.compile("How was your visit"))).to_be_visible(
        timeout=20000
    )
    wait_for_app_idle(page)
    radios = page.get_by_test_id("stRadio")
    radios.nth(0).get_by_text("9", exact=True).click()
    radios.nth(1).get_by_text("5", exact=True).click()
    radios.nth(2).get_by_text("4", exact=True).click()
    page.get_by_label("Anything you would like to tell us?").fill(COMMENT)
    page.get_by_role("button", name="Send my answers").click()
    expect(page.get_by_text("Thank you for your feedback")).to_be_visible(timeout=20000)
    wait_for_app_idle(page)
    patient.close()

    to_clinic = loopback_smtp.wait_for(
        lambda m: m["Subject"].startswith("New survey response") and "recommend 9/10" in text_of(m),
        timeout=30,
    )
    assert to_clinic["X-RcptTo"].endswith("@clinicdesk.example")

    owner = chromium_browser.new_context()
    page = sign_in(owner, server.url, "owner")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Surveys").click()
    responses = page.get_by_test_id("stMetric").filter(has_text="Responses")
    expect(responses.get_by_test_id("stMetricValue")).to_have_text(f"{before + 1:,}", timeout=20000)
    wait_for_app_idle(page)
    owner.close()
    database.dispose()
