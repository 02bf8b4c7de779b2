"""A Stripe event as we store it: what arrived, where it was routed, and what came of it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

# Longer than Stripe keeps events (30 days in the Events API, 3 days of webhook retries), so
# every event Stripe can still deliver or list finds its record and is not applied twice.
RETENTION = timedelta(days=45)


class EventStatus(enum.StrEnum):
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


# The reason a failed event record starts with when a retry can fix it (throttling, a
# dependency down): Stripe redelivers it, and the reconciliation job feeds it again.
TRANSIENT_FAILURE = "transient failure"


def failed_transiently(status: str, error: str | None) -> bool:
    return status == EventStatus.FAILED and (error or "").startswith(TRANSIENT_FAILURE)


@dataclass(frozen=True)
class Outcome:
    """What handling one event came to (before it is stored)."""

    status: EventStatus
    community_id: str | None = None
    error: str | None = None

    @classmethod
    def processed(cls, community_id: str | None) -> Outcome:
        return cls(EventStatus.PROCESSED, community_id)

    @classmethod
    def ignored(cls, reason: str, community_id: str | None = None) -> Outcome:
        return cls(EventStatus.IGNORED, community_id, reason)

    @classmethod
    def failed(cls, reason: str, community_id: str | None = None) -> Outcome:
        return cls(EventStatus.FAILED, community_id, reason)


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str
    account: str | None
    created: int
    payload: dict[str, Any]
    received_at: datetime
    status: EventStatus = EventStatus.FAILED
    community_id: str | None = None
    processed_at: datetime | None = None
    error: str | None = None
    attempts: int = 1

    @classmethod
    def received(cls, payload: dict[str, Any], now: datetime) -> WebhookEvent:
        created = payload.get("created")
        return cls(
            id=str(payload["id"]),
            type=str(payload["type"]),
            account=payload.get("account") or None,
            created=created if isinstance(created, int) and not isinstance(created, bool) else 0,
            payload=payload,
            received_at=now,
        )

    def concluded(self, outcome: Outcome, now: datetime) -> WebhookEvent:
        return replace(
            self,
            status=outcome.status,
            community_id=outcome.community_id or self.community_id,
            error=outcome.error,
            processed_at=now,
        )

    @property
    def data_object(self) -> dict[str, Any]:
        data = self.payload.get("data") or {}
        obj = data.get("object") if isinstance(data, dict) else None
        return obj if isinstance(obj, dict) else {}

    def expires_at(self) -> datetime:
        return self.received_at + RETENTION
