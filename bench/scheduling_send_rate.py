"""How fast a deployed sweep queues what is due, and so how long a million due renewals take
to reach the work queue (bench/README.md, "Scheduling at scale").

In-process moto stands in for DynamoDB, with the network's latency added to every request (a
`before-send` hook that sleeps DYNAMODB_LATENCY_SECONDS per Query page and cursor request;
moto answers one request at a time, bench/moto_threads.py, and the sleep is outside that lock,
as the network would be). The work queue is `LatencyQueue`: SQS_LATENCY_SECONDS per request,
nothing kept (moto's SQS recounts every message of the queue on each message it adds, so its
time grows with the square of what a sweep sends). Latencies are in-region p50s. One renewal
sweep (the real `sweep` and `sqs_sink`, spacing and cursors on) sends DUE renewals of
COMMUNITIES communities; its rate times the work a tick has (its Lambda's timeout less the
sweep's safety margin) is what a tick queues.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

SHARDS = 16
DUE = 20_000
COMMUNITIES = 200
SQS_LATENCY_SECONDS = 0.015
DYNAMODB_LATENCY_SECONDS = 0.025
T0 = datetime(2027, 1, 1, tzinfo=UTC)
BACKLOG = 1_000_000


def send_rate_figures() -> dict[str, float | int | str]:
    from moto import mock_aws

    from bench.moto_threads import moto_for_threads

    fake_credentials = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    os.environ.update({**fake_credentials, "AWS_DEFAULT_REGION": "us-east-1"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws(), moto_for_threads():
        return _send_rate_figures()


def _send_rate_figures() -> dict[str, float | int | str]:
    from bench.bench_scheduling import write_due_subscriptions
    from chalicelib.adapters.aws import reset_clients
    from chalicelib.adapters.clock import FixedClock
    from chalicelib.adapters.dynamodb.schema import ensure_table
    from chalicelib.adapters.queues import ensure_queues
    from chalicelib.bootstrap import Container
    from chalicelib.config import Settings
    from chalicelib.jobs import schedules
    from chalicelib.jobs.sweeps import LAMBDA_SAFETY_SECONDS, sweep

    reset_clients()
    base = Settings.from_env({"BILLING_STAGE": "bench", "BILLING_DUE_INDEX_SHARDS": str(SHARDS)})
    queues = ensure_queues(Container(base).sqs, "bench")
    settings = replace(base, table_name="bench-send-rate", work_queue_url=queues["work_queue_url"])
    box = Container(settings, clock=FixedClock(T0))
    ensure_table(box.dynamodb, settings.table_name)
    write_due_subscriptions(
        box.dynamodb,
        settings.table_name,
        (
            (f"com_r{i % COMMUNITIES:04d}", f"sub_r{i:07d}", T0 - timedelta(seconds=DUE - i))
            for i in range(DUE)
        ),
        SHARDS,
    )
    queue = LatencyQueue()
    box.sqs = queue  # the container's cached client, replaced
    box.dynamodb.meta.events.register_first("before-send", _sleeper(DYNAMODB_LATENCY_SECONDS))
    started = time.perf_counter()
    result = sweep(box, ("renewal",), now=T0)
    seconds = time.perf_counter() - started
    assert result.sent == DUE == queue.messages, (result.sent, queue.messages)
    rate = DUE / seconds
    period = schedules.RENEWALS_EVERY_MINUTES * 60
    work = schedules.sweep_timeout_seconds(period) - LAMBDA_SAFETY_SECONDS
    per_tick = rate * work
    ticks = math.ceil(BACKLOG / per_tick)
    reset_clients()
    return {
        "sweep_messages_per_second": round(rate),
        "sweep_work_seconds_per_renewal_tick": work,
        "sweep_messages_per_renewal_tick": round(per_tick),
        "sweep_hours_to_queue_1m_renewals": round(ticks * schedules.RENEWALS_EVERY_MINUTES / 60, 2),
    }


class LatencyQueue:
    """The two SQS requests a sweep makes, answered after SQS_LATENCY_SECONDS: an empty queue
    (so the sweep reads every shard from its start) that accepts every message."""

    def __init__(self) -> None:
        self.messages = 0
        self._lock = threading.Lock()

    def get_queue_attributes(self, **_: Any) -> dict[str, Any]:
        time.sleep(SQS_LATENCY_SECONDS)
        return {"Attributes": {"ApproximateNumberOfMessages": "0"}}

    def send_message_batch(self, Entries: list[dict[str, Any]], **_: Any) -> dict[str, Any]:  # noqa: N803
        time.sleep(SQS_LATENCY_SECONDS)
        with self._lock:
            self.messages += len(Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def _sleeper(seconds: float) -> Any:
    def sleep(**_: Any) -> None:
        time.sleep(seconds)

    return sleep
