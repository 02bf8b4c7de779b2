"""Payments: reading the ledger, refunds, and the entry points the webhooks (issue 5) call.

For the webhook handlers (every function is idempotent and forward-only; call it again with
the same event and nothing changes; all of them write payment + subscription change + audit
event in one transaction):

- `find_payment_for_intent(intent, community_id=None) -> StoredPayment | None`
  The payment a PaymentIntent charged: by the intent id (gsi3 index), else by our metadata
  (`metadata.community_id`, `metadata.payment_id`; we put `community_id`, `subscription_id`,
  `payment_id` and `kind` on every PaymentIntent). Pass `community_id` when the event names a
  connected account, so another community's payment is never touched.
- `resolve_payment_from_intent(community_id, payment_id, intent, actor="webhook")
  -> Resolution | None`
  For `payment_intent.succeeded` / `payment_intent.payment_failed` (and anything carrying a
  PaymentIntent dict). The same code path the API uses after calling Stripe: a pending payment
  becomes succeeded/failed and the subscription takes its transition; an already resolved
  payment is left alone (`Resolution.changed == False`). Returns None when the intent is not
  final yet (processing) or the payment is unknown.
- `record_refunded_total(community_id, payment_intent_id, amount_refunded,
  actor="webhook") -> bool`
  For `charge.refunded` / `charge.refund.updated`: Stripe's cumulative `amount_refunded` of the
  charge. Moves the payment to partially_refunded / refunded; smaller totals change nothing.
- `record_dispute(community_id, payment_intent_id, status, actor="webhook") -> bool`
  For `charge.dispute.created` (status "open") and `charge.dispute.closed` ("won" / "lost",
  from the dispute's status). Returns whether anything changed.

The recovery of payments left pending (no webhook ever came) is `scheduled.recover_pending_payment`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal, Protocol

from chalicelib.adapters.stripe.payments import IntentOutcome, outcome_from_intent
from chalicelib.domain.errors import Conflict, InvalidRequest, NotFound
from chalicelib.domain.events import Actor, AuditEvent
from chalicelib.domain.ids import new_id
from chalicelib.domain.payments import Payment, PaymentChange, Refund
from chalicelib.domain.subscriptions import Subscription
from chalicelib.services.charging import Charging, Resolution
from chalicelib.services.events import payment_changed
from chalicelib.services.ports import Clock, PaymentGateway, UnitOfWork, UnitOfWorkFactory
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
    uow.audit.record(sub, event, changes_state=False)
    payment_changed(uow, before, payment, payment.revision + 1, payment.updated_at)


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
        actor: Actor = "webhook",
    ) -> Resolution | None:
        outcome = outcome_from_intent(intent)
        if outcome.status == "pending":
            return None
        with self._uow() as uow:
            payment = uow.payments.find(community_id, payment_id)
        if payment is None:
            return None
        known = payment.stripe.payment_intent_id
        named = (intent.get("metadata") or {}).get("payment_id")
        if known not in (None, outcome.payment_intent_id) and named != payment_id:
            return None  # an intent that is not this payment's
        return self._charging.resolve(community_id, payment_id, outcome, actor=actor)

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
        def step() -> bool:
            with self._uow() as uow:
                payment = uow.payments.find_by_payment_intent(payment_intent_id, community_id)
                if payment is None:
                    return False
                change = payment.record_refunded_total(amount_refunded, self._clock.now())
                if not change.changed:
                    return False
                _stage_payment_change(
                    uow,
                    payment,
                    change,
                    "payment.refunded",
                    actor,
                    {"amount_refunded": amount_refunded},
                )
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
        """Reserve the amount on the payment (one unit of work), refund on Stripe with the
        refund id as idempotency key, then record the outcome. Stripe refusing undoes the
        reservation."""

        def reserve() -> tuple[Payment, Payment, Refund]:
            with self._uow() as uow:
                payment = uow.payments.find(community_id, payment_id)
                if payment is None:
                    raise NotFound(f"Payment {payment_id} not found.")
                now = self._clock.now()
                change, refunded = payment.refund(amount, now)
                if not payment.stripe.payment_intent_id:
                    raise InvalidRequest.for_field(
                        "amount", "Nothing was charged on Stripe for this payment."
                    )
                pending = Refund(new_id("ref"), payment_id, refunded, "pending", reason, now)
                _stage_payment_change(
                    uow,
                    payment,
                    change,
                    "payment.refund_started",
                    "api",
                    {"refund_id": pending.id, "amount": refunded},
                )
                uow.payments.add_refund(community_id, pending)
                uow.commit()
            return payment, replace(change.payment, revision=payment.revision + 1), pending

        original, reserved, pending = retrying(reserve)
        intent_id = reserved.stripe.payment_intent_id
        assert intent_id is not None
        metadata = {
            "community_id": community_id,
            "subscription_id": reserved.subscription_id,
            "payment_id": payment_id,
            "refund_id": pending.id,
        }
        if reason:
            metadata["reason"] = reason[:500]
        try:
            result = self._gateway.refund(
                intent_id, pending.amount, reserved.stripe.account_id, pending.id, metadata
            )
        except InvalidRequest:
            self._undo_reservation(community_id, original, reserved, pending)
            raise
        done = replace(pending, status="succeeded", stripe_refund_id=result.refund_id)
        with self._uow() as uow:
            uow.payments.save_refund(community_id, done)
            uow.commit()
        return done

    def _undo_reservation(
        self, community_id: str, original: Payment, reserved: Payment, pending: Refund
    ) -> None:
        """Stripe refused the refund: the payment goes back to what it was before the
        reservation (conditional on nothing else having changed it since)."""
        later = self._clock.now()
        with self._uow() as uow:
            sub = uow.subscriptions.get(community_id, reserved.subscription_id)
            event = AuditEvent(
                later,
                "payment.refund_failed",
                sub.status,
                sub.status,
                "api",
                {"payment_id": reserved.id, "refund_id": pending.id, "amount": pending.amount},
            )
            uow.payments.save(replace(original, revision=reserved.revision, updated_at=later))
            uow.payments.save_refund(community_id, replace(pending, status="failed"))
            uow.audit.record(sub, event, changes_state=False)
            uow.commit()


__all__ = ["Conflict", "PaymentService", "Resolution"]
