"""The request queue's whole life, case by case: what the patient asked, what the desk did
meanwhile, and what the manager is shown and may do."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from core.kernel.authz import patient_actor
from core.kernel.clock import to_local
from core.kernel.errors import Conflict, PermissionDenied, ValidationError
from core.kernel.money import format_day, format_moment
from core.requests import changes, decisions, queue
from core.scheduling import moves
from core.scheduling.states import S
from db.models import (
    Appointment,
    AuditEvent,
    CancellationPolicy,
    ChangeRequest,
    ChangeStatus,
    LedgerEntry,
    LinkToken,
    Provider,
    Source,
)
from db.types import utcnow
from tests.factories import make_patient
from tests.unit.test_lifecycle import at, booked, future_day, messages, new_request


def clinic_time(row, moment):
    return format_moment(moment, row.timezone, row.locale)


def _late_fee_policy(db, world, hours=48):
    with db.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=10),
                window_hours=hours,
                late_cancel_fee_cents=2500,
                points_deducted=10,
                policy_text="48 hours' notice, or a £25 fee",
            )
        )


# ---------------------------------------------------------------- moved while the request waited


def test_a_cancellation_asked_for_a_visit_the_desk_moved_since_is_not_approved_unseen(db, world):
    """Asked a week ahead (no fee shown), then moved by the desk to tomorrow: approving it as
    it stands would charge a late fee the patient was never shown. It is refused, saying what
    changed and what to do; nothing is written."""
    _late_fee_policy(db, world)
    appointment_id = booked(db, world, at(future_day(7), 10))
    with db.write() as session:
        change = changes.request_change(
            session, patient_actor("A"), appointment_id, kind="cancel", reason="Away"
        )
        assert (change.status, change.fee_cents) == (ChangeStatus.OPEN, 0)
        change_id = change.id
    with db.write() as session:
        moves.reschedule(session, world.staff, appointment_id, start_at=at(future_day(1), 11))
    with db.write() as session, pytest.raises(Conflict) as refused:
        changes.approve_change(session, world.manager, change_id)
    words = str(refused.value)
    assert "moved" in words and "after the patient asked" in words
    assert "Deny" in words and "appointment page" in words
    with db.read() as session:
        assert session.get(Appointment, appointment_id).status == S.SCHEDULED
        assert session.get(ChangeRequest, change_id).status == ChangeStatus.OPEN
        fees = select(LedgerEntry.id).where(LedgerEntry.appointment_id == appointment_id)
        assert list(session.scalars(fees)) == []
    assert messages(db, appointment_id, "appointment_cancelled") == []


def test_a_cancellation_of_a_visit_not_moved_is_approved_as_before(db, world):
    _late_fee_policy(db, world)
    appointment_id = booked(db, world, at(future_day(7), 10))
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("A"), appointment_id, kind="cancel", reason="Away"
        ).id
    with db.write() as session:
        changes.approve_change(session, world.manager, change_id)
    with db.read() as session:
        assert session.get(Appointment, appointment_id).status == S.CANCELLED


def test_the_queue_shows_a_visit_moved_since_the_patient_asked(db, world):
    appointment_id = booked(db, world, at(future_day(7), 10))
    with db.write() as session:
        changes.request_change(
            session, patient_actor("A"), appointment_id, kind="cancel", reason="Away"
        )
    with db.read() as session:
        (row,) = queue.list_queue(session, world.manager, "cancellations")
        assert not row.moved_since_asked and queue.notices(row) == []
    with db.write() as session:
        moves.reschedule(session, world.staff, appointment_id, start_at=at(future_day(1), 11))
    with db.read() as session:
        (row,) = queue.list_queue(session, world.manager, "cancellations")
    assert row.moved_since_asked
    shown = queue.describe(row)["Appointment"]
    assert shown.startswith(
        clinic_time(
            row,
            at(future_day(1), 11),
        )
    )
    assert f"asked when it was {clinic_time(row, at(future_day(7), 10))}" in shown
    (notice,) = queue.notices(row)
    assert "after the patient asked" in notice and "deny it to keep the new time" in notice


# ---------------------------------------------------------------- a day that has passed


def test_a_requested_day_that_has_passed_is_marked_and_said(db, world):
    passed, coming = new_request(db, world, future_day(1)), new_request(db, world, future_day(2))
    with db.write() as session:  # asked for yesterday, say, and nobody looked until today
        session.get(Appointment, passed).requested_day = future_day(-1)
    with db.read() as session:
        rows = {r.appointment_id: r for r in queue.list_queue(session, world.manager, "requests")}
    assert rows[passed].wish_passed and not rows[coming].wish_passed
    assert queue.describe(rows[passed])["Requested"].endswith("(passed)")
    assert not queue.describe(rows[coming])["Requested"].endswith("(passed)")
    (notice,) = queue.notices(rows[passed])
    assert "has passed" in notice and "Propose a later time" in notice
    assert queue.notices(rows[coming]) == []


def test_a_reschedule_to_a_time_that_has_passed_is_marked(db, world):
    appointment_id = booked(db, world, at(future_day(7), 10))
    with db.write() as session:
        change = changes.request_change(
            session,
            patient_actor("A"),
            appointment_id,
            kind="reschedule",
            requested_start_at=at(future_day(1), 14),
        )
        change.requested_start_at = utcnow() - timedelta(hours=2)  # the day went by
    with db.read() as session:
        (row,) = queue.list_queue(session, world.manager, "reschedules")
    assert row.wish_passed and queue.describe(row)["Requested"].endswith("(passed)")


# ---------------------------------------------------------------- a proposal never answered


def test_a_proposal_shows_until_when_the_patient_may_answer_and_when_it_lapsed(db, world):
    day = future_day(10)
    request_id = new_request(db, world, day)
    with db.write() as session:
        decisions.propose_time(
            session, world.manager, request_id, provider_id=world.provider_id, start_at=at(day, 15)
        )
    with db.read() as session:
        (row,) = queue.list_queue(session, world.manager, "proposals")
        link = select(LinkToken.expires_at).where(LinkToken.subject_id == request_id)
        expires = session.scalar(link.where(LinkToken.purpose == "proposal"))
    assert row.answer_by == expires and not row.lapsed and not row.stale
    assert queue.describe(row)["Answer by"] == clinic_time(row, expires)
    assert queue.describe(row)["Sent"] == clinic_time(row, row.created_at)
    (notice,) = queue.notices(row)
    assert "answers this proposal until" in notice
    later = expires + timedelta(minutes=1)  # a week on, no answer
    with db.read() as session:
        (row,) = queue.list_queue(session, world.manager, "proposals", now=later)
    assert row.lapsed and row.stale and row.answer_by is None
    assert queue.describe(row)["Answer by"] == "⚠ lapsed: no answer"
    (notice,) = queue.notices(row)
    assert "link has lapsed" in notice and "propose a time again" in notice


def test_a_second_proposal_answers_until_its_own_link_lapses(db, world):
    day = future_day(10)
    request_id = new_request(db, world, day)
    with db.write() as session:
        decisions.propose_time(
            session, world.manager, request_id, provider_id=world.provider_id, start_at=at(day, 15)
        )
    with db.write() as session:  # the first link has lapsed: the practice proposes again
        first = session.scalar(select(LinkToken).where(LinkToken.subject_id == request_id))
        first.expires_at = utcnow() - timedelta(minutes=1)
    with db.read() as session:
        (row,) = queue.list_queue(session, world.manager, "proposals")
        assert row.lapsed
    with db.write() as session:
        decisions.propose_time(
            session, world.manager, request_id, provider_id=world.provider_id, start_at=at(day, 16)
        )
    with db.read() as session:
        (row,) = queue.list_queue(session, world.manager, "proposals")
    assert not row.lapsed and row.answer_by > utcnow() + timedelta(days=6)


# ---------------------------------------------------------------- arrival in the clinic's time


def test_arrival_is_shown_in_the_clinics_time(db):
    from tests.factories import build_world

    with db.write() as session:
        world = build_world(session, tz="America/Sao_Paulo")
    request_id = new_request(db, world, future_day(3))
    with db.read() as session:
        (row,) = queue.list_queue(session, world.manager, "requests")
        created = session.get(Appointment, request_id).created_at
    local = to_local(created, "America/Sao_Paulo")
    assert queue.describe(row)["Arrived"].endswith(local.strftime("%H:%M"))


# ---------------------------------------------------------------- asked twice


def _ask(db, world, actor, moment="afternoon", **extra):
    with db.write() as session:
        return decisions.request_appointment(
            session,
            actor,
            patient_id=extra.pop("patient_id", world.patient_id),
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            requested_day=future_day(5),
            time_of_day=moment,
            **extra,
        ).id


def _waiting(db, patient_id) -> list[int]:
    with db.read() as session:
        return list(
            session.scalars(
                select(Appointment.id).where(
                    Appointment.patient_id == patient_id,
                    Appointment.status.in_((S.REQUESTED, S.TENTATIVE)),
                )
            )
        )


def test_the_same_request_twice_is_refused_naming_the_first(db, world):
    """'Tuesday afternoon, any provider' asked on the phone, then pressed again: approving both
    would book the patient twice."""
    first = _ask(db, world, world.manager)
    with pytest.raises(ValidationError) as refused:
        _ask(db, world, world.manager)
    assert f"already asked for Consultation on {format_day(future_day(5))}, afternoon" in str(
        refused.value
    )
    assert f"(request #{first}, waiting in the queue)" in str(refused.value)
    assert _waiting(db, world.patient_id) == [first]
    assert len(messages(db, first, "request_received")) == 2  # the first's email and text only


def test_a_patient_asking_twice_is_told_in_their_words(db, world):
    patient = patient_actor("Alex", via="portal")
    first = _ask(db, world, patient, source=Source.ONLINE)
    with pytest.raises(ValidationError, match="You have already asked for Consultation on") as no:
        _ask(db, world, patient, source=Source.ONLINE)
    assert "not sent again" in str(no.value) and "call us on 020 0000 0000" in str(no.value)
    with db.write() as session:  # the practice proposes a time; the patient asks again
        decisions.propose_time(
            session,
            world.manager,
            first,
            provider_id=world.provider_id,
            start_at=at(future_day(5), 14),
        )
    with pytest.raises(ValidationError, match="answer through the link we sent you"):
        _ask(db, world, patient, source=Source.ONLINE)
    assert _waiting(db, world.patient_id) == [first]


def test_another_request_or_the_same_once_answered_is_taken(db, world):
    first = _ask(db, world, world.manager)
    morning = _ask(db, world, world.manager, "morning")  # another time of day: their choice
    exact = _ask(db, world, world.manager, None, start_at=at(future_day(5), 15))
    with db.write() as session:
        decisions.decline_request(session, world.manager, first, reason="Fully booked")
    again = _ask(db, world, world.manager)  # answered: asking again is a new request
    assert sorted(_waiting(db, world.patient_id)) == sorted([morning, exact, again])


def test_two_presses_at_once_make_one_request(db, world):
    """Two presses of 'Send request' at the same moment, each in its own transaction: one
    request (on PostgreSQL each would look before either had written)."""
    barrier = threading.Barrier(2)
    said: list[str] = []

    def press() -> None:
        try:
            with db.write() as session:
                barrier.wait(timeout=30)
                decisions.request_appointment(
                    session,
                    patient_actor("Alex", via="portal"),
                    patient_id=world.patient_id,
                    clinic_id=world.clinic_id,
                    service_id=world.service_id,
                    requested_day=future_day(5),
                    time_of_day="afternoon",
                    source=Source.ONLINE,
                )
            said.append("sent")
        except ValidationError as error:
            said.append(str(error))
        except OperationalError:  # SQLite: the second writer waited past its timeout
            said.append("busy")

    threads = [threading.Thread(target=press) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert said.count("sent") == 1, said
    assert len(_waiting(db, world.patient_id)) == 1


# ---------------------------------------------------------------- a merged patient


def test_a_request_for_a_merged_record_goes_to_the_record_kept(db, world):
    """A patient's old link (or portal tab) still names the duplicate merged away: their
    request lands on the record kept, where the practice and their messages are. Staff are
    told to open the record kept."""
    with db.write() as session:
        duplicate = make_patient(session, first_name="Alexandra", email="alex.m@example.org")
        duplicate.merged_into_id = world.patient_id
        duplicate_id = duplicate.id
    with pytest.raises(ValidationError, match=rf"was merged into record #{world.patient_id}"):
        _ask(db, world, world.manager, patient_id=duplicate_id)
    request_id = _ask(db, world, patient_actor("Alexandra"), patient_id=duplicate_id)
    with db.read() as session:
        assert session.get(Appointment, request_id).patient_id == world.patient_id
    assert _waiting(db, duplicate_id) == []


# ---------------------------------------------------------------- a provider who left


def test_a_reschedule_with_a_provider_who_left_says_what_to_do(db, world):
    appointment_id = booked(db, world, at(future_day(7), 10))
    with db.write() as session:
        change_id = changes.request_change(
            session,
            patient_actor("A"),
            appointment_id,
            kind="reschedule",
            requested_start_at=at(future_day(8), 14),
        ).id
    with db.write() as session:
        session.get(Provider, world.provider_id).active = False
    with db.write() as session, pytest.raises(ValidationError) as refused:
        changes.approve_change(session, world.manager, change_id)
    assert str(refused.value).startswith("Dr Test no longer works at the practice")
    assert "Propose a different time with another provider" in str(refused.value)
    with db.read() as session:
        assert session.get(ChangeRequest, change_id).status == ChangeStatus.OPEN


# ---------------------------------------------------------------- a proposal nobody was told of


def test_a_proposal_says_who_was_told_and_nobody_when_the_patient_cannot_be_reached(db, world):
    day = future_day(6)
    told_id = new_request(db, world, day)
    with db.write() as session:
        quiet = make_patient(session, first_name="Sam", consent_email=False, consent_sms=False)
        quiet_id = decisions.request_appointment(
            session,
            world.manager,
            patient_id=quiet.id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            requested_day=day,
            time_of_day="afternoon",
        ).id
    with db.write() as session:
        told = decisions.propose_time(
            session, world.manager, told_id, provider_id=world.provider_id, start_at=at(day, 10)
        )
        nobody = decisions.propose_time(
            session, world.manager, quiet_id, provider_id=world.provider_id, start_at=at(day, 14)
        )
    assert told.outcome.notified == ["email to alex@example.org", "sms to 07700 900123"]
    assert nobody.outcome.notified == [] and nobody.outcome.skipped
    assert isinstance(nobody, str) and len(nobody) > 20  # still the link's token


def test_a_manager_records_the_patients_answer_given_on_the_phone(db, world):
    day = future_day(6)
    request_id = new_request(db, world, day)
    with db.write() as session:
        decisions.propose_time(
            session, world.manager, request_id, provider_id=world.provider_id, start_at=at(day, 10)
        )
        version = session.get(Appointment, request_id).version
    with db.write() as session:
        outcome = decisions.respond_to_proposal(
            session, world.manager, request_id, accept=True, expected_version=version
        )
    assert outcome.status == S.SCHEDULED and outcome.notified  # the confirmation goes out
    with db.write() as session, pytest.raises(Conflict, match="already handled by Manager"):
        decisions.respond_to_proposal(
            session, world.manager, request_id, accept=True, expected_version=version
        )
    with db.write() as session, pytest.raises(PermissionDenied):
        decisions.respond_to_proposal(session, world.staff, request_id, accept=True)


def test_a_proposal_turned_down_or_lapsed_gives_the_request_back_as_the_patient_asked(db, world):
    """A request for a morning with any provider, proposed at 15:00 with Dr Test and turned
    down; one for 10:00 with Dr Test, proposed at 15:00 and lapsed: each goes back to the queue
    asking what its patient asked (the morning, any provider; 10:00). Before, each kept the
    proposed 15:00 as its asked time, shown as "Requested", and bulk approve booked the
    patient at the very time they had turned down."""
    from sqlalchemy import update

    from core.requests import bulk, lapses

    day = future_day(5)
    morning = new_request(db, world, day, "morning")
    exact = new_request(db, world, day, None, start_at=at(day, 10), provider_id=world.provider_id)
    with db.write() as session:
        for asked in (morning, exact):
            decisions.propose_time(
                session, world.manager, asked, provider_id=world.provider_id, start_at=at(day, 15)
            )
            if asked == morning:
                decisions.respond_to_proposal(session, patient_actor("A"), asked, accept=False)
        session.execute(
            update(LinkToken)
            .where(LinkToken.purpose == "proposal", LinkToken.subject_id == exact)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    with db.write() as session:
        assert lapses.lapse_proposal(session, exact)
    with db.read() as session:
        rows = {r.appointment_id: r for r in queue.list_queue(session, world.manager, "requests")}
    assert (rows[morning].start_at, rows[morning].provider_id) == (None, None)
    assert queue.describe(rows[morning])["Requested"] == (
        f"{format_day(day, rows[morning].locale)}, morning (9:00–12:00)"
    )
    assert (rows[exact].start_at, rows[exact].provider_id) == (at(day, 10), world.provider_id)
    with db.write() as session:
        results = bulk.bulk_approve(session, world.manager, [morning])
    assert results[0].message == (
        "The patient gave no exact time; approve it on its own with a time."
    )


def _kept(db, appointment_id):
    with db.read() as session:
        row = session.get(Appointment, appointment_id)
        return row.ask_kept, row.asked_start_at, row.asked_provider_id


def _where(db, appointment_id):
    with db.read() as session:
        row = session.get(Appointment, appointment_id)
        return row.status, row.start_at, row.end_at, row.provider_id


def test_a_request_let_go_gets_its_ask_back_from_itself_not_from_the_audit_log(db, world):
    """10:00 with Dr Test asked, 14:00 proposed, then 15:00 instead; the proposals' audit
    events gone, the patient turns 15:00 down: the request asks for 10:00 with Dr Test again,
    as the request itself kept it (before, the ask was read back from the audit log, a record
    and not the request's state, and without it the request kept 15:00 as if asked for)."""
    from sqlalchemy import delete

    day = future_day(5)
    asked = new_request(db, world, day, None, start_at=at(day, 10), provider_id=world.provider_id)
    for hour in (14, 15):  # the second proposal keeps the first one's ask
        with db.write() as session:
            decisions.propose_time(
                session, world.manager, asked, provider_id=world.provider_id, start_at=at(day, hour)
            )
    with db.write() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.entity_id == asked))
    with db.write() as session:
        decisions.respond_to_proposal(session, patient_actor("A"), asked, accept=False)
    assert _where(db, asked) == (S.REQUESTED, at(day, 10), at(day, 10, 30), world.provider_id)
    assert _kept(db, asked) == (False, None, None)  # given back: none kept now


def test_a_proposal_taken_declined_or_cancelled_forgets_what_was_asked(db, world):
    """The ask is kept while a proposal waits for the patient, and forgotten when the proposal
    ends otherwise than let go: the patient takes it, the practice declines the request, or
    the practice cancels it."""
    day = future_day(5)
    taken = new_request(db, world, day, "morning")
    declined = new_request(db, world, day, "afternoon")
    cancelled = new_request(db, world, day, "evening")
    for request_id, hour in ((taken, 11), (declined, 15), (cancelled, 16)):
        with db.write() as session:
            decisions.propose_time(
                session,
                world.manager,
                request_id,
                provider_id=world.provider_id,
                start_at=at(day, hour),
            )
        assert _kept(db, request_id) == (True, None, None)  # a time of day, any provider
    with db.write() as session:
        decisions.respond_to_proposal(session, patient_actor("A"), taken, accept=True)
        decisions.decline_request(session, world.manager, declined, reason="Fully booked")
    assert _where(db, taken) == (S.SCHEDULED, at(day, 11), at(day, 11, 30), world.provider_id)
    assert _kept(db, taken) == (False, None, None)
    assert _where(db, declined)[0] == S.DECLINED and _kept(db, declined) == (False, None, None)
    with db.write() as session:
        moves.cancel_appointment(session, world.manager, cancelled, reason="Clinic closed")
    assert _where(db, cancelled)[0] == S.CANCELLED and _kept(db, cancelled) == (False, None, None)


def test_proposals_waiting_before_migration_0028_take_the_ask_their_audit_event_kept(db, world):
    """0028 keeps the ask on the request: down to the revision before it and up again, each
    proposal waiting for its patient takes the ask of the audit event that began it (a second
    proposal's event keeps none); one made before the ask was kept, or one answering a change
    request, has none. Let go, the first asks its 10:00 with Dr Test again; the one without an
    ask keeps the time proposed, as before."""
    import sqlalchemy as sa
    from alembic import command
    from sqlalchemy.orm.attributes import flag_modified

    from db import migrate

    day, later = future_day(5), future_day(6)
    exact = new_request(db, world, day, None, start_at=at(day, 10), provider_id=world.provider_id)
    twice = new_request(db, world, day, "morning")
    unkept = new_request(db, world, day, "afternoon")
    changed = new_request(
        db, world, later, None, start_at=at(later, 10), provider_id=world.provider_id
    )
    for request_id, when in (
        (exact, at(day, 14)),
        (twice, at(day, 15)),
        (twice, at(day, 16)),
        (unkept, at(day, 11)),
        (changed, at(later, 10)),
    ):
        with db.write() as session:
            decisions.propose_time(
                session, world.manager, request_id, provider_id=world.provider_id, start_at=when
            )
    with db.write() as session:
        decisions.respond_to_proposal(session, patient_actor("A"), changed, accept=True)
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("A"), changed, kind="reschedule", requested_day=later
        ).id
    with db.write() as session:
        changes.propose_for_change(session, world.manager, change_id, start_at=at(later, 14))
        for event in session.scalars(  # a proposal made before the ask was kept
            select(AuditEvent).where(AuditEvent.entity_id == unkept, AuditEvent.action == "propose")
        ):
            event.details = {k: v for k, v in event.details.items() if k != "asked"}
            flag_modified(event, "details")
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0027")
    with db.engine.begin() as connection:
        columns = {c["name"] for c in sa.inspect(connection).get_columns("appointments")}
        assert not columns & {"ask_kept", "asked_start_at", "asked_provider_id"}
    migrate.upgrade(db.engine)
    assert _kept(db, exact) == (True, at(day, 10), world.provider_id)
    assert _kept(db, twice) == (True, None, None)
    assert _kept(db, unkept) == (False, None, None)
    assert _where(db, changed)[0] == S.TENTATIVE and _kept(db, changed) == (False, None, None)
    with db.write() as session:
        for request_id in (exact, unkept):
            decisions.respond_to_proposal(session, patient_actor("A"), request_id, accept=False)
    assert _where(db, exact) == (S.REQUESTED, at(day, 10), at(day, 10, 30), world.provider_id)
    assert _where(db, unkept) == (S.REQUESTED, at(day, 11), at(day, 11, 30), world.provider_id)


def test_a_new_proposal_frees_the_time_the_last_one_held_for_the_waitlist(db, world):
    """A request proposed at 11:00, then at 14:00 instead: 11:00 no longer held is offered to
    the waitlist (a slot opening, as a moved visit's old time); before, it was heard of by
    nobody. Proposing the same time again frees nothing."""
    from db.models import SlotOpening

    day = future_day(5)
    asked = new_request(db, world, day)
    for hour in (11, 14, 14):
        with db.write() as session:
            decisions.propose_time(
                session, world.manager, asked, provider_id=world.provider_id, start_at=at(day, hour)
            )
    with db.read() as session:
        opened = session.execute(
            select(SlotOpening.provider_id, SlotOpening.start_at, SlotOpening.end_at)
        ).all()
    assert opened == [(world.provider_id, at(day, 11), at(day, 11, 30))]
