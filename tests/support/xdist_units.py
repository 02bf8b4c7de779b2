"""pytest-xdist work units for `make test` (`pytest -n 2 --dist loadfile`).

Like --dist loadfile (one test file per worker, so module-scoped fixtures such as the moto apps
and localstripe communities are built once), except for two units that span files:

- every test on the shared e2e `stack` runs in one worker, in collection order, so the
  `ledger_last` tests still run after, and see the payments of, every other test on that stack;
- every tests/infra test shares one worker's session-scoped synthesized template (one synth).

(xdist_group markers would say the same, but pytest-xdist 3.8's --dist loadgroup renames
`item._nodeid`, which pytest 9 no longer reads, so the groups are silently ignored.)
The scheduler sees only node ids; tests/conftest.py checks at collection that each test using
`stack` or `synthesized` is in its unit.
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadFileScheduling

E2E_STACK_UNIT = "tests/e2e on the shared session stack"
INFRA_UNIT = "tests/infra on one synthesized template"
# e2e files that never use the shared `stack` (the demo moves the clock on a stack of its own).
OWN_STACK_E2E_FILES = frozenset({"tests/e2e/test_demo.py"})
# Directories whose conftest defines a `stack` of their own (the console's browser tests).
OWN_STACK_DIRS = ("tests/browser/",)


def work_unit(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    if path.startswith("tests/e2e/") and path not in OWN_STACK_E2E_FILES:
        return E2E_STACK_UNIT
    if path.startswith("tests/infra/"):
        return INFRA_UNIT
    return path


# fixture -> the unit every test using it must be in
SHARED_FIXTURE_UNITS = {"stack": E2E_STACK_UNIT, "synthesized": INFRA_UNIT}


def misplaced(nodeid: str, fixturenames: list[str]) -> list[str]:
    """The shared session fixtures this test uses outside their unit (should be none)."""
    unit = work_unit(nodeid)
    own_stack = nodeid.startswith(OWN_STACK_DIRS)
    return [
        name
        for name, wanted in SHARED_FIXTURE_UNITS.items()
        if name in fixturenames and unit != wanted and not (own_stack and name == "stack")
    ]


# The longest units (`--durations`, 2026-12-01), handed out first so that none of them starts
# last and leaves one worker idle at the end; the rest go largest (by test count) first.
SLOW_UNITS_FIRST = (
    "tests/soak/test_soak_short.py",
    E2E_STACK_UNIT,
    INFRA_UNIT,
    "tests/integration/test_subscriptions_big.py",
    "tests/browser/test_console_stories.py",
    "tests/integration/test_dunning_emails.py",
    "tests/browser/test_pay_page.py",
    "tests/soak/test_soak_regressions.py",
    "tests/soak/test_soak_faults.py",
    "tests/integration/test_scheduling_lifecycle.py",
    "tests/integration/test_subscriptions_lifecycle.py",
    "tests/e2e/test_demo.py",
    "tests/integration/test_payments_refunds_and_history.py",
    "tests/integration/test_admin_fuzz.py",
)


class FileUnitScheduling(LoadFileScheduling):
    def _split_scope(self, nodeid: str) -> str:
        return work_unit(nodeid)

    def _assign_work_unit(self, node: Any) -> None:
        slow = next((unit for unit in SLOW_UNITS_FIRST if unit in self.workqueue), None)
        if slow is not None:
            self.workqueue.move_to_end(slow, last=False)
        super()._assign_work_unit(node)
