"""Confirm an appointment from a reminder's link: one button, then "confirmed"."""

from __future__ import annotations

import streamlit as st

from core.portal import replies
from ui.patient import escape, mark_done, public_read, public_write, show_done


def render(token: str) -> None:
    if show_done("confirm", token):
        return
    view = public_read(replies.confirm_view, token)
    a = view.appointment
    st.title("Confirm your appointment")
    st.markdown(
        f"Hello {escape(a.first_name)}, your appointment: **{escape(a.service or 'Appointment')}**"
        f" with {escape(a.provider or 'our team')}, **{escape(a.when)}** at {escape(a.clinic)}."
    )
    if view.confirmed:
        st.success(f"{view.confirmed}. See you then.", icon=":material/check_circle:")
        return
    if not view.confirmable:
        st.info(
            f"{view.reason_not} Please call the practice on {escape(a.clinic_phone)} if you "
            "need help."
        )
        return
    if st.button("Yes, I will come", type="primary", key="patient_confirm_yes"):
        message = public_write(replies.confirm_by_link, token)
        if message:
            mark_done("confirm", token, message)
            st.rerun()
    st.caption("Need to cancel or move it? Use the other links in your reminder.")
