"""A real ClinicDesk server (serve.py) on a private copy of the demo database."""

from __future__ import annotations

import pkgutil
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.pages.conftest import ROOT, demo_template  # noqa: F401  (fixture)
from tests.support.browser import StreamlitServer, wait_for_app_idle
from tests.support.postgres import free_port
from tests.support.shared import built_once
from tests.support.templates import E2E_SECRET, build_e2e
from tests.support.zygote import Zygote

SECRET = E2E_SECRET
# What every server imports before its first page: Streamlit's server, the app and its pages'
# building blocks. The page scripts still run fresh in each server. A module that declares a
# Streamlit component registers it only when a page run imports it, so it is left out (the
# zygote refuses any). The no-show scoring's scikit-learn, which the jobs loop imports on its
# first round, is preloaded too: about a CPU-second a server otherwise.
WITH_COMPONENTS = {"ui.calendar_widget", "ui.patient_portal.views"}
PRELOAD = [
    "streamlit.web.cli",
    "streamlit.web.server.starlette.starlette_server",
    "serve",
    "threadpoolctl",
    "core.analytics.risk_model",
    *(
        module.name
        for module in pkgutil.walk_packages([str(ROOT / "ui")], "ui.")
        if module.name not in WITH_COMPONENTS
    ),
]


@pytest.fixture(scope="session")
def zygote() -> Iterator[Zygote]:
    """One process per test worker that has imported PRELOAD; the e2e servers fork from it."""
    with Zygote(PRELOAD, cwd=ROOT) as forks:
        yield forks


@pytest.fixture(scope="session")
def e2e_template(demo_template, tmp_path_factory) -> Path:  # noqa: F811
    """The demo practice after its background jobs (tests.support.templates.build_e2e)."""
    return built_once(tmp_path_factory, "app.db", lambda folder: build_e2e(folder, demo_template))


@pytest.fixture
def app_server(e2e_template, tmp_path, loopback_smtp, zygote) -> Iterator[StreamlitServer]:
    shutil.copy(e2e_template, tmp_path / "app.db")
    port = free_port()
    env = {
        "CLINICDESK_BASE_URL": f"http://127.0.0.1:{port}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "CLINICDESK_DATA_DIR": str(tmp_path),
        "CLINICDESK_SECRET_KEY": SECRET,
        "SMTP_HOST": loopback_smtp.host,
        "SMTP_PORT": str(loopback_smtp.port),
        "CLINICDESK_JOB_SECONDS": "1",
    }
    with StreamlitServer("serve.py", cwd=ROOT, env=env, port=port, zygote=zygote) as server:
        yield server
        print(server.output_tail())  # pytest shows it only when the test failed


@pytest.fixture
def sign_in(app_server) -> Callable[[Page, str], None]:
    def go(page: Page, username: str) -> None:
        page.goto(app_server.url)
        wait_for_app_idle(page)
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password", exact=True).fill(f"{username}-demo-pass")
        # the browser swaps a one-time code for the HttpOnly cookie; wait for that exchange
        with page.expect_response("**/_clinicdesk/session"):
            page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("Signed in as")).to_be_visible(timeout=20000)
        wait_for_app_idle(page)

    return go
