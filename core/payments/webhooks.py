"""The payment provider's webhook: verify the signature (the provider's own scheme), keep the
event id so each event is applied once (a replay changes nothing), then apply it.

The process stopping between the provider's answer and our commit is made good here or by the
payments job. A charge to the card on file the job canceled but did not record stays pending
(under way, to the desk) until payment_intent.canceled fails it, or, that event lost, the job's
next run asks the provider and fails it (core.payments.desk.finish_charges), no cancel sent
twice. Refund events are not applied: a refund made but not recorded was recorded as sent
before the provider was asked, so it stays due, not handed back at the desk, until the job's
next run finds it among the payment's refunds by our refund's id in its metadata and records
it, sending nothing (core.payments.prepay.process_refunds; sent again, its idempotency key
would be answered with the refund made, within the day the provider keeps it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.payments import desk, prepay
from core.payments.providers import PaymentProvider, intent_said
from db.models import PaymentEvent

CHARGE_ENDED_UNPAID = ("payment_intent.payment_failed", "payment_intent.canceled")


def handle(session: Session, provider: PaymentProvider, payload: bytes, signature: str | None):
    """Verify and apply one webhook delivery; returns 'applied', 'duplicate' or 'ignored'.
    A bad signature raises ValidationError (the route answers 400)."""
    event = provider.verify_event(payload, signature)
    return apply_event(session, provider.name, event)


def apply_event(session: Session, provider_name: str, event: dict[str, Any]) -> str:
    event_id, kind = str(event.get("id", "")), str(event.get("type", ""))
    if not event_id:
        return "ignored"
    if session.scalar(select(PaymentEvent.id).where(PaymentEvent.event_id == event_id)):
        return "duplicate"
    row = PaymentEvent(provider=provider_name, event_id=event_id, event_type=kind[:64])
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # the same event delivered twice at once: the other one applies it
        return "duplicate"
    obj = (event.get("data") or {}).get("object") or {}
    payment = None
    if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        if obj.get("payment_status") == "paid":
            payment = prepay.checkout_completed(
                session,
                str(obj.get("id")),
                int(obj.get("amount_total") or 0),
                obj.get("customer"),
                obj.get("currency"),
            )
    elif kind in ("checkout.session.expired", "checkout.session.async_payment_failed"):
        payment = prepay.checkout_expired(session, str(obj.get("id")))
    elif kind in ("payment_intent.succeeded", *CHARGE_ENDED_UNPAID):
        # a charge to the card on file the provider had not finished when it answered; one
        # canceled (at the provider's dashboard, or by Stripe) failed as a decline does
        said = intent_said(obj) or "the charge failed."
        payment = desk.charge_answered(
            session, str(obj.get("id")), kind == "payment_intent.succeeded", said
        )
    else:
        return "ignored"
    row.payment_id = payment.id if payment else None
    return "applied"
