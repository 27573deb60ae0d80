"""Practice: per clinic, when reminders go (offsets, the optional 2-hour text, quiet hours,
whether confirmed appointments still get the last one, the extra reminder of high-risk visits),
whether check-in is messaged, and which events the clinic's inbox hears of — one email each or a
daily digest."""

from datetime import time

import streamlit as st

from core.messaging import preferences as prefs
from core.messaging.reminders import quiet_window_text
from core.practice import choices
from ui import actor, refresh, run_action
from ui.caches import cached
from ui.context import read
from ui.front_desk import require
from ui.locale import clinic_pickers, display_format

OFFSETS = [2, 4, 12, 24, 48, 72, 96, 168]


@cached("setup", ttl=300, max_entries=10)
def _clinics(me):
    return {c.id: c.name for c in read(choices.list_choices, me).clinics}


@cached("setup", "outbox", ttl=30, max_entries=20)
def _current(clinic_id):
    return read(prefs.preferences, clinic_id)


st.title("Reminders and notices")
me = actor()
clinics = _clinics(me)
require(clinics)
clinic_id = st.selectbox("Clinic", list(clinics), format_func=clinics.get, key="messages_clinic")
now = _current(clinic_id)
st.caption(
    f"Now: reminders {', '.join(f'{h} h' for h in now.reminder_hours) or 'off'} before"
    + (" and a text 2 h before" if now.sms_two_hours else "")
    + f"; {quiet_window_text(now, display_format(clinic_id).locale)} (clinic time); "
    + (
        f"high-risk visits get an extra one {now.high_risk_hours} h before."
        if now.high_risk_minutes
        else "no extra reminder for high-risk visits."
    )
)
with st.form("messages_form"):
    st.subheader("Reminders to patients")
    hours = st.multiselect(
        "Send a reminder this many hours before (to every channel the patient agreed to)",
        sorted(set(OFFSETS) | set(now.reminder_hours)),
        default=list(now.reminder_hours),
        key="messages_hours",
    )
    sms_two = st.checkbox(
        "Also a text message 2 hours before", now.sms_two_hours, key="messages_2h"
    )
    a, b = st.columns(2)
    clock = clinic_pickers(clinic_id).clock
    quiet_start = a.time_input(
        "Quiet hours from", now.quiet_start, key="messages_quiet_start", format=clock
    )
    quiet_end = b.time_input("until", now.quiet_end, key="messages_quiet_end", format=clock)
    st.caption("Set both to 00:00 for no quiet hours. A reminder due in them waits for their end.")
    last = st.checkbox(
        "Confirmed appointments still get the last reminder",
        now.confirmed_get_last,
        key="messages_confirmed_last",
    )
    c, d = st.columns(2)
    extra = c.number_input(
        "Extra reminder for visits with a no-show risk of "
        f"{display_format(clinic_id).percent(prefs.HIGH_RISK, 0)} or more, "
        "hours before (0 = none)",
        0,
        prefs.MAX_OFFSET_HOURS,
        now.high_risk_hours,
        key="messages_high_risk_hours",
        help="By text message where the patient agreed to texts, otherwise by email.",
    )
    extra_confirmed = d.checkbox(
        "Confirmed high-risk visits get it too",
        now.high_risk_confirmed,
        key="messages_high_risk_confirmed",
    )
    checked_in = st.checkbox(
        "Message the patient when checked in", now.tell_checked_in, key="messages_checked_in"
    )
    st.subheader("The clinic's inbox")
    events = st.multiselect(
        "Email the clinic when",
        list(prefs.CLINIC_EVENTS),
        default=list(now.clinic_events),
        format_func=prefs.CLINIC_EVENTS.get,
        key="messages_events",
    )
    digest = st.toggle("One daily digest instead", now.clinic_digest, key="messages_digest")
    hour = st.number_input(
        "Digest hour (clinic time)", 0, 23, now.digest_hour, key="messages_digest_hour"
    )
    saved = st.form_submit_button("Save", type="primary")
if saved:
    form = prefs.PreferencesForm(
        reminder_hours=hours,
        sms_two_hours=sms_two,
        quiet_start=quiet_start or time(0),
        quiet_end=quiet_end or time(0),
        confirmed_get_last=last,
        high_risk_hours=int(extra),
        high_risk_confirmed=extra_confirmed,
        tell_checked_in=checked_in,
        clinic_events=events,
        clinic_digest=digest,
        digest_hour=int(hour),
    )
    if run_action(prefs.save_preferences, clinic_id, form, success="Saved."):
        refresh()
st.caption(
    "Patients with reminders switched off get none, but still hear of every change to their "
    "appointment. Message texts are edited on the Notifications page."
)
