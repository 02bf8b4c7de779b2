"""Cards that need authentication (issue 11 item 2): the renewal fails and its PaymentIntent is
canceled; should a success still arrive for a payment recorded failed, it is refunded
automatically (exactly once, audited) and the subscription stays where it was. On fakes."""

from __future__ import annotations

from datetime import timedelta

from chalicelib.domain.payments import Payment, automatic_refund_id
from chalicelib.domain.webhook_events import WebhookEvent
from chalicelib.services.webhooks import EventScope
from tests.support.world import CID, World


def failed_renewal(world: World, faults: list[str] | None = None) -> tuple[str, Payment]:
    """An active subscription whose renewal needed authentication (card pm_auth)."""
    owner = world.customer("Ada")
    sub_id = world.active(world.plan(3000), owner)
    world.card_checks.on_stripe["pm_auth"] = owner.stripe_customer_id or ""
    world.subscriptions.update(CID, sub_id, {"payment_method_id": "pm_auth"})
    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.current_period is not None
    world.clock.advance_to(sub.current_period.end)
    world.gateway.fail_next = list(faults or [])
    assert world.scheduled.renew(CID, sub_id, world.clock.now()) == "renewal_failed"
    [renewal] = [
        p
        for p in world.store.payments.values()  # type: ignore[attr-defined]
        if p.kind == "renewal"
    ]
    return sub_id, renewal


def stored(world: World, payment: Payment) -> Payment:
    return world.store.payments[(CID, payment.id)]


def audit_types(world: World, sub_id: str) -> list[str]:
    return [e.type for e in world.store.audit[(CID, sub_id)]]


def test_a_renewal_needing_authentication_fails_and_its_payment_intent_is_canceled() -> None:
    world = World()
    sub_id, renewal = failed_renewal(world)

    assert renewal.status == "failed"
    assert renewal.failure is not None and renewal.failure.code == "authentication_required"
    intent_id = renewal.stripe.payment_intent_id
    assert intent_id is not None
    assert world.gateway.intents[intent_id]["status"] == "canceled"
    # The customer finding the authentication page later can no longer pay this period.
    assert world.gateway.complete_authentication(intent_id)["status"] == "canceled"
    assert world.store.subscriptions[(CID, sub_id)].status == "failed_payment"
    assert world.gateway.refunds == []


def test_a_success_after_a_recorded_failure_is_refunded_automatically_once() -> None:
    world = World()
    # The charge answers; cancelling the intent fails (Stripe down): the intent stays open.
    sub_id, renewal = failed_renewal(world, faults=["", "before"])
    intent_id = renewal.stripe.payment_intent_id
    assert intent_id is not None
    assert world.gateway.intents[intent_id]["status"] == "requires_action"

    succeeded = world.gateway.complete_authentication(intent_id)  # the customer pays later
    world.payments.resolve_payment_from_intent(CID, renewal.id, succeeded, None)  # its webhook

    late = stored(world, renewal)
    assert (late.status, late.amount_paid, late.amount_refunded) == ("refunded", 3000, 3000)
    assert late.amount_refund_pending == 0
    assert [(r["amount"], r["key"]) for r in world.gateway.refunds] == [
        (3000, automatic_refund_id(renewal.id))
    ]
    assert world.store.subscriptions[(CID, sub_id)].status == "failed_payment"
    types = audit_types(world, sub_id)
    assert types[-3:] == ["payment.succeeded_late", "payment.refund_started", "payment.refunded"]
    started = [e for e in world.store.audit[(CID, sub_id)] if e.type == "payment.refund_started"]
    assert started[-1].details["initiated_by"] == "automatic"
    assert "did not get" in str(started[-1].details["reason"])

    # The same webhook again, and the recovery pass: nothing more is refunded.
    world.payments.resolve_payment_from_intent(CID, renewal.id, succeeded, None)
    later = world.clock.now() + timedelta(minutes=6)
    assert world.scheduled.recover_pending_refunds(CID, renewal.id, later) == "not_pending"
    assert len(world.gateway.refunds) == 1


def test_an_automatic_refund_whose_answer_is_lost_is_settled_not_sent_again() -> None:
    world = World()
    _, renewal = failed_renewal(world, faults=["", "before"])
    intent_id = renewal.stripe.payment_intent_id
    assert intent_id is not None
    succeeded = world.gateway.complete_authentication(intent_id)
    world.gateway.fail_next = ["after"]  # Stripe refunds; the answer is lost

    world.payments.resolve_payment_from_intent(CID, renewal.id, succeeded, None)

    pending = stored(world, renewal)
    assert (pending.status, pending.amount_refunded, pending.amount_refund_pending) == (
        "succeeded",
        0,
        3000,
    )
    later = world.clock.now() + timedelta(minutes=6)
    assert world.scheduled.recover_pending_refunds(CID, renewal.id, later) == "refunds_settled"
    assert stored(world, renewal).status == "refunded"
    assert len(world.gateway.refunds) == 1


def test_an_automatic_refund_stripe_never_received_is_sent_by_the_recovery_pass() -> None:
    world = World()
    _, renewal = failed_renewal(world, faults=["", "before"])
    intent_id = renewal.stripe.payment_intent_id
    assert intent_id is not None
    succeeded = world.gateway.complete_authentication(intent_id)
    world.gateway.fail_next = ["before"]  # Stripe is down for the refund

    world.payments.resolve_payment_from_intent(CID, renewal.id, succeeded, None)

    assert world.gateway.refunds == []
    assert stored(world, renewal).amount_refund_pending == 3000
    early = world.clock.now() + timedelta(minutes=1)
    assert world.scheduled.recover_pending_refunds(CID, renewal.id, early) == "still_pending"
    later = world.clock.now() + timedelta(minutes=6)
    assert world.scheduled.recover_pending_refunds(CID, renewal.id, later) == "refunds_settled"
    assert [r["amount"] for r in world.gateway.refunds] == [3000]
    refunded = stored(world, renewal)
    assert (refunded.status, refunded.amount_refunded) == ("refunded", 3000)


def test_a_late_success_delivered_by_a_webhook_is_refunded_outside_the_events_commit() -> None:
    world = World()
    _, renewal = failed_renewal(world, faults=["", "before"])
    intent_id = renewal.stripe.payment_intent_id
    assert intent_id is not None
    succeeded = world.gateway.complete_authentication(intent_id)
    payload = {"id": "evt_late", "type": "payment_intent.succeeded", "created": 1}
    event = WebhookEvent.received({**payload, "data": {"object": succeeded}}, world.clock.now())
    scope = EventScope(world.store.unit_of_work, event, world.clock)
    in_event = world.payments.committing_with(scope.unit_of_work(CID))

    resolved = in_event.resolve_payment_from_intent(CID, renewal.id, succeeded, None)

    assert resolved is not None and resolved.changed
    assert world.store.webhook_events["evt_late"].status == "processed"
    # The event's unit of work committed the late success; the refund's resolution is its own.
    refunded = stored(world, renewal)
    assert (refunded.status, refunded.amount_refund_pending) == ("refunded", 0)
    assert len(world.gateway.refunds) == 1
