"""The short, seeded soak that `make test` runs: the state machine of tests/soak/machine.py
for a bounded budget (at most SHORT_BUDGET_SECONDS of steps, then every remaining step is a
no-op), derandomized so every run draws the same sequences. `make soak` runs it long."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.soak import machine
from tests.soak.world import SoakWorld

SHORT_BUDGET_SECONDS = 30  # of steps; with setup and the final checks well inside the 90 s
SEQUENCES = 6
STEPS_PER_SEQUENCE = 15

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def world() -> Iterator[SoakWorld]:
    with machine.started_world() as started:
        yield started


def test_a_short_seeded_soak_finds_no_violation(world: SoakWorld) -> None:
    started = time.monotonic()
    machine.STATS = machine.Stats(budget_ends=started + SHORT_BUDGET_SECONDS)
    run_state_machine_as_test(
        machine.BillingMachine,
        settings=settings(
            max_examples=SEQUENCES,
            stateful_step_count=STEPS_PER_SEQUENCE,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.generate],  # a failure prints its steps; `make soak` shrinks
            suppress_health_check=list(HealthCheck),
        ),
    )
    stats = machine.STATS
    assert stats.violations == []
    assert stats.sequences >= 1 and stats.steps > 0
    print(
        f"\nshort soak: {stats.sequences} sequences, {stats.steps} steps in "
        f"{time.monotonic() - started:.0f} s; faults {dict(world.fired_faults())}; "
        f"gated {dict(stats.gated)}"
    )
