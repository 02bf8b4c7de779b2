"""Item 6: a PATCHed plan's failed-payment terms apply to subscriptions that fail afterwards;
an archived plan takes no activation (services on the in-memory world)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.errors import Conflict, InvalidRequest
from chalicelib.domain.members import MemberAddition
from tests.support.world import CID, World


def _add_member(world: World, sub_id: str, profile_id: str) -> None:
    world.members.add(
        CID,
        sub_id,
        [MemberAddition(profile_id)],
        send_welcome_email=False,
        send_receipt_email=False,
    )


def test_grace_and_retries_changed_on_the_plan_apply_to_a_later_failure() -> None:
    world = World()
    owner = world.customer("Ada")
    plan = world.plan(3000, grace_days=14, retry_days=(3, 7))
    sub_id = world.active(plan, owner)
    world.directory.plans[(CID, plan.id)] = plan.with_terms(
        failed_payment_grace_days=5, retry_schedule_days=(1, 2)
    )
    world.card_checks.on_stripe["pm_decline"] = owner.stripe_customer_id or ""
    world.subscriptions.update(CID, sub_id, {"payment_method_id": "pm_decline"})
    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.current_period is not None
    world.clock.advance_to(sub.current_period.end + timedelta(minutes=1))
    now = world.clock.now()

    assert world.scheduled.renew(CID, sub_id, now) == "renewal_failed"

    failed = world.store.subscriptions[(CID, sub_id)]
    assert failed.status == "failed_payment"
    assert failed.grace_ends_at == now + timedelta(days=5)
    assert failed.next_retry_at == now + timedelta(days=1)
    assert failed.plan.retry_schedule_days == (1, 2)  # the later retries follow the new terms


def test_an_archived_plan_cannot_be_activated() -> None:
    world = World()
    owner = world.customer("Ada")
    plan = world.plan(3000)
    sub = world.subscriptions.create(
        CID,
        plan_id=plan.id,
        owner_id=owner.id,
        member_ids=[owner.id],
        billing_cycle="month",
        payment_method_id="pm_ok",
        waive_activation_fee=False,
    )
    world.directory.plans[(CID, plan.id)] = plan.archived()

    with pytest.raises(Conflict, match="archived"):
        world.subscriptions.activate(CID, sub.id, None)
    with pytest.raises(Conflict, match="archived"):  # the preview says so too
        world.subscriptions.preview(CID, sub.id, "activate")
    assert world.store.subscriptions[(CID, sub.id)].status == "inactive"
    assert world.gateway.requests == []


def test_a_max_members_lowered_on_the_plan_holds_at_activation() -> None:
    world = World()
    owner = world.customer("Ada")
    kid = world.dependent("Kid", owner)
    plan = world.plan(3000)
    sub = world.subscriptions.create(
        CID,
        plan_id=plan.id,
        owner_id=owner.id,
        member_ids=[owner.id, kid.id],
        billing_cycle="month",
        payment_method_id="pm_ok",
        waive_activation_fee=False,
    )
    world.directory.plans[(CID, plan.id)] = plan.with_terms(max_members=1)

    for attempt in (
        lambda: world.subscriptions.activate(CID, sub.id, None),
        lambda: world.subscriptions.preview(CID, sub.id, "activate"),
    ):
        with pytest.raises(InvalidRequest, match="at most 1 members") as refused:
            attempt()
        assert refused.value.details[0].field == "member_ids"
    assert world.store.subscriptions[(CID, sub.id)].status == "inactive"
    assert world.gateway.requests == []


def test_a_max_members_lowered_on_the_plan_refuses_more_members_and_keeps_the_existing() -> None:
    world = World()
    owner = world.customer("Ada")
    kid = world.dependent("Kid", owner)
    extra = world.dependent("Extra", owner)
    plan = world.plan(3000, max_members=5)
    sub_id = world.active(plan, owner, owner, kid)
    world.directory.plans[(CID, plan.id)] = plan.with_terms(max_members=1)
    charges_before = len(world.gateway.requests)

    with pytest.raises(InvalidRequest, match="at most 1 members") as refused:
        _add_member(world, sub_id, extra.id)
    assert refused.value.details[0].field == "members"
    kept = world.store.subscriptions[(CID, sub_id)]
    assert [m.profile_id for m in kept.members] == [owner.id, kid.id]  # the existing stay
    assert len(world.gateway.requests) == charges_before  # nothing charged


def test_a_max_members_lowered_on_a_queued_plan_refuses_more_members() -> None:
    world = World()
    owner = world.customer("Ada")
    kid = world.dependent("Kid", owner)
    plan = world.plan(3000)
    queued = world.plan(2000, name="Silver", max_members=5)
    sub_id = world.active(plan, owner)
    world.subscriptions.change_plan(CID, sub_id, queued.id, "period_end")
    world.directory.plans[(CID, queued.id)] = queued.with_terms(max_members=1)

    with pytest.raises(InvalidRequest, match="at most 1 members") as refused:
        _add_member(world, sub_id, kid.id)
    assert refused.value.details[0].field == "members"
    assert len(world.store.subscriptions[(CID, sub_id)].members) == 1


def test_a_max_members_lowered_below_a_failed_subscription_still_lets_it_reactivate() -> None:
    world = World()
    owner = world.customer("Ada")
    kid = world.dependent("Kid", owner)
    extra = world.dependent("Extra", owner)
    plan = world.plan(3000, max_members=5)
    sub_id = world.active(plan, owner, owner, kid)
    world.directory.plans[(CID, plan.id)] = plan.with_terms(max_members=1)
    world.card_checks.on_stripe["pm_decline"] = owner.stripe_customer_id or ""
    world.subscriptions.update(CID, sub_id, {"payment_method_id": "pm_decline"})
    assert world.renew_at_period_end(sub_id, timedelta(minutes=1)) == "renewal_failed"

    assert world.subscriptions.preview(CID, sub_id, "reactivate")["total"] == 2 * 3000
    with pytest.raises(InvalidRequest, match="at most 1 members") as refused:  # no growing
        world.subscriptions.reactivate(
            CID,
            sub_id,
            payment_method_id="pm_ok",
            owner_id=None,
            billing_cycle=None,
            member_ids=[owner.id, kid.id, extra.id],
        )
    assert refused.value.details[0].field == "member_ids"
    reactivated = world.subscriptions.reactivate(
        CID, sub_id, payment_method_id="pm_ok", owner_id=None, billing_cycle=None, member_ids=None
    )

    assert reactivated.subscription.status == "active"
    assert [m.profile_id for m in reactivated.subscription.members] == [owner.id, kid.id]
    assert reactivated.payment is not None and reactivated.payment.total == 2 * 3000


def test_the_renewal_preview_names_the_plan_as_the_renewal_then_charges_it() -> None:
    world = World()
    owner = world.customer("Ada")
    plan = world.plan(3000)
    sub_id = world.active(plan, owner)
    world.directory.plans[(CID, plan.id)] = plan.with_terms(name="Platinum")

    preview = world.subscriptions.preview(CID, sub_id, "renew")
    assert world.renew_at_period_end(sub_id, timedelta(minutes=1)) == "renewed"

    renewal = next(p for p in world.store.payments.values() if p.kind == "renewal")
    assert (
        [(line["plan_name"], line["amount"]) for line in preview["lines"]]
        == [(line.plan_name, line.amount) for line in renewal.lines]
        == [("Platinum", 3000)]
    )
    assert preview["total"] == renewal.total


def test_a_plan_change_queued_before_its_plan_was_archived_still_applies_at_renewal() -> None:
    world = World()
    owner = world.customer("Ada")
    plan = world.plan(3000)
    queued = world.plan(2000, name="Silver")
    sub_id = world.active(plan, owner)
    world.subscriptions.change_plan(CID, sub_id, queued.id, "period_end")
    world.directory.plans[(CID, queued.id)] = queued.archived()

    assert world.subscriptions.preview(CID, sub_id, "renew")["total"] == 2000
    assert world.renew_at_period_end(sub_id, timedelta(minutes=1)) == "renewed"
    renewed = world.store.subscriptions[(CID, sub_id)]
    assert (renewed.status, renewed.plan_id) == ("active", queued.id)


def test_a_renewal_onto_a_queued_plan_takes_that_plans_latest_terms() -> None:
    """The queued plan renamed and its `max_members` lowered since the change was queued: the
    renewal (and its preview) names it as it is now, and the subscription renews onto those
    terms with the members it has."""
    world = World()
    owner = world.customer("Ada")
    kid = world.dependent("Kid", owner)
    plan = world.plan(3000)
    queued = world.plan(2000, name="Silver", max_members=5)
    sub_id = world.active(plan, owner, owner, kid)
    world.subscriptions.change_plan(CID, sub_id, queued.id, "period_end")
    latest = queued.with_terms(name="Silver Plus", max_members=1)
    world.directory.plans[(CID, queued.id)] = latest

    preview = world.subscriptions.preview(CID, sub_id, "renew")
    assert world.renew_at_period_end(sub_id, timedelta(minutes=1)) == "renewed"

    renewal = next(p for p in world.store.payments.values() if p.kind == "renewal")
    assert (
        [(line["plan_name"], line["amount"]) for line in preview["lines"]]
        == [(line.plan_name, line.amount) for line in renewal.lines]
        == [("Silver Plus", 2 * 2000)]
    )
    renewed = world.store.subscriptions[(CID, sub_id)]
    assert (renewed.plan_id, renewed.plan.name, renewed.plan.max_members) == (
        queued.id,
        "Silver Plus",
        1,
    )
    assert len(renewed.members) == 2  # a lowered limit never drops the members it has


def test_a_failed_renewal_onto_a_queued_plan_takes_that_plans_latest_grace_and_retries() -> None:
    world = World()
    owner = world.customer("Ada")
    plan = world.plan(3000, grace_days=14, retry_days=(3, 7))
    queued = world.plan(2000, name="Silver", grace_days=14, retry_days=(3, 7))
    sub_id = world.active(plan, owner)
    world.subscriptions.change_plan(CID, sub_id, queued.id, "period_end")
    world.directory.plans[(CID, queued.id)] = queued.with_terms(
        name="Silver Plus", failed_payment_grace_days=5, retry_schedule_days=(1, 2)
    )
    world.card_checks.on_stripe["pm_decline"] = owner.stripe_customer_id or ""
    world.subscriptions.update(CID, sub_id, {"payment_method_id": "pm_decline"})
    period = world.store.subscriptions[(CID, sub_id)].current_period
    assert period is not None
    world.clock.advance_to(period.end + timedelta(minutes=1))
    failed_at = world.clock.now()

    assert world.scheduled.renew(CID, sub_id, failed_at) == "renewal_failed"

    failed = world.store.subscriptions[(CID, sub_id)]
    assert failed.status == "failed_payment"
    assert failed.grace_ends_at == failed_at + timedelta(days=5)
    assert failed.next_retry_at == failed_at + timedelta(days=1)
    renewal = next(p for p in world.store.payments.values() if p.kind == "renewal")
    assert [line.plan_name for line in renewal.lines] == ["Silver Plus"]

    world.clock.advance_to(failed_at + timedelta(days=1))
    assert world.scheduled.process_failed_payment(CID, sub_id, world.clock.now()) == "retry_failed"
    retried = world.store.subscriptions[(CID, sub_id)]
    assert retried.next_retry_at == failed_at + timedelta(days=2)  # the queued plan's schedule
