"""Today: one clinic's day at a glance — by provider, who is expected, waiting, with the
provider or done, how long they waited, and the next step for each (the default page)."""

from itertools import groupby

import streamlit as st

from core import lifecycle, schedules, today
from core.authz import Permission
from ui import actor, refresh, run_action
from ui.appointment_views import FLASH, show_flash
from ui.context import read
from ui.front_desk import require

ICONS = {"Expected": "🕘", "Not arrived yet": "⏳", "Waiting": "🪑", "With provider": "🩺",
         "Done": "✅", "No-show": "❌"}  # fmt: skip


def _finish(done, text: str) -> None:
    if done:
        st.session_state[FLASH] = f"{text} {done.value.summary}"
        refresh()


@st.cache_data(ttl=300, max_entries=10, show_spinner=False)
def _clinics(me):
    return {c[0]: c[1] for c in read(schedules.list_clinics, me)}


@st.cache_data(ttl=15, max_entries=20, show_spinner=False)
def _rows(me, clinic_id):
    return read(today.list_today, me, clinic_id)


st.title("Today")
me = actor()
show_flash()
clinics = _clinics(me)
require(clinics)
c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
clinic_id = c1.selectbox("Clinic", list(clinics), format_func=clinics.get, key="today_clinic")
if c2.button("Refresh", key="today_refresh", icon=":material/refresh:"):
    _rows.clear()
rows = _rows(me, clinic_id)
counts = today.stage_counts(rows)
for column, (stage, count) in zip(st.columns(len(counts)), counts.items(), strict=True):
    column.metric(f"{ICONS[stage]} {stage}", count)
if not rows:
    st.info("No appointments today at this clinic.")
can_act = me.can(Permission.APPOINTMENTS_CHECK_IN)
for provider, group in groupby(rows, key=lambda r: r.provider):
    st.subheader(provider, divider="gray")
    for row in group:
        c = st.columns([1.2, 2.5, 2, 1.6, 1, 1, 1, 1], vertical_alignment="center")
        c[0].text(row.time)
        c[1].text(row.patient)
        c[2].text(row.service)
        c[3].text(f"{ICONS[row.stage]} {row.stage}")
        c[4].text(f"waited {row.waited_minutes} min" if row.waited_minutes is not None else "")
        version = dict(expected_version=row.version)
        if can_act and row.can_check_in and c[5].button("Arrived", key=f"today_in_{row.id}"):
            _finish(run_action(lifecycle.check_in, row.id, **version), f"{row.patient} arrived.")
        if can_act and row.can_complete and c[6].button("Complete", key=f"today_done_{row.id}"):
            _finish(run_action(lifecycle.complete, row.id, **version), f"{row.patient}: done.")
        if can_act and row.can_no_show and c[7].button("No-show", key=f"today_noshow_{row.id}"):
            _finish(
                run_action(lifecycle.mark_no_show, row.id, **version), f"{row.patient}: no-show."
            )
