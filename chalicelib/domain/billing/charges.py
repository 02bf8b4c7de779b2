"""Charge plans: what a subscription operation would charge, and what happens if it succeeds.

A `ChargePlan` is computed by a `charge_planning.plan_*` function. The service then (DESIGN.md
section 6) writes a pending payment (`payments.new_payment`) together with
`charge_outcomes.begin_charge(sub, plan, payment_id, now)` (which stores `plan.pending` on the
subscription), calls Stripe, and resolves with `apply_charge_succeeded/failed(sub, payment_id,
now)`.
Because the pending charge is stored on the subscription, a crash between Stripe and the
resolution can be resolved later (webhook, recovery) from stored state alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chalicelib.domain.billing.lines import CarriedAmount, PaymentKind, PaymentLine
from chalicelib.domain.currencies import currency
from chalicelib.domain.members import Member
from chalicelib.domain.periods import Period
from chalicelib.domain.plans import BillingCycle, Plan


@dataclass(frozen=True)
class PlanSnapshot:
    """The plan terms a subscription is billed on (prices, currency and fee never change)."""

    plan_id: str
    name: str
    currency: str
    prices: dict[BillingCycle, int]
    activation_fee: int
    failed_payment_grace_days: int
    retry_schedule_days: tuple[int, ...]
    max_members: int | None

    @property
    def free(self) -> bool:
        """Nothing is ever charged: every price and the activation fee are zero."""
        return self.activation_fee == 0 and all(amount == 0 for amount in self.prices.values())

    def unit_amount(self, cycle: BillingCycle) -> int:
        return self.prices[cycle]

    def offers(self, cycle: BillingCycle) -> bool:
        return cycle in self.prices


def plan_snapshot(plan: Plan) -> PlanSnapshot:
    return PlanSnapshot(
        plan_id=plan.id,
        name=plan.name,
        currency=plan.currency,
        prices=dict(plan.prices),
        activation_fee=plan.activation_fee,
        failed_payment_grace_days=plan.failed_payment_grace_days,
        retry_schedule_days=tuple(plan.retry_schedule_days),
        max_members=plan.max_members,
    )


@dataclass(frozen=True)
class PendingCharge:
    """A charge in flight, stored on the subscription until resolved.

    Holds the subscription's values *after* success (`plan`, `billing_cycle`, `owner_id`,
    `payment_method_id`, `members`, `period`), so success is a copy and failure is a no-op
    (plus the failed-payment bookkeeping for renewals and retries). Members whose activation
    fee is charged by this payment have fee status `due` here and become `paid` on success.
    `period_anchor`/`period_index` describe `period` (period_index-th period of the anchor);
    `pending_changes_*` are the subscription's queued changes after success.
    For a renewal, `plan` holds the plan it moves to (a queued plan change, else its own) on
    that plan's latest terms when planned: a failed renewal starts its grace and retries on
    them. `failure_terms`: the subscription's own plan on its latest terms, which the failed
    subscription keeps (None: the subscription's snapshot).
    """

    kind: PaymentKind
    payment_id: str | None
    charge_key: str
    started_at: datetime
    credit_applied: int
    credit_granted: int
    billed_to_profile_id: str
    plan: PlanSnapshot
    billing_cycle: BillingCycle
    owner_id: str
    payment_method_id: str
    members: tuple[Member, ...]
    period: Period
    period_anchor: datetime
    period_index: int
    pending_changes_billing_cycle: BillingCycle | None = None
    pending_changes_plan: PlanSnapshot | None = None
    # The subscription's carried amounts after success: () when this charge includes them,
    # all of them plus this order when it is itself carried (see ChargePlan.carried_forward).
    carried: tuple[CarriedAmount, ...] = ()
    failure_terms: PlanSnapshot | None = None


@dataclass(frozen=True)
class ChargePlan:
    """The lines and totals to charge now and the pending charge to store meanwhile.

    `needs_payment`: a payment record is written (subtotal > 0). `needs_stripe`: Stripe is
    called (total > 0). When `needs_stripe` is false use `outcomes.settle_without_stripe`.
    `base_version` is the subscription version it was planned from (begin_charge checks it).
    `credit_granted` (cheaper plan now) is added to the owner's credit balance on success.
    `credit_applied` comes from `billed_to_profile_id`'s credit balance and is reserved by
    `begin_charge` (Outcome.credit_change), returned if the charge fails.
    `carried_forward`: the subtotal was under the currency's minimum and is not charged now;
    it is kept on the subscription (`pending.carried`) for its next charge (total 0).
    """

    subscription_id: str
    community_id: str
    kind: PaymentKind
    currency: str
    lines: tuple[PaymentLine, ...]
    subtotal: int
    credit_applied: int
    total: int
    period: Period | None
    billed_to_profile_id: str
    payment_method_id: str
    charge_key: str
    base_version: int
    credit_granted: int
    pending: PendingCharge
    carried_forward: int = 0

    def __post_init__(self) -> None:
        # The last guard before Stripe: it refuses amounts under the currency's minimum.
        chargeable = currency(self.currency)
        if 0 < self.total < chargeable.minimum_charge:
            raise ValueError(f"a total under the {self.currency} minimum is never charged")
        if self.total % chargeable.charge_step:
            raise ValueError(f"{self.currency} totals are multiples of {chargeable.charge_step}")
        if self.credit_applied + self.total + self.carried_forward != self.subtotal:
            raise ValueError("subtotal = credit applied + total + carried forward")

    @property
    def needs_payment(self) -> bool:
        return self.subtotal > 0 and not self.carried_forward

    @property
    def needs_stripe(self) -> bool:
        return self.total > 0
