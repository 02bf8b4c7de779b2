"""Clocks: the wall clock, a fixed clock for unit tests, and the stored test clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.domain.errors import InvalidRequest

TEST_CLOCK_KEY = {"pk": {"S": "PLATFORM"}, "sk": {"S": "TEST_CLOCK"}}
TEST_CLOCK_CACHE_SECONDS = 1.0


def wall_time() -> datetime:
    return datetime.now(UTC)


class SystemClock:
    def now(self) -> datetime:
        return wall_time()


class _Pin(threading.local):
    """A time one thread reads as now (`pinned`); None: the clock's own."""

    at: datetime | None = None


@contextmanager
def _pinned(pin: _Pin, at: datetime) -> Iterator[None]:
    previous = pin.at
    pin.at = at.astimezone(UTC)
    try:
        yield
    finally:
        pin.at = previous


class FixedClock:
    """A clock that only moves when told to (unit and integration tests)."""

    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(UTC)
        self._pin = _Pin()

    def now(self) -> datetime:
        return self._pin.at or self._now

    def pinned(self, at: datetime) -> AbstractContextManager[None]:
        """This thread reads `at` as now inside the block (see ports.AdjustableClock)."""
        return _pinned(self._pin, at)

    def advance_to(self, target: datetime) -> datetime:
        if target < self._now:
            raise InvalidRequest.for_field("to", "the clock never moves back")
        self._now = target.astimezone(UTC)
        return self._now

    def move_forward_to(self, target: datetime) -> datetime:
        self._now = max(self._now, target.astimezone(UTC))
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        return self.advance_to(self._now + delta)


class StoredTestClock:
    """Wall clock plus an offset stored in DynamoDB, shared by every process of a local stage.

    The offset is cached for a second so a request does not pay a read for every `now()`;
    advancing updates the cache at once in this process. `wall` is the time it adds the offset
    to (tests give one they control). With a `start` (BILLING_TEST_CLOCK_START), the first
    process to read a table with no offset yet stores the one that makes `now()` equal `start`
    at that moment; every other process reads that one, so the API and the scheduler share one
    clock. Without a start and no offset, it is the wall clock.
    """

    def __init__(
        self,
        dynamodb_client: Any,
        table_name: str,
        wall: Callable[[], datetime] = wall_time,
        start: datetime | None = None,
        cache_seconds: float = TEST_CLOCK_CACHE_SECONDS,
    ) -> None:
        self._ddb = dynamodb_client
        self._cache_seconds = cache_seconds
        self._table = table_name
        self._wall = wall
        self._start = None if start is None else start.astimezone(UTC)
        self._lock = threading.Lock()
        self._offset: timedelta | None = None
        self._loaded_at = 0.0
        self._reading = False
        self._pin = _Pin()

    def now(self) -> datetime:
        if self._pin.at is not None:
            return self._pin.at
        offset = self._current_offset()  # first: storing a start's offset reads the wall clock
        return self._wall() + offset

    def pinned(self, at: datetime) -> AbstractContextManager[None]:
        """This thread reads `at` as now inside the block (see ports.AdjustableClock)."""
        return _pinned(self._pin, at)

    def advance_to(self, target: datetime) -> datetime:
        """Move to `target`; a target behind now is refused (400 naming `to`)."""
        return self._move(target, refuse_passed=True)

    def move_forward_to(self, target: datetime) -> datetime:
        """Move to `target` if still ahead, else stay; one wall reading decides (no race)."""
        return self._move(target, refuse_passed=False)

    def _move(self, target: datetime, *, refuse_passed: bool) -> datetime:
        offset = self._current_offset()
        current = self._wall() + offset
        if target <= current:
            if refuse_passed and target < current:
                raise InvalidRequest.for_field("to", "the test clock never moves back")
            return current
        offset += target - current
        self._ddb.put_item(
            TableName=self._table,
            Item={**TEST_CLOCK_KEY, "offset_seconds": {"N": repr(offset.total_seconds())}},
        )
        with self._lock:
            self._offset = offset
            self._loaded_at = time.monotonic()
        return target

    def _current_offset(self) -> timedelta:
        """The cached offset, read again once it is a second old. One thread reads it; the
        others go on with the cached one meanwhile instead of queueing behind the read (a
        busy local stack had most of its request threads waiting here)."""
        with self._lock:
            fresh = time.monotonic() - self._loaded_at < self._cache_seconds
            if self._offset is not None and (fresh or self._reading):
                return self._offset
            self._reading = True
            read_started = time.monotonic()
        try:
            offset = timedelta(seconds=self._stored_seconds())
        finally:
            with self._lock:
                self._reading = False
        with self._lock:
            # An advance of this process that stored a new offset meanwhile keeps its own.
            if self._offset is None or self._loaded_at <= read_started:
                self._offset = offset
                self._loaded_at = time.monotonic()
            return self._offset

    def _stored_seconds(self) -> float:
        item = self._read_item()
        if item:
            return float(item["offset_seconds"]["N"])
        if self._start is not None:
            return self._store_start_offset(self._start)
        return 0.0

    def _read_item(self) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._ddb.get_item(
            TableName=self._table, Key=TEST_CLOCK_KEY, ConsistentRead=True
        ).get("Item")
        return item

    def _store_start_offset(self, start: datetime) -> float:
        """Store the offset that starts the clock at `start`, unless another process was first."""
        from botocore.exceptions import ClientError

        seconds = (start - self._wall()).total_seconds()
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={**TEST_CLOCK_KEY, "offset_seconds": {"N": repr(seconds)}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            item = self._read_item()
            return float(item["offset_seconds"]["N"]) if item else seconds
        return seconds
