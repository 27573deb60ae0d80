"""Issue 14 in real Chromium: an empty database → the first-run owner → a clinic → a room → a
service needing the room → a provider with weekly hours → a staff account → the staff user
signs in, books the first appointment and sees it on the calendar."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from core.kernel.clock import to_local
from core.kernel.config import load_settings
from core.startup import open_database
from db.models import Appointment, Clinic, Provider, Resource, Service, User, WorkingHours
from db.types import utcnow
from tests.pages.conftest import ROOT
from tests.support.browser import StreamlitServer, wait_for_app_idle
from tests.support.postgres import free_port

CALENDAR_FRAME = 'iframe[title="streamlit_calendar.calendar"]'


@pytest.fixture
def empty_server(tmp_path, loopback_smtp, zygote) -> Iterator[StreamlitServer]:
    port = free_port()
    env = {
        "CLINICDESK_BASE_URL": f"http://127.0.0.1:{port}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "CLINICDESK_DATA_DIR": str(tmp_path),
        "CLINICDESK_SECRET_KEY": "e2e-" + "k" * 40,
        "SMTP_HOST": loopback_smtp.host,
        "SMTP_PORT": str(loopback_smtp.port),
        "CLINICDESK_JOB_SECONDS": "1",
    }
    with StreamlitServer("serve.py", cwd=ROOT, env=env, port=port, zygote=zygote) as server:
        yield server


def _count(tmp_path, query) -> int:
    database = open_database(
        load_settings(
            {"DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}", "CLINICDESK_SECRET_KEY": "k" * 40}
        )
    )
    with database.read() as session:
        value = session.scalar(query)
    database.dispose()
    return value


def _eventually(tmp_path, query, expected=1, tries: int = 60) -> None:
    """The app writes in its own process: wait (polling, not sleeping blind) for the row."""
    for _ in range(tries):
        if _count(tmp_path, query) == expected:
            return
        time.sleep(0.5)
    raise AssertionError(f"{query} never counted {expected}")


def _open(page: Page, base: str, path: str, heading: str) -> None:
    """Go to a page by its address (the session cookie keeps the user signed in)."""
    page.goto(f"{base}/{path}")
    wait_for_app_idle(page)
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible(timeout=30000)
    wait_for_app_idle(page)


def _fill(page: Page, key: str, text: str) -> None:
    box = page.locator(f".st-key-{key} input, .st-key-{key} textarea").first
    box.fill(text)
    box.press("Tab")


def _choose(page: Page, key: str, option: str) -> None:
    box = page.locator(f".st-key-{key} input").first
    box.click()
    box.press_sequentially(option.split(" (")[0])
    page.get_by_role("option", name=re.compile(re.escape(option))).first.click()
    page.keyboard.press("Escape")


def _submit(page: Page, label: str) -> None:
    page.get_by_role("button", name=label).click()
    wait_for_app_idle(page)


def test_empty_database_to_the_first_booking(chromium_browser, empty_server, tmp_path):
    context = chromium_browser.new_context(viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    try:
        _walk(page, empty_server, tmp_path)
    except Exception:
        page.screenshot(path=str(tmp_path / "practice_setup_failure.png"), full_page=True)
        print(f"screenshot: {tmp_path / 'practice_setup_failure.png'}")
        raise
    finally:
        context.close()


def _tick_every_day(page: Page) -> None:
    """The weekly hours table is a canvas grid: a click on a day's Works cell ticks it (the
    Day column is 160 px wide, Works 80, rows 35 under a 35 px header). The grid's own
    accessible cells (what a screen reader reads) say whether each day is ticked."""
    grid = page.locator('[class*="st-key-schedules_hours_"] [data-testid="stDataFrame"]')
    works = [grid.get_by_test_id(f"glide-cell-1-{row}") for row in range(7)]
    expect(works[6]).to_have_text("false")  # drawn and ready for clicks
    box = grid.bounding_box()
    assert box
    for row, cell in enumerate(works):
        page.mouse.click(box["x"] + 200, box["y"] + 35 * (row + 1) + 17)
        expect(cell).to_have_text("true")


def _walk(page: Page, empty_server, tmp_path) -> None:
    page.goto(empty_server.url)
    wait_for_app_idle(page)
    expect(page.get_by_role("heading", name="Welcome to ClinicDesk")).to_be_visible()
    page.get_by_label("Username").fill("boss")
    page.get_by_label("Your name").fill("Bea Boss")
    page.get_by_label("Password (10 characters or more").fill("violet harbour tram ledger")
    # the browser swaps a one-time code for the HttpOnly cookie; later visits need it
    with page.expect_response("**/_clinicdesk/session", timeout=30000):
        page.get_by_role("button", name="Create owner account").click()
    expect(page.get_by_text("Signed in as")).to_be_visible(timeout=20000)
    wait_for_app_idle(page)

    _open(page, empty_server.url, "practice", "Practice set-up")
    expect(page.get_by_text("Getting started: 0 of 6 done")).to_be_visible()

    _open(page, empty_server.url, "clinics", "Clinics, rooms and equipment")
    _fill(page, "clinics_name_new", "First Street Clinic")
    _submit(page, "Save clinic")
    _eventually(tmp_path, select(func.count()).select_from(Clinic))
    _fill(page, "clinics_rname_new", "Treatment room")
    _submit(page, "Save room or equipment")
    _eventually(tmp_path, select(func.count()).select_from(Resource))

    _open(page, empty_server.url, "services", "Services")
    _fill(page, "services_name_new", "Consultation")
    _choose(page, "services_needs_new", "Treatment room (First Street Clinic)")
    _submit(page, "Save service")
    _eventually(tmp_path, select(func.count()).select_from(Service))

    _open(page, empty_server.url, "providers", "Providers")
    _fill(page, "providers_name_new", "Dr Ada First")
    _choose(page, "providers_clinics_new", "First Street Clinic")
    _choose(page, "providers_services_new", "Consultation")
    _submit(page, "Save provider")
    _eventually(tmp_path, select(func.count()).select_from(Provider))

    _open(page, empty_server.url, "schedules", "Provider schedules")
    _tick_every_day(page)
    _submit(page, "Save weekly hours")
    _eventually(tmp_path, select(func.count()).select_from(WorkingHours), 7)

    _open(page, empty_server.url, "users", "Users")
    _fill(page, "users_new_username", "fran")
    _fill(page, "users_new_name", "Fran Desk")
    _fill(page, "users_new_password", "fran-front-desk-1")
    _submit(page, "Create user")
    _eventually(tmp_path, select(func.count()).select_from(User).where(User.username == "fran"))

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out.")).to_be_visible(timeout=20000)
    wait_for_app_idle(page)
    page.get_by_label("Username").fill("fran")
    expect(page.get_by_label("Username")).to_have_value("fran")
    page.get_by_label("Password", exact=True).fill("fran-front-desk-1")
    with page.expect_response("**/_clinicdesk/session"):
        page.get_by_role("button", name="Sign in").click()
    # the owner chose that password: Fran chooses her own before anything else
    expect(page.get_by_role("heading", name="Choose your own password")).to_be_visible(
        timeout=20000
    )
    wait_for_app_idle(page)
    _fill(page, "auth_own_current", "fran-front-desk-1")
    _fill(page, "auth_own_new", "lantern orchard pebble rowing")
    _fill(page, "auth_own_again", "lantern orchard pebble rowing")
    _submit(page, "Change password")
    # signed in on the Users page, which is for owners: the page says so beside the caption
    expect(page.get_by_text("Signed in as Fran Desk (staff)", exact=True)).to_be_visible(
        timeout=20000
    )
    expect(page.get_by_text("Users is for owners")).to_be_visible()
    wait_for_app_idle(page)

    _open(page, empty_server.url, "book", "New appointment")  # tomorrow 09:00 by default
    _choose(page, "book_services", "Consultation")
    expect(page.locator(".st-key-book_provider input")).to_have_value(re.compile("Dr Ada First"))
    page.locator(".st-key-book_who").get_by_text("New patient", exact=True).click()
    wait_for_app_idle(page)
    _fill(page, "book_first", "Pat")
    _fill(page, "book_last", "Pioneer")
    page.locator(".st-key-book_submit button").click()
    expect(page.get_by_text(re.compile(r"Booked #1\b"))).to_be_visible(timeout=30000)
    assert _count(tmp_path, select(func.count()).select_from(Appointment)) == 1

    _open(page, empty_server.url, "calendar", "Calendar")
    today = to_local(utcnow(), "Europe/London").date()
    if (today + timedelta(days=1)).weekday() == 0:  # tomorrow is in next week's view
        page.locator(".st-key-calendar_next").get_by_role("button", name="▶").click()
        wait_for_app_idle(page)
    page.wait_for_function(
        """() => [...document.querySelectorAll('iframe[title="streamlit_calendar.calendar"]')]
                 .some(f => f.contentDocument && f.contentDocument.querySelector('.fc-event'))""",
        timeout=30000,
    )
    frame = page.frame_locator(CALENDAR_FRAME).last
    expect(frame.locator('.fc-event:has-text("Pat Pioneer")').first).to_be_visible(timeout=30000)
