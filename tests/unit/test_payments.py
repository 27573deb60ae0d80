"""Payments and points: integer cents, prepayment by points and/or card, desk
payments, refunds by the policy, fees paid, the audited export, and the Stripe webhook signed
with Stripe's own scheme (signature, replay, idempotency)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from datetime import time as clock
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import stripe
from alembic import command
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update
from sqlalchemy import text as sa_text

from core.kernel.clock import local_to_utc, local_today, to_local
from core.kernel.config import Settings, StripeSettings
from core.kernel.errors import Conflict, NotFound, PermissionDenied, ValidationError
from core.kernel.money import format_day, format_moment
from core.patients import merge
from core.payments import cashup, desk, points, prepay, rules, webhooks
from core.payments.providers import (
    Checkout,
    DeskProvider,
    ProviderError,
    ProviderLookupRefused,
    ProviderUnanswered,
    StripeProvider,
)
from core.policy import balance
from core.portal import home
from core.requests import changes
from core.scheduling import moves
from db import migrate
from db.models import (
    Appointment,
    AppointmentService,
    AppointmentStatus,
    AuditEvent,
    CancellationPolicy,
    ChangeRequest,
    Channel,
    Clinic,
    ClinicEvent,
    LedgerEntry,
    LedgerKind,
    Notification,
    Package,
    Patient,
    Payment,
    PaymentEvent,
    Service,
    Setting,
)
from db.types import utcnow
from tests.factories import make_patient
from tests.support.locks import Meeting, wait_until_a_writer_waits

SECRET = "whsec_test_secret_for_clinicdesk"
STRIPE = StripeSettings("sk_test_clinicdesk", SECRET)


class FakeCheckout(DeskProvider):
    """A provider that hands out checkout references like Stripe's, without the network (the
    webhook below is verified by the real StripeProvider)."""

    name, online = "stripe", True

    def __init__(self):
        self.made = []
        self.refunds = []

    def checkout(self, **kwargs):
        self.made.append(kwargs)
        return Checkout(f"cs_test_{kwargs['payment_id']}", "https://checkout.stripe.test/pay")

    def refund(self, reference, amount_cents, *, currency, key, payment_id, look_first=False):
        self.refunds.append((reference, amount_cents))
        return f"re_{len(self.refunds)}"

    def close_checkout(self, reference):
        self.closed = [*getattr(self, "closed", []), reference]
        return True


def signed(payload: bytes, secret: str = SECRET, at: int | None = None) -> str:
    """A Stripe-Signature header made by Stripe's documented scheme: HMAC-SHA256 of
    "timestamp.payload" with the endpoint secret."""
    at = at or int(time.time())
    mac = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def event(
    event_id: str,
    reference: str,
    amount: int,
    kind="checkout.session.completed",
    currency: str | None = None,
):
    extra = {"currency": currency} if currency else {}
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": kind,
            "data": {
                "object": {
                    "id": reference,
                    "object": "checkout.session",
                    "amount_total": amount,
                    "payment_status": "paid",
                    "customer": "cus_test_1",
                }
                | extra
            },
        }
    ).encode()


def _appointment(db, world, hours_ahead=72, price=6000, clinic_id=None):
    start = utcnow() + timedelta(hours=hours_ahead)
    with db.write() as s:
        a = Appointment(
            clinic_id=clinic_id or world.clinic_id,
            provider_id=world.provider_id,
            patient_id=world.patient_id,
            service_id=world.service_id,
            status=AppointmentStatus.SCHEDULED,
            start_at=start,
            end_at=start + timedelta(minutes=30),
        )
        s.add(a)
        s.flush()
        return a.id


def pay(s, patient_id, appointment_id, points, card, provider, return_url="x"):
    return prepay.prepay(
        s,
        patient_id,
        appointment_id,
        points=points,
        card=card,
        provider=provider,
        return_url=return_url,
    )


def _balance(db, world):
    with db.read() as s:
        return s.get(Patient, world.patient_id).points_balance


# ---------------------------------------------------------------- rules and arithmetic


def test_default_rules_and_money_formatting(db, world):
    with db.read() as s:
        r = rules.get_settings(s)
        fmt = rules.money_format(s.get(Clinic, world.clinic_id))
    assert (r.point_value_cents, r.survey_points, r.survey_points_enabled) == (10, 10, True)
    assert fmt.money(6000) == "£60.00" and fmt.money(5) == "£0.05"


@given(price=st.integers(0, 10_000_000), deposit=st.integers(1, 10_000_000))
def test_due_is_integer_cents_and_never_more_than_the_price(price, deposit):
    service = rules.ServiceRule("deposit", deposit)
    settings = rules.PaymentSettings(services={1: service})
    probe = Appointment(service_id=1)
    probe.services = []
    probe.service = Service(price_cents=price)
    due = rules.due_for(probe, settings, paid_cents=0)
    assert isinstance(due.asked_cents, int) and 0 <= due.asked_cents <= price
    assert due.asked_cents == min(deposit, price)


def test_only_owners_set_the_rules_and_bad_values_are_named(db, world):
    with db.write() as s, pytest.raises(PermissionDenied):
        rules.save_settings(s, world.manager, rules.PaymentSettings())
    with db.write() as s, pytest.raises(ValidationError, match="deposit"):
        rules.save_settings(
            s,
            world.owner,
            rules.PaymentSettings(services={world.service_id: rules.ServiceRule("deposit", 0)}),
        )
    with db.write() as s:
        saved = rules.save_settings(
            s,
            world.owner,
            rules.PaymentSettings(
                point_value_cents=5,
                services={world.service_id: rules.ServiceRule("deposit", 2000)},
            ),
        )
    assert saved.rule_for(world.service_id) == rules.ServiceRule("deposit", 2000)
    with db.read() as s:
        assert "payment_settings_saved" in s.scalars(select(AuditEvent.action)).all()


def _yen_and_pounds(db, world, *, yen_open: bool) -> int:
    """The world's first clinic charging in yen (open, or closed for good) and a London one in
    pounds opened after it; the Consultation at ¥6,000 / £60.00. Returns the London clinic."""
    with db.write() as s:
        first = s.get(Clinic, world.clinic_id)
        first.currency, first.locale, first.active = "JPY", "ja-JP", yen_open
        london = Clinic(name="Mayfair", timezone="Europe/London", locale="en-GB", currency="GBP")
        s.add(london)
        s.flush()
        return london.id


def _deposit(world, typed):
    rule = {world.service_id: rules.ServiceRule("deposit", 0)}
    return rules.PaymentSettings(services=rule), {world.service_id: typed}


def test_a_deposit_is_read_in_the_currency_the_open_clinics_type_prices_in(db, world):
    """A yen clinic closed for good, a pound one open: 49.99 is £49.99 (its pence), as a price
    is typed in the open clinics' currency. Before, the Payments page read every deposit in the
    first clinic's currency, open or not, and refused it: 'JPY amounts have no decimals'."""
    london = _yen_and_pounds(db, world, yen_open=False)
    with db.write() as s:
        assert rules.typing_currency(s) == "GBP"
        saved = rules.save_settings(s, world.owner, *_deposit(world, 49.99))
    assert saved.rule_for(world.service_id) == rules.ServiceRule("deposit", 4999)
    appointment_id = _appointment(db, world, clinic_id=london)
    with db.read() as s:
        assert desk.summary(s, world.staff, appointment_id).due == "£49.99"


def test_a_deposit_with_more_decimals_than_the_typing_currency_is_refused_in_core(db, world):
    """The yen clinic open first: a deposit is typed in yen, which has no decimals; 49.99 is
    refused by core, naming the service and the currency, and nothing is saved. 5000 is
    charged ¥5,000 at the yen clinic and £50.00 at the London one."""
    london = _yen_and_pounds(db, world, yen_open=True)
    with db.write() as s, pytest.raises(ValidationError) as refused:
        rules.save_settings(s, world.owner, *_deposit(world, 49.99))
    assert str(refused.value) == (
        "Consultation's deposit: JPY amounts have no decimals; 49.99 has 2. "
        "Type the amount without the extra decimals."
    )
    with db.read() as s:
        assert rules.get_settings(s).rule_for(world.service_id).mode != "deposit"
    with db.write() as s:
        rules.save_settings(s, world.owner, *_deposit(world, 5000))
    shown = []
    for clinic_id in (world.clinic_id, london):
        appointment_id = _appointment(db, world, clinic_id=clinic_id)
        with db.read() as s:
            shown.append(desk.summary(s, world.staff, appointment_id).due)
    assert shown == ["￥5,000", "£50.00"]


# ---------------------------------------------------------------- prepayment


def test_paying_in_full_with_points_spends_them_and_emails_a_receipt(db, world):
    appointment_id = _appointment(db, world)
    with db.write() as s:
        s.get(Patient, world.patient_id).points_balance = 1000
    with db.write() as s:
        result = prepay.prepay(
            s,
            world.patient_id,
            appointment_id,
            points=600,
            card=False,
            provider=DeskProvider(),
            return_url="https://desk.example/portal",
        )
    assert "in full" in result.message and result.checkout_url is None
    assert _balance(db, world) == 400
    with db.read() as s:
        payment = s.scalars(select(Payment)).one()
        assert (payment.amount_cents, payment.points, payment.status) == (6000, 600, "paid")
        entry = s.get(LedgerEntry, payment.ledger_entry_id)
        assert entry.kind == LedgerKind.POINTS_SPENT and points.delta(entry) == -600
        receipt = s.scalars(select(Notification).where(Notification.template == "payment_receipt"))
        assert "£60.00" in receipt.one().body
        assert prepay.badges(s, [appointment_id]) == {appointment_id: "Paid"}
        assert not prepay.due(s, s.get(Appointment, appointment_id)).payable


def test_points_worth_more_than_owed_or_held_are_refused(db, world):
    appointment_id = _appointment(db, world)
    with db.write() as s, pytest.raises(ValidationError, match="at most 600"):
        pay(s, world.patient_id, appointment_id, 601, False, DeskProvider(), return_url="x")
    with db.write() as s, pytest.raises(ValidationError, match="You have 100 points"):
        pay(s, world.patient_id, appointment_id, 300, False, DeskProvider(), return_url="x")


def test_points_and_card_without_a_provider_leaves_the_rest_for_the_desk(db, world):
    appointment_id = _appointment(db, world)
    with db.write() as s:
        result = pay(
            s, world.patient_id, appointment_id, 100, False, DeskProvider(), return_url="x"
        )
    assert "remaining £50.00 at the desk" in result.message
    with db.write() as s, pytest.raises(ValidationError, match="at the desk"):
        pay(s, world.patient_id, appointment_id, 0, True, DeskProvider(), return_url="x")
    with db.write() as s:
        desk.record_desk_payment(s, world.staff, appointment_id, amount_cents=5000, method="cash")
    with db.read() as s:
        assert prepay.paid_cents(s, appointment_id) == 6000
        rows = prepay.list_payments(s, world.staff, appointment_id)
    assert [(r.method, r.amount) for r in rows] == [("Points", "£10.00"), ("Cash", "£50.00")]


def test_without_points_or_a_card_provider_the_portal_offers_no_pay_that_leads_nowhere(db, world):
    appointment_id = _appointment(db, world)
    with db.write() as s:
        patient = s.get(Patient, world.patient_id)
        patient.portal_enrolled_at, patient.points_balance = utcnow(), 0
        desk.record_desk_payment(s, world.staff, appointment_id, amount_cents=2000, method="card")
    with db.read() as s:
        item = home.home(s, world.patient_id).upcoming[0]
    assert (item.payment, item.outstanding, item.payable) == ("Part paid", "£40.00", True)
    assert not item.pay_online(card_online=False)  # pay at the desk: no Pay button
    assert item.pay_online(card_online=True)  # Stripe: the rest by card
    with db.write() as s, pytest.raises(ValidationError, match="paid at the desk"):
        pay(s, world.patient_id, appointment_id, 0, False, DeskProvider())
    with db.write() as s:
        s.get(Patient, world.patient_id).points_balance = 5
    with db.read() as s:
        item = home.home(s, world.patient_id).upcoming[0]
    assert item.points_usable == 5 and item.pay_online(card_online=False)


def test_another_patients_appointment_cannot_be_paid(db, world):
    from tests.factories import make_patient

    appointment_id = _appointment(db, world)
    with db.write() as s:
        other = make_patient(s, first_name="Sam", email="sam@example.org").id
    with db.write() as s, pytest.raises(NotFound):
        pay(s, other, appointment_id, 10, False, DeskProvider(), return_url="x")


def test_card_payment_goes_through_checkout_and_the_signed_webhook_applies_it_once(db, world):
    appointment_id = _appointment(db, world)
    fake = FakeCheckout()
    with db.write() as s:
        result = pay(
            s,
            world.patient_id,
            appointment_id,
            100,
            True,
            fake,
            return_url="https://desk.example/portal",
        )
    assert result.checkout_url and fake.made[0]["amount_cents"] == 5000  # from the server
    with db.read() as s:
        pending = s.scalars(select(Payment).where(Payment.method == "stripe")).one()
    assert pending.status == "pending"
    stripe_provider = StripeProvider(STRIPE)
    body = event("evt_1", pending.provider_ref, 5000)
    with db.write() as s:
        assert webhooks.handle(s, stripe_provider, body, signed(body)) == "applied"
    with db.write() as s:  # a replay of the same event changes nothing
        assert webhooks.handle(s, stripe_provider, body, signed(body)) == "duplicate"
    with db.read() as s:
        paid = s.get(Payment, pending.id)
        assert (paid.status, paid.provider_customer) == ("paid", "cus_test_1")
        assert prepay.paid_cents(s, appointment_id) == 6000
        assert s.scalars(select(PaymentEvent)).one().payment_id == paid.id
        receipts = s.scalars(select(Notification).where(Notification.template == "payment_receipt"))
        assert len(receipts.all()) == 2  # the points, then the card


def test_a_second_card_payment_closes_the_first_so_one_visit_is_not_paid_twice(db, world):
    """Two tabs (or a checkout left unpaid, then Pay now again): each opened a card payment for
    the whole amount, both could be paid, and the second was refunded only after the card was
    charged twice. The earlier checkout is now closed at the provider before the new one."""
    appointment_id = _appointment(db, world)
    fake = FakeCheckout()
    for _ in range(2):
        with db.write() as s:
            pay(s, world.patient_id, appointment_id, 0, True, fake)
    with db.read() as s:
        first, second = s.scalars(select(Payment).order_by(Payment.id)).all()
        audit = s.scalars(select(AuditEvent).where(AuditEvent.action == "prepayment_started")).all()
    assert fake.closed == [first.provider_ref]
    assert (first.status, first.note) == (
        "failed",
        "Closed unpaid: a newer card payment replaced it.",
    )
    assert second.status == "pending" and second.amount_cents == 6000
    assert audit[-1].details["replaced_payments"] == [first.id]


class CheckoutsAtStripe(stripe.HTTPClient):
    """Stripe's HTTP layer for checkout sessions as Stripe answers: each made is open; expiring
    one that is not open is Stripe's 400; those in `paid` are complete."""

    name = "checkouts"

    def __init__(self):
        super().__init__()
        self.paid: set[str] = set()
        self.expired: list[str] = []
        self.made = 0

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        path = urlsplit(url).path
        if path == "/v1/checkout/sessions":
            self.made += 1
            made = {"id": f"cs_test_{self.made}", "object": "checkout.session"}
            return json.dumps(made | {"url": "https://checkout.stripe.test/c"}), 200, {}
        reference = path.split("/")[4]
        if path.endswith("/expire"):
            if reference in self.paid:
                message = "Only Checkout Sessions with a status of open can be expired."
                error = {"type": "invalid_request_error", "message": message}
                return json.dumps({"error": error}), 400, {}
            self.expired.append(reference)
        status = "complete" if reference in self.paid else "expired"
        made = {"id": reference, "object": "checkout.session", "status": status}
        return json.dumps(made), 200, {}

    def close(self):
        pass


def test_a_checkout_paid_in_another_tab_refuses_a_new_one_and_spends_no_points(db, world):
    appointment_id = _appointment(db, world)
    http = CheckoutsAtStripe()
    provider = StripeProvider(STRIPE, http_client=http)
    with db.write() as s:
        pay(s, world.patient_id, appointment_id, 0, True, provider)
    with db.write() as s:  # the first tab's checkout left open: closed, a new one made
        pay(s, world.patient_id, appointment_id, 0, True, provider)
    assert http.expired == ["cs_test_1"]
    http.paid.add("cs_test_2")  # paid at Stripe, its webhook not here yet
    balance = _balance(db, world)
    with db.write() as s, pytest.raises(ValidationError, match="just made: the card provider"):
        pay(s, world.patient_id, appointment_id, 10, True, provider)
    with db.read() as s:
        payments = s.scalars(select(Payment).order_by(Payment.id)).all()
    assert balance >= 10 and _balance(db, world) == balance
    assert [(p.provider_ref, p.status) for p in payments] == [
        ("cs_test_1", "failed"),
        ("cs_test_2", "pending"),
    ]
    assert http.made == 2


def test_webhook_signatures_are_checked_with_stripes_scheme(db, world):
    provider = StripeProvider(STRIPE)
    body = event("evt_2", "cs_test_x", 100)
    with db.write() as s:
        for header in (
            signed(body, secret="whsec_wrong"),
            signed(body, at=int(time.time()) - 3600),  # too old: a replay from long ago
            signed(body + b" "),
            "",
        ):
            with pytest.raises(ValidationError, match="signature"):
                webhooks.handle(s, provider, body, header)
    with db.read() as s:
        assert not s.scalars(select(PaymentEvent)).all()


def _email(s, template: str) -> str:
    query = select(Notification.body).where(
        Notification.template == template, Notification.channel == Channel.EMAIL
    )
    return s.scalars(query.order_by(Notification.id.desc())).first()


def _counts(s) -> tuple[int, ...]:
    return tuple(
        s.scalar(select(func.count()).select_from(model))
        for model in (Payment, Notification, ClinicEvent, AuditEvent)
    )


def test_a_checkout_for_another_amount_is_money_that_came_in_and_goes_back(db, world):
    """Stripe says £1.00 was taken for the £60.00 checkout. Before, the payment was marked
    failed and nothing else: the money taken was in no cash-up, on no record, never given
    back, and nobody was told. Now what came in is recorded, due back to the card in full, the
    patient is asked to pay again and the clinic hears of it; the visit stays unpaid, and the
    same webhook again (or another event of the checkout) changes nothing."""
    appointment_id = _appointment(db, world)  # £60.00
    fake = FakeCheckout()
    with db.write() as s:
        pay(s, world.patient_id, appointment_id, 0, True, fake)
    with db.read() as s:
        asked = s.scalars(select(Payment)).one()
    provider, reference = StripeProvider(STRIPE), asked.provider_ref
    body = event("evt_short", reference, 100, currency="gbp")
    with db.write() as s:
        assert webhooks.handle(s, provider, body, signed(body)) == "applied"
    with db.read() as s:
        done = _counts(s)
        asked = s.get(Payment, asked.id)
        taken = s.scalar(select(Payment).where(Payment.provider_ref == reference))
        back = s.scalar(select(Payment).where(Payment.kind == "refund"))
        assert (asked.status, asked.amount_cents) == ("failed", 6000)
        assert asked.note == (
            f"Amount mismatch: provider said 100 GBP; taken as P-{taken.id}, given back in full."
        )
        assert (taken.kind, taken.method, taken.status, taken.amount_cents, taken.currency) == (
            "prepayment",
            "stripe",
            "paid",
            100,
            "GBP",
        )
        assert (back.refund_of_id, back.status, back.amount_cents) == (taken.id, "refund_due", 100)
        assert prepay.paid_cents(s, appointment_id) == 0
        assert prepay.badges(s, [appointment_id]) == {}
        assert prepay.due(s, s.get(Appointment, appointment_id)).outstanding_cents == 6000
        told = _email(s, "payment_not_matched")
        assert "Your card payment of £1.00" in told and "the £60.00 due" in told
        assert "refunded all of it to your card" in told
        assert told.endswith(  # the link last: no punctuation after it
            "Please pay again at the desk when you come, or in your patient portal: "
            "http://localhost:8501/portal\n\nTest Clinic\n020 0000 0000"
        )
        heard = s.scalars(select(ClinicEvent)).one()
        assert (heard.event, heard.appointment_id) == ("payment_problem", appointment_id)
        assert (
            heard.summary.startswith("Alex ") and "£1.00 taken for the £60.00 due" in heard.summary
        )
        assert "Card payment problem at Test Clinic" in _mail(s, "clinic_event")
        mismatch = s.scalars(select(AuditEvent).where(AuditEvent.action == "payment_mismatch"))
        assert mismatch.one().details == {
            "payment_id": asked.id,
            "asked_cents": 6000,
            "asked_currency": "GBP",
            "provider_said": "100 GBP",
            "taken_payment_id": taken.id,
            "refund_id": back.id,
        }
    again = event("evt_short_async", reference, 100, "checkout.session.async_payment_succeeded")
    with db.write() as s:  # the same delivery again, then another event of the same checkout
        assert webhooks.handle(s, provider, body, signed(body)) == "duplicate"
        assert webhooks.handle(s, provider, again, signed(again)) == "applied"
    with db.read() as s:
        assert _counts(s) == done
        assert s.get(Payment, taken.id).status == "paid"
    assert prepay.process_refunds(db.write, fake) == 1
    assert fake.refunds == [(reference, 100)]
    with db.read() as s:
        (line,) = cashup.cash_up(s, world.staff, local_today("Europe/London"))
    assert (line.method, line.in_cents, line.out_cents, line.net_cents) == (
        "Card online",
        100,
        100,
        0,
    )
    with db.write() as s:  # and the patient can pay again
        assert pay(s, world.patient_id, appointment_id, 0, True, fake).checkout_url
    assert fake.made[-1]["amount_cents"] == 6000


# ---------------------------------------------------------------- refunds and fees


def _late_policy(db, world, fee=2500, pts=20, approval=False):
    with db.write() as s:
        s.add(
            CancellationPolicy(
                clinic_id=world.clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=1),
                window_hours=24,
                late_cancel_fee_cents=fee,
                points_deducted=pts,
                inside_window_needs_approval=approval,
                policy_text="24 hours' notice.",
            )
        )


def _paid_by_card_and_points(db, world, hours_ahead):
    appointment_id = _appointment(db, world, hours_ahead=hours_ahead)
    with db.write() as s:
        pay(s, world.patient_id, appointment_id, 100, True, FakeCheckout(), return_url="x")
    with db.write() as s:
        reference = s.scalars(select(Payment.provider_ref).where(Payment.method == "stripe")).one()
        prepay.checkout_completed(s, reference, 5000, "cus_1")
    return appointment_id


def test_the_practice_cancelling_refunds_everything(db, world):
    appointment_id = _paid_by_card_and_points(db, world, hours_ahead=5)
    _late_policy(db, world)
    with db.write() as s:
        moves.cancel_appointment(s, world.staff, appointment_id, reason="Provider ill")
    assert _balance(db, world) == 100  # the 100 points spent came back
    with db.read() as s:
        refunds = s.scalars(select(Payment).where(Payment.kind == "refund")).all()
        assert sorted((r.method, r.amount_cents, r.status) for r in refunds) == [
            ("points", 1000, "refunded"),
            ("stripe", 5000, "refund_due"),
        ]
        assert prepay.paid_cents(s, appointment_id) == 0
    fake = FakeCheckout()
    assert prepay.process_refunds(db.write, fake) == 1
    assert fake.refunds == [(f"cs_test_{2}", 5000)]
    assert prepay.process_refunds(db.write, fake) == 0  # each refund once


def test_a_late_patient_cancellation_keeps_the_fee_from_the_prepayment(db, world):
    appointment_id = _paid_by_card_and_points(db, world, hours_ahead=5)
    _late_policy(db, world, fee=2500, pts=20)
    with db.write() as s:
        moves.cancel_appointment(
            s, world.staff, appointment_id, reason="Patient asked", by_patient=True
        )
    assert _balance(db, world) == 100 - 20  # points back, the policy's 20 deducted
    with db.read() as s:
        fee = s.scalars(select(Payment).where(Payment.kind == "fee")).one()
        card_refund = s.scalars(
            select(Payment).where(Payment.kind == "refund", Payment.method == "stripe")
        ).one()
        assert (fee.amount_cents, card_refund.amount_cents) == (2500, 2500)
        assert s.get(LedgerEntry, fee.ledger_entry_id).kind == LedgerKind.LATE_CANCEL_FEE
    with db.write() as s, pytest.raises(Conflict, match="paid already"):
        desk.pay_fee(s, world.staff, fee.ledger_entry_id, method="cash", provider=DeskProvider())
    with db.read() as s:
        # the money kept is the fee's, not the visit's: nothing is part paid (before: 'Part
        # paid' on the cancelled visit, as if £25.00 of it were still owed)
        assert prepay.badges(s, [appointment_id]) == {}
        assert desk.summary(s, world.staff, appointment_id).badge == ""


def _cancel_late_from_the_portal(db, world, appointment_id) -> home.ChangePreview:
    """The patient reads the warning and asks to cancel; the manager approves. Returns the
    warning the patient read."""
    with db.write() as s:
        s.get(Patient, world.patient_id).portal_enrolled_at = utcnow()
    with db.read() as s:
        preview = home.change_preview(s, world.patient_id, appointment_id)
    with db.write() as s:
        home.ask_change(s, world.patient_id, appointment_id, kind="cancel")
    with db.write() as s:
        change_id = s.scalars(select(ChangeRequest.id)).one()
        changes.approve_change(s, world.manager, change_id)
    return preview


def test_a_late_cancellation_of_a_points_prepayment_does_what_the_warning_said(db, world):
    appointment_id = _appointment(db, world, hours_ahead=5)
    _late_policy(db, world, fee=2500, pts=0, approval=True)
    with db.write() as s:
        s.get(Patient, world.patient_id).points_balance = 600
        pay(s, world.patient_id, appointment_id, 600, False, DeskProvider())
    preview = _cancel_late_from_the_portal(db, world, appointment_id)
    # points are given back as points and never pay a fee (README, Payments): the warning
    # must not promise to keep part of them, and must say the fee is still owed
    assert preview.fee == "£25.00" and "kept" not in preview.prepayment
    assert preview.prepayment == (
        "The 600 points you paid with go back to your balance. Points do not pay the "
        "late-cancellation fee: the £25.00 fee is still owed to the practice."
    )
    assert _balance(db, world) == 600
    with db.read() as s:
        assert not s.scalars(select(Payment).where(Payment.kind == "fee")).all()
        fees = desk.unpaid_fees(s, world.staff, appointment_id)
        assert [f.amount for f in fees] == ["£25.00"]
        assert "600 points given back" in _mail(s, "appointment_cancelled")


def test_a_late_cancellation_of_points_and_cash_keeps_the_fee_from_the_cash_as_warned(db, world):
    appointment_id = _appointment(db, world, hours_ahead=5)
    _late_policy(db, world, fee=2500, pts=0, approval=True)
    with db.write() as s:
        pay(s, world.patient_id, appointment_id, 100, False, DeskProvider())
        desk.record_desk_payment(s, world.staff, appointment_id, amount_cents=1500, method="cash")
    preview = _cancel_late_from_the_portal(db, world, appointment_id)
    assert preview.prepayment == (
        "Of what you paid by card or cash, £15.00 is kept for the late-cancellation fee. "
        "The 100 points you paid with go back to your balance. Points do not pay the "
        "late-cancellation fee: the remaining £10.00 of the fee is still owed to the practice."
    )
    assert _balance(db, world) == 100
    with db.read() as s:
        kept = s.scalars(select(Payment).where(Payment.kind == "fee")).one()
        assert (kept.method, kept.amount_cents) == ("cash", 1500)
        refunds = s.scalars(select(Payment).where(Payment.kind == "refund")).all()
        assert [(r.method, r.points) for r in refunds] == [("points", 100)]


def test_fees_are_paid_at_the_desk_or_charged_to_the_card_on_file(db, world):
    with db.write() as s:
        fee = LedgerEntry(
            patient_id=world.patient_id, kind=LedgerKind.NO_SHOW_FEE, amount_cents=3000
        )
        s.add(fee)
        s.flush()
        fee_id = fee.id
    with pytest.raises(ValidationError, match="no card on file"):
        desk.charge_fee_on_file(db.write, world.staff, fee_id, provider=DeskProvider())
    with db.write() as s:
        paid = desk.pay_fee(s, world.staff, fee_id, method="card", provider=DeskProvider())
    assert (paid.kind, paid.amount_cents, paid.status) == ("fee", 3000, "paid")


def test_the_patients_record_says_what_they_paid_last_and_what_they_owe(db, world):
    """'What did I pay last time, and is anything owed?' had no answer on the record: each
    appointment's page held its own payments and fees. The record now lists the patient's
    payments of every visit, newest first, and what is owed: a fee not paid or waived (part
    paid: the rest), and a coming visit's deposit not yet paid."""
    from core.patients import records

    missed = _appointment(db, world, hours_ahead=-48)
    coming = _appointment(db, world, hours_ahead=72)
    with db.write() as s:
        s.get(Appointment, missed).status = AppointmentStatus.NO_SHOW
        desk.record_desk_payment(s, world.staff, missed, amount_cents=2000, method="cash")
        fees = [
            LedgerEntry(
                patient_id=world.patient_id,
                appointment_id=missed,
                kind=LedgerKind.NO_SHOW_FEE,
                amount_cents=cents,
                waived_at=waived,
            )
            for cents, waived in ((3000, None), (1000, utcnow()))
        ]
        s.add_all(fees)
        s.flush()
        rules.save_settings(s, world.owner, *_deposit(world, 25))
    with db.write() as s:
        desk.pay_fee(s, world.staff, fees[0].id, method="card", provider=DeskProvider())
        desk.record_desk_payment(s, world.staff, coming, amount_cents=500, method="card")
    with db.read() as s:
        money = records.patient_money(s, world.staff, world.patient_id)
    assert [(p.appointment_id, p.kind, p.method, p.amount) for p in money.payments] == [
        (coming, "deposit", "Card (desk)", "£5.00"),
        (missed, "no-show fee", "Card (desk)", "£30.00"),
        (missed, "prepayment", "Cash", "£20.00"),
    ]
    assert [(o.appointment_id, o.what, o.amount) for o in money.owed] == [
        (coming, "deposit still to pay", "£20.00")
    ]
    assert money.owed_text.startswith("Owed: £20.00 deposit still to pay (#")
    with db.write() as s:  # a second no-show fee, unpaid: owed, and said
        s.add(
            LedgerEntry(
                patient_id=world.patient_id,
                appointment_id=missed,
                kind=LedgerKind.NO_SHOW_FEE,
                amount_cents=1500,
            )
        )
    with db.read() as s:
        owed = records.patient_money(s, world.staff, world.patient_id).owed
    assert [(o.appointment_id, o.what, o.amount) for o in owed] == [
        (missed, "no-show fee", "£15.00"),
        (coming, "deposit still to pay", "£20.00"),
    ]


def test_the_patients_record_names_each_payment_in_words_not_its_stored_values(db, world):
    """The record's payments said what each was and where it stands as stored, spaced: a paid
    no-show fee 'fee', its money due back once waived 'fee refund' and 'refund due'. Each is now
    named as the desk says it (prepay.KIND_WORDS, STATUS_WORDS; a fee by its kind, FEE_WORDS)."""
    from core.patients import records

    missed = _appointment(db, world, hours_ahead=-48)
    with db.write() as s:
        s.get(Appointment, missed).status = AppointmentStatus.NO_SHOW
        fee = LedgerEntry(
            patient_id=world.patient_id,
            appointment_id=missed,
            kind=LedgerKind.NO_SHOW_FEE,
            amount_cents=3000,
        )
        s.add(fee)
        s.flush()
        fee_id = fee.id
    with db.write() as s:
        desk.pay_fee(s, world.staff, fee_id, method="card", provider=DeskProvider())
    with db.write() as s:
        desk.waive_fee(s, world.owner, fee_id, "Flat tyre")
        desk.record_desk_payment(s, world.staff, missed, amount_cents=2000, method="cash")
    with db.read() as s:
        money = records.patient_money(s, world.staff, world.patient_id)
        rows = prepay.list_payments(s, world.staff, missed)
    assert [(p.kind, p.status) for p in money.payments] == [
        ("prepayment", "paid"),
        ("no-show fee given back", "to give back"),
        ("no-show fee", "paid"),
    ]
    # the appointment's payments say the same (its kind and status stay stored for its rules)
    assert [(r.kind, r.what, r.state) for r in rows] == [
        ("fee", "no-show fee", "paid"),
        ("fee_refund", "no-show fee given back", "to give back"),
        ("prepayment", "prepayment", "paid"),
    ]


def test_a_desk_payment_beyond_the_deposit_is_a_payment_and_a_visit_paid_in_full_is_paid(db, world):
    """A £25 deposit on a £60 visit. Before, every desk payment for it was recorded as a
    deposit: a patient paying the whole £60 saw "deposit" on their record and a "Deposit paid"
    badge, and so did one who paid the deposit, then the rest. Now a desk payment is a deposit
    while it pays no more than the deposit still asked, a payment beyond it, and a visit whose
    price is paid is Paid."""
    from core.patients import records

    whole, parts = _appointment(db, world), _appointment(db, world)
    with db.write() as s:
        rules.save_settings(s, world.owner, *_deposit(world, 25))
    with db.write() as s:
        desk.record_desk_payment(s, world.staff, whole, amount_cents=6000, method="card")
        desk.record_desk_payment(s, world.staff, parts, amount_cents=2500, method="cash")
    with db.read() as s:
        assert prepay.badges(s, [whole, parts]) == {whole: "Paid", parts: "Deposit paid"}
    with db.write() as s:
        desk.record_desk_payment(s, world.staff, parts, amount_cents=3500, method="card")
    with db.read() as s:
        assert prepay.badges(s, [whole, parts]) == {whole: "Paid", parts: "Paid"}
        money = records.patient_money(s, world.staff, world.patient_id)
    assert [(p.appointment_id, p.kind, p.amount) for p in money.payments] == [
        (parts, "prepayment", "£35.00"),
        (parts, "deposit", "£25.00"),
        (whole, "prepayment", "£60.00"),
    ]


def test_desk_refunds_are_recorded_once(db, world):
    appointment_id = _appointment(db, world)
    with db.write() as s:
        desk.record_desk_payment(s, world.staff, appointment_id, amount_cents=6000, method="card")
    with db.write() as s:
        moves.cancel_appointment(s, world.staff, appointment_id, reason="Clinic closed")
    with db.read() as s:
        refund = s.scalars(select(Payment).where(Payment.kind == "refund")).one()
    assert refund.status == "refund_due"
    with db.write() as s:
        desk.mark_refunded(s, world.staff, refund.id, note="Card refund at the terminal")
    with db.write() as s, pytest.raises(Conflict):
        desk.mark_refunded(s, world.staff, refund.id)


def test_a_card_refund_reads_whether_the_provider_sent_it_or_the_desk_handed_it_back(db, world):
    """The visit's payments tell a refund the provider sent to the card from a refused one
    staff handed back at the desk (before, both read 'refunded' and nothing more)."""
    appointment_id = _appointment(db, world)
    money = {"appointment_id": appointment_id, "patient_id": world.patient_id}
    money |= {"kind": "refund", "method": "stripe", "currency": "GBP", "amount_cents": 500}
    with db.write() as s:
        sent = Payment(status="refunded", paid_at=utcnow(), **money)
        refused = Payment(status="refund_due", last_error="Card expired", **money)
        s.add_all([sent, refused])
        s.flush()
        desk.mark_refunded(s, world.staff, refused.id, "Cash from the till")
    with db.read() as s:
        rows = prepay.list_payments(s, world.staff, appointment_id)
    assert [(r.status, r.handed_back) for r in rows] == [("refunded", False), ("refunded", True)]


def test_the_payments_export_is_audited_and_spreadsheet_safe(db, world):
    appointment_id = _appointment(db, world)
    with db.write() as s:
        desk.record_desk_payment(
            s, world.staff, appointment_id, amount_cents=6000, method="cash", note="=HYPERLINK()"
        )
    first, last = local_today("UTC") - timedelta(days=1), local_today("UTC") + timedelta(days=1)
    with db.write() as s, pytest.raises(PermissionDenied):
        desk.export_payments(s, world.staff, first, last)
    with db.write() as s:
        data = desk.export_payments(s, world.manager, first, last).decode("utf-8-sig")
    assert ",60.00,GBP," in data and "'=HYPERLINK()" in data
    with db.read() as s:
        assert "export" in s.scalars(select(AuditEvent.action)).all()


# ---------------------------------------------------------------- points


def test_staff_adjust_points_with_a_reason_and_never_below_zero(db, world):
    with db.write() as s, pytest.raises(PermissionDenied):
        points.adjust_points(s, world.staff, world.patient_id, 10, "goodwill")
    with db.write() as s, pytest.raises(ValidationError, match="why"):
        points.adjust_points(s, world.manager, world.patient_id, 10, " ")
    with db.write() as s, pytest.raises(ValidationError, match="at most 100"):
        points.adjust_points(s, world.manager, world.patient_id, -101, "correction")
    with db.write() as s:
        points.adjust_points(s, world.manager, world.patient_id, -30, "correction")
        points.adjust_points(s, world.manager, world.patient_id, 5, "goodwill")
    assert _balance(db, world) == 75
    with db.read() as s:
        rows = points.ledger_rows(s, world.patient_id)
    assert [(r.points, r.note) for r in rows] == [(5, "goodwill"), (-30, "correction"), (100, "")]


def test_survey_points_can_be_switched_off(db, world):
    appointment_id = _appointment(db, world)
    with db.write() as s:
        rules.save_settings(s, world.owner, rules.PaymentSettings(survey_points_enabled=False))
    with db.write() as s:
        assert points.award_survey_points(s, s.get(Appointment, appointment_id)) == 0


def test_the_same_event_delivered_twice_at_once_is_applied_once(db, world):
    import threading

    appointment_id = _appointment(db, world)
    with db.write() as s:
        pay(s, world.patient_id, appointment_id, 0, True, FakeCheckout())
    with db.read() as s:
        reference = s.scalars(select(Payment.provider_ref)).one()
    body = json.loads(event("evt_race", reference, 6000))
    barrier, outcomes = threading.Barrier(2), []

    def deliver():
        barrier.wait()
        with db.write() as s:
            outcomes.append(webhooks.apply_event(s, "stripe", body))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["applied", "duplicate"]
    with db.read() as s:
        assert len(s.scalars(select(PaymentEvent)).all()) == 1
        receipts = s.scalars(select(Notification).where(Notification.template == "payment_receipt"))
        assert len(receipts.all()) == 1


# ---------------------------------------------------------------- each clinic's own currency

SIGNS = {"USD": "$", "GBP": "£"}  # the New York clinic's and the London one's


def _clinic(db, world, currency: str) -> int:
    """The world's London clinic (GBP), or a New York one in USD beside it."""
    with db.write() as s:
        s.get(Service, world.service_id).price_cents = 4500
        if currency == "GBP":
            return world.clinic_id
        clinic = Clinic(
            name="Lakeside", timezone="America/New_York", locale="en-US", currency="USD"
        )
        s.add(clinic)
        s.flush()
        return clinic.id


def _mail(s, template: str) -> str:
    query = select(Notification.body).where(Notification.template == template)
    return s.scalars(query.order_by(Notification.id.desc())).first()


def _as_glow(db, world, appointment_id):
    """Make the visit the Glow package (its first service, then a Peel)."""
    with db.write() as s:
        peel = Service(name="Peel", duration_minutes=30, price_cents=9000)
        glow = Package(name="Glow", price_cents=12000)
        s.add_all([peel, glow])
        s.flush()
        s.add_all(
            [
                AppointmentService(appointment_id=appointment_id, service_id=world.service_id),
                AppointmentService(appointment_id=appointment_id, service_id=peel.id, position=1),
            ]
        )
        s.get(Appointment, appointment_id).package_id = glow.id


def test_a_package_visits_receipt_names_the_package_not_its_first_service(db, world):
    appointment_id = _appointment(db, world)
    _as_glow(db, world, appointment_id)
    with db.write() as s:
        desk.record_desk_payment(s, world.staff, appointment_id, amount_cents=5000, method="cash")
        assert "for your payment for Glow (Consultation + Peel) on " in _mail(s, "payment_receipt")


@pytest.mark.parametrize(
    "consultation, peel, asked",
    [
        (rules.ServiceRule("none"), rules.ServiceRule("required"), ("required", 12000)),
        (rules.ServiceRule("deposit", 2000), rules.ServiceRule("deposit", 3000), ("deposit", 5000)),
    ],
)
def test_a_package_visit_asks_ahead_what_the_most_demanding_of_its_services_asks(
    db, world, consultation, peel, asked
):
    """Before, a package took its first service's rule: Glow (Consultation, paid at the visit,
    + Peel, prepayment required) asked nothing ahead, and two deposits asked only the first."""
    appointment_id = _appointment(db, world)
    _as_glow(db, world, appointment_id)
    with db.write() as s:
        peel_id = s.scalar(select(Service.id).where(Service.name == "Peel"))
        settings = rules.PaymentSettings(services={world.service_id: consultation, peel_id: peel})
        rules.save_settings(s, world.owner, settings)
    with db.read() as s:
        owed = prepay.due(s, s.get(Appointment, appointment_id))
    assert (owed.mode, owed.asked_cents, owed.required, owed.price_cents) == (*asked, True, 12000)


def test_desk_payments_refunds_and_the_export_are_in_the_clinics_currency(db, world):
    made = {}
    for currency, sign in SIGNS.items():
        shown = f"{sign}45.00"
        appointment_id = _appointment(db, world, clinic_id=_clinic(db, world, currency))
        with db.write() as s:
            desk.record_desk_payment(
                s, world.staff, appointment_id, amount_cents=4500, method="card"
            )
            assert shown in _mail(s, "payment_receipt")
        with db.read() as s:
            info = desk.summary(s, world.staff, appointment_id)
        assert [r.amount for r in info.rows] == [shown] and info.currency == currency
        assert info.due == shown
        with db.write() as s:
            moves.cancel_appointment(s, world.staff, appointment_id, reason="Clinic closed")
            assert f"Refund of {shown} (Card (desk))." in _mail(s, "appointment_cancelled")
        with db.read() as s:
            rows = s.scalars(select(Payment).where(Payment.appointment_id == appointment_id))
            made[currency] = [(p.kind, p.amount_cents, p.currency) for p in rows]
            refund = prepay.list_payments(s, world.staff, appointment_id)[-1]
        assert (refund.kind, refund.amount, refund.status) == ("refund", shown, "refund due")
    assert made == {c: [("prepayment", 4500, c), ("refund", 4500, c)] for c in ("USD", "GBP")}
    first, last = local_today("UTC") - timedelta(days=1), local_today("UTC") + timedelta(days=1)
    with db.write() as s:
        data = desk.export_payments(s, world.manager, first, last).decode("utf-8-sig")
    # the payments received, then (each clinic's) the refunds due, not yet made
    currencies = [(line.split(",")[8], line.split(",")[10]) for line in data.splitlines()[1:]]
    assert sorted(currencies) == sorted(
        [("received", "GBP"), ("refund due", "GBP"), ("received", "USD"), ("refund due", "USD")]
    )


def test_points_and_checkout_are_in_the_clinics_currency_and_the_webhook_applies_it(db, world):
    provider = StripeProvider(STRIPE)
    for number, (currency, sign) in enumerate(SIGNS.items()):
        appointment_id = _appointment(db, world, clinic_id=_clinic(db, world, currency))
        fake = FakeCheckout()
        with db.write() as s:
            pay(s, world.patient_id, appointment_id, 100, True, fake)
        assert (fake.made[0]["amount_cents"], fake.made[0]["currency"]) == (3500, currency)
        with db.read() as s:
            rows = s.scalars(select(Payment).where(Payment.appointment_id == appointment_id))
            by_method = {p.method: p for p in rows}
            assert [(p.amount_cents, p.currency) for p in by_method.values()] == [
                (1000, currency),  # 100 points at 10 minor units of the clinic's currency
                (3500, currency),
            ]
            assert f"Points: 100 ({sign}10.00)" in _mail(s, "payment_receipt")
        reference = by_method["stripe"].provider_ref
        body = event(f"evt_{number}", reference, 3500, currency=currency.lower())
        with db.write() as s:
            assert webhooks.handle(s, provider, body, signed(body)) == "applied"
        with db.read() as s:
            assert s.get(Payment, by_method["stripe"].id).status == "paid"
            assert f"Card: {sign}35.00" in _mail(s, "payment_receipt")
            assert prepay.badges(s, [appointment_id]) == {appointment_id: "Paid"}
        with db.write() as s:
            points.adjust_points(s, world.manager, world.patient_id, 100, "next clinic")


def test_a_checkout_paid_in_another_currency_is_recorded_as_it_came_and_given_back(db, world):
    """Stripe says £45.00 for the New York clinic's $45.00 checkout: the pounds are recorded
    as pounds, flagged, and given back as pounds (the cash-up's own GBP line), never counted
    as the dollars owed. Before, they were in no cash-up and never given back."""
    appointment_id = _appointment(db, world, clinic_id=_clinic(db, world, "USD"))
    fake = FakeCheckout()
    with db.write() as s:
        pay(s, world.patient_id, appointment_id, 0, True, fake)
    with db.read() as s:
        asked = s.scalars(select(Payment)).one()
    body = event("evt_gbp", asked.provider_ref, 4500, currency="gbp")
    with db.write() as s:
        assert webhooks.handle(s, StripeProvider(STRIPE), body, signed(body)) == "applied"
    with db.read() as s:
        taken = s.scalar(select(Payment).where(Payment.provider_ref == asked.provider_ref))
        assert s.get(Payment, asked.id).note.startswith("Amount mismatch: provider said 4500 GBP;")
        assert (taken.status, taken.amount_cents, taken.currency) == ("paid", 4500, "GBP")
        assert taken.note.startswith("In GBP, not the clinic's USD. ")
        assert prepay.paid_cents(s, appointment_id) == 0
        assert "Your card payment of £45.00" in _email(s, "payment_not_matched")
        assert "the $45.00 due" in _email(s, "payment_not_matched")
    assert prepay.process_refunds(db.write, fake) == 1
    assert fake.refunds == [(asked.provider_ref, 4500)]
    with db.read() as s:
        lines = cashup.cash_up(s, world.staff, local_today("America/New_York"))
    assert [(x.clinic, x.currency, x.in_cents, x.out_cents) for x in lines] == [
        ("Lakeside", "GBP", 4500, 4500)
    ]


def test_a_checkout_stripe_says_took_nothing_records_nothing_to_give_back(db, world):
    appointment_id = _appointment(db, world)
    with db.write() as s:
        pay(s, world.patient_id, appointment_id, 0, True, FakeCheckout())
        reference = s.scalar(select(Payment.provider_ref))
    with db.write() as s:
        webhooks.apply_event(s, "stripe", json.loads(event("evt_0", reference, 0)))
    with db.read() as s:
        assert [(p.status, p.note) for p in s.scalars(select(Payment))] == [
            ("failed", "Amount mismatch: provider said 0")
        ]
        assert _email(s, "payment_not_matched") is None


def test_a_checkout_for_another_amount_on_a_cancelled_visit_asks_for_nothing_more(db, world):
    appointment_id = _appointment(db, world)
    with db.write() as s:
        pay(s, world.patient_id, appointment_id, 0, True, FakeCheckout())
    with db.write() as s:
        moves.cancel_appointment(s, world.staff, appointment_id, reason="Clinic closed")
    with db.read() as s:
        reference = s.scalar(select(Payment.provider_ref).where(Payment.method == "stripe"))
    with db.write() as s:
        webhooks.apply_event(s, "stripe", json.loads(event("evt_c", reference, 5900)))
    with db.read() as s:
        back = s.scalars(select(Payment).where(Payment.kind == "refund")).one()
        assert (back.amount_cents, back.status) == (5900, "refund_due")
        told = _email(s, "payment_not_matched")
        assert "Nothing is owed for it: the appointment was cancelled." in told
        assert "pay again" not in told


class RecordingStripe(stripe.HTTPClient):
    """Stripe's HTTP layer answering from here: the library builds the real request."""

    name = "recording"

    def __init__(self):
        super().__init__()
        self.posted: list[dict[str, list[str]]] = []

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        self.posted.append(parse_qs(post_data or ""))
        made = {"id": f"cs_test_{len(self.posted)}", "object": "checkout.session"}
        return json.dumps(made | {"url": "https://checkout.stripe.test/c"}), 200, {}

    def close(self):
        pass


def test_the_stripe_checkout_session_asks_for_the_clinics_currency(db, world):
    http = RecordingStripe()
    provider = StripeProvider(STRIPE, http_client=http)
    for currency in SIGNS:
        appointment_id = _appointment(db, world, clinic_id=_clinic(db, world, currency))
        with db.write() as s:
            result = pay(s, world.patient_id, appointment_id, 0, True, provider)
        assert result.checkout_url == "https://checkout.stripe.test/c"
    asked = [
        (p["line_items[0][price_data][currency]"], p["line_items[0][price_data][unit_amount]"])
        for p in http.posted
    ]
    assert asked == [(["usd"], ["4500"]), (["gbp"], ["4500"])]


def test_a_late_cancellation_keeps_the_fee_and_refunds_in_the_clinics_currency(db, world):
    clinic_id = _clinic(db, world, "USD")
    appointment_id = _appointment(db, world, hours_ahead=5, clinic_id=clinic_id)
    with db.write() as s:
        s.add(
            CancellationPolicy(
                clinic_id=clinic_id,
                version=1,
                effective_at=utcnow() - timedelta(days=1),
                window_hours=24,
                late_cancel_fee_cents=2500,
                points_deducted=0,
                inside_window_needs_approval=False,
                policy_text="24 hours' notice.",
            )
        )
        desk.record_desk_payment(s, world.staff, appointment_id, amount_cents=4500, method="cash")
        s.get(Patient, world.patient_id).portal_enrolled_at = utcnow()
    with db.read() as s:  # what the portal warns of before the patient asks
        preview = home.change_preview(s, world.patient_id, appointment_id)
    assert preview.fee == "$25.00"
    assert "$25.00 is kept for the late-cancellation fee; $20.00 is refunded" in preview.prepayment
    with db.write() as s:
        moves.cancel_appointment(s, world.staff, appointment_id, reason="Asked", by_patient=True)
        mail = _mail(s, "appointment_cancelled")
    assert "fee: $25.00" in mail and "Refund of $20.00 (Cash)." in mail
    with db.read() as s:
        rows = s.scalars(select(Payment).where(Payment.kind.in_(("fee", "refund"))))
        assert sorted((p.kind, p.amount_cents, p.currency) for p in rows) == [
            ("fee", 2500, "USD"),
            ("refund", 2000, "USD"),
        ]


def test_a_fee_is_shown_and_paid_in_its_appointments_clinics_currency(db, world):
    appointment_id = _appointment(db, world, clinic_id=_clinic(db, world, "USD"))
    with db.write() as s:
        fee = LedgerEntry(
            patient_id=world.patient_id,
            appointment_id=appointment_id,
            kind=LedgerKind.NO_SHOW_FEE,
            amount_cents=3000,
        )
        s.add(fee)
        s.flush()
        fee_id = fee.id
    with db.read() as s:
        assert [f.amount for f in desk.unpaid_fees(s, world.staff, appointment_id)] == ["$30.00"]
    with db.write() as s:
        paid = desk.pay_fee(s, world.staff, fee_id, method="cash", provider=DeskProvider())
    assert (paid.amount_cents, paid.currency) == (3000, "USD")


def test_the_portal_shows_amounts_and_a_points_value_in_the_clinics_currency(db, world):
    with db.write() as s:
        s.get(Patient, world.patient_id).portal_enrolled_at = utcnow()
    shown = {}
    for hours, (currency, sign) in enumerate(SIGNS.items(), start=48):
        appointment_id = _appointment(db, world, hours, clinic_id=_clinic(db, world, currency))
        with db.read() as s:
            view = home.pay_view(s, world.patient_id, appointment_id, card_online=False)
        assert (view.outstanding, view.point_value) == (f"{sign}45.00", f"{sign}0.10")
        assert view.max_points == 100  # the balance; 450 points would cover the 45.00
        assert view.suggested_points == 99  # the form's default keeps one: zero would lock
        with db.read() as s:
            upcoming = home.home(s, world.patient_id).upcoming
        shown[currency] = next(a.outstanding for a in upcoming if a.id == appointment_id)
    assert shown == {"USD": "$45.00", "GBP": "£45.00"}
    with db.read() as s:  # the points tab: the latest clinic's currency (the GBP visit is later)
        assert home.home(s, world.patient_id).point_value == "£0.10"


def _visit_at(db, world, clinic_id, tz, day, at, created):
    start = local_to_utc(day, at, tz)
    with db.write() as s:
        a = Appointment(
            clinic_id=clinic_id,
            provider_id=world.provider_id,
            patient_id=world.patient_id,
            service_id=world.service_id,
            status=AppointmentStatus.SCHEDULED,
            start_at=start,
            end_at=start + timedelta(minutes=30),
            created_at=created,
        )
        s.add(a)
        s.flush()
        return a.id


def test_a_patient_of_two_clinics_sees_each_visit_and_payment_in_its_own_clinic(db, world):
    """London (GBP, en-GB) and New York (USD, en-US). What belongs to no single clinic (today,
    counts, the ledger rows of no visit) is the home clinic's: that of the latest booking (New
    York here, though the London visit starts later)."""
    new_york = _clinic(db, world, "USD")
    day = local_today("Europe/London") + timedelta(days=9)
    london = _visit_at(
        db,
        world,
        world.clinic_id,
        "Europe/London",
        day,
        clock(11, 45),
        utcnow() - timedelta(days=2),
    )
    _visit_at(
        db, world, new_york, "America/New_York", day - timedelta(days=3), clock(14, 15), utcnow()
    )
    with db.write() as s:
        s.get(Patient, world.patient_id).portal_enrolled_at = utcnow()
        pay(s, world.patient_id, london, 50, False, DeskProvider())
        points.adjust_points(s, world.manager, world.patient_id, 5, "Goodwill")
    with db.read() as s:
        view = home.home(s, world.patient_id)
    assert (view.home_clinic, view.timezone, view.locale) == (
        "Lakeside",
        "America/New_York",
        "en-US",
    )
    assert view.point_values == (("Lakeside", "$0.10"), ("Test Clinic", "£0.10"))
    spent = next(r for r in view.ledger if r.appointment_id == london)
    adjusted = next(r for r in view.ledger if r.appointment_id is None)
    assert view.ledger_time(spent) == format_moment(spent.at, "Europe/London", "en-GB")
    assert view.ledger_time(adjusted) == format_moment(adjusted.at, "America/New_York", "en-US")
    titles = sorted(e["title"] for e in view.calendar_events())
    assert titles == ["11:45 Consultation · Dr Test", "2:15\u202fPM Consultation · Dr Test"]
    assert [a.when.split(", ")[-1] for a in view.upcoming] == [
        "2:15\u2009–\u20092:45\u202fPM (EST)",
        "11:45–12:15 (GMT)",
    ]


def test_the_migration_drops_the_practice_currency_and_keeps_stored_ones(db, world):
    appointment_id = _appointment(db, world, clinic_id=_clinic(db, world, "USD"))
    with db.write() as s:  # a payment in a currency not the clinic's (0003 left payments be)
        desk.record_desk_payment(s, world.staff, appointment_id, amount_cents=4500, method="cash")
        s.scalars(select(Payment)).one().currency = "GBP"
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    old = {"currency": "EUR", "locale": "de_DE", "point_value_cents": 5, "survey_points": 7}
    with db.write() as s:  # the rules as the older code stored them
        s.add(Setting(key=rules.SETTING_KEY, value=old))
    migrate.upgrade(db.engine)
    with db.read() as s:
        assert s.get(Setting, rules.SETTING_KEY).value == {
            "point_value_cents": 5,
            "survey_points": 7,
        }
        assert s.scalars(select(Payment.currency)).one() == "GBP"
        row = prepay.list_payments(s, world.staff, appointment_id)[0]
    assert row.amount == "£45.00"  # in its stored currency, in the clinic's locale


def test_a_package_visits_reminder_names_the_package(db, world):
    """Reminders name what is booked as the confirmation does: 'Glow (Consultation + Peel)',
    not the services alone."""
    from core.messaging import reminders

    appointment_id = _appointment(db, world)
    _as_glow(db, world, appointment_id)
    with db.read() as s:
        context = reminders.appointment_context(s.get(Appointment, appointment_id))
    assert context["service_name"] == "Glow (Consultation + Peel)"


# ---------------------------------------------------------------- fees and refunds, reviewed


class StripeLike(stripe.HTTPClient):
    """Stripe's HTTP layer answering as Stripe does to the calls ClinicDesk makes: a card on
    file, a charge to it (a payment intent), a checkout session looked up by its own id only
    (any other id is Stripe's 404 'No such checkout.session'), and refunds: of a payment intent
    in `unknown`, Stripe's 404 'No such payment_intent'; a refund sent again with the
    Idempotency-Key of one made is answered with that one, not made again (sent with other
    parameters, it is Stripe's 400 idempotency_error), until Stripe forgets its keys
    (`a_day_passes`: it keeps them 24 hours); a payment intent's or charge's refunds are listed
    with their metadata, newest first."""

    name = "stripe-like"

    def __init__(self, unknown=()):
        super().__init__()
        self.calls: list[tuple[str, str, dict[str, list[str]]]] = []
        self.keys: list[str] = []  # the Idempotency-Key of each refund asked for
        self.made: dict[str, str] = {}  # the refunds made, by their Idempotency-Key (kept a day)
        self.refunds: list[dict] = []  # every refund made, as Stripe keeps it
        self.forms: dict[str, dict] = {}  # what each key was first sent with
        self.unknown = set(unknown)
        self.lose_answer = False  # the next refund is made, and its answer lost (a timeout)
        self.cut_off = False  # the next refund never reaches Stripe (the connection failed)
        # refunds are not listed: a restricted key without permission to read them (403)
        self.list_forbidden = False
        self.stop_after = False  # the next refund is made, then our process stops (a crash)

    def a_day_passes(self):
        """Stripe forgets every idempotency key (it keeps one 24 hours); the refunds stay."""
        self.made.clear()

    def refund_in_dashboard(self, intent, amount):
        """A refund someone made in Stripe's dashboard: no metadata of ours."""
        made = {"id": f"re_dashboard_{len(self.refunds)}", "object": "refund", "amount": amount}
        self.refunds.append(made | {"payment_intent": intent, "charge": None, "metadata": {}})

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        path = urlsplit(url).path
        form = parse_qs(post_data or "")
        self.calls.append((method, path, form or parse_qs(urlsplit(url).query)))
        if path == "/v1/refunds" and method == "get" and self.list_forbidden:
            error = {
                "type": "invalid_request_error",
                "message": "The provided key 'rk_test_***1234' does not have the required "
                "permissions for this endpoint on account 'acct_1'. Having the "
                "'rak_refund_read' permission would allow this request to continue.",
            }
            return json.dumps({"error": error}), 403, {}
        if path == "/v1/refunds" and method == "get":
            return self._listed(parse_qs(urlsplit(url).query))
        if path == "/v1/refunds":
            return self._refund(headers.get("Idempotency-Key"), form)
        if path == "/v1/payment_methods":
            methods = [{"id": "pm_card_1", "object": "payment_method"}]
            return json.dumps({"object": "list", "data": methods, "has_more": False}), 200, {}
        if path == "/v1/payment_intents":
            intent = {"id": "pi_fee_1", "object": "payment_intent", "status": "succeeded"}
            return json.dumps(intent), 200, {}
        if path.startswith("/v1/checkout/sessions/"):
            reference = path.rsplit("/", 1)[1]
            if reference.startswith("cs_"):
                made = {"id": reference, "object": "checkout.session", "payment_intent": "pi_cs"}
                return json.dumps(made), 200, {}
            return self._missing(f"No such checkout.session: '{reference}'")
        return self._missing(f"Unrecognized request URL ({method}: {path}).")

    def _refund(self, key, form):
        self.keys.append(key)
        if self.cut_off:
            self.cut_off = False
            raise stripe.APIConnectionError("Could not connect to Stripe.")
        if key in self.made and form != self.forms[key]:
            error = {
                "type": "idempotency_error",
                "message": "Keys for idempotent requests can only be used with the same "
                "parameters they were first used with. Try using a key other than "
                f"'{key}' if you meant to execute a different request.",
            }
            return json.dumps({"error": error}), 400, {}
        if key in self.made:
            return self.made[key], 200, {"Idempotent-Replayed": "true"}
        self.forms[key] = form
        intent = form.get("payment_intent", [""])[0]
        if intent in self.unknown:
            return self._missing(f"No such payment_intent: '{intent}'")
        made = {"id": f"re_{len(self.calls)}", "object": "refund"}
        made["amount"] = int(form["amount"][0])
        made["payment_intent"] = intent or None
        made["charge"] = form.get("charge", [None])[0]
        made["metadata"] = {
            name[len("metadata[") : -1]: values[0]
            for name, values in form.items()
            if name.startswith("metadata[")
        }
        self.refunds.append(made)
        self.made[key] = json.dumps(made)
        if self.lose_answer:
            self.lose_answer = False
            raise stripe.APIConnectionError("Request to Stripe timed out.")
        if self.stop_after:
            self.stop_after = False
            raise RuntimeError("the process stopped")
        return self.made[key], 200, {}

    def _listed(self, query):
        """GET /v1/refunds?payment_intent=… (or charge=…): its refunds, newest first."""
        wanted = {name: query[name][0] for name in ("payment_intent", "charge") if name in query}
        found = [r for r in reversed(self.refunds) if all(r[k] == v for k, v in wanted.items())]
        listed = {"object": "list", "url": "/v1/refunds", "data": found, "has_more": False}
        return json.dumps(listed), 200, {}

    @staticmethod
    def _missing(message):
        error = {"type": "invalid_request_error", "code": "resource_missing", "message": message}
        return json.dumps({"error": error}), 404, {}

    def close(self):
        pass


def _fee(db, world, appointment_id=None, cents=3000, kind=LedgerKind.NO_SHOW_FEE) -> int:
    with db.write() as s:
        fee = LedgerEntry(
            patient_id=world.patient_id,
            appointment_id=appointment_id,
            kind=kind,
            amount_cents=cents,
        )
        s.add(fee)
        s.flush()
        return fee.id


def test_waiving_a_paid_fee_gives_its_money_back_once(db, world):
    """A no-show fee paid in cash, then waived: the waiver leaves a refund due at the desk for
    what was paid (as undoing the no-show does); waiving an unpaid fee refunds nothing."""
    appointment_id = _appointment(db, world)
    paid_fee, unpaid_fee = _fee(db, world, appointment_id), _fee(db, world, appointment_id, 1500)
    with db.write() as s:
        desk.pay_fee(s, world.staff, paid_fee, method="cash", provider=DeskProvider())
    with db.write() as s, pytest.raises(PermissionDenied):
        desk.waive_fee(s, world.staff, paid_fee, "Kind")
    with db.write() as s:
        entry, refunds, *_ = desk.waive_fee(s, world.manager, paid_fee, "Hospital admission")
        assert entry.waived_at is not None
        assert [(r.kind, r.status, r.amount_cents, r.method) for r in refunds] == [
            ("fee_refund", "refund_due", 3000, "cash")
        ]
        assert refunds[0].note == f"Fee #{paid_fee} waived: Hospital admission"
        assert desk.waive_fee(s, world.manager, unpaid_fee, "Goodwill")[1] == []
    with db.write() as s, pytest.raises(Conflict, match="already waived"):
        desk.waive_fee(s, world.manager, paid_fee, "Again")
    with db.read() as s:
        assert len(s.scalars(select(Payment).where(Payment.kind == "fee_refund")).all()) == 1


def test_a_late_fee_paid_by_mistake_is_given_back_by_waiving_it_and_the_patient_is_told(db, world):
    """A late-cancellation fee taken at the desk, then not charged after all: 'Give money back'
    says how a fee is given back (waived by a manager, with a reason); the waiver makes what was
    paid due back at the desk, never more than was paid, audited. Before, the patient was not
    told, whereas a desk give-back emails them (`payment_given_back`)."""
    appointment_id = _appointment(db, world)
    fee_id = _fee(db, world, appointment_id, 2500, LedgerKind.LATE_CANCEL_FEE)
    with db.write() as s:
        paid = desk.pay_fee(s, world.staff, fee_id, method="card", provider=DeskProvider()).id
    with db.write() as s, pytest.raises(ValidationError, match="a manager or owner waives"):
        desk.refund_payment(s, world.staff, paid, amount_cents=2500, reason="Not charged")
    with db.write() as s:
        _, (refund,), *_ = desk.waive_fee(s, world.manager, fee_id, "Charged by mistake")
        assert (refund.kind, refund.status) == ("fee_refund", "refund_due")
        assert refund.amount_cents == 2500  # all that was paid of it, no more
    with db.write() as s:
        desk.mark_refunded(s, world.staff, refund.id, note="Back to the card at the terminal")
    with db.read() as s:
        (told,) = s.scalars(
            select(Notification.body).where(Notification.template == "payment_given_back")
        ).all()
        actions = s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert "We have given back £25.00 of what you paid for" in told
    assert (
        f"(P-{refund.id}, the late-cancellation fee waived): it is ready for you at the desk"
        in told
    )
    assert "Charged by mistake" not in told  # the reason stays in the practice
    kinds = ("fee_waived", "fee_refund_due", "refund_recorded")
    assert [a for a in actions if a in kinds] == list(kinds)


def test_a_fee_on_no_visit_waived_tells_the_patient_in_the_fees_words(db, world):
    """A fee tied to no appointment, paid in cash and then waived: what was paid is due back
    and, as for a fee on a visit, the patient is emailed it, in the fee's words (before: no
    email, the message was sent only with a visit's). A patient with no email address is not
    emailed, and the waiver says why."""
    fee_id, unreachable = _fee(db, world), _fee(db, world, cents=1000)
    with db.write() as s:
        for fee in (fee_id, unreachable):
            desk.pay_fee(s, world.staff, fee, method="cash", provider=DeskProvider())
    with db.write() as s:
        waived = desk.waive_fee(s, world.manager, fee_id, "Charged by mistake")
        (refund,) = waived.refunds
        assert (waived.emailed, waived.not_emailed) == (True, "")
    with db.read() as s:
        (told,) = s.scalars(
            select(Notification).where(Notification.template == "payment_given_back")
        ).all()
        day = format_day(to_local(s.get(LedgerEntry, fee_id).created_at, "Europe/London").date())
    assert told.appointment_id is None and "Test Clinic" in told.body
    assert (
        f"We have given back £30.00 of what you paid for the no-show fee charged on {day} "
        f"(P-{refund.id}, the no-show fee waived): it is ready for you at the desk"
    ) in told.body
    assert "Charged by mistake" not in told.body
    with db.write() as s:
        s.get(Patient, world.patient_id).email = None
    with db.write() as s:
        waived = desk.waive_fee(s, world.manager, unreachable, "Goodwill")
        assert (len(waived.refunds), waived.emailed) == (1, False)
        assert waived.not_emailed == "no email address"


def _card_on_file(db, world, appointment_id: int, cents: int, currency: str) -> None:
    """An earlier Stripe checkout for the visit that left the patient's card on file."""
    with db.write() as s:
        s.add(
            Payment(
                appointment_id=appointment_id,
                patient_id=world.patient_id,
                kind="prepayment",
                method="stripe",
                status="paid",
                amount_cents=cents,
                currency=currency,
                provider_ref="cs_test_earlier",
                provider_customer="cus_test_1",
                paid_at=utcnow(),
            )
        )


def test_a_fee_charged_to_the_card_on_file_is_refunded_through_its_payment(db, world):
    """A no-show fee charged to the card on file is a Stripe payment intent, not a checkout
    session: its refund (the no-show undone) goes back to that payment. Before, the refund job
    looked it up as a checkout session, Stripe answered 'No such checkout.session' and the job
    failed on it every run, holding up every refund queued after it."""
    http = StripeLike()
    provider = StripeProvider(STRIPE, http_client=http)
    appointment_id = _appointment(db, world)
    _card_on_file(db, world, appointment_id, 6000, "GBP")
    fee_id = _fee(db, world, appointment_id)
    paid = desk.charge_fee_on_file(db.write, world.staff, fee_id, provider=provider)
    assert (paid.method, paid.provider_ref, paid.amount_cents) == ("stripe", "pi_fee_1", 3000)
    with db.write() as s:
        desk.refund_fees(s, world.staff, desk.paid_fees(s, [fee_id]), "No-show undone")
    assert prepay.process_refunds(db.write, provider) == 1
    sent = [form for method, path, form in http.calls if path == "/v1/refunds"]
    with db.read() as s:
        refund = s.scalars(select(Payment).where(Payment.kind == "fee_refund")).one()
        tag = {"metadata[payment_id]": [str(refund.id)]}
        assert sent == [{"payment_intent": ["pi_fee_1"], "amount": ["3000"]} | tag]
        assert (refund.status, refund.provider_ref) == ("refunded", f"re_{len(http.calls)}")


def test_two_desks_recording_the_same_fee_take_it_once(db, world):
    """Two people record the same no-show fee at once (a desk and the back office): one is
    recorded, the other is told it is paid already. Before, on PostgreSQL both were recorded
    and the fee was taken twice."""
    import threading

    fee_id = _fee(db, world)
    barrier, outcomes = threading.Barrier(2), []

    def record(method):
        barrier.wait()
        try:
            with db.write() as s:
                desk.pay_fee(s, world.staff, fee_id, method=method, provider=DeskProvider())
            outcomes.append("paid")
        except Conflict as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=record, args=(m,)) for m in ("card", "cash")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [f"Fee #{fee_id} is paid already.", "paid"]
    with db.read() as s:
        assert len(s.scalars(select(Payment).where(Payment.kind == "fee")).all()) == 1


def test_the_rest_of_a_late_fee_the_prepayment_did_not_cover_is_taken_at_the_desk(db, world):
    """£15.00 cash kept of a £25.00 late-cancellation fee: the patient was told the remaining
    £10.00 is still owed, so the appointment lists it and the desk takes £10.00 (once). Before,
    the fee counted as paid: nothing was listed and recording it said 'paid already'."""
    appointment_id = _appointment(db, world, hours_ahead=5)
    _late_policy(db, world, fee=2500, pts=0, approval=True)
    with db.write() as s:
        desk.record_desk_payment(s, world.staff, appointment_id, amount_cents=1500, method="cash")
    _cancel_late_from_the_portal(db, world, appointment_id)
    with db.read() as s:
        fees = desk.unpaid_fees(s, world.staff, appointment_id)
    assert [f.amount for f in fees] == ["£10.00"]
    with db.write() as s:
        paid = desk.pay_fee(
            s, world.staff, fees[0].ledger_entry_id, method="card", provider=DeskProvider()
        )
        assert (paid.kind, paid.amount_cents) == ("fee", 1000)
    with db.read() as s:
        assert desk.unpaid_fees(s, world.staff, appointment_id) == []
    with db.write() as s, pytest.raises(Conflict, match="paid already"):
        desk.pay_fee(
            s, world.staff, fees[0].ledger_entry_id, method="cash", provider=DeskProvider()
        )


def test_a_checkout_paid_after_the_appointment_was_cancelled_is_refunded(db, world):
    """The patient is on Stripe's page when the clinic cancels; Stripe then says it is paid.
    The money is due back to the card, sent by the refund job, and the patient is told. Before,
    it stayed paid on a cancelled appointment and nothing ever gave it back."""
    appointment_id = _appointment(db, world)
    fake = FakeCheckout()
    with db.write() as s:
        pay(s, world.patient_id, appointment_id, 0, True, fake)
    with db.write() as s:
        moves.cancel_appointment(s, world.staff, appointment_id, reason="Clinic closed")
    with db.read() as s:
        reference = s.scalars(select(Payment.provider_ref).where(Payment.method == "stripe")).one()
    with db.write() as s:
        applied = webhooks.apply_event(s, "stripe", json.loads(event("evt_late", reference, 6000)))
        assert applied == "applied"
    with db.read() as s:
        refund = s.scalars(select(Payment).where(Payment.kind == "refund")).one()
        assert (refund.method, refund.status, refund.amount_cents) == ("stripe", "refund_due", 6000)
        assert prepay.paid_cents(s, appointment_id) == 0
        assert "Refund of £60.00 (Card)" in _mail(s, "payment_refund")
    assert prepay.process_refunds(db.write, fake) == 1
    assert fake.refunds == [(reference, 6000)]


def test_a_checkout_for_what_was_paid_meanwhile_is_refunded(db, world):
    """A checkout finished after the desk took the money: what comes beyond the price is due
    back to the card. Before, the visit stayed paid twice. (Two tabs' checkouts cannot both be
    paid any more: the second closes the first.)"""
    appointment_id = _appointment(db, world)  # £60.00
    with db.write() as s:
        pay(s, world.patient_id, appointment_id, 0, True, FakeCheckout())
    with db.write() as s:
        desk.record_desk_payment(s, world.staff, appointment_id, amount_cents=6000, method="cash")
    with db.read() as s:
        reference = s.scalar(select(Payment.provider_ref).where(Payment.method == "stripe"))
    with db.write() as s:
        webhooks.apply_event(s, "stripe", json.loads(event("evt_1", reference, 6000)))
    with db.read() as s:
        refund = s.scalars(select(Payment).where(Payment.kind == "refund")).one()
        assert (refund.refund_of_id, refund.amount_cents, refund.status) == (
            s.scalar(select(Payment.id).where(Payment.provider_ref == reference)),
            6000,
            "refund_due",
        )
        assert prepay.paid_cents(s, appointment_id) == 6000
        assert prepay.badges(s, [appointment_id]) == {appointment_id: "Paid"}
        assert "£60.00 was paid already" in _mail(s, "payment_receipt")


def _card_fees_given_back(db, world, references, note="No-show undone") -> list[int]:
    """Fees charged to the card on file (one payment intent each), given back: the refunds due."""
    appointment_id = _appointment(db, world)
    fees = [_fee(db, world, appointment_id) for _ in references]
    with db.write() as s:
        paid = [
            Payment(
                appointment_id=appointment_id,
                patient_id=world.patient_id,
                ledger_entry_id=fee_id,
                kind="fee",
                method="stripe",
                status="paid",
                amount_cents=3000,
                currency="GBP",
                provider_ref=reference,
                paid_at=utcnow(),
            )
            for fee_id, reference in zip(fees, references, strict=True)
        ]
        s.add_all(paid)
        s.flush()
        return [r.id for r in desk.refund_fees(s, world.staff, paid, note)]


def test_a_refund_stripe_refuses_does_not_undo_the_one_it_made(db, world):
    """Two refunds due: Stripe makes the first and refuses the second. The first is recorded as
    made; the second stays due, saying what Stripe said. Before, the refusal rolled back the
    whole run, the first included, though Stripe had made it: the next run made it again."""
    http = StripeLike(unknown={"pi_gone"})
    made, refused = _card_fees_given_back(db, world, ["pi_fee_1", "pi_gone"])
    assert prepay.process_refunds(db.write, StripeProvider(STRIPE, http_client=http)) == 1
    with db.read() as s:
        first, second = s.get(Payment, made), s.get(Payment, refused)
        assert (first.status, first.provider_ref) == ("refunded", "re_1")
        assert (second.status, second.provider_ref) == ("refund_due", None)
        assert (second.note, second.refund_attempts) == ("No-show undone", 1)
        assert (
            second.last_error == "Stripe did not make the refund: No such payment_intent: 'pi_gone'"
        )
    assert len(http.made) == 1


def test_a_refund_stripe_refused_waits_behind_those_not_tried_yet(db, world):
    """One refund at a time (limit 1): the first, refused, stays due; the next run sends the
    one not tried yet before trying the refused one again. Before, the oldest refused refunds
    were sent first on every run and could hold up every newer one."""
    http = StripeLike(unknown={"pi_gone"})
    refused, later = _card_fees_given_back(db, world, ["pi_gone", "pi_fee_2"])
    provider = StripeProvider(STRIPE, http_client=http)
    for _ in range(2):
        prepay.process_refunds(db.write, provider, limit=1)
    with db.read() as s:
        assert s.get(Payment, refused).status == "refund_due"
        assert s.get(Payment, later).status == "refunded"


REFUSED = "Stripe did not make the refund: No such payment_intent: 'pi_gone'"


def test_a_refused_refund_keeps_the_note_as_typed_and_counts_its_attempts(db, world):
    """A waiver reason may hold any words, 'Last attempt: ' too: Stripe refusing the refund
    twice leaves the note as typed, the refusal in its own column (shown on the appointment's
    Payments beside the note) and two attempts counted; once made, the error is cleared. Before,
    the refusal was written into the note and the next run cut the typed reason at those words."""
    typed = "Fee #7 waived: Last attempt: the patient rang twice before the visit"
    http = StripeLike(unknown={"pi_gone"})
    (refund_id,) = _card_fees_given_back(db, world, ["pi_gone"], note=typed)
    provider = StripeProvider(STRIPE, http_client=http)
    for _ in range(2):
        assert prepay.process_refunds(db.write, provider) == 0
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.note, refund.last_error, refund.refund_attempts) == (typed, REFUSED, 2)
        row = prepay.list_payments(s, world.staff, refund.appointment_id)[-1]
        assert (row.note, row.last_error) == (typed, REFUSED)
    http.unknown.clear()
    assert prepay.process_refunds(db.write, provider) == 1
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.status, refund.note, refund.last_error) == ("refunded", typed, "")
        assert refund.refund_attempts == 3


def test_a_refund_never_tried_goes_first_whatever_its_note_says(db, world):
    """Refunds are tried in the order of their attempts (untried first), then age: a newer
    refund whose typed note holds 'Last attempt: ' is not taken for one refused. Before, the
    order read the note, and the older refused refund was sent again first."""
    http = StripeLike(unknown={"pi_gone"})
    (refused,) = _card_fees_given_back(db, world, ["pi_gone"])
    provider = StripeProvider(STRIPE, http_client=http)
    assert prepay.process_refunds(db.write, provider, limit=1) == 0
    (later,) = _card_fees_given_back(db, world, ["pi_fee_2"], note="Last attempt: goodwill")
    assert prepay.process_refunds(db.write, provider, limit=1) == 1
    with db.read() as s:
        assert s.get(Payment, refused).refund_attempts == 1
        assert s.get(Payment, later).status == "refunded"


def test_the_migration_moves_the_last_attempt_out_of_refund_notes(db, world):
    """Refunds refused before 0011 kept Stripe's answer in the note: the migration moves it to
    the refund's last error (one attempt), keeps the typed note up to it, and leaves other
    notes alone; going back writes it into the note again."""
    typed = "Waived: the patient said 'Last attempt: call me'"
    (refused, plain) = _card_fees_given_back(db, world, ["pi_gone", "pi_fee_2"], note=typed)
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0010")
    old = f"{typed} · Last attempt: {REFUSED}"
    with db.engine.begin() as connection:  # as the refund job wrote it before 0011
        connection.execute(
            Payment.__table__.update().where(Payment.__table__.c.id == refused).values(note=old)
        )
    migrate.upgrade(db.engine)
    with db.read() as s:
        moved, untouched = s.get(Payment, refused), s.get(Payment, plain)
        assert (moved.note, moved.last_error, moved.refund_attempts) == (typed, REFUSED, 1)
        assert (untouched.note, untouched.last_error, untouched.refund_attempts) == (typed, "", 0)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0010")
    with db.engine.connect() as connection:
        notes = connection.execute(
            sa_text("SELECT note FROM payments WHERE id IN (:a, :b) ORDER BY id"),
            {"a": refused, "b": plain},
        ).scalars()
        assert list(notes) == [old, typed]
    migrate.upgrade(db.engine)


def _stopped_before_commit(db, at: int = 2):
    """db.write whose `at`-th transaction does its work, then never commits: the process
    stopped there (the refund job's second: the refunds sent, their answers not recorded)."""
    calls = []

    @contextlib.contextmanager
    def write():
        calls.append(1)
        with db.write() as s:
            yield s
            if len(calls) == at:
                raise RuntimeError("the process stopped before the commit")

    return write


def test_a_refund_made_but_not_recorded_is_not_made_again(db, world):
    """The process stops after Stripe made the refund, before our commit: the refund was
    recorded as sent before Stripe was asked (it may have been made), so the next run looks for
    it among the payment intent's refunds and records the one Stripe made instead of making a
    second (its Idempotency-Key, derived from our refund row, is the same on every attempt
    too). Before keys, the Stripe library made up a new key each time and the patient was
    refunded twice. Stripe's signed charge.refunded changes nothing meanwhile: the refund is
    due until the next run records it."""
    http = StripeLike()
    provider = StripeProvider(STRIPE, http_client=http)
    (refund_id,) = _card_fees_given_back(db, world, ["pi_fee_1"])
    with pytest.raises(RuntimeError, match="the process stopped"):
        prepay.process_refunds(_stopped_before_commit(db), provider)
    charge = {"id": "ch_fee_1", "object": "charge", "payment_intent": "pi_fee_1"}
    charge |= {"amount_refunded": 3000, "refunded": True}
    body = {"id": "evt_refunded_1", "object": "event", "type": "charge.refunded"}
    body = json.dumps(body | {"data": {"object": charge}}).encode()
    with db.write() as s:
        assert webhooks.handle(s, provider, body, signed(body)) == "ignored"
    with db.read() as s:
        assert s.get(Payment, refund_id).status == "refund_due"
    assert prepay.process_refunds(db.write, provider) == 1
    assert http.keys == [f"clinicdesk-refund-{refund_id}-of-pi_fee_1"]  # not sent again
    assert [m for m, *_ in http.calls] == ["post", "get"]  # looked for
    assert len(http.made) == 1  # one refund at Stripe
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.status, refund.provider_ref) == ("refunded", "re_1")
    assert prepay.process_refunds(db.write, provider) == 0


def test_a_refund_made_but_not_recorded_a_day_ago_is_found_at_stripe_not_made_again(db, world):
    """The process stops after Stripe made two refunds (of a payment intent, of a charge),
    before our commit, and the app is down for a day: Stripe has forgotten their
    Idempotency-Keys (it keeps them 24 hours), so sent again they would be made twice. A refund
    now goes with our refund's id in its metadata, and one due longer than REFUND_KEY_KEPT
    (23 h) is first looked for among the refunds of what it gives back: the one found is
    recorded, nothing sent. The third, cut off before it was sent, whose payment intent has a
    refund made in Stripe's dashboard (not ours), is looked for, not found, and made. A refund
    due less long is sent with its key alone (no look). Before, the first two were refunded
    twice."""
    http = StripeLike()
    provider = StripeProvider(STRIPE, http_client=http)
    made = _card_fees_given_back(db, world, ["pi_fee_1", "ch_fee_2", "pi_fee_3"])
    with pytest.raises(RuntimeError, match="the process stopped"):
        prepay.process_refunds(_stopped_before_commit(db), provider, limit=2)
    assert [method for method, *_ in http.calls] == ["post", "post"]  # fresh: no look first
    http.refund_in_dashboard("pi_fee_3", 1000)
    with db.write() as s:
        aged = update(Payment).where(Payment.id.in_(made))
        s.execute(aged.values(created_at=utcnow() - timedelta(hours=25)))
    http.a_day_passes()
    assert prepay.process_refunds(db.write, provider) == 3
    assert len(http.refunds) == 4  # the dashboard's, and ours once each
    at_stripe = [(r["payment_intent"] or r["charge"], r["metadata"]) for r in http.refunds]
    assert at_stripe == [  # each refunded once
        ("pi_fee_1", {"payment_id": str(made[0])}),
        ("ch_fee_2", {"payment_id": str(made[1])}),
        ("pi_fee_3", {}),
        ("pi_fee_3", {"payment_id": str(made[2])}),
    ]
    looked = [form for method, _, form in http.calls if method == "get"]
    assert looked == [  # the one never tried first, then those tried once
        {"payment_intent": ["pi_fee_3"], "limit": ["100"]},
        {"payment_intent": ["pi_fee_1"], "limit": ["100"]},
        {"charge": ["ch_fee_2"], "limit": ["100"]},
    ]
    with db.read() as s:
        recorded = [(s.get(Payment, i).status, s.get(Payment, i).provider_ref) for i in made]
    ours = [r["id"] for r in http.refunds if r["metadata"]]
    assert recorded == [("refunded", ref) for ref in ours]
    assert prepay.process_refunds(db.write, provider) == 0


def test_a_refund_made_before_refunds_carried_our_id_is_answered_not_refused(db, world):
    """A refund made, but not recorded, by the version before this one, which sent no metadata
    with it; the next run, by this version, sends the same key with our id in the metadata,
    parameters Stripe did not see with that key (its 400 idempotency_error). Sent again as it
    was first sent, Stripe answers with the refund it made: it is recorded, made once. Before,
    it stayed due saying Stripe refused it (so it could be handed back at the desk as well)."""
    http = StripeLike()
    provider = StripeProvider(STRIPE, http_client=http)
    (refund_id,) = _card_fees_given_back(db, world, ["pi_fee_1"])
    key = f"clinicdesk-refund-{refund_id}-of-pi_fee_1"
    http.request(  # as the version before sent it, without the metadata
        "post",
        "https://api.stripe.com/v1/refunds",
        {"Idempotency-Key": key},
        "payment_intent=pi_fee_1&amount=3000",
    )
    assert prepay.process_refunds(db.write, provider) == 1
    assert len(http.refunds) == 1 and http.keys == [key] * 3
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.status, refund.provider_ref, refund.last_error) == ("refunded", "re_1", "")


def test_a_refund_stripe_may_have_made_is_not_handed_back_until_stripe_is_asked(db, world):
    """Stripe makes the refund, but its answer never comes (a timeout): the refund may have
    been made, so it is not handed back at the desk (from the visit's Payments or the cash-up's
    list), in words saying why it waits and when it is looked at again, card payments off too.
    The next run looks for it among the payment intent's refunds by our id and records the one
    Stripe made: one refund at Stripe, and the desk told it was sent to the card. Before, any
    Stripe error counted as a refusal, and the desk handed back a refund Stripe had made."""
    http = StripeLike()
    provider = StripeProvider(STRIPE, http_client=http)
    (refund_id,) = _card_fees_given_back(db, world, ["pi_fee_1"])
    http.lose_answer = True
    assert prepay.process_refunds(db.write, provider) == 0
    assert len(http.refunds) == 1  # made at Stripe, its answer lost
    for online in (True, False):
        with db.write() as s, pytest.raises(ValidationError) as refused:
            desk.mark_refunded(s, world.staff, refund_id, "Cash", provider_online=online)
        when = (
            "the refund job's next run asks the provider"
            if online
            else "card payments are switched off: once they are on again, the refund job asks "
            "the provider"
        )
        assert str(refused.value) == (
            f"Refund P-{refund_id} is not handed back at the desk yet: the card provider did "
            "not answer its last attempt (Stripe did not answer the refund: Request to Stripe "
            f"timed out) and may have made it; {when}, then records the refund it made or "
            "sends it again, never twice (only if the provider then refuses it is it handed "
            "back at the desk)."
        )
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.status, refund.refund_attempts) == ("refund_due", 1)
        rows = prepay.list_payments(s, world.staff, refund.appointment_id)
        assert [r.unsettled for r in rows if r.id == refund_id] == [True]
        (owed,) = cashup.owed_back(s, world.staff, local_today("Europe/London"))
        assert (owed.payment_id, owed.at_desk) == (refund_id, False)
        assert "may have made it" in owed.why and "next run" in owed.why
    assert prepay.process_refunds(db.write, provider) == 1
    assert len(http.refunds) == 1  # found, not made again
    assert [(m, f) for m, _, f in http.calls if m == "get"] == [
        ("get", {"payment_intent": ["pi_fee_1"], "limit": ["100"]})
    ]
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.status, refund.provider_ref, refund.last_error) == (
            "refunded",
            http.refunds[0]["id"],
            "",
        )
    with db.write() as s, pytest.raises(Conflict, match="sent to the card by the payment"):
        desk.mark_refunded(s, world.staff, refund_id, "Cash")


def test_a_refused_look_up_is_no_answer_about_the_refund(db, world):
    """Stripe's answer to a refund is lost (it was made), and at the next run Stripe refuses to
    list the payment's refunds (a restricted key without permission to read them): that says
    nothing of the refund, so it stays one that may have been made (unanswered_at kept, not
    handed back at the desk, not sent again), and its last error says the look-up was refused
    and what to fix. Once the key may read refunds, the next run finds it. Before, the refused
    look-up counted as Stripe refusing the refund: the desk handed back one Stripe had made."""
    http = StripeLike()
    provider = StripeProvider(STRIPE, http_client=http)
    (refund_id,) = _card_fees_given_back(db, world, ["pi_fee_1"])
    http.lose_answer = True
    assert prepay.process_refunds(db.write, provider) == 0
    with db.read() as s:
        unanswered = s.get(Payment, refund_id).unanswered_at
    http.list_forbidden = True
    assert prepay.process_refunds(db.write, provider) == 0
    assert len(http.refunds) == 1 and len(http.keys) == 1  # looked for, not sent again
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.status, refund.unanswered_at) == ("refund_due", unanswered)
        assert refund.last_error.startswith("Stripe refused to look up the payment's refunds")
        assert "'rak_refund_read' permission" in refund.last_error
        assert "Give the Stripe key permission to read refunds" in refund.last_error
        rows = prepay.list_payments(s, world.staff, refund.appointment_id)
        assert [r.unsettled for r in rows if r.id == refund_id] == [True]
    with db.write() as s, pytest.raises(ValidationError, match="not handed back at the desk"):
        desk.mark_refunded(s, world.staff, refund_id, "Cash")
    http.list_forbidden = False
    assert prepay.process_refunds(db.write, provider) == 1
    assert len(http.refunds) == 1
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.status, refund.provider_ref) == ("refunded", http.refunds[0]["id"])
        assert (refund.last_error, refund.unanswered_at) == ("", None)


def test_a_refund_made_but_not_recorded_a_day_ago_whose_look_up_is_refused_waits(db, world):
    """Stripe makes the refund and the process stops before our commit, under the version
    before, which recorded nothing of an attempt before Stripe was asked (no last error, no
    unanswered_at), the app is down a day, and the key may not read refunds: the look-up is
    refused. Stripe may have made the refund (it did), so it is marked
    as one with no answer (unanswered_at), and the desk cannot hand it back (card payments on
    or off), the visit's Payments and the cash-up say it waits. Once the key may read refunds,
    the next run finds it and records it: one refund. Before, the refused look-up left it a
    refund with a last error and no unanswered_at, which the desk handed back in cash as one
    Stripe refused: the patient refunded twice."""
    http = StripeLike()
    provider = StripeProvider(STRIPE, http_client=http)
    (refund_id,) = _card_fees_given_back(db, world, ["pi_fee_1"])
    with pytest.raises(RuntimeError, match="the process stopped"):
        prepay.process_refunds(_stopped_before_commit(db), provider)
    as_before = {"unanswered_at": None, "last_error": "", "refund_attempts": 0}
    with db.write() as s:
        aged = update(Payment).where(Payment.id == refund_id)
        s.execute(aged.values(created_at=utcnow() - timedelta(hours=25), **as_before))
    http.a_day_passes()
    http.list_forbidden = True
    assert prepay.process_refunds(db.write, provider) == 0
    assert len(http.refunds) == 1 and len(http.keys) == 1  # looked for, not sent again
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.status, refund.unanswered_at is not None) == ("refund_due", True)
        assert refund.last_error.startswith("Stripe refused to look up the payment's refunds")
        rows = prepay.list_payments(s, world.staff, refund.appointment_id)
        assert [r.unsettled for r in rows if r.id == refund_id] == [True]
        (owed,) = cashup.owed_back(s, world.staff, local_today("Europe/London"))
        assert (owed.payment_id, owed.at_desk) == (refund_id, False)
    for online in (True, False):
        with db.write() as s, pytest.raises(ValidationError, match="not handed back at the desk"):
            desk.mark_refunded(s, world.staff, refund_id, "Cash", provider_online=online)
    http.list_forbidden = False
    assert prepay.process_refunds(db.write, provider) == 1
    assert len(http.refunds) == 1 and len(http.keys) == 1  # found, not made again
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.status, refund.provider_ref) == ("refunded", http.refunds[0]["id"])
        assert (refund.last_error, refund.unanswered_at) == ("", None)


def test_a_refused_refund_whose_look_up_a_day_on_is_refused_is_not_handed_back(db, world):
    """Stripe refuses a refund (a plain answer: handed back at the desk if need be), it is sent
    again later (made, for all we know: by the version before, an attempt whose answer was
    lost with the process left no trace), and a day on its look-up is refused. The earlier
    refusal says nothing of what was made since: it waits as one with no answer, looked for
    first on the next run. Before, the refusal's last error and no unanswered_at let the desk
    hand it back."""
    lookup = ProviderLookupRefused("Stripe refused to look up the payment's refunds: denied.")
    provider = RefundAnswers(ProviderError("Stripe did not make the refund: disputed"), lookup)
    (refund_id,) = _card_fees_given_back(db, world, ["pi_fee_1"])
    assert prepay.process_refunds(db.write, provider) == 0
    with db.write() as s:
        aged = update(Payment).where(Payment.id == refund_id)
        s.execute(aged.values(created_at=utcnow() - timedelta(hours=25)))
    assert prepay.process_refunds(db.write, provider) == 0
    assert provider.looked == [False, True]
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert refund.last_error == str(lookup) and refund.unanswered_at is not None
    with db.write() as s, pytest.raises(ValidationError, match="not handed back at the desk"):
        desk.mark_refunded(s, world.staff, refund_id, "Cash")


# Stripe's 403 to a restricted key without Refunds: Read, as the refund job keeps it
LOOKUP_SAID = (
    "Stripe refused to look up the payment's refunds: The provided key 'rk_test_***1234' does "
    "not have the required permissions for this endpoint on account 'acct_1'. Having the "
    "'rak_refund_read' permission would allow this request to continue. Give the Stripe key "
    "permission to read refunds (a restricted key's Refunds: Read)"
)


def test_the_desk_is_told_a_refund_waits_because_stripe_refused_to_look_it_up(db, world):
    """A refund whose answer was lost, then whose look-up Stripe refuses: the desk is told what
    happened (the provider refused to let us look the refund up, so it may have been made;
    its dashboard shows whether it was, and it is not refunded there by hand, which would
    refund it twice: the job's look-up finds only refunds carrying our id), in Stripe's words
    with what to fix (the key's Refunds: Read), then what the refund job does, card payments
    on or off: on the desk's refusal to hand it back and the cash-up's list alike. Before, the
    words began 'the card provider did not answer its last attempt', which is not what
    happened, and did not warn against refunding it in the dashboard."""
    http = StripeLike()
    provider = StripeProvider(STRIPE, http_client=http)
    (refund_id,) = _card_fees_given_back(db, world, ["pi_fee_1"])
    http.lose_answer = True
    assert prepay.process_refunds(db.write, provider) == 0
    http.list_forbidden = True
    assert prepay.process_refunds(db.write, provider) == 0
    for online in (True, False):
        job = (
            "The refund job's next run"
            if online
            else "Card payments are switched off: once they are on again, the refund job"
        )
        waits = (
            "the card provider refused to let us look the refund up, so it may have been made "
            "(the provider's dashboard shows whether it was; do not refund it there: the "
            f"refund job does). {LOOKUP_SAID}. {job} looks again, then records the refund it "
            "made or sends it again, never twice (only if the provider then refuses it is it "
            "handed back at the desk)"
        )
        with db.write() as s, pytest.raises(ValidationError) as refused:
            desk.mark_refunded(s, world.staff, refund_id, "Cash", provider_online=online)
        assert str(refused.value) == (
            f"Refund P-{refund_id} is not handed back at the desk yet: {waits}."
        )
        with db.read() as s:
            day = local_today("Europe/London")
            (owed,) = cashup.owed_back(s, world.staff, day, provider_online=online)
        assert (owed.payment_id, owed.at_desk, owed.why) == (refund_id, False, waits)


def test_a_refund_made_as_the_process_stopped_is_not_handed_back_at_the_desk(
    db, world, monkeypatch
):
    """Stripe refuses a refund (a payment intent it does not know yet): a plain answer, so it
    may be handed back at the desk. Before the desk does, the payments job sends it again,
    Stripe makes it, and the process stops before our commit. The attempt was recorded before
    Stripe was asked, so the refund waits as one Stripe may have made: not handed back (card
    payments on or off), and the next run looks for it and records it, one refund at Stripe.
    Before, nothing of the attempt was left: the refund still read as refused, the desk handed
    it back in cash and the job never looked again, the patient refunded twice."""
    http = StripeLike(unknown={"pi_fee_1"})
    provider = StripeProvider(STRIPE, http_client=http)
    monkeypatch.setattr(desk, "provider_for", lambda settings: provider)  # no network
    settings = Settings("sqlite://", "k" * 40, data_dir=None, stripe=STRIPE)
    (refund_id,) = _card_fees_given_back(db, world, ["pi_fee_1"])
    desk.refunds_job(db, settings)
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.last_error, refund.unanswered_at) == (
            "Stripe did not make the refund: No such payment_intent: 'pi_fee_1'",
            None,
        )
    http.unknown.clear()
    http.stop_after = True
    with pytest.raises(RuntimeError, match="the process stopped"):
        desk.refunds_job(db, settings)
    assert len(http.refunds) == 1  # made at Stripe, not recorded
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.last_error, refund.unanswered_at is not None) == (
            prepay.REFUND_SENDING,
            True,
        )
    for online in (True, False):
        with db.write() as s, pytest.raises(ValidationError, match="may have made it"):
            desk.mark_refunded(s, world.staff, refund_id, "Cash", provider_online=online)
    with db.read() as s:
        (owed,) = cashup.owed_back(s, world.staff, local_today("Europe/London"))
        assert (owed.payment_id, owed.at_desk) == (refund_id, False)
    desk.refunds_job(db, settings)
    assert len(http.refunds) == 1  # found, not made again
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.status, refund.provider_ref) == ("refunded", http.refunds[0]["id"])
        assert (refund.last_error, refund.unanswered_at) == ("", None)


def test_a_refund_another_run_sent_meanwhile_is_not_sent_again(db, world):
    """Two runs of the refund job at once: the second records the refund as sent and sends it
    between the first's record and its sending (the first holds no lock then). The first then
    finds it made and sends nothing: one refund at Stripe, one key sent. The second, seeing it
    recorded as sent, looks for it first and, finding none, makes it."""
    http = StripeLike()
    provider = StripeProvider(STRIPE, http_client=http)
    (refund_id,) = _card_fees_given_back(db, world, ["pi_fee_1"])
    calls, other = [], []

    @contextlib.contextmanager
    def write():
        calls.append(1)
        if len(calls) == 2:  # the first run recorded it as sent, and is about to send it
            other.append(prepay.process_refunds(db.write, provider))
        with db.write() as s:
            yield s

    assert prepay.process_refunds(write, provider) == 0
    assert other == [1]
    assert len(http.refunds) == 1 and len(http.keys) == 1
    assert [m for m, *_ in http.calls] == ["get", "post"]  # the second run looked first
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.status, refund.provider_ref) == ("refunded", http.refunds[0]["id"])
        assert (refund.last_error, refund.unanswered_at, refund.refund_attempts) == ("", None, 2)


def test_a_refund_that_never_reached_stripe_is_made_once_and_a_refusal_handed_back(db, world):
    """The connection fails before Stripe has the refund: it waits (it may have reached Stripe,
    for all we know) and the next run, finding none, makes it, once. A refund Stripe plainly
    refused (no such payment intent) is still handed back at the desk."""
    http = StripeLike(unknown={"pi_gone"})
    provider = StripeProvider(STRIPE, http_client=http)
    cut, refused = _card_fees_given_back(db, world, ["pi_fee_1", "pi_gone"])
    http.cut_off = True
    assert prepay.process_refunds(db.write, provider) == 0
    with db.write() as s, pytest.raises(ValidationError, match="may have made it"):
        desk.mark_refunded(s, world.staff, cut, "Cash")
    with db.write() as s:
        assert desk.mark_refunded(s, world.staff, refused, "Cash").status == "refunded"
    assert prepay.process_refunds(db.write, provider) == 1
    assert [(r["payment_intent"], r["metadata"]) for r in http.refunds] == [
        ("pi_fee_1", {"payment_id": str(cut)})
    ]
    with db.read() as s:
        assert (s.get(Payment, cut).status, s.get(Payment, cut).last_error) == ("refunded", "")


class RefundAnswers(FakeCheckout):
    """A card provider answering each refund sent with the next of `answers` (an exception is
    raised), and keeping whether it was asked to look for the refund first."""

    def __init__(self, *answers):
        super().__init__()
        self.answers, self.looked = list(answers), []

    def refund(self, reference, amount_cents, *, currency, key, payment_id, look_first=False):
        self.looked.append(look_first)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


# how the refund job marked an unanswered attempt in its last error before 0031
OLD_MARK = "No answer, it may have been made: "
TIMED_OUT = "Stripe did not answer the refund: Request to Stripe timed out."


def test_a_refusal_worded_like_the_old_no_answer_mark_is_handed_back_at_the_desk(db, world):
    """A provider refuses a refund in words that happen to begin as the refund job once marked
    an attempt it had no answer to. It is a refusal all the same: shown as one, handed back at
    the desk, listed so in the cash-up. Before, the words alone made it a refund the provider
    may have made: the desk could not hand it back, and the job looked for it at every run."""
    words = "No answer, it may have been made: the card was closed, nothing was refunded."
    provider = RefundAnswers(ProviderError(words))
    (refund_id,) = _card_fees_given_back(db, world, ["pi_fee_1"])
    assert prepay.process_refunds(db.write, provider) == 0
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.status, refund.last_error) == ("refund_due", words)
        rows = prepay.list_payments(s, world.staff, refund.appointment_id)
        assert [r.unsettled for r in rows if r.id == refund_id] == [False]
        (owed,) = cashup.owed_back(s, world.staff, local_today("Europe/London"))
        assert (owed.payment_id, owed.at_desk, owed.why) == (
            refund_id,
            True,
            cashup.PROVIDER_REFUSED,
        )
    with db.write() as s:
        assert desk.mark_refunded(s, world.staff, refund_id, "Cash").status == "refunded"


def test_an_unanswered_refund_keeps_when_apart_from_the_providers_words(db, world):
    """No answer to a refund: when is kept in its own column (unanswered_at), the last error
    holds the provider's words alone; the next run looks for it first, and a plain refusal
    then clears the column, so it is handed back at the desk. Before, the last error began
    with a mark of the job's own, read back for the refund's state."""
    provider = RefundAnswers(
        ProviderUnanswered(TIMED_OUT), ProviderError("Stripe did not make the refund: disputed")
    )
    (refund_id,) = _card_fees_given_back(db, world, ["pi_fee_1"])
    before = utcnow()
    assert prepay.process_refunds(db.write, provider) == 0
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.status, refund.last_error) == ("refund_due", TIMED_OUT)
        assert before <= refund.unanswered_at <= utcnow()
    with db.write() as s, pytest.raises(ValidationError, match=r"\(Stripe did not answer the "):
        desk.mark_refunded(s, world.staff, refund_id, "Cash")
    assert prepay.process_refunds(db.write, provider) == 0
    assert provider.looked == [False, True]  # looked for first after no answer
    with db.read() as s:
        refund = s.get(Payment, refund_id)
        assert (refund.last_error, refund.unanswered_at) == (
            "Stripe did not make the refund: disputed",
            None,
        )
    with db.write() as s:
        assert desk.mark_refunded(s, world.staff, refund_id, "Cash").status == "refunded"


def test_the_migration_moves_the_no_answer_mark_into_its_column(db, world):
    """0031: a refund whose last error began with the job's mark of an unanswered attempt gets
    the column (the time of the migration: the payments keep no time of their last attempt)
    and the provider's words alone; a refusal's words are left as they were. Going back writes
    the mark in front of the words again and drops the column."""
    unanswered, refused = _card_fees_given_back(db, world, ["pi_fee_1", "pi_gone"])
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0030")
    table = Payment.__table__
    marked = OLD_MARK + TIMED_OUT
    with db.engine.begin() as connection:  # as the refund job wrote them before 0031
        for payment_id, error in ((unanswered, marked), (refused, REFUSED)):
            connection.execute(
                table.update().where(table.c.id == payment_id).values(last_error=error)
            )
    before = utcnow()
    migrate.upgrade(db.engine)
    with db.read() as s:
        moved, untouched = s.get(Payment, unanswered), s.get(Payment, refused)
        assert moved.last_error == TIMED_OUT and before <= moved.unanswered_at <= utcnow()
        assert (untouched.last_error, untouched.unanswered_at) == (REFUSED, None)
        rows = prepay.list_payments(s, world.staff, moved.appointment_id)
        assert [r.id for r in rows if r.unsettled] == [unanswered]
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0030")
    with db.engine.connect() as connection:
        errors = connection.execute(
            sa_text("SELECT last_error FROM payments WHERE id IN (:a, :b) ORDER BY id"),
            {"a": unanswered, "b": refused},
        ).scalars()
        assert list(errors) == [marked, REFUSED]
    migrate.upgrade(db.engine)


def test_a_visit_of_two_services_is_paid_when_both_are(db, world):
    """Consultation (£60.00) + Peel (£90.00): £60.00 paid is part of £150.00, as the portal and
    the appointment's Payments price it. Before, the badge compared with the first service's
    price and said 'Paid'. A package is still priced as the package."""
    two = _appointment(db, world)
    package = _appointment(db, world, hours_ahead=96)
    _as_glow(db, world, package)  # £120.00
    with db.write() as s:
        peel = s.scalars(select(Service).where(Service.name == "Peel")).one()
        s.add_all(
            [
                AppointmentService(appointment_id=two, service_id=world.service_id),
                AppointmentService(appointment_id=two, service_id=peel.id, position=1),
            ]
        )
    for appointment_id, cents in ((two, 6000), (package, 6000)):
        with db.write() as s:
            desk.record_desk_payment(
                s, world.staff, appointment_id, amount_cents=cents, method="cash"
            )
    with db.read() as s:
        assert prepay.badges(s, [two, package]) == {two: "Part paid", package: "Part paid"}
        assert desk.summary(s, world.staff, two).outstanding == "£90.00"
    for appointment_id, cents in ((two, 9000), (package, 6000)):
        with db.write() as s:  # the package's second £60.00, said to be paid again
            desk.record_desk_payment(
                s, world.staff, appointment_id, amount_cents=cents, method="cash", again=True
            )
    with db.read() as s:
        assert prepay.badges(s, [two, package]) == {two: "Paid", package: "Paid"}


def test_pay_with_points_clicked_twice_spends_them_once(db, world, monkeypatch):
    """A double click on the portal's Pay with points: two requests pay the same visit at once.
    One pays it; the other, held at the patient's row until then, finds nothing left to pay.
    Before, on PostgreSQL both read the balance and what was owed before either wrote: the
    visit was paid twice and the ledger spent 1,200 points of a balance that lost only 600."""
    import threading

    appointment_id = _appointment(db, world)  # £60.00, 600 points at 10p
    with db.write() as s:
        s.get(Patient, world.patient_id).points_balance = 1000
    meeting, outcomes = Meeting(db), []
    spend = points.spend

    def spend_once_both_have_read(*args, **kwargs):
        # both requests here at once, unless the second is held at the patient's row
        meeting.wait()
        return spend(*args, **kwargs)

    monkeypatch.setattr(points, "spend", spend_once_both_have_read)

    def click():
        try:
            with db.write() as s:
                pay(s, world.patient_id, appointment_id, 600, False, DeskProvider())
            outcomes.append("paid")
        except ValidationError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["Nothing is left to pay for this appointment.", "paid"]
    assert _balance(db, world) == 400
    with db.read() as s:
        spent = s.scalars(select(LedgerEntry).where(LedgerEntry.kind == LedgerKind.POINTS_SPENT))
        assert [points.delta(e) for e in spent] == [-600]
        assert prepay.paid_cents(s, appointment_id) == 6000


# ---------------------------------------------------------------- Stripe's own minor units


class StripeCheckouts(StripeLike):
    """StripeLike that also makes Checkout sessions, refusing (as Stripe does, with its 400) a
    unit_amount below `least`; every form sent is kept in `calls`."""

    def __init__(self, least=0, **kwargs):
        super().__init__(**kwargs)
        self.least = least

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        if urlsplit(url).path != "/v1/checkout/sessions":
            return super().request(method, url, headers, post_data, _usage=_usage)
        form = parse_qs(post_data or "")
        self.calls.append((method, "/v1/checkout/sessions", form))
        if int(form["line_items[0][price_data][unit_amount]"][0]) < self.least:
            error = {
                "type": "invalid_request_error",
                "code": "amount_too_small",
                "message": "The Checkout Session's total amount due must add up to at least "
                "£0.30 gbp.",
            }
            return json.dumps({"error": error}), 400, {}
        made = {"id": f"cs_test_{len(self.calls)}", "object": "checkout.session"}
        return json.dumps(made | {"url": "https://checkout.stripe.test/c"}), 200, {}

    def sent(self, path, field):
        return [int(form[field][0]) for _, p, form in self.calls if p == path]


def _clinic_in(db, world, currency, locale, price) -> int:
    """A clinic charging in `currency` (beside the world's London one), the Consultation at
    `price` minor units as Babel counts them (whole forints, yen; fils)."""
    with db.write() as s:
        s.get(Service, world.service_id).price_cents = price
        clinic = Clinic(
            name=f"Clinic {currency}", timezone="Europe/London", locale=locale, currency=currency
        )
        s.add(clinic)
        s.flush()
        return clinic.id


def test_stripe_is_asked_for_and_answers_in_its_own_minor_units(db, world):
    """Babel counts forints, rupiah and krónur without decimals, Stripe in hundredths: a
    Ft 5,000 visit is asked of Stripe as 500000, and Stripe's 500000 back is the Ft 5,000 owed.
    Yen are whole at both (¥5,000 is 5000), fils are thousandths at both. Before, 5000 was sent
    for Ft 5,000: Stripe took Ft 50,00 from the patient and the visit showed as paid."""
    http = StripeCheckouts()
    provider = StripeProvider(STRIPE, http_client=http)
    cases = [("HUF", "hu-HU", 5000, 500000), ("JPY", "ja-JP", 5000, 5000)]
    cases += [("KWD", "ar-KW", 5120, 5120), ("ISK", "is-IS", 9000, 900000)]
    for number, (currency, locale, price, at_stripe) in enumerate(cases):
        appointment_id = _appointment(
            db, world, clinic_id=_clinic_in(db, world, currency, locale, price)
        )
        with db.write() as s:
            pay(s, world.patient_id, appointment_id, 0, True, provider)
        assert (
            http.sent("/v1/checkout/sessions", "line_items[0][price_data][unit_amount]")[-1]
            == at_stripe
        )
        with db.read() as s:
            payment = s.scalars(select(Payment).where(Payment.appointment_id == appointment_id))
            payment = payment.one()
        assert (payment.amount_cents, payment.currency) == (price, currency)
        body = event(f"evt_units_{number}", payment.provider_ref, at_stripe, currency=currency)
        with db.write() as s:
            assert webhooks.handle(s, provider, body, signed(body)) == "applied"
        with db.read() as s:
            assert s.get(Payment, payment.id).status == "paid", currency
        # what was paid, given back through Stripe, is sent in Stripe's units too
        with db.write() as s:
            s.get(Appointment, appointment_id).status = AppointmentStatus.CANCELLED
            appointment = s.get(Appointment, appointment_id)
            prepay.settle_on_cancel(s, world.manager, appointment, by_patient=False, keep_cents=0)
        assert prepay.process_refunds(db.write, provider) == 1
        assert http.sent("/v1/refunds", "amount")[-1] == at_stripe


def test_stripe_saying_a_hundredth_of_the_amount_is_not_taken_as_paid(db, world):
    """The forint checkout Stripe says was paid at 5000 (Ft 50,00) is not the Ft 5,000 owed."""
    appointment_id = _appointment(db, world, clinic_id=_clinic_in(db, world, "HUF", "hu-HU", 5000))
    with db.write() as s:
        pay(s, world.patient_id, appointment_id, 0, True, StripeProvider(STRIPE, StripeCheckouts()))
    with db.read() as s:
        reference = s.scalars(select(Payment.provider_ref)).one()
    body = event("evt_huf_cents", reference, 5000, currency="huf")
    with db.write() as s:
        assert webhooks.handle(s, StripeProvider(STRIPE), body, signed(body)) == "applied"
    with db.read() as s:
        paid = s.scalar(select(Payment).where(Payment.amount_cents == 5000))
        taken = s.scalar(select(Payment).where(Payment.provider_ref == reference))
        assert (paid.status, paid.note) == (
            "failed",
            f"Amount mismatch: provider said 5000 HUF; taken as P-{taken.id}, given back in full.",
        )
        assert (taken.status, taken.amount_cents) == ("paid", 50)  # Ft 50,00 taken


def test_a_fee_charged_to_the_card_on_file_is_sent_in_stripes_units(db, world):
    http = StripeCheckouts()
    appointment_id = _appointment(db, world, clinic_id=_clinic_in(db, world, "IDR", "id-ID", 1))
    _card_on_file(db, world, appointment_id, 1, "IDR")
    fee_id = _fee(db, world, appointment_id, cents=250000)  # Rp 250.000
    provider = StripeProvider(STRIPE, http)
    paid = desk.charge_fee_on_file(db.write, world.staff, fee_id, provider=provider)
    assert (paid.amount_cents, paid.currency) == (250000, "IDR")
    assert http.sent("/v1/payment_intents", "amount") == [25000000]


def test_an_amount_stripe_cannot_take_is_refused_before_anything_is_sent(db, world):
    """Stripe takes three-decimal currencies in tens of the minor unit only: 5.125 KWD cannot be
    paid by card (the patient is told to pay at the desk, nothing is written or sent), and a
    refund of it stays due with the reason, to be handed back at the desk."""
    http = StripeCheckouts()
    provider = StripeProvider(STRIPE, http_client=http)
    appointment_id = _appointment(db, world, clinic_id=_clinic_in(db, world, "KWD", "ar-KW", 5125))
    with pytest.raises(ValidationError) as refused, db.write() as s:
        pay(s, world.patient_id, appointment_id, 0, True, provider)
    assert str(refused.value) == (
        "The card provider cannot take 5.125 KWD: it takes KWD amounts in steps of 0.010 KWD "
        "only. Pay at the desk instead."
    )
    assert http.calls == []
    with db.read() as s:
        assert s.scalars(select(Payment)).all() == []
    with db.write() as s:
        original = Payment(
            appointment_id=appointment_id,
            patient_id=world.patient_id,
            kind="prepayment",
            method="stripe",
            status="paid",
            amount_cents=5125,
            currency="KWD",
            provider_ref="pi_kwd",
            paid_at=utcnow(),
        )
        s.add(original)
        s.flush()
        s.get(Appointment, appointment_id).status = AppointmentStatus.CANCELLED
        prepay.settle_on_cancel(
            s, world.manager, s.get(Appointment, appointment_id), by_patient=False, keep_cents=0
        )
    assert prepay.process_refunds(db.write, provider) == 0
    with db.read() as s:
        refund = s.scalars(select(Payment).where(Payment.kind == "refund")).one()
        assert refund.status == "refund_due"
        assert refund.last_error.startswith("The card provider cannot refund 5.125 KWD")
    assert http.calls == []


def test_stripe_refusing_a_checkout_is_said_not_a_crash(db, world):
    """Stripe refuses a checkout below its smallest charge (£0.30): the patient reads what
    Stripe said and that the desk takes it; nothing is written. Before, Stripe's error went
    up unhandled (the portal's generic failure) and nothing said why."""
    http = StripeCheckouts(least=30)
    appointment_id = _appointment(db, world)
    with db.write() as s:
        s.get(Service, world.service_id).price_cents = 20
    with pytest.raises(ProviderError) as refused, db.write() as s:
        pay(s, world.patient_id, appointment_id, 0, True, StripeProvider(STRIPE, http))
    assert str(refused.value) == (
        "Stripe did not start the card payment: The Checkout Session's total amount due must "
        "add up to at least £0.30 gbp. Please pay at the desk."
    )
    with db.read() as s:
        assert s.scalars(select(Payment)).all() == []


# ---------------------------------------------------------------- bounds in any currency


def _dong(db, world):
    with db.write() as s:
        clinic = s.get(Clinic, world.clinic_id)
        clinic.currency, clinic.locale = "VND", "vi-VN"


def test_a_deposit_is_bounded_as_a_price_is_and_a_refusal_says_which_bound(db, world):
    """₫20,000,000 (about £600) is a deposit a Hanoi clinic asks; before, anything above
    10,000,000 minor units was refused as 'Service #1: a deposit must be more than 0.'. Too
    large is now said as such, in the typing currency, naming the service; a negative deposit
    under another mode is refused, not stored."""
    _dong(db, world)
    with db.write() as s:
        saved = rules.save_settings(s, world.owner, *_deposit(world, 20_000_000))
    assert saved.rule_for(world.service_id) == rules.ServiceRule("deposit", 20_000_000)
    too_big = {world.service_id: rules.ServiceRule("deposit", 2 * 10**9)}
    with pytest.raises(ValidationError) as refused, db.write() as s:
        rules.save_settings(s, world.owner, rules.PaymentSettings(services=too_big))
    assert str(refused.value).replace("\xa0", " ") == (
        "Consultation: a deposit can be at most 1.000.000.000 ₫."
    )
    negative = {world.service_id: rules.ServiceRule("allowed", -500)}
    not_stored = pytest.raises(ValidationError, match="Consultation: a deposit is a whole number")
    with not_stored, db.write() as s:
        rules.save_settings(s, world.owner, rules.PaymentSettings(services=negative))
    with db.read() as s:
        assert rules.get_settings(s).rule_for(world.service_id).deposit_cents == 20_000_000


def test_a_desk_payment_larger_than_any_amount_is_refused_in_the_clinics_money(db, world):
    """A slip of the keyboard at the desk (three thousand million dong): refused with the most
    one payment can be. Before, SQLite stored it and PostgreSQL failed on its integer column
    (an unexplained error on the page)."""
    _dong(db, world)
    appointment_id = _appointment(db, world)
    with pytest.raises(ValidationError) as refused, db.write() as s:
        desk.record_desk_payment(
            s, world.staff, appointment_id, amount_cents=3 * 10**9, method="cash"
        )
    assert str(refused.value).replace("\xa0", " ") == (
        "3.000.000.000 ₫ is more than one payment can be; enter at most 1.000.000.000 ₫."
    )
    with db.write() as s:
        paid = desk.record_desk_payment(
            s, world.staff, appointment_id, amount_cents=10**9, method="cash", beyond=True
        )
    assert (paid.amount_cents, paid.currency) == (10**9, "VND")
    with db.read() as s:
        assert prepay.paid_cents(s, appointment_id) == 10**9


def test_the_same_desk_payment_pressed_twice_is_recorded_once(db, world):
    """A double click (or a press that seemed not to work) recorded the patient's £50 twice.
    The same amount by the same method from the same person within two minutes is refused,
    saying so; the patient paying it again is recorded when said; another amount, method or
    person, or a later payment, is recorded as any payment is."""
    appointment_id = _appointment(db, world)

    def pay(actor=world.staff, cents=5000, method="card", **kw):
        kw.setdefault("beyond", True)  # more than the £60 visit: the patient did pay it
        with db.write() as s:
            return desk.record_desk_payment(
                s, actor, appointment_id, amount_cents=cents, method=method, **kw
            )

    pay()
    with pytest.raises(Conflict, match="this press was not recorded again") as refused:
        pay()
    assert "£50.00 by card" in str(refused.value) and "paid this again" in str(refused.value)
    pay(again=True)  # the patient did pay twice
    pay(cents=2000)
    pay(method="cash")
    pay(actor=world.manager)  # another person at the desk
    with db.write() as s:  # three minutes later, the same amount again
        s.execute(update(Payment).values(paid_at=utcnow() - timedelta(minutes=3)))
    pay()
    with db.read() as s:
        assert prepay.paid_cents(s, appointment_id) == 5000 * 5 + 2000


def test_cancelling_a_visit_refunded_in_part_gives_back_only_what_is_left(db, world):
    """A card checkout paid after the desk took the £60.00 was refunded at once (the visit was
    paid meanwhile); the practice then cancels. What is left to give back is the cash, once:
    £60.00 in all. Before, the cancellation refunded both payments in full again: £180.00 of
    the £120.00 paid."""
    appointment_id = _appointment(db, world)  # £60.00
    with db.write() as s:
        pay(s, world.patient_id, appointment_id, 0, True, FakeCheckout())
    with db.write() as s:
        desk.record_desk_payment(s, world.staff, appointment_id, amount_cents=6000, method="cash")
    with db.read() as s:
        reference = s.scalar(select(Payment.provider_ref).where(Payment.method == "stripe"))
    with db.write() as s:
        webhooks.apply_event(s, "stripe", json.loads(event("evt_1", reference, 6000)))
    with db.write() as s:
        moves.cancel_appointment(s, world.staff, appointment_id, reason="Provider ill")
    with db.read() as s:
        refunds = s.scalars(select(Payment).where(Payment.kind == "refund").order_by(Payment.id))
        assert [(r.method, r.amount_cents) for r in refunds] == [("stripe", 6000), ("cash", 6000)]
        assert prepay.paid_cents(s, appointment_id) == 0


def test_the_practice_cancelling_a_prepaid_visit_sends_one_message_saying_both(db, world):
    """The practice cancels a visit paid with points and by card: the patient gets one
    message that says the visit is cancelled, why, and what comes back. Before, a second email
    ('Your refund from …') followed the cancellation, saying it was cancelled again."""
    appointment_id = _paid_by_card_and_points(db, world, hours_ahead=72)
    with db.write() as s:
        since = s.scalar(select(func.max(Notification.id)))
        moves.cancel_appointment(s, world.staff, appointment_id, reason="Provider ill")
    with db.read() as s:
        told = s.execute(
            select(Notification.template, Notification.body).where(
                Notification.id > since, Notification.channel == "email"
            )
        ).all()
    assert [template for template, _ in told] == ["appointment_cancelled"]
    body = told[0].body
    assert "is cancelled.\nReason: Provider ill" in body
    assert "\n100 points given back to your balance.\nRefund of £50.00 (Card).\n" in body


def test_a_desk_payment_beyond_what_is_left_to_pay_is_refused_saying_what_is_left(db, world):
    """£600.00 typed for a £60.00 visit, or £30.00 when £20.00 is left: refused, saying what is
    left to pay and how to record money the patient really paid beyond it. Before, it was
    taken without a word (the visit read paid, the till £540.00 short of the file)."""
    appointment_id = _appointment(db, world)  # £60.00

    def pay(cents, **kw):
        with db.write() as s:
            return desk.record_desk_payment(
                s, world.staff, appointment_id, amount_cents=cents, method="cash", **kw
            )

    with pytest.raises(ValidationError) as refused:
        pay(60000)
    assert str(refused.value) == (
        "£600.00 is more than is left to pay for this visit: £60.00 (price £60.00, £0.00 "
        "paid). Enter at most £60.00 and give the rest back as change, or, if the patient "
        "really paid more, tick 'The patient paid more than is owed' (the extra can then be "
        "given back)."
    )
    pay(4000)
    with pytest.raises(ValidationError, match=r"left to pay for this visit: £20.00 \(price"):
        pay(3000)
    pay(2000)
    pay(500, beyond=True)  # a patient who really paid more: recorded when said
    with db.read() as s:
        assert prepay.paid_cents(s, appointment_id) == 6500
        assert s.scalar(select(func.count()).select_from(Payment)) == 3


def test_a_payment_recorded_by_mistake_is_given_back_with_its_reason_never_more(db, world):
    """£600.00 typed for a £60.00 cash payment: the desk gives back £540.00 with the reason,
    the payment stays and the visit reads paid; what is left can be given back once, never
    more, and cancelling afterwards refunds only what is left. Before, a payment recorded by
    mistake could not be put right at all."""
    appointment_id, other_id = _appointment(db, world), _appointment(db, world)  # £60.00
    with db.write() as s:  # as it was taken before more than is owed was refused
        typo = desk.record_desk_payment(
            s, world.staff, appointment_id, amount_cents=60000, method="cash", beyond=True
        ).id
        points_paid = pay(s, world.patient_id, other_id, 10, False, DeskProvider())
        assert points_paid.message.startswith("Paid £1.00 with 10 points")
    with db.write() as s, pytest.raises(ValidationError) as refused:
        desk.refund_payment(s, world.staff, typo, amount_cents=60001, reason=" ")
    assert str(refused.value) == "Say why the money is given back (it is kept with the refund)."
    with db.write() as s, pytest.raises(ValidationError, match="give back at most £600.00"):
        desk.refund_payment(s, world.staff, typo, amount_cents=60001, reason="Typo")
    with db.write() as s:
        back = desk.refund_payment(
            s, world.staff, typo, amount_cents=54000, reason="Typed 600 for 60"
        )
        assert (back.kind, back.status, back.refund_of_id) == ("refund", "refunded", typo)
    with db.read() as s:
        assert prepay.paid_cents(s, appointment_id) == 6000
        assert prepay.badges(s, [appointment_id]) == {appointment_id: "Paid"}
        assert s.get(Payment, typo).amount_cents == 60000  # history kept
        info = desk.summary(s, world.staff, appointment_id)
        assert [r.label for r in info.refundable] == [f"P-{typo}, Cash £600.00: £60.00 left"]
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "refund_recorded")).one()
        assert event.details["reason"] == "Typed 600 for 60"
    with db.write() as s, pytest.raises(ValidationError, match="give back at most £60.00"):
        desk.refund_payment(s, world.staff, typo, amount_cents=6001, reason="Again")
    with db.write() as s:
        desk.refund_payment(s, world.staff, typo, amount_cents=6000, reason="Moved to free")
    with db.write() as s, pytest.raises(Conflict, match="given back in full already"):
        desk.refund_payment(s, world.staff, typo, amount_cents=1, reason="Once more")
    with db.write() as s, pytest.raises(ValidationError, match="is a refund, not a payment"):
        desk.refund_payment(s, world.staff, back.id, amount_cents=1, reason="x")
    with db.write() as s, pytest.raises(ValidationError, match="paid with points"):
        points_id = s.scalar(select(Payment.id).where(Payment.method == "points"))
        desk.refund_payment(s, world.staff, points_id, amount_cents=1, reason="x")
    with db.write() as s:
        moves.cancel_appointment(s, world.staff, appointment_id, reason="Clinic closed")
    with db.read() as s:
        refunds = s.scalars(select(Payment.amount_cents).where(Payment.kind == "refund")).all()
        assert sorted(refunds) == [6000, 54000]  # nothing more was left to give back


def test_a_card_payment_through_the_provider_is_given_back_by_the_refund_job(db, world):
    appointment_id = _appointment(db, world)
    fake = FakeCheckout()
    with db.write() as s:
        pay(s, world.patient_id, appointment_id, 0, True, fake)
    with db.write() as s:
        reference = s.scalar(select(Payment.provider_ref).where(Payment.method == "stripe"))
        paid = prepay.checkout_completed(s, reference, 6000, "cus_1")
        back = desk.refund_payment(
            s, world.staff, paid.id, amount_cents=1500, reason="Moved to a cheaper service"
        )
        assert (back.status, back.method) == ("refund_due", "stripe")
    assert prepay.process_refunds(db.write, fake) == 1
    assert fake.refunds == [(reference, 1500)]
    with db.read() as s:
        assert prepay.paid_cents(s, appointment_id) == 4500
        # the patient is told, as the receipt told them of the payment (before: nothing)
        (told,) = s.scalars(
            select(Notification.body).where(Notification.template == "payment_given_back")
        ).all()
        assert "We have given back £15.00 of what you paid for" in told
        assert f"(P-{back.id}): it goes back to your card" in told


def test_two_desks_giving_back_the_same_payment_give_it_back_once(db, world):
    """Two people give back the whole of the same cash payment at once: one refund is
    recorded, the other is told it was given back already (on PostgreSQL, the payment's row
    lock makes the second read what the first gave back)."""
    import threading

    appointment_id = _appointment(db, world)
    with db.write() as s:
        paid = desk.record_desk_payment(
            s, world.staff, appointment_id, amount_cents=6000, method="cash"
        ).id
    barrier, outcomes = threading.Barrier(2), []

    def give_back(actor):
        barrier.wait()
        try:
            with db.write() as s:
                desk.refund_payment(s, actor, paid, amount_cents=6000, reason="Mistake")
            outcomes.append("given back")
        except Conflict as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=give_back, args=(a,)) for a in (world.staff, world.manager)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [
        f"P-{paid} (£60.00) has been given back in full already.",
        "given back",
    ]
    with db.read() as s:
        assert prepay.paid_cents(s, appointment_id) == 0


def test_a_late_fee_kept_from_a_card_prepayment_and_waived_goes_back_to_the_card(db, world):
    """£25.00 of a £50.00 card prepayment kept for a late-cancellation fee, then the fee waived:
    the £25.00 kept is due back to the card the patient paid with, and the refund job sends it
    through that checkout. Before, the waiver gave back nothing (only fees paid at the desk or
    to the card on file counted as paid) and the practice kept a fee it had waived."""
    appointment_id = _paid_by_card_and_points(db, world, hours_ahead=5)
    _late_policy(db, world, fee=2500, pts=0)
    with db.write() as s:
        moves.cancel_appointment(
            s, world.staff, appointment_id, reason="Patient asked", by_patient=True
        )
    with db.read() as s:
        kept = s.scalars(select(Payment).where(Payment.kind == "fee")).one()
        reference = s.get(Payment, kept.refund_of_id).provider_ref
    with db.write() as s:
        _, refunds, *_ = desk.waive_fee(s, world.manager, kept.ledger_entry_id, "Hospital")
        assert [(r.kind, r.method, r.status, r.amount_cents) for r in refunds] == [
            ("fee_refund", "stripe", "refund_due", 2500)
        ]
    fake = FakeCheckout()
    assert prepay.process_refunds(db.write, fake) == 2  # the cancellation's £25.00, the fee's
    assert sorted(fake.refunds) == [(reference, 2500), (reference, 2500)]
    with db.read() as s:
        assert "We have given back £25.00" in _mail(s, "payment_given_back")
        assert prepay.paid_cents(s, appointment_id) == 0


def test_a_late_fee_part_kept_part_paid_at_the_desk_and_waived_is_all_given_back(db, world):
    """£15.00 cash kept of a £25.00 late fee, the other £10.00 paid at the desk, then the fee
    waived: all £25.00 is due back at the desk, once. Before, only the £10.00 was."""
    appointment_id = _appointment(db, world, hours_ahead=5)
    _late_policy(db, world, fee=2500, pts=0, approval=True)
    with db.write() as s:
        desk.record_desk_payment(s, world.staff, appointment_id, amount_cents=1500, method="cash")
    _cancel_late_from_the_portal(db, world, appointment_id)
    with db.read() as s:
        (fee,) = desk.unpaid_fees(s, world.staff, appointment_id)
    with db.write() as s:
        desk.pay_fee(s, world.staff, fee.ledger_entry_id, method="card", provider=DeskProvider())
    with db.write() as s:
        _, refunds, *_ = desk.waive_fee(s, world.manager, fee.ledger_entry_id, "Goodwill")
        assert sorted((r.method, r.amount_cents) for r in refunds) == [
            ("card", 1000),
            ("cash", 1500),
        ]
    with db.write() as s, pytest.raises(Conflict, match="already waived"):
        desk.waive_fee(s, world.manager, fee.ledger_entry_id, "Again")
    with db.read() as s:
        assert len(s.scalars(select(Payment).where(Payment.kind == "fee_refund")).all()) == 2


def test_a_desk_give_back_while_the_visit_is_cancelled_gives_the_money_back_once(
    db, world, monkeypatch
):
    """The desk gives back a £60.00 cash payment while a colleague cancels the visit (which
    gives back everything paid): the patient gets £60.00 back, once, and the desk that comes
    second is told it was given back already. Before, on PostgreSQL the two deadlocked (the
    give-back held the payment's row and waited for the visit's, the cancellation held the
    visit's and waited for the payment's): the desk saw a database error, not a sentence."""
    import threading

    appointment_id = _appointment(db, world)
    with db.write() as s:
        paid = desk.record_desk_payment(
            s, world.staff, appointment_id, amount_cents=6000, method="cash"
        ).id
    meeting, outcomes = Meeting(db), []
    read = prepay.given_back

    def read_once_both_have_read(*args, **kwargs):
        # both here at once, unless the second is held at the payment's row
        left = read(*args, **kwargs)
        meeting.wait()
        return left

    monkeypatch.setattr(prepay, "given_back", read_once_both_have_read)
    monkeypatch.setattr(desk, "given_back", read_once_both_have_read)

    def give_back():
        try:
            with db.write() as s:
                desk.refund_payment(s, world.staff, paid, amount_cents=6000, reason="Mistake")
            outcomes.append("given back")
        except Conflict as error:
            outcomes.append(str(error))

    def cancel():
        with db.write() as s:
            moves.cancel_appointment(s, world.manager, appointment_id, reason="Provider ill")
        outcomes.append("cancelled")

    threads = [threading.Thread(target=give_back), threading.Thread(target=cancel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) in (
        ["cancelled", "given back"],
        [f"P-{paid} (£60.00) has been given back in full already.", "cancelled"],
    )
    with db.read() as s:
        back = s.scalars(select(Payment.amount_cents).where(Payment.kind == "refund")).all()
        assert sum(back) == 6000
        assert prepay.paid_cents(s, appointment_id) == 0


def test_points_paid_in_the_portal_while_the_clinic_cancels_come_back(db, world, monkeypatch):
    """The patient pays with points in the portal while the clinic cancels the visit: either
    the payment comes first and the cancellation gives every point back, or the cancellation
    comes first and the portal says the visit cannot be paid. Before, on PostgreSQL the two
    deadlocked (the portal held the patient's row and waited for the visit's, the cancellation
    held the visit's and waited for the patient's to give back the points paid earlier): one
    of them failed with a database error."""
    import threading

    appointment_id = _appointment(db, world)  # £60.00
    with db.write() as s:
        s.get(Patient, world.patient_id).points_balance = 1000
        pay(s, world.patient_id, appointment_id, 100, False, DeskProvider())
    meeting, outcomes = Meeting(db), []
    spend, read = points.spend, prepay.given_back

    def meet():
        # both here at once, unless one is held at a row the other locked
        meeting.wait()

    def spend_when_both_have_read(*args, **kwargs):
        meet()
        return spend(*args, **kwargs)

    def read_and_meet(*args, **kwargs):
        left = read(*args, **kwargs)
        meet()
        return left

    monkeypatch.setattr(points, "spend", spend_when_both_have_read)
    monkeypatch.setattr(prepay, "given_back", read_and_meet)

    def portal():
        try:
            with db.write() as s:
                pay(s, world.patient_id, appointment_id, 500, False, DeskProvider())
            outcomes.append("paid")
        except ValidationError as error:
            outcomes.append(str(error))

    def clinic():
        with db.write() as s:
            moves.cancel_appointment(s, world.manager, appointment_id, reason="Provider ill")
        outcomes.append("cancelled")

    threads = [threading.Thread(target=portal), threading.Thread(target=clinic)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) in (
        ["cancelled", "paid"],
        ["Only a scheduled appointment can be paid in advance.", "cancelled"],
    )
    assert _balance(db, world) == 1000
    with db.read() as s:
        assert prepay.paid_cents(s, appointment_id) == 0


def test_no_desk_payment_is_taken_for_a_cancelled_visit_its_fee_is_paid_as_a_fee(db, world):
    """A visit cancelled late with a £25.00 fee: the desk records money for the visit itself.
    Nothing is owed for a cancelled visit, so the payment is refused, saying the fee is paid as
    a fee; paid so, the fee is no longer owed. Before, £25.00 was taken as a payment of the
    cancelled visit ('Part paid') and the fee stayed owed, to be taken again."""
    appointment_id = _appointment(db, world, hours_ahead=5)
    _late_policy(db, world, fee=2500, pts=0)
    with db.write() as s:
        moves.cancel_appointment(
            s, world.staff, appointment_id, reason="Patient asked", by_patient=True
        )
    with db.write() as s, pytest.raises(ValidationError) as refused:
        desk.record_desk_payment(s, world.staff, appointment_id, amount_cents=2500, method="cash")
    assert str(refused.value) == (
        f"Appointment #{appointment_id} was cancelled: nothing is owed for the visit itself, so "
        "no payment of it is recorded. A late-cancellation or no-show fee is recorded as its "
        "fee ('Record fee paid')."
    )
    with db.read() as s:
        assert prepay.paid_cents(s, appointment_id) == 0
        (fee,) = desk.unpaid_fees(s, world.staff, appointment_id)
    with db.write() as s:
        desk.pay_fee(s, world.staff, fee.ledger_entry_id, method="cash", provider=DeskProvider())
    with db.read() as s:
        assert desk.unpaid_fees(s, world.staff, appointment_id) == []


def test_money_given_back_to_the_card_by_the_refund_job_reads_sent_not_handed_back(db, world):
    """'Give money back' on a card payment made through the provider: the refund job sends it,
    and the visit's payments say it was sent to the card, not handed back at the desk (a second
    press says the same). Before, the desk that asked for it was taken for the one who handed it
    back: 'handed back at the desk', though no money left the till."""
    appointment_id = _appointment(db, world)
    fake = FakeCheckout()
    with db.write() as s:
        pay(s, world.patient_id, appointment_id, 0, True, fake)
    with db.write() as s:
        reference = s.scalar(select(Payment.provider_ref).where(Payment.method == "stripe"))
        paid = prepay.checkout_completed(s, reference, 6000, "cus_1")
        back = desk.refund_payment(s, world.staff, paid.id, amount_cents=1500, reason="Cheaper")
    assert prepay.process_refunds(db.write, fake) == 1
    with db.read() as s:
        (row,) = [
            r for r in prepay.list_payments(s, world.staff, appointment_id) if r.id == back.id
        ]
        assert (row.status, row.handed_back) == ("refunded", False)
        # who asked for it is in the audit log
        asked = select(AuditEvent.user_id).where(AuditEvent.action == "payment_refund_due")
        assert s.scalars(asked).all() == [world.staff.user_id]
    with db.write() as s, pytest.raises(Conflict, match="sent to the card by the payment provider"):
        desk.mark_refunded(s, world.staff, back.id)


# ---------------------------------------------------------------- the card on file, once


class CardsOnFile(stripe.HTTPClient):
    """Stripe's HTTP layer for a charge to the card on file, as Stripe answers: a request sent
    again with the Idempotency-Key of an earlier one is answered with that one's answer (the
    charge made, or the decline), not made again; `decline` declines new ones (Stripe's 402)."""

    name = "cards-on-file"

    def __init__(self):
        super().__init__()
        import threading

        self.lock = threading.Lock()
        self.decline = False
        self.status = "succeeded"  # what Stripe says of a new charge ('processing': not yet)
        self.keys: list[str] = []  # the Idempotency-Key of each charge asked for
        self.answers: dict[str, tuple[str, int]] = {}  # by key
        self.made: list[str] = []  # the payment intents made (money taken)
        self.intents: dict[str, dict] = {}  # each payment intent as Stripe has it now
        self.asked: list[str] = []  # the payment intents retrieved
        self.cancels: list[tuple[str, str, str]] = []  # intent, Idempotency-Key, reason given
        self.after_asked: dict[str, str] = {}  # the state an intent reaches once it is asked of
        self.lose_answer = False  # the next charge is made, and its answer lost (a timeout)

    def settle(self, intent: str, status: str, **more) -> None:
        """Stripe finishes the payment intent (no webhook sent: lost, or the endpoint down)."""
        self.intents[intent] |= {"status": status, **more}

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        path = urlsplit(url).path
        if path == "/v1/payment_methods":
            methods = [{"id": "pm_card_1", "object": "payment_method"}]
            return json.dumps({"object": "list", "data": methods, "has_more": False}), 200, {}
        if method == "get" and path.startswith("/v1/payment_intents/"):
            with self.lock:
                intent = path.rsplit("/", 1)[1]
                self.asked.append(intent)
                body = json.dumps(self.intents[intent])
                if intent in self.after_asked:  # it ends between this answer and the next
                    self.settle(intent, self.after_asked.pop(intent))
                return body, 200, {}
        if method == "post" and path.endswith("/cancel"):
            return self._cancel(path.split("/")[3], headers.get("Idempotency-Key"), post_data)
        with self.lock:
            key = headers.get("Idempotency-Key")
            self.keys.append(key)
            if key in self.answers:
                body, status = self.answers[key]
                return body, status, {"Idempotent-Replayed": "true"}
            if self.decline:
                error = {"type": "card_error", "code": "card_declined"}
                error["message"] = "Your card was declined."
                self.answers[key] = (json.dumps({"error": error}), 402)
            else:
                self.made.append(f"pi_{len(self.made) + 1}")
                intent = {"id": self.made[-1], "object": "payment_intent", "status": self.status}
                self.answers[key] = (json.dumps(intent), 200)
                self.intents[intent["id"]] = dict(intent)
            body, status = self.answers[key]
            if self.lose_answer:
                self.lose_answer = False
                raise stripe.APIConnectionError("Request to Stripe timed out.")
            return body, status, {}

    def _cancel(self, intent: str, key: str, post_data) -> tuple[str, int, dict]:
        """Stripe's cancel: an unfinished intent is canceled; one that succeeded, is processing
        or was canceled is refused (400, payment_intent_unexpected_state)."""
        form = post_data.decode() if isinstance(post_data, bytes) else post_data or ""
        reason = parse_qs(form).get("cancellation_reason", [""])[0]
        with self.lock:
            self.cancels.append((intent, key, reason))
            if key in self.answers:
                body, status = self.answers[key]
                return body, status, {"Idempotent-Replayed": "true"}
            now = self.intents[intent]["status"]
            if now in ("requires_payment_method", "requires_confirmation", "requires_action"):
                self.settle(intent, "canceled", cancellation_reason=reason)
                self.answers[key] = (json.dumps(self.intents[intent]), 200)
            else:
                error = {"type": "invalid_request_error", "code": "payment_intent_unexpected_state"}
                error["message"] = f"You cannot cancel this PaymentIntent: its status is {now}."
                self.answers[key] = (json.dumps({"error": error}), 400)
            body, status = self.answers[key]
            return body, status, {}

    def close(self):
        pass


def _stopping(db, at: int):
    """db.write whose `at`-th transaction never commits: the process stopped there."""
    calls = []

    @contextlib.contextmanager
    def write():
        calls.append(1)
        if len(calls) == at:
            raise RuntimeError("the process stopped")
        with db.write() as s:
            yield s

    return write


def _fee_payments(db, fee_id):
    with db.read() as s:
        query = select(Payment).where(Payment.ledger_entry_id == fee_id).order_by(Payment.id)
        return [(p.status, p.amount_cents, p.provider_ref) for p in s.scalars(query)]


def test_a_charge_to_the_card_on_file_cut_off_before_our_commit_is_not_taken_twice(db, world):
    """Stripe takes the fee, then the process stops before the payment is recorded. Before, the
    charge had no idempotency key of ours (the library made a new one each time): pressing
    again took the fee a second time. The attempt is now recorded, with its key, before Stripe
    is asked: pressing again sends the same key, Stripe answers with the first charge, and the
    record is completed from it. Meanwhile the desk is told to finish it, not to take cash."""
    http = CardsOnFile()
    provider = StripeProvider(STRIPE, http_client=http)
    appointment_id = _appointment(db, world)
    _card_on_file(db, world, appointment_id, 6000, "GBP")
    fee_id = _fee(db, world, appointment_id)
    with pytest.raises(RuntimeError, match="the process stopped"):
        desk.charge_fee_on_file(_stopping(db, 2), world.staff, fee_id, provider=provider)
    assert http.made == ["pi_1"]
    with db.write() as s, pytest.raises(Conflict) as refused:
        desk.pay_fee(s, world.staff, fee_id, method="cash", provider=provider)
    assert "press 'Charge the card on file' again to finish it" in str(refused.value)
    paid = desk.charge_fee_on_file(db.write, world.staff, fee_id, provider=provider)
    assert (paid.status, paid.provider_ref, paid.amount_cents) == ("paid", "pi_1", 3000)
    assert http.made == ["pi_1"] and len(set(http.keys)) == 1 and len(http.keys) == 2
    assert _fee_payments(db, fee_id) == [("paid", 3000, "pi_1")]
    with db.read() as s:
        assert desk.unpaid_fees(s, world.staff, appointment_id) == []


def test_a_charge_whose_answer_never_came_is_not_failed_and_never_taken_twice(db, world):
    """Stripe takes the fee, but its answer never reaches us (a timeout). Before, the attempt
    was recorded as failed, the fee owed again: the next press was a new charge with a new key,
    and the patient paid twice. The attempt now stays pending, the desk is told it may have
    been taken; the next press (or the payments job) sends it again with the same key, and
    Stripe answers with the first charge. A day on, when Stripe forgets the key, a press no
    longer sends it (it could be taken twice) but fails it saying what to check, as the
    payments job does (before, the press sent it again)."""
    http = CardsOnFile()
    provider = StripeProvider(STRIPE, http_client=http)
    appointment_id = _appointment(db, world)
    _card_on_file(db, world, appointment_id, 6000, "GBP")
    fee_id = _fee(db, world, appointment_id)
    http.lose_answer = True
    with pytest.raises(ProviderError) as unanswered:
        desk.charge_fee_on_file(db.write, world.staff, fee_id, provider=provider)
    assert _fee_payments(db, fee_id) == [("pending", 3000, None)]
    assert "may have been taken" in str(unanswered.value)
    with db.write() as s, pytest.raises(Conflict, match="was started and not finished"):
        desk.pay_fee(s, world.staff, fee_id, method="cash", provider=provider)
    paid = desk.charge_fee_on_file(db.write, world.staff, fee_id, provider=provider)
    assert (paid.status, paid.provider_ref) == ("paid", "pi_1")
    assert http.made == ["pi_1"] and len(set(http.keys)) == 1
    assert _fee_payments(db, fee_id) == [("paid", 3000, "pi_1")]

    # one still unanswered a day on (the payments job down too) is not sent again by a press:
    # Stripe forgets its key at 24 hours and could take it twice
    other = _fee(db, world, appointment_id, 1500)
    http.lose_answer = True
    with pytest.raises(ProviderError):
        desk.charge_fee_on_file(db.write, world.staff, other, provider=provider)
    _age(db, other, timedelta(hours=23, minutes=1))
    with pytest.raises(ProviderError, match="never answered") as gone:
        desk.charge_fee_on_file(db.write, world.staff, other, provider=provider)
    assert "Check the card provider's dashboard" in str(gone.value)
    assert _fee_payments(db, other) == [("failed", 1500, None)]
    assert http.made == ["pi_1", "pi_2"] and len(http.keys) == 3  # pi_2's key sent once


def test_a_declined_charge_is_kept_and_the_next_attempt_is_a_new_one(db, world):
    """Stripe declines the card: the attempt is kept as failed with what Stripe said, the fee
    is still owed, and pressing again (a new card on file, funds in) is a new charge with a
    new key, which Stripe makes (the declined one's key would only repeat the decline)."""
    http = CardsOnFile()
    http.decline = True
    provider = StripeProvider(STRIPE, http_client=http)
    appointment_id = _appointment(db, world)
    _card_on_file(db, world, appointment_id, 6000, "GBP")
    fee_id = _fee(db, world, appointment_id)
    with pytest.raises(ProviderError) as declined:
        desk.charge_fee_on_file(db.write, world.staff, fee_id, provider=provider)
    said = "Stripe did not charge the card on file: Your card was declined."
    assert str(declined.value) == said
    with db.read() as s:
        (attempt,) = s.scalars(select(Payment).where(Payment.ledger_entry_id == fee_id))
        assert (attempt.status, attempt.last_error) == ("failed", said)
        assert [f.amount for f in desk.unpaid_fees(s, world.staff, appointment_id)] == ["£30.00"]
    http.decline = False
    paid = desk.charge_fee_on_file(db.write, world.staff, fee_id, provider=provider)
    assert (paid.status, paid.provider_ref) == ("paid", "pi_1")
    assert len(http.keys) == 2 and http.keys[0] != http.keys[1]
    assert _fee_payments(db, fee_id) == [("failed", 3000, None), ("paid", 3000, "pi_1")]


def test_two_desks_charging_the_card_on_file_at_once_take_the_fee_once(db, world):
    """Two presses of 'Charge the card on file' at once (two desks): the second waits for the
    first's attempt, sends its key, and is told the fee is paid; Stripe takes the fee once."""
    import threading

    http = CardsOnFile()
    provider = StripeProvider(STRIPE, http_client=http)
    appointment_id = _appointment(db, world)
    _card_on_file(db, world, appointment_id, 6000, "GBP")
    fee_id = _fee(db, world, appointment_id)
    barrier, outcomes = threading.Barrier(2), []

    def press():
        barrier.wait()
        try:
            desk.charge_fee_on_file(db.write, world.staff, fee_id, provider=provider)
            outcomes.append("paid")
        except Conflict as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=press) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [f"Fee #{fee_id} is paid already.", "paid"]
    assert http.made == ["pi_1"]
    assert _fee_payments(db, fee_id) == [("paid", 3000, "pi_1")]


def test_a_charge_answered_while_another_desk_reads_the_fee_is_not_taken_again(db, world):
    """Desk A's charge is answered and recorded while desk B, pressing too, has read the fee as
    owed but not yet looked for an attempt under way. Before, A's answer did not wait for the
    fee B held: B then found no attempt pending and sent a new one, and Stripe took the fee
    twice (one run in five of the two-desk race on PostgreSQL). Recording an answer now locks
    the fee first: B sends A's own key, and one desk is told it is paid already."""
    import threading

    from sqlalchemy import event

    a_at_stripe, b_inside, a_done = threading.Event(), threading.Event(), threading.Event()

    class Held(CardsOnFile):
        def request(self, method, url, headers, post_data=None, *, _usage=None):
            if threading.current_thread().name == "desk-a" and "payment_intents" in url:
                a_at_stripe.set()
                b_inside.wait(10)
            return super().request(method, url, headers, post_data, _usage=_usage)

    http = Held()
    provider = StripeProvider(STRIPE, http_client=http)
    appointment_id = _appointment(db, world)
    _card_on_file(db, world, appointment_id, 6000, "GBP")
    fee_id = _fee(db, world, appointment_id)

    def between_owed_and_attempt(conn, cursor, statement, parameters, context, executemany):
        # desk B holds the fee read owed and is about to look for an attempt under way
        # (desk._charge_started): A's answer comes in now
        looks = "FROM payments" in statement and "ORDER BY payments.id" in statement
        if threading.current_thread().name == "desk-b" and looks and not b_inside.is_set():
            b_inside.set()
            a_done.wait(1)  # before: A commits at once; now: A waits for the fee B holds

    outcomes = []

    def press():
        try:
            desk.charge_fee_on_file(db.write, world.staff, fee_id, provider=provider)
            outcomes.append("paid")
        except Conflict as error:
            outcomes.append(str(error))
        if threading.current_thread().name == "desk-a":
            a_done.set()

    event.listen(db.engine, "before_cursor_execute", between_owed_and_attempt)
    try:
        a = threading.Thread(target=press, name="desk-a")
        a.start()
        assert a_at_stripe.wait(10)
        b = threading.Thread(target=press, name="desk-b")
        b.start()
        a.join()
        b.join()
    finally:
        event.remove(db.engine, "before_cursor_execute", between_owed_and_attempt)
    assert http.made == ["pi_1"]
    assert sorted(outcomes) == [f"Fee #{fee_id} is paid already.", "paid"]
    assert _fee_payments(db, fee_id) == [("paid", 3000, "pi_1")]


def intent_event(event_id: str, intent: str, kind: str, said: str = "") -> bytes:
    """A Stripe event about a payment intent (a charge to the card on file)."""
    obj = {"id": intent, "object": "payment_intent", "amount": 3000, "currency": "gbp"}
    if said:
        obj["last_payment_error"] = {"message": said}
    body = {"id": event_id, "object": "event", "type": kind, "data": {"object": obj}}
    return json.dumps(body).encode()


def _money_in(db, world) -> list[int]:
    """The cents of every movement in today's cash-up (any clinic)."""
    today = local_today("UTC")
    with db.read() as s:
        rows = cashup.movements(s, today - timedelta(days=1), today + timedelta(days=1))
        return [r.cents for r in rows]


def test_a_charge_stripe_has_not_finished_is_pending_until_its_webhook(db, world):
    """Stripe answers the charge to the card on file with 'processing'. Before, the fee was
    recorded as paid (money in the cash-up that had not come in). It now stays pending, counted
    nowhere, and the desk is told; Stripe's signed payment_intent.succeeded completes it once
    (a replay changes nothing), and payment_intent.payment_failed fails another, the fee owed
    and the next press a new charge."""
    http = CardsOnFile()
    http.status = "processing"
    provider = StripeProvider(STRIPE, http_client=http)
    appointment_id = _appointment(db, world)
    _card_on_file(db, world, appointment_id, 6000, "GBP")
    fee_id = _fee(db, world, appointment_id)
    before = _money_in(db, world)
    with pytest.raises(desk.ChargePending, match=r"processing\): the fee is not paid yet"):
        desk.charge_fee_on_file(db.write, world.staff, fee_id, provider=provider)
    assert _fee_payments(db, fee_id) == [("pending", 3000, "pi_1")]
    assert _money_in(db, world) == before
    with db.read() as s:
        assert [f.amount for f in desk.unpaid_fees(s, world.staff, appointment_id)] == ["£30.00"]
    with db.write() as s, pytest.raises(Conflict, match="still finishing the charge"):
        desk.pay_fee(s, world.staff, fee_id, method="cash", provider=provider)
    body = intent_event("evt_pi_1", "pi_1", "payment_intent.succeeded")
    with db.write() as s:
        assert webhooks.handle(s, provider, body, signed(body)) == "applied"
    with db.write() as s:
        assert webhooks.handle(s, provider, body, signed(body)) == "duplicate"
    assert _fee_payments(db, fee_id) == [("paid", 3000, "pi_1")]
    assert _money_in(db, world) == [*before, 3000]
    with db.read() as s:
        assert desk.unpaid_fees(s, world.staff, appointment_id) == []

    other = _fee(db, world, appointment_id, 1500)
    with pytest.raises(desk.ChargePending):
        desk.charge_fee_on_file(db.write, world.staff, other, provider=provider)
    body = intent_event("evt_pi_2", "pi_2", "payment_intent.payment_failed", "Insufficient funds.")
    with db.write() as s:
        assert webhooks.handle(s, provider, body, signed(body)) == "applied"
    with db.read() as s:
        (attempt,) = s.scalars(select(Payment).where(Payment.ledger_entry_id == other))
        said = "Stripe did not charge the card on file: Insufficient funds."
        assert (attempt.status, attempt.last_error) == ("failed", said)
        assert [f.amount for f in desk.unpaid_fees(s, world.staff, appointment_id)] == ["£15.00"]
    http.status = "succeeded"
    paid = desk.charge_fee_on_file(db.write, world.staff, other, provider=provider)
    assert (paid.status, paid.provider_ref) == ("paid", "pi_3")


def _age(db, fee_id, by: timedelta) -> None:
    with db.write() as s:
        for p in s.scalars(select(Payment).where(Payment.ledger_entry_id == fee_id)):
            p.created_at = utcnow() - by


def test_the_payments_job_finishes_a_charge_cut_off_before_stripe_answered(db, world, monkeypatch):
    """Stripe takes the fee and the process stops before its answer is recorded. Before, the
    attempt stayed pending until the desk pressed again. The payments job now sends it again,
    as the system, with the same key once it is a few minutes old (not while a desk may still
    be waiting for Stripe): Stripe answers with the first charge and the fee is paid, taken
    once. One never answered for 23 hours is marked failed in words for the desk instead of
    being sent (Stripe forgets the key at 24 hours: it could be charged twice)."""
    http = CardsOnFile()
    provider = StripeProvider(STRIPE, http_client=http)
    appointment_id = _appointment(db, world)
    _card_on_file(db, world, appointment_id, 6000, "GBP")
    fee_id, old_id = _fee(db, world, appointment_id), _fee(db, world, appointment_id, 1500)
    for fee in (fee_id, old_id):
        with pytest.raises(RuntimeError, match="the process stopped"):
            desk.charge_fee_on_file(_stopping(db, 2), world.staff, fee, provider=provider)
    assert http.made == ["pi_1", "pi_2"]
    assert desk.finish_charges(db.write, provider) == 0  # too fresh: a desk may be waiting
    assert _fee_payments(db, fee_id) == [("pending", 3000, None)]
    _age(db, fee_id, timedelta(minutes=6))
    _age(db, old_id, timedelta(hours=23, minutes=1))
    monkeypatch.setattr(desk, "provider_for", lambda settings: provider)  # no network
    desk.refunds_job(db, Settings("sqlite://", "k" * 40, data_dir=None, stripe=STRIPE))
    assert _fee_payments(db, fee_id) == [("paid", 3000, "pi_1")]
    assert http.made == ["pi_1", "pi_2"] and len(http.keys) == 3  # pi_1's key, sent again
    with db.read() as s:
        (old,) = s.scalars(select(Payment).where(Payment.ledger_entry_id == old_id))
        assert old.status == "failed" and "never answered" in old.last_error
        assert "Check the card provider's dashboard" in old.last_error
        assert [f.amount for f in desk.unpaid_fees(s, world.staff, appointment_id)] == ["£15.00"]
        query = select(AuditEvent.user_id).where(AuditEvent.action == "fee_paid")
        assert s.scalars(query).all() == [None]  # the system's
    assert desk.finish_charges(db.write, provider) == 0


def _pending_charges(db, world, provider, appointment_id, *cents) -> list[int]:
    """A fee for each of `cents`, charged to the card on file and answered 'processing'."""
    fees = [_fee(db, world, appointment_id, c) for c in cents]
    for fee in fees:
        with pytest.raises(desk.ChargePending):
            desk.charge_fee_on_file(db.write, world.staff, fee, provider=provider)
    return fees


def test_the_payments_job_asks_stripe_of_a_charge_whose_webhook_never_came(db, world, monkeypatch):
    """Stripe answers four charges to the card on file 'processing', then finishes them, but
    its webhooks never come (lost, the endpoint down). Before, each stayed pending for ever
    and the desk could take no other payment of its fee. The payments job now asks Stripe of
    one left pending CHARGE_CHECK_AFTER (not sooner: the webhook normally comes within
    seconds) and records it as the webhook would: paid (taken once), declined or canceled
    (failed with what Stripe said, the fee owed again); one still processing is asked again on
    the next run. Without a card provider the job asks nothing and changes nothing."""
    http = CardsOnFile()
    http.status = "processing"
    provider = StripeProvider(STRIPE, http_client=http)
    appointment_id = _appointment(db, world)
    _card_on_file(db, world, appointment_id, 6000, "GBP")
    paid, declined, canceled, slow = _pending_charges(
        db, world, provider, appointment_id, 3000, 1500, 1200, 1000
    )
    http.settle("pi_1", "succeeded")
    error = {"message": "Your card has insufficient funds.", "code": "card_declined"}
    http.settle("pi_2", "requires_payment_method", last_payment_error=error)
    http.settle("pi_3", "canceled", cancellation_reason="abandoned")
    assert desk.finish_charges(db.write, provider) == 0  # too fresh: its webhook may come
    assert http.asked == []
    for fee in (paid, declined, canceled, slow):
        _age(db, fee, timedelta(minutes=11))  # past CHARGE_CHECK_AFTER (10 min)
    assert desk.finish_charges(db.write, DeskProvider()) == 0  # no card provider: nothing asked
    assert http.asked == [] and _fee_payments(db, paid) == [("pending", 3000, "pi_1")]
    monkeypatch.setattr(desk, "provider_for", lambda settings: provider)  # no network
    desk.refunds_job(db, Settings("sqlite://", "k" * 40, data_dir=None, stripe=STRIPE))
    assert http.asked == ["pi_1", "pi_2", "pi_3", "pi_4"]
    assert http.made == ["pi_1", "pi_2", "pi_3", "pi_4"]  # nothing charged again
    assert _fee_payments(db, paid) == [("paid", 3000, "pi_1")]
    assert _fee_payments(db, slow) == [("pending", 1000, "pi_4")]
    with db.read() as s:
        said = {
            p.ledger_entry_id: (p.status, p.last_error)
            for p in s.scalars(
                select(Payment).where(Payment.ledger_entry_id.in_([declined, canceled]))
            )
        }
        assert said == {
            declined: (
                "failed",
                "Stripe did not charge the card on file: Your card has insufficient funds.",
            ),
            canceled: (
                "failed",
                "Stripe did not charge the card on file: the charge was canceled (abandoned).",
            ),
        }
        owed = [f.amount for f in desk.unpaid_fees(s, world.staff, appointment_id)]
        assert owed == ["£15.00", "£12.00", "£10.00"]
        query = select(AuditEvent.user_id).where(AuditEvent.action == "fee_paid")
        assert s.scalars(query).all() == [None]  # the system's
    assert _money_in(db, world)[-1] == 3000
    http.settle("pi_4", "succeeded")
    assert desk.finish_charges(db.write, provider) == 1  # only the one still processing
    assert http.asked[4:] == ["pi_4"]
    assert _fee_payments(db, slow) == [("paid", 1000, "pi_4")]
    assert desk.finish_charges(db.write, provider) == 0


def test_a_charge_left_unfinished_a_day_is_canceled_at_stripe_and_the_fee_owed_again(
    db, world, monkeypatch
):
    """Three charges to the card on file answered 'requires_action' (the patient's bank wants
    them to confirm, and charged off-session they are not there to). Before, the payments job
    asked Stripe of each on every run for ever and the fee stayed blocked. One still
    unfinished CHARGE_CANCEL_AFTER (23 h) after it was sent is now canceled at Stripe through
    the stripe library ('abandoned', with an idempotency key of its own) and failed in words
    for the desk, the fee owed again (taken at the desk); one the patient confirmed just as
    the job asked (Stripe refuses to cancel it) is paid, one processing (refused too) stays and
    is asked again on the next run; a younger one is only asked. Pressed
    at the desk a day on, a stuck charge is canceled the same way and the desk told why."""
    http = CardsOnFile()
    http.status = "requires_action"
    provider = StripeProvider(STRIPE, http_client=http)
    appointment_id = _appointment(db, world)
    _card_on_file(db, world, appointment_id, 6000, "GBP")
    stuck, won, young, slow = _pending_charges(
        db, world, provider, appointment_id, 3000, 1500, 1000, 800
    )
    http.settle("pi_4", "processing")  # Stripe refuses to cancel it: it stays, asked again
    for fee in (stuck, won, slow):
        _age(db, fee, timedelta(hours=23, minutes=1))
    _age(db, young, timedelta(hours=22))
    http.after_asked["pi_2"] = "succeeded"  # confirmed between the job's asking and its cancel
    monkeypatch.setattr(desk, "provider_for", lambda settings: provider)  # no network
    desk.refunds_job(db, Settings("sqlite://", "k" * 40, data_dir=None, stripe=STRIPE))
    assert [c[0] for c in http.cancels] == ["pi_1", "pi_2", "pi_4"]  # not the younger pi_3
    with db.read() as s:
        attempts = {p.ledger_entry_id: p for p in s.scalars(select(Payment))}
        keys = {
            attempts[f].provider_ref: desk.fee_cancel_key(desk._Attempt.of(attempts[f], ""))
            for f in (stuck, won, slow)
        }
    assert http.cancels == [(i, keys[i], "abandoned") for i in ("pi_1", "pi_2", "pi_4")]
    assert len(set(keys.values())) == 3 and not set(keys.values()) & set(http.keys)
    assert http.intents["pi_1"]["status"] == "canceled"
    assert http.made == ["pi_1", "pi_2", "pi_3", "pi_4"]  # nothing charged again
    assert _fee_payments(db, won) == [("paid", 1500, "pi_2")]
    assert _fee_payments(db, young) == [("pending", 1000, "pi_3")]
    assert _fee_payments(db, slow) == [("pending", 800, "pi_4")]
    said = (
        "Stripe did not charge the card on file: it was still unfinished (requires action) 23 "
        "hours after it was sent, so it was canceled at Stripe and nothing was taken. The fee "
        "is owed again: charge the card on file again, or take it another way at the desk."
    )
    with db.read() as s:
        (attempt,) = s.scalars(select(Payment).where(Payment.ledger_entry_id == stuck))
        assert (attempt.status, attempt.last_error) == ("failed", said)
        owed = [f.amount for f in desk.unpaid_fees(s, world.staff, appointment_id)]
        assert owed == ["£30.00", "£10.00", "£8.00"]
        refused = select(AuditEvent.details).where(AuditEvent.action == "fee_charge_refused")
        assert [d["said"] for d in s.scalars(refused)] == [said]
    with db.write() as s:  # the fee owed again is taken another way
        desk.pay_fee(s, world.staff, stuck, method="cash", provider=provider)
    assert _fee_payments(db, stuck) == [("failed", 3000, "pi_1"), ("paid", 3000, None)]
    assert desk.finish_charges(db.write, provider) == 2  # the young one and pi_4, asked
    assert [c[0] for c in http.cancels] == ["pi_1", "pi_2", "pi_4", "pi_4"]

    _age(db, young, timedelta(hours=23, minutes=1))  # the desk presses again a day on
    with pytest.raises(ProviderError) as failed:
        desk.charge_fee_on_file(db.write, world.staff, young, provider=provider)
    assert str(failed.value) == said
    assert http.cancels[-1][0] == "pi_3"
    assert _fee_payments(db, young) == [("failed", 1000, "pi_3")]
    assert http.made == ["pi_1", "pi_2", "pi_3", "pi_4"]


def test_the_payments_job_asks_of_unfinished_charges_in_turn_not_only_the_oldest(db, world):
    """More charges left unfinished than the payments job asks of in a run (20; 2 here).
    Before, it asked of the oldest on every run and never of the newer ones: one Stripe took
    stayed pending, its fee blocked. It now asks in turn, from the one after the last it
    asked (kept in the settings), round again from the oldest."""
    http = CardsOnFile()
    http.status = "processing"
    provider = StripeProvider(STRIPE, http_client=http)
    appointment_id = _appointment(db, world)
    _card_on_file(db, world, appointment_id, 6000, "GBP")
    fees = _pending_charges(db, world, provider, appointment_id, 3000, 1500, 1000)
    for fee in fees:
        _age(db, fee, timedelta(minutes=11))
    http.settle("pi_3", "succeeded")
    assert desk.finish_charges(db.write, provider, limit=2) == 2
    assert http.asked == ["pi_1", "pi_2"]
    assert desk.finish_charges(db.write, provider, limit=2) == 2
    assert http.asked[2:] == ["pi_3", "pi_1"]
    assert _fee_payments(db, fees[2]) == [("paid", 1000, "pi_3")]
    assert desk.finish_charges(db.write, provider, limit=2) == 2
    assert http.asked[4:] == ["pi_2", "pi_1"]
    assert http.made == ["pi_1", "pi_2", "pi_3"]


def test_pressing_again_on_an_unfinished_charge_asks_stripe_and_never_charges_again(db, world):
    """A charge answered 'processing' whose webhook is lost. Before, pressing 'Charge the card
    on file' again sent the same key: Stripe replayed its first answer ('processing'), so the
    fee stayed pending though Stripe had taken it; and a day later, the key forgotten by
    Stripe, the press made a second charge (the fee taken twice, the first never recorded).
    Pressing again now asks Stripe how the charge stands: still processing is said so, a
    charge Stripe finished is recorded paid by who pressed, and nothing is charged again."""
    http = CardsOnFile()
    http.status = "processing"
    provider = StripeProvider(STRIPE, http_client=http)
    appointment_id = _appointment(db, world)
    _card_on_file(db, world, appointment_id, 6000, "GBP")
    (fee_id,) = _pending_charges(db, world, provider, appointment_id, 3000)
    with db.write() as s, pytest.raises(Conflict) as refused:  # the desk is told how to ask
        desk.pay_fee(s, world.staff, fee_id, method="cash", provider=provider)
    assert "Press 'Charge the card on file' again to ask the provider now" in str(refused.value)
    http.answers.clear()  # a day on: Stripe has forgotten the key
    with pytest.raises(desk.ChargePending, match=r"\(P-\d+, processing\): the fee is not paid"):
        desk.charge_fee_on_file(db.write, world.staff, fee_id, provider=provider)
    assert http.made == ["pi_1"] and http.asked == ["pi_1"]
    http.settle("pi_1", "succeeded")
    paid = desk.charge_fee_on_file(db.write, world.staff, fee_id, provider=provider)
    assert (paid.status, paid.provider_ref) == ("paid", "pi_1")
    assert http.made == ["pi_1"] and len(http.keys) == 1
    assert _fee_payments(db, fee_id) == [("paid", 3000, "pi_1")]
    with db.read() as s:
        query = select(AuditEvent.user_id).where(AuditEvent.action == "fee_paid")
        assert s.scalars(query).all() == [world.staff.user_id]

    other = _fee(db, world, appointment_id, 1500)
    with pytest.raises(desk.ChargePending):
        desk.charge_fee_on_file(db.write, world.staff, other, provider=provider)
    http.settle("pi_2", "canceled", cancellation_reason="requested_by_customer")
    said = (
        "Stripe did not charge the card on file: the charge was canceled (requested by customer)."
    )
    with pytest.raises(ProviderError) as failed:
        desk.charge_fee_on_file(db.write, world.staff, other, provider=provider)
    assert str(failed.value) == said
    assert _fee_payments(db, other) == [("failed", 1500, "pi_2")]
    http.status = "succeeded"  # the next press is a new charge
    assert desk.charge_fee_on_file(db.write, world.staff, other, provider=provider).status == "paid"
    assert http.made == ["pi_1", "pi_2", "pi_3"]


def test_a_charge_stripe_canceled_is_failed_and_the_fee_owed_again(db, world):
    """Stripe's payment_intent.canceled (a charge canceled at Stripe's dashboard, or by Stripe)
    for a charge to the card on file answered 'processing'. Before, the event was ignored: the
    charge stayed pending for ever and the fee could not be taken. It is now failed as a
    decline is, Stripe's reason kept, the fee owed again (taken at the desk, or a new charge);
    a replay of the event changes nothing."""
    http = CardsOnFile()
    http.status = "processing"
    provider = StripeProvider(STRIPE, http_client=http)
    appointment_id = _appointment(db, world)
    _card_on_file(db, world, appointment_id, 6000, "GBP")
    (fee_id,) = _pending_charges(db, world, provider, appointment_id, 3000)
    obj = {"id": "pi_1", "object": "payment_intent", "status": "canceled"}
    obj["cancellation_reason"] = "fraudulent"
    body = json.dumps(
        {
            "id": "evt_cancel_1",
            "object": "event",
            "type": "payment_intent.canceled",
            "data": {"object": obj},
        }
    ).encode()
    with db.write() as s:
        assert webhooks.handle(s, provider, body, signed(body)) == "applied"
    said = "Stripe did not charge the card on file: the charge was canceled (fraudulent)."
    with db.read() as s:
        (attempt,) = s.scalars(select(Payment).where(Payment.ledger_entry_id == fee_id))
        assert (attempt.status, attempt.last_error) == ("failed", said)
        assert [f.amount for f in desk.unpaid_fees(s, world.staff, appointment_id)] == ["£30.00"]
        refused = select(AuditEvent.details).where(AuditEvent.action == "fee_charge_refused")
        assert [d["said"] for d in s.scalars(refused)] == [said]
    with db.write() as s:
        assert webhooks.handle(s, provider, body, signed(body)) == "duplicate"
    with db.write() as s:
        desk.pay_fee(s, world.staff, fee_id, method="cash", provider=provider)
    assert _fee_payments(db, fee_id) == [("failed", 3000, "pi_1"), ("paid", 3000, None)]


def test_a_cancel_stripe_made_but_we_did_not_record_is_reconciled_never_sent_again(db, world):
    """The payments job cancels at Stripe two charges left unfinished a day, and each time the
    process stops before the cancel is recorded. Meanwhile the desk sees each charge still
    under way (a cash payment of its fee is refused, saying to press again to ask Stripe).
    Stripe's signed payment_intent.canceled fails the first, in Stripe's words, the fee owed
    again; the second's webhook is lost, and the job's next run asks Stripe, finds it canceled
    and fails it the same way. No cancel is sent twice, nothing is charged twice, and the next
    press is a new charge."""
    http = CardsOnFile()
    http.status = "requires_action"
    provider = StripeProvider(STRIPE, http_client=http)
    appointment_id = _appointment(db, world)
    _card_on_file(db, world, appointment_id, 6000, "GBP")
    by_webhook, by_next_run = _pending_charges(db, world, provider, appointment_id, 3000, 1500)
    for fee in (by_webhook, by_next_run):
        _age(db, fee, timedelta(hours=23, minutes=1))
    for _ in range(2):  # one a run, each cut off after Stripe canceled it
        with pytest.raises(RuntimeError, match="the process stopped"):
            desk.finish_charges(_stopping(db, 2), provider, limit=1)
    assert [c[0] for c in http.cancels] == ["pi_1", "pi_2"]
    assert {http.intents[i]["status"] for i in ("pi_1", "pi_2")} == {"canceled"}
    assert _fee_payments(db, by_webhook) == [("pending", 3000, "pi_1")]
    assert _fee_payments(db, by_next_run) == [("pending", 1500, "pi_2")]
    with db.write() as s, pytest.raises(Conflict, match="Press 'Charge the card on file' again"):
        desk.pay_fee(s, world.staff, by_webhook, method="cash", provider=provider)

    body = json.dumps(
        {
            "id": "evt_canceled_1",
            "object": "event",
            "type": "payment_intent.canceled",
            "data": {"object": http.intents["pi_1"]},
        }
    ).encode()
    with db.write() as s:
        assert webhooks.handle(s, provider, body, signed(body)) == "applied"
    assert desk.finish_charges(db.write, provider) == 1  # the other one, asked of
    said = "Stripe did not charge the card on file: the charge was canceled (abandoned)."
    assert _fee_payments(db, by_webhook) == [("failed", 3000, "pi_1")]
    assert _fee_payments(db, by_next_run) == [("failed", 1500, "pi_2")]
    with db.read() as s:
        errors = s.scalars(select(Payment.last_error).where(Payment.status == "failed"))
        assert errors.all() == [said, said]
        owed = [f.amount for f in desk.unpaid_fees(s, world.staff, appointment_id)]
        assert owed == ["£30.00", "£15.00"]
    assert [c[0] for c in http.cancels] == ["pi_1", "pi_2"] and http.asked[-1] == "pi_2"
    assert http.made == ["pi_1", "pi_2"]
    assert desk.finish_charges(db.write, provider) == 0
    http.status = "succeeded"
    paid = desk.charge_fee_on_file(db.write, world.staff, by_webhook, provider=provider)
    assert (paid.status, paid.provider_ref) == ("paid", "pi_3")


def test_the_job_asking_stripe_while_the_webhook_comes_records_the_charge_once(db, world, caplog):
    """The payments job asks Stripe of a charge whose webhook was late, and the webhook comes
    while the job records its answer: both record it through charge_answered, which locks the
    visit, the fee, then the attempt (the order a press locks them in), so the second waits
    and finds it paid: paid once, one 'fee paid' in the audit log, nothing charged again."""
    import threading

    from sqlalchemy import event

    webhook_writing, job_asked = threading.Event(), threading.Event()

    class Late(CardsOnFile):
        def request(self, method, url, headers, post_data=None, *, _usage=None):
            answer = super().request(method, url, headers, post_data, _usage=_usage)
            if method == "get" and threading.current_thread().name == "job":
                job_asked.set()
                webhook_writing.wait(10)  # the webhook holds the attempt, not yet committed
            return answer

    http = Late()
    http.status = "processing"
    provider = StripeProvider(STRIPE, http_client=http)
    appointment_id = _appointment(db, world)
    _card_on_file(db, world, appointment_id, 6000, "GBP")
    (fee_id,) = _pending_charges(db, world, provider, appointment_id, 3000)
    _age(db, fee_id, timedelta(minutes=11))
    http.settle("pi_1", "succeeded")
    body = intent_event("evt_pi_1", "pi_1", "payment_intent.succeeded")

    def hold(conn, cursor, statement, parameters, context, executemany):
        if threading.current_thread().name == "webhook" and statement.startswith("UPDATE payments"):
            webhook_writing.set()
            wait_until_a_writer_waits(db)  # the job meanwhile tries to record its answer

    outcomes = []

    def job():
        outcomes.append(desk.finish_charges(db.write, provider))

    def webhook():
        assert job_asked.wait(10)
        with db.write() as s:
            outcomes.append(webhooks.handle(s, provider, body, signed(body)))

    event.listen(db.engine, "after_cursor_execute", hold)
    try:
        threads = [threading.Thread(target=f, name=f.__name__) for f in (job, webhook)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        event.remove(db.engine, "after_cursor_execute", hold)
    assert sorted(map(str, outcomes)) == ["1", "applied"]
    # the job waited for the webhook's transaction, then found the charge recorded
    assert f"Fee #{fee_id} is paid already." in caplog.text
    assert _fee_payments(db, fee_id) == [("paid", 3000, "pi_1")]
    assert http.made == ["pi_1"]
    with db.read() as s:
        query = select(func.count()).where(AuditEvent.action == "fee_paid")
        assert s.scalar(query) == 1
        assert [f.amount for f in desk.unpaid_fees(s, world.staff, appointment_id)] == []


# ---------------------------------------------------------------- paid after a late cancellation


def _late_cancelled_while_paying(db, world, fake):
    """The patient opens the card checkout (£60.00), then cancels late (a £25.00 fee) while
    still on Stripe's page. Returns the appointment, the fee and the checkout's reference."""
    appointment_id = _appointment(db, world, hours_ahead=5)
    _late_policy(db, world, fee=2500, pts=0)
    with db.write() as s:
        pay(s, world.patient_id, appointment_id, 0, True, fake)
    with db.write() as s:
        moves.cancel_appointment(
            s, world.staff, appointment_id, reason="Patient rang", by_patient=True
        )
    with db.read() as s:
        reference = s.scalars(select(Payment.provider_ref).where(Payment.method == "stripe")).one()
        fee_id = s.scalars(
            select(LedgerEntry.id).where(LedgerEntry.kind == LedgerKind.LATE_CANCEL_FEE)
        ).one()
    return appointment_id, fee_id, reference


def _told(s, appointment_id) -> list[str]:
    query = select(Notification.template).where(
        Notification.appointment_id == appointment_id,
        Notification.template.in_(("payment_receipt", "payment_refund")),
    )
    return list(s.scalars(query))


def test_a_checkout_paid_after_a_late_cancellation_keeps_the_fee_and_refunds_the_rest(db, world):
    """Stripe says the £60.00 is paid after the patient cancelled late. Before, all of it went
    back to the card and the £25.00 fee stayed owed, to be chased. Now the fee is kept from it,
    as a cancellation of a visit paid beforehand keeps it, the £35.00 rest is due back to the
    card, and the patient is told both in one message (no receipt besides)."""
    fake = FakeCheckout()
    appointment_id, fee_id, reference = _late_cancelled_while_paying(db, world, fake)
    with db.read() as s:
        assert [f.amount for f in desk.unpaid_fees(s, world.staff, appointment_id)] == ["£25.00"]
        assert _told(s, appointment_id) == []
    with db.write() as s:
        applied = webhooks.apply_event(s, "stripe", json.loads(event("evt_lc", reference, 6000)))
        assert applied == "applied"
    with db.read() as s:
        paid = s.scalars(select(Payment).where(Payment.provider_ref == reference)).one()
        kept = s.scalars(select(Payment).where(Payment.kind == "fee")).one()
        refund = s.scalars(select(Payment).where(Payment.kind == "refund")).one()
        assert (kept.amount_cents, kept.ledger_entry_id, kept.refund_of_id) == (
            2500,
            fee_id,
            paid.id,
        )
        assert (refund.status, refund.amount_cents, refund.refund_of_id) == (
            "refund_due",
            3500,
            paid.id,
        )
        assert desk.unpaid_fees(s, world.staff, appointment_id) == []
        assert prepay.paid_cents(s, appointment_id) == 0
        assert _told(s, appointment_id) == ["payment_refund"]
        told = _mail(s, "payment_refund")
        assert "Kept for the late-cancellation fee: £25.00" in told
        assert (
            "Refund of £35.00 (Card): the rest of the £60.00 paid after it was cancelled." in told
        )
    assert prepay.process_refunds(db.write, fake) == 1
    assert fake.refunds == [(reference, 3500)]


def test_a_fee_paid_at_the_desk_while_the_late_checkout_completes_is_kept_once(db, world):
    """The desk takes the £25.00 fee in cash while Stripe's webhook says the checkout is paid:
    the fee is taken once, by whichever comes first; the card gets back all the rest."""
    import threading

    fake = FakeCheckout()
    appointment_id, fee_id, reference = _late_cancelled_while_paying(db, world, fake)
    barrier, errors = threading.Barrier(2), []

    def desk_fee():
        barrier.wait()
        try:
            with db.write() as s:
                desk.pay_fee(s, world.staff, fee_id, method="cash", provider=DeskProvider())
        except Conflict as error:
            errors.append(str(error))

    def webhook():
        barrier.wait()
        with db.write() as s:
            webhooks.apply_event(s, "stripe", json.loads(event("evt_race", reference, 6000)))

    threads = [threading.Thread(target=desk_fee), threading.Thread(target=webhook)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.read() as s:
        fees = s.scalars(select(Payment).where(Payment.kind == "fee", Payment.status == "paid"))
        fees = list(fees)
        refund = s.scalars(select(Payment).where(Payment.kind == "refund")).one()
        assert sum(p.amount_cents for p in fees) == 2500 and len(fees) == 1
        assert refund.amount_cents == 6000 - (2500 if fees[0].method == "stripe" else 0)
        assert errors == ([f"Fee #{fee_id} is paid already."] if fees[0].method == "stripe" else [])
        assert desk.unpaid_fees(s, world.staff, appointment_id) == []


def test_a_fee_waived_while_the_late_checkout_completes_is_given_back_once(db, world):
    """A manager waives the £25.00 fee (£10.00 of it paid in cash) while Stripe's webhook says
    the checkout is paid. Both finish, in either order: nothing of the card payment stays kept
    for a waived fee, and the cash comes back once. Before, on PostgreSQL, the waiver held the
    fee and waited for the visit the webhook held, which waited for the fee: a deadlock."""
    import threading

    fake = FakeCheckout()
    appointment_id, fee_id, reference = _late_cancelled_while_paying(db, world, fake)
    with db.write() as s:
        s.add(
            Payment(
                appointment_id=appointment_id,
                patient_id=world.patient_id,
                ledger_entry_id=fee_id,
                kind="fee",
                method="cash",
                status="paid",
                amount_cents=1000,
                currency="GBP",
                paid_at=utcnow(),
            )
        )
    barrier, failures = threading.Barrier(2), []

    def run(action):
        barrier.wait()
        try:
            with db.write() as s:
                action(s)
        except Exception as error:  # noqa: BLE001 - any failure is the finding
            failures.append(repr(error))

    def waive(s):
        desk.waive_fee(s, world.owner, fee_id, "Goodwill")

    def webhook(s):
        webhooks.apply_event(s, "stripe", json.loads(event("evt_waive", reference, 6000)))

    threads = [threading.Thread(target=run, args=(a,)) for a in (waive, webhook)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    with db.read() as s:
        back = s.scalars(select(Payment).where(Payment.kind.in_(("refund", "fee_refund")))).all()
        assert sum(p.amount_cents for p in back) == 7000  # the card's £60.00 and the £10.00 cash
        assert prepay.paid_cents(s, appointment_id) == 0


# ---------------------------------------------------------------- points given back after a merge


def _paid_by_a_merged_duplicate(db, world, earned: int) -> tuple[int, int]:
    """A second record of the world's patient (opened with 100 points like every new record),
    `earned` points added on it, 40 of its points spent towards a visit, then merged into the
    world's record: the visit and its payments move there, the spend entry stays on the
    duplicate, and only what the duplicate holds beyond its opening moves (877416d). Returns
    the duplicate and the visit."""
    appointment_id = _appointment(db, world)
    with db.write() as s:
        duplicate = make_patient(s, email="alex.copy@example.net", phone=None).id
        if earned:
            points.adjust_points(s, world.manager, duplicate, earned, "Survey on paper")
        s.get(Appointment, appointment_id).patient_id = duplicate
        s.flush()
        pay(s, duplicate, appointment_id, 40, False, DeskProvider())
    with db.write() as s:
        merge.merge_patients(s, world.manager, world.patient_id, duplicate, "Same person")
    return duplicate, appointment_id


def _adds_up(s, patient_id: int) -> tuple[int, int]:
    entries = s.scalars(select(LedgerEntry).where(LedgerEntry.patient_id == patient_id))
    return s.get(Patient, patient_id).points_balance, sum(balance.delta(e) for e in entries)


@pytest.mark.parametrize(
    ("earned", "forwarded", "kept"),
    [
        # the 40 came out of the opening alone: one balance (100 opened) ends at 100, not 140
        (0, 0, 100),
        # 20 of the 40 out of what was earned, 20 out of the opening: one balance is at 120
        (20, 20, 120),
        # 100 opened, 50 earned, 40 spent: 10 moved by the merge, the 40 go on (150)
        (50, 40, 150),
    ],
)
def test_points_a_merged_duplicate_prepaid_come_back_as_one_balance_would_have_them(
    db, world, earned, forwarded, kept
):
    """The visit a fresh duplicate paid 40 points towards is cancelled after the merge: the 40
    go back to the record they were spent from and on to the record kept only as far as one
    balance would have had them (core.policy.follow_merge). Before, all 40 went to the kept
    record through the visit's patient: 140 where one balance is at 100."""
    duplicate, appointment_id = _paid_by_a_merged_duplicate(db, world, earned)
    with db.write() as s:
        outcome = moves.cancel_appointment(s, world.staff, appointment_id, reason="Provider ill")
    kept_id = world.patient_id
    with db.read() as s:
        assert _adds_up(s, kept_id) == (kept, kept)
        assert _adds_up(s, duplicate) == (0, 0)
        refund = s.scalars(select(Payment).where(Payment.kind == "refund")).one()
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "prepayment_settled")).one()
        mail = _mail(s, "appointment_cancelled")
    assert (refund.method, refund.points, refund.status) == ("points", 40, "refunded")
    assert (
        event.details["forwarded_to"],
        event.details["points_forwarded"],
        event.details["points_not_carried"],
    ) == (kept_id, forwarded, 40 - forwarded)
    if forwarded == 40:
        said = f"#{duplicate} was merged into #{kept_id}: the 40 points go on to it."
    elif forwarded:
        said = (
            f"#{duplicate} was merged into #{kept_id}: {forwarded} of the 40 points go on to it; "
            f"the other {40 - forwarded} came out of #{duplicate}'s opening balance, which the "
            "merge did not carry (one person opens one balance), so they are not added."
        )
    else:
        said = (
            f"#{duplicate} was merged into #{kept_id}: the 40 points came out of #{duplicate}'s "
            "opening balance, which the merge did not carry (one person opens one balance), so "
            f"#{kept_id} gets none of them."
        )
    # the patient is told what reaches their one balance, without record numbers
    why = (
        "came from the opening points of a second record we held for you, now joined with this "
        "one, and your balance keeps one opening"
    )
    if forwarded == 40:
        line = "40 points given back to your balance."
    elif forwarded:
        line = (
            f"{forwarded} of the 40 points you paid with are given back to your balance; the "
            f"other {40 - forwarded} {why}."
        )
    else:
        line = f"The 40 points you paid with {why}: none are added."
    assert event.message == said and refund.note == said
    assert line in outcome.money.splitlines() and line in mail
    assert f"#{duplicate}" not in mail and f"#{kept_id}" not in mail


@pytest.mark.parametrize(
    ("earned", "forwarded", "kept"), [(0, 0, 100), (20, 20, 120), (50, 40, 150)]
)
def test_the_portals_cancel_warning_says_what_points_prepaid_on_a_merged_record_reach(
    db, world, earned, forwarded, kept
):
    """The patient's warning before cancelling a visit a fresh duplicate paid 40 points
    towards, merged since, says what will reach their one balance (core.policy.merge_preview,
    follow_merge's arithmetic, nothing written), without record numbers, and the balance it
    shows is the one the cancellation leaves. Before, it said 'The 40 points you paid with go
    back to your balance' and showed 140 where the record kept ends at 100."""
    duplicate, appointment_id = _paid_by_a_merged_duplicate(db, world, earned)
    kept_id = world.patient_id
    with db.write() as s:
        s.get(Patient, kept_id).portal_enrolled_at = utcnow()
    with db.read() as s:
        preview = home.change_preview(s, kept_id, appointment_id)
        before = _adds_up(s, duplicate), _adds_up(s, kept_id)
    why = (
        "came from the opening points of a second record we held for you, now joined with this "
        "one, and your balance keeps one opening"
    )
    if forwarded == 40:
        line = "The 40 points you paid with go back to your balance."
    elif forwarded:
        line = (
            f"{forwarded} of the 40 points you paid with are given back to your balance; the "
            f"other {40 - forwarded} {why}."
        )
    else:
        line = f"The 40 points you paid with {why}: none are added."
    assert preview.prepayment == line
    assert f"#{duplicate}" not in preview.prepayment and f"#{kept_id}" not in preview.prepayment
    assert preview.balance_after == kept
    with db.read() as s:  # the preview wrote nothing
        assert (_adds_up(s, duplicate), _adds_up(s, kept_id)) == before
    with db.write() as s:
        moves.cancel_appointment(s, world.staff, appointment_id, reason="Provider ill")
    with db.read() as s:
        assert _adds_up(s, kept_id) == (kept, kept)


def test_points_prepaid_on_a_record_never_merged_come_back_to_it_as_before(db, world):
    appointment_id = _appointment(db, world)
    with db.write() as s:
        pay(s, world.patient_id, appointment_id, 40, False, DeskProvider())
    with db.write() as s:
        outcome = moves.cancel_appointment(s, world.staff, appointment_id, reason="Provider ill")
    with db.read() as s:
        assert _adds_up(s, world.patient_id) == (100, 100)
        refund = s.scalars(select(Payment).where(Payment.kind == "refund")).one()
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "prepayment_settled")).one()
    assert not refund.note and event.message is None
    assert "forwarded_to" not in event.details
    assert outcome.money == "40 points given back to your balance."


def test_the_desk_is_told_where_points_a_waiver_gives_back_on_a_merged_record_went(db, world):
    """A no-show's 40 points taken from a fresh duplicate's opening, waived at the desk after
    the merge: the waiver's result says the kept record gets none of them (the policy's words,
    policy.given_back_words); on a record never merged it says nothing of it. Before, the
    desk's result carried no such words."""
    appointment_id = _appointment(db, world)
    with db.write() as s:
        duplicate = make_patient(s, email="alex.copy@example.net", phone=None).id
        s.get(Appointment, appointment_id).patient_id = duplicate
        deduction = balance.deduct(s, duplicate, 40, appointment_id=appointment_id, policy_id=None)
        s.flush()
        deduction_id = deduction.id
        own = balance.deduct(s, world.patient_id, 10, appointment_id=appointment_id, policy_id=None)
        s.flush()
        own_id = own.id
    with db.write() as s:
        merge.merge_patients(s, world.manager, world.patient_id, duplicate, "Same person")
    with db.write() as s:
        waived = desk.waive_fee(s, world.manager, deduction_id, "Phoned ahead")
        unmerged = desk.waive_fee(s, world.manager, own_id, "Phoned ahead")
    kept_id = world.patient_id
    assert waived.points_words == (
        f"#{duplicate} was merged into #{kept_id}: the 40 points came out of #{duplicate}'s "
        "opening balance, which the merge did not carry (one person opens one balance), so "
        f"#{kept_id} gets none of them."
    )
    assert unmerged.points_words == ""
    with db.read() as s:
        assert _adds_up(s, kept_id) == (100, 100)
