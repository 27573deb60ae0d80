"""AppTest: a failing background job is seen by owners and managers — listed on the Practice
set-up page, a one-line banner on every other page once it has failed for 15 minutes — and by
nobody else; its error is shown as text, never markup."""

from __future__ import annotations

from datetime import timedelta

from core.kernel.config import load_settings
from core.kernel.money import clinic_format, clinic_time
from core.startup import open_database
from db.models import JobRun
from db.types import utcnow
from ui.text import escape

ERROR = "Outage: SMTP said <b>zqhtml</b> **zqbold** [zqlink](http://evil.test)"
RAW = ("<b>zqhtml", "**zqbold", "[zqlink]")


def failing_for(url: str, minutes: int) -> tuple[JobRun, str]:
    """The reminders job failing for `minutes`, as the jobs loop records it; and its since-when
    as the practice reads it (its first clinic's zone and locale)."""
    database = open_database(
        load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    since = utcnow() - timedelta(minutes=minutes)
    row = JobRun(
        job="reminders_job",
        failing_since=since,
        last_failed_at=utcnow(),
        last_error=ERROR,
        failures=7,
    )
    with database.write() as session:
        session.add(row)
        shown = clinic_time(clinic_format(session), since, zone=True)
    database.dispose()
    return row, shown


def warnings(at) -> list[str]:
    return [w.value for w in at.warning]


def test_a_manager_sees_the_failing_job_on_the_practice_page(app_as, app_db):
    _, since = failing_for(app_db, 20)
    at = app_as("manager", "app_pages/practice.py")
    assert not at.exception
    [shown] = warnings(at)  # the list; no banner above it on this page
    assert "**Reminders**: reminders are not being queued" in shown
    assert f"Failing since {since}, 7 times" in shown
    assert f"Last error: {escape(ERROR)}" in shown
    assert not any(raw in shown for raw in RAW)


def test_a_manager_sees_a_banner_on_other_pages_after_15_minutes(app_as, app_db):
    failing_for(app_db, 20)
    at = app_as("owner", "app_pages/today.py")
    assert not at.exception
    [banner] = warnings(at)
    assert banner == (
        "Background work has been failing for more than 15 minutes: reminders are not being queued."
    )
    [link] = [e for e in at.get("page_link") if "Practice set-up" in e.proto.label]
    assert link.proto.page.endswith("practice")


def test_no_banner_for_a_job_failing_a_few_minutes(app_as, app_db):
    failing_for(app_db, 5)
    assert warnings(app_as("manager", "app_pages/today.py")) == []
    assert len(warnings(app_as("manager", "app_pages/practice.py"))) == 1  # listed there


def test_staff_see_neither(app_as, app_db):
    failing_for(app_db, 20)
    for page in ("app_pages/practice.py", "app_pages/today.py"):
        at = app_as("staff", page)
        assert not at.exception
        assert not any("reminders" in w for w in warnings(at))


def test_the_owner_sees_the_last_backup_or_a_warning_when_none_is_recent(app_as, app_db, tmp_path):
    """No backup yet: a warning saying how to make one; one just made: its time (the
    practice's zone and locale) and file; one three days old: the warning, naming it. Managers
    and staff see no backup line."""
    import streamlit as st
    from sqlalchemy import update

    from core.kernel.authz import SYSTEM
    from core.practice import backups
    from db.models import Setting

    def backup_lines(at) -> list[str]:
        return [e.value for e in [*at.warning, *at.info] if "backup" in e.value.lower()]

    at = app_as("owner", "app_pages/practice.py")
    assert not at.exception
    [line] = backup_lines(at)
    assert line.startswith("No backup of the database in the last 2 days. The nightly backup")
    assert "make one now with `python -m core.cli backup`" in line
    assert backup_lines(app_as("manager", "app_pages/practice.py")) == []

    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    made = backups.take_backup(database, SYSTEM, tmp_path / "tonight.db")
    with database.read() as session:
        last = backups.last_backup(session, SYSTEM)
        when = clinic_time(clinic_format(session), last.at, zone=True)
    st.cache_data.clear()  # the line is read at most a minute late; this test does not wait
    at = app_as("owner", "app_pages/practice.py")
    assert [i.value for i in at.info] == [f"Backups: the last, {when}: {made.path} on {last.host}."]
    assert backup_lines(at) == [at.info[0].value]

    old = last.at - timedelta(days=3)
    with database.write() as session:
        session.execute(
            update(Setting)
            .where(Setting.key == backups.LAST)
            .values(value={"at": old.isoformat(), "file": str(made.path), "host": last.host})
        )
        when = clinic_time(clinic_format(session), old, zone=True)
    database.dispose()
    st.cache_data.clear()
    [line] = backup_lines(app_as("owner", "app_pages/practice.py"))
    assert line.startswith(
        f"No backup of the database in the last 2 days (the last, {when}: {made.path} on "
    )
