"""The SQS worker: one due item per message, processed idempotently.

For each message: find the group's job (chalicelib/jobs/registry.py, via
`registry.current_jobs()`), read the item (one consistent GetItem) and act only if it is still
due for that group (`due_group` matches and `due_at <= now`; anything else is a no-op, e.g. a
redelivery after the action already moved or removed the due attributes), then run the action.
The real actions make that same read and check themselves (`checks_due_itself`), so the worker
leaves it to them instead of reading the item twice.

A batch's messages run concurrently on WORKER_THREADS threads (the work waits on Stripe and
DynamoDB; boto3 clients are thread-safe). The Lambda answers with SQS's partial batch response
(`batchItemFailures`): only the failed messages come back (after maxReceiveCount receives they
land in the dead-letter queue). The local runner (`process_batch`) deletes the successes itself
and raises BatchFailed. Actions are idempotent per message anyway (conditional writes, Stripe
idempotency keys), so a redelivered success changes nothing.

Rate control (DESIGN.md): a message whose Stripe account has no slot within the budget's short
wait (`Deferred`) is sent to the queue again as a new message, delayed until the slot the
budget expects to have for it (`retry_after`: the account's next free slot, each deferral one
slot later), so a deferral never counts towards maxReceiveCount, never holds a thread, and
never leaves the account's slots unused behind an exponential back-off; so is a message whose
`not_before` (the sweep's spacing per community) is still ahead.

Time: a message against a hung Stripe may take `message_time_budget` (two Stripe calls that give
up, plus DynamoDB). The worker starts no message with less time left than that before its
Lambda's end: the rest go back to the queue ("deferred") instead of the function being killed
midway through a batch.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from chalicelib.adapters.dynamodb.due_index import DueGroup
from chalicelib.adapters.queues import WORKER_TIMEOUT_SECONDS
from chalicelib.adapters.stripe.client import worst_case_call_seconds
from chalicelib.bootstrap import Container, container
from chalicelib.domain.rate_control import LIVE_LIMITS, Deferred
from chalicelib.jobs.messages import BatchFailed, DueMessage, Received
from chalicelib.jobs.ports import DueReader
from chalicelib.jobs.registry import ScheduledJob, current_jobs
from chalicelib.jobs.schedules import WORKER_THREADS
from chalicelib.observability import correlation, count, flush_metrics, logger

NOT_DUE = "not_due"
DEFERRED = "deferred"  # not started: too little time left in the invocation (comes back)
RATE_DEFERRED = "rate_deferred"  # its account's Stripe budget had no slot: sent back, later
WAITING = "waiting"  # its `not_before` is still ahead: sent on again
# SQS's longest message delay.
MAX_DELAY_SECONDS = 900
DEFER_BASE_SECONDS = 2.0
MIN_DEFER_SECONDS = 1.0
# A charge a 429 left in flight comes back within this (far inside RESUME_WINDOW).
RESUME_DELAY_MAX_SECONDS = 15.0
# A message deferred this often fails instead (then the DLQ after maxReceiveCount).
MAX_DEFERRALS = 40
# A message whose `not_before` is this close runs now (the budget paces it anyway).
NOT_BEFORE_SLACK = 1.0
# DynamoDB reads and the one transaction of a message, generously.
MESSAGE_STORE_SECONDS = 2.0


def message_time_budget(stripe_timeout_seconds: float) -> float:
    """The longest one message may take: the wait for its Stripe slot (twice: a token whose
    slot passed while the charge's writes ran is exchanged for the next), a charge that
    answered, then a cancel (or a refund) against a Stripe that hangs, plus DynamoDB."""
    return (
        2 * LIVE_LIMITS.max_wait_seconds
        + 2 * worst_case_call_seconds(stripe_timeout_seconds)
        + MESSAGE_STORE_SECONDS
    )


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


@dataclass
class BatchResult:
    outcomes: Counter[str] = field(default_factory=Counter)
    failed: list[Received] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    done: list[Received] = field(default_factory=list)


def handle_batch(
    box: Container,
    records: Iterable[Received],
    *,
    deadline: float | None = None,
    threads: int = WORKER_THREADS,
    wall: Callable[[], float] = time.time,
) -> BatchResult:
    """Run a batch's messages concurrently (`threads`; the work waits on Stripe and DynamoDB).

    Per message: "done" (acted on, or sent back to the queue as a new message: deferred by the
    Stripe budget or not yet at its `not_before`) or "failed" (it raised, or no time was left).
    Nothing is deleted here: the caller does that (SQS's partial batch response, or the local
    runner)."""
    result = BatchResult()
    budget = message_time_budget(box.settings.stripe_timeout_seconds)
    box.sqs  # noqa: B018 (the shared client, made once before the threads start)
    lock = threading.Lock()

    def run(record: Received) -> None:
        error: str | None
        if deadline is not None and time.monotonic() + budget > deadline:
            outcome, error = DEFERRED, "deferred: too little time left in this invocation"
        else:
            outcome, error = _run_one(box, record, wall)
        with lock:
            result.outcomes[outcome] += 1
            if error is None:
                result.done.append(record)
            else:
                result.failed.append(record)
                result.errors.append(error)

    batch = list(records)
    if threads <= 1 or len(batch) <= 1:
        for record in batch:
            run(record)
    else:
        with ThreadPoolExecutor(max_workers=min(threads, len(batch))) as pool:
            list(pool.map(run, batch))
    for name, value in result.outcomes.items():
        # One metric per outcome (a failed message must be countable on its own).
        count(f"WorkMessages_{name}", value)
    return result


def _run_one(box: Container, record: Received, wall: Callable[[], float]) -> tuple[str, str | None]:
    """(outcome, None) or ("failed"/DEFERRED, why) for one message; every line it logs names the
    message (SQS's id) and, once it is read, its group, community and subject."""
    with correlation(message_id=record.message_id):
        try:
            message = DueMessage.from_json(record.body)
        except Exception as error:
            return _failed(error)
        with correlation(
            due_group=message.group,
            community_id=message.community_id,
            subject_id=message.subject_id,
        ):
            try:
                return _run_message(box, message, wall)
            except Exception as error:
                return _failed(error)


def _failed(error: Exception) -> tuple[str, str]:
    logger.exception("work_message_failed")
    return "failed", f"{type(error).__name__}: {error}"


def _run_message(
    box: Container, message: DueMessage, wall: Callable[[], float]
) -> tuple[str, str | None]:
    if message.not_before is not None and message.not_before - wall() > NOT_BEFORE_SLACK:
        _send_back(box, message, message.not_before - wall(), deferred=False)
        return WAITING, None
    try:
        return process_message(box, message), None
    except Deferred as deferral:
        if message.deferrals >= MAX_DEFERRALS:
            raise
        delay = deferral_delay(
            message.deferrals, resume=deferral.written, retry_after=deferral.retry_after
        )
        _send_back(box, message, delay, deferred=True)
        logger.info(
            "work_message_deferred",
            extra={
                "reason": deferral.reason,
                "delay_s": round(delay, 1),
                "deferrals": message.deferrals + 1,
            },
        )
        return RATE_DEFERRED, None


def deferral_delay(deferrals: int, *, resume: bool, retry_after: float | None = None) -> float:
    """How long a deferred message waits: until the slot its account's budget expects to have
    for it (`retry_after`, at least a second so that it never spins), else a jittered
    exponential back-off from one bucket window. A charge in flight (`resume`) comes back
    within seconds either way, so that it is sent again well inside RESUME_WINDOW."""
    ceiling = RESUME_DELAY_MAX_SECONDS if resume else MAX_DELAY_SECONDS
    if retry_after is not None:
        return min(ceiling, max(MIN_DEFER_SECONDS, retry_after))
    delay = min(ceiling, DEFER_BASE_SECONDS * 2.0**deferrals)
    return float(delay * random.uniform(0.5, 1.0))


def _send_back(box: Container, message: DueMessage, delay: float, *, deferred: bool) -> None:
    """Put the message on the queue again as a new message, `delay` seconds on (at most SQS's
    15 minutes; a longer wait is its `not_before`, the next worker sends it on again). A new
    message, not a visibility change, so waiting never counts towards maxReceiveCount. The
    snapshot is dropped: the subscription may have changed (a charge in flight) by then."""
    again = replace(
        message,
        snapshot=None,
        deferrals=message.deferrals + (1 if deferred else 0),
        not_before=None if delay <= MAX_DELAY_SECONDS else message.not_before,
    )
    box.sqs.send_message(
        QueueUrl=box.settings.work_queue_url,
        MessageBody=again.to_json(),
        # Rounded down, as the sweep does: back at its slot or up to a second before it (the
        # budget's wait does the rest), never after it.
        DelaySeconds=max(0, min(MAX_DELAY_SECONDS, math.floor(delay))),
    )


def process_batch(
    box: Container,
    records: Iterable[Received],
    *,
    deadline: float | None = None,
    threads: int = 1,
) -> Counter[str]:
    """Process a received batch; on any failure delete the successes, then raise BatchFailed.
    `deadline` (time.monotonic()): no message starts unless its time budget fits before it;
    those come back from the queue later. The local runner's way: one thread by default (moto,
    the local DynamoDB, is not thread-safe; the Lambda runs WORKER_THREADS)."""
    result = handle_batch(box, records, deadline=deadline, threads=threads)
    if result.failed:
        _delete(box, [r.receipt_handle for r in result.done])
        raise BatchFailed([r.receipt_handle for r in result.failed], result.errors, result.outcomes)
    return result.outcomes


def _delete(box: Container, receipts: list[str]) -> None:
    for start in range(0, len(receipts), 10):
        chunk = receipts[start : start + 10]
        box.sqs.delete_message_batch(
            QueueUrl=box.settings.work_queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(chunk)],
        )


def handle_sqs_event(event: Iterable[Any]) -> dict[str, list[dict[str, str]]]:
    """Entry point of the SQS-triggered Lambda (app.py): SQS's partial batch response (the
    event source reports batch item failures, infra/cdk/stack.py), so only the failed
    messages come back and the function does not count as failing."""
    # The function's timeout as deployed (infra/cdk/stack.py), counted from the handler's
    # start. (Not the context's remaining time: chalice's test client reports a 3 s Lambda.)
    deadline = time.monotonic() + WORKER_TIMEOUT_SECONDS
    try:
        records = [
            Received(r.body, r.receipt_handle, r.to_dict().get("messageId", "")) for r in event
        ]
        result = handle_batch(container(), records, deadline=deadline)
        return batch_response(result)
    finally:
        flush_metrics()


def batch_response(result: BatchResult) -> dict[str, list[dict[str, str]]]:
    return {"batchItemFailures": [{"itemIdentifier": r.message_id} for r in result.failed]}
