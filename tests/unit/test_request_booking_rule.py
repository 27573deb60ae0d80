"""Requests follow the booking rule (core.scheduling.lifecycle.place): bulk approve's provider
pick and the queue's suggested times keep a visit's buffers clear of time off
(availability.away_span) and keep no travel time between clinics around a video visit, as
the booking rule does."""

from __future__ import annotations

from dataclasses import replace
from datetime import time

from core.kernel.clock import to_local
from core.practice import travel
from core.requests import bulk, decisions, queue
from core.scheduling.states import S
from db.models import Appointment, Clinic, Service, TimeOff, VisitMode
from tests.factories import make_visit
from tests.unit.test_lifecycle import TZ, at, future_day
from tests.unit.test_time_off_cover import _provider


def _video_request_next_to_harbour(db, world, day) -> int:
    """Dr Test in person at Harbour 10:00-10:30, 30 minutes' travel between clinics, and a
    video request here for 10:30 with Dr Test."""
    with db.write() as session:
        harbour = Clinic(name="Harbour", timezone=TZ)
        session.add(harbour)
        session.flush()
        make_visit(
            session,
            replace(world, clinic_id=harbour.id),
            status=S.SCHEDULED,
            start_at=at(day, 10),
            end_at=at(day, 10, 30),
        )
        travel.set_travel_minutes(session, world.owner, 30)
        request = decisions.request_appointment(
            session,
            world.staff,
            patient_id=world.patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            requested_day=day,
            time_of_day=None,
            start_at=at(day, 10, 30),
            provider_id=world.provider_id,
        )
        request.mode = VisitMode.VIRTUAL
        return request.id


def test_bulk_approve_keeps_no_travel_time_around_a_video_request(db, world):
    """Bulk approve refused a video request 'No provider is free' right after an in-person
    visit at another clinic, which the booking rule books (nobody travels to a video visit)."""
    day = future_day()
    request_id = _video_request_next_to_harbour(db, world, day)
    with db.write() as session:
        (result,) = bulk.bulk_approve(session, world.manager, [request_id])
    assert result.ok, result.message
    with db.read() as session:
        row = session.get(Appointment, request_id)
        assert (row.status, row.start_at) == (S.SCHEDULED, at(day, 10, 30))


def test_the_queue_suggests_the_time_right_after_another_clinic_for_a_video_request(db, world):
    day = future_day()
    request_id = _video_request_next_to_harbour(db, world, day)
    with db.read() as session:
        slots = queue.suggest_for(
            session, world.manager, request_id, provider_id=world.provider_id, day=day, limit=8
        )
    assert time(10, 30) in [to_local(s.start_at, TZ).time() for s in slots]


def test_bulk_approve_picks_a_provider_whose_time_off_the_clean_up_does_not_reach(db, world):
    """A request for 09:30 with any provider, the service keeping 15 minutes' clean-up: Dr Test
    is off from 10:00, so the clean-up runs into the time off. Bulk approve chose Dr Test
    (the visit itself ends at 10:00) and the booking rule then refused the row; it now
    chooses Dr Cover, free then."""
    day = future_day()
    with db.write() as session:
        session.get(Service, world.service_id).buffer_after_minutes = 15
        cover_id = _provider(session, world, "Dr Cover")
        session.add(
            TimeOff(provider_id=world.provider_id, starts_at=at(day, 10), ends_at=at(day, 12))
        )
        request_id = decisions.request_appointment(
            session,
            world.staff,
            patient_id=world.patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            requested_day=day,
            time_of_day=None,
            start_at=at(day, 9, 30),
        ).id
    assert cover_id > world.provider_id  # Dr Test is asked first
    with db.write() as session:
        (result,) = bulk.bulk_approve(session, world.manager, [request_id])
    assert result.ok, result.message
    with db.read() as session:
        assert session.get(Appointment, request_id).provider_id == cover_id


def test_bulk_approve_names_the_time_off_the_clean_up_runs_into(db, world):
    day = future_day()
    with db.write() as session:
        session.get(Service, world.service_id).buffer_after_minutes = 15
        session.add(
            TimeOff(provider_id=world.provider_id, starts_at=at(day, 10), ends_at=at(day, 12))
        )
        request_id = decisions.request_appointment(
            session,
            world.staff,
            patient_id=world.patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            requested_day=day,
            time_of_day=None,
            start_at=at(day, 9, 30),
            provider_id=world.provider_id,
        ).id
    with db.write() as session:
        (result,) = bulk.bulk_approve(session, world.manager, [request_id])
    assert not result.ok
    assert result.message.startswith("Dr Test is on time off "), result.message
