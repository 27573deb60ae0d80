"""Forms after booking: sent once after booking, answered and signed through single-use links,
shown per appointment with a resend, kept, exported and audited when opened.
Re-run on PostgreSQL by tests/integration/test_forms_pg.py."""

from __future__ import annotations

import json
import re
from datetime import date, time

import pytest
from sqlalchemy import func, select

from core.forms import after_booking as forms
from core.interchange import patient_export
from core.kernel.authz import Actor
from core.kernel.clock import local_to_utc, to_local
from core.kernel.errors import LinkInvalid, PermissionDenied, ValidationError
from core.scheduling import moves
from db.models import AuditEvent, DocumentKind, Notification, ServiceDocument
from db.types import utcnow

TZ = "Europe/London"
DAY = date(2027, 2, 11)
QUESTIONS = [
    {"key": "allergies", "label": "Any allergies?", "type": "text", "required": True},
    {"key": "pregnant", "label": "Pregnant?", "type": "yes_no", "required": False},
    {"key": "skin", "label": "Skin type", "type": "choice", "options": ["I", "II", "III"]},
]


def add_documents(db, world) -> None:
    with db.write() as session:
        session.add_all(
            [
                ServiceDocument(
                    service_id=world.service_id,
                    kind=DocumentKind.QUESTIONNAIRE,
                    title="Health questionnaire",
                    questions=QUESTIONS,
                ),
                ServiceDocument(
                    service_id=world.service_id,
                    kind=DocumentKind.CONSENT,
                    title="Consent to treatment",
                    body="I consent to the treatment described.",
                ),
                ServiceDocument(
                    service_id=world.service_id,
                    kind=DocumentKind.INSTRUCTIONS,
                    title="Before your visit",
                    body="No make-up on the day.",
                ),
            ]
        )


def book(db, world, hour=10) -> int:
    with db.write() as session:
        return moves.schedule_appointment(
            session,
            world.manager,
            moves.NewBooking(
                patient_id=world.patient_id,
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                service_ids=[world.service_id],
                start_at=local_to_utc(DAY, time(hour), TZ),
            ),
        ).id


def send(db) -> int:
    with db.write() as session:
        return forms.send_due_forms(session, base_url="https://desk.test")


def links(db, appointment_id) -> dict[str, str]:
    """The raw token of each document from the latest email, by title."""
    with db.read() as session:
        body = session.scalar(
            select(Notification.body)
            .where(
                Notification.appointment_id == appointment_id,
                Notification.template == "forms_to_complete",
                Notification.channel == "email",
            )
            .order_by(Notification.id.desc())
            .limit(1)
        )
    found = re.findall(r"(?:Questionnaire|Consent|Instructions): (.+?): \S+t=(\S+)", body)
    return dict(found)


def test_forms_go_out_once_after_booking_in_one_message(db, world):
    add_documents(db, world)
    appointment_id = book(db, world)
    assert send(db) == 3
    assert send(db) == 0
    assert set(links(db, appointment_id)) == {
        "Health questionnaire",
        "Consent to treatment",
        "Before your visit",
    }
    with db.read() as session:
        rows = forms.forms_of(session, world.staff, appointment_id)
    assert [r.state for r in rows] == ["outstanding"] * 3


def test_no_forms_for_a_cancelled_appointment_or_a_service_without_documents(db, world):
    appointment_id = book(db, world)
    assert send(db) == 0
    add_documents(db, world)
    with db.write() as session:
        moves.cancel_appointment(session, world.manager, appointment_id, reason="Provider ill")
    assert send(db) == 0


def test_questionnaire_is_answered_once_and_its_opening_audited(db, world):
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    raw = links(db, appointment_id)["Health questionnaire"]
    with db.write() as session:
        view = forms.open_form(session, raw, client_address="203.0.113.9")
    assert view.kind == "questionnaire" and [q["key"] for q in view.questions] == [
        "allergies",
        "pregnant",
        "skin",
    ]
    with db.write() as session, pytest.raises(ValidationError, match="Any allergies"):
        forms.submit_form(session, raw, answers={"allergies": " "})
    with db.write() as session, pytest.raises(ValidationError, match="Skin type"):
        forms.submit_form(session, raw, answers={"allergies": "None", "skin": "VII"})
    with db.write() as session:
        done = forms.submit_form(
            session, raw, answers={"allergies": "Penicillin", "pregnant": "no", "skin": "II"}
        )
    assert "answers have been sent" in done
    with db.write() as session, pytest.raises(LinkInvalid):
        forms.open_form(session, raw)
    with db.read() as session:
        opened = session.scalar(select(func.count()).where(AuditEvent.action == "form_opened"))
        assert opened == 1
        row = next(
            r
            for r in forms.forms_of(session, world.staff, appointment_id)
            if r.kind == "Questionnaire"
        )
    assert row.state == "answered"
    with db.write() as session:
        answers = forms.read_answers(session, world.manager, row.id)
    assert answers.answers == [
        ("Any allergies?", "Penicillin"),
        ("Pregnant?", "no"),
        ("Skin type", "II"),
    ]
    with db.read() as session:
        viewed = session.scalar(
            select(func.count()).where(AuditEvent.action == "form_answers_viewed")
        )
        exported = forms.patient_forms_export(session, world.patient_id)
    assert viewed == 1
    (questionnaire,) = [f for f in exported if f["kind"] == "questionnaire"]
    assert questionnaire["answers"]["allergies"] == "Penicillin"


def test_consent_needs_the_full_name_and_todays_date_and_records_time_and_address(db, world):
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    raw = links(db, appointment_id)["Consent to treatment"]
    today = to_local(utcnow(), TZ).date()
    with db.write() as session, pytest.raises(ValidationError, match="full name"):
        forms.submit_form(session, raw, signed_name="Alex", signed_on=today)
    with db.write() as session, pytest.raises(ValidationError, match="today's date"):
        forms.submit_form(session, raw, signed_name="alex  morgan", signed_on=date(2020, 1, 1))
    with db.write() as session:
        forms.submit_form(
            session, raw, signed_name="alex  morgan", signed_on=today, client_address="198.51.100.7"
        )
    with db.read() as session:
        consent = next(
            r for r in forms.forms_of(session, world.staff, appointment_id) if r.kind == "Consent"
        )
        summary = forms.form_summaries(session, world.staff, [appointment_id])
    assert consent.state == "signed" and "alex morgan" in consent.signed
    assert "198.51.100.7" in consent.signed
    assert summary[appointment_id] == "2 outstanding · 1 signed"


def test_resend_issues_a_fresh_link_and_the_old_one_stops_working(db, world):
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    old = links(db, appointment_id)["Consent to treatment"]
    with db.read() as session:
        consent = next(
            r for r in forms.forms_of(session, world.staff, appointment_id) if r.kind == "Consent"
        )
    with db.write() as session:
        forms.resend(session, world.staff, consent.id, base_url="https://desk.test")
    new = links(db, appointment_id)["Consent to treatment"]
    assert new != old
    with db.write() as session, pytest.raises(LinkInvalid):
        forms.open_form(session, old)
    with db.write() as session:
        assert forms.open_form(session, new).title == "Consent to treatment"
    with db.read() as session:
        sent = {r.kind: r.times_sent for r in forms.forms_of(session, world.staff, appointment_id)}
    assert sent == {"Consent": 2, "Instructions": 1, "Questionnaire": 1}


def test_answers_need_the_patient_read_permission(db, world):
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    with db.read() as session:
        form_id = forms.forms_of(session, world.staff, appointment_id)[0].id
    with db.write() as session, pytest.raises(PermissionDenied):
        forms.read_answers(session, Actor(None, "Patient"), form_id)


def test_the_patients_file_carries_the_forms_and_is_audited(db, world):
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    raw = links(db, appointment_id)["Consent to treatment"]
    today = to_local(utcnow(), TZ).date()
    with db.write() as session:
        forms.submit_form(session, raw, signed_name="Alex Morgan", signed_on=today)
    with db.write() as session:
        with pytest.raises(PermissionDenied):
            patient_export.export_patient(session, world.staff, world.patient_id)
        data = json.loads(patient_export.export_patient(session, world.manager, world.patient_id))
    assert data["appointments"][0]["id"] == appointment_id
    consent = next(f for f in data["forms"] if f["kind"] == "consent")
    assert consent["signed_name"] == "Alex Morgan" and consent["signed_on"] == today.isoformat()
    with db.read() as session:
        assert session.scalar(select(AuditEvent).where(AuditEvent.entity == "patient_file"))
