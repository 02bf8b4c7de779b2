"""Issue 11 item 4 through the real services on fakes: no charge below the currency's minimum
ever reaches Stripe (the fake gateway refuses them as Stripe does), and a carried amount is
charged exactly once."""

from __future__ import annotations

from datetime import timedelta

from chalicelib.domain.currencies import currency
from chalicelib.domain.members import MemberAddition
from chalicelib.domain.money import prorated_amount
from chalicelib.domain.periods import seconds_in_period
from tests.support.world import CID, World


def no_request_under_the_minimum(world: World) -> None:
    for request in world.gateway.requests:
        assert request.amount >= currency(request.currency).minimum_charge, request


def test_a_renewal_mostly_paid_by_credit_charges_the_minimum_and_keeps_the_rest() -> None:
    world = World()
    owner = world.customer("Ada")
    sub_id = world.active(world.plan(1000), owner)
    world.store.credit[(CID, owner.id, "usd")] = 995
    period = world.store.subscriptions[(CID, sub_id)].require_period()
    world.clock.advance_to(period.end)
    assert world.scheduled.renew(CID, sub_id, world.clock.now()) == "renewed"
    assert world.gateway.requests[-1].amount == 50
    assert world.store.credit[(CID, owner.id, "usd")] == 45
    renewal = [p for p in world.store.payments.values() if p.kind == "renewal"]
    assert [(p.subtotal, p.credit_applied, p.total, p.status) for p in renewal] == [
        (1000, 950, 50, "succeeded")
    ]
    no_request_under_the_minimum(world)


def test_a_member_added_for_cents_is_a_member_now_and_pays_once_next_time() -> None:
    world = World()
    owner = world.customer("Bo")
    kid = world.dependent("Kid", owner)
    sub_id = world.active(world.plan(1000), owner)
    period = world.store.subscriptions[(CID, sub_id)].require_period()
    world.clock.advance_to(period.end - timedelta(hours=12))
    requests_before = len(world.gateway.requests)

    added = world.members.add(
        CID,
        sub_id,
        [MemberAddition(kid.id, "charge")],
        send_welcome_email=False,
        send_receipt_email=False,
    )
    assert added.payment is None  # nothing charged now
    assert len(world.gateway.requests) == requests_before
    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.member(kid.id) is not None
    seventeen = prorated_amount(1000, 12 * 3600, seconds_in_period(period))
    assert 0 < seventeen < 50
    assert [c.amount for c in sub.carried] == [seventeen]

    world.clock.advance_to(period.end)
    assert world.scheduled.renew(CID, sub_id, world.clock.now()) == "renewed"
    assert world.gateway.requests[-1].amount == 2 * 1000 + seventeen
    renewal = next(p for p in world.store.payments.values() if p.kind == "renewal")
    assert [(ln.kind, ln.amount) for ln in renewal.lines if ln.kind == "carried"] == [
        ("carried", seventeen)
    ]
    assert world.store.subscriptions[(CID, sub_id)].carried == ()

    # the next period's renewal does not charge it again
    next_end = world.store.subscriptions[(CID, sub_id)].require_period().end
    world.clock.advance_to(next_end)
    assert world.scheduled.renew(CID, sub_id, world.clock.now()) == "renewed"
    assert world.gateway.requests[-1].amount == 2 * 1000
    no_request_under_the_minimum(world)


def test_the_receipt_prints_amounts_with_the_currency_decimals() -> None:
    world = World()
    owner = world.customer("Cy")
    friend = world.customer("Kit", card="pm_kit")  # a customer: the receipt goes to them
    sub_id = world.active(world.plan(3000, currency="jpy"), owner)
    world.members.add(
        CID,
        sub_id,
        [MemberAddition(friend.id, "charge")],
        send_welcome_email=False,
        send_receipt_email=True,
    )
    [receipt] = world.mailer.sent
    assert "Total: 3000 JPY" in receipt.body  # the whole period is left: 3000 yen, no decimals
    assert "30.00" not in receipt.body


def test_credit_in_one_currency_never_pays_a_charge_in_another() -> None:
    world = World()
    owner = world.customer("Di")
    world.store.credit[(CID, owner.id, "usd")] = 2000
    world.active(world.plan(3000, currency="eur"), owner)
    [request] = world.gateway.requests
    assert (request.amount, request.currency) == (3000, "eur")
    assert world.store.credit[(CID, owner.id, "usd")] == 2000
    assert world.directory.profile(CID, owner.id).credit_in("eur") == 0
