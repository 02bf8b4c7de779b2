"""Payments: reading the ledger, refunds, and the entry points the webhooks (issue 5) call.

For the webhook handlers (every function is idempotent and forward-only; call it again with
the same event and nothing changes; all of them write payment + subscription change + audit
event in one transaction):

- `find_payment_for_intent(container, intent, community_id=None) -> StoredPayment | None`
  The payment a PaymentIntent charged: by the intent id (gsi3 index), else by our metadata
  (`metadata.community_id`, `metadata.payment_id`; we put `community_id`, `subscription_id`,
  `payment_id` and `kind` on every PaymentIntent). Pass `community_id` when the event names a
  connected account, so another community's payment is never touched.
- `resolve_payment_from_intent(container, community_id, payment_id, intent, actor="webhook")
  -> Resolution | None`
  For `payment_intent.succeeded` / `payment_intent.payment_failed` (and anything carrying a
  PaymentIntent dict). The same code path the API uses after calling Stripe: a pending payment
  becomes succeeded/failed and the subscription takes its transition; an already resolved
  payment is left alone (`Resolution.changed == False`). Returns None when the intent is not
  final yet (processing) or the payment is unknown.
- `record_refunded_total(container, community_id, payment_intent_id, amount_refunded,
  actor="webhook") -> bool`
  For `charge.refunded` / `charge.refund.updated`: Stripe's cumulative `amount_refunded` of the
  charge. Moves the payment to partially_refunded / refunded; smaller totals change nothing.
- `record_dispute(container, community_id, payment_intent_id, status, actor="webhook") -> bool`
  For `charge.dispute.created` (status "open") and `charge.dispute.closed` ("won" / "lost",
  from the dispute's status). Returns whether anything changed.

The recovery of payments left pending (no webhook ever came) is `scheduled.recover_pending_payment`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from chalicelib.adapters.dynamodb.payments import StoredPayment, payment_view
from chalicelib.adapters.stripe.payments import outcome_from_intent
from chalicelib.domain.errors import ConcurrentChange, Conflict, InvalidRequest, NotFound
from chalicelib.domain.events import Actor, AuditEvent
from chalicelib.domain.ids import new_id
from chalicelib.domain.payments import Payment, PaymentChange, Refund
from chalicelib.services.charging import Resolution, audit_event_entry, resolve

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container

__all__ = [
    "Resolution",
    "find_payment_for_intent",
    "get",
    "list_payments",
    "record_dispute",
    "record_refunded_total",
    "refund",
    "resolve_payment_from_intent",
]

DisputeUpdate = Literal["open", "won", "lost"]
ATTEMPTS = 3


def get(container: Container, community_id: str, payment_id: str) -> Payment:
    stored: StoredPayment = container.payments.get(community_id, payment_id)
    return stored.payment


def list_payments(
    container: Container, community_id: str, **filters: Any
) -> tuple[list[Payment], bool, str | None]:
    result: tuple[list[Payment], bool, str | None] = container.payments.list(
        community_id, **filters
    )
    return result


# --- webhooks -----------------------------------------------------------------------------------
def find_payment_for_intent(
    container: Container, intent: dict[str, Any], community_id: str | None = None
) -> StoredPayment | None:
    intent_id = intent.get("id")
    if isinstance(intent_id, str) and intent_id:
        found: StoredPayment | None = container.payments.find_by_payment_intent(
            intent_id, community_id
        )
        if found is not None:
            return found
    metadata = intent.get("metadata") or {}
    payment_id = metadata.get("payment_id")
    owner = metadata.get("community_id")
    if not payment_id or not owner or (community_id is not None and owner != community_id):
        return None
    stored: StoredPayment | None = container.payments.find(owner, payment_id)
    return stored


def resolve_payment_from_intent(
    container: Container,
    community_id: str,
    payment_id: str,
    intent: dict[str, Any],
    actor: Actor = "webhook",
) -> Resolution | None:
    outcome = outcome_from_intent(intent)
    if outcome.status == "pending":
        return None
    stored = container.payments.find(community_id, payment_id)
    if stored is None:
        return None
    known = stored.payment.stripe.payment_intent_id
    named = (intent.get("metadata") or {}).get("payment_id")
    if known not in (None, outcome.payment_intent_id) and named != payment_id:
        return None  # an intent that is not this payment's
    return resolve(container, community_id, payment_id, outcome, actor=actor)


def _payment_by_intent(
    container: Container, community_id: str, payment_intent_id: str
) -> StoredPayment | None:
    found: StoredPayment | None = container.payments.find_by_payment_intent(
        payment_intent_id, community_id
    )
    return found


def _write_payment_change(
    container: Container,
    stored: StoredPayment,
    change: PaymentChange,
    event_type: str,
    actor: Actor,
    now: datetime,
    details: dict[str, Any],
    extra: list[dict[str, Any]] | None = None,
) -> None:
    payment = change.payment
    sub = container.subscriptions.get(payment.community_id, payment.subscription_id)
    event = AuditEvent(
        now,
        event_type,
        sub.status,
        sub.status,
        actor,
        {"payment_id": payment.id, "payment_status": payment.status, **details},
    )
    entries = [container.payments.save_entry(stored, payment)]
    entries.append(audit_event_entry(container, sub, event))
    entries += extra or []
    container.subscriptions.commit(entries)


def record_refunded_total(
    container: Container,
    community_id: str,
    payment_intent_id: str,
    amount_refunded: int,
    actor: Actor = "webhook",
) -> bool:
    for _ in range(ATTEMPTS):
        stored = _payment_by_intent(container, community_id, payment_intent_id)
        if stored is None:
            return False
        now = container.clock.now()
        change = stored.payment.record_refunded_total(amount_refunded, now)
        if not change.changed:
            return False
        try:
            _write_payment_change(
                container,
                stored,
                change,
                "payment.refunded",
                actor,
                now,
                {"amount_refunded": amount_refunded},
            )
            return True
        except ConcurrentChange:
            continue
    raise Conflict("The payment changed concurrently; retry.")


def record_dispute(
    container: Container,
    community_id: str,
    payment_intent_id: str,
    status: DisputeUpdate,
    actor: Actor = "webhook",
) -> bool:
    for _ in range(ATTEMPTS):
        stored = _payment_by_intent(container, community_id, payment_intent_id)
        if stored is None:
            return False
        now = container.clock.now()
        if status == "open":
            change = stored.payment.open_dispute(now)
        else:
            change = stored.payment.close_dispute(status == "won", now)
        if not change.changed:
            return False
        try:
            _write_payment_change(
                container,
                stored,
                change,
                f"payment.dispute_{status}",
                actor,
                now,
                {"dispute": status},
            )
            return True
        except ConcurrentChange:
            continue
    raise Conflict("The payment changed concurrently; retry.")


# --- refunds ------------------------------------------------------------------------------------
def refund(
    container: Container,
    community_id: str,
    payment_id: str,
    amount: int | None,
    reason: str | None,
) -> Refund:
    """Reserve the amount on the payment (one transaction), refund on Stripe with the refund id
    as idempotency key, then record the outcome. Stripe refusing undoes the reservation."""
    stored = container.payments.find(community_id, payment_id)
    if stored is None:
        raise NotFound(f"Payment {payment_id} not found.")
    payment = stored.payment
    intent_id = payment.stripe.payment_intent_id
    now = container.clock.now()
    change, refunded = payment.refund(amount, now)
    if not intent_id:
        raise InvalidRequest.for_field("amount", "Nothing was charged on Stripe for this payment.")
    pending = Refund(new_id("ref"), payment_id, refunded, "pending", reason, now)
    _write_payment_change(
        container,
        stored,
        change,
        "payment.refund_started",
        "api",
        now,
        {"refund_id": pending.id, "amount": refunded},
        [container.payments.refund_entry(community_id, pending)],
    )
    reserved = container.payments.get(community_id, payment_id)
    metadata = {
        "community_id": community_id,
        "subscription_id": payment.subscription_id,
        "payment_id": payment_id,
        "refund_id": pending.id,
    }
    if reason:
        metadata["reason"] = reason[:500]
    try:
        result = container.payment_gateway.refund(
            intent_id, refunded, payment.stripe.account_id, pending.id, metadata
        )
    except InvalidRequest:
        later = container.clock.now()
        undone = replace(payment, updated_at=later)
        failed = replace(pending, status="failed")
        sub = container.subscriptions.get(community_id, payment.subscription_id)
        event = AuditEvent(
            later,
            "payment.refund_failed",
            sub.status,
            sub.status,
            "api",
            {"payment_id": payment_id, "refund_id": pending.id, "amount": refunded},
        )
        container.subscriptions.commit(
            [
                container.payments.save_entry(reserved, undone),
                container.payments.refund_entry(community_id, failed),
                audit_event_entry(container, sub, event),
            ]
        )
        raise
    done = replace(pending, status="succeeded", stripe_refund_id=result.refund_id)
    container.subscriptions.commit([container.payments.refund_entry(community_id, done)])
    return done


def view(payment: Payment) -> dict[str, Any]:
    return payment_view(payment)
