"""Every row of DESIGN.md section 2's table, happy paths (illegal ones: see the matrix test)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.domain.charge_outcomes import (
    apply_charge_failed,
    apply_charge_succeeded,
    begin_charge,
    settle_without_stripe,
)
from chalicelib.domain.charge_planning import (
    plan_activation,
    plan_change_now,
    plan_reactivation,
    plan_renewal,
    plan_retry,
)
from chalicelib.domain.errors import ConcurrentChange, Conflict, InvalidRequest
from chalicelib.domain.subscription_changes import (
    SubscriptionUpdate,
    change_plan_at_period_end,
    remove_member,
    update_subscription,
)
from chalicelib.domain.subscriptions import (
    CreditChange,
    Subscription,
)
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

# --- (new) -> inactive ------------------------------------------------------------------


def test_create_is_inactive_with_due_fees_and_no_period() -> None:
    outcome = Subscription.create(
        subscription_id="sub_1",
        community_id="com_1",
        plan=make_plan(),
        owner=customer(),
        member_ids=["prof_a", "prof_b"],
        billing_cycle="month",
        payment_method_id=None,
        waive_activation_fee=False,
        now=T0,
    )
    sub = outcome.subscription
    assert sub.status == "inactive"
    assert sub.member_ids == ["prof_a", "prof_b"]
    assert [m.activation_fee.status for m in sub.members] == ["due", "due"]
    assert sub.members[0].activation_fee.amount == 500
    assert sub.current_period is None
    assert sub.next_action is None  # inactive is never billed
    assert sub.unit_amount == 3000
    assert outcome.event.type == "subscription.created"
    assert (outcome.event.from_status, outcome.event.to_status) == (None, "inactive")


def test_create_refuses_bad_input_naming_the_field() -> None:
    def create(**overrides: object) -> None:
        args: dict[str, object] = {
            "subscription_id": "sub_1",
            "community_id": "com_1",
            "plan": make_plan(),
            "owner": customer(),
            "member_ids": ["prof_a"],
            "billing_cycle": "month",
            "payment_method_id": None,
            "waive_activation_fee": False,
            "now": T0,
        }
        args.update(overrides)
        Subscription.create(**args)  # type: ignore[arg-type]

    cases = [
        ({"member_ids": ["prof_a", "prof_a"]}, "member_ids[1]"),
        ({"billing_cycle": "week"}, "billing_cycle"),
        ({"plan": make_plan(year=None), "billing_cycle": "year"}, "billing_cycle"),
        ({"plan": make_plan(max_members=1), "member_ids": ["a", "b"]}, "member_ids"),
        ({"owner": replace(customer(), kind="dependent", email=None)}, "owner_id"),
    ]
    for overrides, field_name in cases:
        with pytest.raises(InvalidRequest) as err:
            create(**overrides)
        assert err.value.details[0].field == field_name, overrides
    with pytest.raises(Conflict):
        create(plan=make_plan(status="archived"))


# --- inactive: edit anything / delete ---------------------------------------------------


def test_inactive_edits_anything_all_or_nothing() -> None:
    sub = new_sub()
    other = make_plan("plan_gold", month=5000, activation_fee=900)
    outcome = update_subscription(
        sub,
        SubscriptionUpdate(
            plan=other,
            owner=customer("prof_new"),
            member_ids=["prof_b", "prof_c"],
            billing_cycle="year",
            payment_method_id="pm_2",
            waive_activation_fee=True,
        ),
        T0,
    )
    edited = outcome.subscription
    assert (edited.plan_id, edited.owner_id, edited.billing_cycle) == (
        "plan_gold",
        "prof_new",
        "year",
    )
    assert edited.member_ids == ["prof_b", "prof_c"]
    assert [m.activation_fee.status for m in edited.members] == ["waived", "waived"]
    assert edited.payment_method_id == "pm_2"
    assert edited.status == "inactive"
    assert set(outcome.event.details["changed"]) == {  # type: ignore[arg-type]
        "plan_id",
        "owner_id",
        "member_ids",
        "billing_cycle",
        "payment_method_id",
        "waive_activation_fee",
    }
    # one bad field refuses the whole PATCH
    with pytest.raises(InvalidRequest) as err:
        update_subscription(
            sub, SubscriptionUpdate(plan=make_plan("plan_m", year=None), billing_cycle="year"), T0
        )
    assert err.value.details[0].field == "billing_cycle"
    with pytest.raises(InvalidRequest) as err:
        update_subscription(sub, SubscriptionUpdate(plan=make_plan("plan_y", month=None)), T0)
    assert err.value.details[0].field == "plan_id"


def test_inactive_is_deletable_and_nothing_else_is() -> None:
    event = new_sub().ensure_deletable(T0)
    assert (event.type, event.from_status, event.to_status) == (
        "subscription.deleted",
        "inactive",
        None,
    )
    with pytest.raises(Conflict):
        active_sub().ensure_deletable(T0)


# --- inactive -> active (activate) -------------------------------------------------------


def test_activation_charges_unit_price_times_members_plus_fee_per_member() -> None:
    sub = stored(new_sub(members=["prof_a", "prof_b"]))
    charge = plan_activation(sub, at(2026, 1, 31, 10, 0, 0, 123), owner_credit=0)
    assert charge.kind == "activation"
    assert [
        (ln.kind, ln.profile_id, ln.unit_amount, ln.quantity, ln.amount) for ln in charge.lines
    ] == [
        ("plan", None, 3000, 2, 6000),
        ("activation_fee", "prof_a", 500, 1, 500),
        ("activation_fee", "prof_b", 500, 1, 500),
    ]
    assert (charge.subtotal, charge.credit_applied, charge.total) == (7000, 0, 7000)
    # first period anchored at activation (whole seconds), Jan 31 -> Feb 28
    assert charge.period is not None
    assert charge.period.start == at(2026, 1, 31, 10)
    assert charge.period.end == at(2026, 2, 28, 10)

    begun = begin_charge(sub, charge, "pay_1", at(2026, 1, 31, 10))
    assert begun.subscription.status == "inactive"
    assert begun.subscription.pending_charge is not None
    assert begun.subscription.next_action is None
    done = apply_charge_succeeded(stored(begun.subscription), "pay_1", at(2026, 1, 31, 10, 0, 2))
    active = done.subscription
    assert active.status == "active"
    assert active.pending_charge is None
    assert active.current_period == charge.period
    assert active.activated_at == at(2026, 1, 31, 10, 0, 2)
    assert [m.activation_fee for m in active.members] == [
        replace(m.activation_fee, status="paid", payment_id="pay_1") for m in sub.members
    ]
    assert done.event.type == "subscription.activated"
    assert (done.event.from_status, done.event.to_status) == ("inactive", "active")
    assert active.next_action is not None
    assert (active.next_action.action, active.next_action.due_at) == ("renew", at(2026, 2, 28, 10))


def test_activation_waived_fee_and_payment_method_from_the_request() -> None:
    sub = stored(new_sub(waive=True, payment_method_id=None))
    with pytest.raises(InvalidRequest) as err:
        plan_activation(sub, T0, owner_credit=0)
    assert err.value.details[0].field == "payment_method_id"
    charge = plan_activation(sub, T0, owner_credit=0, payment_method_id="pm_9")
    assert [ln.kind for ln in charge.lines] == ["plan"]
    assert charge.total == 3000
    active = charge_through(sub, charge, T0).subscription
    assert active.payment_method_id == "pm_9"
    assert active.members[0].activation_fee.status == "waived"


def test_activation_needs_a_member() -> None:
    with pytest.raises(InvalidRequest) as err:
        plan_activation(stored(new_sub(members=[])), T0, owner_credit=0)
    assert err.value.details[0].field == "member_ids"


def test_activation_failure_leaves_it_inactive_and_returns_the_credit() -> None:
    sub = stored(new_sub())
    charge = plan_activation(sub, T0, owner_credit=1000)
    assert (charge.subtotal, charge.credit_applied, charge.total) == (3500, 1000, 2500)
    assert charge.lines[-1].kind == "credit" and charge.lines[-1].amount == -1000
    begun = begin_charge(sub, charge, "pay_1", T0)
    assert begun.credit_change == CreditChange("prof_owner", -1000)
    failed = apply_charge_failed(stored(begun.subscription), "pay_1", T0)
    assert failed.subscription.status == "inactive"
    assert failed.subscription.pending_charge is None
    assert failed.subscription.members == sub.members
    assert failed.credit_change == CreditChange("prof_owner", 1000)
    assert failed.event.type == "subscription.activation_failed"
    # and it can be activated again later, with another charge key
    again = plan_activation(stored(failed.subscription), T0, owner_credit=0)
    assert again.charge_key != charge.charge_key


def test_free_plan_needs_a_card_and_charges_nothing() -> None:
    plan = make_plan("plan_free", month=0, year=0, activation_fee=0)
    with pytest.raises(InvalidRequest):
        plan_activation(stored(new_sub(plan=plan, payment_method_id=None)), T0, owner_credit=0)
    sub = stored(new_sub(plan=plan))
    charge = plan_activation(sub, T0, owner_credit=700)
    assert (charge.subtotal, charge.credit_applied, charge.total) == (0, 0, 0)
    assert not charge.needs_payment and not charge.needs_stripe
    with pytest.raises(ValueError):
        begin_charge(sub, charge, "pay_1", T0)
    outcome = settle_without_stripe(sub, charge, T0)
    assert outcome.subscription.status == "active"
    assert outcome.credit_change is None
    assert outcome.subscription.members[0].activation_fee.status == "paid"
    assert outcome.subscription.members[0].activation_fee.payment_id is None


def test_credit_covering_everything_needs_a_payment_record_but_no_stripe() -> None:
    sub = stored(new_sub())
    charge = plan_activation(sub, T0, owner_credit=10_000)
    assert (charge.subtotal, charge.credit_applied, charge.total) == (3500, 3500, 0)
    assert charge.needs_payment and not charge.needs_stripe
    with pytest.raises(ValueError):
        settle_without_stripe(sub, charge, T0)
    outcome = settle_without_stripe(sub, charge, T0, payment_id="pay_c")
    assert outcome.credit_change == CreditChange("prof_owner", -3500)
    assert outcome.subscription.members[0].activation_fee.payment_id == "pay_c"


def test_stale_charge_plan_is_refused() -> None:
    sub = stored(new_sub())
    charge = plan_activation(sub, T0, owner_credit=0)
    with pytest.raises(ConcurrentChange):
        begin_charge(stored(sub), charge, "pay_1", T0)


def test_resolving_an_unknown_payment_is_a_conflict() -> None:
    sub = stored(new_sub())
    begun = stored(
        begin_charge(sub, plan_activation(sub, T0, owner_credit=0), "pay_1", T0).subscription
    )
    with pytest.raises(Conflict):
        apply_charge_succeeded(begun, "pay_other", T0)
    done = stored(apply_charge_succeeded(begun, "pay_1", T0).subscription)
    with pytest.raises(Conflict):  # a second resolution (duplicate webhook) changes nothing
        apply_charge_failed(done, "pay_1", T0)


# --- active -> expiring -> active / cancelled --------------------------------------------


def test_cancel_at_period_end_then_resume_then_cancel_now() -> None:
    sub = active_sub()
    expiring = sub.cancel("period_end", at(2026, 1, 10))
    assert expiring.subscription.status == "expiring"
    assert expiring.subscription.cancel_at == at(2026, 2, 1)
    assert expiring.event.type == "subscription.cancel_scheduled"
    action = expiring.subscription.next_action
    assert action is not None and (action.action, action.due_at) == ("expire", at(2026, 2, 1))

    resumed = expiring.subscription.resume(at(2026, 1, 12))
    assert resumed.subscription.status == "active"
    assert resumed.subscription.cancel_at is None
    assert resumed.subscription.current_period == sub.current_period  # billing cycle unchanged
    assert resumed.event.type == "subscription.resumed"

    for status_sub in (sub, expiring.subscription):
        now = status_sub.cancel("now", at(2026, 1, 15))
        assert now.subscription.status == "cancelled"
        assert now.subscription.cancellation_reason == "requested"
        assert now.subscription.cancelled_at == at(2026, 1, 15)
        assert now.subscription.next_action is None


def test_queued_changes_survive_a_cancel_at_period_end_and_apply_after_resume() -> None:
    sub = stored(
        update_subscription(active_sub(), SubscriptionUpdate(billing_cycle="year"), T0).subscription
    )
    assert sub.pending_changes.billing_cycle == "year"
    expiring = stored(sub.cancel("period_end", T0).subscription)
    assert expiring.pending_changes.billing_cycle == "year"
    resumed = stored(expiring.resume(T0).subscription)
    assert resumed.pending_changes.billing_cycle == "year"

    renewal = plan_renewal(resumed, at(2026, 2, 1), owner_credit=0)
    renewed = charge_through(resumed, renewal, at(2026, 2, 1)).subscription
    assert renewed.billing_cycle == "year" and renewal.total == 30000
    assert renewed.current_period is not None
    assert renewed.current_period.end == at(2027, 2, 1)


def test_a_plan_change_now_that_rules_out_the_queued_cycle_is_refused() -> None:
    sub = stored(
        update_subscription(active_sub(), SubscriptionUpdate(billing_cycle="year"), T0).subscription
    )
    monthly_only = make_plan("plan_monthly", month=4000, year=None)
    with pytest.raises(Conflict, match="year"):
        plan_change_now(sub, monthly_only, at(2026, 1, 10), owner_credit=0)


def test_expiring_period_ends_cancelled_expired() -> None:
    expiring = active_sub().cancel("period_end", T0).subscription
    with pytest.raises(Conflict):
        expiring.expire(at(2026, 1, 31, 23, 59))
    outcome = expiring.expire(at(2026, 2, 1))
    assert outcome.subscription.status == "cancelled"
    assert outcome.subscription.cancellation_reason == "expired"
    assert outcome.event.type == "subscription.expired"
    assert outcome.event.actor == "scheduler"


# --- active -> active (renewal) -----------------------------------------------------------


def test_renewal_charges_the_next_period_from_the_anchor() -> None:
    sub = active_sub(members=["prof_a", "prof_b"], now=at(2026, 1, 31))
    with pytest.raises(Conflict):
        plan_renewal(sub, at(2026, 2, 27), owner_credit=0)
    charge = plan_renewal(sub, at(2026, 2, 28, 0, 5), owner_credit=0)
    assert charge.kind == "renewal"
    assert [(ln.kind, ln.unit_amount, ln.quantity) for ln in charge.lines] == [("plan", 3000, 2)]
    assert charge.total == 6000
    assert charge.period is not None
    assert (charge.period.start, charge.period.end) == (at(2026, 2, 28), at(2026, 3, 31))
    renewed = charge_through(sub, charge, at(2026, 2, 28, 0, 5)).subscription
    assert renewed.current_period == charge.period
    assert renewed.period_index == 2
    # and the next one goes back to the 31st... then April 30
    charge3 = plan_renewal(stored(renewed), at(2026, 3, 31), owner_credit=0)
    assert charge3.period is not None
    assert (charge3.period.start, charge3.period.end) == (at(2026, 3, 31), at(2026, 4, 30))


def test_renewal_applies_queued_cycle_and_plan_and_drops_pending_removals() -> None:
    sub = active_sub(members=["prof_a", "prof_b"])
    gold = make_plan("plan_gold", month=5000, year=50000)
    sub = update_subscription(sub, SubscriptionUpdate(billing_cycle="year"), T0).subscription
    sub = change_plan_at_period_end(sub, gold, T0).subscription
    sub = stored(remove_member(sub, "prof_b", "period_end", T0).subscription)
    assert (
        sub.pending_changes.billing_cycle == "year" and sub.pending_changes.plan_id == "plan_gold"
    )
    charge = plan_renewal(sub, at(2026, 2, 1), owner_credit=0)
    assert [(ln.plan_name, ln.unit_amount, ln.quantity) for ln in charge.lines] == [
        ("Gold", 50000, 1)
    ]
    assert charge.period is not None
    assert (charge.period.start, charge.period.end) == (at(2026, 2, 1), at(2027, 2, 1))
    renewed = charge_through(sub, charge, at(2026, 2, 1)).subscription
    assert (renewed.plan_id, renewed.billing_cycle) == ("plan_gold", "year")
    assert renewed.pending_changes.empty
    assert renewed.member_ids == ["prof_a"]
    assert renewed.former_members[0].profile_id == "prof_b"
    assert renewed.former_members[0].removed_at == at(2026, 2, 1)
    assert renewed.current_period == charge.period


def test_setting_the_current_cycle_clears_a_queued_change() -> None:
    sub = update_subscription(
        active_sub(), SubscriptionUpdate(billing_cycle="year"), T0
    ).subscription
    assert update_subscription(
        sub, SubscriptionUpdate(billing_cycle="month"), T0
    ).subscription.pending_changes.empty


def test_active_accepts_owner_and_payment_method_for_the_next_charge_only() -> None:
    sub = active_sub()
    outcome = update_subscription(
        sub, SubscriptionUpdate(owner=customer("prof_new"), payment_method_id="pm_new"), T0
    )
    updated = stored(outcome.subscription)
    assert (updated.owner_id, updated.payment_method_id) == ("prof_new", "pm_new")
    assert updated.current_period == sub.current_period  # nothing charged, nothing moved
    charge = plan_renewal(updated, at(2026, 2, 1), owner_credit=0)
    assert (charge.billed_to_profile_id, charge.payment_method_id) == ("prof_new", "pm_new")
    for forbidden in (
        SubscriptionUpdate(plan=make_plan("plan_x")),
        SubscriptionUpdate(member_ids=["prof_z"]),
        SubscriptionUpdate(waive_activation_fee=True),
    ):
        with pytest.raises(Conflict):
            update_subscription(sub, forbidden, T0)
    with pytest.raises(InvalidRequest) as err:
        update_subscription(
            active_sub(plan=make_plan(year=None)), SubscriptionUpdate(billing_cycle="year"), T0
        )
    assert err.value.details[0].field == "billing_cycle"


# --- active -> failed_payment -> active / cancelled ----------------------------------------


def failed_sub(grace_days: int = 14, retry_days: tuple[int, ...] = (3, 7)) -> Subscription:
    sub = active_sub(plan=make_plan(grace_days=grace_days, retry_days=retry_days))
    charge = plan_renewal(sub, at(2026, 2, 1, 1), owner_credit=0)
    return stored(charge_through(sub, charge, at(2026, 2, 1, 1), succeed=False).subscription)


def test_failed_renewal_starts_grace_and_retries() -> None:
    sub = failed_sub()
    assert sub.status == "failed_payment"
    assert sub.failed_at == at(2026, 2, 1, 1)
    assert sub.grace_ends_at == at(2026, 2, 15, 1)
    assert sub.next_retry_at == at(2026, 2, 4, 1)
    assert sub.current_period is not None and sub.current_period.end == at(2026, 2, 1)
    action = sub.next_action
    assert action is not None and (action.action, action.due_at) == ("retry", at(2026, 2, 4, 1))


def test_failed_renewal_event_and_pending_removals_still_leave() -> None:
    sub = active_sub(members=["prof_a", "prof_b"])
    sub = stored(remove_member(sub, "prof_b", "period_end", T0).subscription)
    charge = plan_renewal(sub, at(2026, 2, 1), owner_credit=0)
    begun = stored(begin_charge(sub, charge, "pay_r", at(2026, 2, 1)).subscription)
    outcome = apply_charge_failed(begun, "pay_r", at(2026, 2, 1), actor="webhook")
    assert outcome.event.type == "subscription.renewal_failed"
    assert (outcome.event.from_status, outcome.event.to_status) == ("active", "failed_payment")
    assert outcome.event.actor == "webhook"
    assert outcome.subscription.member_ids == ["prof_a"]


def test_retry_failures_walk_the_schedule_then_grace_ends() -> None:
    sub = failed_sub()
    with pytest.raises(Conflict):
        plan_retry(sub, at(2026, 2, 4), owner_credit=0)  # not due yet
    first = charge_through(
        sub, plan_retry(sub, at(2026, 2, 4, 1), owner_credit=0), at(2026, 2, 4, 1), succeed=False
    )
    assert first.event.type == "subscription.retry_failed"
    after_first = stored(first.subscription)
    assert after_first.status == "failed_payment"
    assert after_first.failed_at == at(2026, 2, 1, 1)  # unchanged
    assert after_first.next_retry_at == at(2026, 2, 8, 1)
    second = charge_through(
        after_first,
        plan_retry(after_first, at(2026, 2, 8, 1), owner_credit=0),
        at(2026, 2, 8, 1),
        succeed=False,
    ).subscription
    assert second.next_retry_at is None
    action = second.next_action
    assert action is not None and (action.action, action.due_at) == (
        "end_grace",
        at(2026, 2, 15, 1),
    )
    with pytest.raises(Conflict):
        plan_retry(stored(second), at(2026, 2, 9), owner_credit=0)
    with pytest.raises(Conflict):
        second.end_grace(at(2026, 2, 15))
    ended = second.end_grace(at(2026, 2, 15, 1))
    assert ended.subscription.status == "cancelled"
    assert ended.subscription.cancellation_reason == "payment_failed"


def test_retry_success_starts_a_new_cycle_at_that_moment() -> None:
    sub = failed_sub()
    now = at(2026, 2, 4, 1, 0, 7)
    charge = plan_retry(sub, now, owner_credit=0)
    assert charge.kind == "retry"
    assert charge.total == 3000
    outcome = charge_through(sub, charge, now)
    active = outcome.subscription
    assert active.status == "active"
    assert active.current_period is not None
    assert (active.current_period.start, active.current_period.end) == (
        now,
        at(2026, 3, 4, 1, 0, 7),
    )
    assert (active.failed_at, active.grace_ends_at, active.next_retry_at) == (None, None, None)
    assert outcome.event.type == "subscription.retry_succeeded"


def test_grace_of_zero_days_ends_immediately_without_retries() -> None:
    sub = failed_sub(grace_days=0, retry_days=())
    assert sub.next_retry_at is None
    action = sub.next_action
    assert action is not None and action.action == "end_grace"
    assert sub.end_grace(at(2026, 2, 1, 1)).subscription.status == "cancelled"


def test_failed_payment_cancel_now() -> None:
    outcome = failed_sub().cancel("now", at(2026, 2, 2))
    assert outcome.subscription.status == "cancelled"
    assert outcome.subscription.cancellation_reason == "requested"


def test_reactivation_charges_a_full_period_now_with_changes() -> None:
    sub = failed_sub()
    now = at(2026, 2, 5, 12)
    charge = plan_reactivation(
        sub,
        now,
        owner_credit=0,
        owner=customer("prof_new"),
        payment_method_id="pm_new",
        billing_cycle="year",
        member_ids=["prof_a", "prof_c"],
    )
    assert charge.kind == "reactivation"
    assert [(ln.kind, ln.profile_id, ln.unit_amount, ln.quantity) for ln in charge.lines] == [
        ("plan", None, 30000, 2),
        ("activation_fee", "prof_c", 500, 1),  # prof_a paid already: no fee again
    ]
    assert charge.billed_to_profile_id == "prof_new"
    outcome = charge_through(sub, charge, now)
    active = outcome.subscription
    assert outcome.event.type == "subscription.reactivated"
    assert active.status == "active"
    assert (active.owner_id, active.payment_method_id, active.billing_cycle) == (
        "prof_new",
        "pm_new",
        "year",
    )
    assert active.member_ids == ["prof_a", "prof_c"]
    assert active.current_period is not None
    assert (active.current_period.start, active.current_period.end) == (now, at(2027, 2, 5, 12))
    assert active.members[1].activation_fee.status == "paid"


def test_reactivation_failure_discards_the_changes() -> None:
    sub = failed_sub()
    charge = plan_reactivation(
        sub, at(2026, 2, 5), owner_credit=0, owner=customer("prof_new"), member_ids=["prof_c"]
    )
    outcome = charge_through(sub, charge, at(2026, 2, 5), succeed=False)
    after = outcome.subscription
    assert after.status == "failed_payment"
    assert (after.owner_id, after.member_ids) == ("prof_owner", ["prof_a"])
    assert after.next_retry_at == sub.next_retry_at and after.grace_ends_at == sub.grace_ends_at
    assert outcome.event.type == "subscription.reactivation_failed"


def test_reactivation_input_errors() -> None:
    sub = failed_sub()
    with pytest.raises(InvalidRequest) as err:
        plan_reactivation(sub, T0 + timedelta(days=40), owner_credit=0, member_ids=[])
    assert err.value.details[0].field == "member_ids"
    with pytest.raises(InvalidRequest) as err:
        failed_with_month_only = replace(sub, plan=replace(sub.plan, prices={"month": 3000}))
        plan_reactivation(
            failed_with_month_only, at(2026, 2, 5), owner_credit=0, billing_cycle="year"
        )
    assert err.value.details[0].field == "billing_cycle"


def test_pending_charge_blocks_every_other_change() -> None:
    sub = active_sub(members=["prof_a", "prof_b"])
    begun = stored(
        begin_charge(
            sub, plan_renewal(sub, at(2026, 2, 1), owner_credit=0), "pay_r", at(2026, 2, 1)
        ).subscription
    )
    attempts = [
        lambda: begun.cancel("now", at(2026, 2, 1)),
        lambda: update_subscription(
            begun, SubscriptionUpdate(payment_method_id="pm_2"), at(2026, 2, 1)
        ),
        lambda: remove_member(begun, "prof_b", "now", at(2026, 2, 1)),
        lambda: plan_renewal(begun, at(2026, 2, 1), owner_credit=0),
    ]
    for attempt in attempts:
        with pytest.raises(Conflict):
            attempt()


def test_a_failed_payment_subscription_shows_when_it_is_cancelled_unless_paid() -> None:
    sub = failed_sub(grace_days=10)
    assert sub.cancel_at == at(2026, 2, 11, 1) == sub.grace_ends_at  # failed_at + grace days

    paid = charge_through(
        sub, plan_retry(sub, at(2026, 2, 4, 1), owner_credit=0), at(2026, 2, 4, 1)
    )
    assert (paid.subscription.status, paid.subscription.cancel_at) == ("active", None)
    ended = sub.end_grace(at(2026, 2, 11, 1)).subscription
    assert (ended.status, ended.cancel_at) == ("cancelled", None)
    cancelled = sub.cancel("now", at(2026, 2, 2)).subscription
    assert (cancelled.status, cancelled.cancel_at) == ("cancelled", None)
    reactivated = charge_through(
        sub, plan_reactivation(sub, at(2026, 2, 5), owner_credit=0), at(2026, 2, 5)
    ).subscription
    assert (reactivated.status, reactivated.cancel_at) == ("active", None)


def test_an_expiring_subscription_cannot_resume_after_it_ended() -> None:
    expiring = stored(active_sub().cancel("period_end", T0).subscription)
    assert expiring.cancel_at == at(2026, 2, 1)
    with pytest.raises(Conflict, match="ended"):
        expiring.resume(at(2026, 2, 1, 0, 1))  # the expiration has not run yet
    assert expiring.resume(at(2026, 1, 31, 23, 59)).subscription.status == "active"
