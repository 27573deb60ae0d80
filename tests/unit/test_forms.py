"""Forms after booking: sent once after booking, answered and signed through single-use links,
shown per appointment with a resend, kept, exported and audited when opened.
Re-run on PostgreSQL by tests/integration/test_forms_pg.py."""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from datetime import date, time, timedelta

import pytest
from sqlalchemy import func, select, update

from core.forms import after_booking as forms
from core.forms import records
from core.interchange import patient_export
from core.kernel import audit, tokens
from core.kernel.authz import Actor
from core.kernel.clock import local_to_utc, to_local
from core.kernel.errors import LinkInvalid, NotFound, PermissionDenied, ValidationError
from core.messaging import sms_parts
from core.portal import home
from core.practice import documents, housekeeping
from core.scheduling import moves
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Clinic,
    DocumentKind,
    FormRequest,
    LinkToken,
    Notification,
    Patient,
    Service,
    ServiceDocument,
)
from db.types import utcnow
from tests.factories import make_patient
from tests.support.days import PLAIN_THURSDAY
from tests.support.locks import wait_until_a_writer_waits

TZ = "Europe/London"
DAY = PLAIN_THURSDAY  # ahead, in standard time
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
        rows = records.forms_of(session, world.staff, appointment_id)
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
    # opened again (the next day, another tab): why it does not open, not a dead end
    with db.write() as session, pytest.raises(ValidationError, match="answered already. Thank"):
        forms.open_form(session, raw)
    with db.read() as session:
        opened = session.scalar(select(func.count()).where(AuditEvent.action == "form_opened"))
        assert opened == 1
        row = next(
            r
            for r in records.forms_of(session, world.staff, appointment_id)
            if r.kind == "Questionnaire"
        )
    assert row.state == "answered"
    with db.write() as session:
        answers = records.read_answers(session, world.manager, row.id)
    assert answers.answers == [
        ("Any allergies?", "Penicillin"),
        ("Pregnant?", "no"),
        ("Skin type", "II"),
    ]
    with db.read() as session:
        viewed = session.scalar(
            select(func.count()).where(AuditEvent.action == "form_answers_viewed")
        )
        exported = records.patient_forms_export(session, world.patient_id)
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
            r for r in records.forms_of(session, world.staff, appointment_id) if r.kind == "Consent"
        )
        summary = records.form_summaries(session, world.staff, [appointment_id])
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
            r for r in records.forms_of(session, world.staff, appointment_id) if r.kind == "Consent"
        )
    with db.write() as session:
        forms.resend(session, world.staff, consent.id, base_url="https://desk.test")
    new = links(db, appointment_id)["Consent to treatment"]
    assert new != old
    with db.write() as session, pytest.raises(ValidationError, match="newer link"):
        forms.open_form(session, old)
    with db.write() as session:
        assert forms.open_form(session, new).title == "Consent to treatment"
    with db.read() as session:
        rows = records.forms_of(session, world.staff, appointment_id)
        sent = {r.kind: r.times_sent for r in rows}
    assert sent == {"Consent": 2, "Instructions": 1, "Questionnaire": 1}


def test_answers_need_the_patient_read_permission(db, world):
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    with db.read() as session:
        form_id = records.forms_of(session, world.staff, appointment_id)[0].id
    with db.write() as session, pytest.raises(PermissionDenied):
        records.read_answers(session, Actor(None, "Patient"), form_id)


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


def test_the_patients_file_holds_everything_held_about_them_in_words(db, world):
    """A subject access request: the file held the record, appointments (by ids only, in UTC)
    and forms; not the messages sent to the patient, their text replies, payments, fees, points,
    survey answers, waitlist, invitations, imported attributes, nor the record merged into
    theirs."""
    from db.models import (
        Appointment,
        AppointmentStatus,
        LedgerEntry,
        LedgerKind,
        Notification,
        Payment,
        SmsReply,
        SurveyResponse,
    )

    start = local_to_utc(PLAIN_THURSDAY, time(10), TZ)
    with db.write() as session:
        session.get(Patient, world.patient_id).extra = {"insurer": "Bupa"}
        visit = Appointment(
            clinic_id=world.clinic_id,
            provider_id=world.provider_id,
            patient_id=world.patient_id,
            service_id=world.service_id,
            status=AppointmentStatus.COMPLETED,
            start_at=start,
            end_at=start + timedelta(minutes=30),
            notes="Prefers the left arm",
        )
        session.add(visit)
        session.flush()
        session.add_all(
            [
                Notification(
                    patient_id=world.patient_id,
                    appointment_id=visit.id,
                    channel="sms",
                    template="reminder",
                    to_address="07700 900123",
                    body="See you tomorrow at 10:00",
                    status="sent",
                ),
                SmsReply(
                    from_number="07700 900123",
                    body="STOP",
                    patient_id=world.patient_id,
                    outcome="opted_out",
                ),
                Payment(
                    patient_id=world.patient_id,
                    appointment_id=visit.id,
                    kind="deposit",
                    method="card",
                    status="paid",
                    amount_cents=2550,
                    currency="GBP",
                ),
                LedgerEntry(
                    patient_id=world.patient_id,
                    appointment_id=visit.id,
                    kind=LedgerKind.NO_SHOW_FEE,
                    amount_cents=1500,
                ),
                SurveyResponse(
                    appointment_id=visit.id, submitted_at=utcnow(), nps=9, comment="Lovely"
                ),
            ]
        )
        make_patient(
            session, first_name="Alex", last_name="Morgn", email="old@example.org"
        ).merged_into_id = world.patient_id
    with db.write() as session:
        data = json.loads(patient_export.export_patient(session, world.manager, world.patient_id))
    [shown] = [a for a in data["appointments"] if a["id"] == visit.id]
    assert (shown["services"], shown["provider"], shown["clinic"]) == (
        ["Consultation"],
        "Dr Test",
        "Test Clinic",
    )
    assert shown["local"].startswith("Thu") and "10:00" in shown["local"]
    assert shown["notes"] == "Prefers the left arm"
    assert data["patient"]["imported_attributes"] == {"insurer": "Bupa"}
    assert [m["text"] for m in data["messages"]] == ["See you tomorrow at 10:00"]
    assert [r["text"] for r in data["text_replies"]] == ["STOP"]
    assert [(p["amount"], p["status"]) for p in data["payments"]] == [("£25.50", "paid")]
    fees = [e for e in data["fees_and_points"] if e["kind"] == "no_show_fee"]
    assert [e["amount"] for e in fees] == ["£15.00"]
    assert any(e["kind"] == "points_opening" for e in data["fees_and_points"])
    assert [r["comment"] for r in data["survey_answers"]] == ["Lovely"]
    assert [p["email"] for p in data["records_merged_into_this_one"]] == ["old@example.org"]


def test_the_patients_file_export_is_found_by_patient_in_the_audit_log(db, world):
    """The audit log's Patient # filter finds the export of that patient's file (it was only in
    the event's details, so filtering by the patient showed nothing)."""
    with db.write() as session:
        other = make_patient(session, first_name="Noor", last_name="Other").id
    with db.write() as session:
        patient_export.export_patient(session, world.manager, world.patient_id)
        patient_export.export_patient(session, world.manager, other)
    with db.read() as session:
        events = audit.list_events(session, world.owner, patient_id=world.patient_id)
    assert [(e.action, e.entity, e.patient_id) for e in events] == [
        ("export", "patient_file", world.patient_id)
    ]


# ---------------------------------------------------------------- answered from the portal


def enrol(db, patient_id) -> None:
    with db.write() as session:
        session.get(Patient, patient_id).portal_enrolled_at = utcnow()


def portal_forms(db, patient_id, appointment_id) -> dict[str, forms.PatientForm]:
    with db.read() as session:
        card = next(a for a in home.home(session, patient_id).upcoming if a.id == appointment_id)
    return {f.title: f for f in card.forms}


def completed_details(db) -> list[dict]:
    with db.read() as session:
        return list(
            session.scalars(
                select(AuditEvent.details)
                .where(AuditEvent.action == "form_completed")
                .order_by(AuditEvent.id)
            )
        )


def test_the_portal_answers_and_signs_under_the_links_rules_and_records(db, world):
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    enrol(db, world.patient_id)
    emailed = links(db, appointment_id)
    shown = portal_forms(db, world.patient_id, appointment_id)
    assert {t: f.state for t, f in shown.items()} == {
        "Health questionnaire": "outstanding",
        "Consent to treatment": "outstanding",
        "Before your visit": "outstanding",
    }
    questionnaire = shown["Health questionnaire"].id
    with db.write() as session:
        view = home.open_form(session, world.patient_id, questionnaire, client_address="192.0.2.4")
    assert view.kind == "questionnaire" and [q["key"] for q in view.questions][0] == "allergies"
    with db.write() as session, pytest.raises(ValidationError, match="Skin type"):
        home.answer_form(
            session, world.patient_id, questionnaire, forms.Answer({"allergies": "x", "skin": "IX"})
        )
    with db.write() as session:
        done = home.answer_form(
            session,
            world.patient_id,
            questionnaire,
            forms.Answer({"allergies": "Penicillin", "skin": "II"}, client_address="192.0.2.4"),
        )
    assert "answers have been sent" in done

    consent = shown["Consent to treatment"].id
    today = to_local(utcnow(), TZ).date()
    with db.write() as session, pytest.raises(ValidationError, match="full name"):
        home.answer_form(
            session, world.patient_id, consent, forms.Answer(signed_name="Alex", signed_on=today)
        )
    with db.write() as session, pytest.raises(ValidationError, match="today's date"):
        home.answer_form(
            session,
            world.patient_id,
            consent,
            forms.Answer(signed_name="Alex Morgan", signed_on=date(2020, 1, 1)),
        )
    with db.write() as session:
        home.answer_form(
            session,
            world.patient_id,
            consent,
            forms.Answer(signed_name=" alex   Morgan", signed_on=today, client_address="192.0.2.4"),
        )
    with db.write() as session:
        instructions = shown["Before your visit"].id
        assert home.open_form(session, world.patient_id, instructions).body.startswith("No make")
        home.answer_form(session, world.patient_id, instructions, forms.Answer())

    # The staff's appointment and Today show it as they show a link's answer.
    with db.write() as session:
        rows = {r.kind: r for r in records.forms_of(session, world.staff, appointment_id)}
        summary = records.form_summaries(session, world.staff, [appointment_id])
        answers = records.read_answers(session, world.manager, rows["Questionnaire"].id)
        signed = records.read_answers(session, world.manager, rows["Consent"].id)
    assert {k: r.state for k, r in rows.items()} == {
        "Questionnaire": "answered",
        "Consent": "signed",
        "Instructions": "read",
    }
    assert summary[appointment_id] == "1 answered · 1 read · 1 signed"
    assert answers.answers == [("Any allergies?", "Penicillin"), ("Skin type", "II")]
    assert "alex Morgan" in rows["Consent"].signed and "192.0.2.4" in rows["Consent"].signed
    assert signed.signed.startswith("Signed by alex Morgan on ")
    after = portal_forms(db, world.patient_id, appointment_id)
    assert {t: f.state for t, f in after.items()} == {
        "Health questionnaire": "answered",
        "Consent to treatment": "signed",
        "Before your visit": "read",
    }
    # Audited like the link, and the emailed links work no more.
    details = completed_details(db)
    assert [(d["kind"], d["via"], d["client_address"]) for d in details] == [
        ("questionnaire", "portal", "192.0.2.4"),
        ("consent", "portal", "192.0.2.4"),
        ("instructions", "portal", None),
    ]
    with db.read() as session:
        opened = session.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "form_opened")
        ).all()
    assert [(d["form_id"], d["via"]) for d in opened] == [
        (questionnaire, "portal"),
        (instructions, "portal"),
    ]
    for raw in emailed.values():
        with db.write() as session, pytest.raises(ValidationError, match="already. Thank you"):
            forms.open_form(session, raw)


def test_the_portal_refuses_another_patients_form_like_an_unknown_one(db, world):
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    with db.write() as session:
        other = make_patient(session, first_name="Sam", email="sam@example.org").id
    enrol(db, world.patient_id)
    enrol(db, other)
    theirs = portal_forms(db, world.patient_id, appointment_id)["Consent to treatment"].id
    today = to_local(utcnow(), TZ).date()
    refusals = []
    for form_id in (theirs, 987654):
        with db.write() as session, pytest.raises(NotFound) as opened:
            home.open_form(session, other, form_id)
        with db.write() as session, pytest.raises(NotFound) as answered:
            home.answer_form(
                session, other, form_id, forms.Answer(signed_name="Sam Morgan", signed_on=today)
            )
        refusals.append((str(opened.value), str(answered.value)))
    assert refusals[0] == refusals[1] == (forms.NO_SUCH_FORM, forms.NO_SUCH_FORM)
    with db.read() as session:
        touched = select(func.count()).where(
            AuditEvent.action.in_(("form_opened", "form_completed"))
        )
        assert session.scalar(touched) == 0
        assert {r.state for r in records.forms_of(session, world.staff, appointment_id)} == {
            "outstanding"
        }
    with db.read() as session:
        assert not home.home(session, other).upcoming


def test_a_form_is_answered_once_whether_from_the_portal_or_the_link(db, world):
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    enrol(db, world.patient_id)
    emailed = links(db, appointment_id)
    shown = portal_forms(db, world.patient_id, appointment_id)
    questionnaire = shown["Health questionnaire"].id
    first = forms.Answer({"allergies": "None"})
    with db.write() as session:
        home.answer_form(session, world.patient_id, questionnaire, first)
    for again in (first, forms.Answer({"allergies": "Latex"})):
        with db.write() as session, pytest.raises(ValidationError, match="answered already"):
            home.answer_form(session, world.patient_id, questionnaire, again)
    with db.write() as session, pytest.raises(ValidationError, match="answered already"):
        home.open_form(session, world.patient_id, questionnaire)
    with db.write() as session, pytest.raises(ValidationError, match="answered already"):
        forms.submit_form(session, emailed["Health questionnaire"], answers={"allergies": "Latex"})

    # Signed through the emailed link first: the portal then refuses it too.
    today = to_local(utcnow(), TZ).date()
    with db.write() as session:
        forms.submit_form(
            session, emailed["Consent to treatment"], signed_name="Alex Morgan", signed_on=today
        )
    consent = shown["Consent to treatment"].id
    with db.write() as session, pytest.raises(ValidationError, match="signed already"):
        home.answer_form(
            session,
            world.patient_id,
            consent,
            forms.Answer(signed_name="Alex Morgan", signed_on=today),
        )
    with db.read() as session:
        form = session.get(FormRequest, questionnaire)
        assert form.answers == {"allergies": "None"}
    assert [(d["kind"], d["via"]) for d in completed_details(db)] == [
        ("questionnaire", "portal"),
        ("consent", "link"),
    ]


def test_the_portal_closes_the_forms_of_a_cancelled_appointment(db, world):
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    enrol(db, world.patient_id)
    form_id = portal_forms(db, world.patient_id, appointment_id)["Before your visit"].id
    with db.write() as session:
        moves.cancel_appointment(session, world.manager, appointment_id, reason="Provider ill")
    with db.write() as session, pytest.raises(ValidationError, match="forms are closed"):
        home.answer_form(session, world.patient_id, form_id, forms.Answer())


def test_the_signing_date_is_asked_for_in_the_clinics_locale(db, world):
    with db.write() as session:
        clinic = session.get(Clinic, world.clinic_id)
        clinic.timezone, clinic.locale = "America/New_York", "en-US"
    add_documents(db, world)
    appointment_id = book(db, world, hour=15)  # 10:00 in New York
    send(db)
    raw = links(db, appointment_id)["Consent to treatment"]
    today = to_local(utcnow(), "America/New_York").date()
    with db.write() as session, pytest.raises(ValidationError) as refused:
        forms.submit_form(session, raw, signed_name="Alex Morgan", signed_on=date(2020, 1, 1))
    assert f"today's date ({today:%b} {today.day}, {today.year})" in str(refused.value)


@pytest.mark.parametrize("end", ["cancel", "decline", "no_show"])
def test_a_form_link_refuses_once_its_appointment_is_cancelled_or_missed(db, world, end):
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    raw = links(db, appointment_id)["Consent to treatment"]
    with db.write() as session:
        row = session.get(Appointment, appointment_id)
        row.status = {
            "cancel": AppointmentStatus.CANCELLED,
            "decline": AppointmentStatus.DECLINED,
            "no_show": AppointmentStatus.NO_SHOW,
        }[end]
    for act in (
        lambda session: forms.open_form(session, raw),
        lambda session: forms.submit_form(
            session, raw, signed_name="Alex Morgan", signed_on=to_local(utcnow(), TZ).date()
        ),
    ):
        with db.write() as session, pytest.raises(ValidationError, match="forms are closed"):
            act(session)
    with db.read() as session:
        consent = session.scalar(
            select(FormRequest).where(FormRequest.kind == DocumentKind.CONSENT)
        )
        assert consent.completed_at is None and consent.signed_name is None


def questionnaire_answers(db) -> dict | None:
    with db.read() as session:
        return session.scalar(
            select(FormRequest.answers).where(FormRequest.kind == DocumentKind.QUESTIONNAIRE)
        )


def test_the_same_link_sent_twice_says_the_form_was_answered_and_keeps_the_first(db, world):
    """Two tabs, or a press that seemed not to work: the second send is told why, in words."""
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    raw = links(db, appointment_id)["Health questionnaire"]
    with db.write() as session:  # both tabs opened the form
        forms.open_form(session, raw)
        forms.open_form(session, raw)
    with db.write() as session:
        forms.submit_form(session, raw, answers={"allergies": "Penicillin"})
    with db.write() as session, pytest.raises(ValidationError) as second:
        forms.submit_form(session, raw, answers={"allergies": "Latex"})
    assert str(second.value) == "This questionnaire was answered already. Thank you!"
    assert questionnaire_answers(db) == {"allergies": "Penicillin"}
    today = to_local(utcnow(), TZ).date()
    signed = {"signed_name": "Alex Morgan", "signed_on": today}
    consent = links(db, appointment_id)["Consent to treatment"]
    with db.write() as session:
        forms.submit_form(session, consent, **signed)
    for act in (forms.open_form, lambda s, raw: forms.submit_form(s, raw, **signed)):
        with db.write() as session, pytest.raises(ValidationError, match="signed already"):
            act(session, consent)
    # a link that never was one still reveals nothing
    with db.write() as session, pytest.raises(LinkInvalid):
        forms.open_form(session, raw[:-2] + ("AA" if not raw.endswith("AA") else "BB"))


def test_typed_answers_are_kept_as_typed_and_a_too_long_one_is_refused_whole(db, world):
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    raw = links(db, appointment_id)["Health questionnaire"]
    with db.write() as session, pytest.raises(ValidationError) as long:
        forms.submit_form(session, raw, answers={"allergies": "pollen " * 1500})
    assert "answer to “Any allergies?” is too long" in str(long.value)
    assert "10,499 characters where at most 4,000 fit" in str(long.value)
    assert questionnaire_answers(db) is None  # nothing half-written; the link still works
    typed = "Pollen 🌼 **bold** <b>x</b> [a](http://x) # not a heading\nحساسية من البنسلين"
    with db.write() as session:
        forms.submit_form(
            session, raw, answers={"allergies": f"  {typed}\u202e\x00  ", "pregnant": "no"}
        )
    assert questionnaire_answers(db) == {"allergies": typed, "pregnant": "no"}
    with db.read() as session:
        rows = records.forms_of(session, world.staff, appointment_id)
        row = next(r for r in rows if r.kind == "Questionnaire")
    with db.write() as session:
        shown = records.read_answers(session, world.manager, row.id)
    assert shown.answers == [("Any allergies?", typed), ("Pregnant?", "no")]


@pytest.mark.parametrize("typed", ["nan", "inf", "-Infinity", "1e400", "twelve", True])
def test_a_number_answer_is_a_real_number(db, world, typed):
    with db.write() as session:
        session.add(
            ServiceDocument(
                service_id=world.service_id,
                kind=DocumentKind.QUESTIONNAIRE,
                title="Measurements",
                questions=[{"key": "weight", "label": "Weight (kg)", "type": "number"}],
            )
        )
    appointment_id = book(db, world)
    send(db)
    raw = links(db, appointment_id)["Measurements"]
    with db.write() as session, pytest.raises(ValidationError, match=r"number for: Weight \(kg\)"):
        forms.submit_form(session, raw, answers={"weight": typed})
    with db.write() as session:
        forms.submit_form(session, raw, answers={"weight": " 71.5 "})
    assert questionnaire_answers(db) == {"weight": 71.5}


def test_an_edited_document_goes_to_new_bookings_and_not_again_to_one_that_had_it(db, world):
    add_documents(db, world)
    first = book(db, world)
    send(db)
    sent = links(db, first)
    today = to_local(utcnow(), TZ).date()
    with db.write() as session:
        forms.submit_form(
            session, sent["Consent to treatment"], signed_name="Alex Morgan", signed_on=today
        )
    with db.write() as session:
        for kind, title, body, questions in (
            (DocumentKind.CONSENT, "Consent to treatment", "New wording.", None),
            (
                DocumentKind.QUESTIONNAIRE,
                "Health questionnaire",
                "",
                [{"key": "meds", "label": "Any medication?", "type": "text", "required": True}],
            ),
        ):
            documents.save_document(
                session, world.owner, world.service_id, kind, title, body, questions
            )
    assert send(db) == 0  # neither the signed consent nor the open questionnaire again
    with db.read() as session:
        mails = select(func.count()).where(Notification.template == "forms_to_complete")
        assert session.scalar(mails) == 2  # the one email, by email and text message
        versions = dict(
            session.execute(
                select(FormRequest.kind, ServiceDocument.version)
                .join(ServiceDocument, ServiceDocument.id == FormRequest.document_id)
                .where(FormRequest.appointment_id == first)
            ).all()
        )
    assert versions == {
        DocumentKind.QUESTIONNAIRE: 1,
        DocumentKind.CONSENT: 1,
        DocumentKind.INSTRUCTIONS: 1,
    }
    # the open questionnaire still asks what the patient was sent, and is answered as such
    with db.write() as session:
        view = forms.open_form(session, sent["Health questionnaire"])
        assert [q["key"] for q in view.questions] == ["allergies", "pregnant", "skin"]
        forms.submit_form(session, sent["Health questionnaire"], answers={"allergies": "None"})
    second = book(db, world, hour=14)
    assert send(db) == 3
    assert links(db, second)["Consent to treatment"] != sent["Consent to treatment"]
    with db.read() as session:
        rows = records.forms_of(session, world.staff, second)
        kept = records.forms_of(session, world.staff, first)
    assert {(r.kind, r.version) for r in rows} >= {("Consent", 2), ("Questionnaire", 2)}
    assert {(r.kind, r.version, r.state) for r in kept} == {
        ("Questionnaire", 1, "answered"),
        ("Consent", 1, "signed"),
        ("Instructions", 1, "outstanding"),
    }


def test_a_form_link_keeps_working_until_the_moved_visit_and_no_longer(db, world):
    """Sent for Thursday, moved three weeks on: the link lived until the day after Thursday."""
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    raw = links(db, appointment_id)["Before your visit"]
    with db.write() as session:
        moves.reschedule(
            session,
            world.manager,
            appointment_id,
            start_at=local_to_utc(DAY + timedelta(days=21), time(10), TZ),
        )
    expired = LinkToken.token_hash == tokens.hash_token(raw)
    with db.write() as session:  # as it stands once the first Thursday is over
        session.execute(update(LinkToken).where(expired).values(expires_at=utcnow()))
    with db.write() as session:
        assert forms.open_form(session, raw).title == "Before your visit"
    # not once the visit it moved to is over
    with db.write() as session:
        session.get(Appointment, appointment_id).start_at = utcnow() - timedelta(days=1, minutes=1)
    with db.write() as session, pytest.raises(LinkInvalid):
        forms.open_form(session, raw)


def test_appointments_without_forms_to_send_do_not_hold_up_those_with_some(db, world):
    """The job takes the first BATCH appointments that have a document not sent yet. Visits of
    a service without documents, booked earlier in the day, are not among them."""
    add_documents(db, world)
    with db.write() as session:
        plain = Service(name="Check-up", duration_minutes=15)
        session.add(plain)
        session.flush()
        for hour in (8, 9, 10, 11):
            session.add(
                Appointment(
                    clinic_id=world.clinic_id,
                    provider_id=world.provider_id,
                    patient_id=world.patient_id,
                    service_id=plain.id,
                    status=AppointmentStatus.SCHEDULED,
                    start_at=local_to_utc(DAY, time(hour), TZ),
                    end_at=local_to_utc(DAY, time(hour, 15), TZ),
                )
            )
    needs_forms = book(db, world, hour=14)
    with db.read() as session:
        due = forms.due_for_forms(session, limit=3)
    assert [a.id for a in due] == [needs_forms]


def test_a_consent_is_signed_with_the_name_as_a_phone_types_it(db, world):
    """iPhones turn ' into ’ as one types; an import may store José decomposed (e + accent)."""
    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        patient.first_name = unicodedata.normalize("NFD", "José")
        patient.last_name = "O'Brien"
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    raw = links(db, appointment_id)["Consent to treatment"]
    today = to_local(utcnow(), TZ).date()
    for wrong in ("José", "José Brien", "   "):
        with db.write() as session, pytest.raises(ValidationError, match="type your full name"):
            forms.submit_form(session, raw, signed_name=wrong, signed_on=today)
    with db.write() as session:
        forms.submit_form(session, raw, signed_name="  josé  O’Brien ", signed_on=today)
    with db.read() as session:
        consent = session.scalar(
            select(FormRequest).where(FormRequest.kind == DocumentKind.CONSENT)
        )
    assert consent.signed_name == "josé O’Brien"  # as typed, spaces tidied


def at_once(db, *acts) -> list[str]:
    """Each act in its own transaction, started together: what each said (or was refused)."""
    outcomes: list[str] = []
    start = threading.Barrier(len(acts))

    def attempt(act) -> None:
        start.wait()
        try:
            with db.write() as session:
                outcomes.append(act(session))
        except ValidationError as refused:
            outcomes.append(str(refused))

    threads = [threading.Thread(target=attempt, args=(act,)) for act in acts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == len(acts), outcomes
    return outcomes


def test_the_same_form_sent_twice_at_once_stores_one_answer_and_tells_the_other(db, world):
    """A double press, or the link and the portal at the same moment (PostgreSQL races)."""
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    enrol(db, world.patient_id)
    emailed = links(db, appointment_id)
    questionnaire = portal_forms(db, world.patient_id, appointment_id)["Health questionnaire"].id
    today = to_local(utcnow(), TZ).date()
    races = {
        "Health questionnaire": (
            lambda s: forms.submit_form(
                s, emailed["Health questionnaire"], answers={"allergies": "A"}
            ),
            lambda s: home.answer_form(
                s, world.patient_id, questionnaire, forms.Answer({"allergies": "B"})
            ),
        ),
        "Consent to treatment": tuple(
            lambda s: forms.submit_form(
                s, emailed["Consent to treatment"], signed_name="Alex Morgan", signed_on=today
            )
            for _ in range(2)
        ),
    }
    for title, attempts in races.items():
        outcomes = at_once(db, *attempts)
        done = "answered" if title == "Health questionnaire" else "signed"
        assert sum("Thank you: your" in o for o in outcomes) == 1, outcomes
        assert sum(f"{done} already. Thank you!" in o for o in outcomes) == 1, outcomes
    assert len(completed_details(db)) == 2


def test_the_link_and_the_portal_answering_at_once_never_deadlock(db, world, monkeypatch):
    """The emailed link's answer took the link's token first and the form after; the portal's
    answer took the form first and the token after (to revoke the link). Interleaved, each
    waited for the other: PostgreSQL broke the deadlock by failing one with a database error
    (seen once in a full run). Here the link's answer holds its token until the portal's
    answer is seen waiting: one answer is stored and the other told, nothing fails."""
    from core.kernel import tokens as kernel_tokens
    from tests.support.locks import wait_until_a_writer_waits

    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    enrol(db, world.patient_id)
    raw = links(db, appointment_id)["Health questionnaire"]
    questionnaire = portal_forms(db, world.patient_id, appointment_id)["Health questionnaire"].id
    consume, holding = kernel_tokens.consume, threading.Event()

    def consume_then_hold(session, token):
        consume(session, token)
        holding.set()
        wait_until_a_writer_waits(db)  # the portal's answer waits on a lock we hold

    monkeypatch.setattr(kernel_tokens, "consume", consume_then_hold)
    outcomes: list[str] = []

    def answer(act) -> None:
        try:
            with db.write() as session:
                outcomes.append(act(session))
        except ValidationError as refused:
            outcomes.append(str(refused))
        except Exception as failed:  # noqa: BLE001 - the deadlock, reported below
            outcomes.append(f"failed: {type(failed).__name__}")

    link = threading.Thread(
        target=answer, args=(lambda s: forms.submit_form(s, raw, answers={"allergies": "A"}),)
    )
    link.start()
    assert holding.wait(10)
    portal = threading.Thread(
        target=answer,
        args=(
            lambda s: home.answer_form(
                s, world.patient_id, questionnaire, forms.Answer({"allergies": "B"})
            ),
        ),
    )
    portal.start()
    link.join(30)
    portal.join(30)
    assert sorted(outcomes) == [
        "Thank you: your answers have been sent to the practice.",
        forms.already_done(DocumentKind.QUESTIONNAIRE),
    ], outcomes


def test_a_resend_pressed_while_the_answer_is_stored_is_refused(db, world):
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    raw = links(db, appointment_id)["Health questionnaire"]
    with db.read() as session:
        form_id = session.scalar(
            select(FormRequest.id).where(FormRequest.kind == DocumentKind.QUESTIONNAIRE)
        )
    outcome: list[str] = []

    def resend() -> None:  # the front desk presses Resend as the patient sends
        try:
            with db.write() as session:
                forms.resend(session, world.staff, form_id, base_url="https://desk.test")
            outcome.append("sent")
        except ValidationError as refused:
            outcome.append(str(refused))

    with db.write() as session:
        forms.submit_form(session, raw, answers={"allergies": "None"})
        desk = threading.Thread(target=resend)
        desk.start()
        wait_until_a_writer_waits(db)
    desk.join()
    assert outcome == ["This form was answered already; there is nothing to resend."]
    with db.read() as session:
        assert session.get(FormRequest, form_id).times_sent == 1


def test_a_resend_with_no_channel_left_is_refused_and_the_link_sent_before_still_works(db, world):
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    raw = links(db, appointment_id)["Consent to treatment"]
    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        patient.consent_email = patient.consent_sms = False  # withdrawn since
        form_id = session.scalar(
            select(FormRequest.id).where(FormRequest.kind == DocumentKind.CONSENT)
        )
    with db.write() as session, pytest.raises(ValidationError) as refused:
        forms.resend(session, world.staff, form_id, base_url="https://desk.test")
    assert str(refused.value).startswith("The form cannot be sent to Alex Morgan: no consent to")
    assert str(refused.value).endswith("the link sent before still works.")
    with db.write() as session:
        assert forms.open_form(session, raw).title == "Consent to treatment"
        assert session.get(FormRequest, form_id).times_sent == 1


def test_forms_that_reached_no_channel_say_so_until_they_are_sent(db, world):
    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        patient.consent_email = patient.consent_sms = False
    add_documents(db, world)
    appointment_id = book(db, world)
    assert send(db) == 3  # recorded, so the job does not try again every run
    with db.read() as session:
        rows = records.forms_of(session, world.staff, appointment_id)
    assert {r.not_sent for r in rows} == {"no consent to email; no consent to text messages"}
    with db.write() as session:
        session.get(Patient, world.patient_id).consent_email = True
    consent = next(r for r in rows if r.kind == "Consent")
    with db.write() as session:
        forms.resend(session, world.staff, consent.id, base_url="https://desk.test")
    with db.read() as session:
        after = {r.kind: r.not_sent for r in records.forms_of(session, world.staff, appointment_id)}
    assert after == {
        "Consent": "",
        "Questionnaire": "no consent to email; no consent to text messages",
        "Instructions": "no consent to email; no consent to text messages",
    }


# ---------------------------------------------------------------- a visit's forms behind one link


def texted(db, appointment_id) -> str:
    """The latest forms text message of the appointment."""
    with db.read() as session:
        return session.scalar(
            select(Notification.body)
            .where(
                Notification.appointment_id == appointment_id,
                Notification.template == "forms_to_complete",
                Notification.channel == "sms",
            )
            .order_by(Notification.id.desc())
            .limit(1)
        )


def list_link(db, appointment_id) -> str:
    """The raw token of the text's one link to the visit's forms."""
    return re.search(r"p=visit_forms&t=(\S+)", texted(db, appointment_id)).group(1)


def listed(db, raw) -> dict[str, str]:
    with db.read() as session:
        return {f.title: f.state for f in forms.visit_forms(session, raw).forms}


def form_id(db, kind: DocumentKind, appointment_id: int) -> int:
    with db.read() as session:
        return session.scalar(
            select(FormRequest.id).where(
                FormRequest.kind == kind, FormRequest.appointment_id == appointment_id
            )
        )


def test_a_text_carries_one_link_to_the_visits_forms_and_the_email_one_for_each(db, world):
    """A Polish clinic and patient send the text in UCS-2: before, its three forms' links went
    in seven parts; now one link to the visit's list (a token stored hashed, for the visit,
    expiring with the forms' links, not single-use) keeps it within three."""
    with db.write() as session:
        clinic = session.get(Clinic, world.clinic_id)
        clinic.name = "Łódzkie Centrum Dermatologii i Medycyny Estetycznej Śródmieście"
        patient = session.get(Patient, world.patient_id)
        patient.first_name, patient.last_name = "Łucja", "Żółkiewska-Brzęczyszczykiewicz"
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    assert len(links(db, appointment_id)) == 3  # the email: a link for each form
    text = texted(db, appointment_id)
    assert re.findall(r"https?://\S+", text) == [
        f"https://desk.test/patient?p=visit_forms&t={list_link(db, appointment_id)}"
    ]
    assert "Your 3 forms: https://" in text and sms_parts.parts(text).count <= 3, text
    raw = list_link(db, appointment_id)
    with db.read() as session:
        token = session.scalar(select(LinkToken).where(LinkToken.purpose == "visit_forms"))
        form_token = session.get(LinkToken, session.scalar(select(FormRequest.token_id)))
    assert token.token_hash == tokens.hash_token(raw) != raw
    assert (token.subject_id, token.single_use) == (appointment_id, False)
    assert abs(token.expires_at - form_token.expires_at) < timedelta(seconds=5)


def test_one_form_or_no_text_keeps_a_link_for_each_form_and_no_list(db, world):
    def document(kind: DocumentKind, title: str) -> None:
        with db.write() as session:
            session.add(
                ServiceDocument(service_id=world.service_id, kind=kind, title=title, body="Read.")
            )

    document(DocumentKind.CONSENT, "Consent to treatment")
    first = book(db, world)
    send(db)
    assert re.fullmatch(
        r"Consent: Consent to treatment: https://desk\.test/patient\?p=form&t=\S+",
        texted(db, first).splitlines()[-1],
    )
    with db.write() as session:  # an email alone: a link for each form, as before
        session.get(Patient, world.patient_id).consent_sms = False
    document(DocumentKind.QUESTIONNAIRE, "Health questionnaire")
    document(DocumentKind.INSTRUCTIONS, "Before your visit")
    second = book(db, world, hour=14)
    send(db)
    assert len(links(db, second)) == 3 and texted(db, second) is None
    with db.read() as session:
        assert session.scalar(select(LinkToken).where(LinkToken.purpose == "visit_forms")) is None


def test_the_visits_forms_link_lists_them_and_each_opens_and_is_answered_once(db, world):
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    raw = list_link(db, appointment_id)
    emailed = links(db, appointment_id)
    with db.read() as session:
        shown = forms.visit_forms(session, raw)
    assert (shown.first_name, shown.clinic) == ("Alex", "Test Clinic")
    assert shown.when.startswith("Thu") and "10:00" in shown.when
    assert [(f.kind_word, f.title, f.state) for f in shown.forms] == [  # as the email
        ("Consent", "Consent to treatment", "outstanding"),
        ("Instructions", "Before your visit", "outstanding"),
        ("Questionnaire", "Health questionnaire", "outstanding"),
    ]
    questionnaire = form_id(db, DocumentKind.QUESTIONNAIRE, appointment_id)
    with db.write() as session:
        view = forms.open_listed_form(session, raw, questionnaire, client_address="192.0.2.8")
    assert view.title == "Health questionnaire" and view.questions[0]["key"] == "allergies"
    with db.write() as session, pytest.raises(ValidationError, match="Any allergies"):
        forms.submit_listed_form(session, raw, questionnaire, forms.Answer({"allergies": " "}))
    with db.write() as session:
        done = forms.submit_listed_form(
            session,
            raw,
            questionnaire,
            forms.Answer({"allergies": "Penicillin"}, client_address="192.0.2.8"),
        )
    assert "answers have been sent" in done
    # once: not again from the list, nor from its own link (which the answer revoked)
    for act in (
        lambda s: forms.submit_listed_form(s, raw, questionnaire, forms.Answer({"allergies": "B"})),
        lambda s: forms.open_listed_form(s, raw, questionnaire),
        lambda s: forms.open_form(s, emailed["Health questionnaire"]),
    ):
        with db.write() as session, pytest.raises(ValidationError, match="answered already"):
            act(session)
    assert questionnaire_answers(db) == {"allergies": "Penicillin"}
    # a form done through its own link is shown done; the list link keeps working
    today = to_local(utcnow(), TZ).date()
    with db.write() as session:
        forms.submit_form(
            session, emailed["Consent to treatment"], signed_name="Alex Morgan", signed_on=today
        )
    assert listed(db, raw) == {
        "Health questionnaire": "answered",
        "Consent to treatment": "signed",
        "Before your visit": "outstanding",
    }
    instructions = form_id(db, DocumentKind.INSTRUCTIONS, appointment_id)
    with db.write() as session:
        assert forms.open_listed_form(session, raw, instructions).body == "No make-up on the day."
        forms.submit_listed_form(session, raw, instructions, forms.Answer())
    assert listed(db, raw)["Before your visit"] == "read"
    with db.read() as session:
        opened = session.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "form_opened")
        ).all()
    assert [(d["form_id"], d["via"]) for d in opened] == [
        (questionnaire, "visit link"),
        (instructions, "visit link"),
    ]
    assert opened[0]["client_address"] == "192.0.2.8"
    assert [(d["kind"], d["via"]) for d in completed_details(db)] == [
        ("questionnaire", "visit link"),
        ("consent", "link"),
        ("instructions", "visit link"),
    ]


def test_a_visits_forms_link_opens_nothing_its_forms_links_did_not(db, world):
    """Another visit's form (the same patient's), a form link's token or any made-up text:
    refused as an unknown form or link, nothing opened."""
    add_documents(db, world)
    first = book(db, world)
    second = book(db, world, hour=14)
    send(db)
    raw = list_link(db, first)
    others = form_id(db, DocumentKind.CONSENT, second)
    for act in (
        lambda s: forms.open_listed_form(s, raw, others),
        lambda s: forms.submit_listed_form(s, raw, others, forms.Answer()),
        lambda s: forms.open_listed_form(s, raw, "1"),
    ):
        with db.write() as session, pytest.raises(NotFound, match="no such form"):
            act(session)
    consent = links(db, first)["Consent to treatment"]
    for wrong in (
        lambda s: forms.visit_forms(s, consent),
        lambda s: forms.open_listed_form(s, consent, form_id(db, DocumentKind.CONSENT, first)),
        lambda s: forms.open_form(s, raw),
        lambda s: forms.visit_forms(s, raw[:-2] + ("AA" if not raw.endswith("AA") else "BB")),
    ):
        with db.write() as session, pytest.raises(LinkInvalid):
            wrong(session)
    with db.read() as session:
        assert session.scalar(select(func.count()).where(AuditEvent.action == "form_opened")) == 0


@pytest.mark.parametrize("end", ["cancel", "no_show"])
def test_a_visits_forms_link_of_a_cancelled_or_missed_visit_says_its_forms_are_closed(
    db, world, end
):
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    raw = list_link(db, appointment_id)
    consent = form_id(db, DocumentKind.CONSENT, appointment_id)
    with db.write() as session:
        if end == "cancel":
            moves.cancel_appointment(session, world.manager, appointment_id, reason="Provider ill")
        else:
            session.get(Appointment, appointment_id).status = AppointmentStatus.NO_SHOW
    today = to_local(utcnow(), TZ).date()
    for act in (
        lambda s: forms.visit_forms(s, raw),
        lambda s: forms.open_listed_form(s, raw, consent),
        lambda s: forms.submit_listed_form(
            s, raw, consent, forms.Answer(signed_name="Alex Morgan", signed_on=today)
        ),
    ):
        with db.write() as session, pytest.raises(ValidationError, match="forms are closed"):
            act(session)
    with db.read() as session:
        assert session.get(FormRequest, consent).completed_at is None


def test_a_visits_forms_link_shows_the_moved_visits_time_until_it_is_over(db, world):
    """Sent for Thursday, moved three weeks on: the list shows the new time and works until a
    day after it, as a form's own link does."""
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    raw = list_link(db, appointment_id)
    later = DAY + timedelta(days=21)
    with db.write() as session:
        moves.reschedule(
            session, world.manager, appointment_id, start_at=local_to_utc(later, time(11), TZ)
        )
    expired = LinkToken.token_hash == tokens.hash_token(raw)
    with db.write() as session:  # as it stands once the first Thursday is over
        session.execute(update(LinkToken).where(expired).values(expires_at=utcnow()))
    with db.read() as session:
        shown = forms.visit_forms(session, raw)
    assert f"{later.day} " in shown.when and "11:00" in shown.when
    assert len(shown.forms) == 3
    with db.write() as session:
        session.get(Appointment, appointment_id).start_at = utcnow() - timedelta(days=1, minutes=1)
    with db.write() as session, pytest.raises(LinkInvalid):
        forms.visit_forms(session, raw)


def test_a_visits_forms_link_goes_a_month_after_it_expired_and_the_forms_links_stay(db, world):
    """No row points at it (core.kernel.tokens.PRUNABLE): housekeeping deletes it as it does a
    reminder's confirm link; the forms' own links stay while their forms point at them."""
    add_documents(db, world)
    appointment_id = book(db, world)
    send(db)
    raw = list_link(db, appointment_id)
    book(db, world, hour=14)  # its links are newer (housekeeping never deletes the newest)
    listed_or_form = LinkToken.purpose.in_(["visit_forms", "form"])
    with db.write() as session:
        session.execute(
            update(LinkToken).where(listed_or_form).values(expires_at=utcnow() - timedelta(days=31))
        )
        session.get(Appointment, appointment_id).start_at = utcnow() - timedelta(days=32)
    with db.write() as session:
        assert housekeeping.sweep(session, utcnow(), housekeeping.BATCH).changed["link_tokens"] == 1
    with db.read() as session:
        kept = session.scalars(select(LinkToken.purpose).where(listed_or_form)).all()
    assert kept == ["form"] * 3
    with db.write() as session, pytest.raises(LinkInvalid):
        forms.visit_forms(session, raw)
