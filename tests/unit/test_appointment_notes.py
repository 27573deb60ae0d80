"""An appointment's notes: appended with who wrote them and when, never written over; the
latest text stays on the appointment for the lists; the patient's file lists them all."""

from __future__ import annotations

import json
import threading
from datetime import time, timedelta

import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy import text as sa_text

from core.interchange import patient_export
from core.kernel.authz import patient_actor
from core.kernel.clock import local_to_utc, to_local
from core.kernel.errors import PermissionDenied, ValidationError
from core.requests import decisions
from core.scheduling import moves, notes
from db import migrate
from db.models import Appointment, AppointmentNote, AppointmentStatus, AuditEvent
from db.types import utcnow
from tests.factories import make_visit
from tests.support.locks import wait_until_a_writer_waits

TZ = "Europe/London"


def book(db, world, note: str = "") -> int:
    with db.write() as session:
        return moves.schedule_appointment(
            session,
            world.staff,
            moves.NewBooking(
                patient_id=world.patient_id,
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                service_ids=[world.service_id],
                start_at=local_to_utc(
                    to_local(utcnow(), TZ).date() + timedelta(days=3), time(10), TZ
                ),
                allow_double_booking=True,
                notes=note,
            ),
        ).id


def written(db, appointment_id: int) -> list[tuple[str, str]]:
    """(author, text) of the appointment's notes, newest first."""
    with db.read() as session:
        visit = session.get(Appointment, appointment_id)
        return [(n.author, n.text) for n in notes.notes_of(session, [visit])[appointment_id]]


def latest(db, appointment_id: int) -> str:
    with db.read() as session:
        return session.get(Appointment, appointment_id).notes


def test_a_note_added_keeps_the_earlier_ones_and_is_the_latest_text(db, world):
    """The booking's note is the first; one added later comes on top, by whom, audited, and is
    the appointment's notes text (before, there was one text and nothing said who wrote it)."""
    visit = book(db, world, "Bring x-rays")
    with db.write() as session:
        notes.add_note(session, world.manager, visit, "  Called: running 10 minutes late\n")
    assert written(db, visit) == [
        ("Manager", "Called: running 10 minutes late"),
        ("Staff", "Bring x-rays"),
    ]
    assert latest(db, visit) == "Called: running 10 minutes late"
    with db.read() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == notes.NOTE_ADDED))
        stored = session.scalars(select(AppointmentNote).order_by(AppointmentNote.id)).all()
    assert (event.entity_id, event.actor_label, event.user_id) == (
        visit,
        "Manager",
        stored[1].author_user_id,
    )
    assert stored[0].written_at <= stored[1].written_at and stored[0].author_user_id is not None


def test_an_update_with_new_notes_appends_them_instead_of_replacing(db, world):
    visit = book(db, world, "Bring x-rays")
    with db.write() as session:
        moves.update_appointment(session, world.manager, visit, notes="Prefers the left arm")
    with db.write() as session:  # the same text again, or none: nothing new is written
        moves.update_appointment(session, world.manager, visit, notes="Prefers the left arm ")
        moves.update_appointment(session, world.manager, visit, notes="")
    assert written(db, visit) == [("Manager", "Prefers the left arm"), ("Staff", "Bring x-rays")]
    assert latest(db, visit) == "Prefers the left arm"


def test_a_patients_request_note_is_theirs(db, world):
    with db.write() as session:
        visit = decisions.request_appointment(
            session,
            patient_actor("Alex Morgan", "portal"),
            patient_id=world.patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            requested_day=(utcnow() + timedelta(days=5)).date(),
            time_of_day="morning",
            notes="Wheelchair access, please",
        ).id
    assert written(db, visit) == [("Patient Alex Morgan (portal)", "Wheelchair access, please")]


def test_a_note_is_refused_to_a_patient_and_an_empty_one_to_anyone(db, world):
    visit = book(db, world)
    with pytest.raises(PermissionDenied), db.write() as session:
        notes.add_note(session, patient_actor("Alex Morgan", "portal"), visit, "Hello")
    with pytest.raises(ValidationError, match="The note is empty"), db.write() as session:
        notes.add_note(session, world.staff, visit, " \n ")
    assert written(db, visit) == []


def test_the_patients_file_lists_every_note_with_who_and_when(db, world):
    visit = book(db, world, "Bring x-rays")
    with db.write() as session:
        notes.add_note(session, world.staff, visit, "**Allergic** to latex")
        data = json.loads(patient_export.export_patient(session, world.manager, world.patient_id))
    [shown] = [a for a in data["appointments"] if a["id"] == visit]
    assert shown["notes"] == "**Allergic** to latex"
    assert [(n["by"], n["text"]) for n in shown["notes_written"]] == [
        ("Staff", "**Allergic** to latex"),
        ("Staff", "Bring x-rays"),
    ]
    assert all(n["written_at"] and n["local"] for n in shown["notes_written"])


def test_the_migration_keeps_each_stored_note_as_an_earlier_one(db, world):
    """0020 makes each non-empty notes text already stored one note, dated when its
    appointment last changed; a visit without notes gets none."""
    with db.write() as session:
        start = utcnow() + timedelta(days=2)
        kept, empty = (
            make_visit(
                session,
                world,
                status=AppointmentStatus.SCHEDULED,
                start_at=start + timedelta(hours=hour),
                end_at=start + timedelta(hours=hour, minutes=30),
                notes=words,
            ).id
            for hour, words in ((0, "Prefers mornings"), (1, "  "))
        )
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0020")
        changed = utcnow().replace(microsecond=0) - timedelta(days=1)
        connection.execute(
            sa_text("UPDATE appointments SET updated_at = :at WHERE id = :id"),
            {"at": changed, "id": kept},
        )
    migrate.upgrade(db.engine)
    with db.read() as session:
        rows = session.scalars(select(AppointmentNote)).all()
    assert [(r.appointment_id, r.author_name, r.text, r.author_user_id) for r in rows] == [
        (kept, "Earlier note", "Prefers mornings", None)
    ]
    assert rows[0].written_at == changed
    assert written(db, empty) == []


def test_two_staff_adding_a_note_at_once_both_keep_theirs(db, world):
    """Staff add a note while the manager adds one to the same appointment: the manager's
    waits for the staff's, both notes are kept, and the later one is the latest text."""
    visit = book(db, world)
    failed: list[Exception] = []

    def manager_adds() -> None:
        try:
            with db.write() as session:
                notes.add_note(session, world.manager, visit, "Second: insurer called")
        except Exception as error:  # noqa: BLE001 - any failure is the outcome asserted on
            failed.append(error)

    with db.write() as session:
        notes.add_note(session, world.staff, visit, "First: patient called")
        colleague = threading.Thread(target=manager_adds)
        colleague.start()
        wait_until_a_writer_waits(db)
    colleague.join(30)
    assert not failed, failed
    assert written(db, visit) == [
        ("Manager", "Second: insurer called"),
        ("Staff", "First: patient called"),
    ]
    assert latest(db, visit) == "Second: insurer called"


def test_an_imported_note_is_cleaned_as_typed_text_is(db, world):
    """notes.imported wrote its texts with one INSERT, past the rule that cleans a row's typed
    text (core.kernel.text): a NUL from a file reached the database (PostgreSQL refuses it,
    failing the whole import), and a control character or a direction override was stored.
    It cleans them itself, whatever importer calls it; a note too long is refused, named."""
    visit = book(db, world)
    with db.write() as session:
        notes.imported(
            session,
            [(visit, " Al\x00lergy\u202e: pen\x07icillin\r\nsee GP \u2066 ")],
            "CSV",
            utcnow(),
        )
    with db.read() as session:
        stored = session.scalars(
            select(AppointmentNote.text).where(AppointmentNote.appointment_id == visit)
        ).all()
    assert stored == ["Allergy: penicillin\nsee GP"]
    with db.write() as session, pytest.raises(ValidationError, match="The note is too long"):
        notes.imported(session, [(visit, "x" * (notes.NOTE_LIMIT + 1))], "CSV", utcnow())
