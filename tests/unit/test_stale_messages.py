"""Messages that would arrive stale are stopped before they go (core.messaging.delivery), as
stale reminders are: forms to complete for a visit no longer scheduled, or whose forms were
all done meanwhile, and a survey request the patient answered already (in the portal, say)
while it waited (the mail server down, or quiet hours)."""

from __future__ import annotations

from sqlalchemy import select, update

from core.feedback import surveys
from core.forms import after_booking as forms
from core.messaging import delivery
from core.scheduling import moves
from db.models import Channel, DeliveryStatus, FormRequest, Notification
from tests.unit import test_forms as _forms
from tests.unit import test_surveys as _surveys


class _Keep:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, notification: Notification) -> None:
        self.sent.append(notification.template)


def _deliver(db, now=None) -> list[str]:
    keep = _Keep()
    delivery.send_due(db.write, {Channel.EMAIL: keep, Channel.SMS: keep}, now=now)
    return keep.sent


def _stopped(db, template: str) -> set[str | None]:
    with db.read() as session:
        rows = session.scalars(select(Notification).where(Notification.template == template))
        return {n.last_error for n in rows if n.status == DeliveryStatus.FAILED}


def _forms_waiting(db, world) -> int:
    _forms.add_documents(db, world)
    appointment_id = _forms.book(db, world)
    with db.write() as session:  # the booking's confirmation goes; the forms wait (server down)
        session.execute(update(Notification).values(status=DeliveryStatus.SENT))
    _forms.send(db)
    return appointment_id


def test_forms_for_a_visit_cancelled_while_they_waited_are_not_sent(db, world):
    appointment_id = _forms_waiting(db, world)
    with db.write() as session:
        moves.cancel_appointment(session, world.staff, appointment_id, reason="Patient phoned")
    assert delivery.FORMS not in _deliver(db)
    assert _stopped(db, delivery.FORMS) == {
        "Not sent: the appointment is no longer scheduled (cancelled, declined, missed or done)."
    }


def test_forms_all_done_before_their_message_went_are_not_sent(db, world):
    appointment_id = _forms_waiting(db, world)
    with db.write() as session:  # answered in the portal while the email waited
        session.execute(
            update(FormRequest)
            .where(FormRequest.appointment_id == appointment_id)
            .values(completed_at=forms.utcnow())
        )
    assert delivery.FORMS not in _deliver(db)
    assert _stopped(db, delivery.FORMS) == {
        "Not sent: the forms were all completed before it went out."
    }


def test_forms_still_to_do_go(db, world):
    appointment_id = _forms_waiting(db, world)
    with db.write() as session:  # one of three done: the message still has work to ask for
        first = session.scalars(
            select(FormRequest).where(FormRequest.appointment_id == appointment_id)
        ).first()
        first.completed_at = forms.utcnow()
    assert _deliver(db).count(delivery.FORMS) == 2  # email and text


def test_a_survey_request_answered_while_it_waited_is_not_sent(db, world):
    with db.write() as session:
        visit = _surveys.completed_visit(session, world)
    link = _surveys.send(db, world.staff, visit).link
    with db.write() as session:
        surveys.submit_survey(session, _surveys.token_of(link), _surveys.ANSWERS, now=_surveys.NOW)
    assert delivery.quiet.SURVEY not in _deliver(db, now=_surveys.NOW)
    assert _stopped(db, delivery.quiet.SURVEY) == {
        "Not sent: the patient answered the survey before it went out."
    }
