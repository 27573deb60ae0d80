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
        ("request", "", "requested"),
        ("approve", "requested", "scheduled"),
    ]
    assert detail.history[1].who == "Manager" and detail.history[1].message == "Welcome"
    assert Action.CANCEL in detail.actions and Action.CHECK_IN in detail.actions
    staff_made = booked(db, world, at(day, 14))
    with db.read() as session:
        assert get_appointment_detail(session, world.staff, staff_made).created_by.startswith(
            "Manager · "
        )
