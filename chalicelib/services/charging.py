"""The payment flow of DESIGN.md section 6, shared by the API, the scheduler and the webhooks.

1. `charge(...)`: the pending payment (with its lines), the subscription's pending-charge
   marker, the charge-key claim (at most one live charge per (subscription, period, kind)),
   the reserved credit and an audit event go in ONE transaction.
2. One PaymentIntent (`confirm`, `off_session`, idempotency key = payment id, our ids in
   metadata). A transient Stripe failure raises `PaymentPending` (503): nothing else is
   written, the payment stays pending and is resolved later from what Stripe did.
3. `resolve(...)`: payment succeeded/failed + the subscription's transition + charge key +
   credit + links + audit event, in ONE transaction. Forward-only and idempotent: a payment
   that is no longer pending is not resolved again (a late success after a recorded failure
   is recorded on the payment alone, because the money was taken).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from chalicelib.adapters.dynamodb import audit_events, charge_keys
from chalicelib.adapters.dynamodb.billing_context import BillingContext, load_billing_context
from chalicelib.adapters.dynamodb.payments import StoredPayment
from chalicelib.adapters.dynamodb.profiles import credit_change_entry
from chalicelib.adapters.stripe.payments import ChargeRequest, IntentOutcome
from chalicelib.domain.billing.charges import ChargePlan
from chalicelib.domain.billing.outcomes import (
    apply_charge_failed,
    apply_charge_succeeded,
    begin_charge,
    settle_without_stripe,
)
from chalicelib.domain.communities import Community
from chalicelib.domain.errors import ConcurrentChange, Conflict, Unavailable
from chalicelib.domain.events import Actor, AuditEvent
from chalicelib.domain.ids import new_id
from chalicelib.domain.payments import (
    BilledTo,
    Payment,
    PaymentFailure,
    PaymentMethodSummary,
    new_payment,
)
from chalicelib.domain.subscriptions import Outcome, Subscription
from chalicelib.services.links import link_entries

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container

RESOLVE_ATTEMPTS = 3


class PaymentPending(Unavailable):
    """Stripe did not answer definitively; the payment stays pending until it is resolved
    from Stripe (webhook or recovery pass). Never charge it again."""

    def __init__(self, message: str, payment_id: str) -> None:
        super().__init__(message)
        self.payment_id = payment_id


@dataclass(frozen=True)
class ChargeResult:
    subscription: Subscription
    payment: Payment | None

    @property
    def succeeded(self) -> bool:
        return self.payment is None or self.payment.status != "failed"


# --- transaction pieces ----------------------------------------------------------------------
def subscription_change_entries(
    container: Container,
    before: Subscription,
    outcome: Outcome,
    now: datetime,
) -> list[dict[str, Any]]:
    """Save the new state (conditional on the version read) + audit event + link items +
    credit change: the entries of one state change."""
    after = outcome.subscription
    table = container.settings.table_name
    entries = [container.subscriptions.save_entry(after, before.version)]
    entries.append(audit_event_entry(container, after, outcome.event, before.version + 1))
    entries += link_entries(table, before, after, now)
    if outcome.credit_change is not None:
        entries.append(
            credit_change_entry(
                table,
                after.community_id,
                outcome.credit_change.profile_id,
                outcome.credit_change.delta,
            )
        )
    return entries


def audit_event_entry(
    container: Container, sub: Subscription, event: AuditEvent, new_version: int | None = None
) -> dict[str, Any]:
    """The audit entry of a change writing `new_version`, or (None) of an event that changes
    no subscription state."""
    return audit_events.put_entry(
        container.settings.table_name,
        sub.community_id,
        sub.id,
        event,
        new_version if new_version is not None else sub.version,
        new_version is not None,
    )


def apply_change(container: Container, before: Subscription, outcome: Outcome) -> Subscription:
    """Commit a plain (non-charging) transition in one transaction; returns the stored state."""
    now = outcome.event.at
    container.subscriptions.commit(subscription_change_entries(container, before, outcome, now))
    return written(before, outcome.subscription)


def written(before: Subscription, after: Subscription) -> Subscription:
    """The state just committed: `after` at the version the conditional write gave it."""
    return replace(after, version=before.version + 1)


# --- the flow ----------------------------------------------------------------------------------
def billing_context(
    container: Container, community_id: str, profile_id: str, payment_method_id: str | None
) -> BillingContext:
    """Community, billed profile and card snapshot in one read (billing_context.py)."""
    return load_billing_context(
        container.dynamodb,
        container.settings.table_name,
        community_id,
        profile_id,
        payment_method_id,
    )


def charge(
    container: Container,
    sub: Subscription,
    plan: ChargePlan,
    *,
    actor: Actor,
    now: datetime,
    context: BillingContext | None = None,
) -> ChargeResult:
    """Run one planned charge to completion (or to PaymentPending). `context`: the billing
    context the caller read to plan the charge (reused when it names the same profile/card)."""
    from chalicelib.services.cards import billed_to_of, card_summary, stripe_customer_of

    if (
        context is None
        or context.billed.id != plan.billed_to_profile_id
        or (context.card or {}).get("id") != plan.payment_method_id
    ):
        context = billing_context(
            container, sub.community_id, plan.billed_to_profile_id, plan.payment_method_id
        )
    if context.community_disconnected:
        raise Conflict(
            "The community's Stripe account has disconnected the platform; nothing was charged."
        )
    community, billed = context.community, context.billed
    billed_to = billed_to_of(billed)
    method = card_summary(context.card)
    if not plan.needs_stripe:
        return _settle(container, community, sub, plan, billed_to, method, actor, now)
    customer_id = stripe_customer_of(container, billed, community.stripe_account_id)
    payment_id = new_id("pay")
    payment = new_payment(
        plan,
        payment_id,
        billed_to,
        method,
        community.stripe_account_id,
        community.fee_bps_for_charges(),
        now,
    )
    begun = begin_charge(sub, plan, payment_id, now, actor)
    table = container.settings.table_name
    entries = [container.payments.create_entry(payment)]
    entries += subscription_change_entries(container, sub, begun, now)
    entries.append(
        charge_keys.claim_entry(table, sub.community_id, sub.id, plan.charge_key, payment_id)
    )
    container.subscriptions.commit(entries)
    known = (StoredPayment(payment, 1), written(sub, begun.subscription))

    request = ChargeRequest(
        payment_id=payment_id,
        amount=payment.total,
        currency=payment.currency,
        customer_id=customer_id,
        payment_method_id=plan.payment_method_id,
        stripe_account_id=community.stripe_account_id,
        application_fee_amount=payment.application_fee_amount,
        metadata={
            "community_id": sub.community_id,
            "subscription_id": sub.id,
            "payment_id": payment_id,
            "kind": plan.kind,
        },
    )
    try:
        outcome = container.payment_gateway.charge(request)
    except Unavailable as error:
        raise PaymentPending(
            f"{error.message} Payment {payment_id} stays pending and will be resolved from "
            "Stripe; it is never charged twice.",
            payment_id,
        ) from None
    if outcome.status == "pending":
        raise PaymentPending(
            f"Stripe is still processing payment {payment_id}; it will be resolved shortly.",
            payment_id,
        )
    result = resolve(container, sub.community_id, payment_id, outcome, actor=actor, known=known)
    return ChargeResult(result.subscription, result.payment)


def _settle(
    container: Container,
    community: Community,
    sub: Subscription,
    plan: ChargePlan,
    billed_to: BilledTo,
    method: PaymentMethodSummary | None,
    actor: Actor,
    now: datetime,
) -> ChargeResult:
    """A charge Stripe is not needed for (free plan, cheaper plan, or credit paid it all)."""
    payment: Payment | None = None
    entries: list[dict[str, Any]] = []
    payment_id = new_id("pay") if plan.needs_payment else None
    if payment_id is not None:
        pending = new_payment(plan, payment_id, billed_to, method, None, 0, now)
        payment = pending.succeed(now).payment
        entries.append(container.payments.create_entry(payment))
    settled = settle_without_stripe(sub, plan, now, payment_id=payment_id, actor=actor)
    entries += subscription_change_entries(container, sub, settled, now)
    if payment_id is not None:
        table = container.settings.table_name
        entries.append(
            charge_keys.claim_entry(
                table, sub.community_id, sub.id, plan.charge_key, payment_id, "succeeded"
            )
        )
    container.subscriptions.commit(entries)
    _ = community
    return ChargeResult(written(sub, settled.subscription), payment)


@dataclass(frozen=True)
class Resolution:
    subscription: Subscription
    payment: Payment
    changed: bool


ResolveStatus = Literal["succeeded", "failed"]


def resolve(
    container: Container,
    community_id: str,
    payment_id: str,
    outcome: IntentOutcome,
    *,
    actor: Actor,
    known: tuple[StoredPayment, Subscription] | None = None,
) -> Resolution:
    """Phase 3 for one payment from what Stripe reported. Idempotent and forward-only.

    `known`: the payment and subscription as phase 1 just wrote them (saves two reads; a
    concurrent resolver makes the conditional write fail and the state is read again)."""
    if outcome.status == "pending":
        raise ValueError("a pending outcome resolves nothing")
    for _ in range(RESOLVE_ATTEMPTS):
        try:
            return _resolve_once(container, community_id, payment_id, outcome, actor, known)
        except ConcurrentChange:
            known = None
    raise Conflict(f"Payment {payment_id} could not be resolved: too many concurrent changes.")


def _resolve_once(
    container: Container,
    community_id: str,
    payment_id: str,
    outcome: IntentOutcome,
    actor: Actor,
    known: tuple[StoredPayment, Subscription] | None,
) -> Resolution:
    now = container.clock.now()
    if known is not None:
        stored, sub = known
    else:
        stored = container.payments.get(community_id, payment_id)
        sub = container.subscriptions.get(community_id, stored.payment.subscription_id)
    payment = stored.payment
    if outcome.status == "succeeded":
        change = payment.succeed(
            now, payment_intent_id=outcome.payment_intent_id, charge_id=outcome.charge_id
        )
        status: ResolveStatus = "succeeded"
    else:
        failure = outcome.failure
        assert failure is not None
        change = payment.fail(
            PaymentFailure(failure.code, failure.decline_code, failure.message),
            now,
            payment_intent_id=outcome.payment_intent_id,
        )
        status = "failed"
    if not change.changed:
        return _fill_in_stripe_refs(container, stored, sub, outcome)
    table = container.settings.table_name
    entries = [container.payments.save_entry(stored, change.payment)]
    in_flight = sub.pending_charge is not None and sub.pending_charge.payment_id == payment_id
    if in_flight:
        transition = (
            apply_charge_succeeded(sub, payment_id, now, actor)
            if status == "succeeded"
            else apply_charge_failed(sub, payment_id, now, actor)
        )
        entries += subscription_change_entries(container, sub, transition, now)
        after = written(sub, transition.subscription)
        entries.append(
            charge_keys.resolve_entry(
                table, community_id, sub.id, payment.charge_key, payment_id, status
            )
        )
    else:
        # Late news about a payment the subscription no longer waits for (e.g. a success
        # after a recorded failure): the ledger follows the money; the subscription stays.
        event = AuditEvent(
            now,
            f"payment.{status}_late",
            sub.status,
            sub.status,
            actor,
            {"payment_id": payment_id, "previous_status": change.previous_status},
        )
        entries.append(audit_event_entry(container, sub, event))
        after = sub
    container.subscriptions.commit(entries)
    return Resolution(after, change.payment, changed=True)


def _fill_in_stripe_refs(
    container: Container, stored: StoredPayment, sub: Subscription, outcome: IntentOutcome
) -> Resolution:
    """A duplicate or late report: change nothing, except learning a missing intent id."""
    payment = stored.payment
    if payment.stripe.payment_intent_id or not outcome.payment_intent_id:
        return Resolution(sub, payment, changed=False)
    refs = replace(
        payment.stripe,
        payment_intent_id=outcome.payment_intent_id,
        charge_id=payment.stripe.charge_id or outcome.charge_id,
    )
    updated = replace(payment, stripe=refs)
    try:
        container.subscriptions.commit([container.payments.save_entry(stored, updated)])
    except ConcurrentChange:
        return Resolution(sub, payment, changed=False)
    return Resolution(sub, updated, changed=False)
