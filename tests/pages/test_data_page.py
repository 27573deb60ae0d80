"""The Import and export page: CSV imports with the mapping screen, FHIR and iCalendar exports."""

import csv
import json
from pathlib import Path

from icalendar import Calendar
from sqlalchemy import func, select

from core.interchange import imports
from core.kernel.config import load_settings
from core.startup import open_database
from db.models import Appointment, AuditEvent, Clinic, Provider, SurveyResponse
from tests.pages.conftest import every_clinic_speaks

PAGE = "app_pages/data.py"


def kaggle_bytes(rows: int) -> bytes:
    with open(imports.NOSHOW_FILE, "rb") as handle:
        return b"".join(line for _, line in zip(range(rows + 1), handle, strict=False))


def query(url: str, statement):
    database = open_database(
        load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    try:
        with database.read() as session:
            return session.execute(statement).all()
    finally:
        database.dispose()


def test_owner_imports_the_kaggle_file_with_the_preset(app_as, app_db):
    at = app_as("owner", PAGE)
    assert at.title[0].value == "Import and export" and not at.exception
    at.file_uploader(key="data_appt_file").set_value(("noshow.csv", kaggle_bytes(60), "text/csv"))
    at.run()
    mapping = at.data_editor(key="data_appt_mapping").value
    chosen = dict(zip(mapping["Field"], mapping["File column"], strict=True))
    assert chosen["Patient id in the other system"] == "PatientId"
    assert chosen["Status or no-show flag"] == "No-show"
    at.button(key="data_appt_import").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "60 appointments imported" in at.success[0].value
    [(count,)] = query(
        app_db, select(func.count()).where(Appointment.external_ref.like("kaggle-noshow:%"))
    )
    assert count == 60
    assert query(app_db, select(Clinic.timezone).where(Clinic.name == "Vitória (imported)")) == [
        ("America/Sao_Paulo",)
    ]
    at.button(key="data_appt_import").click().run()  # again: nothing new
    assert "0 appointments imported, 60 already imported" in at.success[0].value


def test_a_brazilian_practice_reads_the_import_counts_its_own_way(app_as, app_db):
    every_clinic_speaks(app_db, "pt-BR")
    at = app_as("owner", PAGE)
    upload = ("noshow.csv", kaggle_bytes(1001), "text/csv")
    at.file_uploader(key="data_appt_file").set_value(upload)
    at.run()
    at.button(key="data_appt_import").click().run()
    assert not at.exception, [e.value for e in at.exception]
    said = at.success[0].value.replace("\\.", ".")  # a leading "1." is escaped: not a list
    assert said.startswith("1.001 rows read: 1.001 appointments imported")


def test_bad_rows_and_warnings_are_listed(app_as, app_db):
    content = (
        kaggle_bytes(2)
        + b"9,77,F,2016-05-02T10:00:00Z,2016-04-29T00:00:00Z,30,X,0,0,0,0,0,0,No\n"
        + b"9,78,F,2016-04-20T10:00:00Z,2016-04-29T00:00:00Z,30,X,Y,0,0,0,0,0,0,No\n"
    )
    owner = app_as("owner", PAGE)
    owner.file_uploader(key="data_appt_file").set_value(("f.csv", content, "text/csv")).run()
    owner.button(key="data_appt_import").click().run()
    assert not owner.exception
    problems, warnings = owner.dataframe[-2].value, owner.dataframe[-1].value
    assert list(problems["Row"]) == [5]
    assert list(problems["Problem"])[0].startswith("the row has 15 fields")
    assert list(warnings["Row"]) == [4]
    assert list(warnings["Warning"])[0].startswith("the booking day 2016-05-02 is after")
    [(count,)] = query(
        app_db, select(func.count()).where(Appointment.external_ref.like("kaggle-noshow:%"))
    )
    assert count == 3


def test_a_custom_layout_is_mapped_on_screen(app_as, app_db):
    content = b"visit,who,when,outcome\nV1,P9,2025-06-02,attended\nV2,P9,2025-06-03,dna\n"
    at = app_as("owner", PAGE)
    at.selectbox(key="data_appt_preset").set_value("custom").run()
    at.file_uploader(key="data_appt_file").set_value(("o.csv", content, "text/csv")).run()
    fields = list(at.data_editor(key="data_appt_mapping").value["Field"])
    columns = {
        "Appointment id in the other system": "visit",
        "Patient id in the other system": "who",
        "Appointment day (or date and time)": "when",
        "Status or no-show flag": "outcome",
    }
    at.session_state["data_appt_mapping"] = {  # what the editor sends after four cell edits
        "edited_rows": {fields.index(f): {"File column": c} for f, c in columns.items()},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.text_input(key="data_appt_clinic").input("Harbour Street Clinic")
    at.text_input(key="data_appt_tz").input("Europe/London")
    at.run()
    at.button(key="data_appt_import").click().run()  # whose visits: not chosen yet
    assert "The file names no provider: choose" in at.error[0].value
    [(provider_id, name)] = query(app_db, select(Provider.id, Provider.name).limit(1))
    at.selectbox(key="data_appt_provider_custom").set_value(provider_id).run()
    at.button(key="data_appt_import").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "2 appointments imported" in at.success[0].value
    assert f"its visits were attached to {name}, as chosen" in at.info[0].value
    rows = query(
        app_db,
        select(Appointment.external_ref, Appointment.status, Appointment.provider_id).where(
            Appointment.external_ref.like("csv:%")
        ),
    )
    assert sorted((r, s.value, p) for r, s, p in rows) == [
        ("csv:V1", "completed", provider_id),
        ("csv:V2", "no_show", provider_id),
    ]


def test_survey_preset_is_recognised_and_imported(app_as, app_db):
    with open(imports.SURVEY_FILE, "rb") as handle:
        content = b"".join(line for _, line in zip(range(41), handle, strict=False))
    at = app_as("owner", PAGE)
    at.file_uploader(key="data_survey_file").set_value(("fft.csv", content, "text/csv")).run()
    assert any(c.value == "Layout: NHS Friends and Family Test" for c in at.caption)
    at.button(key="data_survey_import").click().run()
    assert "40 survey responses imported" in at.success[0].value
    [(count,)] = query(
        app_db, select(func.count()).where(SurveyResponse.external_ref.like("nhs-fft:%"))
    )
    assert count == 40


def test_manager_downloads_a_fhir_bundle_and_a_provider_calendar(app_as, app_db):
    at = app_as("manager", PAGE)
    at.button(key="FormSubmitter:data_fhir_form-Prepare FHIR bundle (audited)").click().run()
    assert not at.exception, [e.value for e in at.exception]
    bundle = at.session_state["data_fhir_bundle"]
    data = json.loads(bundle.content)
    assert data["resourceType"] == "Bundle" and bundle.appointments > 0
    assert {e["resource"]["resourceType"] for e in data["entry"]} >= {
        "Appointment",
        "Patient",
        "Practitioner",
    }
    at.button(key="data_ical_prepare").click().run()
    feed = at.session_state["data_ical_feed"]
    assert len(Calendar.from_ical(feed.content).walk("VEVENT")) == feed.events > 0
    exports = query(app_db, select(AuditEvent.entity).where(AuditEvent.action == "export"))
    assert sorted(e for (e,) in exports) == ["fhir_bundle", "ical_feed"]


def test_a_manager_is_offered_the_exports_and_no_import(app_as):
    """A manager saw the upload and mapping screens and was refused only on Import."""
    at = app_as("manager", PAGE)
    assert not at.exception and not at.error
    assert not at.file_uploader and not at.tabs  # no CSV, survey or FHIR upload
    assert [c.value for c in at.caption][0] == (
        "Only the practice owner imports data; the exports below are yours to prepare."
    )
    assert [h.value for h in at.subheader] == ["FHIR R4 bundle", "Provider calendar (iCalendar)"]
    owner = app_as("owner", PAGE)
    assert len(owner.tabs) == 3 and len(owner.file_uploader) == 3


def test_owner_imports_fhir_examples(app_as, app_db):
    files = [
        (p.name, p.read_bytes(), "application/json")
        for p in sorted(Path("/work/shared/data/fhir").glob("Appointment-*.json"))
    ]
    at = app_as("owner", PAGE)
    at.file_uploader(key="data_fhir_files").set_value(files).run()
    at.button(key="data_fhir_import").click().run()
    assert "3 FHIR appointments imported" in at.success[0].value


def test_an_empty_file_gets_a_clear_message(app_as):
    at = app_as("owner", PAGE)
    at.file_uploader(key="data_appt_file").set_value(("empty.csv", b"", "text/csv")).run()
    assert not at.exception
    assert at.error[0].value == "The file is empty: the first row must name the columns."


def test_imported_survey_answers_appear_on_the_survey_analytics_page(app_as, app_db):
    from datetime import date

    with open(imports.SURVEY_FILE, newline="") as handle:
        rows = list(csv.DictReader(handle))[:150]
    with open(imports.SURVEY_FILE, "rb") as handle:
        content = b"".join(line for _, line in zip(range(151), handle, strict=False))
    at = app_as("owner", PAGE)
    at.file_uploader(key="data_survey_file").set_value(("fft.csv", content, "text/csv")).run()
    at.button(key="data_survey_import").click().run()
    surgery = "Earls Court Surgery"
    mine = [r for r in rows if r["surgery"] == surgery]
    [(clinic_id,)] = query(app_db, select(Clinic.id).where(Clinic.name == surgery))
    at.switch_page("app_pages/survey_analytics.py").run()
    at.date_input(key="survey_analytics_days").set_value((date(2023, 7, 1), date(2024, 4, 30)))
    at.selectbox(key="survey_analytics_clinic").set_value(clinic_id)
    at.button(key="FormSubmitter:survey_analytics_filters-Apply").click().run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    ratings = [float(r["rating_score"]) for r in mine if r["rating_score"]]
    assert metrics["Responses"] == f"{len(mine):,}"
    assert metrics["Average rating"] == f"{sum(ratings) / len(ratings):.2f} / 5"


def test_dates_like_05_06_2024_are_read_in_the_order_chosen(app_as, app_db):
    content = b"visit;who;when;outcome\r\nV7;P7;05/06/2024;attended\r\n"
    at = app_as("owner", PAGE)
    at.selectbox(key="data_appt_preset").set_value("custom").run()
    at.file_uploader(key="data_appt_file").set_value(("o.csv", content, "text/csv")).run()
    assert at.selectbox(key="data_appt_date_order").value == "day-first"  # as en-GB writes
    fields = list(at.data_editor(key="data_appt_mapping").value["Field"])
    columns = {
        "Appointment id in the other system": "visit",
        "Patient id in the other system": "who",
        "Appointment day (or date and time)": "when",
        "Status or no-show flag": "outcome",
    }
    at.session_state["data_appt_mapping"] = {
        "edited_rows": {fields.index(f): {"File column": c} for f, c in columns.items()},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.text_input(key="data_appt_clinic").input("Harbour Street Clinic")
    at.text_input(key="data_appt_tz").input("Europe/London")
    at.selectbox(key="data_appt_date_order").set_value("month-first")
    at.selectbox(key="data_appt_provider_custom").set_value(imports.WITHOUT_PROVIDER)
    at.run()
    at.button(key="data_appt_import").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "1 appointments imported" in at.success[0].value
    (start,) = query(
        app_db, select(Appointment.start_at).where(Appointment.external_ref == "csv:V7")
    )[0]
    assert start.replace(tzinfo=None).date().isoformat() == "2024-05-06"


def test_the_first_rows_are_previewed_as_they_would_be_read_and_nothing_is_saved(app_as, app_db):
    content = b"Ref;Patient;Date;Time;Outcome\r\nV8;P8;05/06/2024;9:30;Attended\r\nV9;P8;;;DNA\r\n"
    at = app_as("owner", PAGE)
    at.selectbox(key="data_appt_preset").set_value("custom").run()
    at.file_uploader(key="data_appt_file").set_value(("o.csv", content, "text/csv")).run()
    at.text_input(key="data_appt_clinic").input("Harbour Street Clinic")
    at.text_input(key="data_appt_tz").input("Europe/London")
    at.run()
    at.button(key="data_appt_preview").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[-1].value  # after the mapping editor; the columns were guessed
    assert list(table["Starts (clinic time)"]) == ["Wed 05 Jun 2024 09:30", ""]
    assert list(table["Status"]) == ["completed", ""]
    assert table["Skipped or left out"][1] == "skipped: the appointment day is empty"
    saved = query(app_db, select(func.count()).where(Appointment.external_ref.like("csv:V%")))
    assert saved[0][0] == 0
