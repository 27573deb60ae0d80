"""The patient record's 'Merge into another record' (core.patients.merge): pick the record to
keep, see what moves, confirm with a reason; and the merged record's notice."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.kernel.authz import Actor, Permission
from core.kernel.errors import DomainError
from core.patients import merge
from core.patients import records as patients
from ui.context import read, refresh, run_action, show_error
from ui.locale import display_format
from ui.text import escape, plain, show_table

KEY = "patients_merge"
CHOSEN = f"{KEY}_preview"  # (duplicate id, kept id) whose preview is shown
DONE = f"{KEY}_done"
OPEN = f"{KEY}_open"  # the record to open on the next run, by its number in the search box
CONTACT_WORDS = {"email": "Email", "phone": "Phone"}  # the preview's contact details


def open_pending(search_key: str) -> None:
    """Before the page's search box is drawn: open the record a merge or a notice asked for."""
    if (patient_id := st.session_state.pop(OPEN, None)) is not None:
        st.session_state[search_key] = f"#{patient_id}"


def merged_notice(record) -> None:
    """A merged record's page says where it went and opens it."""
    when = display_format().moment(record.merged_at) if record.merged_at else ""
    st.warning(
        escape(
            f"This record was merged into #{record.merged_into} ({when}). Its appointments, "
            "messages, payments and forms are there now; nothing can be booked, sent or "
            "changed here."
        ),
        icon=":material/call_merge:",
    )
    if st.button(f"Open #{record.merged_into}", key=f"{KEY}_open_kept", type="primary"):
        st.session_state[OPEN] = record.merged_into
        st.rerun()


def flash() -> None:
    if message := st.session_state.pop(DONE, None):
        st.success(escape(message))


def merge_panel(me: Actor, record) -> None:
    """'Merge into another record' for managers and owners: this record is the duplicate."""
    if not me.can(Permission.PATIENTS_MERGE):
        return
    with st.expander(
        "Merge into another record", expanded=st.session_state.get(CHOSEN) is not None
    ):
        st.caption(
            escape(
                f"Use this when #{record.id} is a second record of a person who has another. "
                "Everything on it moves to the record you keep; this one stays, marked merged."
            )
        )
        typed = st.text_input(
            "Find the record to keep",
            placeholder="Name, email, phone, date of birth or #number",
            key=f"{KEY}_search",
        )
        matches = read(patients.search_patients, me, typed) if typed.strip() else []
        found = [p for p in matches if p.id != record.id]
        if typed.strip() and not found:
            st.caption("No other record matches.")
        if not found:
            return
        if matches.more:
            st.caption(matches.note)
        keep = st.selectbox(
            "Record to keep",
            found,
            format_func=lambda p: plain(p.label),
            key=f"{KEY}_keep",
        )
        if st.button("Preview the merge", key=f"{KEY}_preview_button"):
            st.session_state[CHOSEN] = (record.id, keep.id)
        if st.session_state.get(CHOSEN) != (record.id, keep.id):
            return
        _confirm(me, record.id, keep.id)


def _confirm(me: Actor, duplicate_id: int, keep_id: int) -> None:
    try:
        plan = read(merge.preview_merge, me, keep_id, duplicate_id)
    except DomainError as error:  # refused as the merge would be: nothing to confirm
        st.session_state.pop(CHOSEN, None)
        show_error(error)
        return
    show_preview(plan, KEY)
    overlap_ok = bool(plan.overlaps) and st.checkbox(
        "They are one person all the same: merge with the overlap", key=f"{KEY}_overlap"
    )
    reason = st.text_input("Why are these one person's records?", key=f"{KEY}_reason")
    label = f"Merge #{duplicate_id} into #{keep_id}"
    if st.button(label, key=f"{KEY}_confirm", type="primary"):
        done = run_action(
            merge.merge_patients, keep_id, duplicate_id, reason, allow_overlap=overlap_ok
        )
        if done:
            st.session_state.pop(CHOSEN, None)
            st.session_state[DONE] = done.value.message
            st.session_state[OPEN] = keep_id
            refresh("policy", "analytics", "feedback")


def show_preview(plan: merge.MergePreview, key: str) -> None:
    """What a merge will do (core.patients.merge.preview_merge): what moves (of the points,
    those beyond the duplicate's opening balance); each email and phone the records hold
    differently, a line with both values and what the merge does with it; what is filled,
    withdrawn and noted (the opening balance not added among them); appointments at the same
    time. Every typed value as text, never markup. Shown before the Patients page's merge and a
    request flag's. `key`: the table's prefix."""
    keep, gone = plan.keep, plan.duplicate
    st.markdown(escape(f"Keep #{keep.id} {keep.name}; merge #{gone.id} {gone.name} into it."))
    show_table(
        pd.DataFrame(
            [{"Moves to the kept record": w, "How many": n} for w, n in plan.moves]
            + [{"Moves to the kept record": "points", "How many": plan.points}]
        ),
        hide_index=True,
        key=f"{key}_moves",
    )
    # each email and phone that differs, both values and what the merge does, one line each:
    # a table cut the sentence (or the values, in the queue's narrow panel); a line wraps
    lines = [f"{CONTACT_WORDS.get(c.field, c.field)}: {c.does}" for c in plan.contacts]
    if plan.filled:
        lines.append(
            "Filled from the duplicate (blank on the kept record): " + ", ".join(plan.filled)
        )
    lines += [
        f"Withdrawn: {line} (a consent withdrawn on either record stays withdrawn)"
        for line in plan.consents
    ]
    lines += plan.notes
    for line in lines:
        st.text(plain(line))
    if plan.overlaps:
        st.warning(
            escape("Both records have appointments at the same time: " + "; ".join(plan.overlaps))
        )
