"""AppTest: the call list worked by phone (confirmation shown, a call recorded and moved under
the calls still to make) and the calendar's overbooking suggestion (a time, and New appointment
filled in with it and double booking ticked)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
import streamlit as st
from sqlalchemy import select

from core.analytics import risk_scores
from core.kernel.clock import local_to_utc, local_today, to_local
from core.kernel.config import load_settings
from core.kernel.money import format_day
from core.startup import open_database
from db.models import (
    Appointment,
    AppointmentConfirmation,
    AppointmentKind,
    AppointmentStatus,
    Clinic,
    RiskCall,
    RiskModel,
    RiskScore,
)
from ui.text import escape


@pytest.fixture(autouse=True)
def _fresh_read_caches():
    st.cache_data.clear()


def _db(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def _visits_with_risk(url, visits: list[tuple[datetime, float]], patient_id: int = 1) -> list[int]:
    """Scheduled visits of clinic 1 with provider 1, each scored as the daily run does."""
    database = _db(url)
    with database.write() as session:
        model = RiskModel(rows=900, metrics={}, features={"names": ["lead_days"]}, payload=b"")
        session.add(model)
        session.flush()
        ids = []
        for start, probability in visits:
            row = Appointment(
                clinic_id=1,
                provider_id=1,
                patient_id=patient_id,
                service_id=1,
                status=AppointmentStatus.SCHEDULED,
                start_at=start,
                end_at=start + timedelta(minutes=30),
                kind=AppointmentKind.APPOINTMENT,
                allow_double_booking=True,
            )
            session.add(row)
            session.flush()
            session.add(
                RiskScore(
                    appointment_id=row.id,
                    model_id=model.id,
                    probability=probability,
                    start_at=start,
                    provider_id=1,
                )
            )
            ids.append(row.id)
    database.dispose()
    return ids


def _zone(url) -> tuple[str, str]:
    database = _db(url)
    with database.read() as session:
        clinic = session.get(Clinic, 1)
        found = clinic.timezone, clinic.locale
    database.dispose()
    return found


def test_the_call_list_shows_confirmation_and_records_a_call(app_as, app_db):
    tz, _ = _zone(app_db)
    tomorrow = local_today(tz) + timedelta(days=1)
    confirmed, called = _visits_with_risk(
        app_db,
        [(local_to_utc(tomorrow, time(9), tz), 0.5), (local_to_utc(tomorrow, time(10), tz), 0.6)],
    )
    database = _db(app_db)
    with database.write() as session:
        visit = session.get(Appointment, confirmed)
        session.add(
            AppointmentConfirmation(
                appointment_id=confirmed, start_at=visit.start_at, channel="SMS reply"
            )
        )
    database.dispose()
    at = app_as("staff", "app_pages/call_list.py", timeout=120)
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert table.loc[confirmed, "Confirmed"].startswith("Confirmed by the patient · ")
    assert table.loc[called, "Confirmed"] == "Not confirmed by the patient yet"
    at.selectbox(key="call_list_visit").set_value(called)
    at.radio(key="call_list_outcome").set_value("message")
    at.text_input(key="call_list_note").input("**Voicemail** <b>full</b>")
    at.button(key="call_list_submit").click().run()
    assert not at.exception, at.exception
    assert not at.error
    assert "left a message" in at.success[0].value
    to_call, done = (d.value for d in at.dataframe)
    assert called not in to_call.index and confirmed in to_call.index
    assert done.index.tolist() == [called]
    assert done.loc[called, "Last call"].startswith("Left a message · Sam Staff · ")
    assert done.loc[called, "Note"] == "**Voicemail** <b>full</b>"  # shown as typed
    assert "Called" in [h.value for h in at.subheader]
    database = _db(app_db)
    with database.read() as session:
        [stored] = session.scalars(select(RiskCall)).all()
    database.dispose()
    assert (stored.appointment_id, stored.outcome) == (called, "message")


def _unscored_that_day(url, day, tz) -> int:
    """Provider 1's scheduled visits that day with no score (the demo's own)."""
    database = _db(url)
    with database.read() as session:
        starts = session.scalars(
            select(Appointment.start_at).where(
                Appointment.provider_id == 1,
                Appointment.clinic_id == 1,
                Appointment.status == AppointmentStatus.SCHEDULED,
                Appointment.kind == AppointmentKind.APPOINTMENT,
                Appointment.id.not_in(select(RiskScore.appointment_id)),
            )
        ).all()
    database.dispose()
    return sum(1 for s in starts if to_local(s, tz).date() == day)


def test_the_overbooking_suggestion_names_a_time_and_opens_the_booking_form_at_it(app_as, app_db):
    tz, locale = _zone(app_db)
    day = local_today(tz) + timedelta(days=2)
    at_ = [local_to_utc(day, time(hour), tz) for hour in (10, 11, 12)]
    _visits_with_risk(app_db, list(zip(at_, (0.4, 0.97, 0.4), strict=True)))
    at = app_as("staff", "app_pages/calendar.py", timeout=120)
    at.session_state["calendar_day"] = day
    at.run()
    assert not at.exception, at.exception
    [said] = [c.value for c in at.caption if c.value.startswith(escape("Dr Aisha Rahman, "))]
    assert escape(f"{format_day(day, locale)} at 11:00: one extra patient beside") in said
    assert "97% no-show risk" in said
    # the n of its sum: the three scored visits, and the demo's that day not scored (no model)
    unscored = _unscored_that_day(app_db, day, tz)
    more = f"; {unscored} more not scored yet)" if unscored else ")"
    assert "1.8 expected no-shows among 3 scored visits still to come that day" + more in said
    intro = next(c.value for c in at.caption if "Expected no-shows exceed one" in c.value)
    assert "double booked on purpose" in intro and "nothing is booked automatically" in intro
    at.button(key=f"overbooking_book_1_{day.isoformat()}").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "New appointment"
    assert at.date_input(key="book_day").value == day
    assert at.time_input(key="book_time").value == time(11)
    assert at.checkbox(key="book_double").value is True
    assert at.checkbox(key="book_all").value is True
    assert at.selectbox(key="book_provider").value == 1
    database = _db(app_db)
    with database.read() as session:  # a suggestion: nothing was booked
        assert session.scalars(select(Appointment).where(Appointment.start_at == at_[1])).all()
    database.dispose()


def test_a_visit_cancelled_meanwhile_does_not_move_the_call_onto_another(app_as, app_db):
    tz, _ = _zone(app_db)
    tomorrow = local_today(tz) + timedelta(days=1)
    first, chosen = _visits_with_risk(
        app_db,
        [(local_to_utc(tomorrow, time(9), tz), 0.7), (local_to_utc(tomorrow, time(10), tz), 0.6)],
    )
    at = app_as("staff", "app_pages/call_list.py", timeout=120)
    at.selectbox(key="call_list_visit").set_value(chosen)  # in the form: sent with the press
    database = _db(app_db)  # cancelled at another desk meanwhile (the patient phoned in)
    with database.write() as session:
        session.get(Appointment, chosen).status = AppointmentStatus.CANCELLED
    database.dispose()
    st.cache_data.clear()  # as that desk's write does in a process both share
    at.radio(key="call_list_outcome").set_value("message")
    at.button(key="call_list_submit").click().run()
    said = " ".join(w.value for w in at.warning)
    assert f"Visit #{chosen} left the list meanwhile" in said, said
    database = _db(app_db)
    with database.read() as session:
        assert session.scalars(select(RiskCall)).all() == []  # not recorded on #first
    database.dispose()
    assert first in at.dataframe[0].value.index


def test_a_full_call_list_says_there_may_be_more(app_as, app_db, monkeypatch):
    """The list stops at the riskest CALL_LIMIT visits; a full one said nothing of the rest."""
    tz, _ = _zone(app_db)
    tomorrow = local_today(tz) + timedelta(days=1)
    _visits_with_risk(app_db, [(local_to_utc(tomorrow, time(h), tz), 0.5) for h in (9, 10, 11)])
    monkeypatch.setattr(risk_scores, "CALL_LIMIT", 3)
    at = app_as("staff", "app_pages/call_list.py", timeout=120)
    assert not at.exception, at.exception
    assert "Only the 3 visits with the highest risk are listed" in at.warning[0].value
    monkeypatch.setattr(risk_scores, "CALL_LIMIT", 4)
    st.cache_data.clear()
    at = app_as("staff", "app_pages/call_list.py", timeout=120)
    assert not at.warning
