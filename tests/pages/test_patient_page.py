"""The public patient page (/patient?p=…&t=…): every purpose, and the neutral invalid page."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update
from streamlit.testing.v1 import AppTest

from core.forms import after_booking
from core.kernel import tokens
from core.kernel.authz import SYSTEM
from core.kernel.config import load_settings
from core.kernel.money import format_day, format_money
from core.patients import invitations
from core.patients.records import birth_bounds
from core.portal import patient_links
from core.requests import decisions
from core.startup import open_database
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    CancellationPolicy,
    ChangeRequest,
    Clinic,
    DocumentKind,
    FormRequest,
    Notification,
    Package,
    Patient,
    PortalInvitation,
    Role,
    Service,
    ServiceDocument,
    Source,
    TimeOfDay,
)
from db.types import utcnow
from tests.factories import make_user
from tests.pages.conftest import patient_page
from ui.patient_portal import ANSWER_SECONDS
from ui.text import escape

INVALID = "This link is not valid any more. Please contact the practice for a new one."


def _db(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def _raw(link: str) -> str:
    return link.split("&t=")[1]


def _invite(app_db):
    database = _db(app_db)
    with database.write() as s:
        patient = s.scalars(
            select(Patient)
            .where(
                Patient.email.is_not(None),
                Patient.consent_email.is_(True),
                Patient.portal_enrolled_at.is_(None),
            )
            .limit(1)
        ).one()
        sent = invitations.send_invitation(s, SYSTEM, patient.id, base_url="http://x")
        born = patient.date_of_birth
    database.dispose()
    return _raw(sent.link), born, sent.invitation_id


def _only_invalid(at: AppTest) -> None:
    assert not at.exception
    assert [t.value for t in at.title] == ["This link is not valid"]
    assert [i.value for i in at.info] == [INVALID]
    assert not at.text_input and not at.button and not at.markdown


@pytest.mark.parametrize("purpose", ["enroll", "proposal", "change", "booking", "nonsense", ""])
def test_wrong_tokens_and_purposes_get_one_neutral_page(app_db, purpose):
    _only_invalid(patient_page(purpose, "made-up-token-value"))


def test_a_real_token_for_another_purpose_is_also_just_invalid(app_db):
    raw, _, _ = _invite(app_db)
    _only_invalid(patient_page("booking", raw))
    _only_invalid(patient_page("enroll", raw + "x"))


def test_enrolment_with_date_of_birth_and_terms_then_the_link_is_used(app_db):
    raw, born, invitation_id = _invite(app_db)
    at = patient_page("enroll", raw)
    assert at.title[0].value == "Patient portal"
    picker = at.date_input(key="patient_enroll_dob").proto  # as staff's: today anywhere on Earth
    assert (picker.min, picker.max) == tuple(d.isoformat() for d in birth_bounds())
    at.date_input(key="patient_enroll_dob").set_value(born + timedelta(days=1))
    at.checkbox(key="patient_enroll_terms").check()
    at.button(key="FormSubmitter:patient_enroll_form-Enrol").click().run()
    assert "does not match our records" in at.error[0].value
    at.date_input(key="patient_enroll_dob").set_value(born)
    at.button(key="FormSubmitter:patient_enroll_form-Enrol").click().run()
    assert "you are now enrolled" in at.success[0].value
    database = _db(app_db)
    with database.read() as s:
        assert s.get(PortalInvitation, invitation_id).status.value == "enrolled"
    database.dispose()
    again = patient_page("enroll", raw)  # a new browser session: the link worked once
    assert not again.exception and not again.date_input  # nothing to enrol with again
    assert "You enrolled in the patient portal on" in again.info[0].value
    assert again.get("link_button")[0].proto.url == "/portal"


def test_enrolment_needs_the_terms(app_db):
    raw, born, _ = _invite(app_db)
    at = patient_page("enroll", raw)
    at.date_input(key="patient_enroll_dob").set_value(born)
    at.button(key="FormSubmitter:patient_enroll_form-Enrol").click().run()
    assert "accept the terms" in at.error[0].value


def test_with_no_date_of_birth_on_file_the_enrolment_page_says_to_call_and_offers_no_form(
    app_db,
):
    raw, _, invitation_id = _invite(app_db)
    database = _db(app_db)
    with database.write() as s:
        s.get(PortalInvitation, invitation_id).patient.date_of_birth = None
    database.dispose()
    at = patient_page("enroll", raw)
    assert not at.exception and not at.error
    assert "no date of birth on file for you" in at.info[0].value
    assert "keeps working until" in at.info[0].value
    assert not at.date_input and not at.button  # nothing to try, nothing spent


def test_declining_a_proposal(app_db):
    database = _db(app_db)
    with database.write() as s:
        appointment = s.scalars(
            select(Appointment)
            .where(
                Appointment.status == AppointmentStatus.TENTATIVE,
                Appointment.start_at > utcnow(),
                Appointment.patient_id.is_not(None),
            )
            .limit(1)
        ).one()
        raw = tokens.issue(s, "proposal", appointment.id, timedelta(days=2)).raw
        appointment_id = appointment.id
    at = patient_page("proposal", raw)
    assert at.title[0].value == "Your proposed appointment"
    at.button(key="patient_proposal_decline").click().run()
    assert not at.exception and "in touch" in at.success[0].value
    with database.read() as s:
        assert s.get(Appointment, appointment_id).status == AppointmentStatus.REQUESTED
    database.dispose()


def test_an_earlier_proposal_link_says_it_was_replaced(app_db):
    """A newer proposal for the appointment: the first link shows no time and no buttons, only
    that it was replaced (it showed the new time and answered it)."""
    database = _db(app_db)
    with database.write() as s:
        appointment = s.scalars(
            select(Appointment)
            .where(
                Appointment.status == AppointmentStatus.TENTATIVE,
                Appointment.start_at > utcnow(),
                Appointment.patient_id.is_not(None),
            )
            .limit(1)
        ).one()
        first = decisions.send_proposal(s, appointment, "")
        decisions.send_proposal(s, appointment, "")
    database.dispose()
    at = patient_page("proposal", first)
    assert not at.exception
    assert [t.value for t in at.title] == ["Your proposed appointment"]
    assert [i.value for i in at.info] == [
        "This proposal was replaced by a newer one. Please use the link in the practice's "
        "latest message."
    ]
    assert not at.button and not at.markdown


def test_change_page_shows_the_policy_and_the_late_fee_before_confirming(app_db):
    database = _db(app_db)
    with database.write() as s:
        appointment = s.scalars(
            select(Appointment)
            .where(
                Appointment.status == AppointmentStatus.SCHEDULED,
                Appointment.patient_id.is_not(None),
                Appointment.start_at > utcnow() + timedelta(hours=1),
                Appointment.start_at < utcnow() + timedelta(hours=20),
            )
            .limit(1)
        ).first()
        if appointment is None:  # the demo's clock: make one inside the 24-hour window
            appointment = s.scalars(
                select(Appointment).where(
                    Appointment.status == AppointmentStatus.SCHEDULED,
                    Appointment.patient_id.is_not(None),
                    Appointment.start_at > utcnow(),
                )
            ).first()
            appointment.start_at = utcnow() + timedelta(hours=6)
            appointment.end_at = appointment.start_at + timedelta(minutes=30)
        s.execute(
            ChangeRequest.__table__.delete().where(ChangeRequest.appointment_id == appointment.id)
        )
        raw = _raw(patient_links.change_link(s, appointment, "http://x"))
        appointment_id = appointment.id
        clinic = appointment.clinic
        clinic.currency, clinic.locale = "USD", "en-US"  # money escaped: '$' is no LaTeX
        fee = format_money(2500, clinic.currency, clinic.locale).replace("$", "\\$")
    at = patient_page("change", raw)
    assert "Our cancellation policy" in [m.value for m in at.markdown][1]
    assert f"cancelling now costs a fee of {fee} and 20 points" in at.warning[0].value
    at.radio(key="patient_change_kind").set_value("cancel").run()
    at.text_area(key="patient_change_reason").input("Ill <script>x</script>")
    at.button(key="FormSubmitter:patient_change_form-Send my request").click().run()
    assert "read the cancellation policy" in at.error[0].value
    at.checkbox(key="patient_change_agree").check()
    at.button(key="FormSubmitter:patient_change_form-Send my request").click().run()
    assert "sent to the practice" in at.success[0].value
    with database.read() as s:
        change = s.scalars(
            select(ChangeRequest).where(ChangeRequest.appointment_id == appointment_id)
        ).one()
    database.dispose()
    assert change.kind.value == "cancel" and change.fee_cents == 2500 and change.inside_window


def _late_change_link(app_db, *, needs_approval: bool) -> tuple[str, int]:
    """A change link for a visit 6 hours ahead, inside a 12-hour window costing 20 points."""
    database = _db(app_db)
    with database.write() as s:
        appointment = s.scalars(
            select(Appointment)
            .where(
                Appointment.status == AppointmentStatus.SCHEDULED,
                Appointment.patient_id.is_not(None),
                Appointment.start_at > utcnow() + timedelta(days=1),
            )
            .order_by(Appointment.id)
            .limit(1)
        ).one()
        appointment.start_at = utcnow() + timedelta(hours=6)
        appointment.end_at = appointment.start_at + timedelta(minutes=30)
        s.execute(
            ChangeRequest.__table__.delete().where(ChangeRequest.appointment_id == appointment.id)
        )
        for service_id in (None, appointment.service_id):
            s.add(
                CancellationPolicy(
                    clinic_id=appointment.clinic_id,
                    service_id=service_id,
                    version=99,
                    effective_at=utcnow() - timedelta(minutes=1),
                    window_hours=12,
                    points_deducted=20,
                    inside_window_needs_approval=needs_approval,
                    policy_text="12 hours' notice, please.",
                )
            )
        raw = _raw(patient_links.change_link(s, appointment, "http://x"))
        appointment_id = appointment.id
    database.dispose()
    return raw, appointment_id


def test_the_change_links_move_asks_no_time_of_day_for_the_patient(app_db):
    """Moving a visit by its link, the time of day stood on 'Early morning': skimmed on a phone,
    the request went out as a wish for early morning the patient never made. It starts on
    'Any time of day' (what leaving it sends: the whole day), offered first, the times of day
    after it in the clinic's words; a move sent as it starts asks for the day alone."""
    raw, appointment_id = _late_change_link(app_db, needs_approval=True)
    at = patient_page("change", raw)
    at.radio(key="patient_change_kind").set_value("reschedule").run()
    moment = at.selectbox(key="patient_change_time")
    assert moment.value in (None, "") and moment.options[0] == "Any time of day", moment.options
    assert moment.options[1:] == [
        "Early morning (before 9:00)",
        "Morning (9:00–12:00)",
        "Afternoon (12:00–17:00)",
        "Evening (after 17:00)",
    ]
    at.date_input(key="patient_change_day").set_value(date.today() + timedelta(days=5))
    at.checkbox(key="patient_change_agree").check()
    at.button(key="FormSubmitter:patient_change_form-Send my request").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    database = _db(app_db)
    with database.read() as s:
        change = s.scalars(
            select(ChangeRequest).where(ChangeRequest.appointment_id == appointment_id)
        ).one()
        assert (change.requested_day, change.time_of_day) == (
            date.today() + timedelta(days=5),
            None,
        )
    database.dispose()


def test_a_late_cancellation_done_at_once_says_so_on_its_button_not_send_my_request(app_db):
    """Inside the window with no approval needed, the press cancels the visit at once and
    charges it: the button says 'Cancel my appointment', not 'Send my request' (a request the
    patient would expect the practice to look at first). Moving it, or a cancellation the
    practice reviews, stays a request."""
    raw, appointment_id = _late_change_link(app_db, needs_approval=False)
    at = patient_page("change", raw)
    at.radio(key="patient_change_kind").set_value("cancel").run()
    assert "cancelling now costs 20 points" in at.warning[0].value
    labels = [b.label for b in at.button if b.key.startswith("FormSubmitter:patient_change")]
    assert labels == ["Cancel my appointment"], labels
    at.radio(key="patient_change_kind").set_value("reschedule").run()
    labels = [b.label for b in at.button if b.key.startswith("FormSubmitter:patient_change")]
    assert labels == ["Send my request"], labels
    at.radio(key="patient_change_kind").set_value("cancel").run()
    at.checkbox(key="patient_change_agree").check()
    at.button(key="FormSubmitter:patient_change_form-Cancel my appointment").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "has been cancelled" in at.success[0].value
    database = _db(app_db)
    with database.read() as s:
        assert s.get(Appointment, appointment_id).status == AppointmentStatus.CANCELLED
    database.dispose()
    raw, _ = _late_change_link(app_db, needs_approval=True)
    at = patient_page("change", raw)
    at.radio(key="patient_change_kind").set_value("cancel").run()
    labels = [b.label for b in at.button if b.key.startswith("FormSubmitter:patient_change")]
    assert labels == ["Send my request"], labels


def _choose(at: AppTest, treatment: tuple[str, int] | None = ("service", 1)) -> None:
    """The booking form's treatment (a Consultation unless given) and time of day (morning):
    neither is chosen until the patient chooses."""
    if treatment:
        at.selectbox(key="patient_booking_service").set_value(treatment)
    at.selectbox(key="patient_booking_time").set_value(TimeOfDay.MORNING)


def test_the_booking_form_chooses_no_treatment_or_time_for_the_patient(app_db):
    """A new patient skimming the form on a phone sent 'Blood test, early morning (before
    9:00)': the first treatment and the first time of day stood chosen. Both start empty
    ('Choose a treatment', 'Choose a time of day'), and a request without them says which to
    choose, nothing stored."""
    database = _db(app_db)
    with database.write() as s:
        owner = make_user(s, "h15owner", Role.OWNER)
        raw = _raw(patient_links.issue_booking_link(s, owner, 1, base_url="http://x"))
    at = patient_page("booking", raw)
    assert at.selectbox(key="patient_booking_service").value is None
    assert at.selectbox(key="patient_booking_time").value is None
    at.date_input(key="patient_booking_day").set_value(utcnow().date() + timedelta(days=5))
    at.text_input(key="patient_booking_first").input("Robin")
    at.text_input(key="patient_booking_last").input("Empty")
    at.text_input(key="patient_booking_email").input("robin.empty@example.org")
    at.button(key="FormSubmitter:patient_booking_form-Send request").click().run()
    assert [e.value for e in at.error] == ["Please choose a treatment from the list."]
    at.selectbox(key="patient_booking_service").set_value(("service", 1))
    at.button(key="FormSubmitter:patient_booking_form-Send request").click().run()
    assert [e.value for e in at.error] == ["Please choose a time of day."]
    with database.read() as s:
        assert not s.scalars(select(Patient).where(Patient.last_name == "Empty")).all()
    at.selectbox(key="patient_booking_time").set_value(TimeOfDay.AFTERNOON)
    at.button(key="FormSubmitter:patient_booking_form-Send request").click().run()
    assert not at.error and "your request has been received" in at.success[0].value
    with database.read() as s:
        asked = s.scalars(
            select(Appointment).join(Patient).where(Patient.last_name == "Empty")
        ).one()
        assert (asked.service_id, asked.time_of_day) == (1, TimeOfDay.AFTERNOON)
    database.dispose()


def test_public_booking_request_lands_in_the_queue_and_is_rate_limited(app_db):
    database = _db(app_db)
    with database.write() as s:
        owner = make_user(s, "h5owner", Role.OWNER)
        raw = _raw(patient_links.issue_booking_link(s, owner, 1, base_url="http://x"))
    for attempt in range(4):
        at = patient_page("booking", raw)
        assert at.title[0].value.startswith("Request an appointment at Harbour Street Clinic")
        day = utcnow().date() + timedelta(days=5 + attempt)  # one request, not the same again
        _choose(at)
        at.date_input(key="patient_booking_day").set_value(day)
        at.date_input(key="patient_booking_dob").set_value(date(1979, 3, 8))  # optional
        at.text_input(key="patient_booking_first").input("Robin")
        at.text_input(key="patient_booking_last").input("Hart")
        at.text_input(key="patient_booking_email").input("robin.hart@example.org")
        at.button(key="FormSubmitter:patient_booking_form-Send request").click().run()
        assert not at.exception
        if attempt < 3:
            assert "your request has been received" in at.success[0].value
        else:
            assert "many requests in the last hour" in at.error[0].value
    with database.read() as s:
        patient = s.scalars(select(Patient).where(Patient.email == "robin.hart@example.org")).one()
        requests = s.scalars(select(Appointment).where(Appointment.patient_id == patient.id)).all()
    database.dispose()
    assert len(requests) == 3 and patient.date_of_birth == date(1979, 3, 8)
    assert {(r.status, r.source) for r in requests} == {
        (AppointmentStatus.REQUESTED, Source.ONLINE)
    }


def test_a_public_request_ticking_texts_for_a_landline_is_told_what_to_do(app_db):
    """A landline typed with texts ticked: the form says, as plain text, that texts cannot
    reach it and what to do, and nothing is stored (core.patients.records.check_texts)."""
    database = _db(app_db)
    with database.write() as s:
        owner = make_user(s, "h8owner", Role.OWNER)
        raw = _raw(patient_links.issue_booking_link(s, owner, 1, base_url="http://x"))
    at = patient_page("booking", raw)
    _choose(at)
    at.date_input(key="patient_booking_day").set_value(utcnow().date() + timedelta(days=5))
    at.text_input(key="patient_booking_first").input("Robin")
    at.text_input(key="patient_booking_last").input("Hart")
    at.text_input(key="patient_booking_phone").input("020 7946 0123")
    at.checkbox(key="patient_booking_consent_sms").check()
    at.button(key="FormSubmitter:patient_booking_form-Send request").click().run()
    assert not at.exception and not at.success
    assert [e.value for e in at.error] == [
        "'020 7946 0123' is a landline: texts cannot reach it. Untick text messages, or type "
        "a mobile number instead."
    ]
    with database.read() as s:
        assert (
            s.scalar(select(func.count()).select_from(Patient).where(Patient.last_name == "Hart"))
            == 0
        )
    database.dispose()


@pytest.mark.parametrize("email_box, texts_box", [(True, False), (False, True)])
def test_a_public_request_asks_consent_to_email_and_to_texts_in_two_boxes(
    app_db, email_box, texts_box
):
    """Emails but no texts, or the reverse: the form has a box for each, unticked until the
    patient ticks it, and each reaches the new record's consent to its channel (before, one
    box asked both)."""
    database = _db(app_db)
    with database.write() as s:
        owner = make_user(s, "h9owner", Role.OWNER)
        raw = _raw(patient_links.issue_booking_link(s, owner, 1, base_url="http://x"))
    at = patient_page("booking", raw)
    email = at.checkbox(key="patient_booking_consent_email")
    texts = at.checkbox(key="patient_booking_consent_sms")
    assert [(b.label, b.value) for b in (email, texts)] == [
        ("You may email me about my appointments", False),
        ("You may text me about my appointments", False),
    ]
    (email if email_box else texts).check()
    _choose(at)
    at.date_input(key="patient_booking_day").set_value(utcnow().date() + timedelta(days=5))
    at.text_input(key="patient_booking_first").input("Robin")
    at.text_input(key="patient_booking_last").input("Boxes")
    at.text_input(key="patient_booking_email").input("robin.boxes@example.org")
    at.text_input(key="patient_booking_phone").input("07911 123456")
    at.button(key="FormSubmitter:patient_booking_form-Send request").click().run()
    assert not at.exception and "your request has been received" in at.success[0].value
    with database.read() as s:
        robin = s.scalars(select(Patient).where(Patient.last_name == "Boxes")).one()
        consent = (robin.consent_email, robin.consent_sms)
    database.dispose()
    assert consent == (email_box, texts_box)


def test_the_same_booking_request_sent_twice_is_received_once(app_db):
    """A patient sends 'Tuesday afternoon' and, unsure it went, sends it again: one request
    (approving both would book them twice). The second press is answered as the first: the
    public form cannot tell its sender that an address has a request waiting, since anyone
    may type it (core.requests.decisions.AlreadyAsked)."""
    database = _db(app_db)
    with database.write() as s:
        owner = make_user(s, "h7owner", Role.OWNER)
        raw = _raw(patient_links.issue_booking_link(s, owner, 1, base_url="http://x"))
    said = []
    for _ in range(2):
        at = patient_page("booking", raw)
        _choose(at)
        at.date_input(key="patient_booking_day").set_value(utcnow().date() + timedelta(days=5))
        at.text_input(key="patient_booking_first").input("Robin")
        at.text_input(key="patient_booking_last").input("Hart")
        at.text_input(key="patient_booking_email").input("robin.hart@example.org")
        at.button(key="FormSubmitter:patient_booking_form-Send request").click().run()
        assert not at.exception
        said.append([e.value for e in at.success] + [e.value for e in at.error])
    assert "your request has been received" in said[0][0]
    assert said[1] == said[0]
    with database.read() as s:
        patient = s.scalars(select(Patient).where(Patient.email == "robin.hart@example.org")).one()
        requests = s.scalars(select(Appointment).where(Appointment.patient_id == patient.id)).all()
    database.dispose()
    assert len(requests) == 1


def test_the_booking_answer_comes_no_sooner_for_a_new_contact_than_for_a_known_one(app_db):
    """A known patient's email costs other work than a new one (no record, no ledger, a check
    of the name), which the answer's timing must not tell: either is answered no sooner than
    the portal sign-in's ANSWER_SECONDS after the click (ui.patient_portal.paced)."""
    database = _db(app_db)
    with database.write() as s:
        owner = make_user(s, "h6owner", Role.OWNER)
        raw = _raw(patient_links.issue_booking_link(s, owner, 1, base_url="http://x"))
        known = s.scalars(select(Patient).where(Patient.email.is_not(None)).limit(1)).one()
        known = (known.first_name, known.last_name, known.email)
    database.dispose()
    for first, last, email in (known, ("Robin", "Hart", "robin.hart@example.org")):
        at = patient_page("booking", raw)
        _choose(at)
        at.date_input(key="patient_booking_day").set_value(utcnow().date() + timedelta(days=5))
        at.text_input(key="patient_booking_first").input(first)
        at.text_input(key="patient_booking_last").input(last)
        at.text_input(key="patient_booking_email").input(email)
        began = time.monotonic()
        at.button(key="FormSubmitter:patient_booking_form-Send request").click().run()
        took = time.monotonic() - began
        assert not at.exception and "your request has been received" in at.success[0].value
        assert took >= ANSWER_SECONDS, (email, took)


def test_the_booking_thank_you_page_sums_up_the_request_as_typed_and_what_comes_next(app_db):
    """After 'Send request' the page said only that it was received: not what was asked for
    nor where the answer goes. It now lists the treatment, clinic, day and time of day (the
    clinic's words), the name and the address and number the reply goes to, the note, and
    what happens next; what the patient typed is shown as text, never as markup."""
    database = _db(app_db)
    with database.write() as s:
        owner = make_user(s, "h16owner", Role.OWNER)
        raw = _raw(patient_links.issue_booking_link(s, owner, 1, base_url="http://x"))
        clinic = s.get(Clinic, 1)
        phone, locale = clinic.phone, clinic.locale
        consultation = s.get(Service, 1).name
    database.dispose()
    day = utcnow().date() + timedelta(days=5)
    at = patient_page("booking", raw)
    _choose(at)
    at.date_input(key="patient_booking_day").set_value(day)
    at.text_input(key="patient_booking_first").input("<b>Robin</b>")
    at.text_input(key="patient_booking_last").input("Summary")
    at.text_input(key="patient_booking_email").input("robin.summary@example.org")
    at.text_input(key="patient_booking_phone").input("07911 123456")
    at.text_area(key="patient_booking_notes").input("Left knee *sore*\n[link](http://x)")
    at.button(key="FormSubmitter:patient_booking_form-Send request").click().run()
    assert not at.exception and "your request has been received" in at.success[0].value
    asked = [m.value for m in at.markdown]
    morning = patient_links.time_of_day_labels(locale)[TimeOfDay.MORNING]
    assert asked[:7] == [
        f"**Treatment:** {consultation}",
        "**Clinic:** Harbour Street Clinic",
        f"**Day:** {escape(format_day(day, locale))}",
        f"**Time of day:** {escape(morning)}",
        f"**Name:** {escape('<b>Robin</b> Summary')}",
        f"**We will reply to:** {escape('robin.summary@example.org · 07911 123456')}",
        f"**Your note:** {escape('Left knee *sore* [link](http://x)')}",
    ]
    assert asked[7] == (
        "**What happens next:** nothing is booked yet. The practice will offer you a time "
        f"and contact you to confirm it. To change or withdraw this request, call {escape(phone)}."
    )
    assert "\\<b\\>Robin" in asked[4] and "\\*sore\\*" in asked[6]  # as typed, no markup


def test_public_booking_request_offers_the_packages_after_the_services(app_db):
    database = _db(app_db)
    with database.write() as s:
        owner = make_user(s, "h14owner", Role.OWNER)
        raw = _raw(patient_links.issue_booking_link(s, owner, 1, base_url="http://x"))
    at = patient_page("booking", raw)
    treatments = at.selectbox(key="patient_booking_service")
    packages = [o for o in treatments.options if o.startswith("Package: ")]
    assert packages == treatments.options[-len(packages) :]
    assert "Package: Skin renewal (Skin check + Chemical peel)" in packages
    with database.read() as s:
        renewal = s.scalar(select(Package.id).where(Package.name == "Skin renewal"))
    treatments.set_value(("package", renewal))
    _choose(at, treatment=None)
    at.date_input(key="patient_booking_day").set_value(utcnow().date() + timedelta(days=5))
    at.text_input(key="patient_booking_first").input("Rowan")
    at.text_input(key="patient_booking_last").input("Ashe")
    at.text_input(key="patient_booking_email").input("rowan.ashe@example.org")
    at.button(key="FormSubmitter:patient_booking_form-Send request").click().run()
    assert not at.exception and "your request has been received" in at.success[0].value
    with database.read() as s:
        request = s.scalars(
            select(Appointment).join(Patient).where(Patient.email == "rowan.ashe@example.org")
        ).one()
        assert request.package.name == "Skin renewal"
        assert [a.service.name for a in request.services] == ["Skin check", "Chemical peel"]
    database.dispose()


def test_a_visit_moved_while_the_change_page_was_open_is_not_cancelled_on_the_old_terms(app_db):
    """The patient read 'no fee' for a visit days away; the desk then moved it to within the
    24-hour window. Sending the request as the page stood would cancel it with a fee the
    patient was never shown: it is refused, saying it moved, and goes once read again."""
    database = _db(app_db)
    with database.write() as s:
        appointment = s.scalars(
            select(Appointment).where(
                Appointment.status == AppointmentStatus.SCHEDULED,
                Appointment.patient_id.is_not(None),
                Appointment.start_at > utcnow() + timedelta(days=3),
            )
        ).first()
        s.execute(
            ChangeRequest.__table__.delete().where(ChangeRequest.appointment_id == appointment.id)
        )
        raw = _raw(patient_links.change_link(s, appointment, "http://x"))
        appointment_id = appointment.id
    at = patient_page("change", raw)
    assert not at.warning  # outside the window: nothing to pay
    at.radio(key="patient_change_kind").set_value("cancel").run()
    at.checkbox(key="patient_change_agree").check()
    with database.write() as s:  # the desk moves it to tomorrow morning meanwhile
        row = s.get(Appointment, appointment_id)
        row.start_at = utcnow() + timedelta(hours=6)
        row.end_at = row.start_at + timedelta(minutes=30)
    at.button(key="FormSubmitter:patient_change_form-Send my request").click().run()
    said = " ".join(e.value for e in at.error)
    assert "Since this page was opened, your appointment was moved: it is now on" in said, said
    assert "Nothing was sent" in said
    with database.read() as s:
        assert s.get(Appointment, appointment_id).status == AppointmentStatus.SCHEDULED
        assert not s.scalars(
            select(ChangeRequest).where(ChangeRequest.appointment_id == appointment_id)
        ).all()
    assert "cancelling now costs" in at.warning[0].value  # the new terms, on the page now
    at.button(key="FormSubmitter:patient_change_form-Send my request").click().run()
    assert "sent to the practice" in at.success[0].value, [e.value for e in at.error]
    database.dispose()


def test_a_proposal_link_answered_already_or_lapsed_says_so(app_db):
    """Opened again after answering it, or after it lapsed unanswered: the link says which
    (and, lapsed, whom to call) instead of the neutral invalid page; a made-up link still gets
    that neutral page."""
    database = _db(app_db)
    with database.write() as s:
        answered, lapsed = s.scalars(
            select(Appointment)
            .where(
                Appointment.status == AppointmentStatus.TENTATIVE,
                Appointment.start_at > utcnow(),
                Appointment.patient_id.is_not(None),
            )
            .limit(2)
        ).all()
        raw = {"answered": decisions.send_proposal(s, answered, "")}
        raw["lapsed"] = decisions.send_proposal(s, lapsed, "")
        phone = lapsed.clinic.phone
    at = patient_page("proposal", raw["answered"])
    at.button(key="patient_proposal_accept").click().run()
    assert not at.exception and at.success
    with database.write() as s:  # the lapsed link's time ran out unanswered
        s.execute(
            update(tokens.LinkToken)
            .where(tokens.LinkToken.token_hash == tokens.hash_token(raw["lapsed"]))
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    database.dispose()
    lapsed_words = (
        "This proposal has lapsed: we did not hear back in time, so that time is no longer held "
        f"for you. The practice will be in touch or call them on {phone}."
    )
    for kind, words in (
        ("answered", "You have answered this proposal already."),
        ("lapsed", lapsed_words),
    ):
        at = patient_page("proposal", raw[kind])
        assert not at.exception
        assert [i.value for i in at.info][0].startswith(words), (kind, [i.value for i in at.info])
        assert not at.button
    at = patient_page("proposal", "x" * 43)
    assert INVALID in " ".join(m.value for m in [*at.markdown, *at.info, *at.error])


def _visit_with_two_forms(app_db) -> tuple[str, int, dict[str, int]]:
    """A new texting patient's visit in two days, of a service with a questionnaire and a
    consent, its forms sent: the text's one link (raw), the visit and the forms by kind."""
    database = _db(app_db)
    with database.write() as session:
        patient = Patient(
            first_name="Łucja", last_name="Nowak", phone="07700 900777", consent_sms=True
        )
        service = Service(name="Peel", duration_minutes=30)
        session.add_all([patient, service])
        session.flush()
        session.add_all(
            [
                ServiceDocument(
                    service_id=service.id,
                    kind=DocumentKind.QUESTIONNAIRE,
                    title="Health *questionnaire*",
                    questions=[{"key": "allergies", "label": "Any allergies?", "required": True}],
                ),
                ServiceDocument(
                    service_id=service.id, kind=DocumentKind.CONSENT, title="Consent", body="OK"
                ),
            ]
        )
        start = utcnow() + timedelta(days=2)
        visit = Appointment(
            clinic_id=1,
            provider_id=1,
            patient_id=patient.id,
            service_id=service.id,
            status=AppointmentStatus.SCHEDULED,
            start_at=start,
            end_at=start + timedelta(minutes=30),
        )
        session.add(visit)
        session.flush()
        after_booking.send_forms(session, visit, base_url="http://x")
        text = session.scalar(
            select(Notification.body).where(
                Notification.appointment_id == visit.id, Notification.channel == "sms"
            )
        )
        ids = {
            f.kind.value: f.id
            for f in session.scalars(
                select(FormRequest).where(FormRequest.appointment_id == visit.id)
            )
        }
        result = re.search(r"p=visit_forms&t=(\S+)", text).group(1), visit.id, ids
    database.dispose()
    return result


def test_a_visits_forms_link_lists_them_and_each_is_answered_there_once(app_db):
    raw, visit_id, ids = _visit_with_two_forms(app_db)
    at = patient_page("visit_forms", raw)
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Your forms"]
    rows = [m.value for m in at.markdown]
    # both to do: 'these 2 forms', not '2 of these', which reads as a choice of two of more
    assert "Hello Łucja, please complete these 2 forms before your visit." in rows
    assert "Questionnaire: Health \\*questionnaire\\* :orange-badge[To complete]" in rows
    assert "Consent: Consent :orange-badge[To complete]" in rows
    at.button(key=f"patient_visit_forms_open_{ids['questionnaire']}").click().run()
    prefix = f"patient_visit_forms_{ids['questionnaire']}"
    at.text_area(key=f"{prefix}_q_allergies").input("Latex")
    at.button(key=f"FormSubmitter:{prefix}-Send my answers").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "answers have been sent" in at.success[0].value
    rows = [m.value for m in at.markdown]
    assert "Questionnaire: Health \\*questionnaire\\* :green-badge[Answered]" in rows
    assert "Hello Łucja, please complete the 1 form still to do before your visit." in rows
    assert f"patient_visit_forms_open_{ids['questionnaire']}" not in [b.key for b in at.button]
    database = _db(app_db)
    with database.read() as session:
        answered = session.get(FormRequest, ids["questionnaire"])
        opened = session.scalar(
            select(func.count()).where(
                AuditEvent.action == "form_opened", AuditEvent.entity_id == visit_id
            )
        )
    database.dispose()
    assert answered.answers == {"allergies": "Latex"} and opened == 1
    # the same link opened again later (another tab): the list, the answered form done
    again = patient_page("visit_forms", raw)
    assert not again.exception, again.exception
    assert f"patient_visit_forms_open_{ids['questionnaire']}" not in [b.key for b in again.button]
    assert f"patient_visit_forms_open_{ids['consent']}" in [b.key for b in again.button]


def test_a_cancelled_visits_forms_link_says_its_forms_are_closed(app_db):
    raw, visit_id, _ = _visit_with_two_forms(app_db)
    database = _db(app_db)
    with database.write() as session:
        session.get(Appointment, visit_id).status = AppointmentStatus.CANCELLED
    database.dispose()
    at = patient_page("visit_forms", raw)
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["These forms are closed"]
    assert [i.value for i in at.info] == [
        "This appointment is no longer scheduled, so its forms are closed. Please contact the "
        "practice."
    ]
    assert not at.error and not at.button
    _only_invalid(patient_page("visit_forms", raw[:-1]))
