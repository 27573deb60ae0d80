"""The scripts `make bench` (bench.run) measures every page against: they run, signed in, on the
demo database (the empty page lost an import in the house move and failed for days unseen)."""

from streamlit.testing.v1 import AppTest

from bench.run import BARE_PAGE, EMPTY_PAGE
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
