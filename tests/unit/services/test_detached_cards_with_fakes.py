"""A card that was detached from the owner's Stripe customer (Stripe's `payment_method.detached`,
or our own `DELETE .../payment-methods/{id}`) is never sent to Stripe again: Stripe refuses a
detached PaymentMethod for good, so a charge of it can only fail, for a reason nobody sees.
The services on in-memory fakes (tests/support/world.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.members import MemberAddition
from tests.support.world import CID, World


def detach(world: World, card: str) -> None:
    """What Stripe's `payment_method.detached` leaves: the snapshot flagged, the card on no
    customer."""
    snapshot = world.store.cards[(CID, card)]
    world.store.cards[(CID, card)] = {**snapshot, "detached_at": world.clock.now().isoformat()}
    world.card_checks.on_stripe.pop(card, None)


def test_a_renewal_of_a_detached_card_fails_without_stripe_and_another_card_pays() -> None:
    world = World()
    owner = world.customer("Ada")
    sub_id = world.active(world.plan(2500, retry_days=(3,), grace_days=7), owner)
    detach(world, "pm_ok")
    sent_before = len(world.gateway.requests)  # the clock moving asks Stripe nothing

    assert world.renew_at_period_end(sub_id) == "renewal_failed"

    failed = world.store.subscriptions[(CID, sub_id)]
    assert failed.status == "failed_payment"
    [renewal] = [p for p in world.store.payments.values() if p.kind == "renewal"]  # type: ignore[attr-defined]
    assert renewal.failure is not None and renewal.failure.code == "card_detached"
    assert len(world.gateway.requests) == sent_before  # Stripe was never asked
    world.clock.advance(timedelta(days=3))
    assert world.scheduled.process_failed_payment(CID, sub_id, world.clock.now()) == "retry_failed"
    assert len(world.gateway.requests) == sent_before
    [_, retry] = sorted(
        (p for p in world.store.payments.values() if p.kind in ("renewal", "retry")),  # type: ignore[attr-defined]
        key=lambda p: p.created_at,
    )
    assert retry.failure is not None and retry.failure.code == "card_detached"

    with pytest.raises(InvalidRequest, match="not a card on file"):
        world.subscriptions.reactivate(
            CID, sub_id, payment_method_id=None, owner_id=None, billing_cycle=None, member_ids=None
        )
    world.card_checks.on_stripe["pm_new"] = owner.stripe_customer_id or ""
    world.subscriptions.reactivate(
        CID, sub_id, payment_method_id="pm_new", owner_id=None, billing_cycle=None, member_ids=None
    )
    assert world.store.subscriptions[(CID, sub_id)].status == "active"
    assert world.gateway.requests[-1].payment_method_id == "pm_new"


def test_an_api_charge_of_a_detached_card_is_a_400_and_writes_nothing() -> None:
    world = World()
    owner = world.customer("Bo")
    sub_id = world.active(world.plan(2000), owner)
    friend = world.dependent("Cy", owner)
    detach(world, "pm_ok")
    payments_before = dict(world.store.payments)  # type: ignore[attr-defined]
    sent_before = len(world.gateway.requests)

    with pytest.raises(InvalidRequest) as refused:
        world.members.add(
            CID,
            sub_id,
            [MemberAddition(friend.id, "charge")],
            send_welcome_email=False,
            send_receipt_email=False,
        )

    assert [d.field for d in refused.value.details] == ["payment_method_id"]
    assert dict(world.store.payments) == payments_before  # type: ignore[attr-defined]
    assert len(world.gateway.requests) == sent_before
