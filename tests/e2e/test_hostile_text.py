"""Every page, every role, one walk in Chromium (one server, one sign-in per role), two checks.

Typed text is never markup: every patient carries hostile fields (Markdown images and links,
colour directives, HTML, LaTeX, bare URLs and emails, a direction override, NUL, 10,000
characters), written straight into the database as an old or imported row would be. The walk
fails on any request to the hostile host, any link or image made from the text, any element
(bold, code, LaTeX, colour, link) built from it, and any text where the typed syntax was consumed.

Accessibility: axe-core (axe-playwright-python) over each page's main area, ClinicDesk's own
content (Streamlit's sidebar navigation is the framework's): no critical or serious violation.
The hostile text makes this the harder case for axe too (long, odd, right-to-left text)."""

from __future__ import annotations

import pprint
import shutil
from collections.abc import Iterator

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, text

from core.kernel.authz import MATRIX
from core.kernel.text import search_text
from db.models import Role
from tests.pages.conftest import ROOT
from tests.support.browser import StreamlitServer, wait_for_app_idle
from tests.support.postgres import free_port
from ui.navigation import PAGES

HOST = "evil.test"
FIRST = "![zqimg](http://evil.test/first.png) :red[zqred]"
LAST = "<b>zqhtml</b> $zqtex$ \u202ezqrtl\x00"
EMAIL = "zqmail@evil.test"
PHONE = "www.zqwww.evil.test"
NOTES = "[zqlink](http://evil.test/n) **zqbold** https://evil.test/zqbare " + "long " * 2_000
# each marker and the literal text around it that must survive on screen
LITERAL = {
    "zqimg": "![zqimg](",
    "zqred": ":red[zqred]",
    "zqhtml": "<b>zqhtml</b>",
    "zqtex": "$zqtex$",
    "zqlink": "[zqlink](",
    "zqbold": "**zqbold**",
}

FIND_MARKUP = """(host) => {
  const problems = [];
  for (const el of document.querySelectorAll('a[href], img[src], [srcset], link[href]')) {
    const url = el.getAttribute('href') || el.getAttribute('src') || el.getAttribute('srcset');
    if (url.includes(host) || (url.startsWith('mailto:') && url.includes('zq')))
      problems.push('link or image ' + el.tagName + ' ' + url);
  }
  const markup = 'strong, b, em, i, code, del, s, a, .katex, .stMarkdownColoredText, h1 a';
  for (const el of document.querySelectorAll(markup)) {
    if (el.textContent.includes('zq')) problems.push('markup <' + el.tagName + '> '
      + el.textContent.slice(0, 80));
  }
  for (const el of document.querySelectorAll('[style*="color"]')) {
    if (el.textContent.includes('zqred') && !el.textContent.includes(':red['))
      problems.push('coloured ' + el.textContent.slice(0, 80));
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const texts = [];
  while (walker.nextNode()) {
    const value = walker.currentNode.nodeValue.replace(/\\u2060/g, '');
    if (value.includes('zq')) texts.push(value);
  }
  return {problems, texts};
}"""


@pytest.fixture
def hostile_server(e2e_template, tmp_path, zygote) -> Iterator[StreamlitServer]:
    shutil.copy(e2e_template, tmp_path / "app.db")
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as connection:  # as an old or imported row: no cleaning on the way in
        connection.execute(
            text(
                "UPDATE patients SET first_name=:f, last_name=:l, email=:e, phone=:p, "
                "search_text=:s"  # as an import keeps it
            ),
            {"f": FIRST, "l": LAST, "e": EMAIL, "p": PHONE, "s": search_text(FIRST, LAST, EMAIL)},
        )
        connection.execute(
            text("UPDATE appointments SET notes=:n WHERE status IN ('requested', 'scheduled')"),
            {"n": NOTES},
        )
        connection.execute(text("UPDATE change_requests SET reason=:r"), {"r": FIRST})
        connection.execute(
            text("UPDATE appointments SET cancel_reason=:r WHERE cancel_reason IS NOT NULL"),
            {"r": LAST},
        )
        connection.execute(text("UPDATE survey_responses SET comment=:c"), {"c": NOTES})
        request_id = connection.execute(
            text("SELECT id FROM appointments WHERE status='requested' ORDER BY id LIMIT 1")
        ).scalar_one()
    engine.dispose()
    port = free_port()
    env = {
        "CLINICDESK_BASE_URL": f"http://127.0.0.1:{port}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "CLINICDESK_DATA_DIR": str(tmp_path),
        "CLINICDESK_SECRET_KEY": "e2e-" + "k" * 40,
        "CLINICDESK_JOB_SECONDS": "0",
    }
    with StreamlitServer("serve.py", cwd=ROOT, env=env, port=port, zygote=zygote) as server:
        server.request_id = request_id
        yield server


def _sign_in(page: Page, url: str, username: str) -> None:
    page.goto(url)
    wait_for_app_idle(page)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(f"{username}-demo-pass")
    with page.expect_response("**/_clinicdesk/session"):
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as")).to_be_visible(timeout=30000)
    wait_for_app_idle(page)


def _check(page: Page, where: str, seen: dict[str, int]) -> list[str]:
    found = page.evaluate(FIND_MARKUP, HOST)
    problems = [f"{where}: {p}" for p in found["problems"]]
    for value in found["texts"]:
        for marker, literal in LITERAL.items():
            if marker in value:
                seen[marker] = seen.get(marker, 0) + 1
                if literal not in value:
                    problems.append(f"{where}: {literal!r} was consumed in {value[:120]!r}")
        if "\u202e" in value:
            problems.append(f"{where}: a raw direction override in {value[:60]!r}")
    return problems


MAIN = '[data-testid="stMain"]'
BLOCKING = {"critical", "serious"}


def _settled(page: Page) -> None:
    wait_for_app_idle(page, timeout_ms=120000)  # a shared, busy machine: generous, not timed
    expect(page.locator('[data-stale="true"]')).to_have_count(0, timeout=60000)
    expect(page.locator('[data-testid="stSpinner"]')).to_have_count(0, timeout=60000)


def _serious(axe: Axe, page: Page) -> list:
    result = axe.run(page, context={"include": [[MAIN]]})
    return [
        (v["id"], v["impact"], [(n["target"], n["html"][:120]) for n in v["nodes"]][:3])
        for v in result.response["violations"]
        if v["impact"] in BLOCKING
    ]


def _accessible(axe: Axe, page: Page, where: str) -> list:
    serious = _serious(axe, page)
    if serious:  # a rerun fades the page for a moment: judge the page at rest, again
        _settled(page)
        serious = _serious(axe, page)
    return [(where, v) for v in serious]


def test_every_page_for_every_role_keeps_typed_text_as_text_and_passes_axe(
    chromium_browser, hostile_server
):
    fetched: list[str] = []
    problems: list[str] = []
    violations: list = []
    seen: dict[str, int] = {}
    axe = Axe()
    base = hostile_server.url
    for role in Role:
        context = chromium_browser.new_context()
        context.on("request", lambda r: fetched.append(r.url) if HOST in r.url else None)
        page = context.new_page()
        _sign_in(page, base, role.value)
        visits = [
            (spec.title, spec.url_path)
            for spec in PAGES
            if spec.permission in MATRIX[role] and not spec.hidden and spec.path.exists()
        ]
        visits.append(("Appointment", f"appointment?id={hostile_server.request_id}"))
        nav = page.get_by_test_id("stSidebarNav")
        for title, path in visits:
            link = nav.get_by_role("link", name=title, exact=True)
            if link.count():  # as a user moves: the app stays loaded, only the page runs
                link.click()
                page.wait_for_url(f"**/{path}", timeout=60000)
            else:  # a page outside the menu (or a one-page role) opens by its address
                page.goto(f"{base}/{path}")
            expect(page.get_by_role("heading", level=1).first).to_be_visible(timeout=120000)
            _settled(page)
            assert not page.get_by_test_id("stException").count(), (role.value, title)
            violations += _accessible(axe, page, f"{role.value} · {title}")
            if title == "Patients":
                page.get_by_label("Find a patient").fill("zq")
                page.keyboard.press("Enter")
                expect(page.get_by_label("Matches")).to_be_visible(timeout=20000)
                wait_for_app_idle(page)
            problems += _check(page, f"{role.value} · {title}", seen)
        context.close()
    assert fetched == [], fetched
    assert problems == [], "\n".join(problems[:40])
    assert violations == [], pprint.pformat(violations, width=100)
    # the walk really met the text, in headings, alerts and captions, not only in tables
    assert {"zqimg", "zqred", "zqhtml", "zqtex", "zqlink", "zqbold"} <= set(seen), seen
