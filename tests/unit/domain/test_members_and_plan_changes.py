from __future__ import annotations

from datetime import datetime

import pytest

from chalicelib.domain.charge_outcomes import settle_without_stripe
from chalicelib.domain.charge_planning import (
    plan_activation,
    plan_add_members,
    plan_change_now,
    plan_renewal,
    preview_renewal,
)
from chalicelib.domain.errors import Conflict, InvalidRequest, NotFound
from chalicelib.domain.members import MemberAddition
from chalicelib.domain.subscription_changes import (
    SubscriptionUpdate,
    change_plan_at_period_end,
    remove_member,
    restore_member,
    update_subscription,
)
from chalicelib.domain.subscriptions import CreditChange
from tests.unit.domain.factories import active_sub, at, charge_through, make_plan, stored

APRIL_1 = at(2026, 4, 1)  # a 30-day monthly period: Apr 1 -> May 1


def april_sub(members: tuple[str, ...] = ("prof_a",), unit: int = 3000, fee: int = 500):  # type: ignore[no-untyped-def]
    return active_sub(plan=make_plan(month=unit, activation_fee=fee), members=members, now=APRIL_1)


@pytest.mark.parametrize(
    ("moment", "expected_prorated"),
    [
        (at(2026, 4, 1), 3000),  # day 1: the whole period
        (at(2026, 4, 11), 2000),  # day 10 done: 20 of 30 days left
        (at(2026, 4, 16), 1500),
        (at(2026, 4, 21, 12), 950),  # 9.5 days left
        (at(2026, 4, 30, 23, 52, 48), 1),  # 432 s left: exactly 0.5 -> rounds up to 1
        (at(2026, 4, 30, 23, 52, 49), 0),  # 431 s left: 0.4988 -> 0
        (at(2026, 4, 30, 23, 59, 59), 0),  # 1 s left: 0.0012 -> 0
    ],
)
def test_adding_a_member_charges_the_prorated_price_plus_fee(
    moment: datetime, expected_prorated: int
) -> None:
    sub = april_sub()
    charge = plan_add_members(sub, [MemberAddition("prof_b", "charge")], moment, owner_credit=0)
    seconds_left = int((at(2026, 5, 1) - moment).total_seconds())
    exact = 3000 * seconds_left / (30 * 86400)
    assert charge.lines[0].amount == int(exact + 0.5)  # cross-check with float for these values
    assert charge.lines[0].amount == expected_prorated
    assert [(ln.kind, ln.profile_id) for ln in charge.lines] == [
        ("proration", "prof_b"),
        ("activation_fee", "prof_b"),
    ]
    assert charge.total == expected_prorated + 500
    assert charge.kind == "proration"


def test_day_10_of_30_exact_amounts_for_two_members_one_waived() -> None:
    sub = april_sub(unit=999)
    charge = plan_add_members(
        sub,
        [MemberAddition("prof_b", "charge"), MemberAddition("prof_c", "waive")],
        at(2026, 4, 11),
        owner_credit=0,
    )
    # 999 * 20/30 = 666.0 ; one fee of 500 (prof_c waived)
    assert [(ln.kind, ln.profile_id, ln.amount) for ln in charge.lines] == [
        ("proration", "prof_b", 666),
        ("activation_fee", "prof_b", 500),
        ("proration", "prof_c", 666),
    ]
    assert charge.total == 1832
    outcome = charge_through(sub, charge, at(2026, 4, 11))
    added = outcome.subscription
    assert added.member_ids == ["prof_a", "prof_b", "prof_c"]
    assert added.members[1].activation_fee.status == "paid"
    assert added.members[1].activation_fee.payment_id == "pay_x"
    assert added.members[2].activation_fee.status == "waived"
    assert added.current_period == sub.current_period
    assert outcome.event.type == "member.added"
    assert sorted(outcome.event.details["member_ids"]) == ["prof_b", "prof_c"]  # type: ignore[arg-type]


def test_proration_rounds_half_up() -> None:
    sub = april_sub(unit=1001)
    # 15 days left of 30: 500.5 -> 501
    charge = plan_add_members(
        sub, [MemberAddition("prof_b", "waive")], at(2026, 4, 16), owner_credit=0
    )
    assert charge.total == 501


def test_failed_add_adds_nobody() -> None:
    sub = april_sub()
    charge = plan_add_members(sub, [MemberAddition("prof_b")], at(2026, 4, 11), owner_credit=0)
    outcome = charge_through(sub, charge, at(2026, 4, 11), succeed=False)
    assert outcome.subscription.member_ids == ["prof_a"]
    assert outcome.event.type == "subscription.proration_failed"


def test_adding_with_everything_waived_at_period_end_needs_no_payment() -> None:
    sub = april_sub()
    last_minute = at(2026, 4, 30, 23, 59)  # 3000 x 60 s / 30 days rounds to 0
    charge = plan_add_members(sub, [MemberAddition("prof_b", "waive")], last_minute, owner_credit=0)
    assert not charge.needs_payment
    assert settle_without_stripe(sub, charge, last_minute).subscription.member_ids == [
        "prof_a",
        "prof_b",
    ]


def test_add_member_input_errors() -> None:
    sub = active_sub(plan=make_plan(max_members=2), members=["prof_a"])
    cases = [
        ([], "members"),
        ([MemberAddition("prof_a")], "members[0].profile_id"),
        ([MemberAddition("prof_b"), MemberAddition("prof_b")], "members[1]"),
        ([MemberAddition("prof_b"), MemberAddition("prof_c")], "members"),
        ([MemberAddition("prof_b", "maybe")], "members[0].activation_fee"),  # type: ignore[arg-type]
    ]
    for additions, field_name in cases:
        with pytest.raises(InvalidRequest) as err:
            plan_add_members(sub, additions, at(2026, 1, 5), owner_credit=0)
        assert err.value.details[0].field == field_name


def test_remove_at_period_end_restore_and_remove_now() -> None:
    sub = active_sub(members=["prof_a", "prof_b"])
    scheduled = remove_member(sub, "prof_b", "period_end", at(2026, 1, 10))
    pending = scheduled.subscription
    member = pending.member("prof_b")
    assert member is not None and member.removal_effective_at == at(2026, 2, 1)
    assert pending.member_ids == ["prof_a", "prof_b"]  # still a member until then
    assert scheduled.event.type == "member.removal_scheduled"
    with pytest.raises(Conflict):
        remove_member(pending, "prof_b", "period_end", at(2026, 1, 11))
    with pytest.raises(Conflict):  # prof_a is the last one staying
        remove_member(pending, "prof_a", "period_end", at(2026, 1, 11))

    restored = restore_member(pending, "prof_b", at(2026, 1, 12))
    assert restored.subscription.member("prof_b").removal_effective_at is None  # type: ignore[union-attr]
    assert restored.event.type == "member.restored"
    with pytest.raises(Conflict):
        restore_member(restored.subscription, "prof_b", at(2026, 1, 12))

    removed = remove_member(sub, "prof_b", "now", at(2026, 1, 15))
    assert removed.subscription.member_ids == ["prof_a"]
    assert removed.subscription.former_members[0].removed_at == at(2026, 1, 15)
    assert removed.event.type == "member.removed"
    with pytest.raises(Conflict):
        remove_member(removed.subscription, "prof_a", "now", at(2026, 1, 16))
    with pytest.raises(NotFound):
        remove_member(sub, "prof_zz", "now", at(2026, 1, 16))
    with pytest.raises(NotFound):
        restore_member(sub, "prof_zz", at(2026, 1, 16))
    with pytest.raises(InvalidRequest):
        remove_member(sub, "prof_b", "later", at(2026, 1, 16))  # type: ignore[arg-type]


def test_pending_removal_is_not_billed_at_renewal() -> None:
    sub = active_sub(members=["prof_a", "prof_b", "prof_c"])
    sub = stored(remove_member(sub, "prof_c", "period_end", at(2026, 1, 3)).subscription)
    charge = plan_renewal(sub, at(2026, 2, 1), owner_credit=0)
    assert charge.lines[0].quantity == 2
    assert charge.total == 6000


# --- plan changes ------------------------------------------------------------------------


def test_change_plan_now_to_a_dearer_plan_charges_the_prorated_difference() -> None:
    sub = april_sub(members=("prof_a", "prof_b"))
    gold = make_plan("plan_gold", month=4500, activation_fee=900)
    charge = plan_change_now(sub, gold, at(2026, 4, 11), owner_credit=0)
    # per member: 4500*20/30 - 3000*20/30 = 3000 - 2000 = 1000; two members
    assert [(ln.kind, ln.unit_amount, ln.quantity, ln.amount) for ln in charge.lines] == [
        ("proration", 1000, 2, 2000)
    ]
    assert charge.kind == "plan_change"
    assert charge.credit_granted == 0
    outcome = charge_through(sub, charge, at(2026, 4, 11))
    assert outcome.subscription.plan_id == "plan_gold"
    assert outcome.subscription.current_period == sub.current_period
    assert outcome.credit_change is None
    assert outcome.event.type == "subscription.plan_changed"


def test_change_plan_now_to_a_cheaper_plan_credits_the_owner_and_credit_is_spent_next() -> None:
    sub = april_sub(members=("prof_a", "prof_b"))
    lite = make_plan("plan_lite", month=1500)
    charge = plan_change_now(sub, lite, at(2026, 4, 11), owner_credit=0)
    assert charge.lines == () and charge.subtotal == 0
    assert charge.credit_granted == 2000  # (2000 - 1000) x 2 members
    outcome = settle_without_stripe(sub, charge, at(2026, 4, 11))
    assert outcome.credit_change == CreditChange("prof_owner", 2000)
    changed = stored(outcome.subscription)
    assert changed.plan_id == "plan_lite"
    # the next charge spends it: renewal 1500 x 2 = 3000, credit 2000 -> total 1000
    renewal = plan_renewal(changed, at(2026, 5, 1), owner_credit=2000)
    assert (renewal.subtotal, renewal.credit_applied, renewal.total) == (3000, 2000, 1000)
    assert renewal.lines[-1].kind == "credit"
    assert sum(ln.amount for ln in renewal.lines) == renewal.total
    # and never below zero
    small = plan_add_members(
        changed, [MemberAddition("prof_c", "waive")], at(2026, 4, 21), owner_credit=2000
    )
    assert small.total == 0 and small.credit_applied == small.subtotal == 500


def test_change_plan_now_failure_keeps_the_old_plan() -> None:
    sub = april_sub()
    charge = plan_change_now(
        sub, make_plan("plan_gold", month=9000), at(2026, 4, 2), owner_credit=0
    )
    assert (
        charge_through(sub, charge, at(2026, 4, 2), succeed=False).subscription.plan_id
        == "plan_basic"
    )


def test_change_plan_input_errors() -> None:
    sub = april_sub(members=("prof_a", "prof_b"))
    cases = [
        (make_plan("plan_basic"), "plan_id"),  # same plan
        (make_plan("plan_eur", currency="eur"), "plan_id"),
        (make_plan("plan_yearly", month=None), "plan_id"),
        (make_plan("plan_solo", max_members=1), "plan_id"),
    ]
    for plan, field_name in cases:
        with pytest.raises(InvalidRequest) as err:
            plan_change_now(sub, plan, at(2026, 4, 2), owner_credit=0)
        assert err.value.details[0].field == field_name
    with pytest.raises(Conflict):
        plan_change_now(
            sub, make_plan("plan_old", status="archived"), at(2026, 4, 2), owner_credit=0
        )


def test_change_plan_at_period_end_queues_and_current_plan_clears() -> None:
    sub = april_sub()
    queued = change_plan_at_period_end(sub, make_plan("plan_gold", month=5000), at(2026, 4, 2))
    assert queued.subscription.pending_changes.plan_id == "plan_gold"
    assert queued.subscription.plan_id == "plan_basic"
    cleared = change_plan_at_period_end(
        queued.subscription, make_plan("plan_basic"), at(2026, 4, 3)
    )
    assert cleared.subscription.pending_changes.empty
    with pytest.raises(InvalidRequest):
        change_plan_at_period_end(sub, make_plan("plan_y", month=None), at(2026, 4, 2))


def test_withdrawing_a_queued_plan_keeps_no_cycle_the_current_plan_lacks() -> None:
    """A yearly cycle queued because the queued plan offers it: going back to the current,
    monthly-only plan would leave a cycle no renewal can price (409 naming the queued change);
    with the cycle withdrawn first, the plan is withdrawn too."""
    monthly_only = make_plan("plan_basic", month=3000, year=None)
    sub = active_sub(plan=monthly_only, now=APRIL_1)
    sub = stored(
        change_plan_at_period_end(sub, make_plan("plan_gold"), at(2026, 4, 2)).subscription
    )
    yearly = SubscriptionUpdate(billing_cycle="year")
    sub = stored(update_subscription(sub, yearly, at(2026, 4, 3)).subscription)
    assert (sub.pending_changes.plan_id, sub.pending_changes.billing_cycle) == ("plan_gold", "year")

    with pytest.raises(Conflict, match="queued change to the year billing cycle"):
        change_plan_at_period_end(sub, monthly_only, at(2026, 4, 4))

    monthly = SubscriptionUpdate(billing_cycle="month")
    sub = stored(update_subscription(sub, monthly, at(2026, 4, 4)).subscription)
    cleared = change_plan_at_period_end(sub, monthly_only, at(2026, 4, 5)).subscription
    assert cleared.pending_changes.empty
    assert preview_renewal(cleared, at(2026, 4, 5), owner_credit=0).total == 3000


def test_queued_plan_capacity_limits_additions_and_restores() -> None:
    sub = april_sub(members=("prof_a", "prof_b"))
    sub = stored(remove_member(sub, "prof_b", "period_end", at(2026, 4, 2)).subscription)
    solo = make_plan("plan_solo", month=2000, max_members=1)
    sub = stored(change_plan_at_period_end(sub, solo, at(2026, 4, 3)).subscription)
    with pytest.raises(InvalidRequest) as err:
        plan_add_members(sub, [MemberAddition("prof_c")], at(2026, 4, 4), owner_credit=0)
    assert err.value.details[0].field == "members"
    with pytest.raises(Conflict):
        restore_member(sub, "prof_b", at(2026, 4, 4))


def test_activation_checks_the_stored_plan_and_preview_renewal_is_not_due_checked() -> None:
    from tests.unit.domain.factories import new_sub

    sub = stored(new_sub())
    with pytest.raises(Conflict):
        plan_activation(sub, APRIL_1, owner_credit=0, current_plan=make_plan(status="archived"))
    renamed = make_plan(name="Basic Plus", grace_days=20)
    charge = plan_activation(sub, APRIL_1, owner_credit=0, current_plan=renamed)
    assert charge.lines[0].plan_name == "Basic Plus"
    assert charge.pending.plan.failed_payment_grace_days == 20
    with pytest.raises(ValueError):
        sub.refresh_plan_terms(make_plan("plan_other"))

    active = april_sub()
    with pytest.raises(Conflict):
        plan_renewal(active, at(2026, 4, 20), owner_credit=0)
    preview = preview_renewal(active, at(2026, 4, 20), owner_credit=0)
    assert preview.period is not None
    assert (preview.period.start, preview.period.end) == (at(2026, 5, 1), at(2026, 6, 1))
    assert preview.total == 3000


# --- item 8: time guards ----------------------------------------------------------------------


def test_no_member_is_added_after_the_period_ended_before_the_renewal_ran() -> None:
    sub = active_sub()  # period 2026-01-01 .. 2026-02-01, renewal not run yet
    with pytest.raises(Conflict, match="renew"):
        plan_add_members(sub, [MemberAddition("prof_b")], at(2026, 2, 1, 0, 5), owner_credit=0)
    renewed = stored(
        charge_through(
            sub, plan_renewal(sub, at(2026, 2, 1, 0, 5), owner_credit=0), at(2026, 2, 1, 0, 5)
        ).subscription
    )
    charge = plan_add_members(
        renewed, [MemberAddition("prof_b", "waive")], at(2026, 2, 1, 0, 5), owner_credit=0
    )
    assert charge.period is not None and charge.period.start == at(2026, 2, 1)
    assert [line.profile_id for line in charge.lines] == ["prof_b"]  # only the new period


def test_a_removal_that_took_effect_cannot_be_restored() -> None:
    sub = active_sub(members=["prof_a", "prof_b"])
    pending = remove_member(sub, "prof_b", "period_end", at(2026, 1, 10)).subscription
    with pytest.raises(Conflict, match="took effect"):
        restore_member(pending, "prof_b", at(2026, 2, 1, 0, 1))


def test_a_former_member_is_restored_by_no_one_409_not_404() -> None:
    """Once the removal took effect (the renewal moved the profile to the former members, or
    it was removed `now`), restore is the 409 API.md names, not a 404 (it was a member)."""
    sub = active_sub(members=["prof_a", "prof_b"])
    pending = stored(remove_member(sub, "prof_b", "period_end", at(2026, 1, 10)).subscription)
    renewed = charge_through(
        pending, plan_renewal(pending, at(2026, 2, 1), owner_credit=0), at(2026, 2, 1)
    ).subscription
    assert renewed.member_ids == ["prof_a"]
    with pytest.raises(Conflict, match="took effect"):
        restore_member(stored(renewed), "prof_b", at(2026, 2, 2))

    removed_now = remove_member(sub, "prof_b", "now", at(2026, 1, 15)).subscription
    with pytest.raises(Conflict, match="took effect"):
        restore_member(stored(removed_now), "prof_b", at(2026, 1, 16))
    with pytest.raises(NotFound):
        restore_member(stored(removed_now), "prof_never", at(2026, 1, 16))
