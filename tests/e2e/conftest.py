"""A real ClinicDesk server (serve.py) on a private copy of the demo database."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update

from core import jobs
from core.kernel.config import load_settings
from core.startup import open_database
from db.models import DeliveryStatus, Notification
from db.types import utcnow
from tests.pages.conftest import ROOT, demo_template  # noqa: F401  (fixture)
from tests.support.browser import StreamlitServer, wait_for_app_idle
from tests.support.postgres import free_port
from tests.support.shared import built_once

SECRET = "e2e-" + "k" * 40


@pytest.fixture(scope="session")
def e2e_template(demo_template, tmp_path_factory) -> Path:  # noqa: F811
    """The demo practice as it stands once its background jobs have run: the reminders, forms
    and survey requests due before the tests began are recorded as sent and the weekly no-show
    model is trained, so a test's own messages do not queue behind the demo's backlog and no
    server spends its first minute training."""

    def build(folder: Path) -> None:
        shutil.copy(demo_template, folder / "app.db")
        settings = load_settings(
            {
                "DATABASE_URL": f"sqlite:///{folder / 'app.db'}",
                "CLINICDESK_DATA_DIR": str(folder),
                "CLINICDESK_SECRET_KEY": SECRET,
            }
        )
        database = open_database(settings)
        jobs.run_due(database, settings)  # no SMTP configured: the messages stay queued
        with database.write() as session:
            session.execute(
                update(Notification)
                .where(Notification.status == DeliveryStatus.QUEUED)
                .values(status=DeliveryStatus.SENT, sent_at=utcnow())
            )
        database.dispose()

    return built_once(tmp_path_factory, "app.db", build)


@pytest.fixture
def app_server(e2e_template, tmp_path, loopback_smtp) -> Iterator[StreamlitServer]:
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
    with StreamlitServer("serve.py", cwd=ROOT, env=env, port=port) as server:
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
