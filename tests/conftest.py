"""Shared test settings: no test ever talks to real AWS or real Stripe."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MembershipBilling")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")


@pytest.fixture(scope="session", autouse=True)
def moto_item_answers_as_json() -> Iterator[None]:
    """In-process moto answers item operations with the JSON they already are, not through
    its shape-walking serializer (infra/local/moto_server.py: the same bodies, compared in
    tests/integration/test_local_moto_server.py; it was most of a request's time)."""
    from infra.local.moto_server import fast_item_responses

    undo = fast_item_responses()
    yield
    undo()


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
