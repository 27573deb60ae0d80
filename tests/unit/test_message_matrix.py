"""Who hears of what: every event in a booking request's and a visit's life that a patient or
the clinic's inbox should hear of sends exactly one message per channel the patient agreed to
(and has an address for), in the clinic's zone, locale and currency, with a link that opens its
own appointment; the events nobody should hear of send nothing.

The clinic here is in Berlin (de-DE, euros): 15:00 UTC in February reads "16:00 (CET)"."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import select

from core.kernel import tokens
from core.kernel.authz import patient_actor
from core.kernel.clock import local_day_bounds, local_to_utc, local_today
from core.kernel.errors import ValidationError
from core.messaging import notify
from core.messaging.preferences import PreferencesForm, save_preferences
from core.patients import invitations
from core.portal import home, patient_links
from core.requests import changes, decisions
from core.scheduling import booking, moves, visits
from db.models import (
    AppointmentStatus,
    CancellationPolicy,
    ChangeRequest,
    Clinic,
    DeliveryStatus,
    Notification,
    Patient,
)
from db.types import utcnow
from tests.factories import invitations_sent_a_while_ago, make_patient, make_visit
from tests.support.days import PLAIN_THURSDAY

TZ = "Europe/Berlin"
PHONE = "0151 23456789"  # a German mobile (a British one reads as a Berlin landline here)
EMAIL = "alex@example.org"
CLINIC = "clinic@example.org"
BOTH = [("email", EMAIL), ("sms", PHONE)]
WHEN = "Do., "  # a day as the clinic's locale writes it


@pytest.fixture
def berlin(db, world):
    with db.write() as session:
        clinic = session.get(Clinic, world.clinic_id)
        clinic.timezone, clinic.locale, clinic.currency = TZ, "de-DE", "EUR"
        session.get(Patient, world.patient_id).phone = PHONE
    return world


def at(hour: int, minute: int = 0, day=PLAIN_THURSDAY) -> datetime:
    return local_to_utc(day, time(hour, minute), TZ)


def mark(db) -> int:
    with db.read() as session:
        return session.scalar(select(Notification.id).order_by(Notification.id.desc())) or 0


def told(db, since: int) -> list[tuple[str, str, str]]:
    """(template, channel, address) of each message queued after `since`, in order."""
    with db.read() as session:
        rows = session.scalars(
            select(Notification).where(Notification.id > since).order_by(Notification.id)
        )
        return [(n.template, n.channel.value, n.to_address) for n in rows]


def to_patient(template: str, channels=BOTH) -> list[tuple[str, str, str]]:
    return [(template, channel, address) for channel, address in channels]


def bodies(db, since: int, template: str) -> list[str]:
    with db.read() as session:
        return list(
            session.scalars(
                select(Notification.body)
                .where(Notification.id > since, Notification.template == template)
                .order_by(Notification.id)
            )
        )


def flat(body: str) -> str:
    """The words of a message, any run of spaces and line breaks one space (a text message is
    the email flattened)."""
    return " ".join(body.split())


def link_opens(db, body: str, appointment_id: int) -> str:
    """The message's patient link is signed for its own appointment; its raw token."""
    purpose, raw = re.search(r"/patient\?p=(\w+)&t=([\w-]+)", body).groups()
    with db.read() as session:
        assert tokens.verify(session, raw, purpose).subject_id == appointment_id
    return raw


def booked(db, world, start=None, *, patient_id=None, **extra) -> int:
    with db.write() as session:
        return moves.schedule_appointment(
            session,
            world.manager,
            moves.NewBooking(
                clinic_id=world.clinic_id,
                provider_id=world.provider_id,
                start_at=start or at(15),
                patient_id=patient_id or world.patient_id,
                service_ids=[world.service_id],
                **extra,
            ),
        ).id


def requested(db, world) -> int:
    with db.write() as session:
        return decisions.request_appointment(
            session,
            world.manager,
            patient_id=world.patient_id,
            clinic_id=world.clinic_id,
            service_id=world.service_id,
            requested_day=PLAIN_THURSDAY,
            time_of_day="morning",
        ).id


def policy(db, world, *, window_hours=48, auto_accept=False) -> None:
    with db.write() as session:
        session.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=1),
                window_hours=window_hours,
                late_cancel_fee_cents=2500,
                no_show_fee_cents=4000,
                points_deducted=10,
                outside_window_auto_accept=auto_accept,
                policy_text="48 hours",
            )
        )


# ---------------------------------------------------------------- booking and requests


def test_booked_by_staff_one_confirmation_per_channel_with_its_change_link(db, berlin):
    since = mark(db)
    ident = booked(db, berlin)
    assert told(db, since) == to_patient("appointment_scheduled")
    email, text = bodies(db, since, "appointment_scheduled")
    for body in (email, text):  # 15:00 in Berlin (14:00 UTC), as the clinic's locale writes it
        assert WHEN in body and "15:00 (CET)" in body
    assert link_opens(db, email, ident) == link_opens(db, text, ident)


def test_requests_in_the_portal_and_by_the_public_link_tell_patient_and_clinic(db, berlin):
    since = mark(db)
    requested(db, berlin)  # staff on the phone: the clinic's inbox is not told
    assert told(db, since) == to_patient("request_received")
    since = mark(db)
    with db.write() as session:
        session.get(Patient, berlin.patient_id).portal_enrolled_at = utcnow()
    with db.write() as session:
        home.request_appointment(
            session,
            berlin.patient_id,
            clinic_id=berlin.clinic_id,
            service_id=berlin.service_id,
            requested_day=PLAIN_THURSDAY,
            time_of_day="afternoon",  # not the request staff took: that one is still waiting
        )
    clinic_first = [("clinic_event", "email", CLINIC), *to_patient("request_received")]
    assert told(db, since) == clinic_first
    since = mark(db)
    with db.write() as session:
        url = patient_links.issue_booking_link(
            session, berlin.manager, berlin.clinic_id, base_url="https://x"
        )
    with db.write() as session:
        patient_links.submit_booking(
            session,
            url.split("t=")[1],
            service_id=berlin.service_id,
            requested_day=PLAIN_THURSDAY,
            time_of_day="morning",
            first_name="Bo",
            last_name="New",
            email="bo@example.org",
            consent_email=True,
        )
    assert told(db, since) == [
        ("clinic_event", "email", CLINIC),
        ("request_received", "email", "bo@example.org"),
    ]
    assert WHEN in bodies(db, since, "request_received")[0]


def test_a_request_approved_declined_or_answered_with_a_proposal(db, berlin):
    ident = requested(db, berlin)
    since = mark(db)
    with db.write() as session:
        decisions.approve_request(
            session, berlin.manager, ident, provider_id=berlin.provider_id, start_at=at(10)
        )
    assert told(db, since) == to_patient("appointment_scheduled")
    link_opens(db, bodies(db, since, "appointment_scheduled")[0], ident)

    ident = requested(db, berlin)
    since = mark(db)
    with db.write() as session:
        decisions.decline_request(session, berlin.manager, ident, reason="Away that week")
    assert told(db, since) == to_patient("appointment_declined")
    assert all("Reason: Away that week" in b for b in bodies(db, since, "appointment_declined"))

    for accept, after in ((True, to_patient("appointment_scheduled")), (False, [])):
        ident = requested(db, berlin)
        since = mark(db)
        with db.write() as session:
            decisions.propose_time(
                session,
                berlin.manager,
                ident,
                provider_id=berlin.provider_id,
                start_at=at(12 if accept else 14),
            )
        assert told(db, since) == to_patient("appointment_proposed")
        raw = link_opens(db, bodies(db, since, "appointment_proposed")[1], ident)  # the text's
        since = mark(db)
        with db.write() as session:
            patient_links.answer_proposal(session, raw, accept=accept)
        # the patient answered on the page, which says what happens; the clinic hears of it
        assert told(db, since) == [("proposal_answered", "email", CLINIC), *after]


def test_a_proposal_replaced_before_its_message_went_is_not_sent(db, berlin):
    """The practice proposed 12:00, then 14:00 instead, while the mail server was down. Before,
    both proposals went out once it was back, the first with a link saying it was replaced.
    Now the first is stopped, saying why; the second goes."""
    ident = requested(db, berlin)
    since = mark(db)
    for hour in (12, 14):
        with db.write() as session:
            decisions.propose_time(
                session, berlin.manager, ident, provider_id=berlin.provider_id, start_at=at(hour)
            )
    with db.read() as session:
        rows = session.scalars(
            select(Notification).where(Notification.id > since).order_by(Notification.id)
        ).all()
    assert [(n.channel.value, n.status.value, n.last_error) for n in rows] == [
        ("email", "failed", decisions.REPLACED),
        ("sms", "failed", decisions.REPLACED),
        ("email", "queued", None),
        ("sms", "queued", None),
    ]
    assert "14:00 (CET)" in rows[2].body
    link_opens(db, rows[3].body, ident)


def test_a_change_request_approved_denied_or_answered_with_a_proposal(db, berlin):
    ident = booked(db, berlin)

    def ask(hour: int) -> int:
        with db.write() as session:
            return changes.request_change(
                session,
                patient_actor("Alex"),
                ident,
                kind="reschedule",
                requested_start_at=at(hour),
            ).id

    since = mark(db)
    change = ask(16)
    assert told(db, since) == [("clinic_event", "email", CLINIC)]  # the patient saw the page
    since = mark(db)
    with db.write() as session:
        changes.approve_change(session, berlin.manager, change)
    assert told(db, since) == to_patient("appointment_rescheduled")
    assert all(
        "16:00 (CET)" in b and "15:00 (CET)" in b
        for b in bodies(db, since, "appointment_rescheduled")
    )

    change = ask(11)
    since = mark(db)
    with db.write() as session:
        changes.deny_change(session, berlin.manager, change, reason="Fully booked")
    assert told(db, since) == to_patient("change_request_denied")

    change = ask(11)
    since = mark(db)
    with db.write() as session:
        changes.propose_for_change(session, berlin.manager, change, start_at=at(12))
    assert told(db, since) == to_patient("appointment_proposed")
    raw = link_opens(db, bodies(db, since, "appointment_proposed")[0], ident)
    since = mark(db)
    with db.write() as session:
        patient_links.answer_proposal(session, raw, accept=False)
    # turned down: the booking they had stands, and they are sent its confirmation again
    assert told(db, since) == [
        ("proposal_answered", "email", CLINIC),
        *to_patient("appointment_scheduled"),
    ]


# ---------------------------------------------------------------- moves and cancellations


def test_moved_by_staff_tells_the_patient_a_note_only_edit_does_not(db, berlin):
    """Before, saving the appointment's notes (or "Update without asking" at the same time and
    provider) emailed and texted the patient "Your appointment has been updated" with nothing
    changed for them."""
    ident = booked(db, berlin)
    since = mark(db)
    with db.write() as session:
        outcome = moves.update_appointment(session, berlin.manager, ident, notes="Bring x-rays")
    assert told(db, since) == [] and outcome.told == "Notified: nobody."
    with db.write() as session:
        moves.update_appointment(
            session, berlin.manager, ident, message="Please bring your x-rays."
        )
    assert told(db, since) == to_patient("appointment_updated")  # staff wrote to them
    since = mark(db)
    with db.write() as session:
        moves.update_appointment(session, berlin.manager, ident, start_at=at(11))
    assert told(db, since) == to_patient("appointment_updated")
    assert all("11:00 (CET)" in b for b in bodies(db, since, "appointment_updated"))
    since = mark(db)
    with db.write() as session:
        moves.reschedule(session, berlin.manager, ident, start_at=at(12))
    assert told(db, since) == to_patient("appointment_rescheduled")


def test_cancelled_by_staff_no_fee_line(db, berlin):
    policy(db, berlin, window_hours=24 * 800)  # inside the window, but the practice cancels
    ident = booked(db, berlin)
    since = mark(db)
    with db.write() as session:
        moves.cancel_appointment(session, berlin.manager, ident, reason="Provider ill")
    assert told(db, since) == to_patient("appointment_cancelled")
    assert all(
        "fee" not in b and "points" not in b for b in bodies(db, since, "appointment_cancelled")
    )


def test_cancelled_by_the_patient_early_through_the_link_one_confirmation(db, berlin):
    policy(db, berlin, auto_accept=True)
    ident = booked(db, berlin)
    raw = link_opens(db, bodies(db, 0, "appointment_scheduled")[0], ident)
    since = mark(db)
    with db.write() as session:
        said = patient_links.submit_change(session, raw, kind="cancel")
    assert said == (
        "Your appointment has been cancelled. We have sent you a confirmation by email and "
        "text message."
    )
    assert told(db, since) == [
        ("clinic_event", "email", CLINIC),
        *to_patient("appointment_cancelled"),
    ]
    assert all("fee" not in b for b in bodies(db, since, "appointment_cancelled"))
    # done, not waiting in the queue: before, the inbox read "Alex Morgan asked to cancel …"
    [inbox] = bodies(db, since, "clinic_event")
    assert "Alex Morgan cancelled Consultation on Do., 11. Feb." in inbox
    assert "(accepted at once under the cancellation policy)" in inbox


def test_cancelled_by_the_patient_late_states_the_fee_and_points(db, berlin):
    policy(db, berlin, window_hours=24 * 800)
    ident = booked(db, berlin)
    raw = link_opens(db, bodies(db, 0, "appointment_scheduled")[0], ident)
    since = mark(db)
    with db.write() as session:
        patient_links.submit_change(session, raw, kind="cancel")
    assert told(db, since) == [("clinic_event", "email", CLINIC)]  # into the queue
    with db.read() as session:
        change = session.scalar(select(ChangeRequest.id))
    since = mark(db)
    with db.write() as session:
        changes.approve_change(session, berlin.manager, change)
    # the clinic heard of the request already: now only that it was late
    assert told(db, since) == [
        ("clinic_event", "email", CLINIC),
        *to_patient("appointment_cancelled"),
    ]
    for body in bodies(db, since, "appointment_cancelled"):
        assert "A late-cancellation fee of 25,00 € applies. 10 points were deducted." in flat(body)


# ---------------------------------------------------------------- the visit


def _today(db, world, minutes=5) -> int:
    """A visit booked earlier for `minutes` from now, kept on the clinic's today: late in its
    evening, where that would be tomorrow (check-in opens on the visit's day), it is earlier
    that last hour, in the same order. Written as it is: the booking refuses a time passed."""
    now = utcnow()
    _, midnight = local_day_bounds(local_today(TZ, now), TZ)
    start = min(now + timedelta(minutes=minutes), midnight - timedelta(minutes=60 - minutes))
    with db.write() as session:
        visit = make_visit(
            session,
            world,
            status=AppointmentStatus.SCHEDULED,
            start_at=start,
            end_at=start + timedelta(minutes=30),
        )
        return visit.id


def test_check_in_is_told_only_where_the_clinic_chose_it(db, berlin):
    first, second = _today(db, berlin), _today(db, berlin, 40)
    since = mark(db)
    with db.write() as session:
        visits.check_in(session, berlin.staff, first)
    assert told(db, since) == []
    with db.write() as session:
        save_preferences(
            session, berlin.manager, berlin.clinic_id, PreferencesForm(tell_checked_in=True)
        )
    with db.write() as session:
        visits.check_in(session, berlin.staff, second)
    assert told(db, since) == to_patient("appointment_checked_in")


def test_completed_a_thank_you_per_channel(db, berlin):
    ident = _today(db, berlin)
    since = mark(db)
    with db.write() as session:
        visits.complete(session, berlin.staff, ident, now=utcnow() + timedelta(hours=1))
    assert told(db, since) == to_patient("appointment_completed")


def test_a_no_show_states_the_fee_and_the_points_and_its_undo_puts_it_right(db, berlin):
    """Before, the no-show message named the fee only: the 10 points the policy took went
    unsaid (a late cancellation's message says both)."""
    policy(db, berlin)
    ident = _today(db, berlin)
    since = mark(db)
    later = utcnow() + timedelta(hours=1)
    with db.write() as session:
        visits.mark_no_show(session, berlin.staff, ident, now=later)
    assert told(db, since) == [
        ("clinic_event", "email", CLINIC),
        *to_patient(visits.NO_SHOW_NOTICE),
    ]
    for body in bodies(db, since, visits.NO_SHOW_NOTICE):
        assert "A no-show fee of 40,00 € applies. 10 points were deducted." in flat(body)
    with db.write() as session:  # the messages went out
        for row in session.scalars(select(Notification).where(Notification.id > since)):
            row.status, row.sent_at = DeliveryStatus.SENT, utcnow()
    since = mark(db)
    with db.write() as session:  # now, the day it was recorded (an hour on may be tomorrow)
        visits.undo_no_show(session, berlin.manager, ident)
    assert told(db, since) == [
        ("clinic_event", "email", CLINIC),
        *to_patient(visits.WITHDRAWN_NOTICE),
    ]


# ---------------------------------------------------------------- contact data and consent


def test_a_patient_with_no_email_and_no_phone_staff_are_told_nobody_was(db, berlin):
    """Before, the booking form said "Confirmation queued." when nothing was."""
    with db.write() as session:
        nobody = make_patient(session, first_name="Nia", email=None, phone=None).id
    since = mark(db)
    with db.write() as session:
        done = booking.book(
            session,
            berlin.manager,
            booking.InOffice(
                clinic_id=berlin.clinic_id,
                provider_id=berlin.provider_id,
                start_at=at(15),
                patient_id=nobody,
                service_ids=[berlin.service_id],
            ),
        )
    assert told(db, since) == []
    assert "No confirmation was sent. Not sent: no email address; no phone number." in done.notes
    with db.write() as session:
        outcome = moves.cancel_appointment(session, berlin.manager, done.appointment_id, reason="x")
    assert outcome.told == "Notified: nobody. Not sent: no email address; no phone number."
    with db.write() as session:
        done = booking.book(
            session,
            berlin.manager,
            booking.InOffice(
                clinic_id=berlin.clinic_id,
                provider_id=berlin.provider_id,
                start_at=at(16),
                patient_id=berlin.patient_id,
                service_ids=[berlin.service_id],
            ),
        )
    assert f"Confirmation queued (email to {EMAIL}; sms to {PHONE})." in done.notes


def test_a_patient_who_opted_out_of_texts_hears_by_email_only(db, berlin):
    with db.write() as session:
        session.get(Patient, berlin.patient_id).consent_sms = False
    since = mark(db)
    ident = booked(db, berlin)
    with db.write() as session:
        outcome = moves.cancel_appointment(session, berlin.manager, ident, reason="Provider ill")
    assert told(db, since) == [
        ("appointment_scheduled", "email", EMAIL),
        ("appointment_cancelled", "email", EMAIL),
    ]
    assert outcome.skipped == ["no consent to text messages"]


# ---------------------------------------------------------------- portal invitations


def test_an_invitation_revoked_before_its_email_went_stops_the_email(db, berlin):
    """Before, an invitation email still waiting (the mail server was down) went out after the
    invitation was revoked or replaced, its link dead: the patient met "This link is not valid
    any more". Now it is stopped, saying why; the new invitation's email goes."""
    since = mark(db)
    with db.write() as session:
        invitations.send_invitation(session, berlin.staff, berlin.patient_id, base_url="https://x")
    assert told(db, since) == [("portal_invitation", "email", EMAIL)]  # email only
    with db.write() as session:  # resent later, the first email still waiting
        invitations_sent_a_while_ago(session, berlin.patient_id)
        second = invitations.send_invitation(
            session, berlin.staff, berlin.patient_id, base_url="https://x"
        )
    with db.read() as session:
        old, new = session.scalars(
            select(Notification).where(Notification.id > since).order_by(Notification.id)
        ).all()
    assert (old.status, old.permanent_failure) == (DeliveryStatus.FAILED, True)
    assert old.last_error == "Not sent: the invitation was revoked (Replaced by a new invitation)."
    assert new.status == DeliveryStatus.QUEUED
    with db.write() as session:
        invitations.revoke_invitation(session, berlin.staff, second.invitation_id)
    with db.read() as session:
        new = session.get(Notification, new.id)
    assert new.permanent_failure and "revoked (Revoked by the practice)" in new.last_error
    with db.write() as session, pytest.raises(ValidationError, match="stopped this message"):
        notify.retry(session, berlin.manager, new.id)


def test_clinic_digest_instead_of_emails(db, berlin):
    with db.write() as session:
        save_preferences(
            session, berlin.manager, berlin.clinic_id, PreferencesForm(clinic_digest=True)
        )
    policy(db, berlin)
    ident = _today(db, berlin)
    since = mark(db)
    with db.write() as session:
        visits.mark_no_show(session, berlin.staff, ident, now=utcnow() + timedelta(hours=1))
    assert told(db, since) == to_patient(visits.NO_SHOW_NOTICE)  # the inbox waits for the digest
