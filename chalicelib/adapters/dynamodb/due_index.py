"""The sparse, write-sharded due index (DESIGN.md sections 5 and 8).

An item carries `due_pk` and `due_at` only while it has a scheduled action; the action's code
REMOVEs both (or moves `due_at`) in the same write that does the work. `due_pk` is
`DUE#<group>#<shard:02d>`, so a sweep for one group queries each shard with
`due_at <= now` and reads only what is due, whatever the table size.

Groups (one EventBridge schedule each, plus the recovery pass):
- renewal: an active subscription at its period end.
- failed_payment: a failed_payment subscription at its next retry or its grace end.
- expiration: an expiring subscription at its period end.
- pending_payment: a payment left pending (recovery pass resolves it from Stripe).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

DueGroup = Literal["renewal", "failed_payment", "expiration", "pending_payment"]
DUE_GROUPS: tuple[DueGroup, ...] = ("renewal", "failed_payment", "expiration", "pending_payment")
DUE_INDEX = "due"
DUE_PK = "due_pk"
DUE_AT = "due_at"
DUE_GROUP = "due_group"


def shard_of(subject_id: str, shards: int) -> int:
    digest = hashlib.sha256(subject_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") % shards


def due_partition(group: DueGroup, shard: int) -> str:
    return f"DUE#{group}#{shard:02d}"


def format_due_at(when: datetime) -> str:
    """Sortable UTC timestamp (microseconds, fixed width) for the index range key."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def due_attributes(subject_id: str, group: DueGroup, when: datetime, shards: int) -> dict[str, Any]:
    """Attributes to SET on an item so it is picked up by `group`'s sweep at `when`."""
    return {
        DUE_PK: due_partition(group, shard_of(subject_id, shards)),
        DUE_AT: format_due_at(when),
        DUE_GROUP: group,
    }


DUE_ATTRIBUTE_NAMES = (DUE_PK, DUE_AT, DUE_GROUP)
REMOVE_DUE_EXPRESSION = f"REMOVE {', '.join(DUE_ATTRIBUTE_NAMES)}"
