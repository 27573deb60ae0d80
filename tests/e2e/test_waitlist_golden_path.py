"""Golden path in real Chromium with loopback SMTP: staff cancel an appointment, the freed slot
is offered to the waitlisted patient by email (the jobs loop of serve.py), the patient accepts
through the link, and the calendar shows the slot booked for them."""

from __future__ import annotations

import re
from datetime import time, timedelta

from playwright.sync_api import expect

from core.kernel.authz import SYSTEM
from core.kernel.clock import to_local
from core.scheduling import moves
from core.scheduling.availability import suggest_slots
from core.waitlist import entries
from core.waitlist.rules import Rules, set_rules
from db.types import utcnow
from tests.e2e.test_calendar_golden_path import _calendar, _database, _open
from tests.e2e.test_survey_golden_path import close_page_not_found
from tests.factories import make_patient
from tests.support.browser import wait_for_app_idle
from tests.support.smtp import text_of

EMAIL = "e2e.waitlist@patients.example"
LINK = re.compile(r"https?://\S+/patient\?p=waitlist_offer&t=[\w-]+")
TZ = "Europe/London"


def test_a_cancelled_slot_is_offered_accepted_and_booked(
    chromium_browser, sign_in, app_server, loopback_smtp, tmp_path
):
    database = _database(tmp_path)
    today = to_local(utcnow(), TZ).date()
    with database.write() as session:
        set_rules(
            session, SYSTEM, Rules(min_notice_minutes=0, quiet_start=time(0), quiet_end=time(0))
        )
        slot = suggest_slots(
            session,
            clinic_id=1,
            duration_minutes=30,
            day=today + timedelta(days=1),
            provider_id=1,
            limit=1,
        )[0]  # tomorrow or, when the demo has filled it, the next free day
        day = to_local(slot.start_at, TZ).date()
        booked = moves.schedule_appointment(
            session,
            SYSTEM,
            moves.NewBooking(
                patient_id=7,
                clinic_id=1,
                provider_id=1,
                service_ids=[1],
                start_at=slot.start_at,
            ),
        )
        waiter = make_patient(session, first_name="Wanda", last_name="Waitlist", email=EMAIL)
        entries.add_entry(
            session,
            SYSTEM,
            entries.Wish(
                waiter.id,
                1,
                1,
                day,
                day + timedelta(days=2),
                provider_id=1,
                weekdays=tuple(range(7)),
            ),
        )
        appointment_id = booked.id
    database.dispose()
    loopback_smtp.clear()

    context = chromium_browser.new_context()
    page = context.new_page()
    sign_in(page, "staff")
    page.goto(f"{app_server.url}/appointment?id={appointment_id}")
    actions = page.locator(f".st-key-appointment_{appointment_id}_action")
    expect(actions).to_be_visible(timeout=30000)
    wait_for_app_idle(page)
    close_page_not_found(page)
    actions.get_by_text("Cancel", exact=True).click()
    wait_for_app_idle(page)
    page.get_by_label("Reason (required; the patient is told)").fill("The patient is unwell")
    page.locator(f".st-key-appointment_{appointment_id}_go button").click()
    expect(page.get_by_text("Cancel: done.", exact=False)).to_be_visible(timeout=20000)

    email = loopback_smtp.wait_for(
        lambda m: EMAIL in str(m["To"]) and "A time is free" in m["Subject"], timeout=60
    )
    found = LINK.search(text_of(email))
    assert found, text_of(email)
    visitor = chromium_browser.new_context().new_page()  # the patient: not signed in
    visitor.goto(found.group(0))
    expect(visitor.get_by_role("heading", name="A time has freed up for you")).to_be_visible(
        timeout=20000
    )
    wait_for_app_idle(visitor)
    visitor.get_by_role("button", name="Book this time").click()
    expect(visitor.get_by_text("is booked", exact=False)).to_be_visible(timeout=20000)
    visitor.context.close()

    _open(page, "Calendar")
    page.locator(".st-key-calendar_view").get_by_role("radio", name="Day by provider").click()
    _calendar(page, ".fc-resourceTimeGridDay-view")
    wait_for_app_idle(page)
    for ahead in range(1, (day - today).days + 1):
        page.locator(".st-key-calendar_next").get_by_role("button", name="▶").click()
        on = today + timedelta(days=ahead)
        frame = _calendar(page, f'.fc-resourceTimeGridDay-view [data-date="{on}"]')
    expect(frame.locator('.fc-event:has-text("Wanda Waitlist")')).to_be_visible(timeout=30000)
    context.close()
