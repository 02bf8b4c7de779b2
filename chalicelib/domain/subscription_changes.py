"""Subscription changes that charge nothing: PATCH, member removal and restoration, and a plan
change queued for the renewal. Each returns an `Outcome`; changes that charge live in
`charge_planning`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from chalicelib.domain.billing.charges import PlanSnapshot, plan_snapshot
from chalicelib.domain.billing.pricing import initial_fee
from chalicelib.domain.errors import Conflict, InvalidRequest, NotFound
from chalicelib.domain.events import Actor, audit_event
from chalicelib.domain.members import Member, RemovalTiming, ensure_unique_ids
from chalicelib.domain.periods import ensure_utc
from chalicelib.domain.plans import BillingCycle, Plan
from chalicelib.domain.platform_events import utc_text
from chalicelib.domain.profiles import Profile
from chalicelib.domain.subscriptions import (
    Outcome,
    Subscription,
    changed_values,
    ensure_capacity,
    ensure_cycle,
    with_former,
)


@dataclass(frozen=True)
class SubscriptionUpdate:
    """PATCH /subscriptions/{id}. None means "not given"."""

    plan: Plan | None = None
    owner: Profile | None = None
    member_ids: Sequence[str] | None = None
    billing_cycle: BillingCycle | None = None
    payment_method_id: str | None = None
    waive_activation_fee: bool | None = None


def update_subscription(
    sub: Subscription, changes: SubscriptionUpdate, now: datetime, actor: Actor = "api"
) -> Outcome:
    """PATCH. inactive: anything; active: owner, payment method, billing cycle (queued)."""
    ensure_utc(now)
    sub.ensure_no_pending_charge()
    if sub.status == "inactive":
        updated, changed = _update_inactive(sub, changes, now)
    elif sub.status == "active":
        updated, changed = _update_active(sub, changes)
    else:
        raise Conflict(f"A {sub.status} subscription takes no changes.")
    event = audit_event(
        now,
        "subscription.updated",
        sub.status,
        sub.status,
        actor,
        changed=changed,
        **changed_values(sub, updated, "owner_id", "payment_method_id"),
    )
    return Outcome(updated, event)


def _update_inactive(
    sub: Subscription, changes: SubscriptionUpdate, now: datetime
) -> tuple[Subscription, list[str]]:
    changed: list[str] = []
    snapshot = sub.plan
    if changes.plan is not None:
        changes.plan.ensure_open_for_new_subscriptions()
        snapshot = plan_snapshot(changes.plan)
        changed.append("plan_id")
    cycle = sub.billing_cycle
    if changes.billing_cycle is not None:
        ensure_cycle(changes.billing_cycle)
        cycle = changes.billing_cycle
        changed.append("billing_cycle")
    if not snapshot.offers(cycle):
        field_name = "billing_cycle" if changes.billing_cycle is not None else "plan_id"
        raise InvalidRequest.for_field(field_name, f"Plan {snapshot.plan_id} has no {cycle} price.")
    owner_id = sub.owner_id
    if changes.owner is not None:
        changes.owner.ensure_customer("owner_id")
        owner_id = changes.owner.id
        changed.append("owner_id")
    waive = sub.waive_activation_fee
    if changes.waive_activation_fee is not None:
        waive = changes.waive_activation_fee
        changed.append("waive_activation_fee")
    ids = sub.member_ids
    if changes.member_ids is not None:
        ensure_unique_ids(changes.member_ids, "member_ids")
        ids = list(changes.member_ids)
        changed.append("member_ids")
    ensure_capacity(snapshot, len(ids), "member_ids" if changes.member_ids else "plan_id")
    existing = {m.profile_id: m for m in sub.members}
    members = tuple(
        replace(existing[pid], activation_fee=initial_fee(snapshot, waive))
        if pid in existing
        else Member(pid, now, initial_fee(snapshot, waive))
        for pid in ids
    )
    payment_method_id = sub.payment_method_id
    if changes.payment_method_id is not None:
        payment_method_id = changes.payment_method_id
        changed.append("payment_method_id")
    updated = replace(
        sub,
        plan=snapshot,
        billing_cycle=cycle,
        owner_id=owner_id,
        waive_activation_fee=waive,
        members=members,
        payment_method_id=payment_method_id,
    )
    return updated, changed


def _update_active(
    sub: Subscription, changes: SubscriptionUpdate
) -> tuple[Subscription, list[str]]:
    for name, value in (
        ("plan_id", changes.plan),
        ("member_ids", changes.member_ids),
        ("waive_activation_fee", changes.waive_activation_fee),
    ):
        if value is not None:
            raise Conflict(
                f"{name} cannot change on an active subscription "
                "(use change-plan or the members endpoints)."
            )
    changed: list[str] = []
    updated = sub
    if changes.owner is not None:
        changes.owner.ensure_customer("owner_id")
        updated = replace(updated, owner_id=changes.owner.id)
        changed.append("owner_id")
    if changes.payment_method_id is not None:
        updated = replace(updated, payment_method_id=changes.payment_method_id)
        changed.append("payment_method_id")
    if changes.billing_cycle is not None:
        cycle = changes.billing_cycle
        ensure_cycle(cycle)
        target_plan = sub.next_plan
        if not target_plan.offers(cycle):
            raise InvalidRequest.for_field(
                "billing_cycle", f"Plan {target_plan.plan_id} has no {cycle} price."
            )
        queued = None if cycle == sub.billing_cycle else cycle
        updated = replace(
            updated, pending_changes=replace(updated.pending_changes, billing_cycle=queued)
        )
        changed.append("billing_cycle")
    return updated, changed


# ---------------------------------------------------------------- members


def remove_member(
    sub: Subscription, profile_id: str, at: RemovalTiming, now: datetime, actor: Actor = "api"
) -> Outcome:
    ensure_utc(now)
    sub.ensure_status("active", "members are removed")
    sub.ensure_no_pending_charge()
    if at not in ("period_end", "now"):
        raise InvalidRequest.for_field("at", "Must be period_end or now.")
    member = sub.member(profile_id)
    if member is None:
        raise NotFound(f"Profile {profile_id} is not a member of subscription {sub.id}.")
    staying = [m for m in sub.staying_members() if m.profile_id != profile_id]
    if not staying:
        raise Conflict("That would leave the subscription without members; cancel it instead.")
    if at == "period_end":
        if member.removal_pending:
            raise Conflict(f"Profile {profile_id} is already leaving at period end.")
        end = sub.require_period().end
        members = tuple(
            replace(m, removal_effective_at=end) if m.profile_id == profile_id else m
            for m in sub.members
        )
        event = audit_event(
            now,
            "member.removal_scheduled",
            "active",
            "active",
            actor,
            profile_id=profile_id,
            effective_at=utc_text(end),
        )
        return Outcome(replace(sub, members=members), event)
    members = tuple(m for m in sub.members if m.profile_id != profile_id)
    former = with_former(sub, (replace(member, removed_at=now),))
    event = audit_event(now, "member.removed", "active", "active", actor, profile_id=profile_id)
    return Outcome(replace(sub, members=members, former_members=former), event)


def restore_member(
    sub: Subscription, profile_id: str, now: datetime, actor: Actor = "api"
) -> Outcome:
    ensure_utc(now)
    sub.ensure_status("active", "members are restored")
    sub.ensure_no_pending_charge()
    member = sub.member(profile_id)
    if member is None:
        if any(former.profile_id == profile_id for former in sub.former_members):
            raise Conflict(
                f"The removal of profile {profile_id} from subscription {sub.id} took effect;"
                " add the profile again instead."
            )
        raise NotFound(f"Profile {profile_id} is not a member of subscription {sub.id}.")
    if not member.removal_pending:
        raise Conflict(f"Profile {profile_id} has no pending removal.")
    if not member.is_current(now):
        raise Conflict(
            f"The removal of profile {profile_id} took effect at "
            f"{member.removal_effective_at.isoformat() if member.removal_effective_at else ''};"
            " add the profile again instead."
        )
    if sub.pending_changes.plan is not None:
        queued = sub.pending_changes.plan
        if queued.max_members is not None and len(sub.staying_members()) >= queued.max_members:
            raise Conflict(
                f"The queued plan {queued.plan_id} allows at most {queued.max_members} members."
            )
    members = tuple(
        replace(m, removal_effective_at=None) if m.profile_id == profile_id else m
        for m in sub.members
    )
    event = audit_event(now, "member.restored", "active", "active", actor, profile_id=profile_id)
    return Outcome(replace(sub, members=members), event)


# ---------------------------------------------------------------- plan changes


def change_plan_at_period_end(
    sub: Subscription, plan: Plan, now: datetime, actor: Actor = "api"
) -> Outcome:
    """Queue a plan change for the renewal; the current plan clears a queued change."""
    ensure_utc(now)
    sub.ensure_status("active", "plans change")
    sub.ensure_no_pending_charge()
    cycle = sub.pending_changes.billing_cycle or sub.billing_cycle
    if plan.id == sub.plan_id:
        # Clearing the queued plan must not leave a queued cycle the current plan lacks (it
        # was allowed because the queued plan offered it): the renewal could not price it.
        if not sub.plan.offers(cycle):
            raise Conflict(
                f"The queued change to the {cycle} billing cycle at period end is not offered "
                f"by plan {plan.id}; change the billing cycle back to {sub.billing_cycle} first."
            )
        queued = None
    else:
        snapshot = check_new_plan(sub, plan, cycle, len(sub.staying_members()))
        queued = snapshot
    updated = replace(sub, pending_changes=replace(sub.pending_changes, plan=queued))
    event = audit_event(
        now,
        "subscription.plan_change_scheduled",
        "active",
        "active",
        actor,
        plan_id=plan.id,
        cleared=queued is None,
    )
    return Outcome(updated, event)


def check_new_plan(
    sub: Subscription, plan: Plan, cycle: BillingCycle, member_count: int
) -> PlanSnapshot:
    plan.ensure_open_for_new_subscriptions()
    if plan.currency != sub.currency:
        raise InvalidRequest.for_field(
            "plan_id", f"Plan {plan.id} is in {plan.currency}, not {sub.currency}."
        )
    if cycle not in plan.prices:
        raise InvalidRequest.for_field("plan_id", f"Plan {plan.id} has no {cycle} price.")
    snapshot = plan_snapshot(plan)
    ensure_capacity(snapshot, member_count, "plan_id")
    return snapshot
