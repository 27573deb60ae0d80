"""The public survey page (app.py → app_pages/patient.py → ui/patient/survey.py) in AppTest, on a
copy of the demo database: answer, thank-you, the used link, bad answers, escaping."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core.feedback import surveys
from core.kernel import tokens
from core.kernel.authz import SYSTEM
from core.kernel.config import load_settings
from core.startup import open_database
from db.models import (
    Appointment,
    AppointmentStatus,
    FeedbackStatus,
    LinkToken,
    Patient,
    SurveyResponse,
)
from db.types import utcnow
from tests.pages.conftest import ROOT


@pytest.fixture
def database(app_db):
    db = open_database(load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40}))
    yield db
    db.dispose()


@pytest.fixture
def survey_token(database) -> tuple[str, int]:
    """A fresh feedback request on a completed demo visit of a patient who consented to email."""
    with database.write() as session:
        appointment = session.scalar(
            select(Appointment)
            .join(Patient, Patient.id == Appointment.patient_id)
            .where(
                Appointment.status == AppointmentStatus.COMPLETED,
                Appointment.feedback_status == FeedbackStatus.NONE,
                Patient.consent_email.is_(True),
                Patient.email.is_not(None),
            )
            .order_by(Appointment.start_at.desc())
            .limit(1)
        )
        sent = surveys.request_feedback(session, SYSTEM, appointment.id, base_url="http://x")
    return parse_qs(urlparse(sent.link).query)["t"][0], appointment.id


def open_link(token: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.query_params["p"] = "survey"
    at.query_params["t"] = token
    at.run()
    at.switch_page("app_pages/patient.py")
    return at.run()


def test_patient_answers_and_sees_the_thank_you_page(database, survey_token):
    token, appointment_id = survey_token
    at = open_link(token)
    assert not at.exception, at.exception
    assert at.title[0].value.startswith("How was your visit to")
    at.radio(key="survey_nps").set_value(9)
    at.radio(key="survey_rating").set_value(4)
    at.radio(key="survey_q_courtesy").set_value(5)
    at.text_area(key="survey_comment").input("<img src=x onerror=alert(1)> **bold**")
    at.button(key="FormSubmitter:survey_form-Send my answers").click().run()

    assert not at.exception and not at.error
    assert "Thank you for your feedback" in at.success[0].value
    with database.read() as session:
        response = session.scalar(
            select(SurveyResponse).where(SurveyResponse.appointment_id == appointment_id)
        )
        assert (response.nps, response.rating, response.answers) == (9, 4, {"courtesy": 5})
        assert response.comment == "<img src=x onerror=alert(1)> **bold**"
        assert session.get(Appointment, appointment_id).feedback_status == FeedbackStatus.COLLECTED

    # the link is used: another browser is told it was answered, under a heading and as
    # news, not as an error in red on a page of nothing else
    again = open_link(token)
    assert not again.exception, again.exception
    assert [t.value for t in again.title] == ["This survey is closed"]
    assert [i.value for i in again.info] == [
        "You have answered the survey for this visit already. Thank you!"
    ]
    assert not again.error and not again.radio


def test_missing_answers_are_explained_and_nothing_is_stored(database, survey_token):
    token, appointment_id = survey_token
    at = open_link(token)
    at.radio(key="survey_rating").set_value(4)
    at.button(key="FormSubmitter:survey_form-Send my answers").click().run()
    assert "recommend us, from 0 to 10" in at.error[0].value
    with database.read() as session:
        assert (
            session.scalar(
                select(SurveyResponse).where(SurveyResponse.appointment_id == appointment_id)
            )
            is None
        )


def test_expired_or_unknown_links_show_the_neutral_page(database, survey_token):
    token, _ = survey_token
    with database.write() as session:
        row = session.scalar(
            select(LinkToken).where(LinkToken.token_hash == tokens.hash_token(token))
        )
        row.expires_at = utcnow() - timedelta(minutes=1)
    for raw in (token, "made-up-token"):
        at = open_link(raw)
        assert not at.exception
        assert at.title[0].value == "This link is not valid"
