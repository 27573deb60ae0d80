"""Visits caught by a provider's time off: listed with who could take each over at the same
time, and moved or cancelled in one go, each visit on its own (core.scheduling.cover)."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from sqlalchemy import select

from core.kernel.clock import local_to_utc, to_local
from core.kernel.errors import PermissionDenied, ValidationError
from core.requests import decisions
from core.scheduling import cover, moves, schedules
from core.waitlist.entries import add_after_cancellation
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Notification,
    Provider,
    ProviderService,
    Service,
    TimeOfDay,
    TimeOff,
    WaitlistEntry,
    WorkingHours,
)
from db.types import utcnow
from tests.factories import make_patient

TZ = "Europe/London"


def next_monday() -> date:
    today = to_local(utcnow(), TZ).date() + timedelta(days=2)
    return today + timedelta(days=(0 - today.weekday()) % 7)


def _provider(session, world, name: str, **fields) -> int:
    provider = Provider(name=name, **fields)
    session.add(provider)
    session.flush()
    for weekday in range(7):
        provider.working_hours.append(
            WorkingHours(clinic_id=world.clinic_id, weekday=weekday, starts=time(9), ends=time(17))
        )
    session.flush()
    return provider.id


def _book(session, world, provider_id: int, day: date, hour: int, patient_id: int) -> int:
    booked = moves.schedule_appointment(
        session,
        world.staff,
        moves.NewBooking(
            clinic_id=world.clinic_id,
            provider_id=provider_id,
            start_at=local_to_utc(day, time(hour), TZ),
            patient_id=patient_id,
            service_ids=[world.service_id],
        ),
    )
    return booked.id


@pytest.fixture
def sick_day(db, world):
    """Dr Test off on a Monday with visits at 10:00, 11:00 and 12:00 (three patients); Dr Cover
    works the same hours and is busy at 11:00; Dr Skin performs only another service; Dr Away
    performs it but is off that day too."""
    monday = next_monday()
    with db.write() as session:
        cover_id = _provider(session, world, "Dr Cover")
        skin = Service(name="Peel", duration_minutes=30, price_cents=9000)
        session.add(skin)
        session.flush()
        skin_id = _provider(session, world, "Dr Skin")
        session.add(ProviderService(provider_id=skin_id, service_id=skin.id))
        away_id = _provider(session, world, "Dr Away")
        starts, ends = schedules.time_off_span(monday, None, monday, None, TZ)
        session.add(TimeOff(provider_id=away_id, starts_at=starts, ends_at=ends, reason="Leave"))
        others = [make_patient(session, first_name=n, email=f"{n}@example.org") for n in "BC"]
        ids = [
            _book(session, world, world.provider_id, monday, hour, pid)
            for hour, pid in zip(
                (10, 11, 12), [world.patient_id, *(p.id for p in others)], strict=True
            )
        ]
        _book(session, world, cover_id, monday, 11, make_patient(session, first_name="D").id)
        off = schedules.add_time_off(
            session,
            world.manager,
            provider_id=world.provider_id,
            starts_at=starts,
            ends_at=ends,
            reason="Sick",
        )
    return off.id, ids, cover_id, monday


def test_the_visits_in_a_time_off_are_listed_with_who_is_free_to_take_them(db, world, sick_day):
    off_id, ids, cover_id, monday = sick_day
    with db.read() as session:
        rows = cover.list_time_off_visits(session, world.manager, off_id)
    assert [r.id for r in rows] == ids
    first, second, third = rows
    assert first.patient == "Alex Morgan" and first.treatment == "Consultation"
    assert "10:00–10:30" in first.when and first.status == "scheduled"
    # only Dr Cover: Dr Skin does not perform it, Dr Away is off too
    assert (first.cover_id, first.cover_name, first.can_move) == (cover_id, "Dr Cover", True)
    assert (second.cover_id, second.can_move, second.can_cancel) == (None, False, True)
    assert second.note == "Nobody else who performs it is free then."
    assert third.cover_name == "Dr Cover"


def test_the_desk_chooses_among_every_free_colleague_and_only_a_free_one_takes_it(
    db, world, sick_day
):
    """Dr Able joins, free all day: the 10:00 visit lists both free colleagues (before, only
    the first was offered, the other named in a note); the desk gives it to the second, Dr
    Cover. One who does not perform it, one on time off, or nobody chosen is refused in words."""
    off_id, (ten, eleven, noon), cover_id, _ = sick_day
    with db.write() as session:
        able_id = _provider(session, world, "Dr Able")
        skin_id, away_id = (
            session.scalar(select(Provider.id).where(Provider.name == n))
            for n in ("Dr Skin", "Dr Away")
        )
    with db.read() as session:
        first, second, _ = cover.list_time_off_visits(session, world.manager, off_id)
    assert first.free == (
        cover.Colleague(able_id, "Dr Able"),
        cover.Colleague(cover_id, "Dr Cover"),
    )
    assert first.cover_id == able_id  # offered first
    assert second.free == (cover.Colleague(able_id, "Dr Able"),)  # Dr Cover is busy at 11:00
    H, C = cover.Handling, cover.Choice
    with db.write() as session:
        results = cover.handle_time_off_visits(
            session,
            world.manager,
            off_id,
            [
                H(ten, C.MOVE, cover_id, first.version),
                H(eleven, C.MOVE, skin_id, second.version),
                H(noon, C.MOVE, away_id),
            ],
        )
    assert [r.ok for r in results] == [True, False, False]
    assert results[0].message.startswith("Moved to Dr Cover, same time.")
    assert "Dr Skin does not perform" in results[1].message
    assert "Dr Away is on time off " in results[2].message
    with db.write() as session:
        [unchosen] = cover.handle_time_off_visits(session, world.manager, off_id, [H(noon, C.MOVE)])
    assert not unchosen.ok and unchosen.message.startswith(
        f"Choose who takes over appointment #{noon}"
    )
    with db.read() as session:
        assert [session.get(Appointment, i).provider_id for i in (ten, eleven, noon)] == [
            cover_id,
            world.provider_id,
            world.provider_id,
        ]


def test_visits_are_moved_and_cancelled_in_one_go_each_on_its_own(db, world, sick_day):
    """A move, a cancellation with the waitlist, and a move whose substitute was booked
    meanwhile: that one is refused in words, the other two are done."""
    off_id, (ten, eleven, noon), cover_id, monday = sick_day
    with db.read() as session:
        seen = {r.id: r for r in cover.list_time_off_visits(session, world.manager, off_id)}
    with db.write() as session:  # another desk books Dr Cover at noon meanwhile
        _book(session, world, cover_id, monday, 12, make_patient(session, first_name="E").id)
    H, C = cover.Handling, cover.Choice
    with db.write() as session:
        results = cover.handle_time_off_visits(
            session,
            world.manager,
            off_id,
            [
                H(ten, C.MOVE, cover_id, seen[ten].version),
                H(eleven, C.CANCEL, version=seen[eleven].version),
                H(noon, C.MOVE, cover_id, seen[noon].version),
            ],
            reason="Dr Test is unwell",
            wait_list=add_after_cancellation,
        )
    assert [(r.id, r.ok) for r in results] == [(ten, True), (eleven, True), (noon, False)]
    assert results[0].message.startswith("Moved to Dr Cover, same time. Now scheduled.")
    assert "Cancelled as the practice, no fee." in results[1].message
    assert "On the waitlist (entry #" in results[1].message
    assert "Dr Cover already has appointment #" in results[2].message
    with db.read() as session:
        moved, cancelled, left = (session.get(Appointment, i) for i in (ten, eleven, noon))
        assert (moved.provider_id, moved.status) == (cover_id, AppointmentStatus.SCHEDULED)
        assert to_local(moved.start_at, TZ).time() == time(10)
        assert moved.reschedule_count == 0  # the practice's doing, not the patient's
        assert cancelled.status == AppointmentStatus.CANCELLED
        assert cancelled.cancel_reason == "Dr Test is unwell"
        assert not cancelled.late_cancellation
        assert left.provider_id == world.provider_id and left.status == AppointmentStatus.SCHEDULED
        told = session.scalars(
            select(Notification).where(Notification.appointment_id.in_([ten, eleven]))
        ).all()
        bodies = {n.appointment_id: n.body for n in told if n.template != "appointment_scheduled"}
        assert "Dr Cover" in bodies[ten] and "Dr Test is unwell" in bodies[eleven]
        [entry] = session.scalars(select(WaitlistEntry)).all()
        assert (entry.patient_id, entry.service_id) == (cancelled.patient_id, world.service_id)
        event = session.scalar(
            select(AuditEvent).where(AuditEvent.action == "time_off_visits_handled")
        )
        assert event.details == {
            "time_off_id": off_id,
            "moved": [ten],
            "cancelled": [eleven],
            "released": [],
            "declined": [],
            "refused": [noon],
            "wait_listed": True,
        }


def test_staff_may_not_handle_a_time_offs_visits(db, world, sick_day):
    off_id, (ten, *_), cover_id, _ = sick_day
    with db.write() as session, pytest.raises(PermissionDenied):
        cover.handle_time_off_visits(
            session, world.staff, off_id, [cover.Handling(ten, cover.Choice.MOVE, cover_id)]
        )
    with db.read() as session:
        assert session.get(Appointment, ten).provider_id == world.provider_id


def test_nothing_chosen_is_refused_saying_what_to_choose(db, world, sick_day):
    off_id, (ten, *_), _, _ = sick_day
    with db.write() as session, pytest.raises(ValidationError, match="move it or cancel it"):
        cover.handle_time_off_visits(session, world.manager, off_id, [cover.Handling(ten, "swap")])


def _ask(session, world, day: date, provider_id: int | None, time_of_day=None, start_at=None):
    return decisions.request_appointment(
        session,
        world.staff,
        patient_id=make_patient(session, first_name="Req").id,
        clinic_id=world.clinic_id,
        service_id=world.service_id,
        requested_day=day,
        time_of_day=time_of_day,
        start_at=start_at,
        provider_id=provider_id,
    ).id


def test_requests_for_a_day_in_the_time_off_are_listed_with_who_else_is_free(db, world, sick_day):
    """A request for Monday morning with Dr Test, one for an exact time with Dr Test, one for
    Monday with any provider, one with Dr Cover and one for Tuesday: only Dr Test's two are
    listed (they were not: the manager would approve them onto a provider who is away), as
    requests, after the booked visits, with the colleagues free then (Dr Cover is busy at
    11:00, so only the morning one names Dr Cover)."""
    off_id, ids, cover_id, monday = sick_day
    with db.write() as session:
        morning = _ask(session, world, monday, world.provider_id, TimeOfDay.MORNING)
        exact = _ask(
            session, world, monday, world.provider_id, start_at=local_to_utc(monday, time(11), TZ)
        )
        _ask(session, world, monday, None, TimeOfDay.MORNING)
        _ask(session, world, monday, cover_id)
        _ask(session, world, monday + timedelta(days=1), world.provider_id)
    with db.read() as session:
        rows = cover.list_time_off_visits(session, world.manager, off_id)
    assert [r.id for r in rows] == [*ids, morning, exact]
    first, second = rows[-2:]
    assert first.request and first.status == "requested" and not first.can_move
    assert first.when == "Requested for Mon, " + f"{monday:%-d %b %Y}, morning (9:00–12:00)"
    assert first.free == (cover.Colleague(cover_id, "Dr Cover"),)
    assert (first.can_release, first.can_decline, first.can_cancel) == (True, True, False)
    assert "11:00–11:30" in second.when and second.when.startswith("Requested for ")
    assert second.free == () and second.can_release  # to any provider, still
    assert second.note.startswith("Nobody else who performs it is free then")
    assert not rows[0].request and not rows[0].can_release and not rows[0].can_decline


def test_requests_in_a_time_off_are_released_or_declined_each_on_its_own(db, world, sick_day):
    """The morning request goes to Dr Cover, the exact-time one to any provider, a third is
    declined as the practice with the reason the patient is told; a request moved like a
    booking, and one released to a colleague not free then, are refused in words. Released
    requests stay in the queue and leave the time off's list."""
    off_id, (ten, *_), cover_id, monday = sick_day
    with db.write() as session:
        morning = _ask(session, world, monday, world.provider_id, TimeOfDay.MORNING)
        exact = _ask(
            session, world, monday, world.provider_id, start_at=local_to_utc(monday, time(14), TZ)
        )
        later = _ask(session, world, monday, world.provider_id, TimeOfDay.AFTERNOON)
        evening = _ask(session, world, monday, world.provider_id, TimeOfDay.EVENING)
        away_id = session.scalar(select(Provider.id).where(Provider.name == "Dr Away"))
    with db.read() as session:
        seen = {r.id: r for r in cover.list_time_off_visits(session, world.manager, off_id)}
    H, C = cover.Handling, cover.Choice
    with db.write() as session:
        results = cover.handle_time_off_visits(
            session,
            world.manager,
            off_id,
            [
                H(morning, C.RELEASE, cover_id, seen[morning].version),
                H(exact, C.RELEASE, None, seen[exact].version),
                H(later, C.DECLINE, version=seen[later].version),
                H(evening, C.RELEASE, away_id),
                H(ten, C.DECLINE),
            ],
            reason="Dr Test is unwell that day",
            decline=decisions.decline_request,
        )
    assert [r.ok for r in results] == [True, True, True, False, False]
    assert results[0].message.startswith("Now with Dr Cover (Dr Test is away then)")
    assert "still a request waiting for a decision" in results[0].message
    assert results[1].message.startswith("Now for any provider (Dr Test is away then)")
    assert results[2].message.startswith("Declined as the practice. Notified:")
    assert "Dr Away is not free for it then" in results[3].message
    assert results[4].message.startswith(f"Appointment #{ten} is booked: move it or cancel it")
    with db.read() as session:
        got = {i: session.get(Appointment, i) for i in (morning, exact, later, evening)}
        assert got[morning].provider_id == cover_id
        assert got[morning].status == AppointmentStatus.REQUESTED
        assert got[exact].provider_id is None and got[exact].status == AppointmentStatus.REQUESTED
        assert got[later].status == AppointmentStatus.DECLINED
        assert got[later].decline_reason == "Dr Test is unwell that day"
        assert got[evening].provider_id == world.provider_id
        told = session.scalars(
            select(Notification).where(
                Notification.appointment_id == later,
                Notification.template == "appointment_declined",
            )
        ).all()
        assert told and all("Dr Test is unwell that day" in n.body for n in told)
        released = session.scalar(
            select(AuditEvent).where(
                AuditEvent.action == "request_provider_released", AuditEvent.entity_id == morning
            )
        )
        assert released.details == {
            "time_off_id": off_id,
            "from_provider_id": world.provider_id,
            "to_provider_id": cover_id,
        }
        event = session.scalar(
            select(AuditEvent).where(AuditEvent.action == "time_off_visits_handled")
        )
        assert event.details["released"] == [morning, exact]
        assert event.details["declined"] == [later]
        assert event.details["refused"] == [evening, ten]
        left = [r.id for r in cover.list_time_off_visits(session, world.manager, off_id)]
        assert morning not in left and exact not in left and evening in left


def test_a_request_is_not_approved_onto_a_provider_away_then_even_outside_hours(
    db, world, sick_day
):
    """The "outside working hours" tick let a manager approve a request onto Dr Test on their
    sick day (and book them then): time off is not hours, and is refused with its own words;
    the request stays waiting, with Dr Cover it is approved."""
    off_id, _, cover_id, monday = sick_day
    at = local_to_utc(monday, time(15), TZ)
    with db.write() as session:
        asked = _ask(session, world, monday, world.provider_id, TimeOfDay.AFTERNOON)
    for override in (False, True):
        with db.write() as session, pytest.raises(ValidationError) as refused:
            decisions.approve_request(
                session,
                world.manager,
                asked,
                provider_id=world.provider_id,
                start_at=at,
                outside_hours_override=override,
            )
        assert str(refused.value).startswith("Dr Test is on time off ")
        assert "choose another provider or time" in str(refused.value)
    with db.write() as session, pytest.raises(ValidationError, match="is on time off"):
        moves.schedule_appointment(
            session,
            world.staff,
            moves.NewBooking(
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                start_at=at,
                patient_id=world.patient_id,
                service_ids=[world.service_id],
                outside_hours_override=True,
            ),
        )
    with db.write() as session:
        assert session.get(Appointment, asked).status == AppointmentStatus.REQUESTED
        decisions.approve_request(session, world.manager, asked, provider_id=cover_id, start_at=at)


def test_a_partial_day_off_lists_the_requests_whose_asked_time_touches_it(db, world):
    """Dr Test leaves at 13:00 on Monday: a morning request and one at exact 12:00 are not
    caught; the afternoon, the whole day and an exact 12:45 (straddling the edge) are, the
    day read on the clinic's own clock."""
    monday = next_monday()
    with db.write() as session:
        starts, ends = schedules.time_off_span(monday, time(13), monday, None, TZ)
        off = schedules.add_time_off(
            session, world.manager, provider_id=world.provider_id, starts_at=starts, ends_at=ends
        )
        me = world.provider_id
        _ask(session, world, monday, me, TimeOfDay.MORNING)
        _ask(session, world, monday, me, start_at=local_to_utc(monday, time(12), TZ))
        afternoon = _ask(session, world, monday, me, TimeOfDay.AFTERNOON)
        day = _ask(session, world, monday, me)
        edge = _ask(session, world, monday, me, start_at=local_to_utc(monday, time(12, 45), TZ))
    with db.read() as session:
        rows = cover.list_time_off_visits(session, world.manager, off.id)
    assert [r.id for r in rows] == [day, afternoon, edge]
    assert all(r.request for r in rows)


def _proposed(session, world, day: date, hour: int) -> tuple[int, str]:
    """A request with Dr Test proposed at `hour` on `day`: its id and the patient's link."""
    asked = _ask(session, world, day, world.provider_id, TimeOfDay.AFTERNOON)
    raw = decisions.propose_time(
        session,
        world.manager,
        asked,
        provider_id=world.provider_id,
        start_at=local_to_utc(day, time(hour), TZ),
    )
    return asked, str(raw)


def test_a_time_proposed_before_the_time_off_is_not_accepted_onto_the_away_provider(db, world):
    """Dr Test is proposed on Monday at 15:00, then takes Monday off: the patient's accept (by
    the link or the portal) is refused in the words a taken time gets, saying nothing of the
    time off; the manager recording it from the phone is told of the time off. The proposal
    stays as it was, its link still answers it (a decline goes back to the queue)."""
    from core.kernel.errors import Conflict
    from core.portal import patient_links

    monday = next_monday()
    with db.write() as session:
        asked, raw = _proposed(session, world, monday, 15)
        starts, ends = schedules.time_off_span(monday, None, monday, None, TZ)
        schedules.add_time_off(
            session, world.manager, provider_id=world.provider_id, starts_at=starts, ends_at=ends
        )
    with pytest.raises(Conflict) as refused, db.write() as session:  # rolled back, as the page's
        patient_links.answer_proposal(session, raw, accept=True)
    assert str(refused.value) == (
        "Sorry, this time is no longer available. Please contact the practice for another one."
    )
    with pytest.raises(Conflict) as refused, db.write() as session:
        decisions.respond_to_proposal(session, world.manager, asked, accept=True)
    assert "Dr Test is on time off " in str(refused.value)
    with db.read() as session:
        kept = session.get(Appointment, asked)
        assert kept.status == AppointmentStatus.TENTATIVE and kept.provider_id == world.provider_id
        assert (
            session.scalar(
                select(AuditEvent.id).where(
                    AuditEvent.entity_id == asked, AuditEvent.action == "accept_proposal"
                )
            )
            is None
        )
    with db.write() as session:
        patient_links.answer_proposal(session, raw, accept=False)
    with db.read() as session:
        assert session.get(Appointment, asked).status == AppointmentStatus.REQUESTED


def test_a_proposal_outside_the_hours_since_is_not_accepted_unless_it_was_made_so(db, world):
    """Dr Test stops working on Mondays after a proposal for Monday: the accept is refused as
    no longer available; one the practice proposed outside the hours on purpose is accepted."""
    from core.kernel.errors import Conflict
    from core.portal import patient_links

    monday = next_monday()
    with db.write() as session:
        asked, raw = _proposed(session, world, monday, 15)
        on_purpose = _ask(session, world, monday, world.provider_id, TimeOfDay.EVENING)
        decisions.propose_time(
            session,
            world.manager,
            on_purpose,
            provider_id=world.provider_id,
            start_at=local_to_utc(monday, time(19), TZ),
            outside_hours_override=True,
        )
        for hours in session.scalars(
            select(WorkingHours).where(
                WorkingHours.provider_id == world.provider_id,
                WorkingHours.weekday == monday.weekday(),
            )
        ):
            session.delete(hours)
    with pytest.raises(Conflict, match="no longer available"), db.write() as session:
        patient_links.answer_proposal(session, raw, accept=True)
    with db.write() as session:
        decisions.respond_to_proposal(session, world.manager, on_purpose, accept=True)
        assert session.get(Appointment, on_purpose).status == AppointmentStatus.SCHEDULED


def test_the_queue_marks_what_asks_for_a_provider_away_then_in_one_query(db, world):
    """Dr Test takes Monday off after a proposal for Monday 15:00 and a reschedule asked to
    Monday 10:00: the queue marks the requests with Dr Test for Monday (the day, the afternoon,
    an exact time), the reschedule and the proposal, saying what to do; one for Tuesday, one
    with any provider and a cancellation are not marked. However many are marked, the page
    costs the same queries."""
    from sqlalchemy import event

    from core.requests import changes, queue

    monday = next_monday()
    me = world.provider_id
    with db.write() as session:
        _, _ = _proposed(session, world, monday, 15)
        tuesday = _book(session, world, me, monday + timedelta(1), 10, world.patient_id)
        moved = changes.request_change(
            session,
            world.staff,
            tuesday,
            kind="reschedule",
            requested_start_at=local_to_utc(monday, time(10), TZ),
        )
        starts, ends = schedules.time_off_span(monday, None, monday, None, TZ)
        schedules.add_time_off(
            session, world.manager, provider_id=me, starts_at=starts, ends_at=ends
        )
        day = _ask(session, world, monday, me)
        afternoon = _ask(session, world, monday, me, TimeOfDay.AFTERNOON)
        anyone = _ask(session, world, monday, None, TimeOfDay.MORNING)
        later = _ask(session, world, monday + timedelta(1), me)

    def listed(kind):
        with db.read() as session:
            return {r.appointment_id: r for r in queue.list_queue(session, world.manager, kind)}

    requests = listed("requests")
    words = {i: queue.describe(r)["Away"] for i, r in requests.items()}
    assert words[day] == "⚠ Dr Test away that day"
    assert words[afternoon] == "⚠ Dr Test away then"
    assert words[anyone] == words[later] == ""
    said = queue.notices(requests[day])
    assert said[0].startswith("Dr Test is on time off Mon, ")
    assert "a time with them then is refused" in said[0]
    (reschedule,) = listed("reschedules").values()
    assert reschedule.change_id == moved.id
    assert queue.describe(reschedule)["Away"] == "⚠ Dr Test away then"
    (proposal,) = listed("proposals").values()
    assert queue.describe(proposal)["Away"] == "⚠ Dr Test away then"
    assert "the patient cannot accept it" in queue.notices(proposal)[0]

    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        listed("requests")
        one = len(seen)
        with db.write() as session:
            for moment in (TimeOfDay.MORNING, TimeOfDay.EVENING):
                _ask(session, world, monday, me, moment)
        seen.clear()
        marked = listed("requests")
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert sum(bool(r.away_from) for r in marked.values()) == 4
    assert len(seen) == one


def test_bulk_approve_names_the_time_off_of_the_provider_asked_for(db, world, sick_day):
    """A request for Dr Test at an exact time on their sick day: bulk approve says they are
    on time off (it said only "No provider is free and working…"); one with any provider
    names who is away among those not free."""
    from core.requests import bulk

    _, _, cover_id, monday = sick_day
    with db.write() as session:
        mine = _ask(
            session, world, monday, world.provider_id, start_at=local_to_utc(monday, time(11), TZ)
        )
        anyone = _ask(session, world, monday, None, start_at=local_to_utc(monday, time(11), TZ))
        for hours in session.scalars(
            select(WorkingHours).where(WorkingHours.provider_id == cover_id)
        ):
            session.delete(hours)
        results = bulk.bulk_approve(session, world.manager, [mine, anyone])
    assert [r.ok for r in results] == [False, False]
    assert results[0].message.startswith("Dr Test is on time off Mon, ")
    assert "approve it on its own with another provider or time" in results[0].message
    assert results[1].message == (
        "No provider is free and working at the requested time (Dr Away, Dr Test on time off then)."
    )


def test_a_proposal_waiting_in_a_time_off_is_proposed_again_with_a_free_colleague(db, world):
    """A time proposed to a patient (tentative) with Dr Test, who then called in sick, was
    offered only Cancel. It is moved like a booked visit: proposed again with the colleague
    free then, at the same time, the patient sent the new proposal (the old link stops
    working). A new time proposed for a patient's change request is not (their booking keeps
    its original time until they answer): its row says to propose another in the queue."""
    from core.kernel.authz import patient_actor
    from core.requests import changes

    monday = next_monday()
    at = lambda hour: local_to_utc(monday, time(hour), TZ)  # noqa: E731
    with db.write() as session:
        cover_id = _provider(session, world, "Dr Cover")
        asked = _ask(session, world, monday, world.provider_id, start_at=at(14))
        decisions.propose_time(
            session, world.manager, asked, provider_id=world.provider_id, start_at=at(14)
        )
        booked = _book(
            session, world, world.provider_id, monday - timedelta(days=1), 10, world.patient_id
        )
    with db.write() as session:
        change = changes.request_change(
            session, patient_actor("A"), booked, kind="reschedule", requested_day=monday
        ).id
    with db.write() as session:
        changes.propose_for_change(session, world.manager, change, start_at=at(16))
        starts, ends = schedules.time_off_span(monday, None, monday, None, TZ)
        off_id = schedules.add_time_off(
            session,
            world.manager,
            provider_id=world.provider_id,
            starts_at=starts,
            ends_at=ends,
            reason="Sick",
        ).id
    with db.read() as session:
        rows = {r.id: r for r in cover.list_time_off_visits(session, world.manager, off_id)}
    proposal, for_change = rows[asked], rows[booked]
    assert proposal.status == "tentative" and proposal.can_move and proposal.can_cancel
    assert proposal.cover_id == cover_id
    assert "proposed again with the colleague" in proposal.note
    assert not for_change.can_move and for_change.can_cancel
    assert "propose another time for it in the queue" in for_change.note
    H, C = cover.Handling, cover.Choice
    with db.write() as session:
        results = cover.handle_time_off_visits(
            session,
            world.manager,
            off_id,
            [
                H(asked, C.MOVE, cover_id, proposal.version),
                H(booked, C.MOVE, cover_id, for_change.version),
            ],
            propose=decisions.propose_time,
        )
    assert [r.ok for r in results] == [True, False]
    assert results[0].message.startswith("Proposed again with Dr Cover, same time;")
    assert "propose another time for it in the queue" in results[1].message
    with db.read() as session:
        moved = session.get(Appointment, asked)
        assert (moved.status, moved.provider_id) == (AppointmentStatus.TENTATIVE, cover_id)
        assert to_local(moved.start_at, TZ).time() == time(14)
        sent = session.scalars(
            select(Notification).where(
                Notification.appointment_id == asked,
                Notification.template == "appointment_proposed",
            )
        ).all()
        assert len(sent) >= 2 and "Dr Cover" in sent[-1].body
        assert session.get(Appointment, booked).provider_id == world.provider_id


def test_a_visit_whose_clean_up_runs_into_a_time_off_is_caught_by_it(db, world):
    """Time off from 10:40: the 10:00 visit, whose 15 minutes' clean-up runs to 10:45, is one
    the booking rule now refuses (the provider is away then), yet adding the time off named
    no visit and the cover list had none to move. Both count it, by the same rule, and moving
    it is the practice's doing, not one of the patient's reschedules."""
    monday = next_monday()
    with db.write() as session:
        session.get(Service, world.service_id).buffer_after_minutes = 15
        cover_id = _provider(session, world, "Dr Cover")
        ten = _book(session, world, world.provider_id, monday, 10, world.patient_id)
        off = schedules.add_time_off(
            session,
            world.manager,
            provider_id=world.provider_id,
            starts_at=local_to_utc(monday, time(10, 40), TZ),
            ends_at=local_to_utc(monday, time(12), TZ),
            reason="Dentist",
        )
        count, named = schedules.bookings_in_time_off(
            session, world.manager, world.provider_id, off.starts_at, off.ends_at
        )
    assert count == 1 and named[0].startswith(f"#{ten} ")
    with db.read() as session:
        (row,) = cover.list_time_off_visits(session, world.manager, off.id)
    assert (row.id, row.can_move, row.cover_id) == (ten, True, cover_id)
    with db.write() as session:
        (done,) = cover.handle_time_off_visits(
            session, world.manager, off.id, [cover.Handling(ten, cover.Choice.MOVE, cover_id)]
        )
    assert done.ok, done.message
    with db.read() as session:
        moved = session.get(Appointment, ten)
        assert (moved.provider_id, moved.reschedule_count) == (cover_id, 0)  # the practice's


def test_an_exact_requests_buffers_running_into_a_time_off_list_it(db, world):
    """The service keeps 10 minutes free before it and 15 after; Dr Test is off on Monday
    12:40–14:00. Requests for exactly 12:00 (its clean-up runs to 12:45) and 14:05 (its
    preparation from 13:55) ask for no time in the time off themselves, yet approving either as
    asked is refused (availability.away_span): the list now names both (it named neither),
    still saying the time asked. 11:00 and 14:10, buffers and all clear of it, are not listed.
    A day or a part of a day is not padded: Tuesday's requests are clear of Wednesday off from
    midnight, though a visit late on Tuesday would keep its clean-up into Wednesday."""
    monday = next_monday()
    me = world.provider_id
    with db.write() as session:
        service = session.get(Service, world.service_id)
        service.buffer_before_minutes, service.buffer_after_minutes = 10, 15
        off = schedules.add_time_off(
            session,
            world.manager,
            provider_id=me,
            starts_at=local_to_utc(monday, time(12, 40), TZ),
            ends_at=local_to_utc(monday, time(14), TZ),
        )
        asks = {
            hour: _ask(session, world, monday, me, start_at=local_to_utc(monday, hour, TZ))
            for hour in (time(11), time(12), time(14, 5), time(14, 10))
        }
        tuesday, wednesday = monday + timedelta(1), monday + timedelta(2)
        starts, ends = schedules.time_off_span(wednesday, None, wednesday, None, TZ)
        later = schedules.add_time_off(
            session, world.manager, provider_id=me, starts_at=starts, ends_at=ends
        )
        _ask(session, world, tuesday, me)
        _ask(session, world, tuesday, me, TimeOfDay.EVENING)
    with db.read() as session:
        rows = cover.list_time_off_visits(session, world.manager, off.id)
        assert cover.list_time_off_visits(session, world.manager, later.id) == []
    assert [r.id for r in rows] == [asks[time(12)], asks[time(14, 5)]]
    assert "12:00–12:30" in rows[0].when and "14:05–14:35" in rows[1].when
    for hour in (time(12), time(14, 5)):
        with db.write() as session, pytest.raises(ValidationError, match="is on time off"):
            decisions.approve_request(
                session,
                world.manager,
                asks[hour],
                provider_id=me,
                start_at=local_to_utc(monday, hour, TZ),
            )


def test_an_exact_request_is_read_at_its_services_length_now(db, world):
    """A request for exactly 10:00 made when the service took 30 minutes; the service takes an
    hour since, so approving it as asked books 10:00–11:00, which Dr Test's time off from 10:40
    refuses: the list names it (it read the 10:30 end stored with the request, and did not)."""
    monday = next_monday()
    at = local_to_utc(monday, time(10), TZ)
    with db.write() as session:
        asked = _ask(session, world, monday, world.provider_id, start_at=at)
        session.get(Service, world.service_id).duration_minutes = 60
        off = schedules.add_time_off(
            session,
            world.manager,
            provider_id=world.provider_id,
            starts_at=local_to_utc(monday, time(10, 40), TZ),
            ends_at=local_to_utc(monday, time(12), TZ),
        )
    with db.read() as session:
        (row,) = cover.list_time_off_visits(session, world.manager, off.id)
    assert row.id == asked and "10:00–11:00" in row.when
    with db.write() as session, pytest.raises(ValidationError, match="is on time off"):
        decisions.approve_request(
            session, world.manager, asked, provider_id=world.provider_id, start_at=at
        )


def test_a_visit_whose_time_has_passed_is_not_offered_a_move(db, world):
    """Dr Test off from yesterday to tomorrow; yesterday's 10:00 visit is still booked (not
    marked yet) and Dr Cover was free then. Moving it is refused (a booking cannot start in
    the past), yet its row offered Dr Cover and the page preset "Move": it now says its time
    has passed and offers no one; cancelling it is still offered."""
    today = to_local(utcnow(), TZ).date()
    yesterday = today - timedelta(1)
    with db.write() as session:
        cover_id = _provider(session, world, "Dr Cover")
        past = _book(session, world, world.provider_id, today + timedelta(3), 10, world.patient_id)
        visit = session.get(Appointment, past)
        visit.start_at = local_to_utc(yesterday, time(10), TZ)
        visit.end_at = visit.start_at + timedelta(minutes=30)
        starts, ends = schedules.time_off_span(yesterday, None, today + timedelta(1), None, TZ)
        off = schedules.add_time_off(
            session, world.manager, provider_id=world.provider_id, starts_at=starts, ends_at=ends
        )
    with db.read() as session:
        (row,) = cover.list_time_off_visits(session, world.manager, off.id)
    assert row.id == past and not row.can_move and row.free == () and row.can_cancel
    assert row.note == cover.PASSED
    with db.write() as session:
        (done,) = cover.handle_time_off_visits(
            session, world.manager, off.id, [cover.Handling(past, cover.Choice.MOVE, cover_id)]
        )
    assert not done.ok and "passed" in done.message
