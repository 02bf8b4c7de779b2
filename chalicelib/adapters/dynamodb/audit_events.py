"""Audit events of a subscription (`GET /v1/subscriptions/{id}/events`).

Item layout (in the subscription's own partition, so one Query reads the trail in order):
    pk = C#<community_id>#SUB#<subscription_id>
    sk = EVT#<at, microseconds>#<random>
    type, at, from_status, to_status, actor, details (map)

Events are only ever written inside the transaction that makes the change they describe
(`put_entry` returns the TransactWriteItems entry); they are never updated or deleted.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from chalicelib.adapters.dynamodb.codec import format_time
from chalicelib.adapters.dynamodb.cursors import CursorCodec, Page, query_page
from chalicelib.adapters.dynamodb.items import to_item, to_value
from chalicelib.domain.events import AuditEvent

EVENT_PREFIX = "EVT#"


def subscription_partition(community_id: str, subscription_id: str) -> str:
    return f"C#{community_id}#SUB#{subscription_id}"


def _sort_key(at: datetime, version: int, with_change: bool) -> str:
    """Time, then the subscription version the event goes with, so events of one instant keep
    the order of the changes; an event that changes no subscription sorts after its version."""
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # Side events of one version (refunds, late payment news) keep their writing order.
    tail = "0" if with_change else f"1{time.time_ns():020d}{secrets.token_hex(2)}"
    return f"{EVENT_PREFIX}{stamp}#{version:010d}#{tail}"


def put_entry(
    table: str,
    community_id: str,
    subscription_id: str,
    event: AuditEvent,
    version: int,
    with_change: bool,
) -> dict[str, Any]:
    """The TransactWriteItems entry that records `event` (never overwrites another event).

    `version`: the subscription version written with the event (`with_change`), or the
    version current when the event changes no subscription."""
    item = {
        "pk": subscription_partition(community_id, subscription_id),
        "sk": _sort_key(event.at, version, with_change),
        "type": event.type,
        "at": format_time(event.at),
        "from_status": event.from_status,
        "to_status": event.to_status,
        "actor": event.actor,
        "details": {key: value for key, value in event.details.items() if value is not None},
    }
    return {
        "Put": {
            "TableName": table,
            "Item": to_item(item),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def event_view(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": item["at"],
        "type": item["type"],
        "from_status": item.get("from_status"),
        "to_status": item.get("to_status"),
        "actor": item["actor"],
        "details": item.get("details") or {},
    }


class AuditEventRepository:
    def __init__(self, client: Any, table: str, cursors: CursorCodec) -> None:
        self._client = client
        self._table = table
        self._cursors = cursors

    def list(self, community_id: str, subscription_id: str, limit: int, cursor: str | None) -> Page:
        """Oldest first; items are `event_view` dicts."""
        partition = subscription_partition(community_id, subscription_id)
        page = query_page(
            self._client,
            self._table,
            self._cursors,
            scope=f"events:{partition}",
            key_condition="pk = :pk AND begins_with(sk, :prefix)",
            values={":pk": to_value(partition), ":prefix": to_value(EVENT_PREFIX)},
            limit=limit,
            cursor=cursor,
            consistent=True,
        )
        return Page([event_view(i) for i in page.items], page.has_more, page.next_cursor)
