"""Audit events: one per subscription change, written in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Actor = Literal["api", "scheduler", "webhook"]
ACTORS: tuple[Actor, ...] = ("api", "scheduler", "webhook")

# JSON-like values only, so the repository can store details as a map without guessing.
DetailValue = str | int | bool | None | list[str]


@dataclass(frozen=True)
class AuditEvent:
    """An item of `GET /v1/subscriptions/{id}/events`."""

    at: datetime
    type: str
    from_status: str | None
    to_status: str | None
    actor: Actor
    details: Mapping[str, DetailValue] = field(default_factory=dict)


def audit_event(
    now: datetime,
    event_type: str,
    from_status: str | None,
    to_status: str | None,
    actor: Actor,
    **details: DetailValue,
) -> AuditEvent:
    return AuditEvent(now, event_type, from_status, to_status, actor, details)
