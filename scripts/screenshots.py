"""Take the README's screenshots: a demo server, real Chromium, one PNG per main page.

.venv/bin/python -m scripts.screenshots     # writes docs/screenshots/*.png

Today's stage icons are emoji: a machine without an emoji font (Debian's
fonts-noto-color-emoji) draws them as empty boxes, as no user's browser would.
"""

import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from core import demo
from core.kernel.config import load_settings
from core.startup import open_database
from tests.support.browser import StreamlitServer, launch_chromium, wait_for_app_idle

ROOT = Path(__file__).resolve().parent.parent
SHOTS = [  # (user, url path, file)
    ("manager", "queue", "queue"),
    ("staff", "calendar", "calendar"),
    ("staff", "today", "today"),
    ("staff", "invitations", "invitations"),
    ("owner", "cancellation-analytics", "cancellation-analytics"),
    ("owner", "survey-analytics", "survey-analytics"),
    ("owner", "policy", "policy"),
    ("manager", "notifications", "notifications"),
]


def main() -> None:
    out = ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        env = {
            "DATABASE_URL": f"sqlite:///{folder}/demo.db",
            "CLINICDESK_DATA_DIR": folder,
            "CLINICDESK_JOB_SECONDS": "0",
        }
        database = open_database(load_settings(env))
        with database.write() as session:
            demo.seed_demo(session)
        database.dispose()
        with StreamlitServer("serve.py", cwd=ROOT, env=env) as server, sync_playwright() as pw:
            browser = launch_chromium(pw)
            for user, path, name in SHOTS:
                page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
                page.goto(server.url)
                wait_for_app_idle(page)
                page.get_by_label("Username").fill(user)
                page.get_by_label("Password", exact=True).fill(f"{user}-demo-pass")
                # the browser swaps a one-time code for the HttpOnly cookie; wait for that exchange
                with page.expect_response("**/_clinicdesk/session"):
                    page.get_by_role("button", name="Sign in").click()
                expect(page.get_by_text("Signed in as")).to_be_visible(timeout=20000)
                page.goto(f"{server.url}/{path}")
                wait_for_app_idle(page, timeout_ms=60000)
                page.wait_for_timeout(1500)  # let charts and the calendar iframe paint
                page.screenshot(path=str(out / f"{name}.png"))
                print(f"docs/screenshots/{name}.png")
            browser.close()


if __name__ == "__main__":
    main()
