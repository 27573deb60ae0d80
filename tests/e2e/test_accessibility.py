"""axe-core (through axe-playwright-python) over every page of every role in real Chromium: no
critical or serious violation in ClinicDesk's own content (the main area; Streamlit's sidebar
navigation is the framework's). Also: /today opens Today, and / lands on it."""

from __future__ import annotations

import pprint

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from core.kernel.authz import Actor, Role
from tests.support.browser import wait_for_app_idle
from ui.navigation import pages_for

MAIN = '[data-testid="stMain"]'
BLOCKING = {"critical", "serious"}


def _pages(role: str):
    actor = Actor(user_id=0, name=role, role=Role(role))
    return [spec for spec in pages_for(actor) if not spec.hidden]


def _settled(page) -> None:
    wait_for_app_idle(page, timeout_ms=120000)  # a shared, busy machine: generous, not timed
    expect(page.locator('[data-stale="true"]')).to_have_count(0, timeout=60000)
    expect(page.locator('[data-testid="stSpinner"]')).to_have_count(0, timeout=60000)


def _serious(axe: Axe, page) -> list:
    result = axe.run(page, context={"include": [[MAIN]]})
    return [
        (v["id"], v["impact"], [(n["target"], n["html"][:120]) for n in v["nodes"]][:3])
        for v in result.response["violations"]
        if v["impact"] in BLOCKING
    ]


@pytest.mark.parametrize("role", ["owner", "manager", "staff"])
def test_every_page_has_no_serious_accessibility_violation(
    chromium_browser, app_server, sign_in, role
):
    context = chromium_browser.new_context()
    page = context.new_page()
    sign_in(page, role)
    axe = Axe()
    found = {}
    for spec in _pages(role):
        page.goto(f"{app_server.url}/{spec.url_path}")
        expect(page.get_by_role("heading", level=1).first).to_be_visible(timeout=120000)
        _settled(page)
        assert not page.get_by_test_id("stException").count(), spec.url_path
        serious = _serious(axe, page)
        if serious:  # a rerun fades the page for a moment: judge the page at rest, again
            _settled(page)
            serious = _serious(axe, page)
        if serious:
            found[spec.url_path] = serious
    context.close()
    assert not found, pprint.pformat(found, width=100)


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
