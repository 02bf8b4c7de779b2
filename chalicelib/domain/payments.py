"""Payments: the ledger. A payment carries its own order summary and only moves forward.

Public API for the service layer:
- `new_payment(charge, payment_id, billed_to, payment_method, stripe_account_id,
  application_fee_bps, now) -> Payment` (status `pending`; written before Stripe is called).
- `payment.succeed(now, payment_intent_id=, charge_id=, payment_method=) -> PaymentChange`
- `payment.fail(failure, now, payment_intent_id=) -> PaymentChange`
- `payment.refund(amount | None, now) -> tuple[PaymentChange, int]` reserves a refund (the
  amount): `amount_refund_pending` holds it until Stripe answers;
  `payment.settle_refund(amount, refunded, now)` moves it to `amount_refunded` (Stripe refunded)
  or releases it (Stripe provably did not);
  `payment.record_refunded_total(total_refunded, now)` for refunds Stripe reports (webhooks).
- `payment.open_dispute(now)`, `payment.close_dispute(won, now) -> PaymentChange`.
- `application_fee_for(total, stripe_account_id, application_fee_bps, currency) -> int`.
Every transition returns `PaymentChange(payment, changed)`; `changed=False` means the event was
late or a duplicate (e.g. `failed` after `succeeded`) and nothing must be written.

Invariants (checked on construction): subtotal == sum of the non-credit lines; a `credit` line of
amount -credit_applied is present iff credit_applied > 0; total == subtotal - credit_applied
== sum of all lines; total >= 0; 0 <= amount_refunded <= amount_paid <= total;
0 <= amount_refund_pending <= amount_paid - amount_refunded.

`amount_refunded` is what Stripe refunded (the ledger equals Stripe); `amount_refund_pending` is
what refunds waiting for Stripe's answer reserve, so two refunds never exceed the payment.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from chalicelib.domain.billing.charges import ChargePlan
from chalicelib.domain.billing.lines import PaymentKind, PaymentLine
from chalicelib.domain.currencies import currency, ensure_chargeable_amount
from chalicelib.domain.errors import Conflict, InvalidRequest
from chalicelib.domain.money import application_fee
from chalicelib.domain.periods import Period

PaymentStatus = Literal[
    "pending", "succeeded", "failed", "refunded", "partially_refunded", "disputed"
]
PAYMENT_STATUSES: tuple[PaymentStatus, ...] = (
    "pending",
    "succeeded",
    "failed",
    "refunded",
    "partially_refunded",
    "disputed",
)
DisputeStatus = Literal["open", "won", "lost"]
RefundInitiator = Literal["api", "automatic"]

# A pending payment older than this with no news is resolved from what Stripe did (the
# recovery pass): Stripe's search may not show an intent made moments before.
PENDING_RECOVERY_DELAY = timedelta(minutes=5)

# The statuses a report of each outcome leaves as they are: `succeed()` and `fail()` change
# nothing there (a late or repeated report of a PaymentIntent's outcome).
SETTLED_FOR: dict[str, tuple[PaymentStatus, ...]] = {
    "succeeded": tuple(s for s in PAYMENT_STATUSES if s not in ("pending", "failed")),
    "failed": tuple(s for s in PAYMENT_STATUSES if s != "pending"),
}

# Statuses in which money was taken (refunds and disputes apply to these).
_COLLECTED: tuple[PaymentStatus, ...] = ("succeeded", "partially_refunded", "refunded", "disputed")


@dataclass(frozen=True)
class BilledTo:
    profile_id: str
    name: str
    email: str | None


@dataclass(frozen=True)
class PaymentMethodSummary:
    type: str
    brand: str | None
    last4: str | None


@dataclass(frozen=True)
class StripeRefs:
    account_id: str | None = None
    payment_intent_id: str | None = None
    charge_id: str | None = None


@dataclass(frozen=True)
class PaymentFailure:
    code: str
    decline_code: str | None
    message: str


NOT_ATTEMPTED = PaymentFailure(
    code="not_attempted", decline_code=None, message="Stripe holds no charge for this payment."
)
# A scheduled charge whose owner has no card on the community's current Stripe account (e.g.
# the community connected its own account after the card was saved): nothing is sent to
# Stripe; the renewal fails like a decline, so dunning and the pay-now link collect a card.
NO_CARD_ON_ACCOUNT = PaymentFailure(
    code="no_card_on_account",
    decline_code=None,
    message="The owner has no card on file for the community's Stripe account.",
)
# The same for a card detached from the owner's Stripe customer (`payment_method.detached`, or
# our own DELETE of it): Stripe never charges a detached PaymentMethod again.
CARD_DETACHED = PaymentFailure(
    code="card_detached",
    decline_code=None,
    message="The card was removed from the owner's Stripe customer and cannot be charged.",
)
# The same for a community whose connected account disconnected the platform (Stripe's
# `account.application.deauthorized`): nothing can be charged there until it reconnects.
ACCOUNT_DISCONNECTED = PaymentFailure(
    code="account_disconnected",
    decline_code=None,
    message="The community's Stripe account has disconnected the platform.",
)
# A payment left pending whose account disconnected the platform before the recovery pass
# could read what Stripe did: it cannot stay pending (its subscription waits for it), so it
# fails; should Stripe report it paid after a reconnect, the late success is refunded.
OUTCOME_UNREADABLE = PaymentFailure(
    code="account_disconnected",
    decline_code=None,
    message=(
        "The Stripe account disconnected the platform before the payment's outcome could be "
        "read; a success Stripe reports after a reconnect is refunded."
    ),
)


@dataclass(frozen=True)
class Payment:
    id: str
    subscription_id: str
    community_id: str
    kind: PaymentKind
    status: PaymentStatus
    currency: str
    lines: tuple[PaymentLine, ...]
    subtotal: int
    credit_applied: int
    total: int
    amount_paid: int
    amount_refunded: int
    application_fee_amount: int
    billed_to: BilledTo
    payment_method: PaymentMethodSummary | None
    stripe: StripeRefs
    failure: PaymentFailure | None
    period: Period | None
    charge_key: str
    created_at: datetime
    updated_at: datetime
    dispute_status: DisputeStatus | None = None
    # Reserved by refunds still waiting for Stripe (`pending_refunds` of them; the recovery
    # pass looks at the payment while there are any); `refund_pending_since` is when the newest
    # of them started (the recovery pass settles them all after PENDING_RECOVERY_DELAY).
    amount_refund_pending: int = 0
    pending_refunds: int = 0
    refund_pending_since: datetime | None = None
    # The optimistic lock: the revision this payment was read at (0 before it is stored).
    revision: int = 0

    def __post_init__(self) -> None:
        check_payment_invariants(self)

    # --- transitions: each returns PaymentChange; changed=False means "nothing to write" ---

    def succeed(
        self,
        now: datetime,
        *,
        payment_intent_id: str | None = None,
        charge_id: str | None = None,
        payment_method: PaymentMethodSummary | None = None,
    ) -> PaymentChange:
        """pending/failed -> succeeded (a PaymentIntent can succeed after an earlier failure,
        e.g. after authentication: the ledger follows the money). Later statuses, or news of
        another PaymentIntent than the one the payment records: no change."""
        if self.status in SETTLED_FOR["succeeded"] or self._another_intent(payment_intent_id):
            return PaymentChange(self, changed=False)
        stripe = replace(
            self.stripe,
            payment_intent_id=payment_intent_id or self.stripe.payment_intent_id,
            charge_id=charge_id or self.stripe.charge_id,
        )
        updated = replace(
            self,
            status="succeeded",
            amount_paid=self.total,
            failure=None,
            stripe=stripe,
            payment_method=payment_method or self.payment_method,
            updated_at=now,
        )
        return PaymentChange(updated, changed=True, previous_status=self.status)

    def fail(
        self, failure: PaymentFailure, now: datetime, *, payment_intent_id: str | None = None
    ) -> PaymentChange:
        """pending -> failed. Anything else (already failed, succeeded, refunded...), or news of
        another PaymentIntent than the one the payment records: no change."""
        if self.status in SETTLED_FOR["failed"] or self._another_intent(payment_intent_id):
            return PaymentChange(self, changed=False)
        stripe = replace(
            self.stripe, payment_intent_id=payment_intent_id or self.stripe.payment_intent_id
        )
        updated = replace(self, status="failed", failure=failure, stripe=stripe, updated_at=now)
        return PaymentChange(updated, changed=True, previous_status=self.status)

    def _another_intent(self, payment_intent_id: str | None) -> bool:
        """A payment has one PaymentIntent (its id is the idempotency key): once recorded,
        news of another one is not this payment's, whatever its metadata says."""
        recorded = self.stripe.payment_intent_id
        return None not in (recorded, payment_intent_id) and payment_intent_id != recorded

    @property
    def refundable_amount(self) -> int:
        return self.amount_paid - self.amount_refunded - self.amount_refund_pending

    def refund(self, amount: int | None, now: datetime) -> tuple[PaymentChange, int]:
        """Reserve a refund of `amount` (default: all that is left) until Stripe answers.
        More than is left, or nothing left: InvalidRequest. Not paid (or disputed): Conflict."""
        if self.status not in ("succeeded", "partially_refunded", "refunded"):
            raise Conflict(f"Payment {self.id} is {self.status}; only paid payments are refunded.")
        left = self.refundable_amount
        if left <= 0:
            raise InvalidRequest.for_field(
                "amount", f"Nothing is left to refund on payment {self.id}."
            )
        if amount is None:
            amount = left
        if amount <= 0:
            raise InvalidRequest.for_field("amount", "A refund amount is a positive integer.")
        ensure_chargeable_amount(self.currency, amount, "amount")
        if amount > left:
            shown = currency(self.currency).format(left)
            raise InvalidRequest.for_field(
                "amount",
                f"Only {shown} ({left} in minor units) is left to refund on payment {self.id}.",
            )
        updated = replace(
            self,
            amount_refund_pending=self.amount_refund_pending + amount,
            pending_refunds=self.pending_refunds + 1,
            refund_pending_since=now,
            updated_at=now,
        )
        return PaymentChange(updated, changed=True, previous_status=self.status), amount

    def settle_refund(self, amount: int, refunded: bool, now: datetime) -> PaymentChange:
        """A reserved refund's answer: Stripe refunded it (`refunded`: the amount moves to
        `amount_refunded`) or provably did not (the reservation is released). Clamped, so a
        total Stripe reported first (record_refunded_total) is never counted twice."""
        left = max(0, self.pending_refunds - 1)
        settled = replace(
            self,
            amount_refund_pending=max(0, self.amount_refund_pending - amount) if left else 0,
            pending_refunds=left,
            refund_pending_since=self.refund_pending_since if left else None,
            updated_at=now,
        )
        if not refunded:
            return PaymentChange(settled, changed=True, previous_status=self.status)
        total = min(self.amount_paid, self.amount_refunded + amount)
        return settled._with_refunded(total, now, previous=self.status)

    def record_refunded_total(self, total_refunded: int, now: datetime) -> PaymentChange:
        """Stripe reports the cumulative amount refunded (e.g. `charge.refunded` from the
        dashboard). Only moves forward: a smaller or equal total changes nothing. Stripe's
        total wins over a reservation that no longer fits beside it (the pending refunds are
        still settled one by one from what Stripe did)."""
        if self.status not in _COLLECTED or total_refunded <= self.amount_refunded:
            return PaymentChange(self, changed=False)
        if total_refunded > self.amount_paid:
            raise InvalidRequest.for_field("amount_refunded", "More refunded than was paid.")
        pending = min(self.amount_refund_pending, self.amount_paid - total_refunded)
        reserved = replace(self, amount_refund_pending=pending)
        return reserved._with_refunded(total_refunded, now, previous=self.status)

    def _with_refunded(
        self, amount_refunded: int, now: datetime, *, previous: PaymentStatus
    ) -> PaymentChange:
        status = "disputed" if self.status == "disputed" else self._paid_status(amount_refunded)
        updated = replace(self, amount_refunded=amount_refunded, status=status, updated_at=now)
        return PaymentChange(updated, changed=True, previous_status=previous)

    def _paid_status(self, amount_refunded: int) -> PaymentStatus:
        """A collected payment's status outside a dispute: what its refunds make it."""
        if amount_refunded == 0:
            return "succeeded"
        return "refunded" if amount_refunded == self.amount_paid else "partially_refunded"

    def open_dispute(self, now: datetime) -> PaymentChange:
        if self.status == "disputed":
            return PaymentChange(self, changed=False)
        if self.status not in _COLLECTED:
            return PaymentChange(self, changed=False)
        updated = replace(
            self,
            status="disputed",
            dispute_status="open",
            updated_at=now,
        )
        return PaymentChange(updated, changed=True, previous_status=self.status)

    def close_dispute(self, won: bool, now: datetime) -> PaymentChange:
        """Won: the status its refunds make it (refunds Stripe reported during the dispute
        included: events arrive out of order). Lost: stays disputed (money gone)."""
        if self.status != "disputed" or self.dispute_status != "open":
            return PaymentChange(self, changed=False)
        if won:
            status = self._paid_status(self.amount_refunded)
            updated = replace(self, status=status, dispute_status="won", updated_at=now)
        else:
            updated = replace(self, dispute_status="lost", updated_at=now)
        return PaymentChange(updated, changed=True, previous_status=self.status)


@dataclass(frozen=True)
class PaymentChange:
    payment: Payment
    changed: bool
    previous_status: PaymentStatus | None = None


@dataclass(frozen=True)
class Refund:
    """`POST /v1/payments/{id}/refunds` -> {id, payment_id, amount, status, created_at}."""

    id: str
    payment_id: str
    amount: int
    status: Literal["pending", "succeeded", "failed"]
    reason: str | None
    created_at: datetime
    stripe_refund_id: str | None = None
    # "api": asked for by the platform; "automatic": money we must give back (a success that
    # arrived after the payment was recorded failed). An automatic refund Stripe provably never
    # received is sent again by the recovery pass (same idempotency key); an API one fails.
    initiated_by: RefundInitiator = "api"


def automatic_refund_id(payment_id: str) -> str:
    """The one automatic refund of a payment: deterministic, so it is the idempotency key of
    every attempt and a second late success finds it already there."""
    return f"ref_auto_{payment_id}"


def check_payment_invariants(payment: Payment) -> None:
    """Raise ValueError when a payment's amounts do not add up (never stored that way)."""
    credit_lines = [line for line in payment.lines if line.kind == "credit"]
    charge_lines = [line for line in payment.lines if line.kind != "credit"]
    if payment.subtotal != sum(line.amount for line in charge_lines):
        raise ValueError("subtotal must equal the sum of the non-credit lines")
    if payment.credit_applied < 0 or payment.credit_applied > payment.subtotal:
        raise ValueError("credit_applied must be within 0..subtotal")
    if sum(line.amount for line in credit_lines) != -payment.credit_applied:
        raise ValueError("the credit line must equal -credit_applied")
    if len(credit_lines) != (1 if payment.credit_applied else 0):
        raise ValueError("exactly one credit line when credit is applied, else none")
    if payment.total != payment.subtotal - payment.credit_applied:
        raise ValueError("total must equal subtotal - credit_applied")
    if payment.total != sum(line.amount for line in payment.lines):
        raise ValueError("total must equal the sum of all lines")
    if payment.total < 0:
        raise ValueError("total is never negative")
    if not 0 <= payment.amount_refunded <= payment.amount_paid <= payment.total:
        raise ValueError("0 <= amount_refunded <= amount_paid <= total")
    if not 0 <= payment.amount_refund_pending <= payment.amount_paid - payment.amount_refunded:
        raise ValueError("0 <= amount_refund_pending <= amount_paid - amount_refunded")
    if payment.pending_refunds < 0 or (
        payment.amount_refund_pending and not payment.pending_refunds
    ):
        raise ValueError("a reserved amount belongs to pending refunds")
    if (payment.pending_refunds > 0) != (payment.refund_pending_since is not None):
        raise ValueError("refund_pending_since is set exactly while refunds are pending")
    if not 0 <= payment.application_fee_amount <= payment.total:
        raise ValueError("the application fee is within 0..total")


def new_payment(
    charge: ChargePlan,
    payment_id: str,
    billed_to: BilledTo,
    payment_method: PaymentMethodSummary | None,
    stripe_account_id: str | None,
    application_fee_bps: int,
    now: datetime,
) -> Payment:
    """A pending payment for a charge plan. The application fee applies only on a
    connected account (DESIGN.md section 3)."""
    if billed_to.profile_id != charge.billed_to_profile_id:
        raise ValueError("billed_to must be the profile the charge plan bills")
    fee = application_fee_for(charge.total, stripe_account_id, application_fee_bps, charge.currency)
    return Payment(
        id=payment_id,
        subscription_id=charge.subscription_id,
        community_id=charge.community_id,
        kind=charge.kind,
        status="pending",
        currency=charge.currency,
        lines=charge.lines,
        subtotal=charge.subtotal,
        credit_applied=charge.credit_applied,
        total=charge.total,
        amount_paid=0,
        amount_refunded=0,
        application_fee_amount=fee,
        billed_to=billed_to,
        payment_method=payment_method,
        stripe=StripeRefs(account_id=stripe_account_id),
        failure=None,
        period=charge.period,
        charge_key=charge.charge_key,
        created_at=now,
        updated_at=now,
    )


def application_fee_for(
    total: int, stripe_account_id: str | None, application_fee_bps: int, currency_code: str
) -> int:
    """The platform's fee on a charge: only on a community's connected account."""
    if not stripe_account_id:
        return 0
    return application_fee(total, application_fee_bps, currency(currency_code).charge_step)
