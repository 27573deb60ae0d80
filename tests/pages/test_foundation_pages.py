"""Every page for every role, sign-in, lockout, first run, and the owner's admin pages."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import update
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

from core.kernel import accounts
from core.kernel.authz import MATRIX
from core.kernel.config import load_settings
from core.startup import open_database
from db.models import Provider, Role, User, UserSession
from db.types import utcnow
from tests.pages.conftest import ROOT, told_to_show
from ui.navigation import PAGES

ROLE_USERS = {Role.OWNER: "owner", Role.MANAGER: "manager", Role.STAFF: "staff"}
CASES = [(role, spec) for role in Role for spec in PAGES if spec.permission in MATRIX[role]]


@pytest.mark.parametrize(("role", "spec"), CASES, ids=[f"{r.value}-{s.file}" for r, s in CASES])
def test_every_page_runs_for_every_role_that_may_see_it(app_as, role, spec):
    if not spec.path.exists():
        pytest.fail(f"{spec.file} is declared in ui/navigation.py but not written yet")
    at = app_as(ROLE_USERS[role], f"app_pages/{spec.file}")
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="sign_in_username").input(username)
    at.text_input(key="sign_in_password").input(password)
    return at.button(key="FormSubmitter:sign_in_form-Sign in").click().run()


def test_sign_in_shows_the_roles_navigation_and_sign_out_ends_it(app_as):
    at = app_as(None)
    assert at.title[0].value == "ClinicDesk"
    _sign_in(at, "staff", "staff-demo-pass")
    assert not at.exception and "Sam Staff" in at.sidebar.caption[0].value
    at.button(key="app_sign_out").click().run()
    assert at.text_input(key="sign_in_username") is not None
    assert "signed out" in at.info[0].value


def test_the_navigation_is_built_once_per_session_and_role(app_as):
    """Each run reuses the session's page objects (st.Page reads the disk when built); another
    session builds its own."""
    at = app_as("manager", "app_pages/queue.py")
    sections, landing = at.session_state["app_pages_manager"]
    at.switch_page("app_pages/calendar.py").run()
    assert not at.exception and at.title[0].value == "Calendar"
    assert at.session_state["app_pages_manager"][1] is landing
    other = app_as("manager")
    assert other.session_state["app_pages_manager"][1] is not landing
    titles = [p.title for pages in sections.values() for p in pages if p.visibility == "visible"]
    assert "Request queue" in titles and "Users" not in titles
    # the Users address is there, hidden, and says whose page it is (test below)
    assert [p.url_path for pages in sections.values() for p in pages if p.title == "Users"] == [
        "users"
    ]


def test_wrong_password_gets_one_message_and_five_lock_the_account(app_as):
    at = app_as(None)
    for _ in range(5):
        _sign_in(at, "manager", "wrong password")
        assert at.error[0].value == accounts.SIGN_IN_FAILED
    _sign_in(at, "manager", "manager-demo-pass")  # locked now: the same answer
    assert at.error[0].value == accounts.SIGN_IN_FAILED
    _sign_in(at, "nobody", "wrong password")
    assert at.error[0].value == accounts.SIGN_IN_FAILED
    # the manager knew their password: the owner unlocks it (before: only a reset was offered)
    owner = app_as("owner", "app_pages/users.py")
    users = owner.dataframe[0].value
    assert users[users.Username == "manager"].iloc[0]["Locked until"] != ""
    owner.selectbox(key="users_chosen").select_index(users.Username.tolist().index("manager")).run()
    assert owner.warning[0].value.startswith("Max Manager is locked out until ")
    owner.button(key="users_unlock").click().run()
    assert not owner.error and "users_unlock" not in [b.key for b in owner.button]
    assert owner.dataframe[0].value.set_index("Username").at["manager", "Locked until"] == ""
    _sign_in(at, "manager", "manager-demo-pass")
    assert not at.error and "Max Manager" in at.sidebar.caption[0].value


def test_a_single_sign_on_session_left_idle_asks_to_sign_in_again(app_db):
    """Before, the identity provider's sign-in (kept by the browser for weeks) started a new
    session on the very run the idle one ended: a desk signed in that way never timed out."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback"}
    signed_in_there = int((utcnow() - timedelta(minutes=1)).timestamp())
    at.user = {"is_logged_in": True, "email": "manager@clinicdesk.example", "iat": signed_in_there}
    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:  # the owner's reset: not asked for it (that test too)
        session.execute(
            update(User).where(User.username == "manager").values(password_change_due=True)
        )
    at.run()
    assert "Max Manager" in at.sidebar.caption[0].value
    assert at.title[0].value != "Choose your own password" and not at.error
    with database.write() as session:  # nine hours without a click
        session.execute(update(UserSession).values(last_seen_at=utcnow() - timedelta(hours=9)))
    database.dispose()
    at.run()
    assert at.title[0].value == "ClinicDesk" and not at.sidebar.caption and not at.error
    assert at.info[0].value.startswith("Your session ended (it was left idle too long")
    assert at.button(key="sign_in_oidc").label == "Sign in with your organisation account"
    fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)  # the next morning
    fresh.secrets["auth"], fresh.user = at.secrets["auth"], at.user
    fresh.run()
    assert not fresh.sidebar.caption and fresh.info[0].value == accounts.SIGN_IN_AGAIN


def test_first_run_creates_the_owner(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("CLINICDESK_DATA_DIR", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    assert at.title[0].value == "Welcome to ClinicDesk"
    at.text_input(key="first_run_username").input("boss")
    at.text_input(key="first_run_name").input("Bea Boss")
    at.text_input(key="first_run_password").input("short")
    at.button[0].click().run()
    assert "at least 10" in at.error[0].value
    at.text_input(key="first_run_password").input("a long enough password")
    at.button[0].click().run()
    assert not at.exception and "Bea Boss" in at.sidebar.caption[0].value


def test_pages_a_role_may_not_use_are_not_registered(app_as):
    at = app_as("staff")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/users.py")


def test_owner_creates_a_user_and_the_audit_log_shows_it(app_as):
    at = app_as("owner", "app_pages/users.py")
    at.text_input(key="users_new_username").input("nina")
    at.text_input(key="users_new_name").input("Nina Nurse")
    at.text_input(key="users_new_password").input("nina-first-password")
    at.button(key="FormSubmitter:users_create-Create user").click().run()
    users = at.dataframe[0].value
    assert not at.error and "nina" in users["Username"].tolist()
    nina = users[users.Username == "nina"].iloc[0]
    assert nina["Locked until"] == "" and nina["Last sign-in"] == ""  # empty, not "None"
    at.switch_page("app_pages/audit_log.py").run()
    table = at.dataframe[0].value
    assert "Account created" in table["Action"].tolist()
    assert not [c for c in table.columns if "UTC" in c]
    created = table[table.Action == "Account created"].iloc[0]
    # the practice's local time in its locale (the demo's clinics are en-GB), and empty cells
    assert re.fullmatch(r"\w{3}, \d{1,2} \w{3} \d{4}, \d{2}:\d{2}", created["When"])
    assert created["Record"] == "Nina Nurse's account" and created["Reason"] == ""
    assert created["Patient"] == "" and created["Change"] == "staff"


def test_a_refused_user_keeps_what_was_typed_and_a_created_one_clears_the_form(app_as):
    at = app_as("owner", "app_pages/users.py")
    typed = {
        "users_new_username": "nina",
        "users_new_name": "Nina Nurse",
        "users_new_email": "nina@example.org",
        "users_new_password": "short",  # refused: too short
    }
    for key, value in typed.items():
        at.text_input(key=key).input(value)
    at.selectbox(key="users_new_role").set_value("manager")
    at.button(key="FormSubmitter:users_create-Create user").click().run()
    assert at.error, "the short password is refused"
    assert {k: at.text_input(key=k).value for k in typed} == typed  # to correct, not retype
    assert at.selectbox(key="users_new_role").value == "manager"
    at.text_input(key="users_new_password").input("nina-first-password")
    at.button(key="FormSubmitter:users_create-Create user").click().run()
    assert not at.error, at.error[0].value
    assert "nina" in at.dataframe[0].value["Username"].tolist()
    assert all(at.text_input(key=k).value == "" for k in typed)  # ready for the next one
    assert at.selectbox(key="users_new_role").value == "staff"


def test_owner_cannot_deactivate_themselves(app_as):
    at = app_as("owner", "app_pages/users.py")
    chooser = at.selectbox(key="users_chosen")
    chooser.select_index(next(i for i, o in enumerate(chooser.options) if "(owner)" in o)).run()
    at.button(key="users_toggle_active").click().run()
    assert "own account" in at.error[0].value


def test_the_user_chosen_shows_their_own_role_and_state_after_a_change(app_as, app_db):
    """Before, the Role box kept the first person's role for whoever was chosen next (Sam
    Staff read 'manager'), and after Deactivate the button still said Deactivate: the box
    held the row read before the change. A deactivation now says what goes on in their name."""
    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:  # Max Manager also sees patients, as Dr Tom Becker
        session.execute(update(Provider).where(Provider.id == 2).values(user_id=2))
    database.dispose()
    at = app_as("owner", "app_pages/users.py")
    chooser = at.selectbox(key="users_chosen")
    for name, role in [
        ("Sam Staff", "staff"),
        ("Olivia Owner", "owner"),
        ("Max Manager", "manager"),
    ]:
        at.selectbox(key="users_chosen").select_index(
            chooser.options.index(f"{name} ({role})")
        ).run()
        boxes = [b for b in at.selectbox if b.label == "Role" and b.key != "users_new_role"]
        assert [b.value for b in boxes] == [role]
    at.button(key="users_toggle_active").click().run()
    assert at.success[0].value.startswith("Max Manager is deactivated: signed out everywhere")
    assert at.warning[0].value.startswith("Their provider record, Dr Tom Becker, is still active")
    assert at.button(key="users_toggle_active").label == "Reactivate"
    at.button(key="users_toggle_active").click().run()
    assert at.success[0].value == "Max Manager is reactivated: they can sign in again."
    assert not at.warning and at.button(key="users_toggle_active").label == "Deactivate"


def test_template_edit_is_previewed_and_bad_placeholders_refused(app_as):
    at = app_as("manager", "app_pages/notifications.py")
    key = "appointment_cancelled"
    at.selectbox(key="notifications_template").select(key).run()
    at.text_area(key=f"notifications_body_{key}").input("Dear {patient_name}, {nonsense}")
    at.button(key="FormSubmitter:notifications_template_form-Save template").click().run()
    assert "Unknown placeholder {nonsense}" in at.error[0].value


def test_a_template_that_cannot_be_sent_is_refused_and_not_previewed(app_as):
    """Before, an unpaired brace was refused on save and then the preview raised ValueError
    ('Single '{' encountered in format string'): the page showed a traceback; and a format
    like {when:%d %B} was saved, breaking every message of the template."""
    at = app_as("manager", "app_pages/notifications.py")
    key = "appointment_cancelled"
    at.selectbox(key="notifications_template").select(key).run()
    save = "FormSubmitter:notifications_template_form-Save template"
    at.text_area(key=f"notifications_body_{key}").input("Dear {patient_name, see you {when")
    at.button(key=save).click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Braces must come in pairs around a placeholder, like {when}. To show a brace itself, "
        "type it twice ({{ or }})."
    ]
    assert "No preview: correct the text first." in [c.value for c in at.caption]
    at.text_area(key=f"notifications_body_{key}").input("See you on {when:%d %B}.")
    at.button(key=save).click().run()
    assert not at.exception and "{when:%d %B} cannot be filled in" in at.error[0].value
    at.text_area(key=f"notifications_body_{key}").input("See you on {when}.")
    at.button(key=save).click().run()
    assert not at.error and "See you on Tue" in " ".join(t.value for t in at.text)


def test_send_due_now_reports_every_outcome_quiet_hours_included(app_as):
    at = app_as("manager", "app_pages/notifications.py")
    at.button(key="notifications_send_due").click().run()
    [done] = at.toast  # shown after the rerun (a st.success before it was never seen)
    assert re.fullmatch(
        r"Sent \d+; retrying later \d+; failed for good \d+; waiting for a transport \d+; "
        r"held for the clinic's quiet hours \d+\.",
        done.value,
    )


def test_unreachable_database_shows_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://clinicdesk:pw@127.0.0.1:9/clinicdesk")
    monkeypatch.setenv("CLINICDESK_DATA_DIR", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    assert "Cannot open the database" in at.error[0].value and "pw" not in at.error[0].value


def test_malformed_setting_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINICDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLINICDESK_IDLE_MINUTES", "soon")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception and "CLINICDESK_IDLE_MINUTES" in at.error[0].value


def test_a_template_saved_before_the_check_is_shown_as_saved_and_said_to_be_unsent(app_as, app_db):
    """Saved by an earlier version past today's check: the editor shows the text as saved, a
    warning says the built-in text is sent meanwhile, and the preview says what to fix."""
    from core.kernel.config import load_settings
    from core.startup import open_database
    from db.models import NotificationTemplate

    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    key, typed = "appointment_cancelled", "See you on {when:%d %B}."
    with database.write() as session:
        session.add(NotificationTemplate(key=key, subject="Cancelled", body=typed))
    database.dispose()
    at = app_as("manager", "app_pages/notifications.py")
    at.selectbox(key="notifications_template").select(key).run()
    assert at.text_area(key=f"notifications_body_{key}").value == typed
    assert [w.value for w in at.warning] == [
        "The saved text cannot be sent as it is, so messages use the built-in text until it "
        "is corrected and saved."
    ]
    assert "{when:%d %B} cannot be filled in" in at.error[0].value
    assert "No preview: correct the text first." in [c.value for c in at.caption]


def test_an_edit_made_before_where_was_added_is_told_and_can_go_back_to_the_built_in(
    app_as, app_db, set_twice
):
    """A confirmation edited before {where} joined the built-in text: before, nothing said
    that its patients are not told where to come, nor what a placeholder means, and the only
    way back was to retype the built-in text (which then lost its own text-message form)."""
    from core.kernel.config import load_settings
    from core.messaging import notify
    from core.startup import open_database
    from db.models import NotificationTemplate

    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    key, typed = "appointment_scheduled", "See you on {when}. To cancel: {link}"
    with database.write() as session:
        session.add(NotificationTemplate(key=key, subject="Booked", body=typed))
    at = app_as("manager", "app_pages/notifications.py")
    at.selectbox(key="notifications_template").select(key).run()
    [told] = [i.value for i in at.info]
    assert "{where} (where to come: the clinic's name and, for a visit in person, its " in told
    assert "- {link}: the patient's link to act on this message (must stay in the text)" in (
        at.expander[0].markdown[0].value.replace("\\", "")
    )
    at.button(key="notifications_reset").click().run()
    assert not at.exception and not at.info and not at.error
    # the boxes hold the built-in text, and the browser is told to show it: their keys popped
    # from the session, it kept showing the edited text, and a Save sent it back
    told_to_show(at.text_area(key=f"notifications_body_{key}"), notify.TEMPLATES[key].body)
    told_to_show(at.text_input(key=f"notifications_subject_{key}"), notify.TEMPLATES[key].subject)
    assert set_twice == []
    with database.write() as session:
        assert session.get(NotificationTemplate, key) is None
    database.dispose()


def test_a_template_saved_meanwhile_by_another_manager_is_shown_in_the_boxes(
    app_as, app_db, set_twice
):
    """Saved by another manager while this editor was open: this save is refused, what was
    typed is shown to copy, and the boxes show the other's text, in the browser too (their keys
    popped from the session, the browser kept showing what was typed, and the next Save sent it
    over the other's)."""
    from core.messaging import notify
    from db.models import User

    key = "appointment_reminder"
    built_in = notify.TEMPLATES[key]
    at = app_as("manager", "app_pages/notifications.py")
    at.selectbox(key="notifications_template").select(key).run()
    theirs = built_in.body.replace("Dear", "Hello", 1)
    assert theirs != built_in.body
    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        owner = session.query(User).filter_by(username="owner").one()
        notify.save_template(
            session, accounts.actor_of(owner), key, built_in.subject, theirs, was=None
        )
    database.dispose()
    mine = built_in.body.replace("Dear", "Hi", 1)
    at.text_area(key=f"notifications_body_{key}").input(mine)
    at.button(key="FormSubmitter:notifications_template_form-Save template").click().run()
    assert at.error, "the save was taken over the other's"
    assert any(mine in c.value for c in at.code)  # what was typed, to copy
    at.run()  # the next run draws the boxes afresh with the other's text
    told_to_show(at.text_area(key=f"notifications_body_{key}"), theirs)
    told_to_show(at.text_input(key=f"notifications_subject_{key}"), built_in.subject)
    assert set_twice == []


def test_the_preview_shows_the_text_message_a_patient_would_get(app_as):
    """A reminder's text has a form of its own (its one link, the confirm link, whole; the
    email has three); once edited, the text is the edited email flattened: the preview shows
    each as it would be sent."""
    at = app_as("manager", "app_pages/notifications.py")
    key = "appointment_reminder"
    at.selectbox(key="notifications_template").select(key).run()
    captions = [c.value.replace("\\", "") for c in at.caption]
    email, text = (t.value for t in at.text[-2:])
    assert text != email  # and what it costs: before, the caption said no more than this
    assert "As a text message: 2 parts (199 characters in the GSM alphabet, 153 a part)" in captions
    assert text.count("http") == 1 and email.count("http") == 3 and len(text) < len(email)
    at.text_area(key=f"notifications_body_{key}").input(
        "See you on {when}, {patient_name}. {confirm_link} {cancel_link} {reschedule_link}"
    )
    at.text_input(key=f"notifications_subject_{key}").input("Reminder")
    at.button(key="FormSubmitter:notifications_template_form-Save template").click().run()
    assert re.fullmatch(r"Reminder\. See you on .+, .+\. (https://\S+ ?){3}", at.text[-1].value)


def test_template_previews_read_as_the_practices_patients_will(app_as, app_db):
    """The sample values follow the practice's first clinic: a Tokyo practice previews yen
    and Japanese dates (before, every preview said £25.00 and 'Tue 01 Dec 2026, 09:30')."""
    import streamlit as st
    from sqlalchemy import update

    from core.kernel.config import load_settings
    from core.startup import open_database
    from db.models import Clinic

    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        session.execute(
            update(Clinic).values(currency="JPY", locale="ja-JP", timezone="Asia/Tokyo")
        )
    database.dispose()
    st.cache_data.clear()
    at = app_as("manager", "app_pages/notifications.py")
    key = "appointment_cancelled"
    at.selectbox(key="notifications_template").select(key).run()
    at.text_area(key=f"notifications_body_{key}").input("{when}{fee}")
    at.run()
    shown = " ".join(t.value for t in at.text)
    assert "￥2,500" in shown and "£" not in shown
    assert "2026年12月1日" in shown  # 09:30 UTC on 1 December is 18:30 in Tokyo


def test_the_address_of_a_page_a_role_may_not_use_says_whose_it_is(app_as):
    """A manager's bookmark of the queue opened by staff: before, Streamlit said "Page not
    found" and ran another page; the queue's own file never runs for staff either way."""
    at = app_as("staff")
    at._page_hash = calc_hash("queue")  # noqa: SLF001 - the browser asks for /queue by its path
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Request queue"
    said = at.warning[0].value
    assert "Request queue is for owners and managers: you are signed in as Sam Staff" in said
    assert "may not work the request queue. Nothing was opened or changed." in said
    assert "Ask a manager" in said
    assert not at.dataframe  # nothing of the queue is shown
    manager = app_as("manager")
    manager._page_hash = calc_hash("users")  # noqa: SLF001
    manager.run()
    assert "Users is for owners: you are signed in as Max Manager" in manager.warning[0].value
    assert "Ask an owner" in manager.warning[0].value
