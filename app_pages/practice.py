"""Practice set-up: the getting-started checklist (until every step is done), the travel time
between clinics (the owner's) and the test message that proves email or SMS sending works.
Owners and managers act; staff read."""

import streamlit as st

from core.messaging.test_message import send_test_message
from ui import actor, settings
from ui.context import run_in_steps
from ui.job_health import backup_line, failing_list
from ui.setup_forms import can_edit, overview, step_link, steps_of, travel_form
from ui.text import escape

st.title("Practice set-up")
me = actor()
failing_list(me)  # owners and managers: the background jobs failing now
backup_line(me)  # the owner: the last backup, or a warning when there is none of late
steps = steps_of(me)
if steps.complete:
    st.success("Every set-up step is done. Change anything on the pages of this section.")
else:
    st.subheader(f"Getting started: {steps.done_count} of {len(steps.steps)} done")
    for step in steps.steps:
        step_link(me, step)

current = overview(me)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Clinics", sum(c.data.active for c in current.clinics))
c2.metric("Providers", sum(p.data.active for p in current.providers))
c3.metric("Services", sum(s.data.active for s in current.services))
c4.metric("Rooms and equipment", sum(r.data.active for r in current.resources))
travel_form(me)  # the owner sets it; the others read it

st.subheader("Send a test message")
if can_edit(me):
    with st.form("practice_test_message"):
        channel = st.radio(
            "Channel",
            ["email", "sms"],
            format_func={"email": "Email (SMTP)", "sms": "SMS"}.get,
            horizontal=True,
            key="practice_test_channel",
        )
        address = st.text_input("Send it to (email address or phone number)", key="practice_to")
        if st.form_submit_button("Send a test message", type="primary"):
            result = run_in_steps(send_test_message, settings(), channel, address)
            if result:
                (st.success if result.sent else st.error)(escape(result.summary))
else:
    st.caption("The practice owner or a manager sends the test message.")
