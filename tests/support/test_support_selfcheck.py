"""The test-support helpers work against the real thing: PostgreSQL, SMTP, Streamlit, Chromium."""

from __future__ import annotations

import smtplib
import textwrap
import urllib.error
import urllib.request
from email.message import EmailMessage

import psycopg
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from .browser import StreamlitServer, wait_for_app_idle
from .postgres import TempPostgres
from .smtp import text_of

# chromium_browser and loopback_smtp come from the plugins tests/conftest.py registers: one
# browser per worker for the whole run (a second Playwright beside it would refuse to start).


def test_temp_postgres_serves_a_fresh_database_and_cleans_up() -> None:
    with TempPostgres() as pg:
        url = pg.create_database("selfcheck")
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == "selfcheck"
            assert conn.execute(sa.text("SHOW fsync")).scalar_one() == "off"
        engine.dispose()
        pg.drop_database("selfcheck")
        with pytest.raises(psycopg.OperationalError, match="selfcheck"):
            psycopg.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname="selfcheck")
        data_dir, port = pg.dir, pg.port

    assert not data_dir.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=port, user="postgres", connect_timeout=2)


def test_loopback_smtp_keeps_what_smtplib_sends(loopback_smtp) -> None:
    loopback_smtp.clear()
    sent = EmailMessage()
    sent["From"] = "desk@clinic.test"
    sent["To"] = "Zoë Patient <zoe@patient.test>"
    sent["Subject"] = "Your appointment on Tuesday"
    sent.set_content("See you at 09:30.\nReply to cancel.\n")
    sent.add_alternative("<p>See you at 09:30.</p>", subtype="html")
    with smtplib.SMTP(loopback_smtp.host, loopback_smtp.port) as client:
        client.send_message(sent, to_addrs=["zoe@patient.test", "audit@clinic.test"])

    received = loopback_smtp.wait_for(lambda m: "Tuesday" in m["Subject"])

    assert received["To"] == "Zoë Patient <zoe@patient.test>"
    assert received["X-RcptTo"] == "zoe@patient.test, audit@clinic.test"
    assert text_of(received) == "See you at 09:30.\nReply to cancel.\n"
    with pytest.raises(AssertionError, match="Your appointment on Tuesday"):
        loopback_smtp.wait_for(lambda m: "Friday" in m["Subject"], timeout=0.2)


BUTTON_PAGE = """
    import os
    import streamlit as st

    st.session_state.setdefault("clicks", 0)
    if st.button("Greet", key="selfcheck_greet"):
        st.session_state.clicks += 1
        st.write(f"{os.environ['SELFCHECK_GREETING']} ({st.session_state.clicks})")
"""
ASGI_ENTRY = """
    import streamlit as st

    app = st.App("page.py")
"""


@pytest.mark.parametrize("entry", ["page.py", "asgi_entry.py"], ids=["script", "st.App"])
def test_streamlit_button_click_in_chromium(tmp_path, chromium_browser, entry) -> None:
    (tmp_path / "page.py").write_text(textwrap.dedent(BUTTON_PAGE))
    (tmp_path / "asgi_entry.py").write_text(textwrap.dedent(ASGI_ENTRY))

    with StreamlitServer(entry, cwd=tmp_path, env={"SELFCHECK_GREETING": "Hello desk"}) as server:
        page = chromium_browser.new_page()
        page.goto(server.url)
        wait_for_app_idle(page)
        page.get_by_role("button", name="Greet").click()
        expect(page.get_by_text("Hello desk (1)")).to_be_visible()
        wait_for_app_idle(page)
        page.close()

    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2)
