"""What the scheduled jobs need from storage (adapters/dynamodb/due_index.py implements them).

The jobs (sweeps, worker, test clock) hold no DynamoDB request shapes: they read the due index,
keep sweep cursors and hold the advance lease through these.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from chalicelib.adapters.dynamodb.due_index import DueGroup, DuePage, SweepCursor


class DueReader(Protocol):
    def due_page(
        self,
        group: DueGroup,
        shard: int,
        now: datetime,
        limit: int,
        start_key: dict[str, Any] | None = None,
        *,
        after: str | None = None,
    ) -> DuePage:
        """One page of a shard's items due at `now` (strictly after `after`), oldest first."""
        ...

    def first_due(self, group: DueGroup, shard: int, after: datetime, until: str) -> str | None:
        """The earliest `due_at` of the shard in (after, until], or None."""
        ...

    def upcoming_due(
        self, group: DueGroup, shard: int, after: datetime, until: str, limit: int
    ) -> list[str]:
        """The earliest `limit` `due_at` values of the shard in (after, until], oldest first."""
        ...

    def due_entry(self, pk: str, sk: str) -> tuple[DueGroup, int, str] | None:
        """Where one item is due now: (group, shard, due_at), or None when it is not due."""
        ...

    def is_due(self, pk: str, sk: str, group: DueGroup, now: datetime) -> bool:
        """Whether one item is still due for `group` at `now` (a consistent read)."""
        ...


class CursorStore(Protocol):
    def load(self, group: DueGroup) -> SweepCursor | None: ...

    def save(
        self, group: DueGroup, now: datetime, shards: dict[int, str], *, full: bool
    ) -> None: ...


class Lease(Protocol):
    def take(self, seconds: int) -> bool:
        """True when taken; False while another holder's lease runs."""
        ...

    def release(self) -> None: ...

    def held(self) -> bool: ...
