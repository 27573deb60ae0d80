"""Ask to cancel or reschedule: the policy (and, inside the window, its cost) comes first."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import streamlit as st

from core.portal import patient_links
from ui.locale import date_picker
from ui.patient import mark_done, public_read, public_write, show_done, time_of_day_or_any
from ui.text import escape


def render(token: str) -> None:
    if show_done("change", token):
        return
    view = public_read(patient_links.change_view, token)
    seen = f"patient_change_terms_{hashlib.sha256(token.encode()).hexdigest()[:16]}"
    st.title("Change your appointment")
    a = view.appointment
    st.markdown(
        f"Hello {escape(a.first_name)}, your appointment: **{escape(a.service or 'Appointment')}**"
        f" with {escape(a.provider or 'our team')}, **{escape(a.when)}** at {escape(a.clinic)}."
    )
    if not view.changeable:
        st.info(
            f"{escape(view.reason_not)} Please call the practice on "
            f"{escape(a.clinic_phone)} if you need help."
        )
        return
    if view.policy_text:
        with st.container(border=True):
            st.markdown("**Our cancellation policy**")
            st.text(view.policy_text)
    if view.inside_window:
        costs = [
            f"a fee of {escape(view.fee)}" if view.fee else "",
            f"{view.points} points" if view.points else "",
        ]
        cost = " and ".join(c for c in costs if c) or "no charge"
        st.warning(
            f"Your appointment is less than {view.window_hours} hours away: cancelling now "
            f"costs {cost}."
            + (" The practice will review your request." if view.needs_approval else ""),
            icon=":material/warning:",
        )
    kinds = {"reschedule": "Move it to another day", "cancel": "Cancel it"}
    if not view.cancel_online:
        kinds.pop("cancel")
    if view.reschedules_left <= 0:
        kinds.pop("reschedule")
    if not kinds:
        st.info(f"Please call the practice on {escape(a.clinic_phone)} to change this appointment.")
        return
    wanted = str(st.query_params.get("k", ""))  # a reminder's cancel or reschedule link
    kind = st.radio(
        "What would you like to do?",
        list(kinds),
        index=list(kinds).index(wanted) if wanted in kinds else 0,
        format_func=kinds.get,
        key="patient_change_kind",
        horizontal=True,
    )
    with st.form("patient_change_form"):
        day = moment = None
        if kind == "reschedule":
            day = st.date_input(
                "Preferred day",
                value=None,
                min_value=view.today,
                max_value=view.today + timedelta(days=180),
                format=date_picker(view.appointment.locale),
                key="patient_change_day",
            )
            moment = time_of_day_or_any(view.appointment.locale, "patient_change_time")
        reason = st.text_area("Reason (optional)", max_chars=1000, key="patient_change_reason")
        agreed = st.checkbox("I have read the cancellation policy", key="patient_change_agree")
        submitted = st.form_submit_button(_send_label(view, kind), type="primary")
    if submitted and not agreed:
        st.error("Please confirm that you have read the cancellation policy.")
    elif submitted:
        message = public_write(
            patient_links.submit_change,
            token,
            kind=kind,
            requested_day=day,
            time_of_day=moment,
            reason=reason,
            shown=st.session_state.get(seen),  # the terms of the page the patient pressed on
        )
        if message:
            mark_done("change", token, message)
            st.rerun()
    st.session_state[seen] = view.terms


def _send_label(view: patient_links.ChangeView, kind: str) -> str:
    """What the press does: a cancellation the policy accepts at once (core.requests.changes:
    auto-accepted, or inside the window with no approval needed) is done, and charged, there
    and then, so its button says so; anything else goes to the practice as a request."""
    at_once = view.auto_accept or (view.inside_window and not view.needs_approval)
    return "Cancel my appointment" if kind == "cancel" and at_once else "Send my request"
