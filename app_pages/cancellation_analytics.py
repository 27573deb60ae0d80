"""Owners and managers: cancellation and no-show figures for a range, clinic, provider and
service, with a what-if on the cancellation window, an audited CSV export and fee waivers."""

from datetime import date, timedelta

import streamlit as st

from core.analytics import cancellation_parts as parts
from core.analytics import cancellations as ca
from core.analytics import confirmations
from core.kernel.authz import Permission
from core.kernel.clock import utcnow
from core.practice import choices as practice_choices
from ui import actor, run_action, shown
from ui import cancellation_view as view
from ui.caches import cached
from ui.context import read
from ui.fees import waiver_panel
from ui.waitlist_views import refill_metrics


@cached("setup", ttl=60, max_entries=5)
def _choices(current):
    return read(
        practice_choices.list_choices,
        current,
        include_inactive=True,
        permission=Permission.ANALYTICS_READ,
    )


@cached("analytics", "appointments", ttl=60, max_entries=30)
def _confirmed(current, start, end, clinic):
    return read(confirmations.confirmation_rate, current, start, end, clinic)


@cached(
    "analytics", "appointments", "policy", ttl=60, max_entries=30, show_spinner="Computing figures…"
)
def _figures(current, filters):
    return read(ca.compute_figures, current, filters)


def _named(rows, label):
    names = {r.id: r.name for r in rows}
    return [None, *names], lambda i: label if i is None else names[i]


st.title("Cancellations and no-shows")
me = actor()
choices = _choices(me)
today = utcnow().date()
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
key_figures = st.container()  # drawn above the section once the figures are computed
names = list(view.SECTIONS)  # one section at a time: only what is shown is computed
section = st.segmented_control("Show", names, default=names[0], key="cancel_section") or names[0]
what_if = view.what_if_inputs() if section == view.WHAT_IF else None
filters = parts.AnalyticsFilters(
    start, end, clinic, provider, service, what_if, view.NEEDS.get(section, frozenset())
)
figures = shown(_figures, me, filters)

with key_figures:
    view.key_figures(figures)
    rate = _confirmed(me, start, end, clinic)  # issue 15: reminders answered with a confirmation
    st.metric(
        "Confirmed by the patient",
        f"{rate.rate:.0%}" if rate.rate is not None else "—",
        help=f"{rate.confirmed} of {rate.reminded} reminded appointments in the range were "
        "confirmed by reminder link or text reply.",
    )
    refill_metrics(me, clinic, start, end)  # the waitlist's refills
view.SECTIONS[section](figures)
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
        file_name=f"cancellations-{start}-{end}.csv",
        key="cancel_download",
    )

if st.toggle("Waive fees and add points", key="cancel_show_fees"):
    waiver_panel(me, "cancel")
