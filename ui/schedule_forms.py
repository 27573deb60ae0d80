"""The weekly hours form of the Provider schedules page: a working day per weekday at a
clinic, in the clinic's time, as one editable table (a row per weekday: works, from, to and an
optional break, so 09:00–17:00 with lunch 13:00–14:00 is one row)."""

from __future__ import annotations

from datetime import time

import pandas as pd
import streamlit as st

from core.kernel.money import weekday_name
from core.practice.choices import ClinicChoice, ProviderChoice
from core.scheduling import schedules
from ui.context import actor, read, refresh, run_action
from ui.locale import table_clock
from ui.setup_forms import NEXT_KEY, show_next_step_after_save
from ui.text import escape

# one table, not fourteen time pickers: each picker is a select that costs the browser about
# 12 ms to draw, most of this page's time (bench.browser); the table draws in one canvas
COLUMNS = ("Day", "Works", "From", "To", "Break from", "Break to")
LEFT_KEY = "schedules_left_outside"  # (count, first few) after saving hours


def _week(days: dict[int, schedules.WorkDay], locale: str) -> pd.DataFrame:
    rows = []
    for weekday in range(7):
        day = days.get(weekday)
        rows.append(
            {
                "Day": weekday_name(weekday, locale),
                "Works": day is not None,
                "From": day.starts if day else time(9),
                "To": day.ends if day else time(17),
                "Break from": day.break_starts if day else None,
                "Break to": day.break_ends if day else None,
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _time(value) -> time | None:
    return None if pd.isna(value) else value


def _days(table: pd.DataFrame) -> list[schedules.WorkDay]:
    """The working days of the edited table; a cleared time is None (core says what to fix)."""
    return [
        schedules.WorkDay(weekday, *(_time(value) for value in row[2:]))
        for weekday, row in enumerate(table.itertuples(index=False))
        if row.Works
    ]


def weekly_hours_form(
    provider: ProviderChoice, clinic: ClinicChoice, hours: list[schedules.HoursRow]
) -> None:
    """A row per weekday (works, from, to, break) filled from `hours`; saving replaces the
    week (a day left as it was keeps its periods)."""
    clock = table_clock(clinic.locale)  # the clinic's, not the browser's
    with st.form(f"schedules_week_{provider.id}_{clinic.id}"):
        st.markdown(f"**Weekly hours at {escape(clinic.name)}** (clinic time)")
        st.caption(
            "Tick the days worked; double-click a time to change it. A break (lunch) splits "
            "the day; leave it empty for none."
        )
        edited = st.data_editor(
            _week(schedules.week_of(hours), clinic.locale),
            hide_index=True,
            num_rows="fixed",
            width="content",
            key=f"schedules_hours_{provider.id}_{clinic.id}",
            column_config={
                "Day": st.column_config.TextColumn("Day", disabled=True, width=160),
                "Works": st.column_config.CheckboxColumn("Works", width=80),
                "From": st.column_config.TimeColumn("From", format=clock, step=900, width=120),
                "To": st.column_config.TimeColumn("To", format=clock, step=900, width=120),
                "Break from": st.column_config.TimeColumn(
                    "Break from", format=clock, step=900, width=120
                ),
                "Break to": st.column_config.TimeColumn(
                    "Break to", format=clock, step=900, width=120
                ),
            },
        )
        if st.form_submit_button("Save weekly hours", type="primary"):
            if run_action(
                schedules.set_week,
                provider_id=provider.id,
                clinic_id=clinic.id,
                days=_days(edited),
                seen=hours,  # changed at another desk since: refused, not put back
                success="Weekly hours saved.",
            ):
                left = read(schedules.bookings_outside_hours, actor(), provider.id, clinic.id)
                if left[0]:
                    st.session_state[LEFT_KEY] = left
                st.session_state[NEXT_KEY] = True
                refresh()
    show_next_step_after_save()
    left = st.session_state.pop(LEFT_KEY, None)
    if left:  # as time off warns: the bookings these hours no longer cover
        count, first = left
        more = f" and {count - len(first)} more" if count > len(first) else ""
        st.warning(
            escape(
                f"{count} booked appointment(s) fall outside these hours ({'; '.join(first)}"
                f"{more}). They stay booked: move each to a time within the hours or to another "
                "provider, or cancel it as the practice (no fee), on the Calendar."
            )
        )
