"""A proposed time nobody answered: when its link lapses, the jobs loop lets the time go (a
request back to the queue, a change request's proposal back to the booking the patient had),
the waitlist hears of the freed time and the patient is told once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core import jobs
from core.kernel.authz import patient_actor
from core.kernel.config import load_settings
from core.practice import job_health
from core.requests import changes, decisions, lapses
from core.scheduling.states import S
from db.models import (
    Appointment,
    AuditEvent,
    ChangeRequest,
    ChangeStatus,
    LinkToken,
    SlotOpening,
)
from db.types import utcnow
from tests.unit.test_lifecycle import at, booked, future_day, messages, new_request


@pytest.fixture
def settings(tmp_path):
    return load_settings({"CLINICDESK_DATA_DIR": str(tmp_path)}, tmp_path / "x")


def _proposed(db, world, hour=11) -> int:
    appointment_id = new_request(db, world)
    with db.write() as session:
        decisions.propose_time(
            session,
            world.manager,
            appointment_id,
            provider_id=world.provider_id,
            start_at=at(future_day(), hour),
        )
    return appointment_id


def _lapse_links(db, appointment_id) -> None:
    with db.write() as session:
        session.execute(
            update(LinkToken)
            .where(LinkToken.purpose == "proposal", LinkToken.subject_id == appointment_id)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )


def _history(db, appointment_id) -> list[tuple[str, str | None]]:
    with db.read() as session:
        rows = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity == "appointment", AuditEvent.entity_id == appointment_id)
            .order_by(AuditEvent.id)
        )
        return [(e.action, e.reason) for e in rows]


def test_a_request_whose_proposal_lapsed_goes_back_to_the_queue_and_the_patient_is_told(
    db, world, settings
):
    appointment_id = _proposed(db, world)
    lapses.lapse_job(db, settings)  # the link still runs: nothing happens
    with db.read() as session:
        assert session.get(Appointment, appointment_id).status == S.TENTATIVE
    _lapse_links(db, appointment_id)
    lapses.lapse_job(db, settings)
    with db.read() as session:
        assert session.get(Appointment, appointment_id).status == S.REQUESTED
        freed = session.scalars(
            select(SlotOpening).where(SlotOpening.appointment_id == appointment_id)
        ).all()
        assert [(o.start_at, o.end_at) for o in freed] == [
            (at(future_day(), 11), at(future_day(), 11, 30))
        ]
    action, reason = _history(db, appointment_id)[-1]
    assert action == "proposal_lapsed"
    assert (
        reason.startswith("The patient did not answer the proposed time (")
        and "lapsed at" in reason
    )
    told = messages(db, appointment_id, "proposal_lapsed")
    assert sorted(n.channel.value for n in told) == ["email", "sms"]  # both consented
    email = next(n for n in told if n.channel.value == "email")
    assert "we did not hear back about" in email.body.lower() and "11:00" in email.body
    assert "Your request stays with us" in email.body
    lapses.lapse_job(db, settings)  # once only
    assert len(messages(db, appointment_id, "proposal_lapsed")) == 2
    assert [a for a, _ in _history(db, appointment_id)].count("proposal_lapsed") == 1


def test_a_change_requests_proposal_that_lapsed_leaves_the_booking_the_patient_had(
    db, world, settings
):
    day = future_day()
    appointment_id = booked(db, world, at(day, 10))
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("A"), appointment_id, kind="reschedule", requested_day=day
        ).id
    with db.write() as session:
        changes.propose_for_change(session, world.manager, change_id, start_at=at(day, 16))
    _lapse_links(db, appointment_id)
    lapses.lapse_job(db, settings)
    with db.read() as session:
        row = session.get(Appointment, appointment_id)
        assert (row.status, row.start_at) == (S.SCHEDULED, at(day, 10))
        change = session.get(ChangeRequest, change_id)
        assert change.status == ChangeStatus.DENIED and change.decided_at is not None
    denied = messages(db, appointment_id, "change_request_denied")
    assert denied and all(
        "We did not hear back about the time we proposed" in n.body for n in denied
    )
    assert "stays on" in next(n for n in denied if n.channel.value == "email").body


def test_an_answered_or_newer_proposal_is_left_alone(db, world, settings):
    answered = _proposed(db, world, hour=11)
    with db.write() as session:
        decisions.respond_to_proposal(session, patient_actor("A"), answered, accept=True)
    _lapse_links(db, answered)
    renewed = _proposed(db, world, hour=14)
    _lapse_links(db, renewed)
    with db.write() as session:  # proposed again: a fresh link
        decisions.propose_time(
            session,
            world.manager,
            renewed,
            provider_id=world.provider_id,
            start_at=at(future_day(), 15),
        )
    lapses.lapse_job(db, settings)
    with db.read() as session:
        assert session.get(Appointment, answered).status == S.SCHEDULED
        assert session.get(Appointment, renewed).status == S.TENTATIVE
    assert not messages(db, answered, "proposal_lapsed") + messages(db, renewed, "proposal_lapsed")


def test_the_jobs_loop_runs_it_and_its_health_names_it():
    assert lapses.lapse_job in jobs.JOBS
    assert job_health.EFFECTS["lapse_job"][0] == "Lapsed proposals"


def test_two_servers_lapsing_at_once_let_it_go_once(db, world, settings, monkeypatch):
    """Both servers' rounds read the same lapsed proposal; the row lock makes the second find
    it a request already: one history line, one message per channel."""
    appointment_id = _proposed(db, world)
    _lapse_links(db, appointment_id)
    barrier = threading.Barrier(2)
    listed = lapses.lapsed_proposals

    def both_have_listed(*args, **kwargs):
        found = listed(*args, **kwargs)
        barrier.wait(timeout=5)
        return found

    monkeypatch.setattr(lapses, "lapsed_proposals", both_have_listed)
    errors = []

    def round_():
        try:
            lapses.lapse_job(db, settings)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=round_) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert [a for a, _ in _history(db, appointment_id)].count("proposal_lapsed") == 1
    assert len(messages(db, appointment_id, "proposal_lapsed")) == 2


def test_the_lapse_says_when_the_link_the_patient_had_lapsed_not_a_replaced_one(
    db, world, settings
):
    """Proposed for a day in six days (its link would run until then), then for a sooner
    time (the new link runs a shorter while): when the new link lapses, the history says it
    lapsed then; before, it named the replaced link's end, days in the future."""
    from core.kernel.money import clinic_time

    appointment_id = new_request(db, world, future_day(6))
    with db.write() as session:
        for day in (future_day(6), future_day(2)):
            decisions.propose_time(
                session,
                world.manager,
                appointment_id,
                provider_id=world.provider_id,
                start_at=at(day, 11),
            )
    lapsed_at = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    with db.write() as session:
        session.execute(
            update(LinkToken)
            .where(
                LinkToken.purpose == "proposal",
                LinkToken.subject_id == appointment_id,
                LinkToken.revoked_at.is_(None),
            )
            .values(expires_at=lapsed_at)
        )
        clinic = session.get(Appointment, appointment_id).clinic
        said = clinic_time(clinic, lapsed_at, zone=True)
    lapses.lapse_job(db, settings)
    action, reason = _history(db, appointment_id)[-1]
    assert action == "proposal_lapsed"
    assert reason.endswith(f"before its link lapsed at {said}.")
