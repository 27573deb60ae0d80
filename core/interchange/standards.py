"""Interchange: FHIR R4 (validated with fhir.resources' R4B models, wire-compatible with R4
4.0.1 for these resources) and iCalendar feeds per provider.

An appointment's notes travel as FHIR's `comment` (R4 has no list of annotated notes): on export
the notes oldest first, each staff note with who wrote it and when, an imported one as its text
alone (so a comment imported and exported again reads as it came); on import the `description`,
the `patientInstruction` (said to be one) and the `comment` are each a note by "Imported from
FHIR" (core.scheduling.notes.imported), the comment the latest. The text is kept as typed and
shown as text, never markup.

Exports are audited through `core.kernel.exports.record_export` (which checks
Permission.DATA_EXPORT); the FHIR import checks Permission.DATA_IMPORT and runs in the
caller's transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from fhir.resources.R4B.appointment import Appointment as FhirAppointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.practitioner import Practitioner
from icalendar import Calendar, Event
from pydantic import ValidationError as PydanticError
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, joinedload

from core.analytics.cancellation_parts import booked_when
from core.interchange import import_batches
from core.interchange.csv_files import ImportReport
from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import is_time_zone, to_local
from core.kernel.errors import NotFound, ValidationError
from core.kernel.exports import record_export
from core.kernel.text import clean
from core.patients.records import ADDRESS, birth_problem, country_names, validate_address
from core.payments import points
from core.scheduling import notes
from core.scheduling.states import fhir_status
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    Clinic,
    Patient,
    Provider,
    Source,
)
from db.types import utcnow

NOTE_MAX = 2_000  # characters of one imported note (description, instruction, comment)
INSTRUCTION = "Instructions for the patient: "  # an imported patientInstruction's note begins so
EXPORT_LIMIT = 5_000  # appointments per FHIR bundle; narrow the dates for more
FEED_DAYS_BACK, FEED_DAYS_AHEAD = 30, 365
S = AppointmentStatus
FROM_FHIR = {
    "proposed": S.REQUESTED,
    "waitlist": S.REQUESTED,
    # a time proposed elsewhere, whose link never reached the patient from here: a request
    # for that time (or, without one, for its day), which the desk proposes or books
    "pending": S.REQUESTED,
    "booked": S.SCHEDULED,
    "arrived": S.CHECKED_IN,
    "checked-in": S.CHECKED_IN,
    "fulfilled": S.COMPLETED,
    "noshow": S.NO_SHOW,
    "cancelled": S.CANCELLED,
}
FHIR_GENDER = {
    "f": "female",
    "female": "female",
    "m": "male",
    "male": "male",
    "other": "other",
    "x": "other",
}
ICAL_STATUS = {
    S.TENTATIVE: "TENTATIVE",
    S.SCHEDULED: "CONFIRMED",
    S.CHECKED_IN: "CONFIRMED",
    S.COMPLETED: "CONFIRMED",
    S.NO_SHOW: "CONFIRMED",
    S.CANCELLED: "CANCELLED",
    S.DECLINED: "CANCELLED",
}


# ---------------------------------------------------------------- FHIR export


@dataclass(frozen=True)
class FhirExport:
    content: bytes  # a JSON Bundle (type collection)
    appointments: int
    patients: int
    practitioners: int
    truncated: bool  # more appointments matched than EXPORT_LIMIT


def export_fhir(
    session: Session,
    actor: Actor,
    *,
    clinic_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = EXPORT_LIMIT,
) -> FhirExport:
    """A FHIR R4 Bundle of the appointments starting in [since, until) (newest first, at most
    `limit`), with their patients, practitioners and clinics; each resource validated."""
    ensure(actor, Permission.DATA_EXPORT)
    query = (
        select(Appointment)
        .options(
            joinedload(Appointment.patient),
            joinedload(Appointment.provider),
            joinedload(Appointment.clinic),
            joinedload(Appointment.service),
        )
        .where(Appointment.kind == AppointmentKind.APPOINTMENT)
        .order_by(Appointment.start_at.desc(), Appointment.id.desc())
        .limit(limit + 1)
    )
    if clinic_id is not None:
        query = query.where(Appointment.clinic_id == clinic_id)
    if since is not None:
        query = query.where(Appointment.start_at >= since)
    if until is not None:
        query = query.where(Appointment.start_at < until)
    rows = list(session.scalars(query).unique())
    truncated = len(rows) > limit
    rows = rows[:limit]
    resources: dict[str, Any] = {}
    for a in rows:
        if a.patient is not None:
            resources.setdefault(f"Patient/patient-{a.patient.id}", _patient_resource(a.patient))
        if a.provider is not None:
            resources.setdefault(
                f"Practitioner/practitioner-{a.provider.id}", _practitioner_resource(a.provider)
            )
        resources.setdefault(f"Location/clinic-{a.clinic.id}", _location_resource(a.clinic))
    written = notes.notes_of(session, rows)
    appointments = [_appointment_resource(a, written[a.id]) for a in rows]
    entries = [{"fullUrl": f"urn:clinicdesk:{key}", "resource": r} for key, r in resources.items()]
    entries += [
        {"fullUrl": f"urn:clinicdesk:Appointment/{r.id}", "resource": r} for r in appointments
    ]
    bundle = Bundle(type="collection", timestamp=datetime.now(UTC), entry=entries)
    record_export(
        session,
        actor,
        "fhir_bundle",
        len(rows),
        {"clinic_id": clinic_id, "since": since, "until": until},
    )
    return FhirExport(
        content=bundle.model_dump_json(indent=1, exclude_none=True).encode(),
        appointments=len(rows),
        patients=sum(k.startswith("Patient/") for k in resources),
        practitioners=sum(k.startswith("Practitioner/") for k in resources),
        truncated=truncated,
    )


def _patient_resource(p: Patient) -> FhirPatient:
    telecom = [{"system": "email", "value": p.email}] if p.email else []
    telecom += [{"system": "phone", "value": p.phone}] if p.phone else []
    return FhirPatient(
        id=f"patient-{p.id}",
        identifier=[{"system": "urn:clinicdesk:patient", "value": str(p.id)}]
        + (
            [{"system": "urn:clinicdesk:external", "value": p.external_ref}]
            if p.external_ref
            else []
        ),
        name=[
            {
                "family": p.last_name or None,
                "given": [p.first_name] if p.first_name else None,
                "text": p.full_name or None,
            }
        ],
        gender=FHIR_GENDER.get((p.gender or "").lower(), "unknown") if p.gender else None,
        birthDate=p.date_of_birth,
        telecom=telecom or None,
        address=[_address_resource(p)] if any(getattr(p, f) for f in ADDRESS) else None,
    )


def _address_resource(p: Patient) -> dict[str, Any]:
    lines = [line for line in (p.address_line1, p.address_line2) if line]
    return {
        "use": "home",
        "type": "both",  # postal and physical: the one address the record holds
        "line": lines or None,
        "city": p.city,
        "postalCode": p.postcode,
        "country": p.country,
    }


def _practitioner_resource(p: Provider) -> Practitioner:
    return Practitioner(
        id=f"practitioner-{p.id}",
        active=p.active,
        name=[{"text": p.name, "prefix": [p.title] if p.title else None}],
        telecom=[{"system": "email", "value": p.email}] if p.email else None,
    )


def _location_resource(c: Clinic) -> Location:
    return Location(
        id=f"clinic-{c.id}",
        name=c.name,
        address={"text": c.address} if c.address else None,
        telecom=[{"system": "phone", "value": c.phone}] if c.phone else None,
    )


def _comment(written: list[notes.Note], timezone: str) -> str | None:
    """The notes (newest first, as notes_of gives them) as one FHIR comment, oldest first."""
    said = []
    for note in reversed(written):
        if not note.text.strip():
            continue
        if note.author.startswith("Imported") or note.written_at is None:
            said.append(note.text.strip())
        else:
            at = to_local(note.written_at, timezone).isoformat(timespec="minutes")
            said.append(f"{note.author}, {at}: {note.text.strip()}")
    return "\n\n".join(said) or None


def _appointment_resource(a: Appointment, written: list[notes.Note]) -> FhirAppointment:
    participants = []
    if a.patient is not None:
        participants.append(
            {
                "actor": {
                    "reference": f"Patient/patient-{a.patient.id}",
                    "display": a.patient.full_name,
                },
                "required": "required",
                "status": "accepted",
            }
        )
    if a.provider is not None:
        participants.append(
            {
                "actor": {
                    "reference": f"Practitioner/practitioner-{a.provider.id}",
                    "display": a.provider.name,
                },
                "required": "required",
                "status": "tentative" if a.status == S.TENTATIVE else "accepted",
            }
        )
    participants.append(
        {
            "actor": {"reference": f"Location/clinic-{a.clinic.id}", "display": a.clinic.name},
            "status": "accepted",
        }
    )
    reason = a.cancel_reason if a.status == S.CANCELLED else a.decline_reason
    timed = a.start_at is not None and a.end_at is not None
    requested = (
        [{"start": a.requested_day.isoformat(), "end": a.requested_day.isoformat()}]
        if a.requested_day and not timed
        else None
    )
    return FhirAppointment(
        id=f"appointment-{a.id}",
        identifier=[{"system": "urn:clinicdesk:appointment", "value": str(a.id)}]
        + (
            [{"system": "urn:clinicdesk:external", "value": a.external_ref}]
            if a.external_ref
            else []
        ),
        status=fhir_status(a.status),
        cancelationReason={"text": reason}
        if reason and fhir_status(a.status) == "cancelled"
        else None,
        serviceType=[{"text": a.service.name}] if a.service is not None else None,
        start=a.start_at if timed else None,
        end=a.end_at if timed else None,
        minutesDuration=int((a.end_at - a.start_at).total_seconds() // 60) if timed else None,
        created=booked_when(a.source, a.booked_at, a.start_at),  # None: the import had none
        requestedPeriod=requested,
        comment=_comment(written, a.clinic.timezone),
        participant=participants,
    )


# ---------------------------------------------------------------- FHIR import


def import_fhir(
    session: Session,
    actor: Actor,
    documents: list[str | bytes | Path],
    *,
    clinic_name: str = "FHIR import",
    timezone: str = "UTC",
) -> ImportReport:
    """Import FHIR Appointment resources (single resources or inside Bundles); Patient and
    Practitioner resources among the documents give names to the participants. Appointments
    whose identifier (or id) was imported before are counted, not duplicated. Problems are
    reported per document ("row" = its position, from 1) and skipped."""
    ensure(actor, Permission.DATA_IMPORT)
    if not is_time_zone(timezone):
        raise ValidationError(f"{timezone!r} is not an IANA time zone (e.g. Europe/London).")
    report = ImportReport(what="FHIR appointments")
    resources: list[tuple[int, dict[str, Any]]] = []
    for number, document in enumerate(documents, start=1):
        try:
            data = json.loads(
                Path(document).read_bytes() if isinstance(document, Path) else document
            )
        except (OSError, ValueError) as exc:
            report.problem(number, f"not a JSON document ({exc.__class__.__name__})")
            continue
        found = _resources(data)
        if found is None:
            report.problem(
                number,
                "not a FHIR resource nor a Bundle of them (a JSON object with a resourceType, "
                "a Bundle's entry a list of objects with a resource)",
            )
            continue
        if not any(r.get("resourceType") == "Appointment" for r in found):
            report.notes.append(f"Document {number} holds no Appointment resource.")
        resources += [(number, r) for r in found]
    people = {f"{r.get('resourceType')}/{r.get('id')}": r for _, r in resources}
    clinic = session.scalar(select(Clinic).where(Clinic.name == clinic_name))
    if clinic is None:
        clinic = import_batches.new_clinic(session, clinic_name, timezone, report)
    open_past, now = 0, utcnow()  # past visits without an outcome (booked, arrived)
    undated = 0  # requests without when they were made
    pending = 0  # times proposed elsewhere, come in as requests for them
    written: list[tuple[int, str]] = []  # (appointment id, a text): notes by the import
    for number, data in resources:
        if data.get("resourceType") != "Appointment":
            continue
        report.rows_read += 1
        try:
            parsed = FhirAppointment.model_validate(data)
            values = _appointment_values(parsed)
        except (PydanticError, ValueError, ValidationError) as exc:  # the last: a text too long
            report.problem(number, f"Appointment/{data.get('id')}: {_first_line(exc)}")
            continue
        if session.scalar(
            select(Appointment.id).where(Appointment.external_ref == values["external_ref"])
        ):
            report.already_imported += 1
            continue
        refs = [p.actor.reference for p in parsed.participant if p.actor and p.actor.reference]
        patient_ref = next((r for r in refs if r.startswith("Patient/")), None)
        provider_ref = next((r for r in refs if r.startswith("Practitioner/")), None)
        displays = {
            p.actor.reference: p.actor.display
            for p in parsed.participant
            if p.actor and p.actor.reference
        }
        values["clinic_id"] = clinic.id
        try:  # the appointment with its new patient and provider, or none of them
            with session.begin_nested():
                values["patient_id"] = (
                    _fhir_patient(
                        session,
                        patient_ref,
                        people.get(patient_ref),
                        displays[patient_ref],
                        report,
                        number,
                    )
                    if patient_ref
                    else None
                )
                values["provider_id"] = (
                    _fhir_provider(
                        session, provider_ref, people.get(provider_ref), displays[provider_ref]
                    )
                    if provider_ref
                    else None
                )
                appointment_id = session.execute(
                    insert(Appointment).returning(Appointment.id), [values]
                ).scalar_one()
        except (PydanticError, ValueError, ValidationError) as exc:
            report.problem(number, f"Appointment/{data.get('id')}: {_first_line(exc)}")
            continue
        written += [(appointment_id, text) for text in _note_texts(parsed)]
        report.created += 1
        open_past += import_batches.without_outcome(values, now)
        undated += values["status"] == S.REQUESTED and "created_at" not in values
        pending += parsed.status == "pending" and values["start_at"] is not None
    notes.imported(session, written, "FHIR", now)
    import_batches.past_open_note(report, open_past)
    if pending:
        said = (
            "1 pending appointment (a time proposed, not yet accepted) came in as a request for "
            "its time: no proposal link reached the patient from here, so the request queue "
            "shows it"
            if pending == 1
            else f"{pending:,} pending appointments (times proposed, not yet accepted) came in "
            "as requests for their times: no proposal link reached the patients from here, so "
            "the request queue shows them"
        )
        report.notes.append(f"{said} to propose or book.")
    if undated:
        said = (
            "1 request came without when it was made (created): the request queue shows it"
            if undated == 1
            else f"{undated:,} requests came without when they were made (created): the "
            "request queue shows them"
        )
        report.notes.append(f"{said} as arrived at this import.")
    audit.record(
        session,
        actor,
        "import",
        "fhir_appointments",
        None,
        message=report.summary,
        details={
            "created": report.created,
            "already_imported": report.already_imported,
            "problems": report.problem_count,
        },
    )
    return report


def _resources(data: Any) -> list[dict[str, Any]] | None:
    """The resources of one JSON document (itself, or a Bundle's entries' resources); None
    when it is neither."""
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        return None
    if data["resourceType"] != "Bundle":
        return [data]
    entries = data.get("entry", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return None
    found = [e["resource"] for e in entries if "resource" in e]
    return found if all(isinstance(r, dict) for r in found) else None


def _appointment_values(a: FhirAppointment) -> dict[str, Any]:
    status = FROM_FHIR.get(a.status)
    if status is None:
        raise ValueError(f"status {a.status!r} cannot be imported")
    ident = next((i.value for i in a.identifier or [] if i.value), None)
    ref = f"fhir:{ident or a.id}"
    if clean(ref, field="identifier") != ref:
        raise ValueError(
            f"the identifier {ref[5:]!r} holds a control character or a line break: give the "
            "appointment a plain identifier"
        )
    if len(ref) > 64:
        raise ValueError("the identifier is longer than 59 characters")
    start, end = a.start, a.end
    if start is not None and end is None and a.minutesDuration:
        end = start + timedelta(minutes=a.minutesDuration)
    requested_day = None
    if a.requestedPeriod and a.requestedPeriod[0].start is not None:
        requested_day = _as_date(a.requestedPeriod[0].start)
    if start is None and status not in (S.REQUESTED, S.CANCELLED):
        raise ValueError(
            f"a {a.status} appointment needs its start: give it, or send it as a request "
            "(proposed, pending or waitlist), the only kind besides cancelled without one"
        )
    created = a.created
    if created is not None and not isinstance(created, datetime):
        created = datetime.combine(_as_date(created), datetime.min.time(), UTC)
    if start is not None and (created is None or created >= start):
        # unknown: = start, read by the analytics as "booking time unknown"; a known one at
        # or after the start a second before it (as core.interchange.imports stores them)
        created = start if created is None else start - timedelta(seconds=1)
    reason = a.cancelationReason.text if a.cancelationReason else None
    # written with INSERT, past the rule that cleans a row's typed text (core.kernel.text)
    reason = clean(reason, field="cancellation reason", multiline=True)
    values = {
        "external_ref": ref,
        "status": status,
        "start_at": start.astimezone(UTC) if start else None,
        "end_at": end.astimezone(UTC) if end else None,
        "requested_day": requested_day,
        "booked_at": created.astimezone(UTC) if created else datetime.now(UTC),
        "source": Source.IMPORT,
        "notes": next(reversed(_note_texts(a)), ""),  # the latest note's text
        "cancel_reason": reason if status == S.CANCELLED else None,
        "allow_double_booking": True,
    }
    if status == S.REQUESTED and a.created is not None:
        values["created_at"] = values["booked_at"]  # arrived when made (the queue's "Arrived")
    return values


def _note_texts(a: FhirAppointment) -> list[str]:
    """The appointment's notes, oldest first: its description, its instruction to the patient,
    its comment (those it has, each at most NOTE_MAX characters)."""
    instruction = (a.patientInstruction or "").strip()
    texts = [a.description, INSTRUCTION + instruction if instruction else "", a.comment]
    typed = (clean(text.strip()[:NOTE_MAX], field="note", multiline=True) for text in texts if text)
    return [text.strip()[:NOTE_MAX].strip() for text in typed if text.strip()]


def _as_date(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else date.fromisoformat(str(value)[:10])


def _fhir_patient(
    session, ref: str, resource, display: str | None, report: ImportReport, number: int
) -> int:
    external = f"fhir:{ref}"
    found = session.scalar(select(Patient.id).where(Patient.external_ref == external))
    if found:
        return found
    first, last, birth, gender, email, phone = "", display or ref, None, None, None, None
    address: dict[str, str | None] = {}
    parsed = FhirPatient.model_validate(resource) if resource is not None else None
    if parsed is not None:
        name = (parsed.name or [None])[0]
        if name is not None:
            first = " ".join(name.given or [])
            last = name.family or last
    elif display:
        first, _, last = display.rpartition(" ")
    for part, field in ((first, "first name"), (last, "last name")):  # before any warning
        import_batches.name_part(part[:80], field, empty="leave it out", whose=f"{ref}'s")
    if parsed is not None:
        birth, gender = parsed.birthDate, parsed.gender
        if problem := birth_problem(birth):
            report.warn(number, f"{ref}: date of birth {birth} is {problem}; imported without it")
            birth = None
        for t in parsed.telecom or []:
            if t.system == "email" and not email:
                email = t.value
            if t.system == "phone" and not phone and t.use != "old":
                phone = t.value
        address = _fhir_address(parsed, ref, report, number)
    patient = Patient(
        external_ref=external,
        first_name=first[:80],
        last_name=last[:80],
        date_of_birth=birth,
        gender=gender,
        email=email,
        phone=phone,
        **address,
    )
    session.add(patient)
    session.flush()
    points.open_account(session, patient)
    report.patients_created += 1
    return patient.id


def _fhir_address(
    parsed: FhirPatient, ref: str, report: ImportReport, number: int
) -> dict[str, str | None]:
    """The patient's current address (the first not marked old) as the record's parts: its
    first line, the other lines joined, city, postal code and country (a two-letter code, or a
    country's English name); one the record cannot hold is left out with a warning."""
    found = next((a for a in parsed.address or [] if a.use != "old"), None)
    if found is None:
        return {}
    lines = [line for line in found.line or [] if line] or ([found.text] if found.text else [])
    country = (found.country or "").strip()
    if len(country) != 2:
        country = _COUNTRY_BY_NAME.get(country.casefold(), country)
    typed = {
        "address_line1": lines[0] if lines else None,
        "address_line2": ", ".join(lines[1:]) or None,
        "city": found.city,
        "postcode": found.postalCode,
        "country": country,
    }
    try:
        return validate_address(typed)
    except ValidationError as error:
        report.warn(number, f"{ref}: imported without its address: {error}")
        return {}


_COUNTRY_BY_NAME = {name.casefold(): code for code, name in country_names("en").items()}


def _fhir_provider(session, ref: str, resource, display: str | None) -> int:
    external = f"fhir:{ref}"
    found = session.scalar(select(Provider.id).where(Provider.external_ref == external))
    if found:
        return found
    name = display or ref
    if resource is not None:
        parsed = Practitioner.model_validate(resource)
        first = (parsed.name or [None])[0]
        if first is not None:
            parts = [*(first.prefix or []), *(first.given or []), first.family or ""]
            name = first.text or " ".join(p for p in parts if p) or name
    provider = Provider(name=name[:120], external_ref=external)
    session.add(provider)
    session.flush()
    return provider.id


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines[:3])[:300]


# ---------------------------------------------------------------- iCalendar


@dataclass(frozen=True)
class IcalFeed:
    content: bytes
    events: int
    filename: str


def export_ical(
    session: Session,
    actor: Actor,
    provider_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> IcalFeed:
    """One provider's appointments as an iCalendar file (default: 30 days back to a year
    ahead). Requests without a time are left out; cancelled ones stay, marked CANCELLED, so a
    subscribed calendar removes them. Patient names are included: the file is patient data."""
    ensure(actor, Permission.DATA_EXPORT)
    provider = session.get(Provider, provider_id)
    if provider is None:
        raise NotFound(f"There is no provider #{provider_id}.")
    now = datetime.now(UTC)
    since = since or now - timedelta(days=FEED_DAYS_BACK)
    until = until or now + timedelta(days=FEED_DAYS_AHEAD)
    query = (
        select(Appointment)
        .options(
            joinedload(Appointment.patient),
            joinedload(Appointment.clinic),
            joinedload(Appointment.service),
        )
        .where(
            Appointment.provider_id == provider_id,
            Appointment.start_at >= since,
            Appointment.start_at < until,
            Appointment.end_at.is_not(None),
        )
        .order_by(Appointment.start_at)
        .limit(20_000)
    )
    calendar = Calendar()
    calendar.add("prodid", "-//ClinicDesk//Provider feed//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"{provider.name} — ClinicDesk")
    count = 0
    for a in session.scalars(query).unique():
        event = Event()
        event.add("uid", f"appointment-{a.id}@clinicdesk")
        event.add("dtstamp", now)
        event.add("dtstart", a.start_at)
        event.add("dtend", a.end_at)
        what = (
            "Out of office"
            if a.kind == AppointmentKind.OUT_OF_OFFICE
            else (a.service.name if a.service else "Appointment")
        )
        who = f" — {a.patient.full_name}" if a.patient else ""
        event.add("summary", f"{what}{who}")
        event.add("location", a.clinic.name)
        event.add("status", ICAL_STATUS.get(a.status, "TENTATIVE"))
        event.add("description", f"Status: {a.status.value.replace('_', ' ')}")
        event.add("sequence", a.version)
        calendar.add_component(event)
        count += 1
    record_export(session, actor, "ical_feed", count, {"provider_id": provider_id})
    slug = "".join(ch if ch.isalnum() else "-" for ch in provider.name.lower()).strip("-")
    return IcalFeed(calendar.to_ical(), count, f"{slug or 'provider'}.ics")
