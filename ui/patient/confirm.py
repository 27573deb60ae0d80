"""A reminder's confirm link (the one link of its text): the visit, a button to confirm it, and
two to ask to move or cancel it, which open the change page with the same link (its token
opens the change services too, core.portal.patient_links.CHANGE_PURPOSES)."""

from __future__ import annotations

import streamlit as st

from core.portal import replies
from ui.patient import escape, mark_done, public_read, public_write, show_done

ASK = {"reschedule": "Ask to move it", "cancel": "Ask to cancel it"}


def render(token: str) -> None:
    if show_done("confirm", token):
        _ask_for_a_change()
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
    elif not view.confirmable:
        st.info(
            f"{view.reason_not} Please call the practice on {escape(a.clinic_phone)} if you "
            "need help."
        )
        return
    elif st.button("Yes, I will come", type="primary", key="patient_confirm_yes"):
        message = public_write(replies.confirm_by_link, token)
        if message:
            mark_done("confirm", token, message)
            st.rerun()
    _ask_for_a_change()


def _ask_for_a_change() -> None:
    """The change page, with this link and the choice made (its policy and any fee first)."""
    st.caption("Need to move or cancel it? Our cancellation policy and any fee come first.")
    for column, (kind, label) in zip(st.columns(len(ASK)), ASK.items(), strict=True):
        if column.button(label, key=f"patient_confirm_{kind}"):
            st.query_params["p"], st.query_params["k"] = "change", kind
            st.rerun()
