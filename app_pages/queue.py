"""Managers: the request queue — new requests, reschedule and cancellation requests, and
proposals waiting for the patient — with per-row decisions and bulk approve/decline."""

import pandas as pd
import streamlit as st

from core.requests import bulk, queue
from core.requests.queue import KIND_LABELS, QueueKind
from ui import actor, refresh, risk, run_action
from ui.appointment_views import (
    bulk_results,
    flag_actions,
    pick_row,
    queue_actions,
    show_flash,
)
from ui.caches import cached
from ui.context import read
from ui.folds import fold
from ui.locale import display_format
from ui.text import escape, show_table
from ui.waitlist_views import waitlist_request_button


@cached("appointments", "patients", ttl=10, max_entries=50)
def _queue(me, kind, clinic_id, provider_id, sort, page):
    return read(
        queue.queue_view,
        me,
        kind,
        clinic_id=clinic_id,
        provider_id=provider_id,
        sort=sort,
        page=page,
    )


# the table's cells the panel beside it repeats: at 1280 px the table shows its first four
# columns only (#, patient, service, clinic), and a manager deciding needs when, and with whom
ABOUT = {
    QueueKind.REQUESTS: ("Service", "Requested", "Away"),
    QueueKind.RESCHEDULES: ("Service", "Provider", "Original", "Requested", "Away"),
    QueueKind.CANCELLATIONS: ("Service", "Provider", "Appointment"),
    QueueKind.PROPOSALS: ("Service", "Provider", "Proposed", "Answer by", "Away"),
}


@cached("setup", ttl=300, max_entries=10)
def _options(me):
    return read(queue.filter_options, me)


st.title("Request queue")
me = actor()
flashed = show_flash()
options = _options(me)
clinics, providers = dict(options.clinics), dict(options.providers)
c1, c2, c3, c4 = st.columns([2, 2, 2, 1])
clinic_id = c1.selectbox(
    "Clinic",
    [None, *clinics],
    key="queue_clinic",
    format_func=lambda c: "All clinics" if c is None else clinics[c],
)
provider_id = c2.selectbox(
    "Provider",
    [None, *providers],
    key="queue_provider",
    format_func=lambda p: "All providers" if p is None else providers[p],
)
sort = c3.segmented_control(
    "Sort",
    ["age", "soon"],
    default="age",
    key="queue_sort",
    format_func={"age": "Oldest first", "soon": "Soonest first"}.get,
)
counts, _, limit = _queue(me, QueueKind.REQUESTS, clinic_id, provider_id, sort or "age", 0)
count = display_format(clinic_id).number  # 1.234 waiting in a pt-BR practice
kind = (
    st.segmented_control(
        "Kind",
        list(QueueKind),
        default=QueueKind.REQUESTS,
        key="queue_kind",
        format_func=lambda k: f"{KIND_LABELS[k]} ({count(counts[k])})",
    )
    or QueueKind.REQUESTS
)
# a page past the last (the last item of the last page decided, a narrower filter) shows
# the last page, not "nothing waiting" while the count says otherwise
pages = max(1, -(-counts[kind] // queue.PAGE_SIZE))
if st.session_state.get("queue_page", 1) > pages:
    st.session_state["queue_page"] = pages
page = c4.number_input("Page", min_value=1, max_value=pages, step=1, key="queue_page") - 1
_, rows, _ = _queue(me, kind, clinic_id, provider_id, sort or "age", page)

if box := fold("Stale limit", "queue_stale_open"):
    with box:
        hours = st.number_input(
            "Flag requests waiting longer than (hours)", 1, 720, limit, key="queue_stale_hours"
        )
        if st.button("Save limit", key="queue_stale_save"):
            if run_action(queue.set_stale_hours, int(hours), success="Limit saved."):
                refresh()
if not rows:
    st.info("Nothing waiting here.")
    st.stop()
stale = sum(r.stale for r in rows)
if stale:
    st.warning(f"{stale} waiting longer than {limit} h.", icon=":material/schedule:")
order = "oldest first" if (sort or "age") == "age" else "soonest first"
st.caption(f"Page {count(page + 1)} of {count(pages)} · {count(counts[kind])} waiting, {order}.")
left, right = st.columns([3, 2])
with left:
    event = show_table(
        pd.DataFrame([queue.describe(r) for r in rows]).assign(
            **{"No-show risk": risk.column(me, [r.appointment_id for r in rows])}
        ),
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key=f"queue_table_{kind.value}",
    )
    st.caption("Click a row to decide on it.")
with right:
    scope = (clinic_id, provider_id, sort, page)
    row = pick_row(rows, event.selection.rows, f"queue_position_{kind.value}", scope, flashed)
    st.subheader(f"#{row.appointment_id} · {escape(row.patient_name)}")
    st.page_link(
        "app_pages/appointment.py",
        label="Open the appointment",
        query_params={"id": row.appointment_id},
        icon=":material/open_in_new:",
    )
    cells = queue.describe(row)
    st.markdown("  \n".join(f"**{c}:** {escape(cells[c])}" for c in ABOUT[kind] if cells[c]))
    if row.check:  # a public request's flag (identity, maybe a known patient): in full here
        st.warning(escape(row.check), icon=":material/person_alert:")
        flag_actions(row.check_choices, row.appointment_id, f"queue_flag_{row.appointment_id}")
    said = row.notes if kind == QueueKind.REQUESTS else row.reason
    if said:  # what the patient wrote, whole and as text; the table cell cuts it short
        st.caption(escape(f"{'Notes' if kind == QueueKind.REQUESTS else 'Reason'}: {said}"))
    risk.badge(me, row.appointment_id)
    queue_actions(me, row)
    if kind == QueueKind.REQUESTS:
        waitlist_request_button(me, row.appointment_id)

if kind == QueueKind.REQUESTS:
    with st.container():
        st.subheader("Several at once")
        if not st.toggle("Approve or decline several", key="queue_bulk_on"):
            st.stop()
        picked = st.multiselect(
            "Requests",
            [r.appointment_id for r in rows],
            key="queue_bulk_ids",
            help="Bulk approval takes only requests with an exact, free time.",
        )
        if st.button("Approve selected", key="queue_bulk_approve", disabled=not picked):
            done = run_action(bulk.bulk_approve, picked)
            if done:
                st.session_state["queue_bulk_results"] = done.value
        reason = st.text_input("Reason for declining (required)", key="queue_bulk_reason")
        if st.button("Decline selected", key="queue_bulk_decline", disabled=not picked):
            done = run_action(bulk.bulk_decline, picked, reason)
            if done:
                st.session_state["queue_bulk_results"] = done.value
        if st.session_state.get("queue_bulk_results"):
            bulk_results(st.session_state["queue_bulk_results"])
            if st.button("Clear results and reload", key="queue_bulk_clear"):
                st.session_state.pop("queue_bulk_results")
                refresh()
