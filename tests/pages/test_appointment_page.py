"""AppTest: the appointment detail page — facts, history, allowed actions, refusals."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import streamlit as st
from sqlalchemy import select, update

from core.interchange import standards
from core.kernel.accounts import actor_of
from core.kernel.authz import patient_actor
from core.kernel.config import load_settings
from core.requests import changes, queue
from core.scheduling import moves
from core.startup import open_database
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    ChangeRequest,
    Payment,
    Source,
    User,
    UserSession,
)
from db.types import utcnow
from tests.pages.conftest import free_the_time, today_in, told_to_show

PAGE = "app_pages/appointment.py"


def _first(url, *conditions):
    database = open_database(
        load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.read() as session:
        row = session.scalars(
            select(Appointment)
            .where(Appointment.kind == AppointmentKind.APPOINTMENT, *conditions)
            .order_by(Appointment.id)
            .limit(1)
        ).one()
        found = row.id, row.status
    database.dispose()
    return found


def _open(app_as, user, appointment_id):
    at = app_as(user, PAGE)
    at.text_input(key="appointment_lookup").input(str(appointment_id)).run()
    return at


def _cells(at):
    return " ".join(str(v) for frame in at.dataframe for v in frame.value.to_numpy().ravel())


def test_online_request_shows_origin_and_request_actions(app_as, app_db):
    request_id, _ = _first(
        app_db,
        Appointment.status == AppointmentStatus.REQUESTED,
        Appointment.source == Source.ONLINE,
    )
    at = _open(app_as, "manager", request_id)
    assert not at.exception
    assert any("Online appointment · " in c.value for c in at.caption)
    options = [
        o.content for o in at.button_group(key=f"appointment_{request_id}_action").proto.options
    ]
    assert options == ["Approve", "Decline", "Propose a time", "Cancel"]


def test_staff_cancels_with_reason_and_history_grows(app_as, app_db):
    appointment_id, _ = _first(
        app_db,
        Appointment.status == AppointmentStatus.SCHEDULED,
        Appointment.start_at > utcnow(),
        Appointment.patient_id.is_not(None),
    )
    at = _open(app_as, "staff", appointment_id)
    prefix = f"appointment_{appointment_id}"
    at.button_group(key=f"{prefix}_action").set_value("cancel").run()
    at.button(key=f"{prefix}_go").click().run()
    assert any("Give a reason for the cancellation" in e.value for e in at.error)
    at.text_input(key=f"{prefix}_cancel_reason").input("Provider ill").run()
    at.button(key=f"{prefix}_go").click().run()
    assert any("Cancel: done." in s.value for s in at.success), [e.value for e in at.error]
    assert "Provider ill" in _cells(at) and "Staff" in _cells(at)
    history = next(f.value for f in at.dataframe if "To" in f.value.columns)
    assert "Cancelled" in history["To"].tolist()  # the word, not the stored "cancelled"
    assert _first(app_db, Appointment.id == appointment_id)[1] == AppointmentStatus.CANCELLED


def test_completed_visit_offers_nothing(app_as, app_db):
    appointment_id, _ = _first(app_db, Appointment.status == AppointmentStatus.COMPLETED)
    at = _open(app_as, "staff", appointment_id)
    assert any("Nothing more can be done" in c.value for c in at.caption)


def _add(url, start, status):
    database = open_database(
        load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        row = Appointment(
            clinic_id=1,
            provider_id=1,
            patient_id=1,
            service_id=1,
            status=status,
            start_at=start,
            end_at=start + timedelta(minutes=30),
        )
        session.add(row)
        session.flush()
        ident = row.id
    database.dispose()
    return ident


def _options(at, appointment_id):
    group = at.button_group(key=f"appointment_{appointment_id}_action")
    return [o.content for o in group.proto.options]


def test_check_in_only_on_the_day_and_a_check_in_can_be_undone(app_as, app_db):
    later = _add(app_db, today_in(0) + timedelta(days=3), AppointmentStatus.SCHEDULED)
    at = _open(app_as, "staff", later)
    assert "Check in" not in _options(at, later) and "Cancel" in _options(at, later)
    todays = _add(app_db, today_in(30), AppointmentStatus.SCHEDULED)
    assert "Check in" in _options(_open(app_as, "staff", todays), todays)
    arrived = _add(app_db, today_in(0) + timedelta(days=3), AppointmentStatus.CHECKED_IN)
    at = _open(app_as, "staff", arrived)
    assert "Undo check-in" in _options(at, arrived)
    at.button_group(key=f"appointment_{arrived}_action").set_value("undo_check_in").run()
    at.button(key=f"appointment_{arrived}_go").click().run()
    assert any("Undo check-in: done." in s.value for s in at.success), [e.value for e in at.error]
    assert _first(app_db, Appointment.id == arrived)[1] == AppointmentStatus.SCHEDULED
    assert "Check-in undone" in _cells(at)  # the audit log's words


def test_no_show_says_what_it_will_do_before_it_is_recorded(app_as, app_db):
    started = _add(app_db, today_in(-5), AppointmentStatus.SCHEDULED)
    at = _open(app_as, "staff", started)
    at.button_group(key=f"appointment_{started}_action").set_value("no_show").run()
    assert "as a no-show?" in at.warning[0].value and "told at once" in at.warning[0].value
    assert at.button(key=f"appointment_{started}_go").label == "Record the no-show"
    assert _first(app_db, Appointment.id == started)[1] == AppointmentStatus.SCHEDULED


def test_unknown_and_malformed_numbers(app_as):
    at = _open(app_as, "staff", 99999999)
    assert any("There is no appointment #99999999." in e.value for e in at.error)
    at.text_input(key="appointment_lookup").input("abc").run()
    assert any("whole number" in e.value for e in at.error)
    at.text_input(key="appointment_lookup").input("#" + "9" * 20).run()  # a pasted long number
    assert not at.exception, [e.value for e in at.exception]
    assert any(f"There is no appointment #{'9' * 20}." in e.value for e in at.error)


def test_a_no_show_recorded_today_can_be_undone(app_as, app_db):
    started = _add(app_db, today_in(-5), AppointmentStatus.SCHEDULED)
    free_the_time(app_db, started)  # the demo's bookings around now would need double booking
    at = _open(app_as, "staff", started)
    at.button_group(key=f"appointment_{started}_action").set_value("no_show").run()
    at.button(key=f"appointment_{started}_go").click().run()
    assert _first(app_db, Appointment.id == started)[1] == AppointmentStatus.NO_SHOW
    assert "Undo no-show" in _options(at, started)
    assert f"appointment_{started}_undo_double" not in {c.key for c in at.checkbox}
    at.button_group(key=f"appointment_{started}_action").set_value("undo_no_show").run()
    assert "no-show (recorded by Sam Staff" in at.warning[0].value, at.warning
    assert "goes back to scheduled" in at.warning[0].value
    assert at.button(key=f"appointment_{started}_go").label == "Undo the no-show"
    at.button(key=f"appointment_{started}_go").click().run()
    assert any("Undo the no-show: done." in s.value for s in at.success), [
        e.value for e in at.error
    ]
    assert _first(app_db, Appointment.id == started)[1] == AppointmentStatus.SCHEDULED
    assert "No-show undone" in _cells(at)
    # a no-show with no record of being recorded today is not offered the undo
    earlier = _add(app_db, today_in(-5), AppointmentStatus.NO_SHOW)
    at = _open(app_as, "staff", earlier)
    assert f"appointment_{earlier}_action" not in {b.key for b in at.button_group}
    assert any("Nothing more can be done" in c.value for c in at.caption)


def test_undoing_a_no_show_whose_time_was_booked_meanwhile_needs_double_booking(app_as, app_db):
    started = _add(app_db, today_in(-5), AppointmentStatus.SCHEDULED)
    free_the_time(app_db, started)
    at = _open(app_as, "staff", started)
    at.button_group(key=f"appointment_{started}_action").set_value("no_show").run()
    at.button(key=f"appointment_{started}_go").click().run()
    other = _add(app_db, today_in(5), AppointmentStatus.SCHEDULED)  # in the time it freed
    at.button_group(key=f"appointment_{started}_action").set_value("undo_no_show").run()
    assert f"has appointment #{other}" in at.warning[0].value, at.warning
    at.button(key=f"appointment_{started}_go").click().run()  # without the override
    assert any(f"appointment #{other}" in e.value for e in at.error), at.error
    assert _first(app_db, Appointment.id == started)[1] == AppointmentStatus.NO_SHOW
    at.checkbox(key=f"appointment_{started}_undo_double").check().run()
    at.button(key=f"appointment_{started}_go").click().run()
    assert any("Undo the no-show: done." in s.value for s in at.success), at.error
    assert _first(app_db, Appointment.id == started)[1] == AppointmentStatus.SCHEDULED


def test_a_refused_card_refund_shows_its_typed_note_and_the_last_attempt(app_as, app_db):
    """The Payments table shows a card refund's note as typed and, after it, what Stripe said
    the last time it refused (kept in its own column since 0011), escaped as typed text."""
    appointment_id, _ = _first(app_db, Appointment.status == AppointmentStatus.SCHEDULED)
    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        visit = session.get(Appointment, appointment_id)
        paid = Payment(
            appointment_id=visit.id,
            patient_id=visit.patient_id,
            kind="prepayment",
            method="stripe",
            status="paid",
            amount_cents=4500,
            currency="GBP",
            provider_ref="cs_refused",
            paid_at=utcnow(),
        )
        session.add(paid)
        session.flush()
        session.add(
            Payment(
                appointment_id=visit.id,
                patient_id=visit.patient_id,
                kind="refund",
                method="stripe",
                status="refund_due",
                amount_cents=4500,
                currency="GBP",
                refund_of_id=paid.id,
                note="Waived: *kind* patient",
                refund_attempts=2,
                last_error="Stripe did not make the refund: No such payment_intent",
            )
        )
    database.dispose()
    at = _open(app_as, "staff", appointment_id)
    assert not at.exception
    notes = [str(v) for t in at.table for v in t.value.get("Note", [])]
    assert (
        r"Waived: \*kind\* patient · Last attempt: Stripe did not make the refund: "
        "No such payment_intent"
    ) in notes, notes
    # what each payment is and where it stands, in words, as on the patient's record
    rows = [
        (k, s) for t in at.table for k, s in zip(t.value["Kind"], t.value["Status"], strict=True)
    ]
    assert ("refund", "to give back") in rows and ("prepayment", "paid") in rows, rows


def test_declining_a_proposal_made_for_a_change_request_says_the_booking_stays(app_as, app_db):
    """A patient asked to move their visit and was proposed another time; declining that
    proposal on the appointment page keeps the booking they had, and the page says so (core's
    outcome, kept_booking), not 'Decline: done.'"""
    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
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
    at = _open(app_as, "manager", visit_id)
    prefix = f"appointment_{visit_id}"
    at.button_group(key=f"{prefix}_action").set_value("decline").run()
    at.text_input(key=f"{prefix}_decline_reason").input("Nothing later that week").run()
    at.button(key=f"{prefix}_go").click().run()
    said = [s.value for s in at.success]
    assert any("their booking stays. Now scheduled." in s for s in said), said
    assert not any("Decline: done." in s for s in said)
    assert _first(app_db, Appointment.id == visit_id)[1] == AppointmentStatus.SCHEDULED


def _as_manager(url, service, *args, **kwargs):
    """What another desk does meanwhile: `service` run by the demo manager."""
    database = open_database(
        load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        manager = session.scalar(select(User).where(User.username == "manager"))
        service(session, actor_of(manager), *args, **kwargs)
    database.dispose()
    st.cache_data.clear()  # as that desk's write does in a process both desks share


def _start_of(url, appointment_id):
    database = open_database(
        load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.read() as session:
        start = session.get(Appointment, appointment_id).start_at
    database.dispose()
    return start


def test_a_move_made_elsewhere_while_the_form_was_open_is_not_overwritten(app_as, app_db):
    appointment_id, _ = _first(
        app_db,
        Appointment.status == AppointmentStatus.SCHEDULED,
        Appointment.start_at > utcnow() + timedelta(days=1),
        Appointment.patient_id.is_not(None),
    )
    at = _open(app_as, "staff", appointment_id)
    p = f"appointment_{appointment_id}"
    at.button_group(key=f"{p}_action").set_value("reschedule").run()
    at.selectbox(key=f"{p}_reschedule_slot").set_value("other").run()
    at.date_input(key=f"{p}_reschedule_day").set_value((utcnow() + timedelta(days=9)).date()).run()
    at.checkbox(key=f"{p}_reschedule_double").check()
    at.checkbox(key=f"{p}_reschedule_outside").check()
    at.text_area(key=f"{p}_reschedule_message").input("See you then").run()
    theirs = (utcnow() + timedelta(days=6)).replace(hour=10, minute=0, second=0, microsecond=0)
    _as_manager(
        app_db,
        moves.reschedule,
        appointment_id,
        start_at=theirs,
        allow_double_booking=True,
        outside_hours_override=True,
    )
    at.button(key=f"{p}_go").click().run()
    refused = " ".join(e.value for e in at.error)
    assert f"#{appointment_id} was already handled by Max Manager" in refused, refused
    assert _start_of(app_db, appointment_id) == theirs  # the manager's move stands
    assert at.text_area(key=f"{p}_reschedule_message").value == "See you then"  # kept
    at.button(key=f"{p}_go").click().run()  # pressed again, on what the page now shows
    assert any("Reschedule: done." in s.value for s in at.success), [e.value for e in at.error]
    assert _start_of(app_db, appointment_id) != theirs


def _cancel_form(app_as, app_db, reason: str):
    """Staff's appointment page on a future visit, the Cancel form open with `reason` typed:
    (the page, the appointment's id, its keys' prefix)."""
    appointment_id, _ = _first(
        app_db,
        Appointment.status == AppointmentStatus.SCHEDULED,
        Appointment.start_at > utcnow(),
        Appointment.patient_id.is_not(None),
    )
    at = _open(app_as, "staff", appointment_id)
    p = f"appointment_{appointment_id}"
    at.button_group(key=f"{p}_action").set_value("cancel").run()
    at.text_input(key=f"{p}_cancel_reason").input(reason)
    return at, appointment_id, p


def test_a_cancellation_made_elsewhere_while_the_form_was_open_is_said(app_as, app_db):
    at, appointment_id, p = _cancel_form(app_as, app_db, "Patient phoned")
    _as_manager(app_db, moves.cancel_appointment, appointment_id, reason="Clinic closed")
    at.button(key=f"{p}_go").click().run()
    said = " ".join(w.value for w in at.warning)
    assert f"Appointment #{appointment_id} was changed by Max Manager at " in said, said
    assert "(Appointment cancelled)" in said and "it is now cancelled" in said.lower()
    assert any("Nothing more can be done" in c.value for c in at.caption)
    at.run()  # said once
    assert not any("was changed by" in w.value for w in at.warning)


def test_the_next_action_after_a_success_is_not_taken_for_a_change_elsewhere(app_as, app_db):
    arrived = _add(app_db, today_in(0) + timedelta(days=3), AppointmentStatus.CHECKED_IN)
    at = _open(app_as, "staff", arrived)
    p = f"appointment_{arrived}"
    at.button_group(key=f"{p}_action").set_value("undo_check_in").run()
    at.button(key=f"{p}_go").click().run()
    assert any("Undo check-in: done." in s.value for s in at.success)
    at.button_group(key=f"{p}_action").set_value("cancel").run()
    at.text_input(key=f"{p}_cancel_reason").input("Patient phoned").run()
    assert not at.warning
    at.button(key=f"{p}_go").click().run()
    assert any("Cancel: done." in s.value for s in at.success), [e.value for e in at.error]


def _expire_sessions(url):
    database = open_database(
        load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.write() as session:
        session.execute(update(UserSession).values(last_seen_at=utcnow() - timedelta(days=2)))
    database.dispose()


def _sign_in(at, username):
    at.text_input(key="sign_in_username").input(username)
    at.text_input(key="sign_in_password").input(f"{username}-demo-pass")
    return at.button(key="FormSubmitter:sign_in_form-Sign in").click().run()


def _cancel_form_when_the_session_ends(app_as, app_db):
    at, appointment_id, p = _cancel_form(app_as, app_db, "Patient phoned: flu")
    at.text_area(key=f"{p}_cancel_message").input("Get well soon").run()
    _expire_sessions(app_db)
    at.button(key=f"{p}_go").click().run()
    return at, appointment_id, p


def test_a_session_ending_while_a_form_is_open_keeps_what_was_typed(app_as, app_db):
    at, appointment_id, p = _cancel_form_when_the_session_ends(app_as, app_db)
    notice = " ".join(i.value for i in at.info)
    assert "Your session ended" in notice and "nothing was done" in notice, notice
    assert "what you had typed on the page is kept" in notice
    assert _first(app_db, Appointment.id == appointment_id)[1] == AppointmentStatus.SCHEDULED
    _sign_in(at, "staff")
    assert at.text_input(key=f"{p}_cancel_reason").value == "Patient phoned: flu"
    assert at.text_area(key=f"{p}_cancel_message").value == "Get well soon"
    assert _first(app_db, Appointment.id == appointment_id)[1] == AppointmentStatus.SCHEDULED
    at.button(key=f"{p}_go").click().run()  # acted on once, when pressed again
    assert any("Cancel: done." in s.value for s in at.success), [e.value for e in at.error]
    assert _first(app_db, Appointment.id == appointment_id)[1] == AppointmentStatus.CANCELLED


def test_what_was_typed_before_a_session_ended_is_never_shown_to_someone_else(app_as, app_db):
    at, appointment_id, p = _cancel_form_when_the_session_ends(app_as, app_db)
    _sign_in(at, "manager")
    assert at.title[0].value == "Appointment"
    assert not any(t.value == "Patient phoned: flu" for t in at.text_input)
    assert not any(t.value == "Get well soon" for t in at.text_area)
    _expire_sessions(app_db)
    at.run()
    _sign_in(at, "staff")  # the first person's words went when someone else signed in
    assert not any(t.value == "Patient phoned: flu" for t in at.text_input)


def test_a_suggested_time_taken_elsewhere_before_approve_is_not_swapped(app_as, app_db):
    request_id, _ = _first(app_db, Appointment.status == AppointmentStatus.REQUESTED)
    at = _open(app_as, "manager", request_id)
    p = f"appointment_{request_id}"
    at.button_group(key=f"{p}_action").set_value("approve").run()
    database = _db(app_db)
    with database.read() as session:
        manager = session.scalar(select(User).where(User.username == "manager"))
        slots = queue.suggest_for(session, actor_of(manager), request_id)
    database.dispose()
    assert len(slots) >= 2
    at.selectbox(key=f"{p}_approve_slot").select_index(1).run()
    taken = slots[1]
    database = _db(app_db)  # another desk books that provider at that time meanwhile
    with database.write() as session:
        session.add(
            Appointment(
                clinic_id=1,
                provider_id=taken.provider_id,
                patient_id=2,
                service_id=1,
                status=AppointmentStatus.SCHEDULED,
                start_at=taken.start_at,
                end_at=taken.end_at,
            )
        )
    database.dispose()
    st.cache_data.clear()  # as that desk's write does in a process both share
    at.button(key=f"{p}_go").click().run()
    said = " ".join(w.value for w in at.warning)
    assert "is no longer free (booked meanwhile, or past), so nothing was done" in said, said
    assert _first(app_db, Appointment.id == request_id)[1] == AppointmentStatus.REQUESTED
    at.button(key=f"{p}_go").click().run()  # pressed again: the time now shown
    assert any("Approve: done." in s.value for s in at.success), [e.value for e in at.error]
    assert _first(app_db, Appointment.id == request_id)[1] == AppointmentStatus.SCHEDULED


def _db(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def test_complete_and_no_show_are_offered_once_the_visit_has_started(app_as, app_db):
    """Before, a visit in three days (or one due in half an hour, its patient waiting) offered
    Complete and No-show: the no-show's warning asked to record it and named the fee, and only
    the press was refused. They are offered once the visit has started."""
    later = _add(app_db, today_in(0) + timedelta(days=3), AppointmentStatus.SCHEDULED)
    waiting = _add(app_db, today_in(30), AppointmentStatus.CHECKED_IN)
    started = _add(app_db, today_in(-5), AppointmentStatus.SCHEDULED)
    offered = {i: _options(_open(app_as, "staff", i), i) for i in (later, waiting, started)}
    assert "Complete" not in offered[later] and "No-show" not in offered[later]
    assert "Cancel" in offered[later]
    assert "Complete" not in offered[waiting] and "Undo check-in" in offered[waiting]
    assert {"Complete", "No-show"} <= set(offered[started])


def test_staff_add_notes_that_stay_as_typed_newest_first(app_as, app_db, set_twice):
    """A note is added under the earlier ones, with who wrote it and when, shown as typed (never
    markup); the box is empty again for the next one (before, there was no way to add one)."""
    visit = _add(app_db, today_in(0) + timedelta(days=3), AppointmentStatus.SCHEDULED)
    at = _open(app_as, "staff", visit)
    assert any(c.value == "No notes yet." for c in at.caption)
    box = f"appointment_{visit}_note"
    for typed in ("Bring x-rays", "**Allergic** to <b>latex</b>"):
        at.text_area(key=f"{box}_text").input(typed).run()
        at.button(key=f"{box}_add").click().run()
        assert any("Note added." in s.value for s in at.success), [e.value for e in at.error]
        told_to_show(at.text_area(key=f"{box}_text"), "")  # in the browser too
    assert set_twice == []  # no widget emptied through the state has a default of its own
    assert [t.value for t in at.text] == ["**Allergic** to <b>latex</b>", "Bring x-rays"]
    authors = [c.value for c in at.caption if c.value.endswith(" · Sam Staff")]
    assert len(authors) == 2 and all(re.search(r"\d\d\\?:\d\d · ", a) for a in authors)


def test_a_comment_imported_from_fhir_is_a_note_shown_as_typed(app_as, app_db):
    """What another system's staff typed (FHIR comment, patientInstruction) comes in as notes
    by "Imported from FHIR", shown as text: its Markdown and HTML are never rendered."""
    start = today_in(0) + timedelta(days=4)
    resource = {
        "resourceType": "Appointment",
        "id": "page-c1",
        "status": "booked",
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=30)).isoformat(),
        "participant": [{"status": "accepted", "actor": {"reference": "Patient/p1"}}],
        "patientInstruction": "Fast for *6* hours",
        "comment": "**Allergic** to <b>latex</b>",
    }
    database = _db(app_db)
    with database.write() as session:
        owner = session.scalar(select(User).where(User.username == "owner"))
        standards.import_fhir(session, actor_of(owner), [json.dumps(resource)])
    database.dispose()
    visit, _ = _first(app_db, Appointment.external_ref == "fhir:page-c1")
    at = _open(app_as, "staff", visit)
    assert [t.value for t in at.text] == [
        "**Allergic** to <b>latex</b>",
        "Instructions for the patient: Fast for *6* hours",
    ]
    authors = [c.value for c in at.caption if c.value.endswith(" · Imported from FHIR")]
    assert len(authors) == 2
    assert not any("latex" in m.value for m in at.markdown)


def _flag_on(url, appointment_id, flag):
    """A public request's flag on the visit, not acted on when it was decided."""
    from db.models import Patient, RequestFlag

    database = _db(url)
    with database.write() as session:
        patient = session.get(Patient, session.get(Appointment, appointment_id).patient_id)
        typed = {"first_name": "Kim", "last_name": patient.last_name, "email": "", "phone": ""}
        session.add(
            RequestFlag(
                appointment_id=appointment_id,
                flag=flag,
                typed_name=f"Kim {patient.last_name}",
                typed=typed | {"consent_email": False, "consent_sms": False},
            )
        )
        patient_id = patient.id
    database.dispose()
    st.cache_data.clear()
    return patient_id


def test_a_flag_left_on_a_decided_request_can_be_marked_checked_where_it_is_shown(app_as, app_db):
    """A flagged request approved without acting on its flag left the queue, and this page
    showed "Check identity" for ever with nothing to clear it. The page offers the flag's
    actions still possible (not the move to a new record, once decided): marked checked, the
    notice is gone and the flag's clearing names who. Staff see the notice, no actions."""
    from db.models import AuditEvent, RequestFlag

    visit, _ = _first(
        app_db,
        Appointment.status == AppointmentStatus.SCHEDULED,
        Appointment.start_at > utcnow(),
        Appointment.patient_id.is_not(None),
    )
    patient_id = _flag_on(app_db, visit, "Check identity: typed as **Kim** <b>x</b>")
    notice = r"Check identity: typed as \*\*Kim\*\* \<b\>x\</b\>"
    staff = _open(app_as, "staff", visit)
    assert notice in [w.value for w in staff.warning]
    assert not [r for r in staff.radio if (r.key or "").endswith("_flag_choice")]
    at = _open(app_as, "manager", visit)
    assert notice in [w.value for w in at.warning]
    choice = at.radio(key=f"appointment_{visit}_flag_choice")
    assert choice.options == [f"Checked: it is #{patient_id}"]  # no move to a new record
    choice.set_value(0).run()
    at.button(key=f"appointment_{visit}_flag_go").click().run()
    assert not at.exception
    assert any("The flag is cleared." in s.value for s in at.success), [e.value for e in at.error]
    assert notice not in [w.value for w in at.warning]
    assert not [r for r in at.radio if (r.key or "").endswith("_flag_choice")]
    assert "Request flag cleared" in _cells(at)  # in the visit's history, with who and when
    database = _db(app_db)
    with database.read() as session:
        flag = session.scalars(select(RequestFlag).where(RequestFlag.appointment_id == visit)).one()
        who = session.scalars(
            select(AuditEvent.actor_label).where(
                AuditEvent.action == "request_flag_cleared", AuditEvent.entity_id == visit
            )
        ).all()
    database.dispose()
    assert flag.handled_at is not None and flag.handled_by == who[0] and len(who) == 1


def test_a_flagged_request_still_waiting_offers_the_move_to_a_new_record(app_as, app_db):
    """While the request waits for its decision the page offers what the queue does: 'not the
    same person' too (handle_flag refuses it once the request is decided)."""
    request_id, _ = _first(
        app_db,
        Appointment.status == AppointmentStatus.REQUESTED,
        Appointment.source == Source.ONLINE,
        Appointment.patient_id.is_not(None),
    )
    patient_id = _flag_on(app_db, request_id, "Check identity: typed as Kim")
    at = _open(app_as, "manager", request_id)
    assert at.radio(key=f"appointment_{request_id}_flag_choice").options == [
        f"Checked: it is #{patient_id}",
        f"Not #{patient_id}: move the request to a new record made from what was typed",
    ]


def test_the_empty_page_points_each_role_to_pages_it_has(app_as):
    """Opened with no number, the page sent everyone to 'the queue', which staff do not have;
    it names Today and the calendar, and the request queue to those who work it."""
    staff = app_as("staff", PAGE).info[0].value
    manager = app_as("manager", PAGE).info[0].value
    assert staff == "Open an appointment from Today or the calendar, or type its number."
    assert "queue" not in staff
    assert manager == (
        "Open an appointment from Today, the calendar or the request queue, or type its number."
    )


def test_a_visit_without_history_says_so_and_its_status_is_in_the_desks_words(app_as, app_db):
    """A visit with nothing recorded yet (imported, or the demo's) drew an empty grid reading
    'empty' under History, and the status read 'scheduled (FHIR booked)', a standard's word
    the desk has no use for (seen in Chromium). The history says there is none, and the FHIR
    status moves to the caption's help, for whoever maps an export."""
    ident = _add(app_db, utcnow() + timedelta(days=5), AppointmentStatus.SCHEDULED)
    at = _open(app_as, "staff", ident)
    assert not at.exception, at.exception
    said = [c.value for c in at.caption]
    assert "No change recorded for this appointment yet (one imported starts with none)." in said
    assert not [f for f in at.dataframe if "Who" in f.value.columns or f.value.empty]
    status = next(c for c in at.caption if c.value.startswith("Status: "))
    assert "FHIR" not in status.value and "booked" in status.proto.help
