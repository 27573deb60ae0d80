"""Payment-provider adapters. `DeskProvider` (the default) takes no card online: patients pay
the rest at the desk and staff record it. `StripeProvider` uses Stripe Checkout through the
`stripe` library: the amount and its currency (the appointment's clinic's) always come from
the server, webhooks are verified with Stripe's
own signature scheme, and refunds and card-on-file fees go through the same client. Which one
applies is decided by the caller from the settings (`provider_for`); services never read the
environment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import stripe

from core.kernel.config import StripeSettings
from core.kernel.errors import DomainError, ValidationError
from core.kernel.money import minor_digits, to_major

# Stripe's own minor units (docs.stripe.com/currencies), which are not always the currency's:
# amounts go to Stripe in hundredths unless the currency is listed here. ClinicDesk stores
# minor units as Babel (CLDR) counts them, so HUF, IDR, COP or ISK are stored in whole units
# (Babel: no decimals) but are two-decimal at Stripe (ISK in whole krónur only, which whole
# units are); a three-decimal currency is taken only in tens of its minor unit.
STRIPE_ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
STRIPE_THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])
# A payment intent's states that mean the charge will not be taken (docs.stripe.com/payments/
# paymentintents/lifecycle): canceled, or back to asking for a card after it failed (an
# off-session charge is never confirmed again by the patient).
CHARGE_FAILED = frozenset(["canceled", "requires_payment_method"])


class ProviderError(DomainError):
    """The payment provider refused or could not be reached; the message says what it said."""


class ProviderUnanswered(ProviderError):
    """The provider's answer never came (the connection failed or timed out, it failed on its
    side, it asked us to slow down): what was asked may have been done or not. Sent again with
    the same key, it is done once."""


class ProviderLookupRefused(ProviderError):
    """The provider refused to look up what was asked before (a refund's look-up: a key not
    allowed to read refunds): no answer about the thing itself, which may have been done. Its
    words begin with LOOKUP_REFUSED, then say what the provider said and what to fix."""


# how the words of a refund's look-up Stripe refused begin (ProviderLookupRefused's)
LOOKUP_REFUSED = "Stripe refused to look up the payment's refunds"

# what to fix when Stripe refuses to list a payment's refunds, by its error (else: its words)
LOOKUP_FIX = {
    stripe.PermissionError: "Give the Stripe key permission to read refunds (a restricted "
    "key's Refunds: Read).",
    stripe.AuthenticationError: "Check the Stripe secret key in the settings.",
}


def lookup_refused(said: str) -> bool:
    """Whether `said` (a refund's last error) are the words of a look-up the provider refused
    (ProviderLookupRefused), not of an attempt it did not answer: only for how a refund that
    may have been made is told to the desk (whether it may have been is its own column)."""
    return said.startswith(LOOKUP_REFUSED)


# the metadata a refund carries to Stripe: our refund's id (a Payment's), by which it is found
# again once Stripe has forgotten its idempotency key
REFUND_TAG = "payment_id"

# Stripe's errors that are no answer: the request may have been carried out or not
UNANSWERED = (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError)


@dataclass(frozen=True)
class Charge:
    reference: str  # the provider's id for the charge (a payment intent's, pi_…)
    status: str  # the provider's word for it: 'succeeded' is money in; any other is not yet
    said: str = ""  # why it did not go through, in the provider's words (a decline, a cancel)

    @property
    def ended(self) -> bool | None:
        """True: the money is in; False: it failed for good (declined after processing, or
        canceled), and it will never be taken; None: not finished yet ('processing',
        'requires_action' and the like)."""
        if self.status == "succeeded":
            return True
        return False if self.status in CHARGE_FAILED else None


@dataclass(frozen=True)
class Checkout:
    reference: str  # the provider's id for the checkout (stored on the payment)
    url: str  # where the patient's browser goes to pay


class PaymentProvider(Protocol):
    name: str
    online: bool  # can take a card online

    def checkout(
        self,
        *,
        amount_cents: int,
        currency: str,
        description: str,
        payment_id: int,
        email: str | None,
        success_url: str,
        cancel_url: str,
    ) -> Checkout: ...

    def close_checkout(self, reference: str) -> bool:
        """Close the open checkout `reference` so it can no longer be paid: True when it is
        closed unpaid (now or before), False when it was paid or is being paid."""
        ...

    def refund(
        self,
        reference: str,
        amount_cents: int,
        *,
        currency: str,
        key: str,
        payment_id: int,
        look_first: bool = False,
    ) -> str:
        """Give back `amount_cents` (minor units of `currency`, the payment's) of the payment
        `reference`; `key` names this refund (the same on every attempt), so the provider
        makes it once however often it is sent within the day it keeps the key, and
        `payment_id` (our refund's) is kept with it at the provider. `look_first`: the key may
        be forgotten, so the payment's refunds are looked through for ours (its `payment_id`)
        and the one found is returned, nothing sent. Returns the provider's id of the refund;
        a refusal is a ProviderError, no answer `ProviderUnanswered` (it may have been made)."""
        ...

    def charge_saved_card(
        self, customer: str, amount_cents: int, currency: str, description: str, *, key: str
    ) -> Charge:
        """Charge the customer's card on file; `key` names this attempt (the same when it is
        sent again), so the provider charges it once however often it is sent. The charge's
        status says whether the money is in ('succeeded') or not yet (the provider's webhook
        then says how it ended)."""
        ...

    def charge_state(self, reference: str) -> Charge:
        """How the charge to the card on file `reference` stands now at the provider (asked
        when its answer was not final and its webhook has not come)."""
        ...

    def cancel_charge(self, reference: str, *, key: str) -> Charge:
        """Cancel the unfinished charge to the card on file `reference`, so it can never be
        taken; `key` names this cancel (the same each time it is sent). How the charge stands
        then: canceled (it failed for good), or, when the provider would not cancel it because
        it finished meanwhile or is being finished, as it stands ('succeeded': money in)."""
        ...

    def verify_event(self, payload: bytes, signature: str | None) -> dict[str, Any]: ...


def stripe_digits(currency: str) -> int:
    """Digits after the decimal point of an amount as Stripe's API counts it."""
    code = currency.upper()
    return 0 if code in STRIPE_ZERO_DECIMAL else 3 if code in STRIPE_THREE_DECIMAL else 2


def to_stripe_amount(cents: int, currency: str, doing: str = "take") -> int:
    """Stored minor units (Babel's) as the amount Stripe's API expects: 5000 HUF (Ft 5,000,
    stored in whole forints) is 500000 at Stripe, ¥1,000 is 1000, £25.50 is 2550. An amount
    Stripe cannot take (a KWD amount not in tens of fils) is a ValidationError saying so,
    before anything is sent; `doing` names what was asked ('take', 'refund')."""
    code, cents = currency.upper(), int(cents)
    shift = stripe_digits(code) - minor_digits(code)
    step = 10 ** max(0, -shift) * (10 if code in STRIPE_THREE_DECIMAL else 1)
    if cents % step:
        raise ValidationError(
            f"The card provider cannot {doing} {to_major(cents, code)} {code}: it takes {code} "
            f"amounts in steps of {to_major(step, code)} {code} only. "
            + (
                "Pay at the desk instead."
                if doing == "take"
                else "Hand it back at the desk and record it."
            )
        )
    return cents * 10**shift if shift >= 0 else cents // 10**-shift


def from_stripe_amount(amount: int, currency: str) -> int | None:
    """An amount Stripe's API states (a webhook's amount_total) as stored minor units; None
    when it is not a whole number of them (it cannot be what was asked for)."""
    code, amount = currency.upper(), int(amount)
    shift = stripe_digits(code) - minor_digits(code)
    if shift <= 0:
        return amount * 10**-shift
    whole, rest = divmod(amount, 10**shift)
    return None if rest else whole


def taken_amount(amount: int, currency: str) -> int:
    """What Stripe states it took, as stored minor units to record and give back: a fraction
    of our smallest unit (Stripe takes HUF, ISK… in whole units only) is dropped."""
    code, amount = currency.upper(), max(0, int(amount))
    shift = stripe_digits(code) - minor_digits(code)
    return amount * 10**-shift if shift <= 0 else amount // 10**shift


class DeskProvider:
    name, online = "desk", False

    def checkout(self, **_: Any) -> Checkout:
        raise ValidationError(
            "Card payment online is not available at this practice: please pay the rest at "
            "the desk."
        )

    def close_checkout(self, reference: str) -> bool:
        raise ValidationError("There is no card provider: its card payments cannot be closed.")

    def refund(self, reference: str, amount_cents: int, **_: Any) -> str:
        raise ValidationError("There is no card provider: refund at the desk and record it.")

    def charge_saved_card(self, *_: Any, **__: Any) -> Charge:
        raise ValidationError("There is no card provider: take the fee at the desk.")

    def charge_state(self, reference: str) -> Charge:
        raise ValidationError(
            "There is no card provider to ask how the charge to the card on file ended."
        )

    def cancel_charge(self, reference: str, *, key: str) -> Charge:
        raise ValidationError("There is no card provider to cancel the charge to the card on file.")

    def verify_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        raise ValidationError("No payment provider is configured.")


class StripeProvider:
    name, online = "stripe", True

    def __init__(self, settings: StripeSettings, http_client: Any = None) -> None:
        """`http_client` is a stripe.HTTPClient (tests pass one that answers without the
        network); None is the library's own."""
        self._client = stripe.StripeClient(settings.secret_key, http_client=http_client)
        self._webhook_secret = settings.webhook_secret

    def checkout(
        self,
        *,
        amount_cents: int,
        currency: str,
        description: str,
        payment_id: int,
        email: str | None,
        success_url: str,
        cancel_url: str,
    ) -> Checkout:
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": currency.lower(),
                        "unit_amount": to_stripe_amount(amount_cents, currency),
                        "product_data": {"name": description},
                    },
                }
            ],
            "client_reference_id": str(payment_id),
            "metadata": {"payment_id": str(payment_id)},
            "customer_creation": "always",
            "payment_intent_data": {"setup_future_usage": "off_session"},
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        if email:
            params["customer_email"] = email
        try:
            made = self._client.v1.checkout.sessions.create(params=params)
        except stripe.StripeError as exc:
            raise ProviderError(
                f"Stripe did not start the card payment: {_said(exc)} Please pay at the desk."
            ) from exc
        return Checkout(made.id, made.url)

    def close_checkout(self, reference: str) -> bool:
        """Expire an open Checkout session (Stripe then refuses to take its payment). Stripe
        refuses to expire one that is not open: it is then read, and counts as closed only
        when it expired, not when it is complete (paid, or a payment under way)."""
        sessions = self._client.v1.checkout.sessions
        try:
            try:
                sessions.expire(reference)
                return True
            except stripe.InvalidRequestError:
                return sessions.retrieve(reference).status == "expired"
        except stripe.StripeError as exc:
            raise ProviderError(
                f"Stripe did not close the earlier card payment: {_said(exc)} Please try again "
                "in a minute, or pay at the desk."
            ) from exc

    def refund(
        self,
        reference: str,
        amount_cents: int,
        *,
        currency: str,
        key: str,
        payment_id: int,
        look_first: bool = False,
    ) -> str:
        """Give back part or all of a payment: `reference` is a Checkout session's id (cs_…, a
        prepayment), a payment intent's (pi_…, a fee charged to the card on file) or a charge's
        (ch_…). `key` is Stripe's idempotency key: a refund sent again with it (after a crash
        between Stripe's answer and our commit) is answered with the first refund, not made
        twice. Stripe forgets a key after 24 hours, so the refund also carries `payment_id` (our
        refund's) in its metadata, and with `look_first` the payment's refunds are listed and
        the one carrying it is returned instead of sending another (REFUND_TAG); a key first
        sent without it (by the version before) is sent again as it was then. Stripe's
        refusal is a ProviderError saying what Stripe said; no answer (a timeout, a connection
        cut, Stripe's own failure, in any of these calls) is `ProviderUnanswered`: the refund
        may have been made. An amount Stripe cannot take in `currency` is a ValidationError,
        and nothing is sent."""
        params: dict[str, Any] = {"amount": to_stripe_amount(amount_cents, currency, "refund")}
        params["metadata"] = {REFUND_TAG: str(payment_id)}
        try:
            if reference.startswith("cs_"):
                session = self._client.v1.checkout.sessions.retrieve(reference)
                of = {"payment_intent": session.payment_intent}
            elif reference.startswith("ch_"):
                of = {"charge": reference}
            else:
                of = {"payment_intent": reference}
            if look_first and (found := self._looked_up(of, payment_id)):
                return found
            refunds, options = self._client.v1.refunds, {"idempotency_key": key}
            try:
                made = refunds.create(params=params | of, options=options)
            except stripe.IdempotencyError:
                # the key was first sent without the metadata (before refunds carried it):
                # sent again as it was then, Stripe answers with the refund it made
                untagged = {k: v for k, v in params.items() if k != "metadata"}
                made = refunds.create(params=untagged | of, options=options)
        except UNANSWERED as exc:
            raise ProviderUnanswered(f"Stripe did not answer the refund: {_said(exc)}") from exc
        except stripe.StripeError as exc:
            raise ProviderError(f"Stripe did not make the refund: {_said(exc)}") from exc
        return made.id

    def _looked_up(self, of: dict[str, Any], payment_id: int) -> str | None:
        """`_made_refund`, a refusal of the look-up itself (not of the refund: a key without
        permission to read refunds, a payment Stripe will not list) raised as
        ProviderLookupRefused saying what Stripe said and what to fix; no answer stays
        Stripe's own error (`refund` makes it ProviderUnanswered)."""
        try:
            return self._made_refund(of, payment_id)
        except UNANSWERED:
            raise
        except stripe.StripeError as exc:
            fix = next((f for kind, f in LOOKUP_FIX.items() if isinstance(exc, kind)), "")
            said = _said(exc).rstrip(".")
            raise ProviderLookupRefused(
                f"{LOOKUP_REFUSED}: {said}." + (f" {fix}" if fix else "")
            ) from exc

    def _made_refund(self, of: dict[str, Any], payment_id: int) -> str | None:
        """The id of the refund made for our refund `payment_id` among the refunds of `of`
        (its payment intent or charge), found by its metadata; None when none was made."""
        listed = self._client.v1.refunds.list(params={**of, "limit": 100})
        for refund in listed.auto_paging_iter():
            if (refund.to_dict().get("metadata") or {}).get(REFUND_TAG) == str(payment_id):
                return refund.id
        return None

    def charge_saved_card(
        self, customer: str, amount_cents: int, currency: str, description: str, *, key: str
    ) -> Charge:
        """A payment intent confirmed off-session on the customer's first card, sent with `key`
        as Stripe's idempotency key: sent again with it (after a crash between Stripe's answer
        and our commit), Stripe answers with the first charge (or decline), not a new one. Its
        status is Stripe's: 'processing' or 'requires_action' is not money in yet. No answer (a
        timeout, Stripe's own failure) is `ProviderUnanswered`: it may have been charged."""
        amount = to_stripe_amount(amount_cents, currency)
        try:
            methods = self._client.v1.payment_methods.list(
                params={"customer": customer, "limit": 1}
            )
            if not methods.data:
                raise ValidationError("The patient has no card on file with the provider.")
            intent = self._client.v1.payment_intents.create(
                params={
                    "amount": amount,
                    "currency": currency.lower(),
                    "customer": customer,
                    "payment_method": methods.data[0].id,
                    "off_session": True,
                    "confirm": True,
                    "description": description,
                },
                options={"idempotency_key": key},
            )
        except UNANSWERED as exc:
            raise ProviderUnanswered(
                f"Stripe did not answer the charge to the card on file: {_said(exc)}"
            ) from exc
        except stripe.StripeError as exc:
            raise ProviderError(f"Stripe did not charge the card on file: {_said(exc)}") from exc
        return Charge(intent.id, str(intent.status))

    def charge_state(self, reference: str) -> Charge:
        """The payment intent `reference` as Stripe has it now: its status, and what Stripe
        said of a failure (its last payment error) or why it was canceled."""
        try:
            intent = self._client.v1.payment_intents.retrieve(reference)
        except stripe.StripeError as exc:
            raise ProviderError(
                f"Stripe did not say how the charge to the card on file stands: {_said(exc)}"
            ) from exc
        return Charge(intent.id, str(intent.status), intent_said(intent.to_dict()))

    def cancel_charge(self, reference: str, *, key: str) -> Charge:
        """Cancel the payment intent `reference` ('abandoned'), sent with `key` as Stripe's
        idempotency key (sent again after a crash, Stripe answers with the first cancel).
        Stripe refuses to cancel one that succeeded (or is processing, or was canceled): it is
        then read, and its state returned, so a charge that went through meanwhile is paid."""
        intents = self._client.v1.payment_intents
        try:
            try:
                intent = intents.cancel(
                    reference,
                    params={"cancellation_reason": "abandoned"},
                    options={"idempotency_key": key},
                )
            except stripe.InvalidRequestError:
                intent = intents.retrieve(reference)
        except stripe.StripeError as exc:
            raise ProviderError(
                f"Stripe did not cancel the unfinished charge to the card on file: {_said(exc)}"
            ) from exc
        return Charge(intent.id, str(intent.status), intent_said(intent.to_dict()))

    def verify_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event, if Stripe signed it with this endpoint's secret (else ValidationError)."""
        try:
            event = stripe.Webhook.construct_event(payload, signature or "", self._webhook_secret)
        except (ValueError, stripe.SignatureVerificationError):
            raise ValidationError("The webhook signature is not valid.") from None
        return event.to_dict()


def intent_said(intent: dict[str, Any]) -> str:
    """Why a payment intent (as Stripe states it, in an answer or an event) was not taken, as
    a sentence: its last payment error's message, or its cancellation and the reason given."""
    error = (intent.get("last_payment_error") or {}).get("message")
    if intent.get("status") == "canceled" or intent.get("cancellation_reason"):
        why = intent.get("cancellation_reason")
        canceled = "the charge was canceled" + (f" ({str(why).replace('_', ' ')})" if why else "")
        return f"{canceled}: {error}" if error else f"{canceled}."
    return str(error) if error else ""


def _said(exc: stripe.StripeError) -> str:
    """What Stripe said, as a sentence (its message, else the kind of error)."""
    return exc.user_message or type(exc).__name__


def provider_for(settings: StripeSettings | None) -> PaymentProvider:
    return StripeProvider(settings) if settings else DeskProvider()
