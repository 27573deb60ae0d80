"""Importing appointments and survey responses from CSV files of other systems.

Appointments are read row by row and saved in chunks of CHUNK rows with their patients, each
chunk its own short transaction (see core.interchange.import_batches), so people working
meanwhile wait on SQLite's write lock for a fraction of a second at a time, not for the whole
file, and memory holds one chunk, whatever the file's size. The rows of one import form an
ImportBatch that the analytics leave out until its last chunk is saved: nothing is half-visible.
An import that stops part-way (a crash, a killed process, a page left) is finished by importing
the file again, as it was or corrected: the rows it saved are taken into the new batch.
Survey files are small and import as one transaction (the caller's), read whole.

Rows that cannot be read are skipped and reported by their spreadsheet row number (the header is
row 1) with the reason, including rows whose field count differs from the header's. A header
that names a column twice is refused. Files are read as UTF-8 unless an encoding is given; a
file that is not UTF-8 is read as Windows-1252 (or Latin-1) and the report says so. Dates are
ISO, Excel's date numbers, or day and month as numbers in the mapping's `date_order` (refused
without one: 05/06/2024 is 5 June or May 6); see csv_files.parse_moment. A row with
one implausible field (an age outside 0–130, a booking day after the appointment day) is
imported without that field, with a warning in the report; so is a patient's email address or
phone number the patient form would refuse.

The files name no provider: the mapping says whose visits they are (one of the practice's
providers, or WITHOUT_PROVIDER: none recorded) and the import refuses without it, rather than
make up a provider that would pass for a clinician in the rates by provider.

Re-importing the same file creates nothing twice: every imported patient, appointment and survey
response carries `external_ref` = "<source>:<id in the file>" and rows whose reference exists are
counted as already imported.

Time rule for files that give an appointment *day* but no time (the Kaggle no-show file):
the visit starts at `default_time` (08:00) clinic-local on that day and lasts
`duration_minutes` (15); a booking made on the appointment day itself (a same-day or walk-in
booking, about a third of that file) starts at the booking time rounded up to the next quarter
hour instead, so that lead time = start − booked is never negative (same-day = 0 days).
A booking without a usable time is stored as made at the start, which the analytics read as
"booking time unknown" (cancellation_parts.booking_unknown): its own lead-time bucket, and no
lead time in the no-show model; a known booking at or after the start is stored a second
before it (same day, lead time 0), so the two never mix. The Kaggle file marks
ScheduledDay with "Z", but its times (07:00–21:00) are the Vitória clinics' opening hours, so
the preset reads them as clinic-local wall times (`times_are_local`).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from core.interchange import import_batches
from core.interchange.csv_files import (
    NO,
    YES,
    FieldSpec,
    ImportReport,
    check_columns,
    decode,
    numbered_rows,
    open_csv,
    parse_date,
    parse_datetime,
    parse_flag,
    parse_number,
    parse_time,
    plain,
    quarter_up,
    read_bytes,
)
from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import is_time_zone, local_to_utc, to_local, zone
from core.kernel.errors import ValidationError
from core.kernel.text import clean
from core.patients.records import birth_problem, practice_regions, validate_contact
from core.scheduling import states
from db.models import (
    AppointmentStatus,
    Clinic,
    Provider,
    Source,
    SurveyResponse,
)
from db.types import utcnow

Progress = Callable[[float, str], None]


KNOWN_BEFORE = timedelta(seconds=1)  # a known booking time is stored at least this before the start


CHUNK = 1_000  # rows per transaction: each holds the SQLite write lock well under a second


# A file's visits imported without a provider: the by-provider figures count them under
# "(not recorded)", not as a clinician of the practice
WITHOUT_PROVIDER = "none"


def shared_data(relative: str) -> Path:
    """A file of the data shipped beside the project (`../shared/data/…`), looked for from the
    repository's folder upwards so a git worktree finds it too."""
    root = Path(__file__).resolve().parents[2]
    for folder in (root, *root.parents):
        candidate = folder.parent / "shared" / "data" / relative
        if candidate.exists():
            return candidate
    return root.parent / "shared" / "data" / relative


NOSHOW_FILE = shared_data("noshow/KaggleV2-May-2016.csv")


SURVEY_FILE = shared_data("survey/nhs_fft_gp.csv")


# `names`: how other systems head the column, in English, Portuguese, Spanish, French and
# German, "|" between them: the mapping screen's first guess (csv_files.guess_mapping)
APPOINTMENT_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "patient_ref",
        "Patient id in the other system",
        True,
        "patient id|patient|patient number|patient no|mrn|client id|id paciente|paciente|"
        "codigo paciente|patientennummer",
    ),
    FieldSpec(
        "appointment_ref",
        "Appointment id in the other system",
        True,
        "appointment id|appointment|booking id|booking ref|visit id|ref|reference|id|"
        "id consulta|consulta|agendamento|cita|rendez vous|rdv|termin id",
    ),
    FieldSpec(
        "day",
        "Appointment day (or date and time)",
        True,
        "appointment day|appointment date|date|day|start|start date|data|data da consulta|"
        "fecha|datum|date du rendez vous",
    ),
    FieldSpec(
        "status",
        "Status or no-show flag",
        True,
        "status|outcome|state|no show|attended|situacao|estado|statut",
    ),
    FieldSpec("start_time", "Start time of day", False, "time|start time|hora|heure|uhrzeit|zeit"),
    FieldSpec(
        "booked_at",
        "When it was booked",
        False,
        "booked|booked at|booking date|scheduled day|created|created at|data agendamento",
    ),
    FieldSpec(
        "sms_reminder",
        "SMS reminder sent (1/0, yes/no)",
        False,
        "sms|sms received|sms reminder|reminder sent",
    ),
    FieldSpec(
        "first_name",
        "Patient first name",
        False,
        "first name|forename|given name|first|nome|nombre|prenom|vorname",
    ),
    FieldSpec(
        "last_name",
        "Patient last name",
        False,
        "last name|surname|family name|last|sobrenome|apellido|apellidos|nom|nachname",
    ),
    FieldSpec(
        "date_of_birth",
        "Patient date of birth",
        False,
        "dob|date of birth|birth date|birthday|data de nascimento|data nascimento|"
        "fecha de nacimiento|date de naissance|geburtsdatum",
    ),
    FieldSpec("age", "Patient age", False, "age|idade|edad|alter"),
    FieldSpec("gender", "Patient gender", False, "gender|sex|sexo|genero|sexe|geschlecht"),
    FieldSpec("email", "Patient email", False, "email|email address|e-mail|mail|correo"),
    FieldSpec(
        "phone",
        "Patient phone",
        False,
        "phone|phone number|telephone|mobile|tel|telefone|celular|telefono|movil|portable|"
        "telefon|handy",
    ),
)


SURVEY_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "submitted_at",
        "When answered",
        True,
        "time|date|submitted|submitted at|timestamp|answered|data|fecha",
    ),
    FieldSpec(
        "rating",
        "Rating (1–5 or Friends and Family words)",
        True,
        "rating|score|answer|nota|puntuacion|note",
    ),
    FieldSpec("comment", "Free text", False, "comment|comments|free text|comentario"),
    FieldSpec("clinic", "Clinic or surgery name", False, "clinic|surgery|practice|site|clinica"),
    FieldSpec("response_ref", "Response id in the other system", False, "response id|id"),
)


@dataclass(frozen=True)
class AppointmentMapping:
    """Which file column feeds which field, and how to read the values."""

    columns: dict[str, str]  # field key -> file column
    extra_columns: tuple[str, ...] = ()  # kept as patient data (Patient.extra)
    status_is_no_show_flag: bool = False  # the status column says "did not come": Yes / No
    times_are_local: bool = False  # also "Z" times are clinic-local wall times (naive ones are)
    default_time: time = time(8)
    duration_minutes: int = 15
    source: str = "csv"  # prefix of external_ref: keeps ids of different systems apart
    date_order: str | None = None  # DAY_FIRST or MONTH_FIRST: how 05/06/2024 reads (see
    # csv_files.parse_moment); without it such dates are refused, ISO ones and Excel's read
    provider: int | str | None = None  # whose visits these are (a file names no provider): a
    # provider's id, WITHOUT_PROVIDER (not recorded), or None: not chosen, the import refuses


@dataclass(frozen=True)
class SurveyMapping:
    columns: dict[str, str]
    answer_columns: tuple[str, ...] = ()  # other respondent answers kept in `answers`
    default_clinic: str = ""
    timezone: str = "Europe/London"
    source: str = "csv"
    date_order: str | None = None  # as AppointmentMapping's


KAGGLE_NOSHOW = AppointmentMapping(
    columns={
        "patient_ref": "PatientId",
        "appointment_ref": "AppointmentID",
        "day": "AppointmentDay",
        "status": "No-show",
        "booked_at": "ScheduledDay",
        "sms_reminder": "SMS_received",
        "age": "Age",
        "gender": "Gender",
    },
    extra_columns=(
        "Neighbourhood",
        "Scholarship",
        "Hipertension",
        "Diabetes",
        "Alcoholism",
        "Handcap",
    ),
    status_is_no_show_flag=True,
    times_are_local=True,
    source="kaggle-noshow",
    provider=WITHOUT_PROVIDER,  # the data set names no clinician: its visits have none recorded
)


NHS_FFT = SurveyMapping(
    columns={
        "submitted_at": "time",
        "rating": "rating",
        "comment": "free_text",
        "clinic": "surgery",
    },
    answer_columns=("do_better",),  # sentiment and label columns are a model's, not respondents'
    source="nhs-fft",
)


APPOINTMENT_PRESETS = {"kaggle-noshow": KAGGLE_NOSHOW}


SURVEY_PRESETS = {"nhs-fft": NHS_FFT}


KAGGLE_CLINIC = ("Vitória (imported)", "America/Sao_Paulo")


FFT_WORDS = {
    "extremely likely": 5,
    "very good": 5,
    "likely": 4,
    "good": 4,
    "neither likely nor unlikely": 3,
    "neither good nor poor": 3,
    "unlikely": 2,
    "poor": 2,
    "extremely unlikely": 1,
    "very poor": 1,
}


FFT_NO_ANSWER = {"don't know", "dont know", ""}


STATUS_WORDS = {  # compared as csv_files.plain: without case or accents
    AppointmentStatus.COMPLETED: "completed|attended|fulfilled|done|seen|"
    "realizada|realizado|atendida|atendido|compareceu|concluida|concluido|asistio|"
    "effectue|honore|venu|erschienen|abgeschlossen",
    AppointmentStatus.NO_SHOW: "no_show|no-show|noshow|no show|dna|did not attend|did not arrive|"
    "faltou|falta|nao compareceu|no asistio|no se presento|ausente|absent|non honore|"
    "nicht erschienen",
    AppointmentStatus.CANCELLED: "cancelled|canceled|cancelada|cancelado|anulada|annule|annulee|"
    "abgesagt|storniert",
    AppointmentStatus.SCHEDULED: "scheduled|booked|confirmed|agendada|agendado|marcada|marcado|"
    "confirmada|confirmado|programada|reservada|planifie|reserve|geplant|gebucht",
    AppointmentStatus.CHECKED_IN: "checked_in|checked in|arrived|chegou|presente|arrive|angekommen",
}
STATUS_OF = {word: status for status, words in STATUS_WORDS.items() for word in words.split("|")}


def import_appointments(
    write: Callable[[], Any],
    actor: Actor,
    source: str | Path | bytes | BinaryIO,
    mapping: AppointmentMapping,
    *,
    clinic_name: str = KAGGLE_CLINIC[0],
    timezone: str = KAGGLE_CLINIC[1],
    progress: Progress | None = None,
    encoding: str | None = None,
) -> ImportReport:
    """Import appointments (and their patients) from CSV into one clinic, created if missing,
    with the provider the mapping names (one of the practice's, or none: the file names no
    provider, and a made-up one would pass for a clinician). `write` opens a write transaction
    (Database.write): the rows are saved in chunks of CHUNK, each its own transaction, in an
    ImportBatch the analytics ignore until the last chunk is saved. Interrupted, the same call
    again resumes: rows already saved are skipped, and the batch is finished."""
    ensure(actor, Permission.DATA_IMPORT)
    if not is_time_zone(timezone):
        raise ValidationError(f"{timezone!r} is not an IANA time zone (e.g. America/Sao_Paulo).")
    if not clinic_name.strip():
        raise ValidationError("Name the clinic the appointments belong to.")
    if not 5 <= mapping.duration_minutes <= 600:
        raise ValidationError("The default duration must be from 5 to 600 minutes.")
    report = ImportReport(what="appointments")
    tick = progress or (lambda _f, _m: None)
    salt = repr((mapping, clinic_name.strip(), timezone)).encode()
    file = open_csv(source, encoding, salt)
    report.notes += [file.note] if file.note else []
    header, rows, total = file.rows()
    check_columns(header, mapping.columns, APPOINTMENT_FIELDS, mapping.extra_columns)
    if mapping.provider is None:
        raise ValidationError(
            "The file names no provider: choose the practice's provider these visits were "
            "with, or import them without a provider (counted as not recorded)."
        )
    with write() as session:
        provider_id, provider_name = _provider(session, mapping.provider)
        clinic_id = import_batches.clinic(session, clinic_name.strip(), timezone, report)
        batch_id = import_batches.batch(session, actor, file.fingerprint, clinic_id, report)
        regions = practice_regions(session, session.get(Clinic, clinic_id).locale)
    tick(0.0, f"Reading {total:,} rows")
    # Read and saved CHUNK rows at a time (their patients first, in the same transaction):
    # memory holds one chunk, whatever the file's size. An id seen earlier in the file is
    # found in the database, saved in this run's batch, rather than kept in a list.
    chunk = import_batches.Chunk(clinic_id, provider_id, batch_id)
    span: tuple[datetime, datetime] | None = None  # first and last start, for the roll-ups
    unknown_booking = 0  # rows without a booking time
    open_past, now = 0, utcnow()  # past visits without an outcome (scheduled, arrived)

    reader = _RowReader(mapping, timezone, regions)

    def save() -> None:
        with write() as session:
            chunk.save(session, report)
        tick(min(report.rows_read / total, 1.0), f"Saved {report.created:,} appointments")

    for number, row, wrong in rows:
        report.rows_read += 1
        if row is None:
            report.problem(number, wrong or "unreadable row")
            continue
        try:
            record, patient, warnings = reader.read(row)
        except ValueError as exc:
            report.problem(number, str(exc))
            continue
        if first := chunk.add(number, record, patient):
            report.problem(number, f"appointment id appears again (first at row {first})")
            continue
        for warning in warnings:
            report.warn(number, warning)
        unknown_booking += record["booked_at"] == record["start_at"]
        open_past += import_batches.without_outcome(record, now)
        at = record["start_at"]
        span = (min(span[0], at), max(span[1], at)) if span else (at, at)
        if len(chunk) >= CHUNK:
            save()
    if len(chunk):
        save()
    if report.created:
        report.notes.append(
            f"The file names no provider: its visits were attached to {provider_name}, as chosen."
            if provider_id is not None
            else "The file names no provider: its visits were imported without one, counted "
            "as (not recorded) in the by-provider figures."
        )
    if unknown_booking:
        report.notes.append(
            f"{unknown_booking:,} "
            + ("appointment has" if unknown_booking == 1 else "appointments have")
            + " no booking time in the file: the lead-time "
            "figures count them as 'booking time unknown' and the no-show model does without "
            "their lead time."
        )
    import_batches.past_open_note(report, open_past)
    with write() as session:
        ends = [{"start_at": at} for at in span or ()]
        import_batches.finish(session, actor, batch_id, ends, timezone, report)
        audit.record(
            session,
            actor,
            "import",
            "appointments",
            None,
            message=report.summary,
            details={
                "clinic": clinic_name,
                "provider_id": provider_id,
                "source": mapping.source,
                "batch": batch_id,
                "fingerprint": file.fingerprint,
                "rows_read": report.rows_read,
                "created": report.created,
                "already_imported": report.already_imported,
                "patients_created": report.patients_created,
                "problems": report.problem_count,
                "warnings": report.warning_count,
            },
        )
    tick(1.0, report.summary)
    return report


def _provider(session: Session, chosen: int | str) -> tuple[int | None, str]:
    """The chosen provider's id and name; (None, "") for WITHOUT_PROVIDER."""
    if chosen == WITHOUT_PROVIDER:
        return None, ""
    provider = session.get(Provider, chosen) if isinstance(chosen, int) else None
    if provider is None:
        raise ValidationError(
            f"There is no provider {chosen!r}: choose one of the practice's providers, or "
            "import the visits without a provider."
        )
    return provider.id, provider.name


PREVIEW_ROWS = 10


@dataclass(frozen=True)
class PreviewRow:
    """One row of the file as the import would read it."""

    row: int  # the spreadsheet's row number
    appointment: str
    patient: str
    name: str
    starts: str  # clinic-local, the month in words: "Wed 05 Jun 2024 09:30"
    status: str
    note: str  # why the row would be skipped, or its warnings


def preview_appointments(
    session: Session,
    actor: Actor,
    source: str | Path | bytes | BinaryIO,
    mapping: AppointmentMapping,
    *,
    clinic_name: str = KAGGLE_CLINIC[0],
    timezone: str = KAGGLE_CLINIC[1],
    encoding: str | None = None,
    rows: int = PREVIEW_ROWS,
) -> list[PreviewRow]:
    """The file's first `rows` rows as import_appointments would read them, nothing saved: a
    date order or a column chosen wrong shows here (05/06/2024 read as 6 May), not in
    appointments imported with it, which an import again would skip as already imported."""
    ensure(actor, Permission.DATA_IMPORT)
    if not is_time_zone(timezone):
        raise ValidationError(f"{timezone!r} is not an IANA time zone (e.g. America/Sao_Paulo).")
    header, numbered, _ = open_csv(source, encoding).rows()
    check_columns(header, mapping.columns, APPOINTMENT_FIELDS, mapping.extra_columns)
    clinic = session.scalar(select(Clinic).where(Clinic.name == clinic_name.strip()))
    regions = practice_regions(session, clinic.locale if clinic else None)
    reader, shown = _RowReader(mapping, timezone, regions), []
    for number, row, wrong in itertools.islice(numbered, rows):
        try:
            if row is None:
                raise ValueError(wrong or "unreadable row")
            record, patient, warnings = reader.read(row)
        except ValueError as exc:
            shown.append(PreviewRow(number, "", "", "", "", "", f"skipped: {exc}"))
            continue
        local = to_local(record["start_at"], timezone)
        shown.append(
            PreviewRow(
                number,
                record["external_ref"].split(":", 1)[1],
                record["patient_ref"].split(":", 1)[1],
                f"{patient['first_name']} {patient['last_name']}",
                f"{local:%a %d %b %Y %H:%M}",
                states.STATUS_WORDS[record["status"]],  # 'no-show', not its value 'no_show'
                "; ".join(warnings),
            )
        )
    return shown


def _cell(row: dict[str, str], column: str, multiline: bool = False) -> str:
    """A cell as text: control characters (NUL included) dropped, as for anything typed
    (core.kernel.text), also for what goes into JSON (Patient.extra), which the database's
    flush rule does not see, and for rows inserted in bulk; line breaks kept when
    `multiline` (a comment), else read as spaces."""
    return (clean(row.get(column) or "", field=column, multiline=multiline) or "").strip()


# distinct cells each column's reading keeps (the hundred or so dates, ages or neighbourhoods a
# column of a large file repeats), so memory stays bounded; what it raises is not kept
REMEMBERED = 1_024


def _remembered(read: Callable[[str], Any]) -> Callable[[str], Any]:
    return functools.lru_cache(maxsize=REMEMBERED)(read)


class _RowReader:
    """Reads the rows of one file as `read` says, under one mapping, time zone and the
    practice's regions, reading each distinct value of the columns that repeat down a file
    (the appointment day, the outcome, flags, the patient columns kept) once per run of
    REMEMBERED distinct values, not once per row."""

    def __init__(self, mapping: AppointmentMapping, tz: str, regions: tuple[str, ...]) -> None:
        self.mapping, self.tz, self.regions, self.zone = mapping, tz, regions, zone(tz)
        self.columns = {key: column for key, column in mapping.columns.items() if column}
        self.day = _remembered(self._day)
        self.status = _remembered(lambda cell: _status(cell, mapping.status_is_no_show_flag))
        self.flag = _remembered(parse_flag)
        self.number = _remembered(lambda raw: parse_number(_cell({"": raw}, "")))

    def _day(self, cell: str) -> tuple[datetime, bool, date, time, datetime]:
        """(the day as UTC, whether it has a time of day, its clinic-local day and time, the
        default time on that day as UTC)."""
        mapping = self.mapping
        try:
            utc, has_time = parse_datetime(
                cell, self.tz, mapping.times_are_local, mapping.date_order
            )
        except ValueError as exc:
            raise ValueError(f"appointment day: {exc}") from None
        local = utc.astimezone(self.zone)
        default = local_to_utc(local.date(), mapping.default_time, self.tz)
        return utc, has_time, local.date(), local.time(), default

    def read(self, row: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """(appointment, patient, warnings): a row with one unreadable or implausible optional
        field (booking time, SMS flag, age, date of birth) is imported with that field left out
        and a warning; an unreadable required one (the ids, the appointment's day and time, its
        outcome) is a ValueError: the row is skipped with that reason."""
        mapping, tz = self.mapping, self.tz
        warnings: list[str] = []
        cells = {key: _cell(row, column) for key, column in self.columns.items()}

        def get(key: str) -> str:
            return cells.get(key, "")

        patient_ref, appointment_ref = get("patient_ref"), get("appointment_ref")
        if not patient_ref:
            raise ValueError("the patient id is empty")
        if not appointment_ref:
            raise ValueError("the appointment id is empty")
        if (
            len(patient_ref) + len(mapping.source) >= 64
            or len(appointment_ref) + len(mapping.source) >= 64
        ):
            raise ValueError("an id is longer than 60 characters")
        if not get("day"):
            raise ValueError("the appointment day is empty")
        day_utc, day_has_time, local_day, day_clock, default_start = self.day(get("day"))
        booked = booked_day = None
        if get("booked_at"):
            try:
                booked, _ = parse_datetime(
                    get("booked_at"), tz, mapping.times_are_local, mapping.date_order
                )
            except ValueError as exc:
                warnings.append(f"booking time: {exc}; imported without it")
            else:
                booked_day = booked.astimezone(self.zone).date()
        if get("start_time"):
            try:
                at = parse_time(get("start_time"))
            except ValueError as exc:
                raise ValueError(f"start time {exc}") from None
            start = local_to_utc(local_day, at, tz)
        elif day_has_time and day_clock != time(0):
            start = day_utc
        else:
            start = default_start
            if booked is not None and booked_day == local_day and booked > start:
                start = quarter_up(booked)  # same-day booking: seen from the booking time on
                if start.astimezone(self.zone).date() != local_day:
                    start = booked
        if booked is not None and booked_day > local_day:
            warnings.append(
                f"the booking day {booked_day} is after the appointment day "
                f"{local_day}; imported without the booking time"
            )
            booked = None
        if booked is not None and booked >= start:
            booked = start - KNOWN_BEFORE  # known: kept apart from an unknown one (= start)
        status = self.status(get("status"))
        end = start + timedelta(minutes=mapping.duration_minutes)
        sms = False
        if get("sms_reminder"):
            try:
                sms = self.flag(get("sms_reminder"))
            except ValueError as exc:
                warnings.append(f"SMS reminder: {exc}; imported as not sent")
        patient = self._patient(get, row, patient_ref, local_day, warnings)
        pref = f"{mapping.source}:{patient_ref}"
        record = {
            "patient_ref": pref,
            "patient_external_ref": pref,
            "external_ref": f"{mapping.source}:{appointment_ref}",
            "status": status,
            "start_at": start,
            "end_at": end,
            "booked_at": booked or start,
            "source": Source.IMPORT,
            "sms_reminder": sms,
            "allow_double_booking": True,  # the file has no times: visits share the default time
            "completed_at": end if status == AppointmentStatus.COMPLETED else None,
        }
        return record, patient, warnings

    def _patient(self, get, row, patient_ref, local_day, warnings) -> dict[str, Any]:
        mapping, regions = self.mapping, self.regions
        extra: dict[str, Any] = {c: self.number(row.get(c) or "") for c in mapping.extra_columns}
        if get("age"):
            try:
                age = int(float(get("age")))
            except ValueError:
                warnings.append(f"age {get('age')!r} is not a number; imported without an age")
            else:
                if 0 <= age <= 130:
                    extra["age"] = age
                    extra["age_on"] = local_day.isoformat()
                else:
                    warnings.append(f"age {age} is not between 0 and 130; imported without an age")
        birth = None
        if get("date_of_birth"):
            try:
                birth = parse_date(get("date_of_birth"), mapping.date_order)
            except ValueError as exc:
                warnings.append(f"date of birth: {exc}; imported without it")
            if problem := birth_problem(birth):
                warnings.append(f"date of birth {birth} is {problem}; imported without it")
                birth = None
        return {
            "external_ref": f"{mapping.source}:{patient_ref}",
            "first_name": _name(get("first_name"), "first name") or "Imported patient",
            "last_name": _name(get("last_name"), "last name") or patient_ref[:80],
            "date_of_birth": birth,
            "email": _contact(get("email"), "email", warnings, regions),
            "phone": _contact(get("phone"), "phone", warnings, regions),
            "gender": get("gender")[:16] or None,
            "extra": extra or None,
        }


def _name(text: str, field: str) -> str:
    """A name as one line: a line break inside the cell (Excel's Alt+Enter) is a space; one
    without a letter in it skips the row, saying so (import_batches.name_part)."""
    return import_batches.name_part(
        " ".join(text.split())[:80], field, empty="leave the cell empty"
    )


def _contact(text: str, kind: str, warnings: list[str], regions: tuple[str, ...]) -> str | None:
    """An email address or phone number checked as the patient form checks it (the email in
    lower case; a national phone number read in `regions`), or None with a warning."""
    if not text:
        return None
    try:
        email, phone = validate_contact(
            *((text, None) if kind == "email" else (None, text)), regions
        )
    except ValidationError:
        shown = text if len(text) <= 40 else text[:40] + "…"
        what = "an email address" if kind == "email" else "a phone number"
        warnings.append(f"{kind} {shown!r} is not {what}; imported without it")
        return None
    return email or phone


def _status(value: str, no_show_flag: bool) -> AppointmentStatus:
    text = plain(value)
    if no_show_flag:
        if text in YES:
            return AppointmentStatus.NO_SHOW
        if text in NO - {""}:
            return AppointmentStatus.COMPLETED
        raise ValueError(f"no-show flag {value!r} is not Yes or No")
    if text in STATUS_OF:
        return STATUS_OF[text]
    raise ValueError(
        f"status {value!r} is not one of completed, no-show, cancelled, scheduled, arrived"
    )


def import_surveys(
    session: Session,
    actor: Actor,
    source: str | Path | bytes | BinaryIO,
    mapping: SurveyMapping,
    *,
    progress: Progress | None = None,
    encoding: str | None = None,
) -> ImportReport:
    """Import survey responses; each names its clinic (created if missing, in the mapping's
    time zone) or falls back to `default_clinic`. Naive times are clinic-local."""
    ensure(actor, Permission.DATA_IMPORT)
    if not is_time_zone(mapping.timezone):
        raise ValidationError(
            f"{mapping.timezone!r} is not an IANA time zone (e.g. Europe/London)."
        )
    report = ImportReport(what="survey responses")
    tick = progress or (lambda _f, _m: None)
    text, note = decode(read_bytes(source), encoding)
    report.notes += [note] if note else []
    header, rows, total = numbered_rows(text)
    check_columns(header, mapping.columns, SURVEY_FIELDS, mapping.answer_columns)
    if not mapping.columns.get("clinic") and not mapping.default_clinic.strip():
        raise ValidationError(
            "Choose the column naming the clinic, or name one clinic for all rows."
        )
    clinics: dict[str, int] = {}
    records: list[dict[str, Any]] = []
    occurrences: dict[str, int] = {}
    seen: set[str] = set()
    for number, row, wrong in rows:
        report.rows_read += 1
        if row is None:
            report.problem(number, wrong or "unreadable row")
            continue
        try:
            record, clinic = _survey_row(row, mapping)
        except ValueError as exc:
            report.problem(number, str(exc))
            continue
        if clinic not in clinics:
            clinics[clinic] = import_batches.clinic(session, clinic, mapping.timezone, report)
        record["clinic_id"] = clinics[clinic]
        if record["external_ref"] is None:  # no id in the file: a fingerprint of the row
            digest = hashlib.sha256(
                "\x1f".join(row.get(c, "") for c in header).encode()
            ).hexdigest()
            occurrences[digest] = occurrences.get(digest, 0) + 1
            record["external_ref"] = f"{mapping.source}:{digest[:32]}-{occurrences[digest]}"
        elif record["external_ref"] in seen:
            report.problem(number, "response id appears again")
            continue
        seen.add(record["external_ref"])
        records.append(record)
    tick(0.5, f"Read {report.rows_read:,} of {total:,} rows")
    existing = import_batches.existing(
        session, SurveyResponse, [r["external_ref"] for r in records]
    )
    fresh = [r for r in records if r["external_ref"] not in existing]
    report.already_imported = len(records) - len(fresh)
    for start in range(0, len(fresh), CHUNK):
        session.execute(insert(SurveyResponse), fresh[start : start + CHUNK])
    report.created = len(fresh)
    audit.record(
        session,
        actor,
        "import",
        "survey_responses",
        None,
        message=report.summary,
        details={
            "source": mapping.source,
            "created": report.created,
            "already_imported": report.already_imported,
            "problems": report.problem_count,
        },
    )
    tick(1.0, report.summary)
    return report


def _survey_row(row: dict[str, str], mapping: SurveyMapping) -> tuple[dict[str, Any], str]:
    cols = mapping.columns

    def get(key: str) -> str:
        column = cols.get(key)
        return _cell(row, column) if column else ""

    clinic = get("clinic") or mapping.default_clinic.strip()
    if not clinic:
        raise ValueError("the clinic is empty")
    try:
        submitted, _ = parse_datetime(
            get("submitted_at"), mapping.timezone, True, mapping.date_order
        )
    except ValueError as exc:
        raise ValueError(f"time: {exc}") from None
    raw = get("rating")
    answers: dict[str, Any] = {c: _cell(row, c) for c in mapping.answer_columns}
    answers = {c: text for c, text in answers.items() if text}
    rating = _rating(raw)
    if rating is None:
        answers["rating_answer"] = raw or "(none)"
    ref = get("response_ref")
    return {
        "submitted_at": submitted,
        "rating": rating,
        "comment": _cell(row, cols["comment"], multiline=True) if cols.get("comment") else "",
        "answers": answers or None,
        "source": "import",
        "external_ref": f"{mapping.source}:{ref}" if ref else None,
    }, clinic[:120]


def _rating(raw: str) -> int | None:
    text = raw.strip().lower()
    if text in FFT_WORDS:
        return FFT_WORDS[text]
    if text in FFT_NO_ANSWER:
        return None
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"rating {raw!r} is not 1–5 nor a Friends and Family answer") from None
    if math.isnan(number) or not number.is_integer() or not 1 <= number <= 5:
        raise ValueError(f"rating {raw!r} is not a whole number from 1 to 5")
    return int(number)


def with_source(mapping: AppointmentMapping, source: str) -> AppointmentMapping:
    return replace(mapping, source=source)
