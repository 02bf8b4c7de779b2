"""Serialize requests at the AWS boundary for tests that race threads on in-process moto."""

from __future__ import annotations

import threading
from typing import Any


class AtomicRequests:
    """Makes in-process moto answer one request at a time, as DynamoDB is atomic per request.

    moto's in-process backend is not thread-safe (a transaction deep-copies the table while
    another thread writes it); the race that matters here is between whole requests, which
    this keeps: conditional writes of two workers still interleave request by request.
    """

    def __init__(self, *clients: Any) -> None:
        self._lock = threading.Lock()
        for client in clients:
            client.meta.events.register_first("before-send", self._acquire)
            client.meta.events.register_first("before-parse", self._release)

    def _acquire(self, **_: Any) -> None:
        self._lock.acquire()

    def _release(self, **_: Any) -> None:
        self._lock.release()
