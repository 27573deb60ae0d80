"""The Import and export page's exchange tab: a FHIR R4 bundle and a provider's iCalendar file
out (both audited), FHIR appointments in."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from core.interchange import standards as interchange
from core.kernel.clock import local_days_bounds, to_local, utcnow
from core.practice.choices import Choices
from ui.context import run_action
from ui.data_view import show_report
from ui.locale import date_picker, display_format


def exchange(choices: Choices, *, imports: bool) -> None:
    """FHIR and iCalendar exports from the practice's clinics and providers; FHIR import when
    `imports` (the actor may import data)."""
    st.subheader("FHIR R4 bundle")
    practice_tz = display_format().timezone
    with st.form("data_fhir_form"):
        clinics = {c.id: c.name for c in choices.clinics}
        c1, c2 = st.columns(2)
        clinic_id = c1.selectbox(
            "Clinic",
            [None, *clinics],
            key="data_fhir_clinic",
            format_func=lambda c: "All clinics" if c is None else clinics[c],
        )
        today = to_local(utcnow(), practice_tz).date()
        days = c2.date_input(
            "Appointments starting (days in the clinic's time zone)",
            (today - timedelta(days=90), today + timedelta(days=90)),
            key="data_fhir_days",
            format=date_picker(display_format().locale),
        )
        prepare_fhir = st.form_submit_button("Prepare FHIR bundle (audited)")
    if prepare_fhir and days:
        tz = display_format(clinic_id).timezone if clinic_id else practice_tz
        since, until = local_days_bounds(days[0], days[-1], tz)
        done = run_action(interchange.export_fhir, clinic_id=clinic_id, since=since, until=until)
        if done:
            st.session_state["data_fhir_bundle"] = done.value
    bundle = st.session_state.get("data_fhir_bundle")
    if bundle:
        n = display_format(clinic_id).number
        st.caption(
            f"{n(bundle.appointments)} appointments, {n(bundle.patients)} patients, "
            f"{n(bundle.practitioners)} practitioners"
            + (
                f" — only the newest {n(interchange.EXPORT_LIMIT)}; narrow the dates for the rest"
                if bundle.truncated
                else ""
            )
        )
        st.download_button(
            "Download bundle.json",
            bundle.content,
            "bundle.json",
            "application/fhir+json",
            key="data_fhir_download",
        )
    st.subheader("Provider calendar (iCalendar)")
    providers = {p.id: p.name for p in choices.providers}
    provider_id = st.selectbox(
        "Provider", list(providers), format_func=providers.get, key="data_ical_provider"
    )
    if st.button("Prepare calendar file (audited)", key="data_ical_prepare") and provider_id:
        done = run_action(interchange.export_ical, provider_id)
        if done:
            st.session_state["data_ical_feed"] = done.value
    feed = st.session_state.get("data_ical_feed")
    if feed:
        st.caption(
            f"{display_format().number(feed.events)} events from 30 days ago to a year ahead; "
            "calendar apps import the file."
        )
        st.download_button(
            f"Download {feed.filename}",
            feed.content,
            feed.filename,
            "text/calendar",
            key="data_ical_download",
        )
    if not imports:
        return
    st.subheader("Import FHIR appointments")
    files = st.file_uploader(
        "FHIR JSON (resources or bundles)",
        type=["json"],
        accept_multiple_files=True,
        key="data_fhir_files",
    )
    if files and st.button("Import FHIR appointments", key="data_fhir_import"):
        done = run_action(interchange.import_fhir, [f.getvalue() for f in files])
        if done:
            show_report(done.value, display_format())
