"""Call list: scheduled visits in the next days with a high predicted no-show risk — one
reminder call each (Shah et al., JGIM 2016: a call above 15% risk cut no-shows by a fifth)."""

import pandas as pd
import streamlit as st

from core.analytics import risk_scores
from core.kernel.authz import Permission
from core.practice import choices
from ui import actor
from ui.caches import cached
from ui.context import read
from ui.front_desk import require
from ui.text import show_table


@cached("setup", ttl=300, max_entries=10)
def _clinics(me):
    return {c.id: c.name for c in read(choices.list_choices, me).clinics}


@cached("appointments", "analytics", ttl=60, max_entries=20)
def _rows(me, clinic_id, days, threshold):
    return read(risk_scores.call_list, me, clinic_id=clinic_id, days=days, threshold=threshold)


st.title("Call list")
me = actor()
clinics = _clinics(me)
require(clinics)
c1, c2, c3 = st.columns(3)
clinic_id = c1.selectbox("Clinic", list(clinics), format_func=clinics.get, key="call_list_clinic")
days = c2.number_input(
    "Days ahead",
    1,
    14,
    3,
    key="call_list_days",
    help="The clinic's days after today: 1 is the rest of today and all of tomorrow.",
)
percent = c3.slider(
    "Risk from", 5, 90, round(risk_scores.HIGH * 100), 5, format="%d%%", key="call_list_threshold"
)
rows = _rows(me, clinic_id, int(days), percent / 100)
if not rows:
    st.info(
        "No upcoming visit above this risk (or no scores yet: see Reports → No-show risk)."
        if me.can(Permission.ANALYTICS_READ)  # who may open the model page
        else "No upcoming visit above this risk (or no scores yet: the no-show model is "
        "trained weekly once there are enough past visits; a manager can say more)."
    )
    st.stop()
show_table(
    pd.DataFrame(
        {
            "When": [r.when for r in rows],
            "Patient": [r.patient for r in rows],
            "Phone": [r.phone for r in rows],
            "Provider": [r.provider for r in rows],
            "No-show risk": [r.probability for r in rows],
        },
        index=pd.Index([r.appointment_id for r in rows], name="Appointment"),
    ),
    width="stretch",
    key="call_list_table",
    column_config={"No-show risk": st.column_config.ProgressColumn(format="percent")},
)
