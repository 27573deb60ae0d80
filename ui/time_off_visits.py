"""The visits caught by a provider's time off, on the Provider schedules page: a row each
(when, patient, treatment, who takes it over: any colleague free then, the first offered) with
its action (move to that colleague, cancel as the practice, leave; a time proposed to the
patient is moved by proposing it again with the colleague), one reason and a waitlist
tick for the cancelled, one button; then what became of each (core.scheduling.cover). The
requests waiting with the provider for a day in it follow, "Requested for" that day: released
to the colleague chosen (none: any provider) or declined as the practice with the reason."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.kernel.money import clinic_time_range
from core.requests.decisions import decline_request, propose_time
from core.scheduling import cover
from core.scheduling.schedules import TimeOffRow
from core.waitlist.entries import add_after_cancellation
from ui.appointment_views import bulk_results
from ui.caches import cached
from ui.context import read, refresh, run_action

PICK_KEY = "schedules_cover_pick"
WANTED_KEY = "schedules_cover_for"  # a time off just added: its visits are shown first
RESULTS_KEY = "schedules_cover_results"
ACTIONS = {
    "Move": cover.Choice.MOVE,
    "Cancel": cover.Choice.CANCEL,
    "Release": cover.Choice.RELEASE,  # a request
    "Decline": cover.Choice.DECLINE,  # a request
    "Leave": None,
}


@cached("setup", "appointments", ttl=30, max_entries=20)
def _visits(me, time_off_id):
    return read(cover.list_time_off_visits, me, time_off_id)


def _labels(rows: list[cover.TimeOffVisit]) -> dict[int, str]:
    """Each colleague free for some row, as the table names them: by name, two of one name
    told apart by number; in name order (the selectbox's options)."""
    everyone = {c.id: c.name for r in rows for c in r.free}
    twice = {n for n in everyone.values() if list(everyone.values()).count(n) > 1}
    named = {i: f"{n} (#{i})" if n in twice else n for i, n in everyone.items()}
    return dict(sorted(named.items(), key=lambda item: item[1]))


def _table(rows: list[cover.TimeOffVisit], labels: dict[int, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "#": r.id,
                "When": r.when,
                "Patient": r.patient,
                "Treatment": r.treatment,
                "Free to take it": labels.get(r.cover_id),
                "Action": "Move" if r.can_move else "Leave",
                "Note": r.note,
            }
            for r in rows
        ]
    )


def _handlings(
    rows: list[cover.TimeOffVisit], table: pd.DataFrame, labels: dict[int, str]
) -> list[cover.Handling]:
    """The rows to handle, each moved to the colleague chosen in its row (the core refuses
    one not free then)."""
    ids = {label: i for i, label in labels.items()}
    return [
        cover.Handling(r.id, choice, ids.get(who), r.version)
        for r, action, who in zip(rows, table["Action"], table["Free to take it"], strict=True)
        if (choice := ACTIONS.get(action)) is not None
    ]


def time_off_visits(me, clinic, away: list[TimeOffRow]) -> None:
    """The chosen time off's booked visits, to be handled in one go."""
    if wanted := st.session_state.pop(WANTED_KEY, None):
        st.session_state[PICK_KEY] = next((t for t in away if t.id == wanted), away[0])
    off = st.selectbox(
        "Booked visits in the time off",
        away,
        key=PICK_KEY,
        format_func=lambda t: clinic_time_range(clinic, t.starts_at, t.ends_at),
    )
    if results := st.session_state.pop(RESULTS_KEY, None):
        bulk_results(results)
    rows = _visits(me, off.id)
    if not rows:
        st.caption("No booked visits fall in this time off.")
        return
    st.caption(
        "Move: to the colleague chosen in its row (the first free then is offered, its note "
        "names any other), same time; a time proposed to the patient is proposed again with "
        "them, the patient sent it anew. Cancel: as the practice, no fee, any prepayment "
        'refunded. A request ("Requested for"): Release it to the colleague chosen, or to '
        "any provider with none chosen, still waiting in the queue; or Decline it. Each "
        "patient cancelled or declined is told the reason; each row is handled on its own."
    )
    labels = _labels(rows)
    key, shown = f"schedules_cover_{off.id}", _table(rows, labels)
    table = st.data_editor(
        shown,
        hide_index=True,
        num_rows="fixed",
        width="stretch",
        key=key,
        disabled=[c for c in shown.columns if c not in ("Free to take it", "Action")],
        column_config={
            "Free to take it": st.column_config.SelectboxColumn(
                "Free to take it", options=list(labels.values())
            ),
            "Action": st.column_config.SelectboxColumn(
                "Action", options=list(ACTIONS), required=True, width=100
            ),
        },
    )
    reason = st.text_input(
        "Reason for cancelling or declining (the patients are told)", key="schedules_cover_reason"
    )
    wait = st.checkbox(
        "Put cancelled patients on the waitlist (same service and clinic)",
        key="schedules_cover_wait",
    )
    if st.button("Handle these visits", key="schedules_cover_go", type="primary"):
        chosen = _handlings(rows, table, labels)
        if not chosen:
            st.info("Every visit is left as it is; nothing was done.")
            return
        done = run_action(
            cover.handle_time_off_visits,
            off.id,
            chosen,
            reason=reason,
            wait_list=add_after_cancellation if wait else None,
            decline=decline_request,
            propose=propose_time,
        )
        if done:
            st.session_state[RESULTS_KEY] = done.value
            for spent in (key, "schedules_cover_reason", "schedules_cover_wait"):
                st.session_state.pop(spent, None)
            refresh()


def added_with_visits(time_off_id: int) -> None:
    """A time off was just added: show its visits next."""
    st.session_state[WANTED_KEY] = time_off_id
