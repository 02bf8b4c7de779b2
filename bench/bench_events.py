"""Events to the platform (issue 13): what the outbox costs the change paths, how fast the
local stack delivers, how many events one publisher delivers per second.

- `events_ddb_requests_added_per_change`: DynamoDB requests of each state change of a lifecycle
  (plan create/update, subscription create/activate/cancel/resume, member add/remove) through
  the HTTP API on this tree minus the same on the baseline tree (`BENCH_BASELINE_TREE`,
  default /work/main), summed over the steps (bench/event_request_counts.py, run in a
  subprocess per tree). Goal 0: the outbox item rides in the change's own request.
- `events_local_delivery_p50_ms` / `_p99_ms`: on a local stack (`make run`'s processes, own
  ports), from the API's answer to a change (a plan PATCH) to the receiver holding the signed
  delivery; `EVENTS_LATENCY_SAMPLES` samples (default 40), one at a time.
- `events_publisher_events_per_second`: one publisher (`publish_now`: outbox -> event log ->
  queue -> signed POST to a local receiver -> attempt recorded) draining
  `EVENTS_THROUGHPUT_EVENTS` (default 200) pending events, one per change, in-process moto;
  `events_publisher_ddb_requests_per_event`: the DynamoDB requests that took.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
COUNTS_SCRIPT = REPO_ROOT / "bench" / "event_request_counts.py"


def run() -> dict[str, float | int | str]:
    figures: dict[str, float | int | str] = {}
    figures.update(_requests_added())
    figures.update(_throughput())
    figures.update(_local_latency())
    return figures


def _counts(tree: Path, stripe_url: str) -> dict[str, dict[str, int]]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(
        [sys.executable, str(COUNTS_SCRIPT), stripe_url],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    counts: dict[str, dict[str, int]] = json.loads(done.stdout.strip().splitlines()[-1])
    return counts


def _requests_added() -> dict[str, float | int | str]:
    from infra.local.stack import standalone_localstripe

    baseline = Path(os.environ.get("BENCH_BASELINE_TREE", "/work/main"))
    if not (baseline / "chalicelib").is_dir():
        return {"events_ddb_requests_added_per_change": "n/a (no baseline tree)"}
    with standalone_localstripe() as stripe_url:
        ours = _counts(REPO_ROOT, stripe_url)
        theirs = _counts(baseline, stripe_url)
    added = {step: sum(ours[step].values()) - sum(theirs.get(step, {}).values()) for step in ours}
    return {
        "events_ddb_requests_added_per_change": max(added.values()),
        "events_ddb_requests_added_total": sum(added.values()),
        "events_state_changes_measured": len(added),
        "events_ddb_requests_per_change": json.dumps(
            {step: sum(ops.values()) for step, ops in ours.items()}, sort_keys=True
        ),
    }


def _throughput() -> dict[str, float | int | str]:
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106
        AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_LOG_LEVEL="ERROR",
        BILLING_STAGE="test",
        BILLING_TABLE_NAME="membership-billing-bench-events",
        BILLING_PLATFORM_API_KEY="bench-platform-key",
        BILLING_EVENT_BUS_NAME="",
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from datetime import UTC, datetime

    from chalice.test import Client
    from moto import mock_aws

    from chalicelib import bootstrap
    from chalicelib.adapters.aws import reset_clients
    from chalicelib.adapters.clock import FixedClock
    from chalicelib.adapters.dynamodb.schema import ensure_table
    from chalicelib.config import Settings
    from chalicelib.jobs.event_publisher import publish_now
    from tests.support.receiver import Receiver

    events = int(os.environ.get("EVENTS_THROUGHPUT_EVENTS", "200"))
    receiver = Receiver().up()
    try:
        with mock_aws():
            reset_clients()
            settings = Settings.from_env()
            container = bootstrap.Container(
                settings, clock=FixedClock(datetime(2026, 1, 15, tzinfo=UTC))
            )
            ensure_table(container.dynamodb, settings.table_name)
            bootstrap.override_container(container)
            from app import app

            with Client(app) as client:

                def call(method: str, path: str, key: str, body: Any) -> Any:
                    response = getattr(client.http, method)(
                        path,
                        body=json.dumps(body),
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    assert response.status_code in (200, 201), response.body
                    return json.loads(response.body)

                created = call("post", "/v1/communities", "bench-platform-key", {"name": "B"})
                key = created["api_key"]["secret"]
                call(
                    "post",
                    "/v1/webhook-endpoints",
                    key,
                    {"url": receiver.url, "enabled_events": ["*"]},
                )
                plan = call("post", "/v1/plans", key, {"name": "P0", "prices": {"month": 100}})
                for index in range(1, events):
                    call("patch", f"/v1/plans/{plan['id']}", key, {"name": f"P{index}"})
                requests = [0]

                def count(**_: Any) -> None:
                    requests[0] += 1

                container.dynamodb.meta.events.register("before-call.dynamodb.*", count)
                started = time.perf_counter()
                while len(receiver.received) < events:
                    publish_now(container)
                elapsed = time.perf_counter() - started
            bootstrap.override_container(None)
            reset_clients()
    finally:
        receiver.down()
    return {
        "events_publisher_events": events,
        "events_publisher_events_per_second": round(events / elapsed, 1),
        "events_publisher_ddb_requests_per_event": round(requests[0] / events, 2),
    }


def _local_latency() -> dict[str, float | int | str]:
    import urllib.request

    from infra.local.stack import LocalStack, StackConfig, free_port
    from tests.support.receiver import Receiver

    samples = int(os.environ.get("EVENTS_LATENCY_SAMPLES", "40"))
    config = StackConfig(
        billing_port=free_port(),
        stripe_port=free_port(),
        moto_port=free_port(),
        platform_api_key="bench-platform-key",
        run_scheduler=False,
        log_dir=REPO_ROOT / ".local-stack" / "bench-events-logs",
    )
    receiver = Receiver().up()

    def call(method: str, path: str, key: str, body: Any) -> Any:
        request = urllib.request.Request(
            f"{config.api_url}{path}",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    latencies: list[float] = []
    try:
        with LocalStack(config):
            created = call("POST", "/v1/communities", "bench-platform-key", {"name": "Lat"})
            key = created["api_key"]["secret"]
            call(
                "POST", "/v1/webhook-endpoints", key, {"url": receiver.url, "enabled_events": ["*"]}
            )
            plan = call("POST", "/v1/plans", key, {"name": "L0", "prices": {"month": 100}})
            _wait(lambda: len(receiver.received) >= 1, 30)
            for index in range(1, samples + 1):
                call("PATCH", f"/v1/plans/{plan['id']}", key, {"name": f"L{index}"})
                answered = time.perf_counter()
                _wait(lambda n=index: len(receiver.received) >= n + 1, 30)
                latencies.append((time.perf_counter() - answered) * 1000)
    finally:
        receiver.down()
    ordered = sorted(latencies)
    return {
        "events_local_delivery_samples": len(ordered),
        "events_local_delivery_p50_ms": round(statistics.median(ordered), 1),
        "events_local_delivery_p99_ms": round(
            ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1
        ),
        "events_local_delivery_max_ms": round(ordered[-1], 1),
    }


def _wait(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the receiver did not get the event")
        time.sleep(0.005)
