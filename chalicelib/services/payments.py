"""Payments: reading the ledger, refunds, and the entry points the webhooks (issue 5) call.

`PaymentService`'s entry points for the webhook handlers (each idempotent and forward-only:
called again with the same event, nothing changes; each writes payment + subscription change +
audit event in one unit of work, the event's own when bound with `committing_with`):

- `find_payment_for_intent(intent, community_id=None) -> Payment | None`
  The payment a PaymentIntent charged: by the intent id (gsi3 index), else by our metadata
  (`metadata.community_id`, `metadata.payment_id`; we put `community_id`, `subscription_id`,
  `payment_id` and `kind` on every PaymentIntent). Pass `community_id` when the event names a
  connected account, so another community's payment is never touched.
- `resolve_payment_from_intent(community_id, payment_id, intent, account, actor="webhook")
  -> Resolution | None`
  For `payment_intent.succeeded` / `payment_intent.payment_failed` (and anything carrying a
  PaymentIntent dict). The same code path the API uses after calling Stripe: a pending payment
  becomes succeeded/failed and the subscription takes its transition; an already resolved
  payment is left alone (`Resolution.changed == False`). Returns None when the intent is not
  final yet (processing), the payment is unknown, or the intent (on `account`) is not the
  payment's (`IntentClaim.refusal`, domain/payment_reports.py).
- `record_refunded_total(community_id, payment_intent_id, amount_refunded,
  actor="webhook") -> bool`
  For `charge.refunded` / `charge.refund.updated`: Stripe's cumulative `amount_refunded` of the
  charge. Settles our refunds still pending from what Stripe did first, then moves the payment
  to partially_refunded / refunded; smaller totals change nothing.
- `record_dispute(community_id, payment_intent_id, status, actor="webhook") -> bool`
  For `charge.dispute.created` (status "open") and `charge.dispute.closed` ("won" / "lost",
  from the dispute's status). Returns whether anything changed.

The recovery of payments left pending (no webhook ever came) is
`ScheduledActions.recover_pending_payment`; of refunds left pending,
`ScheduledActions.recover_pending_refunds` (services/refunds.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal, Protocol

from chalicelib.adapters.stripe.payments import IntentOutcome, intent_claim, outcome_from_intent
from chalicelib.domain.errors import AccountDisconnected, Conflict, NotFound
from chalicelib.domain.events import Actor, AuditEvent
from chalicelib.domain.ids import new_id
from chalicelib.domain.payments import Payment, PaymentChange, Refund
from chalicelib.domain.subscriptions import Subscription
from chalicelib.services.charging import Charging, Resolution
from chalicelib.services.events import payment_changed
from chalicelib.services.ports import Clock, PaymentGateway, UnitOfWork, UnitOfWorkFactory
from chalicelib.services.refunds import (
    begin_refund,
    refund_started_event,
    settlement_from_stripe,
    stage_settlements,
    still_at_stripe,
)
from chalicelib.services.retrying import retrying

DisputeUpdate = Literal["open", "won", "lost"]


class PaymentListing(Protocol):
    def list(
        self,
        community_id: str,
        *,
        limit: int,
        cursor: str | None,
        subscription_id: str | None = None,
        profile_id: str | None = None,
        status: str | None = None,
        kind: str | None = None,
    ) -> tuple[list[Payment], bool, str | None]: ...


def _stage_payment_change(
    uow: UnitOfWork,
    before: Payment,
    change: PaymentChange,
    event_type: str,
    actor: Actor,
    details: dict[str, Any],
) -> None:
    """The payment's new state + a side event on its subscription's audit trail."""
    payment = change.payment
    sub = uow.subscriptions.get(payment.community_id, payment.subscription_id)
    event = AuditEvent(
        payment.updated_at,
        event_type,
        sub.status,
        sub.status,
        actor,
        {"payment_id": payment.id, "payment_status": payment.status, **details},
    )
    uow.payments.save(payment)
    payment_changed(uow, before, payment, payment.revision + 1, payment.updated_at)
    uow.audit.record(sub, event, changes_state=False)


class PaymentService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        charging: Charging,
        gateway: PaymentGateway,
        listing: PaymentListing,
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._charging = charging
        self._gateway = gateway
        self._listing = listing
        self._clock = clock

    def committing_with(self, uow: UnitOfWorkFactory) -> PaymentService:
        """The same use cases, committing through another unit of work (a webhook's)."""
        return PaymentService(
            uow, self._charging.committing_with(uow), self._gateway, self._listing, self._clock
        )

    # --- reads ------------------------------------------------------------------------------
    def get(self, community_id: str, payment_id: str) -> Payment:
        with self._uow() as uow:
            return uow.payments.get(community_id, payment_id)

    def list_payments(
        self,
        community_id: str,
        *,
        limit: int,
        cursor: str | None,
        subscription_id: str | None = None,
        profile_id: str | None = None,
        status: str | None = None,
        kind: str | None = None,
    ) -> tuple[list[Payment], bool, str | None]:
        return self._listing.list(
            community_id,
            limit=limit,
            cursor=cursor,
            subscription_id=subscription_id,
            profile_id=profile_id,
            status=status,
            kind=kind,
        )

    def find_payment_for_intent(
        self, intent: dict[str, Any], community_id: str | None = None
    ) -> Payment | None:
        with self._uow() as uow:
            intent_id = intent.get("id")
            if isinstance(intent_id, str) and intent_id:
                found = uow.payments.find_by_payment_intent(intent_id, community_id)
                if found is not None:
                    return found
            metadata = intent.get("metadata") or {}
            payment_id = metadata.get("payment_id")
            owner = metadata.get("community_id")
            if not payment_id or not owner or (community_id is not None and owner != community_id):
                return None
            return uow.payments.find(owner, payment_id)

    # --- webhooks ---------------------------------------------------------------------------
    def resolve_payment_from_intent(
        self,
        community_id: str,
        payment_id: str,
        intent: dict[str, Any],
        account: str | None,
        actor: Actor = "webhook",
    ) -> Resolution | None:
        outcome = outcome_from_intent(intent)
        if outcome.status == "pending":
            return None
        with self._uow() as uow:
            payment = uow.payments.find(community_id, payment_id)
        if payment is None:
            return None
        if intent_claim(intent, account).refusal(payment) is not None:
            return None  # an intent that is not this payment's (docs/rules/money.md)
        return self._charging.resolve(community_id, payment_id, outcome, actor=actor)

    def settle_from_stripe(
        self, intent_id: str, account: str | None, community_id: str | None
    ) -> Payment | None:
        """Our payment for a PaymentIntent that Stripe's news of its charge names (a refund, a
        dispute) when our ledger has not caught up: the payment does not know its intent yet
        (Stripe's answer to the charge was lost) or is still pending. Stripe's PaymentIntent
        names our payment in its metadata and tells how it ended; a pending payment is
        resolved from it (its own unit of work, forward-only: safe to repeat). None: no
        payment of ours is that intent's."""
        try:
            intent = self._gateway.retrieve_intent(intent_id, account)
        except NotFound:
            return None
        found = self.find_payment_for_intent(
            {"id": intent_id, "metadata": intent.get("metadata") or {}}, community_id
        )
        if found is None or found.status != "pending":
            return found
        self.resolve_payment_from_intent(found.community_id, found.id, intent, account)
        return self.get(found.community_id, found.id)

    def resolve_known(
        self,
        community_id: str,
        payment_id: str,
        outcome: IntentOutcome,
        known: tuple[Payment, Subscription] | None,
        actor: Actor = "webhook",
    ) -> Resolution:
        """Resolve a payment already read (with its subscription, when `known`)."""
        return self._charging.resolve(community_id, payment_id, outcome, actor=actor, known=known)

    def record_refunded_total(
        self,
        community_id: str,
        payment_intent_id: str,
        amount_refunded: int,
        actor: Actor = "webhook",
    ) -> bool:
        """Stripe's cumulative total. Our refunds still pending are settled first from what
        Stripe did (its refunds, by our refund id), so the total never counts them twice; those
        Stripe is still working on stay reserved and are left out of the total recorded as
        refunded (Stripe's total counts them already). All of it in one unit of work (the
        webhook's)."""
        refunds = self._charging.refunds

        def step() -> bool:
            with self._uow() as uow:
                current = uow.payments.find_by_payment_intent(payment_intent_id, community_id)
                if current is None:
                    return False
                pending = [
                    r
                    for r in uow.payments.refunds(current.community_id, current.id)
                    if r.status == "pending"
                ]
                answers = refunds.stripe_answers(current, pending) if pending else {}
                settlements = [
                    found
                    for found in (settlement_from_stripe(r, answers[r.id]) for r in pending)
                    if found is not None
                ]
                now = self._clock.now()
                sub = uow.subscriptions.get(current.community_id, current.subscription_id)
                settled = stage_settlements(uow, current, sub, settlements, actor, now)
                working = sum(still_at_stripe(r, answers[r.id]) for r in pending)
                change = settled.record_refunded_total(max(0, amount_refunded - working), now)
                if not change.changed and not settlements:
                    return False
                if change.changed:
                    event = AuditEvent(
                        now,
                        "payment.refunded",
                        sub.status,
                        sub.status,
                        actor,
                        {
                            "payment_id": current.id,
                            "payment_status": change.payment.status,
                            "amount_refunded": amount_refunded,
                        },
                    )
                    uow.audit.record(sub, event, changes_state=False)
                uow.payments.save(change.payment)
                payment_changed(uow, current, change.payment, current.revision + 1, now)
                uow.commit()
            return True

        return retrying(step)

    def record_dispute(
        self,
        community_id: str,
        payment_intent_id: str,
        status: DisputeUpdate,
        actor: Actor = "webhook",
    ) -> bool:
        def step() -> bool:
            with self._uow() as uow:
                payment = uow.payments.find_by_payment_intent(payment_intent_id, community_id)
                if payment is None:
                    return False
                now = self._clock.now()
                if status == "open":
                    change = payment.open_dispute(now)
                else:
                    change = payment.close_dispute(status == "won", now)
                if not change.changed:
                    return False
                _stage_payment_change(
                    uow, payment, change, f"payment.dispute_{status}", actor, {"dispute": status}
                )
                uow.commit()
            return True

        return retrying(step)

    # --- refunds ------------------------------------------------------------------------------
    def refund(
        self, community_id: str, payment_id: str, amount: int | None, reason: str | None
    ) -> Refund:
        """Reserve the amount with a pending refund (one unit of work), refund on Stripe with
        the refund id as idempotency key, then resolve (services/refunds.py). Stripe refusing
        releases the reservation (400); no answer leaves the refund pending (503). A refund
        goes to the account that took the charge (the payment's, not the community's current
        one); when that account has disconnected the platform it is a 409 (AccountDisconnected)
        and nothing is written, or, when only Stripe's refusal tells, nothing is reserved."""
        with self._uow() as uow:
            found = uow.payments.find(community_id, payment_id)
        if found is not None and self._charging.known_disconnected(found):
            raise AccountDisconnected(
                f"Payment {payment_id} was taken on Stripe account {found.stripe.account_id}, "
                "which has disconnected the platform; nothing was refunded. Reconnect it first."
            )

        def reserve() -> tuple[Payment, Refund]:
            with self._uow() as uow:
                payment = uow.payments.find(community_id, payment_id)
                if payment is None:
                    raise NotFound(f"Payment {payment_id} not found.")
                now = self._clock.now()
                reserved, pending = begin_refund(payment, amount, reason, new_id("ref"), "api", now)
                sub = uow.subscriptions.get(community_id, payment.subscription_id)
                uow.payments.save(reserved)
                payment_changed(uow, payment, reserved, payment.revision + 1, now)
                uow.payments.add_refund(community_id, pending)
                uow.audit.record(
                    sub,
                    refund_started_event(sub, reserved, pending, "api", now),
                    changes_state=False,
                )
                uow.commit()
            return replace(reserved, revision=payment.revision + 1), pending

        reserved, pending = retrying(reserve)
        return self._charging.refunds.send(community_id, reserved, pending, "api")


__all__ = ["Conflict", "PaymentService", "Resolution"]
