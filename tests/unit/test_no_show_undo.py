"""Undoing a no-show recorded by mistake: on the clinic-local day it was recorded, back to
scheduled, the policy's fee and points waived (the ledger keeps the entries), the patient told
if the no-show message reached them, audited, once.

Re-run on PostgreSQL by tests/integration/test_no_show_undo_pg.py."""

from __future__ import annotations

import threading
from datetime import time, timedelta

import pytest
from sqlalchemy import select, update

from core.kernel.authz import patient_actor
from core.kernel.clock import local_to_utc, local_today, to_local
from core.kernel.errors import Conflict, InvalidTransition, PermissionDenied, ValidationError
from core.messaging import clinic_events, notify
from core.messaging.preferences import PreferencesForm, save_preferences
from core.patients import merge
from core.payments import desk, prepay
from core.practice import travel
from core.scheduling import appointments, moves, today, visits
from core.scheduling.states import Action
from db.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    AuditEvent,
    CancellationPolicy,
    Clinic,
    ClinicEvent,
    DeliveryStatus,
    LedgerEntry,
    Notification,
    Patient,
    Payment,
    Provider,
    Resource,
    ServiceResource,
    VisitMode,
)
from db.types import utcnow
from tests.factories import make_patient, make_visit

S = AppointmentStatus
TZ = "Europe/London"


def _policy(db, world, fee=2500, points=5):
    with db.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=1),
                window_hours=24,
                no_show_fee_cents=fee,
                points_deducted=points,
                policy_text="24 h",
            )
        )


def _no_show(db, world, balance=20, sent=True) -> int:
    """A visit of today (clinic-local) that started, recorded as a no-show; its message to the
    patient delivered (`sent`) or still waiting in the outbox."""
    midnight = local_to_utc(local_today(TZ), time(0), TZ)
    start = max(utcnow() - timedelta(hours=1), midnight)
    with db.write() as session:
        session.get(Patient, world.patient_id).points_balance = balance
        row = make_visit(
            session, world, status=S.SCHEDULED, start_at=start, end_at=start + timedelta(minutes=30)
        )
        ident = row.id
    with db.write() as session:
        visits.mark_no_show(session, world.staff, ident)
        if sent:
            session.execute(
                update(Notification)
                .where(Notification.appointment_id == ident)
                .values(status=DeliveryStatus.SENT, sent_at=utcnow())
            )
    return ident


def _state(db, world, ident):
    with db.read() as session:
        row = session.get(Appointment, ident)
        entries = list(
            session.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.appointment_id == ident)
                .order_by(LedgerEntry.id)
            )
        )
        balance = session.get(Patient, world.patient_id).points_balance
        return row.status, entries, balance


def _messages(db, ident, template):
    with db.read() as session:
        return list(
            session.scalars(
                select(Notification).where(
                    Notification.appointment_id == ident, Notification.template == template
                )
            )
        )


def test_undo_reverses_the_fee_and_points_and_tells_the_patient(db, world):
    _policy(db, world)
    ident = _no_show(db, world, balance=20)
    assert _state(db, world, ident)[2] == 15
    with db.read() as session:
        text = visits.undo_no_show_consequences(session, world.staff, ident)
        detail = appointments.get_appointment_detail(session, world.staff, ident)
        [row] = [
            r for r in today.list_today(session, world.staff, world.clinic_id) if r.id == ident
        ]
    assert "Undo Alex Morgan's no-show" in text
    assert "the no-show fee of £25.00 is waived" in text
    assert "the 5 points deducted are given back" in text
    assert "so they are told it was a mistake" in text
    assert Action.UNDO_NO_SHOW in detail.actions and detail.undo_no_show_open
    assert row.can_undo_no_show and not row.can_no_show
    with db.write() as session:
        outcome = visits.undo_no_show(session, world.staff, ident, expected_version=detail.version)
    assert outcome.status == S.SCHEDULED
    assert sorted(outcome.notified) == ["email to alex@example.org", "sms to 07700 900123"]
    status, entries, balance = _state(db, world, ident)
    assert status == S.SCHEDULED and balance == 20
    # nothing deleted: the fee and the deduction stay, marked waived by the staff member
    assert [(e.kind.value, e.amount_cents, e.points) for e in entries] == [
        ("no_show_fee", 2500, 0),
        ("points", 0, 5),
    ]
    assert all(e.waived_at and e.waived_by_user_id == world.staff.user_id for e in entries)
    assert all("No-show recorded by mistake" in e.waive_reason for e in entries)
    with db.read() as session:
        undo = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity == "appointment", AuditEvent.entity_id == ident)
            .order_by(AuditEvent.id)
        ).all()[-1]
        waived = session.scalars(select(AuditEvent).where(AuditEvent.action == "fee_waived")).all()
    assert (undo.action, undo.from_status, undo.to_status, undo.user_id) == (
        "undo_no_show",
        "no_show",
        "scheduled",
        world.staff.user_id,
    )
    assert undo.details["fee_cents_waived"] == 2500 and undo.details["points_given_back"] == 5
    assert len(waived) == 2
    [email] = [m for m in _messages(db, ident, visits.WITHDRAWN_NOTICE) if m.channel == "email"]
    assert "please disregard" in email.body
    assert "The no-show fee of £25.00 is waived and the 5 points deducted" in email.body
    [sms] = [m for m in _messages(db, ident, visits.WITHDRAWN_NOTICE) if m.channel == "sms"]
    assert "mistake" in sms.body
    # once undone it is an ordinary visit again: it can be checked in, not undone twice
    with db.read() as session:
        detail = appointments.get_appointment_detail(session, world.staff, ident)
    assert Action.CHECK_IN in detail.actions and not detail.undo_no_show_open
    with db.write() as session, pytest.raises(InvalidTransition, match="cannot be reset"):
        visits.undo_no_show(session, world.staff, ident)


def test_a_no_show_message_not_sent_yet_is_stopped_instead(db, world):
    ident = _no_show(db, world, sent=False)  # no policy: nothing charged
    with db.read() as session:
        text = visits.undo_no_show_consequences(session, world.staff, ident)
    assert "No fee or points were charged." in text and "is stopped" in text
    assert "told it was a mistake" not in text
    with db.write() as session:
        outcome = visits.undo_no_show(session, world.staff, ident)
    assert outcome.status == S.SCHEDULED and outcome.notified == []
    stopped = _messages(db, ident, visits.NO_SHOW_NOTICE)
    assert len(stopped) == 2
    assert all(m.status == DeliveryStatus.FAILED and m.permanent_failure for m in stopped)
    assert all("no-show was undone" in m.last_error for m in stopped)
    assert _messages(db, ident, visits.WITHDRAWN_NOTICE) == []


def test_a_message_stopped_by_the_undo_cannot_be_sent_by_a_retry(db, world):
    """The outbox offers Retry on every message not sent. Before, a retry sent the no-show
    message the undo had stopped ("We missed you" after the practice took it back), and the
    clinic's stopped no-show email too. Now the retry is refused, saying why."""
    ident = _no_show(db, world, sent=False)
    with db.write() as session:
        visits.undo_no_show(session, world.staff, ident)
    stopped = [*_messages(db, ident, visits.NO_SHOW_NOTICE), _clinic_mail(db)[0]]
    assert len(stopped) == 3 and all(m.permanent_failure for m in stopped)
    for message in stopped:
        refused = pytest.raises(
            ValidationError, match=r"stopped this message on purpose \(Not sent"
        )
        with db.write() as session, refused:
            notify.retry(session, world.manager, message.id)
    with db.read() as session:
        again = [session.get(Notification, m.id) for m in stopped]
    assert all((m.status, m.permanent_failure) == (DeliveryStatus.FAILED, True) for m in again)


def test_the_patient_is_told_only_as_they_agreed(db, world):
    ident = _no_show(db, world)
    with db.write() as session:
        session.get(Patient, world.patient_id).consent_sms = False  # withdrawn since
        outcome = visits.undo_no_show(session, world.staff, ident)
    assert outcome.notified == ["email to alex@example.org"]
    assert outcome.skipped == ["no consent to text messages"]


def test_points_come_back_as_far_as_they_were_taken(db, world):
    _policy(db, world, fee=0, points=5)
    ident = _no_show(db, world, balance=3)  # the deduction stops at zero
    assert _state(db, world, ident)[2] == 0
    with db.read() as session:
        assert "the 3 points deducted are given back" in visits.undo_no_show_consequences(
            session, world.staff, ident
        )
    with db.write() as session:
        visits.undo_no_show(session, world.staff, ident)
    assert _state(db, world, ident)[2] == 3


def test_undo_is_refused_after_the_day_it_was_recorded(db, world):
    _policy(db, world)
    ident = _no_show(db, world)
    tomorrow = utcnow() + timedelta(days=1)
    with db.write() as session, pytest.raises(InvalidTransition, match="only on the day it was"):
        visits.undo_no_show(session, world.staff, ident, now=tomorrow)
    with db.write() as session:  # recorded yesterday (clinic-local): no longer offered
        session.execute(
            update(AuditEvent)
            .where(AuditEvent.entity_id == ident, AuditEvent.action == "no_show")
            .values(at=utcnow() - timedelta(days=1))
        )
    with db.read() as session:
        detail = appointments.get_appointment_detail(session, world.staff, ident)
        rows = today.list_today(session, world.staff, world.clinic_id)
        with pytest.raises(InvalidTransition, match="only on the day it was recorded"):
            visits.undo_no_show_consequences(session, world.staff, ident)
    assert not detail.undo_no_show_open
    assert not [r for r in rows if r.id == ident][0].can_undo_no_show
    with db.write() as session, pytest.raises(InvalidTransition, match="only on the day it was"):
        visits.undo_no_show(session, world.staff, ident)
    status, entries, balance = _state(db, world, ident)
    assert status == S.NO_SHOW and balance == 15 and not any(e.waived_at for e in entries)


def test_undo_needs_the_permission_and_a_no_show(db, world):
    ident = _no_show(db, world)
    with db.write() as session, pytest.raises(PermissionDenied):
        visits.undo_no_show(session, patient_actor("Alex"), ident)
    with db.read() as session, pytest.raises(PermissionDenied):
        visits.undo_no_show_consequences(session, patient_actor("Alex"), ident)
    with db.write() as session:
        row = make_visit(
            session,
            world,
            status=S.COMPLETED,
            start_at=utcnow() - timedelta(hours=2),
            end_at=utcnow() - timedelta(hours=1),
        )
        completed = row.id
    with db.write() as session, pytest.raises(InvalidTransition, match="completed appointment"):
        visits.undo_no_show(session, world.staff, completed)
    with db.read() as session:
        assert session.get(Appointment, ident).status == S.NO_SHOW


@pytest.mark.parametrize("method", ["cash", "stripe"])
def test_a_fee_paid_meanwhile_is_refunded_by_the_undo(db, world, method):
    """The fee was paid at the desk (or to the card on file) before the mistake was found: the
    undo waives it and gives the money back, a refund due at the desk (or through the payment
    provider's refund job), kept out of what was paid for the visit itself (before, the undo was
    refused and ClinicDesk had no way to give the fee back)."""
    _policy(db, world, points=0)
    ident = _no_show(db, world)
    with db.write() as session:
        fee = session.scalar(select(LedgerEntry).where(LedgerEntry.appointment_id == ident))
        paid = Payment(
            appointment_id=ident,
            patient_id=world.patient_id,
            ledger_entry_id=fee.id,
            kind="fee",
            method=method,
            status="paid",
            amount_cents=2500,
            currency="GBP",
            provider_ref="ch_test" if method == "stripe" else None,
            paid_at=utcnow(),
        )
        session.add(paid)
        session.flush()
        paid_id = paid.id
    with db.read() as session:
        text = visits.undo_no_show_consequences(session, world.staff, ident)
    assert "the £25.00 paid for it is refunded" in text
    where = "to the card through the payment provider" if method == "stripe" else "at the desk"
    assert f"The fee paid (P-{paid_id}) " in text and where in text
    with db.write() as session:
        visits.undo_no_show(session, world.staff, ident)
    status, entries, _ = _state(db, world, ident)
    assert status == S.SCHEDULED and entries[0].waived_at is not None
    with db.read() as session:
        refund = session.scalar(select(Payment).where(Payment.refund_of_id == paid_id))
        assert (refund.kind, refund.status, refund.amount_cents) == (
            "fee_refund",
            "refund_due",
            2500,
        )
        assert prepay.paid_cents(session, ident) == 0  # the visit's own payments are untouched
        assert _undo_event(db, ident).details["fee_refunds"] == [refund.id]
    if method == "stripe":

        class Provider:
            def refund(self, reference, cents, *, currency, key, payment_id, look_first):
                assert (reference, cents, currency) == ("ch_test", 2500, "GBP")
                return "re_test"

        assert prepay.process_refunds(db.write, Provider()) == 1
    else:
        with db.write() as session:
            desk.mark_refunded(session, world.staff, refund.id, "Cash handed back")
    with db.read() as session:
        assert session.get(Payment, refund.id).status == "refunded"


def test_two_people_undoing_the_same_no_show(db, world):
    _policy(db, world)
    ident = _no_show(db, world, balance=20)
    with db.read() as session:
        version = session.get(Appointment, ident).version
    barrier = threading.Barrier(2)
    results: list[object] = []

    def undo(actor):
        try:
            with db.write() as session:
                barrier.wait(timeout=10)
                visits.undo_no_show(session, actor, ident, expected_version=version)
            results.append("ok")
        except Conflict as error:
            results.append(error)
        except threading.BrokenBarrierError:  # SQLite: the second writer waits at BEGIN
            results.append("waited")

    threads = [threading.Thread(target=undo, args=(a,)) for a in (world.staff, world.manager)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    if "waited" in results:  # SQLite serialises writers at BEGIN: replay the loser now
        results.remove("waited")
        undo(world.manager)
    assert results.count("ok") == 1
    [conflict] = [r for r in results if isinstance(r, Conflict)]
    assert "already handled by" in str(conflict)
    status, entries, balance = _state(db, world, ident)
    assert status == S.SCHEDULED and balance == 20  # the points came back once
    assert len(_messages(db, ident, visits.WITHDRAWN_NOTICE)) == 2


# ---------------------------------------------------------------- the time taken meanwhile


def _booked_meanwhile(db, world, ident, *, provider_id=None, patient_id=None, kind=None) -> int:
    """A booking made after the no-show freed the time: it overlaps the visit's second half."""
    with db.write() as session:
        visit = session.get(Appointment, ident)
        if patient_id is None and kind is None:
            patient_id = make_patient(session, first_name="Sam", last_name="Lee").id
        row = Appointment(
            clinic_id=world.clinic_id,
            provider_id=provider_id or world.provider_id,
            patient_id=patient_id,
            service_id=world.service_id if kind is None else None,
            kind=kind or AppointmentKind.APPOINTMENT,
            status=S.SCHEDULED,
            start_at=visit.start_at + timedelta(minutes=15),
            end_at=visit.end_at + timedelta(minutes=15),
        )
        session.add(row)
        session.flush()
        return row.id


def _undo_event(db, ident) -> AuditEvent:
    with db.read() as session:
        return session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_id == ident, AuditEvent.action == "undo_no_show")
            .order_by(AuditEvent.id)
        ).all()[-1]


def test_undo_is_refused_when_the_provider_was_booked_meanwhile_unless_allowed(db, world):
    _policy(db, world)
    ident = _no_show(db, world, balance=20)
    other = _booked_meanwhile(db, world, ident)  # a no-show does not hold its time
    with db.write() as session, pytest.raises(Conflict, match=f"appointment #{other} \\(Sam Lee"):
        visits.undo_no_show(session, world.staff, ident)
    status, entries, balance = _state(db, world, ident)
    assert status == S.NO_SHOW and balance == 15 and not any(e.waived_at for e in entries)
    with db.read() as session:
        preview = visits.undo_no_show_preview(session, world.staff, ident)
    assert preview.clash.startswith("Its time is taken now (a no-show does not hold it)")
    assert f"Dr Test has appointment #{other} (Sam Lee with Dr Test) on " in preview.clash
    assert "Allow double booking to undo it anyway" in preview.clash
    assert preview.clash in preview.text  # the confirmation names it before they confirm
    with db.write() as session:  # staff allow it explicitly: recorded as a booking's override
        visits.undo_no_show(session, world.staff, ident, allow_double_booking=True)
    with db.read() as session:
        mine, theirs = session.get(Appointment, ident), session.get(Appointment, other)
        assert mine.status == theirs.status == S.SCHEDULED
        assert mine.allow_double_booking
    assert _undo_event(db, ident).details["double_booked_with"] == [other]


def test_a_free_time_needs_no_override(db, world):
    ident = _no_show(db, world)
    with db.read() as session:
        assert visits.undo_no_show_preview(session, world.staff, ident).clash == ""
    with db.write() as session:
        visits.undo_no_show(session, world.staff, ident)
    with db.read() as session:
        assert not session.get(Appointment, ident).allow_double_booking
    assert "double_booked_with" not in _undo_event(db, ident).details


def test_undo_names_time_off_the_patients_own_booking_and_a_full_room(db, world):
    ident = _no_show(db, world)
    with db.write() as session:
        room = Resource(clinic_id=world.clinic_id, name="Room 1", kind="room", quantity=1)
        session.add(room)
        session.flush()
        session.add(ServiceResource(service_id=world.service_id, resource_id=room.id))
        elsewhere = Provider(name="Dr Other")
        session.add(elsewhere)
        session.flush()
        elsewhere_id = session.get(Provider, elsewhere.id).id
    block = _booked_meanwhile(db, world, ident, kind=AppointmentKind.OUT_OF_OFFICE)
    own = _booked_meanwhile(db, world, ident, provider_id=elsewhere_id, patient_id=world.patient_id)
    with db.read() as session:
        clash = visits.undo_no_show_preview(session, world.staff, ident).clash
    assert "Dr Test is out of office on " in clash
    assert f"Alex Morgan has appointment #{own} (Alex Morgan with Dr Other)" in clash
    assert f"Room 1 at Test Clinic is busy then (in use by appointment #{own})" in clash
    with db.write() as session, pytest.raises(Conflict, match="Alex Morgan has appointment"):
        visits.undo_no_show(session, world.staff, ident)
    with db.write() as session:
        visits.undo_no_show(session, world.staff, ident, allow_double_booking=True)
    details = _undo_event(db, ident).details
    assert details["double_booked_with"] == [block]
    assert details["patient_double_booked_with"] == [own]
    assert details["resources_overbooked"] == ["Room 1"]


def test_undo_names_the_other_clinic_of_a_clash_there(db, world):
    """The patient booked at the practice's New York clinic over the no-show's London time:
    the undo read their visit on New York's clock, unnamed, beside a London board. It is
    named, on London's clock, with both zones."""
    ident = _no_show(db, world)
    own = _booked_meanwhile(db, world, ident, patient_id=world.patient_id)
    with db.write() as session:
        lakeside = Clinic(name="Lakeside", timezone="America/New_York", locale="en-US")
        session.add(lakeside)
        session.flush()
        row = session.get(Appointment, own)
        row.clinic_id, row.provider_id = lakeside.id, None
        start = row.start_at
    with db.read() as session:
        clash = visits.undo_no_show_preview(session, world.staff, ident).clash
    here = to_local(start, TZ)
    assert f"Alex Morgan has appointment #{own} (Alex Morgan) at Lakeside on " in clash
    assert f"{here:%H:%M}–" in clash and f"({here.tzname()}; " in clash and " there)" in clash


def test_undo_says_a_clash_at_the_other_clinic_is_through_the_travel_time(db, world):
    """Dr Test was booked at Lakeside 10 minutes after the no-show's end, with 30 minutes'
    travel between clinics set: the undo was refused naming that visit, whose time does not
    meet the no-show's, without saying why it clashes. It now says, as a booking does, "with
    30 minutes' travel between clinics"."""
    ident = _no_show(db, world)
    with db.write() as session:
        travel.set_travel_minutes(session, world.owner, 30)
        lakeside = Clinic(name="Lakeside", timezone="America/New_York", locale="en-US")
        session.add(lakeside)
        session.flush()
        visit = session.get(Appointment, ident)
        there = Appointment(
            clinic_id=lakeside.id,
            provider_id=world.provider_id,
            patient_id=make_patient(session, first_name="Sam", last_name="Lee").id,
            service_id=world.service_id,
            status=S.SCHEDULED,
            start_at=visit.end_at + timedelta(minutes=10),
            end_at=visit.end_at + timedelta(minutes=40),
        )
        session.add(there)
        session.flush()
        other = there.id
    with db.read() as session:
        clash = visits.undo_no_show_preview(session, world.staff, ident).clash
    assert f"Dr Test has appointment #{other} (Sam Lee with Dr Test) at Lakeside on " in clash
    assert " there), with 30 minutes' travel between clinics. Allow double booking" in clash
    with db.write() as session, pytest.raises(Conflict, match="30 minutes' travel between"):
        visits.undo_no_show(session, world.staff, ident)


def test_undoing_a_video_visits_no_show_keeps_no_travel_time(db, world):
    """The no-show was a video visit: Dr Test's Lakeside visit 10 minutes after its end
    clashed through the travel time between clinics, though nobody travels to a video visit.
    The undo keeps none around one, as a booking does."""
    ident = _no_show(db, world)
    with db.write() as session:
        travel.set_travel_minutes(session, world.owner, 30)
        lakeside = Clinic(name="Lakeside", timezone="America/New_York", locale="en-US")
        session.add(lakeside)
        session.flush()
        visit = session.get(Appointment, ident)
        visit.mode = VisitMode.VIRTUAL
        session.add(
            Appointment(
                clinic_id=lakeside.id,
                provider_id=world.provider_id,
                patient_id=make_patient(session, first_name="Sam", last_name="Lee").id,
                service_id=world.service_id,
                status=S.SCHEDULED,
                start_at=visit.end_at + timedelta(minutes=10),
                end_at=visit.end_at + timedelta(minutes=40),
            )
        )
    with db.read() as session:
        assert visits.undo_no_show_preview(session, world.staff, ident).clash == ""
    with db.write() as session:
        visits.undo_no_show(session, world.staff, ident)
    with db.read() as session:
        assert session.get(Appointment, ident).status == S.SCHEDULED


# ---------------------------------------------------------------- the clinic's inbox


def _clinic_mail(db) -> list[Notification]:
    with db.read() as session:
        return list(
            session.scalars(
                select(Notification)
                .where(Notification.to_address == "clinic@example.org")
                .order_by(Notification.id)
            )
        )


def _clinic_events(db, ident) -> list[tuple[str, str]]:
    with db.read() as session:
        rows = session.scalars(
            select(ClinicEvent).where(ClinicEvent.appointment_id == ident).order_by(ClinicEvent.id)
        )
        return [(e.event, e.summary) for e in rows]


def test_the_clinic_hears_the_no_show_was_undone_and_its_unsent_email_is_stopped(db, world):
    ident = _no_show(db, world)  # the patient's message went; the clinic's email still waits
    [no_show_mail] = _clinic_mail(db)
    assert no_show_mail.subject.startswith("No-show: Alex Morgan did not come")
    with db.write() as session:
        visits.undo_no_show(session, world.staff, ident)
    events = _clinic_events(db, ident)
    assert [e for e, _ in events] == ["no_show", "no_show_undone"]
    assert "Alex Morgan was recorded as a no-show for Consultation" in events[1][1]
    assert "Staff undid it, and the visit is scheduled again" in events[1][1]
    stopped, undone = _clinic_mail(db)
    assert stopped.id == no_show_mail.id
    assert (stopped.status, stopped.permanent_failure) == (DeliveryStatus.FAILED, True)
    assert stopped.last_error == "Not sent: the no-show was undone."
    assert undone.status == DeliveryStatus.QUEUED
    assert undone.subject.startswith("No-show undone: Alex Morgan was recorded as a no-show")
    assert f"/appointment?id={ident}" in undone.body


def test_the_clinic_email_is_stopped_even_after_its_template_was_edited(db, world):
    """The event keeps the id of the email it queued: an edit of the clinic's template between
    the no-show and the undo no longer hides that email from the undo (before, it was found by
    rendering its text again, and went out)."""
    ident = _no_show(db, world)
    [no_show_mail] = _clinic_mail(db)
    with db.write() as session:
        notify.save_template(
            session, world.owner, "clinic_event", "Inbox: {event}", "{summary}\n\n{link}"
        )
    with db.write() as session:
        visits.undo_no_show(session, world.staff, ident)
    stopped = next(m for m in _clinic_mail(db) if m.id == no_show_mail.id)
    assert (stopped.status, stopped.last_error) == (
        DeliveryStatus.FAILED,
        "Not sent: the no-show was undone.",
    )


def test_a_clinic_email_already_sent_stays_and_the_undo_follows_it(db, world):
    ident = _no_show(db, world)
    with db.write() as session:
        session.execute(
            update(Notification)
            .where(Notification.to_address == "clinic@example.org")
            .values(status=DeliveryStatus.SENT, sent_at=utcnow())
        )
        visits.undo_no_show(session, world.staff, ident)
    sent, undone = _clinic_mail(db)
    assert sent.status == DeliveryStatus.SENT and undone.subject.startswith("No-show undone:")


def test_the_digest_carries_the_no_show_and_its_undo(db, world):
    with db.write() as session:
        save_preferences(
            session,
            world.owner,
            world.clinic_id,
            PreferencesForm(clinic_events=["no_show"], clinic_digest=True, digest_hour=0),
        )
    ident = _no_show(db, world)
    with db.write() as session:
        visits.undo_no_show(session, world.staff, ident)
    assert _clinic_mail(db) == []  # nothing on its own: both wait for the digest
    with db.write() as session:
        clinic = session.get(Clinic, world.clinic_id)
        assert clinic_events.send_digest(session, clinic, now=utcnow() + timedelta(days=1)) == 2
    [digest] = _clinic_mail(db)
    assert "· No-show: Alex Morgan did not come" in digest.body
    assert "· No-show undone: Alex Morgan was recorded as a no-show" in digest.body


def test_a_clinic_that_did_not_select_no_shows_hears_of_no_undo(db, world):
    with db.write() as session:
        save_preferences(
            session, world.owner, world.clinic_id, PreferencesForm(clinic_events=["new_request"])
        )
    ident = _no_show(db, world)
    with db.write() as session:
        visits.undo_no_show(session, world.staff, ident)
    assert _clinic_events(db, ident) == [] and _clinic_mail(db) == []


# ---------------------------------------------------------------- a second no-show


def test_a_second_undo_answers_only_the_second_no_shows_message(db, world):
    ident = _no_show(db, world)  # the first no-show's message reached them
    with db.write() as session:
        visits.undo_no_show(session, world.staff, ident)
        session.execute(  # and so did the apology
            update(Notification)
            .where(Notification.appointment_id == ident)
            .values(status=DeliveryStatus.SENT, sent_at=utcnow())
        )
    assert len(_messages(db, ident, visits.WITHDRAWN_NOTICE)) == 2
    with db.write() as session:  # a no-show again, undone before its message goes out
        visits.mark_no_show(session, world.staff, ident)
    with db.read() as session:
        text = visits.undo_no_show_consequences(session, world.staff, ident)
    assert "told it was a mistake" not in text
    assert "The no-show message not sent yet (email and text message) is stopped." in text
    with db.write() as session:
        outcome = visits.undo_no_show(session, world.staff, ident)
    assert outcome.notified == []
    assert len(_messages(db, ident, visits.WITHDRAWN_NOTICE)) == 2  # no second apology
    second = [m for m in _messages(db, ident, visits.NO_SHOW_NOTICE) if m.permanent_failure]
    assert len(second) == 2


def test_an_undo_and_a_booking_racing_for_the_freed_time_never_both_win(db, world):
    """A no-show's time is free: a colleague books another patient into it while the desk
    undoes the no-show. One of them wins; the other is refused naming the clash (on SQLite the
    second writer waits and then runs, and is refused the same way)."""
    start = utcnow().replace(microsecond=0) - timedelta(minutes=10)
    with db.write() as session:
        row = make_visit(
            session, world, status=S.SCHEDULED, start_at=start, end_at=start + timedelta(minutes=60)
        )
        ident = row.id
        other = make_patient(session, first_name="Sam", last_name="Lee").id
    with db.write() as session:
        visits.mark_no_show(session, world.staff, ident)
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def undo():
        with db.write() as session:
            barrier.wait(timeout=10)
            visits.undo_no_show(session, world.staff, ident)

    def book():
        with db.write() as session:
            barrier.wait(timeout=10)
            moves.schedule_appointment(
                session,
                world.manager,
                moves.NewBooking(
                    clinic_id=world.clinic_id,
                    provider_id=world.provider_id,
                    patient_id=other,
                    service_ids=[world.service_id],
                    start_at=start + timedelta(minutes=20),
                    outside_hours_override=True,
                ),
            )

    def run(name, action):
        try:
            action()
            results[name] = "ok"
        except Conflict as error:
            results[name] = error
        except threading.BrokenBarrierError:  # SQLite: the second writer waits at BEGIN
            results[name] = "waited"

    threads = [threading.Thread(target=run, args=a) for a in (("undo", undo), ("book", book))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for name, action in (("undo", undo), ("book", book)):
        if results.get(name) == "waited":  # replay the one that waited, now the other is done
            barrier = threading.Barrier(1)
            run(name, action)
    assert sorted(r == "ok" for r in results.values()) == [False, True], results
    with db.read() as session:
        taken = session.scalars(
            select(Appointment.id).where(
                Appointment.provider_id == world.provider_id,
                Appointment.status == S.SCHEDULED,
                Appointment.start_at < start + timedelta(minutes=60),
                Appointment.end_at > start + timedelta(minutes=20),
            )
        ).all()
    assert len(taken) == 1  # never both on the provider's time


def test_an_undone_no_shows_fee_is_not_in_the_fee_figures_of_all_clinics_or_one(db, world):
    """The cancellation analytics' fee figures (core.analytics.cancellations: assessed and
    waived per currency) for All clinics and for the clinic, from the appointments and from the
    roll-ups: the no-show's fee, paid in cash, counts while the no-show stands; once undone (the
    fee waived, its cash due back) it counts nowhere, neither as assessed nor as waived, since
    the visit is scheduled again. No change was needed: this holds the rule."""
    from core.analytics import cancellation_parts as parts
    from core.analytics import cancellation_rollups as rollups
    from core.analytics import cancellations as ca
    from core.payments.providers import DeskProvider

    with db.write() as session:  # a second clinic, in dollars: All clinics is two currencies
        session.add(Clinic(name="Lakeside", timezone="America/New_York", currency="USD"))
    _policy(db, world)
    ident = _no_show(db, world)
    _, [fee, *_], _ = _state(db, world, ident)
    with db.write() as session:
        desk.pay_fee(session, world.staff, fee.id, method="cash", provider=DeskProvider())
    day = local_today(TZ)
    scopes = {
        "all": parts.AnalyticsFilters(day, day),
        "one": parts.AnalyticsFilters(day, day, clinic_id=world.clinic_id),
    }

    def fees() -> dict[tuple[str, bool], tuple[dict, dict]]:
        rollups.refresh_job(db, None)
        out = {}
        with db.read() as session:
            for name, filters in scopes.items():
                for use in (False, True):
                    got = ca.compute_figures(session, world.owner, filters, use_rollups=use).fees
                    out[name, use] = (got.no_show_assessed_cents, got.no_show_waived_cents)
        return out

    standing = fees()
    assert standing[("all", False)] == ({"GBP": 2500, "USD": 0}, {"GBP": 0, "USD": 0})
    assert standing[("all", True)] == standing[("all", False)]
    assert standing[("one", False)] == standing[("one", True)] == ({"GBP": 2500}, {"GBP": 0})
    with db.write() as session:
        visits.undo_no_show(session, world.staff, ident)
    with db.read() as session:
        assert session.get(LedgerEntry, fee.id).waived_at is not None
        refund = session.scalars(select(Payment).where(Payment.kind == "fee_refund")).one()
        assert (refund.status, refund.amount_cents) == ("refund_due", 2500)
    undone = fees()
    assert undone[("all", False)] == undone[("all", True)] == ({"GBP": 0, "USD": 0},) * 2
    assert undone[("one", False)] == undone[("one", True)] == ({"GBP": 0},) * 2


def test_undoing_a_merged_duplicates_no_show_says_where_its_points_went(db, world):
    """A fresh duplicate's visit recorded as a no-show (5 points taken from its opening), the
    duplicate merged into the world's record, then the no-show undone the same day: the
    points go back to the duplicate and none on to the record kept (one person opens one
    balance, core.policy.follow_merge), and the undo's result and its audit say so in the
    policy's words. Before, neither said where the points went."""
    _policy(db, world)
    midnight = local_to_utc(local_today(TZ), time(0), TZ)
    start = max(utcnow() - timedelta(hours=1), midnight)
    with db.write() as session:
        duplicate = make_patient(session, email="alex.copy@example.net", phone=None).id
        row = make_visit(
            session, world, status=S.SCHEDULED, start_at=start, end_at=start + timedelta(minutes=30)
        )
        row.patient_id = duplicate
        ident = row.id
    with db.write() as session:
        visits.mark_no_show(session, world.staff, ident)
    with db.write() as session:
        merge.merge_patients(session, world.manager, world.patient_id, duplicate, "Same person")
    with db.write() as session:
        outcome = visits.undo_no_show(session, world.staff, ident)
    kept = world.patient_id
    said = (
        f"#{duplicate} was merged into #{kept}: the 5 points came out of #{duplicate}'s "
        "opening balance, which the merge did not carry (one person opens one balance), so "
        f"#{kept} gets none of them."
    )
    with db.read() as session:
        undo = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity == "appointment", AuditEvent.entity_id == ident)
            .order_by(AuditEvent.id)
        ).all()[-1]
        balances = [session.get(Patient, p).points_balance for p in (kept, duplicate)]
    assert undo.action == "undo_no_show" and undo.message == said
    assert said in outcome.money.splitlines()
    assert balances == [100, 0]


def test_the_undos_preview_and_the_patients_notice_say_what_reaches_the_kept_balance(db, world):
    """A fresh duplicate's no-show (5 points out of its opening) undone after the merge: the
    undo's confirmation must not promise 'the 5 points deducted are given back' when the
    record kept gets none of them (core.policy.follow_merge): it says so in the desk's words,
    and the patient's 'no-show withdrawn' notice in theirs, without record numbers. Before,
    both said the 5 points were given back."""
    _policy(db, world)
    midnight = local_to_utc(local_today(TZ), time(0), TZ)
    start = max(utcnow() - timedelta(hours=1), midnight)
    with db.write() as session:
        duplicate = make_patient(session, email="alex.copy@example.net", phone=None).id
        row = make_visit(
            session, world, status=S.SCHEDULED, start_at=start, end_at=start + timedelta(minutes=30)
        )
        row.patient_id = duplicate
        ident = row.id
    with db.write() as session:
        visits.mark_no_show(session, world.staff, ident)
        session.execute(
            update(Notification)
            .where(Notification.appointment_id == ident)
            .values(status=DeliveryStatus.SENT, sent_at=utcnow())
        )
    with db.write() as session:
        merge.merge_patients(session, world.manager, world.patient_id, duplicate, "Same person")
    kept = world.patient_id
    said = (
        f"#{duplicate} was merged into #{kept}: the 5 points came out of #{duplicate}'s "
        "opening balance, which the merge did not carry (one person opens one balance), so "
        f"#{kept} gets none of them."
    )
    with db.read() as session:
        text = visits.undo_no_show_consequences(session, world.staff, ident)
    assert "the 5 points deducted are given back" not in text
    assert said in text
    with db.write() as session:
        visits.undo_no_show(session, world.staff, ident)
    with db.read() as session:
        assert session.get(Patient, kept).points_balance == 100
    [email] = [m for m in _messages(db, ident, visits.WITHDRAWN_NOTICE) if m.channel == "email"]
    told = (
        "The 5 points deducted came from the opening points of a second record we held for "
        "you, now joined with this one, and your balance keeps one opening: none are added."
    )
    assert "points deducted are given back" not in email.body
    assert told in email.body
    assert f"#{duplicate}" not in email.body and f"#{kept}" not in email.body
