"""The weekly hours form of the Provider schedules page: one period per weekday at a clinic,
in the clinic's time."""

from __future__ import annotations

from datetime import time

import streamlit as st

from core.kernel.money import weekday_name
from core.practice.choices import ClinicChoice, ProviderChoice
from core.scheduling import schedules
from ui.context import refresh, run_action
from ui.text import escape


def weekly_hours_form(
    provider: ProviderChoice, clinic: ClinicChoice, hours: dict[int, schedules.HoursRow]
) -> None:
    """A row per weekday (works, from, to) filled from `hours`; saving replaces the week."""
    with st.form(f"schedules_week_{provider.id}_{clinic.id}"):
        st.markdown(f"**Weekly hours at {escape(clinic.name)}** (clinic time)")
        week = []
        for weekday in range(7):
            # "From" and "To" head the first row only, like a table's header (the other rows
            # keep them for screen readers): a lighter form, the same fields
            shown = "visible" if weekday == 0 else "collapsed"
            row = hours.get(weekday)
            a, b, c = st.columns([1.5, 1, 1], vertical_alignment="bottom")
            works = a.checkbox(
                weekday_name(weekday, clinic.locale),
                value=row is not None,
                key=f"schedules_works_{provider.id}_{clinic.id}_{weekday}",
            )
            starts = b.time_input(
                "From",
                row.starts if row else time(9),
                step=900,
                label_visibility=shown,
                key=f"schedules_from_{provider.id}_{clinic.id}_{weekday}",
            )
            ends = c.time_input(
                "To",
                row.ends if row else time(17),
                step=900,
                label_visibility=shown,
                key=f"schedules_to_{provider.id}_{clinic.id}_{weekday}",
            )
            if works:
                week.append(schedules.HoursRow(weekday, starts, ends))
        if st.form_submit_button("Save weekly hours", type="primary"):
            if run_action(
                schedules.set_weekly_hours,
                provider_id=provider.id,
                clinic_id=clinic.id,
                hours=week,
                success="Weekly hours saved.",
            ):
                refresh()
