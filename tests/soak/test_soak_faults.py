"""The soak's fault rule reaches every kind: `cause_faults` injects each kind of
FAULT_ROTATION on actions until it fires, so a long soak injects them all about equally."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.integration.conftest import START
from tests.soak import machine
from tests.soak.invariants import check_all
from tests.soak.machine import FAULT_ROTATION, BillingMachine, Pick
from tests.soak.world import SoakWorld

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def world() -> Iterator[SoakWorld]:
    with machine.started_world() as started:
        yield started


def test_every_fault_kind_fires_when_injected(world: SoakWorld) -> None:
    machine.STATS = machine.Stats()
    state = BillingMachine()
    state.community()
    not_fired = []
    for n, kind in enumerate(FAULT_ROTATION):
        before = state.fired(kind)
        state.inject_until_fired(kind, Pick(n))
        if state.fired(kind) == before:
            not_fired.append(kind)
        state.invariants_hold()
    state.teardown()
    assert not_fired == [], f"never fired: {not_fired}"
    assert machine.STATS.violations == []


def test_each_sequence_starts_its_own_clock_at_the_fixed_start(world: SoakWorld) -> None:
    """A long soak moves time by years a minute; with one clock for the whole run it reached
    the test clock's horizon (2200) after ~9 minutes, every advance was refused from then on and
    every pending payment of every later sequence stayed pending (found by a 30-minute run)."""
    world.fresh_table()
    world.move_clock(timedelta(days=400 * 365))
    assert world.env.clock.now().year > 2400
    world.fresh_table()
    assert world.env.clock.now() == START


def test_new_events_are_found_after_the_first_hundred(world: SoakWorld) -> None:
    """localstripe lists events oldest first: reading its first page and stopping at a seen
    event (Stripe's newest-first order) found nothing new once a run had made 100 events, so
    every webhook rule of a long soak delivered nothing after its first minutes."""
    world.new_events()
    for n in range(105):
        world.stripe.v1.customers.create(params={"email": f"event{n}@example.com"})
    first = world.new_events()
    assert len(first) >= 105
    world.stripe.v1.customers.create(params={"email": "one.more@example.com"})
    later = world.new_events()
    assert [e["type"] for e in later] == ["customer.created"]
    assert later[0]["data"]["object"]["email"] == "one.more@example.com"


def test_a_declined_charge_s_payment_intent_is_seen_created(world: SoakWorld) -> None:
    """localstripe's decline (402) names only the charge, not the PaymentIntent it made: the
    fault layer read nothing from it, so the ledger=stripe invariant never saw a declined
    intent the ledger did not name (one left without a payment went unnoticed)."""
    machine.STATS = machine.Stats()
    state = BillingMachine()
    state.community()
    before = len(world.proxy.intents_created)
    state.do_create(2, 0, 0, "month", False, True)  # Cy's card declines the activation
    [declined] = world.proxy.intents_created[before:]
    snap = state.snapshot(full_access=False)
    assert snap.intents[declined]["status"] == "requires_payment_method"
    [payment] = [p for p in snap.payments if p["subscription_id"] == state.subs[-1]]
    assert (payment["status"], snap.intents[declined]["metadata"]["payment_id"]) == (
        "failed",
        payment["id"],
    )
    assert check_all(snap) == []
    state.teardown()


def test_a_card_detached_on_stripe_fails_the_renewal_unsent(world: SoakWorld) -> None:
    """The `detach_card` rule: Stripe detaches an active subscription's card and says so; the
    renewal fails `card_detached` without a PaymentIntent, and every invariant holds."""
    machine.STATS = machine.Stats()
    state = BillingMachine()
    state.community()
    sub_id = state.subs[0]  # active from the start, on Ada's card
    state.do_detach_card(sub_id, "on_stripe")
    assert len(state.detached_cards) == 1
    world.advance(days=31)
    snap = state.snapshot(full_access=False)
    [renewal] = [p for p in snap.payments if p["kind"] == "renewal"]
    assert (renewal["status"], renewal["failure"]["code"]) == ("failed", "card_detached")
    assert renewal["stripe"]["payment_intent_id"] is None
    assert check_all(snap) == []
    state.teardown()


def test_the_detached_card_invariant_flags_a_charge_after_the_detach(world: SoakWorld) -> None:
    """The invariant bites: a card detached on Stripe whose event we never got is charged by
    the renewal (localstripe charges a detached card; Stripe would refuse it)."""
    machine.STATS = machine.Stats()
    state = BillingMachine()
    state.community()
    method = state.read(f"/v1/subscriptions/{state.subs[0]}")["payment_method"]["id"]
    state.detached_cards[method] = frozenset(world.proxy.intents_created[state.intents_from :])
    world.stripe.v1.payment_methods.detach(method)
    world.advance(days=31)
    found = check_all(state.snapshot(full_access=False))
    assert [v.invariant for v in found] == ["detached-card"]
    state.detached_cards.clear()  # the teardown judges once more: the bite is shown
    state.teardown()
