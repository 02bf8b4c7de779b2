"""Events to the platform (issue 13): what a community platform is told, and in which order.

An event is `{id, type, created_at, community_id, sequence, data: {object},
previous_attributes?}`. `subject_id` (the subscription, payment, profile or plan the event is
about) orders them: `sequence` grows per subject, so a receiver drops an event whose sequence
is not above the last one it applied for that subject.

Pure: the service layer derives events from a change (services/events.py); the adapters store
and deliver them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SUBSCRIPTION_EVENTS = (
    "subscription.created",
    "subscription.activated",
    "subscription.updated",
    "subscription.renewed",
    "subscription.expiring",
    "subscription.resumed",
    "subscription.payment_failed",
    "subscription.reactivated",
    "subscription.cancelled",
)
MEMBER_EVENTS = (
    "member.added",
    "member.removal_scheduled",
    "member.removal_cancelled",
    "member.removed",
)
ACCESS_EVENTS = ("access.granted", "access.revoked")
PAYMENT_EVENTS = ("payment.succeeded", "payment.failed", "payment.refunded", "payment.disputed")
PLAN_EVENTS = ("plan.created", "plan.updated", "plan.archived")
EVENT_TYPES: tuple[str, ...] = (
    *SUBSCRIPTION_EVENTS,
    *MEMBER_EVENTS,
    *ACCESS_EVENTS,
    *PAYMENT_EVENTS,
    *PLAN_EVENTS,
)

# Several events of one subject can come from one change (a subscription activated with its
# members added): sequence = the subject's stored version * SEQUENCE_STEP + position in the
# change, so it grows with every write and within it.
SEQUENCE_STEP = 1_000_000


def sequence_of(version: int, position: int) -> int:
    if not 0 <= position < SEQUENCE_STEP:
        raise ValueError(f"position {position} out of range")
    return version * SEQUENCE_STEP + position


@dataclass(frozen=True)
class PlatformEvent:
    id: str
    type: str
    created_at: datetime
    community_id: str
    subject_id: str
    sequence: int
    data: Mapping[str, Any]
    previous_attributes: Mapping[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body delivered and listed (`GET /v1/events`)."""
        body: dict[str, Any] = {
            "id": self.id,
            "object": "event",
            "type": self.type,
            "created_at": utc_text(self.created_at),
            "community_id": self.community_id,
            "subject_id": self.subject_id,
            "sequence": self.sequence,
            "data": {"object": dict(self.data)},
        }
        if self.previous_attributes is not None:
            body["previous_attributes"] = dict(self.previous_attributes)
        return body


def utc_text(moment: datetime) -> str:
    """A time in an event, RFC 3339 in UTC with `Z` as the API writes times, to the
    microsecond (what reads it back, e.g. the dunning reminder's grace end, compares exactly)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def matches(enabled_events: tuple[str, ...], event_type: str) -> bool:
    return "*" in enabled_events or event_type in enabled_events


@dataclass(frozen=True)
class AccessCheck:
    """Profiles whose access may have changed in one committed change. The publisher reads
    their access after the commit and sends `access.granted` / `access.revoked` where the
    body changed (one outbox item holds the list, however many members: section in
    docs/events.md)."""

    community_id: str
    profile_ids: tuple[str, ...]
