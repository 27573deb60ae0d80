"""FHIR R4 export and import, and the per-provider iCalendar feed."""

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from icalendar import Calendar
from sqlalchemy import select

from core.interchange import standards as interchange
from core.kernel.errors import NotFound, PermissionDenied
from core.patients import records as patients
from core.requests import queue
from core.scheduling import notes
from db.models import (
    Appointment,
    AppointmentNote,
    AppointmentStatus,
    AuditEvent,
    Patient,
    Provider,
    Source,
)

FHIR_DIR = Path("/work/shared/data/fhir")
S = AppointmentStatus
DESIGN_TABLE = {
    S.REQUESTED: "proposed",
    S.TENTATIVE: "pending",
    S.SCHEDULED: "booked",
    S.CHECKED_IN: "arrived",
    S.COMPLETED: "fulfilled",
    S.NO_SHOW: "noshow",
    S.DECLINED: "cancelled",
    S.CANCELLED: "cancelled",
}
SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)


@pytest.fixture
def one_of_each(db, world):
    """One appointment in every status for the world's patient and provider."""
    with db.write() as session:
        ids = {}
        for n, status in enumerate(S):
            timed = status != S.REQUESTED
            a = Appointment(
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                patient_id=world.patient_id,
                service_id=world.service_id,
                status=status,
                start_at=SOON + timedelta(hours=n) if timed else None,
                end_at=SOON + timedelta(hours=n, minutes=30) if timed else None,
                requested_day=None if timed else SOON.date(),
                cancel_reason="Travel" if status == S.CANCELLED else None,
                decline_reason="No slots" if status == S.DECLINED else None,
            )
            session.add(a)
            session.flush()
            ids[status] = a.id
    return ids


def test_fhir_bundle_holds_valid_resources_with_design_status_mapping(db, world, one_of_each):
    with db.write() as session:
        export = interchange.export_fhir(session, world.manager)
    assert (export.appointments, export.patients, export.practitioners) == (8, 1, 1)
    bundle = Bundle.model_validate_json(export.content)  # the whole document validates again
    kinds = [e.resource.get_resource_type() for e in bundle.entry]
    assert sorted(set(kinds)) == ["Appointment", "Location", "Patient", "Practitioner"]
    by_id = {e.resource.id: e.resource for e in bundle.entry}
    for status, appointment_id in one_of_each.items():
        resource = by_id[f"appointment-{appointment_id}"]
        assert resource.status == DESIGN_TABLE[status]
        refs = {p.actor.reference for p in resource.participant}
        assert f"Patient/patient-{world.patient_id}" in refs
    assert by_id[f"appointment-{one_of_each[S.CANCELLED]}"].cancelationReason.text == "Travel"
    assert by_id[f"appointment-{one_of_each[S.DECLINED]}"].cancelationReason.text == "No slots"
    requested = by_id[f"appointment-{one_of_each[S.REQUESTED]}"]
    assert requested.start is None and requested.requestedPeriod[0].start == SOON.date()
    patient = by_id[f"patient-{world.patient_id}"]
    assert patient.name[0].family == "Morgan" and patient.birthDate == date(1985, 4, 12)
    with db.read() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "export"))
    assert event.entity == "fhir_bundle" and event.details["rows"] == 8


def test_an_exports_audit_keeps_only_the_filters_it_used(db, world, one_of_each):
    """A filter not set is left out of the event, not stored as the word 'None'."""
    since = datetime(2026, 7, 1, 23, tzinfo=UTC)
    with db.write() as session:
        interchange.export_fhir(session, world.manager, since=since)
    with db.read() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "export"))
    assert event.details["filters"] == {"since": str(since)}


def test_exports_need_the_export_permission(db, world, one_of_each):
    with pytest.raises(PermissionDenied), db.write() as session:
        interchange.export_fhir(session, world.staff)
    with pytest.raises(PermissionDenied), db.write() as session:
        interchange.export_ical(session, world.staff, world.provider_id)


def test_export_is_limited_and_says_so(db, world, one_of_each):
    with db.write() as session:
        export = interchange.export_fhir(session, world.owner, limit=3)
    assert export.appointments == 3 and export.truncated
    data = json.loads(export.content)
    assert sum(e["resource"]["resourceType"] == "Appointment" for e in data["entry"]) == 3


def test_hl7_example_appointments_import_with_their_participants(db, world):
    files = sorted(FHIR_DIR.glob("*.json"))
    with db.write() as session:
        report = interchange.import_fhir(session, world.owner, files)
    assert (report.created, report.problem_count) == (3, 0)
    with db.read() as session:
        rows = {
            a.external_ref: a
            for a in session.scalars(select(Appointment).where(Appointment.source == Source.IMPORT))
        }
        peter = session.scalar(
            select(Patient).where(Patient.external_ref == "fhir:Patient/example")
        )
        adam = session.scalar(
            select(Provider).where(Provider.external_ref == "fhir:Practitioner/example")
        )
    assert set(rows) == {"fhir:example", "fhir:123", "fhir:2docs"}
    assert rows["fhir:example"].status == S.SCHEDULED
    assert rows["fhir:example"].start_at == datetime(2013, 12, 10, 9, tzinfo=UTC)
    assert rows["fhir:123"].status == S.REQUESTED
    assert rows["fhir:123"].requested_day == date(2016, 6, 2)
    assert (peter.first_name, peter.last_name, peter.date_of_birth) == (
        "Peter James",
        "Chalmers",
        date(1974, 12, 25),
    )
    assert peter.phone == "(03) 5555 6473"
    assert adam.name == "Dr Adam Careful"
    assert rows["fhir:example"].patient_id == peter.id
    assert rows["fhir:example"].provider_id == adam.id
    with db.write() as session:
        again = interchange.import_fhir(session, world.owner, files)
    assert (again.created, again.already_imported) == (0, 3)


def test_invalid_fhir_is_reported_not_imported(db, world):
    bad_status = json.dumps(
        {
            "resourceType": "Appointment",
            "id": "x1",
            "status": "entered-in-error",
            "participant": [{"status": "accepted", "actor": {"reference": "Patient/a"}}],
        }
    )
    not_fhir = json.dumps(
        {
            "resourceType": "Appointment",
            "id": "x2",
            "status": "booked",
            "start": "yesterday",
            "participant": [],
        }
    )
    with db.write() as session:
        report = interchange.import_fhir(session, world.owner, [bad_status, not_fhir, "{oops"])
    assert report.created == 0 and report.problem_count == 3
    reasons = {p.row: p.reason for p in report.problems}
    assert "entered-in-error" in reasons[1]
    assert reasons[2].startswith("Appointment/x2:")
    assert reasons[3] == "not a JSON document (JSONDecodeError)"
    with pytest.raises(PermissionDenied), db.write() as session:
        interchange.import_fhir(session, world.manager, [bad_status])


def test_json_that_is_not_a_fhir_resource_is_reported_by_document(db, world):
    """A JSON array, a string, null, a Bundle whose entry is not a list of objects: each
    document is reported with what a FHIR file holds, and the others are imported."""
    good = {
        "resourceType": "Appointment",
        "id": "ok1",
        "status": "booked",
        "start": "2025-03-03T09:00:00Z",
        "end": "2025-03-03T09:30:00Z",
        "participant": [{"status": "accepted", "actor": {"reference": "Patient/p1"}}],
    }
    documents = [
        "[1, 2]",
        '"an appointment"',
        "null",
        json.dumps({"resourceType": "Bundle", "entry": [1]}),
        json.dumps({"resourceType": "Bundle", "entry": {"resource": good}}),
        json.dumps({"resourceType": "Patient", "id": "p1", "name": [{"family": "Lee"}]}),
        json.dumps(good),
    ]
    with db.write() as session:
        report = interchange.import_fhir(session, world.owner, documents)
    assert report.created == 1
    assert [p.row for p in report.problems] == [1, 2, 3, 4, 5]
    assert report.problems[0].reason.startswith("not a FHIR resource nor a Bundle of them")
    assert report.notes[0] == "Document 6 holds no Appointment resource."
    assert report.notes[1].startswith("Created the clinic FHIR import in UTC")


def test_a_fhir_patient_born_implausibly_long_ago_imports_without_the_date(db, world):
    patient = {"resourceType": "Patient", "id": "old", "birthDate": "1800-01-01"}
    appointment = {
        "resourceType": "Appointment",
        "id": "o1",
        "status": "booked",
        "start": "2025-03-30T09:00:00Z",
        "end": "2025-03-30T09:30:00Z",
        "participant": [{"status": "accepted", "actor": {"reference": "Patient/old"}}],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": patient}, {"resource": appointment}],
    }
    with db.write() as session:
        report = interchange.import_fhir(session, world.owner, [json.dumps(bundle)])
    assert (report.created, report.problem_count) == (1, 0)
    assert [w.reason for w in report.warnings] == [
        "Patient/old: date of birth 1800-01-01 is more than 130 years ago; imported without it"
    ]
    with db.read() as session:
        old = session.scalar(select(Patient).where(Patient.external_ref == "fhir:Patient/old"))
    assert old.date_of_birth is None


def test_a_request_without_a_time_comes_in_as_a_request_arrived_when_it_was_made(db, world):
    """Proposed or pending with no start: a request with no time yet (pending was refused),
    which the request queue shows as arrived when the file says it was made (it showed the
    import's time); one the file does not date is named in the report. A booked one without a
    start is refused saying what to give."""

    def appointment(ident, status, created=None):
        resource = {
            "resourceType": "Appointment",
            "id": ident,
            "status": status,
            "requestedPeriod": [{"start": "2025-06-02", "end": "2025-06-09"}],
            "participant": [{"status": "needs-action", "actor": {"reference": "Patient/p1"}}],
        }
        return json.dumps(resource | ({"created": created} if created else {}))

    documents = [
        appointment("q1", "proposed", "2025-05-20T08:30:00Z"),
        appointment("q2", "pending", "2025-05-21"),
        appointment("q3", "proposed"),
        appointment("q4", "booked"),
    ]
    before = datetime.now(UTC)
    with db.write() as session:
        report = interchange.import_fhir(session, world.owner, documents)
    assert (report.created, [p.row for p in report.problems]) == (3, [4])
    assert report.problems[0].reason == (
        "Appointment/q4: a booked appointment needs its start: give it, or send it as a "
        "request (proposed, pending or waitlist), the only kind besides cancelled without one"
    )
    assert report.notes[-1] == (
        "1 request came without when it was made (created): the request queue shows it as "
        "arrived at this import."
    )
    with db.read() as session:
        imported = {
            a.id: a
            for a in session.scalars(select(Appointment).where(Appointment.source == Source.IMPORT))
        }
        rows = queue.list_queue(session, world.owner, "requests")
    arrived = {imported[r.appointment_id].external_ref: r.created_at for r in rows}
    assert arrived["fhir:q1"] == datetime(2025, 5, 20, 8, 30, tzinfo=UTC)
    assert arrived["fhir:q2"] == datetime(2025, 5, 21, tzinfo=UTC)
    assert arrived["fhir:q3"] >= before
    for a in imported.values():
        assert (a.status, a.start_at, a.requested_day) == (S.REQUESTED, None, date(2025, 6, 2))


def test_a_pending_appointment_with_a_time_comes_in_as_a_request_for_that_time(db, world):
    """FHIR "pending" with a start is a time proposed elsewhere whose link never reached the
    patient from here: it came in as tentative ("Waiting for the patient"), which nobody could
    answer. It comes in as a request for that time, in the request queue, and the report
    says so."""
    start = SOON + timedelta(days=1)
    resource = {
        "resourceType": "Appointment",
        "id": "p1",
        "status": "pending",
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=30)).isoformat(),
        "created": "2025-05-20T08:30:00Z",
        "participant": [{"status": "tentative", "actor": {"reference": "Patient/p1"}}],
    }
    with db.write() as session:
        report = interchange.import_fhir(session, world.owner, [json.dumps(resource)])
    assert (report.created, report.problem_count) == (1, 0)
    assert report.notes[-1] == (
        "1 pending appointment (a time proposed, not yet accepted) came in as a request for "
        "its time: no proposal link reached the patient from here, so the request queue shows "
        "it to propose or book."
    )
    with db.read() as session:
        rows = queue.list_queue(session, world.owner, "requests")
        imported = session.scalar(select(Appointment).where(Appointment.external_ref == "fhir:p1"))
    assert (imported.status, imported.start_at) == (S.REQUESTED, start)
    assert [r.appointment_id for r in rows] == [imported.id]


def test_exported_bundle_imports_back_with_the_same_statuses(db, world, one_of_each):
    with db.write() as session:
        export = interchange.export_fhir(session, world.owner)
        report = interchange.import_fhir(session, world.owner, [export.content])
    assert report.created == 8
    with db.read() as session:
        back = {
            a.external_ref: a.status
            for a in session.scalars(select(Appointment).where(Appointment.source == Source.IMPORT))
        }
    for status, appointment_id in one_of_each.items():
        expected = {  # FHIR has one "cancelled"; a proposal's link does not travel with it
            S.DECLINED: S.CANCELLED,
            S.TENTATIVE: S.REQUESTED,
        }.get(status, status)
        assert back[f"fhir:{appointment_id}"] == expected


def test_ical_feed_of_one_provider(db, world, one_of_each):
    with db.write() as session:
        other = Provider(name="Dr Other")
        session.add(other)
        feed = interchange.export_ical(session, world.manager, world.provider_id)
        empty = interchange.export_ical(session, world.manager, other.id)
    calendar = Calendar.from_ical(feed.content)
    events = {str(e["uid"]): e for e in calendar.walk("VEVENT")}
    assert feed.events == 7 and len(events) == 7  # the untimed request is left out
    cancelled = events[f"appointment-{one_of_each[S.CANCELLED]}@clinicdesk"]
    assert str(cancelled["status"]) == "CANCELLED"
    scheduled = events[f"appointment-{one_of_each[S.SCHEDULED]}@clinicdesk"]
    assert str(scheduled["summary"]) == "Consultation — Alex Morgan"
    assert scheduled.decoded("dtstart") == SOON + timedelta(hours=2)
    assert feed.filename == "dr-test.ics"
    assert empty.events == 0 and Calendar.from_ical(empty.content).walk("VEVENT") == []
    with pytest.raises(NotFound), db.write() as session:
        interchange.export_ical(session, world.manager, 9999)
    with db.read() as session:
        exports = list(session.scalars(select(AuditEvent).where(AuditEvent.entity == "ical_feed")))
    assert [e.details["rows"] for e in exports] == [7, 0]


def test_cli_imports_fhir_and_writes_a_bundle_and_a_calendar(tmp_path, monkeypatch, capsys):
    from core import cli

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("CLINICDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLINICDESK_SECRET_KEY", "k" * 40)
    files = [str(p) for p in sorted(FHIR_DIR.glob("*.json"))]
    assert cli.main(["import-fhir", *files]) == 0
    assert "3 FHIR appointments imported" in capsys.readouterr().out
    assert cli.main(["export-fhir", "--out", str(tmp_path / "bundle.json")]) == 0
    assert (tmp_path / "bundle.json").stat().st_mode & 0o777 == 0o600  # patient data
    bundle = Bundle.model_validate_json((tmp_path / "bundle.json").read_bytes())
    statuses = sorted(
        e.resource.status for e in bundle.entry if e.resource.get_resource_type() == "Appointment"
    )
    assert statuses == ["booked", "booked", "proposed"]
    practitioner = next(
        e.resource for e in bundle.entry if e.resource.get_resource_type() == "Practitioner"
    )
    provider_id = practitioner.id.removeprefix("practitioner-")
    assert (
        cli.main(["export-ical", "--provider", provider_id, "--out", str(tmp_path / "p.ics")]) == 0
    )
    assert (tmp_path / "p.ics").stat().st_mode & 0o777 == 0o600
    calendar = Calendar.from_ical((tmp_path / "p.ics").read_bytes())
    assert str(calendar["x-wr-calname"]) == "Dr Adam Careful — ClinicDesk"
    assert cli.main(["export-ical", "--provider", "999"]) == 2  # a clear error, not a traceback
    assert "There is no provider #999." in capsys.readouterr().err


def test_a_patients_address_goes_out_in_fhir_and_comes_back_in(db, world, one_of_each):
    """Patient.address: the record's parts on export, read back on import (before, neither)."""
    with db.write() as session:
        patients.update_patient(
            session,
            world.staff,
            world.patient_id,
            address_line1="Flat 2",
            address_line2="1 High Street",
            city="London",
            postcode="SW1A 1AA",
        )
        export = interchange.export_fhir(session, world.owner)
        interchange.import_fhir(session, world.owner, [export.content])
    entries = Bundle.model_validate_json(export.content).entry
    sent = next(e.resource for e in entries if e.resource.get_resource_type() == "Patient")
    assert sent.address[0].model_dump(exclude_none=True) == {
        "use": "home",
        "type": "both",
        "line": ["Flat 2", "1 High Street"],
        "city": "London",
        "postalCode": "SW1A 1AA",
        "country": "GB",
    }
    with db.read() as session:
        back = session.scalar(
            select(Patient).where(
                Patient.external_ref == f"fhir:Patient/patient-{world.patient_id}"
            )
        )
    parts = (back.address_line1, back.address_line2, back.city, back.postcode, back.country)
    assert parts == ("Flat 2", "1 High Street", "London", "SW1A 1AA", "GB")


def test_a_fhir_address_is_read_as_the_record_holds_it_or_left_out_with_a_warning(db, world):
    def patient(ident, address):
        return {"resourceType": "Patient", "id": ident, "address": address}

    def booked(ident):
        return {
            "resourceType": "Appointment",
            "id": f"a-{ident}",
            "status": "booked",
            "start": "2025-03-30T09:00:00Z",
            "end": "2025-03-30T09:30:00Z",
            "participant": [{"status": "accepted", "actor": {"reference": f"Patient/{ident}"}}],
        }

    people = {
        "moved": [
            {"use": "old", "line": ["9 Old Road"], "city": "Leeds"},
            {"line": ["Rue 1", "Bât. B", "3e étage"], "city": "Lyon", "country": "France"},
        ],
        "odd": [{"line": ["5 Elm Street"], "postalCode": "#12", "country": "GB"}],
        "townless": [{"line": ["5 Elm Street"], "postalCode": "YO1 7HH", "country": "GB"}],
    }
    resources = [patient(i, a) for i, a in people.items()] + [booked(i) for i in people]
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in resources],
    }
    with db.write() as session:
        report = interchange.import_fhir(session, world.owner, [json.dumps(bundle)])
    assert (report.created, report.problem_count) == (3, 0)
    assert [w.reason for w in report.warnings] == [
        "Patient/odd: imported without its address: '#12' is not a postcode: use letters, "
        "digits, spaces and hyphens only (like SW1A 1AA or 10115).",
        "Patient/townless: imported without its address: The address needs its town or city "
        "for a letter to reach it: type it, or clear the address's boxes (and its country) to "
        "keep no address.",
    ]
    with db.read() as session:
        found = {
            p.external_ref: (p.address_line1, p.address_line2, p.city, p.country)
            for p in session.scalars(select(Patient).where(Patient.external_ref.like("fhir:%")))
        }
    assert found["fhir:Patient/moved"] == ("Rue 1", "Bât. B, 3e étage", "Lyon", "FR")
    assert found["fhir:Patient/odd"] == (None, None, None, None)
    assert found["fhir:Patient/townless"] == (None, None, None, None)


def test_an_imported_appointments_description_is_a_note_by_the_import_when_it_ran(db, world):
    """The FHIR description is the appointment's notes text; it was stored only there, so the
    appointment page showed it as "Imported" without a time. It is also a note by "Imported
    from FHIR", written when the import ran; an appointment without one gets no note."""
    start = SOON + timedelta(days=2)
    resources = [
        {
            "resourceType": "Appointment",
            "id": ref,
            "status": "booked",
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=30)).isoformat(),
            "participant": [{"status": "accepted", "actor": {"reference": "Patient/n1"}}],
            **({"description": text} if text else {}),
        }
        for ref, text in (("n1", "Bring the referral letter"), ("n2", ""))
    ]
    before = datetime.now(UTC)
    with db.write() as session:
        report = interchange.import_fhir(session, world.owner, [json.dumps(r) for r in resources])
    assert (report.created, report.problem_count) == (2, 0)
    with db.read() as session:
        visits = session.scalars(
            select(Appointment).where(Appointment.external_ref.in_(["fhir:n1", "fhir:n2"]))
        ).all()
        rows = session.scalars(select(AppointmentNote)).all()
        shown = notes.notes_of(session, visits)
    n1 = next(v.id for v in visits if v.external_ref == "fhir:n1")
    assert [(r.appointment_id, r.author_name, r.author_user_id, r.text) for r in rows] == [
        (n1, "Imported from FHIR", None, "Bring the referral letter")
    ]
    assert before <= rows[0].written_at <= datetime.now(UTC)
    assert {k: [(n.author, n.written_at) for n in v] for k, v in shown.items()} == {
        n1: [("Imported from FHIR", rows[0].written_at)],
        next(v.id for v in visits if v.external_ref == "fhir:n2"): [],
    }


def _appointment(ref: str, **fields) -> str:
    start = SOON + timedelta(days=2)
    return json.dumps(
        {
            "resourceType": "Appointment",
            "id": ref,
            "status": "booked",
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=30)).isoformat(),
            "participant": [{"status": "accepted", "actor": {"reference": "Patient/c1"}}],
            **fields,
        }
    )


def test_a_fhir_comment_and_patient_instruction_are_notes_by_the_import(db, world):
    """Before, only the description came in: the comment (what the other system's staff wrote)
    and the instruction to the patient were dropped without a word. Each is a note by the
    import, the comment the latest (the queue's and calendar's notes text), kept as typed."""
    comment = "**Latex** allergy <b>ask</b>;\nbring the referral letter"
    with db.write() as session:
        report = interchange.import_fhir(
            session,
            world.owner,
            [
                _appointment(
                    "c1",
                    description="Peel",
                    patientInstruction="  No make-up on the day  ",
                    comment=comment,
                ),
                _appointment("c2", patientInstruction="Fast for 6 hours"),
            ],
        )
    assert (report.created, report.problem_count) == (2, 0)
    with db.read() as session:
        visits = {
            v.external_ref: v
            for v in session.scalars(select(Appointment).where(Appointment.source == Source.IMPORT))
        }
        shown = notes.notes_of(session, visits.values())
    c1, c2 = visits["fhir:c1"], visits["fhir:c2"]
    assert [(n.author, n.text) for n in shown[c1.id]] == [
        ("Imported from FHIR", comment),
        ("Imported from FHIR", "Instructions for the patient: No make-up on the day"),
        ("Imported from FHIR", "Peel"),
    ]
    assert (c1.notes, c2.notes) == (comment, "Instructions for the patient: Fast for 6 hours")
    assert [n.text for n in shown[c2.id]] == [c2.notes]


def test_notes_go_out_as_the_fhir_comment_and_come_back_in(db, world):
    """Before, the export carried no notes at all. The comment holds them oldest first: an
    imported one as its text (a comment in, out and in again reads the same), a staff note
    with who wrote it and when (clinic-local, with its offset)."""
    comment = "Allergic to latex, ask; bring ID"
    with db.write() as session:
        interchange.import_fhir(session, world.owner, [_appointment("r1", comment=comment)])
        first = session.scalar(select(Appointment).where(Appointment.external_ref == "fhir:r1"))
        first_id = first.id
    with db.write() as session:
        export = interchange.export_fhir(session, world.owner)
        [only] = [
            e.resource
            for e in Bundle.model_validate_json(export.content).entry
            if e.resource.id == f"appointment-{first_id}"
        ]
        assert only.comment == comment
        staff = notes.add_note(session, world.manager, first_id, "Called: will come at 10")
        written = staff.written_at
    with db.write() as session:
        export = interchange.export_fhir(session, world.owner)
        report = interchange.import_fhir(session, world.owner, [export.content])
    assert report.created == 1
    at = written.astimezone(UTC).isoformat(timespec="minutes")  # the import's clinic: UTC
    both = f"{comment}\n\nManager, {at}: Called: will come at 10"
    with db.read() as session:
        back = session.scalar(
            select(Appointment).where(Appointment.external_ref == f"fhir:{first_id}")
        )
        assert [(n.author, n.text) for n in notes.notes_of(session, [back])[back.id]] == [
            ("Imported from FHIR", both)
        ]


def test_control_characters_in_imported_fhir_text_are_dropped_or_said(db, world):
    """The import writes with INSERT statements, past the rule that cleans every typed text of
    a row (core.kernel.text): a NUL in a comment failed the whole import on PostgreSQL (a
    database error, nothing said of which appointment) and was kept on SQLite, as was a
    right-to-left override that makes a note read backwards. Notes and the cancellation reason
    come in cleaned as typed text is; an identifier with one, or a reason longer than any typed
    text may be, is reported for its document, which is not imported; the others are."""
    with db.write() as session:
        report = interchange.import_fhir(
            session,
            world.owner,
            [
                _appointment(
                    "x1",
                    description="Peel\u0000 face",
                    comment="Owes \u202e04 \u00a3\r\nsee desk",
                ),
                _appointment(
                    "x2",
                    status="cancelled",
                    cancelationReason={"text": "Ill\u0000\u0007, sorry"},
                ),
                _appointment("x3", identifier=[{"value": "ref\u0000 3"}], comment="Hello"),
                _appointment("x4", status="cancelled", cancelationReason={"text": "Ill " * 6000}),
            ],
        )
    assert (report.created, report.problem_count) == (2, 2)
    said = [(p.row, p.reason) for p in report.problems]
    assert said[0][0] == 3 and "holds a control character or a line break" in said[0][1]
    assert said[1] == (
        4,
        "Appointment/x4: The cancellation reason is too long: 24,000 characters where at most "
        "20,000 fit. Shorten it.",
    )
    with db.read() as session:
        visits = {
            v.external_ref: v
            for v in session.scalars(select(Appointment).where(Appointment.source == Source.IMPORT))
        }
        shown = notes.notes_of(session, visits.values())
    x1, x2 = visits["fhir:x1"], visits["fhir:x2"]
    assert [n.text for n in shown[x1.id]] == ["Owes 04 \u00a3\nsee desk", "Peel face"]
    assert x1.notes == "Owes 04 \u00a3\nsee desk"
    assert x2.cancel_reason == "Ill, sorry"


@pytest.mark.parametrize(
    ("name", "display", "said"),
    [
        ({"given": ["🙂🙂"], "family": "Silva"}, None, "first name '🙂🙂'"),
        ({"given": ["Ana"], "family": "---"}, None, "last name '---'"),
        (None, "Ana 123", "last name '123'"),
    ],
)
def test_a_fhir_patient_named_without_a_letter_is_refused_with_its_appointment(
    db, world, name, display, said
):
    """A name given needs a letter in some alphabet (core.patients.records.has_letter), as on
    every form: the appointment is reported with what to fix, and nothing of it is saved (no
    patient, no provider, no visit); the document's other appointments come in."""
    patient = {"resourceType": "Patient", "id": "nl", **({"name": [name]} if name else {})}
    doctor = {"resourceType": "Practitioner", "id": "dr", "name": [{"family": "Who"}]}
    bad = json.loads(_appointment("nl1"))
    bad["participant"] = [
        {"status": "accepted", "actor": {"reference": "Patient/nl", "display": display}},
        {"status": "accepted", "actor": {"reference": "Practitioner/dr"}},
    ]
    good = json.loads(_appointment("ok1"))
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in (patient, doctor, bad, good)]
        if name
        else [{"resource": r} for r in (doctor, bad, good)],
    }
    with db.write() as session:
        report = interchange.import_fhir(session, world.owner, [json.dumps(bundle)])
    assert (report.created, report.patients_created, report.problem_count) == (1, 1, 1)
    assert [p.reason for p in report.problems] == [
        f"Appointment/nl1: Patient/nl's {said} has no letter in it: write the patient's name "
        "as it is written (in any alphabet), or leave it out"
    ]
    with db.read() as session:
        refs = set(session.scalars(select(Appointment.external_ref)))
        assert "fhir:nl1" not in refs and "fhir:ok1" in refs
        assert not session.scalar(select(Patient).where(Patient.external_ref == "fhir:Patient/nl"))
        assert not session.scalar(select(Provider).where(Provider.external_ref.like("%Practit%")))


def test_a_fhir_patient_resource_that_is_not_valid_fhir_is_reported_with_its_appointment(db, world):
    """A Patient fhir.resources refuses (a birthDate that is no date) stopped the whole import
    with pydantic's error; now its appointment is reported and skipped, nothing of it saved, and
    the document's other appointments come in."""
    patient = {"resourceType": "Patient", "id": "bad", "birthDate": "someday"}
    bad = json.loads(_appointment("bad1"))
    bad["participant"] = [{"status": "accepted", "actor": {"reference": "Patient/bad"}}]
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in (patient, bad, json.loads(_appointment("ok2")))],
    }
    with db.write() as session:
        report = interchange.import_fhir(session, world.owner, [json.dumps(bundle)])
    assert (report.created, report.problem_count) == (1, 1)
    assert report.problems[0].reason.startswith("Appointment/bad1: ")
    with db.read() as session:
        refs = set(session.scalars(select(Appointment.external_ref)))
        assert "fhir:bad1" not in refs and "fhir:ok2" in refs
        assert not session.scalar(select(Patient).where(Patient.external_ref == "fhir:Patient/bad"))
