"""Provider schedules: weekly hours per clinic (a working day per weekday, with an optional
break) and time off. Bookings outside these hours need an explicit override, which is recorded
on the appointment; time off is never booked into."""

import pandas as pd
import streamlit as st

from core.kernel.clock import local_today, utcnow
from core.kernel.money import clinic_time, clinic_time_range, weekday_name
from core.practice import choices
from core.scheduling import schedules
from ui import actor, refresh, run_action
from ui.caches import cached
from ui.context import forget_if_saved, mark_saved, read, start
from ui.front_desk import require
from ui.locale import pickers
from ui.picks import chosen_done, gone_choice
from ui.schedule_forms import weekly_hours_form
from ui.text import escape, show_table
from ui.time_off_visits import added_with_visits, time_off_visits


@cached("setup", ttl=300, max_entries=10)
def _setup(me):
    found = read(choices.list_choices, me)
    return found.providers, found.clinics


@cached("setup", ttl=30, max_entries=50)
def _hours(me, provider_id, clinic_id):
    return read(schedules.get_hours, me, provider_id, clinic_id)


@cached("setup", "appointments", ttl=30, max_entries=20)
def _time_off(me, provider_id):
    return read(schedules.list_time_off, me, since=utcnow(), provider_id=provider_id)


st.title("Provider schedules")
me = actor()
providers, clinics = _setup(me)
require(clinics)
require(providers, "provider")
c1, c2 = st.columns(2)
provider = c1.selectbox(
    "Provider", providers, format_func=lambda p: p.name, key="schedules_provider"
)
works = [c for c in clinics if c.id in provider.clinic_ids]  # hours only where they work
if not works:
    st.info(
        escape(
            f"{provider.name} works at no clinic yet: tick their clinics on Providers, then set "
            "their hours here."
        ),
        icon=":material/info:",
    )
    st.page_link("app_pages/providers.py", label="Providers", icon=":material/badge:")
    st.stop()
clinic = c2.selectbox(
    "Clinic", works, format_func=lambda c: f"{c.name} ({c.timezone})", key="schedules_clinic"
)
hours = _hours(me, provider.id, clinic.id)
if many := [d for d, n in schedules.periods_of(hours).items() if n > 2]:
    st.info(  # a practice file's day of three periods or more: the table shows its first break
        escape(
            f"{', '.join(weekday_name(d, clinic.locale) for d in many)}: more than one break; "
            "the table shows the first. Left as it is, the day keeps all its periods."
        ),
        icon=":material/info:",
    )

weekly_hours_form(provider, clinic, hours)

st.subheader("Time off")
tz = clinic.timezone
away = _time_off(me, provider.id)
if away:
    show_table(
        pd.DataFrame(
            [
                {
                    "From": clinic_time(clinic, t.starts_at),
                    "To": clinic_time(clinic, t.ends_at),
                    "Reason": t.reason,
                }
                for t in away
            ]
        ),
        hide_index=True,
        width="stretch",
    )

    def span(t) -> str:
        return clinic_time_range(clinic, t.starts_at, t.ends_at)

    # removed at another desk since it was chosen (another provider's list is no such change)
    if moved := gone_choice("schedules_remove_pick", away, span, (provider.id,)):
        st.warning(
            escape(f"The time off {moved} was removed meanwhile; nothing else was removed."),
            icon=":material/sync_problem:",
        )
    leaving = st.selectbox("Remove", away, key="schedules_remove_pick", format_func=span)
    if st.button("Remove this time off", key="schedules_remove") and not moved:
        if run_action(schedules.remove_time_off, leaving.id, success="Time off removed."):
            chosen_done("schedules_remove_pick")
            refresh()
else:
    st.caption(f"{escape(provider.name)} has no time off planned.")
pick, today = pickers(clinic.locale), local_today(tz)  # the clinic's, not the server's
OFF_EMPTY = {"from_day": today, "from_time": None, "to_day": today, "to_time": None, "reason": ""}
forget_if_saved("schedules_off", OFF_EMPTY)  # added: an empty form for the next one
start("schedules_off", OFF_EMPTY)  # its defaults in the state only, not also the widgets' value=
with st.form("schedules_time_off"):  # what was typed stays when it is refused
    a, b, c, d = st.columns(4)
    first = a.date_input("From day", key="schedules_off_from_day", format=pick.date)
    first_at = b.time_input(
        "From time",
        step=900,
        key="schedules_off_from_time",
        format=pick.clock,
        help="Empty: from the start of the day.",
    )
    last = c.date_input("To day", key="schedules_off_to_day", format=pick.date)
    last_at = d.time_input(
        "To time",
        step=900,
        key="schedules_off_to_time",
        format=pick.clock,
        help="Empty: to the end of the day (midnight).",
    )
    reason = st.text_input("Reason", key="schedules_off_reason")
    if st.form_submit_button("Add time off"):
        starts, ends = schedules.time_off_span(first, first_at, last, last_at, tz)
        done = run_action(
            schedules.add_time_off,
            provider_id=provider.id,
            starts_at=starts,
            ends_at=ends,
            reason=reason,
            clinic_id=clinic.id,
            success="Time off added.",
        )
        if done:
            clash = read(schedules.bookings_in_time_off, me, provider.id, starts, ends)
            if clash[0]:
                st.session_state["schedules_clash"] = clash
            added_with_visits(done.value.id)  # its visits and requests are shown next
            mark_saved("schedules_off")
            refresh()
if clash := st.session_state.pop("schedules_clash", None):  # named: the desk calls each
    count, first = clash
    more = f" and {count - len(first)} more" if count > len(first) else ""
    st.warning(
        escape(
            f"{count} booked appointment(s) fall in that time off ({'; '.join(first)}{more}). "
            "Move each to another provider, or cancel it as the practice (no fee), all at "
            "once below or one by one on the Calendar; Today flags each on its day until then."
        )
    )
if away:
    time_off_visits(me, clinic, away)
