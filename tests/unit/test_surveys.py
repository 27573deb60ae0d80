"""Feedback requests and the patient's survey, against a real database (SQLite here, PostgreSQL
through tests/integration/test_surveys_pg.py)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import func, select

from core import jobs
from core.feedback import surveys
from core.kernel import tokens
from core.kernel.authz import SYSTEM
from core.kernel.config import Settings, SmtpSettings
from core.kernel.errors import (
    Conflict,
    InvalidTransition,
    LinkInvalid,
    PermissionDenied,
    ValidationError,
)
from core.messaging import delivery
from core.messaging.preferences import PreferencesForm, save_preferences
from core.policy import balance as ledger_balance
from core.portal import home
from core.scheduling import visits
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Channel,
    FeedbackRequest,
    FeedbackStatus,
    LedgerEntry,
    LedgerKind,
    LinkToken,
    Notification,
    Patient,
    Setting,
    SurveyResponse,
)
from tests.factories import make_patient
from tests.support.days import PLAIN_THURSDAY
from tests.support.locks import wait_until_a_writer_waits
from tests.support.smtp import LoopbackSMTP, text_of

BASE = "https://clinic.example"
# 10:00 in London (GMT in late November); the visit ended at 09:30
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def completed_visit(session, world, *, ended=NOW - timedelta(hours=3), patient_id=None, **extra):
    appointment = Appointment(
        clinic_id=world.clinic_id,
        provider_id=world.provider_id,
        patient_id=patient_id or world.patient_id,
        service_id=world.service_id,
        status=AppointmentStatus.COMPLETED,
        start_at=ended - timedelta(minutes=30),
        end_at=ended,
        completed_at=ended,
        **extra,
    )
    session.add(appointment)
    session.flush()
    return appointment.id


def token_of(link: str) -> str:
    return parse_qs(urlparse(link).query)["t"][0]


@pytest.fixture
def visit(db, world):
    with db.write() as session:
        return completed_visit(session, world)


def send(db, actor, appointment_id, now=NOW):
    with db.write() as session:
        return surveys.request_feedback(session, actor, appointment_id, base_url=BASE, now=now)


ANSWERS = surveys.SurveyAnswers(
    nps=9, rating=5, answers={"timely": 4, "courtesy": 5}, comment="<b>Great</b> & quick"
)


def test_request_queues_the_link_on_consented_channels_and_marks_pending(db, world, visit):
    sent = send(db, world.staff, visit)

    assert sent.channels == ["email", "sms"] and sent.skipped == []
    assert sent.link.startswith(f"{BASE}/patient?p=survey&t=")
    with db.read() as session:
        appointment = session.get(Appointment, visit)
        assert appointment.feedback_status == FeedbackStatus.PENDING
        request = session.scalar(select(FeedbackRequest))
        assert (request.appointment_id, str(request.sent_on)) == (visit, "2026-11-24")
        token = session.get(LinkToken, request.token_id)
        assert (token.purpose, token.subject_id) == ("survey", request.id)
        email = session.scalar(select(Notification).where(Notification.channel == "email"))
        assert email.template == "feedback_request" and email.to_address == "alex@example.org"
        assert sent.link in email.body and "Test Clinic" in email.subject
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "feedback_requested"))
        assert (event.from_status, event.to_status, event.actor_label) == (
            "none",
            "pending",
            "Staff",
        )


def test_consent_is_respected_and_no_channel_means_no_request(db, world):
    with db.write() as session:
        only_sms = make_patient(session, email="sms@example.org", consent_email=False).id
        nobody = make_patient(session, consent_email=False, consent_sms=False).id
        first = completed_visit(session, world, patient_id=only_sms)
        second = completed_visit(session, world, patient_id=nobody)

    assert send(db, world.staff, first).skipped == ["no consent to email"]
    with pytest.raises(ValidationError, match="no consent to email; no consent to text"):
        send(db, world.staff, second)
    with db.read() as session:
        assert session.get(Appointment, second).feedback_status == FeedbackStatus.NONE
        assert session.scalar(select(func.count()).select_from(FeedbackRequest)) == 1
        channels = session.scalars(select(Notification.channel)).all()
        assert channels == ["sms"]


def test_one_request_per_clinic_local_day_and_a_resend_the_next_day(db, world, visit):
    send(db, world.staff, visit)
    with pytest.raises(Conflict, match="already sent today at 10:00; .*tomorrow"):
        send(db, world.manager, visit, now=NOW + timedelta(hours=13))  # 23:00 same local day
    resent = send(db, world.staff, visit, now=NOW + timedelta(days=1))

    with db.read() as session:
        requests = session.scalars(select(FeedbackRequest).order_by(FeedbackRequest.id)).all()
        assert [str(r.sent_on) for r in requests] == ["2026-11-24", "2026-11-25"]
        old_token = session.get(LinkToken, requests[0].token_id)
        assert old_token.revoked_at is None  # the earlier link still answers
    with db.read() as session:
        assert surveys.open_survey(session, token_of(resent.link), now=NOW + timedelta(days=1))


def test_local_day_follows_the_clinic_time_zone(db):
    from tests.factories import build_world

    with db.write() as session:
        world = build_world(session, tz="America/New_York")
        appointment_id = completed_visit(session, world)
    late_evening = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)  # 23:00 on the 24th in New York
    send(db, world.staff, appointment_id, now=late_evening)
    with db.read() as session:
        assert str(session.scalar(select(FeedbackRequest.sent_on))) == "2026-11-24"
    with pytest.raises(Conflict):
        send(db, world.staff, appointment_id, now=late_evening + timedelta(minutes=50))
    send(db, world.staff, appointment_id, now=late_evening + timedelta(hours=1, minutes=1))


def test_only_completed_visits_and_only_until_answered(db, world):
    with db.write() as session:
        scheduled = completed_visit(session, world)
        session.get(Appointment, scheduled).status = AppointmentStatus.SCHEDULED
    with pytest.raises(InvalidTransition, match="only after the visit is completed.*is booked"):
        send(db, world.staff, scheduled)
    with db.write() as session:
        done = completed_visit(session, world)
    link = send(db, world.staff, done).link
    with db.write() as session:
        surveys.submit_survey(session, token_of(link), ANSWERS, now=NOW)
    with pytest.raises(InvalidTransition, match="already answered"):
        send(db, world.staff, done, now=NOW + timedelta(days=2))


def test_request_needs_the_feedback_permission(db, world, visit):
    from core.kernel.authz import Actor

    with pytest.raises(PermissionDenied):
        send(db, Actor(user_id=None, name="Someone"), visit)


def test_survey_is_stored_as_typed_once_and_the_clinic_is_told(db, world, visit):
    link = send(db, world.staff, visit).link
    with db.read() as session:
        form = surveys.open_survey(session, token_of(link), now=NOW)
    assert form.clinic_name == "Test Clinic" and form.provider_name == "Dr Test"
    assert form.visit == "Tue, 24 Nov 2026, 06:30"
    assert [k for k, _ in form.questions] == ["timely", "courtesy", "explained"]

    with db.write() as session:
        response_id = surveys.submit_survey(session, token_of(link), ANSWERS, now=NOW)

    with db.read() as session:
        response = session.get(SurveyResponse, response_id)
        assert (response.nps, response.rating, response.comment) == (9, 5, "<b>Great</b> & quick")
        assert response.answers == {"timely": 4, "courtesy": 5}
        assert (response.clinic_id, response.provider_id, response.service_id) == (
            world.clinic_id,
            world.provider_id,
            world.service_id,
        )
        assert session.get(Appointment, visit).feedback_status == FeedbackStatus.COLLECTED
        assert session.scalar(select(FeedbackRequest.answered_at)) == NOW
        to_clinic = session.scalar(
            select(Notification).where(Notification.template == "survey_received")
        )
        assert to_clinic.to_address == "clinic@example.org" and "recommend 9/10" in to_clinic.body
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "survey_received"))
        assert event.actor_label == "Patient Alex Morgan (link)" and event.to_status == "collected"
    for attempt in (
        lambda s: surveys.open_survey(s, token_of(link), now=NOW),
        lambda s: surveys.submit_survey(s, token_of(link), ANSWERS, now=NOW),
    ):
        with pytest.raises(ValidationError, match="^" + surveys.ANSWERED), db.write() as session:
            attempt(session)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(SurveyResponse)) == 1


def test_expired_and_wrong_links_are_refused(db, world, visit):
    link = send(db, world.staff, visit).link
    later = datetime.now(UTC) + surveys.TOKEN_TTL + timedelta(minutes=1)  # issued now
    for raw, when in ((token_of(link), later), ("not-a-token", NOW), ("", NOW)):
        with pytest.raises(LinkInvalid), db.read() as session:
            surveys.open_survey(session, raw, now=when)
    with db.write() as session:  # a token of another purpose does not open a survey
        other = tokens.issue(session, "enroll", 1, timedelta(days=1)).raw
    with pytest.raises(LinkInvalid), db.read() as session:
        surveys.open_survey(session, other, now=NOW)


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (surveys.SurveyAnswers(None, 4), "recommend us, from 0 to 10"),
        (surveys.SurveyAnswers(11, 4), "recommend us, from 0 to 10"),
        (surveys.SurveyAnswers(5, 0), "overall, from 1 to 5"),
        (surveys.SurveyAnswers(5, 3, {"timely": 6}), "from 1 to 5"),
        (surveys.SurveyAnswers(5, 4.5), "overall, from 1 to 5"),  # not stored as 4
        (surveys.SurveyAnswers("ten", 4), "recommend us, from 0 to 10"),  # not a crash
        (surveys.SurveyAnswers(5, 3, {"timely": "4"}), "from 1 to 5"),
        (surveys.SurveyAnswers(5, 3, {}, "x" * 4001), "under 4000 characters"),
    ],
)
def test_invalid_answers_are_refused_and_the_link_stays_usable(db, world, visit, answers, message):
    link = send(db, world.staff, visit).link
    with pytest.raises(ValidationError, match=message), db.write() as session:
        surveys.submit_survey(session, token_of(link), answers, now=NOW)
    with db.write() as session:
        surveys.submit_survey(session, token_of(link), ANSWERS, now=NOW)


def test_an_answer_to_a_survey_changed_while_it_was_open_is_stored(db, world, visit):
    """The patient opened the survey; the owner then took out one question and reworded
    another. Sending refused the whole answer ("The survey has changed; please reload the
    page"), and reloading the page loses every answer given: now the answers to the questions
    still asked, the recommendation, the rating and the comment are stored (and points earned)."""
    link = send(db, world.staff, visit).link
    with db.read() as session:
        shown = surveys.open_survey(session, token_of(link), now=NOW).questions
    assert [key for key, _ in shown] == ["timely", "courtesy", "explained"]
    with db.write() as session:
        surveys.save_survey_settings(
            session,
            world.owner,
            auto=True,
            delay_hours=2,
            questions=["Getting a timely appointment", "How well things were explained"],
        )
    given = {"timely": 4, "courtesy": 5, "explained": 2}  # as the form drew them
    answers = surveys.SurveyAnswers(9, 4, given, "Kind staff")
    with db.write() as session:
        response_id = surveys.submit_survey(session, token_of(link), answers, now=NOW)
    with db.read() as session:
        response = session.get(SurveyResponse, response_id)
        assert (response.nps, response.rating, response.comment) == (9, 4, "Kind staff")
        assert response.answers == {"timely": 4}
        assert session.get(Appointment, visit).feedback_status == FeedbackStatus.COLLECTED
        earned = select(func.count()).where(LedgerEntry.kind == LedgerKind.POINTS_EARNED)
        assert session.scalar(earned) == 1


def test_concurrent_double_submit_stores_one_response(db, world, visit):
    raw = token_of(send(db, world.staff, visit).link)
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def submit() -> None:
        start.wait()
        try:
            with db.write() as session:
                surveys.submit_survey(session, raw, ANSWERS)
            outcomes.append("stored")
        except ValidationError as refused:
            outcomes.append(str(refused))

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == [surveys.ANSWERED, "stored"]
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(SurveyResponse)) == 1
        assert (
            session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.template == "survey_received")
            )
            == 1
        )


def test_the_job_asks_after_the_delay_once_and_only_recent_consented_visits(db, world):
    with db.write() as session:
        too_soon = completed_visit(session, world, ended=NOW - timedelta(hours=1))
        due = completed_visit(session, world, ended=NOW - timedelta(hours=2, minutes=5))
        too_old = completed_visit(session, world, ended=NOW - timedelta(days=9))
        no_consent = make_patient(session, consent_email=False, consent_sms=False).id
        unreachable = completed_visit(session, world, patient_id=no_consent)
        collected = completed_visit(session, world, feedback_status=FeedbackStatus.COLLECTED)
    with db.read() as session:
        assert surveys.due_for_feedback(session, now=NOW) == [due]
        assert too_soon and too_old and unreachable and collected

    with db.write() as session:
        assert surveys.send_due_feedback_requests(session, base_url=BASE, now=NOW) == 1
    with db.write() as session:  # sent: not due again, not even the next day
        assert surveys.send_due_feedback_requests(session, base_url=BASE, now=NOW) == 0
        later = NOW + timedelta(days=1)
        assert surveys.due_for_feedback(session, now=later) == [too_soon]
    with db.read() as session:
        request = session.scalar(select(FeedbackRequest))
        assert request.appointment_id == due and request.created_by_user_id is None
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "feedback_requested"))
        assert event.actor_label == SYSTEM.label


def test_the_job_asks_nobody_in_the_clinics_quiet_hours(db, world):
    """A visit that ended at 19:30 is due at 21:30, inside the default quiet hours (21:00 to
    08:00, clinic time): the job waits for the morning."""
    evening = datetime(2026, 11, 24, 19, 30, tzinfo=UTC)  # London: GMT in November
    with db.write() as session:
        due = completed_visit(session, world, ended=evening)
    with db.write() as session:
        for night in ("21:35", "23:59", "07:59"):
            hour, minute = map(int, night.split(":"))
            at = evening.replace(hour=hour, minute=minute) + timedelta(days=hour < 12)
            assert surveys.due_for_feedback(session, now=at) == [], night
            assert surveys.send_due_feedback_requests(session, base_url=BASE, now=at) == 0
        morning = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
        assert surveys.due_for_feedback(session, now=morning) == [due]
        assert surveys.send_due_feedback_requests(session, base_url=BASE, now=morning) == 1


def test_settings_switch_the_job_off_change_the_delay_and_the_questions(db, world):
    with db.write() as session:
        due = completed_visit(session, world, ended=NOW - timedelta(hours=3))
    with db.write() as session:
        saved = surveys.save_survey_settings(
            session,
            world.owner,
            auto=True,
            delay_hours=4,
            questions=["Getting a timely appointment", "  Parking  ", ""],
        )
    assert saved.delay_hours == 4
    assert saved.questions == (("timely", "Getting a timely appointment"), ("parking", "Parking"))
    with db.read() as session:
        assert surveys.due_for_feedback(session, now=NOW) == []
        assert surveys.due_for_feedback(session, now=NOW + timedelta(hours=1)) == [due]
    with db.write() as session:
        surveys.save_survey_settings(
            session, world.owner, auto=False, delay_hours=2, questions=["Parking"]
        )
    with db.read() as session:
        assert surveys.due_for_feedback(session, now=NOW + timedelta(hours=1)) == []
    with pytest.raises(PermissionDenied, match="set the survey questions"), db.write() as session:
        surveys.save_survey_settings(
            session, world.manager, auto=True, delay_hours=2, questions=["Parking"]
        )
    with pytest.raises(ValidationError, match="one to eight"), db.write() as session:
        surveys.save_survey_settings(session, world.owner, auto=True, delay_hours=2, questions=[])


def test_a_new_question_never_takes_a_kept_questions_key_and_none_is_asked_twice(db, world, visit):
    """A new first question 'Courtesy' was given the key 'courtesy' that 'Courtesy of the
    staff' kept: two questions, one key, so the survey page drew two fields under one widget
    key (Streamlit refuses the page) and one answer overwrote the other."""
    with db.write() as session:
        saved = surveys.save_survey_settings(
            session,
            world.owner,
            auto=True,
            delay_hours=2,
            questions=["Courtesy", "Courtesy of the staff", "Getting a timely appointment"],
        )
    assert saved.questions == (
        ("courtesy_2", "Courtesy"),
        ("courtesy", "Courtesy of the staff"),  # as before: earlier answers stay comparable
        ("timely", "Getting a timely appointment"),
    )
    link = send(db, world.staff, visit).link
    both = surveys.SurveyAnswers(9, 5, {"courtesy_2": 2, "courtesy": 5})
    with db.write() as session:
        response_id = surveys.submit_survey(session, token_of(link), both, now=NOW)
    with db.read() as session:
        assert session.get(SurveyResponse, response_id).answers == {"courtesy_2": 2, "courtesy": 5}
    with pytest.raises(ValidationError, match="“parking” is there twice"), db.write() as session:
        surveys.save_survey_settings(
            session, world.owner, auto=True, delay_hours=2, questions=["Parking", " parking"]
        )


def test_questions_saved_with_a_shared_key_are_read_with_a_key_each(db, world):
    """Settings saved before keys were kept apart still open a survey with one field each."""
    with db.write() as session:
        row = Setting(key=surveys.SETTING_QUESTIONS)
        row.value = {
            "value": [
                {"key": "courtesy", "label": "Courtesy"},
                {"key": "courtesy", "label": "Courtesy of the staff"},
                {"key": "timely", "label": "Timely"},
            ]
        }
        session.add(row)
    with db.read() as session:
        questions = surveys.survey_settings(session).questions
    assert questions == (
        ("courtesy", "Courtesy"),
        ("courtesy_of_the_staff", "Courtesy of the staff"),
        ("timely", "Timely"),
    )


def test_survey_questions_lose_nul_and_control_characters_like_any_typed_text(db, world):
    """Questions are stored in a JSON setting, which the flush rule (core.kernel.text) does not
    see: saving them cleans them the same way (PostgreSQL would refuse a NUL in the text)."""
    with db.write() as session:
        saved = surveys.save_survey_settings(
            session,
            world.owner,
            auto=True,
            delay_hours=4,
            questions=["Park\x00ing\x07 \u202eeasy", "\x00\x1b"],
        )
    assert saved.questions == (("parking_easy", "Parking easy"),)
    with db.read() as session:
        assert surveys.survey_settings(session).questions == saved.questions


def test_periodic_job_runs_from_the_jobs_list(db, world, tmp_path):
    assert surveys.feedback_job in jobs.JOBS
    with db.write() as session:  # the job runs on the real clock: no quiet hours, any time
        quiet = PreferencesForm(quiet_start=time(0), quiet_end=time(0))
        save_preferences(session, world.owner, world.clinic_id, quiet)
        ended = datetime.now(UTC) - timedelta(hours=3)
        appointment_id = completed_visit(session, world, ended=ended)
    settings = Settings(database_url=db.url, secret_key="k" * 40, data_dir=tmp_path, base_url=BASE)
    surveys.feedback_job(db, settings)
    with db.read() as session:
        assert session.get(Appointment, appointment_id).feedback_status == FeedbackStatus.PENDING
        body = session.scalar(select(Notification.body).where(Notification.channel == "email"))
        assert f"{BASE}/patient?p=survey&t=" in body


def test_feedback_info_for_the_appointment_page(db, world, visit):
    with db.read() as session:
        info = surveys.get_feedback(session, world.staff, visit, now=NOW)
    assert (info.status, info.can_request, info.requests) == ("none", True, [])
    link = send(db, world.staff, visit).link
    with db.read() as session:
        info = surveys.get_feedback(session, world.staff, visit, now=NOW)
    assert (info.status, info.can_request, info.sent_today) == ("pending", False, True)
    assert info.requests == [("Tue, 24 Nov 2026, 10:00", False)]
    with db.write() as session:
        surveys.submit_survey(session, token_of(link), ANSWERS, now=NOW)
    with db.read() as session:
        info = surveys.get_feedback(session, world.staff, visit, now=NOW + timedelta(days=1))
    assert (info.status, info.can_request, info.nps, info.rating) == ("collected", False, 9, 5)


# ---------------------------------------------------------------- the thank-you


def complete_now(db, world, *, delay_hours: int, patient_id=None) -> int:
    """A scheduled visit that started at 09:00, completed through the life cycle at NOW."""
    with db.write() as session:
        surveys.save_survey_settings(
            session, world.owner, auto=True, delay_hours=delay_hours, questions=["Timely"]
        )
        start = NOW - timedelta(hours=1)
        appointment = Appointment(
            clinic_id=world.clinic_id,
            provider_id=world.provider_id,
            patient_id=patient_id or world.patient_id,
            service_id=world.service_id,
            status=AppointmentStatus.SCHEDULED,
            start_at=start,
            end_at=start + timedelta(minutes=30),
        )
        session.add(appointment)
        session.flush()
        visits.complete(session, world.staff, appointment.id, now=NOW)
        return appointment.id


def delivered_thank_you(db) -> str:
    """The thank-you email as the patient receives it (the real sender, a loopback server)."""
    with LoopbackSMTP() as server:
        smtp = SmtpSettings(host=server.host, port=server.port, sender="Clinic <desk@clinic.org>")
        transport = {Channel.EMAIL: delivery.SmtpTransport(smtp, timeout=5)}
        assert delivery.send_due(db.write, transport).sent == 1
        [message] = [m for m in server.messages if m["Subject"].startswith("Thank you")]
    return text_of(message)


def test_the_thank_you_carries_the_survey_link_when_the_rules_ask_at_once(db, world):
    appointment_id = complete_now(db, world, delay_hours=0)
    text = delivered_thank_you(db)
    assert "Thank you for visiting us" in text
    link = next(w for w in text.split() if "p=survey" in w)
    with db.read() as session:
        form = surveys.open_survey(session, token_of(link), now=NOW)
        appointment = session.get(Appointment, appointment_id)
        requests = session.scalars(select(FeedbackRequest)).all()
    assert form.questions == (("timely", "Timely"),)
    assert appointment.feedback_status == FeedbackStatus.PENDING
    assert len(requests) == 1 and requests[0].appointment_id == appointment_id
    with db.write() as session:  # the job sees the request: no second, separate survey email
        assert surveys.send_due_feedback_requests(session, base_url=BASE, now=NOW) == 0
        sent = session.scalars(select(Notification.template)).all()
    assert "feedback_request" not in sent
    assert sent.count("appointment_completed") == 2  # email and text, one thank-you each


def test_after_a_delay_the_thank_you_has_no_link_and_the_job_asks_later(db, world):
    appointment_id = complete_now(db, world, delay_hours=2)
    text = delivered_thank_you(db)
    assert "Thank you for visiting us" in text and "p=survey" not in text
    assert "how it went" not in text
    with db.write() as session:
        assert surveys.send_due_feedback_requests(session, base_url=BASE, now=NOW) == 0
        later = NOW + timedelta(hours=2)
        assert surveys.send_due_feedback_requests(session, base_url=BASE, now=later) == 1
        assert session.get(Appointment, appointment_id).feedback_status == FeedbackStatus.PENDING


def test_no_survey_line_without_automatic_surveys_or_consent(db, world):
    with db.write() as session:
        surveys.save_survey_settings(
            session, world.owner, auto=False, delay_hours=0, questions=["Timely"]
        )
        start = NOW - timedelta(hours=1)
        off = Appointment(
            clinic_id=world.clinic_id,
            provider_id=world.provider_id,
            patient_id=world.patient_id,
            service_id=world.service_id,
            status=AppointmentStatus.SCHEDULED,
            start_at=start,
            end_at=start + timedelta(minutes=30),
        )
        session.add(off)
        session.flush()
        visits.complete(session, world.staff, off.id, now=NOW)
        body = session.scalar(
            select(Notification.body).where(
                Notification.appointment_id == off.id, Notification.channel == Channel.EMAIL
            )
        )
    assert body.startswith("Dear") and "p=survey" not in body
    with db.write() as session:
        silent = make_patient(session, consent_email=False, consent_sms=False).id
    appointment_id = complete_now(db, world, delay_hours=0, patient_id=silent)
    with db.read() as session:
        assert session.get(Appointment, appointment_id).feedback_status == FeedbackStatus.NONE
        assert session.scalar(select(func.count()).select_from(FeedbackRequest)) == 0


def test_a_package_visits_survey_request_names_the_package(db, world):
    """A practice whose survey message names the visit ({service_name}) reads the package as
    reminders and receipts name it, not the package's first service alone."""
    from core.messaging import notify
    from db.models import AppointmentService, Package, Service

    with db.write() as session:
        notify.save_template(
            session,
            world.owner,
            "feedback_request",
            "How was {service_name}?",
            "Dear {patient_name}, how was {service_name} on {when}? {link}",
        )
        peel = Service(name="Peel", duration_minutes=30, price_cents=9000)
        glow = Package(name="Glow", price_cents=12000)
        session.add_all([peel, glow])
        session.flush()
        visit = completed_visit(session, world, package_id=glow.id)
        session.add_all(
            [
                AppointmentService(appointment_id=visit, service_id=world.service_id),
                AppointmentService(appointment_id=visit, service_id=peel.id, position=1),
            ]
        )
    send(db, world.staff, visit)
    with db.read() as session:
        email = session.scalar(select(Notification).where(Notification.channel == "email"))
    assert email.subject == "How was Glow (Consultation + Peel)?"
    assert "how was Glow (Consultation + Peel) on " in email.body


def _package_visit(session, world, name="Glow"):
    from db.models import Package

    glow = Package(name=name, price_cents=12000)
    session.add(glow)
    session.flush()
    return completed_visit(session, world, package_id=glow.id), glow.id


def test_an_answer_to_a_package_visit_records_the_package(db, world):
    """A visit booked as the package Glow (first service Consultation): its answer records
    the package beside the service, so the figures count it as Glow's, not Consultation's
    (before: no package was recorded); a visit of one service records none."""
    with db.write() as session:
        visit, glow = _package_visit(session, world)
        alone = completed_visit(session, world)
    ids = []
    for appointment_id in (visit, alone):
        link = send(db, world.staff, appointment_id).link
        with db.write() as session:
            ids.append(surveys.submit_survey(session, token_of(link), ANSWERS, now=NOW))
    with db.read() as session:
        got = [(r.service_id, r.package_id) for r in map(session.get, [SurveyResponse] * 2, ids)]
    assert got == [(world.service_id, glow), (world.service_id, None)]


def test_responses_stored_before_migration_0025_take_their_visits_package(db, world):
    """0025 adds the package to the responses: one stored before takes its visit's package,
    one of a visit of one service and one imported without a visit stay without; down to
    0024 and up again."""
    import sqlalchemy as sa
    from alembic import command

    from db import migrate

    with db.write() as session:
        visit, glow = _package_visit(session, world)
        alone = completed_visit(session, world)
        for appointment_id in (visit, alone, None):
            session.add(SurveyResponse(appointment_id=appointment_id, submitted_at=NOW, nps=9))
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0024")
    with db.engine.begin() as connection:
        columns = {c["name"] for c in sa.inspect(connection).get_columns("survey_responses")}
        assert "package_id" not in columns
    migrate.upgrade(db.engine)
    with db.read() as session:
        got = session.execute(
            select(SurveyResponse.appointment_id, SurveyResponse.package_id).order_by(
                SurveyResponse.id
            )
        ).all()
    assert got == [(visit, glow), (alone, None), (None, None)]


class _Keep:
    def __init__(self) -> None:
        self.sent: list[int | None] = []

    def send(self, notification: Notification) -> None:
        self.sent.append(notification.appointment_id)


def test_the_jobs_survey_request_waits_out_quiet_hours_at_the_sender_one_staff_ask_for_does_not(
    db, world
):
    """The job asked about a visit at 20:30 while SMTP was not set up; it is set up at 22:00,
    when staff also ask about another visit. Before, both went at 22:00; now the staff's goes
    at once and the job's at 08:00 (London: GMT in February)."""
    evening = datetime.combine(PLAIN_THURSDAY, time(20, 30), UTC)
    with db.write() as session:
        automatic = completed_visit(session, world, ended=evening - timedelta(hours=3))
        by_staff = completed_visit(session, world, ended=evening + timedelta(minutes=15))
    with db.write() as session:
        assert surveys.send_due_feedback_requests(session, base_url=BASE, now=evening) == 1
    assert delivery.send_due(db.write, {}, now=evening).waiting >= 1  # no SMTP yet
    night = evening.replace(hour=22)
    send(db, world.staff, by_staff, now=night)
    keep = _Keep()
    report = delivery.send_due(db.write, {Channel.EMAIL: keep}, now=night)
    assert (keep.sent, report.held) == ([by_staff], 1)
    morning = datetime.combine(PLAIN_THURSDAY + timedelta(days=1), time(8), UTC)
    assert delivery.send_due(db.write, {Channel.EMAIL: keep}, now=morning).sent == 1
    assert keep.sent == [by_staff, automatic]


def test_after_a_resend_the_first_links_answer_is_stored_once_and_the_newer_link_says_thank_you(
    db, world, visit
):
    """The patient had the form of the first email open when the resend came. Sending it was
    refused ("a newer link was sent"), the answer lost: now either link answers while the visit
    is unanswered, once; the other link then says it was answered already, and the resend's
    messages not sent yet stay unsent."""
    first = token_of(send(db, world.staff, visit).link)
    later = NOW + timedelta(days=1)
    second = token_of(send(db, world.staff, visit, now=later).link)
    with db.read() as session:
        assert surveys.open_survey(session, second, now=later)
    with db.write() as session:
        response_id = surveys.submit_survey(session, first, ANSWERS, now=later)
    for attempt in (
        lambda s, raw: surveys.open_survey(s, raw, now=later),
        lambda s, raw: surveys.submit_survey(s, raw, ANSWERS, now=later),
    ):
        for raw in (first, second):
            with pytest.raises(ValidationError) as refused, db.write() as session:
                attempt(session, raw)
            assert str(refused.value) == surveys.ANSWERED
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(SurveyResponse)) == 1
        oldest = session.scalar(select(func.min(FeedbackRequest.id)))
        assert session.get(SurveyResponse, response_id).feedback_request_id == oldest
        earned = select(func.count()).where(LedgerEntry.kind == LedgerKind.POINTS_EARNED)
        assert session.scalar(earned) == 1
        waiting = select(func.count()).where(
            Notification.template == "feedback_request",
            Notification.permanent_failure.is_(False),
        )
        assert session.scalar(waiting) == 0  # no survey message goes out after the answer
    with pytest.raises(LinkInvalid), db.read() as session:  # a made-up link: nothing said
        surveys.open_survey(session, second[:-3] + "xyz", now=NOW)


def test_each_link_keeps_its_own_expiry_and_a_revoked_one_stays_refused(db, world, visit):
    first = token_of(send(db, world.staff, visit).link)
    later = NOW + timedelta(days=1)
    second = token_of(send(db, world.staff, visit, now=later).link)
    with db.write() as session:  # the first link as if sent 30 days before the second
        requests = session.scalars(select(FeedbackRequest).order_by(FeedbackRequest.id)).all()
        session.get(LinkToken, requests[0].token_id).expires_at = later
        second_token = requests[1].token_id
    with pytest.raises(LinkInvalid), db.read() as session:
        surveys.open_survey(session, first, now=later + timedelta(minutes=1))
    with db.read() as session:
        assert surveys.open_survey(session, second, now=later + timedelta(minutes=1))
    with db.write() as session:
        tokens.revoke(session, second_token)
    with pytest.raises(LinkInvalid), db.write() as session:
        surveys.submit_survey(session, second, ANSWERS, now=later)
    with db.read() as session:
        assert session.get(Appointment, visit).feedback_status == FeedbackStatus.PENDING


@pytest.mark.parametrize("through", ["link", "portal"])
def test_a_request_pressed_while_the_answer_is_stored_is_refused_and_the_visit_stays_answered(
    db, world, visit, through
):
    """The answer (through the link or the portal) has locked the patient's row, as it does
    first, when a colleague presses "Collect feedback". The request locked the visit, then
    waited for the patient's row (its new rows point at the patient) while the answer waited
    for the visit: on PostgreSQL a deadlock, one side getting a generic error. Now the request
    waits for the answer and is refused, saying why."""
    with db.write() as session:
        session.get(Patient, world.patient_id).portal_enrolled_at = NOW
    raw = token_of(send(db, world.staff, visit).link)
    outcome: list[str] = []

    def ask_again() -> None:  # a colleague presses "Collect feedback" the next day
        try:
            send(db, world.manager, visit, now=NOW + timedelta(days=1))
            outcome.append("sent")
        except Exception as refused:  # noqa: BLE001 - any failure is the outcome asserted on
            outcome.append(str(refused))

    with db.write() as session:
        ledger_balance.locked(session, world.patient_id)  # the answer's first lock
        colleague = threading.Thread(target=ask_again)
        colleague.start()
        wait_until_a_writer_waits(db)
        if through == "link":
            surveys.submit_survey(session, raw, ANSWERS, now=NOW)
        else:
            home.answer_survey(session, world.patient_id, visit, ANSWERS)
    colleague.join()

    assert outcome == ["The patient has already answered the survey for this visit."]
    with db.read() as session:
        assert session.get(Appointment, visit).feedback_status == FeedbackStatus.COLLECTED
        assert session.scalar(select(func.count()).select_from(FeedbackRequest)) == 1
        assert session.scalar(select(func.count()).select_from(SurveyResponse)) == 1


def test_a_portal_answer_sent_while_a_request_is_being_sent_is_stored(db, world, visit):
    """Staff press "Collect feedback" (the visit's first request, today) and it commits first
    while the patient sends the survey in the portal: the answer waits for the request and is
    stored under it (no second request of the day, no error); the staff's request was sent."""
    with db.write() as session:
        session.get(Patient, world.patient_id).portal_enrolled_at = NOW
    outcome: list[str] = []

    def answer() -> None:
        try:
            with db.write() as session:
                outcome.append(home.answer_survey(session, world.patient_id, visit, ANSWERS))
        except Exception as error:  # noqa: BLE001 - any failure is the outcome asserted on
            outcome.append(repr(error))

    with db.write() as session:  # today, as the portal's answer is dated
        surveys.request_feedback(session, world.staff, visit, base_url=BASE)
        patient = threading.Thread(target=answer)
        patient.start()
        wait_until_a_writer_waits(db)
    patient.join()

    assert len(outcome) == 1 and outcome[0].startswith("Thank you for your feedback!"), outcome
    with db.read() as session:
        assert session.get(Appointment, visit).feedback_status == FeedbackStatus.COLLECTED
        request = session.scalar(select(FeedbackRequest))  # the staff's, answered
        assert request.created_by_user_id == world.staff.user_id and request.answered_at
        assert session.scalar(select(func.count()).select_from(SurveyResponse)) == 1


def test_the_portal_and_the_emailed_link_at_once_store_one_answer(db, world, visit):
    with db.write() as session:
        session.get(Patient, world.patient_id).portal_enrolled_at = NOW
    raw = token_of(send(db, world.staff, visit).link)
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def answer(through) -> None:
        start.wait()
        try:
            with db.write() as session:
                through(session)
            outcomes.append("stored")
        except ValidationError as refused:
            outcomes.append(str(refused))

    threads = [
        threading.Thread(
            target=answer,
            args=(lambda s: home.answer_survey(s, world.patient_id, visit, ANSWERS),),
        ),
        threading.Thread(target=answer, args=(lambda s: surveys.submit_survey(s, raw, ANSWERS),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == [surveys.ANSWERED, "stored"]
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(SurveyResponse)) == 1
        earned = select(func.count()).where(LedgerEntry.kind == LedgerKind.POINTS_EARNED)
        assert session.scalar(earned) == 1


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("   \n\t  ", ""),
        ("  Très bien 👍 — شكرا  ", "  Très bien 👍 — شكرا  "),
        ("# Heading <script>x</script>", "# Heading <script>x</script>"),
    ],
)
def test_a_comment_is_kept_as_typed_and_only_spaces_are_no_comment(db, world, visit, typed, stored):
    raw = token_of(send(db, world.staff, visit).link)
    with db.write() as session:
        response_id = surveys.submit_survey(
            session, raw, surveys.SurveyAnswers(8, 4, {}, typed), now=NOW
        )
    with db.read() as session:
        assert session.get(SurveyResponse, response_id).comment == stored


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (AppointmentStatus.NO_SHOW, "this appointment is marked as a no-show."),
        (AppointmentStatus.CHECKED_IN, "this appointment is checked in."),
        (AppointmentStatus.SCHEDULED, "this appointment is booked."),
        (AppointmentStatus.REQUESTED, "this appointment is still a request the practice has"),
    ],
)
def test_feedback_asked_for_too_soon_says_the_visits_state_in_english(db, world, status, words):
    """The visit's state in the words every other message uses (core.scheduling.states
    status_is), not its stored value ('no show', 'checked in', 'requested')."""
    with db.write() as session:
        early = completed_visit(session, world)
        session.get(Appointment, early).status = status
    with pytest.raises(InvalidTransition) as refused:
        send(db, world.staff, early)
    assert str(refused.value).startswith(
        f"Feedback can be asked for only after the visit is completed; {words}"
    )


def test_what_the_desk_reads_of_a_request_sent_and_of_the_visits_feedback(db, world, visit):
    """Channels and the feedback's state in words (notify.CHANNEL_WORDS, FEEDBACK_WORDS), not
    the stored values 'sms', 'none', 'pending'."""
    with db.read() as session:
        before = surveys.get_feedback(session, world.staff, visit, now=NOW)
    assert before.said == "Feedback not asked for yet"
    sent = send(db, world.staff, visit)
    assert sent.said == "Survey link sent by email and text message."
    with db.read() as session:
        after = surveys.get_feedback(session, world.staff, visit, now=NOW)
    assert after.said == "Feedback asked for, not answered yet"
    with db.write() as session:
        only_sms = make_patient(session, email="sms@example.org", consent_email=False).id
        other = completed_visit(session, world, patient_id=only_sms)
    assert send(db, world.staff, other).said == (
        "Survey link sent by text message. Not sent by: no consent to email."
    )
    with db.write() as session:
        surveys.submit_survey(session, token_of(sent.link), ANSWERS, now=NOW)
    with db.read() as session:
        done = surveys.get_feedback(session, world.staff, visit, now=NOW)
    assert done.said == "Feedback collected"
