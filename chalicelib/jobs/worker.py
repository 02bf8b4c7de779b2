"""The SQS worker: one due item per message, processed idempotently.

For each message: find the group's job (chalicelib/jobs/registry.py, via
`registry.current_jobs()`), read the item (one consistent GetItem) and act only if it is still
due for that group (`due_group` matches and `due_at <= now`; anything else is a no-op, e.g. a
redelivery after the action already moved or removed the due attributes), then run the action.
The real actions make that same read and check themselves (`checks_due_itself`), so the worker
leaves it to them instead of reading the item twice.

Chalice has no partial batch response: an exception makes SQS redeliver the whole batch. So the
batch is processed message by message; if any failed, the ones that succeeded are deleted from
the queue here before raising, and only the failed ones come back (after maxReceiveCount
receives they land in the dead-letter queue). Actions are idempotent per message anyway
(conditional writes, Stripe idempotency keys), so a redelivered success changes nothing.

Time: a message against a hung Stripe may take `message_time_budget` (two Stripe calls that give
up, plus DynamoDB). The worker starts no message with less time left than that before its
Lambda's end: the rest go back to the queue ("deferred") instead of the function being killed
midway through a batch.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from chalicelib.adapters.dynamodb.due_index import DueGroup
from chalicelib.adapters.queues import WORKER_TIMEOUT_SECONDS
from chalicelib.adapters.stripe.client import worst_case_call_seconds
from chalicelib.bootstrap import Container, container
from chalicelib.jobs.messages import BatchFailed, DueMessage, Received
from chalicelib.jobs.ports import DueReader
from chalicelib.jobs.registry import ScheduledJob, current_jobs
from chalicelib.observability import correlation, count, flush_metrics, logger

NOT_DUE = "not_due"
DEFERRED = "deferred"
# DynamoDB reads and the one transaction of a message, generously.
MESSAGE_STORE_SECONDS = 2.0


def message_time_budget(stripe_timeout_seconds: float) -> float:
    """The longest one message may take: a charge that answered, then a cancel (or a refund)
    against a Stripe that hangs, plus DynamoDB."""
    return 2 * worst_case_call_seconds(stripe_timeout_seconds) + MESSAGE_STORE_SECONDS


class NoActionForGroup(RuntimeError):
    """The deployed code has no action for a group (retried, then dead-lettered)."""


def still_due(index: DueReader, message: DueMessage, now: datetime) -> bool:
    return index.is_due(message.pk, message.sk, message.group, now)


def process_message(
    box: Container,
    message: DueMessage,
    *,
    now: datetime | None = None,
    jobs: Mapping[DueGroup, ScheduledJob] | None = None,
) -> str:
    """Run the group's action for one due item if it is still due; return the outcome."""
    moment = now or box.clock.now()
    job = (current_jobs() if jobs is None else jobs).get(message.group)
    if job is None:
        raise NoActionForGroup(f"no action registered for due group {message.group!r}")
    if not job.checks_due_itself and not still_due(box.due_index, message, moment):
        return NOT_DUE
    with correlation(community_id=message.community_id, **{job.subject_key: message.subject_id}):
        outcome = job.run(box, message.community_id, message.subject_id, moment, message.snapshot)
        logger.info("scheduled_action", extra={"group": message.group, "outcome": outcome})
    return outcome


def process_batch(
    box: Container, records: Iterable[Received], *, deadline: float | None = None
) -> Counter[str]:
    """Process a received batch; on any failure delete the successes, then raise BatchFailed.
    `deadline` (time.monotonic()): no message starts unless its time budget fits before it;
    those come back from the queue later."""
    outcomes: Counter[str] = Counter()
    done: list[str] = []
    failed: list[str] = []
    errors: list[str] = []
    budget = message_time_budget(box.settings.stripe_timeout_seconds)
    for record in records:
        if deadline is not None and time.monotonic() + budget > deadline:
            failed.append(record.receipt_handle)
            errors.append("deferred: too little time left in this invocation")
            outcomes[DEFERRED] += 1
            continue
        try:
            outcome = process_message(box, DueMessage.from_json(record.body))
        except Exception as error:
            logger.exception("work_message_failed")
            failed.append(record.receipt_handle)
            errors.append(f"{type(error).__name__}: {error}")
            outcomes["failed"] += 1
            continue
        done.append(record.receipt_handle)
        outcomes[outcome] += 1
    for name, value in outcomes.items():
        count("WorkMessages", value, outcome=name)
    if failed:
        _delete(box, done)
        raise BatchFailed(failed, errors, outcomes)
    return outcomes


def _delete(box: Container, receipts: list[str]) -> None:
    for start in range(0, len(receipts), 10):
        chunk = receipts[start : start + 10]
        box.sqs.delete_message_batch(
            QueueUrl=box.settings.work_queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(chunk)],
        )


def handle_sqs_event(event: Iterable[Any]) -> Counter[str]:
    """Entry point of the SQS-triggered Lambda (app.py)."""
    # The function's timeout as deployed (infra/cdk/stack.py), counted from the handler's
    # start. (Not the context's remaining time: chalice's test client reports a 3 s Lambda.)
    deadline = time.monotonic() + WORKER_TIMEOUT_SECONDS
    try:
        records = [Received(r.body, r.receipt_handle) for r in event]
        return process_batch(container(), records, deadline=deadline)
    finally:
        flush_metrics()
