"""The request queue (counts, rows, sorting, filters, stale flag) and the appointment detail."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.kernel.authz import patient_actor
from core.kernel.errors import PermissionDenied, ValidationError
from core.requests import changes, decisions, queue
from core.scheduling.appointments import get_appointment_detail
from core.scheduling.states import Action
from db.models import Appointment, CancellationPolicy, Source
from db.types import utcnow
from tests.unit.test_lifecycle import at, booked, future_day, new_request


def age(db, appointment_id, hours):
    with db.write() as session:
        row = session.get(Appointment, appointment_id)
        row.created_at = utcnow() - timedelta(hours=hours)


def test_counts_and_rows_of_each_kind(db, world):
    day = future_day(4)
    new_request(db, world, day)
    proposed = new_request(db, world, day, "afternoon")
    moving, leaving = booked(db, world, at(day, 10)), booked(db, world, at(day, 12))
    with db.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=1),
                window_hours=24 * 30,
                late_cancel_fee_cents=2500,
                policy_text="30 days",
            )
        )
        decisions.propose_time(
            session, world.manager, proposed, provider_id=world.provider_id, start_at=at(day, 15)
        )
        changes.request_change(
            session,
            patient_actor("A"),
            moving,
            kind="reschedule",
            requested_start_at=at(day, 16),
            reason="Work",
        )
        changes.request_change(session, patient_actor("A"), leaving, kind="cancel", reason="Away")
    with db.read() as session:
        counts = queue.queue_counts(session, world.manager)
        assert counts == {
            queue.QueueKind.REQUESTS: 1,
            queue.QueueKind.RESCHEDULES: 1,
            queue.QueueKind.CANCELLATIONS: 1,
            queue.QueueKind.PROPOSALS: 1,
        }
        [reschedule] = queue.list_queue(session, world.manager, "reschedules")
        assert (reschedule.start_at, reschedule.requested_start_at) == (at(day, 10), at(day, 16))
        assert reschedule.change_id is not None and reschedule.reason == "Work"
        [cancel] = queue.list_queue(session, world.manager, "cancellations")
        assert (cancel.inside_window, cancel.fee_cents) == (True, 2500)
        assert queue.describe(cancel)["Policy"] == "⚠ inside window"
        [tentative] = queue.list_queue(session, world.manager, "proposals")
        assert tentative.appointment_id == proposed and tentative.provider_name == "Dr Test"


def test_sorting_filters_and_stale_flag(db, world):
    soon = new_request(db, world, future_day(1))
    later = new_request(db, world, future_day(9))
    age(db, soon, 2)
    age(db, later, 30)
    with db.read() as session:
        by_age = queue.list_queue(session, world.manager, "requests", sort="age")
        assert [r.appointment_id for r in by_age] == [later, soon]
        assert [r.stale for r in by_age] == [True, False]
        by_soon = queue.list_queue(session, world.manager, "requests", sort="soon")
        assert [r.appointment_id for r in by_soon] == [soon, later]
        assert queue.list_queue(session, world.manager, "requests", clinic_id=999) == []
        assert len(queue.list_queue(session, world.manager, "requests", page_size=1, page=1)) == 1
    with db.write() as session:
        queue.set_stale_hours(session, world.manager, 48)
    with db.read() as session:
        assert not any(r.stale for r in queue.list_queue(session, world.manager, "requests"))
    with db.write() as session, pytest.raises(ValidationError, match="whole number"):
        queue.set_stale_hours(session, world.manager, 0)


def test_staff_cannot_work_the_queue(db, world):
    with db.read() as session, pytest.raises(PermissionDenied):
        queue.queue_counts(session, world.staff)


def test_suggestions_follow_the_request(db, world):
    day = future_day(3)
    request_id = new_request(db, world, day)  # morning preference
    with db.read() as session:
        slots = queue.suggest_for(session, world.manager, request_id, limit=3)
    assert [s.start_at for s in slots] == [at(day, 9), at(day, 9, 15), at(day, 9, 30)]


@pytest.mark.parametrize("limit", [3, 200])
def test_suggestions_match_the_full_two_week_search(db, world, limit):
    """The short first window is only a shortcut: the same slots as suggest_slots' two weeks,
    also when the first days cannot fill the list (200 slots need more than two days)."""
    from core.scheduling.availability import suggest_slots

    day = future_day(3)
    request_id = new_request(db, world, day)
    booked(db, world, at(day, 9))  # a booking inside the short window
    with db.read() as session:
        ours = queue.suggest_for(session, world.manager, request_id, limit=limit)
        full = suggest_slots(
            session,
            clinic_id=world.clinic_id,
            duration_minutes=30,
            day=day,
            time_of_day="morning",
            limit=limit,
        )
    assert ours == full and len(ours) == len(full) > 0
    assert at(day, 9) not in [s.start_at for s in ours]


def test_detail_shows_origin_history_and_actions(db, world):
    day = future_day(3)
    online = new_request(db, world, day, source=Source.ONLINE)
    with db.write() as session:
        decisions.approve_request(
            session,
            world.manager,
            online,
            provider_id=world.provider_id,
            start_at=at(day, 10),
            message="Welcome",
        )
    with db.read() as session:
        detail = get_appointment_detail(session, world.staff, online)
    assert detail.created_by.startswith("Online appointment · ")
    assert detail.status == "scheduled" and detail.fhir_status == "booked"
    assert "10:00" in detail.when and detail.provider_name == "Dr Test"
    assert [(h.action, h.from_status, h.to_status) for h in detail.history] == [
        ("Appointment requested", "", "requested"),  # the audit log's words, not its codes
        ("Request approved", "requested", "scheduled"),
    ]
    assert detail.history[1].who == "Manager" and detail.history[1].message == "Welcome"
    assert Action.CANCEL in detail.actions and Action.CHECK_IN in detail.actions
    staff_made = booked(db, world, at(day, 14))
    with db.read() as session:
        assert get_appointment_detail(session, world.staff, staff_made).created_by.startswith(
            "Manager · "
        )


def test_the_away_mark_counts_the_visits_buffers_as_the_booking_rule_does(db, world):
    """The service keeps 10 minutes free before it and 15 after (availability.away_span): Dr
    Test's time off 09:00–09:55, 12:35–13:00 and 15:40–16:30 touches no asked time itself, only
    the buffers of a request for 10:00, a reschedule to 12:00 and a proposal for 15:00, which
    the booking rule refuses (the proposal's accept is); the queue marks all three (it marked
    none). A request for 11:00, buffers and all clear of the time off, is not marked."""
    from core.kernel.errors import Conflict
    from core.scheduling import schedules
    from db.models import Service

    day = future_day(4)
    with db.write() as session:
        service = session.get(Service, world.service_id)
        service.buffer_before_minutes, service.buffer_after_minutes = 10, 15
    me = world.provider_id
    early = new_request(db, world, day, None, start_at=at(day, 10), provider_id=me)
    clear = new_request(db, world, day, None, start_at=at(day, 11), provider_id=me)
    proposed = new_request(db, world, day, "afternoon")
    moving = booked(db, world, at(day + timedelta(1), 10))
    with db.write() as session:
        decisions.propose_time(
            session, world.manager, proposed, provider_id=me, start_at=at(day, 15)
        )
        changes.request_change(
            session, world.staff, moving, kind="reschedule", requested_start_at=at(day, 12)
        )
        for first, last in ((at(day, 9), at(day, 9, 55)), (at(day, 12, 35), at(day, 13))):
            schedules.add_time_off(
                session, world.manager, provider_id=me, starts_at=first, ends_at=last
            )
        schedules.add_time_off(
            session,
            world.manager,
            provider_id=me,
            starts_at=at(day, 15, 40),
            ends_at=at(day, 16, 30),
        )
    with db.read() as session:
        rows = {
            r.appointment_id: r
            for kind in ("requests", "reschedules", "proposals")
            for r in queue.list_queue(session, world.manager, kind)
        }
    assert queue.away_words(rows[early]) == "⚠ Dr Test away then"
    assert rows[early].away_from == at(day, 9)
    assert queue.away_words(rows[moving]) == "⚠ Dr Test away then"
    assert rows[moving].away_from == at(day, 12, 35)
    assert queue.away_words(rows[proposed]) == "⚠ Dr Test away then"
    assert (
        "which this proposed time (with 10 minutes kept free before and 15 after) runs into: "
        "the patient cannot accept it"
    ) in queue.notices(rows[proposed])[-2]
    assert queue.away_words(rows[clear]) == ""
    with pytest.raises(Conflict, match="Dr Test is on time off"), db.write() as session:
        decisions.respond_to_proposal(session, world.manager, proposed, accept=True)


def test_the_away_mark_reads_the_whole_visit_of_several_services(db, world):
    """A request for 14:00 for a consultation and a peel (an hour): Dr Test's time off from
    14:40 touches its second half, which the booking rule refuses; the queue read the first
    service's 30 minutes alone and did not mark it. Its row says the visit lasts 60."""
    from core.scheduling import schedules
    from db.models import AppointmentService, Service

    day = future_day(4)
    asked = new_request(db, world, day, None, start_at=at(day, 14), provider_id=world.provider_id)
    with db.write() as session:
        peel = Service(name="Peel", duration_minutes=30, price_cents=9000)
        session.add(peel)
        session.flush()
        session.add(AppointmentService(appointment_id=asked, service_id=peel.id, position=1))
        schedules.add_time_off(
            session,
            world.manager,
            provider_id=world.provider_id,
            starts_at=at(day, 14, 40),
            ends_at=at(day, 16),
        )
    with db.read() as session:
        [row] = queue.list_queue(session, world.manager, "requests")
    assert row.duration_minutes == 60
    assert queue.away_words(row) == "⚠ Dr Test away then"
