"""Refunds follow the charge pattern (DESIGN.md section 6): a pending refund, then Stripe, then
resolve. Shared by the API's refunds, the automatic refund of a late success (charging.py), the
recovery pass and `charge.refunded`.

1. `begin_refund(...)` (pure): the payment reserves the amount (`amount_refund_pending`, so two
   refunds never exceed it) and a pending refund record; the caller stages both (and an audit
   event) in its unit of work and commits.
2. `Refunds.send(...)`: one Stripe refund, idempotency key = the refund id, our ids in metadata.
   Stripe refunded: the refund succeeds and the amount moves to `amount_refunded`. Stripe
   refused (invalid request): the refund fails, the reservation is released, 400. No answer
   (Stripe down, timeout, lost answer): `RefundPending` (503), everything stays pending.
3. `Refunds.recover(...)` (the recovery pass, group pending_refund): each refund still pending
   is settled from what Stripe did (its refunds of the PaymentIntent, by our refund id). Stripe
   has none after PENDING_RECOVERY_DELAY: an API refund fails and releases its reservation (the
   caller had a 503 and may ask again); an automatic one is sent again with the same key (the
   money is owed). `PaymentService.record_refunded_total` (`charge.refunded`) settles the same
   way, in the event's one unit of work, before it applies Stripe's total.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from chalicelib.adapters.stripe.payments import RefundResult
from chalicelib.domain.errors import AccountDisconnected, InvalidRequest, Unavailable
from chalicelib.domain.events import Actor, AuditEvent
from chalicelib.domain.payments import (
    PENDING_RECOVERY_DELAY,
    Payment,
    Refund,
    RefundInitiator,
)
from chalicelib.domain.subscriptions import Subscription
from chalicelib.observability import logger
from chalicelib.services.events import payment_changed
from chalicelib.services.ports import Clock, PaymentGateway, UnitOfWork, UnitOfWorkFactory
from chalicelib.services.retrying import retrying


class RefundPending(Unavailable):
    """Stripe did not answer definitively; the refund stays pending (its amount reserved) until
    it is settled from what Stripe did. It is never sent twice."""

    def __init__(self, message: str, refund_id: str) -> None:
        super().__init__(message)
        self.refund_id = refund_id


@dataclass(frozen=True)
class Settlement:
    """What Stripe did with one of our pending refunds."""

    refund: Refund
    refunded: bool
    stripe_refund_id: str | None


def begin_refund(
    payment: Payment,
    amount: int | None,
    reason: str | None,
    refund_id: str,
    initiated_by: RefundInitiator,
    now: datetime,
) -> tuple[Payment, Refund]:
    """The payment with the amount reserved, and the pending refund (nothing staged)."""
    change, reserved = payment.refund(amount, now)
    if not payment.stripe.payment_intent_id:
        raise InvalidRequest.for_field("amount", "Nothing was charged on Stripe for this payment.")
    refund = Refund(
        refund_id, payment.id, reserved, "pending", reason, now, initiated_by=initiated_by
    )
    return change.payment, refund


def refund_started_event(
    sub: Subscription, payment: Payment, refund: Refund, actor: Actor, now: datetime
) -> AuditEvent:
    return AuditEvent(
        now,
        "payment.refund_started",
        sub.status,
        sub.status,
        actor,
        {
            "payment_id": payment.id,
            "payment_status": payment.status,
            "refund_id": refund.id,
            "amount": refund.amount,
            "initiated_by": refund.initiated_by,
            "reason": refund.reason,
        },
    )


def stage_settlements(
    uow: UnitOfWork,
    payment: Payment,
    sub: Subscription,
    settlements: Sequence[Settlement],
    actor: Actor,
    now: datetime,
) -> Payment:
    """Register each refund's resolution and its audit event; returns the payment with every
    settlement applied (the caller saves it once, with whatever else it changes)."""
    current = payment
    for item in settlements:
        current = current.settle_refund(item.refund.amount, item.refunded, now).payment
        settled = replace(
            item.refund,
            status="succeeded" if item.refunded else "failed",
            stripe_refund_id=item.stripe_refund_id or item.refund.stripe_refund_id,
        )
        uow.payments.save_refund(payment.community_id, settled)
        event = AuditEvent(
            now,
            "payment.refunded" if item.refunded else "payment.refund_failed",
            sub.status,
            sub.status,
            actor,
            {
                "payment_id": payment.id,
                "payment_status": current.status,
                "refund_id": settled.id,
                "amount": settled.amount,
                "stripe_refund_id": settled.stripe_refund_id,
                "amount_refunded": current.amount_refunded,
            },
        )
        uow.audit.record(sub, event, changes_state=False)
    return current


def settlement_from_stripe(refund: Refund, found: RefundResult | None) -> Settlement | None:
    """Stripe's refund for ours settles it; None while Stripe has none or is still working."""
    if found is None or not (found.refunded or found.not_refunded):
        return None
    return Settlement(refund, found.refunded, found.refund_id)


def still_at_stripe(refund: Refund, found: RefundResult | None) -> int:
    """The amount of our pending refund that Stripe has made and is still working on
    (`pending`, `requires_action`): Stripe's charge already counts it in `amount_refunded`,
    while we keep it reserved until it settles."""
    if found is None or found.refunded or found.not_refunded:
        return 0
    return refund.amount


class Refunds:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        gateway: PaymentGateway,
        clock: Clock,
        known_disconnected: Callable[[Payment], bool] = lambda payment: False,
    ) -> None:
        """`known_disconnected(payment)`: whether we know the account that took the payment
        has disconnected the platform (then the recovery pass does not ask Stripe)."""
        self._uow = uow
        self._gateway = gateway
        self._clock = clock
        self._known_disconnected = known_disconnected

    def stripe_answers(
        self, payment: Payment, pending: Sequence[Refund]
    ) -> dict[str, RefundResult | None]:
        """Stripe's refund for each of our pending refunds (None: Stripe has none)."""
        intent_id = payment.stripe.payment_intent_id
        if intent_id is None:
            return {refund.id: None for refund in pending}
        account = payment.stripe.account_id
        return {
            refund.id: self._gateway.find_refund(intent_id, refund.id, refund.amount, account)
            for refund in pending
        }

    def send(self, community_id: str, payment: Payment, refund: Refund, actor: Actor) -> Refund:
        """Phase 2 and 3 for a refund already recorded pending (see the module docstring)."""
        intent_id = payment.stripe.payment_intent_id
        assert intent_id is not None  # begin_refund checked it
        metadata = {
            "community_id": community_id,
            "subscription_id": payment.subscription_id,
            "payment_id": payment.id,
            "refund_id": refund.id,
        }
        if refund.reason:
            metadata["reason"] = refund.reason[:500]
        try:
            result = self._gateway.refund(
                intent_id, refund.amount, payment.stripe.account_id, refund.id, metadata
            )
        except (InvalidRequest, AccountDisconnected):
            # Stripe refused it (or the account that took the charge no longer lets us in):
            # nothing was refunded, the reservation is released.
            self.settle(community_id, payment.id, [Settlement(refund, False, None)], actor)
            raise
        except Unavailable as error:
            raise RefundPending(
                f"{error.message} Refund {refund.id} stays pending and will be settled from what "
                "Stripe did; it is never sent twice.",
                refund.id,
            ) from None
        settlement = settlement_from_stripe(refund, result)
        if settlement is None:  # Stripe accepted it and is still working on it
            return replace(refund, stripe_refund_id=result.refund_id)
        [done] = self.settle(community_id, payment.id, [settlement], actor)
        return done

    def settle(
        self, community_id: str, payment_id: str, settlements: Sequence[Settlement], actor: Actor
    ) -> list[Refund]:
        """Resolve refunds (those still pending; a concurrent settler may have come first)."""

        def step() -> list[Refund]:
            with self._uow() as uow:
                payment = uow.payments.get(community_id, payment_id)
                stored = {r.id: r for r in uow.payments.refunds(community_id, payment_id)}
                todo = [
                    replace(item, refund=stored[item.refund.id])
                    for item in settlements
                    if item.refund.id in stored and stored[item.refund.id].status == "pending"
                ]
                if not todo:
                    return [stored.get(i.refund.id, i.refund) for i in settlements]
                sub = uow.subscriptions.get(community_id, payment.subscription_id)
                now = self._clock.now()
                settled = stage_settlements(uow, payment, sub, todo, actor, now)
                uow.payments.save(settled)
                payment_changed(uow, payment, settled, payment.revision + 1, now)
                uow.commit()
            return [
                replace(
                    i.refund,
                    status="succeeded" if i.refunded else "failed",
                    stripe_refund_id=i.stripe_refund_id or i.refund.stripe_refund_id,
                )
                for i in todo
            ]

        return retrying(step)

    def recover(self, community_id: str, payment_id: str, now: datetime, actor: Actor) -> str:
        """The recovery pass for one payment's pending refunds.
        -> "refunds_settled" | "still_pending" | "account_disconnected" | "not_pending"
        | "missing"."""
        with self._uow() as uow:
            payment = uow.payments.find(community_id, payment_id)
            if payment is None:
                return "missing"
            pending = [
                r for r in uow.payments.refunds(community_id, payment_id) if r.status == "pending"
            ]
        if not pending:
            return "not_pending"
        # Stripe may have made them before the account disconnected the platform: they stay
        # pending and reserved (never settled blind, never sent again) until the account is
        # reconnected and Stripe can tell (docs/rules/money.md). A known disconnect is not
        # even asked about.
        if self._known_disconnected(payment):
            return _left_pending(payment)
        try:
            answers = self.stripe_answers(payment, pending)
        except AccountDisconnected:
            return _left_pending(payment)
        settlements: list[Settlement] = []
        resend: list[Refund] = []
        for refund in pending:
            found = answers[refund.id]
            settlement = settlement_from_stripe(refund, found)
            if settlement is not None:
                settlements.append(settlement)
            elif found is None and now >= refund.created_at + PENDING_RECOVERY_DELAY:
                # Stripe provably has no refund for it (a request in flight ended long ago).
                if refund.initiated_by == "automatic":
                    resend.append(refund)
                else:
                    settlements.append(Settlement(refund, False, None))
        if settlements:
            self.settle(community_id, payment_id, settlements, actor)
        sent = 0
        for refund in resend:
            try:
                self.send(community_id, payment, refund, actor)
                sent += 1
            except RefundPending:
                continue
            except (InvalidRequest, AccountDisconnected) as error:  # refused; settled failed
                logger.warning(
                    "automatic refund refused by Stripe",
                    extra={
                        "payment_id": payment_id,
                        "refund_id": refund.id,
                        "error": error.message,
                    },
                )
                sent += 1
        return "refunds_settled" if settlements or sent else "still_pending"


def _left_pending(payment: Payment) -> str:
    """The recovery's outcome for refunds on an account that no longer lets us in."""
    logger.warning(
        "pending refunds on a disconnected Stripe account",
        extra={"payment_id": payment.id, "account": payment.stripe.account_id},
    )
    return "account_disconnected"
