"""Owners and managers: import appointments and survey answers from CSV and FHIR R4 (the owner:
a manager is offered the exports only), FHIR R4 out and a provider's iCalendar file. Every
export is audited."""

from dataclasses import replace

import streamlit as st

from core.interchange import csv_files, imports
from core.kernel.authz import Permission
from core.practice import choices as practice_choices
from ui import actor, run_action
from ui.caches import cached
from ui.context import read
from ui.data_exchange import exchange
from ui.data_imports import appointments_import
from ui.data_view import (
    date_order_picker,
    file_header,
    mapping_editor,
    progress_bar,
    show_report,
)
from ui.locale import display_format


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
if not me.can(Permission.DATA_IMPORT):  # core refuses it too: offer no upload to be refused
    st.caption("Only the practice owner imports data; the exports below are yours to prepare.")
    exchange(_choices(me), imports=False)
    st.stop()
appointments_tab, surveys_tab, exchange_tab = st.tabs(
    ["Appointments CSV", "Survey CSV", "FHIR and iCalendar"]
)

with appointments_tab:
    appointments_import(_choices(me))
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
        order = date_order_picker("data_survey_date_order")
        mapping = replace(
            base,
            date_order=order,
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
                show_report(done.value, display_format())
with exchange_tab:
    exchange(_choices(me), imports=True)
