"""Golden path in real Chromium: each role signs in, sees its navigation, survives a refresh
(HttpOnly cookie + server-side session), and signs out."""

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from core.kernel import accounts
from core.kernel.authz import MATRIX
from db.engine import Database
from db.models import Role, User
from tests.support.browser import wait_for_app_idle
from ui.navigation import PAGES


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_role_signs_in_sees_its_pages_stays_after_refresh_and_signs_out(
    chromium_browser, app_server, sign_in, role
):
    context = chromium_browser.new_context()
    page = context.new_page()
    sign_in(page, role.value)
    built = [spec for spec in PAGES if not spec.hidden and spec.path.exists()]
    mine = [spec for spec in built if spec.permission in MATRIX[role]]
    if len(mine) > 1:  # Streamlit shows no menu for a single page
        nav = page.get_by_test_id("stSidebarNav")
        for spec in built:
            link = nav.get_by_role("link", name=spec.title, exact=True)
            expect(link).to_have_count(1 if spec in mine else 0)
    else:
        expect(page.get_by_role("heading", name=mine[0].title)).to_be_visible()

    cookie = next(c for c in context.cookies() if c["name"] == "clinicdesk_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.reload()
    expect(page.get_by_text("Signed in as")).to_be_visible(timeout=20000)

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Username")).to_be_visible(timeout=20000)
    page.reload()
    wait_for_app_idle(page)
    expect(page.get_by_label("Username")).to_be_visible(timeout=20000)
    context.close()


def test_a_colleague_deactivated_with_a_dashboard_open_can_filter_it_no_more(
    chromium_browser, app_server, sign_in, tmp_path
):
    """The manager has Cancellations open; the owner deactivates them. The dashboard's filters
    rerun only their part of the page (a fragment), which skipped the session check at the top
    of the app: the manager went on reading the practice's figures until they opened another
    page. Now the next press of Apply asks them to sign in."""
    page = chromium_browser.new_context().new_page()
    sign_in(page, "manager")
    page.get_by_role("link", name="Cancellations", exact=True).click()
    apply = page.get_by_role("button", name="Apply")
    expect(apply).to_be_visible(timeout=20000)
    wait_for_app_idle(page)
    database = Database(f"sqlite:///{tmp_path / 'app.db'}")
    with database.write() as session:
        owner = session.scalar(select(User).where(User.role == Role.OWNER))
        manager = session.scalar(select(User).where(User.username == "manager"))
        accounts.set_active(session, accounts.actor_of(owner), manager.id, False)
    database.dispose()
    apply.click()
    expect(page.get_by_label("Username")).to_be_visible(timeout=20000)
    expect(page.get_by_text("Your session ended")).to_be_visible()
    page.context.close()
