"""Refunds follow the charge pattern (issue 11 items 3 and 17): a pending refund with an
idempotency key, then Stripe, then resolve; what Stripe's answer did not settle is settled from
what Stripe did (recovery pass, charge.refunded), never sent twice. On in-memory fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.errors import InvalidRequest, Unavailable
from chalicelib.domain.payments import Payment
from tests.support.world import CID, World


def paid(world: World, amount: int = 4000) -> tuple[str, Payment]:
    owner = world.customer("Ivy")
    sub_id = world.active(world.plan(amount), owner)
    [payment] = world.store.payments.values()
    return sub_id, payment


def stored(world: World, payment: Payment) -> Payment:
    return world.store.payments[(CID, payment.id)]


def refund_records(world: World, payment: Payment) -> list[tuple[int, str]]:
    with world.store.unit_of_work() as uow:
        return sorted((r.amount, r.status) for r in uow.payments.refunds(CID, payment.id))


def test_stripe_down_leaves_the_refund_pending_and_the_amount_reserved_not_refunded() -> None:
    world = World()
    sub_id, payment = paid(world)
    world.gateway.fail_next = ["before"]

    with pytest.raises(Unavailable):  # the API's 503
        world.payments.refund(CID, payment.id, 1500, "goodwill")

    assert world.gateway.refunds == []
    reserved = stored(world, payment)
    # The ledger says what Stripe did (nothing); the reservation keeps two refunds in bounds.
    assert (reserved.status, reserved.amount_refunded, reserved.amount_refund_pending) == (
        "succeeded",
        0,
        1500,
    )
    assert refund_records(world, payment) == [(1500, "pending")]
    with pytest.raises(InvalidRequest):
        world.payments.refund(CID, payment.id, 2501, None)

    early = world.clock.now() + timedelta(minutes=1)
    assert world.scheduled.recover_pending_refunds(CID, payment.id, early) == "still_pending"
    later = world.clock.now() + timedelta(minutes=6)
    assert world.scheduled.recover_pending_refunds(CID, payment.id, later) == "refunds_settled"
    assert world.gateway.refunds == []  # settled from what Stripe did: never sent
    released = stored(world, payment)
    assert (released.amount_refunded, released.amount_refund_pending) == (0, 0)
    assert released.refund_pending_since is None
    assert refund_records(world, payment) == [(1500, "failed")]
    assert world.scheduled.recover_pending_refunds(CID, payment.id, later) == "not_pending"
    types = [e.type for e in world.store.audit[(CID, sub_id)]]
    assert types[-2:] == ["payment.refund_started", "payment.refund_failed"]

    # The released 40.00 can be refunded in full.
    assert world.payments.refund(CID, payment.id, None, None).status == "succeeded"
    assert [r["amount"] for r in world.gateway.refunds] == [4000]
    assert stored(world, payment).status == "refunded"


def test_a_lost_answer_is_settled_by_the_recovery_pass_and_never_sent_twice() -> None:
    world = World()
    _, payment = paid(world)
    world.gateway.fail_next = ["after"]  # Stripe refunds, the answer is lost

    with pytest.raises(Unavailable):
        world.payments.refund(CID, payment.id, 1500, None)
    assert refund_records(world, payment) == [(1500, "pending")]

    later = world.clock.now() + timedelta(minutes=6)
    assert world.scheduled.recover_pending_refunds(CID, payment.id, later) == "refunds_settled"
    settled = stored(world, payment)
    assert (settled.status, settled.amount_refunded, settled.amount_refund_pending) == (
        "partially_refunded",
        1500,
        0,
    )
    assert refund_records(world, payment) == [(1500, "succeeded")]
    assert [r["amount"] for r in world.gateway.refunds] == [1500]


def test_charge_refunded_settles_a_pending_refund_without_counting_it_twice() -> None:
    world = World()
    _, payment = paid(world)
    world.gateway.fail_next = ["after"]
    with pytest.raises(Unavailable):
        world.payments.refund(CID, payment.id, 1500, None)
    intent_id = stored(world, payment).stripe.payment_intent_id
    assert intent_id is not None

    # Stripe's charge.refunded: the cumulative total, which includes our pending refund.
    assert world.payments.record_refunded_total(CID, intent_id, 1500) is True
    settled = stored(world, payment)
    assert (settled.amount_refunded, settled.amount_refund_pending) == (1500, 0)
    assert refund_records(world, payment) == [(1500, "succeeded")]
    assert world.payments.record_refunded_total(CID, intent_id, 1500) is False  # again
    later = world.clock.now() + timedelta(minutes=6)
    assert world.scheduled.recover_pending_refunds(CID, payment.id, later) == "not_pending"
    assert stored(world, payment).amount_refunded == 1500
    assert len(world.gateway.refunds) == 1


def test_stripe_refusing_releases_the_reservation_and_answers_400() -> None:
    world = World()
    _, payment = paid(world)
    # Someone refunded 30.00 on the dashboard that we have not heard of yet.
    intent_id = stored(world, payment).stripe.payment_intent_id
    assert intent_id is not None
    world.gateway.refund(intent_id, 3000, None, "dashboard", {})

    with pytest.raises(InvalidRequest):
        world.payments.refund(CID, payment.id, 2000, None)
    released = stored(world, payment)
    assert (released.amount_refunded, released.amount_refund_pending) == (0, 0)
    assert refund_records(world, payment) == [(2000, "failed")]


def test_nothing_left_to_refund_is_a_400() -> None:
    world = World()
    _, payment = paid(world)
    world.payments.refund(CID, payment.id, None, None)
    with pytest.raises(InvalidRequest) as nothing_left:
        world.payments.refund(CID, payment.id, None, None)
    assert nothing_left.value.details[0].field == "amount"
