"""Shared guards of the front-desk pages (Today, Calendar, booking, check-in, schedules)."""

from __future__ import annotations

from collections.abc import Sized

import pandas as pd
import streamlit as st

from core.kernel.authz import Permission
from core.scheduling import visits
from ui.context import actor
from ui.folds import fold
from ui.setup_forms import next_step
from ui.text import escape, plain, show_table

EMPTY = (
    "There is no {what} yet. Add it on the Practice set-up pages (Practice section), apply a "
    "practice file (`python -m core.cli import-practice FILE.toml`) or load the demo data."
)


def require(items: Sized, what: str = "clinic") -> None:
    """Stop the page with a short explanation when there is nothing to show yet."""
    if not items:
        st.info(EMPTY.format(what=what), icon=":material/info:")
        if (me := actor()) is not None and me.can(Permission.PRACTICE_MANAGE):
            next_step(me)  # a new practice: the set-up step to do now (for who sets up)
        st.stop()


def unconfirmed_panel(calls: list) -> None:
    """Tomorrow's appointments the patient has not confirmed, with their phone numbers (Today).
    Not named 'Call list': that is Front desk → Call list, the visits at high no-show risk."""
    label = f"Unconfirmed for tomorrow: {len(calls) or 'none'} to call"
    if not (box := fold(label, "today_calls_open", icon=":material/call:")):
        return  # folded: the table is drawn only once the desk opens it
    with box:
        if not calls:
            st.caption("Every appointment tomorrow is confirmed.")
            return
        show_table(
            pd.DataFrame(
                {
                    "#": [c.id for c in calls],
                    "Time": [c.time for c in calls],
                    "Patient": [c.patient for c in calls],
                    "Phone": [c.phone for c in calls],
                    "Provider": [c.provider for c in calls],
                    "Service": [c.service for c in calls],
                }
            ),
            hide_index=True,
            width="stretch",
            key="today_calls",
        )


def confirmed_caption(rows: list) -> None:
    """Who confirmed today's appointments (Today), as plain text the desk can scan."""
    done = [r for r in rows if r.confirmed]
    if not done:
        return
    names = " · ".join(f"{r.starts} {r.patient} ({r.confirmed.rsplit(' · ', 1)[-1]})" for r in done)
    st.text(plain(f"Confirmed by the patient: {names}"))


def confirmed_action(box, kind: str, row_id: int, opener: str, answers, says, icon: str) -> bool:
    """A button that opens a warning saying what the action will do, then yes or no: True
    once the yes is pressed. `says` gives the text, or an undo's preview: when its time is
    taken, the double-booking override is offered with it (today_{kind}_double_{row_id})."""
    key = f"today_{kind}_confirm"
    if box.button(opener, key=f"today_{kind}_{row_id}"):
        st.session_state[key] = row_id
    if st.session_state.get(key) != row_id:
        return False
    said = says()
    st.warning(escape(said if isinstance(said, str) else said.text), icon=icon)
    if not isinstance(said, str) and said.clash:
        st.checkbox(visits.DOUBLE_BOOKING_UNDO, key=f"today_{kind}_double_{row_id}")
    yes, no = st.columns(2)
    if yes.button(answers[0], key=f"today_{kind}_yes_{row_id}", type="primary"):
        st.session_state.pop(key, None)
        return True
    if no.button(answers[1], key=f"today_{kind}_no_{row_id}"):
        st.session_state.pop(key, None)
        st.rerun()
    return False
