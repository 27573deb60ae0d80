"""The outbox: consent, templates, and real delivery to an SMTP server on loopback."""

from datetime import timedelta

import pytest

from core.kernel.config import SmtpSettings
from core.kernel.errors import PermissionDenied, ValidationError
from core.messaging import delivery, notify
from db.models import Channel, DeliveryStatus, Notification, Patient
from db.types import utcnow
from tests.support.smtp import text_of


def _queue(db, patient_id, **kwargs):
    with db.write() as session:
        patient = session.get(Patient, patient_id)
        return notify.queue_for_patient(
            session,
            patient,
            "appointment_cancelled",
            {"when": "Tue 01 Dec 2026, 09:30", "reason": "Ill"},
            **kwargs,
        )


def test_messages_go_only_to_consented_channels_and_say_why_not(db, world):
    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        patient.consent_sms, patient.reminders_enabled = False, False
    queued = _queue(db, world.patient_id)
    assert [n.channel for n in queued.notifications] == [Channel.EMAIL]
    assert queued.skipped == ["no consent to text messages"]
    assert "Alex Morgan" in queued.notifications[0].body and "Ill" in queued.notifications[0].body


def test_edited_template_is_used_and_unknown_placeholders_refused(db, world):
    with db.write() as session:
        notify.save_template(
            session,
            world.manager,
            "appointment_cancelled",
            "Cancelled: {when}",
            "Hello {patient_name}, {reason}.",
        )
        with pytest.raises(ValidationError, match="Unknown placeholder"):
            notify.save_template(session, world.manager, "appointment_cancelled", "x", "{secret}")
        with pytest.raises(PermissionDenied):
            notify.save_template(session, world.staff, "appointment_cancelled", "x", "y")
    queued = _queue(db, world.patient_id, channels=[Channel.EMAIL])
    assert queued.notifications[0].subject == "Cancelled: Tue 01 Dec 2026, 09:30"


def test_sender_delivers_a_real_email_with_attachment(db, world, loopback_smtp):
    loopback_smtp.clear()
    _queue(db, world.patient_id, channels=[Channel.EMAIL], attachment=("qr.png", b"\x89PNG fake"))
    smtp = SmtpSettings(host=loopback_smtp.host, port=loopback_smtp.port)
    channels = {
        Channel.EMAIL: delivery.SmtpTransport(smtp),
        Channel.SMS: delivery.LoggingSmsTransport(),
    }
    report = delivery.send_due(db.write, channels)
    assert report.sent == 1
    message = loopback_smtp.wait_for(lambda m: m["To"] == "alex@example.org")
    assert "cancelled" in message["Subject"] and "Reason: Ill" in text_of(message)
    assert [p.get_filename() for p in message.iter_attachments()] == ["qr.png"]
    with db.read() as session:
        row = session.query(Notification).one()
        assert (row.status, row.attempts) == (DeliveryStatus.SENT, 1)


def test_failed_delivery_is_visible_retried_with_backoff_then_given_up(db, world):
    _queue(db, world.patient_id, channels=[Channel.EMAIL])
    dead = SmtpSettings(host="127.0.0.1", port=9)  # nothing listens on the discard port
    channels = {Channel.EMAIL: delivery.SmtpTransport(dead, timeout=2)}
    now = utcnow()
    report = delivery.send_due(db.write, channels, now=now)
    assert (report.sent, report.retrying) == (0, 1)
    with db.read() as session:
        row = session.query(Notification).one()
        assert row.status == DeliveryStatus.FAILED and "Connection" in row.last_error
        assert row.next_attempt_at - now == delivery.BACKOFF[0]
    assert delivery.send_due(db.write, channels, now=now).retrying == 0  # not due yet
    later = now
    for _ in range(delivery.MAX_ATTEMPTS - 1):
        later += timedelta(days=1)
        delivery.send_due(db.write, channels, now=later)
    with db.read() as session:
        assert session.query(Notification).one().attempts == delivery.MAX_ATTEMPTS
    assert delivery.send_due(db.write, channels, now=later + timedelta(days=1)).retrying == 0
    with db.write() as session:
        notify.retry(session, world.manager, session.query(Notification).one().id)
    with db.read() as session:
        assert session.query(Notification).one().status == DeliveryStatus.QUEUED


def test_outbox_listing_and_counts(db, world):
    _queue(db, world.patient_id)
    with db.read() as session:
        rows = notify.list_outbox(session, world.staff)
        assert {r.channel for r in rows} == {"email", "sms"}
        assert notify.outbox_counts(session, world.staff)["queued"] == 2
