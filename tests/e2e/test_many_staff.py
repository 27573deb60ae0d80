"""Many staff at once on SQLite: twenty people sign in at the same moment on one server (the
password hashing runs outside the write lock, the bookkeeping is one short write) and then all
load a busy page together. Nobody may see an error, an exception or "database is locked"."""

from __future__ import annotations

from contextlib import ExitStack

from playwright.sync_api import expect

from tests.support.browser import wait_for_app_idle

PEOPLE = 20
USERS = ("owner", "manager", "staff")
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def test_twenty_simultaneous_sign_ins_and_page_loads_without_an_error(chromium_browser, app_server):
    contexts = [chromium_browser.new_context() for _ in range(PEOPLE)]
    pages = [context.new_page() for context in contexts]
    for page in pages:  # the sign-in form opens in all twenty at once
        page.goto(app_server.url, wait_until="commit", timeout=300000)
    for number, page in enumerate(pages):
        expect(page.get_by_label("Username")).to_be_visible(timeout=300000)
        wait_for_app_idle(page, timeout_ms=60000)
        username = USERS[number % len(USERS)]
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password", exact=True).fill(f"{username}-demo-pass")
    with ExitStack() as exchanges:  # each browser then swaps its one-time code for the cookie
        for page in pages:
            exchanges.enter_context(page.expect_response("**/_clinicdesk/session", timeout=300000))
        for page in pages:  # all twenty in flight together: click returns once it is sent
            page.get_by_role("button", name="Sign in").click()
        for page in pages:
            expect(page.get_by_text("Signed in as")).to_be_visible(timeout=300000)
    for page in pages:  # every one loads the calendar (cookie resumed) at the same time
        page.goto(f"{app_server.url}/calendar", wait_until="commit", timeout=300000)
    for number, page in enumerate(pages):
        expect(page.get_by_text("Signed in as")).to_be_visible(timeout=300000)
        wait_for_app_idle(page, timeout_ms=300000)
        errors = page.locator(ERRORS)
        assert errors.count() == 0, (number, errors.all_inner_texts())
    log = app_server.output_tail()
    for context in contexts:
        context.close()
    assert "database is locked" not in log and "Traceback" not in log, log
