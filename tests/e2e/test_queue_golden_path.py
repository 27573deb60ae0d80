"""Golden path in real Chromium: a manager approves a demo request from the queue with the first
suggested slot, and the patient's confirmation email arrives at the loopback SMTP server with the
clinic-local time the page showed."""

from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import select

from core.kernel.config import load_settings
from core.kernel.money import clinic_time
from core.startup import open_database
from db.models import Appointment, AppointmentStatus
from tests.support.browser import wait_for_app_idle
from tests.support.smtp import text_of

# the oldest request is at either demo clinic, depending on the hour the demo was seeded
LOCAL_TIME = re.compile(
    r"\w{3}, \d{1,2} \w{3,4} \d{4}, \d{2}:\d{2}"  # en-GB: Tue, 1 Dec 2026, 09:00 (3 Sept)
    r"|\w{3}, \w{3} \d{1,2}, \d{4}, \d{1,2}:\d{2}\s[AP]M"  # en-US: Tue, Dec 15, 2026, 5:30 PM
)


def _database(tmp_path):
    return open_database(
        load_settings(
            {"DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}", "CLINICDESK_SECRET_KEY": "k" * 40}
        )
    )


def test_manager_approves_a_request_and_the_patient_gets_the_confirmation(
    chromium_browser, app_server, sign_in, loopback_smtp, tmp_path
):
    database = _database(tmp_path)
    with database.write() as session:  # the oldest request heads the queue; make it reachable
        first = session.scalars(
            select(Appointment)
            .where(Appointment.status == AppointmentStatus.REQUESTED)
            .order_by(Appointment.created_at, Appointment.id)
            .limit(1)
        ).one()
        first.patient.email, first.patient.consent_email = "golden.path@patients.example", True
        # seeded at some hours the demo makes it 'early morning' at a clinic whose providers
        # start at nine: nothing could be suggested then
        first.time_of_day = None
        request_id = first.id
    loopback_smtp.clear()

    context = chromium_browser.new_context()
    page = context.new_page()
    sign_in(page, "manager")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Request queue").click()
    expect(page.get_by_role("heading", name="Request queue")).to_be_visible(timeout=20000)
    wait_for_app_idle(page)

    prefix = f"queue_requests_{request_id}"
    choices = page.locator(f".st-key-{prefix}_choice")  # no action is preselected
    choices.get_by_text("Approve", exact=True).click()
    expect(page.locator(f".st-key-{prefix}_slot")).to_be_visible(timeout=20000)
    wait_for_app_idle(page)
    shown = page.locator(f".st-key-{prefix}_slot").inner_html()
    match = LOCAL_TIME.search(shown)
    assert match, shown
    slot_time = match.group(0)  # e.g. "Tue, 1 Dec 2026, 09:00" in the clinic's own locale
    # the panel beside the table is narrow: no box's label may be cut short there
    cut = page.locator('[data-testid="stCheckbox"] *').evaluate_all(
        "all => all.filter(e => e.innerText.trim() && e.scrollWidth > e.clientWidth + 1)"
        ".map(e => e.innerText)"
    )
    assert cut == [], cut
    page.locator(f".st-key-{prefix}_message textarea").fill("Looking forward to seeing you.")
    page.locator(f".st-key-{prefix}_go button").click()
    expect(page.get_by_text("Approved.", exact=False)).to_be_visible(timeout=20000)
    wait_for_app_idle(page)

    email = loopback_smtp.wait_for(
        lambda m: "golden.path@patients.example" in str(m["To"]) and "confirmed" in m["Subject"],
        timeout=30,
    )
    body = text_of(email)
    with database.read() as session:
        approved = session.get(Appointment, request_id)
        expected = clinic_time(approved.clinic, approved.start_at, zone=True)
        assert approved.status == AppointmentStatus.SCHEDULED
    database.dispose()
    assert expected.startswith(slot_time)
    assert expected in email["Subject"] and expected in body
    assert "Looking forward to seeing you." in body
    assert any(part.get_filename() == f"check-in-{request_id}.png" for part in email.walk())

    # each kind's actions fit the decision panel beside the table (at 1400 px the third of a
    # reschedule request's, "Deny, keep the original", was cut to "De…")
    for kind in ("Reschedule requests", "Cancellation requests"):
        page.get_by_role("radio", name=re.compile(rf"^{kind}")).click()
        wait_for_app_idle(page)
        panel = page.locator("[class*='st-key-queue_'][class*='_choice']:visible").first
        expect(panel).to_be_visible(timeout=20000)
        wait_for_app_idle(page)
        # measured in one step in the page: a rerun may replace the element between two reads
        overflow = panel.evaluate(
            """panel => {
                const edge = panel.getBoundingClientRect().right + 1;
                return [...panel.querySelectorAll("label, button")]  // radio labels, or buttons
                    .filter(o => o.getBoundingClientRect().right > edge)
                    .map(o => o.innerText);
            }"""
        )
        assert overflow == [], (kind, overflow)
    context.close()
