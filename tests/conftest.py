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
def faster_in_process_moto() -> Iterator[None]:
    """In-process moto with the local stack's speed-ups that keep its answers
    (infra/local/moto_server.py; each compared with moto's own in
    tests/integration/test_local_moto_server.py):

    - item answers are written as the JSON they already are, not through moto's shape-walking
      serializer (it was most of a request's time);
    - a TransactWriteItems backs up the items it names, not a deep copy of every table it
      touches (half the time of the 1,000-member lifecycle test went to copying the table);
    - string keys are compared as strings first;
    - moto's per-request listing of its own package and inspection of its handler class are
      remembered (their answers never change in a run);
    - a parsed condition expression is kept (moto parsed each three times per item), and a
      parsed update expression (twice per Update);
    - an item's size is summed once, not once per attribute (n^2 for n attributes);
    - item operations' request bodies are read as the JSON they are (moto walked the model).

    Not `indexed_queries`: its bookkeeping needs requests serialized, and a few tests race
    threads on in-process moto."""
    from infra.local.moto_server import (
        cached_conditions,
        cached_update_expressions,
        cheaper_dispatch,
        fast_item_responses,
        fast_string_comparisons,
        items_sized_once,
        journal_transactions,
        json_parameters,
    )

    undos = [
        fast_item_responses(),
        journal_transactions(),
        fast_string_comparisons(),
        cheaper_dispatch(),
        cached_conditions(),
        cached_update_expressions(),
        items_sized_once(),
        json_parameters(),
    ]
    yield
    for undo in reversed(undos):
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
