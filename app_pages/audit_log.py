"""Owner: the audit log, filtered by person, action, patient, appointment and date."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from core.kernel import accounts, audit
from core.kernel.clock import local_days_bounds, to_local, utcnow
from core.patients import invitations
from core.payments import points, prepay
from core.policy.cancellation import FEE_WORDS
from core.scheduling.states import STATUS_WORDS
from ui import actor, shown
from ui.caches import cached
from ui.context import read
from ui.locale import date_picker, display_format, in_currency
from ui.text import show_table

PAGE_SIZE = 200
# the app's stored codes as every other screen names them ('no-show', 'no-show fee', 'to give
# back'), each from its own dictionary; the events stay as recorded
WORDS = audit.value_words(
    STATUS_WORDS,
    FEE_WORDS,
    prepay.KIND_WORDS,
    prepay.STATUS_WORDS,
    points.LABELS,
    invitations.LABELS,
)


@cached("audit", ttl=15, max_entries=50)
def _events(current, user_id, action, patient, appointment_id, since, until, page):
    typed = patient.strip().removeprefix("#").strip()
    rows = read(
        audit.list_log,
        current,
        user_id=user_id,
        action=action or None,
        patient_id=int(typed) if typed.isdigit() else None,
        patient_name=typed if typed and not typed.isdigit() else None,
        appointment_id=appointment_id,
        since=since,
        until=until,
        page=page,
        page_size=PAGE_SIZE,
    )
    shown = display_format()  # the practice's local time and locale, never UTC
    return pd.DataFrame(
        [
            {
                "When": shown.moment(e.at),
                "Who": e.who,
                "Action": e.what,
                "Patient": e.patient,
                "Record": e.record,
                "Open": f"/appointment?id={e.appointment_id}" if e.appointment_id else None,
                # stored codes in words: 'checked_in' reads 'checked-in'
                "Change": audit.change_text(e.from_status, e.to_status, WORDS),
                "Reason": e.reason,
                "Message": e.message,
                # an amount in its clinic's currency, where the event says which clinic
                "Details": audit.details_text(
                    e.details, in_currency(shown, e.currency) if e.currency else shown, WORDS
                ),
            }
            for e in rows
        ]
    )


@cached("audit", "users", ttl=60, max_entries=5)
def _choices(current):
    return read(accounts.list_users, current), read(audit.list_actions, current)


st.title("Audit log")
me = actor()
users, actions = _choices(me)
practice = display_format()  # the practice's time zone: days and times as the clinic lives them
with st.form("audit_filters"):
    c1, c2, c3, c4, c5 = st.columns([1, 1, 1, 0.7, 1.4])  # room for a date range
    user = c1.selectbox(
        "Person",
        [None, *users],
        key="audit_user",
        format_func=lambda u: "Anyone" if u is None else u.display_name,
        help="What they did, and what was done to their account (a wrong password typed as "
        "them, a lock-out, a reset)",
    )
    action = c2.selectbox(
        "Action",
        ["", *actions],
        key="audit_action",
        format_func=lambda a: audit.action_words(a) if a else "Any action",
    )
    patient = c3.text_input("Patient", key="audit_patient", placeholder="Name or #number")
    appointment = c4.number_input(  # empty: any (0 read as a number it is not)
        "Appointment #", min_value=1, step=1, value=None, placeholder="Any", key="audit_appointment"
    )
    today = to_local(utcnow(), practice.timezone).date()
    days = c5.date_input(
        "Dates",
        (today - timedelta(days=30), today),
        key="audit_dates",
        format=date_picker(practice.locale),
    )
    if st.form_submit_button("Apply"):
        st.session_state.audit_page = 0  # new filters start again from the newest events
page = st.session_state.setdefault("audit_page", 0)
since, until = local_days_bounds(days[0], days[-1], practice.timezone) if days else (None, None)
frame = shown(
    _events, me, user.id if user else None, action, patient, appointment or None, since, until, page
)
if frame.empty:
    st.info("No older events match these filters." if page else "No events match these filters.")
else:
    show_table(
        frame,
        hide_index=True,
        width="stretch",
        column_config={"Open": st.column_config.LinkColumn("Open", display_text="Open")},
    )
prev, info, nxt = st.columns([1, 3, 1])
if prev.button("Newer", disabled=page == 0, key="audit_prev"):
    st.session_state.audit_page -= 1
    st.rerun()
info.caption(f"Page {page + 1} · {len(frame)} events shown, newest first")
if nxt.button("Older", disabled=len(frame) < PAGE_SIZE, key="audit_next"):
    st.session_state.audit_page += 1
    st.rerun()
