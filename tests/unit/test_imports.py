"""CSV imports: the Kaggle no-show preset on a slice of the real file, bad rows, re-imports,
all-or-nothing failures, generic mappings and the NHS Friends and Family survey preset."""

import codecs
import csv
import io
import json
import re
import tracemalloc
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from core.analytics import breakdowns
from core.analytics.cancellation_parts import AnalyticsFilters
from core.interchange import csv_files, imports, patient_export, standards
from core.kernel.authz import SYSTEM
from core.kernel.errors import PermissionDenied, ValidationError
from db.engine import Database
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Clinic,
    Patient,
    Provider,
    Source,
    SurveyResponse,
)

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
KAGGLE_ROWS = 300


def real_rows(path, n):
    with open(path, newline="") as handle:
        return [line for _, line in zip(range(n + 1), handle, strict=False)]


@pytest.fixture
def kaggle_slice(tmp_path):
    """The real file's header and first rows, written to tmp_path."""
    target = tmp_path / "noshow.csv"
    target.write_text("".join(real_rows(imports.NOSHOW_FILE, KAGGLE_ROWS)))
    return target


def count(db, model):
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_kaggle_slice_imports_patients_and_appointments_as_the_file_says(db, world, kaggle_slice):
    report = imports.import_appointments(db.write, world.owner, kaggle_slice, imports.KAGGLE_NOSHOW)
    assert report.problem_count == 0 and report.created == KAGGLE_ROWS
    with open(kaggle_slice, newline="") as handle:
        rows = list(csv.DictReader(handle))
    with db.read() as session:
        clinic = session.scalar(select(Clinic).where(Clinic.name == "Vitória (imported)"))
        assert clinic.timezone == "America/Sao_Paulo"
        by_ref = {a.external_ref: a for a in session.scalars(select(Appointment))}
        patients = {p.external_ref: p for p in session.scalars(select(Patient))}
    assert report.patients_created == len({r["PatientId"] for r in rows})
    for row in rows:
        appointment = by_ref[f"kaggle-noshow:{row['AppointmentID']}"]
        expected = (
            AppointmentStatus.NO_SHOW if row["No-show"] == "Yes" else AppointmentStatus.COMPLETED
        )
        assert appointment.status == expected
        assert appointment.sms_reminder == (row["SMS_received"] == "1")
        assert appointment.source == Source.IMPORT and appointment.clinic_id == clinic.id
        local_start = appointment.start_at.astimezone(SAO_PAULO)
        assert local_start.date().isoformat() == row["AppointmentDay"][:10]
        assert appointment.booked_at <= appointment.start_at
        assert appointment.end_at - appointment.start_at == timedelta(minutes=15)
        patient = patients[f"kaggle-noshow:{row['PatientId']}"]  # the id's exact text
        assert appointment.patient_id == patient.id
        assert patient.gender == row["Gender"]
        assert patient.extra["Neighbourhood"] == row["Neighbourhood"]
        assert patient.extra["Hipertension"] == int(row["Hipertension"])
    first = rows[0]  # booked 2016-04-29 18:38 for the same day: a same-day booking
    same_day = by_ref[f"kaggle-noshow:{first['AppointmentID']}"]
    assert same_day.booked_at == datetime(2016, 4, 29, 18, 38, 8, tzinfo=SAO_PAULO)
    assert same_day.start_at == datetime(2016, 4, 29, 18, 45, tzinfo=SAO_PAULO)
    ahead = next(r for r in rows if r["ScheduledDay"][:10] < r["AppointmentDay"][:10])
    advance = by_ref[f"kaggle-noshow:{ahead['AppointmentID']}"]
    assert advance.start_at.astimezone(SAO_PAULO).time() == time(8, 0)


def test_reimporting_the_same_file_creates_nothing_twice(db, world, kaggle_slice):
    imports.import_appointments(db.write, world.owner, kaggle_slice, imports.KAGGLE_NOSHOW)
    before = count(db, Appointment), count(db, Patient), count(db, Clinic)
    again = imports.import_appointments(db.write, world.owner, kaggle_slice, imports.KAGGLE_NOSHOW)
    assert (again.created, again.already_imported, again.patients_created) == (0, KAGGLE_ROWS, 0)
    assert (count(db, Appointment), count(db, Patient), count(db, Clinic)) == before
    with db.read() as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "import")))
    assert len(events) == 2 and events[0].details["created"] == KAGGLE_ROWS


def test_bad_rows_are_reported_by_row_number_and_implausible_fields_left_out(db, world, tmp_path):
    header, *good = real_rows(imports.NOSHOW_FILE, 3)
    bad = [
        "111,900001,F,2016-04-29T10:00:00Z,not-a-day,30,CENTRO,0,0,0,0,0,0,No\n",
        "112,900002,F,2016-05-02T10:00:00Z,2016-04-29T00:00:00Z,30,CENTRO,0,0,0,0,0,0,No\n",
        "113,900003,F,2016-04-20T10:00:00Z,2016-04-29T00:00:00Z,30,CENTRO,0,0,0,0,0,0,Maybe\n",
        "114,900004,F,2016-04-20T10:00:00Z,2016-04-29T00:00:00Z,-1,CENTRO,0,0,0,0,0,0,No\n",
        ",900005,F,2016-04-20T10:00:00Z,2016-04-29T00:00:00Z,30,CENTRO,0,0,0,0,0,0,No\n",
        good[0],  # the same appointment id again
        # a stray comma in the neighbourhood: every later column shifts by one
        "116,900006,F,2016-04-20T10:00:00Z,2016-04-29T00:00:00Z,30,CENTRO,NORTE,0,0,0,0,0,1,No\n",
        "117,900007,F,2016-04-20T10:00:00Z,2016-04-29T00:00:00Z,30,CENTRO,0,0,0,0,0,No\n",
    ]
    path = tmp_path / "bad.csv"
    path.write_text(header + "".join(good) + "".join(bad))
    report = imports.import_appointments(db.write, world.owner, path, imports.KAGGLE_NOSHOW)
    assert (report.created, report.problem_count, report.warning_count) == (5, 6, 2)
    reasons = {p.row: p.reason for p in report.problems}
    assert "not a date" in reasons[5]
    assert "no-show flag 'Maybe'" in reasons[7]
    assert reasons[9] == "the patient id is empty"
    assert reasons[10] == "appointment id appears again (first at row 2)"
    assert reasons[11].startswith("the row has 15 fields but the first row names 14 columns")
    assert reasons[12].startswith("the row has 13 fields but the first row names 14 columns")
    warnings = {w.row: w.reason for w in report.warnings}
    assert warnings == {
        6: "the booking day 2016-05-02 is after the appointment day 2016-04-29; "
        "imported without the booking time",
        8: "age -1 is not between 0 and 130; imported without an age",
    }
    assert "2 imported with a warning" in report.summary
    with db.read() as session:
        late = session.scalar(select(Appointment).where(Appointment.external_ref.like("%900002")))
        assert late.booked_at == late.start_at
        ageless = session.scalar(select(Patient).where(Patient.external_ref.like("%:114")))
        assert "age" not in ageless.extra and ageless.extra["Neighbourhood"] == "CENTRO"
    assert count(db, Appointment) == 5


def test_control_characters_in_cells_are_dropped_also_from_the_patients_extra_fields(
    db, world, tmp_path
):
    """Patients and their extra fields go in by bulk insert and as JSON, past the flush rule:
    a NUL or a control character in a cell is dropped all the same (PostgreSQL refuses NUL)."""
    header, *_ = real_rows(imports.NOSHOW_FILE, 1)
    row = "118\x07,900008,F,2016-04-20T10:00:00Z,2016-04-29T00:00:00Z,30,CEN\x00TRO\x1b"
    row += ",0,0,0,0,0,0,No\n"
    path = tmp_path / "controls.csv"
    path.write_text(header + row)
    report = imports.import_appointments(db.write, world.owner, path, imports.KAGGLE_NOSHOW)
    assert (report.created, report.problem_count) == (1, 0)
    with db.read() as session:
        patient = session.scalar(select(Patient).where(Patient.external_ref.like("%:118%")))
        assert patient.external_ref.endswith(":118") and patient.extra["Neighbourhood"] == "CENTRO"


def test_an_unreadable_optional_field_is_left_out_and_a_required_one_skips_the_row(
    db, world, tmp_path
):
    """Booking time, SMS flag and age are optional: the visit is imported without them, with a
    warning. The day and the outcome are what the visit is: without them the row is skipped."""
    header, *_ = real_rows(imports.NOSHOW_FILE, 1)
    rows = [
        "121,900021,F,notadate,2016-04-29T00:00:00Z,30,CENTRO,0,0,0,0,0,0,No\n",
        "122,900022,F,2016-04-20T10:00:00Z,2016-04-29T00:00:00Z,30,CENTRO,0,0,0,0,0,2,No\n",
        "123,900023,F,2016-04-20T10:00:00Z,2016-04-29T00:00:00Z,old,CENTRO,0,0,0,0,0,1,No\n",
        "124,900024,F,2016-04-20T10:00:00Z,2016-04-29T00:00:00Z,30,CENTRO,0,0,0,0,0,0,Maybe\n",
        "125,900025,F,2016-04-20T10:00:00Z,someday,30,CENTRO,0,0,0,0,0,0,No\n",
    ]
    path = tmp_path / "fields.csv"
    path.write_text(header + "".join(rows))
    report = imports.import_appointments(db.write, world.owner, path, imports.KAGGLE_NOSHOW)
    assert (report.created, report.problem_count, report.warning_count) == (3, 2, 3)
    assert {w.row: w.reason for w in report.warnings} == {
        2: f"booking time: 'notadate' is not a date ({csv_files.DATE_FORMS}); imported without it",
        3: "SMS reminder: '2' is not yes/no or 1/0; imported as not sent",
        4: "age 'old' is not a number; imported without an age",
    }
    reasons = {p.row: p.reason for p in report.problems}
    assert "no-show flag 'Maybe'" in reasons[5] and "'someday' is not a date" in reasons[6]
    with db.read() as session:
        visits = {a.external_ref.rsplit(":", 1)[1]: a for a in session.scalars(select(Appointment))}
        ageless = session.scalar(select(Patient).where(Patient.external_ref.like("%:123")))
    assert visits["900021"].booked_at == visits["900021"].start_at  # no booking time: the start
    assert visits["900022"].sms_reminder is False and visits["900023"].sms_reminder is True
    assert "age" not in ageless.extra


def _figures(db):
    from core.analytics import stats

    with db.read() as session:
        return json.loads(stats.render(stats.figures(session, SYSTEM), as_json=True))["totals"]


def test_an_interrupted_import_stays_out_of_the_analytics_and_resumes(
    db, world, kaggle_slice, monkeypatch
):
    monkeypatch.setattr(imports, "CHUNK", 50)

    def die_after_two_chunks(fraction, message):
        if message.startswith("Saved 100"):
            raise KeyboardInterrupt  # as when the process is stopped part-way

    with pytest.raises(KeyboardInterrupt):
        imports.import_appointments(
            db.write,
            world.owner,
            kaggle_slice,
            imports.KAGGLE_NOSHOW,
            progress=die_after_two_chunks,
        )
    assert count(db, Appointment) == 100  # two chunks were committed …
    assert _figures(db)["booked"] == 0  # … and nothing of them is counted yet
    report = imports.import_appointments(db.write, world.owner, kaggle_slice, imports.KAGGLE_NOSHOW)
    assert (report.created, report.already_imported) == (KAGGLE_ROWS, 0)
    assert report.notes[0].startswith("Resumed import #1")
    assert count(db, Appointment) == KAGGLE_ROWS
    with db.read() as session:
        refs = session.scalars(select(Appointment.external_ref)).all()
    assert len(set(refs)) == KAGGLE_ROWS
    totals = _figures(db)
    assert totals["no_shows"] + totals["attended"] == KAGGLE_ROWS


def test_an_interrupted_import_then_a_corrected_file_counts_every_row(
    db, world, kaggle_slice, monkeypatch
):
    """Stopped part-way, then the file corrected (one row changed) and imported again: a new
    batch, as the file differs. The rows the first run saved are taken into it, not left for
    ever in a batch the analytics ignore."""
    monkeypatch.setattr(imports, "CHUNK", 50)

    def die_after_two_chunks(fraction, message):
        if message.startswith("Saved 100"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        imports.import_appointments(
            db.write,
            world.owner,
            kaggle_slice,
            imports.KAGGLE_NOSHOW,
            progress=die_after_two_chunks,
        )
    lines = kaggle_slice.read_text().splitlines(keepends=True)
    lines[-1] = lines[-1].replace(",No\n", ",Yes\n").replace(",No\r\n", ",Yes\r\n")
    corrected = "".join(lines).encode()
    assert corrected != kaggle_slice.read_bytes()
    report = imports.import_appointments(db.write, world.owner, corrected, imports.KAGGLE_NOSHOW)
    assert (report.created, report.already_imported) == (KAGGLE_ROWS, 0)
    assert file_notes(report) == [
        "Resumed import #1, which had stopped part-way: the rows it saved are counted in this one."
    ]
    totals = _figures(db)
    assert totals["no_shows"] + totals["attended"] == KAGGLE_ROWS
    again = imports.import_appointments(db.write, world.owner, corrected, imports.KAGGLE_NOSHOW)
    assert (again.created, again.already_imported, again.notes) == (0, KAGGLE_ROWS, [])


def test_the_file_itself_gets_one_clear_line(db, world, tmp_path):
    header, first = real_rows(imports.NOSHOW_FILE, 1)
    twice = tmp_path / "twice.csv"
    twice.write_text(header.replace("Gender", "Age") + first)
    cases = [
        (tmp_path / "missing.csv", "There is no file"),
        (tmp_path, "is a folder; give the CSV file inside it"),
        (twice, "names column 'Age' twice (columns 3 and 6)"),
    ]
    for source, words in cases:
        with pytest.raises(ValidationError, match=re.escape(words)):
            imports.import_appointments(db.write, world.owner, source, imports.KAGGLE_NOSHOW)
    assert count(db, Appointment) == 0


def file_notes(report) -> list[str]:
    """The report's notes about the file, without the one about the clinic the import made
    (the Kaggle file's, in a practice that has only the test clinic) and the one saying whose
    visits they are."""
    made = ("Created the clinic ", "The file names no provider")
    return [n for n in report.notes if not n.startswith(made)]


def test_the_encoding_is_given_or_the_fallback_reported(db, world, tmp_path):
    header, first = real_rows(imports.NOSHOW_FILE, 1)
    path = tmp_path / "cp1252.csv"
    path.write_bytes((header + first.replace("JARDIM", "SÃO JOSÉ")).encode("cp1252"))
    with pytest.raises(ValidationError, match="The file is not utf-8: byte"):
        imports.import_appointments(
            db.write, world.owner, path, imports.KAGGLE_NOSHOW, encoding="utf-8"
        )
    report = imports.import_appointments(db.write, world.owner, path, imports.KAGGLE_NOSHOW)
    assert report.created == 1
    assert file_notes(report) == [
        "The file is not UTF-8; it was read as cp1252. If names look wrong, give the file's "
        "encoding and import it again."
    ]
    with db.read() as session:
        extra = session.scalar(select(Patient.extra).where(Patient.external_ref.like("kaggle%")))
    assert "SÃO JOSÉ" in extra["Neighbourhood"]
    given = imports.import_appointments(
        db.write, world.owner, path, imports.KAGGLE_NOSHOW, encoding="cp1252"
    )
    assert file_notes(given) == [] and given.already_imported == 1


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_a_byte_order_mark_names_the_encoding(db, world, tmp_path, encoding):
    """Excel's "Unicode text" is UTF-16 with a byte-order mark; it was read as cp1252 and the
    header not found ("The file has no column 'Age'")."""
    header, first = real_rows(imports.NOSHOW_FILE, 1)
    path = tmp_path / "marked.csv"
    text = header + first.replace("JARDIM", "SÃO JOSÉ")
    path.write_bytes(
        (codecs.BOM_UTF16_BE if encoding == "utf-16-be" else b"") + text.encode(encoding)
    )
    report = imports.import_appointments(db.write, world.owner, path, imports.KAGGLE_NOSHOW)
    assert (report.created, file_notes(report)) == (1, [])
    with db.read() as session:
        extra = session.scalar(select(Patient.extra).where(Patient.external_ref.like("kaggle%")))
    assert extra["Neighbourhood"].startswith("SÃO JOSÉ")


@pytest.mark.parametrize("separator", [";", "\t"])
def test_a_file_separated_by_semicolons_or_tabs_is_read_by_its_columns(
    db, world, tmp_path, separator
):
    """Excel saves "CSV" with semicolons where the decimal mark is a comma (pt-BR, de-DE,
    fr-FR) and "Text" with tabs; the first row was read as one column and the import refused
    with "The file has no column 'PatientId', …"."""

    def separated(*rows):
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=separator, lineterminator="\n").writerows(rows)
        return buffer.getvalue()

    header, first = (next(csv.reader([line])) for line in real_rows(imports.NOSHOW_FILE, 1))
    first[header.index("Neighbourhood")] = "JARDIM; DA PENHA"
    path = tmp_path / "separated.csv"
    path.write_text(separated(header, first), encoding="utf-8-sig")
    assert csv_files.read_header(separated(header))[:2] == ["PatientId", "AppointmentID"]
    report = imports.import_appointments(db.write, world.owner, path, imports.KAGGLE_NOSHOW)
    assert (report.created, report.problem_count) == (1, 0)
    with db.read() as session:
        extra = session.scalar(select(Patient.extra).where(Patient.external_ref.like("kaggle%")))
    assert extra["Neighbourhood"] == "JARDIM; DA PENHA"
    surveys = tmp_path / "fft.csv"
    surveys.write_text(
        separated(
            ["time", "rating", "free_text", "do_better", "surgery"],
            ["2024-01-02 10:00:00", "Likely", "ok, thanks", "", "Main"],
        )
    )
    with db.write() as session:
        answered = imports.import_surveys(session, world.owner, surveys, imports.NHS_FFT)
    assert (answered.created, answered.problem_count) == (1, 0)
    with db.read() as session:
        assert session.scalar(select(SurveyResponse.comment)) == "ok, thanks"


def test_only_the_owner_may_import(db, world, kaggle_slice):
    for actor in (world.manager, world.staff):
        with pytest.raises(PermissionDenied):
            imports.import_appointments(db.write, actor, kaggle_slice, imports.KAGGLE_NOSHOW)
    assert count(db, Appointment) == 0


def test_the_mapping_screen_gets_clear_messages(db, world, kaggle_slice):
    mapping = imports.AppointmentMapping(
        columns={"patient_ref": "PatientId", "day": "AppointmentDay", "status": "No-show"}
    )
    with pytest.raises(ValidationError, match="Appointment id in the other system"):
        imports.import_appointments(db.write, world.owner, kaggle_slice, mapping)
    mapping = imports.AppointmentMapping(columns=imports.KAGGLE_NOSHOW.columns | {"gender": "Sex"})
    with pytest.raises(ValidationError, match="no column 'Sex'"):
        imports.import_appointments(db.write, world.owner, kaggle_slice, mapping)
    with pytest.raises(ValidationError, match="IANA"):
        imports.import_appointments(
            db.write, world.owner, kaggle_slice, imports.KAGGLE_NOSHOW, timezone="Mars/Olympus"
        )
    header = csv_files.read_header(kaggle_slice.read_text())
    assert csv_files.guess_mapping(header, imports.APPOINTMENT_FIELDS) == dict(
        imports.KAGGLE_NOSHOW.columns
    )


def test_the_first_guess_of_the_mapping_reads_headers_in_other_words_and_languages():
    """Another system's export heads its columns its own way, in its own language and order:
    the mapping screen starts from the columns named so (case, accents and punctuation aside),
    each column given to one field."""
    guess = csv_files.guess_mapping(
        ["Nº", "Situação", "Paciente", "Nome", "Sobrenome", "Data da consulta", "Hora", "Telefone"],
        imports.APPOINTMENT_FIELDS,
    )
    assert guess == {
        "patient_ref": "Paciente",
        "day": "Data da consulta",
        "status": "Situação",
        "start_time": "Hora",
        "first_name": "Nome",
        "last_name": "Sobrenome",
        "phone": "Telefone",
    }
    assert csv_files.guess_mapping(
        ["Ref", "Patient ID", "DOB", "Date", "Time", "Outcome", "Surname", "E-mail"],
        imports.APPOINTMENT_FIELDS,
    ) == {
        "patient_ref": "Patient ID",
        "appointment_ref": "Ref",
        "day": "Date",
        "status": "Outcome",
        "start_time": "Time",
        "last_name": "Surname",
        "date_of_birth": "DOB",
        "email": "E-mail",
    }


def test_a_generic_file_with_status_words_and_times(db, world, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text(
        "ref,patient,first,last,date,at,state,email\n"
        "A1,P1,Ana,Silva,2025-03-30,09:30,attended,ana@example.org\n"
        "A2,P1,Ana,Silva,2025-03-31,10:00,DNA,\n"
        "A3,P2,Ben,Ng,2025-04-01,11:00,cancelled,\n"
        "A4,P2,Ben,Ng,2025-04-02,25:00,attended,\n"
    )
    mapping = imports.AppointmentMapping(
        columns={
            "appointment_ref": "ref",
            "patient_ref": "patient",
            "first_name": "first",
            "last_name": "last",
            "day": "date",
            "start_time": "at",
            "status": "state",
            "email": "email",
        },
        duration_minutes=30,
        source="oldsys",
        provider=imports.WITHOUT_PROVIDER,
    )
    report = imports.import_appointments(
        db.write, world.owner, path, mapping, clinic_name="Test Clinic", timezone="Europe/London"
    )
    assert report.created == 3 and report.clinics_created == []
    assert report.problems[0].row == 5 and "not a time" in report.problems[0].reason
    with db.read() as session:
        rows = {a.external_ref: a for a in session.scalars(select(Appointment))}
        ana = session.scalar(select(Patient).where(Patient.external_ref == "oldsys:P1"))
    assert ana.full_name == "Ana Silva" and ana.email == "ana@example.org"
    # 30 March 2025 is the day British clocks go forward: 09:30 BST is 08:30 UTC
    assert rows["oldsys:A1"].start_at == datetime(2025, 3, 30, 8, 30, tzinfo=UTC)
    assert rows["oldsys:A1"].end_at == datetime(2025, 3, 30, 9, 0, tzinfo=UTC)
    assert [rows[r].status for r in ("oldsys:A1", "oldsys:A2", "oldsys:A3")] == [
        AppointmentStatus.COMPLETED,
        AppointmentStatus.NO_SHOW,
        AppointmentStatus.CANCELLED,
    ]


def test_an_implausible_date_of_birth_is_left_out_with_a_warning(db, world, tmp_path):
    path = tmp_path / "born.csv"
    path.write_text(
        "ref,patient,date,state,born\n"
        "B1,Q1,2025-03-30,attended,1800-01-01\n"
        "B2,Q2,2025-03-30,attended,0001-01-01\n"
        "B3,Q3,2025-03-30,attended,1980-05-17\n"
    )
    mapping = imports.AppointmentMapping(
        columns={
            "appointment_ref": "ref",
            "patient_ref": "patient",
            "day": "date",
            "status": "state",
            "date_of_birth": "born",
        },
        source="oldsys",
        provider=imports.WITHOUT_PROVIDER,
    )
    report = imports.import_appointments(
        db.write, world.owner, path, mapping, clinic_name="Test Clinic", timezone="Europe/London"
    )
    assert (report.created, report.problem_count) == (3, 0)
    assert {w.row: w.reason for w in report.warnings} == {
        2: "date of birth 1800-01-01 is more than 130 years ago; imported without it",
        3: "date of birth 0001-01-01 is more than 130 years ago; imported without it",
    }
    with db.read() as session:
        born = dict(session.execute(select(Patient.external_ref, Patient.date_of_birth)).all())
    assert born["oldsys:Q1"] is None and born["oldsys:Q2"] is None
    assert str(born["oldsys:Q3"]) == "1980-05-17"


def test_a_national_phone_number_is_read_in_the_country_of_the_clinic_imported_into(
    db, world, tmp_path
):
    """A São Paulo clinic's file holds São Paulo numbers: before, every national number was
    read as British and '(11) 91234-5678' was left out as too long."""
    with db.write() as session:
        session.add(Clinic(name="Clínica Paulista", timezone="America/Sao_Paulo", locale="pt-BR"))
    path = tmp_path / "sp.csv"
    path.write_text("ref,patient,date,state,tel\nB1,P1,2025-03-30,attended,(11) 91234-5678\n")
    mapping = imports.AppointmentMapping(
        columns={
            "appointment_ref": "ref",
            "patient_ref": "patient",
            "day": "date",
            "status": "state",
            "phone": "tel",
        },
        source="sp",
        provider=imports.WITHOUT_PROVIDER,
    )
    report = imports.import_appointments(
        db.write,
        world.owner,
        path,
        mapping,
        clinic_name="Clínica Paulista",
        timezone="America/Sao_Paulo",
    )
    assert (report.created, report.warning_count) == (1, 0), report.warnings
    with db.read() as session:
        assert session.scalar(select(Patient.phone).where(Patient.external_ref == "sp:P1")) == (
            "(11) 91234-5678"
        )


def test_an_invalid_email_or_phone_is_left_out_with_a_warning(db, world, tmp_path):
    """Imported contact details are checked as the patient form checks them: before, any text
    was stored as the patient's email or phone (cut to fit), so 'ann(at)example.org' went on
    file and every message to it failed, and 'Ann@Example.ORG' kept its capitals."""
    long = "a" * 250 + "@example.org"
    path = tmp_path / "contacts.csv"
    path.write_text(
        "ref,patient,date,state,mail,tel\n"
        "C1,R1,2025-03-30,attended,Ann@Example.ORG,+44 7700 900123\n"
        "C2,R2,2025-03-30,attended,ann(at)example.org,call after 5\n"
        f"C3,R3,2025-03-30,attended,{long},{'1' * 50}\n"
    )
    mapping = imports.AppointmentMapping(
        columns={
            "appointment_ref": "ref",
            "patient_ref": "patient",
            "day": "date",
            "status": "state",
            "email": "mail",
            "phone": "tel",
        },
        source="oldsys",
        provider=imports.WITHOUT_PROVIDER,
    )
    report = imports.import_appointments(
        db.write, world.owner, path, mapping, clinic_name="Test Clinic", timezone="Europe/London"
    )
    assert (report.created, report.problem_count, report.warning_count) == (3, 0, 4)
    assert [(w.row, w.reason) for w in report.warnings] == [
        (3, "email 'ann(at)example.org' is not an email address; imported without it"),
        (3, "phone 'call after 5' is not a phone number; imported without it"),
        (4, f"email {long[:40] + '…'!r} is not an email address; imported without it"),
        (4, f"phone {'1' * 40 + '…'!r} is not a phone number; imported without it"),
    ]
    with db.read() as session:
        contacts = {
            ref: (email, phone)
            for ref, email, phone in session.execute(
                select(Patient.external_ref, Patient.email, Patient.phone)
            )
        }
    assert contacts["oldsys:R1"] == ("ann@example.org", "+44 7700 900123")
    assert contacts["oldsys:R2"] == contacts["oldsys:R3"] == (None, None)


def test_clinics_a_file_adds_take_the_practices_money_and_dates_and_say_so_once(
    db, world, tmp_path
):
    """Before: every clinic an import created was en-GB and in pounds, whatever the practice
    used, and nothing said so. Now they follow the practice's first clinic, in one note."""
    with db.write() as session:
        clinic = session.get(Clinic, world.clinic_id)
        clinic.locale, clinic.currency = "en-US", "USD"
    path = tmp_path / "fft.csv"
    path.write_text("".join(real_rows(imports.SURVEY_FILE, 2000)))
    with db.write() as session:
        report = imports.import_surveys(session, world.owner, path, imports.NHS_FFT)
    made = report.clinics_created
    assert len(made) > 3
    with db.read() as session:
        kept = set(session.execute(select(Clinic.locale, Clinic.currency)))
    assert kept == {("en-US", "USD")}
    [note] = [n for n in report.notes if n.startswith("Created ")]
    assert note.startswith(f"Created {len(made)} clinics ({', '.join(made[:3])} and ")
    assert "with the locale en-US and the currency USD, as Test Clinic." in note
    assert "Clinics page" in note


def test_nhs_friends_and_family_survey_preset(db, world, tmp_path):
    lines = real_rows(imports.SURVEY_FILE, 120)
    path = tmp_path / "fft.csv"
    path.write_text("".join(lines))
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    with db.write() as session:
        report = imports.import_surveys(session, world.owner, path, imports.NHS_FFT)
    assert report.created == len(rows) and report.problem_count == 0
    assert set(report.clinics_created) == {r["surgery"] for r in rows}
    with db.read() as session:
        responses = list(session.scalars(select(SurveyResponse).order_by(SurveyResponse.id)))
        clinics = {c.id: c for c in session.scalars(select(Clinic))}
    words = {
        "Extremely likely": 5,
        "Likely": 4,
        "Neither likely nor unlikely": 3,
        "Unlikely": 2,
        "Extremely unlikely": 1,
    }
    for row, response in zip(rows, responses, strict=True):
        assert response.rating == words.get(row["rating"])
        assert response.comment == row["free_text"]
        assert clinics[response.clinic_id].name == row["surgery"]
        assert clinics[response.clinic_id].timezone == "Europe/London"
        local = datetime.fromisoformat(row["time"]).replace(tzinfo=ZoneInfo("Europe/London"))
        assert response.submitted_at == local
        if row["do_better"]:
            assert response.answers["do_better"] == row["do_better"]
    with db.write() as session:
        again = imports.import_surveys(session, world.owner, path, imports.NHS_FFT)
    assert (again.created, again.already_imported) == (0, len(rows))
    assert count(db, SurveyResponse) == len(rows)


def test_survey_rows_with_bad_values_are_skipped(db, world, tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(
        "time,rating,free_text,do_better,surgery\n"
        "2024-01-02 10:00:00,4,ok,,Main\n"
        "2024-01-02 10:00:00,7,too high,,Main\n"
        "yesterday,5,,,Main\n"
        "2024-01-03 10:00:00,Don't know,,,\n"
    )
    with db.write() as session:
        report = imports.import_surveys(session, SYSTEM, path, imports.NHS_FFT)
    assert report.created == 1
    assert [(p.row, p.reason) for p in report.problems] == [
        (3, "rating '7' is not a whole number from 1 to 5"),
        (4, f"time: 'yesterday' is not a date ({csv_files.DATE_FORMS})"),
        (5, "the clinic is empty"),
    ]


def test_control_characters_are_dropped_from_the_kept_survey_answers(db, world, tmp_path):
    """A survey's other answers (the FFT's do_better) are kept as JSON, past the flush rule that
    cleans typed text: they kept a NUL and an escape character the other cells lose. The
    comment keeps its line breaks, as a comment left through the survey page does (before, its
    lines were run together into one)."""
    path = tmp_path / "s.csv"
    path.write_text(
        "time,rating,free_text,do_better,surgery\n"
        '2024-01-02 10:00:00,4,"o\x07k\r\nsee you",Park\x00ing\x1b,Main\n'
    )
    with db.write() as session:
        report = imports.import_surveys(session, world.owner, path, imports.NHS_FFT)
    assert (report.created, report.problem_count) == (1, 0)
    with db.read() as session:
        response = session.scalar(select(SurveyResponse))
    assert (response.comment, response.answers) == ("ok\nsee you", {"do_better": "Parking"})


def test_cli_imports_the_file_and_prints_the_analytics_figures(
    tmp_path, kaggle_slice, monkeypatch, capsys
):
    from core import cli

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("CLINICDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLINICDESK_SECRET_KEY", "k" * 40)
    assert cli.main(["import-appointments", str(kaggle_slice), "--provider", "7"]) == 2
    assert "There is no provider 7: choose one" in capsys.readouterr().err
    assert cli.main(["import-appointments", str(kaggle_slice), "--preset", "kaggle-noshow"]) == 0
    out = capsys.readouterr().out
    assert f"{KAGGLE_ROWS} appointments imported" in out
    assert "note: The file names no provider: its visits were imported without one" in out
    assert cli.main(["stats", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    with open(kaggle_slice, newline="") as handle:
        rows = list(csv.DictReader(handle))
    no_shows = sum(r["No-show"] == "Yes" for r in rows)
    assert figures["totals"]["no_shows"] == no_shows
    assert figures["totals"]["attended"] == len(rows) - no_shows
    assert figures["totals"]["no_show_rate"] == pytest.approx(no_shows / len(rows))
    sms = {g["label"]: g for g in figures["by_sms"]}
    sms_rows = [r for r in rows if r["SMS_received"] == "1"]
    assert sms["SMS reminder"]["booked"] == len(sms_rows)
    assert sms["SMS reminder"]["no_shows"] == sum(r["No-show"] == "Yes" for r in sms_rows)
    weekdays = {g["label"]: g["booked"] for g in figures["by_weekday"]}
    expected = {}
    for r in rows:
        name = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][
            datetime.fromisoformat(r["AppointmentDay"][:10]).weekday()
        ]
        expected[name] = expected.get(name, 0) + 1
    assert {k: v for k, v in weekdays.items() if v} == expected


EXCEL_UK = (
    "\ufeffRef;Patient;First name;Surname;Date;Time;Outcome;Born\r\n"
    "A1;P1;Ana;Silva;05/06/2024;9:30;Attended;31/12/1980\r\n"
    'A2;P2;"Jo\r\nsé";Ng;45449;0.4375;DNA;29221\r\n'
    "A3;P1;Ana;Silva;13/06/2024 14:05;;Attended;\r\n"
    "A4;P3;Bea;Li;06/13/2024;09:00;Attended;\r\n"
    "A5;P3;Bea;Li;05/06/24;09:00;Attended;\r\n"
)
EXCEL_MAPPING = imports.AppointmentMapping(
    columns={
        "appointment_ref": "Ref",
        "patient_ref": "Patient",
        "first_name": "First name",
        "last_name": "Surname",
        "day": "Date",
        "start_time": "Time",
        "status": "Outcome",
        "date_of_birth": "Born",
    },
    source="excel",
    provider=imports.WITHOUT_PROVIDER,
)


def test_dates_as_excel_writes_them_are_read_in_the_order_chosen(db, world):
    """A file saved by Excel in the UK: BOM, semicolons, CRLF, a quoted line break, dates
    written 05/06/2024 (5 June), Excel's date numbers and fractions of a day, 9:30 without its
    leading zero. Without the date order such dates are refused, saying what to choose."""
    data = EXCEL_UK.encode("utf-8")
    unsure = imports.import_appointments(
        db.write,
        world.owner,
        data,
        EXCEL_MAPPING,
        clinic_name="Test Clinic",
        timezone="Europe/London",
    )
    assert unsure.created == 1  # the row in Excel's date numbers
    reasons = {p.row: p.reason for p in unsure.problems}
    assert reasons[2] == (
        "appointment day: '05/06/2024' may be day/month or month/day; choose how the file "
        "writes its dates (day first or month first)"
    )
    report = imports.import_appointments(
        db.write,
        world.owner,
        data,
        replace(EXCEL_MAPPING, date_order=csv_files.DAY_FIRST),
        clinic_name="Test Clinic",
        timezone="Europe/London",
    )
    assert (report.created, report.already_imported) == (2, 1)
    assert {p.row: p.reason for p in report.problems} == {
        5: "appointment day: '06/13/2024' is not a date read as day/month/year",
        6: "appointment day: '05/06/24' gives the year in two digits; write it in four (2024)",
    }
    with db.read() as session:
        visits = {a.external_ref: a for a in session.scalars(select(Appointment))}
        people = {p.external_ref: p for p in session.scalars(select(Patient))}
    london = ZoneInfo("Europe/London")
    assert visits["excel:A1"].start_at == datetime(2024, 6, 5, 9, 30, tzinfo=london)
    assert visits["excel:A2"].start_at == datetime(2024, 6, 6, 10, 30, tzinfo=london)
    assert visits["excel:A3"].start_at == datetime(2024, 6, 13, 14, 5, tzinfo=london)
    assert people["excel:P1"].date_of_birth == date(1980, 12, 31)
    assert people["excel:P2"].date_of_birth == date(1980, 1, 1)
    assert people["excel:P2"].first_name == "Jo sé"  # the line break in the cell
    american = imports.import_appointments(
        db.write,
        world.owner,
        EXCEL_UK.replace("A4;", "B4;").removeprefix("\ufeff").encode("cp1252"),
        replace(EXCEL_MAPPING, date_order=csv_files.MONTH_FIRST),
        clinic_name="Test Clinic",
        timezone="Europe/London",
    )
    assert american.created == 1  # 06/13/2024: June 13
    with db.read() as session:
        june = session.scalar(select(Appointment).where(Appointment.external_ref == "excel:B4"))
    assert june.start_at == datetime(2024, 6, 13, 9, 0, tzinfo=london)


def test_cli_reads_dates_in_the_order_it_is_given(tmp_path, monkeypatch, capsys):
    from core import cli

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("CLINICDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLINICDESK_SECRET_KEY", "k" * 40)
    path = tmp_path / "fft.csv"
    path.write_text("time,rating,free_text,do_better,surgery\n05/06/2024 10:00,4,ok,,Main\n")
    assert cli.main(["import-surveys", str(path)]) == 0
    assert "may be day/month or month/day" in capsys.readouterr().out
    assert cli.main(["import-surveys", str(path), "--date-order", "month-first"]) == 0
    assert "1 survey responses imported" in capsys.readouterr().out
    database = Database(f"sqlite:///{tmp_path / 'cli.db'}")
    with database.read() as session:
        answered = session.scalar(select(SurveyResponse.submitted_at))
    database.dispose()
    assert answered == datetime(2024, 5, 6, 10, 0, tzinfo=ZoneInfo("Europe/London"))


def test_a_large_file_is_imported_in_memory_of_one_chunk(db, world, tmp_path, monkeypatch):
    """The file is read row by row and saved a chunk at a time: the memory an import takes
    does not grow with the file (it held every row as a dict, and the file as text: 13 MB
    for a 0.8 MB file, 2 GB for a 100 MB one). 3,000 rows in chunks of 200: a peak of about
    1.9 MB, against 14 MB when the rows are held in one chunk; a larger file proves no more
    (9,000 rows took three times as long under tracemalloc)."""
    monkeypatch.setattr(imports, "CHUNK", 200)
    path = tmp_path / "big.csv"
    with open(path, "w", newline="") as handle:
        handle.write("ref,patient,first,last,day,status,notes\r\n")
        for i in range(3_000):
            day = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}"
            handle.write(f"A{i},P{i % 700},Ana{i},Silva,{day},attended,{'x' * 40}\r\n")
    mapping = imports.AppointmentMapping(
        columns={
            "appointment_ref": "ref",
            "patient_ref": "patient",
            "first_name": "first",
            "last_name": "last",
            "day": "day",
            "status": "status",
        },
        extra_columns=("notes",),
        provider=imports.WITHOUT_PROVIDER,
    )
    tracemalloc.start()
    try:
        report = imports.import_appointments(
            db.write, world.owner, path, mapping, clinic_name="Big", timezone="Europe/London"
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (report.created, report.patients_created) == (3_000, 700)
    assert peak < 5_000_000, f"{peak:,} bytes"
    assert count(db, Appointment) == 3_000


def test_empty_columns_excel_leaves_at_the_end_of_every_row_are_ignored(db, world):
    """Excel writes a separator for every column it once used: the first row ends in empty
    names (read as one name given twice) and every row in empty cells."""
    data = (
        b"Ref;Patient;Date;Outcome;;\r\n"
        b"A1;P1;2024-06-05;Attended;;\r\n"
        b"A2;P2;2024-06-06;DNA;;\r\n"
        b"A3;P2;2024-06-07;DNA;;stray\r\n"
    )
    columns = {"appointment_ref": "Ref", "patient_ref": "Patient", "day": "Date"}
    mapping = replace(EXCEL_MAPPING, columns=columns | {"status": "Outcome"})
    assert csv_files.header_of(data) == ["Ref", "Patient", "Date", "Outcome"]
    report = imports.import_appointments(
        db.write, world.owner, data, mapping, clinic_name="Test Clinic", timezone="Europe/London"
    )
    assert report.created == 2
    assert [(p.row, p.reason[:40]) for p in report.problems] == [
        (4, "the row has 6 fields but the first row n")
    ]


def test_a_portuguese_export_is_mapped_and_read_in_its_own_words(db, world):
    """Columns, statuses and yes/no in Portuguese, as a Brazilian system exports them."""
    data = (
        "Nº;Paciente;Data da consulta;Hora;Situação;SMS\r\n"
        "C1;P1;05/06/2024;9:00;Realizada;Sim\r\n"
        "C2;P1;06/06/2024;9:00;Faltou;Não\r\n"
        "C3;P2;07/06/2024;9:00;Cancelada;não\r\n"
        "C4;P2;08/06/2024;9:00;Agendada;\r\n"
        "C5;P3;09/06/2024;9:00;Talvez;\r\n"
    ).encode("cp1252")
    header = csv_files.header_of(data)
    columns = csv_files.guess_mapping(header, imports.APPOINTMENT_FIELDS)
    assert "appointment_ref" not in columns  # "Nº" is no name to guess from
    mapping = imports.AppointmentMapping(
        columns=columns | {"appointment_ref": "Nº"},
        date_order=csv_files.DAY_FIRST,
        source="br",
        provider=imports.WITHOUT_PROVIDER,
    )
    report = imports.import_appointments(
        db.write, world.owner, data, mapping, clinic_name="Vitória", timezone="America/Sao_Paulo"
    )
    assert report.created == 4 and [p.row for p in report.problems] == [6]
    with db.read() as session:
        visits = {
            ref: (status, sms)
            for ref, status, sms in session.execute(
                select(Appointment.external_ref, Appointment.status, Appointment.sms_reminder)
            )
        }
    assert visits == {
        "br:C1": (AppointmentStatus.COMPLETED, True),
        "br:C2": (AppointmentStatus.NO_SHOW, False),
        "br:C3": (AppointmentStatus.CANCELLED, False),
        "br:C4": (AppointmentStatus.SCHEDULED, False),
    }


def test_a_preview_shows_the_first_rows_as_read_and_saves_nothing(db, world):
    data = EXCEL_UK.encode("utf-8")
    mapping = replace(EXCEL_MAPPING, date_order=csv_files.MONTH_FIRST)
    with db.read() as session:
        rows = imports.preview_appointments(
            session,
            world.owner,
            data,
            mapping,
            clinic_name="Test Clinic",
            timezone="Europe/London",
            rows=3,
        )
        with pytest.raises(PermissionDenied):
            imports.preview_appointments(session, world.manager, data, mapping)
    assert [(r.row, r.appointment, r.starts, r.status) for r in rows] == [
        (2, "A1", "Mon 06 May 2024 09:30", "completed"),  # month first: what to check
        (3, "A2", "Thu 06 Jun 2024 10:30", "no-show"),  # in words, not the stored 'no_show'
        (4, "", "", ""),
    ]
    assert rows[0].name == "Ana Silva"
    assert (
        rows[2].note
        == "skipped: appointment day: '13/06/2024 14:05' is not a date read as month/day/year"
    )
    assert count(db, Appointment) == 0 and count(db, Patient) == 1  # the world's own


def test_a_visit_imported_without_its_booking_time_is_counted_as_unknown(db, world, tmp_path):
    """Neither a same-day booking in the lead-time chart nor a lead time of 0 in the no-show
    model: the file did not say when it was booked. A known booking at the start stays known."""
    from core.analytics.cancellations import AnalyticsFilters, compute_figures
    from core.analytics.risk_features import FEATURES, iter_features

    path = tmp_path / "plain.csv"
    path.write_text(
        "ref,patient,date,at,state,booked\n"
        "A1,P1,2025-03-03,09:30,attended,\n"  # booking time not given
        "A2,P1,2025-03-10,09:30,DNA,2025-03-01 10:00\n"  # booked 9 days ahead
        "A3,P2,2025-03-11,09:30,attended,2025-03-11 09:30\n"  # booked at the start itself
    )
    mapping = imports.AppointmentMapping(
        columns={
            "appointment_ref": "ref",
            "patient_ref": "patient",
            "day": "date",
            "start_time": "at",
            "status": "state",
            "booked_at": "booked",
        },
        source="plain",
        provider=imports.WITHOUT_PROVIDER,
    )
    report = imports.import_appointments(
        db.write, world.owner, path, mapping, clinic_name="Test Clinic", timezone="Europe/London"
    )
    assert file_notes(report) == [
        "1 appointment has no booking time in the file: the lead-time figures count them as "
        "'booking time unknown' and the no-show model does without their lead time."
    ]
    with db.read() as session:
        f = compute_figures(
            session, world.owner, AnalyticsFilters(date(2025, 3, 1), date(2025, 3, 31))
        )
        lead = {c.label: c.booked for c in f.by_lead_time}
        features = {r.external_ref: r.values for r in iter_features(session)}
    assert lead == {
        "under 1 day": 1,  # A3
        "1–3 days": 0,
        "3–7 days": 0,
        "7–14 days": 1,  # A2
        "14–30 days": 0,
        "30+ days": 0,
        "booking time unknown": 1,  # A1
    }
    with db.write() as session:
        bundle = json.loads(standards.export_fhir(session, world.owner).content)
    created = {
        e["resource"]["identifier"][1]["value"]: e["resource"].get("created")
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Appointment"
    }
    assert created["plain:A1"] is None and created["plain:A2"].startswith("2025-03-01T10:00")
    with db.write() as session:
        p1 = session.scalar(select(Patient.id).where(Patient.external_ref == "plain:P1"))
        file = json.loads(patient_export.export_patient(session, world.owner, p1))
    booked = {v["start_at"][:10]: v["booked_at"] for v in file["appointments"]}
    assert booked == {"2025-03-03": None, "2025-03-10": "2025-03-01T10:00:00+00:00"}
    days = FEATURES.index("lead_days")
    assert features["plain:A1"][days] != features["plain:A1"][days]  # missing (NaN)
    assert round(features["plain:A2"][days], 2) == 8.98
    assert features["plain:A3"][days] < 0.001


def test_past_visits_imported_without_an_outcome_are_named_in_the_report(db, world, tmp_path):
    """A system that never recorded outcomes exports its past visits as 'booked': the owner is
    told what they count as, not left to read a no-show rate over them."""
    path = tmp_path / "open.csv"
    path.write_text(
        "ref,patient,date,state\n"
        "A1,P1,2025-03-03,booked\n"
        "A2,P1,2025-03-04,arrived\n"
        "A3,P1,2025-03-05,attended\n"
        "A4,P1,2099-03-06,booked\n"  # still to come: no outcome expected
    )
    mapping = imports.AppointmentMapping(
        columns={
            "appointment_ref": "ref",
            "patient_ref": "patient",
            "day": "date",
            "status": "state",
        },
        provider=imports.WITHOUT_PROVIDER,
    )
    report = imports.import_appointments(
        db.write, world.owner, path, mapping, clinic_name="Test Clinic", timezone="Europe/London"
    )
    assert report.created == 4
    assert report.notes[-1] == (
        "2 visits in the past came as scheduled or arrived, with no outcome: they count as "
        "booked (the cancellation rate) but not as visits due (the no-show rate), and the "
        "no-show model does not learn from them. Where you know the outcome, set it on the "
        "calendar."
    )


def test_visits_of_a_file_naming_no_provider_go_to_the_one_chosen_or_to_none(db, world):
    """A file without providers is refused until the import is told whose visits they are;
    then the report says so, and visits of no provider count as (not recorded) in the rates
    by provider, not under a made-up provider that passes for a clinician."""
    mapping = imports.AppointmentMapping(
        columns={"appointment_ref": "ref", "patient_ref": "patient", "day": "date", "status": "x"},
        source="old",
    )
    place = {"clinic_name": "Test Clinic", "timezone": "Europe/London"}

    def run(rows: str, provider):
        data = f"ref,patient,date,x\n{rows}".encode()
        chosen = replace(mapping, provider=provider)
        return imports.import_appointments(db.write, world.owner, data, chosen, **place)

    with pytest.raises(ValidationError, match="names no provider: choose the practice's"):
        run("A1,P1,2025-03-03,attended\n", None)
    with pytest.raises(ValidationError, match="There is no provider 999: choose one"):
        run("A1,P1,2025-03-03,attended\n", 999)
    assert count(db, Appointment) == 0
    unknown = run("A1,P1,2025-03-03,attended\nA2,P2,2025-03-04,dna\n", imports.WITHOUT_PROVIDER)
    assert unknown.notes[0] == (
        "The file names no provider: its visits were imported without one, counted as "
        "(not recorded) in the by-provider figures."
    )
    known = run("B1,P1,2025-03-05,attended\n", world.provider_id)
    assert (
        known.notes[0]
        == "The file names no provider: its visits were attached to Dr Test, as chosen."
    )
    with db.read() as session:
        groups = breakdowns.rates_by(
            session, world.owner, AnalyticsFilters(date(2025, 3, 1), date(2025, 3, 31)), "provider"
        )
        assert session.scalar(select(func.count()).select_from(Provider)) == 1
    assert {g.counts.label: g.counts.booked for g in groups} == {
        "(not recorded)": 2,
        "Dr Test": 1,
    }


def test_a_patient_name_without_a_letter_skips_its_row_saying_what_to_fix(db, world, tmp_path):
    """The rule of every patient name field (core.patients.records.has_letter): a name given
    needs a letter in some alphabet. '🙂🙂', '---' or '123' is no one's name; the row is
    skipped, nothing of it saved, and the report says which row and what to write instead.
    Names in other alphabets come in, and an empty cell is still no name given."""
    path = tmp_path / "names.csv"
    path.write_text(
        "ref,patient,first,last,date,state\n"
        "N1,P1,🙂🙂,Silva,2025-03-30,attended\n"
        "N2,P2,Ana,---,2025-03-30,attended\n"
        "N3,P3,123,,2025-03-30,attended\n"
        "N4,P4,Zoë,李,2025-03-30,attended\n"
        "N5,P5,,Nguyễn,2025-03-30,attended\n",
        encoding="utf-8",
    )
    mapping = imports.AppointmentMapping(
        columns={
            "appointment_ref": "ref",
            "patient_ref": "patient",
            "first_name": "first",
            "last_name": "last",
            "day": "date",
            "status": "state",
        },
        source="names",
        provider=imports.WITHOUT_PROVIDER,
    )
    report = imports.import_appointments(
        db.write, world.owner, path, mapping, clinic_name="Test Clinic", timezone="Europe/London"
    )
    assert (report.created, report.patients_created, report.problem_count) == (2, 2, 3)
    fix = "write the patient's name as it is written (in any alphabet), or leave the cell empty"
    assert {p.row: p.reason for p in report.problems} == {
        2: f"the first name '🙂🙂' has no letter in it: {fix}",
        3: f"the last name '---' has no letter in it: {fix}",
        4: f"the first name '123' has no letter in it: {fix}",
    }
    with db.read() as session:
        names = {p.external_ref: p.full_name for p in session.scalars(select(Patient))}
        visits = set(session.scalars(select(Appointment.external_ref)))
    assert {r: n for r, n in names.items() if r and r.startswith("names:")} == {
        "names:P4": "Zoë 李",
        "names:P5": "Imported patient Nguyễn",
    }
    assert visits >= {"names:N4", "names:N5"} and not visits & {"names:N1", "names:N2", "names:N3"}
    with db.read() as session:
        preview = imports.preview_appointments(
            session, world.owner, path, mapping, clinic_name="Test Clinic", timezone="Europe/London"
        )
    assert preview[0].note == f"skipped: the first name '🙂🙂' has no letter in it: {fix}"
