"""AppTest: provider schedules — weekly hours with validation, time off added and removed."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
import streamlit as st
from sqlalchemy import select, update

from core.kernel.config import load_settings
from core.startup import open_database
from db.models import AuditEvent, Clinic, TimeOff, WorkingHours

PAGE = "app_pages/schedules.py"


@pytest.fixture(autouse=True)
def _fresh_read_caches():
    """st.cache_data lives as long as the process: each test has its own database copy."""
    st.cache_data.clear()


def _db(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def _key(at, prefix, weekday):
    return next(
        w.key
        for w in at.main
        if getattr(w, "key", "") and w.key.startswith(prefix) and w.key.endswith(f"_{weekday}")
    )


def test_manager_sets_weekly_hours_and_bad_hours_are_explained(app_as, app_db):
    at = app_as("manager", PAGE)
    assert not at.exception, at.exception
    provider = at.selectbox(key="schedules_provider").value
    saturday = _key(at, "schedules_works_", 5)
    at.checkbox(key=saturday).check()
    at.time_input(key=_key(at, "schedules_from_", 5)).set_value(time(12))
    at.time_input(key=_key(at, "schedules_to_", 5)).set_value(time(10))
    at.button(
        key="FormSubmitter:"
        + next(f for f in _forms(at) if f.startswith("schedules_week_"))
        + "-Save weekly hours"
    ).click().run()
    assert "Saturday: the hours must end after they start" in at.error[0].value
    at.time_input(key=_key(at, "schedules_to_", 5)).set_value(time(14))
    at.button(
        key="FormSubmitter:"
        + next(f for f in _forms(at) if f.startswith("schedules_week_"))
        + "-Save weekly hours"
    ).click().run()
    assert not at.error, at.error
    database = _db(app_db)
    with database.read() as session:
        rows = session.scalars(
            select(WorkingHours).where(
                WorkingHours.provider_id == provider.id, WorkingHours.weekday == 5
            )
        ).all()
        assert [(r.starts, r.ends) for r in rows] == [(time(12), time(14))]
        assert session.scalar(select(AuditEvent).where(AuditEvent.action == "working_hours_set"))
    database.dispose()


def test_weekday_names_follow_the_clinics_locale(app_as, app_db):
    database = _db(app_db)
    with database.write() as session:
        session.execute(update(Clinic).values(locale="de-DE"))
    database.dispose()
    at = app_as("manager", PAGE)
    saturday = _key(at, "schedules_works_", 5)
    assert at.checkbox(key=saturday).label == "Samstag"
    assert at.checkbox(key=_key(at, "schedules_works_", 0)).label == "Montag"
    at.checkbox(key=saturday).check()
    at.time_input(key=_key(at, "schedules_from_", 5)).set_value(time(12))
    at.time_input(key=_key(at, "schedules_to_", 5)).set_value(time(10))
    at.button(
        key="FormSubmitter:"
        + next(f for f in _forms(at) if f.startswith("schedules_week_"))
        + "-Save weekly hours"
    ).click().run()
    assert at.error[0].value.startswith("Samstag: the hours must end after they start")


def _forms(at):
    return [b.proto.form_id for b in at.button if getattr(b.proto, "form_id", "")]


def test_time_off_is_added_and_removed(app_as, app_db):
    at = app_as("manager", PAGE)
    day = date.today() + timedelta(days=30)
    at.date_input(key="schedules_off_from_day").set_value(day)
    at.date_input(key="schedules_off_to_day").set_value(day + timedelta(days=2))
    at.text_input(key="schedules_off_reason").input("Conference")
    at.button(key="FormSubmitter:schedules_time_off-Add time off").click().run()
    assert not at.error, at.error
    assert "Conference" in at.dataframe[0].value.to_string()
    at.button(key="schedules_remove").click().run()
    database = _db(app_db)
    with database.read() as session:
        assert session.scalars(select(TimeOff)).all() == []
    database.dispose()


def test_time_off_ending_before_it_starts_is_refused(app_as):
    at = app_as("owner", PAGE)
    day = date.today() + timedelta(days=30)
    at.date_input(key="schedules_off_from_day").set_value(day)
    at.date_input(key="schedules_off_to_day").set_value(day - timedelta(days=1))
    at.button(key="FormSubmitter:schedules_time_off-Add time off").click().run()
    assert "must end after it starts" in at.error[0].value


def test_only_managers_and_owners_get_the_page():
    from core.kernel.authz import Actor
    from db.models import Role
    from ui.navigation import pages_for

    def files(role):
        return {p.file for p in pages_for(Actor(1, "x", role))}

    assert "schedules.py" not in files(Role.STAFF)
    assert "schedules.py" in files(Role.MANAGER) and "schedules.py" in files(Role.OWNER)
