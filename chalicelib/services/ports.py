"""Ports: what the service layer needs from the outside world."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class AdjustableClock(Clock, Protocol):
    def advance_to(self, target: datetime) -> datetime:
        """Move the clock forward to `target` (never back); return the new now."""
        ...
