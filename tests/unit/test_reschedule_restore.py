"""A reschedule's proposal turned down or lapsed puts the visit back at its original time and
provider (decisions.restore_original) without refusing the patient; when that provider took
time off meanwhile, the clinic is told (core.messaging.clinic_events), and the time-off cover
list lists the visit."""

from __future__ import annotations

from sqlalchemy import select

from core.kernel.authz import patient_actor
from core.requests import changes, decisions, lapses
from core.scheduling import cover, schedules
from core.scheduling.states import S
from db.models import Appointment, ClinicEvent, TimeOff
from tests.unit.test_lifecycle import at, booked, future_day
from tests.unit.test_proposal_lapse import _lapse_links, settings  # noqa: F401 (fixture)


def _reschedule_proposed_then_time_off(db, world, day) -> tuple[int, int]:
    """A 10:00 visit the patient asked to move; 16:00 proposed; then Dr Test takes time off
    from 10:20 (the visit's own time, 10:00-10:30, runs into it)."""
    appointment_id = booked(db, world, at(day, 10))
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("A"), appointment_id, kind="reschedule", requested_day=day
        ).id
    with db.write() as session:
        changes.propose_for_change(session, world.manager, change_id, start_at=at(day, 16))
    with db.write() as session:
        off_id = schedules.add_time_off(
            session,
            world.manager,
            provider_id=world.provider_id,
            starts_at=at(day, 10, 20),
            ends_at=at(day, 12),
            reason="Training",
        ).id
    return appointment_id, off_id


def _time_off_events(db, appointment_id) -> list[ClinicEvent]:
    with db.read() as session:
        return [
            e
            for e in session.scalars(
                select(ClinicEvent).where(ClinicEvent.appointment_id == appointment_id)
            )
            if "time off" in e.summary
        ]


def test_a_reschedule_turned_down_back_in_time_off_is_told_to_the_clinic(db, world):
    """The patient turns down the time proposed for their reschedule: the visit goes back to
    10:00 with Dr Test, who is away from 10:20 now. The patient keeps the visit (not refused),
    and the clinic is told so that someone covers or moves it."""
    day = future_day()
    appointment_id, off_id = _reschedule_proposed_then_time_off(db, world, day)
    with db.write() as session:
        decisions.respond_to_proposal(session, patient_actor("A"), appointment_id, accept=False)
    with db.read() as session:
        row = session.get(Appointment, appointment_id)
        assert (row.status, row.start_at, row.provider_id) == (
            S.SCHEDULED,
            at(day, 10),
            world.provider_id,
        )
    (told,) = _time_off_events(db, appointment_id)
    assert "Dr Test, who is on time off " in told.summary and "cover list" in told.summary
    assert told.event == "change_request" and told.link.endswith(f"?id={appointment_id}")
    with db.read() as session:  # and the desk finds it where time off's visits are handled
        listed = cover.list_time_off_visits(session, world.manager, off_id)
    assert appointment_id in [v.id for v in listed]


def test_a_reschedules_lapsed_proposal_back_in_time_off_is_told_to_the_clinic(
    db,
    world,
    settings,  # noqa: F811
):
    day = future_day()
    appointment_id, _ = _reschedule_proposed_then_time_off(db, world, day)
    _lapse_links(db, appointment_id)
    lapses.lapse_job(db, settings)
    with db.read() as session:
        assert session.get(Appointment, appointment_id).start_at == at(day, 10)
    assert len(_time_off_events(db, appointment_id)) == 1


def test_a_reschedule_turned_down_back_clear_of_time_off_tells_nothing_more(db, world):
    day = future_day()
    appointment_id = booked(db, world, at(day, 10))
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("A"), appointment_id, kind="reschedule", requested_day=day
        ).id
        changes.propose_for_change(session, world.manager, change_id, start_at=at(day, 16))
    with db.write() as session:  # off from the end of the visit: clear of it
        session.add(
            TimeOff(
                provider_id=world.provider_id,
                starts_at=at(day, 10, 30),
                ends_at=at(day, 12),
            )
        )
    with db.write() as session:
        decisions.respond_to_proposal(session, patient_actor("A"), appointment_id, accept=False)
    assert _time_off_events(db, appointment_id) == []
