"""Streamlit alone: the elements of the Cancellations dashboard's first view, in the same order,
layout and sizes, with fixed values and no reads — what any Streamlit page holding them costs
the browser. bench.browser measures it like a page, in the same app (the same shell): the
Cancellations page's time over this one's is ClinicDesk's own part (its reads and figures),
the rest is Streamlit's."""

from datetime import date, time, timedelta

import streamlit as st

from core.analytics.breakdowns import LEAD_LABELS
from core.kernel.money import ClinicFormat
from ui import charts
from ui.figures import key_figure

fmt = ClinicFormat(timezone="Europe/London", locale="en-GB", currency="GBP")
WEEKS = 13
PROVIDERS, SERVICES = 15, 10
HOURS = range(8, 19)


def rates(count: int, base: float) -> list[float]:
    return [base + 0.004 * ((i * 7) % 5) for i in range(count)]


def rate_bars(labels: list[str], title: str, key: str) -> None:
    spec = charts.bars(
        labels,
        {"Cancellation rate": rates(len(labels), 0.12), "No-show rate": rates(len(labels), 0.07)},
        title=charts.with_n(title, 50_405, fmt, "booked"),
        fmt=fmt,
        percent=True,
        n=[3_000 + 17 * i for i in range(len(labels))],
    )
    charts.show(spec, key=key, selectable=True)


st.title("Streamlit alone: the Cancellations elements")


@st.fragment
def dashboard() -> None:
    with st.form("floor_filters"):
        c1, c2, c3, c4 = st.columns([1.4, 1, 1, 1])
        c1.date_input("Dates", (date(2026, 9, 5), date(2026, 12, 3)), key="floor_dates")
        c2.selectbox("Clinic", ["All clinics", "Central", "North"], key="floor_clinic")
        c3.selectbox("Provider", ["Any provider", "A. Provider"], key="floor_provider")
        c4.selectbox("Service", ["Any service", "Consultation"], key="floor_service")
        st.form_submit_button("Apply", type="primary")
    st.caption("Changes compare with the 90 days before (7 Jun 2026 – 4 Sept 2026).")
    figures = 10  # GBP and USD clinics, as the bench database's: money once per currency
    for first in range(0, figures, 4):
        for i, column in enumerate(st.columns(4)[: figures - first]):
            key_figure(
                column,
                f"Key figure {first + i + 1}",
                fmt.percent(0.128),
                fmt.points(0.128, 0.131),
                colour="inverse",
                help="6,452 cancelled; before: 13.1%",
            )
    st.metric("Confirmed by the patient", fmt.percent(0.67, 0), help="1,234 of 1,842 reminded")
    refill = st.columns(4)
    refill[0].metric("Waitlist refill rate", "31.0%", "9 of 29 freed", delta_color="off")
    refill[1].metric("Median time to fill", "2.5 h")
    refill[2].metric("Freed slots offered", "29")
    weeks = [fmt.day(date(2026, 9, 7) + timedelta(weeks=i), weekday=False) for i in range(WEEKS)]
    lines = charts.lines(
        weeks,
        {"Cancellation rate": rates(WEEKS, 0.13), "No-show rate": rates(WEEKS, 0.07)},
        title=charts.with_n("Rates by week (week starting)", 50_405, fmt, "booked"),
        fmt=fmt,
        percent=True,
        n=[3_900] * WEEKS,
        earlier={
            "Cancellation rate a year earlier": rates(WEEKS, 0.128),
            "No-show rate a year earlier": rates(WEEKS, 0.075),
        },
    )
    charts.show(lines, key="floor_chart_weekly", selectable=True)
    left, right = st.columns(2)
    with left:
        rate_bars(
            [fmt.weekday(i, "abbreviated") for i in range(7)], "Weekday", "floor_chart_weekday"
        )
    with right:
        heat = charts.heatmap(
            [fmt.weekday(w, "abbreviated") for w in range(7)],
            [fmt.clock(time(h)) for h in HOURS],
            [[0.12 + 0.01 * ((w + h) % 4) if w < 5 else None for h in HOURS] for w in range(7)],
            title=charts.with_n("By weekday and hour", 50_405, fmt, "booked"),
            fmt=fmt,
            n=[[90] * len(HOURS) for _ in range(7)],
        )
        charts.show(heat, key="floor_chart_heatmap")
    left, right = st.columns(2)
    with left:
        rate_bars(
            [f"Provider {i + 1}" for i in range(PROVIDERS)], "Provider", "floor_chart_provider"
        )
    with right:
        rate_bars([f"Service {i + 1}" for i in range(SERVICES)], "Service", "floor_chart_service")
    left, right = st.columns(2)
    with left:
        rate_bars(LEAD_LABELS, "Lead time", "floor_chart_lead")
    with right:
        sms = charts.bars(
            ["SMS reminder", "No SMS reminder"],
            {"No-show rate": [0.06, 0.09]},
            title=charts.with_n("No-show rate by SMS reminder", 44_000, fmt, "visits due"),
            fmt=fmt,
            percent=True,
            n=[30_000, 14_000],
        )
        charts.show(sms, key="floor_chart_sms")
    st.caption("Click a bar, a week or a heatmap cell to list the appointments behind it.")
    st.segmented_control("More", ["Reasons and fees", "Turnaround", "Repeat"], key="floor_more")


dashboard()
with st.expander("Formulas"):
    st.markdown("cancellation rate = cancelled ÷ booked")
st.subheader("Export")
st.button("Prepare CSV export (audited)", key="floor_export")
st.toggle("Waive fees and add points", key="floor_fees")
