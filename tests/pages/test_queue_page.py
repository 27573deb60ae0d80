"""AppTest: the request queue page as a manager — counts, each action, refusals and bulk."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import streamlit as st
from sqlalchemy import select
from sqlalchemy.orm import aliased

from core.kernel.accounts import actor_of
from core.kernel.authz import patient_actor
from core.kernel.config import load_settings
from core.practice import skills
from core.requests import changes, decisions, queue
from core.requests.queue import QueueKind
from core.scheduling.availability import OCCUPYING
from core.scheduling.lifecycle import services_of
from core.startup import open_database
from db.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    ChangeRequest,
    ChangeStatus,
    Provider,
    User,
)
from db.types import utcnow

PAGE = "app_pages/queue.py"


@pytest.fixture(autouse=True)
def _fresh_read_caches():
    """st.cache_data lives as long as the process: each test has its own database copy."""
    st.cache_data.clear()


def _db(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def _status(url, appointment_id):
    database = _db(url)
    with database.read() as session:
        status = session.get(Appointment, appointment_id).status
    database.dispose()
    return status


def _item(at, kind="requests", choice=None):
    """The item selected in the queue (the first until a row is clicked), with its action
    chosen (none is preselected)."""
    heading = next(h.value for h in at.subheader if h.value.startswith("#"))
    ident = int(heading[1:].split(" ", 1)[0])
    database = _db(os.environ["DATABASE_URL"])  # the test's copy (the app_db fixture)
    with database.read() as session:
        manager = actor_of(session.scalar(select(User).where(User.username == "manager")))
        _, rows, _ = queue.queue_view(session, manager, QueueKind(kind))
    database.dispose()
    row = next(r for r in rows if r.appointment_id == ident)
    if choice:
        at.radio(key=f"queue_{kind}_{row.appointment_id}_choice").set_value(choice).run()
    return row


def _texts(at):
    return [e.value for e in at.success] + [e.value for e in at.error] + [e.value for e in at.info]


def test_manager_sees_the_four_kinds_with_counts(app_as):
    at = app_as("manager", PAGE)
    assert not at.exception
    text = " ".join(o.content for o in at.button_group(key="queue_kind").proto.options)
    assert "New requests (14)" in text and "Reschedule requests (5)" in text
    assert "Cancellation requests (5)" in text
    assert len(at.dataframe) >= 1


def test_the_side_panel_shows_a_requests_flag_and_its_notes_whole(app_as, app_db):
    """A public request's check flag (whose identity, or maybe a known patient) and the
    patient's whole note are shown beside the table (before: the flag only in a cut table cell,
    the notes cut at 600 characters without a word)."""
    from db.models import RequestFlag

    at = app_as("manager", PAGE)
    first = int(next(h.value for h in at.subheader if h.value.startswith("#"))[1:].split()[0])
    database = _db(app_db)
    with database.write() as session:
        session.get(Appointment, first).notes = "x" * 700 + " the end"
        session.add(RequestFlag(appointment_id=first, flag="Maybe a known patient: #1 on file."))
    database.dispose()
    st.cache_data.clear()
    at.run()
    assert [w.value for w in at.warning if "known patient" in w.value] == [
        "Maybe a known patient: #1 on file."
    ]
    assert any(c.value.endswith("x the end") for c in at.caption)


def _panel(at) -> str:
    """What the panel beside the table says in Markdown (the heading's, the row's)."""
    return "\n".join(m.value for m in at.markdown)


def test_the_side_panel_says_when_the_row_is_about(app_as):
    """Beside the table at 1280 px only its first four columns show (#, patient, service,
    clinic): the panel says when the patient asked for, or holds, and with whom, in the table's
    words and clinic-local times, so a manager deciding need not scroll the table sideways
    (before: no time anywhere in the panel until an action was chosen)."""
    from ui.text import escape

    at = app_as("manager", PAGE)
    for kind, cells in (
        ("requests", ("Service", "Requested")),
        ("reschedules", ("Service", "Provider", "Original", "Requested")),
        ("cancellations", ("Service", "Provider", "Appointment")),
        ("proposals", ("Service", "Provider", "Proposed", "Answer by")),
    ):
        at.button_group(key="queue_kind").set_value(QueueKind(kind)).run()
        shown = queue.describe(_item(at, kind))
        panel = _panel(at)
        for cell in cells:
            assert f"**{cell}:** {escape(shown[cell])}" in panel, (kind, cell, panel)


def _reachable(url) -> None:
    """The oldest request (the queue's first row) with no time-of-day preference: the demo,
    seeded at any hour of the day, may make it 'early morning' at a clinic whose providers
    start at nine, and then nothing can be suggested for it."""
    database = _db(url)
    with database.write() as session:
        oldest = session.scalars(
            select(Appointment)
            .where(Appointment.status == AppointmentStatus.REQUESTED)
            .order_by(Appointment.created_at, Appointment.id)
            .limit(1)
        ).one()
        oldest.time_of_day = None
    database.dispose()


def test_approve_with_the_first_suggested_slot(app_as, app_db):
    _reachable(app_db)
    at = app_as("manager", PAGE)
    row = _item(at)
    prefix = f"queue_requests_{row.appointment_id}"
    assert not any(s.key == f"{prefix}_slot" for s in at.selectbox)  # nothing searched yet
    row = _item(at, choice="Approve")
    at.button(key=f"queue_requests_{row.appointment_id}_go").click().run()
    assert not at.exception
    assert any("Approved." in t and "Notified" in t for t in _texts(at)), _texts(at)
    assert _status(app_db, row.appointment_id) == AppointmentStatus.SCHEDULED


def test_decline_without_reason_is_refused_with_its_message(app_as, app_db):
    at = app_as("manager", PAGE)
    row = _item(at)
    prefix = f"queue_requests_{row.appointment_id}"
    at.radio(key=f"{prefix}_choice").set_value("Decline").run()
    at.button(key=f"{prefix}_go").click().run()
    assert any("Give a reason for the decline" in e.value for e in at.error)
    assert _status(app_db, row.appointment_id) == AppointmentStatus.REQUESTED
    at.text_input(key=f"{prefix}_reason").input("No provider that week").run()
    at.button(key=f"{prefix}_go").click().run()
    (said,) = [s.value for s in at.success if "Declined." in s.value]
    assert said.startswith("Declined. Notified:") and "Now declined" not in said  # said once
    assert _status(app_db, row.appointment_id) == AppointmentStatus.DECLINED


def test_propose_another_time(app_as, app_db):
    _reachable(app_db)
    at = app_as("manager", PAGE)
    row = _item(at)
    prefix = f"queue_requests_{row.appointment_id}"
    at.radio(key=f"{prefix}_choice").set_value("Propose another time").run()
    at.text_area(key=f"{prefix}_message").input("Would this suit you?").run()
    at.button(key=f"{prefix}_go").click().run()
    assert any("Proposal sent" in s.value for s in at.success), _texts(at)
    assert _status(app_db, row.appointment_id) == AppointmentStatus.TENTATIVE


def test_taken_slot_is_refused_naming_the_conflict(app_as, app_db):
    at = app_as("manager", PAGE)
    row = _item(at, choice="Approve")
    prefix = f"queue_requests_{row.appointment_id}"
    database = _db(app_db)
    with database.read() as session:  # a scheduled appointment of a provider at this clinic
        wanted = [s.id for s in services_of(session.get(Appointment, row.appointment_id))]
        able = skills.able(session, session.scalars(select(Provider.id)), wanted)
        other = aliased(Appointment)
        busy = session.scalars(
            select(Appointment)
            .where(
                Appointment.clinic_id == row.clinic_id,
                Appointment.status == AppointmentStatus.SCHEDULED,
                Appointment.patient_id.is_not(None),
                Appointment.provider_id.in_(able),  # who performs the requested service
                # a day ahead of now, not of the request (up to 60 hours old): the next visit
                # may start within minutes, and a past time is refused before any conflict
                Appointment.start_at > utcnow() + timedelta(days=1),
                # alone in its provider's diary: the refusal names the first event the time
                # overlaps, and the demo's weekly team meeting (13:00) overlaps some visits
                ~select(other.id)
                .where(
                    other.provider_id == Appointment.provider_id,
                    other.id != Appointment.id,
                    other.status.in_(OCCUPYING),
                    other.start_at < Appointment.end_at,
                    other.end_at > Appointment.start_at,
                )
                .exists(),
            )
            .order_by(Appointment.start_at, Appointment.id)
            .limit(1)
        ).one()
        tz = busy.clinic.timezone
        local = busy.start_at.astimezone(__import__("zoneinfo").ZoneInfo(tz))
    database.dispose()
    at.selectbox(key=f"{prefix}_slot").set_value("other").run()
    at.selectbox(key=f"{prefix}_provider").set_value(busy.provider_id).run()
    at.date_input(key=f"{prefix}_day").set_value(local.date()).run()
    at.time_input(key=f"{prefix}_time").set_value(local.time().replace(tzinfo=None)).run()
    at.checkbox(key=f"{prefix}_outside").check().run()
    at.button(key=f"{prefix}_go").click().run()
    assert any(f"appointment #{busy.id}" in e.value for e in at.error), _texts(at)
    assert _status(app_db, row.appointment_id) == AppointmentStatus.REQUESTED


def test_reschedule_request_denied_and_cancellation_approved(app_as, app_db):
    at = app_as("manager", PAGE)
    at.button_group(key="queue_kind").set_value("reschedules").run()
    row = _item(at, "reschedules")
    prefix = f"queue_reschedules_{row.appointment_id}"
    at.radio(key=f"{prefix}_choice").set_value("Deny, keep the original").run()
    at.text_input(key=f"{prefix}_reason").input("That day is full").run()
    at.button(key=f"{prefix}_go").click().run()
    assert any("Denied; the original stays." in s.value for s in at.success), _texts(at)
    at.button_group(key="queue_kind").set_value("cancellations").run()
    cancel = _item(at, "cancellations", "Approve the cancellation")
    prefix = f"queue_cancellations_{cancel.appointment_id}"
    at.button(key=f"{prefix}_go").click().run()
    assert any("Cancelled." in s.value for s in at.success), _texts(at)
    database = _db(app_db)
    with database.read() as session:
        assert session.get(ChangeRequest, row.change_id).status == ChangeStatus.DENIED
        assert session.get(Appointment, cancel.appointment_id).status == AppointmentStatus.CANCELLED
    database.dispose()


def test_bulk_decline_and_refused_bulk_approve_row_by_row(app_as, app_db):
    at = app_as("manager", PAGE)
    assert not any(m.key == "queue_bulk_ids" for m in at.multiselect)  # off until asked for
    at.toggle(key="queue_bulk_on").set_value(True).run()
    ids = at.multiselect(key="queue_bulk_ids").options[:2]
    picked = [int(i) for i in ids]
    at.multiselect(key="queue_bulk_ids").set_value(picked).run()
    at.button(key="queue_bulk_approve").click().run()
    assert any("0 done, 2 refused." in i.value for i in at.info)
    at.text_input(key="queue_bulk_reason").input("Closed for refurbishment").run()
    at.button(key="queue_bulk_decline").click().run()
    assert any("2 done, 0 refused." in i.value for i in at.info), _texts(at)
    database = _db(app_db)
    with database.read() as session:
        reasons = session.scalars(
            select(AuditEvent.reason).where(
                AuditEvent.entity_id.in_(picked), AuditEvent.action == "decline"
            )
        ).all()
    database.dispose()
    assert reasons == ["Closed for refurbishment"] * 2


def test_stale_limit_is_configurable(app_as):
    at = app_as("manager", PAGE)
    assert any("waiting longer than 24 h" in w.value for w in at.warning)
    assert not [n for n in at.number_input if n.key == "queue_stale_hours"]  # folded: not built
    at.session_state["queue_stale_open"] = True  # what a click on "Stale limit" sends
    at.run()
    at.number_input(key="queue_stale_hours").set_value(720).run()
    at.button(key="queue_stale_save").click().run()
    assert not any("waiting longer than" in w.value for w in at.warning)


def test_waiting_proposal_can_be_declined(app_as, app_db):
    at = app_as("manager", PAGE)
    at.button_group(key="queue_kind").set_value("proposals").run()
    row = _item(at, "proposals")
    prefix = f"queue_proposals_{row.appointment_id}"
    at.radio(key=f"{prefix}_choice").set_value("Decline the request").run()
    at.text_input(key=f"{prefix}_reason").input("The patient did not answer").run()
    at.button(key=f"{prefix}_go").click().run()
    assert any("Declined." in s.value for s in at.success), _texts(at)
    assert _status(app_db, row.appointment_id) == AppointmentStatus.DECLINED


def test_declining_a_proposal_made_for_a_reschedule_request_keeps_the_booking(app_as, app_db):
    """A patient asked to move; the practice proposed another time and then declines it from
    the queue: the manager reads that the booking stays, and it does, at its time."""
    database = _db(app_db)
    with database.write() as session:
        manager = actor_of(session.scalar(select(User).where(User.username == "manager")))
        visit = session.scalars(
            select(Appointment)
            .where(
                Appointment.status == AppointmentStatus.SCHEDULED,
                Appointment.patient_id.is_not(None),
                Appointment.start_at > utcnow() + timedelta(days=2),
                ~Appointment.id.in_(select(ChangeRequest.appointment_id)),
            )
            .order_by(Appointment.start_at)
        ).first()
        visit_id, start, provider_id = visit.id, visit.start_at, visit.provider_id
        change = changes.request_change(
            session, patient_actor("A"), visit_id, kind="reschedule", requested_day=start.date()
        )
        [slot] = queue.suggest_for(
            session, manager, visit_id, change_id=change.id, provider_id=provider_id, limit=1
        )
        changes.propose_for_change(
            session, manager, change.id, provider_id=provider_id, start_at=slot.start_at
        )
    database.dispose()
    at = app_as("manager", PAGE)
    at.selectbox(key="queue_provider").set_value(provider_id).run()
    at.button_group(key="queue_kind").set_value("proposals").run()
    position = list(at.dataframe[0].value["#"]).index(visit_id)
    at.session_state["queue_table_proposals"] = {"selection": {"rows": [position], "columns": []}}
    at.run()
    assert any(h.value.startswith(f"#{visit_id} ") for h in at.subheader)
    prefix = f"queue_proposals_{visit_id}"
    at.radio(key=f"{prefix}_choice").set_value("Decline the request").run()
    at.text_input(key=f"{prefix}_reason").input("Nothing later that week").run()
    at.button(key=f"{prefix}_go").click().run()
    assert any("their booking stays. Now scheduled." in s.value for s in at.success), _texts(at)
    database = _db(app_db)
    with database.read() as session:
        kept = session.get(Appointment, visit_id)
        assert (kept.status, kept.start_at) == (AppointmentStatus.SCHEDULED, start)
        assert session.get(ChangeRequest, change.id).status == ChangeStatus.DENIED
    database.dispose()


def _click_row(at, position, kind="requests"):
    at.session_state[f"queue_table_{kind}"] = {"selection": {"rows": [position], "columns": []}}
    at.run()
    return _item(at, kind)


def test_a_click_on_a_row_opens_its_decision_and_the_next_follows_the_action(app_as, app_db):
    at = app_as("manager", PAGE)
    table = at.dataframe[0].value
    first = _item(at)
    assert first.appointment_id == table["#"].iloc[0]  # the head of the queue until a click
    third = _click_row(at, 2)
    assert third.appointment_id == table["#"].iloc[2]
    fourth = table["#"].iloc[3]
    prefix = f"queue_requests_{third.appointment_id}"
    at.radio(key=f"{prefix}_choice").set_value("Decline").run()
    at.text_input(key=f"{prefix}_reason").input("No longer offered")
    at.button(key=f"{prefix}_go").click().run()
    assert not at.exception
    assert _status(app_db, third.appointment_id) == AppointmentStatus.DECLINED
    assert _item(at).appointment_id == fourth  # the next item, without another click
    assert not [i.value for i in at.info if "no longer waiting" in i.value]  # decided here


def test_the_chosen_request_stays_chosen_when_another_manager_decides_one_above(app_as, app_db):
    at = app_as("manager", PAGE)
    table = at.dataframe[0].value
    third = _click_row(at, 2)
    database = _db(app_db)
    with database.write() as session:  # elsewhere, someone declines the head of the queue
        session.get(Appointment, int(table["#"].iloc[0])).status = AppointmentStatus.DECLINED
    database.dispose()
    st.cache_data.clear()
    at.run()
    assert at.dataframe[0].value["#"].iloc[1] == third.appointment_id  # the rows moved up
    assert _item(at).appointment_id == third.appointment_id  # the decision panel did not


def test_the_manager_is_told_when_the_open_request_is_decided_elsewhere(app_as, app_db):
    at = app_as("manager", PAGE)
    table = at.dataframe[0].value
    third = _click_row(at, 2)
    database = _db(app_db)
    with database.write() as session:  # elsewhere, someone declines the one open here
        session.get(Appointment, third.appointment_id).status = AppointmentStatus.DECLINED
    database.dispose()
    st.cache_data.clear()
    at.run()
    nxt = int(table["#"].iloc[3])
    assert _item(at).appointment_id == nxt
    told = [i.value for i in at.info if "no longer waiting" in i.value]
    assert told == [
        f"#{third.appointment_id} is no longer waiting: someone else handled it, or the "
        f"patient withdrew it, while it was open here. Next: #{nxt}."
    ]
    shown = _item(at)  # a filter that leaves the open request out moves on without a notice
    clinics = at.selectbox(key="queue_clinic").options
    other = next(c for c in clinics[1:] if c != shown.clinic_name)
    at.selectbox(key="queue_clinic").select_index(clinics.index(other)).run()
    assert shown.appointment_id not in set(at.dataframe[0].value["#"])
    assert not [i.value for i in at.info if "no longer waiting" in i.value]


def test_a_proposal_made_elsewhere_while_the_form_was_open_is_not_replaced(app_as, app_db):
    at = app_as("manager", PAGE)
    at.button_group(key="queue_kind").set_value("proposals").run()
    at.button_group(key="queue_sort").set_value("soon").run()  # it keeps its place below
    row = _item(at, "proposals", choice="Propose another time")
    prefix = f"queue_proposals_{row.appointment_id}"
    at.text_area(key=f"{prefix}_message").input("Would this suit you better?").run()
    database = _db(app_db)  # the owner proposes another time meanwhile, a little later
    with database.write() as session:
        owner = actor_of(session.scalar(select(User).where(User.username == "owner")))
        theirs = row.start_at + timedelta(minutes=1)
        decisions.propose_time(
            session,
            owner,
            row.appointment_id,
            start_at=theirs,
            provider_id=row.provider_id,
            allow_double_booking=True,
            outside_hours_override=True,
        )
    database.dispose()
    st.cache_data.clear()  # as that desk's write does in a process both share
    at.button(key=f"{prefix}_go").click().run()
    refused = " ".join(e.value for e in at.error)
    assert "was already handled by Olivia Owner at" in refused, _texts(at)
    assert any("was changed while this form was open here" in w.value for w in at.warning)
    database = _db(app_db)
    with database.read() as session:
        assert session.get(Appointment, row.appointment_id).start_at == theirs
    database.dispose()
    assert at.text_area(key=f"{prefix}_message").value == "Would this suit you better?"


def _flag_first(url, at, **fields) -> tuple[int, int]:
    """A structured flag (as the public form writes it) on the queue's first request, whose
    patient has no date of birth: (the request, its patient)."""
    from datetime import date

    from db.models import Patient, RequestFlag

    first = int(next(h.value for h in at.subheader if h.value.startswith("#"))[1:].split()[0])
    database = _db(url)
    with database.write() as session:
        patient = session.get(Patient, session.get(Appointment, first).patient_id)
        patient.date_of_birth = None
        typed = {"first_name": patient.first_name, "last_name": patient.last_name}
        session.add(
            RequestFlag(
                appointment_id=first,
                flag="Date of birth typed: **2 Jan 1990** <b>x</b>",
                typed_name=patient.full_name,
                typed_birth=date(1990, 1, 2),
                typed=typed
                | {"email": "", "phone": "", "consent_email": False, "consent_sms": False},
                **fields,
            )
        )
        patient_id = patient.id
    database.dispose()
    st.cache_data.clear()
    at.run()
    return first, patient_id


def test_the_typed_date_of_birth_is_added_to_the_record_in_one_click(app_as, app_db):
    """The flag's text was all the desk had: the typed day was retyped into the record by
    hand. The queue now offers what to do about the flag; adding the typed day is one click,
    and the flag (shown as typed, not as markup) is gone after it."""
    from datetime import date

    from db.models import Patient, RequestFlag

    at = app_as("manager", PAGE)
    first, patient_id = _flag_first(app_db, at)
    assert [w.value for w in at.warning if "typed" in w.value] == [
        r"Date of birth typed: \*\*2 Jan 1990\*\* \<b\>x\</b\>"
    ]
    choice = at.radio(key=f"queue_flag_{first}_choice")
    add, checked = choice.options  # the typed day in the clinic's own format
    assert add.startswith(f"It is #{patient_id}: add the typed date of birth (") and "1990" in add
    assert checked == f"Checked: it is #{patient_id}"
    choice.set_value(0).run()
    at.button(key=f"queue_flag_{first}_go").click().run()
    assert not at.exception
    assert any(f"Date of birth added to #{patient_id}" in t for t in _texts(at)), _texts(at)
    database = _db(app_db)
    with database.read() as session:
        assert session.get(Patient, patient_id).date_of_birth == date(1990, 1, 2)
        assert session.scalars(select(RequestFlag.handled_by)).one() == "Max Manager"
    database.dispose()
    assert not [w for w in at.warning if "typed" in w.value]
    assert not [r for r in at.radio if r.key == f"queue_flag_{first}_choice"]


def test_a_flag_handled_meanwhile_by_a_colleague_says_by_whom(app_as, app_db):
    from core.requests import flags

    at = app_as("manager", PAGE)
    first, _ = _flag_first(app_db, at)
    at.radio(key=f"queue_flag_{first}_choice").set_value(1).run()
    database = _db(app_db)
    with database.write() as session:
        owner = actor_of(session.scalar(select(User).where(User.username == "owner")))
        flags.handle_flag(session, owner, first, flags.FlagAction.SAME_PERSON)
    database.dispose()
    at.button(key=f"queue_flag_{first}_go").click().run()
    refused = " ".join(e.value for e in at.error)
    assert f"The flag on request #{first} was already handled by Olivia Owner at" in refused


def test_maybe_a_known_patient_is_merged_from_the_queue(app_as, app_db):
    """A new record's request flagged as maybe a known patient: the queue offers to merge it
    into the one named (with the overlap confirmation the merge may ask for) and does it."""
    from core.payments import points
    from db.models import Patient
    from tests.factories import make_patient

    at = app_as("manager", PAGE)
    database = _db(app_db)
    with database.write() as session:
        known = make_patient(session, email="known@example.org", phone="").id
    database.dispose()
    first, new = _flag_first(app_db, at, known_ids=[known])
    choice = at.radio(key=f"queue_flag_{first}_choice")
    assert list(choice.options) == [
        f"It is #{known}: merge new record #{new} into #{known} (the request moves with it)",
        f"Someone else: keep new record #{new} and clear the flag",
    ]
    database = _db(app_db)
    with database.read() as session:
        theirs = session.get(Patient, new)
        email, phone = theirs.email, theirs.phone
        opening = points.opening_points(session, new)  # the demo's vary by patient
    database.dispose()
    assert email and phone and email != "known@example.org"
    choice.set_value(0).run()
    # the merge's preview, as on the Patients page: what moves, and each contact detail that
    # differs with what the merge does (the known record has no phone: it takes the new one's)
    assert not at.exception and not at.error
    moves = next(d.value for d in at.dataframe if "Moves to the kept record" in d.value.columns)
    assert dict(zip(moves.iloc[:, 0], moves.iloc[:, 1], strict=True))["appointments"] >= 1
    # (lines, not a table: the panel is narrow, and a line wraps whole)
    assert not any("Contact detail" in d.value.columns for d in at.dataframe)
    shown = [t.value for t in at.text]
    assert (
        f"Email: #{known} keeps known@example.org; #{new}'s {email} is not taken: add it by "
        "hand if it is theirs (the message after the merge names it)."
    ) in shown
    assert any(
        t.startswith(
            f"Phone: #{known} has none: it takes #{new}'s {phone}, with it #{new}'s consent"
        )
        for t in shown
    ), shown
    assert opening > 0
    assert any(
        t.startswith(
            f"#{new}'s opening balance of {opening} points is not added: one person opens one "
            "balance."
        )
        for t in shown
    ), shown
    assert at.checkbox(key=f"queue_flag_{first}_overlap").value is False
    at.checkbox(key=f"queue_flag_{first}_overlap").check().run()
    at.button(key=f"queue_flag_{first}_go").click().run()
    assert not at.exception
    said = [t.replace("\\", "").replace("\u2060", "") for t in _texts(at)]
    assert any(
        "The flag is cleared." in t and f"#{new}'s email ({email}) was not taken" in t for t in said
    ), said
    database = _db(app_db)
    with database.read() as session:
        assert session.get(Patient, new).merged_into_id == known
        assert session.get(Appointment, first).patient_id == known
        assert session.get(Patient, known).phone == phone
    database.dispose()


def test_a_request_for_a_day_its_provider_is_away_is_marked_in_the_queue(app_as, app_db):
    """The request shown first asks for a provider on a day they have since taken off: its
    row says so in the table, and beside it the manager is told the time off and what to do
    (bulk approve would only have said that no provider was free)."""
    from datetime import date

    from core.kernel.clock import to_local
    from core.scheduling import schedules
    from db.models import Clinic, TimeOff

    at = app_as("manager", PAGE)
    first = int(next(h.value for h in at.subheader if h.value.startswith("#"))[1:].split()[0])
    database = _db(app_db)
    with database.write() as session:
        asked = session.get(Appointment, first)
        provider = session.scalars(select(Provider).where(Provider.active.is_(True))).first()
        tz = session.get(Clinic, asked.clinic_id).timezone
        day: date = to_local(utcnow(), tz).date() + timedelta(days=3)
        asked.provider_id, asked.start_at, asked.end_at = provider.id, None, None
        asked.requested_day, asked.time_of_day = day, None
        starts, ends = schedules.time_off_span(day, None, day, None, tz)
        session.add(TimeOff(provider_id=provider.id, starts_at=starts, ends_at=ends))
        name = provider.name
    database.dispose()
    st.cache_data.clear()
    at.run()
    table = at.dataframe[0].value
    marks = dict(zip(table["#"], table["Away"], strict=True))
    assert marks[first] == f"⚠ {name} away that day"
    assert any(w.value.startswith(f"{name} is on time off ") for w in at.warning)
