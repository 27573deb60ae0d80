"""Streamlit alone: the elements of the Waitlist page's first view as the bench database shows
it (nobody waiting for the first clinic's filters, so the form to add a patient is open; no
offer yet; the rules folded), with fixed values and no reads (bench/browser_floor.py does the
same for the Cancellations dashboard)."""

from datetime import date, timedelta

import streamlit as st

from core.kernel.money import weekday_name
from db.models import TimeOfDay, WaitlistStatus
from ui.folds import fold

CLINICS = ["Harbour Street Clinic", "North"]
SERVICES = [f"Service {i + 1}" for i in range(10)]
PROVIDERS = [f"Dr Bench {i:03}" for i in range(18)]
WEEKDAYS = [weekday_name(d, "en-GB") for d in range(7)]

st.title("Streamlit alone: the Waitlist")
c1, c2, c3, c4 = st.columns(4)
c1.selectbox("Clinic", CLINICS, key="floor_wl_clinic")
c2.selectbox("Status", list(WaitlistStatus), format_func=str.capitalize, key="floor_wl_status")
c3.selectbox("Service", ["All", *SERVICES], key="floor_wl_svc")
c4.selectbox("Provider", ["All", *PROVIDERS], key="floor_wl_pr")
st.info("Nobody matches these filters.")
if box := fold("Add a patient to the waitlist", "floor_wl_add_open", expanded=True):
    with box:
        st.segmented_control(
            "Patient",
            ["Find a patient", "New patient"],
            key="floor_wl_who",
            default="Find a patient",
        )
        st.text_input("Search by name, phone or email", key="floor_wl_search")
        st.selectbox("Patient", [], index=None, key="floor_wl_patient")
        with st.form("floor_wl_add_form"):
            a1, a2 = st.columns(2)
            a1.selectbox("Service or package", SERVICES, key="floor_wl_add_svc")
            a2.selectbox("Provider", ["Any provider", *PROVIDERS], key="floor_wl_add_pr")
            start = date(2026, 12, 4)
            a1.date_input("Days", (start, start + timedelta(days=28)), key="floor_wl_add_days")
            a2.multiselect("Weekdays", WEEKDAYS, default=WEEKDAYS[:5], key="floor_wl_add_wd")
            st.multiselect("Times of day (none: any)", list(TimeOfDay), key="floor_wl_add_tod")
            st.text_input("Note", key="floor_wl_add_note")
            st.form_submit_button("Add to the waitlist", type="primary")
st.subheader("Offers")
st.caption("No slot has been offered yet.")
fold("Offer rules", "floor_wl_rules_open")
