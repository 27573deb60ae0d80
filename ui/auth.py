"""Sign-in, first run, sign-out, and the HttpOnly session cookie.

The password form runs in the script; the browser then exchanges a one-time code at
`/_clinicdesk/session` (a route of the st.App in serve.py) for an HttpOnly cookie, which
`st.context.cookies` hands back on the next page load.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import date, datetime, time
from enum import Enum
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core.kernel import accounts
from core.kernel.authz import Actor
from core.kernel.errors import DomainError
from ui.context import (
    client_address,
    database,
    forget_if_saved,
    mark_saved,
    run_in_steps,
    settings,
    show_error,
)

COOKIE = "clinicdesk_session"
SESSION_KEY = "auth_session_id"
ACTOR_KEY = "auth_actor"
HANDOFF_KEY = "auth_handoff"
NOTICE_KEY = "auth_notice"
KEPT_KEY = "auth_kept"
ENDED = (
    "Your session ended (it was left idle too long, you signed out elsewhere, or the owner "
    "changed your account), so nothing was done."
)
# what a person types or picks and a page may be given back: never a button's press (a
# restored press would raise, and must not act again), an upload, a table's selection or edits
_PLAIN = (str, int, float, date, time, datetime, Enum)
_NOT_KEPT = ("auth_", "sign_in_", "first_run_", "app_pages_")


def current_actor() -> Actor | None:
    """Resolve the actor for this run from the server-side session (touching it), else from
    the cookie after a refresh. Sets or clears st.session_state[ACTOR_KEY]."""
    idle = settings().idle_minutes
    session_id = st.session_state.get(SESSION_KEY)
    current = None
    if session_id is not None:  # most runs: one primary-key read, no write lock
        with database().read() as session:
            current = accounts.peek_session(session, session_id, idle)
    if current is None and (session_id is not None or _cookie()):
        with database().write() as session:
            if session_id is not None:
                current = accounts.touch_session(session, session_id, idle)
                if current is None:
                    _keep_what_was_typed()
            else:
                resumed = accounts.resume_session(session, _cookie(), idle)
                current, session_id = resumed if resumed else (None, None)
    if current is None:
        st.session_state.pop(SESSION_KEY, None)
    else:
        st.session_state[SESSION_KEY] = session_id
    st.session_state[ACTOR_KEY] = current
    return current


def signed_fragment(func: Callable | None = None, *, run_every: float | None = None):
    """st.fragment for a part of a page that reads or acts as the signed-in person. Its own
    reruns (a filter inside it, a click on a chart, its timer) skip app.py, where the session
    is checked, and would go on as whoever loaded the page: deactivated, their role changed or
    signed out elsewhere meanwhile. So each of its reruns checks the session first; one that
    has ended reruns the whole app, which asks to sign in (what was typed kept, as for a page)."""

    def wrap(part: Callable) -> Callable:
        @functools.wraps(part)
        def checked(*args, **kwargs):
            ctx = get_script_run_ctx()
            if ctx is not None and ctx.fragment_ids_this_run and current_actor() is None:
                st.rerun(scope="app")
            return part(*args, **kwargs)

        return st.fragment(checked, run_every=run_every)

    return wrap(func) if func is not None else wrap


def _plain(value: Any) -> bool:
    if isinstance(value, bool):  # a checkbox, or a button pressed in this very run
        return False
    if isinstance(value, list | tuple):
        return bool(value) and all(_plain(v) for v in value)
    return isinstance(value, _PLAIN)


def _keep_what_was_typed() -> None:
    """The session ended while a page was open: this run shows the sign-in form instead, and
    Streamlit forgets the values of the page's widgets at its end. What was typed and picked
    is kept for the same person's next sign-in (ui.auth._signed_in puts it back), and the
    notice says that nothing was done."""
    before = st.session_state.get(ACTOR_KEY)
    kept = {
        key: value
        for key, value in st.session_state.to_dict().items()
        if not key.startswith(_NOT_KEPT) and "password" not in key and _plain(value)
    }
    if before is not None and kept:
        st.session_state[KEPT_KEY] = (before.user_id, kept)
        st.session_state[NOTICE_KEY] = (
            f"{ENDED} Sign in again to carry on: what you had typed on the page is kept."
        )
    else:
        st.session_state[NOTICE_KEY] = f"{ENDED} Please sign in again."


def has_users() -> bool:
    with database().read() as session:
        return accounts.count_users(session) > 0


def _cookie() -> str | None:
    try:
        value = st.context.cookies.get(COOKIE)
    except Exception:  # no browser behind this run (bare or test execution)
        return None
    return value if isinstance(value, str) else None


def _signed_in(signed: accounts.SignedIn) -> None:
    kept = st.session_state.pop(KEPT_KEY, None)
    if kept and kept[0] == signed.actor.user_id:  # never shown to someone else
        for key, value in kept[1].items():
            st.session_state[key] = value
    st.session_state[SESSION_KEY] = signed.session_id
    st.session_state[ACTOR_KEY] = signed.actor
    st.session_state[HANDOFF_KEY] = signed.handoff_code
    st.session_state.pop(NOTICE_KEY, None)


def set_cookie_in_browser() -> None:
    """After sign-in: let the browser swap the one-time code for the HttpOnly cookie."""
    code = st.session_state.pop(HANDOFF_KEY, None)
    if code:
        body = json.dumps(f"code={code}")
        st.html(
            "<script>fetch('/_clinicdesk/session', {method: 'POST', credentials: 'same-origin',"
            " headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: "
            f"{body}}})</script>",
            unsafe_allow_javascript=True,
        )


def sign_in_page() -> None:
    st.title("ClinicDesk")
    if notice := st.session_state.get(NOTICE_KEY):
        st.info(notice)
    with st.form("sign_in_form"):
        username = st.text_input("Username", key="sign_in_username")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        # the slow password hashing runs in a read session; only the short bookkeeping
        # (failure count or the new session row) takes the write lock
        db = database()
        result = accounts.sign_in_in_steps(db.read, db.write, username, password, client_address())
        if isinstance(result, DomainError):
            show_error(result)
        else:
            _signed_in(result)
            st.rerun()
    if _oidc_configured():
        st.divider()
        if st.button("Sign in with your organisation account", key="sign_in_oidc"):
            st.login()


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def oidc_sign_in() -> Actor | None:
    """When the identity provider has signed the person in, map them to a local user."""
    if not _oidc_configured() or not getattr(st.user, "is_logged_in", False):
        return None
    email, verified, issued = (st.user.get(c) for c in ("email", "email_verified", "iat"))
    try:
        with database().write() as session:
            signed = accounts.single_sign_on(
                session, email, verified, issued, address=client_address()
            )
    except DomainError as error:
        if not isinstance(error, accounts.SignInAgain):
            show_error(error)
        elif not st.session_state.get(NOTICE_KEY):  # said already when it ended in this tab
            st.session_state[NOTICE_KEY] = str(error)
        return None
    _signed_in(signed)
    return signed.actor


def first_run_page() -> None:
    st.title("Welcome to ClinicDesk")
    st.write("There is no account yet. Create the owner account; you can add colleagues later.")
    with st.form("first_run_form"):
        username = st.text_input("Username", key="first_run_username")
        name = st.text_input("Your name", key="first_run_name")
        email = st.text_input("Email (optional)", key="first_run_email")
        password = st.text_input(
            "Password (10 characters or more; a few unrelated words work well)",
            type="password",
            key="first_run_password",
        )
        submitted = st.form_submit_button("Create owner account", type="primary")
    if submitted:
        try:
            with database().write() as session:
                user = accounts.create_first_owner(session, username, name, password, email)
                signed = accounts.start_session(session, user, via="first run")
        except DomainError as error:
            show_error(error)
            return
        _signed_in(signed)
        st.rerun()


OWN_PASSWORD = ("current", "new", "again")  # keyed auth_own_*: never kept past a session
OWN_OPEN = "auth_own_open"
OWN_DONE = "auth_own_done"  # the confirmation, shown after the rerun


def _change_own(write, actor: Actor, current: str, new: str, **kwargs) -> object:
    """The change in steps (its hashing outside the write): the refusal it returns, or True."""
    refused = accounts.change_own_password(database().read, write, actor, current, new, **kwargs)
    return refused or True


def choose_own_password_page() -> None:
    """Every address while the signed-in person's password was chosen by someone else (a new
    account, the owner's reset): nothing but choosing their own (core refuses the rest)."""
    st.title("Choose your own password")
    st.info(
        "The password you signed in with was chosen by the practice owner (a new account, or "
        "a reset). Choose your own before you carry on: type the one you were given, then "
        "yours twice. Nobody else will know it.",
        icon=":material/key:",
    )
    own_password_form(forced=True)


def own_password_form(forced: bool = False) -> None:
    """The sidebar's "Change your password", for everyone signed in (after the owner's reset of
    a forgotten one, say): the current password, then the new one twice. `forced`: the form
    open with no Close (choose_own_password_page)."""
    forget_if_saved("auth_own", dict.fromkeys(OWN_PASSWORD, ""))
    if said := st.session_state.pop(OWN_DONE, None):
        st.success(said, icon=":material/check_circle:")
    if not forced and not st.session_state.get(OWN_OPEN):  # drawn only once asked for
        if st.button("Change your password", key="auth_own_open_button", icon=":material/key:"):
            st.session_state[OWN_OPEN] = True
            st.rerun()
        return
    with st.form("auth_own_form"):
        st.markdown("**Change your password**")
        current = st.text_input("Current password", type="password", key="auth_own_current")
        new = st.text_input(
            "New password (10 characters or more; a few unrelated words work well)",
            type="password",
            key="auth_own_new",
        )
        again = st.text_input("New password again", type="password", key="auth_own_again")
        if st.form_submit_button("Change password"):
            if new != again:
                st.error("The two new passwords differ; type the same one twice.")
            elif done := run_in_steps(
                _change_own, current, new, keep_session_id=st.session_state.get(SESSION_KEY)
            ):
                if isinstance(done, DomainError):  # a wrong current password, counted (kept)
                    show_error(done)
                    return
                st.session_state[OWN_DONE] = (
                    "Your password is changed. You stay signed in here; anywhere else you "
                    "were signed in is signed out."
                )
                mark_saved("auth_own")
                st.session_state.pop(OWN_OPEN, None)
                st.rerun()
        if not forced and st.form_submit_button("Close"):
            st.session_state.pop(OWN_OPEN, None)
            st.rerun()


def sign_out() -> None:
    session_id = st.session_state.pop(SESSION_KEY, None)
    if session_id is not None:
        with database().write() as session:
            accounts.end_session(session, session_id)
    st.session_state[ACTOR_KEY] = None
    st.session_state[NOTICE_KEY] = "You have signed out."
    st.session_state["auth_clear_cookie"] = True
    if _oidc_configured() and getattr(st.user, "is_logged_in", False):
        st.logout()
    st.rerun()


def clear_cookie_in_browser() -> None:
    if st.session_state.pop("auth_clear_cookie", False):
        st.html(
            "<script>fetch('/_clinicdesk/signout', {method: 'POST', "
            "credentials: 'same-origin'})</script>",
            unsafe_allow_javascript=True,
        )
