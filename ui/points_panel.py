"""The patient's points on their record: the ledger that adds up to the balance, and the form
to add or remove points (for roles that may; core refuses the rest)."""

import pandas as pd
import streamlit as st

from core.kernel.authz import Permission
from core.payments import points
from ui import refresh, run_action
from ui.caches import cached
from ui.context import forget_if_saved, mark_saved, read
from ui.locale import display_format
from ui.text import escape, show_table


@cached("patients", "appointments", "policy", ttl=30, max_entries=50)
def _history(current, patient_id):
    return read(points.points_history, current, patient_id)


def points_panel(me, record) -> None:
    st.subheader("Points")
    held = display_format().number(record.points_balance)
    st.caption(f"Balance: {held} points; the entries below add up to it.")
    when = display_format().moment
    show_table(
        pd.DataFrame(
            [
                {
                    "When": when(r.at),
                    "What": r.what,
                    "Points": r.points,
                    "Balance": r.balance_after,
                    "Appointment": f"#{r.appointment_id}" if r.appointment_id else "",
                    "Reason": r.note,
                }
                for r in _history(me, record.id)
            ]
        ),
        hide_index=True,
        width="stretch",
        key="patients_points",
    )
    if me.can(Permission.POINTS_ADJUST) and not record.merged_into:
        # points changed, the reason leaves its box: a second press (the toast went unseen)
        # asks for a reason instead of changing the points again
        forget_if_saved("patients_points", {"reason": ""})
        with st.form("patients_points_form"):
            st.markdown(f"**Add or remove points** for {escape(record.name)}")  # a name: never bold
            change = st.number_input(
                "Points (negative to remove)", step=5, value=10, key="patients_points_change"
            )
            why = st.text_input(
                "Reason (the patient reads it on their Points tab)", key="patients_points_reason"
            )
            if st.form_submit_button("Change points"):
                done = run_action(points.adjust_points, record.id, int(change), why)
                if done:
                    st.toast(escape(points.adjusted_text(done.value, int(change))))
                    mark_saved("patients_points")
                    refresh()
