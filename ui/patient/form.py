"""A form sent after booking: answer the questionnaire, sign the consent (typed full name and
today's date) or read the instructions. The link works once; the opening is recorded."""

from __future__ import annotations

import hashlib

import streamlit as st

from core.forms import after_booking
from ui.patient import escape, mark_done, public_write, show_done


def _ip() -> str:
    try:
        value = st.context.ip_address
    except Exception:  # no browser behind this run (tests)
        return ""
    return value if isinstance(value, str) else ""


def _view(token: str):
    """Opened (and audited) once per browser session, not on every rerun."""
    key = f"patient_form_view_{hashlib.sha256(token.encode()).hexdigest()[:16]}"
    if key not in st.session_state:
        view = public_write(after_booking.open_form, token, client_address=_ip())
        if view is None:
            st.stop()
        st.session_state[key] = view
    return st.session_state[key]


def _question(q: dict):
    key, label = f"patient_form_q_{q['key']}", str(q.get("label") or q["key"])
    label += "" if q.get("required") else " (optional)"
    kind = q.get("type", "text")
    if kind == "yes_no":
        return st.radio(label, ["yes", "no"], index=None, horizontal=True, key=key)
    if kind == "choice":
        return st.selectbox(label, q.get("options") or [], index=None, key=key)
    if kind == "number":
        return st.number_input(label, value=None, key=key)
    return st.text_area(label, max_chars=4000, key=key, height=80)


def render(token: str) -> None:
    if show_done("form", token):
        return
    view = _view(token)
    st.title(escape(view.title))
    st.caption(escape(f"{view.clinic} · your appointment on {view.when}"))
    if view.body:
        with st.container(border=True):
            st.text(view.body)  # the practice's text, shown as plain text
    with st.form("patient_form"):
        fields: dict = {}
        if view.kind == "questionnaire":
            answers = {q["key"]: _question(q) for q in view.questions}
            fields["answers"] = answers
            label = "Send my answers"
        elif view.kind == "consent":
            st.markdown(
                f"To sign, type your full name ({escape(view.first_name)} and your last name)."
            )
            fields["signed_name"] = st.text_input("Full name", key="patient_form_name")
            fields["signed_on"] = st.date_input(
                "Today's date", value=None, format="DD/MM/YYYY", key="patient_form_date"
            )
            label = "Sign"
        else:
            label = "I have read these instructions"
        submitted = st.form_submit_button(label, type="primary")
    if submitted:
        message = public_write(after_booking.submit_form, token, client_address=_ip(), **fields)
        if message:
            mark_done("form", token, message)
            st.rerun()
