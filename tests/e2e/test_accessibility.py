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
