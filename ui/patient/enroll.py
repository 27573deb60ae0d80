"""Enrolment: the patient confirms their date of birth and accepts the terms."""

from __future__ import annotations

import streamlit as st

from core.patients.records import birth_bounds
from core.portal import patient_links, sign_in
from ui.locale import date_picker
from ui.patient import mark_done, public_read, public_write, show_done
from ui.text import escape

TERMS = (
    "By enrolling you agree that the practice may send you appointment messages by email, and "
    "that you will keep links sent to you private. You can withdraw at any time by contacting "
    "the practice."
)


PORTAL_KEY = "patient_enroll_portal_link"


def render(token: str) -> None:
    if show_done("enroll", token):
        if link := st.session_state.get(PORTAL_KEY):  # enrolment opens the portal
            st.link_button("Open my patient portal", link, type="primary")
        return
    try:
        view = public_read(patient_links.enrollment_view, token)
    except patient_links.EnrolmentClosed as closed:  # enrolled with it, or replaced: say so
        st.title("Patient portal")
        st.info(escape(str(closed)), icon=":material/info:")
        if closed.portal:
            st.link_button("Sign in to my patient portal", "/portal", type="primary")
        return
    st.title("Patient portal")
    clinic = f" to {escape(view.clinic_name)}" if view.clinic_name else ""
    st.markdown(f"Hello {escape(view.first_name)}, welcome{clinic}.")
    if view.held:  # no date of birth on file to confirm: the form could only fail
        st.info(escape(view.held), icon=":material/call:")
        return
    st.write("Please confirm your date of birth so we know it is you, then accept the terms.")
    with st.form("patient_enroll_form"):
        born = st.date_input(
            "Your date of birth",
            value=None,
            **dict(zip(("min_value", "max_value"), birth_bounds(), strict=True)),
            format=date_picker(view.locale),
            key="patient_enroll_dob",
        )
        st.caption(TERMS)
        accepted = st.checkbox("I accept the terms of use", key="patient_enroll_terms")
        submitted = st.form_submit_button("Enrol", type="primary")
    if submitted:
        result = public_write(
            patient_links.enroll, token, date_of_birth=born, accept_terms=accepted
        )
        if result is not None and result.enrolled:
            st.session_state[PORTAL_KEY] = sign_in.sign_in_link("", result.portal_token)
            mark_done("enroll", token, result.message)
            st.rerun()
        elif result is not None:
            st.error(result.message)
