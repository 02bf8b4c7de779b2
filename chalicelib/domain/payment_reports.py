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


@dataclass(frozen=True)
class IntentClaim:
    """What a Stripe PaymentIntent says about itself, read from an event or from Stripe.

    On a connected account its contents are written by whoever controls that account: the
    owner can make PaymentIntents there with any amount and our ids in their metadata, and
    Stripe signs the events about them like any other. `application_fee_amount` is the one
    field only the platform can set (it takes the Stripe-Account header or an OAuth key), and
    `made_by_a_platform` says whether a Connect application made it (Stripe's `application`);
    each None when the object does not show the field (localstripe's)."""

    payment_intent_id: str | None
    account_id: str | None
    amount: int | None
    currency: str | None
    application_fee_amount: int | None = None
    made_by_a_platform: bool | None = None

    def refusal(self, payment: Payment) -> str | None:
        """Why this PaymentIntent's news is not `payment`'s; None when it is. It is when it
        happened on the payment's Stripe account and is the PaymentIntent the payment records,
        or, while the payment records none yet (Stripe's answer to the charge was lost), is
        for what we asked: the payment's amount, currency and application fee, and, on a
        connected account, made by a platform rather than by the account itself."""
        if payment.stripe.account_id != (self.account_id or None):
            return (
                f"payment {payment.id} is on Stripe account "
                f"{payment.stripe.account_id or 'platform'}, "
                f"the PaymentIntent on {self.account_id or 'platform'}"
            )
        recorded = payment.stripe.payment_intent_id
        if recorded is not None:
            if self.payment_intent_id != recorded:
                return (
                    f"PaymentIntent {self.payment_intent_id} is not payment {payment.id}'s "
                    f"({recorded})"
                )
            return None
        asked = (payment.total, payment.currency.lower())
        if (self.amount, (self.currency or "").lower()) != asked:
            return (
                f"PaymentIntent {self.payment_intent_id} is for {self.amount} "
                f"{self.currency}, payment {payment.id} asked {asked[0]} {asked[1]}"
            )
        fee = self.application_fee_amount
        if fee is not None and fee != payment.application_fee_amount:
            return (
                f"PaymentIntent {self.payment_intent_id} carries an application fee of {fee}, "
                f"payment {payment.id} asked {payment.application_fee_amount}"
            )
        if payment.stripe.account_id and self.made_by_a_platform is False:
            return (
                f"PaymentIntent {self.payment_intent_id} was made by account "
                f"{payment.stripe.account_id} itself, not by the platform"
            )
        return None
