"""Scheduling at scale (DESIGN.md section 8): what a sweep reads, and what a renewal costs.

Sweep figures, on in-process moto with the real table definition and queues:
- `sweep_items_read_per_due_10k` / `_100k`: items DynamoDB returned to the renewal sweep
  (Query pages, cursor reads), divided by the subscriptions that were due, with 1% due in a
  table of 10,000 / 100,000 subscriptions that ALL carry a renewal due date (the realistic
  case: every active subscription is in the due index, 99% of them due later).
  `sweep_items_read_per_due` is the worse of the two.
- `sweep_time_ratio_100k_vs_10k`: the sweep's own CPU time (our code and the SDK: building,
  sending and parsing the Queries, making the messages) over 1,000 due subscriptions in the
  100k table, divided by the same 1,000-due sweep in the 10k table (there at 10% due). Same
  due count, 10x the table: ~1 means the cost follows what is due. The emulator's own time is
  left out (measured between `before-send` and `before-parse`) because moto answers a GSI
  Query by walking every item of the table in Python, which DynamoDB does not do; that raw
  figure is reported beside it as `sweep_time_ratio_100k_vs_10k_moto_wall`.
Counts come from a botocore event hook: moto reports constant ConsumedCapacity.

Send-rate figures (`sweep_messages_per_second`, `sweep_messages_per_renewal_tick`,
`sweep_hours_to_queue_1m_renewals`): bench/scheduling_send_rate.py.

Renewal figures (`ddb_requests_per_renewal`, `stripe_calls_per_renewal`,
`renewals_per_second_one_worker`) run the real renewal action through the worker against
localstripe; see `renewal_figures`.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.request_counters import BackendTimer, DynamoCounter

SHARDS = 16
COMMUNITY = "com_bench"
T0 = datetime(2027, 1, 1, tzinfo=UTC)
SPREAD = timedelta(days=100)  # due dates spread evenly: 1% due at T0 + 1 day
TIMING_RUNS = 2
RATIO_DUE = 1000  # the same due count in both tables: 10% of 10k, 1% of 100k


def load_subscriptions(ddb: Any, table: str, count: int) -> None:
    """`count` subscription items, each with a renewal due date, written 25 at a time."""
    step = SPREAD / count
    write_due_subscriptions(
        ddb,
        table,
        ((COMMUNITY, f"sub_b{i:07d}", T0 + step * (i + 1)) for i in range(count)),
        SHARDS,
    )


def write_due_subscriptions(
    ddb: Any, table: str, subscriptions: Iterable[tuple[str, str, datetime]], shards: int
) -> None:
    """Active subscription items (community id, subscription id, renewal due at), each on the
    due index, written 25 at a time."""
    from chalicelib.adapters.dynamodb.due_index import due_attributes

    batch: list[dict[str, Any]] = []
    for community_id, sub_id, due_at in subscriptions:
        due = due_attributes(sub_id, "renewal", due_at, shards)
        item = {
            "pk": {"S": f"C#{community_id}#SUB#{sub_id}"},
            "sk": {"S": "SUB"},
            "id": {"S": sub_id},
            "status": {"S": "active"},
            "version": {"N": "3"},
            **{name: {"S": value} for name, value in due.items()},
        }
        batch.append({"PutRequest": {"Item": item}})
        if len(batch) == 25:
            _write(ddb, table, batch)
    _write(ddb, table, batch)


def _write(ddb: Any, table: str, batch: list[dict[str, Any]]) -> None:
    if not batch:
        return
    pending = {table: list(batch)}
    while pending:
        pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
    batch.clear()


def sweep_figures() -> dict[str, float | int | str]:
    from moto import mock_aws

    fake_credentials = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    os.environ.update({**fake_credentials, "AWS_DEFAULT_REGION": "us-east-1"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        return _sweep_figures()


def _sweep_figures() -> dict[str, float | int | str]:
    from chalicelib.adapters.aws import reset_clients
    from chalicelib.adapters.clock import FixedClock
    from chalicelib.adapters.dynamodb.schema import ensure_table
    from chalicelib.adapters.queues import ensure_queues
    from chalicelib.bootstrap import Container
    from chalicelib.config import Settings
    from chalicelib.jobs.sweeps import sweep

    reset_clients()
    base = Settings.from_env({"BILLING_STAGE": "bench", "BILLING_DUE_INDEX_SHARDS": str(SHARDS)})
    queues = ensure_queues(Container(base).sqs, "bench")
    boxes: dict[int, Container] = {}
    load_seconds: dict[int, float] = {}
    for size in (10_000, 100_000):
        settings = replace(
            base, table_name=f"bench-{size}", work_queue_url=queues["work_queue_url"]
        )
        box = Container(settings, clock=FixedClock(T0))
        ensure_table(box.dynamodb, settings.table_name)
        started = time.perf_counter()
        load_subscriptions(box.dynamodb, settings.table_name, size)
        load_seconds[size] = time.perf_counter() - started
        boxes[size] = box
    counter = DynamoCounter(boxes[10_000].dynamodb)  # one cached client serves both tables
    sqs = boxes[10_000].sqs
    backend = BackendTimer(boxes[10_000].dynamodb, sqs)
    runs = iter(range(1_000_000))

    def one_sweep(size: int, due: int, to_sqs: bool) -> tuple[int, int, float, float]:
        """(sent, items read, wall seconds, client-side CPU seconds) of one renewal sweep."""
        now = T0 + SPREAD * due / size  # due dates are spread evenly: exactly `due` are due
        box = boxes[size]
        sink = None if to_sqs else _discard
        if to_sqs:  # a fresh, empty queue per run (SQS allows one purge a minute)
            url = sqs.create_queue(QueueName=f"bench-work-{next(runs)}")["QueueUrl"]
            box = Container(replace(box.settings, work_queue_url=url), clock=FixedClock(now))
        counter.reset()
        backend.seconds = 0.0
        gc.collect()
        gc.disable()  # a collection of moto's object graph would land on whichever run
        try:
            started, cpu_started = time.perf_counter(), time.thread_time()
            result = sweep(box, ("renewal",), now=now, sink=sink)
            wall, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
        finally:
            gc.enable()
        if to_sqs:
            sqs.delete_queue(QueueUrl=box.settings.work_queue_url)
        assert result.sent == due, (size, due, result.sent)
        return result.sent, sum(counter.items.values()), wall, cpu - backend.seconds

    figures: dict[str, float | int | str] = {}
    sent, items, _, _ = one_sweep(10_000, 100, to_sqs=True)  # 1% due, through SQS
    figures["sweep_items_read_per_due_10k"] = round(items / sent, 4)
    small = [one_sweep(10_000, RATIO_DUE, to_sqs=False) for _ in range(TIMING_RUNS + 3)]
    large = [one_sweep(100_000, RATIO_DUE, to_sqs=False) for _ in range(TIMING_RUNS)]
    figures["sweep_items_read_per_due_100k"] = round(large[0][1] / large[0][0], 4)  # 1% due
    figures["sweep_items_read_per_due"] = max(
        float(figures["sweep_items_read_per_due_10k"]),
        float(figures["sweep_items_read_per_due_100k"]),
    )
    figures["sweep_dynamodb_requests_100k"] = sum(counter.requests.values())
    figures["sweep_scans"] = counter.requests["Scan"]
    small_client, large_client = min(r[3] for r in small), min(r[3] for r in large)
    small_wall, large_wall = min(r[2] for r in small), min(r[2] for r in large)
    figures["sweep_time_ratio_100k_vs_10k"] = round(large_client / small_client, 3)
    figures["sweep_client_cpu_seconds_1000_due_10k"] = round(small_client, 4)
    figures["sweep_client_cpu_seconds_1000_due_100k"] = round(large_client, 4)
    figures["sweep_time_ratio_100k_vs_10k_moto_wall"] = round(large_wall / small_wall, 3)
    figures["bench_load_seconds_100k"] = round(load_seconds[100_000], 1)
    reset_clients()
    return figures


def _discard(batch: list[Any]) -> None:
    del batch


def renewal_figures() -> dict[str, float | int | str]:
    from bench.scheduling_renewals import renewal_figures as measure

    return measure()


def send_rate_figures() -> dict[str, float | int | str]:
    from bench.scheduling_send_rate import send_rate_figures as measure

    return measure()


def run() -> dict[str, float | int | str]:
    figures = sweep_figures()
    figures.update(send_rate_figures())
    figures.update(renewal_figures())
    return figures
