"""The work-queue message: one due item of one group, as a sweep saw it."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from chalicelib.adapters.dynamodb.due_index import DUE_GROUPS, DueEntry, DueGroup


class PoisonMessage(ValueError):
    """A message the worker can never process (malformed, unknown group)."""


@dataclass(frozen=True)
class Received:
    """One message as received from the work queue."""

    body: str
    receipt_handle: str
    message_id: str = ""  # what a batch item failure names


class BatchFailed(RuntimeError):
    """Some messages of a batch failed; the others were already deleted from the queue."""

    def __init__(
        self, failed_receipts: list[str], errors: list[str], outcomes: Counter[str]
    ) -> None:
        super().__init__(f"{len(failed_receipts)} message(s) failed: {errors}")
        self.failed_receipts = failed_receipts
        self.outcomes = outcomes  # of the whole batch, "failed" included


@dataclass(frozen=True)
class DueMessage:
    group: DueGroup
    pk: str
    sk: str
    community_id: str
    subject_id: str
    due_at: str
    # The subscription as the sweep read it (its `data` and `version`), so a renewal needs no
    # read of its own; every write is conditional on `version`, so a stale copy only loses.
    snapshot: dict[str, Any] | None = None
    # Rate control (DESIGN.md): the epoch second before which the worker does not run it (the
    # sweep spaces each community's messages at its Stripe budget; past SQS's 15-minute delay
    # the worker sends it on again), and how often a worker has deferred it already.
    not_before: float | None = None
    deferrals: int = 0

    def to_json(self) -> str:
        data = asdict(self)
        for optional in ("snapshot", "not_before"):
            if data[optional] is None:
                del data[optional]
        if not self.deferrals:
            del data["deferrals"]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, body: str) -> DueMessage:
        try:
            data: Any = json.loads(body)
        except ValueError:
            raise PoisonMessage("message body is not JSON") from None
        if not isinstance(data, dict):
            raise PoisonMessage("message body is not a JSON object")
        fields = ("group", "pk", "sk", "community_id", "subject_id", "due_at")
        missing = [name for name in fields if not isinstance(data.get(name), str)]
        if missing or set(data) - {*fields, "snapshot", "not_before", "deferrals"}:
            raise PoisonMessage(f"message fields wrong: missing {missing}, got {sorted(data)}")
        snapshot = data.get("snapshot")
        if snapshot is not None and not (
            isinstance(snapshot, dict)
            and isinstance(snapshot.get("data"), str)
            and isinstance(snapshot.get("version"), int)
        ):
            raise PoisonMessage("snapshot must be {data: str, version: int}")
        not_before = data.get("not_before")
        if not_before is not None and not isinstance(not_before, int | float):
            raise PoisonMessage("not_before must be a number (epoch seconds)")
        if not isinstance(data.get("deferrals", 0), int):
            raise PoisonMessage("deferrals must be an integer")
        if data["group"] not in DUE_GROUPS:
            raise PoisonMessage(f"unknown due group {data['group']!r}")
        return cls(**data)


def community_of(pk: str) -> str:
    """Tenant items have `pk` = `C#<community_id>#...` (schema.py's key convention)."""
    parts = pk.split("#")
    if len(parts) < 2 or parts[0] != "C" or not parts[1]:
        raise PoisonMessage(f"not a tenant key: {pk!r}")
    return parts[1]


def subject_of(entry: DueEntry) -> str:
    """The id of the subscription or payment an index entry belongs to (its `id` attribute)."""
    if not entry.subject_id:
        raise PoisonMessage(f"due item without an id: {entry.pk!r}/{entry.sk!r}")
    return entry.subject_id
