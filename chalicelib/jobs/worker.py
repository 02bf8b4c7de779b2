"""The SQS worker: one due item per message, processed idempotently.

For each message: read the item (one consistent GetItem), act only if it is still due for that
group (`due_group` matches and `due_at <= now`; anything else is a no-op, e.g. a redelivery
after the action already moved or removed the due attributes), then call the group's action.
Actions marked `SelfChecking` (the real ones) make that same read and check themselves, so the
worker leaves it to them instead of reading the item twice.

Chalice has no partial batch response: an exception makes SQS redeliver the whole batch. So the
batch is processed message by message; if any failed, the ones that succeeded are deleted from
the queue here before raising, and only the failed ones come back (after maxReceiveCount
receives they land in the dead-letter queue). Actions are idempotent per message anyway
(conditional writes, Stripe idempotency keys), so a redelivered success changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from chalicelib.adapters.dynamodb.due_index import DUE_AT, DUE_GROUP, format_due_at
from chalicelib.bootstrap import Container, container
from chalicelib.jobs.actions import Actions, SelfChecking
from chalicelib.jobs.local_runner import JOBS
from chalicelib.jobs.messages import BatchFailed, DueMessage, Received
from chalicelib.observability import correlation, count, flush_metrics, logger

NOT_DUE = "not_due"


class NoActionForGroup(RuntimeError):
    """The deployed code has no action for a group (retried, then dead-lettered)."""


def still_due(box: Container, message: DueMessage, now: datetime) -> bool:
    item = box.dynamodb.get_item(
        TableName=box.settings.table_name,
        Key={"pk": {"S": message.pk}, "sk": {"S": message.sk}},
        ConsistentRead=True,
        ProjectionExpression="#g, #a",
        ExpressionAttributeNames={"#g": DUE_GROUP, "#a": DUE_AT},
    ).get("Item")
    if not item or DUE_GROUP not in item or DUE_AT not in item:
        return False
    return bool(item[DUE_GROUP]["S"] == message.group and item[DUE_AT]["S"] <= format_due_at(now))


def process_message(
    box: Container,
    message: DueMessage,
    *,
    now: datetime | None = None,
    actions: Actions | None = None,
) -> str:
    """Run the group's action for one due item if it is still due; return the outcome."""
    moment = now or box.clock.now()
    registry = box.scheduled_actions if actions is None else actions
    action = registry.get(message.group)
    if action is None:
        raise NoActionForGroup(f"no action registered for due group {message.group!r}")
    if not isinstance(action, SelfChecking) and not still_due(box, message, moment):
        return NOT_DUE
    id_key = "payment_id" if message.group == "pending_payment" else "subscription_id"
    with correlation(community_id=message.community_id, **{id_key: message.subject_id}):
        if isinstance(action, SelfChecking) and message.snapshot is not None:
            outcome = action.with_snapshot(
                box, message.community_id, message.subject_id, moment, message.snapshot
            )
        else:
            outcome = action(box, message.community_id, message.subject_id, moment)
        logger.info("scheduled_action", extra={"group": message.group, "outcome": outcome})
    return outcome


def process_batch(box: Container, records: Iterable[Received]) -> Counter[str]:
    """Process a received batch; on any failure delete the successes, then raise BatchFailed."""
    outcomes: Counter[str] = Counter()
    done: list[str] = []
    failed: list[str] = []
    errors: list[str] = []
    for record in records:
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
    try:
        return process_batch(container(), [Received(r.body, r.receipt_handle) for r in event])
    finally:
        flush_metrics()


def _local_worker(box: Container, records: list[Received]) -> Counter[str]:
    return process_batch(box, records)


JOBS.worker = _local_worker
