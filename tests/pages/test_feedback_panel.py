"""The feedback widget on the appointment page (AppTest, demo database): Collect feedback sends
the survey link once a day, the state reads pending, and consent is respected."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from core.kernel.config import load_settings
from core.startup import open_database
from db.models import (
    Appointment,
    AppointmentStatus,
    FeedbackRequest,
    FeedbackStatus,
    Notification,
    Patient,
)


def _db(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def completed_visit(url, *, consent: bool) -> int:
    db = _db(url)
    with db.read() as session:
        consented = Patient.consent_email.is_(True) & Patient.email.is_not(None)
        found = session.scalar(
            select(Appointment.id)
            .join(Patient, Patient.id == Appointment.patient_id)
            .where(
                Appointment.status == AppointmentStatus.COMPLETED,
                Appointment.feedback_status == FeedbackStatus.NONE,
                consented if consent else ~consented & ~Patient.consent_sms.is_(True),
            )
            .order_by(Appointment.start_at.desc())
            .limit(1)
        )
    db.dispose()
    return found


def open_appointment(app_as, appointment_id):
    at = app_as("staff", "app_pages/appointment.py")
    return at.text_input(key="appointment_lookup").input(str(appointment_id)).run()


def markdown(at) -> str:
    return " ".join(m.value for m in at.markdown)


def test_staff_collects_feedback_once_a_day(app_as, app_db):
    appointment_id = completed_visit(app_db, consent=True)
    at = open_appointment(app_as, appointment_id)
    assert not at.exception and "**Feedback not asked for yet**" in markdown(at)
    at.button(key=f"feedback_collect_{appointment_id}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "**Feedback asked for, not answered yet**" in markdown(at)
    assert re.fullmatch(  # the channels in words, not 'email, sms'
        r"Survey link sent by email( and text message)?\.( Not sent by: .*\.)?",
        at.success[0].value,
    )
    assert at.button(key=f"feedback_collect_{appointment_id}").disabled
    db = _db(app_db)
    with db.read() as session:
        assert session.get(Appointment, appointment_id).feedback_status == FeedbackStatus.PENDING
        email = session.scalar(
            select(Notification).where(
                Notification.appointment_id == appointment_id,
                Notification.template == "feedback_request",
            )
        )
        assert "/patient?p=survey&t=" in email.body
    db.dispose()


def test_without_consent_the_reason_is_shown_and_nothing_is_sent(app_as, app_db):
    appointment_id = completed_visit(app_db, consent=False)
    at = open_appointment(app_as, appointment_id)
    at.button(key=f"feedback_collect_{appointment_id}").click().run()
    assert "cannot be asked for feedback" in at.error[0].value
    db = _db(app_db)
    with db.read() as session:
        count = select(func.count()).select_from(FeedbackRequest)
        assert session.scalar(count.where(FeedbackRequest.appointment_id == appointment_id)) == 0
    db.dispose()


def test_no_feedback_panel_before_the_visit_is_done(app_as, app_db):
    db = _db(app_db)
    with db.read() as session:
        upcoming = session.scalar(
            select(Appointment.id)
            .where(
                Appointment.status == AppointmentStatus.SCHEDULED,
                Appointment.patient_id.is_not(None),
            )
            .limit(1)
        )
    db.dispose()
    at = open_appointment(app_as, upcoming)
    assert not at.exception and "Feedback" not in markdown(at)
