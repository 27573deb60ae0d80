"""AppTest: a new practice's first week from an empty database, as its owner does it, each
save followed by the set-up's next step as a link (before, a save said only "Clinic saved.")."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.pages.conftest import ROOT, told_to_show


@pytest.fixture
def empty_app(tmp_path, monkeypatch) -> AppTest:
    st.cache_data.clear()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("CLINICDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLINICDESK_SECRET_KEY", "k" * 40)
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.text_input(key="first_run_username").input("bea")
    at.text_input(key="first_run_name").input("Bea Boss")
    at.text_input(key="first_run_password").input("correct horse battery staple")
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def _next(at: AppTest) -> tuple[str, str]:
    """The "Next: …" link the page shows: its words and the page it opens."""
    [link] = [e for e in at.get("page_link") if e.proto.label.startswith("Next: ")]
    return link.proto.label.replace("\\", ""), link.proto.page


def _press(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, at.exception
    assert not at.error, at.error[0].value
    return at


def test_each_set_up_step_leads_to_the_next(empty_app):
    at = empty_app
    assert at.title[0].value == "Today"  # the landing: no clinic yet, and where to add it
    label, page = _next(at)
    assert label.startswith("Next: Add your clinic: ") and page.endswith("clinics")

    at.switch_page("app_pages/clinics.py").run()
    at.text_input(key="clinics_name_new").input("London Central")
    _press(at, "Save clinic")
    assert [s.value for s in at.success] == ["Clinic saved."]
    label, page = _next(at)
    assert label.startswith("Next: Add the services you offer") and page.endswith("services")

    at.switch_page("app_pages/services.py").run()
    at.text_input(key="services_name_new").input("Consultation")
    at.number_input(key="services_after_new").set_value(10)
    _press(at, "Save service")
    label, page = _next(at)
    assert label.startswith("Next: Add providers and their weekly hours") and page.endswith(
        "providers"
    )

    at.switch_page("app_pages/providers.py").run()
    at.text_input(key="providers_name_new").input("Dr Ada Lane")
    at.multiselect(key="providers_clinics_new").set_value([1])
    _press(at, "Save provider")
    label, page = _next(at)  # a provider without hours cannot be booked: hours come next
    assert "Dr Ada Lane has no weekly hours yet, so nobody can book them." in label
    assert page.endswith("schedules")

    at.switch_page("app_pages/schedules.py").run()
    week = {day: {"Works": True} for day in range(5)}  # Monday to Friday, 09:00 to 17:00
    at.session_state["schedules_hours_1_1"] = {
        "edited_rows": week,
        "added_rows": [],
        "deleted_rows": [],
    }
    _press(at, "Save weekly hours")
    assert not at.warning
    label, page = _next(at)
    assert label.startswith("Next: Create staff accounts") and page.endswith("users")

    at.switch_page("app_pages/users.py").run()
    at.text_input(key="users_new_username").input("mia")
    at.text_input(key="users_new_name").input("Mia Manager")
    at.selectbox(key="users_new_role").select("manager")
    at.text_input(key="users_new_password").input("lantern orchard pebble rowing")
    _press(at, "Create user")
    label, page = _next(at)
    assert label.startswith("Next: Set the cancellation policy") and page.endswith("policy")


def _sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="sign_in_username").input(username)
    at.text_input(key="sign_in_password").input(password)
    return _press(at, "Sign in")


def _choose_own(desk: AppTest, given: str, own: str) -> AppTest:
    """A colleague signed in with the password the owner gave them chooses their own."""
    assert [t.value for t in desk.title] == ["Choose your own password"]
    desk.text_input(key="auth_own_current").input(given)
    desk.text_input(key="auth_own_new").input(own)
    desk.text_input(key="auth_own_again").input(own)
    return desk.button(key="FormSubmitter:auth_own_form-Change password").click().run()


def test_a_forgotten_password_is_reset_then_changed_by_its_owner(empty_app, set_twice):
    """Fran forgets her password: the owner resets it (the box is emptied, the page says what
    to do next), Fran signs in with it and must choose her own before anything else (before,
    the owner's password stayed hers until she thought to change it: the owner knew it)."""
    at = empty_app
    at.switch_page("app_pages/users.py").run()
    at.text_input(key="users_new_username").input("fran")
    at.text_input(key="users_new_name").input("Fran Desk")
    at.selectbox(key="users_new_role").select("manager")
    at.text_input(key="users_new_password").input("violet harbour kettle mosaic")
    _press(at, "Create user")
    for field in ("username", "name", "email", "password"):  # emptied in the browser too
        told_to_show(at.text_input(key=f"users_new_{field}"), "")
    told_to_show(at.selectbox(key="users_new_role"), "staff")
    box = at.selectbox(key="users_chosen")
    box.select_index(next(i for i, u in enumerate(box.options) if "(fran)" in u)).run()
    at.text_input(key="users_reset_password").input("tangerine quarry whisper")
    _press(at, "Reset password")
    told_to_show(at.text_input(key="users_reset_password"), "")  # not left in the box
    assert set_twice == []  # no widget emptied through the state has a default of its own
    [said] = [s.value.replace("\\", "") for s in at.success]
    assert said.startswith("The password of Fran Desk is reset and their sessions are ended.")
    assert "at their next sign-in they choose their own, before anything else" in said

    desk = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    _sign_in(desk, "fran", "tangerine quarry whisper")
    # every address opens the same page: no navigation, no Today, only her own password
    assert [t.value for t in desk.title] == ["Choose your own password"]
    assert [b.label for b in desk.sidebar.button] == ["Sign out"]
    desk.text_input(key="auth_own_current").input("not what the owner gave")
    desk.text_input(key="auth_own_new").input("lantern orchard pebble rowing")
    desk.text_input(key="auth_own_again").input("lantern orchard pebble rowing")
    desk.button(key="FormSubmitter:auth_own_form-Change password").click().run()
    assert desk.error[0].value.startswith("That is not your current password")
    desk.text_input(key="auth_own_current").input("tangerine quarry whisper")
    desk.text_input(key="auth_own_new").input("password123")
    desk.text_input(key="auth_own_again").input("password123")
    desk.button(key="FormSubmitter:auth_own_form-Change password").click().run()
    assert "too easy to guess" in desk.error[0].value
    desk.text_input(key="auth_own_new").input("lantern orchard pebble rowing")
    desk.text_input(key="auth_own_again").input("lantern orchard pebble rowing")
    desk.button(key="FormSubmitter:auth_own_form-Change password").click().run()
    assert not desk.exception and not desk.error, desk.error
    assert desk.sidebar.success[0].value.startswith("Your password is changed.")
    assert [desk.session_state[f"auth_own_{f}"] for f in ("current", "new", "again")] == [""] * 3
    assert set_twice == []
    assert "Fran Desk" in desk.sidebar.caption[0].value  # still signed in here
    assert "Choose your own password" not in [t.value for t in desk.title]

    again = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    _sign_in(again, "fran", "lantern orchard pebble rowing")
    assert "Fran Desk" in again.sidebar.caption[0].value


def _role_box(at: AppTest):
    """The Role box of the person chosen on Users (one per person, by their id)."""
    return at.selectbox(key=f"users_role_{at.selectbox(key='users_chosen').value}")


def test_the_owner_is_told_why_their_own_role_stays(empty_app):
    """Before, an owner demoting themself (another owner there) was signed out at once and
    told that 'nothing was done'; the last owner is told to make another owner first."""
    at = empty_app
    at.switch_page("app_pages/users.py").run()
    _role_box(at).select("manager")
    at.button(key="users_change_role").click().run()
    assert at.error[0].value == "This is the last active owner: make another owner first."
    at.text_input(key="users_new_username").input("olga")
    at.text_input(key="users_new_name").input("Olga Owner")
    at.selectbox(key="users_new_role").select("owner")
    at.text_input(key="users_new_password").input("violet harbour kettle mosaic")
    _press(at, "Create user")
    assert at.selectbox(key="users_chosen").value == 1  # still Bea, the first account
    _role_box(at).select("manager")
    at.button(key="users_change_role").click().run()
    assert at.error[0].value.startswith("You cannot change your own role")
    at.button(key="users_toggle_active").click().run()  # removing their own account
    assert at.error[0].value == (
        "You cannot deactivate your own account: it would sign you out at once. Another owner "
        "can (make one first if you are the only one)."
    )
    assert "Bea Boss" in at.sidebar.caption[0].value  # still signed in, still the owner
    assert at.title[0].value == "Users"


def test_a_practice_set_up_today_is_not_warned_of_missing_backups(empty_app, tmp_path):
    """Before, the owner's first look at Practice set-up warned 'No backup of the database in
    the last 2 days. The nightly backup has not run', on a database minutes old."""
    from core.kernel.config import load_settings
    from core.practice import backups
    from core.startup import open_database

    settings = load_settings(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
            "CLINICDESK_DATA_DIR": str(tmp_path),
            "CLINICDESK_SECRET_KEY": "k" * 40,
        }
    )
    database = open_database(settings)
    backups.backup_job(database, settings)  # the jobs loop's first round on the new database
    database.dispose()
    st.cache_data.clear()
    at = empty_app
    at.switch_page("app_pages/practice.py").run()
    assert not at.exception, at.exception
    assert not [w.value for w in at.warning if "backup" in w.value.lower()]
    [line] = [i.value for i in at.info if "backup" in i.value.lower()]
    assert line.startswith("Backups: ")  # none yet, the first tonight; or made already at night


def test_hours_are_set_only_at_the_clinics_a_provider_works_at(empty_app):
    """Before, Provider schedules offered every clinic: hours saved at one not ticked on
    Providers made the provider work there, yet the Providers page never showed it (nor could
    untick it). Now it offers their clinics only, and says where to choose them."""
    at = empty_app
    at.switch_page("app_pages/clinics.py").run()
    for name in ("London Central", "New York East"):
        at.selectbox(key="clinics_pick").select(None).run()
        at.text_input(key="clinics_name_new").input(name)
        _press(at, "Save clinic")
    at.switch_page("app_pages/providers.py").run()
    at.text_input(key="providers_name_new").input("Dr Ada Lane")
    _press(at, "Save provider")
    at.switch_page("app_pages/schedules.py").run()
    assert not at.exception, at.exception
    assert at.info[0].value.startswith("Dr Ada Lane works at no clinic yet: tick their clinics")
    assert not at.get("data_editor") and not at.selectbox(key="schedules_provider").disabled
    at.switch_page("app_pages/providers.py").run()
    box = at.selectbox(key="providers_pick")
    box.select_index(box.options.index("Dr Ada Lane")).run()
    at.multiselect(key="providers_clinics_1").set_value([2])  # New York East
    _press(at, "Save provider")
    at.switch_page("app_pages/schedules.py").run()
    assert at.selectbox(key="schedules_clinic").options == ["New York East (Europe/London)"]


def test_front_desk_staff_are_not_sent_to_set_up_steps(empty_app):
    """Before the clinic exists, Today tells the owner what to do next; a front-desk
    colleague, who may not set up the practice, is not sent there."""
    at = empty_app
    at.switch_page("app_pages/users.py").run()
    at.text_input(key="users_new_username").input("fran")
    at.text_input(key="users_new_name").input("Fran Desk")
    at.text_input(key="users_new_password").input("violet harbour kettle mosaic")
    _press(at, "Create user")
    desk = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    _sign_in(desk, "fran", "violet harbour kettle mosaic")
    _choose_own(desk, "violet harbour kettle mosaic", "lantern orchard pebble rowing")
    assert desk.title[0].value == "Today"
    assert desk.info[0].value.startswith("There is no clinic yet.")
    assert not [e for e in desk.get("page_link") if e.proto.label.startswith("Next: ")]
