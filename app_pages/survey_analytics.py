"""Survey analytics for a date range, clinic, provider and service: key figures against the
previous period, NPS and CSAT by week, the rating distribution, NPS and CSAT by provider and
service (a click lists the responses behind a bar) and the latest comments; then the funnel,
detractors, groups, trends, comment search, export."""

from datetime import date, timedelta

import streamlit as st

from core.analytics import breakdowns as bd
from core.analytics import survey_export
from core.analytics import surveys as sa
from core.kernel.authz import Permission
from core.kernel.clock import local_today
from core.practice import choices
from ui import actor, run_action
from ui import survey_view as view
from ui.auth import signed_fragment
from ui.caches import cached
from ui.context import read
from ui.feedback import survey_settings_form
from ui.locale import date_picker, display_format

READERS = {
    "overview": sa.summary,
    "funnel": sa.funnel,
    "groups": sa.get_groups,
    "trends": sa.get_trends,
    "distribution": bd.distribution,
}


# keyed by role, not user: sessions of one role share the cache (core checks the actor)
@cached("setup", ttl=300, max_entries=10)
def _choices(_me, role):
    return read(
        choices.list_choices, _me, include_inactive=True, permission=Permission.ANALYTICS_READ
    )


@cached("feedback", ttl=60, max_entries=40)
def _section(_me, role, f, name):  # one core read per part: only what is shown is computed
    return read(READERS[name], _me, f)


@cached("feedback", ttl=60, max_entries=10)
def _detractors(_me, role, clinic_id, service_id, provider_id):
    return read(
        sa.recent_detractors, _me, clinic_id, service_id=service_id, provider_id=provider_id
    )


@cached("feedback", ttl=60, max_entries=50)
def _comments(_me, role, f, search, page):
    return read(sa.comments, _me, f, search, page)


@cached("feedback", ttl=60, max_entries=30)
def _behind(_me, role, f, dimension, value):
    return read(bd.responses_behind, _me, f, dimension, value)


st.title("Survey analytics")
me = actor()
role = me.role.value
found = _choices(me, role)
clinics = {c.id: c for c in found.clinics}
providers = {p.id: p.name for p in found.providers}
services = {s.id: s.name for s in found.services}
today = local_today(display_format().timezone)  # the practice's day, not the server's


@signed_fragment  # a filter change or a click on a bar reruns the dashboard only
def dashboard():
    with st.form("survey_analytics_filters"):
        left, middle, who, right = st.columns([1.4, 1, 1, 1])  # room for a date range
        # imported responses go back years: not Streamlit's default of ten years back
        days = left.date_input(
            "Submitted from – to",
            (today - timedelta(days=89), today),
            min_value=date(2000, 1, 1),
            max_value=today,
            key="survey_analytics_days",
            format=date_picker(display_format().locale),  # all clinics: the practice's
        )
        clinic_id = middle.selectbox(
            "Clinic",
            [None, *clinics],
            key="survey_analytics_clinic",
            format_func=lambda c: clinics[c].name if c else "All clinics",
        )
        # the responses recording the provider, as the figures by provider count them
        provider_id = who.selectbox(
            "Provider",
            [None, *providers],
            key="survey_analytics_provider",
            format_func=lambda p: providers[p] if p else "All providers",
        )
        # the responses to visits holding it, wherever it comes in them (as on Cancellations)
        service_id = right.selectbox(
            "Service",
            [None, *services],
            key="survey_analytics_service",
            format_func=lambda s: services[s] if s else "All services",
        )
        st.form_submit_button("Apply")
    first, last = (days[0], days[-1]) if days else (today, today)
    fmt = display_format(clinic_id)  # all clinics: the practice's time zone and locale
    tz = fmt.timezone
    # all clinics: each clinic's responses on its own days, as on the Cancellations page
    zones = tuple((c.id, c.timezone) for c in clinics.values())
    f = sa.filter_for_days(first, last, tz, clinic_id, zones, service_id, provider_id)
    st.session_state["survey_analytics_filter"] = f
    length = (last - first).days + 1
    before = sa.filter_for_days(
        first - timedelta(days=length),
        first - timedelta(days=1),
        tz,
        clinic_id,
        zones,
        service_id,
        provider_id,
    )
    figures = _section(me, role, f, "overview")
    earlier = (first - timedelta(days=length), first - timedelta(days=1))
    view.overview(figures, fmt, _section(me, role, before, "overview"), length, earlier)
    if figures.responses:
        weekly = _section(me, role, f, "trends").weekly
        distribution = _section(me, role, f, "distribution")
        groups = _section(me, role, f, "groups")
        picked = view.dashboard(weekly, distribution, groups, fmt, (first, last))
        view.behind(picked, lambda d, v: _behind(me, role, f, d, v), fmt, f)
        st.subheader("Latest comments")
        view.comment_feed(_comments(me, role, f, "", 0)[0], key="survey_analytics_latest")
    else:  # one message, not five empty charts
        view.no_responses(first, last, fmt)
    view.more(
        f,
        lambda name: _section(me, role, f, name),
        lambda: _detractors(me, role, f.clinic_id, f.service_id, f.provider_id),
        lambda search, page: _comments(me, role, f, search, page),
        fmt,
        (first, last),
    )


dashboard()
f = st.session_state["survey_analytics_filter"]
with st.expander("How the figures are computed"):
    st.markdown(view.FORMULAS)
st.divider()
if st.button("Prepare CSV export", key="survey_analytics_export", icon=":material/download:"):
    done = run_action(survey_export.export_csv, f, success="Export ready; the download is audited.")
    if done:
        st.session_state["survey_analytics_csv"] = (f, done.value)
prepared = st.session_state.get("survey_analytics_csv")
if prepared and prepared[0] == f:
    st.download_button(
        "Download survey responses (CSV)",
        prepared[1],
        "survey_responses.csv",
        "text/csv",
        key="survey_analytics_download",
    )
if me.can(Permission.SURVEYS_MANAGE) and st.toggle(
    "Edit survey settings", key="survey_analytics_settings"
):
    survey_settings_form("survey_analytics")
