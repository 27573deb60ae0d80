"""The clinic's inbox: which events reach it (the practice's selection), one email each or a
daily digest, and the patient's messages on check-in and completion.
Re-run on PostgreSQL by tests/integration/test_clinic_events_pg.py."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import select

from core.kernel.authz import patient_actor
from core.kernel.clock import local_to_utc
from core.messaging import clinic_events
from core.messaging.preferences import PreferencesForm, save_preferences
from core.portal import patient_links
from core.requests import changes
from core.scheduling import moves, visits
from db.models import (
    Appointment,
    CancellationPolicy,
    Clinic,
    ClinicEvent,
    Notification,
)
from db.types import utcnow
from tests.support.days import PLAIN_THURSDAY

TZ = "Europe/London"
DAY = PLAIN_THURSDAY  # ahead, in standard time


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return local_to_utc(day, time(hour, minute), TZ)


def book(db, world, start=None) -> int:
    with db.write() as session:
        return moves.schedule_appointment(
            session,
            world.manager,
            moves.NewBooking(
                patient_id=world.patient_id,
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                service_ids=[world.service_id],
                start_at=start or local(DAY, 10),
            ),
        ).id


def clinic_mail(db) -> list[Notification]:
    with db.read() as session:
        return list(
            session.scalars(
                select(Notification)
                .where(Notification.to_address == "clinic@example.org")
                .order_by(Notification.id)
            )
        )


def choose(db, world, events: list[str], digest: bool = False, **extra) -> None:
    with db.write() as session:
        save_preferences(
            session,
            world.owner,
            world.clinic_id,
            PreferencesForm(clinic_events=events, clinic_digest=digest, **extra),
        )


def patient_cancels(db, appointment_id: int) -> None:
    with db.write() as session:
        changes.request_change(
            session, patient_actor("Alex"), appointment_id, kind="cancel", reason="Away"
        )


def test_by_default_a_patients_cancellation_request_emails_the_clinic_with_a_link(db, world):
    appointment_id = book(db, world)
    patient_cancels(db, appointment_id)
    (mail,) = clinic_mail(db)
    assert mail.template == "clinic_event"
    assert mail.subject.startswith("Patient cancellation or change request:")
    assert "Alex Morgan asked to cancel Consultation" in mail.body
    assert f"/appointment?id={appointment_id}" in mail.body


def test_approving_a_cancellation_request_does_not_tell_the_clinic_again(db, world):
    """The clinic hears of the request when the patient makes it; its manager's approval sends
    no second "asked to cancel" notice."""
    appointment_id = book(db, world)
    with db.write() as session:
        change_id = changes.request_change(
            session, patient_actor("Alex"), appointment_id, kind="cancel", reason="Away"
        ).id
    with db.write() as session:
        changes.approve_change(session, world.manager, change_id)
    with db.read() as session:
        assert session.get(Appointment, appointment_id).cancelled_by == "patient"
    (mail,) = clinic_mail(db)
    assert "Alex Morgan asked to cancel Consultation" in mail.body


def test_an_unselected_event_is_not_sent_and_a_selected_one_is(db, world):
    choose(db, world, ["no_show"])
    appointment_id = book(db, world, local(DAY, 10))
    patient_cancels(db, appointment_id)
    assert clinic_mail(db) == []
    other = book(db, world, local(DAY, 11))
    with db.write() as session:
        visits.mark_no_show(session, world.staff, other, now=local(DAY, 11, 30))
    (mail,) = clinic_mail(db)
    assert mail.subject.startswith("No-show:") and "did not come" in mail.body


def test_a_late_cancellation_is_named_as_such(db, world):
    with db.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=1),
                window_hours=24,
                late_cancel_fee_cents=2500,
                policy_text="A day's notice please.",
            )
        )
    appointment_id = book(db, world)
    with db.write() as session:
        moves.cancel(
            session,
            patient_actor("Alex"),
            session.get(Appointment, appointment_id),
            reason="Ill",
            message="",
            by_patient=True,
            at=local(DAY, 8),
        )
    (mail,) = clinic_mail(db)
    assert mail.subject.startswith("Late cancellation:")


def test_an_online_request_reaches_the_clinic(db, world):
    with db.write() as session:
        raw = patient_links.issue_booking_link(
            session, world.manager, world.clinic_id, base_url="https://desk.test"
        ).split("t=")[1]
    with db.write() as session:
        patient_links.submit_booking(
            session,
            raw,
            service_id=world.service_id,
            requested_day=date.today() + timedelta(days=14),  # inside the link's 180 days
            time_of_day="morning",
            first_name="Sam",
            last_name="Lee",
            email="sam@example.org",
            phone="",
            consent_email=True,
            ip="127.0.0.1",
        )
    (mail,) = clinic_mail(db)
    assert mail.subject.startswith("New online request:") and "Sam Lee asked online" in mail.body


def test_digest_gathers_the_days_events_into_one_email_once_a_day(db, world):
    choose(db, world, ["change_request", "no_show"], digest=True, digest_hour=7)
    first = book(db, world, local(DAY, 10))
    second = book(db, world, local(DAY, 11))
    patient_cancels(db, first)
    with db.write() as session:
        visits.mark_no_show(session, world.staff, second, now=local(DAY, 11, 30))
    assert clinic_mail(db) == []  # nothing one by one
    with db.write() as session:
        clinic = session.get(Clinic, world.clinic_id)
        assert clinic_events.send_digest(session, clinic, now=local(DAY + timedelta(1), 6)) == 0
        assert clinic_events.send_digest(session, clinic, now=local(DAY + timedelta(1), 7)) == 2
        assert clinic_events.send_digest(session, clinic, now=local(DAY + timedelta(1), 9)) == 0
    (mail,) = clinic_mail(db)
    assert mail.template == "clinic_digest" and "2 event(s)" in mail.subject
    assert "Patient cancellation or change request" in mail.body and "No-show" in mail.body
    with db.read() as session:
        assert all(e.digested_at for e in session.scalars(select(ClinicEvent)))


def test_a_clinic_without_email_keeps_the_events_without_sending(db, world):
    with db.write() as session:
        session.get(Clinic, world.clinic_id).email = ""
    patient_cancels(db, book(db, world))
    assert clinic_mail(db) == []
    with db.read() as session:
        assert [e.event for e in session.scalars(select(ClinicEvent))] == ["change_request"]


def test_patient_hears_of_completion_and_of_check_in_only_when_chosen(db, world):
    appointment_id = book(db, world, local(DAY, 10))
    with db.write() as session:
        outcome = visits.check_in(session, world.staff, appointment_id, now=local(DAY, 9))
    assert outcome.notified == []
    with db.write() as session:
        visits.complete(session, world.staff, appointment_id, now=local(DAY, 10, 30))
    with db.read() as session:
        thanks = session.scalars(
            select(Notification).where(Notification.template == "appointment_completed")
        ).all()
    assert thanks and thanks[0].subject.startswith("Thank you for your visit")
    choose(db, world, ["no_show"], tell_checked_in=True)
    other = book(db, world, local(DAY, 12))
    with db.write() as session:
        outcome = visits.check_in(session, world.staff, other, now=local(DAY, 9))
    assert [n.split(" to ")[0] for n in outcome.notified] == ["email", "sms"]


def test_the_digest_is_titled_with_the_day_its_events_belong_to(db, world):
    choose(db, world, ["change_request"], digest=True, digest_hour=7)
    patient_cancels(db, book(db, world, local(DAY, 10)))
    with db.write() as session:  # asked in the afternoon; the digest goes the next morning
        session.scalar(select(ClinicEvent)).created_at = local(DAY, 15)
        clinic = session.get(Clinic, world.clinic_id)
        assert clinic_events.send_digest(session, clinic, now=local(DAY + timedelta(1), 7)) == 1
    (mail,) = clinic_mail(db)
    thursday = f"{DAY:%a}, {DAY.day} {DAY:%b} {DAY.year}"  # en-GB, as the clinic
    assert mail.subject.endswith(f"1 event(s) of {thursday}") and f"({thursday})" in mail.body


def test_a_digest_over_two_days_names_both(db, world):
    choose(db, world, ["change_request"], digest=True, digest_hour=7)
    patient_cancels(db, book(db, world, local(DAY + timedelta(2), 10)))
    patient_cancels(db, book(db, world, local(DAY + timedelta(2), 11)))
    with db.write() as session:
        first, second = session.scalars(select(ClinicEvent).order_by(ClinicEvent.id))
        first.created_at, second.created_at = local(DAY, 15), local(DAY + timedelta(1), 6, 30)
        clinic = session.get(Clinic, world.clinic_id)
        assert clinic_events.send_digest(session, clinic, now=local(DAY + timedelta(1), 7)) == 2
    (mail,) = clinic_mail(db)
    days = f"{DAY.day}–{DAY.day + 1} {DAY:%b} {DAY.year}"
    assert mail.subject.replace("\u2009", "").endswith(f"2 event(s) of {days}")  # thin spaces


def test_a_busy_days_digest_goes_out_in_as_many_emails_as_its_events_need(db, world):
    """Before, 200 confirmations made one digest body over the 20,000 characters a message
    holds: send_digest raised ValidationError ('The items is too long') on every run, so the
    clinic never had a digest again (its events only piled up), and the job stopped there,
    before the clinics after it."""
    choose(db, world, ["confirmed"], digest=True, digest_hour=7)
    appointment_id = book(db, world, local(DAY, 10))
    with db.write() as session:
        for n in range(200):
            row = clinic_events.tell_clinic(
                session,
                world.clinic_id,
                "confirmed",
                f"Patient Number{n:03d} confirmed Thu, 3 Dec 2026, 10:00 (text message).",
                appointment_id=appointment_id,
                link=clinic_events.item_link("https://clinic.example.org", appointment_id),
            )
            row.created_at = local(DAY, 9)
        clinic = session.get(Clinic, world.clinic_id)
        assert clinic_events.send_digest(session, clinic, now=local(DAY + timedelta(1), 7)) == 200
    mails = clinic_mail(db)
    assert len(mails) > 1 and all(len(m.body) <= 20_000 for m in mails)
    counts = [int(m.subject.split(": ")[1].split(" ")[0]) for m in mails]
    assert sum(counts) == 200
    body = "\n".join(m.body for m in mails)
    assert all(f"Patient Number{n:03d} confirmed" in body for n in range(200))
    with db.read() as session:
        assert all(e.digested_at for e in session.scalars(select(ClinicEvent)))
