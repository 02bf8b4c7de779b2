"""Pure pieces of the subscription/payment adapters: stored form, due index, intents, links."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.adapters.dynamodb.codec import decode, encode
from chalicelib.adapters.dynamodb.items import from_item, to_item
from chalicelib.adapters.dynamodb.payments import payment_attributes, payment_from_item
from chalicelib.adapters.dynamodb.profile_links import LinkChange
from chalicelib.adapters.dynamodb.subscriptions import SubscriptionRepository
from chalicelib.adapters.stripe.payments import outcome_from_intent
from chalicelib.domain.charge_outcomes import (
    apply_charge_failed,
    apply_charge_succeeded,
    begin_charge,
)
from chalicelib.domain.charge_planning import plan_activation, plan_add_members, plan_renewal
from chalicelib.domain.members import MemberAddition
from chalicelib.domain.payments import BilledTo, PaymentMethodSummary, new_payment
from chalicelib.domain.plans import Plan
from chalicelib.domain.profiles import Profile
from chalicelib.domain.subscription_changes import remove_member
from chalicelib.domain.subscriptions import Subscription

NOW = datetime(2026, 1, 31, 12, tzinfo=UTC)
PLAN = Plan(
    "plan_1", "com_1", "Gold", None, "usd", {"month": 3000}, 500, 14, (3,), None, "active", NOW
)
OWNER = Profile("prof_1", "com_1", "customer", "Ada", "a@x.io", None, False, {}, "usd", NOW)


def active_subscription() -> Subscription:
    sub = Subscription.create(
        subscription_id="sub_1",
        community_id="com_1",
        plan=PLAN,
        owner=OWNER,
        member_ids=["prof_1", "prof_2"],
        billing_cycle="month",
        payment_method_id="pm_1",
        waive_activation_fee=False,
        now=NOW,
    ).subscription
    charge = plan_activation(sub, NOW, owner_credit=0)
    begun = begin_charge(sub, charge, "pay_1", NOW).subscription
    return apply_charge_succeeded(begun, "pay_1", NOW).subscription


def repository() -> SubscriptionRepository:
    return SubscriptionRepository(client=None, table="t", cursors=None, due_shards=4)  # type: ignore[arg-type]


def test_a_subscription_round_trips_exactly_through_its_stored_form() -> None:
    sub = active_subscription()
    charge = plan_add_members(
        sub, [MemberAddition("prof_3")], NOW + timedelta(days=3), owner_credit=0
    )
    in_flight = begin_charge(sub, charge, "pay_2", NOW).subscription
    for value in (sub, in_flight):
        item = from_item(to_item(repository().attributes(value, 7)))
        assert SubscriptionRepository.from_item(item) == replace(value, version=7)
        assert decode(Subscription, json.loads(json.dumps(encode(value)))) == value


def test_due_attributes_follow_the_state() -> None:
    repo = repository()
    sub = active_subscription()
    active = repo.attributes(sub, 2)
    assert (active["due_group"], active["due_at"]) == ("renewal", "2026-02-28T12:00:00.000000Z")
    assert active["due_pk"].startswith("DUE#renewal#")
    expiring = repo.attributes(sub.cancel("period_end", NOW).subscription, 3)
    assert expiring["due_group"] == "expiration"
    cancelled = repo.attributes(sub.cancel("now", NOW).subscription, 3)
    assert "due_pk" not in cancelled and "due_at" not in cancelled
    renewal_at = datetime(2026, 2, 28, 12, tzinfo=UTC)
    plan = plan_renewal(sub, renewal_at, owner_credit=0)
    in_flight = begin_charge(sub, plan, "pay_9", renewal_at).subscription
    assert "due_pk" not in repo.attributes(in_flight, 3)  # the pending payment carries it
    failed = apply_charge_failed(in_flight, "pay_9", renewal_at).subscription
    failing = repo.attributes(failed, 4)
    assert (failing["due_group"], failing["due_at"]) == (
        "failed_payment",
        "2026-03-03T12:00:00.000000Z",
    )
    assert failing["pending_payment_id"] is None


def test_a_payment_round_trips_and_is_due_for_recovery_only_while_pending() -> None:
    sub = active_subscription()
    charge = plan_add_members(
        sub, [MemberAddition("prof_3")], NOW + timedelta(days=3), owner_credit=0
    )
    payment = new_payment(
        charge,
        "pay_2",
        BilledTo("prof_1", "Ada", "a@x.io"),
        PaymentMethodSummary("card", "visa", "4242"),
        "acct_1",
        250,
        NOW,
    )
    stored = payment_attributes(payment, 1, 4)
    assert stored["due_group"] == "pending_payment"
    assert stored["due_at"] == "2026-01-31T12:05:00.000000Z"
    assert payment_from_item(from_item(to_item(stored))) == replace(payment, revision=1)
    paid = payment.succeed(NOW, payment_intent_id="pi_1", charge_id="ch_1").payment
    done = payment_attributes(paid, 2, 4)
    assert "due_pk" not in done and done["gsi3pk"] == "PI#pi_1"
    assert payment_from_item(from_item(to_item(done))) == replace(paid, revision=2)
    assert paid.application_fee_amount == round(paid.total * 250 / 10000)


def test_intents_map_to_outcomes() -> None:
    ok = outcome_from_intent(
        {"id": "pi_1", "status": "succeeded", "amount": 10, "latest_charge": "ch_1"}
    )
    assert (ok.status, ok.payment_intent_id, ok.charge_id, ok.amount_received) == (
        "succeeded",
        "pi_1",
        "ch_1",
        10,
    )
    declined = outcome_from_intent(
        {
            "id": "pi_2",
            "status": "requires_payment_method",
            "last_payment_error": {
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "no",
                "charge": "ch_2",
            },
        }
    )
    assert declined.status == "failed" and declined.charge_id == "ch_2"
    assert declined.failure is not None and declined.failure.decline_code == "insufficient_funds"
    auth = outcome_from_intent({"id": "pi_3", "status": "requires_action"})
    assert auth.failure is not None and auth.failure.code == "authentication_required"
    assert outcome_from_intent({"id": "pi_4", "status": "processing"}).status == "pending"


def test_links_follow_members_and_status() -> None:
    sub = active_subscription()
    created = LinkChange("com_1", "sub_1", None, sub, 1)
    assert created.changed() and created.lost() == set()
    removed = remove_member(sub, "prof_2", "now", NOW).subscription
    gone = LinkChange("com_1", "sub_1", sub, removed, 2)
    assert gone.changed() and gone.lost() == {"prof_2#member"}
    cancelled = removed.cancel("now", NOW).subscription
    assert LinkChange("com_1", "sub_1", removed, cancelled, 3).changed()
    assert not LinkChange("com_1", "sub_1", removed, removed, 3).changed()
    deleted = LinkChange("com_1", "sub_1", removed, None, 3)
    assert deleted.lost() == {f"{removed.owner_id}#owner"} | {
        f"{m.profile_id}#member" for m in removed.members
    }


def item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's item size, near enough: attribute names plus their values' bytes."""
    return sum(len(name) + len(json.dumps(value)) for name, value in item.items())


def test_a_thousand_members_fit_far_below_the_item_limit_and_round_trip() -> None:
    sub = active_subscription()  # 2 members; 998 join at once, each with the activation fee
    joining = [MemberAddition(f"prof_{n:020x}") for n in range(998)]
    charge = plan_add_members(sub, joining, NOW + timedelta(days=3), owner_credit=0)
    in_flight = begin_charge(sub, charge, "pay_2", NOW).subscription  # members twice
    assert len(charge.pending.members) == 1000

    stored_sub = repository().attributes(in_flight, 7)
    assert item_bytes(stored_sub) < 100_000  # DynamoDB's limit: 400 KB
    item = from_item(to_item(stored_sub))
    assert SubscriptionRepository.from_item(item) == replace(in_flight, version=7)

    payment = new_payment(
        charge,
        "pay_2",
        BilledTo("prof_1", "Ada", "a@x.io"),
        PaymentMethodSummary("card", "visa", "4242"),
        None,
        0,
        NOW,
    )
    assert len(payment.lines) == 1996
    stored_payment = payment_attributes(payment, 1, 4)
    assert item_bytes(stored_payment) < 100_000
    assert payment_from_item(from_item(to_item(stored_payment))) == replace(payment, revision=1)
