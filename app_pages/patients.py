"""Patients: find or add a patient; their record (contact details, postal address, consent),
portal status and invitations."""

import pandas as pd
import streamlit as st

from core.patients import invitations
from core.patients import records as patients
from core.scheduling.states import STATUS_WORDS
from ui import actor, refresh, run_action, settings
from ui.appointment_messages import patient_export_button, patient_messages_panel
from ui.caches import cached
from ui.context import read
from ui.locale import display_format
from ui.patient_merge import flash as merge_flash
from ui.patient_merge import merge_panel, merged_notice, open_pending
from ui.payments_panel import patient_money_panel
from ui.points_panel import points_panel
from ui.portal import (
    edit_form,
    history_table,
    new_patient_form,
    qr_panel,
    remember_qr,
    send_label,
    status_box,
)
from ui.text import escape, plain, show_table

SELECTED = "patients_selected"


@cached("patients", ttl=30, max_entries=50)
def _search(current, text):
    return read(patients.search_patients, current, text)


@cached("patients", "appointments", "policy", "outbox", ttl=30, max_entries=50)
def _record(current, patient_id):
    return read(patients.get_patient_record, current, patient_id), read(
        patients.list_patient_appointments, current, patient_id
    )


st.title("Patients")
me = actor()
open_pending("patients_search")  # after a merge, or from a merged record's notice
text = st.text_input(
    "Find a patient",
    placeholder="Name, email, phone, date of birth or #number",
    key="patients_search",
)
found = _search(me, text) if text.strip() else []
if found:
    chosen = st.selectbox("Matches", found, format_func=lambda p: p.label, key="patients_match")
    st.session_state[SELECTED] = chosen.id
    if found.more:
        st.caption(found.note)
elif text.strip():
    st.caption(
        "No patient matches. Check the spelling, or search by phone, email or date of birth; "
        "or add them below."
    )

new_patient_form(expanded=not found and bool(text.strip()))

patient_id = st.session_state.get(SELECTED)
if patient_id is None:
    st.stop()
record, visits = _record(me, patient_id)
st.header(escape(record.name), divider="gray")
st.caption(f"Patient #{record.id}")
merge_flash()
if record.merged_into:
    merged_notice(record)
left, right = st.columns(2)
with left:
    st.text(
        f"Born: {display_format().day(record.date_of_birth, weekday=False)}"
        if record.date_of_birth
        else "Born: not recorded"
    )
    st.text(plain(f"Email: {record.email or '—'}   Phone: {record.phone or '—'}"))
    st.text(plain(f"Address: {record.address or 'not recorded'}"))
    st.text(plain(f"Next visit: {record.next_visit or 'none booked'}"))
    consent = [
        n
        for n, ok in (
            ("email", record.consent_email),
            ("text messages", record.consent_sms),
            ("marketing", record.consent_marketing),
        )
        if ok
    ]
    held = display_format().number(record.points_balance)  # 1.250 in de-DE
    st.text(f"Consent: {', '.join(consent) or 'none recorded'}   Points: {held}")
    st.text(
        "Reminders: on"
        if record.reminders_enabled
        else "Reminders: off (no appointment reminder is sent; turn on in Edit details)"
    )
with right:
    status_box(record.portal)
    if record.portal.can_send and not record.merged_into:
        a, b = st.columns(2)
        if a.button(send_label(record.portal.status), key="patients_send_invite", type="primary"):
            if run_action(
                invitations.send_invitation,
                patient_id,
                base_url=settings().base_url,
                success="Invitation sent.",
            ):
                refresh()
        if b.button("Print QR for the desk", key="patients_qr"):
            done = run_action(
                invitations.send_invitation, patient_id, base_url=settings().base_url, email=False
            )
            if done:
                remember_qr(done.value)
                refresh()
    qr_panel("patients")

if not record.merged_into:
    edit_form(record)
    merge_panel(me, record)
if message := st.session_state.pop("patients_saved_message", None):
    st.success(escape(message))
if st.session_state.get("patients_offer_invite") == patient_id:
    st.warning(
        "The pending invitation went to an address or number that changed (or that the "
        "patient no longer agrees to be contacted on), so it was revoked. Send a new one to "
        "the details on file now?"
    )
    if st.button("Send a new invitation", key="patients_offer_send"):
        st.session_state.pop("patients_offer_invite")
        if run_action(
            invitations.send_invitation,
            patient_id,
            base_url=settings().base_url,
            success="Invitation sent.",
        ):
            refresh()

st.subheader("Appointments")
show_table(
    pd.DataFrame(
        [
            {
                "When": v.when,
                "Service": v.service,
                "Provider": v.provider,
                "Clinic": v.clinic,
                "Status": STATUS_WORDS[v.status],  # 'no-show', not its stored 'no_show'
                "Booked by": v.booked_by,
            }
            for v in visits
        ]
    ),
    hide_index=True,
    width="stretch",
    key="patients_visits",
)
if len(visits) == patients.VISITS_SHOWN:  # years of visits: the file below holds every one
    st.caption(f"The latest {len(visits)} are shown; the patient's file below lists them all.")
patient_money_panel(me, patient_id)  # what they paid last, and what is owed
patient_export_button(me, patient_id)  # everything held about them, as JSON (audited)
points_panel(me, record)  # the ledger that adds up to the balance, and the change form
patient_messages_panel(me, patient_id)  # reminders, forms, invitations: sent or not, and why
st.subheader("Portal invitations")
history_table(record.invitations, key="patients_history")
