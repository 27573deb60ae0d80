"""Answer a proposal: accept or decline the time the practice proposed."""

from __future__ import annotations

import streamlit as st

from core.portal import patient_links
from ui.patient import mark_done, public_read, public_write, show_done
from ui.text import escape


def render(token: str) -> None:
    if show_done("proposal", token):
        return
    try:
        view = public_read(patient_links.proposal_view, token)
    except patient_links.ProposalClosed as closed:  # replaced, answered or lapsed: say so
        st.title("Your proposed appointment")
        st.info(escape(str(closed)))
        return
    st.title("Your proposed appointment")
    st.markdown(f"Hello {escape(view.first_name)}, the practice proposes:")
    st.markdown(
        f"**{escape(view.service or 'Appointment')}** "
        f"with {escape(view.provider or 'our team')}  \n"
        f"**{escape(view.when)}** at {escape(view.clinic)}"
    )
    left, right = st.columns(2)
    answer = None
    if left.button("Accept this time", type="primary", key="patient_proposal_accept"):
        answer = True
    if right.button("Decline", key="patient_proposal_decline"):
        answer = False
    if answer is not None:
        message = public_write(patient_links.answer_proposal, token, accept=answer)
        if message:
            mark_done("proposal", token, message)
            st.rerun()
