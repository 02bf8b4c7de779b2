"""Events to the platform derived from the lifecycle (services/events.py), on the fakes: each
committed change carries its events in the same commit (the outbox), with a per-subject
sequence, and the profiles whose access changed."""

from __future__ import annotations

from datetime import timedelta

from chalicelib.domain.errors import ConcurrentChange
from chalicelib.domain.members import MemberAddition
from chalicelib.domain.platform_events import EVENT_TYPES, PlatformEvent
from tests.support.world import CID, World


def events_of(world: World) -> list[PlatformEvent]:
    return [event for events, _ in world.store.outbox for event in events]


def access_checked(world: World) -> list[tuple[str, ...]]:
    return [check.profile_ids for _, checks in world.store.outbox for check in checks]


def test_activation_reports_subscription_members_and_payment_in_its_own_commit() -> None:
    world = World()
    owner = world.customer("Ada")
    kid = world.dependent("Kim", owner)
    sub_id = world.active(world.plan(3000), owner, owner, kid)

    types = [e.type for e in events_of(world)]
    assert types == [
        "subscription.created",
        "member.added",
        "member.added",
        "payment.succeeded",
        "subscription.activated",
    ]
    assert set(types) <= set(EVENT_TYPES)
    # created (no access yet), payment.started (nothing to tell), resolution: 2 outbox items.
    assert len(world.store.outbox) == 2
    assert access_checked(world) == [tuple(sorted([owner.id, kid.id]))]
    subscription_events = [e for e in events_of(world) if e.subject_id == sub_id]
    sequences = [e.sequence for e in subscription_events]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    activated = subscription_events[-1]
    assert activated.data["status"] == "active"
    assert activated.previous_attributes is not None
    assert activated.previous_attributes["status"] == "inactive"
    stored = world.store.subscriptions[(CID, sub_id)]
    assert activated.sequence // 1_000_000 == stored.version


def test_no_event_without_its_change_a_failed_commit_leaves_no_outbox_item() -> None:
    world = World()
    owner = world.customer("Hal")
    sub_id = world.active(world.plan(1000), owner)
    before = len(world.store.outbox)
    world.store.fail_next_commits = [ConcurrentChange("TransactionConflict")]
    world.subscriptions.cancel(CID, sub_id, "period_end")  # retried once, then committed

    new = world.store.outbox[before:]
    assert [[e.type for e in events] for events, _ in new] == [["subscription.expiring"]]


def test_renewal_failure_retry_and_cancellation_tell_the_platform_and_revoke_access() -> None:
    world = World()
    owner = world.customer("Gus")
    sub_id = world.active(world.plan(2500, retry_days=(3,), grace_days=7), owner)
    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.current_period is not None
    world.clock.advance_to(sub.current_period.end)
    world.scheduled.renew(CID, sub_id, world.clock.now())
    world.card_checks.on_stripe["pm_decline"] = owner.stripe_customer_id or ""
    world.subscriptions.update(CID, sub_id, {"payment_method_id": "pm_decline"})
    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.current_period is not None
    world.clock.advance_to(sub.current_period.end)
    world.scheduled.renew(CID, sub_id, world.clock.now())
    world.clock.advance(timedelta(days=3))
    world.scheduled.process_failed_payment(CID, sub_id, world.clock.now())
    world.clock.advance(timedelta(days=4))
    world.scheduled.process_failed_payment(CID, sub_id, world.clock.now())

    sub_types = [e.type for e in events_of(world) if e.subject_id == sub_id]
    assert sub_types[-5:] == [
        "subscription.renewed",
        "subscription.updated",  # the card changed
        "subscription.payment_failed",
        "subscription.payment_failed",  # the retry failed too
        "subscription.cancelled",
    ]
    payment_types = [e.type for e in events_of(world) if e.type.startswith("payment.")]
    assert payment_types == [
        "payment.succeeded",
        "payment.succeeded",
        "payment.failed",
        "payment.failed",
    ]
    # access: granted at activation, gone when the renewal failed (failed_payment grants none)
    assert access_checked(world) == [(owner.id,), (owner.id,)]
    sequences = [e.sequence for e in events_of(world) if e.subject_id == sub_id]
    assert sequences == sorted(sequences)


def test_member_changes_and_a_refund() -> None:
    world = World()
    owner = world.customer("Ivy")
    kid = world.dependent("Kai", owner)
    sub_id = world.active(world.plan(4000), owner)
    world.members.add(
        CID,
        sub_id,
        [MemberAddition(kid.id, "waive")],
        send_welcome_email=False,
        send_receipt_email=False,
    )
    world.members.remove(CID, sub_id, kid.id, "period_end")
    world.members.restore(CID, sub_id, kid.id)
    world.members.remove(CID, sub_id, kid.id, "now")
    [first, *_] = sorted(world.store.payments.values(), key=lambda p: p.created_at)
    world.payments.refund(CID, first.id, 1000, None)

    member_types = [e.type for e in events_of(world) if e.type.startswith("member.")]
    assert member_types == [
        "member.added",
        "member.added",
        "member.removal_scheduled",
        "member.removal_cancelled",
        "member.removed",
    ]
    assert access_checked(world)[-1] == (kid.id,)
    assert (kid.id,) in access_checked(world)
    refunded = [e for e in events_of(world) if e.type == "payment.refunded"]
    assert [e.data["amount_refunded"] for e in refunded] == [1000]
    assert refunded[0].subject_id == first.id
