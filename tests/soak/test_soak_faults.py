"""The soak's fault rule reaches every kind: `cause_faults` injects each kind of
FAULT_ROTATION on actions until it fires, so a long soak injects them all about equally."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.integration.conftest import START
from tests.soak import machine
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
