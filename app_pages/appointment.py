"""One appointment (`?id=`): patient, service, provider, clinic-local times, who created it,
its notes (who wrote each, when) with a box to add one, the full history, and the actions its
status allows for the signed-in role."""

import streamlit as st

from core.kernel.authz import Permission
from ui import actor, shown
from ui.appointment_messages import messages_panel
from ui.appointment_views import appointment_panel, load_detail, show_flash
from ui.feedback import feedback_panel
from ui.payments_panel import payments_panel
from ui.risk import badge
from ui.waitlist_views import offer_freed_button

st.title("Appointment")
me = actor()
show_flash()
raw = st.query_params.get("id") or st.session_state.get("appointment_id")
typed = st.text_input("Appointment number", value=str(raw or ""), key="appointment_lookup")
if not typed.strip():
    st.info(  # the pages this role has: staff do not work the request queue
        "Open an appointment from Today, the calendar or the request queue, or type its number."
        if me.can(Permission.QUEUE_WORK)
        else "Open an appointment from Today or the calendar, or type its number."
    )
    st.stop()
if not typed.strip().lstrip("#").isdigit():
    st.error("An appointment number is a whole number, like 1234.")
    st.stop()
appointment_id = int(typed.strip().lstrip("#"))
st.query_params["id"] = str(appointment_id)
detail = shown(load_detail, me, appointment_id)
badge(me, appointment_id)
appointment_panel(me, detail, "appointment")
if detail.status == "cancelled":
    offer_freed_button(me, appointment_id, "appointment")
feedback_panel(appointment_id)  # feedback: none / pending / collected, and the request
messages_panel(me, appointment_id)  # forms, text replies, every message
payments_panel(appointment_id)  # paid / deposit badge, payments, refunds, fees
