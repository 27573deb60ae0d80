"""AppTest: the check-in screen — scanner text, a picture of the QR code, wrong and used codes,
and marking a patient arrived by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest
import streamlit as st
from sqlalchemy import select

from core.kernel.accounts import actor_of
from core.kernel.authz import SYSTEM
from core.kernel.clock import to_local
from core.kernel.config import load_settings
from core.kernel.money import format_clock
from core.scheduling import checkin, visits
from core.startup import open_database
from db.models import Appointment, AppointmentStatus, User
from tests.pages.conftest import today_in
from ui.text import escape

PAGE = "app_pages/check_in.py"


@pytest.fixture(autouse=True)
def _fresh_read_caches():
    """st.cache_data lives as long as the process: each test has its own database copy."""
    st.cache_data.clear()


SUBMIT = "FormSubmitter:check_in_scan-Check in"


def _db(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def _appointment_with_code(url, clinic_id=1):
    database = _db(url)
    with database.write() as session:
        start = today_in(40, "Europe/London" if clinic_id == 1 else "America/New_York")
        row = Appointment(
            clinic_id=clinic_id,
            provider_id=1 if clinic_id == 1 else 4,
            patient_id=1,
            service_id=1,
            status=AppointmentStatus.SCHEDULED,
            start_at=start,
            end_at=start + timedelta(minutes=30),
        )
        session.add(row)
        session.flush()
        ident, (code, png) = row.id, checkin.issue_code_for(session, SYSTEM, row.id)
    database.dispose()
    return ident, code, png


def _status(url, ident):
    database = _db(url)
    with database.read() as session:
        status = session.scalar(select(Appointment.status).where(Appointment.id == ident))
    database.dispose()
    return status


def _arrived(url, ident):
    """'Checked in: Ivy Walker, Blood test at 11:00 (#3962).' for the appointment."""
    database = _db(url)
    with database.read() as session:
        row = session.get(Appointment, ident)
        clock = format_clock(to_local(row.start_at, row.clinic.timezone), row.clinic.locale)
        text = f"Checked in: {row.patient.full_name}, {row.service.name} at {clock} (#{ident})."
    database.dispose()
    return text


def _scan(at, text):
    at.text_input(key="check_in_code").input(text)
    return at.button(key=SUBMIT).click().run()


def test_scanned_code_checks_in_once(app_as, app_db):
    ident, code, _ = _appointment_with_code(app_db)
    at = _scan(app_as("staff", PAGE), code)
    assert not at.exception and not at.error, at.error
    assert at.success[0].value == escape(_arrived(app_db, ident))
    assert _status(app_db, ident) == AppointmentStatus.CHECKED_IN
    at = _scan(at, code)
    assert "a code works once" in at.error[0].value


def test_wrong_and_foreign_codes_are_explained(app_as, app_db):
    at = _scan(app_as("staff", PAGE), "CDCHK:not-a-real-code")
    assert "not a ClinicDesk check-in code" in at.error[0].value
    ident, code, _ = _appointment_with_code(app_db, clinic_id=2)
    at = _scan(at, code)
    assert "not at this clinic" in at.error[0].value
    assert _status(app_db, ident) == AppointmentStatus.SCHEDULED


def test_manual_mark_arrived(app_as, app_db):
    ident, _, _ = _appointment_with_code(app_db)
    at = app_as("staff", PAGE)
    pick = at.selectbox(key="check_in_manual")
    pick.select_index(next(i for i, o in enumerate(pick.options) if o.endswith(f"#{ident}"))).run()
    at.button(key="check_in_manual_go").click().run()
    assert not at.error, at.error
    assert _status(app_db, ident) == AppointmentStatus.CHECKED_IN
    assert at.success[0].value == escape(_arrived(app_db, ident))
    # gone from the list (late in the clinic's day the list itself may be gone: nobody else)
    still = [box for box in at.selectbox if box.key == "check_in_manual"]
    assert not any(o.endswith(f"#{ident}") for box in still for o in box.options)


def test_one_checked_in_at_another_desk_while_chosen_here_is_said_not_swapped(app_as, app_db):
    first, _, _ = _appointment_with_code(app_db)  # listed above the one chosen
    ident, _, _ = _appointment_with_code(app_db)
    at = app_as("staff", PAGE)
    pick = at.selectbox(key="check_in_manual")
    assert pick.value is None  # nobody preselected: the press names who arrived
    pick.select_index(next(i for i, o in enumerate(pick.options) if o.endswith(f"#{ident}"))).run()
    database = _db(app_db)  # the patient is checked in at the other desk meanwhile
    with database.write() as session:
        manager = session.scalar(select(User).where(User.username == "manager"))
        visits.check_in(session, actor_of(manager), ident)
    database.dispose()
    st.cache_data.clear()  # as that desk's write does in a process both share
    at.button(key="check_in_manual_go").click().run()
    said = " ".join(w.value for w in at.warning)
    assert f"#{ident} " in said and "left the list while it was chosen here" in said, said
    assert "by Max Manager at" in said and "Nothing was done" in said
    assert _status(app_db, first) == AppointmentStatus.SCHEDULED  # not the one listed first
    assert at.selectbox(key="check_in_manual").value is None
    at.run()  # said once
    assert not any("left the list" in w.value for w in at.warning)


def test_an_empty_list_does_not_speak_of_anybody_else(app_as, app_db):
    """With nobody left to mark arrived (none booked today, as on a Sunday, or every one
    arrived) the list said 'Nobody else is expected today', as if someone had been (seen in
    Chromium on a day without visits)."""
    database = _db(app_db)
    with database.write() as session:
        for row in session.scalars(
            select(Appointment).where(
                Appointment.clinic_id == 1, Appointment.status == AppointmentStatus.SCHEDULED
            )
        ):
            row.start_at -= timedelta(days=400)  # nobody left today at the first clinic
    database.dispose()
    at = app_as("staff", PAGE)
    said = [c.value for c in at.caption]
    assert "Nobody is waiting to be marked arrived today at this clinic." in said, said
    assert not [c for c in said if "else" in c]
