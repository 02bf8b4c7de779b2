"""Builders for domain tests: real plans, profiles and subscriptions driven through the API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from chalicelib.domain.billing.charges import ChargePlan
from chalicelib.domain.charge_outcomes import (
    apply_charge_failed,
    apply_charge_succeeded,
    begin_charge,
    settle_without_stripe,
)
from chalicelib.domain.charge_planning import plan_activation
from chalicelib.domain.payments import BilledTo, Payment, PaymentMethodSummary, new_payment
from chalicelib.domain.plans import BillingCycle, Plan
from chalicelib.domain.profiles import Profile
from chalicelib.domain.subscriptions import Outcome, Subscription

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def make_plan(
    plan_id: str = "plan_basic",
    *,
    month: int | None = 3000,
    year: int | None = 30000,
    activation_fee: int = 500,
    grace_days: int = 14,
    retry_days: Sequence[int] = (3, 7),
    max_members: int | None = None,
    currency: str = "usd",
    name: str | None = None,
    status: str = "active",
) -> Plan:
    prices: dict[BillingCycle, int] = {}
    if month is not None:
        prices["month"] = month
    if year is not None:
        prices["year"] = year
    return Plan(
        id=plan_id,
        community_id="com_1",
        name=name or plan_id.removeprefix("plan_").title(),
        description=None,
        currency=currency,
        prices=prices,
        activation_fee=activation_fee,
        failed_payment_grace_days=grace_days,
        retry_schedule_days=tuple(retry_days),
        max_members=max_members,
        status="archived" if status == "archived" else "active",
        created_at=T0,
    )


def customer(profile_id: str = "prof_owner", credit: int = 0) -> Profile:
    return Profile(
        id=profile_id,
        community_id="com_1",
        kind="customer",
        name=profile_id,
        email=f"{profile_id}@example.com",
        account_holder_id=None,
        free_access=False,
        credit_balances={"usd": credit} if credit else {},
        currency="usd",
        created_at=T0,
    )


def dependent(profile_id: str = "prof_kid", holder: str = "prof_owner") -> Profile:
    return Profile(
        id=profile_id,
        community_id="com_1",
        kind="dependent",
        name=profile_id,
        email=None,
        account_holder_id=holder,
        free_access=False,
        credit_balances={},
        currency="usd",
        created_at=T0,
    )


def new_sub(
    *,
    plan: Plan | None = None,
    members: Sequence[str] = ("prof_a",),
    cycle: BillingCycle = "month",
    payment_method_id: str | None = "pm_1",
    waive: bool = False,
    now: datetime = T0,
) -> Subscription:
    return Subscription.create(
        subscription_id="sub_1",
        community_id="com_1",
        plan=plan or make_plan(),
        owner=customer(),
        member_ids=list(members),
        billing_cycle=cycle,
        payment_method_id=payment_method_id,
        waive_activation_fee=waive,
        now=now,
    ).subscription


def stored(sub: Subscription) -> Subscription:
    """What the repository does on every write: bump the version."""
    from dataclasses import replace

    return replace(sub, version=sub.version + 1)


def pay(charge: ChargePlan, payment_id: str, now: datetime) -> Payment:
    return new_payment(
        charge,
        payment_id,
        BilledTo(charge.billed_to_profile_id, "Owner", "owner@example.com"),
        PaymentMethodSummary("card", "visa", "4242"),
        None,
        0,
        now,
    )


def charge_through(
    sub: Subscription, charge: ChargePlan, now: datetime, *, succeed: bool = True
) -> Outcome:
    """The service's two-phase flow: begin (pending marker), then resolve."""
    if not charge.needs_stripe:
        payment_id = "pay_free" if charge.needs_payment else None
        return settle_without_stripe(sub, charge, now, payment_id=payment_id)
    begun = stored(begin_charge(sub, charge, "pay_x", now).subscription)
    if succeed:
        return apply_charge_succeeded(begun, "pay_x", now)
    return apply_charge_failed(begun, "pay_x", now)


def active_sub(
    *,
    plan: Plan | None = None,
    members: Sequence[str] = ("prof_a",),
    cycle: BillingCycle = "month",
    now: datetime = T0,
) -> Subscription:
    sub = stored(new_sub(plan=plan, members=members, cycle=cycle, now=now))
    charge = plan_activation(sub, now, owner_credit=0)
    return stored(charge_through(sub, charge, now).subscription)
