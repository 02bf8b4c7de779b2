"""The one retry loop of the service layer: a read-decide-write step that lost a race.

A unit of work's commit raises `ConcurrentChange` when what it read has moved on (a version or
revision condition failed, or DynamoDB reported a transaction conflict). The step is then run
again from its reads, after a short jittered pause so a crowd of writers spreads out instead of
colliding again. Every service uses this loop and its limit.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from chalicelib.domain.errors import ConcurrentChange

ATTEMPTS = 10
BACKOFF_SECONDS = 0.01
T = TypeVar("T")


def retrying(step: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    for attempt in range(attempts):
        try:
            return step()
        except ConcurrentChange:
            if attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0, BACKOFF_SECONDS * (attempt + 1)))
    raise AssertionError("unreachable")
