"""Survey analytics: NPS, CSAT and ratings with intervals per provider, service and clinic,
trends, the response funnel, recent detractors, the comment feed, and an audited CSV export."""

from datetime import date, timedelta

import streamlit as st

from core.analytics import surveys as sa
from core.kernel.authz import Permission
from core.practice import choices
from ui import actor, run_action
from ui import survey_view as view
from ui.caches import cached
from ui.context import read
from ui.feedback import survey_settings_form

SECTIONS = ["Overview", "Response funnel", "Detractors", "By group", "Trends", "Comments"]
READERS = {
    "overview": sa.summary,
    "funnel": sa.funnel,
    "groups": sa.get_groups,
    "trends": sa.get_trends,
}


@cached("setup", ttl=300, max_entries=10)
def _clinics(current):
    found = read(
        choices.list_choices, current, include_inactive=True, permission=Permission.ANALYTICS_READ
    )
    return found.clinics


@cached("feedback", ttl=60, max_entries=20)
def _section(current, f, name):  # one core read per section: only what is shown is computed
    return read(READERS[name], current, f)


@cached("feedback", ttl=60, max_entries=10)
def _detractors(current, clinic_id):
    return read(sa.recent_detractors, current, clinic_id)


@cached("feedback", ttl=60, max_entries=50)
def _comments(current, f, search, page):
    return read(sa.comments, current, f, search, page)


st.title("Survey analytics")
me = actor()
clinics = {c.id: c for c in _clinics(me)}
today = date.today()
with st.form("survey_analytics_filters"):
    left, right = st.columns(2)
    # imported responses go back years: not Streamlit's default of ten years back
    days = left.date_input(
        "Submitted from – to",
        (today - timedelta(days=89), today),
        min_value=date(2000, 1, 1),
        max_value=today,
        key="survey_analytics_days",
    )
    clinic_id = right.selectbox(
        "Clinic",
        [None, *clinics],
        key="survey_analytics_clinic",
        format_func=lambda c: clinics[c].name if c else "All clinics",
    )
    st.form_submit_button("Apply")
first, last = (days[0], days[-1]) if days else (today, today)
tz = clinics[clinic_id].timezone if clinic_id else "UTC"
f = sa.filter_for_days(first, last, tz, clinic_id)

with st.expander("How the figures are computed"):
    st.markdown(view.FORMULAS)
section = st.segmented_control("Show", SECTIONS, default="Overview", key="survey_analytics_section")
if section in (None, "Overview"):
    view.overview(_section(me, f, "overview"))
elif section == "Response funnel":
    view.funnel(_section(me, f, "funnel"))
elif section == "Detractors":
    view.detractors(_detractors(me, f.clinic_id))
elif section == "By group":
    small = st.toggle(
        f"Show groups with fewer than {sa.MIN_N} ratings", key="survey_analytics_small"
    )
    view.groups(_section(me, f, "groups"), small)
elif section == "Trends":
    view.trends(_section(me, f, "trends"))
else:
    search = st.text_input(
        "Search comments",
        key="survey_analytics_search",
        placeholder="a word or phrase, e.g. parking",
    )
    page = st.number_input("Page", min_value=1, value=1, key="survey_analytics_page") - 1
    rows, more = _comments(me, f, search, page)
    view.comment_feed(rows)
    st.caption(f"Page {page + 1}" + (" · more on the next page" if more else " · last page"))

st.divider()
if st.button("Prepare CSV export", key="survey_analytics_export", icon=":material/download:"):
    done = run_action(sa.export_csv, f, success="Export ready; the download is audited.")
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
