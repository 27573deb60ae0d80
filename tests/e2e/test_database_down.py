"""In real Chromium: the database (PostgreSQL behind a switchable proxy) goes away while the app
runs; the page shows one line, and comes back by itself, without a reload, once it is back."""

import re
import time
import uuid

import pytest
from playwright.sync_api import expect

from core.kernel.config import load_settings
from core.startup import open_database
from tests.pages.conftest import ROOT
from tests.support.browser import StreamlitServer, wait_for_app_idle
from tests.support.postgres import free_port
from tests.support.proxy import Switchable

DOWN = "The database cannot be reached; nothing was changed."
PAUSED = re.compile(r"background jobs paused: The database cannot be reached")


@pytest.fixture
def server_behind_proxy(temp_postgres, tmp_path, zygote):
    name = f"t_{uuid.uuid4().hex[:12]}"
    direct = temp_postgres.create_database(name)
    with Switchable("127.0.0.1", temp_postgres.port) as proxy:
        env = {
            "DATABASE_URL": direct.replace(f":{temp_postgres.port}/", f":{proxy.port}/"),
            "CLINICDESK_DATA_DIR": str(tmp_path),
            "CLINICDESK_SECRET_KEY": "e2e-" + "k" * 40,
            "CLINICDESK_JOB_SECONDS": "1",
        }
        open_database(load_settings(env), migrate=True).dispose()
        with StreamlitServer(
            "serve.py", cwd=ROOT, env=env, port=free_port(), zygote=zygote
        ) as server:
            yield proxy, server
    temp_postgres.drop_database(name)


def test_the_page_says_one_line_and_recovers_by_itself(chromium_browser, server_behind_proxy):
    proxy, server = server_behind_proxy
    page = chromium_browser.new_page()
    page.goto(server.url)
    wait_for_app_idle(page)
    expect(page.get_by_role("heading", name="Welcome to ClinicDesk")).to_be_visible()
    proxy.down()
    page.reload()
    expect(page.get_by_text(DOWN)).to_be_visible(timeout=30000)
    expect(page.get_by_test_id("stAlert")).to_have_count(1)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    for _ in range(60):  # the jobs loop (every second) meets the outage and says so once
        if PAUSED.search(server.output_tail()):
            break
        time.sleep(0.5)
    proxy.up()  # no reload: the page notices by itself
    expect(page.get_by_role("heading", name="Welcome to ClinicDesk")).to_be_visible(timeout=30000)
    expect(page.get_by_text(DOWN)).to_have_count(0)
    output = server.output_tail()
    assert PAUSED.search(output), output
    assert "Traceback" not in output
    page.close()
