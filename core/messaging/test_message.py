"""The set-up checklist's "send a test message": one email or SMS to an address the practice
gives, sent at once through the configured transport, so the owner sees whether SMTP or SMS
works. An SMS number is checked as a patient's is (core.kernel.phones.dialable, in the
countries of the practice's clinics), so a typo is refused here, not "sent". The message
stays in the outbox like any other, with its error when it failed. It is stored already
claimed (a token of its own and a lease, as the sender claims), so a jobs round running
meanwhile does not send it a second time."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.config import Settings
from core.kernel.errors import ValidationError
from core.kernel.phones import dialable, practice_regions
from core.messaging.delivery import LEASE, text_address, transports
from core.practice.checklist import TEST_MESSAGE_TEMPLATE
from db.models import Channel, DeliveryStatus, Notification
from db.types import utcnow

SUBJECT = "ClinicDesk test message"
BODY = "This is a test message from ClinicDesk: message sending works."


@dataclass(frozen=True)
class TestResult:
    sent: bool
    error: str | None

    @property
    def summary(self) -> str:
        if self.sent:
            return "The test message was sent. Check that it arrived."
        return f"The test message could not be sent: {self.error}"


def send_test_message(
    write: Callable, actor: Actor, settings: Settings, channel: Channel | str, address: str
) -> TestResult:
    """Queue one test message (audited) and deliver it now; record the outcome on it."""
    ensure(actor, Permission.PRACTICE_MANAGE)
    channel = Channel(channel)
    address = (address or "").strip()
    if channel == Channel.EMAIL:
        try:
            address = validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError as error:
            raise ValidationError(f"Give an email address to send the test to: {error}") from None
    elif not address:
        raise ValidationError("Give a phone number to send the test SMS to.")
    token, send_to = uuid.uuid4().hex, None
    with write() as session:
        if channel == Channel.SMS:
            regions = practice_regions(session)
            address = dialable(address, regions)
            send_to = text_address(address, regions)  # dialable there: readable there
        row = Notification(
            channel=channel,
            template=TEST_MESSAGE_TEMPLATE,
            to_address=address,
            subject=SUBJECT,
            body=BODY,
            attachments=[],  # none: loaded for the transport after the row is expunged
            claim_token=token,
            next_attempt_at=utcnow() + LEASE,
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor,
            "test_message",
            "notification",
            row.id,
            details={"channel": channel.value, "to": address},
        )
        session.expunge(row)
    if send_to:  # the provider's form (E.164); the outbox keeps it as typed, as a patient's
        set_committed_value(row, "to_address", send_to)
    error = None
    transport = transports(settings).get(channel)
    if transport is None:
        error = "SMTP is not configured: set SMTP_HOST (and the other SMTP settings) first."
    else:
        try:
            transport.send(row)
        except Exception as exc:  # any transport failure is shown to the person and kept
            error = f"{type(exc).__name__}: {exc}"[:1000]
    values = (
        {"status": DeliveryStatus.SENT, "sent_at": utcnow(), "attempts": 1}
        if error is None
        else {
            "status": DeliveryStatus.FAILED,
            "last_error": error,
            "attempts": 1,
            "next_attempt_at": utcnow(),
        }
    )
    with write() as session:
        session.execute(
            update(Notification)
            .where(Notification.id == row.id, Notification.claim_token == token)
            .values(**values, claim_token=None)
        )
    return TestResult(error is None, error)
