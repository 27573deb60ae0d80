"""The database going away and coming back (a switchable proxy in front of PostgreSQL): the
jobs loop says one line a round and resumes; pages show one line and recover."""

import logging
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from streamlit.testing.v1 import AppTest

from core import jobs
from core.kernel.config import load_settings
from core.kernel.errors import DatabaseUnavailable
from core.startup import open_database
from db.models import Channel, DeliveryStatus, Notification, Role
from tests.factories import make_user
from tests.pages.conftest import sign_in_session
from tests.support.proxy import Switchable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def behind_proxy(temp_postgres, tmp_path, monkeypatch):
    name = f"t_{uuid.uuid4().hex[:12]}"
    direct = temp_postgres.create_database(name)
    with Switchable("127.0.0.1", temp_postgres.port) as proxy:
        url = direct.replace(f":{temp_postgres.port}/", f":{proxy.port}/")
        env = {"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("CLINICDESK_DATA_DIR", str(tmp_path))
        settings = load_settings()
        database = open_database(settings, migrate=True)
        yield proxy, database, settings
        database.dispose()
    temp_postgres.drop_database(name)


def test_the_jobs_say_one_line_a_round_while_the_database_is_down_then_resume(behind_proxy, caplog):
    proxy, database, settings = behind_proxy
    with database.write() as session:
        session.add(
            Notification(channel=Channel.SMS, template="x", to_address="+447700900123", body="b")
        )
    proxy.down()
    caplog.set_level(logging.INFO)
    for _ in range(2):
        with pytest.raises(DatabaseUnavailable, match="The database cannot be reached"):
            jobs.run_due(database, settings)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    proxy.up()
    jobs.run_due(database, settings)
    with database.read() as session:
        assert session.scalar(select(Notification.status)) == DeliveryStatus.SENT


def test_a_page_shows_one_line_while_the_database_is_down_and_recovers(behind_proxy):
    proxy, database, _ = behind_proxy
    with database.write() as session:  # a manager of a practice being set up: the page's reads
        make_user(session, "manager", Role.MANAGER)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["auth_session_id"] = sign_in_session(database.url, "manager")
    at.run()
    at.switch_page("app_pages/notifications.py").run()
    assert not at.exception and at.title[0].value == "Notifications"
    proxy.down()
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The database cannot be reached; nothing was changed. This page tries again by itself "
        "every few seconds."
    ]
    assert not at.title  # nothing of the page was drawn
    proxy.up()
    at.run()
    assert not at.exception and not at.error and at.title[0].value == "Notifications"


def test_a_streamed_read_cut_by_the_outage_leaves_no_traceback(behind_proxy, caplog):
    """A server-side cursor (yield_per, as the risk features read) cannot close once the
    connection is gone; SQLAlchemy's "Error closing cursor" traceback is not logged for that:
    the outage is reported once, by the page or the jobs loop."""
    proxy, database, _ = behind_proxy
    caplog.set_level(logging.ERROR)
    series = text("SELECT generate_series(1, 10000)").execution_options(yield_per=10)
    with pytest.raises(OperationalError), database.read() as session:  # the session's end
        rows = session.execute(series)
        next(iter(rows))
        proxy.down()
        rows.close()  # as a reader stopping early does (a generator's end, an error)
    proxy.up()
    assert "Error closing cursor" not in caplog.text
    assert "Traceback" not in caplog.text
