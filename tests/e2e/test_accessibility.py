"""/today opens Today, and / lands on it. (axe-core over every page of every role runs in the
same walk as the hostile-text check: tests/e2e/test_hostile_text.py.)"""

from __future__ import annotations

from playwright.sync_api import expect

from tests.support.browser import wait_for_app_idle


def test_today_has_its_own_address_and_the_root_lands_on_it(chromium_browser, app_server, sign_in):
    context = chromium_browser.new_context()
    page = context.new_page()
    sign_in(page, "staff")  # signing in at / lands on the role's first page, Today
    expect(page.get_by_role("heading", name="Today", level=1)).to_be_visible(timeout=20000)
    page.wait_for_url("**/today", timeout=20000)
    page.goto(f"{app_server.url}/today")
    expect(page.get_by_role("heading", name="Today", level=1)).to_be_visible(timeout=20000)
    wait_for_app_idle(page)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    context.close()


def test_a_staff_address_signed_out_asks_to_sign_in_then_opens_that_page(
    chromium_browser, app_server
):
    """/queue or a clinic email's /appointment?id=N, opened signed out, shows the sign-in form
    (not "Page not found") and, once signed in, the page the address names."""
    for address, heading, shown in (
        ("/queue", "Request queue", None),
        ("/appointment?id=1", "Appointment", "#1 · "),
    ):
        context = chromium_browser.new_context()
        page = context.new_page()
        page.goto(f"{app_server.url}{address}")
        expect(page.get_by_label("Username")).to_be_visible(timeout=20000)
        wait_for_app_idle(page)
        expect(page.get_by_text("Page not found")).to_have_count(0)
        page.get_by_label("Username").fill("manager")
        page.get_by_label("Password", exact=True).fill("manager-demo-pass")
        with page.expect_response("**/_clinicdesk/session"):
            page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible(timeout=20000)
        if shown:
            expect(page.get_by_text(shown).first).to_be_visible(timeout=20000)
        assert page.url.endswith(address)
        wait_for_app_idle(page)
        expect(page.get_by_text("Page not found")).to_have_count(0)
        context.close()
