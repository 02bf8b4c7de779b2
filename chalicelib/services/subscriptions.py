"""Subscription use cases behind API.md's Subscriptions section.

Every change loads the subscription, asks the domain for the new state (or a charge plan),
and commits state + audit event + link items (+ payment, charge key, credit) in one
transaction conditional on the version read. A command that loses a race re-reads and
re-applies itself (up to `ATTEMPTS` times), so concurrent changes never lose an update;
charges go through `charging.charge` (DESIGN.md section 6).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from chalicelib.domain.billing.charges import ChargePlan
from chalicelib.domain.billing.planning import (
    plan_activation,
    plan_change_now,
    plan_reactivation,
    plan_renewal,
)
from chalicelib.domain.errors import ConcurrentChange, InvalidRequest, NotFound, PaymentFailed
from chalicelib.domain.ids import new_id
from chalicelib.domain.money import application_fee
from chalicelib.domain.plans import BillingCycle, Plan
from chalicelib.domain.profiles import Profile
from chalicelib.domain.subscription_changes import (
    SubscriptionUpdate,
    change_plan_at_period_end,
    update_subscription,
)
from chalicelib.domain.subscriptions import Outcome, Subscription
from chalicelib.services.cards import require_card
from chalicelib.services.charging import (
    ChargeResult,
    apply_change,
    audit_event_entry,
    charge,
)
from chalicelib.services.links import link_entries
from chalicelib.services.views import payment_view, subscription_view

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container

ATTEMPTS = 10
BACKOFF_SECONDS = 0.01
T = TypeVar("T")


def with_retries(action: Callable[[], T]) -> T:
    """Run a read-decide-write action again when its conditional write lost a race (with a
    short jittered pause, so a crowd of writers spreads out instead of colliding again)."""
    for attempt in range(ATTEMPTS):
        try:
            return action()
        except ConcurrentChange:
            if attempt == ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0, BACKOFF_SECONDS * (attempt + 1)))
    raise AssertionError("unreachable")


def _profile(container: Container, community_id: str, profile_id: str, field: str) -> Profile:
    profile = container.profiles.find(community_id, profile_id)
    if profile is None:
        raise InvalidRequest.for_field(field, f"Profile {profile_id} not found.")
    return profile


def _plan(container: Container, community_id: str, plan_id: str) -> Plan:
    plan: Plan | None = container.plans.find(community_id, plan_id)
    if plan is None:
        raise InvalidRequest.for_field("plan_id", f"Plan {plan_id} not found.")
    return plan


def _members_exist(container: Container, community_id: str, ids: Sequence[str], field: str) -> None:
    for index, profile_id in enumerate(ids):
        _profile(container, community_id, profile_id, f"{field}[{index}]")


def view(container: Container, sub: Subscription) -> dict[str, Any]:
    return subscription_view(container, sub)


def fail_if_declined(container: Container, result: ChargeResult) -> None:
    payment = result.payment
    if payment is not None and payment.status == "failed":
        failure = payment.failure
        reason = f"{failure.code}: {failure.message}" if failure else "declined"
        raise PaymentFailed(f"The payment failed ({reason}).", payment=payment_view(payment))


# --- create / read / edit / delete ------------------------------------------------------------
def create(
    container: Container,
    community_id: str,
    *,
    plan_id: str,
    owner_id: str,
    member_ids: Sequence[str],
    billing_cycle: BillingCycle,
    payment_method_id: str | None,
    waive_activation_fee: bool,
) -> Subscription:
    plan = _plan(container, community_id, plan_id)
    owner = _profile(container, community_id, owner_id, "owner_id")
    _members_exist(container, community_id, member_ids, "member_ids")
    if payment_method_id is not None:
        owner.ensure_customer("owner_id")
        require_card(container, community_id, owner_id, payment_method_id)
    now = container.clock.now()
    outcome = Subscription.create(
        subscription_id=new_id("sub"),
        community_id=community_id,
        plan=plan,
        owner=owner,
        member_ids=list(member_ids),
        billing_cycle=billing_cycle,
        payment_method_id=payment_method_id,
        waive_activation_fee=waive_activation_fee,
        now=now,
    )
    sub = outcome.subscription
    entries = [container.subscriptions.create_entry(sub)]
    entries.append(audit_event_entry(container, sub, outcome.event, 1))
    entries += link_entries(container.settings.table_name, None, sub, now)
    container.subscriptions.commit(entries)
    return get(container, community_id, sub.id)


def get(container: Container, community_id: str, subscription_id: str) -> Subscription:
    found: Subscription = container.subscriptions.get(community_id, subscription_id)
    return found


def update(
    container: Container, community_id: str, subscription_id: str, given: dict[str, Any]
) -> Subscription:
    """PATCH: `given` holds only the fields the request named (all-or-nothing)."""
    plan = _plan(container, community_id, given["plan_id"]) if "plan_id" in given else None
    owner = (
        _profile(container, community_id, given["owner_id"], "owner_id")
        if "owner_id" in given
        else None
    )
    if "member_ids" in given:
        _members_exist(container, community_id, given["member_ids"], "member_ids")
    for name in (
        "plan_id",
        "owner_id",
        "member_ids",
        "billing_cycle",
        "payment_method_id",
        "waive_activation_fee",
    ):
        if name in given and given[name] is None:
            raise InvalidRequest.for_field(name, "Must not be null.")

    def step() -> Subscription:
        sub = get(container, community_id, subscription_id)
        card_owner = owner.id if owner is not None else sub.owner_id
        if "payment_method_id" in given:
            require_card(container, community_id, card_owner, given["payment_method_id"])
        elif owner is not None and sub.payment_method_id:
            # The card is charged on the owner's customer: a new owner needs their own card.
            require_card(container, community_id, card_owner, sub.payment_method_id)
        changes = SubscriptionUpdate(
            plan=plan,
            owner=owner,
            member_ids=given.get("member_ids"),
            billing_cycle=given.get("billing_cycle"),
            payment_method_id=given.get("payment_method_id"),
            waive_activation_fee=given.get("waive_activation_fee"),
        )
        return apply_change(
            container, sub, update_subscription(sub, changes, container.clock.now())
        )

    return with_retries(step)


def delete(container: Container, community_id: str, subscription_id: str) -> None:
    def step() -> None:
        sub = get(container, community_id, subscription_id)
        now = container.clock.now()
        event = sub.ensure_deletable(now)
        entries = [container.subscriptions.delete_entry(sub)]
        entries.append(audit_event_entry(container, sub, event, sub.version + 1))
        entries += link_entries(container.settings.table_name, sub, None, now)
        container.subscriptions.commit(entries)

    with_retries(step)


def list_subscriptions(
    container: Container, community_id: str, **filters: Any
) -> tuple[list[Subscription], bool, str | None]:
    result: tuple[list[Subscription], bool, str | None] = container.subscriptions.list(
        community_id, **filters
    )
    return result


def transition(
    container: Container,
    community_id: str,
    subscription_id: str,
    decide: Callable[[Subscription, datetime], Outcome],
) -> Subscription:
    """A plain (non-charging) change, retried on a lost race."""

    def step() -> Subscription:
        sub = get(container, community_id, subscription_id)
        return apply_change(container, sub, decide(sub, container.clock.now()))

    return with_retries(step)


def cancel(container: Container, community_id: str, subscription_id: str, at: str) -> Subscription:
    return transition(
        container,
        community_id,
        subscription_id,
        lambda sub, now: sub.cancel(at, now),  # type: ignore[arg-type]
    )


def resume(container: Container, community_id: str, subscription_id: str) -> Subscription:
    return transition(container, community_id, subscription_id, lambda sub, now: sub.resume(now))


# --- charging commands --------------------------------------------------------------------------
def charged_change(
    container: Container,
    community_id: str,
    subscription_id: str,
    planner: Callable[[Subscription, datetime], ChargePlan],
) -> ChargeResult:
    """Plan a charge on fresh state and run it; a race lost before Stripe is retried."""

    def step() -> ChargeResult:
        sub = get(container, community_id, subscription_id)
        now = container.clock.now()
        plan = planner(sub, now)
        return charge(container, sub, plan, actor="api", now=now)

    return with_retries(step)


def owner_credit(container: Container, community_id: str, profile_id: str) -> int:
    profile = container.profiles.get(community_id, profile_id)
    return int(profile.credit_balance)


def activate(
    container: Container, community_id: str, subscription_id: str, payment_method_id: str | None
) -> ChargeResult:
    def planner(sub: Subscription, now: datetime) -> ChargePlan:
        method = payment_method_id or sub.payment_method_id
        plan = plan_activation(
            sub,
            now,
            owner_credit=owner_credit(container, community_id, sub.owner_id),
            payment_method_id=payment_method_id,
        )
        if method:
            require_card(container, community_id, sub.owner_id, method)
        return plan

    result = charged_change(container, community_id, subscription_id, planner)
    fail_if_declined(container, result)
    return result


def reactivate(
    container: Container,
    community_id: str,
    subscription_id: str,
    *,
    payment_method_id: str | None,
    owner_id: str | None,
    billing_cycle: BillingCycle | None,
    member_ids: Sequence[str] | None,
) -> ChargeResult:
    owner = _profile(container, community_id, owner_id, "owner_id") if owner_id else None
    if member_ids is not None:
        _members_exist(container, community_id, member_ids, "member_ids")

    def planner(sub: Subscription, now: datetime) -> ChargePlan:
        billed = owner.id if owner is not None else sub.owner_id
        plan = plan_reactivation(
            sub,
            now,
            owner_credit=owner_credit(container, community_id, billed),
            owner=owner,
            payment_method_id=payment_method_id,
            billing_cycle=billing_cycle,
            member_ids=member_ids,
        )
        require_card(container, community_id, billed, plan.payment_method_id)
        return plan

    result = charged_change(container, community_id, subscription_id, planner)
    fail_if_declined(container, result)
    return result


def change_plan(
    container: Container, community_id: str, subscription_id: str, plan_id: str, effective: str
) -> ChargeResult:
    plan = _plan(container, community_id, plan_id)
    if effective == "period_end":
        sub = transition(
            container,
            community_id,
            subscription_id,
            lambda sub, now: change_plan_at_period_end(sub, plan, now),
        )
        return ChargeResult(sub, None)

    def planner(sub: Subscription, now: datetime) -> ChargePlan:
        return plan_change_now(
            sub, plan, now, owner_credit=owner_credit(container, community_id, sub.owner_id)
        )

    result = charged_change(container, community_id, subscription_id, planner)
    fail_if_declined(container, result)
    return result


# --- preview --------------------------------------------------------------------------------------
def preview(
    container: Container, community_id: str, subscription_id: str, action: str
) -> dict[str, Any]:
    """What activate / reactivate / renew would charge now (renew: at the period end)."""
    sub = get(container, community_id, subscription_id)
    community = container.communities.get(community_id)
    now = container.clock.now()
    credit = owner_credit(container, community_id, sub.owner_id)
    if action == "activate":
        plan = plan_activation(sub, now, owner_credit=credit)
    elif action == "reactivate":
        plan = plan_reactivation(sub, now, owner_credit=credit)
    else:
        period = sub.current_period
        if sub.status != "active" or period is None:
            from chalicelib.domain.errors import Conflict

            raise Conflict(f"Only active subscriptions renew; this one is {sub.status}.")
        plan = plan_renewal(sub, max(now, period.end), owner_credit=credit)
    fee = application_fee(plan.total, community.fee_bps_for_charges())
    return {
        "lines": [
            {
                "kind": line.kind,
                "description": line.description,
                "plan_name": line.plan_name,
                "profile_id": line.profile_id,
                "unit_amount": line.unit_amount,
                "quantity": line.quantity,
                "amount": line.amount,
            }
            for line in plan.lines
        ],
        "subtotal": plan.subtotal,
        "credit_applied": plan.credit_applied,
        "total": plan.total,
        "currency": plan.currency,
        "application_fee_amount": fee,
        "period": (
            {"start": _fmt(plan.period.start), "end": _fmt(plan.period.end)}
            if plan.period
            else None
        ),
    }


def _fmt(value: datetime) -> str:
    from chalicelib.adapters.dynamodb.timestamps import format_time

    return format_time(value)


def events(
    container: Container, community_id: str, subscription_id: str, limit: int, cursor: str | None
) -> Any:
    if container.subscriptions.find(community_id, subscription_id) is None:
        raise NotFound(f"Subscription {subscription_id} not found.")
    return container.audit_events.list(community_id, subscription_id, limit, cursor)
