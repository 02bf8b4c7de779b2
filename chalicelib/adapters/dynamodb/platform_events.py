"""Events to the platform in the table: the outbox, the event log, endpoints and their queues.

Item layout (docs/events.md):
- outbox record (ONE per committed change, written in the change's transaction)
    pk=`C#<cid>#OUTBOX#<stream key>`  sk=`REC#<position>`
    attrs: type="outbox_record", community_id, events_gz (gzip JSON list of event bodies),
    access_profiles [..], expires_at (30 days);
    while undelivered: gsi3pk=`OUTBOX#<shard>` gsi3sk=`<position>` (sparse; REMOVEd once
    published). The stream key is the subscription (or plan) the change belongs to, so one
    subject's records share a partition key and reach a Streams shard in order.
- event (written by the publisher, idempotent Put)
    pk=`C#<cid>#EVENTS#<subject_id>`  sk=`EVT#<sequence:020d>`
    attrs: type="platform_event", id, event_type, created_at, body (JSON), expires_at;
    gsi1pk=`C#<cid>#EVENTS` gsi1sk=`<position>` (all, newest first);
    gsi2pk=`EVT#<event_id>` gsi2sk=`EVT` (by id)
- profile access as last published (the publisher's own state; sequence of access.* events)
    pk=`C#<cid>#EVENTS#<profile_id>`  sk=`ACCESS`  attrs: body (JSON), sequence
- endpoint  pk=`C#<cid>#WE#<we_id>`  sk=`WE`
    attrs: type="webhook_endpoint", id, url, enabled_events, status, description, secret,
    created_at, queued (enqueue counter), lease_until, failing_since, notified_at;
    gsi1pk=`C#<cid>#WEBHOOK_ENDPOINTS` gsi1sk=`<created_at>#<we_id>`;
    while it has deliveries to make: gsi3pk=`WE_DUE` gsi3sk=`<next_drain_at>#<cid>#<we_id>`
- queued delivery  pk=`C#<cid>#WE#<we_id>#Q`  sk=`<position>`  attrs: event_id, body, attempts
- delivery attempt  pk=`C#<cid>#WE#<we_id>#ATTEMPTS`  sk=`<attempted_at>#<event_id>#<n>`
    attrs: event_id, event_type, status, response_status, duration_ms, response_body (1 KiB),
    error, attempt, expires_at (30 days)

`position` = `<created_at>#<sequence:020d>#<event id>`: time order across subjects, sequence
order within one (one subject's changes are serialized by its version).
"""

from __future__ import annotations

import gzip
import json
import secrets
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.adapters.dynamodb.cursors import CursorCodec, query_page
from chalicelib.adapters.dynamodb.items import from_item, to_item, to_value
from chalicelib.adapters.dynamodb.transactions import (
    MAX_TRANSACTION_ITEMS,
    ConditionsFailed,
    commit_transaction,
    is_condition_failure,
)
from chalicelib.domain.errors import ConcurrentChange, NotFound
from chalicelib.domain.platform_events import AccessCheck, PlatformEvent, utc_text

RETENTION = timedelta(days=30)
OUTBOX_SHARDS = 4
DUE_ENDPOINTS = "WE_DUE"
Entry = dict[str, Any]


def _given(**arguments: Any) -> dict[str, Any]:
    """Request arguments without the empty ones (boto3 refuses None)."""
    return {name: value for name, value in arguments.items() if value}


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _queued_and_due(endpoint: Endpoint, count: int, now: datetime) -> dict[str, Any]:
    """The endpoint update of `enqueue`: `count` more queued and, unless it was disabled by
    failures, due now (or when its backoff ends)."""
    if endpoint.disabled_by_failures:
        return {
            "UpdateExpression": "ADD queued :n",
            "ExpressionAttributeValues": {":n": to_value(count)},
        }
    return {
        "UpdateExpression": "ADD queued :n SET gsi3pk = :due, gsi3sk = if_not_exists(gsi3sk, :at)",
        "ExpressionAttributeValues": {
            ":n": to_value(count),
            ":due": to_value(DUE_ENDPOINTS),
            ":at": to_value(f"{_time(now)}#{endpoint.community_id}#{endpoint.id}"),
        },
    }


def position_of(event: PlatformEvent) -> str:
    return f"{_time(event.created_at)}#{event.sequence:020d}#{event.id}"


def _expires(moment: datetime) -> int:
    return int((moment + RETENTION).timestamp())


def event_from_body(body: dict[str, Any]) -> PlatformEvent:
    return PlatformEvent(
        id=body["id"],
        type=body["type"],
        created_at=datetime.fromisoformat(body["created_at"]),
        community_id=body["community_id"],
        subject_id=body["subject_id"],
        sequence=int(body["sequence"]),
        data=body["data"]["object"],
        previous_attributes=body.get("previous_attributes"),
    )


# --- the outbox record: one item per change, staged into the change's transaction ---------------
@dataclass(frozen=True)
class OutboxRecord:
    pk: str
    sk: str
    community_id: str
    events: tuple[PlatformEvent, ...]
    access_profiles: tuple[str, ...]


def _stream_key(event: PlatformEvent) -> str:
    subscription_id = event.data.get("subscription_id")
    return str(subscription_id) if subscription_id else event.subject_id


def outbox_entry(
    table: str, events: Sequence[PlatformEvent], checks: Sequence[AccessCheck], now: datetime
) -> Entry | None:
    """The Put of one change's outbox record (None when the change reports nothing)."""
    if not events and not checks:
        return None
    community_id = events[0].community_id if events else checks[0].community_id
    profiles = sorted({pid for check in checks for pid in check.profile_ids})
    stream_key = _stream_key(events[0]) if events else f"ACCESS#{profiles[0]}"
    position = (
        position_of(events[0])
        if events
        else f"{_time(now)}#{0:020d}#{stream_key}#{secrets.token_hex(6)}"
    )
    payload = gzip.compress(json.dumps([e.body() for e in events]).encode(), mtime=0)
    shard = zlib.crc32(stream_key.encode()) % OUTBOX_SHARDS
    attributes: dict[str, Any] = {
        "pk": f"C#{community_id}#OUTBOX#{stream_key}",
        "sk": f"REC#{position}",
        "type": "outbox_record",
        "community_id": community_id,
        "events_gz": payload,
        "access_profiles": profiles or None,
        "expires_at": _expires(now),
        "gsi3pk": f"OUTBOX#{shard}",
        "gsi3sk": position,
    }
    return {"Put": {"TableName": table, "Item": to_item(attributes)}}


def record_from_item(item: dict[str, Any]) -> OutboxRecord:
    data = from_item(item)
    raw = data["events_gz"]
    bodies = json.loads(gzip.decompress(bytes(raw)))
    return OutboxRecord(
        pk=data["pk"],
        sk=data["sk"],
        community_id=data["community_id"],
        events=tuple(event_from_body(body) for body in bodies),
        access_profiles=tuple(data.get("access_profiles") or ()),
    )


# --- endpoints ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    id: str
    community_id: str
    url: str
    enabled_events: tuple[str, ...]
    status: str
    description: str | None
    secret: str
    created_at: datetime
    notification_email: str | None = None
    failing_since: datetime | None = None
    next_drain_at: datetime | None = None
    queued: int = 0

    @property
    def disabled_by_failures(self) -> bool:
        """Disabled after days of nothing but failures (not by its owner): it keeps its queue,
        and enabling it again sends what it missed, in order."""
        return self.status == "disabled" and self.failing_since is not None


@dataclass(frozen=True)
class PublishedAccess:
    """A profile's access as last published, and the access event that told it."""

    body: dict[str, Any]
    sequence: int
    told_by: str  # the outbox record (sk) that produced `event`
    event: PlatformEvent


@dataclass(frozen=True)
class QueuedDelivery:
    sk: str
    event_id: str
    body: str
    attempts: int


@dataclass(frozen=True)
class Attempt:
    event_id: str
    event_type: str
    attempt: int
    status: str  # "succeeded" | "failed"
    attempted_at: datetime
    duration_ms: int
    response_status: int | None
    response_body: str
    error: str | None
    redelivery: bool = False


@dataclass
class EventPage:
    items: list[dict[str, Any]] = field(default_factory=list)
    has_more: bool = False
    next_cursor: str | None = None


def _endpoint_key(community_id: str, endpoint_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"C#{community_id}#WE#{endpoint_id}"}, "sk": {"S": "WE"}}


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _endpoint_from(data: dict[str, Any]) -> Endpoint:
    failing = data.get("failing_since")
    due = (data.get("gsi3sk") or "").split("#")[0]
    return Endpoint(
        id=data["id"],
        community_id=data["community_id"],
        url=data["url"],
        enabled_events=tuple(data["enabled_events"]),
        status=data["status"],
        description=data.get("description"),
        secret=data["secret"],
        created_at=datetime.fromisoformat(data["created_at"]),
        notification_email=data.get("notification_email"),
        failing_since=datetime.fromisoformat(failing) if failing else None,
        next_drain_at=_parse_time(due) if due else None,
        queued=int(data.get("queued", 0)),
    )


def _claim_update(table: str, record: OutboxRecord, now: datetime, seconds: int) -> dict[str, Any]:
    return {
        "TableName": table,
        "Key": {"pk": {"S": record.pk}, "sk": {"S": record.sk}},
        "UpdateExpression": "SET claimed_until = :until",
        "ConditionExpression": (
            "attribute_exists(gsi3pk) AND "
            "(attribute_not_exists(claimed_until) OR claimed_until < :now)"
        ),
        "ExpressionAttributeValues": {
            ":until": to_value(_time(now + timedelta(seconds=seconds))),
            ":now": to_value(_time(now)),
        },
    }


def _published_update(table: str, record: OutboxRecord) -> dict[str, Any]:
    return {
        "TableName": table,
        "Key": {"pk": {"S": record.pk}, "sk": {"S": record.sk}},
        "UpdateExpression": "REMOVE gsi3pk, gsi3sk",
    }


class PlatformEventStore:
    """Everything the publisher and the events API read and write (outside the change's
    transaction, which only ever carries `outbox_entry`)."""

    def __init__(self, client: Any, table: str, cursors: CursorCodec) -> None:
        self._client = client
        self._table = table
        self._cursors = cursors

    @property
    def table(self) -> str:
        return self._table

    # --- outbox ---------------------------------------------------------------------------
    def undelivered(self, limit: int = 100) -> list[OutboxRecord]:
        """Outbox records not yet published, oldest first (the local publisher's feed)."""
        found: list[tuple[str, OutboxRecord]] = []
        for shard in range(OUTBOX_SHARDS):
            response = self._client.query(
                TableName=self._table,
                IndexName="gsi3",
                KeyConditionExpression="gsi3pk = :pk",
                ExpressionAttributeValues={":pk": to_value(f"OUTBOX#{shard}")},
                Limit=limit,
            )
            for item in response.get("Items", []):
                found.append((item["gsi3sk"]["S"], record_from_item(item)))
        found.sort(key=lambda pair: pair[0])
        return [record for _, record in found[:limit]]

    def claim(self, record: OutboxRecord, now: datetime, seconds: int) -> bool:
        """Take an unpublished record for `seconds` (two local publishers never both send it)."""
        try:
            self._client.update_item(**_claim_update(self._table, record, now, seconds))
        except Exception as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def claim_many(
        self, records: Sequence[OutboxRecord], now: datetime, seconds: int
    ) -> list[OutboxRecord]:
        """`claim` for many records at once: one transaction per 100; a record whose condition
        fails (another publisher holds it, or it was published) is left out and the rest
        taken. Returns the records taken, in their order."""
        taken: list[OutboxRecord] = []
        for start in range(0, len(records), MAX_TRANSACTION_ITEMS):
            chunk = list(records[start : start + MAX_TRANSACTION_ITEMS])
            while chunk:
                entries = [
                    {"Update": _claim_update(self._table, record, now, seconds)} for record in chunk
                ]
                try:
                    commit_transaction(self._client, entries)
                except ConditionsFailed as failed:
                    chunk = [r for n, r in enumerate(chunk) if n not in failed.entries]
                    continue
                except ConcurrentChange:
                    # A lost race (a transaction conflict): this hundred one by one.
                    taken += [r for r in chunk if self.claim(r, now, seconds)]
                    break
                taken += chunk
                break
        return taken

    def unclaim(self, record: OutboxRecord) -> None:
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": record.pk}, "sk": {"S": record.sk}},
            UpdateExpression="REMOVE claimed_until",
        )

    def mark_published(self, record: OutboxRecord) -> None:
        self._client.update_item(**_published_update(self._table, record))

    def mark_many_published(self, records: Sequence[OutboxRecord]) -> None:
        """`mark_published` for many records: one transaction per 100."""
        if len(records) == 1:
            self.mark_published(records[0])
            return
        for start in range(0, len(records), MAX_TRANSACTION_ITEMS):
            chunk = records[start : start + MAX_TRANSACTION_ITEMS]
            commit_transaction(
                self._client, [{"Update": _published_update(self._table, r)} for r in chunk]
            )

    # --- the event log ----------------------------------------------------------------------
    def event_entry(self, event: PlatformEvent) -> Entry:
        attributes = {
            "pk": f"C#{event.community_id}#EVENTS#{event.subject_id}",
            "sk": f"EVT#{event.sequence:020d}",
            "type": "platform_event",
            "id": event.id,
            "event_type": event.type,
            "subject_id": event.subject_id,
            "created_at": event.created_at.isoformat(),
            "body": json.dumps(event.body()),
            "expires_at": _expires(event.created_at),
            "gsi1pk": f"C#{event.community_id}#EVENTS",
            "gsi1sk": position_of(event),
            "gsi2pk": f"EVT#{event.id}",
            "gsi2sk": "EVT",
        }
        return {"PutRequest": {"Item": to_item(attributes)}}

    def store_events(self, events: Iterable[PlatformEvent]) -> None:
        """Idempotent: the same event is the same item."""
        self._batch_write([self.event_entry(event) for event in events])

    def find_event(self, community_id: str, event_id: str) -> PlatformEvent:
        response = self._client.query(
            TableName=self._table,
            IndexName="gsi2",
            KeyConditionExpression="gsi2pk = :pk",
            ExpressionAttributeValues={":pk": to_value(f"EVT#{event_id}")},
        )
        for item in response.get("Items", []):
            data = from_item(item)
            if data["pk"].startswith(f"C#{community_id}#EVENTS#"):
                return event_from_body(json.loads(data["body"]))
        raise NotFound(f"Event {event_id} not found.")

    def list_events(
        self,
        community_id: str,
        *,
        limit: int,
        cursor: str | None,
        event_type: str | None,
        subject_id: str | None,
        since: datetime,
    ) -> EventPage:
        values: dict[str, Any] = {":since": to_value(since.isoformat())}
        filters = ["created_at >= :since"]
        if event_type:
            filters.append("event_type = :type")
            values[":type"] = to_value(event_type)
        index: str | None
        if subject_id:
            # One subject's events are its own partition; a community's, a gsi1 partition.
            index, key_condition = None, "pk = :pk AND begins_with(sk, :evt)"
            values[":pk"] = to_value(f"C#{community_id}#EVENTS#{subject_id}")
            values[":evt"] = to_value("EVT#")
        else:
            index, key_condition = "gsi1", "gsi1pk = :pk"
            values[":pk"] = to_value(f"C#{community_id}#EVENTS")
        page = query_page(
            self._client,
            self._table,
            self._cursors,
            scope=f"events:{community_id}:{subject_id}" if subject_id else f"events:{community_id}",
            index=index,
            key_condition=key_condition,
            values=values,
            limit=limit,
            cursor=cursor,
            filter_expression=" AND ".join(filters),
            newest_first=True,
        )
        bodies = [json.loads(item["body"]) for item in page.items]
        return EventPage(bodies, page.has_more, page.next_cursor)

    # --- access as last published --------------------------------------------------------------
    def published_access(self, community_id: str, profile_id: str) -> PublishedAccess | None:
        item = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"C#{community_id}#EVENTS#{profile_id}"}, "sk": {"S": "ACCESS"}},
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return None
        data = from_item(item)
        return PublishedAccess(
            body=json.loads(data["body"]),
            sequence=int(data["sequence"]),
            told_by=data.get("told_by", ""),
            event=event_from_body(json.loads(data["event"])),
        )

    def publish_access(
        self, event: PlatformEvent, body: dict[str, Any], read_at: int, *, told_by: str
    ) -> None:
        """The new published access and its event, conditional on the sequence read."""
        state_item = to_item(
            {
                "pk": f"C#{event.community_id}#EVENTS#{event.subject_id}",
                "sk": "ACCESS",
                "body": json.dumps(body),
                "sequence": event.sequence,
                "told_by": told_by,
                "event": json.dumps(event.body()),
            }
        )
        state: Entry = {"TableName": self._table, "Item": state_item}
        if read_at == 0:
            state["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            state["ConditionExpression"] = "#seq = :read"
            state["ExpressionAttributeNames"] = {"#seq": "sequence"}
            state["ExpressionAttributeValues"] = {":read": to_value(read_at)}
        put = {"Put": {"TableName": self._table, **self.event_entry(event)["PutRequest"]}}
        commit_transaction(self._client, [{"Put": state}, put])

    # --- endpoints ------------------------------------------------------------------------------
    def create_endpoint(self, endpoint: Endpoint) -> None:
        attributes = {
            "type": "webhook_endpoint",
            "id": endpoint.id,
            "community_id": endpoint.community_id,
            "url": endpoint.url,
            "enabled_events": list(endpoint.enabled_events),
            "status": endpoint.status,
            "description": endpoint.description,
            "secret": endpoint.secret,
            "notification_email": endpoint.notification_email,
            "created_at": endpoint.created_at.isoformat(),
            "queued": 0,
            "gsi1pk": f"C#{endpoint.community_id}#WEBHOOK_ENDPOINTS",
            "gsi1sk": f"{endpoint.created_at.isoformat()}#{endpoint.id}",
        }
        self._client.put_item(
            TableName=self._table,
            Item={**_endpoint_key(endpoint.community_id, endpoint.id), **to_item(attributes)},
            ConditionExpression="attribute_not_exists(pk)",
        )

    def find_endpoint(self, community_id: str, endpoint_id: str) -> Endpoint | None:
        item = self._client.get_item(
            TableName=self._table, Key=_endpoint_key(community_id, endpoint_id), ConsistentRead=True
        ).get("Item")
        return _endpoint_from(from_item(item)) if item else None

    def get_endpoint(self, community_id: str, endpoint_id: str) -> Endpoint:
        found = self.find_endpoint(community_id, endpoint_id)
        if found is None:
            raise NotFound(f"Webhook endpoint {endpoint_id} not found.")
        return found

    def endpoints(self, community_id: str) -> list[Endpoint]:
        found: list[Endpoint] = []
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": "gsi1",
                "KeyConditionExpression": "gsi1pk = :pk",
                "ExpressionAttributeValues": {
                    ":pk": to_value(f"C#{community_id}#WEBHOOK_ENDPOINTS")
                },
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = self._client.query(**kwargs)
            found += [_endpoint_from(from_item(item)) for item in response.get("Items", [])]
            start = response.get("LastEvaluatedKey")
            if not start:
                return found

    def endpoint_page(
        self, community_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[Endpoint], bool, str | None]:
        """One page of the community's endpoints, oldest first (`GET /v1/webhook-endpoints`)."""
        page = query_page(
            self._client,
            self._table,
            self._cursors,
            scope=f"webhook-endpoints:{community_id}",
            index="gsi1",
            key_condition="gsi1pk = :pk",
            values={":pk": to_value(f"C#{community_id}#WEBHOOK_ENDPOINTS")},
            limit=limit,
            cursor=cursor,
        )
        return [_endpoint_from(item) for item in page.items], page.has_more, page.next_cursor

    def update_endpoint(
        self,
        community_id: str,
        endpoint_id: str,
        changes: dict[str, Any],
        *,
        now: datetime,
        reenable: bool,
    ) -> Endpoint:
        sets = [f"#{name} = :{name}" for name in changes]
        names = {f"#{name}": name for name in changes}
        values = {f":{name}": to_value(value) for name, value in changes.items()}
        removes: list[str] = []
        if reenable:  # deliveries queued before it was disabled go out now
            sets.append("gsi3pk = :due, gsi3sk = :at")
            values[":due"] = to_value(DUE_ENDPOINTS)
            values[":at"] = to_value(f"{_time(now)}#{community_id}#{endpoint_id}")
            removes.append("failing_since")
        elif changes.get("status") == "disabled":  # by its owner: nothing more is queued
            removes.append("failing_since")
        expression = "SET " + ", ".join(sets) if sets else ""
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        if not expression:
            return self.get_endpoint(community_id, endpoint_id)
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key=_endpoint_key(community_id, endpoint_id),
                UpdateExpression=expression.strip(),
                ConditionExpression="attribute_exists(pk)",
                ReturnValues="ALL_NEW",
                **_given(ExpressionAttributeNames=names, ExpressionAttributeValues=values),
            )
        except Exception as error:
            if is_condition_failure(error):
                raise NotFound(f"Webhook endpoint {endpoint_id} not found.") from None
            raise
        return _endpoint_from(from_item(answer["Attributes"]))

    def delete_endpoint(self, community_id: str, endpoint_id: str) -> None:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=_endpoint_key(community_id, endpoint_id),
                ConditionExpression="attribute_exists(pk)",
            )
        except Exception as error:
            if is_condition_failure(error):
                raise NotFound(f"Webhook endpoint {endpoint_id} not found.") from None
            raise

    # --- the per-endpoint queue ------------------------------------------------------------------
    def enqueue(self, endpoint: Endpoint, events: Sequence[PlatformEvent], now: datetime) -> None:
        """Queue deliveries, then make the endpoint due (unless it waits in a backoff; an
        endpoint disabled by failures is not made due: its queue waits for it to be enabled).

        Not one transaction: the queue items first (idempotent keys), the endpoint's mark
        last; a publisher stopped in between leaves the record unpublished, so it is queued
        again and marked then."""
        if not events:
            return
        requests = [
            {
                "PutRequest": {
                    "Item": to_item(
                        {
                            "pk": f"C#{endpoint.community_id}#WE#{endpoint.id}#Q",
                            "sk": position_of(event),
                            "event_id": event.id,
                            "body": json.dumps(event.body()),
                            "attempts": 0,
                            "expires_at": _expires(now),
                        }
                    )
                }
            }
            for event in events
        ]
        self._batch_write(requests)
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_endpoint_key(endpoint.community_id, endpoint.id),
                **_queued_and_due(endpoint, len(events), now),
                ConditionExpression="attribute_exists(pk)",
            )
        except Exception as error:
            if not is_condition_failure(error):
                raise  # else the endpoint was deleted meanwhile: nothing to deliver to

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {self._table: requests[start : start + 25]}
            while pending:
                answer = self._client.batch_write_item(RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}

    def due_endpoints(self, now: datetime, limit: int = 100) -> list[tuple[str, str]]:
        response = self._client.query(
            TableName=self._table,
            IndexName="gsi3",
            KeyConditionExpression="gsi3pk = :pk AND gsi3sk <= :now",
            ExpressionAttributeValues={
                ":pk": to_value(DUE_ENDPOINTS),
                ":now": to_value(f"{_time(now)}#~"),
            },
            Limit=limit,
        )
        due: list[tuple[str, str]] = []
        for item in response.get("Items", []):
            _, community_id, endpoint_id = item["gsi3sk"]["S"].split("#")
            due.append((community_id, endpoint_id))
        return due

    def take_lease(
        self, community_id: str, endpoint_id: str, now: datetime, seconds: int
    ) -> Endpoint | None:
        """The endpoint, leased to this drainer for `seconds` (None: someone else holds it)."""
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key=_endpoint_key(community_id, endpoint_id),
                UpdateExpression="SET lease_until = :until",
                ConditionExpression=(
                    "attribute_exists(pk) AND "
                    "(attribute_not_exists(lease_until) OR lease_until < :now)"
                ),
                ExpressionAttributeValues={
                    ":until": to_value(_time(now + timedelta(seconds=seconds))),
                    ":now": to_value(_time(now)),
                },
                ReturnValues="ALL_NEW",
            )
        except Exception as error:
            if is_condition_failure(error):
                return None
            raise
        return _endpoint_from(from_item(answer["Attributes"]))

    def release(
        self,
        endpoint: Endpoint,
        *,
        next_drain_at: datetime | None,
        failing_since: datetime | None,
        disable: bool = False,
    ) -> bool:
        """End the lease. `next_drain_at` None: the queue was empty when `endpoint.queued`
        was read; False when something was queued since (drain again)."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        sets: list[str] = []
        removes = ["lease_until"]
        condition = "attribute_exists(pk)"
        if disable:
            sets.append("#status = :disabled")
            names["#status"] = "status"
            values[":disabled"] = to_value("disabled")
            removes += ["gsi3pk", "gsi3sk"]
        elif next_drain_at is None:
            removes += ["gsi3pk", "gsi3sk"]
            condition += " AND queued = :seen"
            values[":seen"] = to_value(endpoint.queued)
        else:
            sets.append("gsi3sk = :at")
            values[":at"] = to_value(
                f"{_time(next_drain_at)}#{endpoint.community_id}#{endpoint.id}"
            )
        if failing_since is None:
            removes.append("failing_since")
        else:
            sets.append("failing_since = :failing")
            values[":failing"] = to_value(failing_since.isoformat())
        expression = ""
        if sets:
            expression += "SET " + ", ".join(sets) + " "
        expression += "REMOVE " + ", ".join(dict.fromkeys(removes))
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_endpoint_key(endpoint.community_id, endpoint.id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                **_given(ExpressionAttributeNames=names, ExpressionAttributeValues=values),
            )
        except Exception as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def queued(self, endpoint: Endpoint, limit: int = 25) -> list[QueuedDelivery]:
        response = self._client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={
                ":pk": to_value(f"C#{endpoint.community_id}#WE#{endpoint.id}#Q")
            },
            ConsistentRead=True,
            Limit=limit,
        )
        return [
            QueuedDelivery(
                sk=data["sk"],
                event_id=data["event_id"],
                body=data["body"],
                attempts=int(data.get("attempts", 0)),
            )
            for data in (from_item(item) for item in response.get("Items", []))
        ]

    def delivered(self, endpoint: Endpoint, delivery: QueuedDelivery, attempt: Attempt) -> None:
        """The attempt recorded and the delivery off the queue, in one request."""
        key = {
            "pk": {"S": f"C#{endpoint.community_id}#WE#{endpoint.id}#Q"},
            "sk": {"S": delivery.sk},
        }
        self._batch_write(
            [
                {"PutRequest": {"Item": self._attempt_item(endpoint, attempt)}},
                {"DeleteRequest": {"Key": key}},
            ]
        )

    def failed(self, endpoint: Endpoint, delivery: QueuedDelivery) -> None:
        self._client.update_item(
            TableName=self._table,
            Key={
                "pk": {"S": f"C#{endpoint.community_id}#WE#{endpoint.id}#Q"},
                "sk": {"S": delivery.sk},
            },
            UpdateExpression="ADD attempts :one",
            ExpressionAttributeValues={":one": to_value(1)},
        )

    # --- attempts ---------------------------------------------------------------------------------
    def record_attempt(self, endpoint: Endpoint, attempt: Attempt) -> None:
        self._client.put_item(TableName=self._table, Item=self._attempt_item(endpoint, attempt))

    @staticmethod
    def _attempt_item(endpoint: Endpoint, attempt: Attempt) -> dict[str, Any]:
        attributes = {
            "pk": f"C#{endpoint.community_id}#WE#{endpoint.id}#ATTEMPTS",
            "sk": f"{_time(attempt.attempted_at)}#{attempt.event_id}#{attempt.attempt}",
            "type": "delivery_attempt",
            "event_id": attempt.event_id,
            "event_type": attempt.event_type,
            "attempt": attempt.attempt,
            "status": attempt.status,
            "attempted_at": utc_text(attempt.attempted_at),
            "duration_ms": attempt.duration_ms,
            "response_status": attempt.response_status,
            "response_body": attempt.response_body,
            "error": attempt.error,
            "redelivery": attempt.redelivery,
            "expires_at": _expires(attempt.attempted_at),
        }
        return to_item(attributes)

    def attempts(
        self, community_id: str, endpoint_id: str, *, limit: int, cursor: str | None
    ) -> EventPage:
        page = query_page(
            self._client,
            self._table,
            self._cursors,
            scope=f"deliveries:{community_id}:{endpoint_id}",
            key_condition="pk = :pk",
            values={":pk": to_value(f"C#{community_id}#WE#{endpoint_id}#ATTEMPTS")},
            limit=limit,
            cursor=cursor,
            newest_first=True,
        )
        items = [
            {
                "event_id": item["event_id"],
                "event_type": item["event_type"],
                "attempt": item["attempt"],
                "status": item["status"],
                "attempted_at": utc_text(datetime.fromisoformat(item["attempted_at"])),
                "duration_ms": item["duration_ms"],
                "response_status": item.get("response_status"),
                "response_body": item.get("response_body", ""),
                "error": item.get("error"),
                "redelivery": bool(item.get("redelivery", False)),
            }
            for item in page.items
        ]
        return EventPage(items, page.has_more, page.next_cursor)
