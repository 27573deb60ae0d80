"""Typed text into the database: control characters dropped, lengths bounded with a message
(core.kernel.text) — re-run on PostgreSQL by tests/integration/test_text_bounds_pg.py."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.kernel import accounts
from core.kernel.errors import AuthenticationFailed, ValidationError
from core.patients import records
from db.models import Appointment, Clinic, Patient, Provider
from tests.factories import PASSWORD

LONG_EMAIL = "a" * 9_988 + "@example.org"  # 10,000 characters


def test_nul_and_control_characters_leave_a_name_and_a_direction_override_too(db, world):
    with db.write() as s:
        patient = records.create_patient(
            s, world.staff, first_name="Ad\x00a\x07", last_name="Love\u202elace\ttwo"
        )
        patient_id = patient.id
    with db.read() as s:
        stored = s.get(Patient, patient_id)
        assert (stored.first_name, stored.last_name) == ("Ada", "Lovelace two")


def test_a_name_of_nul_only_is_an_empty_name_with_a_message(db, world):
    with db.write() as s, pytest.raises(ValidationError, match="Enter the patient's name"):
        records.create_patient(s, world.staff, first_name="\x00\x00", last_name=" \x00")


def test_a_ten_thousand_character_email_gets_a_message_not_a_database_error(db, world):
    with db.write() as s, pytest.raises(ValidationError, match="email address is too long"):
        records.create_patient(s, world.staff, first_name="Ada", last_name="L", email=LONG_EMAIL)
    with db.write() as s, pytest.raises(ValidationError, match="at most 254"):
        records.update_patient(s, world.staff, world.patient_id, email=LONG_EMAIL)
    with db.write() as s, pytest.raises(ValidationError, match="last name is too long"):
        records.update_patient(s, world.staff, world.patient_id, last_name="x" * 10_000)


def test_every_flush_bounds_and_cleans_string_columns_whatever_the_service(db, world):
    with pytest.raises(ValidationError, match="The clinic name is too long"), db.write() as s:
        s.get(Clinic, world.clinic_id).name = "C" * 10_000  # flushed on commit
    with db.write() as s:
        s.get(Provider, world.provider_id).name = "Dr\x00 New\nline"
        s.add(Patient(first_name="N\x00ul", last_name="Row"))
    with db.read() as s:
        assert s.get(Provider, world.provider_id).name == "Dr New line"
        assert s.scalar(select(Patient.first_name).where(Patient.last_name == "Row")) == "Nul"


def test_multi_line_text_keeps_its_newlines_and_loses_the_rest(db, world):
    with db.write() as s:
        appointment = Appointment(
            patient_id=world.patient_id,
            clinic_id=world.clinic_id,
            status="requested",
            notes="first line\r\nsecond\x00 line\u202e",
        )
        s.add(appointment)
        s.flush()
        appointment_id = appointment.id
    with db.read() as s:
        assert s.get(Appointment, appointment_id).notes == "first line\nsecond line"


def test_sign_in_and_search_with_hostile_text_answer_normally(db, world):
    for username, password in (("man\x00ager", "wrong password"), ("m" * 10_000, PASSWORD)):
        with db.write() as s:
            result = accounts.sign_in(s, username, password)
        assert isinstance(result, AuthenticationFailed)
        assert str(result) == accounts.SIGN_IN_FAILED
    with db.read() as s:
        assert [p.id for p in records.search_patients(s, world.staff, "Mor\x00gan")] == [
            world.patient_id
        ]


def test_a_nul_in_a_username_is_dropped_like_anywhere_else(db, world):
    with db.write() as s:
        assert isinstance(accounts.sign_in(s, "man\x00ager", PASSWORD), accounts.SignedIn)
