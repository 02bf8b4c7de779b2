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
  The account that took it no longer lets us in (it disconnected the platform): the payment
  fails as `account_disconnected` (docs/rules/money.md).
  -> "recovered_succeeded" | "recovered_failed" | "not_attempted" | "account_disconnected"
     | "still_pending" | "not_pending" | "missing"
- `recover_pending_refunds(cid, payment_id, now)` (group pending_refund): settles a payment's
  refunds left pending from what Stripe did (services/refunds.py, `Refunds.recover`).
  -> "refunds_settled" | "still_pending" | "account_disconnected" | "not_pending" | "missing"

Raises Unavailable only for transient failures before anything was written (retry the message).

Rate control (DESIGN.md, rate control): a charge that needs Stripe first takes a token from its
account's `StripeCallBudget`; none within a short wait -> `Deferred` before anything is written.
A charge Stripe answers 429 stays pending with its claim (`ChargeRateLimited`), the account's
share is lowered, and `Deferred` again: the worker puts the message back on the queue, and
when it comes back, `renew` / `process_failed_payment` find the subscription's charge in flight
and send the same request again (same idempotency key: one PaymentIntent at most). A 429 is
never a failed payment.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.adapters.dynamodb.billing_context import BillingContext
from chalicelib.adapters.stripe.payments import intent_claim, outcome_from_intent
from chalicelib.domain.billing.charges import ChargePlan
from chalicelib.domain.charge_planning import plan_renewal, plan_retry
from chalicelib.domain.errors import AccountDisconnected, Conflict
from chalicelib.domain.events import Actor
from chalicelib.domain.payments import (
    NOT_ATTEMPTED,
    OUTCOME_UNREADABLE,
    PENDING_RECOVERY_DELAY,
    Payment,
)
from chalicelib.domain.rate_control import PLATFORM_ACCOUNT, Deferred
from chalicelib.domain.subscriptions import Outcome, Subscription
from chalicelib.services.charging import (
    ChargeRateLimited,
    ChargeResult,
    Charging,
    PaymentPending,
    failed_before_stripe,
    stage_change,
)
from chalicelib.services.ports import PaymentGateway, StripeCallBudget, UnitOfWorkFactory

ACTOR: Actor = "scheduler"


class Unlimited:
    """No budget: every call may go (the API's paths, tests that do not test rate control)."""

    def acquire(self, account: str) -> Callable[[], None] | None:
        return _go_now

    def rate_limited(self, account: str) -> None:
        return None

    def retry_after(self, account: str) -> float:
        return 0.0

    def spacing_seconds(self) -> float:
        return 0.0


def _go_now() -> None:
    return None


Taken = tuple[str, Callable[[], None]]  # (account, wait for the token's slot)


def account_of(stripe_account_id: str | None) -> str:
    return stripe_account_id or PLATFORM_ACCOUNT


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
        budget: StripeCallBudget | None = None,
    ) -> None:
        self._uow = uow
        self._charging = charging
        self._gateway = gateway
        self._budget: StripeCallBudget = budget or Unlimited()
        # community -> the Stripe account it charged on last (a token is then taken before
        # the billing context is read: a deferral costs no read). A change of account is
        # seen at the read, and the right account's token taken then.
        self._accounts: dict[str, str] = {}

    def _find(self, community_id: str, subscription_id: str) -> Subscription | None:
        with self._uow() as uow:
            return uow.subscriptions.find(community_id, subscription_id)

    def _charge(
        self,
        sub: Subscription,
        plan: ChargePlan,
        context: BillingContext,
        now: datetime,
        taken: Taken | None = None,
    ) -> str:
        """`taken`: a token already taken (for the account the community charged on last)."""
        account = account_of(context.community.stripe_account_id)
        self._accounts[sub.community_id] = account
        wait = _go_now
        if plan.needs_stripe and not context.community_disconnected:
            wait = taken[1] if taken is not None and taken[0] == account else self._token(account)
        return self._rate_limited_as_deferred(
            account,
            lambda: self._charging.charge(
                sub, plan, actor=ACTOR, now=now, context=context, before_send=wait
            ),
        )

    def _token(self, account: str) -> Callable[[], None]:
        wait = self._budget.acquire(account)
        if wait is None:
            raise Deferred(
                "no Stripe budget left this moment",
                account,
                written=False,
                retry_after=self._budget.retry_after(account),
            )
        return wait

    def _rate_limited_as_deferred(self, account: str, send: Callable[[], ChargeResult]) -> str:
        try:
            result = send()
        except ChargeRateLimited as error:
            self._budget.rate_limited(account)
            raise Deferred(
                f"Stripe answered 429 ({error.code})",
                account,
                written=True,
                retry_after=self._budget.retry_after(account),
            ) from None
        except PaymentPending:
            return "payment_pending"
        return "succeeded" if result.succeeded else "failed"

    def _resume(self, sub: Subscription, kind: str, now: datetime) -> str | None:
        """Send again the charge a 429 left in flight (see the module docstring); None when
        there is none the scheduler may send (the recovery pass resolves the others)."""
        payment = self._charging.resumable(sub, (kind,), now)
        if payment is None:
            return None
        pending = sub.pending_charge
        assert pending is not None
        account = account_of(payment.stripe.account_id)
        wait = self._token(account)
        context = self._charging.context(
            sub.community_id, pending.billed_to_profile_id, pending.payment_method_id
        )
        return self._rate_limited_as_deferred(
            account,
            lambda: self._charging.resume(
                sub, payment, actor=ACTOR, context=context, before_send=wait
            ),
        )

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
        if sub.pending_charge is not None and known is None:
            resumed = self._resume(sub, "renewal", now)
            if resumed is not None:
                return {"succeeded": "renewed", "failed": "renewal_failed"}.get(resumed, resumed)
        if not _due(sub, "renew", now):
            return "not_due"
        known_account = self._accounts.get(community_id)
        taken = None if known_account is None else (known_account, self._token(known_account))
        try:
            # Its plan and a queued one as stored now (read with the rest, no extra request):
            # the plan it renews onto is named, and fails, on its latest terms.
            context = self._charging.context(
                community_id,
                sub.owner_id,
                sub.payment_method_id,
                plan_ids=sub.plan_ids,
            )
            plan = plan_renewal(
                sub,
                now,
                owner_credit=context.billed.credit_in(sub.currency),
                current_plans=context.plans,
            )
            outcome = self._charge(sub, plan, context, now, taken)
        except Conflict:
            return "not_due"  # someone else renewed or changed it first
        return {"succeeded": "renewed", "failed": "renewal_failed"}.get(outcome, outcome)

    def process_failed_payment(self, community_id: str, subscription_id: str, now: datetime) -> str:
        sub = self._find(community_id, subscription_id)
        if sub is None:
            return "missing"
        if sub.pending_charge is not None:
            resumed = self._resume(sub, "retry", now)
            if resumed is not None:
                return {"succeeded": "retry_succeeded", "failed": "retry_failed"}.get(
                    resumed, resumed
                )
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

    def _what_stripe_holds(self, payment: Payment) -> dict[str, Any] | None:
        """The PaymentIntent Stripe holds for a pending payment, on the account that took it
        (None: none)."""
        account = payment.stripe.account_id
        if payment.stripe.payment_intent_id:
            intents = [self._gateway.retrieve_intent(payment.stripe.payment_intent_id, account)]
        else:
            named = self._gateway.find_intents_by_metadata("payment_id", payment.id, account)
            # The account's owner can put our ids on a PaymentIntent of their own: only one
            # for what we asked counts (IntentClaim.refusal).
            intents = [i for i in named if intent_claim(i, account).refusal(payment) is None]
        if not intents:
            return None
        # Our idempotency key makes one intent per payment on Stripe; should a second one
        # exist (localstripe ignores the key), the money follows the one that succeeded.
        chosen = next((i for i in intents if i.get("status") == "succeeded"), intents[0])
        if chosen.get("status") == "requires_confirmation":
            # An on-session payment the customer authenticated whose page never came back
            # to confirm it (closed tab): confirming finishes what they asked for.
            chosen = self._gateway.confirm_intent(str(chosen["id"]), account)
        return chosen

    def recover_pending_payment(self, community_id: str, payment_id: str, now: datetime) -> str:
        with self._uow() as uow:
            payment = uow.payments.find(community_id, payment_id)
        if payment is None:
            return "missing"
        if payment.status != "pending":
            return "not_pending"
        if now < payment.created_at + PENDING_RECOVERY_DELAY:
            return "not_due"  # Stripe's search may not show an intent made moments ago
        try:
            intent = self._what_stripe_holds(payment)
        except AccountDisconnected:
            # The account that took it no longer lets us read it: fail it (a success Stripe
            # reports after a reconnect is refunded) rather than ask it again forever.
            unread = failed_before_stripe(OUTCOME_UNREADABLE)
            result = self._charging.resolve(community_id, payment_id, unread, actor=ACTOR)
            return "account_disconnected" if result.changed else "not_pending"
        if intent is None:
            not_attempted = failed_before_stripe(NOT_ATTEMPTED)
            self._charging.resolve(community_id, payment_id, not_attempted, actor=ACTOR)
            return "not_attempted"
        outcome = outcome_from_intent(intent)
        if outcome.status == "pending":
            return "still_pending"
        result = self._charging.resolve(community_id, payment_id, outcome, actor=ACTOR)
        if not result.changed:
            return "not_pending"
        return "recovered_succeeded" if result.payment.status == "succeeded" else "recovered_failed"
