"""The sender's quiet hours at the right depth: a survey request or waitlist offer message
names its request or offer (migration 0010 gives the messages waiting their ids), and the
outbox decides for a claimed batch at once.

Re-run on PostgreSQL by tests/integration/test_quiet_pg.py."""

from __future__ import annotations

import re
from datetime import time, timedelta

import pytest
from alembic import command
from sqlalchemy import event, inspect, select

from core.feedback import surveys
from core.messaging import delivery
from core.waitlist.rules import Mode
from db import migrate
from db.models import Channel, DeliveryStatus, FeedbackRequest, Notification, WaitlistOffer
from tests.unit import test_surveys as _surveys
from tests.unit import test_waitlist as _waitlist


def _survey_requested(db, world) -> int:
    """Staff ask for feedback on a completed visit: one message a channel; the request's id."""
    with db.write() as session:
        visit = _surveys.completed_visit(session, world)
    _surveys.send(db, world.staff, visit)
    with db.read() as session:
        return session.scalar(
            select(FeedbackRequest.id).where(FeedbackRequest.appointment_id == visit)
        )


def _offer_sent(db, world) -> int:
    """A cancelled 10:00 offered to Ann: her offer's id."""
    _waitlist.rules(db, world)
    day = _waitlist.future_day()
    appointment_id = _waitlist.booked(db, world, day)
    _waitlist.waiting(db, world, day, name="Ann")
    _waitlist.cancel(db, world, appointment_id)
    _waitlist.process(db)
    with db.read() as session:
        return session.scalar(select(WaitlistOffer.id))


def _about(db, template: str) -> list[tuple[str, int | None, int | None]]:
    with db.read() as session:
        rows = session.execute(
            select(
                Notification.status,
                Notification.feedback_request_id,
                Notification.waitlist_offer_id,
            )
            .where(Notification.template == template)
            .order_by(Notification.id)
        )
        return [(status.value, request, offer) for status, request, offer in rows]


def test_survey_request_and_offer_messages_name_their_request_and_offer(db, world):
    request_id = _survey_requested(db, world)
    offer_id = _offer_sent(db, world)
    assert _about(db, "feedback_request") == [("queued", request_id, None)] * 2  # email, text
    assert _about(db, "waitlist_offer") == [("queued", None, offer_id)] * 2  # email, text


def test_the_migration_gives_the_messages_waiting_their_request_or_offer(db, world):
    """Messages queued before 0010 carried no ids: the migration reads them from their links,
    for the messages not sent yet (a sent one's link is redacted)."""
    request_id = _survey_requested(db, world)
    offer_id = _offer_sent(db, world)
    with db.write() as session:  # the text message went; the email waits
        text = session.scalar(
            select(Notification).where(
                Notification.template == "feedback_request", Notification.channel == "sms"
            )
        )
        text.status, text.body = DeliveryStatus.SENT, delivery.redact(text.body)
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    for verb, revision in (("downgrade", "0009"), ("upgrade", "head")):
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            getattr(command, verb)(config, revision)
        if verb == "downgrade":
            names = {c["name"] for c in inspect(db.engine).get_columns("notifications")}
            assert not names & {"feedback_request_id", "waitlist_offer_id"}
    assert _about(db, "feedback_request") == [("queued", request_id, None), ("sent", None, None)]
    assert _about(db, "waitlist_offer") == [("queued", None, offer_id)] * 2  # email, text


class _Keep:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, notification: Notification) -> None:
        self.sent.append(notification.template)


# what the quiet hours read: anything but the outbox itself
_FACTS = re.compile(
    r"^\s*SELECT\b.*\bFROM (appointments|clinics|settings|feedback_requests|waitlist_offers|"
    r"link_tokens|slot_openings)\b",
    re.IGNORECASE | re.DOTALL,
)


@pytest.mark.parametrize("n", [1, 5])
def test_the_sender_judges_a_batch_in_quiet_hours_in_a_few_queries(db, world, n):
    """At 22:00 the sender holds n survey requests the job sent at 20:30 and n waitlist
    offers made at 20:00 (each by email and text): what it reads to decide is the same few
    queries whether n is 1 or 5. Before, each message read its link token, request or offer,
    appointment or opening, clinic and settings on its own (20 reads for n=1, 100 for n=5)."""
    day = _waitlist.future_day()
    evening = _waitlist.at(day - timedelta(days=1), 20)
    _waitlist.rules(
        db,
        world,
        mode=Mode.FIRST_TO_ACCEPT,
        batch=n,
        hold_minutes=24 * 60,
        quiet_start=time(21),
        quiet_end=time(8),
    )
    appointment_id = _waitlist.booked(db, world, day)
    for i in range(n):
        _waitlist.waiting(db, world, day, name=f"Ann{i}")
    _waitlist.cancel(db, world, appointment_id)
    _waitlist.process(db, now=evening)
    with db.write() as session:
        for _ in range(n):
            _surveys.completed_visit(session, world, ended=evening - timedelta(hours=2))
    with db.write() as session:
        job = evening + timedelta(minutes=30)
        assert surveys.send_due_feedback_requests(session, base_url=_surveys.BASE, now=job) == n
    reads: list[str] = []

    def read(conn, cursor, statement, *args) -> None:
        if _FACTS.match(statement):
            reads.append(statement)

    event.listen(db.engine, "before_cursor_execute", read)
    try:
        keep = {Channel.EMAIL: _Keep(), Channel.SMS: _Keep()}
        report = delivery.send_due(db.write, keep, now=evening + timedelta(hours=2))
    finally:
        event.remove(db.engine, "before_cursor_execute", read)
    assert report.held == 4 * n  # email and text each: n surveys, n offers
    assert "feedback_request" not in keep[Channel.EMAIL].sent
    assert "waitlist_offer" not in keep[Channel.EMAIL].sent
    # requests, appointments, offers, settings, clinics; and the countries the texts that go
    # read their numbers in (core.messaging.delivery.text_regions): their visits' clinics, the
    # practice's clinics
    assert len(reads) == 7, reads
