"""AppTest: the request queue page through a request's life — many pages of requests, a
proposal the patient never answered, a visit moved while its patient's request waited."""

from __future__ import annotations

from datetime import timedelta

import pytest
import streamlit as st
from sqlalchemy import func, select

from core.requests import queue
from db.models import Appointment, AppointmentStatus, LinkToken
from db.types import utcnow
from tests.pages.test_queue_page import PAGE, _db, _item, _reachable, _status


@pytest.fixture(autouse=True)
def _fresh_read_caches():
    st.cache_data.clear()


def _requests_to(url: str, wanted: int) -> None:
    """As many open booking requests as `wanted`: copies of the demo's oldest."""
    database = _db(url)
    with database.write() as session:
        waiting = [Appointment.status == AppointmentStatus.REQUESTED]
        have = session.scalar(select(func.count()).select_from(Appointment).where(*waiting))
        model = session.scalars(
            select(Appointment).where(*waiting).order_by(Appointment.id)
        ).first()
        for _ in range(wanted - have):
            session.add(
                Appointment(
                    clinic_id=model.clinic_id,
                    patient_id=model.patient_id,
                    service_id=model.service_id,
                    status=AppointmentStatus.REQUESTED,
                    requested_day=model.requested_day,
                    time_of_day=model.time_of_day,
                    source=model.source,
                    booked_at=utcnow(),
                )
            )
    database.dispose()


def test_deciding_the_last_request_of_the_last_page_shows_the_page_before(app_as, app_db):
    """21 requests: page 2 holds one. Declined, the queue has one page left; the manager sees
    it, not 'Nothing waiting here' under a count of 20."""
    _requests_to(app_db, queue.PAGE_SIZE + 1)
    at = app_as("manager", PAGE)
    said = [c.value for c in at.caption]
    at.number_input(key="queue_page").set_value(2).run()
    assert len(at.dataframe[0].value) == 1
    (last,) = at.dataframe[0].value["#"]
    assert any(h.value.startswith(f"#{last} ") for h in at.subheader)  # the one there, chosen
    prefix = f"queue_requests_{last}"
    at.radio(key=f"{prefix}_choice").set_value("Decline").run()
    at.text_input(key=f"{prefix}_reason").input("We do not offer it that week")
    at.button(key=f"{prefix}_go").click().run()
    assert not at.exception
    assert _status(app_db, last) == AppointmentStatus.DECLINED
    assert not [i.value for i in at.info if "Nothing waiting here" in i.value]
    assert len(at.dataframe[0].value) == queue.PAGE_SIZE
    assert at.number_input(key="queue_page").value == 1
    assert any(c.startswith("Page 1 of 2 · 21 waiting, oldest first") for c in said)
    assert any(c.value.startswith("Page 1 of 1 · 20 waiting") for c in at.caption)


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


def test_a_proposal_nobody_could_be_told_of_says_so_and_a_phone_answer_is_recorded(app_as, app_db):
    _reachable(app_db)
    at = app_as("manager", PAGE)
    row = _item(at)
    database = _db(app_db)
    with database.write() as session:  # a patient who agreed to no email and no texts
        patient = session.get(Appointment, row.appointment_id).patient
        patient.consent_email = patient.consent_sms = False
    database.dispose()
    st.cache_data.clear()
    prefix = f"queue_requests_{row.appointment_id}"
    at.radio(key=f"{prefix}_choice").set_value("Propose another time").run()
    at.button(key=f"{prefix}_go").click().run()
    assert not at.exception
    assert _status(app_db, row.appointment_id) == AppointmentStatus.TENTATIVE
    warned = " ".join(w.value for w in at.warning)
    assert "Proposal saved, but the patient was not told" in warned, warned
    assert not [s.value for s in at.success if "Proposal sent" in s.value]
    at.button_group(key="queue_kind").set_value(queue.QueueKind.PROPOSALS).run()
    last = next(int(c.value.split(" of ")[1].split(" ")[0]) for c in at.caption if "of" in c.value)
    at.number_input(key="queue_page").set_value(last).run()  # the newest: on the last page
    ids = list(at.dataframe[0].value["#"])
    position = ids.index(row.appointment_id)
    at.session_state["queue_table_proposals"] = {"selection": {"rows": [position], "columns": []}}
    at.run()  # its row clicked
    choice = f"queue_proposals_{row.appointment_id}_choice"
    at.radio(key=choice).set_value("The patient accepted (by phone)").run()
    at.button(key=f"queue_proposals_{row.appointment_id}_go").click().run()
    assert not at.exception
    assert _status(app_db, row.appointment_id) == AppointmentStatus.SCHEDULED
    assert any("Confirmed: the patient accepted." in s.value for s in at.success)
