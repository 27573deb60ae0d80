"""The appointment's messages: forms sent after booking (outstanding, answered,
signed; resend; answers opened on request and audited), the patient's text replies (outcome,
note, handled by staff), and every message sent, queued or received — the text replies and the
answers texted back among them, in time order — with its delivery status. Shown on the
appointment page; a patient's messages of every appointment on their record."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.forms import after_booking, records
from core.interchange import patient_export
from core.kernel.authz import Permission
from core.kernel.errors import DomainError
from core.messaging import history
from core.messaging.notify import CHANNEL_WORDS, template_title
from core.portal import replies
from ui.caches import cached
from ui.context import read, refresh, run_action, show_error
from ui.text import plain, show_table

STATE_ICONS = {"outstanding": "⏳", "answered": "✅", "signed": "✍️", "read": "👁"}


@cached("appointments", "patients", ttl=15, max_entries=100)
def _forms(me, appointment_id: int):
    return read(records.forms_of, me, appointment_id)


@cached("outbox", "appointments", ttl=15, max_entries=100)
def _replies(me, appointment_id: int):
    return read(replies.list_replies, me, appointment_id=appointment_id)


@cached("outbox", "appointments", ttl=15, max_entries=100)
def _messages(me, appointment_id: int):
    return read(history.messages_of, me, appointment_id)


def _forms_section(me, appointment_id: int) -> None:
    rows = _forms(me, appointment_id)
    st.markdown("**Forms**")
    if not rows:
        st.caption("No questionnaire, consent or instructions were sent for this appointment.")
        return
    st.text(plain(" · ".join(f"{r.kind}: {r.title} — {r.state}" for r in rows)))  # at a glance
    show_table(
        pd.DataFrame(
            {
                "Form": [f"{r.kind}: {r.title} (v{r.version})" for r in rows],
                "State": [f"{STATE_ICONS[r.state]} {r.state}" for r in rows],
                "Sent": [
                    f"not sent: {r.not_sent}" if r.not_sent else f"{r.sent} (×{r.times_sent})"
                    for r in rows
                ],
                "Done": [r.completed for r in rows],
                "Signature": [r.signed for r in rows],
            }
        ),
        hide_index=True,
        width="stretch",
        key=f"appointment_forms_{appointment_id}",
    )
    labels = {r.id: f"{r.kind}: {r.title} — {r.state}" for r in rows}
    picked = st.selectbox(
        "Form", list(labels), format_func=labels.get, key=f"appointment_form_pick_{appointment_id}"
    )
    row = next(r for r in rows if r.id == picked)
    c1, c2 = st.columns(2)
    if row.state == "outstanding" and c1.button("Resend", key=f"appointment_form_resend_{picked}"):
        if done := run_action(after_booking.resend, picked):
            by = " and ".join(CHANNEL_WORDS[n.channel] for n in done.value.notifications)
            st.toast(f"Sent again by {by} with a fresh link; the earlier link no longer works.")
            refresh()
    if row.state in ("answered", "signed") and me.can(Permission.PATIENTS_READ):
        if c2.button("Show answers (audited)", key=f"appointment_form_show_{picked}"):
            done = run_action(records.read_answers, picked)
            if done:
                answers = done.value
                st.text(plain(answers.signed or ""))
                if answers.answers:
                    show_table(
                        pd.DataFrame(answers.answers, columns=["Question", "Answer"]),
                        hide_index=True,
                        key=f"appointment_form_answers_{picked}",
                    )


def _replies_section(me, appointment_id: int) -> None:
    rows = _replies(me, appointment_id)
    if not rows:
        return
    st.markdown("**Text replies**")
    show_table(
        pd.DataFrame(
            {
                "Received": [r.received for r in rows],
                "Text (as typed)": [r.body for r in rows],
                "Outcome": [r.outcome.replace("_", " ") for r in rows],
                "Note": [r.note for r in rows],
                "Handled": ["✓" if r.handled else "" for r in rows],
            }
        ),
        hide_index=True,
        width="stretch",
        key=f"appointment_replies_{appointment_id}",
    )
    waiting = [r for r in rows if r.outcome == "inbox" and not r.handled]
    if waiting and st.button("Mark the replies handled", key=f"appointment_sms_{appointment_id}"):
        for r in waiting:
            run_action(replies.mark_handled, r.id)
        refresh()


def messages_panel(me, appointment_id: int) -> None:
    if not me.can(Permission.NOTIFICATIONS_READ):
        return
    try:
        _forms_section(me, appointment_id)
        _replies_section(me, appointment_id)
        rows = _messages(me, appointment_id)
    except DomainError as error:
        show_error(error)
        return
    st.markdown("**Messages**")
    if not rows:
        st.caption("No message was sent, queued or received for this appointment.")
        return
    _messages_table(rows, key=f"appointment_messages_{appointment_id}")


@cached("outbox", "appointments", "patients", ttl=15, max_entries=100)
def _patient_messages(me, patient_id: int):
    return read(history.messages_of_patient, me, patient_id)


def patient_messages_panel(me, patient_id: int) -> None:
    """The patient's newest messages on their record, whatever appointment they were about
    (reminders, confirmations, forms, invitations) and their text replies."""
    if not me.can(Permission.NOTIFICATIONS_READ):
        return
    st.subheader("Messages")
    try:
        rows = _patient_messages(me, patient_id)
    except DomainError as error:
        show_error(error)
        return
    if not rows:
        st.caption("No message was sent to or received from this patient.")
        return
    if len(rows) >= history.PATIENT_LIMIT:
        st.caption(
            f"The newest {len(rows)} messages; every one is on its appointment's page and "
            "in the patient's file."
        )
    _messages_table(rows, key=f"patients_messages_{patient_id}", appointment=True)


def _messages_table(rows, *, key: str, appointment: bool = False) -> None:
    about = {"Appointment": [f"#{r.appointment_id}" if r.appointment_id else "" for r in rows]}
    show_table(  # a table shows the patient's text as typed, never as formatting
        pd.DataFrame(
            {
                "When": [r.queued for r in rows],
                **(about if appointment else {}),
                # as the Notifications page names it ('Appointment no-show', not its key)
                "Message": [template_title(r.template) for r in rows],
                "Text": [r.text for r in rows],
                "Channel": [r.channel for r in rows],
                "To / from": [r.to_address for r in rows],
                "Status": [r.status for r in rows],
                "Attempts": [r.attempts for r in rows],
                "Sent": [r.sent for r in rows],
                "Error": [r.last_error for r in rows],
            }
        ),
        hide_index=True,
        width="stretch",
        key=key,
    )


def patient_export_button(me, patient_id: int) -> None:
    """The patient's own file (everything held about them: core.interchange.patient_export),
    audited on prepare."""
    if not me.can(Permission.DATA_EXPORT):
        return
    key = f"patients_export_{patient_id}"
    if st.button("Prepare the patient's file (JSON, audited)", key=f"{key}_go"):
        done = run_action(patient_export.export_patient, patient_id)
        if done:
            st.session_state[key] = done.value
    if st.session_state.get(key):
        st.download_button(
            "Download the patient's file",
            st.session_state[key],
            file_name=f"patient-{patient_id}.json",
            mime="application/json",
            key=f"{key}_download",
        )
