"""The pytest-xdist work units of `make test` (tests/support/xdist_units.py)."""

from __future__ import annotations

from pathlib import Path

from tests.support.xdist_units import (
    E2E_STACK_UNIT,
    INFRA_UNIT,
    SLOW_UNITS_FIRST,
    misplaced,
    work_unit,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_shared_stack_and_synth_tests_are_one_unit_each_and_other_files_their_own() -> None:
    assert work_unit("tests/e2e/test_ledger_e2e.py::test_x") == E2E_STACK_UNIT
    assert work_unit("tests/e2e/test_subscriptions_e2e.py::test_y[a]") == E2E_STACK_UNIT
    assert work_unit("tests/e2e/test_demo.py::test_z") == "tests/e2e/test_demo.py"
    assert work_unit("tests/infra/test_template.py::test_t") == INFRA_UNIT
    assert work_unit("tests/integration/test_routing.py::test_r") == (
        "tests/integration/test_routing.py"
    )


def test_a_test_on_the_shared_stack_outside_its_unit_is_reported() -> None:
    assert misplaced("tests/e2e/test_admin_e2e.py::t", ["stack", "tmp_path"]) == []
    assert misplaced("tests/e2e/test_demo.py::t", ["stack"]) == ["stack"]
    assert misplaced("tests/integration/test_x.py::t", ["synthesized"]) == ["synthesized"]


def test_the_slow_units_named_first_exist() -> None:
    for unit in SLOW_UNITS_FIRST:
        assert unit in (E2E_STACK_UNIT, INFRA_UNIT) or (REPO_ROOT / unit).is_file(), unit
