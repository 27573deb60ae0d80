"""AppTest support: every page test runs app.py against its own copy of a migrated demo
database, signed in through a real server-side session of the chosen demo user."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import select, update
from streamlit.testing.v1 import AppTest

from core.kernel import accounts
from core.kernel.clock import local_day_bounds, to_local
from core.kernel.config import load_settings
from core.startup import open_database
from db.models import OCCUPYING, Appointment, Clinic, Package, PackageService, Service, User
from db.types import utcnow
from tests.support.shared import built_once
from tests.support.templates import build_demo

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """One migrated (Alembic, as in production) and demo-seeded SQLite file per test run."""
    return built_once(tmp_path_factory, "demo.db", build_demo)


@pytest.fixture
def app_db(demo_template, tmp_path, monkeypatch) -> str:
    """A private copy of the demo database, configured for the app under test."""
    st.cache_data.clear()  # the read caches are per process: none may outlive its database
    target = tmp_path / "app.db"
    shutil.copy(demo_template, target)
    url = f"sqlite:///{target}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("CLINICDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLINICDESK_SECRET_KEY", "k" * 40)
    monkeypatch.chdir(ROOT)
    return url


def patient_page(purpose: str, token: str) -> AppTest:
    """The public patient page (/patient?p=…&t=…) opened from a link with `token`."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.query_params["p"], at.query_params["t"] = purpose, token
    at.run()
    at.switch_page("app_pages/patient.py")
    return at.run()


def every_clinic_speaks(url: str, locale: str) -> None:
    """Set every clinic of the test's database to `locale` (e.g. pt-BR)."""
    database = open_database(
        load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        session.execute(update(Clinic).values(locale=locale))
    database.dispose()


def sign_in_session(url: str, username: str) -> int:
    database = open_database(
        load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        user = session.scalar(select(User).where(User.username == username))
        signed = accounts.start_session(session, user)
    database.dispose()
    return signed.session_id


@pytest.fixture
def app_as(app_db) -> Callable[..., AppTest]:
    """`app_as("manager", "app_pages/queue.py")`: an AppTest signed in as that demo user, run once
    on the given page (the role's default page when none is given)."""

    def make(username: str | None, page: str | None = None, timeout: float = 30) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
        if username:
            at.session_state["auth_session_id"] = sign_in_session(app_db, username)
        at.run()
        if page:
            at.switch_page(page)
            at.run()
        return at

    return make


def clear_skin(session) -> Package:
    """A package the demo books no visit of ("Clear skin": Skin check, then Chemical peel),
    for a test that books its own visits as a package and counts exactly those."""
    package = Package(name="Clear skin", price_cents=19000)
    session.add(package)
    session.flush()
    for position, name in enumerate(("Skin check", "Chemical peel")):
        service_id = session.scalar(select(Service.id).where(Service.name == name))
        session.add(PackageService(package_id=package.id, service_id=service_id, position=position))
    return package


def chart_click(series: int, index: int) -> dict:
    """What Streamlit stores for an ECharts chart when a user clicks point `index` of `series`."""
    selected = {"series_index": series, "series_id": None, "series_name": None}
    return {
        "selection": {
            "selected": [{**selected, "data_type": "main", "data_indices": [index]}],
            "areas": [],
        }
    }


def today_in(minutes: int, tz: str = "Europe/London") -> datetime:
    """`minutes` from now (negative: ago), kept inside the clinic-local day: a visit added for
    today's board stays on it when a test runs near midnight (then it starts a minute before
    the day ends, or at the day's start)."""
    now = utcnow()
    start, end = local_day_bounds(to_local(now, tz).date(), tz)
    return max(start, min(now + timedelta(minutes=minutes), end - timedelta(minutes=1)))


def free_the_time(url: str, appointment_id: int) -> None:
    """Cancel the demo's bookings that hold this visit's time (its provider's, its patient's):
    undoing its no-show then needs no double booking, at whatever hour the test runs."""
    database = open_database(
        load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        visit = session.get(Appointment, appointment_id)
        session.execute(
            update(Appointment)
            .where(
                Appointment.id != visit.id,
                (Appointment.provider_id == visit.provider_id)
                | (Appointment.patient_id == visit.patient_id),
                Appointment.status.in_(OCCUPYING),
                Appointment.start_at < visit.end_at + timedelta(hours=4),
                Appointment.end_at > visit.start_at - timedelta(hours=4),
            )
            .values(status="cancelled")
        )
    database.dispose()


def told_to_show(widget, value) -> None:
    """The widget holds `value` and the browser is told to show it (set_value): a key dropped
    from the session state empties the box on the server only, and the browser kept showing,
    and sent back with the next rerun, what it held (ui.context.forget)."""
    assert (widget.value, widget.proto.set_value) == (value, True), widget.key


@pytest.fixture
def set_twice(monkeypatch) -> Iterator[list[str]]:
    """The keys of the widgets drawn with a default of their own (value=, index=) whose value
    was also set through the session state in that run (ui.context.forget), as Streamlit 1.67
    reports them: 'The widget with key … was created with a default value but also had its
    value set via the Session State API', a warning in the server's log only (policies.
    check_session_state_rules; the page shows nothing). Streamlit logs the first of a process
    and then no more; here every one, in every run of the test."""
    from streamlit.elements.lib import policies

    keys: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "had its value set via the Session State API" in record.getMessage():
                keys.append(str(record.args[0]))  # type: ignore[index]

    checked = policies.check_session_state_rules

    def each_time(*args, **kwargs):
        policies._shown_default_value_warning = False
        return checked(*args, **kwargs)

    monkeypatch.setattr(policies, "_shown_default_value_warning", False)  # put back after
    monkeypatch.setattr(policies, "check_session_state_rules", each_time)
    handler = Collect()
    logging.getLogger(policies.__name__).addHandler(handler)
    yield keys
    logging.getLogger(policies.__name__).removeHandler(handler)


def count_rows(at):
    """The blocks right around the page's counts (st.metric), each with whether a column
    holds it."""
    rows = []

    def walk(block, in_column):
        kids = list(getattr(block, "children", {}).values())
        if any(getattr(k, "type", "") == "metric" for k in kids):
            rows.append((block, in_column))
        for kid in kids:
            walk(kid, in_column or getattr(kid, "type", "") == "column")

    walk(at._tree, False)
    return rows


def block_around(at, key):
    """The block right around the widget `key`, and whether a column holds it."""

    def find(block, in_column):
        for child in getattr(block, "children", {}).values():
            if getattr(child, "key", None) == key:
                return block, in_column
            found = find(child, in_column or getattr(child, "type", "") == "column")
            if found:
                return found
        return None

    return find(at._tree, False)
