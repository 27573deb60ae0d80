"""The patient portal's Streamlit glue (app_pages/portal.py): who is signed in (the portal
cookie, never the staff one), the sign-in form, and one place that runs a portal action and
shows its error. There is no staff actor here: every core call takes the signed-in patient's
id, and core.portal.home only ever touches that patient's rows. Patient text is shown escaped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from core.kernel.errors import DomainError
from core.portal import sign_in
from ui import caches
from ui.context import database, settings, show_error
from ui.text import escape

T = TypeVar("T")
SESSION_KEY = "portal_session_id"
SIGNED_OUT_KEY = "portal_signed_out"
FLASH_KEY = "portal_flash"
LAPSED_KEY = "portal_lapsed"  # this tab's session ended under the patient: say so at sign-in
LAPSED = (
    "You were signed out of the portal after {minutes} minutes without activity (or from "
    "another window), so what you were doing was not sent. Please sign in again below, then "
    "do it once more."
)
# a sign-in request is answered no sooner than this: a known address costs a few milliseconds
# more (a token, a message, an audit row), which the answer's timing must not tell
ANSWER_SECONDS = 0.5


def paced(
    seconds: float,
    work: Callable[[], T],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`work()`, returning no sooner than `seconds` after it began (its transaction is over by
    then: the wait holds no lock)."""
    began = clock()
    try:
        return work()
    finally:
        if (left := seconds - (clock() - began)) > 0:
            sleep(left)


def _cookie() -> str | None:
    try:
        value = st.context.cookies.get(sign_in.COOKIE)
    except Exception:  # no browser behind this run (bare or test execution)
        return None
    return value if isinstance(value, str) else None


def current_patient_id() -> int | None:
    """The signed-in patient for this run, from the portal session (kept in session state, or
    found from the portal cookie after a page load), touched against the idle limit."""
    session_id = st.session_state.get(SESSION_KEY)
    was_signed_in = session_id is not None
    with database().write() as session:
        if session_id is None:
            session_id = sign_in.session_id_for(session, _cookie())
        patient_id = sign_in.touch(session, session_id, settings().portal_idle_minutes)
    if patient_id is None:
        st.session_state.pop(SESSION_KEY, None)
        if was_signed_in:  # a press or a form sent after the idle limit: it did nothing
            st.session_state[LAPSED_KEY] = LAPSED.format(minutes=settings().portal_idle_minutes)
    else:
        st.session_state[SESSION_KEY] = session_id
    return patient_id


def act(service: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Run one portal service in one transaction; show a domain error and return None."""
    try:
        with database().write() as session:
            return service(session, *args, **kwargs)
    except DomainError as error:
        show_error(error)
        return None
    finally:
        caches.clear_for(service)


def flash(message: str) -> None:
    st.session_state[FLASH_KEY] = message
    st.rerun()


def show_flash() -> None:
    if message := st.session_state.pop(FLASH_KEY, None):
        # a sentence from core that may carry money ('Paid $0.50 … the remaining $44.50') or
        # what the patient typed: never markup, and two dollars are no LaTeX
        st.success(escape(message), icon=":material/check_circle:")


def sign_out() -> None:
    """End the portal session on the server and clear the cookie in the browser."""
    with database().write() as session:
        sign_in.end_session(session, st.session_state.pop(SESSION_KEY, None))
    st.session_state[SIGNED_OUT_KEY] = True
    st.session_state[FLASH_KEY] = "You have signed out."
    st.rerun()


def clear_cookie_in_browser() -> None:
    if st.session_state.pop(SIGNED_OUT_KEY, False):
        st.html(
            "<script>fetch('/_clinicdesk/portal/signout', {method: 'POST', "
            "credentials: 'same-origin'})</script>",
            unsafe_allow_javascript=True,
        )


def sign_in_form() -> None:
    st.title("Patient portal")
    show_flash()
    if lapsed := st.session_state.pop(LAPSED_KEY, None):
        st.warning(lapsed, icon=":material/timer_off:")
    clear_cookie_in_browser()
    st.write(
        "Enter the email address or mobile number the practice has for you. We will send you a "
        "sign-in link — no password needed."
    )
    with st.form("portal_sign_in_form"):
        address = st.text_input("Email or mobile number", key="portal_sign_in_address")
        sent = st.form_submit_button("Send me a sign-in link", type="primary")
    if sent:
        try:
            ip = st.context.ip_address
        except Exception:  # no browser behind this run
            ip = None
        ip = ip if isinstance(ip, str) and ip else None
        answer = paced(
            ANSWER_SECONDS,
            lambda: act(sign_in.request_sign_in, address, base_url=settings().base_url, ip=ip),
        )
        if answer:
            st.info(answer, icon=":material/mail:")
