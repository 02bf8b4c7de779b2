"""Advancing the test clock: move it forward and run every scheduled action due on the way.

The same sweep (`jobs.sweeps.sweep`) and worker (`jobs.worker.process_message`) code runs here,
synchronously and in time order: the clock steps to each next due time in turn, so a renewal
that schedules the next renewal (or a failed renewal that schedules a retry) inside the window
is processed too. Messages go to an in-process list instead of SQS, so the scheduler loop of
`make run` cannot take them; it also skips its ticks while an advance holds the lease below.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.adapters.dynamodb.due_index import (
    DUE_AT,
    DUE_GROUPS,
    DUE_INDEX,
    DUE_PK,
    DueGroup,
    due_partition,
    format_due_at,
)
from chalicelib.bootstrap import Container
from chalicelib.domain.errors import Conflict, InvalidRequest, NotFound
from chalicelib.observability import logger
from chalicelib.services.ports import AdjustableClock

LEASE_KEY = {"pk": {"S": "PLATFORM"}, "sk": {"S": "TEST_CLOCK_ADVANCE"}}
LEASE_SECONDS = 300
PROCESSED_KEYS = ("renewed", "retried", "cancelled", "expired", "renewals_failed")
# Outcomes after which every due item is where the frontier expects it: its subject's shard.
# (Resolving a pending payment moves its subscription, which lives in another shard.)
ORDINARY_OUTCOMES = frozenset(
    {
        "renewed",
        "renewal_failed",
        "retry_succeeded",
        "retry_failed",
        "grace_cancelled",
        "expired",
        "not_due",
        "missing",
        "not_pending",
        "still_pending",
        "cancelled",
    }
)
# An advance that needs more steps than this is refused midway rather than running forever.
MAX_STEPS = 5000


@dataclass(frozen=True)
class AdvanceResult:
    now: datetime
    processed: dict[str, int]
    steps: int


def adjustable_clock(box: Container) -> AdjustableClock:
    clock = box.clock
    if not box.settings.test_clock_enabled or not hasattr(clock, "advance_to"):
        raise NotFound("The test clock is not enabled in this stage.")
    return clock  # type: ignore[return-value]


def now(box: Container) -> datetime:
    return adjustable_clock(box).now()


def advance(
    box: Container,
    *,
    to: datetime | None = None,
    by: timedelta | None = None,
    field_name: str = "to",
) -> AdvanceResult:
    """Move the clock to `to` or `by` forward (never back), running everything due on the way."""
    clock = adjustable_clock(box)
    start = clock.now()
    target = to if to is not None else start + (by or timedelta())
    if target < start or (by is not None and by < timedelta()):
        raise InvalidRequest.for_field(field_name, "The test clock never moves back.")
    _take_lease(box)
    try:
        counts, _ = run_due(box, start)
        frontier = Frontier(box, until=target)
        frontier.load(after=start)
        steps = 0
        while (step := frontier.earliest()) is not None:
            steps += 1
            if steps > MAX_STEPS:
                raise Conflict(f"More than {MAX_STEPS} due times before {target}; advance less.")
            if step > clock.now():
                clock.advance_to(step)
            parts = frontier.due_at_or_before(step)
            step_counts, clean = run_due(box, max(step, clock.now()), parts)
            counts += step_counts
            # A subject's due items stay in its shard, whatever the group; anything unusual
            # (a charge left pending makes a payment due elsewhere) re-reads every partition.
            frontier.load(after=step, shards=None if not clean else {s for _, s in parts})
        if target > clock.now():
            clock.advance_to(target)
        counts += run_due(box, clock.now())[0]
    finally:
        _release_lease(box)
    processed = {key: counts.get(key, 0) for key in PROCESSED_KEYS}
    return AdvanceResult(now=clock.now(), processed=processed, steps=steps)


Partition = tuple[DueGroup, int]


def run_due(
    box: Container, moment: datetime, parts: list[Partition] | None = None
) -> tuple[Counter[str], bool]:
    """One synchronous pass at `moment` through the same sweep and worker code as SQS.

    Sweeps `parts` (default: every group and shard) and runs each message through the
    worker. Returns the outcome counts (as the test clock reports them) and whether every
    outcome was an ordinary one.
    """
    from chalicelib.jobs.actions import OUTCOME_BUCKETS
    from chalicelib.jobs.messages import DueMessage
    from chalicelib.jobs.sweeps import sweep
    from chalicelib.jobs.worker import process_message

    counts: Counter[str] = Counter()
    clean = True
    for group in DUE_GROUPS:
        shards = None if parts is None else tuple(s for g, s in parts if g == group)
        if shards == ():
            continue
        queued: list[DueMessage] = []
        sweep(box, (group,), now=moment, sink=queued.extend, shards=shards)
        for message in queued:
            try:
                outcome = process_message(box, message, now=moment)
            except Exception:
                # Like a message on its way to the DLQ: logged, the rest of the pass goes on.
                logger.exception("test_clock_action_failed", extra={"group": group})
                counts["failed"] += 1
                clean = False
                continue
            clean = clean and outcome in ORDINARY_OUTCOMES
            counts[OUTCOME_BUCKETS.get(outcome, outcome)] += 1
    return counts, clean


class Frontier:
    """The earliest due time of every (group, shard) partition in a window, kept up to date."""

    def __init__(self, box: Container, *, until: datetime) -> None:
        self._box = box
        self._upper = format_due_at(until)
        self._earliest: dict[Partition, str] = {}

    def load(self, *, after: datetime, shards: set[int] | None = None) -> None:
        """(Re)read the earliest due time in (after, until] of every group in `shards`."""
        lower = format_due_at(after + timedelta(microseconds=1))
        every = range(self._box.settings.due_index_shards)
        for group in DUE_GROUPS:
            for shard in every if shards is None else sorted(shards):
                found = self._first(group, shard, lower) if lower <= self._upper else None
                if found is None:
                    self._earliest.pop((group, shard), None)
                else:
                    self._earliest[(group, shard)] = found

    def earliest(self) -> datetime | None:
        if not self._earliest:
            return None
        text = min(self._earliest.values())
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)

    def due_at_or_before(self, moment: datetime) -> list[Partition]:
        limit = format_due_at(moment)
        return sorted(part for part, text in self._earliest.items() if text <= limit)

    def _first(self, group: DueGroup, shard: int, lower: str) -> str | None:
        page = self._box.dynamodb.query(
            TableName=self._box.settings.table_name,
            IndexName=DUE_INDEX,
            KeyConditionExpression="#p = :p AND #a BETWEEN :lo AND :hi",
            ExpressionAttributeNames={"#p": DUE_PK, "#a": DUE_AT},
            ExpressionAttributeValues={
                ":p": {"S": due_partition(group, shard)},
                ":lo": {"S": lower},
                ":hi": {"S": self._upper},
            },
            ProjectionExpression="#a",
            Limit=1,
        )
        items: list[dict[str, Any]] = page.get("Items", [])
        return str(items[0][DUE_AT]["S"]) if items else None


def _take_lease(box: Container) -> None:
    from botocore.exceptions import ClientError

    wall = time.time()
    try:
        box.dynamodb.put_item(
            TableName=box.settings.table_name,
            Item={**LEASE_KEY, "until": {"N": str(int(wall + LEASE_SECONDS))}},
            ConditionExpression="attribute_not_exists(pk) OR #u < :wall",
            ExpressionAttributeNames={"#u": "until"},
            ExpressionAttributeValues={":wall": {"N": str(int(wall))}},
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise Conflict(
                "Another test-clock advance is running; try again when it ends."
            ) from None
        raise


def _release_lease(box: Container) -> None:
    box.dynamodb.delete_item(TableName=box.settings.table_name, Key=LEASE_KEY)


def advance_in_progress(box: Container) -> bool:
    item = box.dynamodb.get_item(
        TableName=box.settings.table_name, Key=LEASE_KEY, ConsistentRead=True
    ).get("Item")
    return bool(item) and float(item["until"]["N"]) > time.time()
