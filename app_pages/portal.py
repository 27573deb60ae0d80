"""The patient portal (/portal), open to patients only through their own portal session.

Signed out: the email-or-phone form that sends a one-time sign-in link. Signed in (an HttpOnly
cookie set by serve.py, 30 minutes idle by default): upcoming appointments with pay, cancel or
reschedule and proposal answers; the calendar; completed visits and surveys; history; points;
the request form; and the waitlist (join, see and withdraw entries). The staff session never
opens it and it never opens a staff page."""

import streamlit as st

from core.portal import home
from ui.caches import cached
from ui.context import database
from ui.patient import escape
from ui.patient_portal import current_patient_id, show_flash, sign_in_form, sign_out, views


@cached("appointments", "patients", "feedback", ttl=30, max_entries=500)
def _home(patient_id: int) -> home.Home:
    with database().read() as session:
        return home.home(session, patient_id)


patient_id = current_patient_id()
if patient_id is None:
    sign_in_form()
    st.stop()

st.session_state["portal_patient_id"] = patient_id
view = _home(patient_id)
top, out = st.columns([5, 1], vertical_alignment="bottom")
top.title(f"Hello {escape(view.first_name)}")
if out.button("Sign out", key="portal_sign_out", icon=":material/logout:"):
    sign_out()
show_flash()
if "paid" in st.query_params:
    st.info("Thank you: your card payment is being confirmed. It shows here within a minute.")


a, b = st.columns(2)
a.metric("Your points", view.count(view.points_balance))
b.metric("Upcoming appointments", view.count(len(view.upcoming)))
if view.locked:
    st.warning(escape(view.locked_text), icon=":material/lock:")

sections = {
    "Upcoming": views.upcoming,
    "Calendar": views.calendar,
    "Visits and surveys": views.visits,
    "History": views.history,
    "Points": views.points,
    "Request": views.request,
    "Waitlist": views.waitlist,
}
# a row of buttons that wraps, not tabs: at 390 px the tabs ran past the screen's edge and
# Points, Request and Waitlist were out of sight. Only the chosen section runs, so the
# calendar is drawn at its visible size.
chosen = st.segmented_control(
    "Section",
    list(sections),
    default="Upcoming",
    required=True,
    key="portal_tab",
    label_visibility="collapsed",
)
sections[chosen or "Upcoming"](view)
