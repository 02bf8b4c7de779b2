"""The business actions the scheduler dispatches, one due subject at a time.

Each is `ScheduledActions.<action>(community_id, subject_id, now) -> outcome` (a short
string). It re-reads its subject, acts only when the subject is still due for exactly that
action at `now`, and does its work in conditional writes, so a duplicate message or a second
worker is harmless ("not_due" / "not_pending"). Saving a subscription recomputes its due-index
attributes from `Subscription.next_action` (adapters/dynamodb/subscriptions.py), so the index
always says what is due next. The jobs reach them through chalicelib/jobs/registry.py.

- `renew(cid, subscription_id, now, known)` (group renewal): applies the queued cycle/plan
  change and the pending member removals, charges the next period (anchored, DESIGN.md 3).
  -> "renewed" | "renewal_failed" (now failed_payment) | "payment_pending" | "not_due" | "missing"
- `process_failed_payment(cid, subscription_id, now)` (group failed_payment): the
  retry when due (success starts a new cycle now) or the grace-end cancellation.
  -> "retry_succeeded" | "retry_failed" | "grace_cancelled" | "payment_pending" | "not_due" | ...
- `expire(cid, subscription_id, now)` (group expiration): expiring -> cancelled.
  -> "expired" | "not_due" | "missing"
- `recover_pending_payment(cid, payment_id, now)` (group pending_payment): resolves
  a payment left pending from what Stripe did: the stored PaymentIntent id, else a search by
  our metadata (payment_id). Never creates a PaymentIntent. An on-session intent the customer
  authenticated but nobody confirmed (the pay page closed) is confirmed; one still waiting
  for authentication fails as `authentication_required` (and is canceled). When Stripe
  provably has none (searched after the 5-minute delay), the payment fails as
  `not_attempted` and the normal failed-payment flow follows.
  -> "recovered_succeeded" | "recovered_failed" | "not_attempted" | "still_pending"
     | "not_pending" | "missing"
- `recover_pending_refunds(cid, payment_id, now)` (group pending_refund): settles a payment's
  refunds left pending from what Stripe did (services/refunds.py, `Refunds.recover`).
  -> "refunds_settled" | "still_pending" | "not_pending" | "missing"

Raises Unavailable only for transient failures before anything was written (retry the message).
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.adapters.dynamodb.billing_context import BillingContext
from chalicelib.adapters.stripe.payments import ChargeFailure, IntentOutcome, outcome_from_intent
from chalicelib.domain.billing.charges import ChargePlan
from chalicelib.domain.billing.planning import plan_renewal, plan_retry
from chalicelib.domain.errors import Conflict
from chalicelib.domain.events import Actor
from chalicelib.domain.payments import NOT_ATTEMPTED, PENDING_RECOVERY_DELAY
from chalicelib.domain.subscriptions import Outcome, Subscription
from chalicelib.services.charging import Charging, PaymentPending, stage_change
from chalicelib.services.ports import PaymentGateway, UnitOfWorkFactory

ACTOR: Actor = "scheduler"


def _due(sub: Subscription | None, action: str, now: datetime) -> bool:
    if sub is None:
        return False
    scheduled = sub.next_action
    return scheduled is not None and scheduled.action == action and scheduled.due_at <= now


class ScheduledActions:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        charging: Charging,
        gateway: PaymentGateway,
    ) -> None:
        self._uow = uow
        self._charging = charging
        self._gateway = gateway

    def _find(self, community_id: str, subscription_id: str) -> Subscription | None:
        with self._uow() as uow:
            return uow.subscriptions.find(community_id, subscription_id)

    def _charge(
        self, sub: Subscription, plan: ChargePlan, context: BillingContext, now: datetime
    ) -> str:
        try:
            result = self._charging.charge(sub, plan, actor=ACTOR, now=now, context=context)
        except PaymentPending:
            return "payment_pending"
        return "succeeded" if result.succeeded else "failed"

    def _apply(self, sub: Subscription, outcome: Outcome) -> None:
        with self._uow() as uow:
            uow.subscriptions.adopt(sub)
            stage_change(uow, sub, outcome)
            uow.commit()

    def renew(
        self,
        community_id: str,
        subscription_id: str,
        now: datetime,
        known: Subscription | None = None,
    ) -> str:
        """`known`: the subscription as the sweep read it (saves the read): the charge's first
        write is conditional on that version, so a stale copy ends as "not_due", never a
        charge."""
        sub = known
        if sub is None or sub.community_id != community_id or sub.id != subscription_id:
            sub = self._find(community_id, subscription_id)
        if sub is None:
            return "missing"
        if not _due(sub, "renew", now):
            return "not_due"
        try:
            # The plan as stored now (read with the rest, no extra request): its latest grace
            # days and retries apply if this renewal fails.
            context = self._charging.context(
                community_id, sub.owner_id, sub.payment_method_id, plan_id=sub.plan_id
            )
            plan = plan_renewal(
                sub,
                now,
                owner_credit=context.billed.credit_in(sub.currency),
                current_plan=context.plan,
            )
            outcome = self._charge(sub, plan, context, now)
        except Conflict:
            return "not_due"  # someone else renewed or changed it first
        return {"succeeded": "renewed", "failed": "renewal_failed"}.get(outcome, outcome)

    def process_failed_payment(self, community_id: str, subscription_id: str, now: datetime) -> str:
        sub = self._find(community_id, subscription_id)
        if sub is None:
            return "missing"
        try:
            grace_over = sub.grace_ends_at is not None and now >= sub.grace_ends_at
            if sub.status == "failed_payment" and sub.pending_charge is None and grace_over:
                # A retry still scheduled when grace has ended is moot: the grace end wins.
                self._apply(sub, sub.end_grace(now, actor=ACTOR))
                return "grace_cancelled"
            if _due(sub, "retry", now):
                context = self._charging.context(community_id, sub.owner_id, sub.payment_method_id)
                credit = context.billed.credit_in(sub.currency)
                plan = plan_retry(sub, now, owner_credit=credit)
                outcome = self._charge(sub, plan, context, now)
                return {"succeeded": "retry_succeeded", "failed": "retry_failed"}.get(
                    outcome, outcome
                )
        except Conflict:
            return "not_due"
        return "not_due"

    def expire(self, community_id: str, subscription_id: str, now: datetime) -> str:
        sub = self._find(community_id, subscription_id)
        if sub is None:
            return "missing"
        if not _due(sub, "expire", now):
            return "not_due"
        try:
            self._apply(sub, sub.expire(now, actor=ACTOR))
        except Conflict:
            return "not_due"
        return "expired"

    def recover_pending_refunds(self, community_id: str, payment_id: str, now: datetime) -> str:
        return self._charging.refunds.recover(community_id, payment_id, now, ACTOR)

    def recover_pending_payment(self, community_id: str, payment_id: str, now: datetime) -> str:
        with self._uow() as uow:
            payment = uow.payments.find(community_id, payment_id)
        if payment is None:
            return "missing"
        if payment.status != "pending":
            return "not_pending"
        if now < payment.created_at + PENDING_RECOVERY_DELAY:
            return "not_due"  # Stripe's search may not show an intent made moments ago
        account = payment.stripe.account_id
        if payment.stripe.payment_intent_id:
            intents = [self._gateway.retrieve_intent(payment.stripe.payment_intent_id, account)]
        else:
            intents = self._gateway.find_intents_by_metadata("payment_id", payment_id, account)
        if intents:
            # Our idempotency key makes one intent per payment on Stripe; should a second one
            # exist (localstripe ignores the key), the money follows the one that succeeded.
            chosen = next((i for i in intents if i.get("status") == "succeeded"), intents[0])
            if chosen.get("status") == "requires_confirmation":
                # An on-session payment the customer authenticated whose page never came back
                # to confirm it (closed tab): confirming finishes what they asked for.
                chosen = self._gateway.confirm_intent(str(chosen["id"]), account)
            outcome = outcome_from_intent(chosen)
            if outcome.status == "pending":
                return "still_pending"
        else:
            failure = NOT_ATTEMPTED
            outcome = IntentOutcome(
                "failed",
                None,
                None,
                ChargeFailure(failure.code, failure.decline_code, failure.message),
            )
        result = self._charging.resolve(community_id, payment_id, outcome, actor=ACTOR)
        if not intents:
            return "not_attempted"
        if not result.changed:
            return "not_pending"
        return "recovered_succeeded" if result.payment.status == "succeeded" else "recovered_failed"
