"""Hard declines through the real services on fakes: automatic retries stop, grace still ends
in a cancellation (domain/declines.py)."""

from __future__ import annotations

from datetime import timedelta

from chalicelib.domain.webhook_events import WebhookEvent
from chalicelib.services.webhooks import EventScope
from tests.support.world import CID, World


def renewal_declined_with(world: World, card: str) -> str:
    owner = world.customer("Hal")
    sub_id = world.active(world.plan(2500, retry_days=(1, 3, 5), grace_days=7), owner)
    world.card_checks.on_stripe[card] = owner.stripe_customer_id or ""
    world.subscriptions.update(CID, sub_id, {"payment_method_id": card})
    assert world.renew_at_period_end(sub_id) == "renewal_failed"
    return sub_id


def test_a_stolen_card_is_never_retried_and_grace_end_cancels() -> None:
    world = World()
    sub_id = renewal_declined_with(world, "pm_decline_stolen_card")
    failed = world.store.subscriptions[(CID, sub_id)]
    assert failed.status == "failed_payment"
    assert failed.next_retry_at is None
    assert failed.grace_ends_at is not None
    [renewal] = [p for p in world.store.payments.values() if p.kind == "renewal"]
    assert renewal.failure is not None and renewal.failure.decline_code == "stolen_card"

    for day in (1, 3, 5):  # the plan's retry days: nothing is due, nothing is charged
        world.clock.advance_to(failed.grace_ends_at - timedelta(days=7 - day))
        assert world.scheduled.process_failed_payment(CID, sub_id, world.clock.now()) == "not_due"
    assert len(world.gateway.requests) == 2  # activation + the declined renewal
    assert world.store.subscriptions[(CID, sub_id)].status == "failed_payment"

    world.clock.advance_to(failed.grace_ends_at)
    outcome = world.scheduled.process_failed_payment(CID, sub_id, world.clock.now())
    assert outcome == "grace_cancelled"
    cancelled = world.store.subscriptions[(CID, sub_id)]
    assert (cancelled.status, cancelled.cancellation_reason) == ("cancelled", "payment_failed")


def test_a_soft_decline_is_retried_on_the_plan_schedule() -> None:
    world = World()
    sub_id = renewal_declined_with(world, "pm_decline_insufficient_funds")
    failed = world.store.subscriptions[(CID, sub_id)]
    assert failed.failed_at is not None
    assert failed.next_retry_at == failed.failed_at + timedelta(days=1)
    world.clock.advance(timedelta(days=1))
    assert world.scheduled.process_failed_payment(CID, sub_id, world.clock.now()) == (
        "retry_failed"
    )
    assert len(world.gateway.requests) == 3


def test_a_stolen_card_reported_by_webhook_for_a_pending_renewal_stops_the_retries() -> None:
    world = World()
    owner = world.customer("Ida")
    sub_id = world.active(world.plan(2500, retry_days=(1, 3), grace_days=7), owner)
    world.card_checks.on_stripe["pm_decline_stolen_card"] = owner.stripe_customer_id or ""
    world.subscriptions.update(CID, sub_id, {"payment_method_id": "pm_decline_stolen_card"})
    period = world.store.subscriptions[(CID, sub_id)].current_period
    assert period is not None
    world.clock.advance_to(period.end)
    world.gateway.fail_next = ["after"]  # Stripe declined; its answer was lost
    assert world.scheduled.renew(CID, sub_id, world.clock.now()) == "payment_pending"
    [renewal] = [p for p in world.store.payments.values() if p.kind == "renewal"]
    intent = world.gateway.intents[f"pi_{len(world.gateway.intents)}"]
    assert intent["last_payment_error"]["decline_code"] == "stolen_card"

    payload = {"id": "evt_stolen", "type": "payment_intent.payment_failed", "created": 1}
    event = WebhookEvent.received({**payload, "data": {"object": intent}}, world.clock.now())
    scope = EventScope(world.store.unit_of_work, event, world.clock)
    in_event = world.payments.committing_with(scope.unit_of_work(CID))
    resolved = in_event.resolve_payment_from_intent(CID, renewal.id, intent, None)

    assert resolved is not None and resolved.changed
    failed = world.store.subscriptions[(CID, sub_id)]
    assert (failed.status, failed.next_retry_at) == ("failed_payment", None)
    assert failed.next_action is not None and failed.next_action.action == "end_grace"
