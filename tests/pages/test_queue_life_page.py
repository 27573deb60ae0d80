"""AppTest: the request queue page through a request's life — many pages of requests, a
proposal the patient never answered, a visit moved while its patient's request waited."""

from __future__ import annotations

from datetime import timedelta

import pytest
import streamlit as st
from sqlalchemy import select

from core.requests import queue
from db.models import Appointment, AppointmentStatus, LinkToken
from db.types import utcnow
from tests.pages.test_queue_page import PAGE, _db, _item, _status


@pytest.fixture(autouse=True)
def _fresh_read_caches():
    st.cache_data.clear()


def test_a_proposal_never_answered_shows_its_link_lapsed(app_as, app_db):
    at = app_as("manager", PAGE)
    at.button_group(key="queue_kind").set_value(queue.QueueKind.PROPOSALS).run()
    table = at.dataframe[0].value
    assert "Answer by" in table and "Sent" in table
    row = _item(at, "proposals")
    assert not any("lapsed" in str(v) for v in table["Answer by"])
    database = _db(app_db)
    with database.write() as session:  # a week on, the patient never answered
        for token in session.scalars(
            select(LinkToken).where(
                LinkToken.purpose == "proposal", LinkToken.subject_id == row.appointment_id
            )
        ):
            token.expires_at = utcnow() - timedelta(minutes=5)
    database.dispose()
    st.cache_data.clear()
    at.run()
    table = at.dataframe[0].value
    shown = table[table["#"] == row.appointment_id].iloc[0]
    assert shown["Answer by"] == "⚠ lapsed: no answer" and shown["Stale"] == "● stale"
    at.radio(key=f"queue_proposals_{row.appointment_id}_choice").set_value(
        "Propose another time"
    ).run()
    warned = " ".join(w.value for w in at.warning)
    assert "link has lapsed" in warned and "propose a time again" in warned


def test_a_cancellation_asked_before_the_desk_moved_the_visit_says_so(app_as, app_db):
    at = app_as("manager", PAGE)
    at.button_group(key="queue_kind").set_value(queue.QueueKind.CANCELLATIONS).run()
    row = _item(at, "cancellations")
    database = _db(app_db)
    with database.write() as session:  # the desk moved it after the patient asked
        appointment = session.get(Appointment, row.appointment_id)
        appointment.start_at += timedelta(days=1)
        appointment.end_at += timedelta(days=1)
    database.dispose()
    st.cache_data.clear()
    at.run()
    prefix = f"queue_cancellations_{row.appointment_id}"
    at.radio(key=f"{prefix}_choice").set_value("Approve the cancellation").run()
    assert "after the patient asked" in " ".join(w.value for w in at.warning)
    at.button(key=f"{prefix}_go").click().run()
    assert not at.exception
    assert any("after the patient asked to cancel it" in e.value for e in at.error)
    assert _status(app_db, row.appointment_id) == AppointmentStatus.SCHEDULED
