"""Advancing the test clock: move it forward and run every scheduled action due on the way.

The same sweep (`jobs.sweeps.sweep`) and worker (`jobs.worker.process_message`) code runs here,
synchronously and in time order: the clock steps to each next due time in turn, so a renewal
that schedules the next renewal (or a failed renewal that schedules a retry) inside the window
is processed too. Messages go to an in-process list instead of SQS, so the scheduler loop of
`make run` cannot take them; it also skips its ticks while an advance holds the lease
(`container.advance_lease`).

A step takes what is due within `STEP_WINDOW` of its earliest due time (the deployed renewal
sweep runs that often, so the deployed worker gets those together too) and runs it on up to
`Settings.test_clock_concurrency` threads (`BILLING_TEST_CLOCK_CONCURRENCY`: 1 by default, as
in-process moto is not thread-safe; 8 on the local stack), as the worker's concurrent
invocations would. Each action still
runs at its own due time (`now` = its `due_at`, never before the clock's time when the step
began), and reads that time from the clock too (`AdjustableClock.pinned`, for its thread), so
what it computes (a period, a resolution time, a retry date, the grace end) is the same as with
one step per due time; meanwhile everyone else reads the clock at the step's end. Groups run
one after the other (a subscription's renewal before a payment recovery of the same step).

While the steps run on several threads, the outbox is published alongside them
(`publishing_alongside`); what is left, and every delivery, the advance publishes before it
answers.

The stored test clock is wall time plus an offset, so it keeps moving while an advance works.
Each step therefore moves the clock with one `move_forward_to(step)` (to the step, or nowhere
when the clock already passed it) and runs at the time that returns: never a separate "is it
still ahead?" reading that the wall can overtake before the move.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import get_args

from chalicelib.adapters.dynamodb.due_index import (
    DUE_GROUPS,
    DueGroup,
    format_due_at,
    parse_due_at,
)
from chalicelib.bootstrap import Container
from chalicelib.domain.errors import ConcurrentChange, Conflict, InvalidRequest, NotFound
from chalicelib.jobs.event_publisher import PUBLISH_BATCH, publish_now
from chalicelib.jobs.messages import DueMessage
from chalicelib.jobs.ports import DueReader
from chalicelib.jobs.registry import Reported, ScheduledJob, current_jobs
from chalicelib.jobs.schedules import RENEWALS_EVERY_MINUTES
from chalicelib.jobs.sweeps import sweep
from chalicelib.jobs.worker import process_message
from chalicelib.observability import logger
from chalicelib.services.ports import AdjustableClock

LEASE_SECONDS = 300
# What one step takes together: what the deployed renewal sweep would send in one tick.
STEP_WINDOW = timedelta(minutes=RENEWALS_EVERY_MINUTES)
PROCESSED_KEYS: tuple[Reported, ...] = get_args(Reported)
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
        "reminder_sent",
        "reminder_already_sent",
        "reminder_moot",
    }
)
# An advance that needs more steps than this is refused midway rather than running forever.
MAX_STEPS = 5000
# Earlier than any due time: the frontier's first load finds what is overdue too.
BEFORE_ANYTHING = datetime(1970, 1, 1, tzinfo=UTC)
# The test clock never goes past this: far enough for any test, and far enough from
# datetime.max (year 9999) that the clock, periods and renewals computed from it never overflow.
HORIZON = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class AdvanceResult:
    now: datetime
    processed: dict[Reported, int]
    steps: int


def adjustable_clock(box: Container) -> AdjustableClock:
    clock = box.clock
    if not box.settings.test_clock_enabled or not isinstance(clock, AdjustableClock):
        raise NotFound("The test clock is not enabled in this stage.")
    return clock


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
    if to is not None:
        target = to
    else:
        delta = by or timedelta()
        if delta < timedelta():
            raise InvalidRequest.for_field(field_name, "The test clock never moves back.")
        target = start + delta if delta < HORIZON - start else HORIZON
    if target < start:
        raise InvalidRequest.for_field(field_name, "The test clock never moves back.")
    if target >= HORIZON:
        raise InvalidRequest.for_field(
            field_name, f"The test clock stays before {HORIZON.date().isoformat()}."
        )
    if not box.advance_lease.take(LEASE_SECONDS):
        # A busy clock, not a refusal: retryable (409 with Retry-After; never an idempotent answer).
        raise ConcurrentChange("Another test-clock advance is running; try again when it ends.")
    try:
        with publishing_alongside(box):
            counts, steps = _run_steps(box, clock, target)
        _publish(box)
    finally:
        box.advance_lease.release()
    processed = {key: counts.get(key, 0) for key in PROCESSED_KEYS}
    return AdvanceResult(now=clock.now(), processed=processed, steps=steps)


def _run_steps(
    box: Container, clock: AdjustableClock, target: datetime
) -> tuple[Counter[str], int]:
    """Every step up to `target`: what they did, and how many steps there were."""
    counts: Counter[str] = Counter()
    frontier = Frontier(box.due_index, box.settings.due_index_shards, until=target)
    # Everything due up to the target, what was already due included: the first step runs
    # that at the advance's start (a sweep of every partition first read each one twice).
    frontier.load(after=BEFORE_ANYTHING)
    steps = 0
    while (step := frontier.earliest()) is not None:
        steps += 1
        if steps > MAX_STEPS:
            raise Conflict(f"More than {MAX_STEPS} due times before {target}; advance less.")
        began = clock.now()
        # >= the window's end: the wall may have passed it
        moment = clock.move_forward_to(min(step + STEP_WINDOW, target))
        parts = frontier.due_at_or_before(moment)
        ran: list[DueMessage] = []
        step_counts, clean = run_due(box, moment, parts, ran, not_before=began)
        counts += step_counts
        if clean:
            # Ordinary outcomes change only the processed subjects' own due items.
            frontier.step_done(step, moment, parts, ran)
        else:
            # Anything unusual (a charge left pending makes a payment due elsewhere)
            # re-reads every partition.
            frontier.load(after=step)
    counts += run_due(box, clock.move_forward_to(target))[0]
    return counts, steps


Partition = tuple[DueGroup, int]

# How long the publisher alongside an advance waits when it found nothing to publish.
ALONGSIDE_IDLE_SECONDS = 0.2


class PublishingAlongside:
    """Runs `publish_pass` on a thread of its own until stopped: again at once while a pass
    publishes something, after `idle_seconds` when one publishes nothing. A pass that raises
    is logged and the next one runs (what it left stays in the outbox)."""

    def __init__(self, publish_pass: Callable[[], int], idle_seconds: float) -> None:
        self._publish_pass = publish_pass
        self._idle_seconds = idle_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-clock-publisher", daemon=True)

    def __enter__(self) -> PublishingAlongside:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                published = self._publish_pass()
            except Exception:
                logger.exception("test_clock_publish_alongside_failed")
                published = 0
            if not published:
                self._stopping.wait(self._idle_seconds)


def publishing_alongside(box: Container) -> AbstractContextManager[object]:
    """The outbox published while the advance's steps run, where they run on several threads
    (`test_clock_concurrency` > 1: the backend takes concurrent requests, as the local
    stack's moto server does). The events of 500 renewals, all published at the advance's end,
    were 2-4 s of it; alongside, they fill the moments the steps wait on moto and Stripe. What
    is left (and every delivery) the advance still publishes before it answers."""
    if box.settings.test_clock_concurrency <= 1:
        return nullcontext()
    publisher = box.event_publisher  # made here, not on two threads at once

    def publish_pass() -> int:
        return publisher.publish_pending(limit=PUBLISH_BATCH)

    return PublishingAlongside(publish_pass, ALONGSIDE_IDLE_SECONDS)


def _publish(box: Container) -> None:
    """The test clock delivers events to the platform before it answers. A failure leaves
    the outbox records unpublished for the next pass (the local publisher loop's, or the next
    advance's); the advance itself happened and says so."""
    started = time.monotonic()
    try:
        result = publish_now(box)
    except Exception:
        logger.exception("test_clock_publish_failed")
        return
    logger.info(
        "test_clock_published",
        extra={
            "published": result.published,
            "delivered": result.delivered,
            "seconds": round(time.monotonic() - started, 3),
        },
    )


def run_due(
    box: Container,
    moment: datetime,
    parts: list[Partition] | None = None,
    processed: list[DueMessage] | None = None,
    not_before: datetime | None = None,
) -> tuple[Counter[str], bool]:
    """One synchronous pass at `moment` through the same sweep and worker code as SQS.

    Sweeps `parts` (default: every group and shard) and runs each message through the
    worker, a group's messages concurrently. Each runs at `moment`, or, given `not_before`,
    at its own due time but not before `not_before`. Returns the counts the test clock reports
    (each job's `counters`; "failed" for an action that raised) and whether every outcome was
    an ordinary one; `processed` (if given) receives every message that was run.
    """
    jobs = current_jobs()
    clock = adjustable_clock(box)
    counts: Counter[str] = Counter()
    clean = True

    def run_one(message: DueMessage) -> str | None:
        at = moment
        if not_before is not None:
            at = min(moment, max(not_before, parse_due_at(message.due_at)))
        try:
            # What the action reads from the clock (a payment's resolution time, from which a
            # retry and the grace end are counted) is its own time too.
            with clock.pinned(at):
                return process_message(box, message, now=at, jobs=jobs)
        except Exception:
            # Like a message on its way to the DLQ: logged, the rest of the pass goes on.
            logger.exception("test_clock_action_failed", extra={"group": message.group})
            return None

    threads = box.settings.test_clock_concurrency
    with ThreadPoolExecutor(threads, thread_name_prefix="test-clock") as pool:
        for group in DUE_GROUPS:
            shards = None if parts is None else tuple(s for g, s in parts if g == group)
            if shards == ():
                continue
            queued: list[DueMessage] = []
            sweep(box, (group,), now=moment, sink=queued.extend, shards=shards)
            if processed is not None:
                processed.extend(queued)
            concurrent = threads > 1 and len(queued) > 1
            outcomes = pool.map(run_one, queued) if concurrent else map(run_one, queued)
            for outcome in outcomes:
                if outcome is None:
                    counts["failed"] += 1
                    clean = False
                    continue
                clean = clean and outcome in ORDINARY_OUTCOMES
                reported = _reported(jobs.get(group), outcome)
                if reported is not None:
                    counts[reported] += 1
    return counts, clean


def _reported(job: ScheduledJob | None, outcome: str) -> str | None:
    return job.counters.get(outcome) if job is not None else None


class Frontier:
    """The next due times of every (group, shard) partition in a window, kept up to date.

    Each partition's next `batch` due times are read with one Query and kept; a step drops
    what it ran and adds where the subjects it ran are due next (one GetItem each), so a
    partition is queried again only once its batch is used up. (On moto every Query walks the
    whole table; one per partition per step made an advance through a few thousand items
    take minutes.)"""

    def __init__(
        self, index: DueReader, shard_count: int, *, until: datetime, batch: int = 100
    ) -> None:
        self._index = index
        self._shards = range(shard_count)
        self._upper = format_due_at(until)
        self._batch = batch
        self._upcoming: dict[Partition, list[str]] = {}
        # Partitions whose batch was full: more due times may follow its last one.
        self._truncated: set[Partition] = set()

    def load(self, *, after: datetime, shards: set[int] | None = None) -> None:
        """(Re)read the next due times in (after, until] of every group in `shards`."""
        for group in DUE_GROUPS:
            for shard in self._shards if shards is None else sorted(shards):
                self._load_one((group, shard), after)

    def _load_one(self, part: Partition, after: datetime) -> None:
        group, shard = part
        found = self._index.upcoming_due(group, shard, after, self._upper, self._batch)
        self._truncated.discard(part)
        if not found:
            self._upcoming.pop(part, None)
            return
        self._upcoming[part] = found
        if len(found) == self._batch:
            self._truncated.add(part)

    def step_done(
        self,
        step: datetime,
        moment: datetime,
        parts: list[Partition],
        processed: list[DueMessage],
    ) -> None:
        """After `parts` were swept at `moment` for `step` with ordinary outcomes: what was due
        up to `moment` there ran; each processed subject is now due where its item says.

        Where it is due is one GetItem per processed subject; a step that ran more subjects
        than there are partitions re-reads every partition instead (one Query each)."""
        if len(processed) > len(DUE_GROUPS) * len(self._shards):
            self.load(after=step)
            return
        ran_until = format_due_at(moment)
        for part in parts:
            left = [due for due in self._upcoming.get(part, []) if due > ran_until]
            if left:
                self._upcoming[part] = left
            elif part in self._truncated:
                self._load_one(part, moment)
            else:
                self._upcoming.pop(part, None)
        after = format_due_at(step)
        for message in processed:
            found = self._index.due_entry(message.pk, message.sk)
            if found is None:
                continue
            group, shard, due_at = found
            if not after < due_at <= self._upper:
                continue
            part = (group, shard)
            upcoming = self._upcoming.setdefault(part, [])
            if part in self._truncated and due_at > upcoming[-1]:
                continue  # beyond the batch: the next load of this partition finds it
            bisect.insort(upcoming, due_at)

    def earliest(self) -> datetime | None:
        if not self._upcoming:
            return None
        return parse_due_at(min(upcoming[0] for upcoming in self._upcoming.values()))

    def due_at_or_before(self, moment: datetime) -> list[Partition]:
        limit = format_due_at(moment)
        return sorted(part for part, upcoming in self._upcoming.items() if upcoming[0] <= limit)
