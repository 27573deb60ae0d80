"""Streamlit and streamlit-calendar alone: the Calendar page's controls and a day by provider
as the bench database shows it (18 providers, 180 appointments), drawn through the same glue
(ui.calendar_widget) with fixed values and no reads. The Calendar page's time over this one's
is ClinicDesk's own part; the rest is Streamlit's and FullCalendar's."""

from datetime import date, datetime, time, timedelta

import streamlit as st

from core.scheduling.calendar import STATUS_COLOURS, STATUS_LABELS, legend
from ui import calendar_widget as cw

DAY = date(2026, 12, 4)
PROVIDERS, PER_PROVIDER = 18, 10
HOURS = [{"daysOfWeek": [1, 2, 3, 4, 5], "startTime": "08:00", "endTime": "18:00"}]


def event(provider: int, n: int) -> dict:
    start = datetime.combine(DAY, time(8)) + timedelta(minutes=45 * n + 15 * (provider % 3))
    status = cw.DEFAULT_STATUSES[(provider + n) % len(cw.DEFAULT_STATUSES)]
    return {
        "id": str(provider * 100 + n),
        "title": f"Patient {provider}-{n} · Consultation",
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=30)).isoformat(),
        "color": STATUS_COLOURS[status],
        "resourceId": str(provider),
        "editable": status == "scheduled",
    }


st.title("Streamlit alone: the Calendar")
c1, c2, c3, c4 = st.columns([2, 3, 4, 1], vertical_alignment="bottom")
c1.selectbox("Clinic", ["Harbour Street Clinic", "North"], key="floor_cal_clinic")
c2.multiselect("Providers", [f"Provider {i}" for i in range(PROVIDERS)], key="floor_cal_who")
c3.multiselect(
    "Statuses",
    list(STATUS_COLOURS),
    default=cw.DEFAULT_STATUSES,
    format_func=STATUS_LABELS.get,
    key="floor_cal_statuses",
)
c4.button("New", key="floor_cal_new", icon=":material/add:", help="New appointment")
st.segmented_control(
    "View", list(cw.VIEWS), key="floor_cal_view", default=cw.default_view(PROVIDERS)
)
c2, c3, c4, c5, _ = st.columns([2.2, 0.6, 1.2, 0.6, 5.4], vertical_alignment="bottom")
c2.date_input("Date", DAY, key="floor_cal_day", format="YYYY-MM-DD")
c3.button("◀", key="floor_cal_prev", help="Previous")
c4.button("Today", key="floor_cal_today")
c5.button("▶", key="floor_cal_next", help="Next")
cw.legend(legend())
resources = [
    {"id": str(p), "title": f"Dr Bench {p:03}", "eventColor": "#4c78a8", "businessHours": HOURS}
    for p in range(PROVIDERS)
]
options = cw.options(
    cw.VIEWS[cw.default_view(PROVIDERS)],
    DAY,
    "Europe/London",
    resources=resources,
    business_hours=HOURS,
    editable=True,
)
events = [event(p, n) for p in range(PROVIDERS) for n in range(PER_PROVIDER)]
cw.render(events, options, key=f"floor_cal_{DAY}")
