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
- pending_refund: a paid payment with refunds left pending (recovery pass settles them from
  what Stripe did); swept with pending_payment (a payment is never both).
- links: a subscription's link state item whose profile links were not all written after its
  transaction (profile_links.py); read by the pending_payments sweep.
- dunning_reminder: a failed_payment subscription's last-reminder item (`REMINDER` in its
  dunning partition, adapters/dynamodb/dunning.py), 48 h before grace ends; read by the
  failed_payments sweep.

The request shapes of the scheduler live here too: `DueIndex` (the sweeps' Query, the test
clock's "earliest due" Query, the worker's re-check read), `SweepCursors` (where each sweep got
to) and `AdvanceLease` (the test clock's advance lease). chalicelib/jobs/ sees them only
through the Protocols of chalicelib/jobs/ports.py.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

DueGroup = Literal[
    "renewal",
    "failed_payment",
    "expiration",
    "pending_payment",
    "pending_refund",
    "links",
    "dunning_reminder",
]
DUE_GROUPS: tuple[DueGroup, ...] = (
    "renewal",
    "failed_payment",
    "expiration",
    "pending_payment",
    "pending_refund",
    "links",
    "dunning_reminder",
)
DUE_INDEX = "due"
DUE_PK = "due_pk"
DUE_AT = "due_at"
DUE_GROUP = "due_group"
DUE_AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def shard_of(subject_id: str, shards: int) -> int:
    digest = hashlib.sha256(subject_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") % shards


def due_partition(group: DueGroup, shard: int) -> str:
    return f"DUE#{group}#{shard:02d}"


def format_due_at(when: datetime) -> str:
    """Sortable UTC timestamp (microseconds, fixed width) for the index range key."""
    return when.astimezone(UTC).strftime(DUE_AT_FORMAT)


def due_attributes(subject_id: str, group: DueGroup, when: datetime, shards: int) -> dict[str, Any]:
    """Attributes to SET on an item so it is picked up by `group`'s sweep at `when`."""
    return {
        DUE_PK: due_partition(group, shard_of(subject_id, shards)),
        DUE_AT: format_due_at(when),
        DUE_GROUP: group,
    }


DUE_ATTRIBUTE_NAMES = (DUE_PK, DUE_AT, DUE_GROUP)
REMOVE_DUE_EXPRESSION = f"REMOVE {', '.join(DUE_ATTRIBUTE_NAMES)}"


def parse_due_at(text: str) -> datetime:
    return datetime.strptime(text, DUE_AT_FORMAT).replace(tzinfo=UTC)


def _just_after(due_at: str) -> str:
    # due_at strings are fixed width, so "the next microsecond" sorts right after `due_at`.
    return format_due_at(parse_due_at(due_at) + timedelta(microseconds=1))


@dataclass(frozen=True)
class DueEntry:
    """One item of the due index as a sweep reads it (`data`/`version`: the subject's copy)."""

    pk: str
    sk: str
    subject_id: str | None
    due_at: str
    data: str | None
    version: int | None


@dataclass(frozen=True)
class DuePage:
    entries: list[DueEntry]
    items_read: int
    next_key: dict[str, Any] | None


class DueIndex:
    """Reads of the sparse due index (one Query per page, never a Scan) and of one due item."""

    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._ddb = dynamodb_client
        self._table = table_name

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
        """One page of the shard's items due at `now` (strictly after `after`), oldest first."""
        values: dict[str, Any] = {
            ":p": {"S": due_partition(group, shard)},
            ":now": {"S": format_due_at(now)},
        }
        condition = "#p = :p AND #a <= :now"
        if after is not None:
            condition = "#p = :p AND #a BETWEEN :after AND :now"
            values[":after"] = {"S": _just_after(after)}
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {
                "#p": DUE_PK,
                "#a": DUE_AT,
                "#pk": "pk",
                "#sk": "sk",
                "#id": "id",
                "#d": "data",
                "#v": "version",
            },
            "ExpressionAttributeValues": values,
            "ProjectionExpression": "#pk, #sk, #id, #a, #d, #v",
            "Limit": limit,
        }
        if start_key is not None:
            request["ExclusiveStartKey"] = start_key
        page = self._ddb.query(**request)
        entries = [
            DueEntry(
                pk=item["pk"]["S"],
                sk=item["sk"]["S"],
                subject_id=item.get("id", {}).get("S") or None,
                due_at=item[DUE_AT]["S"],
                data=item["data"]["S"] if "data" in item else None,
                version=int(item["version"]["N"]) if "version" in item else None,
            )
            for item in page.get("Items", [])
        ]
        read = int(page.get("ScannedCount", page.get("Count", 0)))
        return DuePage(entries, read, page.get("LastEvaluatedKey") or None)

    def first_due(self, group: DueGroup, shard: int, after: datetime, until: str) -> str | None:
        """The earliest `due_at` of the shard in (after, until], or None."""
        found = self.upcoming_due(group, shard, after, until, 1)
        return found[0] if found else None

    def upcoming_due(
        self, group: DueGroup, shard: int, after: datetime, until: str, limit: int
    ) -> list[str]:
        """The earliest `limit` `due_at` values of the shard in (after, until], oldest first
        (one Query)."""
        lower = format_due_at(after + timedelta(microseconds=1))
        if lower > until:
            return []
        page = self._ddb.query(
            TableName=self._table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="#p = :p AND #a BETWEEN :lo AND :hi",
            ExpressionAttributeNames={"#p": DUE_PK, "#a": DUE_AT},
            ExpressionAttributeValues={
                ":p": {"S": due_partition(group, shard)},
                ":lo": {"S": lower},
                ":hi": {"S": until},
            },
            ProjectionExpression="#a",
            Limit=limit,
        )
        return [str(item[DUE_AT]["S"]) for item in page.get("Items", [])]

    def due_entry(self, pk: str, sk: str) -> tuple[DueGroup, int, str] | None:
        """Where one item is due now: (group, shard, due_at), or None (one consistent GetItem)."""
        item = self._due_attributes(pk, sk, DUE_PK)
        if not item or DUE_PK not in item or DUE_AT not in item:
            return None
        _, group, shard = str(item[DUE_PK]["S"]).split("#")
        if group not in DUE_GROUPS:
            return None
        return group, int(shard), str(item[DUE_AT]["S"])

    def is_due(self, pk: str, sk: str, group: DueGroup, now: datetime) -> bool:
        """Whether the item is still due for `group` at `now` (one consistent GetItem)."""
        item = self._due_attributes(pk, sk, DUE_GROUP)
        if not item or DUE_GROUP not in item or DUE_AT not in item:
            return False
        return bool(item[DUE_GROUP]["S"] == group and item[DUE_AT]["S"] <= format_due_at(now))

    def _due_attributes(self, pk: str, sk: str, where: str) -> dict[str, Any] | None:
        """`where` (the due partition or group attribute) and `due_at` of one item, read
        consistently."""
        item: dict[str, Any] | None = self._ddb.get_item(
            TableName=self._table,
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            ConsistentRead=True,
            ProjectionExpression="#w, #a",
            ExpressionAttributeNames={"#w": where, "#a": DUE_AT},
        ).get("Item")
        return item


@dataclass(frozen=True)
class SweepCursor:
    """Where a group's sweep got to: the last `due_at` sent per shard, and its last full sweep."""

    shards: dict[int, str]
    full_at: str


class SweepCursors:
    """One item per due group (`SCHEDULER` / `SWEEP#<group>`), read consistently."""

    PK = "SCHEDULER"

    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._ddb = dynamodb_client
        self._table = table_name

    def _key(self, group: DueGroup) -> dict[str, Any]:
        return {"pk": {"S": self.PK}, "sk": {"S": f"SWEEP#{group}"}}

    def load(self, group: DueGroup) -> SweepCursor | None:
        item = self._ddb.get_item(
            TableName=self._table, Key=self._key(group), ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        shards = {int(shard): value["S"] for shard, value in item["shards"]["M"].items()}
        return SweepCursor(shards, item["full_at"]["S"])

    def save(self, group: DueGroup, now: datetime, shards: dict[int, str], *, full: bool) -> None:
        """Store the shards' positions; `full` marks this sweep as one from the beginning."""
        saved: dict[str, Any] = {"M": {str(s): {"S": value} for s, value in shards.items()}}
        at = {"S": format_due_at(now)}
        if full:
            item = {**self._key(group), "shards": saved, "saved_at": at, "full_at": at}
            self._ddb.put_item(TableName=self._table, Item=item)
            return
        self._ddb.update_item(
            TableName=self._table,
            Key=self._key(group),
            UpdateExpression="SET shards = :s, saved_at = :t",
            ExpressionAttributeValues={":s": saved, ":t": at},
        )


class AdvanceLease:
    """The lease a test-clock advance holds (`PLATFORM` / `TEST_CLOCK_ADVANCE`), by wall time.

    Wall time, not the test clock: the lease must expire after real minutes even when an
    advance died midway with the clock moved years ahead.
    """

    KEY = {"pk": {"S": "PLATFORM"}, "sk": {"S": "TEST_CLOCK_ADVANCE"}}

    def __init__(
        self, dynamodb_client: Any, table_name: str, wall: Callable[[], float] = time.time
    ) -> None:
        self._ddb = dynamodb_client
        self._table = table_name
        self._wall = wall

    def take(self, seconds: int) -> bool:
        """Take the lease for `seconds`; False when another holder's lease has not expired."""
        from botocore.exceptions import ClientError

        wall = self._wall()
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={**self.KEY, "until": {"N": str(int(wall + seconds))}},
                ConditionExpression="attribute_not_exists(pk) OR #u < :wall",
                ExpressionAttributeNames={"#u": "until"},
                ExpressionAttributeValues={":wall": {"N": str(int(wall))}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release(self) -> None:
        self._ddb.delete_item(TableName=self._table, Key=self.KEY)

    def held(self) -> bool:
        item = self._ddb.get_item(TableName=self._table, Key=self.KEY, ConsistentRead=True).get(
            "Item"
        )
        return bool(item) and float(item["until"]["N"]) > self._wall()
