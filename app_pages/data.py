"""Owners and managers: import appointments and survey answers from CSV (owner), FHIR R4 in and
out, and a provider's iCalendar file. Every export is audited."""

from dataclasses import replace
from datetime import timedelta

import streamlit as st

from core.interchange import csv_files, imports
from core.interchange import standards as interchange
from core.kernel.authz import Permission
from core.kernel.clock import local_days_bounds, utcnow
from core.practice import choices as practice_choices
from ui import actor, run_action
from ui.caches import cached
from ui.context import read, run_in_steps
from ui.data_view import file_header, mapping_editor, progress_bar, show_report


@cached("setup", ttl=60, max_entries=5)
def _choices(current):
    return read(
        practice_choices.list_choices,
        current,
        include_inactive=True,
        permission=Permission.DATA_EXPORT,
    )


st.title("Import and export")
me = actor()
appointments_tab, surveys_tab, exchange_tab = st.tabs(
    ["Appointments CSV", "Survey CSV", "FHIR and iCalendar"]
)

with appointments_tab:
    st.caption(
        "Imports are saved in small steps, so colleagues keep working; the analytics count "
        "the file once all of it is saved. Importing the same file again skips rows already "
        "imported and finishes an import that stopped part-way. The practice owner may import."
    )
    upload = st.file_uploader("CSV file", type=["csv"], key="data_appt_file")
    preset = st.selectbox(
        "Layout",
        ["kaggle-noshow", "custom"],
        key="data_appt_preset",
        format_func=lambda p: {
            "kaggle-noshow": "Kaggle no-show (Vitória 2016)",
            "custom": "Other: map the columns",
        }[p],
    )
    if upload is not None:
        header = file_header(upload)
        base = (
            imports.KAGGLE_NOSHOW if preset == "kaggle-noshow" else imports.AppointmentMapping({})
        )
        initial = (
            base.columns
            if preset != "custom"
            else csv_files.guess_mapping(header, imports.APPOINTMENT_FIELDS)
        )
        columns = mapping_editor(imports.APPOINTMENT_FIELDS, header, initial, "data_appt_mapping")
        c1, c2, c3 = st.columns(3)
        clinic = c1.text_input("Clinic", imports.KAGGLE_CLINIC[0], key="data_appt_clinic")
        tz = c2.text_input("Clinic time zone", imports.KAGGLE_CLINIC[1], key="data_appt_tz")
        minutes = c3.number_input(
            "Visit length (minutes) when the file has none", 5, 600, 15, key="data_appt_minutes"
        )
        extra = st.multiselect(
            "Columns kept as patient data",
            header,
            [c for c in base.extra_columns if c in header],
            key="data_appt_extra",
        )
        flag = st.checkbox(
            "The status column is a no-show flag (Yes = did not come)",
            base.status_is_no_show_flag,
            key="data_appt_flag",
        )
        mapping = replace(
            base,
            columns=columns,
            extra_columns=tuple(extra),
            status_is_no_show_flag=flag,
            duration_minutes=int(minutes),
            source=base.source if preset != "custom" else "csv",
        )
        encoding = st.text_input(
            "File encoding (empty: UTF-8, else guessed and reported)", key="data_appt_encoding"
        )
        if st.button("Import appointments", type="primary", key="data_appt_import"):
            report = run_in_steps(
                imports.import_appointments,
                upload.getvalue(),
                mapping,
                clinic_name=clinic,
                timezone=tz,
                progress=progress_bar("Starting"),
                encoding=encoding.strip() or None,
            )
            if report:
                show_report(report)

with surveys_tab:
    upload = st.file_uploader("CSV file", type=["csv"], key="data_survey_file")
    if upload is not None:
        header = file_header(upload)
        base = (
            imports.NHS_FFT
            if set(imports.NHS_FFT.columns.values()) <= set(header)
            else imports.SurveyMapping({})
        )
        st.caption(
            "Layout: " + ("NHS Friends and Family Test" if base.columns else "map the columns")
        )
        columns = mapping_editor(
            imports.SURVEY_FIELDS,
            header,
            base.columns or csv_files.guess_mapping(header, imports.SURVEY_FIELDS),
            "data_survey_mapping",
        )
        c1, c2 = st.columns(2)
        default_clinic = c1.text_input("Clinic when the file names none", key="data_survey_clinic")
        tz = c2.text_input("Time zone of the file's times", base.timezone, key="data_survey_tz")
        mapping = replace(
            base,
            columns=columns,
            default_clinic=default_clinic,
            timezone=tz,
            answer_columns=tuple(c for c in base.answer_columns if c in header),
        )
        if st.button("Import survey answers", type="primary", key="data_survey_import"):
            done = run_action(
                imports.import_surveys,
                upload.getvalue(),
                mapping,
                progress=progress_bar("Starting"),
            )
            if done:
                show_report(done.value)

with exchange_tab:
    choices = _choices(me)
    st.subheader("FHIR R4 bundle")
    with st.form("data_fhir_form"):
        clinics = {c.id: c.name for c in choices.clinics}
        c1, c2 = st.columns(2)
        clinic_id = c1.selectbox(
            "Clinic",
            [None, *clinics],
            key="data_fhir_clinic",
            format_func=lambda c: "All clinics" if c is None else clinics[c],
        )
        today = utcnow().date()
        days = c2.date_input(
            "Appointments starting (UTC days)",
            (today - timedelta(days=90), today + timedelta(days=90)),
            key="data_fhir_days",
        )
        prepare_fhir = st.form_submit_button("Prepare FHIR bundle (audited)")
    if prepare_fhir and days:
        since, until = local_days_bounds(days[0], days[-1], "UTC")
        done = run_action(interchange.export_fhir, clinic_id=clinic_id, since=since, until=until)
        if done:
            st.session_state["data_fhir_bundle"] = done.value
    bundle = st.session_state.get("data_fhir_bundle")
    if bundle:
        st.caption(
            f"{bundle.appointments:,} appointments, {bundle.patients:,} patients, "
            f"{bundle.practitioners:,} practitioners"
            + (
                f" — only the newest {interchange.EXPORT_LIMIT:,}; narrow the dates for the rest"
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
            f"{feed.events:,} events from 30 days ago to a year ahead; "
            "calendar apps import the file."
        )
        st.download_button(
            f"Download {feed.filename}",
            feed.content,
            feed.filename,
            "text/calendar",
            key="data_ical_download",
        )
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
            show_report(done.value)
