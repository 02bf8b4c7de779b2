"""Lazy wiring of adapters. Nothing is created until a code path asks for it.

`container()` returns the process-wide Container for the current environment. Each adapter is
a cached property, so a path that never touches Stripe never imports stripe.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any

from chalicelib.config import SecretsProvider, Settings
from chalicelib.services.ports import Clock


class Container:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self._clock_override = clock

    @cached_property
    def secrets(self) -> SecretsProvider:
        return SecretsProvider(self.settings)

    @cached_property
    def dynamodb(self) -> Any:
        from chalicelib.adapters.aws import aws_client

        return aws_client("dynamodb", self.settings)

    @cached_property
    def sqs(self) -> Any:
        from chalicelib.adapters.aws import aws_client

        return aws_client("sqs", self.settings)

    @cached_property
    def clock(self) -> Clock:
        if self._clock_override is not None:
            return self._clock_override
        if self.settings.test_clock_enabled:
            from chalicelib.adapters.clock import StoredTestClock

            return StoredTestClock(self.dynamodb, self.settings.table_name)
        from chalicelib.adapters.clock import SystemClock

        return SystemClock()


_container: Container | None = None
_lock = threading.Lock()


def container() -> Container:
    global _container
    if _container is None:
        with _lock:
            if _container is None:
                _container = Container(Settings.from_env())
    return _container


def override_container(new: Container | None) -> None:
    """Install a container (tests), or forget the current one so the next call rebuilds it."""
    global _container
    with _lock:
        _container = new
