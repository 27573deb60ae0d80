"""The desk's actions on a flagged public booking request (core.requests.flags): each in one
click, audited, permission-checked, the flag cleared once handled; two at once get one winner."""

from __future__ import annotations

import re
import threading
from datetime import date

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import select

from core.kernel.errors import Conflict, PermissionDenied
from core.portal import patient_links
from core.requests import queue
from core.requests.flags import FlagAction, handle_flag
from db import migrate
from db.models import Appointment, AuditEvent, Patient, RequestFlag
from tests.factories import make_patient
from tests.support.locks import wait_until_a_writer_waits
from tests.unit.test_patient_links import _book, _booking_link

BORN = date(1990, 1, 2)


def _flagged(db, world, **typed) -> int:
    """A public request flagged for the desk; the appointment's id."""
    answer = _book(db, _booking_link(db, world), **typed)
    assert answer == patient_links.BOOKING_RECEIVED  # the same answer, flagged or not
    with db.read() as s:
        return s.scalars(select(RequestFlag.appointment_id)).one()


def _row(db, world, appointment_id):
    with db.read() as s:
        rows = queue.list_queue(s, world.manager, "requests")
    return next(r for r in rows if r.appointment_id == appointment_id)


def _actions(row) -> list[tuple[FlagAction, int | None]]:
    return [(c.action, c.keep_id) for c in row.check_choices]


def _cleared(db, appointment_id) -> list[AuditEvent]:
    with db.read() as s:
        return list(
            s.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == "request_flag_cleared",
                    AuditEvent.entity_id == appointment_id,
                )
            )
        )


def test_a_date_of_birth_typed_for_a_record_with_none_is_added_in_one_click(db, world):
    """The flag kept the typed day as text only: the desk retyped it into the record. Now the
    typed day is kept as a date with the flag, and one action adds it; the flag is cleared
    (not shown in the queue) and kept in the audit."""
    with db.write() as s:
        s.get(Patient, world.patient_id).date_of_birth = None
    visit = _flagged(
        db,
        world,
        first_name="Alex",
        last_name="Morgan",
        email="alex@example.org",
        date_of_birth=BORN,
    )
    row = _row(db, world, visit)
    assert _actions(row) == [(FlagAction.ADD_BIRTH, None), (FlagAction.SAME_PERSON, None)]
    assert "(2 Jan 1990)" in row.check_choices[0].label
    with db.write() as s:
        done = handle_flag(s, world.manager, visit, FlagAction.ADD_BIRTH)
    assert done == f"Date of birth added to #{world.patient_id}; the flag is cleared."
    with db.read() as s:
        assert s.get(Patient, world.patient_id).date_of_birth == BORN
        flag = s.scalars(select(RequestFlag)).one()
        added = s.scalars(select(AuditEvent).where(AuditEvent.action == "patient_updated")).one()
    assert flag.handled_by == "Manager" and flag.handled_at is not None
    assert added.patient_id == world.patient_id
    assert added.message == f"From online request #{visit}"  # where the day came from
    row = _row(db, world, visit)
    assert row.check == "" and row.check_choices == ()
    [event] = _cleared(db, visit)
    assert event.reason == flag.flag and event.details == {"action": "add_birth"}


def test_checked_same_person_clears_the_flag_and_changes_no_record(db, world):
    typed = dict(first_name="Alex", last_name="Morgan", email="alex@example.org")
    visit = _flagged(db, world, **typed, date_of_birth=BORN)
    row = _row(db, world, visit)
    assert _actions(row) == [(FlagAction.SAME_PERSON, None), (FlagAction.NEW_RECORD, None)]
    with db.write() as s:
        handle_flag(s, world.manager, visit, FlagAction.SAME_PERSON)
    with db.read() as s:
        assert s.get(Patient, world.patient_id).date_of_birth == date(1985, 4, 12)
        assert s.get(Appointment, visit).patient_id == world.patient_id
    assert _row(db, world, visit).check == "" and len(_cleared(db, visit)) == 1


def test_not_the_same_person_moves_the_request_to_a_new_record_made_from_what_was_typed(db, world):
    """Kim, sharing Alex's email, asked with her own name and birthday: the request went on
    Alex's record flagged. 'Not the same person' makes Kim's record (typed names, day, the
    shared email, the consent given) and moves the request to it, still waiting in the queue;
    Alex's record is untouched."""
    visit = _flagged(
        db,
        world,
        first_name="Kim",
        last_name="Morgan",
        email="alex@example.org",
        date_of_birth=BORN,
    )
    with db.write() as s:
        done = handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    with db.read() as s:
        kim = s.scalars(select(Patient).where(Patient.first_name == "Kim")).one()
        request = s.get(Appointment, visit)
        alex = s.get(Patient, world.patient_id)
        moved = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "request_moved_to_new_record")
        ).one()
        created = s.scalars(select(AuditEvent).where(AuditEvent.action == "patient_created")).all()[
            -1
        ]
    assert done == (
        f"Request #{visit} moved to new record #{kim.id}; the flag is cleared. Its "
        f"acknowledgement, stopped as written for #{world.patient_id}, is written again for "
        f"#{kim.id} and goes by email, not by text message: no phone number."
    )
    assert (kim.last_name, kim.date_of_birth, kim.email) == ("Morgan", BORN, "alex@example.org")
    assert kim.consent_email and kim.points_balance > 0
    assert request.patient_id == kim.id and request.status.value == "requested"
    assert (alex.first_name, alex.date_of_birth) == ("Alex", date(1985, 4, 12))
    # the acknowledgement waiting to go (email and text) was stopped, and written again
    assert moved.details == {
        "from": world.patient_id,
        "to": kim.id,
        "stopped": 2,
        "payments": 0,
        "written_again": {"template": "request_received", "channels": ["email"]},
    }
    # made by the records' create_patient (its audit details), saying from what
    assert created.entity_id == kim.id
    assert created.message == f"Made from what online request #{visit} typed"
    assert created.details == {"consent_email": True, "consent_sms": False}
    row = _row(db, world, visit)
    assert row.check == "" and row.patient_name == "Kim Morgan"


def test_not_the_same_person_on_a_landline_gets_a_record_without_text_consent(db, world):
    """A request typed with a landline and texts ticked (sent before the form refused it:
    core.portal.patient_links.submit_booking): the new record takes the consent to email as
    typed but not to texts, which none would reach (core.patients.records.check_texts), and
    the outcome says so (before, it was copied as typed)."""
    visit = _flagged(
        db,
        world,
        first_name="Kim",
        last_name="Morgan",
        email="alex@example.org",
        date_of_birth=BORN,
    )
    with db.write() as s:
        flag = s.scalars(select(RequestFlag)).one()
        flag.typed = flag.typed | {"phone": "020 7946 0123", "consent_sms": True}
    with db.write() as s:
        done = handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    with db.read() as s:
        kim = s.scalars(select(Patient).where(Patient.first_name == "Kim")).one()
    assert (kim.phone, kim.consent_email, kim.consent_sms) == ("020 7946 0123", True, False)
    assert done == (
        f"Request #{visit} moved to new record #{kim.id}; the flag is cleared. Its "
        f"acknowledgement, stopped as written for #{world.patient_id}, is written again for "
        f"#{kim.id} and goes by email, not by text message: no consent to text messages. "
        "'020 7946 0123' is a landline: texts cannot reach it, so the new record does not "
        "take text messages."
    )


@pytest.mark.parametrize(
    "ticked, given",
    [
        ({"consent_email": True, "consent_sms": False}, (True, False)),
        ({"consent_email": False, "consent_sms": True}, (False, True)),
        ({"consent": True}, (True, True)),  # a flag kept before the form asked per channel
        ({"consent": False}, (False, False)),
    ],
)
def test_not_the_same_person_gets_the_consent_typed_to_each_channel(db, world, ticked, given):
    """The new record made from what a request typed takes consent to email and to texts as
    each box was ticked (before, one "consent" was read for both, and a flag of the per-channel
    form gave none); a flag kept before the form asked per channel has one "consent", given
    to both, as it was given."""
    visit = _flagged(
        db,
        world,
        first_name="Kim",
        last_name="Morgan",
        email="alex@example.org",
        phone="07911 123456",
        date_of_birth=BORN,
    )
    with db.write() as s:
        flag = s.scalars(select(RequestFlag)).one()
        kept = {k: v for k, v in flag.typed.items() if not k.startswith("consent")}
        flag.typed = kept | ticked
    with db.write() as s:
        handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    with db.read() as s:
        kim = s.scalars(select(Patient).where(Patient.first_name == "Kim")).one()
    assert (kim.phone, kim.consent_email, kim.consent_sms) == ("07911 123456", *given)


def test_maybe_a_known_patient_is_merged_into_theirs_through_the_merge_service(db, world):
    visit = _flagged(db, world, first_name="Alex", last_name="Morgan", email="new@example.net")
    row = _row(db, world, visit)
    with db.read() as s:
        new = s.get(Appointment, visit).patient_id
    assert _actions(row) == [
        (FlagAction.MERGE, world.patient_id),
        (FlagAction.SOMEONE_ELSE, None),
    ]
    with db.write() as s:
        done = handle_flag(s, world.manager, visit, FlagAction.MERGE, keep_id=world.patient_id)
    assert done.endswith("The flag is cleared.")
    with db.read() as s:
        assert s.get(Patient, new).merged_into_id == world.patient_id
        assert s.get(Appointment, visit).patient_id == world.patient_id
        assert s.scalars(
            select(AuditEvent.action).where(AuditEvent.action == "patient_merged_into")
        ).one()
    assert _row(db, world, visit).check == ""
    assert _cleared(db, visit)[0].details == {"action": "merge", "merged_into": world.patient_id}


def test_someone_else_keeps_the_new_record_and_a_record_not_named_cannot_be_merged_into(db, world):
    with db.write() as s:
        stranger = make_patient(s, first_name="Jo", last_name="Bloggs", email="jo@example.org").id
    visit = _flagged(db, world, first_name="Alex", last_name="Morgan", email="new@example.net")
    with db.write() as s, pytest.raises(Conflict, match="no longer possible"):
        handle_flag(s, world.manager, visit, FlagAction.MERGE, keep_id=stranger)
    with db.write() as s:
        handle_flag(s, world.manager, visit, FlagAction.SOMEONE_ELSE)
    with db.read() as s:
        new = s.get(Patient, s.get(Appointment, visit).patient_id)
    assert new.id != world.patient_id and new.merged_into_id is None


def test_staff_may_not_act_on_a_flag_and_nothing_changes(db, world):
    visit = _flagged(db, world, first_name="Kim", last_name="Morgan", email="alex@example.org")
    with db.write() as s, pytest.raises(PermissionDenied):
        handle_flag(s, world.staff, visit, FlagAction.NEW_RECORD)
    assert _row(db, world, visit).check.startswith("Check identity")


def test_two_managers_acting_on_one_flag_at_once_one_wins_the_other_is_told_who(db, world):
    """The manager moves the request to a new record while the owner marks it the same
    person: the owner's waits for the manager's, then is told who handled it and when; one
    new record, one clearing."""
    visit = _flagged(db, world, first_name="Kim", last_name="Morgan", email="alex@example.org")
    failed: list[Exception] = []

    def owner_acts() -> None:
        try:
            with db.write() as session:
                handle_flag(session, world.owner, visit, FlagAction.SAME_PERSON)
        except Exception as error:  # noqa: BLE001 - the failure is the outcome asserted on
            failed.append(error)

    with db.write() as session:
        handle_flag(session, world.manager, visit, FlagAction.NEW_RECORD)
        colleague = threading.Thread(target=owner_acts)
        colleague.start()
        wait_until_a_writer_waits(db)
    colleague.join(30)
    assert len(failed) == 1 and isinstance(failed[0], Conflict), failed
    assert str(failed[0]).startswith(
        f"The flag on request #{visit} was already handled by Manager at "
    )
    with db.read() as s:
        assert s.get(Patient, s.get(Appointment, visit).patient_id).first_name == "Kim"
    assert len(_cleared(db, visit)) == 1


def test_a_flag_stored_before_migration_0024_keeps_its_text_and_can_be_marked_checked(db, world):
    """0024 adds the typed date of birth, names, contact, the known ids and who handled it;
    a flag stored before has none of them: it is shown as it was and can be marked checked
    (only). Down to 0023 and up again keeps it."""
    visit = _flagged(db, world, first_name="Kim", last_name="Morgan", email="alex@example.org")
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0023")
    with db.engine.begin() as connection:
        columns = {c["name"] for c in sa.inspect(connection).get_columns("request_flags")}
        assert "typed_birth" not in columns and "handled_at" not in columns
    migrate.upgrade(db.engine)
    row = _row(db, world, visit)
    assert row.check.startswith("Check identity: typed as “Kim Morgan”")
    assert [(c.action, c.label) for c in row.check_choices] == [
        (FlagAction.SAME_PERSON, "Checked: clear the flag")
    ]
    with db.write() as s:
        handle_flag(s, world.manager, visit, FlagAction.SAME_PERSON)
    assert _row(db, world, visit).check == ""


def test_a_named_patient_merged_since_is_offered_as_the_record_in_use(db, world):
    """The flag names Alex (#1); before the desk looks, Alex's record is merged into another.
    Merging into #1 was offered and refused (a merged record); the record in use is offered."""
    from core.patients import merge

    visit = _flagged(db, world, first_name="Alex", last_name="Morgan", email="new@example.net")
    with db.write() as s:
        kept = make_patient(s, first_name="Alexandra", last_name="Morgan", email="am@x.org").id
        merge.merge_patients(s, world.manager, kept, world.patient_id, "One person")
    assert _actions(_row(db, world, visit)) == [
        (FlagAction.MERGE, kept),
        (FlagAction.SOMEONE_ELSE, None),
    ]
    with db.write() as s:
        handle_flag(s, world.manager, visit, FlagAction.MERGE, keep_id=kept)
    with db.read() as s:
        assert s.get(Appointment, visit).patient_id == kept


def test_the_appointment_page_shows_the_flag_only_until_it_is_handled(db, world):
    """The queue hid a handled flag, but the appointment's page went on showing it ("check
    identity" on a request the desk had already checked). It shows it only while unhandled."""
    from core.scheduling.appointments import get_appointment_detail

    typed = dict(first_name="Alex", last_name="Morgan", email="alex@example.org")
    visit = _flagged(db, world, **typed, date_of_birth=BORN)
    with db.read() as s:
        shown = get_appointment_detail(s, world.manager, visit).check
        flag = s.scalars(select(RequestFlag.flag)).one()
    assert shown == flag != ""
    with db.write() as s:
        handle_flag(s, world.manager, visit, FlagAction.SAME_PERSON)
    with db.read() as s:
        assert get_appointment_detail(s, world.manager, visit).check == ""


def test_a_typed_date_of_birth_goes_on_the_record_through_the_records_service(db, world):
    """Adding the typed date of birth is the patients' records update (core.patients.records):
    its checks apply, so a typed day no longer plausible (a flag left over New Year: 130 years
    back is now a year too many; or stored before the intake checked it) is refused saying what
    to do and nothing changes, the flag still waiting; before, the day was written as typed."""
    from core.kernel.errors import ValidationError
    from core.patients.records import MAX_AGE_YEARS
    from db.types import utcnow

    with db.write() as s:
        s.get(Patient, world.patient_id).date_of_birth = None
    visit = _flagged(
        db,
        world,
        first_name="Alex",
        last_name="Morgan",
        email="alex@example.org",
        date_of_birth=BORN,
    )
    too_old = date(utcnow().year - MAX_AGE_YEARS - 1, 12, 31)
    with db.write() as s:
        s.scalars(select(RequestFlag)).one().typed_birth = too_old
    with pytest.raises(ValidationError) as refused, db.write() as s:
        handle_flag(s, world.manager, visit, FlagAction.ADD_BIRTH)
    assert str(refused.value) == (
        f"The typed date of birth cannot go on record #{world.patient_id}: the date of birth "
        f"is more than {MAX_AGE_YEARS} years ago: check the year ({too_old.year}). Check it "
        "with the patient, then mark the flag checked and put the right day on their record."
    )
    with db.read() as s:
        assert s.get(Patient, world.patient_id).date_of_birth is None
        assert s.scalars(select(RequestFlag)).one().handled_at is None
    assert _cleared(db, visit) == []


def test_a_new_record_from_what_was_typed_gets_the_records_checks(db, world):
    """'Not the same person' makes the new record through core.patients.records
    create_patient: the typed names are cleaned as the desk's are, and what the records refuse
    (an address no email can reach, in a flag stored before the form checked it) is refused
    saying what to do, nothing changing; before, the record was written as typed. The desk's
    choice is the confirmation that it is a different person: the shared email that raised
    the flag is no duplicate."""
    from core.kernel.errors import ValidationError

    visit = _flagged(db, world, first_name="Kim", last_name="Morgan", email="alex@example.org")
    with db.write() as s:
        flag = s.scalars(select(RequestFlag)).one()
        flag.typed = flag.typed | {"first_name": "  Kim ", "email": "alex at example.org"}
    with pytest.raises(ValidationError) as refused, db.write() as s:
        handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    assert str(refused.value).startswith(
        f"A new record cannot be made from what request #{visit} typed: 'alex at example.org' "
        "is not an email address: "
    )
    assert str(refused.value).endswith(
        "Check the details with the patient and add them as a new patient with the right ones; "
        f"the request stays on #{world.patient_id}, flagged."
    )
    with db.read() as s:
        assert s.scalar(select(sa.func.count(Patient.id))) == 1
        assert s.get(Appointment, visit).patient_id == world.patient_id
    assert _cleared(db, visit) == []
    with db.write() as s:  # a day no longer plausible (a flag left over New Year)
        flag = s.scalars(select(RequestFlag)).one()
        flag.typed_birth = date(1800, 1, 1)
    with pytest.raises(ValidationError) as refused, db.write() as s:
        handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    assert str(refused.value).startswith(
        f"A new record cannot be made from what request #{visit} typed: the date of birth is "
        "more than 130 years ago: check the year (1800). "
    )
    with db.write() as s:
        flag = s.scalars(select(RequestFlag)).one()
        flag.typed, flag.typed_birth = flag.typed | {"email": "Alex@Example.org"}, None
    with db.write() as s:
        handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    with db.read() as s:
        kim = s.get(Patient, s.get(Appointment, visit).patient_id)
    assert (kim.first_name, kim.email) == ("Kim", "alex@example.org")


def test_a_date_of_birth_put_on_the_record_meanwhile_is_not_overwritten(db, world):
    """The desk adds the typed date of birth while a colleague saves another day on the
    record: the flag reads the record's date of birth under its row lock, so it waits for the
    colleague's save, then finds the record has one and changes nothing, saying so; before, on
    PostgreSQL it read the record before the lock and overwrote the colleague's day."""
    from core.patients.records import update_patient

    with db.write() as s:
        s.get(Patient, world.patient_id).date_of_birth = None
    visit = _flagged(
        db,
        world,
        first_name="Alex",
        last_name="Morgan",
        email="alex@example.org",
        date_of_birth=BORN,
    )
    failed: list[Exception] = []

    def desk_adds_the_typed_day() -> None:
        try:
            with db.write() as session:
                handle_flag(session, world.manager, visit, FlagAction.ADD_BIRTH)
        except Exception as error:  # noqa: BLE001 - the failure is the outcome asserted on
            failed.append(error)

    with db.write() as session:
        update_patient(session, world.staff, world.patient_id, date_of_birth=date(1985, 4, 12))
        desk = threading.Thread(target=desk_adds_the_typed_day)
        desk.start()
        wait_until_a_writer_waits(db)
    desk.join(30)
    assert len(failed) == 1 and isinstance(failed[0], Conflict), failed
    assert str(failed[0]) == (
        f"That is no longer possible for request #{visit} (its record changed meanwhile). "
        "Reload to see what can be done."
    )
    with db.read() as s:
        assert s.get(Patient, world.patient_id).date_of_birth == date(1985, 4, 12)
        assert s.scalars(select(RequestFlag)).one().handled_at is None


def test_a_request_decided_meanwhile_is_not_moved_to_a_new_record(db, world):
    """The queue offers 'not the same person' on a request waiting for its decision; a desk
    whose page was open while a colleague approved it could still press it, and the visit
    moved to the new record with its confirmation (and any payment or reminder) left on
    Alex's. It is refused now, saying what to do; marking the flag checked still works."""
    from core.requests import decisions
    from tests.unit.test_lifecycle import at

    visit = _flagged(db, world, first_name="Kim", last_name="Morgan", email="alex@example.org")
    with db.write() as s:
        day = s.get(Appointment, visit).requested_day
        decisions.approve_request(
            s, world.manager, visit, provider_id=world.provider_id, start_at=at(day, 10)
        )
    with db.write() as s, pytest.raises(Conflict) as refused:
        handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    assert str(refused.value) == (
        f"Request #{visit} is no longer waiting for a decision (it is booked now), so it "
        f"stays on #{world.patient_id} with its messages and payments. Mark the flag checked; "
        "if the visit is someone else's, cancel it and book it on their own record."
    )
    with db.read() as s:
        assert s.get(Appointment, visit).patient_id == world.patient_id
        assert s.scalar(sa.select(sa.func.count(Patient.id))) == 1
    with db.write() as s:
        handle_flag(s, world.manager, visit, FlagAction.SAME_PERSON)
    assert len(_cleared(db, visit)) == 1


def test_not_the_same_person_moves_a_request_with_a_time_proposed_and_its_link_answers(db, world):
    """A flagged request the practice proposed a time for still waits for its decision (the
    patient's answer): 'not the same person' is offered in the queue's 'Waiting for the
    patient' and on the visit's page, and moves the request to Kim's new record with the time
    it holds and what was asked; the link sent to the shared email is bound to the visit, not
    the record, so it shows Kim's name and her acceptance is confirmed to her record. Before,
    the move was not offered and handle_flag refused it ("it is tentative now")."""
    from core.requests import decisions
    from core.requests.flags import offered_on
    from db.models import Notification
    from tests.unit.test_lifecycle import at

    visit = _flagged(db, world, first_name="Kim", last_name="Morgan", email="alex@example.org")
    with db.write() as s:
        day = s.get(Appointment, visit).requested_day
        raw = decisions.propose_time(
            s, world.manager, visit, provider_id=world.provider_id, start_at=at(day, 11)
        )
    assert "appointment_proposed" in [m[0] for m in _deliver(db)]  # to the shared email
    with db.read() as s:
        [row] = queue.list_queue(s, world.manager, "proposals")
        offered = offered_on(s, world.manager, visit)
    assert row.appointment_id == visit and row.check.startswith("Check identity")
    not_alex = (FlagAction.NEW_RECORD, None)
    assert _actions(row) == [(FlagAction.SAME_PERSON, None), not_alex]
    assert [(c.action, c.keep_id) for c in offered] == _actions(row)
    with db.write() as s:
        done = handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    with db.read() as s:
        kim = s.scalars(select(Patient).where(Patient.first_name == "Kim")).one()
        request = s.get(Appointment, visit)
    assert done == (
        f"Request #{visit} moved to new record #{kim.id} with the time proposed to them (the "
        "link sent still answers it); the flag is cleared."
    )
    assert (request.patient_id, request.status.value) == (kim.id, "tentative")
    assert request.start_at == at(day, 11) and request.ask_kept  # what was asked goes with it
    with db.read() as s:
        assert patient_links.proposal_view(s, raw).first_name == "Kim"
    with db.write() as s:
        patient_links.answer_proposal(s, raw, accept=True)
    with db.read() as s:
        assert s.get(Appointment, visit).status.value == "scheduled"
        confirmed = s.scalars(
            select(Notification.patient_id).where(
                Notification.appointment_id == visit,
                Notification.template == "appointment_scheduled",
            )
        ).all()
    assert confirmed and set(confirmed) == {kim.id}


def test_a_proposal_that_reached_nobody_is_moved_saying_to_propose_it_again(db, world):
    """Alex takes no messages, so the proposal made while Kim's request was on his record
    reached nobody: moved to Kim's record, the desk is told to propose the time again, not
    that the link sent still answers it; proposed again, it goes to Kim."""
    from core.requests import decisions
    from db.models import Notification
    from tests.unit.test_lifecycle import at

    visit = _flagged(db, world, first_name="Kim", last_name="Morgan", email="alex@example.org")
    with db.write() as s:
        alex = s.get(Patient, world.patient_id)
        alex.consent_email = alex.consent_sms = False
        day = s.get(Appointment, visit).requested_day
        decisions.propose_time(
            s, world.manager, visit, provider_id=world.provider_id, start_at=at(day, 11)
        )
    with db.write() as s:
        done = handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    with db.read() as s:
        kim = s.get(Appointment, visit).patient_id
    assert done == (
        f"Request #{visit} moved to new record #{kim} with the time proposed to them (no "
        "message took them its link: propose the time again to send it to them); the flag "
        "is cleared."
    )
    with db.write() as s:
        decisions.propose_time(
            s, world.manager, visit, provider_id=world.provider_id, start_at=at(day, 11)
        )
    with db.read() as s:
        told = s.scalars(
            select(Notification.patient_id).where(Notification.template == "appointment_proposed")
        ).all()
    assert told == [kim]


def test_a_proposal_replaced_after_its_message_went_is_written_again_for_the_new_record(db, world):
    """The shared email had the first proposal (10:00); the desk then proposed 11:00 instead,
    which revoked the first link, and its message still waits when the request moves to Kim.
    The link sent answers nothing now (it says it was replaced): the waiting proposal, stopped
    by the move, is written again for Kim, with a link that answers 11:00. Before, the desk
    was told to propose the time again (and before 2e2060c, that the link sent answered it)."""
    from core.requests import decisions
    from db.models import Notification
    from tests.unit.test_lifecycle import at

    visit = _flagged(db, world, first_name="Kim", last_name="Morgan", email="alex@example.org")
    with db.write() as s:
        day = s.get(Appointment, visit).requested_day
        first = decisions.propose_time(
            s, world.manager, visit, provider_id=world.provider_id, start_at=at(day, 10)
        )
    assert "appointment_proposed" in [m[0] for m in _deliver(db)]
    with db.write() as s:
        decisions.propose_time(
            s, world.manager, visit, provider_id=world.provider_id, start_at=at(day, 11)
        )
    with db.write() as s:
        done = handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    with db.read() as s:
        kim = s.get(Appointment, visit).patient_id
        [body] = s.scalars(
            select(Notification.body).where(
                Notification.patient_id == kim, Notification.template == "appointment_proposed"
            )
        ).all()
    assert (
        f"(its message, stopped as written for #{world.patient_id}, is written again for "
        f"#{kim} with a new link and goes by email, not by text message: no phone number)"
    ) in done
    assert body.startswith("Dear Kim Morgan,") and "Alex" not in body
    assert _deliver(db) == [("appointment_proposed", "email", "alex@example.org", kim)]
    with pytest.raises(patient_links.ProposalReplaced), db.read() as s:
        patient_links.proposal_view(s, first)  # it answers nothing
    raw = re.search(r"p=proposal&t=([\w-]+)", body).group(1)
    with db.read() as s:
        view = patient_links.proposal_view(s, raw)
    assert view.first_name == "Kim" and "11:00" in view.when


def test_a_change_requests_proposal_is_not_moved_to_a_new_record(db, world):
    """A visit booked from a flagged request whose patient asked to move it, and was proposed
    a new time, is tentative too, but decided: its confirmation, reminders and change request
    are on Alex's record. 'Not the same person' is offered neither in the queue nor on its
    page, and refused saying why in words of what it is (before: "it is tentative now", as
    if the request were waiting for its decision)."""
    from core.kernel.authz import patient_actor
    from core.requests import changes, decisions
    from core.requests.flags import offered_on
    from tests.unit.test_lifecycle import at

    visit = _flagged(db, world, first_name="Kim", last_name="Morgan", email="alex@example.org")
    with db.write() as s:
        day = s.get(Appointment, visit).requested_day
        decisions.approve_request(
            s, world.manager, visit, provider_id=world.provider_id, start_at=at(day, 10)
        )
    with db.write() as s:
        change_id = changes.request_change(
            s, patient_actor("Kim"), visit, kind="reschedule", requested_day=day
        ).id
    with db.write() as s:
        changes.propose_for_change(s, world.manager, change_id, start_at=at(day, 15))
    with db.read() as s:
        [row] = queue.list_queue(s, world.manager, "proposals")
        offered = offered_on(s, world.manager, visit)
    assert row.appointment_id == visit
    assert _actions(row) == [(FlagAction.SAME_PERSON, None)]
    assert [(c.action, c.keep_id) for c in offered] == _actions(row)
    with db.write() as s, pytest.raises(Conflict) as refused:
        handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    assert str(refused.value) == (
        f"Request #{visit} is no longer waiting for a decision (it was booked, and a new time "
        f"is proposed for the change its patient asked), so it stays on #{world.patient_id} "
        "with its messages and payments. Mark the flag checked; if the visit is someone "
        "else's, cancel it and book it on their own record."
    )
    with db.read() as s:
        assert s.get(Appointment, visit).patient_id == world.patient_id


def test_a_new_record_merged_already_into_the_known_patient_is_offered_as_checked(db, world):
    """The desk merged the maybe-known patient's new record into Alex's on the Patients page,
    not from the queue: the request is on Alex's record now, its flag still waiting. The queue
    offered only 'Someone else: keep new record #1', naming Alex's record as the new one and
    saying the opposite of what was found; it offers marking it checked, and that clears it."""
    from core.patients import merge

    visit = _flagged(db, world, first_name="Alex", last_name="Morgan", email="new@example.net")
    with db.write() as s:
        new = s.get(Appointment, visit).patient_id
        merge.merge_patients(s, world.manager, world.patient_id, new, "One person")
    row = _row(db, world, visit)
    assert [(c.action, c.label) for c in row.check_choices] == [
        (
            FlagAction.SAME_PERSON,
            f"Checked: it is #{world.patient_id} (the new record is merged into it already)",
        )
    ]
    with db.write() as s:
        handle_flag(s, world.manager, visit, FlagAction.SAME_PERSON)
    assert _row(db, world, visit).check == ""
    assert _cleared(db, visit)[0].details == {"action": "same_person"}


def test_a_new_record_whose_name_and_birthday_a_patient_has_says_so(db, world):
    """Kim, on file with her own email, asks with Alex's: 'not the same person' makes a new
    record (the desk's choice is its confirmation), and the outcome names the patient with
    Kim's name and date of birth, for the desk to merge them if it is her; before, the likely
    duplicate was made without a word."""
    with db.write() as s:
        kim = make_patient(
            s, first_name="Kim", last_name="Morgan", email="kim@example.org", date_of_birth=BORN
        ).id
    visit = _flagged(
        db,
        world,
        first_name="Kim",
        last_name="Morgan",
        email="alex@example.org",
        date_of_birth=BORN,
    )
    with db.write() as s:
        done = handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    with db.read() as s:
        new = s.get(Appointment, visit).patient_id
    assert new not in (kim, world.patient_id)
    assert done == (
        f"Request #{visit} moved to new record #{new}; the flag is cleared. Its "
        f"acknowledgement, stopped as written for #{world.patient_id}, is written again for "
        f"#{new} and goes by email, not by text message: no phone number. Patient #{kim} has "
        f"the same name and date of birth: if it is them, merge #{new} into #{kim} on the "
        "Patients page."
    )


def test_a_flag_left_on_a_decided_request_is_offered_where_its_notice_is_shown(db, world):
    """A flagged request approved without acting on its flag left the queue with it, and the
    appointment's page showed "Check identity" for ever: nothing offered to clear it. Where
    the notice is shown the desk is offered what handle_flag still accepts (marking it
    checked; not the move to a new record, once decided), and marking it checked clears it,
    saying who and when; staff, who may not decide requests, are offered nothing."""
    from core.requests import decisions
    from core.requests.flags import offered_on
    from core.scheduling.appointments import get_appointment_detail
    from tests.unit.test_lifecycle import at

    visit = _flagged(db, world, first_name="Kim", last_name="Morgan", email="alex@example.org")
    with db.write() as s:
        day = s.get(Appointment, visit).requested_day
        decisions.approve_request(
            s, world.manager, visit, provider_id=world.provider_id, start_at=at(day, 10)
        )
    with db.read() as s:
        assert get_appointment_detail(s, world.manager, visit).check.startswith("Check identity")
        offered = offered_on(s, world.manager, visit)
        assert offered_on(s, world.staff, visit) == ()
    assert [(c.action, c.label) for c in offered] == [
        (FlagAction.SAME_PERSON, f"Checked: it is #{world.patient_id}")
    ]
    with db.write() as s:
        assert handle_flag(s, world.manager, visit, offered[0].action) == "The flag is cleared."
    with db.read() as s:
        flag = s.scalars(select(RequestFlag)).one()
        assert flag.handled_by == "Manager" and flag.handled_at is not None
        assert get_appointment_detail(s, world.manager, visit).check == ""
        assert offered_on(s, world.manager, visit) == ()
    [cleared] = _cleared(db, visit)
    assert cleared.actor_label == "Manager" and cleared.details == {"action": "same_person"}


@pytest.mark.parametrize("decided", ["approved", "declined", "withdrawn"])
def test_a_maybe_known_patient_on_a_decided_request_is_merged_with_its_visit(db, world, decided):
    """A request from a new record whose name Alex has, decided without acting on its flag
    (approved, declined, or withdrawn: cancelled), has left the queue; the visit's page offers
    the merge into Alex's record, as the queue did. The merge moves the whole new record
    (core.patients.merge: every reference, nothing left behind), so unlike the move to a new
    record it is right for a decided request too: the visit goes to Alex's record as it was
    decided (its status and time), its messages with it, still to the address they were sent
    to, and nothing new is sent to the patient."""
    from core.kernel.authz import patient_actor
    from core.patients.records import get_patient_record
    from core.requests import decisions
    from core.requests.flags import offered_on
    from db.models import Notification
    from tests.unit.test_lifecycle import at

    visit = _flagged(db, world, first_name="Alex", last_name="Morgan", email="new@example.net")
    with db.write() as s:
        new = s.get(Appointment, visit).patient_id
        day = s.get(Appointment, visit).requested_day
        if decided == "approved":
            decisions.approve_request(
                s, world.manager, visit, provider_id=world.provider_id, start_at=at(day, 10)
            )
        elif decided == "declined":
            decisions.decline_request(s, world.manager, visit, reason="No room that day.")
        else:  # cancelled by the patient
            decisions.withdraw_request(s, patient_actor("Alex"), visit)

    def messages(s) -> list[tuple]:
        return s.execute(
            select(
                Notification.id,
                Notification.template,
                Notification.to_address,
                Notification.status,
                Notification.permanent_failure,
            )
            .where(Notification.appointment_id == visit)
            .order_by(Notification.id)
        ).all()

    with db.read() as s:
        before = s.get(Appointment, visit)
        decided_as = (before.status, before.start_at, before.provider_id)
        sent = messages(s)
        everyone = s.scalar(sa.select(sa.func.count(Notification.id)))
        offered = offered_on(s, world.manager, visit)
    assert [(c.action, c.keep_id) for c in offered] == [
        (FlagAction.MERGE, world.patient_id),
        (FlagAction.SOMEONE_ELSE, None),
    ]
    assert sent and {m.to_address for m in sent} == {"new@example.net"}
    with db.write() as s:
        done = handle_flag(s, world.manager, visit, FlagAction.MERGE, keep_id=world.patient_id)
    assert done.startswith(f"Record #{new} was merged into #{world.patient_id}: moved 1 appoint")
    with db.read() as s:
        after = s.get(Appointment, visit)
        assert after.patient_id == world.patient_id
        assert (after.status, after.start_at, after.provider_id) == decided_as
        assert messages(s) == sent  # the same messages, as they were (none withdrawn)
        assert set(
            s.scalars(select(Notification.patient_id).where(Notification.appointment_id == visit))
        ) == {world.patient_id}
        assert s.scalar(sa.select(sa.func.count(Notification.id))) == everyone  # none new
        next_visit = get_patient_record(s, world.manager, world.patient_id).next_visit
        assert s.get(Patient, new).merged_into_id == world.patient_id
        assert offered_on(s, world.manager, visit) == ()  # the flag is cleared
    assert ("Consultation" in next_visit) == (decided == "approved")  # Alex's next visit
    if decided == "approved":  # the confirmation's change link names the visit: it still works
        with db.read() as s:
            body = s.scalars(
                select(Notification.body).where(Notification.template == "appointment_scheduled")
            ).first()
            raw = re.search(r"p=change&t=([\w-]+)", body).group(1)
            assert patient_links.change_view(s, raw).appointment.appointment_id == visit


class _Outbox:
    """A transport for both channels keeping what went where, and for whom; `refusing`: the
    addresses its provider refuses for good (a mailbox that does not exist)."""

    def __init__(self, refusing: tuple[str, ...] = ()) -> None:
        self.sent: list[tuple] = []
        self.refusing = refusing

    def send(self, notification) -> None:
        from core.messaging.delivery import PermanentFailure

        n = notification
        if n.to_address in self.refusing:
            raise PermanentFailure(f"550 No such mailbox: {n.to_address}")
        self.sent.append((n.template, n.channel.value, n.to_address, n.patient_id))


def _deliver(db, refusing: tuple[str, ...] = ()) -> list[tuple]:
    from core.messaging import delivery
    from db.models import Channel

    outbox = _Outbox(refusing)
    delivery.send_due(db.write, {Channel.EMAIL: outbox, Channel.SMS: outbox})
    return [sent for sent in outbox.sent if sent[-1] is not None]  # the clinic's inbox's: not


def _messages(db, visit) -> list[tuple]:
    from db.models import Notification

    with db.read() as s:
        rows = s.scalars(
            select(Notification)
            .where(Notification.appointment_id == visit)
            .order_by(Notification.id)
        )
        return [
            (n.template, n.channel.value, n.patient_id, n.to_address, n.status.value, n.last_error)
            for n in rows
        ]


def test_not_the_same_person_writes_the_waiting_proposal_again_for_the_new_record(db, world):
    """Kim typed her own email and Alex's phone (no texts for her): the request went on Alex's
    record, its acknowledgement went out to Alex, and the practice's proposal, with a note to
    Alex, waits in the outbox (the mail server was down, say). 'Not the same person' stops it
    in the same transaction: written for Alex ("Dear Alex Morgan"), sent to Kim's email it
    would tell her Alex's name, and sent to Alex it would tell him of Kim's visit. It is
    written again for Kim by the proposal's own flow, to her own address on the channel she
    consented to, with a new link (the stopped one's revoked) and without the note written to
    Alex; the acknowledgement, which went, is not repeated. What was sent stays on Alex's
    record as history, and so does a proposal replaced before it went. Before, the desk was
    told to propose the time again."""
    from core.kernel import tokens
    from core.requests import decisions
    from db.models import LinkToken, Notification
    from tests.unit.test_lifecycle import at

    alex = world.patient_id
    visit = _flagged(
        db,
        world,
        first_name="Kim",
        last_name="Morgan",
        email="kim@example.net",
        phone="07700 900123",
        consent_email=True,
        consent_sms=False,
    )
    acknowledged = [
        ("request_received", "email", "alex@example.org", alex),
        ("request_received", "sms", "+447700900123", alex),  # in E.164 for the provider
    ]
    assert _deliver(db) == acknowledged
    with db.write() as s:
        day = s.get(Appointment, visit).requested_day
        for hour in (10, 11):  # the first one replaced before it went
            stopped_link = decisions.propose_time(
                s,
                world.manager,
                visit,
                provider_id=world.provider_id,
                start_at=at(day, hour),
                message="Alex, your usual room.",
            )
    with db.write() as s:
        done = handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    with db.read() as s:
        kim = s.scalars(select(Patient).where(Patient.first_name == "Kim")).one().id
        moved = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "request_moved_to_new_record")
        ).one()
        [body] = s.scalars(select(Notification.body).where(Notification.patient_id == kim)).all()
        revoked = s.scalar(
            select(LinkToken.revoked_at).where(
                LinkToken.token_hash == tokens.hash_token(stopped_link)
            )
        )
    assert (
        f"(its message, stopped as written for #{alex}, is written again for #{kim} with a new "
        f"link, without the practice's note to #{alex} and goes by email, not by text message: "
        "no consent to text messages)"
    ) in done
    assert body.startswith("Dear Kim Morgan,") and "Alex" not in body
    assert revoked is not None  # the link nobody had answers nothing
    replaced = decisions.REPLACED
    stopped = (
        f"Not sent: written for #{alex}, and the request moved to new record #{kim} "
        "(not the same person)."
    )
    assert _messages(db, visit) == [
        ("request_received", "email", alex, "alex@example.org", "sent", None),
        ("request_received", "sms", alex, "07700 900123", "sent", None),
        ("appointment_proposed", "email", alex, "alex@example.org", "failed", replaced),
        ("appointment_proposed", "sms", alex, "07700 900123", "failed", replaced),
        ("appointment_proposed", "email", alex, "alex@example.org", "failed", stopped),
        ("appointment_proposed", "sms", alex, "07700 900123", "failed", stopped),
        ("appointment_proposed", "email", kim, "kim@example.net", "queued", None),
    ]
    assert moved.details["stopped"] == 2  # the audit says how many were stopped
    assert moved.details["written_again"] == {
        "template": "appointment_proposed",
        "channels": ["email"],
        "note_left_out": True,
    }
    # nothing of Kim's to Alex, nothing of Alex's name to Kim, the acknowledgement not again
    assert _deliver(db) == [("appointment_proposed", "email", "kim@example.net", kim)]
    raw = re.search(r"p=proposal&t=([\w-]+)", body).group(1)
    with db.write() as s:
        patient_links.answer_proposal(s, raw, accept=True)
    with db.read() as s:
        assert s.get(Appointment, visit).status.value == "scheduled"


def test_not_the_same_person_writes_the_waiting_acknowledgement_again_for_the_new_record(db, world):
    """Kim typed her own email and Alex's phone; the acknowledgement of her request, written
    for Alex, waits in the outbox (to Alex's email and phone) when the desk moves the request
    to Kim's record. It is stopped, and written again for Kim by request_appointment's own
    call (decisions.acknowledge): her name, her email, and her phone too as she ticked texts.
    Before, she was never told her request arrived."""
    from db.models import Notification

    visit = _flagged(
        db,
        world,
        first_name="Kim",
        last_name="Morgan",
        email="kim@example.net",
        phone="07700 900123",
    )
    with db.write() as s:
        done = handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    with db.read() as s:
        kim = s.get(Appointment, visit).patient_id
        bodies = s.scalars(
            select(Notification.body)
            .where(Notification.patient_id == kim)
            .order_by(Notification.id)
        ).all()
    assert done.endswith(
        f"Its acknowledgement, stopped as written for #{world.patient_id}, is written again "
        f"for #{kim} and goes by email and text message."
    )
    assert bodies[0].startswith("Dear Kim Morgan,") and "Alex" not in " ".join(bodies)
    assert _deliver(db) == [
        ("request_received", "email", "kim@example.net", kim),
        ("request_received", "sms", "+447700900123", kim),
    ]


def test_an_acknowledgement_is_not_written_again_for_a_record_without_consent(db, world):
    """Kim shares Alex's email and ticked no messages: the acknowledgement waiting to Alex is
    stopped by the move and nothing is queued for Kim; the desk is told why."""
    from db.models import Notification

    visit = _flagged(
        db,
        world,
        first_name="Kim",
        last_name="Morgan",
        email="alex@example.org",
        consent_email=False,
        consent_sms=False,
    )
    with db.write() as s:
        done = handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    with db.read() as s:
        kim = s.get(Appointment, visit).patient_id
        queued = s.scalars(select(Notification.id).where(Notification.patient_id == kim)).all()
    assert queued == [] and _deliver(db) == []
    assert done.endswith(
        f"Its acknowledgement, stopped as written for #{world.patient_id}, is not written "
        f"again: #{kim} takes no messages (no consent to email; no phone number)."
    )


def test_a_message_refused_at_the_first_records_address_is_not_retried_after_the_move(db, world):
    """The acknowledgement of Kim's request was refused at Alex's email address (failed for
    good, for a person to retry once the address is put right). Moved to Kim's record, the
    request's message written for Alex is stopped on purpose: a retry is refused, and nothing
    goes to Kim with Alex's name on it, nor to Alex about Kim's visit."""
    from core.kernel.errors import ValidationError
    from core.messaging import notify
    from db.models import Notification

    visit = _flagged(
        db,
        world,
        first_name="Kim",
        last_name="Morgan",
        email="kim@example.net",
        phone="07700 900123",
    )
    assert [m[0] for m in _deliver(db, refusing=("alex@example.org",))] == ["request_received"]
    with db.write() as s:
        handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    with db.read() as s:
        refused = s.scalars(
            select(Notification).where(
                Notification.channel == "email", Notification.appointment_id == visit
            )
        ).one()
    with pytest.raises(ValidationError, match="stopped this message on purpose"), db.write() as s:
        notify.retry(s, world.manager, refused.id)
    assert _deliver(db) == []


def test_a_waiting_proposal_is_not_written_again_for_a_record_without_consent(db, world):
    """Kim shares Alex's email but ticked no messages: the proposal waiting in the outbox to
    Alex is stopped with the move, nothing is queued for Kim, and no new link is made (one
    nobody gets would only hold the time longer); the desk is told so and what to do, not to
    propose the time again, which would reach her no better."""
    from core.requests import decisions
    from db.models import LinkToken, Notification
    from tests.unit.test_lifecycle import at

    visit = _flagged(
        db,
        world,
        first_name="Kim",
        last_name="Morgan",
        email="alex@example.org",
        consent_email=False,
        consent_sms=False,
    )
    with db.write() as s:
        day = s.get(Appointment, visit).requested_day
        decisions.propose_time(
            s, world.manager, visit, provider_id=world.provider_id, start_at=at(day, 11)
        )
    with db.write() as s:
        done = handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    with db.read() as s:
        kim = s.get(Appointment, visit).patient_id
        queued = s.scalars(select(Notification.id).where(Notification.patient_id == kim)).all()
        links = s.scalars(select(LinkToken.id).where(LinkToken.purpose == "proposal")).all()
    assert (
        f"(no message took them its link, and #{kim} takes none: no consent to email; no "
        "phone number. Tell them the time by phone, or propose it again once their record "
        "takes messages)"
    ) in done
    assert queued == [] and len(links) == 1
    assert _deliver(db) == []  # nothing of Kim's goes to Alex, nor to Kim without consent


def test_a_message_a_sender_holds_while_the_request_moves_is_not_sent(db, world):
    """A sender has claimed the acknowledgement of Kim's request, to Alex's email and phone,
    and is about to send it when the desk moves the request to Kim's record. The move takes
    the claim back and stops the message: the sender, looking at it as it goes
    (delivery.take), finds its claim gone and sends nothing, and no later round sends it: the
    acknowledgement written again for Kim goes instead."""
    from core.messaging import delivery
    from db.models import Channel
    from db.types import utcnow

    visit = _flagged(
        db,
        world,
        first_name="Kim",
        last_name="Morgan",
        email="kim@example.net",
        phone="07700 900123",
    )
    held = delivery.claim(db.write, "sender-a", [Channel.EMAIL, Channel.SMS], utcnow())
    held = [row for row in held if row.appointment_id == visit]
    assert [row.template for row in held] == ["request_received"] * 2
    with db.write() as s:
        handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    until = utcnow() + delivery.LEASE
    assert [delivery.take(db.write, "sender-a", row, until) for row in held] == ["lost"] * 2
    with db.read() as s:
        kim = s.get(Appointment, visit).patient_id
    # nothing to Alex; taken back before it went, it is written again for Kim
    assert _deliver(db) == [
        ("request_received", "email", "kim@example.net", kim),
        ("request_received", "sms", "+447700900123", kim),
    ]


def test_not_the_same_person_takes_a_desk_payment_for_the_request_to_the_new_record(db, world):
    """A desk payment taken for a request still waiting (card or cash: nothing on a card on
    file, no points) is the visit's: it moves with the request to the new record, so the new
    record's portal and page show it and a refund is written for them. Before, it stayed on
    the first record while the visit and its receipt went to the new one."""
    from core.payments import desk
    from db.models import Payment

    alex = world.patient_id
    visit = _flagged(db, world, first_name="Kim", last_name="Morgan", email="alex@example.org")
    with db.write() as s:
        desk.record_desk_payment(s, world.staff, visit, amount_cents=2500, method="cash")
    with db.write() as s:
        handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    with db.read() as s:
        kim = s.scalars(select(Patient).where(Patient.first_name == "Kim")).one().id
        paid = s.scalars(select(Payment.patient_id).where(Payment.appointment_id == visit)).all()
    assert kim != alex and paid == [kim]


def test_a_request_paid_from_the_first_records_points_stays_saying_to_refund_first(db, world):
    """Points are the first record's own: a request with a payment from them is not moved
    (nothing is: the record made for it neither), and the desk is told what to do."""
    from db.models import Payment

    visit = _flagged(db, world, first_name="Kim", last_name="Morgan", email="alex@example.org")
    with db.write() as s:
        s.add(
            Payment(
                appointment_id=visit,
                patient_id=world.patient_id,
                kind="prepayment",
                method="points",
                status="paid",
                points=100,
                currency="GBP",
            )
        )
    with pytest.raises(Conflict, match="Refund that payment first"), db.write() as s:
        handle_flag(s, world.manager, visit, FlagAction.NEW_RECORD)
    with db.read() as s:
        assert s.get(Appointment, visit).patient_id == world.patient_id
        assert s.scalars(select(Patient).where(Patient.first_name == "Kim")).all() == []
