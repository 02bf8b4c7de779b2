"""Money in flight on a community's connected Stripe account when that account changes or
disconnects the platform (docs/rules/money.md, "Connected accounts that change under money in
flight"): everything about a payment uses the account that took it; an account that no longer
lets us in is never asked forever, and nothing is settled blind. On in-memory fakes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.domain.communities import Community
from chalicelib.domain.errors import AccountDisconnected, Conflict, Unavailable
from chalicelib.domain.payments import Payment
from chalicelib.domain.profiles import Profile
from chalicelib.domain.rate_control import Deferred
from chalicelib.services.charging import PaymentPending
from chalicelib.services.refunds import RefundPending
from tests.support.world import CID, START, World

GYM = "acct_gym"


def on_account(world: World, account: str) -> None:
    """The community charges on `account` (and its customers' Stripe customers live there)."""
    world.directory.communities[CID] = Community(CID, "Harbour gym", "usd", account, 250, START)
    for key, profile in list(world.directory.profiles.items()):
        world.directory.profiles[key] = replace(profile, stripe_customer_account=account)


def customer(world: World, name: str) -> Profile:
    profile = world.customer(name)
    account = world.directory.communities[CID].stripe_account_id
    on_account(world, account or "")
    return replace(profile, stripe_customer_account=account)


def paid_on_gym(world: World, amount: int = 4000) -> tuple[str, Payment]:
    on_account(world, GYM)
    sub_id = world.active(world.plan(amount), customer(world, "Ivy"))
    [payment] = world.store.payments.values()
    assert (payment.stripe.account_id, payment.status) == (GYM, "succeeded")
    return sub_id, payment


def stored(world: World, payment: Payment) -> Payment:
    return world.store.payments[(CID, payment.id)]


def refund_records(world: World, payment: Payment) -> list[tuple[int, str]]:
    with world.store.unit_of_work() as uow:
        return sorted((r.amount, r.status) for r in uow.payments.refunds(CID, payment.id))


def test_a_refund_on_an_account_that_disconnected_the_platform_is_a_409_that_changes_nothing() -> (
    None
):
    world = World()
    _, payment = paid_on_gym(world)
    world.store.deauthorized[CID] = GYM
    world.gateway.disconnected.add(GYM)
    before = stored(world, payment)

    with pytest.raises(AccountDisconnected, match=GYM) as refused:
        world.payments.refund(CID, payment.id, 1000, "goodwill")

    assert isinstance(refused.value, Conflict)  # the API's 409
    assert stored(world, payment) == before
    assert refund_records(world, payment) == []
    assert world.gateway.refused == []  # known disconnected: not even asked


def test_a_refund_goes_to_the_account_that_took_the_charge_whose_refusal_reserves_nothing() -> None:
    """The community moved to another account: a refund of a payment taken on the old one
    goes to the old one. Once the old account has disconnected the platform too (we hear no
    more of it), Stripe's refusal is a 409 and the amount is not reserved."""
    world = World()
    _, payment = paid_on_gym(world)
    on_account(world, "acct_new")

    world.payments.refund(CID, payment.id, 1000, "goodwill")

    assert [(r["account"], r["amount"]) for r in world.gateway.refunds] == [(GYM, 1000)]
    world.gateway.disconnected.add(GYM)
    with pytest.raises(AccountDisconnected):
        world.payments.refund(CID, payment.id, 500, None)
    after = stored(world, payment)
    assert (after.amount_refunded, after.amount_refund_pending) == (1000, 0)
    assert refund_records(world, payment) == [(500, "failed"), (1000, "succeeded")]


def test_a_pending_refund_on_a_disconnected_account_stays_reserved_until_stripe_can_tell() -> None:
    """Stripe made the refund but its answer was lost; then the account disconnected the
    platform. The recovery pass cannot read it: the refund is neither settled blind (failing
    it would free the amount for a second refund of money already returned) nor asked about
    with an error each run; after a reconnect it is settled from what Stripe did."""
    world = World()
    _, payment = paid_on_gym(world)
    world.gateway.fail_next = ["after"]
    with pytest.raises(RefundPending):
        world.payments.refund(CID, payment.id, 1500, None)
    world.gateway.disconnected.add(GYM)
    later = world.clock.now() + timedelta(minutes=6)

    assert world.scheduled.recover_pending_refunds(CID, payment.id, later) == (
        "account_disconnected"
    )

    waiting = stored(world, payment)
    assert (waiting.amount_refunded, waiting.amount_refund_pending) == (0, 1500)
    assert refund_records(world, payment) == [(1500, "pending")]
    world.gateway.disconnected.clear()  # reconnected
    assert world.scheduled.recover_pending_refunds(CID, payment.id, later) == "refunds_settled"
    settled = stored(world, payment)
    assert (settled.amount_refunded, settled.amount_refund_pending) == (1500, 0)
    assert len(world.gateway.refunds) == 1  # never sent twice


def test_a_pending_renewal_whose_account_disconnected_fails_and_a_late_success_is_refunded() -> (
    None
):
    """A renewal charged on the connected account whose answer was lost stays pending; the
    account then disconnects the platform. The recovery pass cannot read what Stripe did, so
    the payment fails (`account_disconnected`) and the subscription follows the failed-payment
    flow instead of waiting forever on a charge in flight. Should Stripe report the charge
    paid after a reconnect, the late success is refunded (that period was not granted)."""
    world = World()
    sub_id, _ = paid_on_gym(world)
    period = world.store.subscriptions[(CID, sub_id)].current_period
    assert period is not None
    world.clock.advance_to(period.end)
    world.gateway.fail_next = ["after"]
    assert world.scheduled.renew(CID, sub_id, world.clock.now()) == "payment_pending"
    [renewal] = [p for p in world.store.payments.values() if p.kind == "renewal"]
    world.gateway.disconnected.add(GYM)
    later = world.clock.now() + timedelta(minutes=6)

    assert world.scheduled.recover_pending_payment(CID, renewal.id, later) == (
        "account_disconnected"
    )

    failed = stored(world, renewal)
    assert failed.status == "failed"
    assert failed.failure is not None and failed.failure.code == "account_disconnected"
    assert world.store.subscriptions[(CID, sub_id)].status == "failed_payment"
    # Reconnected: Stripe's news of the charge it made is a late success, refunded on GYM.
    world.gateway.disconnected.clear()
    [intent] = [
        i for i in world.gateway.intents.values() if i["metadata"]["payment_id"] == renewal.id
    ]
    world.payments.resolve_payment_from_intent(CID, renewal.id, intent, GYM)
    assert [(r["account"], r["amount"]) for r in world.gateway.refunds] == [(GYM, renewal.total)]
    assert world.store.subscriptions[(CID, sub_id)].status == "failed_payment"


def test_the_recovery_pass_does_not_ask_an_account_known_to_have_disconnected() -> None:
    """`account.application.deauthorized` told us: each run leaves the pending refund as it
    is without calling Stripe (which could only refuse); the reconnect lifts it."""
    world = World()
    _, payment = paid_on_gym(world)
    world.gateway.fail_next = ["after"]
    with pytest.raises(RefundPending):
        world.payments.refund(CID, payment.id, 1500, None)
    world.store.deauthorized[CID] = GYM
    world.gateway.disconnected.add(GYM)
    later = world.clock.now() + timedelta(minutes=6)

    for _ in range(3):
        assert world.scheduled.recover_pending_refunds(CID, payment.id, later) == (
            "account_disconnected"
        )

    assert world.gateway.refused == []
    assert refund_records(world, payment) == [(1500, "pending")]
    del world.store.deauthorized[CID]
    world.gateway.disconnected.clear()
    assert world.scheduled.recover_pending_refunds(CID, payment.id, later) == "refunds_settled"


def test_a_charge_resumed_after_the_community_moved_to_another_account_fails_unsent() -> None:
    """A 429 left the renewal in flight on GYM; the community then moved to another account
    and its owner's card with it. The resumed charge has no customer on GYM to charge: it
    fails `no_card_on_account` (the 429 made no PaymentIntent) and the failed-payment flow
    follows, instead of an error that sends the message back until the resume window ends."""
    world = World()
    sub_id, _ = paid_on_gym(world)
    period = world.store.subscriptions[(CID, sub_id)].current_period
    assert period is not None
    world.clock.advance_to(period.end)
    world.gateway.fail_next = ["429"]
    with pytest.raises(Deferred):
        world.scheduled.renew(CID, sub_id, world.clock.now())
    on_account(world, "acct_new")
    sent_before = len(world.gateway.requests)
    world.clock.advance(timedelta(seconds=20))

    assert world.scheduled.renew(CID, sub_id, world.clock.now()) == "renewal_failed"

    assert len(world.gateway.requests) == sent_before
    [renewal] = [p for p in world.store.payments.values() if p.kind == "renewal"]
    assert renewal.stripe.account_id == GYM
    assert renewal.failure is not None and renewal.failure.code == "no_card_on_account"
    assert world.store.subscriptions[(CID, sub_id)].status == "failed_payment"


def test_the_recovery_pass_believes_no_payment_intent_the_accounts_owner_made() -> None:
    """Our charge's answer was lost and Stripe declined it. The account's owner made a
    PaymentIntent of their own with our ids in its metadata, succeeded, without the platform's
    fee (only the platform can set one): the recovery pass resolves the payment from ours."""
    world = World()
    owner = world.customer("Ivy", card="pm_decline")
    on_account(world, GYM)
    sub_id = world.inactive(world.plan(4000), owner, card="pm_decline")
    world.gateway.fail_next = ["after"]
    with pytest.raises(PaymentPending) as pending:
        world.subscriptions.activate(CID, sub_id, None)
    payment = world.store.payments[(CID, pending.value.payment_id)]
    [ours] = world.gateway.intents.values()
    owners = {**ours, "id": "pi_owner", "status": "succeeded", "amount_received": ours["amount"]}
    world.gateway.intents["pi_owner"] = {
        **owners,
        "application_fee_amount": None,
        "application": None,
    }
    later = world.clock.now() + timedelta(minutes=6)

    assert world.scheduled.recover_pending_payment(CID, payment.id, later) == "recovered_failed"

    recovered = stored(world, payment)
    assert (recovered.status, recovered.stripe.payment_intent_id) == ("failed", ours["id"])
    assert world.store.subscriptions[(CID, sub_id)].status == "inactive"


def test_a_refund_the_accounts_owner_made_under_our_refund_id_never_settles_ours() -> None:
    """Our refund of 15.00 never reached Stripe. The account's owner refunded 0.01 of the
    charge themselves, with our refund's id in the metadata: that is not our refund, so the
    recovery pass finds none of ours and releases the reservation; 15.00 is never recorded
    refunded for 0.01 refunded."""
    world = World()
    _, payment = paid_on_gym(world)
    world.gateway.fail_next = ["before"]
    with pytest.raises(Unavailable):
        world.payments.refund(CID, payment.id, 1500, "goodwill")
    with world.store.unit_of_work() as uow:
        [ours] = uow.payments.refunds(CID, payment.id)
    world.gateway.refunds.append(
        {
            "id": "re_owner",
            "amount": 1,
            "intent": payment.stripe.payment_intent_id,
            "account": GYM,
            "key": "owner",
            "status": "succeeded",
            "metadata": {"refund_id": ours.id},
        }
    )
    later = world.clock.now() + timedelta(minutes=6)

    assert world.scheduled.recover_pending_refunds(CID, payment.id, later) == "refunds_settled"

    settled = stored(world, payment)
    assert (settled.amount_refunded, settled.amount_refund_pending) == (0, 0)
    assert refund_records(world, payment) == [(1500, "failed")]
