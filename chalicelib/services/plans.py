"""Plan use cases: create (currency defaults to the community's), change terms, archive."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from chalicelib.adapters.dynamodb.codec import whole_seconds
from chalicelib.domain.communities import Community
from chalicelib.domain.ids import new_id
from chalicelib.domain.plans import Plan, new_plan
from chalicelib.domain.platform_events import PlatformEvent
from chalicelib.services.events import plan_events
from chalicelib.services.ports import Clock


class PlanStore(Protocol):
    def create(self, plan: Plan, events: Sequence[PlatformEvent] = ()) -> None: ...
    def get(self, community_id: str, plan_id: str) -> Plan: ...
    def save(self, plan: Plan, events: Sequence[PlatformEvent] = ()) -> Plan:
        """`events` go to the platform with the change, in the same request."""
        ...


class CommunityReader(Protocol):
    def get(self, community_id: str) -> Community: ...


class PlanService:
    def __init__(self, plans: PlanStore, communities: CommunityReader, clock: Clock) -> None:
        self._plans = plans
        self._communities = communities
        self._clock = clock

    def create(
        self,
        community_id: str,
        *,
        name: str,
        description: str | None,
        currency: str | None,
        prices: Mapping[str, int],
        activation_fee: int,
        failed_payment_grace_days: int,
        retry_schedule_days: Sequence[int],
        max_members: int | None,
    ) -> Plan:
        if currency is None:
            currency = self._communities.get(community_id).currency
        plan = new_plan(
            plan_id=new_id("plan"),
            community_id=community_id,
            name=name,
            description=description,
            currency=currency,
            prices=prices,
            activation_fee=activation_fee,
            failed_payment_grace_days=failed_payment_grace_days,
            retry_schedule_days=retry_schedule_days,
            max_members=max_members,
            now=whole_seconds(self._clock.now()),
        )
        self._plans.create(plan, plan_events(None, plan, plan.created_at))
        return plan

    def update(self, community_id: str, plan_id: str, changes: dict[str, Any]) -> Plan:
        """`changes` holds only the fields the caller sent (None clears nullable ones)."""
        plan = self._plans.get(community_id, plan_id)
        changed = plan.with_terms(
            name=changes.get("name"),
            description=changes.get("description"),
            clear_description="description" in changes and changes["description"] is None,
            failed_payment_grace_days=changes.get("failed_payment_grace_days"),
            retry_schedule_days=changes.get("retry_schedule_days"),
            max_members=changes.get("max_members"),
            clear_max_members="max_members" in changes and changes["max_members"] is None,
        )
        return plan if changed == plan else self._save(plan, changed)

    def archive(self, community_id: str, plan_id: str) -> Plan:
        plan = self._plans.get(community_id, plan_id)
        if plan.status == "archived":
            return plan
        return self._save(plan, plan.archived())

    def _save(self, before: Plan, after: Plan) -> Plan:
        written = replace(after, version=before.version + 1)
        return self._plans.save(after, plan_events(before, written, self._clock.now()))
