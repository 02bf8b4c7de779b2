"""Subscription repository.

Item layout (the subscription, its audit events and its charge keys share one partition):
- subscription  pk=`C#<cid>#SUB#<sid>`  sk=`SUB`
    type="subscription", id, version (optimistic lock: every write is conditional on it),
    status, plan_id, owner_id, member_ids (current members, for filters), created_at,
    pending_payment_id (while a charge is in flight: the marker of DESIGN.md section 6),
    data (the whole domain object as a JSON string, see codec.py; above 16 KB zlib-compressed,
    base64, prefixed `z1:`: see codec.py)
    gsi1pk=`C#<cid>#SUBS#STATUS#<status>`  gsi1sk=`<created µs>#<sid>`  (by status; COUNT)
    gsi2pk=`C#<cid>#SUBS`                  gsi2sk=`<created µs>#<sid>`  (all, newest first)
    gsi3pk=`C#<cid>#SUBS#OWNER#<owner_id>` gsi3sk=`<created µs>#<sid>`  (by owner)
    due_pk/due_at/due_group from `Subscription.next_action` (due_index.py): active -> renewal
    at period end; expiring -> expiration at cancel_at; failed_payment -> failed_payment at
    min(next retry, grace end); inactive, cancelled or a charge in flight -> none.
- charge key    sk=`CHARGE#<charge key>` (e.g. `CHARGE#2026-01-15T12:00:00Z#renewal`):
    payment_id, status: pending | succeeded | failed. At most one live charge per
    (subscription, period, kind[, what]): see "Charge keys" below.
- audit events  sk=`EVT#...` (audit_events.py).

Every write is a whole-item Put conditioned on the version read, so the due attributes are
always recomputed from the state written, and a concurrent writer gets ConcurrentChange (409).
"""

from __future__ import annotations

import builtins
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from chalicelib.adapters.dynamodb.audit_events import subscription_partition
from chalicelib.adapters.dynamodb.codec import decode, encode, pack_json, unpack_json
from chalicelib.adapters.dynamodb.cursors import CursorCodec, Page, query_page
from chalicelib.adapters.dynamodb.due_index import DueGroup, due_attributes
from chalicelib.adapters.dynamodb.items import from_item, to_item, to_value
from chalicelib.adapters.dynamodb.transactions import transact
from chalicelib.domain.errors import ConcurrentChange, NotFound
from chalicelib.domain.subscriptions import STATUSES, Subscription

DUE_GROUP_OF_ACTION: dict[str, DueGroup] = {
    "renew": "renewal",
    "expire": "expiration",
    "retry": "failed_payment",
    "end_grace": "failed_payment",
}


def subscription_key(community_id: str, subscription_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"C#{community_id}#SUB#{subscription_id}"}, "sk": {"S": "SUB"}}


def _sortable(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def concurrent_change() -> ConcurrentChange:
    return ConcurrentChange("The subscription was changed concurrently; read it again and retry.")


class SubscriptionRepository:
    def __init__(self, client: Any, table: str, cursors: CursorCodec, due_shards: int) -> None:
        self._client = client
        self._table = table
        self._cursors = cursors
        self._shards = due_shards

    @property
    def table(self) -> str:
        return self._table

    @property
    def due_shards(self) -> int:
        return self._shards

    # --- items ------------------------------------------------------------------------------
    def attributes(self, sub: Subscription, version: int) -> dict[str, Any]:
        created = _sortable(sub.created_at)
        cid = sub.community_id
        # One JSON string, not a nested map: cheaper to (de)serialize on every read and write.
        data = pack_json(encode(replace(sub, version=version)))
        attributes: dict[str, Any] = {
            "type": "subscription",
            "id": sub.id,
            "community_id": cid,
            "version": version,
            "status": sub.status,
            "plan_id": sub.plan_id,
            "owner_id": sub.owner_id,
            "member_ids": sub.member_ids,
            "created_at": created,
            "data": data,
            "pending_payment_id": sub.pending_charge.payment_id if sub.pending_charge else None,
            "gsi1pk": f"C#{cid}#SUBS#STATUS#{sub.status}",
            "gsi1sk": f"{created}#{sub.id}",
            "gsi2pk": f"C#{cid}#SUBS",
            "gsi2sk": f"{created}#{sub.id}",
            "gsi3pk": f"C#{cid}#SUBS#OWNER#{sub.owner_id}",
            "gsi3sk": f"{created}#{sub.id}",
        }
        action = sub.next_action
        if action is not None:
            group = DUE_GROUP_OF_ACTION[action.action]
            attributes.update(due_attributes(sub.id, group, action.due_at, self._shards))
        return attributes

    @staticmethod
    def from_item(item: dict[str, Any]) -> Subscription:
        sub: Subscription = decode(Subscription, unpack_json(item["data"]))
        return replace(sub, version=int(item["version"]))

    # --- transaction entries ---------------------------------------------------------------
    def create_entry(self, sub: Subscription) -> dict[str, Any]:
        item = self.attributes(sub, 1)
        return {
            "Put": {
                "TableName": self._table,
                "Item": {**subscription_key(sub.community_id, sub.id), **to_item(item)},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def save_entry(self, updated: Subscription, read_version: int) -> dict[str, Any]:
        """Replace the subscription with `updated` at version read_version + 1, conditional on
        nobody having written it since it was read at `read_version`."""
        item = self.attributes(updated, read_version + 1)
        return {
            "Put": {
                "TableName": self._table,
                "Item": {**subscription_key(updated.community_id, updated.id), **to_item(item)},
                "ConditionExpression": "version = :version",
                "ExpressionAttributeValues": {":version": to_value(read_version)},
            }
        }

    def delete_entry(self, sub: Subscription) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self._table,
                "Key": subscription_key(sub.community_id, sub.id),
                "ConditionExpression": "version = :version",
                "ExpressionAttributeValues": {":version": to_value(sub.version)},
            }
        }

    def commit(self, entries: list[dict[str, Any]]) -> None:
        """Write the entries in one transaction; a failed condition is a ConcurrentChange."""
        transact(self._client, entries, concurrent_change())

    # --- reads ------------------------------------------------------------------------------
    def find(self, community_id: str, subscription_id: str) -> Subscription | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=subscription_key(community_id, subscription_id),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return self.from_item(from_item(item)) if item else None

    def get(self, community_id: str, subscription_id: str) -> Subscription:
        found = self.find(community_id, subscription_id)
        if found is None:
            raise NotFound(f"Subscription {subscription_id} not found.")
        return found

    def get_many(
        self, community_id: str, subscription_ids: builtins.list[str]
    ) -> builtins.list[Subscription]:
        """BatchGetItem (consistent), in no particular order; missing ids are skipped."""
        found: builtins.list[Subscription] = []
        ids = list(dict.fromkeys(subscription_ids))
        for start in range(0, len(ids), 100):
            keys = [subscription_key(community_id, sid) for sid in ids[start : start + 100]]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = self._client.batch_get_item(RequestItems=request)
                found += [
                    self.from_item(from_item(i))
                    for i in response.get("Responses", {}).get(self._table, [])
                ]
                request = response.get("UnprocessedKeys") or {}
        return found

    def list(
        self,
        community_id: str,
        *,
        limit: int,
        cursor: str | None,
        status: str | None = None,
        plan_id: str | None = None,
        owner_id: str | None = None,
        member_id: str | None = None,
    ) -> tuple[builtins.list[Subscription], bool, str | None]:
        """Newest first. The most selective key (owner, then status) picks the index; other
        filters are FilterExpressions on that Query (never a Scan)."""
        filters: list[str] = []
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        if owner_id:
            index, partition = "gsi3", f"C#{community_id}#SUBS#OWNER#{owner_id}"
            if status:
                filters.append("#status = :status")
        elif status:
            index, partition = "gsi1", f"C#{community_id}#SUBS#STATUS#{status}"
        else:
            index, partition = "gsi2", f"C#{community_id}#SUBS"
        values[":pk"] = to_value(partition)
        if status and owner_id:
            names["#status"] = "status"
            values[":status"] = to_value(status)
        if plan_id:
            filters.append("plan_id = :plan")
            values[":plan"] = to_value(plan_id)
        if member_id:
            filters.append("contains(member_ids, :member)")
            values[":member"] = to_value(member_id)
        page: Page = query_page(
            self._client,
            self._table,
            self._cursors,
            scope=f"subscriptions:{partition}:{status}:{plan_id}:{member_id}",
            index=index,
            key_condition=f"{index}pk = :pk",
            values=values,
            names=names or None,
            filter_expression=" AND ".join(filters) or None,
            limit=limit,
            cursor=cursor,
            newest_first=True,
        )
        return [self.from_item(i) for i in page.items], page.has_more, page.next_cursor

    def count_by_status(self, community_id: str) -> dict[str, int]:
        """One Select=COUNT Query per status on gsi1 (paginated)."""
        counts: dict[str, int] = {}
        for status in STATUSES:
            request: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": "gsi1",
                "KeyConditionExpression": "gsi1pk = :pk",
                "ExpressionAttributeValues": {
                    ":pk": to_value(f"C#{community_id}#SUBS#STATUS#{status}")
                },
                "Select": "COUNT",
            }
            total = 0
            while True:
                response = self._client.query(**request)
                total += int(response.get("Count", 0))
                if not response.get("LastEvaluatedKey"):
                    break
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
            counts[status] = total
        return counts

    def all_with_status(self, community_id: str, status: str) -> builtins.list[Subscription]:
        """Every subscription in one status (gsi1 Query, paginated): for the reports."""
        found: builtins.list[Subscription] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :pk",
            "ExpressionAttributeValues": {
                ":pk": to_value(f"C#{community_id}#SUBS#STATUS#{status}")
            },
        }
        while True:
            response = self._client.query(**request)
            found += [self.from_item(from_item(i)) for i in response.get("Items", [])]
            if not response.get("LastEvaluatedKey"):
                return found
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


# --- Charge keys ------------------------------------------------------------------------------
# The claim is a conditional Put written in the same transaction as the pending payment: it
# succeeds only when no charge holds the key or the one that did has failed (a failed charge
# may be attempted again, e.g. activation with another card). So two concurrent activations,
# two scheduler workers renewing one period, or a retried request can never both reach Stripe.
# The resolution transaction moves the key to succeeded/failed together with the payment.
CHARGE_PREFIX = "CHARGE#"


def _charge_key(community_id: str, subscription_id: str, charge_key: str) -> dict[str, Any]:
    return to_item(
        {
            "pk": subscription_partition(community_id, subscription_id),
            "sk": f"{CHARGE_PREFIX}{charge_key}",
        }
    )


def charge_key_claim_entry(
    table: str,
    community_id: str,
    subscription_id: str,
    charge_key: str,
    payment_id: str,
    status: str = "pending",
) -> dict[str, Any]:
    item = {
        **_charge_key(community_id, subscription_id, charge_key),
        **to_item({"payment_id": payment_id, "status": status}),
    }
    return {
        "Put": {
            "TableName": table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(pk) OR #status = :failed",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":failed": to_value("failed")},
        }
    }


def charge_key_resolve_entry(
    table: str,
    community_id: str,
    subscription_id: str,
    charge_key: str,
    payment_id: str,
    status: str,
) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": _charge_key(community_id, subscription_id, charge_key),
            "UpdateExpression": "SET #status = :status",
            "ConditionExpression": "payment_id = :pid",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":status": to_value(status),
                ":pid": to_value(payment_id),
            },
        }
    }
