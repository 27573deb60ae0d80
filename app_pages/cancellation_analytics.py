"""Owners and managers: the cancellation dashboard — key figures against the previous period
and the charts (by week with a year earlier, weekday and hour, provider, service, lead time);
a click on a bar or a heatmap cell lists its appointments. Below: reasons and fees,
turnaround, repeat patients, the what-if, the audited CSV export and fee waivers."""

from dataclasses import replace
from datetime import timedelta

import streamlit as st

from core.analytics import breakdowns as bd
from core.analytics import cancellations as ca
from core.analytics import confirmations
from core.kernel.authz import Permission
from core.kernel.clock import local_today
from core.practice import choices as practice_choices
from ui import actor, run_action, shown
from ui import cancellation_view as view
from ui.auth import signed_fragment
from ui.caches import cached
from ui.cancellation_filters import filters_form
from ui.context import read
from ui.fees import waiver_panel
from ui.locale import display_format
from ui.waitlist_views import refill_metrics

# caches are keyed by role, not user: every owner (and every manager) shares one copy; the
# leading underscore keeps the actor out of the key (core still checks its permission); an
# action clears them by domain (ui.caches)


@cached("setup", ttl=60, max_entries=5)
def _choices(_me, role):
    return read(
        practice_choices.list_choices,
        _me,
        include_inactive=True,
        permission=Permission.ANALYTICS_READ,
    )


@cached("analytics", "appointments", "policy", ttl=60, max_entries=60, show_spinner="Computing…")
def _figures(_me, role, filters):
    return read(ca.compute_figures, _me, filters)


@cached("analytics", "appointments", ttl=60, max_entries=60)
def _groups(_me, role, filters, group):
    return read(bd.rates_by, _me, filters, group)


@cached("analytics", "appointments", ttl=60, max_entries=30)
def _behind(_me, role, filters, dimension, value, counted):
    return read(bd.appointments_behind, _me, filters, dimension, value, counted=counted)


@cached("analytics", "appointments", ttl=60, max_entries=30)
def _confirmed(_me, role, filters):  # the same clinic, provider and service as the figures
    f = filters
    return read(
        confirmations.confirmation_rate,
        _me,
        f.start,
        f.end,
        f.clinic_id,
        f.provider_id,
        f.service_id,
    )


def _behind_pick(pick: view.Pick, filters, year):
    """The appointments behind a click: a dotted point's are of the range a year earlier."""
    shown = year if pick.year_earlier else filters
    return _behind(me, role, shown, pick.dimension, pick.value, pick.counted)


st.title("Cancellations and no-shows")
me = actor()
role = me.role.value
choices = _choices(me, role)
today = local_today(display_format().timezone)  # the practice's day, not the server's


@signed_fragment  # a filter change or a click on a bar reruns the dashboard only
def dashboard():
    filters = filters_form(choices, today, display_format().locale)  # the practice's day order
    start, end, clinic = filters.start, filters.end, filters.clinic_id
    st.session_state["cancel_filters_now"] = filters
    length = timedelta(days=(end - start).days + 1)
    before = replace(
        filters, start=start - length, end=start - timedelta(days=1), parts=frozenset()
    )
    year = ca.a_year_earlier(filters)  # None before 2000
    fmt = display_format(clinic)
    figures = shown(_figures, me, role, filters)
    previous = _figures(me, role, before)
    view.key_figures(figures, previous, fmt)
    rate = _confirmed(me, role, filters)  # reminders answered with a confirmation
    st.metric(
        "Confirmed by the patient",
        fmt.percent(rate.rate, 0),
        help=f"{fmt.number(rate.confirmed)} of {fmt.number(rate.reminded)} reminded "
        "appointments in the range were confirmed by reminder link or text reply.",
    )
    refill_metrics(me, clinic, start, end, filters.provider_id)  # the waitlist's refills
    if figures.totals.booked:
        year_before = _figures(me, role, year) if year else None
        groups = [_groups(me, role, filters, g) for g in ("provider", "service")]
        picked = view.dashboard(figures, year_before, *groups, fmt)
        view.behind(picked, lambda p: _behind_pick(p, filters, year), fmt, filters)
    else:  # one message, not seven empty charts
        view.nothing_booked(figures, fmt)
    currencies = list(figures.revenue_at_risk_cents)
    view.more(lambda detail: _figures(me, role, detail), filters, fmt, currencies)


dashboard()
filters = st.session_state["cancel_filters_now"]
with st.expander("Formulas"):
    st.markdown(view.FORMULAS)

st.subheader("Export")
if st.button("Prepare CSV export (audited)", key="cancel_export"):
    done = run_action(ca.export_csv, filters)
    if done:
        st.session_state["cancel_export_csv"] = (filters, done.value)
prepared = st.session_state.get("cancel_export_csv")
if prepared and prepared[0] == filters:  # the figures of the filters shown, not earlier ones
    st.download_button(
        "Download CSV",
        prepared[1],
        mime="text/csv",
        file_name=f"cancellations-{filters.start}-{filters.end}.csv",
        key="cancel_download",
    )
elif prepared:
    st.caption("The filters changed since the export was prepared: prepare it again.")

if st.toggle("Waive fees and add points", key="cancel_show_fees"):
    waiver_panel(me, "cancel")
