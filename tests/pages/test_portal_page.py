"""The patient portal page (/portal) and the staff's payments panel, in AppTest."""

from __future__ import annotations

import json
import re
from datetime import time, timedelta

import pytest
import streamlit as st
from sqlalchemy import func, select, update
from streamlit.testing.v1 import AppTest

from core.feedback import surveys
from core.forms import after_booking
from core.kernel.authz import SYSTEM
from core.kernel.clock import local_today, to_local
from core.kernel.config import load_settings
from core.kernel.money import format_day_range, format_moment, format_money
from core.payments.providers import Checkout
from core.portal import home, sign_in
from core.portal import waitlist as portal_waitlist
from core.practice import treatment
from core.scheduling.availability import suggest_slots
from core.startup import open_database
from core.waitlist import offers
from core.waitlist.rules import Rules, set_rules
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    CancellationPolicy,
    ChangeRequest,
    ChangeStatus,
    Clinic,
    DocumentKind,
    FeedbackStatus,
    FormRequest,
    LedgerEntry,
    LedgerKind,
    Notification,
    Package,
    Patient,
    Payment,
    PortalSession,
    Service,
    ServiceDocument,
    Setting,
    SurveyResponse,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from db.types import utcnow
from tests.pages.conftest import ROOT, every_clinic_speaks
from tests.pages.test_hostile_names import HOSTILE, unescaped
from ui.patient_portal import appointments as portal_appointments
from ui.text import escape


@pytest.fixture(autouse=True)
def _fresh_read_caches():
    """st.cache_data lives as long as the process: each test has its own database copy."""
    st.cache_data.clear()


def _db(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def _no_open_request():
    """A visit with no change request waiting (another would be refused), so which visit a test
    picks does not depend on the hour the demo was seeded."""
    return (
        ~select(ChangeRequest.id)
        .where(
            ChangeRequest.appointment_id == Appointment.id,
            ChangeRequest.status.in_((ChangeStatus.OPEN, ChangeStatus.PROPOSED)),
        )
        .exists()
    )


def _patient_with_appointment(url, *, price_at_least: int = 0) -> tuple[int, int]:
    """An enrolled demo patient with a scheduled appointment over a day ahead, whose price is
    at least `price_at_least` cents (which visit is first depends on the hour the test runs)."""
    database = _db(url)
    with database.write() as s:
        appointment = next(
            a
            for a in s.scalars(
                select(Appointment)
                .where(
                    Appointment.status == AppointmentStatus.SCHEDULED,
                    Appointment.patient_id.is_not(None),
                    Appointment.start_at > utcnow() + timedelta(days=1),
                    _no_open_request(),
                )
                .order_by(Appointment.id)
            )
            if treatment.price_of(a) >= price_at_least
        )
        patient = s.get(Patient, appointment.patient_id)
        patient.portal_enrolled_at, patient.points_balance = utcnow(), 1000
        patient.consent_email = True  # enrolment asks for it; some demo patients opted out
        patient.email = patient.email or f"portal.{patient.id}@patients.example"  # some have none
        ids = patient.id, appointment.id
    database.dispose()
    return ids


def _portal(url, patient_id: int | None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    if patient_id is not None:
        database = _db(url)
        with database.write() as s:
            cookie = sign_in.start_session(s, sign_in.issue_sign_in(s, patient_id))
            at.session_state["portal_session_id"] = sign_in.session_id_for(s, cookie)
        database.dispose()
    at.run()
    at.switch_page("app_pages/portal.py")
    return at.run()


def test_signed_out_the_portal_offers_the_passwordless_form(app_db):
    patient_id, _ = _patient_with_appointment(app_db)
    at = _portal(app_db, None)
    assert at.title[0].value == "Patient portal"
    database = _db(app_db)
    with database.read() as s:
        email = s.get(Patient, patient_id).email
    at.text_input(key="portal_sign_in_address").input(email)
    at.button[0].click().run()
    assert sign_in.NEUTRAL in [i.value for i in at.info]
    at.text_input(key="portal_sign_in_address").input("nobody@example.invalid")
    at.button[0].click().run()
    assert sign_in.NEUTRAL in [i.value for i in at.info]  # the same answer
    with database.read() as s:
        sent = s.scalars(
            select(Notification.to_address).where(Notification.template == "portal_sign_in")
        )
        assert sent.all() == [email]
    database.dispose()


def test_signed_in_the_patient_sees_their_appointment_and_pays_with_points(app_db):
    patient_id, appointment_id = _patient_with_appointment(app_db)
    at = _portal(app_db, patient_id)
    assert not at.exception
    assert at.title[0].value.startswith("Hello")
    at.button(key=f"portal_pay_{appointment_id}").click().run()
    at.button(key=f"FormSubmitter:portal_pay_form_{appointment_id}-Pay now").click().run()
    assert not at.exception and not at.error
    database = _db(app_db)
    with database.read() as s:
        paid = s.scalars(select(Payment).where(Payment.appointment_id == appointment_id)).one()
        assert (paid.method, paid.status) == ("points", "paid")
    database.dispose()


def test_with_no_points_and_no_card_provider_the_rest_is_paid_at_the_desk(app_db):
    patient_id, appointment_id, price = _at_clinic(app_db, "GBP")
    database = _db(app_db)
    with database.write() as s:
        s.get(Patient, patient_id).points_balance = 0
        s.add(
            Payment(
                appointment_id=appointment_id,
                patient_id=patient_id,
                kind="prepayment",
                method="cash",
                status="paid",
                amount_cents=100,
                currency="GBP",
                paid_at=utcnow(),
            )
        )
    database.dispose()
    at = _portal(app_db, patient_id)
    assert not at.exception
    keys = [b.key for b in at.button]
    assert f"portal_pay_{appointment_id}" not in keys  # Pay led to "Choose points, card or both."
    rest = price - 100
    line = f"Please pay the £{rest // 100:,}.{rest % 100:02d} at the desk when you come."
    assert line in [c.value.replace("\\", "") for c in at.caption]


def test_the_paused_notice_shows_the_clinics_name_as_written(app_db):
    """A patient at zero points reads whom to call; a clinic named with Markdown's characters
    ('Harbour Street *1*') read its number in italics (the notice went to st.warning
    unescaped)."""
    patient_id, appointment_id = _patient_with_appointment(app_db)
    database = _db(app_db)
    with database.write() as s:
        s.get(Patient, patient_id).points_balance = 0
        for clinic in s.scalars(select(Clinic)):  # whichever clinic the notice names
            clinic.name = f"{clinic.name} *{clinic.id}*"
    database.dispose()
    at = _portal(app_db, patient_id)
    assert not at.exception
    paused = [w.value for w in at.warning if "paused" in w.value]
    assert paused and all(re.search(r"Please call .+ \\\*\d+\\\* on ", w) for w in paused), paused


def test_one_click_on_pay_leaves_a_point_so_online_requests_stay_open(app_db):
    patient_id, appointment_id, _ = _at_clinic(app_db, "GBP")
    at = _portal(app_db, patient_id)
    at.button(key=f"portal_pay_{appointment_id}").click().run()
    assert at.number_input(key="portal_pay_points").value == 5  # of 6; it offered all 6
    assert any("left one point" in c.value for c in at.caption)
    at.button(key=f"FormSubmitter:portal_pay_form_{appointment_id}-Pay now").click().run()
    assert not at.exception and not at.error
    database = _db(app_db)
    with database.read() as s:
        assert s.get(Patient, patient_id).points_balance == 1
    database.dispose()
    assert not at.warning  # no "online requests are paused"


def test_cancelling_asks_for_the_two_button_confirmation(app_db):
    patient_id, appointment_id = _patient_with_appointment(app_db)
    database = _db(app_db)
    with database.write() as s:  # outside the window, accepted at once
        appointment = s.get(Appointment, appointment_id)
        for service_id in (None, appointment.service_id):
            s.add(
                CancellationPolicy(
                    clinic_id=appointment.clinic_id,
                    service_id=service_id,
                    version=99,
                    effective_at=utcnow() - timedelta(minutes=1),
                    window_hours=12,
                    outside_window_auto_accept=True,
                    points_deducted=20,
                    policy_text="12 hours' notice, please.",
                )
            )
    database.dispose()
    at = _portal(app_db, patient_id)
    at.button(key=f"portal_change_{appointment_id}").click().run()
    assert any(
        "zero points balance locks online requests" in str(x.value) for x in [*at.info, *at.warning]
    )
    assert at.button(key="portal_change_yes").label == "Yes, pretty sure"
    # a move asks nothing 'are you sure' about: its button says what it sends
    at.radio(key="portal_change_kind").set_value("reschedule").run()
    assert at.button(key="portal_change_yes").label == "Ask to move it"
    # no time of day chosen for the patient: 'Any time of day' (what none asks) first
    moment = at.selectbox(key="portal_change_time")
    assert moment.value in (None, "") and moment.options[0] == "Any time of day"
    assert moment.options[1] == "Early morning (before 9:00)"
    at.radio(key="portal_change_kind").set_value("cancel").run()
    at.button(key="portal_change_no").click().run()
    assert "portal_change_yes" not in [b.key for b in at.button]
    at.button(key=f"portal_change_{appointment_id}").click().run()
    at.button(key="portal_change_yes").click().run()
    assert not at.exception and not at.error
    database = _db(app_db)
    with database.read() as s:
        status = s.get(Appointment, appointment_id).status
    database.dispose()
    assert status == AppointmentStatus.CANCELLED
    assert "cancelled" in at.success[0].value


def test_the_late_cancel_warning_names_a_share_of_the_visits_price(app_db):
    """A late fee of 50% of the visit's price: before cancelling, the warning names the share
    and what it comes to for this visit; cancelling charges that amount."""
    patient_id, appointment_id = _patient_with_appointment(app_db)
    database = _db(app_db)
    with database.write() as s:
        appointment = s.get(Appointment, appointment_id)
        appointment.start_at = utcnow() + timedelta(hours=6)  # inside a 24-hour window
        appointment.end_at = appointment.start_at + timedelta(minutes=30)
        for service_id in (None, appointment.service_id):
            s.add(
                CancellationPolicy(
                    clinic_id=appointment.clinic_id,
                    service_id=service_id,
                    version=99,
                    effective_at=utcnow() - timedelta(minutes=1),
                    window_hours=24,
                    late_cancel_fee_basis="percent",
                    late_cancel_fee_percent=50,
                    inside_window_needs_approval=False,
                    policy_text="Half the treatment inside 24 hours.",
                )
            )
        if appointment.package is not None:
            price = appointment.package.price_cents
        else:
            price = sum(link.service.price_cents for link in appointment.services) or (
                appointment.service.price_cents
            )
        half = (price * 50 + 50) // 100  # half up
        clinic = appointment.clinic
        amount = format_money(half, clinic.currency, clinic.locale)
    database.dispose()
    assert half > 0
    at = _portal(app_db, patient_id)
    at.button(key=f"portal_change_{appointment_id}").click().run()
    said = (
        f"cancelling now costs a fee of 50% of the visit's price ({escape(amount)} for this visit)"
    )
    assert any(said in w.value for w in at.warning), [w.value for w in at.warning]
    # in the patient's words (the link's page says the same), not the policy's 'window'
    warned = " ".join(w.value for w in at.warning)
    assert "Your appointment is less than 24 hours away: cancelling now costs" in warned
    assert "window" not in warned, warned
    at.button(key="portal_change_yes").click().run()
    assert not at.exception and not at.error
    database = _db(app_db)
    with database.read() as s:
        fee = s.scalar(
            select(LedgerEntry.amount_cents).where(
                LedgerEntry.appointment_id == appointment_id,
                LedgerEntry.kind == LedgerKind.LATE_CANCEL_FEE,
            )
        )
    database.dispose()
    assert fee == half


def test_a_cancellation_waiting_for_the_practice_shows_on_the_card(app_db):
    patient_id, appointment_id = _patient_with_appointment(app_db)
    database = _db(app_db)
    with database.write() as s:  # every cancellation waits for a manager
        appointment = s.get(Appointment, appointment_id)
        for service_id in (None, appointment.service_id):
            s.add(
                CancellationPolicy(
                    clinic_id=appointment.clinic_id,
                    service_id=service_id,
                    version=99,
                    effective_at=utcnow() - timedelta(minutes=1),
                    window_hours=24 * 365,
                    inside_window_needs_approval=True,
                    policy_text="A year's notice, please.",
                )
            )
    database.dispose()
    at = _portal(app_db, patient_id)
    at.button(key=f"portal_change_{appointment_id}").click().run()
    at.button(key="portal_change_yes").click().run()
    assert not at.exception and not at.error
    assert "sent to the practice" in at.success[0].value
    assert f"portal_change_{appointment_id}" not in [b.key for b in at.button]
    shown = [str(m.value) for m in at.markdown]
    assert ":orange-badge[Cancellation requested — waiting for the practice]" in shown


def test_sign_out_ends_the_portal_session(app_db):
    patient_id, _ = _patient_with_appointment(app_db)
    at = _portal(app_db, patient_id)
    at.button(key="portal_sign_out").click().run()
    assert at.title[0].value == "Patient portal"
    database = _db(app_db)
    with database.read() as s:
        assert s.scalars(select(PortalSession.ended_at)).one() is not None
    database.dispose()


def test_staff_see_and_record_payments_on_the_appointment(app_as, app_db, set_twice):
    # paid £25.00 twice, truly: a price under £50.00 would make the second an overpayment
    _, appointment_id = _patient_with_appointment(app_db, price_at_least=5000)
    at = app_as("staff")
    at.query_params["id"] = str(appointment_id)
    at.switch_page("app_pages/appointment.py")
    at.run()
    assert "Payments" in [h.value for h in at.subheader]
    at.session_state["payments_desk_open"] = True  # a click on the fold
    at.run()
    # the methods in words, as the payments table says them ('card' and 'cash' before)
    assert at.radio(key="payments_desk_method").proto.options == ["Card", "Cash"]
    at.number_input(key="payments_desk_amount").set_value(25.0)
    at.button(key="FormSubmitter:payments_desk_form-Record payment").click().run()
    assert not at.exception
    database = _db(app_db)
    with database.read() as s:
        paid = s.scalars(select(Payment).where(Payment.appointment_id == appointment_id)).one()
    database.dispose()
    assert (paid.amount_cents, paid.method) == (2500, "card")
    badges = [m.value for m in at.markdown]
    assert any("Paid" in b or "Part paid" in b for b in badges), badges
    # pressed again, as when it did not seem to work: the form is empty, the money taken once;
    # the browser is told to empty its boxes (a key popped from the session is not sent: the
    # browser kept showing the amount and note, and sent them with the next press)
    for box in (
        at.number_input(key="payments_desk_amount"),
        at.text_input(key="payments_desk_note"),
    ):
        assert (box.value, box.proto.set_value) == (box.proto.default, True), box.key
    at.button(key="FormSubmitter:payments_desk_form-Record payment").click().run()
    assert any("Enter the amount paid" in e.value for e in at.error), [e.value for e in at.error]
    database = _db(app_db)
    with database.read() as s:
        assert (
            len(s.scalars(select(Payment).where(Payment.appointment_id == appointment_id)).all())
            == 1
        )
    database.dispose()
    # the same £25.00 typed again at once (a press that seemed lost): refused, saying so
    at.number_input(key="payments_desk_amount").set_value(25.0)
    at.button(key="FormSubmitter:payments_desk_form-Record payment").click().run()
    assert any("this press was not recorded again" in e.value for e in at.error)
    at.checkbox(key="payments_desk_again").check()  # the patient did pay it twice
    at.button(key="FormSubmitter:payments_desk_form-Record payment").click().run()
    assert not at.error, [e.value for e in at.error]
    database = _db(app_db)
    with database.read() as s:
        paid = s.scalars(
            select(Payment.amount_cents).where(Payment.appointment_id == appointment_id)
        )
        assert sorted(paid) == [2500, 2500]
    database.dispose()
    # one of them was recorded by mistake: given back with the reason, never more than it was
    at.session_state["payments_back_open"] = True  # a click on the fold
    at.run()
    at.number_input(key="payments_back_amount").set_value(30.0)
    at.text_input(key="payments_back_reason").input("Recorded by mistake")
    at.button(key="FormSubmitter:payments_back_form-Give back").click().run()
    assert any("give back at most £25.00" in e.value for e in at.error), at.error
    at.number_input(key="payments_back_amount").set_value(25.0)
    at.button(key="FormSubmitter:payments_back_form-Give back").click().run()
    assert not at.error and not at.exception, [e.value for e in at.error]
    database = _db(app_db)
    with database.read() as s:
        back = s.scalars(select(Payment).where(Payment.kind == "refund")).one()
    database.dispose()
    assert (back.amount_cents, back.status, back.note) == (2500, "refunded", "Recorded by mistake")
    assert len(at.selectbox(key="payments_back_payment").options) == 1  # the other one is left
    for box in (
        at.number_input(key="payments_back_amount"),
        at.text_input(key="payments_back_reason"),
    ):
        assert (box.value, box.proto.set_value) == (box.proto.default, True), box.key
    assert set_twice == []  # no widget emptied through the state has a default of its own
    # ten thousand pounds typed for the rest: refused, saying what is left; taken when ticked
    at.session_state["payments_desk_open"] = True
    at.number_input(key="payments_desk_amount").set_value(10000.0)
    at.button(key="FormSubmitter:payments_desk_form-Record payment").click().run()
    assert any("more than is left to pay for this visit" in e.value for e in at.error), at.error
    at.checkbox(key="payments_desk_beyond").check()
    at.button(key="FormSubmitter:payments_desk_form-Record payment").click().run()
    assert not at.error, [e.value for e in at.error]


def test_only_the_chosen_section_runs(app_db):
    patient_id, appointment_id = _patient_with_appointment(app_db)
    every_clinic_speaks(app_db, "pt-BR")  # the points read the patient's clinic's way
    at = _portal(app_db, patient_id)
    assert at.button(key=f"portal_pay_{appointment_id}")  # Upcoming is open first
    # the calendar's view picker has not run (the sections' own picker has)
    assert [b.key for b in at.button_group] == ["portal_tab"]
    at.session_state["portal_tab"] = "Points"
    at.run()
    assert not at.exception
    shown = {m.label: m.value for m in at.metric}
    assert shown["Points balance"] == shown["Your points"] == "1.000"
    assert not [b for b in at.button if b.key == f"portal_pay_{appointment_id}"]


def test_the_portals_request_form_chooses_no_time_of_day_for_the_patient(app_db):
    """The portal's request form stood on 'Early morning', sent as the patient's wish when the
    form was skimmed on a phone: it starts empty ('Choose a time of day'), a request without
    one is told to choose it and nothing is stored."""
    patient_id, _ = _patient_with_appointment(app_db)
    database = _db(app_db)
    with database.read() as s:
        before = s.scalar(select(func.count(Appointment.id)))
    at = _portal(app_db, patient_id)
    at.session_state["portal_tab"] = "Request"
    at.run()
    moment = at.selectbox(key="portal_request_time")
    assert moment.value is None and moment.placeholder == "Choose a time of day"
    at.button(key="FormSubmitter:portal_request_form-Send my request").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Please choose a time of day."]
    with database.read() as s:
        assert s.scalar(select(func.count(Appointment.id))) == before
    database.dispose()


def test_the_request_form_offers_packages_after_the_services(app_db):
    patient_id, _ = _patient_with_appointment(app_db)
    at = _portal(app_db, patient_id)
    at.session_state["portal_tab"] = "Request"  # only the open tab runs
    at.run()
    treatments = at.selectbox(key="portal_request_service")
    packages = [o for o in treatments.options if o.startswith("Package: ")]
    assert packages and packages == treatments.options[-len(packages) :]
    database = _db(app_db)
    with database.read() as s:
        renewal = s.scalar(select(Package.id).where(Package.name == "Skin renewal"))
    treatments.set_value(("package", renewal))
    at.selectbox(key="portal_request_time").set_value("morning")
    at.button(key="FormSubmitter:portal_request_form-Send my request").click().run()
    assert not at.exception and not at.error, at.error
    with database.read() as s:
        asked = s.scalars(
            select(Appointment)
            .where(Appointment.patient_id == patient_id)
            .order_by(Appointment.id.desc())
            .limit(1)
        ).one()
        assert (asked.status, asked.package_id) == (AppointmentStatus.REQUESTED, renewal)
        assert [a.service.name for a in asked.services] == ["Skin check", "Chemical peel"]
    database.dispose()


def test_the_patient_joins_the_waitlist_for_a_package(app_db):
    patient_id, _ = _patient_with_appointment(app_db)
    at = _portal(app_db, patient_id)
    at.session_state["portal_tab"] = "Waitlist"  # only the open tab runs
    at.run()
    assert not at.exception, at.exception
    treatments = at.selectbox(key="portal_waitlist_service")
    packages = [o for o in treatments.options if o.startswith("Package: ")]
    assert packages and packages == treatments.options[-len(packages) :]  # as the request form
    database = _db(app_db)
    with database.read() as s:
        renewal = s.scalar(select(Package.id).where(Package.name == "Skin renewal"))
    treatments.set_value(("package", renewal))
    at.multiselect(key="portal_waitlist_times").set_value(["afternoon"])
    at.text_area(key="portal_waitlist_note").input("**Not** on Fridays <b>please</b>")
    at.button(key="FormSubmitter:portal_waitlist_form-Join the waitlist").click().run()
    assert not at.exception and not at.error, at.error
    assert at.success[0].value.startswith("Thank you: you are on the waitlist")
    with database.read() as s:
        entry = s.scalars(select(WaitlistEntry).where(WaitlistEntry.patient_id == patient_id)).one()
        first = s.scalar(select(Service.name).where(Service.id == entry.service_id))
    database.dispose()
    assert (entry.package_id, first, entry.source) == (renewal, "Skin check", "portal")
    assert (entry.windows, entry.note) == ("afternoon", "**Not** on Fridays <b>please</b>")
    at.button(key="FormSubmitter:portal_waitlist_form-Join the waitlist").click().run()
    assert at.error[0].value.startswith(  # once per package and clinic, in the patient's words
        "You are already on the waitlist for this package at this clinic; withdraw that entry"
    )


def test_a_patient_no_offer_can_reach_joins_the_waitlist_and_reads_why(app_db):
    """With consent to neither email nor text, the patient read 'Thank you: you are on the
    waitlist. We will offer you the first matching time…': no offer could reach them. They are
    added, told the truth and what to do, and their entry keeps saying it."""
    patient_id, _ = _patient_with_appointment(app_db)
    database = _db(app_db)
    with database.write() as s:
        patient = s.get(Patient, patient_id)
        patient.consent_email = patient.consent_sms = False
    database.dispose()
    at = _portal(app_db, patient_id)
    at.session_state["portal_tab"] = "Waitlist"
    at.run()
    at.button(key="FormSubmitter:portal_waitlist_form-Join the waitlist").click().run()
    assert not at.exception and not at.error, at.error
    [told] = at.success
    assert told.value.startswith(
        "You are on the waitlist, but we cannot offer you a time yet: offers go by email or "
        "text message, and neither can reach you now (no consent to email; no consent to text "
        "messages). To be offered times, call "
    ), told.value
    [entry] = [w.value for w in at.warning]
    assert entry.startswith("We cannot offer you a time for this entry: offers go by email")
    assert "record your consent to email or text messages" in entry


def test_the_patient_sees_and_withdraws_their_waitlist_entry(app_db):
    patient_id, _ = _patient_with_appointment(app_db)
    database = _db(app_db)
    with database.write() as s:
        renewal = s.scalars(select(Package).where(Package.name == "Skin renewal")).one()
        clinic_id = s.scalars(select(Clinic.id).order_by(Clinic.id)).first()
        first = to_local(utcnow(), s.get(Clinic, clinic_id).timezone).date()
        portal_waitlist.join_waitlist(
            s,
            patient_id,
            clinic_id=clinic_id,
            package_id=renewal.id,
            earliest=first,
            latest=first + timedelta(days=20),
            note="<b>Only</b> mornings",
        )
        entry_id = s.scalars(
            select(WaitlistEntry.id).where(WaitlistEntry.patient_id == patient_id)
        ).one()
        clinic = s.get(Clinic, clinic_id)
        days = format_day_range(first, first + timedelta(days=20), clinic.locale)
        names = (renewal.name, clinic.name)
    at = _portal(app_db, patient_id)
    at.session_state["portal_tab"] = "Waitlist"
    at.run()
    assert not at.exception, at.exception
    shown = "\n".join(m.value for m in at.markdown)
    assert f"**{names[0]} (Skin check + " in shown and names[1] in shown and days in shown
    assert escape("<b>Only</b> mornings") in [c.value for c in at.caption]  # shown as typed
    at.button(key=f"portal_waitlist_withdraw_{entry_id}").click().run()
    assert not at.exception and not at.error, at.error
    assert at.success[0].value == "You have left the waitlist for this treatment."
    assert f"portal_waitlist_withdraw_{entry_id}" not in [b.key for b in at.button]
    assert "You are not on the waitlist." in [c.value for c in at.caption]
    with database.read() as s:
        entry = s.get(WaitlistEntry, entry_id)
        event = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "waitlist_withdrawn", AuditEvent.entity_id == entry_id
            )
        ).one()
    database.dispose()
    assert entry.status == "withdrawn" and event.details["via"] == "portal"


def _send_forms(url, appointment_id: int) -> dict[str, int]:
    """A questionnaire and a consent on the appointment's service, sent as after booking."""
    database = _db(url)
    with database.write() as s:
        appointment = s.get(Appointment, appointment_id)
        service_id = appointment.service_id or appointment.services[0].service_id
        demo_documents = s.scalars(
            select(ServiceDocument).where(ServiceDocument.service_id == service_id)
        ).all()
        for document in demo_documents:  # the demo gives some services their own documents
            document.active = False
        version = 1 + max((d.version for d in demo_documents), default=0)
        s.add_all(
            [
                ServiceDocument(
                    service_id=service_id,
                    kind=DocumentKind.QUESTIONNAIRE,
                    title="Portal questionnaire",
                    questions=[{"key": "allergies", "label": "Any allergies?", "required": True}],
                    version=version,
                ),
                ServiceDocument(
                    service_id=service_id,
                    kind=DocumentKind.CONSENT,
                    title="Portal consent",
                    body="I consent to the treatment.",
                    version=version,
                ),
            ]
        )
        s.flush()
        sent = after_booking.send_forms(s, appointment, base_url="https://desk.test")
        ids = {f.document.title: f.id for f in sent}
    database.dispose()
    return ids


def test_the_patient_answers_and_signs_forms_from_the_portal(app_as, app_db):
    patient_id, appointment_id = _patient_with_appointment(app_db)
    ids = _send_forms(app_db, appointment_id)
    questionnaire, consent = ids["Portal questionnaire"], ids["Portal consent"]
    at = _portal(app_db, patient_id)
    at.session_state["portal_tab"] = "Points"  # only the open tab runs
    at.run()
    assert not [b for b in at.button if b.key == f"portal_form_open_{questionnaire}"]
    at.session_state["portal_tab"] = "Upcoming"
    at.run()
    assert any("to complete before your visit" in i.value for i in at.info)

    at.button(key=f"portal_form_open_{questionnaire}").click().run()
    typed = "<b>Penicillin</b> **and** [x](javascript:alert(1))"
    at.text_area(key=f"portal_form_{questionnaire}_q_allergies").input(typed)
    at.button(key=f"FormSubmitter:portal_form_{questionnaire}-Send my answers").click().run()
    assert not at.exception and not at.error, at.error
    assert "answers have been sent" in at.success[0].value

    database = _db(app_db)
    with database.read() as s:
        full_name = s.get(Patient, patient_id).full_name
        today = to_local(utcnow(), s.get(Appointment, appointment_id).clinic.timezone).date()
    at.button(key=f"portal_form_open_{consent}").click().run()
    assert "I consent to the treatment." in [t.value for t in at.text]
    at.text_input(key=f"portal_form_{consent}_name").input(full_name.upper())
    at.date_input(key=f"portal_form_{consent}_date").set_value(today)
    at.button(key=f"FormSubmitter:portal_form_{consent}-Sign").click().run()
    assert not at.exception and not at.error, at.error
    assert "consent is signed" in at.success[0].value
    shown = " ".join(m.value for m in at.markdown)
    assert "Portal questionnaire" in shown and ":green-badge[Answered]" in shown
    assert ":green-badge[Signed]" in shown and "Penicillin" not in shown
    assert not [b for b in at.button if b.key == f"portal_form_open_{consent}"]
    with database.read() as s:
        answered, signed = s.get(FormRequest, questionnaire), s.get(FormRequest, consent)
        assert answered.answers == {"allergies": typed}
        assert (signed.signed_name, signed.signed_on) == (full_name.upper(), today)
        assert signed.completed_at is not None
        vias = s.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "form_completed")
        ).all()
        mine = [d["via"] for d in vias if d["form_id"] in (questionnaire, consent)]
        assert mine == ["portal", "portal"]
    database.dispose()

    staff = app_as("staff")  # the appointment page shows them as it shows a link's answers
    staff.query_params["id"] = str(appointment_id)
    staff.switch_page("app_pages/appointment.py")
    staff.run()
    glance = " ".join(t.value for t in staff.text)
    assert "Questionnaire: Portal questionnaire — answered" in glance
    assert "Consent: Portal consent — signed" in glance


def _at_clinic(url, currency: str) -> tuple[int, int, int]:
    """An enrolled demo patient's priced, scheduled appointment (a day or more ahead) at the
    demo clinic in `currency`: the patient, the appointment and its price."""
    database = _db(url)
    with database.write() as s:
        appointment = s.scalars(
            select(Appointment)
            .join(Clinic, Clinic.id == Appointment.clinic_id)
            .join(Service, Service.id == Appointment.service_id)
            .where(
                Clinic.currency == currency,
                Appointment.status == AppointmentStatus.SCHEDULED,
                Appointment.patient_id.is_not(None),
                Appointment.package_id.is_(None),
                Appointment.start_at > utcnow() + timedelta(days=1),
                Service.price_cents > 0,
                _no_open_request(),  # one whose cancellation is asked for is not paid for
            )
            .order_by(Appointment.start_at)
            .limit(1)
        ).one()
        patient = s.get(Patient, appointment.patient_id)
        # 6 points: the pay form offers 5 of them and keeps one (a zero balance locks)
        patient.portal_enrolled_at, patient.points_balance = utcnow(), 6
        patient.consent_email = True
        patient.email = patient.email or f"portal.{patient.id}@patients.example"
        found = patient.id, appointment.id, appointment.service.price_cents
    database.dispose()
    return found


@pytest.mark.parametrize("currency, sign", [("USD", "$"), ("GBP", "£")])
def test_the_portal_and_the_desk_show_payments_in_the_clinics_currency(
    app_as, app_db, currency, sign
):
    patient_id, appointment_id, price = _at_clinic(app_db, currency)
    amount = f"{sign}{price // 100:,}.{price % 100:02d}"
    other = "£" if sign == "$" else "$"
    at = _portal(app_db, patient_id)
    at.button(key=f"portal_pay_{appointment_id}").click().run()
    assert not at.exception
    shown = " ".join(str(m.value) for m in [*at.markdown, *at.caption])
    # money in Markdown is escaped: two unescaped dollars would typeset what lies between
    # them as LaTeX ('$45.00**. You have 6 points; one point is worth $')
    money, mark = amount.replace("$", "\\$"), sign.replace("$", "\\$")
    assert f"due: **{money}**" in shown and f"one point is worth {mark}0.10" in shown
    assert f"To pay: {money}" in shown
    at.button(key=f"FormSubmitter:portal_pay_form_{appointment_id}-Pay now").click().run()
    rest = f"{mark}{(price - 50) // 100:,}.{(price - 50) % 100:02d}"
    # the two amounts of one message escaped too ('Paid $0.50 … the remaining $44.50')
    assert f"Paid {mark}0.50 with 5 points. Please pay the remaining {rest} at the desk." == (
        at.success[0].value
    )

    staff = app_as("staff")
    staff.query_params["id"] = str(appointment_id)
    staff.switch_page("app_pages/appointment.py")
    staff.session_state["payments_desk_open"] = True  # a click on the fold
    staff.run()
    assert staff.number_input(key="payments_desk_amount").label == f"Amount ({sign})"
    staff.number_input(key="payments_desk_amount").set_value(10.0)
    staff.button(key="FormSubmitter:payments_desk_form-Record payment").click().run()
    assert not staff.exception and not staff.error
    panel = " ".join(str(x.value) for x in [*staff.caption, *staff.table])
    assert f"Prepayment asked: {money} · still to pay: {mark}" in panel and other not in panel
    table = staff.table[0].value  # st.table renders Markdown in its cells
    assert list(table["Amount"]) == [f"{mark}0.50", f"{mark}10.00"]
    database = _db(app_db)
    with database.read() as s:
        stored = s.scalars(select(Payment.currency).where(Payment.appointment_id == appointment_id))
        assert stored.all() == [currency, currency]
    database.dispose()


def test_the_pay_form_counts_points_in_the_clinics_locale(app_db):
    """A balance of 1,250 points read 'You have 1250 points' in every locale, beside money in
    the clinic's; in a de-DE clinic it reads 1.250, as the Points tab does."""
    database = _db(app_db)
    with database.write() as s:
        s.execute(update(Clinic).values(currency="EUR", locale="de-DE"))
    database.dispose()
    patient_id, appointment_id, _ = _at_clinic(app_db, "EUR")
    database = _db(app_db)
    with database.write() as s:
        s.get(Patient, patient_id).points_balance = 1250
    database.dispose()
    at = _portal(app_db, patient_id)
    at.button(key=f"portal_pay_{appointment_id}").click().run()
    assert not at.exception
    shown = " ".join(str(m.value) for m in at.markdown)
    # Markdown-escaped: it reads 1.250
    assert "You have 1\\.250 points; one point is worth 0,10\xa0€" in shown, shown


def test_a_desk_payment_with_more_decimals_than_the_currency_is_refused(app_as, app_db):
    """1500.5 typed for a JPY clinic is refused, saying yen have no decimals (before, ￥1,501
    was stored); nothing is recorded."""
    database = _db(app_db)
    with database.write() as s:
        s.execute(update(Clinic).values(currency="JPY", locale="ja-JP"))
    database.dispose()
    _, appointment_id, _ = _at_clinic(app_db, "JPY")
    staff = app_as("staff")
    staff.query_params["id"] = str(appointment_id)
    staff.switch_page("app_pages/appointment.py")
    staff.session_state["payments_desk_open"] = True  # a click on the fold
    staff.run()
    staff.number_input(key="payments_desk_amount").set_value(1500.5)
    staff.button(key="FormSubmitter:payments_desk_form-Record payment").click().run()
    assert not staff.exception
    assert "JPY amounts have no decimals" in staff.error[0].value
    database = _db(app_db)
    with database.read() as s:
        paid = s.scalars(select(Payment).where(Payment.appointment_id == appointment_id)).all()
    database.dispose()
    assert paid == []


def test_the_patient_books_a_time_offered_to_them_in_the_portal(app_db):
    patient_id, visit_id = _patient_with_appointment(app_db)
    database = _db(app_db)
    with database.write() as s:
        set_rules(s, SYSTEM, Rules(min_notice_minutes=0, quiet_start=time(0), quiet_end=time(0)))
        s.execute(update(WaitlistEntry).values(status=WaitlistStatus.WITHDRAWN))  # ours alone
        clinic = s.scalars(select(Clinic).order_by(Clinic.id)).first()
        today = to_local(utcnow(), clinic.timezone).date()
        visit = s.get(Appointment, visit_id)
        slot = next(  # a free time the patient is not at their own visit (another provider's)
            found
            for found in suggest_slots(
                s, clinic_id=clinic.id, duration_minutes=30, day=today + timedelta(days=2)
            )
            if not (found.start_at < visit.end_at and found.end_at > visit.start_at)
        )
        day = to_local(slot.start_at, clinic.timezone).date()
        service = s.scalars(select(Service).where(Service.duration_minutes <= 30)).first()
        portal_waitlist.join_waitlist(
            s,
            patient_id,
            clinic_id=clinic.id,
            service_id=service.id,
            earliest=day,
            latest=day + timedelta(days=1),
            weekdays=tuple(range(7)),
        )
        offers.offer_slot(
            s,
            SYSTEM,
            clinic_id=clinic.id,
            provider_id=slot.provider_id,
            start_at=slot.start_at,
            end_at=slot.start_at + timedelta(minutes=30),
            base_url="http://clinic.example",
        )
        offer_id = s.scalars(select(WaitlistOffer.id)).one()
    at = _portal(app_db, patient_id)
    at.session_state["portal_tab"] = "Waitlist"
    at.run()
    assert not at.exception, at.exception
    (said,) = [i.value for i in at.info if "Book it here or with the link" in i.value]
    # one at a time (the rules' default): held for them alone, not "the first to accept"
    assert "holding this time for you alone" in said and "first" not in said
    at.button(key=f"portal_offer_accept_{offer_id}").click().run()
    assert not at.exception and not at.error, at.error
    assert at.success[0].value.startswith("Booked: ")
    assert "You are not on the waitlist." in [c.value for c in at.caption]  # booked: not waiting
    with database.read() as s:
        offer = s.get(WaitlistOffer, offer_id)
        booked = s.get(Appointment, offer.appointment_id)
    database.dispose()
    assert (offer.status, booked.patient_id, booked.start_at) == (
        "accepted",
        patient_id,
        slot.start_at,
    )


def test_the_patients_calendar_shades_no_hours_and_speaks_their_clinics_locale(app_db):
    patient_id, _ = _patient_with_appointment(app_db)
    every_clinic_speaks(app_db, "en-US")  # not the widget's en-GB default
    at = _portal(app_db, patient_id)
    at.session_state["portal_tab"] = "Calendar"
    at.run()
    assert not at.exception, at.exception
    component = next(e for e in at.main if e.type == "component_instance")
    options = json.loads(component.proto.json_args)["options"]
    assert options["businessHours"] is False  # a patient's month is not greyed out
    assert options["locale"] == "en-us" and options["eventTimeFormat"]["hour12"]


def test_the_patients_calendar_pages_to_other_months_with_its_own_buttons(app_db):
    """A visit next month was out of reach on the portal's calendar: it opened on this month
    with the staff calendar's toolbar, title only (staff page by Streamlit's buttons). The
    patient's events are all in it, so FullCalendar's own previous, next and today buttons
    page through them (checked in Chromium at 390 px)."""
    patient_id, _ = _patient_with_appointment(app_db)
    at = _portal(app_db, patient_id)
    at.session_state["portal_tab"] = "Calendar"
    at.run()
    assert not at.exception, at.exception
    component = next(e for e in at.main if e.type == "component_instance")
    toolbar = json.loads(component.proto.json_args)["options"]["headerToolbar"]
    assert toolbar == {"left": "prev,next", "center": "title", "right": "today"}, toolbar


def test_the_patients_calendar_legend_names_only_the_states_of_their_own_visits(app_db):
    """The legend under a patient's calendar explains the colours on it: the states of their
    own visits, not the staff calendar's whole list ('Out of office', 'Held (original time)',
    states none of their visits is in), which on a phone ran to three lines of labels."""
    patient_id, _ = _patient_with_appointment(app_db)
    at = _portal(app_db, patient_id)
    at.session_state["portal_tab"] = "Calendar"
    at.run()
    assert not at.exception, at.exception
    component = next(e for e in at.main if e.type == "component_instance")
    colours = {e["color"] for e in json.loads(component.proto.json_args)["events"]}
    legend = next(m.value for m in at.markdown if "border-radius:4px" in m.value)
    named = re.findall(r">([^<]+)</span>", legend)
    assert "Scheduled" in named
    assert "Out of office" not in named and "Held (original time)" not in named
    assert len(named) == len(colours), (named, colours)  # one label a colour on the calendar
    # a label wraps whole to the next line, never 'Checked' on one and 'in' on the next
    assert legend.count("white-space:nowrap") == len(named), legend


def test_a_patient_of_both_demo_clinics_sees_each_in_its_own_money_zone_and_clock(app_db):
    """Nora White has visits at Harbour Street (GBP, London) and Lakeside (USD, New York)."""
    database = _db(app_db)
    with database.write() as s:
        nora = s.scalars(
            select(Patient).where(Patient.first_name == "Nora", Patient.last_name == "White")
        ).one()
        nora.portal_enrolled_at, nora.consent_email = utcnow(), True
        latest = s.scalars(  # her home clinic: that of her latest booking
            select(Appointment)
            .where(Appointment.patient_id == nora.id)
            .order_by(Appointment.created_at.desc(), Appointment.id.desc())
        ).first()
        other = s.scalars(
            select(Appointment)
            .where(Appointment.patient_id == nora.id, Appointment.clinic_id != latest.clinic_id)
            .order_by(Appointment.start_at.desc())
        ).first()
        earned = LedgerEntry(
            patient_id=nora.id,
            appointment_id=other.id,
            kind=LedgerKind.POINTS_EARNED,
            points=10,
            created_at=utcnow().replace(hour=23, minute=30, second=0, microsecond=0),
        )
        s.add(earned)
        s.flush()
        expected = format_moment(earned.created_at, other.clinic.timezone, other.clinic.locale)
        home_clinic, other_clinic = latest.clinic, other.clinic
        patient_id = nora.id
    database.dispose()
    assert home_clinic.currency != other_clinic.currency  # the demo's two clinics
    at = _portal(app_db, patient_id)
    at.session_state["portal_tab"] = "Points"
    at.run()
    assert not at.exception, at.exception
    worth = " and ".join(
        f"{escape(format_money(10, c.currency, c.locale))} at {c.name}"
        for c in (home_clinic, other_clinic)
    )
    assert f"One point is worth {worth} when you pay in advance." in [c.value for c in at.caption]
    table = at.dataframe[0].value
    assert expected in list(table["When"])  # in the visit's own clinic's zone and locale
    at.session_state["portal_tab"] = "Calendar"
    at.run()
    component = next(e for e in at.main if e.type == "component_instance")
    sent = json.loads(component.proto.json_args)
    assert sent["options"]["displayEventTime"] is False  # each title carries its own clock
    assert any(e["title"].startswith(("1", "2", "0")) for e in sent["events"])
    # the calendar says whose today, in a sentence ('today is today at ...' said nothing)
    assert (
        "Each visit is shown at its clinic's local time; the highlighted day is today's date at "
        f"{home_clinic.name}, where you booked last."
    ) in [c.value for c in at.caption], [c.value for c in at.caption]


def test_the_practices_survey_questions_reach_the_portal_as_text(app_db):
    """The owner's survey questions are radio labels in the portal's survey too."""
    patient_id, appointment_id = _patient_with_appointment(app_db)
    database = _db(app_db)
    with database.write() as s:
        s.merge(Setting(key=surveys.SETTING_QUESTIONS, value=[{"key": "odd", "label": HOSTILE}]))
        visit = s.get(Appointment, appointment_id)  # scheduled: no survey answered yet
        visit.status, visit.feedback_status = AppointmentStatus.COMPLETED, FeedbackStatus.NONE
        visit.start_at -= timedelta(days=30)  # a completed visit is in the past
        visit.end_at -= timedelta(days=30)
        s.flush()
        surveys.request_feedback(s, SYSTEM, visit.id, base_url="http://x")
        visit_id = visit.id
    database.dispose()
    at = _portal(app_db, patient_id)
    at.session_state["portal_tab"] = "Visits and surveys"  # only the open tab runs
    at.run().button(key=f"portal_take_survey_{visit_id}").click().run()
    assert not at.exception, at.exception
    assert at.radio(key="portal_survey_odd").label == escape(HOSTILE)
    assert not unescaped(at), unescaped(at)
    # the scale in words, as the emailed survey gives it: which end of 1-5 is good, and that
    # the practice's own questions may be left
    rating = at.radio(key="portal_survey_rating").label
    assert rating == "Overall, how would you rate your visit? (1 = poor, 5 = excellent)"
    said = [c.value for c in at.caption]
    assert "Optional: rate each from 1 (poor) to 5 (excellent)." in said, said


def test_the_points_history_opens_with_the_opening_balance_and_adds_up(app_db):
    database = _db(app_db)
    with database.write() as s:
        opening = s.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.kind == LedgerKind.POINTS_OPENING, LedgerEntry.points == 100)
            .order_by(LedgerEntry.id)
            .limit(1)
        ).one()
        patient = s.get(Patient, opening.patient_id)
        patient.portal_enrolled_at, patient.consent_email = utcnow(), True
        patient.email = patient.email or f"portal.{patient.id}@patients.example"
        patient_id, balance = patient.id, patient.points_balance
    database.dispose()
    at = _portal(app_db, patient_id)
    at.session_state["portal_tab"] = "Points"
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    # counts as the clinic's locale writes them, as the balance above the table ("1,000", not
    # "1000"), a change with its sign
    assert ("Opening balance", "+100") in list(zip(table["What"], table["Points"], strict=True))
    number = lambda text: int(text.replace(",", "").replace("\u2212", "-"))  # noqa: E731
    assert sum(number(p) for p in table["Points"]) == balance
    # the balance each line left, newest first: it ends at the balance shown above it
    assert table["Balance"].iloc[0] == f"{balance:,}" and table["Balance"].iloc[-1] == "100"
    assert not any(str(v).startswith("#") for v in table["Appointment"])  # the visit in words
    # on a phone (390 px) what happened and its points come first, in columns that fit the
    # screen together, the date after them: the date first left only it and half of 'What'
    assert list(table.columns[:3]) == ["What", "Points", "Balance"], list(table.columns)
    widths = {name: c.get("width") for name, c in json.loads(at.dataframe[0].proto.columns).items()}
    assert (widths["What"], widths["Points"], widths["Balance"]) == ("medium", "small", "small")
    aligned = {n: c.get("alignment") for n, c in json.loads(at.dataframe[0].proto.columns).items()}
    assert aligned["Points"] == aligned["Balance"] == "right"


def test_a_survey_answered_through_the_emailed_link_meanwhile_is_said_so_in_the_portal(app_db):
    """The patient opened the survey in the portal, then answered the emailed link in another
    tab: the portal says so in a sentence, stores nothing more, and closes the survey."""
    patient_id, appointment_id = _patient_with_appointment(app_db)
    database = _db(app_db)
    with database.write() as s:
        visit = s.get(Appointment, appointment_id)  # scheduled: no survey answered yet
        visit.status, visit.feedback_status = AppointmentStatus.COMPLETED, FeedbackStatus.NONE
        visit.start_at -= timedelta(days=30)
        visit.end_at -= timedelta(days=30)
        s.flush()
        link = surveys.request_feedback(s, SYSTEM, visit.id, base_url="http://x").link
        visit_id = visit.id
    at = _portal(app_db, patient_id)
    at.session_state["portal_tab"] = "Visits and surveys"
    at.run().button(key=f"portal_take_survey_{visit_id}").click().run()
    at.radio(key="portal_survey_nps").set_value(8)
    at.radio(key="portal_survey_rating").set_value(4)
    with database.write() as s:  # the other tab
        surveys.submit_survey(s, link.split("t=")[1], surveys.SurveyAnswers(10, 5))
    at.button(key=f"FormSubmitter:portal_survey_form_{visit_id}-Send my answers").click().run()
    assert not at.exception, at.exception
    assert "You have answered the survey for this visit already. Thank you!" in [
        e.value for e in at.error
    ]
    assert not [r for r in at.radio if r.key == "portal_survey_nps"]
    with database.read() as s:
        answered = select(SurveyResponse.nps).where(SurveyResponse.appointment_id == visit_id)
        assert list(s.scalars(answered)) == [10]
    database.dispose()


def test_the_patient_withdraws_a_request_still_waiting_after_confirming(app_db):
    patient_id, appointment_id = _patient_with_appointment(app_db)
    database = _db(app_db)
    with database.write() as s:
        booked = s.get(Appointment, appointment_id)
        asked = home.request_appointment(
            s, patient_id, clinic_id=booked.clinic_id, service_id=booked.service_id,
            requested_day=local_today(booked.clinic.timezone) + timedelta(days=9),
            time_of_day="afternoon",
        )  # fmt: skip
        assert "received" in asked
        request_id = s.scalar(
            select(Appointment.id)
            .where(Appointment.patient_id == patient_id, Appointment.status == "requested")
            .order_by(Appointment.id.desc())
        )
    database.dispose()
    at = _portal(app_db, patient_id)
    assert f"portal_withdraw_{appointment_id}" not in [b.key for b in at.button]  # booked
    at.button(key=f"portal_withdraw_{request_id}").click().run()
    assert any("Withdraw this request?" in w.value for w in at.warning)
    at.button(key="portal_withdraw_no").click().run()
    assert "portal_withdraw_yes" not in [b.key for b in at.button]
    at.button(key=f"portal_withdraw_{request_id}").click().run()
    at.button(key="portal_withdraw_yes").click().run()
    assert not at.exception and not at.error
    assert "Your request has been withdrawn." in at.success[0].value
    database = _db(app_db)
    with database.read() as s:
        assert s.get(Appointment, request_id).status == AppointmentStatus.CANCELLED
    database.dispose()


def test_a_waitlist_entry_the_practice_can_no_longer_offer_says_so_in_the_portal(app_db):
    """The practice stopped offering the package while the patient waited: staff saw why on
    their list, the patient saw their entry as if waiting still. The portal now says no time
    will be offered and what to do."""
    patient_id, _ = _patient_with_appointment(app_db)
    database = _db(app_db)
    with database.write() as s:
        renewal = s.scalars(select(Package).where(Package.name == "Skin renewal")).one()
        clinic = s.scalars(select(Clinic).order_by(Clinic.id)).first()
        first = to_local(utcnow(), clinic.timezone).date()
        portal_waitlist.join_waitlist(
            s, patient_id, clinic_id=clinic.id, package_id=renewal.id,
            earliest=first, latest=first + timedelta(days=20),
        )  # fmt: skip
        renewal.active = False  # withdrawn by the practice while the patient waits
        phone = clinic.phone
    database.dispose()
    at = _portal(app_db, patient_id)
    at.session_state["portal_tab"] = "Waitlist"
    at.run()
    assert not at.exception, at.exception
    said = " ".join(w.value for w in at.warning)
    assert "The practice no longer offers Skin renewal, so no time will be offered" in said, said
    assert f"Withdraw it or call the practice on {phone}." in said


def test_a_session_that_lapsed_while_the_change_form_was_open_says_so_and_sends_nothing(app_db):
    """The patient opened Cancel or reschedule, left the phone for longer than the idle limit,
    then pressed Yes: the portal showed the bare sign-in form, with no word of why or of
    whether the cancellation went. It now says the session ended and nothing was sent."""
    patient_id, appointment_id = _patient_with_appointment(app_db)
    at = _portal(app_db, patient_id)
    at.button(key=f"portal_change_{appointment_id}").click().run()
    assert "portal_change_yes" in [b.key for b in at.button]
    database = _db(app_db)
    with database.write() as s:  # 31 minutes pass with the form open
        s.execute(update(PortalSession).values(last_seen_at=utcnow() - timedelta(minutes=31)))
    database.dispose()
    at.button(key="portal_change_yes").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Patient portal"
    said = " ".join(w.value for w in at.warning)
    assert "signed out of the portal after 30 minutes without activity" in said, said
    assert "was not sent. Please sign in again below" in said
    database = _db(app_db)
    with database.read() as s:
        assert s.get(Appointment, appointment_id).status == AppointmentStatus.SCHEDULED
        assert s.scalar(select(PortalSession.ended_at)) is not None
    database.dispose()
    at.text_input(key="portal_sign_in_address").input("nobody@example.invalid")
    at.button[0].click().run()
    assert not at.warning  # said once, not on every press of the sign-in form


def test_a_visit_neither_cancellable_nor_movable_online_says_to_call_instead_of_failing(app_db):
    """The policy takes no cancellation online and the visit was moved the most times it
    allows: the change panel offered an empty choice and its Yes raised a traceback. The card
    now says the visit cannot be changed online and gives the practice's number, instead of a
    "Cancel or reschedule" button that led only to that sentence."""
    patient_id, appointment_id = _patient_with_appointment(app_db)
    database = _db(app_db)
    with database.write() as s:
        appointment = s.get(Appointment, appointment_id)
        for service_id in (None, appointment.service_id):
            s.add(
                CancellationPolicy(
                    clinic_id=appointment.clinic_id,
                    service_id=service_id,
                    version=99,
                    effective_at=utcnow() - timedelta(minutes=1),
                    window_hours=12,
                    online_cancel_allowed=False,
                    max_reschedules=1,
                    policy_text="Please call us.",
                )
            )
        appointment.reschedule_count = 1
        phone = appointment.clinic.phone
    database.dispose()
    at = _portal(app_db, patient_id)
    assert not at.exception, at.exception
    assert f"portal_change_{appointment_id}" not in [b.key for b in at.button]
    said = " ".join(str(c.value) for c in at.caption)
    assert "cannot be cancelled or moved online any more" in said, said
    assert f"please call the practice on {phone}." in said
    with _db(app_db).read() as s:
        assert s.get(Appointment, appointment_id).status == AppointmentStatus.SCHEDULED


class _CardProvider:
    """A card provider that takes cards online and hands out checkout pages (no network)."""

    online = True

    def __init__(self) -> None:
        self.started: list[int] = []

    def checkout(self, *, payment_id, **_) -> Checkout:
        self.started.append(payment_id)
        return Checkout(f"cs_test_{payment_id}", f"https://pay.example/cs_test_{payment_id}")


def test_a_second_press_on_pay_now_after_the_card_page_opened_spends_nothing_again(
    app_db, monkeypatch
):
    """Points and card: Pay now answered with a link under the form, and the form stayed. A
    patient on a phone who did not see the link pressed again: the points were spent a second
    time and a second card payment was opened. Now the form gives way to the link."""
    patient_id, appointment_id, _ = _at_clinic(app_db, "GBP")
    card = _CardProvider()
    monkeypatch.setattr(portal_appointments, "provider_for", lambda _settings: card)
    at = _portal(app_db, patient_id)
    at.button(key=f"portal_pay_{appointment_id}").click().run()
    at.number_input(key="portal_pay_points").set_value(2)
    pay_now = f"FormSubmitter:portal_pay_form_{appointment_id}-Pay now"
    at.button(key=pay_now).click().run()
    assert not at.exception and not at.error
    assert len(card.started) == 1
    if pay_now in [b.key for b in at.button]:  # the old page: the form is still offered
        at.button(key=pay_now).click().run()
    assert pay_now not in [b.key for b in at.button]
    assert any("Finish it on the secure payment page" in i.value for i in at.info)
    database = _db(app_db)
    with database.read() as s:
        assert s.get(Patient, patient_id).points_balance == 4  # 2 spent, once
        pending = select(Payment).where(
            Payment.appointment_id == appointment_id, Payment.method == "stripe"
        )
        assert len(s.scalars(pending).all()) == 1
    database.dispose()
    assert len(card.started) == 1


def test_a_booked_visit_offers_add_to_my_calendar_and_no_one_elses_does(app_db):
    patient_id, appointment_id = _patient_with_appointment(app_db)
    database = _db(app_db)
    with database.read() as s:
        other = s.scalars(
            select(Appointment.id).where(
                Appointment.status == AppointmentStatus.SCHEDULED,
                Appointment.patient_id != patient_id,
            )
        ).first()
    at = _portal(app_db, patient_id)
    assert not at.exception
    offered = {b.key: b.label for b in at.get("download_button")}
    assert offered[f"portal_ics_{appointment_id}"] == "Add to my calendar"
    assert f"portal_ics_{other}" not in offered
    shown = [int(key.removeprefix("portal_ics_")) for key in offered]
    with database.read() as s:
        owners = s.scalars(select(Appointment.patient_id).where(Appointment.id.in_(shown)))
        assert set(owners) == {patient_id}
    database.dispose()


def test_every_section_of_the_portal_is_reachable_on_a_phone(app_db):
    """At 390 px the seven tabs ran past the screen's edge: 'Points', 'Request' and
    'Waitlist' were out of sight behind a small arrow (seen in Chromium). The sections are
    a row of buttons that wraps onto a second line (checked in Chromium at 390 px: all
    seven in view), each opening its section alone."""
    patient_id, _ = _patient_with_appointment(app_db)
    at = _portal(app_db, patient_id)
    assert not at.tabs
    sections = at.button_group(key="portal_tab")
    assert sections.options == [
        "Upcoming", "Calendar", "Visits and surveys", "History", "Points", "Request", "Waitlist"
    ]  # fmt: skip
    assert sections.value == "Upcoming"
    at.button_group(key="portal_tab").set_value("Waitlist").run()
    assert not at.exception and at.button_group(key="portal_tab").value == "Waitlist"
    assert not any(c.key and c.key.startswith("portal_appt_") for c in at.get("flex_container"))


def test_the_patients_calendar_opens_on_a_list_of_the_month(app_db):
    """On a phone a month's day is some 50 px wide: a visit's time was cut to '08:0' (seen
    in Chromium at 390 px). The calendar opens on the month as a list (each visit a line,
    its time whole), the grid a choice beside it; a grid's event in a narrow
    frame has a smaller dot and line, so the time reads whole (checked in Chromium at 390 px)."""
    patient_id, _ = _patient_with_appointment(app_db)
    at = _portal(app_db, patient_id)
    at.session_state["portal_tab"] = "Calendar"
    at.run()
    assert not at.exception, at.exception
    assert at.button_group(key="portal_calendar_view").options[0] == "List"
    drawn = json.loads(next(e for e in at.main if e.type == "component_instance").proto.json_args)
    assert drawn["options"]["initialView"] == "listMonth"
    assert "@media (max-width: 600px)" in drawn["custom_css"]
