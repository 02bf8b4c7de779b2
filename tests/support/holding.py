"""Hand-written helpers that watch or hold work in progress: a caller held mid-way, and a
count of the DynamoDB requests a client sends."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Held:
    """Holds the first caller of `hold` until released (a publisher, drainer or read stopped
    mid-way); later callers go on at once."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self._first = True

    def hold(self, **_: Any) -> None:
        if self._first:
            self._first = False
            self.entered.set()
            assert self.release.wait(10)


class DynamoRequests:
    """Counts DynamoDB operations with a botocore event hook (what moto cannot report)."""

    def __init__(self, client: Any) -> None:
        self.ops: Counter[str] = Counter()
        client.meta.events.register("before-call.dynamodb.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.ops[model.name] += 1

    @property
    def count(self) -> int:
        return sum(self.ops.values())
