"""Stored Stripe events, the de-duplication marker, and the reconciliation cursors.

Item layout (platform items: an event arrives before we know its community):
- event:   pk `WHEVT#<event id>`, sk `WHEVT`; attributes event_id, type, account, community_id,
           status, error, payload (the JSON text; `payload_z`, zlib-compressed bytes, when it
           is over 200 KB), created (Stripe's epoch seconds),
           received_at, processed_at, attempts, expires_at (TTL, epoch seconds).
           gsi1 `WHEVT#STATUS#<status>` / `<received_at>#<id>`  (list by status, newest first)
           gsi2 `WHEVT#ALL` / `<received_at>#<id>`              (list all, newest first)
           gsi3 `WHEVT#TYPE#<type>` / `<received_at>#<id>`      (list by type, newest first)
- cursor:  pk `PLATFORM`, sk `WHEVT_CURSOR#<account id or "platform">`; created_gte (epoch s).

The event item is the de-dup marker. It is written with the condition
`attribute_not_exists(pk) OR status = failed` in the same TransactWriteItems as the event's
effect: a processed or ignored event can never be applied again, while a failed one can be
retried (by Stripe's redelivery, a replay or reconciliation) and then only once.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from chalicelib.adapters.dynamodb.cursors import CursorCodec, Page, key_attributes, query_page
from chalicelib.adapters.dynamodb.items import from_item, to_item, to_value
from chalicelib.domain.webhook_events import EventStatus, WebhookEvent, failed_transiently

EVENT_SK = "WHEVT"
# DynamoDB items hold at most 400 KB; a larger payload is stored compressed (`payload_z`).
INLINE_PAYLOAD_BYTES = 200_000
# A Lambda response holds at most 6 MB: a page of big events ends early (with a cursor).
MAX_PAGE_PAYLOAD_BYTES = 4_000_000
# DynamoDB's item limit, and room for what a record gains after it is first checked (a failure
# reason of at most 1000 characters, processed_at, a longer status).
MAX_ITEM_BYTES = 400 * 1024
RECORD_HEADROOM_BYTES = 4 * 1024
NEW_OR_FAILED = "attribute_not_exists(pk) OR #status = :failed"
BATCH_GET_LIMIT = 100


def event_key(event_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"WHEVT#{event_id}"}, "sk": {"S": EVENT_SK}}


def _cursor_key(account: str | None) -> dict[str, Any]:
    return {"pk": {"S": "PLATFORM"}, "sk": {"S": f"WHEVT_CURSOR#{account or 'platform'}"}}


# Where the next reconciliation run goes on in the community list (a `list` cursor).
_RESUME_KEY = {"pk": {"S": "PLATFORM"}, "sk": {"S": "WHEVT_RESUME"}}


def _timestamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def to_record(event: WebhookEvent) -> dict[str, Any]:
    order = f"{_timestamp(event.received_at)}#{event.id}"
    payload = json.dumps(event.payload, separators=(",", ":"))
    compressed = zlib.compress(payload.encode()) if len(payload) > INLINE_PAYLOAD_BYTES else None
    return to_item(
        {
            "pk": f"WHEVT#{event.id}",
            "sk": EVENT_SK,
            "event_id": event.id,
            "type": event.type,
            "account": event.account,
            "community_id": event.community_id,
            "status": event.status.value,
            "error": event.error,
            "payload": None if compressed else payload,
            "payload_z": compressed,
            "created": event.created,
            "received_at": _timestamp(event.received_at),
            "processed_at": _timestamp(event.processed_at) if event.processed_at else None,
            "attempts": event.attempts,
            "expires_at": int(event.expires_at().timestamp()),
            "gsi1pk": f"WHEVT#STATUS#{event.status.value}",
            "gsi1sk": order,
            "gsi2pk": "WHEVT#ALL",
            "gsi2sk": order,
            "gsi3pk": f"WHEVT#TYPE#{event.type}",
            "gsi3sk": order,
        }
    )


def item_size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it (names + values; numbers at their 21-byte most)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    kind, inner = next(iter(value.items()))
    if kind == "S":
        return len(str(inner).encode())
    if kind == "B":
        return len(inner)
    if kind == "N":
        return 21
    if kind == "M":
        return 3 + item_size(inner) + len(inner)
    if kind == "L":
        return 3 + sum(_value_size(element) + 1 for element in inner)
    return 1  # BOOL, NULL


def record_fits(event: WebhookEvent) -> bool:
    """Whether `event`'s record (compressed if large), in any later status, fits in an item."""
    return item_size(to_record(event)) + RECORD_HEADROOM_BYTES <= MAX_ITEM_BYTES


def from_record(item: dict[str, Any]) -> WebhookEvent:
    return _from_data(from_item(item))


def _from_data(data: dict[str, Any]) -> WebhookEvent:
    received_at = _parse_timestamp(data["received_at"])
    assert received_at is not None
    return WebhookEvent(
        id=data["event_id"],
        type=data["type"],
        account=data.get("account"),
        created=int(data.get("created", 0)),
        payload=json.loads(
            zlib.decompress(bytes(data["payload_z"])) if "payload_z" in data else data["payload"]
        ),
        received_at=received_at,
        status=EventStatus(data["status"]),
        community_id=data.get("community_id"),
        processed_at=_parse_timestamp(data.get("processed_at")),
        error=data.get("error"),
        attempts=int(data.get("attempts", 1)),
    )


class WebhookEventRepository:
    def __init__(
        self,
        client: Any,
        table: str,
        cursors: CursorCodec,
        max_page_bytes: int = MAX_PAGE_PAYLOAD_BYTES,
    ) -> None:
        self._ddb = client
        self._table = table
        self._cursors = cursors
        self._max_page_bytes = max_page_bytes

    def put_entry(self, event: WebhookEvent) -> dict[str, Any]:
        """The TransactWriteItems entry that stores `event` unless it is already done."""
        return {
            "Put": {
                "TableName": self._table,
                "Item": to_record(event),
                "ConditionExpression": NEW_OR_FAILED,
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":failed": to_value(EventStatus.FAILED.value)},
            }
        }

    def fits(self, event: WebhookEvent) -> bool:
        return record_fits(event)

    def put(self, event: WebhookEvent) -> bool:
        """Store `event` on its own (no effect to apply); False when it is already done."""
        from chalicelib.adapters.dynamodb.transactions import is_condition_failure

        entry = self.put_entry(event)["Put"]
        try:
            self._ddb.put_item(**entry)
        except Exception as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def get(self, event_id: str) -> WebhookEvent | None:
        item = self._ddb.get_item(
            TableName=self._table, Key=event_key(event_id), ConsistentRead=True
        ).get("Item")
        return from_record(item) if item else None

    def settled_ids(self, event_ids: Iterable[str]) -> set[str]:
        """Which of `event_ids` are stored as done: any status but a transient failure (that
        one is fed again), in one BatchGetItem per 100 ids."""
        wanted = list(dict.fromkeys(event_ids))
        found: set[str] = set()
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            keys = [event_key(i) for i in wanted[start : start + BATCH_GET_LIMIT]]
            request: dict[str, Any] = {
                self._table: {
                    "Keys": keys,
                    "ProjectionExpression": "event_id, #status, #error",
                    "ExpressionAttributeNames": {"#status": "status", "#error": "error"},
                }
            }
            while request:
                response = self._ddb.batch_get_item(RequestItems=request)
                found |= {
                    i["event_id"]["S"]
                    for i in response["Responses"].get(self._table, [])
                    if not failed_transiently(i["status"]["S"], i.get("error", {}).get("S"))
                }
                request = response.get("UnprocessedKeys") or {}
        return found

    def list_page(
        self, *, status: str | None, event_type: str | None, limit: int, cursor: str | None
    ) -> tuple[list[WebhookEvent], Page]:
        """Newest first; by status (gsi1, type as a filter), by type (gsi3), or all (gsi2).
        A page whose payloads pass `max_page_bytes` ends early, with a cursor to go on."""
        names: dict[str, str] | None = None
        values: dict[str, Any]
        filter_expression = None
        if status is not None:
            index, partition = "gsi1", f"WHEVT#STATUS#{status}"
            if event_type is not None:
                names = {"#type": "type"}
                filter_expression = "#type = :type"
        elif event_type is not None:
            index, partition = "gsi3", f"WHEVT#TYPE#{event_type}"
        else:
            index, partition = "gsi2", "WHEVT#ALL"
        pk_name = f"{index}pk"
        values = {":pk": to_value(partition)}
        if filter_expression:
            values[":type"] = to_value(event_type)
        scope = f"webhook-events:{partition}:{event_type or ''}"
        page = query_page(
            self._ddb,
            self._table,
            self._cursors,
            scope=scope,
            index=index,
            key_condition=f"{pk_name} = :pk",
            values=values,
            names=names,
            filter_expression=filter_expression,
            limit=limit,
            cursor=cursor,
            newest_first=True,
        )
        events = [_from_data(item) for item in page.items]
        size = 0
        for kept, event in enumerate(events):
            size += len(json.dumps(event.payload, separators=(",", ":")))
            if kept and size > self._max_page_bytes:
                last = page.items[kept - 1]
                position = {name: str(last[name]) for name in key_attributes(index)}
                cut = Page(page.items[:kept], True, self._cursors.encode(scope, position))
                return events[:kept], cut
        return events, page

    def reconciliation_cursor(self, account: str | None) -> int | None:
        item = self._ddb.get_item(
            TableName=self._table, Key=_cursor_key(account), ConsistentRead=True
        ).get("Item")
        return int(item["created_gte"]["N"]) if item else None

    def save_reconciliation_cursor(self, account: str | None, created_gte: int) -> None:
        self._ddb.put_item(
            TableName=self._table,
            Item={**_cursor_key(account), "created_gte": {"N": str(created_gte)}},
        )

    def reconciliation_resume(self) -> str | None:
        """The community-list cursor the next reconciliation run starts from (None: the top)."""
        item = self._ddb.get_item(TableName=self._table, Key=_RESUME_KEY, ConsistentRead=True)
        found = item.get("Item")
        return found["communities_after"]["S"] if found else None

    def save_reconciliation_resume(self, communities_after: str | None) -> None:
        if communities_after is None:
            self._ddb.delete_item(TableName=self._table, Key=_RESUME_KEY)
            return
        self._ddb.put_item(
            TableName=self._table,
            Item={**_RESUME_KEY, "communities_after": {"S": communities_after}},
        )
