"""A waitlist offer: the patient takes the freed time (booked through the life cycle) or
passes it on to the next patient in line."""

from __future__ import annotations

import streamlit as st

from core.kernel.money import clinic_time
from core.waitlist import offers
from ui.context import settings
from ui.patient import escape, mark_done, public_read, public_write, show_done


def _accept(session, token: str) -> str:
    appointment = offers.accept_offer(session, token)
    when = clinic_time(appointment.clinic, appointment.start_at, zone=True)
    return f"Thank you: {when} is booked for you. We have sent you the details."


def _decline(session, token: str) -> str:
    offers.decline_offer(session, token, base_url=settings().base_url)
    return "Thank you for letting us know. You stay on our waitlist."


def render(token: str) -> None:
    if show_done("waitlist_offer", token):
        return
    view = public_read(offers.offer_view, token)
    if view.closed:  # taken by another patient, expired, answered: say which
        st.title("This offer is closed")
        st.info(escape(view.closed), icon=":material/event_busy:")
        return
    st.title("A time has freed up for you")
    st.markdown(f"Hello {escape(view.patient_name)}, you are on our waitlist. We can offer:")
    st.markdown(
        f"**{escape(view.service_name)}** with {escape(view.provider_name)}  \n"
        f"**{escape(view.when)}** at {escape(view.clinic_name)}"
    )
    st.caption(escape(f"This offer holds until {view.expires}. {view.terms}".strip()))
    left, right = st.columns(2)
    chosen = None
    if left.button("Book this time", type="primary", key="patient_waitlist_accept"):
        chosen = _accept
    if right.button("No, thank you", key="patient_waitlist_decline"):
        chosen = _decline
    if chosen is not None:
        message = public_write(chosen, token)
        if message:
            mark_done("waitlist_offer", token, message)
            st.rerun()
        if public_read(offers.offer_view, token).closed:  # refused, closed with it (taken):
            st.rerun()  # the page says what became of it, not an error under a live offer
