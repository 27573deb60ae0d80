"""Payments and points: the practice's prepayment rules and the value of a point,
the points ledger (opened, earned, spent, deducted, adjusted, refunded), prepayments by points
and/or card, payments recorded at the desk, refunds, fees paid, and the payment-provider adapters
(pay at the desk by default, Stripe Checkout when keys are configured) with the webhook.

Everything is in integer minor units and whole points, in the currency of the appointment's
clinic (there is no practice-wide currency; a point is worth the practice's value in minor units
of that currency). Imports core.policy, core.messaging and
core.kernel only; core.scheduling (cancel), core.feedback (survey points) and core.portal call
into it.
"""
