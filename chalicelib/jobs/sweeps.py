"""Sweeps: read what is due from the sparse due index and fan it out, one message per item.

A sweep Queries each shard of its group's partitions (`due_pk = DUE#<group>#<shard>`,
`due_at <= now`, Limit + paging, never a Scan), so it reads only what is due, whatever the
table size, and sends one message per due item to the work queue (SendMessageBatch of 10, on
SEND_THREADS threads: one batch at a time spent most of a tick waiting on SQS).
The worker re-checks each item before acting, so a message sent twice (two sweeps at once, a
sweep re-sending what is still queued) costs one read and does nothing.

Cursors keep a big backlog from being re-sent every tick: while the work queue still holds
messages, a sweep continues each shard after the last `due_at` it sent; once the queue is empty
(or after FULL_SWEEP_EVERY), it starts from the beginning again, which also re-sends anything
whose message was lost or dead-lettered and is still due.

app.py's schedules call `scheduled_sweep(name)`, which sweeps the groups the registry
(chalicelib/jobs/registry.py) gives that name; the local runner (`sweep_job`) and the test clock
call `sweep()` with the same code. The DynamoDB requests are the adapters' (`DueIndex`,
`SweepCursors` in adapters/dynamodb/due_index.py), seen through jobs/ports.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from chalicelib.adapters.dynamodb.due_index import DueEntry, DueGroup, format_due_at
from chalicelib.bootstrap import Container, container
from chalicelib.jobs.messages import DueMessage, PoisonMessage, community_of, subject_of
from chalicelib.jobs.ports import CursorStore, DueReader
from chalicelib.jobs.registry import SWEEP_GROUPS, current_jobs
from chalicelib.observability import count, flush_metrics, logger

SWEEP_PAGE_SIZE = 500
SQS_BATCH = 10
# Batches a sweep sends to the work queue at once (SQS takes many more): ~15 ms a
# SendMessageBatch gave one thread ~300 messages/s, 8 threads ~1,700/s (bench/README.md).
SEND_THREADS = 8
# A sweep reads this many due items of each shard, then sends them in `not_before` order.
ROUND_PER_SHARD = 100
MAX_DELAY_SECONDS = 900  # SQS's longest message delay
FULL_SWEEP_EVERY = timedelta(hours=1)
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
    index: DueReader,
    group: DueGroup,
    shard: int,
    now: datetime,
    *,
    after: str | None = None,
    page_size: int = SWEEP_PAGE_SIZE,
    result: SweepResult | None = None,
    with_snapshot: bool = False,
) -> Iterator[DueMessage]:
    """Every item of one shard of `group` due at `now` (and after `after`), oldest first.

    `with_snapshot`: each message carries the subject as read (the group's action takes it).
    """
    start_key: dict[str, Any] | None = None
    while True:
        page = index.due_page(group, shard, now, page_size, start_key, after=after)
        if result is not None:
            result.queries += 1
            result.items_read += page.items_read
        for entry in page.entries:
            try:
                yield DueMessage(
                    group=group,
                    pk=entry.pk,
                    sk=entry.sk,
                    community_id=community_of(entry.pk),
                    subject_id=subject_of(entry),
                    due_at=entry.due_at,
                    snapshot=snapshot_of(entry) if with_snapshot else None,
                )
            except PoisonMessage as error:
                # Not ours to act on (a malformed item); log it and keep sweeping the rest.
                logger.error("due_item_malformed", extra={"reason": str(error)})
                if result is not None:
                    result.skipped += 1
        if page.next_key is None:
            return
        start_key = page.next_key


def snapshot_of(entry: DueEntry) -> dict[str, Any] | None:
    """The subject as the sweep read it (see DueMessage.snapshot), when the item had it."""
    if entry.data is None or entry.version is None:
        return None
    return {"data": entry.data, "version": entry.version}


def sqs_sink(sqs: Any, queue_url: str, wall: Callable[[], float] = time.time) -> Sink:
    """Send a batch (<= 10) with SendMessageBatch; entries SQS refuses are sent once more.
    A message with a `not_before` is delayed until then (at most SQS's 15 minutes)."""

    def send(batch: list[DueMessage]) -> None:
        now = wall()
        entries = [
            {
                "Id": str(i),
                "MessageBody": m.to_json(),
                "DelaySeconds": delay_seconds(m, now),
            }
            for i, m in enumerate(batch)
        ]
        for _attempt in range(3):
            failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
            if not failed:
                return
            ids = {f["Id"] for f in failed}
            entries = [e for e in entries if e["Id"] in ids]
        raise RuntimeError(f"SQS refused {len(entries)} messages: {failed}")

    return send


def delay_seconds(message: DueMessage, now: float) -> int:
    if message.not_before is None:
        return 0
    # Whole seconds, rounded down: the message is visible at its slot or up to a second
    # before it (never after: a late message would leave its account's slot unused), and
    # the worker's wait for the token's slot does the rest.
    return max(0, min(MAX_DELAY_SECONDS, math.floor(message.not_before - now)))


class Spacing:
    """Each community's messages of Stripe-charging groups, `spacing` seconds apart
    (`not_before`): the first at once, each next one `spacing` after the one before, never
    before the moment it is read (a slow sweep spaces from when it reads, so its messages do
    not all come due at once). The queue then offers a big community's backlog at its Stripe
    budget instead of all at once, so a small community's few renewals are never queued
    behind it (DESIGN.md 8.1: fairness). 0 spacing: nothing is set."""

    def __init__(self, spacing: float, wall: Callable[[], float]) -> None:
        self._spacing = spacing
        self._wall = wall
        self._next: dict[str, float] = {}

    def apply(self, message: DueMessage) -> DueMessage:
        if self._spacing <= 0:
            return message
        due = max(self._next.get(message.community_id, 0.0), self._wall())
        self._next[message.community_id] = due + self._spacing
        return replace(message, not_before=round(due, 3))


def sweep(
    box: Container,
    groups: tuple[DueGroup, ...],
    *,
    now: datetime | None = None,
    sink: Sink | None = None,
    deadline: float | None = None,
    page_size: int = SWEEP_PAGE_SIZE,
    shards: tuple[int, ...] | None = None,
    wall: Callable[[], float] = time.time,
) -> SweepResult:
    """Send every due item of `groups` to `sink` (default: the work queue, with cursors).

    `shards` limits the sweep to some shards (the test clock sweeps only where it knows
    something is due); by default every shard is read.
    """
    if sink is not None:
        return _sweep(
            box,
            groups,
            moment=now,
            sink=sink,
            deadline=deadline,
            page_size=page_size,
            shards=shards,
            wall=wall,
            pool=None,
        )
    with ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="sweep-send") as pool:
        return _sweep(
            box,
            groups,
            moment=now,
            sink=None,
            deadline=deadline,
            page_size=page_size,
            shards=shards,
            wall=wall,
            pool=pool,
        )


def _sweep(
    box: Container,
    groups: tuple[DueGroup, ...],
    *,
    moment: datetime | None,
    sink: Sink | None,
    deadline: float | None,
    page_size: int,
    shards: tuple[int, ...] | None,
    wall: Callable[[], float],
    pool: ThreadPoolExecutor | None,
) -> SweepResult:
    moment = moment or box.clock.now()
    settings = box.settings
    use_cursors = sink is None
    if sink is None:
        sink = sqs_sink(box.sqs, settings.work_queue_url, wall)
    jobs = current_jobs()
    result = SweepResult()
    spacing = Spacing(box.stripe_budget.spacing_seconds() if use_cursors else 0.0, wall)
    for group in groups:
        cursors = (
            _load_cursors(box, box.sweep_cursors, group, moment, result) if use_cursors else {}
        )
        sent_upto = dict(cursors)
        job = jobs.get(group)
        spaced = job is not None and job.calls_stripe
        streams = {
            shard: due_messages(
                box.due_index,
                group,
                shard,
                moment,
                after=cursors.get(shard),
                page_size=page_size,
                result=result,
                with_snapshot=job is not None and job.takes_snapshot,
            )
            for shard in (range(settings.due_index_shards) if shards is None else shards)
        }
        while streams and result.complete:
            # One round: up to ROUND_PER_SHARD messages of each shard (a prefix of each, so
            # the cursors stay right), sent in `not_before` order.
            round_: list[tuple[int, DueMessage]] = []
            for shard, stream in list(streams.items()):
                for taken, message in enumerate(stream, start=1):
                    round_.append((shard, spacing.apply(message) if spaced else message))
                    if deadline is not None and time.monotonic() > deadline:
                        result.complete = False
                        break
                    if taken == ROUND_PER_SHARD:
                        break
                else:
                    del streams[shard]  # the shard is read to its end
                if not result.complete:
                    break
            _send_round(sink, round_, sent_upto, result, pool)
        if use_cursors:
            box.sweep_cursors.save(group, moment, sent_upto, full=not cursors)
        result.cursors[group] = sent_upto
        if not result.complete:
            break
    return result


def _send_round(
    sink: Sink,
    round_: list[tuple[int, DueMessage]],
    sent_upto: dict[int, str],
    r: SweepResult,
    pool: ThreadPoolExecutor | None,
) -> None:
    """Send a round's messages in `not_before` order (the unspaced first): every community's
    next messages go out before any community's later ones, whatever shard they were read
    from, so a small community's few charges are on the queue at the round's start. With a
    `pool`, its batches go out on its threads, in that order; the cursors move once every
    batch of the round is sent (a failed send raises and no cursor is saved). A message's
    SQS delay is computed when its batch is sent, from its `not_before` (an absolute time)."""
    ordered = sorted(round_, key=lambda item: item[1].not_before or 0.0)
    batches = [
        [message for _, message in ordered[start : start + SQS_BATCH]]
        for start in range(0, len(ordered), SQS_BATCH)
    ]
    if pool is None:
        for batch in batches:
            sink(batch)
    else:
        for _ in pool.map(sink, batches):
            pass  # re-raises the first batch that failed
    r.sent += len(ordered)
    for shard, message in ordered:
        sent_upto[shard] = max(sent_upto.get(shard, ""), message.due_at)


def _load_cursors(
    box: Container, cursors: CursorStore, group: DueGroup, now: datetime, r: SweepResult
) -> dict[int, str]:
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
    cursor = cursors.load(group)
    r.items_read += 1 if cursor else 0
    if cursor is None or cursor.full_at < format_due_at(now - FULL_SWEEP_EVERY):
        return {}
    return dict(cursor.shards)


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


def sweep_job(name: str) -> Callable[[Container], int]:
    """The named sweep as the local runner calls it: every group of it, to the work queue."""

    def run(box: Container) -> int:
        return sweep(box, SWEEP_GROUPS[name]).sent

    return run
