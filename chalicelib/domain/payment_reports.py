"""What a Stripe event reports about one of our payments, and when it changes nothing.

Most `payment_intent.*` events arrive after the charge's own answer resolved the payment: the
report then changes nothing, and the webhook stores the event in one conditional write whose
conditions are this rule (adapters/dynamodb/payments.py `settled_checks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chalicelib.domain.payments import SETTLED_FOR, Payment
from chalicelib.domain.subscriptions import Subscription


@dataclass(frozen=True)
class PaymentReport:
    """A PaymentIntent's outcome, reported for the payment its metadata names (and the
    subscription, when it names one), from the Stripe account it happened on (None: the
    platform's own)."""

    community_id: str
    payment_id: str
    subscription_id: str | None
    outcome: Literal["succeeded", "failed"]
    payment_intent_id: str
    account_id: str | None

    def changes_nothing(self, payment: Payment | None, subscription: Subscription | None) -> bool:
        """Resolving `payment` from this report would change nothing and route nowhere else:
        the payment is settled for the outcome (`succeed()`/`fail()` leave it as it is), records
        this PaymentIntent, was charged on this account, and its subscription (when named)
        exists and waits for no charge of this payment."""
        if payment is None or payment.status not in SETTLED_FOR[self.outcome]:
            return False
        if payment.stripe.payment_intent_id != self.payment_intent_id:
            return False
        if payment.stripe.account_id != (self.account_id or None):
            return False
        if self.subscription_id is None:
            return True
        return subscription is not None and (
            subscription.pending_charge is None
            or subscription.pending_charge.payment_id != self.payment_id
        )
