"""Runs the scheduled jobs synchronously, as the local scheduler loop and the test clock do.

EventBridge fires the sweeps when deployed; locally nothing fires them (chalice local serves
routes only), so this runner calls the same sweep and worker code in one process: every
registered sweep, then the work queue drained through the worker until it is empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.bootstrap import Container

Sweep = Callable[[Container], int]
Worker = Callable[[Container, dict[str, Any]], None]


@dataclass
class JobRegistry:
    sweeps: dict[str, Sweep] = field(default_factory=dict)
    worker: Worker | None = None

    def sweep(self, name: str) -> Callable[[Sweep], Sweep]:
        def register(fn: Sweep) -> Sweep:
            self.sweeps[name] = fn
            return fn

        return register


JOBS = JobRegistry()


def run_once(container: Container) -> dict[str, int]:
    """One tick: every sweep, then drain the work queue. Returns messages sent per sweep."""
    sent = {name: sweep(container) for name, sweep in JOBS.sweeps.items()}
    if JOBS.worker is not None and container.settings.work_queue_url:
        drain_work_queue(container, JOBS.worker)
    return sent


def drain_work_queue(container: Container, worker: Worker) -> int:
    import json

    processed = 0
    queue_url = container.settings.work_queue_url
    while True:
        messages = container.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return processed
        for message in messages:
            worker(container, json.loads(message["Body"]))
            container.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            processed += 1
