"""Rate control in the scheduled charges (DESIGN.md, rate control), on the in-memory fakes:
a charge takes a token from its account's budget before anything is written; a 429 is never a
failed payment: the payment stays pending with its claim, and the next run sends the same
request (same idempotency key) again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.rate_control import PLATFORM_ACCOUNT, Deferred
from chalicelib.services.charging import RESUME_WINDOW
from chalicelib.services.scheduled import ScheduledActions
from tests.support.fakes import FakeStripeBudget
from tests.support.world import CID, World


def scheduler(world: World, budget: FakeStripeBudget) -> ScheduledActions:
    return ScheduledActions(world.store.unit_of_work, world.charging, world.gateway, budget)


def due_renewal(world: World) -> str:
    sub_id = world.active(world.plan(2500), world.customer("Ada"))
    period = world.store.subscriptions[(CID, sub_id)].current_period
    assert period is not None
    world.clock.advance_to(period.end)
    return sub_id


def test_no_budget_defers_the_renewal_before_anything_is_written() -> None:
    world = World()
    sub_id = due_renewal(world)
    before = world.store.subscriptions[(CID, sub_id)]
    payments_before = dict(world.store.payments)
    budget = FakeStripeBudget(tokens=0, next_slot_in=4.5)

    with pytest.raises(Deferred) as deferred:
        scheduler(world, budget).renew(CID, sub_id, world.clock.now())

    assert deferred.value.written is False
    assert deferred.value.account == PLATFORM_ACCOUNT
    assert deferred.value.retry_after == 4.5  # the account's next free slot, for the worker
    assert world.store.subscriptions[(CID, sub_id)] == before
    assert world.store.payments == payments_before
    assert budget.refused == [PLATFORM_ACCOUNT]
    # With budget again, the renewal simply runs.
    budget.tokens = None
    assert scheduler(world, budget).renew(CID, sub_id, world.clock.now()) == "renewed"


def test_a_429_leaves_the_renewal_pending_and_the_next_run_sends_the_same_charge() -> None:
    world = World()
    sub_id = due_renewal(world)
    budget = FakeStripeBudget(next_slot_in=3.0)
    actions = scheduler(world, budget)
    world.gateway.fail_next = ["429"]
    activation_requests = len(world.gateway.requests)

    with pytest.raises(Deferred) as deferred:
        actions.renew(CID, sub_id, world.clock.now())

    assert deferred.value.written is True
    assert deferred.value.retry_after == 3.0
    assert budget.rate_limited_accounts == [PLATFORM_ACCOUNT]
    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.status == "active" and sub.pending_charge is not None
    payment = world.store.payments[(CID, sub.pending_charge.payment_id or "")]
    assert payment.status == "pending"
    [refused] = world.gateway.rate_limited

    world.clock.advance(timedelta(seconds=20))
    assert actions.renew(CID, sub_id, world.clock.now()) == "renewed"

    [sent] = world.gateway.requests[activation_requests:]
    assert sent == refused  # the same request: same amount, same idempotency key
    assert sent.payment_id == payment.id
    assert world.store.payments[(CID, payment.id)].status == "succeeded"
    renewals = [p for p in world.store.payments.values() if p.kind == "renewal"]
    assert [p.id for p in renewals] == [payment.id]
    assert world.store.subscriptions[(CID, sub_id)].pending_charge is None
    # Done: a message delivered once more changes nothing.
    assert actions.renew(CID, sub_id, world.clock.now()) == "not_due"
    assert len(world.gateway.requests) == activation_requests + 1


def test_a_429_on_the_resent_charge_defers_again_and_never_fails_the_payment() -> None:
    world = World()
    sub_id = due_renewal(world)
    actions = scheduler(world, FakeStripeBudget())
    world.gateway.fail_next = ["429", "429", "429"]
    for _ in range(3):
        with pytest.raises(Deferred):
            actions.renew(CID, sub_id, world.clock.now())
        world.clock.advance(timedelta(seconds=10))
    assert actions.renew(CID, sub_id, world.clock.now()) == "renewed"
    assert {p.status for p in world.store.payments.values()} == {"succeeded"}
    assert len({r.payment_id for r in world.gateway.rate_limited}) == 1


def test_a_charge_in_flight_past_the_resume_window_is_left_to_the_recovery_pass() -> None:
    world = World()
    sub_id = due_renewal(world)
    actions = scheduler(world, FakeStripeBudget())
    world.gateway.fail_next = ["429"]
    with pytest.raises(Deferred):
        actions.renew(CID, sub_id, world.clock.now())
    sent = len(world.gateway.requests)

    world.clock.advance(RESUME_WINDOW)

    assert actions.renew(CID, sub_id, world.clock.now()) == "not_due"
    assert len(world.gateway.requests) == sent
    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.pending_charge is not None
    assert world.store.payments[(CID, sub.pending_charge.payment_id or "")].status == "pending"


def test_a_failed_payment_retry_answered_429_is_resumed_with_the_same_key() -> None:
    world = World()
    owner = world.customer("Gus")
    sub_id = world.active(world.plan(2500, retry_days=(3,), grace_days=7), owner)
    world.card_checks.on_stripe["pm_decline"] = owner.stripe_customer_id or ""
    world.subscriptions.update(CID, sub_id, {"payment_method_id": "pm_decline"})
    period = world.store.subscriptions[(CID, sub_id)].current_period
    assert period is not None
    world.clock.advance_to(period.end)
    actions = scheduler(world, FakeStripeBudget())
    assert actions.renew(CID, sub_id, world.clock.now()) == "renewal_failed"
    world.clock.advance(timedelta(days=3))
    world.gateway.fail_next = ["429"]

    with pytest.raises(Deferred):
        actions.process_failed_payment(CID, sub_id, world.clock.now())
    world.clock.advance(timedelta(seconds=5))

    # The card still declines: the retry fails on the decline, sent once, not on the 429.
    assert actions.process_failed_payment(CID, sub_id, world.clock.now()) == "retry_failed"
    [retry] = [p for p in world.store.payments.values() if p.kind == "retry"]
    assert retry.failure is not None and retry.failure.code == "card_declined"
    [refused] = world.gateway.rate_limited
    assert [r.payment_id for r in world.gateway.requests].count(retry.id) == 1
    assert refused.payment_id == retry.id


def test_a_charge_resumed_after_the_community_disconnected_stripe_fails_unsent() -> None:
    """A 429 left the renewal in flight; the community deauthorized the platform before the
    message came back. The resumed charge is not sent to an account that no longer lets us
    act on it (Stripe would refuse it and the payment would wait for a recovery that cannot
    read that account): it fails as `account_disconnected`, like a renewal that starts after
    the deauthorization, and the failed-payment flow follows."""
    world = World()
    sub_id = due_renewal(world)
    actions = scheduler(world, FakeStripeBudget())
    world.gateway.fail_next = ["429"]
    sent_before = len(world.gateway.requests)
    with pytest.raises(Deferred):
        actions.renew(CID, sub_id, world.clock.now())
    world.store.deauthorized[CID] = "acct_gym"
    world.clock.advance(timedelta(seconds=20))

    assert actions.renew(CID, sub_id, world.clock.now()) == "renewal_failed"

    assert len(world.gateway.requests) == sent_before
    sub = world.store.subscriptions[(CID, sub_id)]
    assert (sub.status, sub.pending_charge) == ("failed_payment", None)
    [renewal] = [p for p in world.store.payments.values() if p.kind == "renewal"]
    assert renewal.status == "failed"
    assert renewal.failure is not None and renewal.failure.code == "account_disconnected"
