"""Date and time pickers in the clinic's locale: a London clinic picks days as 31/12/2026 on a
24-hour clock, a New York one as 12/31/2026 on a 12-hour clock, a Berlin one as 31.12.2026 —
on staff pages and on the patient's own (links and portal) alike."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import streamlit as st
from sqlalchemy import distinct, func, select, update
from streamlit.testing.v1 import AppTest

from core.kernel import clock
from core.kernel.authz import SYSTEM
from core.kernel.config import load_settings
from core.patients import invitations
from core.portal import patient_links, sign_in
from core.startup import open_database
from db.models import Appointment, Clinic, Patient, Role
from db.types import utcnow
from tests.factories import make_user
from tests.pages.conftest import ROOT, every_clinic_speaks, patient_page

PLACES = pytest.mark.parametrize(
    ("locale", "day", "clock"),
    [
        ("en-GB", "DD/MM/YYYY", "24h"),
        ("en-US", "MM/DD/YYYY", "12h"),
        ("de-DE", "DD.MM.YYYY", "24h"),
    ],
)


@pytest.fixture(autouse=True)
def _fresh_read_caches():
    st.cache_data.clear()


def _db(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def _formats(at: AppTest) -> tuple[set[str], set[str]]:
    assert not at.exception, at.exception
    return {d.proto.format for d in at.date_input}, {t.proto.format for t in at.time_input}


@PLACES
@pytest.mark.parametrize(
    ("page", "opened", "dates", "times"),
    [
        ("app_pages/book.py", {}, 1, 1),
        ("app_pages/schedules.py", {}, 2, 2),
        ("app_pages/calendar.py", {}, 1, 0),
        ("app_pages/cancellation_analytics.py", {}, 1, 0),
        ("app_pages/survey_analytics.py", {}, 1, 0),
        ("app_pages/audit_log.py", {}, 1, 0),
        ("app_pages/messages.py", {}, 0, 2),
        ("app_pages/waitlist.py", {"waitlist_add_open": True, "waitlist_rules_open": True}, 1, 2),
        ("app_pages/patients.py", {"patients_new_open": True}, 1, 0),
        ("app_pages/cash_up.py", {}, 2, 0),
        ("app_pages/data.py", {}, 1, 0),
    ],
)
def test_staff_pages_pick_days_and_times_in_the_clinics_locale(
    app_as, app_db, locale, day, clock, page, opened, dates, times
):
    every_clinic_speaks(app_db, locale)
    at = app_as("owner", page)
    for key, value in opened.items():
        at.session_state[key] = value
    day_formats, clock_formats = _formats(at.run())
    assert len(at.date_input) >= dates and len(at.time_input) >= times
    assert day_formats == ({day} if dates else set())
    assert clock_formats == ({clock} if times else set())


@PLACES
def test_patient_links_pick_days_in_their_clinics_locale(app_db, locale, day, clock):
    every_clinic_speaks(app_db, locale)
    database = _db(app_db)
    with database.write() as s:
        owner = make_user(s, "pick_owner", Role.OWNER)
        booking = patient_links.issue_booking_link(s, owner, 1, base_url="http://x")
        patient = s.scalars(
            select(Patient).where(
                Patient.email.is_not(None),
                Patient.consent_email.is_(True),
                Patient.portal_enrolled_at.is_(None),
            )
        ).first()
        enrol = invitations.send_invitation(s, SYSTEM, patient.id, base_url="http://x").link
    database.dispose()
    for purpose, link, keys in [
        ("booking", booking, ["patient_booking_day", "patient_booking_dob"]),
        ("enroll", enrol, ["patient_enroll_dob"]),
    ]:
        at = patient_page(purpose, link.split("&t=")[1])
        assert _formats(at) == ({day}, set())
        assert all(at.date_input(key=key) for key in keys)  # the pickers the patient fills in


@PLACES
def test_the_portal_picks_days_in_the_patients_clinics_locale(app_db, locale, day, clock):
    every_clinic_speaks(app_db, locale)
    database = _db(app_db)
    with database.write() as s:
        patient_id = s.scalars(
            select(Appointment.patient_id).where(Appointment.patient_id.is_not(None))
        ).first()
        s.get(Patient, patient_id).portal_enrolled_at = utcnow()
        cookie = sign_in.start_session(s, sign_in.issue_sign_in(s, patient_id))
        portal_session = sign_in.session_id_for(s, cookie)
    database.dispose()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.session_state["portal_session_id"] = portal_session
    at.session_state["portal_tab"] = "Request"  # only the open tab runs
    at.run()
    at.switch_page("app_pages/portal.py")
    at.run()
    assert _formats(at) == ({day}, set())
    assert at.date_input(key="portal_request_day")


@pytest.mark.parametrize(
    ("page", "key"),
    [
        ("app_pages/cancellation_analytics.py", "cancel_days"),
        ("app_pages/survey_analytics.py", "survey_analytics_days"),
        ("app_pages/cash_up.py", "payments_export_to"),
        ("app_pages/schedules.py", "schedules_off_from_day"),
    ],
)
def test_day_ranges_end_on_the_practices_today_not_the_servers(
    app_as, app_db, monkeypatch, page, key
):
    """At 03:00 UTC on 5 December it is still the 4th in New York (a range ends on it, a
    single day is it)."""
    database = _db(app_db)
    with database.write() as s:
        s.execute(update(Clinic).values(timezone="America/New_York", locale="en-US"))
    database.dispose()
    monkeypatch.setattr(clock, "utcnow", lambda: datetime(2026, 12, 5, 3, 0, tzinfo=UTC))
    at = app_as("owner", page)
    assert not at.exception, at.exception
    value = at.date_input(key=key).value
    assert (value[-1] if isinstance(value, tuple) else value) == date(2026, 12, 4)


def test_the_portals_request_picks_days_in_the_prefilled_clinics_order(app_db):
    """The demo's two clinics speak en-GB and en-US. The request form is prefilled with the
    clinic of the patient's latest booking, and its day is picked in that clinic's order even
    when their latest visit is at the other clinic."""
    database = _db(app_db)
    with database.write() as s:
        both = (
            select(Appointment.patient_id)
            .where(Appointment.patient_id.is_not(None))
            .group_by(Appointment.patient_id)
            .having(func.count(distinct(Appointment.clinic_id)) == 2)
        )
        patient_id = s.scalars(both).first()
        visits = s.scalars(
            select(Appointment)
            .where(Appointment.patient_id == patient_id)
            .order_by(Appointment.start_at.desc(), Appointment.id.desc())
        ).all()
        booked_last = next(a for a in visits if a.clinic_id != visits[0].clinic_id)
        booked_last.created_at = utcnow()  # the latest booking: at the other clinic
        expected = {"en-GB": "DD/MM/YYYY", "en-US": "MM/DD/YYYY"}[booked_last.clinic.locale]
        s.get(Patient, patient_id).portal_enrolled_at = utcnow()
        portal_session = sign_in.session_id_for(
            s, sign_in.start_session(s, sign_in.issue_sign_in(s, patient_id))
        )
    database.dispose()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.session_state["portal_session_id"] = portal_session
    at.session_state["portal_tab"] = "Request"
    at.run()
    at.switch_page("app_pages/portal.py")
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="portal_request_clinic").value == booked_last.clinic_id
    assert at.date_input(key="portal_request_day").proto.format == expected
