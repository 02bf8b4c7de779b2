"""Activation through the API: localstripe charges, the ledger and the subscription agree."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.adapters.dynamodb.items import from_item
from chalicelib.adapters.dynamodb.subscriptions import subscription_key
from tests.integration.conftest import START, TABLE_NAME, Env
from tests.support.billing_api import Api, billing_env
from tests.support.localstripe import localstripe_url

__all__ = ["billing_env", "localstripe_url"]


@pytest.fixture
def api(billing_env: Env, localstripe_url: str) -> Api:
    return Api(billing_env, localstripe_url).new()


def raw_subscription(env: Env, community_id: str, subscription_id: str) -> dict[str, object]:
    item = env.container.dynamodb.get_item(
        TableName=TABLE_NAME, Key=subscription_key(community_id, subscription_id)
    )["Item"]
    return from_item(item)


def test_activate_with_a_good_card_charges_once_and_matches_stripe(api: Api) -> None:
    plan = api.plan(prices={"month": 3000}, activation_fee=500)
    owner = api.customer("Ada")
    kid = api.dependent(owner["id"])
    sub = api.subscription(plan, owner, [owner["id"], kid["id"]])
    assert sub["status"] == "inactive"

    active = api.ok("POST", f"/v1/subscriptions/{sub['id']}/activate", {})

    assert active["status"] == "active"
    assert active["current_period"] == {
        "start": "2026-01-15T12:00:00Z",
        "end": "2026-02-15T12:00:00Z",
    }
    assert active["activated_at"] == "2026-01-15T12:00:00Z"
    assert active["payment_method"]["last4"] == "4242"
    assert [m["activation_fee"]["status"] for m in active["members"]] == ["paid", "paid"]
    [payment] = api.payments(sub["id"])
    assert payment["status"] == "succeeded"
    assert payment["kind"] == "activation"
    assert [
        (ln["kind"], ln["unit_amount"], ln["quantity"], ln["amount"]) for ln in payment["lines"]
    ] == [
        ("plan", 3000, 2, 6000),
        ("activation_fee", 500, 1, 500),
        ("activation_fee", 500, 1, 500),
    ]
    assert (payment["subtotal"], payment["credit_applied"], payment["total"]) == (7000, 0, 7000)
    assert payment["amount_paid"] == 7000
    assert payment["application_fee_amount"] == 0
    assert payment["billed_to"] == {
        "profile_id": owner["id"],
        "name": "Ada",
        "email": "ada@example.com",
    }
    assert payment["period"] == active["current_period"]
    intent = api.intent(payment["stripe"]["payment_intent_id"])
    assert (intent.status, intent.amount, intent.currency) == ("succeeded", 7000, "usd")
    assert intent.customer is not None and intent.payment_method == owner["card"]
    assert intent.latest_charge.id == payment["stripe"]["charge_id"]
    assert intent.metadata.to_dict() == {
        "community_id": api.community_id,
        "subscription_id": sub["id"],
        "payment_id": payment["id"],
        "kind": "activation",
    }
    card = api.intent(payment["stripe"]["payment_intent_id"])  # same card as the payment says
    assert payment["payment_method"] == {"type": "card", "brand": "visa", "last4": "4242"}
    assert card.payment_method == owner["card"]
    assert api.intents_for(payment["id"]) and len(api.intents_for(payment["id"])) == 1
    assert api.events(sub["id"]) == [
        "subscription.created",
        "payment.started",
        "subscription.activated",
    ]
    raw = raw_subscription(api.env, api.community_id, sub["id"])
    assert raw["due_group"] == "renewal"
    assert raw["due_at"] == "2026-02-15T12:00:00.000000Z"
    assert "pending_payment_id" not in raw
    profile = api.ok("GET", f"/v1/profiles/{kid['id']}")
    assert {"subscription_id": sub["id"], "role": "member", "status": "active"} in profile[
        "subscriptions"
    ]
    access = api.ok("GET", f"/v1/profiles/{kid['id']}/access")
    assert access["has_access"] is True


def test_a_declined_card_is_402_and_the_subscription_stays_inactive(api: Api) -> None:
    plan = api.plan()
    owner = api.customer("Bob", card="4000000000000341")
    sub = api.subscription(plan, owner)

    reply = api.call("POST", f"/v1/subscriptions/{sub['id']}/activate", {})

    assert reply.status == 402
    error = reply.body["error"]
    assert error["type"] == "payment_failed"
    assert error["payment"]["status"] == "failed"
    assert error["payment"]["failure"]["code"] == "card_declined"
    assert error["payment"]["failure"]["message"] == "Your card was declined."
    again = api.ok("GET", f"/v1/subscriptions/{sub['id']}")
    assert again["status"] == "inactive" and again["current_period"] is None
    [payment] = api.payments(sub["id"])
    assert payment["id"] == error["payment"]["id"] and payment["amount_paid"] == 0
    assert api.events(sub["id"])[-1] == "subscription.activation_failed"
    assert "due_group" not in raw_subscription(api.env, api.community_id, sub["id"])

    # Another card: the failed charge does not block a new attempt.
    good = api.card(owner["id"], "4242424242424242")
    activated = api.ok(
        "POST", f"/v1/subscriptions/{sub['id']}/activate", {"payment_method_id": good}
    )
    assert activated["status"] == "active"
    assert sorted(p["status"] for p in api.payments(sub["id"])) == ["failed", "succeeded"]


def test_a_card_needing_authentication_is_402_authentication_required(api: Api) -> None:
    plan = api.plan()
    owner = api.customer("Cy", card="4000002500003155")
    sub = api.subscription(plan, owner)

    reply = api.call("POST", f"/v1/subscriptions/{sub['id']}/activate", {})

    assert reply.status == 402
    failure = reply.body["error"]["payment"]["failure"]
    assert failure["code"] == "authentication_required"
    assert failure["decline_code"] == "authentication_required"
    assert api.ok("GET", f"/v1/subscriptions/{sub['id']}")["status"] == "inactive"


def test_activation_needs_members_and_a_card_and_stores_nothing_without(api: Api) -> None:
    plan = api.plan()
    owner = api.customer("Di", card=None)
    empty = api.subscription(plan, owner, [])
    reply = api.call("POST", f"/v1/subscriptions/{empty['id']}/activate", {})
    assert reply.status == 400
    assert reply.body["error"]["details"][0]["field"] == "member_ids"
    no_card = api.subscription(plan, owner)
    reply = api.call("POST", f"/v1/subscriptions/{no_card['id']}/activate", {})
    assert reply.status == 400
    assert reply.body["error"]["details"][0]["field"] == "payment_method_id"
    other = api.customer("Eve")
    reply = api.call(
        "POST", f"/v1/subscriptions/{no_card['id']}/activate", {"payment_method_id": other["card"]}
    )
    assert reply.status == 400
    assert reply.body["error"]["details"][0]["field"] == "payment_method_id"
    assert api.payments(empty["id"]) == [] and api.payments(no_card["id"]) == []
    assert api.ok("GET", f"/v1/subscriptions/{no_card['id']}")["version"] == no_card["version"]


def test_a_free_plan_needs_a_card_and_charges_nothing(api: Api) -> None:
    plan = api.plan(name="Free", prices={"month": 0})
    owner = api.customer("Flo")
    sub = api.subscription(plan, owner)
    active = api.ok("POST", f"/v1/subscriptions/{sub['id']}/activate", {})
    assert active["status"] == "active"
    assert api.payments(sub["id"]) == []


def test_a_lost_stripe_answer_leaves_one_pending_payment_that_recovery_resolves(
    api: Api, billing_env: Env
) -> None:
    from dataclasses import replace

    from chalicelib import bootstrap
    from tests.support.stripe_cutoff import stripe_cutoff

    plan = api.plan()
    owner = api.customer("Gus")
    sub = api.subscription(plan, owner)
    with stripe_cutoff(api.stripe_url) as cutoff:
        cut = bootstrap.Container(
            replace(billing_env.settings, stripe_api_base=cutoff.url), clock=billing_env.clock
        )
        bootstrap.override_container(cut)
        try:
            cutoff.cut_next("POST", "/v1/payment_intents")
            reply = api.call("POST", f"/v1/subscriptions/{sub['id']}/activate", {})
            assert reply.status == 503
            assert reply.body["error"]["type"] == "unavailable"
            busy = api.call("POST", f"/v1/subscriptions/{sub['id']}/activate", {})
            assert busy.status == 409  # never a second charge while one is pending
        finally:
            bootstrap.override_container(billing_env.container)
    [payment] = api.payments(sub["id"])
    assert payment["status"] == "pending"
    assert api.ok("GET", f"/v1/subscriptions/{sub['id']}")["status"] == "inactive"
    container = billing_env.container
    early = START + timedelta(minutes=1)
    assert container.scheduled.recover_pending_payment(api.community_id, payment["id"], early) == (
        "not_due"
    )
    later = billing_env.clock.now() + timedelta(minutes=6)
    outcome = container.scheduled.recover_pending_payment(api.community_id, payment["id"], later)
    assert outcome == "recovered_succeeded"
    assert container.scheduled.recover_pending_payment(api.community_id, payment["id"], later) == (
        "not_pending"
    )
    assert api.ok("GET", f"/v1/subscriptions/{sub['id']}")["status"] == "active"
    [resolved] = api.payments(sub["id"])
    assert resolved["status"] == "succeeded"
    assert len(api.intents_for(payment["id"])) == 1


def test_a_charge_stripe_never_received_fails_as_not_attempted(api: Api, billing_env: Env) -> None:
    from dataclasses import replace

    from chalicelib import bootstrap

    plan = api.plan()
    owner = api.customer("Hal")
    sub = api.subscription(plan, owner)
    dead = bootstrap.Container(
        replace(billing_env.settings, stripe_api_base="http://127.0.0.1:9"),
        clock=billing_env.clock,
    )
    bootstrap.override_container(dead)
    try:
        reply = api.call("POST", f"/v1/subscriptions/{sub['id']}/activate", {})
    finally:
        bootstrap.override_container(billing_env.container)
    assert reply.status == 503
    [payment] = api.payments(sub["id"])
    later = billing_env.clock.now() + timedelta(minutes=6)
    outcome = billing_env.container.scheduled.recover_pending_payment(
        api.community_id, payment["id"], later
    )
    assert outcome == "not_attempted"
    [failed] = api.payments(sub["id"])
    assert failed["status"] == "failed" and failed["failure"]["code"] == "not_attempted"
    assert api.intents_for(payment["id"]) == []
    again = api.ok("POST", f"/v1/subscriptions/{sub['id']}/activate", {})
    assert again["status"] == "active"


def test_a_transaction_conflict_after_stripe_took_the_money_is_retried_not_a_409(
    api: Api, billing_env: Env
) -> None:
    """Real DynamoDB cancels a transaction that touches an item another transaction is writing
    (`TransactionConflict`; moto never does). The resolution after a successful charge meets
    one: it is a lost race like a version conflict, read again and retried."""
    from botocore.exceptions import ClientError

    plan = api.plan(prices={"month": 1800})
    owner = api.customer("Tess")
    sub = api.subscription(plan, owner)
    client = billing_env.container.dynamodb
    transactions: list[int] = []

    def conflict_on_the_resolution(**_kwargs: object) -> None:
        transactions.append(1)
        if len(transactions) == 2:  # 1: pending payment + claim; 2: the resolution
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                    "CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}],
                },
                "TransactWriteItems",
            )

    event = "before-call.dynamodb.TransactWriteItems"
    client.meta.events.register(event, conflict_on_the_resolution, unique_id="conflict-once")
    try:
        reply = api.call("POST", f"/v1/subscriptions/{sub['id']}/activate", {})
    finally:
        client.meta.events.unregister(event, unique_id="conflict-once")

    assert reply.status == 200, reply.body
    assert reply.body["status"] == "active"
    [payment] = api.payments(sub["id"])
    assert payment["status"] == "succeeded"
    assert len(api.intents_for(payment["id"])) == 1
    assert len(transactions) >= 3
