"""Ports: what the service layer needs from the outside world."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


@runtime_checkable
class AdjustableClock(Clock, Protocol):
    def move_forward_to(self, target: datetime) -> datetime:
        """Move the clock to `target` if that is still ahead, else leave it; return the new now.

        One reading decides, so a target the clock passed while the caller worked (a due time
        within the processing latency) is no error: the clock only ever moves forward.
        """
        ...
