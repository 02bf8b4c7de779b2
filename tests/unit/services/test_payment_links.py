"""Pay-now links on the fakes (issue 15): issuing, expiry, invalidation, single purpose."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.config import Settings
from chalicelib.domain.errors import Conflict, NotFound, RateLimited, Unavailable
from chalicelib.services.payment_links import (
    REQUESTS_PER_TOKEN_PER_MINUTE,
    PaymentLinks,
    hash_token,
)
from tests.support.fakes import SubscriptionReads
from tests.support.world import CID, PUBLIC_URL, World


def failed_subscription(world: World, grace_days: int = 14, late: timedelta = timedelta(0)) -> str:
    """A monthly subscription whose first renewal was declined (now failed_payment)."""
    owner = world.customer("Ada")
    sub_id = world.active(world.plan(2500, retry_days=(1,), grace_days=grace_days), owner)
    world.card_checks.on_stripe["pm_decline"] = owner.stripe_customer_id or ""
    world.subscriptions.update(CID, sub_id, {"payment_method_id": "pm_decline"})
    assert world.renew_at_period_end(sub_id, late) == "renewal_failed"
    return sub_id


def token_of(url: str) -> str:
    prefix = f"{PUBLIC_URL}/pay/"
    assert url.startswith(prefix), url
    return url.removeprefix(prefix)


def test_a_link_is_a_random_token_under_the_public_url_stored_only_as_its_hash() -> None:
    world = World()
    sub_id = failed_subscription(world)
    first = world.payment_links.issue(CID, sub_id, world.clock.now())
    second = world.payment_links.issue(CID, sub_id, world.clock.now())
    token = token_of(first.url)
    assert len(token) >= 43 and token != token_of(second.url)
    assert token not in world.link_store.links and hash_token(token) in world.link_store.links
    opened = world.payment_links.open(token_of(second.url), world.clock.now())
    assert (opened.subscription.id, opened.state) == (sub_id, "payable")


def test_the_link_expires_after_7_days_when_grace_ends_later() -> None:
    world = World()
    sub_id = failed_subscription(world, grace_days=14)
    now = world.clock.now()
    issued = world.payment_links.issue(CID, sub_id, now)
    assert issued.expires_at == now.replace(microsecond=0) + timedelta(days=7)
    token = token_of(issued.url)
    world.clock.advance(timedelta(days=7) - timedelta(seconds=1))
    assert world.payment_links.open(token, world.clock.now()).state == "payable"
    world.clock.advance(timedelta(seconds=1))
    assert world.payment_links.open(token, world.clock.now()).state == "expired"


def test_the_link_expires_at_cancel_at_when_grace_ends_sooner() -> None:
    world = World()
    sub_id = failed_subscription(world, grace_days=3)
    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.cancel_at is not None
    issued = world.payment_links.issue(CID, sub_id, world.clock.now())
    assert issued.expires_at == sub.cancel_at
    world.clock.advance_to(sub.cancel_at - timedelta(seconds=1))
    assert world.payment_links.open(token_of(issued.url), world.clock.now()).state == "payable"


def test_a_new_link_invalidates_the_older_ones() -> None:
    world = World()
    sub_id = failed_subscription(world)
    older = [world.payment_links.issue(CID, sub_id, world.clock.now()) for _ in range(2)]
    newest = world.payment_links.issue(CID, sub_id, world.clock.now())
    for link in older:
        assert world.payment_links.open(token_of(link.url), world.clock.now()).state == "expired"
    assert world.payment_links.open(token_of(newest.url), world.clock.now()).state == "payable"


@pytest.mark.parametrize("status", ["inactive", "active"])
def test_only_a_failed_payment_subscription_gets_a_link(status: str) -> None:
    world = World()
    owner = world.customer("Bo")
    plan = world.plan(2000)
    sub_id = world.inactive(plan, owner) if status == "inactive" else world.active(plan, owner)
    with pytest.raises(Conflict):
        world.payment_links.issue(CID, sub_id, world.clock.now())
    assert world.link_store.links == {}


def test_an_unknown_subscription_is_not_found() -> None:
    world = World()
    with pytest.raises(NotFound):
        world.payment_links.issue(CID, "sub_missing", world.clock.now())


def test_a_link_pays_only_the_outstanding_amount_it_was_issued_for() -> None:
    """Single purpose: once that amount is paid the link says "paid", even should the
    subscription fail again later; a stored link of another purpose is no link."""
    world = World()
    sub_id = failed_subscription(world)
    token = token_of(world.payment_links.issue(CID, sub_id, world.clock.now()).url)
    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.failed_at is not None
    later_failure = replace(sub, failed_at=sub.failed_at + timedelta(days=31))
    world.store.subscriptions[(CID, sub_id)] = later_failure
    assert world.payment_links.open(token, world.clock.now()).state == "paid"

    stored = world.link_store.links[hash_token(token)]
    world.link_store.links[hash_token(token)] = replace(stored, purpose="something_else")
    with pytest.raises(NotFound):
        world.payment_links.open(token, world.clock.now())


def test_a_cancelled_subscription_shows_cancelled_and_a_garbage_token_is_not_found() -> None:
    world = World()
    sub_id = failed_subscription(world, grace_days=3)
    token = token_of(world.payment_links.issue(CID, sub_id, world.clock.now()).url)
    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.cancel_at is not None
    world.clock.advance_to(sub.cancel_at)
    assert world.scheduled.process_failed_payment(CID, sub_id, world.clock.now()) == (
        "grace_cancelled"
    )
    assert world.payment_links.open(token, world.clock.now()).state == "cancelled"
    for garbage in ("", "x", "../../etc", token[:-1] + ("A" if token[-1] != "A" else "B")):
        with pytest.raises(NotFound):
            world.payment_links.open(garbage, world.clock.now())


def test_each_token_may_make_a_limited_number_of_requests_a_minute() -> None:
    world = World()
    sub_id = failed_subscription(world)
    token = token_of(world.payment_links.issue(CID, sub_id, world.clock.now()).url)
    other = token_of(world.payment_links.issue(CID, sub_id, world.clock.now()).url)
    world.clock.advance_to(world.clock.now().replace(second=0) + timedelta(minutes=1))
    for _ in range(REQUESTS_PER_TOKEN_PER_MINUTE):
        world.payment_links.count_request(token, world.clock.now())
    with pytest.raises(RateLimited):
        world.payment_links.count_request(token, world.clock.now())
    world.payment_links.count_request(other, world.clock.now())  # each token has its own
    world.clock.advance(timedelta(minutes=1))
    world.payment_links.count_request(token, world.clock.now())  # a new minute


def test_a_failure_time_with_microseconds_matches_the_link_stored_in_whole_seconds() -> None:
    """The stored link keeps whole seconds (adapters/dynamodb/payment_links.py); the
    subscription's failed_at may carry microseconds (a live clock): still the same failure."""
    world = World()
    sub_id = failed_subscription(world, late=timedelta(microseconds=250_000))
    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.failed_at is not None and sub.failed_at.microsecond == 250_000
    token = token_of(world.payment_links.issue(CID, sub_id, world.clock.now()).url)
    stored = world.link_store.links[hash_token(token)]
    assert stored.outstanding_since.microsecond == 0
    assert world.payment_links.open(token, world.clock.now()).state == "payable"


def test_the_public_url_comes_from_the_setting_and_deployed_stages_must_set_it() -> None:
    assert Settings.from_env({"BILLING_STAGE": "local"}).public_url == "http://127.0.0.1:8000"
    deployed = Settings.from_env({"BILLING_STAGE": "prod"})
    assert deployed.public_url == ""
    given = {"BILLING_STAGE": "prod", "BILLING_PUBLIC_URL": "https://billing.example.org/"}
    assert Settings.from_env(given).public_url == "https://billing.example.org/"
    world = World()
    sub_id = failed_subscription(world)
    unset = PaymentLinks(world.link_store, SubscriptionReads(world.store), lambda: "")
    with pytest.raises(Unavailable):
        unset.issue(CID, sub_id, world.clock.now())
    assert world.link_store.links == {}
