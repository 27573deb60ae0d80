"""Today: one clinic's day at a glance — by provider, who is expected, waiting, with the
provider or done, how long they waited, and the next step for the selected appointment (the
default page). One table with row selection and one action area, not a row of buttons per
appointment: a 57-provider clinic has hundreds of appointments a day."""

import pandas as pd
import streamlit as st

from core.forms import records
from core.kernel.authz import Permission
from core.practice import choices
from core.scheduling import today, visits
from ui import actor, refresh, risk, run_action, shown
from ui.appointment_views import FLASH, show_flash
from ui.caches import cached
from ui.context import read
from ui.front_desk import confirmed_action, confirmed_caption, require, unconfirmed_panel
from ui.picks import acted, picked
from ui.text import escape, plain, show_table

ICONS = {
    "Expected": "🕘",
    "Not arrived yet": "⏳",
    "Waiting": "🪑",
    "With provider": "🩺",
    "Done": "✅",
    "No-show": "❌",
}
ALL = 0
MEMORY = "today_shown"  # the rows the board showed (ui.picks)


def _finish(done, text: str) -> None:
    """The action's headline (it names the new status), who was told (when a message went or
    was held back), and what it did with money and points (Outcome.money: an undone
    no-show's points on a record merged since)."""
    if done:
        outcome = done.value  # 'Notified: nobody.' only worried the desk after an arrival
        told = outcome.told if outcome.notified or outcome.skipped else ""
        st.session_state[FLASH] = " ".join(filter(None, (text, told, outcome.money)))
        acted(MEMORY)
        refresh()


@cached("setup", ttl=300, max_entries=10)
def _choices(me):
    return read(choices.list_choices, me)


@cached("appointments", "patients", "setup", ttl=15, max_entries=20)
def _rows(me, clinic_id):
    rows = read(today.list_today, me, clinic_id)
    return rows, read(records.form_summaries, me, [r.id for r in rows])


@cached("appointments", "setup", ttl=60, max_entries=20)
def _own_day(me):
    return read(today.own_day, me)


@cached("appointments", "outbox", ttl=60, max_entries=20)
def _calls(me, clinic_id):
    return read(today.call_list, me, clinic_id)


st.title("Today")
me = actor()
show_flash()
found = _choices(me)
clinics = {c.id: c.name for c in found.clinics}
require(clinics)
# a provider who signs in sees their own day first, at the clinic where they work today
mine = _own_day(me)
home = mine.clinic_id if mine and mine.clinic_id in clinics else None
c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
clinic_id = c1.selectbox(
    "Clinic",
    list(clinics),
    list(clinics).index(home) if home else 0,
    format_func=clinics.get,
    key="today_clinic",
)
if c3.button("Refresh", key="today_refresh", icon=":material/refresh:"):
    _rows.clear()
here = next(c for c in found.clinics if c.id == clinic_id)
st.caption(escape(today.board_day(here.name, here.timezone, here.locale)))  # day and zone
rows, forms = _rows(me, clinic_id)
calls = _calls(me, clinic_id)
unconfirmed_panel(calls)
counters = st.container()  # above the table, filled once the provider filter is read
providers = {r.provider_id or ALL: r.provider for r in rows}
if mine and clinic_id in mine.clinic_ids:
    providers.setdefault(mine.provider_id, mine.provider)
options = [ALL, *(p for p in providers if p != ALL)]
provider = c2.selectbox(
    "Provider",
    options,
    options.index(mine.provider_id) if mine and mine.provider_id in options else 0,
    key="today_provider",
    format_func=lambda p: providers.get(p, "All providers") if p else "All providers",
)
if provider:
    rows = [r for r in rows if r.provider_id == provider]
counts = today.stage_counts(rows)  # of the rows shown: a provider's own day when filtered
# a row that wraps, each count as wide as its stage's name: in columns the names were cut
# to 'Not arriv…' and 'With pro…' at 1024 px
tally = counters.container(horizontal=True, key="today_counts")
for stage, count in counts.items():
    tally.metric(f"{ICONS[stage]} {stage}", count, width="content")
confirmed_caption(rows)
if away := today.away_warning(rows):  # nothing left booked with an absent provider unseen
    st.warning(escape(away), icon=":material/event_busy:")
if not rows:
    st.info("No appointments today at this clinic.")
    st.stop()
table = pd.DataFrame(
    {
        "Time": [r.time for r in rows],
        "Patient": [r.patient for r in rows],
        "No-show risk": risk.column(me, [r.id for r in rows]),
        "Stage": [f"{ICONS[r.stage]} {r.stage}" for r in rows],
        "Provider": [f"{r.provider} (on time off)" if r.away else r.provider for r in rows],
        "Service": [r.service for r in rows],
        "Paid": [r.payment for r in rows],
        "Waited": pd.array([r.waited_minutes for r in rows], dtype="Int64"),
        "Confirmed": [r.confirmed.removeprefix("Confirmed by the patient · ") for r in rows],
        "Forms": [forms.get(r.id, "") for r in rows],
    },
    index=pd.Index([r.id for r in rows], name="Appointment"),
)
# ten columns each as wide as its longest cell ran past the page at 1280 px, the risk last
# and off-screen: each has its width, the time and the patient are pinned (they stay while
# the table scrolls sideways) and the risk and the stage follow them, in view at 1024 px
text = st.column_config.TextColumn
board = show_table(
    table,
    hide_index=True,
    width="stretch",
    on_select="rerun",
    selection_mode="single-row",
    key="today_table",
    column_config={
        "Time": text(width=92, pinned=True),
        "Patient": text(width=130, pinned=True),
        "No-show risk": text(width=110, help=risk.COLUMN_HELP),
        "Stage": text(width=130),
        "Provider": text(width=140),
        "Service": text(width=140),
        "Paid": text(width=95),
        "Waited": st.column_config.NumberColumn(
            width=75,
            format="%d min",
            help="Minutes from the patient's arrival to their appointment's time (so far, while "
            "they wait).",
        ),
        "Confirmed": text(width=210, help="When and how the patient confirmed."),
        "Forms": text(width=170),
    },
)
chosen = picked(rows, [r.id for r in rows], board.selection.rows, MEMORY, (clinic_id, provider))
if not chosen:
    st.caption("Select an appointment to mark it arrived, complete or a no-show.")
    st.stop()
row = chosen[0]
st.text(plain(f"{row.time} · {row.patient} · {row.service} · {row.provider} · {row.stage}"))
st.page_link(  # the forms the patient filled in and their answers, the notes, the history
    "app_pages/appointment.py",
    label=f"Open appointment #{row.id}: forms and answers, notes, history",
    query_params={"id": row.id},
    icon=":material/open_in_new:",
)
st.caption(row.confirmed or "Not confirmed by the patient yet.")
risk.badge(me, row.id)
if not me.can(Permission.APPOINTMENTS_CHECK_IN):
    st.stop()
version = dict(expected_version=row.version)
b = st.columns(3)
if row.can_check_in and b[0].button("Arrived", key=f"today_in_{row.id}"):
    _finish(run_action(visits.check_in, row.id, **version), f"{row.patient} arrived.")
if row.can_undo_check_in and b[0].button("Undo check-in", key=f"today_undo_in_{row.id}"):
    _finish(
        run_action(visits.undo_check_in, row.id, **version),
        f"{row.patient}: check-in undone.",
    )
if row.can_complete and b[1].button("Complete", key=f"today_done_{row.id}"):
    _finish(run_action(visits.complete, row.id, **version), f"{row.patient}: done.")
if row.can_no_show and confirmed_action(
    b[2],
    "noshow",
    row.id,
    "No-show…",
    ("Record the no-show", "Keep the appointment"),
    lambda: read(visits.no_show_consequences, me, row.id),
    ":material/warning:",
):
    _finish(
        run_action(visits.mark_no_show, row.id, **version),
        f"{row.patient}: recorded as a no-show.",
    )
if row.can_undo_no_show and confirmed_action(
    b[2],
    "undo_noshow",
    row.id,
    "Undo no-show…",
    ("Undo the no-show", "Keep the no-show"),
    # what is reversed (fee, points, the patient told), a booking holding its time meanwhile,
    # or why it no longer can be
    lambda: shown(read, visits.undo_no_show_preview, me, row.id),
    ":material/undo:",
):
    double = st.session_state.get(f"today_undo_noshow_double_{row.id}", False)
    _finish(
        run_action(visits.undo_no_show, row.id, allow_double_booking=double, **version),
        f"{row.patient}: no-show undone, back to scheduled.",
    )
