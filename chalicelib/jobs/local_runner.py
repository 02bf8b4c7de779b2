"""Runs the scheduled jobs synchronously, as the local scheduler loop does.

EventBridge fires the sweeps when deployed; locally nothing fires them (chalice local serves
routes only), so this runner calls the same sweep and worker code in one process: every
registered sweep, then the work queue drained through the worker, batch by batch, exactly as
the SQS event source would hand them over (a failed message is left on the queue and comes
back; after maxReceiveCount receives SQS moves it to the dead-letter queue).

`JOBS` lists them: one sweep per schedule of the registry (chalicelib/jobs/registry.py), the
webhook reconciliation, and the worker. This module imports the jobs; none of them imports it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from chalicelib.bootstrap import Container
from chalicelib.jobs.event_publisher import drain_due_deliveries
from chalicelib.jobs.messages import BatchFailed, Received
from chalicelib.jobs.reconciliation import reconciliation_sweep
from chalicelib.jobs.registry import SWEEP_GROUPS
from chalicelib.jobs.sweeps import sweep_job
from chalicelib.jobs.worker import process_batch
from chalicelib.observability import logger

Sweep = Callable[[Container], int]
Worker = Callable[[Container, list[Received]], Counter[str]]

# Locally a failed message is offered again after this long (SQS: the visibility timeout).
LOCAL_RETRY_AFTER_SECONDS = 5


@dataclass
class JobRegistry:
    sweeps: dict[str, Sweep] = field(default_factory=dict)
    worker: Worker | None = None


JOBS = JobRegistry(
    sweeps={
        **{name: sweep_job(name) for name in SWEEP_GROUPS},
        "webhook_reconciliation": reconciliation_sweep,
        # Also run by the local publisher loop every 0.25 s (infra/local/publisher.py).
        "event_deliveries": drain_due_deliveries,
    },
    worker=process_batch,
)


def run_once(container: Container, jobs: JobRegistry = JOBS) -> dict[str, int]:
    """One tick: every sweep, then drain the work queue. Returns messages sent per sweep.

    A sweep that fails is logged and counted as -1; the others still run. While a test-clock
    advance is running its own synchronous pass, the tick is skipped so the two never work on
    the same items at once (the advance reports what it processed).
    """
    if container.settings.test_clock_enabled and container.advance_lease.held():
        return {}
    sent: dict[str, int] = {}
    for name, sweep in jobs.sweeps.items():
        try:
            sent[name] = sweep(container)
        except Exception:
            logger.exception("local_sweep_failed", extra={"sweep": name})
            sent[name] = -1
    if jobs.worker is not None and container.settings.work_queue_url:
        drain_work_queue(container, jobs.worker)
    return sent


def drain_work_queue(
    container: Container,
    worker: Worker,
    *,
    retry_after_seconds: int = LOCAL_RETRY_AFTER_SECONDS,
    max_batches: int = 10_000,
) -> Counter[str]:
    """Receive and process batches until the queue shows nothing; return outcome counts."""
    outcomes: Counter[str] = Counter()
    queue_url = container.settings.work_queue_url
    for _ in range(max_batches):
        messages = container.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=retry_after_seconds,
        ).get("Messages", [])
        if not messages:
            break
        records = [Received(m["Body"], m["ReceiptHandle"]) for m in messages]
        try:
            outcomes.update(worker(container, records))
        except BatchFailed as failure:
            outcomes.update(failure.outcomes)
            continue  # the successes are deleted; the failures come back after the timeout
        container.sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": r.receipt_handle} for i, r in enumerate(records)
            ],
        )
    return outcomes
