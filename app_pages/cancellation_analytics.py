"""Owners and managers: the cancellation dashboard — key figures against the previous period
and the charts (by week with a year earlier, weekday and hour, provider, service, lead time);
a click on a bar lists its appointments. Below: reasons and fees, turnaround, repeat patients,
the what-if, the audited CSV export and fee waivers."""

from dataclasses import replace
from datetime import date, timedelta

import streamlit as st

from core.analytics import breakdowns as bd
from core.analytics import cancellation_parts as parts
from core.analytics import cancellations as ca
from core.kernel.clock import utcnow
from core.kernel.errors import DomainError
from ui import actor, run_action, show_error
from ui import cancellation_view as view
from ui.context import read
from ui.fees import waiver_panel
from ui.locale import display_format

# caches are keyed by role, not user: every owner (and every manager) shares one copy; the
# leading underscore keeps the actor out of the key (core still checks its permission)


@st.cache_data(ttl=60, max_entries=5, show_spinner=False)
def _choices(_me, role):
    return read(ca.list_choices, _me)


@st.cache_data(ttl=60, max_entries=60, show_spinner="Computing figures…")
def _figures(_me, role, filters):
    return read(ca.compute_figures, _me, filters)


@st.cache_data(ttl=60, max_entries=60, show_spinner=False)
def _groups(_me, role, filters, group):
    return read(bd.rates_by, _me, filters, group)


@st.cache_data(ttl=60, max_entries=30, show_spinner=False)
def _behind(_me, role, filters, dimension, value):
    return read(bd.appointments_behind, _me, filters, dimension, value)


def _named(pairs, label):
    names = dict(pairs)
    return [None, *names], lambda i: label if i is None else names[i]


st.title("Cancellations and no-shows")
me = actor()
role = me.role.value
choices = _choices(me, role)
today = utcnow().date()


@st.fragment  # a filter change or a click on a bar reruns the dashboard only
def dashboard():
    with st.form("cancel_filters"):
        c1, c2, c3, c4 = st.columns(4)
        # imported history goes back years: not Streamlit's default of ten years back
        days = c1.date_input(
            "Clinic-local days",
            (today - timedelta(days=90), today),
            min_value=date(2000, 1, 1),
            key="cancel_days",
        )
        options, label = _named(choices.clinics, "All clinics")
        clinic = c2.selectbox("Clinic", options, format_func=label, key="cancel_clinic")
        options, label = _named(choices.providers, "All providers")
        provider = c3.selectbox("Provider", options, format_func=label, key="cancel_provider")
        options, label = _named(choices.services, "All services")
        service = c4.selectbox("Service", options, format_func=label, key="cancel_service")
        st.form_submit_button("Apply", type="primary")
    start, end = (days[0], days[-1]) if days else (today, today)
    filters = parts.AnalyticsFilters(
        start, end, clinic, provider, service, None, view.DASHBOARD_PARTS
    )
    st.session_state["cancel_filters_now"] = filters
    length = timedelta(days=(end - start).days + 1)
    before = replace(
        filters, start=start - length, end=start - timedelta(days=1), parts=frozenset()
    )
    year = replace(
        filters, start=start - view.YEAR, end=end - view.YEAR, parts=frozenset({"by_day"})
    )
    fmt = display_format(clinic)
    try:
        figures = _figures(me, role, filters)
        previous = _figures(me, role, before)
        year_before = _figures(me, role, year) if year.start >= date(2000, 1, 1) else None
        groups = [_groups(me, role, filters, g) for g in ("provider", "service")]
    except DomainError as error:
        show_error(error)
        return
    view.key_figures(figures, previous, fmt)
    picked = view.dashboard(figures, year_before, *groups, fmt)
    view.behind(picked, lambda d, v: _behind(me, role, filters, d, v))
    view.more(lambda detail: _figures(me, role, detail), filters, fmt)


dashboard()
filters = st.session_state["cancel_filters_now"]
with st.expander("Formulas"):
    st.markdown(view.FORMULAS)

st.subheader("Export")
if st.button("Prepare CSV export (audited)", key="cancel_export"):
    done = run_action(ca.export_csv, filters)
    if done:
        st.session_state["cancel_export_csv"] = done.value
if st.session_state.get("cancel_export_csv"):
    st.download_button(
        "Download CSV",
        st.session_state["cancel_export_csv"],
        mime="text/csv",
        file_name=f"cancellations-{filters.start}-{filters.end}.csv",
        key="cancel_download",
    )

if st.toggle("Waive fees and add points", key="cancel_show_fees"):
    waiver_panel(me, "cancel")
