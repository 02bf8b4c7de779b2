"""Sweeps: read what is due from the sparse due index and fan it out, one message per item.

A sweep Queries each shard of its group's partitions (`due_pk = DUE#<group>#<shard>`,
`due_at <= now`, Limit + paging, never a Scan), so it reads only what is due, whatever the
table size, and sends one message per due item to the work queue (SendMessageBatch of 10).
The worker re-checks each item before acting, so a message sent twice (two sweeps at once, a
sweep re-sending what is still queued) costs one read and does nothing.

Cursors keep a big backlog from being re-sent every tick: while the work queue still holds
messages, a sweep continues each shard after the last `due_at` it sent; once the queue is empty
(or after FULL_SWEEP_EVERY), it starts from the beginning again, which also re-sends anything
whose message was lost or dead-lettered and is still due.

EventBridge calls the four `*_sweep` functions (app.py); the local runner and the test clock
call `sweep()` with the same code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chalicelib.adapters.dynamodb.due_index import (
    DUE_AT,
    DUE_INDEX,
    DUE_PK,
    DueGroup,
    due_partition,
    format_due_at,
)
from chalicelib.bootstrap import Container, container
from chalicelib.jobs.local_runner import JOBS
from chalicelib.jobs.messages import DueMessage, PoisonMessage, community_of, subject_of
from chalicelib.jobs.schedules import SWEEP_GROUPS
from chalicelib.observability import count, flush_metrics, logger

SWEEP_PAGE_SIZE = 500
SQS_BATCH = 10
FULL_SWEEP_EVERY = timedelta(hours=1)
CURSOR_PK = "SCHEDULER"
# Stop this long before the Lambda's own timeout; the next tick continues from the cursor.
LAMBDA_SAFETY_SECONDS = 20.0

Sink = Callable[[list[DueMessage]], None]


@dataclass
class SweepResult:
    sent: int = 0
    items_read: int = 0
    queries: int = 0
    skipped: int = 0
    complete: bool = True
    cursors: dict[str, dict[int, str]] = field(default_factory=dict)


def due_messages(
    ddb: Any,
    table: str,
    group: DueGroup,
    shard: int,
    now: datetime,
    *,
    after: str | None = None,
    page_size: int = SWEEP_PAGE_SIZE,
    result: SweepResult | None = None,
) -> Iterator[DueMessage]:
    """Every item of one shard of `group` due at `now` (and after `after`), oldest first."""
    names = {"#p": DUE_PK, "#a": DUE_AT}
    values: dict[str, Any] = {
        ":p": {"S": due_partition(group, shard)},
        ":now": {"S": format_due_at(now)},
    }
    condition = "#p = :p AND #a <= :now"
    if after is not None:
        condition = "#p = :p AND #a BETWEEN :after AND :now"
        values[":after"] = {"S": _just_after(after)}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "IndexName": DUE_INDEX,
        "KeyConditionExpression": condition,
        "ExpressionAttributeNames": {
            **names,
            "#pk": "pk",
            "#sk": "sk",
            "#id": "id",
            "#d": "data",
            "#v": "version",
        },
        "ExpressionAttributeValues": values,
        "ProjectionExpression": "#pk, #sk, #id, #a, #d, #v",
        "Limit": page_size,
    }
    while True:
        page = ddb.query(**kwargs)
        if result is not None:
            result.queries += 1
            result.items_read += int(page.get("ScannedCount", page.get("Count", 0)))
        for item in page.get("Items", []):
            try:
                yield DueMessage(
                    group=group,
                    pk=item["pk"]["S"],
                    sk=item["sk"]["S"],
                    community_id=community_of(item["pk"]["S"]),
                    subject_id=subject_of(item),
                    due_at=item[DUE_AT]["S"],
                    snapshot=snapshot_of(group, item),
                )
            except PoisonMessage as error:
                # Not ours to act on (a malformed item); log it and keep sweeping the rest.
                logger.error("due_item_malformed", extra={"reason": str(error)})
                if result is not None:
                    result.skipped += 1
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


def snapshot_of(group: str, item: dict[str, Any]) -> dict[str, Any] | None:
    """A renewal carries the subscription it saw (see DueMessage.snapshot)."""
    if group != "renewal" or "data" not in item or "version" not in item:
        return None
    return {"data": item["data"]["S"], "version": int(item["version"]["N"])}


def _just_after(due_at: str) -> str:
    # due_at strings are fixed width, so "the next microsecond" sorts right after `due_at`.
    moment = datetime.strptime(due_at, "%Y-%m-%dT%H:%M:%S.%fZ")
    return (moment + timedelta(microseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sqs_sink(sqs: Any, queue_url: str) -> Sink:
    """Send a batch (<= 10) with SendMessageBatch; entries SQS refuses are sent once more."""

    def send(batch: list[DueMessage]) -> None:
        entries = [{"Id": str(i), "MessageBody": m.to_json()} for i, m in enumerate(batch)]
        for _attempt in range(3):
            failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
            if not failed:
                return
            ids = {f["Id"] for f in failed}
            entries = [e for e in entries if e["Id"] in ids]
        raise RuntimeError(f"SQS refused {len(entries)} messages: {failed}")

    return send


def sweep(
    box: Container,
    groups: tuple[DueGroup, ...],
    *,
    now: datetime | None = None,
    sink: Sink | None = None,
    deadline: float | None = None,
    page_size: int = SWEEP_PAGE_SIZE,
    shards: tuple[int, ...] | None = None,
) -> SweepResult:
    """Send every due item of `groups` to `sink` (default: the work queue, with cursors).

    `shards` limits the sweep to some shards (the test clock sweeps only where it knows
    something is due); by default every shard is read.
    """
    moment = now or box.clock.now()
    settings = box.settings
    use_cursors = sink is None
    if sink is None:
        sink = sqs_sink(box.sqs, settings.work_queue_url)
    result = SweepResult()
    for group in groups:
        cursors = _load_cursors(box, group, moment, result) if use_cursors else {}
        sent_upto = dict(cursors)
        for shard in range(settings.due_index_shards) if shards is None else shards:
            batch: list[DueMessage] = []
            for message in due_messages(
                box.dynamodb,
                settings.table_name,
                group,
                shard,
                moment,
                after=cursors.get(shard),
                page_size=page_size,
                result=result,
            ):
                batch.append(message)
                if len(batch) == SQS_BATCH:
                    _flush(sink, batch, sent_upto, shard, result)
                if deadline is not None and time.monotonic() > deadline:
                    result.complete = False
                    break
            _flush(sink, batch, sent_upto, shard, result)
            if not result.complete:
                break
        if use_cursors:
            _save_cursors(box, group, moment, sent_upto, fresh=not cursors)
        result.cursors[group] = sent_upto
        if not result.complete:
            break
    return result


def _flush(
    sink: Sink, batch: list[DueMessage], sent_upto: dict[int, str], shard: int, r: SweepResult
) -> None:
    if not batch:
        return
    sink(list(batch))
    r.sent += len(batch)
    sent_upto[shard] = max(sent_upto.get(shard, ""), *(m.due_at for m in batch))
    batch.clear()


def _cursor_key(group: DueGroup) -> dict[str, Any]:
    return {"pk": {"S": CURSOR_PK}, "sk": {"S": f"SWEEP#{group}"}}


def _load_cursors(box: Container, group: DueGroup, now: datetime, r: SweepResult) -> dict[int, str]:
    """Cursors to continue from, or {} for a full sweep (queue drained, or it is time)."""
    attrs = box.sqs.get_queue_attributes(
        QueueUrl=box.settings.work_queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    if not any(int(value) for value in attrs.values()):
        return {}
    item = box.dynamodb.get_item(
        TableName=box.settings.table_name, Key=_cursor_key(group), ConsistentRead=True
    ).get("Item")
    r.items_read += 1 if item else 0
    if not item or item["full_at"]["S"] < format_due_at(now - FULL_SWEEP_EVERY):
        return {}
    return {int(shard): value["S"] for shard, value in item["shards"]["M"].items()}


def _save_cursors(
    box: Container, group: DueGroup, now: datetime, sent_upto: dict[int, str], *, fresh: bool
) -> None:
    item: dict[str, Any] = {
        **_cursor_key(group),
        "shards": {"M": {str(shard): {"S": value} for shard, value in sent_upto.items()}},
        "saved_at": {"S": format_due_at(now)},
    }
    if fresh:
        item["full_at"] = {"S": format_due_at(now)}
        box.dynamodb.put_item(TableName=box.settings.table_name, Item=item)
        return
    box.dynamodb.update_item(
        TableName=box.settings.table_name,
        Key=_cursor_key(group),
        UpdateExpression="SET shards = :s, saved_at = :t",
        ExpressionAttributeValues={":s": item["shards"], ":t": item["saved_at"]},
    )


def scheduled_sweep(name: str, context: Any = None) -> SweepResult:
    """Entry point of the EventBridge-scheduled Lambdas (app.py)."""
    deadline = None
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        remaining = context.get_remaining_time_in_millis() / 1000 - LAMBDA_SAFETY_SECONDS
        deadline = time.monotonic() + max(remaining, 1.0)
    result = sweep(container(), SWEEP_GROUPS[name], deadline=deadline)
    logger.info(
        "sweep_done",
        extra={
            "sweep": name,
            "sent": result.sent,
            "items_read": result.items_read,
            "queries": result.queries,
            "complete": result.complete,
        },
    )
    count("SweepMessagesSent", result.sent, sweep=name)
    flush_metrics()
    return result


def _register(name: str) -> None:
    def run(box: Container) -> int:
        return sweep(box, SWEEP_GROUPS[name]).sent

    JOBS.sweep(name)(run)


for _name in SWEEP_GROUPS:
    _register(_name)
