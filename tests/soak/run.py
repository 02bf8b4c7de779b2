"""`python -m tests.soak.run --minutes N [--seed S]`: the long soak behind `make soak`.

Runs the state machine (tests/soak/machine.py) on one world for N minutes, a fresh seed per
batch of sequences unless `--seed` is given, and prints: sequences and steps run, steps per
second, faults fired by kind, gated (documented) violations and every violation found, with
hypothesis's shrunk sequence of steps, ready to paste as a regression test. Exits 1 on any
violation.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import random
import signal
import sys
import threading
import time
import traceback
from collections import Counter

# Before anything of the app is imported: the soak makes thousands of calls; keep logs quiet.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MembershipBilling")

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.soak import machine
from tests.soak.world import SoakWorld, soak_world

SEQUENCES_PER_SEED = 4
STEPS_PER_SEQUENCE = 20
SHRINK_SECONDS = 120
PROGRESS_SECONDS = 60


def soak_settings(*, examples: int, steps: int, shrink: bool, derandomize: bool) -> settings:
    phases = [Phase.generate, Phase.shrink] if shrink else [Phase.generate]
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        derandomize=derandomize,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        print_blob=False,
    )


def run_with_seed(seed: int, soak: settings) -> str | None:
    """One batch of sequences from `seed`; the failure report (shrunk steps) or None."""
    import hypothesis.core

    hypothesis.core.global_force_seed = seed  # type: ignore[assignment]  # = --hypothesis-seed
    try:
        run_state_machine_as_test(machine.BillingMachine, settings=soak)
    except Exception:
        return traceback.format_exc()
    finally:
        hypothesis.core.global_force_seed = None
    return None


def regression_test(seed: int, report: str) -> str:
    """The shrunk steps of a failure report as a test for tests/soak/test_soak_regressions.py
    (which has the `world` fixture and imports `BillingMachine`, `Pick` and `machine`)."""
    steps = [ln.strip() for ln in report.splitlines() if ln.startswith(("state = ", "state."))]
    violation = next((ln for ln in report.splitlines() if ln.lstrip().startswith("[")), "")
    body = "\n".join(f"    {line}" for line in steps)
    return (
        f"def test_soak_seed_{seed}(world: SoakWorld) -> None:\n"
        f'    """Found by `make soak` (seed {seed}):{violation.strip()[:150]}"""\n'
        f"    machine.WORLD, machine.STATS = world, machine.Stats()\n"
        f"{body}\n"
    )


def figures(stats: machine.Stats, faults: Counter[str], seconds: float) -> str:
    lines = [
        f"sequences: {stats.sequences}",
        f"steps: {stats.steps} in {seconds:.0f} s ({stats.steps / max(seconds, 1e-9):.2f} steps/s)",
        "faults injected (fired), by kind:",
        *[f"  {kind}: {count}" for kind, count in sorted(faults.items())],
        "gated violations (documented, issue 11):",
        *([f"  {reason}: {count}" for reason, count in sorted(stats.gated.items())] or ["  none"]),
        f"violations: {len(stats.violations)}",
        *[f"  {violation}" for violation in stats.violations],
        "rules run:",
        *[f"  {name}: {count}" for name, count in sorted(stats.rules.items())],
    ]
    return "\n".join(lines)


def report_progress(world: SoakWorld, started: float, stop: threading.Event) -> None:
    """A line a minute, so a long run shows it is moving (and how fast) before its figures."""
    while not stop.wait(PROGRESS_SECONDS):
        stats = machine.STATS
        faults = world.fired_faults()
        fewest = min(machine.FAULT_ROTATION, key=lambda kind: faults[machine.fired_as(kind)])
        under_100 = sum(faults[machine.fired_as(kind)] < 100 for kind in machine.FAULT_ROTATION)
        print(
            f"progress: {time.monotonic() - started:.0f} s, {stats.sequences} sequences, "
            f"{stats.steps} steps, {sum(faults.values())} faults (fewest: {fewest} "
            f"{faults[machine.fired_as(fewest)]}; {under_100} kinds under 100), "
            f"{len(stats.violations)} violations",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=None, help="replay one seed")
    parser.add_argument("--steps", type=int, default=STEPS_PER_SEQUENCE)
    parser.add_argument("--no-shrink", action="store_true", help="report failures unshrunk")
    parser.add_argument(
        "--shrink-seconds", type=int, default=SHRINK_SECONDS, help="cap on shrinking one failure"
    )
    args = parser.parse_args(argv)
    from hypothesis.internal.conjecture import engine

    # Each step is real I/O (tens of ms): hypothesis's default 5 minutes per shrink is long.
    engine.MAX_SHRINKING_SECONDS = args.shrink_seconds
    logging.getLogger().setLevel(logging.CRITICAL)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints where every thread is
    # A SIGTERM (timeout, kill) unwinds as Ctrl-C does, so localstripe is stopped too
    # (hypothesis reports a SystemExit raised inside a rule as a failure and goes on).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    seeds = random.SystemRandom()
    failures: list[tuple[int, str]] = []
    started = time.monotonic()
    ends = started + args.minutes * 60
    with soak_world() as world:
        machine.WORLD = world
        machine.STATS = machine.Stats()
        soak = soak_settings(
            examples=SEQUENCES_PER_SEED,
            steps=args.steps,
            shrink=not args.no_shrink,
            derandomize=False,
        )
        stop = threading.Event()
        threading.Thread(target=report_progress, args=(world, started, stop), daemon=True).start()
        while time.monotonic() < ends:
            seed = args.seed if args.seed is not None else seeds.randrange(2**32)
            print(f"seed {seed}", flush=True)
            report = run_with_seed(seed, soak)
            if report is not None:
                failures.append((seed, report))
                print(report, flush=True)
            if args.seed is not None:
                break
        stop.set()
        elapsed = time.monotonic() - started
        print(figures(machine.STATS, world.fired_faults(), elapsed), flush=True)
        machine.WORLD = None
    for seed, report in failures:
        print(f"--- failing seed {seed}: replay with --seed {seed}\n{report}")
        print(f"--- as a regression test, ready to paste:\n{regression_test(seed, report)}")
    return 1 if failures or machine.STATS.violations else 0


if __name__ == "__main__":
    sys.exit(main())
