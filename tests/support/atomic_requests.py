"""Serialize requests at the AWS boundary for tests that race threads on in-process moto."""

from __future__ import annotations

import threading
from typing import Any


class AtomicRequests:
    """Makes in-process moto answer one request at a time, as DynamoDB is atomic per request.

    moto's in-process backend is not thread-safe (a transaction deep-copies the table while
    another thread writes it); the race that matters here is between whole requests, which
    this keeps: conditional writes of two workers still interleave request by request.

    The lock is taken when a request is sent and given back when its answer is parsed, or when
    the call ends in an error before that (moto raised, the connection failed: botocore's
    `after-call-error`); a retry of a request whose send failed does not take it twice. A lock
    left held would stop every later request of the run (a soak hung at its end this way).
    """

    def __init__(self, *clients: Any) -> None:
        self._lock = threading.Lock()
        self._held = threading.local()
        for client in clients:
            client.meta.events.register_first("before-send", self._acquire)
            client.meta.events.register_first("before-parse", self._release)
            client.meta.events.register_first("after-call-error", self._release)

    def _acquire(self, **_: Any) -> None:
        if getattr(self._held, "taken", False):
            return
        self._lock.acquire()
        self._held.taken = True

    def _release(self, **_: Any) -> None:
        if getattr(self._held, "taken", False):
            self._held.taken = False
            self._lock.release()
