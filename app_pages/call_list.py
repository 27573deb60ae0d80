"""Call list: scheduled visits in the next days with a high predicted no-show risk — one
reminder call each (Shah et al., JGIM 2016: a call above 15% risk cut no-shows by a fifth).
The front desk works it by phone: whether the patient has confirmed, and each call's outcome
recorded; the calls made go under those still to make for the rest of the day."""

import pandas as pd
import streamlit as st

from core.analytics import risk_scores
from core.practice import choices
from ui import actor, run_action
from ui.caches import cached
from ui.context import read
from ui.front_desk import require
from ui.locale import display_format
from ui.picks import gone_choice
from ui.risk import call_list_empty
from ui.text import escape, plain, show_table

FLASH = "call_list_flash"


@cached("setup", ttl=300, max_entries=10)
def _clinics(me):
    return {c.id: c.name for c in read(choices.list_choices, me).clinics}


@cached("analytics", ttl=60, max_entries=5)
def _readiness(me):
    return read(risk_scores.readiness, me)


@cached("appointments", "analytics", ttl=60, max_entries=20)
def _rows(me, clinic_id, days, threshold):
    return read(risk_scores.call_list, me, clinic_id=clinic_id, days=days, threshold=threshold)


def _table(rows, key: str, called: bool) -> None:
    columns = {
        "When": [r.when for r in rows],
        "Patient": [r.patient for r in rows],
        "Phone": [r.phone for r in rows],
        "Provider": [r.provider for r in rows],
        "No-show risk": [r.probability for r in rows],
        "Confirmed": [r.confirmed or "Not confirmed by the patient yet" for r in rows],
        "Last call": [r.call for r in rows],
    }
    if called:
        columns["Note"] = [r.note for r in rows]
    show_table(
        pd.DataFrame(columns, index=pd.Index([r.appointment_id for r in rows], name="Appointment")),
        width="stretch",
        key=key,
        column_config={"No-show risk": st.column_config.ProgressColumn(format="percent")},
    )


st.title("Call list")
me = actor()
clinics = _clinics(me)
require(clinics)
c1, c2, c3 = st.columns(3)
clinic_id = c1.selectbox("Clinic", list(clinics), format_func=clinics.get, key="call_list_clinic")
days = c2.number_input(
    "Days ahead",
    1,
    14,
    3,
    key="call_list_days",
    help="The clinic's days after today: 1 is the rest of today and all of tomorrow.",
)
percent = c3.slider(
    "Risk from", 5, 90, round(risk_scores.HIGH * 100), 5, format="%d%%", key="call_list_threshold"
)
if said := st.session_state.pop(FLASH, None):
    st.success(escape(said), icon=":material/call:")
rows = _rows(me, clinic_id, int(days), percent / 100)
if not rows:
    st.info(call_list_empty(_readiness(me), me, int(days), display_format(clinic_id), percent))
    st.stop()
if len(rows) >= risk_scores.CALL_LIMIT:
    st.warning(
        f"Only the {risk_scores.CALL_LIMIT} visits with the highest risk are listed: there may "
        "be more. Raise 'Risk from' or show fewer days ahead to see them all.",
        icon=":material/filter_list:",
    )
to_call = [r for r in rows if not r.called]
st.caption(
    "Still to call first: visits not confirmed by the patient, by risk band (high, then "
    "medium) and then the soonest visit (a call helps only before the visit); then those the "
    "patient has confirmed, which may still be worth a call."
)
if to_call:
    _table(to_call, "call_list_table", called=False)
else:
    st.success("Every visit on this list has been called today.", icon=":material/done_all:")
if called := [r for r in rows if r.called]:
    st.subheader("Called")
    st.caption("Reached or left a message; no answer stays here for the day it was called.")
    _table(called, "call_list_called", called=True)

by_id = {r.appointment_id: r for r in rows}
# cancelled (or moved out of these days) at another desk since it was chosen: the box would fall
# back to the first visit and the press record the call, its note too, on another patient
if gone := gone_choice("call_list_visit", list(by_id), str, (clinic_id, days, percent)):
    st.warning(
        f"Visit #{gone} left the list meanwhile (cancelled, moved or no longer at risk), so no "
        "call was recorded. Choose the visit and record the call again.",
        icon=":material/sync_problem:",
    )
with st.form("call_list_record", clear_on_submit=True, border=True):
    st.markdown("**Record a call**")
    visit = st.selectbox(
        "Visit",
        list(by_id),
        format_func=lambda i: plain(f"#{i} · {by_id[i].when} · {by_id[i].patient}"),
        key="call_list_visit",
    )
    outcome = st.radio(
        "How did it go",
        list(risk_scores.CALL_OUTCOMES),
        format_func=risk_scores.CALL_OUTCOMES.get,
        horizontal=True,
        key="call_list_outcome",
    )
    note = st.text_input("Note (optional)", max_chars=risk_scores.NOTE_LIMIT, key="call_list_note")
    if (
        st.form_submit_button(
            "Called", type="primary", icon=":material/call:", key="call_list_submit"
        )
        and not gone
    ):
        done = run_action(risk_scores.record_call, visit, outcome, note)
        if done:
            st.session_state[FLASH] = (
                f"Call recorded: {by_id[visit].patient}, "
                f"{risk_scores.CALL_OUTCOMES[outcome].lower()}."
            )
            st.rerun()
