from __future__ import annotations

from dataclasses import replace

from chalicelib.domain.access import has_access
from chalicelib.domain.charge_planning import plan_renewal
from chalicelib.domain.subscription_changes import remove_member
from tests.unit.domain.factories import (
    T0,
    active_sub,
    at,
    charge_through,
    customer,
    dependent,
    new_sub,
    stored,
)


def test_free_access_needs_no_subscription() -> None:
    profile = replace(customer("prof_a"), free_access=True)
    decision = has_access(profile, [], T0)
    assert (decision.has_access, decision.reason, decision.subscription_ids) == (
        True,
        "free_access",
        (),
    )


def test_members_of_active_and_expiring_have_access() -> None:
    kid = dependent("prof_a")
    sub = active_sub()
    decision = has_access(kid, [sub], at(2026, 1, 5))
    assert (decision.has_access, decision.reason, decision.subscription_ids) == (
        True,
        "subscription",
        ("sub_1",),
    )
    expiring = sub.cancel("period_end", at(2026, 1, 5)).subscription
    assert has_access(kid, [expiring], at(2026, 1, 6)).has_access


def test_inactive_failed_payment_and_cancelled_give_none() -> None:
    kid = dependent("prof_a")
    assert not has_access(kid, [new_sub()], T0).has_access
    sub = active_sub()
    failed = charge_through(
        sub, plan_renewal(sub, at(2026, 2, 1), owner_credit=0), at(2026, 2, 1), succeed=False
    ).subscription
    assert failed.status == "failed_payment"
    decision = has_access(kid, [failed], at(2026, 2, 2))
    assert (decision.has_access, decision.reason, decision.subscription_ids) == (False, None, ())
    assert not has_access(
        kid, [sub.cancel("now", at(2026, 1, 2)).subscription], at(2026, 1, 2)
    ).has_access


def test_owner_who_is_not_a_member_has_no_access_and_removed_members_lose_it() -> None:
    sub = active_sub(members=["prof_a", "prof_b"])
    assert not has_access(customer("prof_owner"), [sub], at(2026, 1, 5)).has_access
    pending = stored(remove_member(sub, "prof_b", "period_end", at(2026, 1, 5)).subscription)
    assert has_access(dependent("prof_b"), [pending], at(2026, 1, 31, 23)).has_access
    # the removal takes effect at period end even if the renewal has not run yet
    assert not has_access(dependent("prof_b"), [pending], at(2026, 2, 1)).has_access
    removed = remove_member(sub, "prof_b", "now", at(2026, 1, 6)).subscription
    assert not has_access(dependent("prof_b"), [removed], at(2026, 1, 6)).has_access


def test_free_access_still_lists_granting_subscriptions() -> None:
    profile = replace(dependent("prof_a"), free_access=True)
    decision = has_access(profile, [active_sub()], at(2026, 1, 5))
    assert decision.reason == "free_access"
    assert decision.subscription_ids == ("sub_1",)
