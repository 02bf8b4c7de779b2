"""Every operation in every status: legal ones work, every other one is a 409 (Conflict)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from chalicelib.domain.charge_planning import (
    plan_activation,
    plan_add_members,
    plan_change_now,
    plan_reactivation,
    plan_renewal,
    plan_retry,
)
from chalicelib.domain.errors import Conflict
from chalicelib.domain.members import MemberAddition
from chalicelib.domain.subscription_changes import (
    SubscriptionUpdate,
    change_plan_at_period_end,
    remove_member,
    restore_member,
    update_subscription,
)
from chalicelib.domain.subscriptions import Subscription
from tests.unit.domain.factories import (
    T0,
    active_sub,
    at,
    charge_through,
    customer,
    make_plan,
    new_sub,
    stored,
)

GOLD = make_plan("plan_gold", month=5000, year=50000)


def _mid(sub: Subscription) -> datetime:
    period = sub.current_period
    return (period.start if period else T0) + timedelta(days=1)


def build(status: str) -> Subscription:
    if status == "inactive":
        return stored(new_sub(members=["prof_a", "prof_b", "prof_c"]))
    active = active_sub(members=["prof_a", "prof_b", "prof_c"])
    active = stored(remove_member(active, "prof_b", "period_end", at(2026, 1, 2)).subscription)
    if status == "active":
        return active
    if status == "expiring":
        return stored(active.cancel("period_end", at(2026, 1, 2)).subscription)
    failed = charge_through(
        active, plan_renewal(active, at(2026, 2, 1), owner_credit=0), at(2026, 2, 1), succeed=False
    ).subscription
    if status == "failed_payment":
        return stored(failed)
    return stored(active.cancel("now", at(2026, 1, 3)).subscription)


Op = Callable[[Subscription], object]
OPS: dict[str, Op] = {
    "update_owner": lambda s: update_subscription(
        s, SubscriptionUpdate(owner=customer("prof_n")), _mid(s)
    ),
    "update_plan": lambda s: update_subscription(s, SubscriptionUpdate(plan=GOLD), _mid(s)),
    "update_members": lambda s: update_subscription(
        s, SubscriptionUpdate(member_ids=["prof_a"]), _mid(s)
    ),
    "delete": lambda s: s.ensure_deletable(_mid(s)),
    "activate": lambda s: plan_activation(s, _mid(s), owner_credit=0),
    "cancel_period_end": lambda s: s.cancel("period_end", _mid(s)),
    "cancel_now": lambda s: s.cancel("now", _mid(s)),
    "resume": lambda s: s.resume(_mid(s)),
    "expire": lambda s: s.expire(s.cancel_at or T0),
    "end_grace": lambda s: s.end_grace(s.grace_ends_at or T0),
    "renew": lambda s: plan_renewal(
        s, s.current_period.end if s.current_period else T0, owner_credit=0
    ),
    "retry": lambda s: plan_retry(s, s.next_retry_at or T0, owner_credit=0),
    "reactivate": lambda s: plan_reactivation(s, _mid(s) + timedelta(days=40), owner_credit=0),
    "add_members": lambda s: plan_add_members(
        s, [MemberAddition("prof_z")], _mid(s), owner_credit=0
    ),
    "remove_member_now": lambda s: remove_member(s, "prof_c", "now", _mid(s)),
    "remove_member_period_end": lambda s: remove_member(s, "prof_c", "period_end", _mid(s)),
    "restore_member": lambda s: restore_member(s, "prof_b", _mid(s)),
    "change_plan_now": lambda s: plan_change_now(s, GOLD, _mid(s), owner_credit=0),
    "change_plan_period_end": lambda s: change_plan_at_period_end(s, GOLD, _mid(s)),
}

LEGAL: dict[str, set[str]] = {
    "inactive": {"update_owner", "update_plan", "update_members", "delete", "activate"},
    "active": {
        "update_owner",
        "cancel_period_end",
        "cancel_now",
        "renew",
        "add_members",
        "remove_member_now",
        "remove_member_period_end",
        "restore_member",
        "change_plan_now",
        "change_plan_period_end",
    },
    "failed_payment": {"cancel_now", "retry", "reactivate", "end_grace"},
    "expiring": {"resume", "cancel_now", "expire"},
    "cancelled": set(),
}

CASES = [(status, op) for status in LEGAL for op in OPS]


@pytest.mark.parametrize(("status", "op_name"), CASES)
def test_operation_is_legal_only_where_the_design_says(status: str, op_name: str) -> None:
    sub = build(status)
    assert sub.status == status
    operation = OPS[op_name]
    if op_name in LEGAL[status]:
        operation(sub)  # must not raise
    else:
        with pytest.raises(Conflict):
            operation(sub)


def test_the_matrix_covers_every_status() -> None:
    assert set(LEGAL) == {"inactive", "active", "failed_payment", "expiring", "cancelled"}


def test_active_never_goes_back_to_inactive() -> None:
    # no operation on an active subscription yields inactive, and a second activation is a 409
    sub = build("active")
    for name in LEGAL["active"]:
        result = OPS[name](sub)
        outcome_sub = getattr(result, "subscription", None)
        if isinstance(outcome_sub, Subscription):
            assert outcome_sub.status != "inactive"
    with pytest.raises(Conflict):
        plan_activation(sub, T0, owner_credit=0)
