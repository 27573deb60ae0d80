"""The scripts `make bench` (bench.run) measures every page against: they run, signed in, on the
demo database (the empty page lost an import in the house move and failed for days unseen)."""

from datetime import date, time, timedelta

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from bench.browser import calendar_day
from bench.run import BARE_PAGE, EMPTY_PAGE, SECRET
from core.kernel.clock import local_days_bounds, local_to_utc
from core.kernel.config import load_settings
from core.startup import open_database
from db.models import Appointment, Clinic
from tests.pages.conftest import sign_in_session


def test_the_empty_page_runs_signed_in_with_the_apps_shell(app_db):
    at = AppTest.from_string(EMPTY_PAGE, default_timeout=30)
    at.session_state["auth_session_id"] = sign_in_session(app_db, "owner")
    at.run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Empty page"]


def test_the_empty_page_refuses_to_measure_without_a_session(app_db):
    at = AppTest.from_string(EMPTY_PAGE, default_timeout=30).run()
    assert at.exception and not at.title  # its assert stops it before the page


def test_the_bare_page_runs(app_db):
    at = AppTest.from_string(BARE_PAGE, default_timeout=30).run()
    assert not at.exception and [t.value for t in at.title] == ["Empty page"]


def test_the_floor_pages_run_and_draw_what_they_copy():
    """bench.browser's pages of Streamlit alone (bench/browser_floor*.py): a failed page settles
    fast and would pass for a cheap one."""
    cancellations = AppTest.from_file("../../bench/browser_floor.py", default_timeout=30).run()
    assert not cancellations.exception
    # ten key figures (two currencies), confirmed, three refills
    assert len(cancellations.metric) == 14
    assert len(cancellations.get("echarts_chart")) == 7
    surveys = AppTest.from_file("../../bench/browser_floor_surveys.py", default_timeout=30).run()
    assert not surveys.exception
    assert len(surveys.metric) == 7 and len(surveys.dataframe) == 1
    assert len(surveys.get("echarts_chart")) == 5
    waitlist = AppTest.from_file("../../bench/browser_floor_waitlist.py", default_timeout=30).run()
    assert not waitlist.exception
    assert len(waitlist.selectbox) == 7 and len(waitlist.multiselect) == 2
    calendar = AppTest.from_file("../../bench/browser_floor_calendar.py", default_timeout=30).run()
    assert not calendar.exception
    assert len(calendar.get("component_instance")) == 1  # streamlit-calendar's frame


def test_the_bench_app_serves_the_floor_pages_at_the_paths_the_bench_visits(monkeypatch):
    from bench import browser
    from ui import navigation

    monkeypatch.setattr(navigation, "PAGES", navigation.PAGES)  # the bench app appends to it
    from bench import browser_app

    served = {page.url_path: page.title for page in browser_app.FLOORS}
    assert served == {path: title for path, (title, _) in browser.FLOORS.items()}
    assert browser_app.EMPTY.url_path == browser.EMPTY


def test_the_bench_reports_how_many_visits_the_calendar_opened_on(app_db):
    """Moving a visit of another day to noon today at the first clinic adds one."""
    before = calendar_day(app_db)
    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": SECRET})
    )
    with database.write() as session:
        clinic = session.scalars(select(Clinic).where(Clinic.name == before["clinic"])).one()
        day = date.fromisoformat(before["day"])
        start, end = local_days_bounds(day, day, clinic.timezone)
        other = session.scalars(
            select(Appointment).where(
                Appointment.clinic_id == clinic.id,
                (Appointment.start_at < start) | (Appointment.start_at >= end),
            )
        ).first()
        other.start_at = local_to_utc(day, time(12), clinic.timezone)
        other.end_at = other.start_at + timedelta(minutes=30)
    database.dispose()
    after = calendar_day(app_db)
    assert (after["day"], after["visits"]) == (before["day"], before["visits"] + 1)
