"""Front desk: text messages patients sent back that need a person (not a plain C/YES or
X/CANCEL, or one that could not be acted on). Each is kept on its appointment; mark it handled
once dealt with. Texts are shown exactly as typed, never as formatting."""

import pandas as pd
import streamlit as st

from core.portal import replies
from ui import actor, refresh, run_action
from ui.caches import cached
from ui.context import forget_if_saved, mark_saved, read
from ui.picks import acted, picked
from ui.text import escape, show_table


@cached("outbox", "appointments", ttl=15, max_entries=10)
def _inbox(me, open_only: bool):
    return read(replies.list_replies, me, open_only=open_only)


MEMORY = "text_replies_shown"
DONE = "text_replies_handled"  # replies handled in this session: each gives the table a new key
st.title("Text replies")
me = actor()
open_only = st.toggle("Only those waiting for staff", True, key="text_replies_open")
rows = _inbox(me, open_only)
if not rows:
    st.info("No text replies waiting." if open_only else "No text replies yet.")
    st.stop()
# a new grid once a reply is handled: the old one kept its tick on the row that moved up into
# the handled one's place, beside "Select a reply", and a click on that row did nothing
handled = st.session_state.get(DONE, 0)
grid = f"text_replies_table_{handled}" if handled else "text_replies_table"
table = show_table(
    pd.DataFrame(
        {
            "Received": [r.received for r in rows],
            "From": [r.from_number for r in rows],
            "Patient": [r.patient for r in rows],
            "Appointment": [f"#{r.appointment_id}" if r.appointment_id else "" for r in rows],
            "Text (as typed)": [r.body for r in rows],
            "Outcome": [r.outcome.replace("_", " ") for r in rows],
            "Answered by text": [r.answer for r in rows],
            "Note": [r.note for r in rows],
            "Handled": ["✓" if r.handled else "" for r in rows],
        }
    ),
    hide_index=True,
    width="stretch",
    on_select="rerun",
    selection_mode="single-row",
    key=grid,
)
chosen = picked(rows, [r.id for r in rows], table.selection.rows, MEMORY, (open_only,))
if not chosen:
    st.caption("Select a reply to open its appointment or mark it handled.")
    st.stop()
row = chosen[0]
# the reply whole, as typed: the table cuts a long text short, and at 1280 px shows neither
# its outcome nor the answer sent
st.caption(
    escape(
        f"{row.received} · from {row.patient or 'a number not on file'} ({row.from_number})"
        f" · {row.outcome.replace('_', ' ')}" + (" · handled" if row.handled else "")
    )
)
st.text(row.body)
for label, said in (("Answered by text", row.answer), ("Note", row.note)):
    if said:
        st.caption(escape(f"{label}: {said}"))
if row.appointment_id:
    st.page_link(
        "app_pages/appointment.py",
        label=f"Open appointment #{row.appointment_id}",
        query_params={"id": str(row.appointment_id)},
        icon=":material/event_note:",
    )
forget_if_saved("text_replies", {"note": ""})  # a note is for the reply it was typed for
note = st.text_input("Note (optional)", key="text_replies_note")
if not row.handled and st.button("Mark handled", type="primary", key="text_replies_done"):
    if run_action(replies.mark_handled, row.id, note, success="Marked handled."):
        acted(MEMORY)
        mark_saved("text_replies")
        st.session_state[DONE] = st.session_state.get(DONE, 0) + 1
        refresh()
