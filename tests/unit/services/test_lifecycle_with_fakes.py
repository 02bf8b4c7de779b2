"""The subscription lifecycle through the real services, on in-memory fakes of the unit of work
and of Stripe (tests/support/world.py): the money rules of DESIGN.md section 6 without moto."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.adapters.clock import FixedClock
from chalicelib.adapters.stripe.payments import IntentOutcome
from chalicelib.domain.charge_planning import plan_activation
from chalicelib.domain.errors import ConcurrentChange, Conflict, InvalidRequest, PaymentFailed
from chalicelib.domain.webhook_events import WebhookEvent
from chalicelib.services.charging import Charging, PaymentPending
from chalicelib.services.webhooks import EventScope
from tests.support.world import CID, START, World


def payments_of(world: World, sub_id: str) -> list[object]:
    return [p for (cid, _), p in world.store.payments.items() if p.subscription_id == sub_id]


def test_activation_charges_once_and_writes_payment_state_and_key_together() -> None:
    world = World()
    owner = world.customer("Ada")
    sub_id = world.active(world.plan(3000, activation_fee=500), owner)

    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.status == "active"
    [payment] = world.store.payments.values()
    assert (payment.status, payment.total, payment.kind) == ("succeeded", 3500, "activation")
    assert len(world.gateway.requests) == 1
    assert world.gateway.requests[0].metadata["payment_id"] == payment.id
    assert [status for _, status in world.store.charge_keys.values()] == ["succeeded"]
    types = [e.type for e in world.store.audit[(CID, sub_id)]]
    assert types[0] == "subscription.created" and "subscription.activated" in types


def test_a_declined_activation_is_a_402_and_may_be_tried_again_with_another_card() -> None:
    world = World()
    owner = world.customer("Bo", card="pm_decline")
    world.card_checks.on_stripe["pm_ok"] = owner.stripe_customer_id or ""
    plan = world.plan(2000)
    sub_id = world.inactive(plan, owner, card="pm_decline")
    with pytest.raises(PaymentFailed) as declined:
        world.subscriptions.activate(CID, sub_id, None)
    assert declined.value.payment is not None
    assert declined.value.payment["status"] == "failed"
    assert world.store.subscriptions[(CID, sub_id)].status == "inactive"

    world.subscriptions.activate(CID, sub_id, "pm_ok")
    assert world.store.subscriptions[(CID, sub_id)].status == "active"
    statuses = sorted(p.status for p in world.store.payments.values())
    assert statuses == ["failed", "succeeded"]


def test_a_stale_copy_can_never_reach_stripe_twice_for_one_period() -> None:
    world = World()
    owner = world.customer("Cy")
    plan = world.plan(1500)
    sub = world.store.subscriptions[(CID, world.inactive(plan, owner))]
    now = world.clock.now()
    charge_plan = plan_activation(sub, now, owner_credit=0)
    world.charging.charge(sub, charge_plan, actor="api", now=now)
    with pytest.raises(ConcurrentChange):
        world.charging.charge(sub, charge_plan, actor="api", now=now)
    assert len(world.gateway.requests) == 1


def test_stripe_down_before_acting_leaves_a_pending_payment_that_recovery_fails() -> None:
    world = World()
    owner = world.customer("Di")
    plan = world.plan(1000)
    sub_id = world.inactive(plan, owner)
    world.gateway.fail_next = ["before"]
    with pytest.raises(PaymentPending) as pending:
        world.subscriptions.activate(CID, sub_id, None)
    payment_id = pending.value.payment_id
    assert world.store.payments[(CID, payment_id)].status == "pending"
    with pytest.raises(Conflict):
        world.subscriptions.cancel(CID, sub_id, "now")  # nothing else while a charge is pending

    early = world.clock.now() + timedelta(minutes=1)
    assert world.scheduled.recover_pending_payment(CID, payment_id, early) == "not_due"
    later = world.clock.now() + timedelta(minutes=6)
    assert world.scheduled.recover_pending_payment(CID, payment_id, later) == "not_attempted"
    assert world.store.payments[(CID, payment_id)].status == "failed"
    assert world.store.subscriptions[(CID, sub_id)].status == "inactive"
    assert world.gateway.intents == {}


def test_a_lost_answer_is_resolved_from_what_stripe_did_never_charged_again() -> None:
    world = World()
    owner = world.customer("Ed")
    plan = world.plan(1000)
    sub_id = world.inactive(plan, owner)
    world.gateway.fail_next = ["after"]
    with pytest.raises(PaymentPending) as pending:
        world.subscriptions.activate(CID, sub_id, None)
    later = world.clock.now() + timedelta(minutes=6)
    outcome = world.scheduled.recover_pending_payment(CID, pending.value.payment_id, later)
    assert outcome == "recovered_succeeded"
    assert world.store.subscriptions[(CID, sub_id)].status == "active"
    assert len(world.gateway.intents) == 1
    assert world.scheduled.recover_pending_payment(CID, pending.value.payment_id, later) == (
        "not_pending"
    )


def test_the_webhook_resolves_through_the_same_code_and_a_repeat_changes_nothing() -> None:
    world = World()
    owner = world.customer("Flo")
    plan = world.plan(1000)
    sub_id = world.inactive(plan, owner)
    world.gateway.fail_next = ["after"]
    with pytest.raises(PaymentPending) as pending:
        world.subscriptions.activate(CID, sub_id, None)
    [intent] = world.gateway.intents.values()
    payload = {"id": "evt_1", "type": "payment_intent.succeeded", "created": 1}
    event = WebhookEvent.received({**payload, "data": {"object": intent}}, world.clock.now())
    scope = EventScope(world.store.unit_of_work, event, world.clock)
    in_event = world.payments.committing_with(scope.unit_of_work(CID))
    first = in_event.resolve_payment_from_intent(CID, pending.value.payment_id, intent, None)
    assert first is not None and first.changed
    assert world.store.webhook_events["evt_1"].community_id == CID
    again = world.payments.resolve_payment_from_intent(CID, pending.value.payment_id, intent, None)
    assert again is not None and not again.changed
    assert world.store.subscriptions[(CID, sub_id)].status == "active"


def test_renewal_retry_and_grace_end_with_a_card_that_starts_declining() -> None:
    world = World()
    owner = world.customer("Gus")
    sub_id = world.active(world.plan(2500, retry_days=(3,), grace_days=7), owner)
    period_end = world.store.subscriptions[(CID, sub_id)].current_period
    assert period_end is not None
    world.clock.advance_to(period_end.end)
    assert world.scheduled.renew(CID, sub_id, world.clock.now()) == "renewed"
    assert world.scheduled.renew(CID, sub_id, world.clock.now()) == "not_due"

    sub = world.store.subscriptions[(CID, sub_id)]
    world.card_checks.on_stripe["pm_decline"] = owner.stripe_customer_id or ""
    world.subscriptions.update(CID, sub_id, {"payment_method_id": "pm_decline"})
    assert sub.current_period is not None
    world.clock.advance_to(sub.current_period.end)
    assert world.scheduled.renew(CID, sub_id, world.clock.now()) == "renewal_failed"
    failed = world.store.subscriptions[(CID, sub_id)]
    assert failed.status == "failed_payment"
    world.clock.advance(timedelta(days=3))
    assert world.scheduled.process_failed_payment(CID, sub_id, world.clock.now()) == "retry_failed"
    world.clock.advance(timedelta(days=4))
    assert world.scheduled.process_failed_payment(CID, sub_id, world.clock.now()) == (
        "grace_cancelled"
    )
    assert world.store.subscriptions[(CID, sub_id)].status == "cancelled"
    kinds = sorted(p.kind for p in world.store.payments.values())  # type: ignore[attr-defined]
    assert kinds == ["activation", "renewal", "renewal", "retry"]


def test_a_renewal_with_no_card_on_the_communitys_new_account_fails_and_moves_on() -> None:
    """The community connected its own Stripe account after the owner's card was saved (on
    the platform's): the renewal cannot be charged there. It fails like a decline (nothing sent
    to Stripe), so dunning and the pay-now link can collect a card, retries follow and grace
    end cancels; it never stays active on a past period. An API charge says 400 instead."""
    world = World()
    owner = world.customer("Ada")
    sub_id = world.active(world.plan(2500, retry_days=(3,), grace_days=7), owner)
    community = world.directory.communities[CID]
    world.directory.communities[CID] = replace(community, stripe_account_id="acct_new")
    sent_before = len(world.gateway.requests)  # the clock moving asks Stripe nothing

    assert world.renew_at_period_end(sub_id) == "renewal_failed"

    failed = world.store.subscriptions[(CID, sub_id)]
    assert failed.status == "failed_payment"
    [renewal] = [p for p in world.store.payments.values() if p.kind == "renewal"]  # type: ignore[attr-defined]
    assert renewal.status == "failed"
    assert renewal.failure is not None and renewal.failure.code == "no_card_on_account"
    assert renewal.stripe.account_id == "acct_new"
    assert len(world.gateway.requests) == sent_before  # nothing was sent to Stripe
    with pytest.raises(InvalidRequest, match="no card on file"):  # the API: add a card first
        world.subscriptions.reactivate(
            CID, sub_id, payment_method_id=None, owner_id=None, billing_cycle=None, member_ids=None
        )
    world.clock.advance(timedelta(days=3))
    assert world.scheduled.process_failed_payment(CID, sub_id, world.clock.now()) == "retry_failed"
    world.clock.advance(timedelta(days=4))
    assert world.scheduled.process_failed_payment(CID, sub_id, world.clock.now()) == (
        "grace_cancelled"
    )
    assert len(world.gateway.requests) == sent_before


def test_a_renewal_of_a_community_that_disconnected_stripe_fails_and_moves_on() -> None:
    """The community's connected account deauthorized the platform: nothing can be charged
    there. The renewal fails as `account_disconnected` (nothing sent to Stripe) and the
    failed-payment flow runs to the grace end; it never stays active on an ended period. A
    reconnect within grace lets the retry charge; the API's charges answer 409."""
    world = World()
    owner = world.customer("Ada")
    sub_id = world.active(world.plan(2500, retry_days=(3,), grace_days=7), owner)
    world.store.deauthorized[CID] = "acct_gym"
    sent_before = len(world.gateway.requests)  # the clock moving asks Stripe nothing

    assert world.renew_at_period_end(sub_id) == "renewal_failed"

    assert world.store.subscriptions[(CID, sub_id)].status == "failed_payment"
    [renewal] = [p for p in world.store.payments.values() if p.kind == "renewal"]  # type: ignore[attr-defined]
    assert renewal.failure is not None and renewal.failure.code == "account_disconnected"
    assert len(world.gateway.requests) == sent_before
    with pytest.raises(Conflict, match="disconnected"):
        world.subscriptions.reactivate(
            CID, sub_id, payment_method_id=None, owner_id=None, billing_cycle=None, member_ids=None
        )
    del world.store.deauthorized[CID]  # reconnected within grace
    world.clock.advance(timedelta(days=3))
    assert world.scheduled.process_failed_payment(CID, sub_id, world.clock.now()) == (
        "retry_succeeded"
    )
    assert world.store.subscriptions[(CID, sub_id)].status == "active"


def test_a_transaction_conflict_is_a_lost_race_that_is_retried() -> None:
    world = World()
    owner = world.customer("Hal")
    sub_id = world.active(world.plan(1000), owner)
    world.store.fail_next_commits = [ConcurrentChange("TransactionConflict")] * 2
    cancelled = world.subscriptions.cancel(CID, sub_id, "period_end")
    assert cancelled.status == "expiring"
    assert world.store.subscriptions[(CID, sub_id)].version == cancelled.version


def test_a_partial_refund_is_sent_once_and_recorded() -> None:
    world = World()
    owner = world.customer("Ivy")
    sub_id = world.active(world.plan(4000), owner)
    [payment] = world.store.payments.values()
    refund = world.payments.refund(CID, payment.id, 1500, "goodwill")
    assert refund.status == "succeeded" and refund.amount == 1500
    assert [r["amount"] for r in world.gateway.refunds] == [1500]
    after = world.store.payments[(CID, payment.id)]
    assert (after.status, after.amount_refunded) == ("partially_refunded", 1500)
    types = [e.type for e in world.store.audit[(CID, sub_id)]]
    assert "payment.refund_started" in types


def test_a_process_whose_clock_reads_behind_the_charge_resolves_it_no_earlier() -> None:
    """Each process of a stage caches the test clock's offset for a second (adapters/clock.py):
    the one that takes a webhook may still read a time before the jump that another process
    charged after. The resolution is dated at the charge, never before it."""
    world = World()
    owner = world.customer("Hal")
    sub_id = world.inactive(world.plan(1000), owner)
    world.clock.advance_to(START + timedelta(days=31))  # the API's process jumped a month
    world.gateway.fail_next = ["after"]
    with pytest.raises(PaymentPending) as pending:
        world.subscriptions.activate(CID, sub_id, None)
    charged = world.store.payments[(CID, pending.value.payment_id)].created_at
    behind = FixedClock(START)  # the webhook's process still reads the time before the jump
    webhook_charging = Charging(world.store.unit_of_work, world.gateway, world.directory, behind)
    [intent] = world.gateway.intents.values()
    outcome = IntentOutcome("succeeded", intent["id"], None, amount_received=intent["amount"])

    resolution = webhook_charging.resolve(CID, pending.value.payment_id, outcome, actor="webhook")

    assert resolution.changed
    paid = world.store.payments[(CID, pending.value.payment_id)]
    assert (paid.status, paid.updated_at) == ("succeeded", charged)
    sub = world.store.subscriptions[(CID, sub_id)]
    assert (sub.status, sub.activated_at) == ("active", charged)
    assert all(e.at >= charged for e in world.store.audit[(CID, sub_id)][1:])
