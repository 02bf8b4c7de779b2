"""Plan repository.

Item layout:
- plan  pk=`C#<cid>#PLAN#<plan_id>`  sk=`PLAN`
        attrs: type="plan", id, community_id, name, description?, currency,
        prices {month?, year?}, activation_fee, failed_payment_grace_days,
        retry_schedule_days [..], max_members?, status, created_at, version
        gsi1pk=`C#<cid>#PLANS`            gsi1sk=`<created_at>#<plan_id>`  (all plans)
        gsi2pk=`C#<cid>#PLANS#<status>`   gsi2sk=`<created_at>#<plan_id>`  (by status)
Every write after the first is conditional on `version` (optimistic locking).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from chalicelib.adapters.dynamodb.codec import format_time, parse_time
from chalicelib.adapters.dynamodb.cursors import CursorCodec, query_page
from chalicelib.adapters.dynamodb.items import from_item, to_item, to_value
from chalicelib.adapters.dynamodb.platform_events import outbox_entry
from chalicelib.adapters.dynamodb.transactions import commit_transaction, is_condition_failure
from chalicelib.domain.errors import ConcurrentChange, NotFound
from chalicelib.domain.plans import Plan
from chalicelib.domain.platform_events import PlatformEvent


def plan_key(community_id: str, plan_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"C#{community_id}#PLAN#{plan_id}"}, "sk": {"S": "PLAN"}}


@dataclass(frozen=True)
class PlanPage:
    plans: list[Plan]
    has_more: bool
    next_cursor: str | None


class PlanRepository:
    def __init__(self, client: Any, table: str, cursors: CursorCodec) -> None:
        self._client = client
        self._table = table
        self._cursors = cursors

    def create(self, plan: Plan, events: Sequence[PlatformEvent] = ()) -> None:
        """The plan, with its events to the platform in the same request (the outbox)."""
        put = {
            "TableName": self._table,
            "Item": {**plan_key(plan.community_id, plan.id), **to_item(_attributes(plan))},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        record = outbox_entry(self._table, events, (), plan.created_at)
        if record is None:
            self._client.put_item(**put)
            return
        commit_transaction(self._client, [{"Put": put}, record])

    def save(self, plan: Plan, events: Sequence[PlatformEvent] = ()) -> Plan:
        """Store a changed plan read at `plan.version`; returns it at its new version."""
        stored = replace(plan, version=plan.version + 1)
        put = {
            "TableName": self._table,
            "Item": {**plan_key(plan.community_id, plan.id), **to_item(_attributes(stored))},
            "ConditionExpression": "version = :expected",
            "ExpressionAttributeValues": {":expected": to_value(plan.version)},
        }
        record = outbox_entry(self._table, events, (), events[0].created_at) if events else None
        if record is not None:
            commit_transaction(self._client, [{"Put": put}, record])
            return stored
        try:
            self._client.put_item(**put)
        except Exception as error:
            if is_condition_failure(error):
                raise ConcurrentChange(f"Plan {plan.id} was changed concurrently; retry.") from None
            raise
        return stored

    def find(self, community_id: str, plan_id: str) -> Plan | None:
        item = self._client.get_item(
            TableName=self._table, Key=plan_key(community_id, plan_id), ConsistentRead=True
        ).get("Item")
        return plan_from_item(from_item(item)) if item else None

    def get(self, community_id: str, plan_id: str) -> Plan:
        """The plan, or NotFound (also for another community's plan)."""
        plan = self.find(community_id, plan_id)
        if plan is None:
            raise NotFound(f"Plan {plan_id} not found.")
        return plan

    def list(
        self, community_id: str, status: str | None, limit: int, cursor: str | None
    ) -> PlanPage:
        if status is None:
            index, partition = "gsi1", f"C#{community_id}#PLANS"
        else:
            index, partition = "gsi2", f"C#{community_id}#PLANS#{status}"
        page = query_page(
            self._client,
            self._table,
            self._cursors,
            scope=f"{index}:{partition}",
            index=index,
            key_condition=f"{index}pk = :pk",
            values={":pk": to_value(partition)},
            limit=limit,
            cursor=cursor,
            newest_first=True,
        )
        return PlanPage([plan_from_item(i) for i in page.items], page.has_more, page.next_cursor)


def _attributes(plan: Plan) -> dict[str, Any]:
    created = format_time(plan.created_at)
    return {
        "type": "plan",
        "id": plan.id,
        "community_id": plan.community_id,
        "name": plan.name,
        "description": plan.description,
        "currency": plan.currency,
        "prices": dict(plan.prices),
        "activation_fee": plan.activation_fee,
        "failed_payment_grace_days": plan.failed_payment_grace_days,
        "retry_schedule_days": list(plan.retry_schedule_days),
        "max_members": plan.max_members,
        "status": plan.status,
        "created_at": created,
        "version": plan.version,
        "gsi1pk": f"C#{plan.community_id}#PLANS",
        "gsi1sk": f"{created}#{plan.id}",
        "gsi2pk": f"C#{plan.community_id}#PLANS#{plan.status}",
        "gsi2sk": f"{created}#{plan.id}",
    }


def plan_from_item(item: dict[str, Any]) -> Plan:
    return Plan(
        id=item["id"],
        community_id=item["community_id"],
        name=item["name"],
        description=item.get("description"),
        currency=item["currency"],
        prices={cycle: int(amount) for cycle, amount in item["prices"].items()},
        activation_fee=int(item["activation_fee"]),
        failed_payment_grace_days=int(item["failed_payment_grace_days"]),
        retry_schedule_days=tuple(int(d) for d in item["retry_schedule_days"]),
        max_members=int(item["max_members"]) if item.get("max_members") is not None else None,
        status=item["status"],
        created_at=parse_time(item["created_at"]),
        version=int(item.get("version", 0)),
    )
