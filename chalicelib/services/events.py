"""Events to the platform, derived from a change in ONE place (issue 13, docs/events.md).

The services call one of these where they stage a change, with the unit of work the change
goes into: the events become part of the same TransactWriteItems (the transactional outbox),
so there is no change without its events and no event without its change, and no extra
request. Nothing here reads: every object is rendered from the states in hand.

- `subscription_changed(uow, before, after, audit_type)`: subscription.* and member.* events
  (subject: the subscription; sequence from its version) and the profiles whose access may
  have changed (an `AccessCheck`, resolved by the publisher into access.granted/revoked).
- `payment_changed(uow, before, after)`: payment.succeeded|failed|refunded|disputed (subject:
  the payment; sequence from its revision).
- `plan_changed(before, after)`: plan.created|updated|archived (subject: the plan; sequence
  from its version), for the plan store to write with the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain.ids import new_id
from chalicelib.domain.members import Member
from chalicelib.domain.payments import Payment
from chalicelib.domain.plans import Plan
from chalicelib.domain.platform_events import AccessCheck, PlatformEvent, sequence_of, utc_text
from chalicelib.domain.subscriptions import ACCESS_STATUSES, Subscription
from chalicelib.services.ports import UnitOfWork
from chalicelib.services.views import payment_view

# Audit types of a change that keeps the status but changes what the platform sees.
_UPDATE_TYPES = frozenset(
    {
        "subscription.updated",
        "subscription.plan_changed",
        "subscription.plan_change_scheduled",
    }
)
# Status transitions -> the event type that reports them.
_TRANSITIONS: Mapping[tuple[str, str], str] = {
    ("inactive", "active"): "subscription.activated",
    ("active", "expiring"): "subscription.expiring",
    ("expiring", "active"): "subscription.resumed",
    ("active", "failed_payment"): "subscription.payment_failed",
    ("failed_payment", "active"): "subscription.reactivated",
    ("cancelled", "active"): "subscription.reactivated",
}


def _iso(moment: datetime | None) -> str | None:
    return utc_text(moment) if moment is not None else None


def subscription_object(sub: Subscription) -> dict[str, Any]:
    period = sub.current_period
    return {
        "id": sub.id,
        "object": "subscription",
        "community_id": sub.community_id,
        "status": sub.status,
        "plan_id": sub.plan_id,
        "billing_cycle": sub.billing_cycle,
        "owner_id": sub.owner_id,
        "payment_method_id": sub.payment_method_id,
        "member_ids": sub.member_ids,
        "current_period": (
            {"start": utc_text(period.start), "end": utc_text(period.end)} if period else None
        ),
        "pending_changes": {
            "billing_cycle": sub.pending_changes.billing_cycle,
            "plan_id": sub.pending_changes.plan_id,
        },
        "cancel_at": _iso(sub.cancel_at),
        "cancelled_at": _iso(sub.cancelled_at),
        "cancellation_reason": sub.cancellation_reason,
        "grace_ends_at": _iso(sub.grace_ends_at),
        "next_retry_at": _iso(sub.next_retry_at),
        "retry_count": sub.retry_count,
        "activated_at": _iso(sub.activated_at),
        "created_at": utc_text(sub.created_at),
    }


def member_object(sub: Subscription, member: Member) -> dict[str, Any]:
    return {
        "object": "member",
        "subscription_id": sub.id,
        "profile_id": member.profile_id,
        "added_at": utc_text(member.added_at),
        "activation_fee": member.activation_fee.status,
        "removal_effective_at": _iso(member.removal_effective_at),
        "removed_at": _iso(member.removed_at),
    }


def payment_object(payment: Payment) -> dict[str, Any]:
    """The payment as `GET /v1/payments/{id}` shows it (it reads nothing else)."""
    return {"object": "payment", "community_id": payment.community_id, **payment_view(payment)}


def plan_object(plan: Plan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "object": "plan",
        "community_id": plan.community_id,
        "name": plan.name,
        "description": plan.description,
        "currency": plan.currency,
        "prices": dict(plan.prices),
        "activation_fee": plan.activation_fee,
        "failed_payment_grace_days": plan.failed_payment_grace_days,
        "retry_schedule_days": list(plan.retry_schedule_days),
        "max_members": plan.max_members,
        "free": plan.free,
        "status": plan.status,
        "created_at": utc_text(plan.created_at),
    }


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """`previous_attributes`: the old values of the fields that changed."""
    return {key: value for key, value in before.items() if after.get(key) != value}


@dataclass
class _Batch:
    community_id: str
    subject_id: str
    version: int
    at: datetime

    def __post_init__(self) -> None:
        self.events: list[PlatformEvent] = []

    def add(
        self,
        event_type: str,
        data: Mapping[str, Any],
        previous: Mapping[str, Any] | None = None,
    ) -> None:
        self.events.append(
            PlatformEvent(
                id=new_id("evt"),
                type=event_type,
                created_at=self.at,
                community_id=self.community_id,
                subject_id=self.subject_id,
                sequence=sequence_of(self.version, len(self.events)),
                data=data,
                previous_attributes=previous,
            )
        )


def granting_members(sub: Subscription | None) -> set[str]:
    """Profiles this subscription gives access (a member link in an access status)."""
    if sub is None or sub.status not in ACCESS_STATUSES:
        return set()
    return {member.profile_id for member in sub.members}


def subscription_events(
    before: Subscription | None, after: Subscription, audit_type: str, at: datetime
) -> tuple[list[PlatformEvent], AccessCheck | None]:
    """The events of one subscription change; `after` is the state as written (its version)."""
    batch = _Batch(after.community_id, after.id, after.version, at)
    now_object = subscription_object(after)
    if before is None:
        batch.add("subscription.created", now_object)
    else:
        old_object = subscription_object(before)
        previous = _changed(old_object, now_object)
        transition = (before.status, after.status)
        if audit_type == "subscription.renewed":
            batch.add("subscription.renewed", now_object, previous)
        elif after.status == "cancelled" and before.status != "cancelled":
            batch.add("subscription.cancelled", now_object, previous)
        elif after.status == "failed_payment" and audit_type.endswith("_failed"):
            batch.add("subscription.payment_failed", now_object, previous)
        elif transition in _TRANSITIONS:
            batch.add(_TRANSITIONS[transition], now_object, previous)
        elif audit_type in _UPDATE_TYPES and previous:
            batch.add("subscription.updated", now_object, previous)
    _member_events(batch, before, after)
    granted_before, granted_after = granting_members(before), granting_members(after)
    changed = sorted(granted_before ^ granted_after)
    check = AccessCheck(after.community_id, tuple(changed)) if changed else None
    return batch.events, check


def _member_events(batch: _Batch, before: Subscription | None, after: Subscription) -> None:
    old = {m.profile_id: m for m in before.members} if before else {}
    for member in after.members:
        previous = old.get(member.profile_id)
        if previous is None:
            batch.add("member.added", member_object(after, member))
        elif not previous.removal_pending and member.removal_pending:
            batch.add("member.removal_scheduled", member_object(after, member))
        elif previous.removal_pending and not member.removal_pending:
            batch.add("member.removal_cancelled", member_object(after, member))
    staying = {m.profile_id for m in after.members}
    for profile_id, member in old.items():
        if profile_id not in staying:
            gone = next((f for f in after.former_members if f.profile_id == profile_id), member)
            batch.add("member.removed", member_object(after, gone))


def payment_events(
    before: Payment | None, after: Payment, revision: int, at: datetime
) -> list[PlatformEvent]:
    """The events of one payment change; `revision` is the revision it is written at."""
    batch = _Batch(after.community_id, after.id, revision, at)
    old_status = before.status if before else "pending"
    data = payment_object(after)
    previous = _changed(payment_object(before), data) if before else None
    refunded_before = before.amount_refunded if before else 0
    if after.dispute_status != (before.dispute_status if before else None):
        batch.add("payment.disputed", data, previous)
    elif after.amount_refunded > refunded_before:
        batch.add("payment.refunded", data, previous)
    elif after.status != old_status and after.status in ("succeeded", "failed"):
        batch.add(f"payment.{after.status}", data, previous)
    return batch.events


def plan_events(before: Plan | None, after: Plan, at: datetime) -> list[PlatformEvent]:
    """The events of one plan change; `after.version` is the version it is written at."""
    batch = _Batch(after.community_id, after.id, after.version, at)
    data = plan_object(after)
    if before is None:
        batch.add("plan.created", data)
    elif after.status == "archived" and before.status != "archived":
        batch.add("plan.archived", data, _changed(plan_object(before), data))
    else:
        batch.add("plan.updated", data, _changed(plan_object(before), data))
    return batch.events


# --- the hooks the services call where they stage a change --------------------------------------
def subscription_changed(
    uow: UnitOfWork,
    before: Subscription | None,
    after: Subscription,
    audit_type: str,
    at: datetime,
) -> None:
    events, check = subscription_events(before, after, audit_type, at)
    for event in events:
        uow.outbox.add(event)
    if check is not None:
        uow.outbox.check_access(check)


def payment_changed(
    uow: UnitOfWork, before: Payment | None, after: Payment, revision: int, at: datetime
) -> None:
    for event in payment_events(before, after, revision, at):
        uow.outbox.add(event)
