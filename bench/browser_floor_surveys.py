"""Streamlit alone: the elements of the Surveys dashboard's first view, in the same order,
layout and sizes, with fixed values and no reads (bench/browser_floor.py does the same for
the Cancellations dashboard): the Surveys page's time over this one's is ClinicDesk's own
part, the rest is Streamlit's."""

from datetime import date, datetime, timedelta

import pandas as pd
import streamlit as st

from core.kernel.money import ClinicFormat
from ui import charts
from ui.figures import key_figure
from ui.text import show_table

fmt = ClinicFormat(timezone="Europe/London", locale="en-GB", currency="GBP")
WEEKS, PROVIDERS, SERVICES, COMMENTS = 14, 15, 10, 20


def group_bars(name: str, count: int) -> None:
    spec = charts.bars(
        [f"{name.title()} {i + 1}" for i in range(count)],
        {
            "NPS": [40 + (i * 7) % 30 for i in range(count)],
            "CSAT %": [80 + i % 9 for i in range(count)],
        },
        title=charts.with_n(f"NPS and CSAT by {name}", 4_200, fmt, "ratings"),
        fmt=fmt,
        y_title="points / %",
        n=[120 + 11 * i for i in range(count)],
    )
    charts.show(spec, key=f"floor_survey_chart_{name}", selectable=True)


st.title("Streamlit alone: the Surveys elements")


@st.fragment
def dashboard() -> None:
    with st.form("floor_survey_filters"):
        left, middle, who, right = st.columns([1.4, 1, 1, 1])
        left.date_input(
            "Submitted from – to", (date(2026, 9, 6), date(2026, 12, 4)), key="floor_sd"
        )
        middle.selectbox("Clinic", ["All clinics", "Central", "North"], key="floor_survey_clinic")
        who.selectbox("Provider", ["All providers", "Dr Lee"], key="floor_survey_provider")
        right.selectbox("Service", ["All services", "Consultation"], key="floor_survey_service")
        st.form_submit_button("Apply")
    st.caption("Changes compare with the 90 days before.")
    figures = ["Responses", "NPS", "CSAT", "Average rating"]
    for column, label in zip(st.columns(4), figures, strict=True):
        key_figure(column, label, "52", "+3 points", help="over 4,210 answers (0–10)")
    st.caption("Average rating 4.31 (95% interval 4.28–4.34, n = 4,210)")
    groups = ["Promoters (9–10)", "Passives (7–8)", "Detractors (0–6)"]
    for column, label in zip(st.columns(3), groups, strict=True):
        column.metric(label, "1,402")
    weeks = [fmt.day(date(2026, 9, 7) + timedelta(weeks=i), weekday=False) for i in range(WEEKS)]
    lines = charts.lines(
        weeks,
        {"NPS": [48 + i % 5 for i in range(WEEKS)], "CSAT %": [84 + i % 3 for i in range(WEEKS)]},
        title=charts.with_n("NPS and CSAT by week (week starting)", 4_210, fmt, "responses"),
        fmt=fmt,
        y_title="points / %",
        n=[300] * WEEKS,
    )
    charts.show(lines, key="floor_survey_chart_weekly")
    left, right = st.columns(2)
    with left:
        ratings = [120, 180, 400, 1_300, 2_210]
        spec = charts.bars(
            [f"{r} ★" for r in range(1, 6)],
            {"Responses": ratings},
            title=charts.with_n("Overall rating", sum(ratings), fmt, "ratings"),
            fmt=fmt,
            n=ratings,
        )
        charts.show(spec, key="floor_survey_chart_ratings", selectable=True)
    with right:
        answers = [20, 10, 15, 25, 30, 60, 90, 300, 600, 1_200, 1_860]
        spec = charts.bars(
            [str(v) for v in range(11)],
            {"Answers": answers},
            title=charts.with_n("Would recommend (0–10)", sum(answers), fmt, "answers"),
            fmt=fmt,
            n=answers,
        )
        charts.show(spec, key="floor_survey_chart_nps")
    left, right = st.columns(2)
    with left:
        group_bars("provider", PROVIDERS)
    with right:
        group_bars("service", SERVICES)
    st.caption("Click a bar to list the responses behind it.")
    st.subheader("Latest comments")
    latest = datetime(2026, 12, 4, 17, 30)
    feed = pd.DataFrame(
        {
            "submitted": [latest - timedelta(hours=3 * i) for i in range(COMMENTS)],
            "clinic": ["Harbour Street Clinic"] * COMMENTS,
            "provider": [f"Dr Bench {i:03}" for i in range(COMMENTS)],
            "nps": [9 - i % 4 for i in range(COMMENTS)],
            "rating": [5 - i % 3 for i in range(COMMENTS)],
            "comment": [f"Comment {i}: friendly staff, a short wait." for i in range(COMMENTS)],
        }
    )
    show_table(
        feed,
        hide_index=True,
        width="stretch",
        column_config={
            "comment": st.column_config.TextColumn("Comment", width="large"),
            "nps": "Recommend",
        },
        key="floor_survey_latest",
    )
    st.segmented_control("More", ["Response funnel", "Detractors", "By group"], key="floor_sm")


dashboard()
with st.expander("How the figures are computed"):
    st.markdown("NPS = % promoters − % detractors")
st.divider()
st.button("Prepare CSV export", key="floor_survey_export", icon=":material/download:")
st.toggle("Edit survey settings", key="floor_survey_settings")
