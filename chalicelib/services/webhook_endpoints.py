"""Webhook endpoints of a community (issue 13): register, list, change, delete; the event log
and each endpoint's delivery attempts."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

from chalicelib.adapters.dynamodb.platform_events import (
    RETENTION,
    Endpoint,
    EventPage,
    PlatformEventStore,
)
from chalicelib.adapters.webhook_sender import UnsafeUrl
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.platform_events import EVENT_TYPES
from chalicelib.observability import log_config_change
from chalicelib.services.ports import Clock

STATUSES = ("enabled", "disabled")


def new_endpoint_id() -> str:
    return f"we_{secrets.token_hex(10)}"


def new_secret() -> str:
    return f"whsec_{secrets.token_hex(24)}"


def check_enabled_events(enabled_events: Sequence[str]) -> tuple[str, ...]:
    if not enabled_events:
        raise InvalidRequest.for_field("enabled_events", 'List event types, or ["*"].')
    if "*" in enabled_events:
        if len(enabled_events) != 1:
            raise InvalidRequest.for_field("enabled_events", '"*" stands alone.')
        return ("*",)
    for index, event_type in enumerate(enabled_events):
        if event_type not in EVENT_TYPES:
            raise InvalidRequest.for_field(
                f"enabled_events[{index}]", f"Unknown event type {event_type!r}."
            )
    return tuple(dict.fromkeys(enabled_events))


class WebhookEndpoints:
    def __init__(
        self, store: PlatformEventStore, check_url: Callable[[str], None], clock: Clock
    ) -> None:
        self._store = store
        self._check_url = check_url
        self._clock = clock

    def _safe(self, url: str) -> str:
        try:
            self._check_url(url)
        except UnsafeUrl as refused:
            raise InvalidRequest.for_field("url", str(refused)) from None
        return url

    def create(
        self,
        community_id: str,
        *,
        url: str,
        enabled_events: Sequence[str],
        description: str | None,
        notification_email: str | None,
    ) -> Endpoint:
        endpoint = Endpoint(
            id=new_endpoint_id(),
            community_id=community_id,
            url=self._safe(url),
            enabled_events=check_enabled_events(enabled_events),
            status="enabled",
            description=description,
            secret=new_secret(),
            created_at=self._clock.now().replace(microsecond=0),
            notification_email=notification_email,
        )
        self._store.create_endpoint(endpoint)
        log_config_change("webhook_endpoint_created", community_id, endpoint_id=endpoint.id)
        return endpoint

    def page(
        self, community_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[Endpoint], bool, str | None]:
        """`GET /v1/webhook-endpoints`: oldest first, `limit` a page."""
        return self._store.endpoint_page(community_id, limit=limit, cursor=cursor)

    def get(self, community_id: str, endpoint_id: str) -> Endpoint:
        return self._store.get_endpoint(community_id, endpoint_id)

    def update(self, community_id: str, endpoint_id: str, changes: dict[str, Any]) -> Endpoint:
        current = self._store.get_endpoint(community_id, endpoint_id)
        stored: dict[str, Any] = {}
        if "url" in changes:
            stored["url"] = self._safe(changes["url"])
        if "enabled_events" in changes:
            stored["enabled_events"] = list(check_enabled_events(changes["enabled_events"]))
        if "description" in changes:
            stored["description"] = changes["description"]
        if "notification_email" in changes:
            stored["notification_email"] = changes["notification_email"]
        if "status" in changes:
            if changes["status"] not in STATUSES:
                raise InvalidRequest.for_field("status", "enabled or disabled")
            stored["status"] = changes["status"]
        reenable = stored.get("status") == "enabled" and current.status != "enabled"
        updated = self._store.update_endpoint(
            community_id, endpoint_id, stored, now=self._clock.now(), reenable=reenable
        )
        log_config_change(
            "webhook_endpoint_updated",
            community_id,
            endpoint_id=endpoint_id,
            changed=sorted(stored),
            status=updated.status,
        )
        return updated

    def delete(self, community_id: str, endpoint_id: str) -> None:
        self._store.delete_endpoint(community_id, endpoint_id)
        log_config_change("webhook_endpoint_deleted", community_id, endpoint_id=endpoint_id)

    def events(
        self,
        community_id: str,
        *,
        limit: int,
        cursor: str | None,
        event_type: str | None,
        subject_id: str | None,
    ) -> EventPage:
        since = self._clock.now() - RETENTION
        return self._store.list_events(
            community_id,
            limit=limit,
            cursor=cursor,
            event_type=event_type,
            subject_id=subject_id,
            since=since,
        )

    def deliveries(
        self, community_id: str, endpoint_id: str, *, limit: int, cursor: str | None
    ) -> EventPage:
        self._store.get_endpoint(community_id, endpoint_id)
        return self._store.attempts(community_id, endpoint_id, limit=limit, cursor=cursor)


__all__ = ["WebhookEndpoints"]
