"""Shared test settings: no test ever talks to real AWS or real Stripe."""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MembershipBilling")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`-n 2 --dist loadfile`: files per worker, plus the cross-file units of xdist_units.py."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.support.xdist_units import FileUnitScheduling

    return FileUnitScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return
    from tests.support.xdist_units import misplaced

    for item in items:
        wrong = misplaced(item.nodeid, list(getattr(item, "fixturenames", ())))
        if wrong:
            raise pytest.UsageError(
                f"{item.nodeid} uses {wrong} outside its xdist work unit "
                "(tests/support/xdist_units.py)"
            )
