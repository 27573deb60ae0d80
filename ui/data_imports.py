"""The Import and export page's appointments tab: a CSV file with its layout, column mapping,
clinic and visit length, a preview of its first rows as read, imported in steps, and the
report."""

from __future__ import annotations

from dataclasses import asdict, replace

import pandas as pd
import streamlit as st

from core.interchange import csv_files, imports
from core.practice.choices import Choices
from ui.context import read, require_actor, run_in_steps, shown
from ui.data_view import (
    date_order_picker,
    file_header,
    mapping_editor,
    progress_bar,
    show_report,
)
from ui.locale import display_format
from ui.text import show_table

PREVIEW_COLUMNS = {
    "row": "Row",
    "appointment": "Appointment id",
    "patient": "Patient id",
    "name": "Name",
    "starts": "Starts (clinic time)",
    "status": "Status",
    "note": "Skipped or left out",
}


def shown_read(service, *args, **kwargs):
    """A core read as the signed-in actor, its refusal shown (the page stops there)."""
    return shown(read, service, require_actor(), *args, **kwargs)


def appointments_import(choices: Choices) -> None:
    """Appointments CSV: layout, column mapping, clinic, provider and visit length, then import
    in steps."""
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
        provider = provider_picker(choices, base.provider, f"data_appt_provider_{preset}")
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
        order = date_order_picker("data_appt_date_order")
        mapping = replace(
            base,
            columns=columns,
            extra_columns=tuple(extra),
            status_is_no_show_flag=flag,
            duration_minutes=int(minutes),
            source=base.source if preset != "custom" else "csv",
            date_order=order,
            provider=provider,
        )
        encoding = st.text_input(
            "File encoding (empty: UTF-8, else guessed and reported)", key="data_appt_encoding"
        )
        if st.button("Preview the first rows (nothing is saved)", key="data_appt_preview"):
            first_rows = shown_read(
                imports.preview_appointments,
                upload.getvalue(),
                mapping,
                clinic_name=clinic,
                timezone=tz,
                encoding=encoding.strip() or None,
            )
            show_table(
                pd.DataFrame([asdict(r) for r in first_rows]).rename(columns=PREVIEW_COLUMNS),
                hide_index=True,
                width="stretch",
                key="data_appt_preview_table",
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
                show_report(report, display_format())


def provider_picker(choices: Choices, preset: int | str | None, key: str) -> int | str | None:
    """Whose visits the file's are (it names no provider): one of the practice's providers,
    none (not recorded), or not chosen yet (the import then says to choose)."""
    names = {p.id: p.name + ("" if p.active else " (inactive)") for p in choices.providers}
    options = [None, imports.WITHOUT_PROVIDER, *names]
    return st.selectbox(
        "Provider of these visits (the file names none)",
        options,
        index=options.index(preset) if preset in options else 0,
        key=key,
        format_func=lambda o: (
            "— choose —"
            if o is None
            else "None: not recorded (counted so in the rates by provider)"
            if o == imports.WITHOUT_PROVIDER
            else names[o]
        ),
    )
