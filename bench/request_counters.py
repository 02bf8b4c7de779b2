"""Request counters for the benches: botocore event hooks on a client (moto reports constant
ConsumedCapacity, so requests and items are counted as they pass)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any


class BackendTimer:
    """CPU time spent inside the emulator (from sending a request to parsing its response).

    moto answers in-process, in the calling thread, from the `before-send` event; our hook runs
    first, and `before-parse` fires once the response is back. What is left of a sweep's CPU
    time is the client side: our code and the SDK, which is what runs on AWS too. CPU time of
    this thread (not wall time) keeps other processes on a shared machine out of the figure.
    """

    def __init__(self, *clients: Any, clock: Callable[[], float] = time.thread_time) -> None:
        self.seconds = 0.0
        self._clock = clock
        self._started: float | None = None
        for client in clients:
            client.meta.events.register_first("before-send", self._send)
            client.meta.events.register("before-parse", self._parse)

    def _send(self, **_: Any) -> None:
        self._started = self._clock()

    def _parse(self, **_: Any) -> None:
        if self._started is not None:
            self.seconds += self._clock() - self._started
            self._started = None


class DynamoCounter:
    """Counts DynamoDB requests and items read, per operation, with botocore event hooks."""

    def __init__(self, client: Any) -> None:
        self.requests: Counter[str] = Counter()
        self.items: Counter[str] = Counter()
        client.meta.events.register("before-call.dynamodb.*", self._before)
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def _before(self, model: Any, **_: Any) -> None:
        self.requests[model.name] += 1

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in ("Query", "Scan"):
            self.items[model.name] += int(parsed.get("ScannedCount", parsed.get("Count", 0)))
        elif model.name == "GetItem":
            self.items[model.name] += 1 if parsed.get("Item") else 0
        elif model.name == "BatchGetItem":
            self.items[model.name] += sum(len(v) for v in parsed.get("Responses", {}).values())
        elif model.name == "TransactGetItems":
            self.items[model.name] += len(parsed.get("Responses", []))

    def reset(self) -> None:
        self.requests.clear()
        self.items.clear()
