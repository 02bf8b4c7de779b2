"""A subscription whose activation charge Stripe made but whose answer we lost, through the API.

Stripe is localstripe behind `stripe_cutoff`: the PaymentIntent is really created and charged
(localstripe records `payment_intent.succeeded` with our ids in its metadata), but our side
gets a 500, so the payment stays `pending` and the subscription waits for it: exactly what
the webhook (or reconciliation) must resolve.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from chalice.test import Client

from chalicelib import bootstrap
from tests.integration.conftest import PLATFORM_KEY, Env
from tests.support import stripe_events as se
from tests.support.localstripe import new_card, stripe_for
from tests.support.stripe_cutoff import StripeCutoff, stripe_cutoff

SECRET = "whsec_integration"  # the env fixture's STRIPE_WEBHOOK_SECRET


@dataclass
class Pending:
    community_id: str
    key: str
    subscription_id: str
    payment_id: str
    intent_id: str
    succeeded_event: dict[str, Any]


def call(client: Client, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
    response = getattr(client.http, method)(
        path,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        body=json.dumps(body) if body is not None else None,
    )
    return response.status_code, json.loads(response.body) if response.body else None


def ok(client: Client, method: str, path: str, key: str, body: Any = None) -> Any:
    status, answer = call(client, method, path, key, body)
    assert status in (200, 201), (method, path, status, answer)
    return answer


def community(client: Client, platform_key: str, account: str | None = None) -> tuple[str, str]:
    body: dict[str, Any] = {"name": "Webhook Gym"}
    if account:
        body["stripe_account_id"] = account
    created = ok(client, "post", "/v1/communities", platform_key, body)
    return created["id"], created["api_key"]["secret"]


def inactive_subscription(
    client: Client, key: str, stripe_url: str, card: str, other_members: int = 0
) -> dict[str, Any]:
    """An inactive monthly subscription whose owner is a member, with `other_members` more
    (customers of their own)."""
    plan = ok(client, "post", "/v1/plans", key, {"name": "Gold", "prices": {"month": 2500}})
    owner = ok(
        client,
        "post",
        "/v1/profiles",
        key,
        {"kind": "customer", "name": "Ada", "email": "ada@example.com"},
    )
    others = [
        ok(
            client,
            "post",
            "/v1/profiles",
            key,
            {"kind": "customer", "name": f"Member {n}", "email": f"member{n}@example.com"},
        )["id"]
        for n in range(other_members)
    ]
    method_id = new_card(stripe_for(stripe_url), card)
    ok(
        client,
        "post",
        f"/v1/profiles/{owner['id']}/payment-methods",
        key,
        {"stripe_payment_method_id": method_id},
    )
    subscription: dict[str, Any] = ok(
        client,
        "post",
        "/v1/subscriptions",
        key,
        {
            "plan_id": plan["id"],
            "owner_id": owner["id"],
            "member_ids": [owner["id"], *others],
            "billing_cycle": "month",
            "payment_method_id": method_id,
        },
    )
    return subscription


def stripe_event_for(stripe_url: str, event_type: str, payment_id: str) -> dict[str, Any]:
    """The event localstripe recorded for our payment, exactly as it would send it."""
    listed = stripe_for(stripe_url).v1.events.list(params={"type": event_type, "limit": 100})
    events = [e.to_dict() for e in listed.data]
    found = [
        e
        for e in events
        if (e["data"]["object"].get("metadata") or {}).get("payment_id") == payment_id
    ]
    assert len(found) == 1, found
    event: dict[str, Any] = found[0]
    return event


def pending_activation(
    client: Client,
    platform_key: str,
    cutoff: StripeCutoff,
    card: str = "4242424242424242",
    account: str | None = None,
    other_members: int = 0,
) -> Pending:
    community_id, key = community(client, platform_key, account)
    subscription = inactive_subscription(client, key, cutoff.target, card, other_members)
    cutoff.cut_next("POST", "/v1/payment_intents")
    status, answer = call(client, "post", f"/v1/subscriptions/{subscription['id']}/activate", key)
    assert cutoff.cut, "the activation never reached Stripe"
    assert status == 503, answer
    payments = ok(client, "get", f"/v1/payments?subscription_id={subscription['id']}", key)
    [payment] = payments["data"]
    assert payment["status"] == "pending"
    event = stripe_event_for(cutoff.target, "payment_intent.succeeded", payment["id"])
    return Pending(
        community_id=community_id,
        key=key,
        subscription_id=subscription["id"],
        payment_id=payment["id"],
        intent_id=event["data"]["object"]["id"],
        succeeded_event=event,
    )


def failed_twin(event: dict[str, Any], event_id: str) -> dict[str, Any]:
    """`payment_intent.payment_failed` for the same PaymentIntent, as Stripe shapes it."""
    intent = dict(event["data"]["object"])
    intent.update(
        status="requires_payment_method",
        amount_received=0,
        last_payment_error={
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
            "charge": intent.get("latest_charge"),
        },
    )
    return {
        **event,
        "id": event_id,
        "type": "payment_intent.payment_failed",
        "created": int(event["created"]) - 1,
        "data": {"object": intent},
    }


@dataclass
class Billing:
    env: Env
    cutoff: StripeCutoff

    def pending(self, account: str | None = None, other_members: int = 0) -> Pending:
        """A pending activation payment that Stripe charged (on `account`, if given)."""
        return pending_activation(
            self.env.client, PLATFORM_KEY, self.cutoff, account=account, other_members=other_members
        )

    def paid(self, account: str | None = None) -> Pending:
        """A succeeded activation payment (resolved by its own webhook)."""
        pending = self.pending(account)
        event = dict(pending.succeeded_event)
        if account:
            event["account"] = account  # Stripe sends Connect events with the account
        assert self.deliver(event)[1]["result"] == "processed"
        return pending

    def deliver(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        body = se.body_of(payload)
        response = self.env.client.http.post(
            "/webhooks/stripe", body=body, headers=se.signed_headers(body, SECRET)
        )
        return response.status_code, json.loads(response.body)

    def charge_refunded(
        self, pending: Pending, amount_refunded: int, *, metadata: bool = True
    ) -> dict[str, Any]:
        """Stripe's `charge.refunded` for the pending's payment: the charge's cumulative amount
        refunded (with our ids in its metadata, or none)."""
        payment = self.payment(pending)
        ids = {
            "community_id": pending.community_id,
            "subscription_id": pending.subscription_id,
            "payment_id": pending.payment_id,
        }
        charge = se.charge(
            charge_id=payment["stripe"]["charge_id"],
            payment_intent_id=pending.intent_id,
            amount=payment["total"],
            amount_refunded=amount_refunded,
            metadata=ids if metadata else {},
        )
        return se.event("charge.refunded", charge, account=payment["stripe"]["account_id"])

    def subscription(self, pending: Pending) -> dict[str, Any]:
        path = f"/v1/subscriptions/{pending.subscription_id}"
        answer: dict[str, Any] = ok(self.env.client, "get", path, pending.key)
        return answer

    def payment(self, pending: Pending) -> dict[str, Any]:
        answer: dict[str, Any] = ok(
            self.env.client, "get", f"/v1/payments/{pending.payment_id}", pending.key
        )
        return answer

    def audit(self, pending: Pending) -> list[dict[str, Any]]:
        path = f"/v1/subscriptions/{pending.subscription_id}/events"
        answer = ok(self.env.client, "get", path, pending.key)
        events: list[dict[str, Any]] = answer["data"] if isinstance(answer, dict) else answer
        return events


@pytest.fixture
def billing(env: Env, localstripe_url: str) -> Iterator[Billing]:
    with stripe_cutoff(localstripe_url) as cutoff:
        settings = replace(env.settings, stripe_api_base=cutoff.url)
        container = bootstrap.Container(settings, clock=env.clock)
        bootstrap.override_container(container)
        yield Billing(replace(env, container=container, settings=settings), cutoff)
        bootstrap.override_container(env.container)


@contextmanager
def throttled_once(client: Any, operation: str) -> Iterator[list[str]]:
    """The next `operation` call on this DynamoDB client fails with throttling, once: what
    botocore raises when its own retries are spent (raised from a before-call hook)."""
    fired: list[str] = []

    def throttle(**_kwargs: Any) -> None:
        if not fired:
            fired.append(operation)
            raise ClientError(
                {
                    "Error": {
                        "Code": "ProvisionedThroughputExceededException",
                        "Message": "Rate of requests exceeds the allowed throughput.",
                    },
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                operation,
            )

    event_name = f"before-call.dynamodb.{operation}"
    client.meta.events.register(event_name, throttle, unique_id="test-throttle")
    try:
        yield fired
    finally:
        client.meta.events.unregister(event_name, unique_id="test-throttle")
