"""A form sent after booking: answer the questionnaire, sign the consent (typed full name and
today's date) or read the instructions. The link works once; the opening is recorded."""

from __future__ import annotations

import hashlib

import streamlit as st

from core.forms import after_booking
from ui.locale import date_picker
from ui.patient import client_address, escape, mark_done, public_write, show_done

# a form's state and what opens it, where forms are listed (the portal, a visit's forms link)
FORM_STATES = {
    "outstanding": ("orange", "To complete"),
    "answered": ("green", "Answered"),
    "signed": ("green", "Signed"),
    "read": ("green", "Read"),
}
FORM_ACTIONS = {"questionnaire": "Answer", "consent": "Read and sign", "instructions": "Read"}


def _view(token: str):
    """Opened (and audited) once per browser session, not on every rerun."""
    key = f"patient_form_view_{hashlib.sha256(token.encode()).hexdigest()[:16]}"
    if key not in st.session_state:
        view = public_write(
            after_booking.open_form,
            token,
            client_address=client_address(),
            closed_title="This form is closed",
        )
        if view is None:  # signed, answered or read already, replaced, its visit closed
            st.stop()
        st.session_state[key] = view
    return st.session_state[key]


def _question(q: dict, prefix: str):
    key, label = f"{prefix}_q_{q['key']}", escape(str(q.get("label") or q["key"]))
    label += "" if q.get("required") else " (optional)"  # the practice's words: never markup
    kind = q.get("type", "text")
    if kind == "yes_no":
        return st.radio(label, ["yes", "no"], index=None, horizontal=True, key=key)
    if kind == "choice":
        return st.selectbox(label, q.get("options") or [], index=None, key=key)
    if kind == "number":
        return st.number_input(label, value=None, key=key)
    return st.text_area(label, max_chars=after_booking.ANSWER_MAX, key=key, height=80)


def fields(view: after_booking.FormView, prefix: str) -> tuple[dict, str]:
    """The form's inputs (inside the caller's st.form) and its button's label; the portal
    draws the same ones with its own key prefix."""
    found: dict = {}
    if view.kind == "questionnaire":
        found["answers"] = {q["key"]: _question(q, prefix) for q in view.questions}
        return found, "Send my answers"
    if view.kind == "consent":
        st.markdown(f"To sign, type your full name ({escape(view.first_name)} and your last name).")
        found["signed_name"] = st.text_input("Full name", key=f"{prefix}_name")
        found["signed_on"] = st.date_input(
            "Today's date", value=None, format=date_picker(view.locale), key=f"{prefix}_date"
        )
        return found, "Sign"
    return found, "I have read these instructions"


def show_document(view: after_booking.FormView) -> None:
    if view.body:
        with st.container(border=True):
            st.text(view.body)  # the practice's text, shown as plain text


def render(token: str) -> None:
    if show_done("form", token):
        return
    view = _view(token)
    st.title(escape(view.title))
    st.caption(escape(f"{view.clinic} · your appointment on {view.when}"))
    show_document(view)
    with st.form("patient_form"):
        answer, label = fields(view, "patient_form")
        submitted = st.form_submit_button(label, type="primary")
    if submitted:
        message = public_write(
            after_booking.submit_form, token, client_address=client_address(), **answer
        )
        if message:
            mark_done("form", token, message)
            st.rerun()
