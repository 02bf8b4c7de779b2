"""The test clock's search for the next due time reads the due index in batches: an advance
through many due times costs about one Query per step (its sweep), not one per partition."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.dynamodb.due_index import DUE_GROUPS, DUE_INDEX
from chalicelib.jobs.registry import Action, override_jobs
from tests.integration.conftest import START, Env
from tests.integration.scheduling_fakes import PERIOD, FakeBilling

SUBSCRIPTIONS = 40


@dataclass
class Clocked:
    env: Env
    box: bootstrap.Container
    billing: FakeBilling


def clocked_with(env: Env, threads: int) -> Iterator[Clocked]:
    settings = replace(env.settings, test_clock_enabled=True, test_clock_concurrency=threads)
    box = bootstrap.Container(settings, clock=env.clock)
    billing = FakeBilling(box)
    override_jobs(billing.jobs())
    bootstrap.override_container(box)
    yield Clocked(env, box, billing)
    override_jobs(None)


@pytest.fixture
def clocked(env: Env) -> Iterator[Clocked]:
    yield from clocked_with(env, threads=1)


@pytest.fixture
def clocked_concurrently(env: Env) -> Iterator[Clocked]:
    """Concurrently, as the local stack runs (BILLING_TEST_CLOCK_CONCURRENCY=4; 8 here)."""
    yield from clocked_with(env, threads=8)


class Queries:
    """Counts DynamoDB requests with a botocore event hook, and apart the Queries of the due
    index (the scheduler's; the advance also reads other indexes, e.g. to publish events)."""

    def __init__(self, client: Any) -> None:
        self.ops: Counter[str] = Counter()
        self.due_index_queries = 0
        client.meta.events.register("before-call.dynamodb.*", self._count)
        # (before-parameter-build sees the API parameters; before-call the serialized request)
        client.meta.events.register("before-parameter-build.dynamodb.Query", self._query)

    def _count(self, model: Any, **_: Any) -> None:
        self.ops[model.name] += 1

    def _query(self, params: dict[str, Any], **_: Any) -> None:
        if params.get("IndexName") == DUE_INDEX:
            self.due_index_queries += 1


def advance(clocked: Clocked, days: int) -> Any:
    """POST /v1/test-clock/advance by `days`; the answer, checked 200."""
    got = clocked.env.client.http.post(
        "/v1/test-clock/advance",
        headers=clocked.env.platform_headers(),
        body=json.dumps({"days": days}),
    )
    assert got.status_code == 200, got.json_body
    return got


def test_an_advance_through_many_due_times_queries_once_per_step(clocked: Clocked) -> None:
    billing = clocked.billing
    due_times = [START + timedelta(hours=1, minutes=7 * i) for i in range(SUBSCRIPTIONS)]
    for i, due in enumerate(due_times):
        billing.add(f"sub_{i:03d}", "renewal", due)
    queries = Queries(clocked.box.dynamodb)

    got = advance(clocked, days=65)
    # Each renews at its due time, again one period later and again two periods later.
    assert got.json_body["processed"]["renewed"] == 3 * SUBSCRIPTIONS
    expected = sorted(
        (due + n * PERIOD, f"sub_{i:03d}") for i, due in enumerate(due_times) for n in range(3)
    )
    assert [(now, sub) for sub, _, now in billing.history] == expected
    steps = len(expected)
    first_load = len(DUE_GROUPS) * clocked.box.settings.due_index_shards
    # One sweep Query per step; once per partition: the first load of the frontier (which
    # finds what is already due too) and the pass at the target. (Re-reading every group of
    # the step's shard after each step made it 4 x steps more: 792 here; a pass at the start
    # read every partition once more.)
    due_queries = queries.due_index_queries
    assert steps <= due_queries <= steps + 2 * first_load, (due_queries, queries.ops)


def test_what_is_already_due_runs_at_the_advances_start_in_its_first_step(
    clocked: Clocked,
) -> None:
    billing = clocked.billing
    billing.add("sub_overdue", "renewal", START - timedelta(hours=2))
    billing.add("sub_later", "renewal", START + timedelta(hours=3))
    queries = Queries(clocked.box.dynamodb)

    advance(clocked, days=1)
    assert [(now, sub) for sub, _, now in billing.history] == [
        (START, "sub_overdue"),
        (START + timedelta(hours=3), "sub_later"),
    ]
    partitions = len(DUE_GROUPS) * clocked.box.settings.due_index_shards
    assert queries.due_index_queries <= 2 + 2 * partitions, queries.due_index_queries


class Overlap:
    """What a renewal action saw: the clock as it read it, and how many ran at once."""

    def __init__(self, box: bootstrap.Container, renew: Action) -> None:
        self.box = box
        self.renew = renew
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.clock_seen: dict[str, datetime] = {}

    def action(
        self, box: bootstrap.Container, community_id: str, sub_id: str, now: datetime
    ) -> str:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.clock_seen[sub_id] = box.clock.now()
        try:
            time.sleep(0.05)  # long enough for the others of its step to start meanwhile
            return self.renew(box, community_id, sub_id, now)
        finally:
            with self.lock:
                self.running -= 1


def test_due_times_within_one_sweep_interval_run_together_each_at_its_own_time(
    clocked_concurrently: Clocked,
) -> None:
    clocked = clocked_concurrently
    billing = clocked.billing
    # 24 renewals 10 s apart: all within one renewal-sweep interval (5 minutes).
    due_times = [START + timedelta(hours=1, seconds=10 * i) for i in range(24)]
    for i, due in enumerate(due_times):
        billing.add(f"sub_{i:03d}", "renewal", due)
    jobs = billing.jobs()
    renew = jobs["renewal"].action
    assert renew is not None
    overlap = Overlap(clocked.box, renew)
    override_jobs({**jobs, "renewal": jobs["renewal"].with_action(overlap.action)})
    queries = Queries(clocked.box.dynamodb)

    got = advance(clocked, days=1)
    assert got.json_body["processed"]["renewed"] == 24
    # Each ran at its own due time, and read that time from the clock too.
    assert sorted((now, sub) for sub, _, now in billing.history) == [
        (due, f"sub_{i:03d}") for i, due in enumerate(due_times)
    ]
    assert overlap.clock_seen == {f"sub_{i:03d}": due for i, due in enumerate(due_times)}
    # ... in one step, on several threads (one step per due time ran them one by one,
    # with a sweep Query each: 24 and more).
    assert overlap.most > 1
    partitions = len(DUE_GROUPS) * clocked.box.settings.due_index_shards
    assert queries.due_index_queries <= 5 * partitions, queries.due_index_queries
