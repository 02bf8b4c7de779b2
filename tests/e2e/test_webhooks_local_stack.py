"""Events that localstripe itself sends reach /webhooks/stripe on the local stack, end to end.

localstripe signs each event with the stack's webhook secret and POSTs it about a second after
the fact; the test polls the platform route until the event is stored.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from infra.local.stack import LocalStack

pytestmark = pytest.mark.e2e
POLL_SECONDS = 30.0


def api(stack: LocalStack, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{stack.config.api_url}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def ok(stack: LocalStack, method: str, path: str, key: str, body: Any = None) -> Any:
    status, answer = api(stack, method, path, key, body)
    assert status in (200, 201), (method, path, status, answer)
    return answer


def stripe(stack: LocalStack, path: str, form: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{stack.config.stripe_url}{path}",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Authorization": f"Bearer {stack.config.stripe_secret_key}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def stored_event(stack: LocalStack, event_type: str, match: dict[str, str]) -> dict[str, Any]:
    """Poll GET /v1/webhook-events until an event of `event_type` whose object has `match`."""
    key = stack.config.platform_api_key
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        page = ok(stack, "GET", f"/v1/webhook-events?type={event_type}&limit=100", key)
        for event in page["data"]:
            obj = event["payload"]["data"]["object"]
            found = {**obj, **(obj.get("metadata") or {})}
            if all(found.get(k) == v for k, v in match.items()):
                return dict(event)
        if time.monotonic() > deadline:
            pytest.fail(f"no {event_type} matching {match} arrived in {POLL_SECONDS} s")
        time.sleep(0.25)


def subscription_with_card(
    stack: LocalStack, card: str, name: str
) -> tuple[str, str, dict[str, Any]]:
    """(community key, owner profile id, an inactive subscription charging `card`)."""
    platform = stack.config.platform_api_key
    community = ok(stack, "POST", "/v1/communities", platform, {"name": f"E2E {name}"})
    key = community["api_key"]["secret"]
    plan = ok(stack, "POST", "/v1/plans", key, {"name": "Silver", "prices": {"month": 1900}})
    owner = ok(
        stack,
        "POST",
        "/v1/profiles",
        key,
        {"kind": "customer", "name": name, "email": f"{name.lower()}@example.com"},
    )
    method = stripe(
        stack,
        "/v1/payment_methods",
        {
            "type": "card",
            "card[number]": card,
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": "123",
        },
    )
    ok(
        stack,
        "POST",
        f"/v1/profiles/{owner['id']}/payment-methods",
        key,
        {"stripe_payment_method_id": method["id"]},
    )
    subscription = ok(
        stack,
        "POST",
        "/v1/subscriptions",
        key,
        {
            "plan_id": plan["id"],
            "owner_id": owner["id"],
            "member_ids": [owner["id"]],
            "billing_cycle": "month",
            "payment_method_id": method["id"],
        },
    )
    return key, owner["id"], {**subscription, "community_id": community["id"]}


def test_localstripes_events_are_verified_stored_and_processed(stack: LocalStack) -> None:
    key, owner_id, subscription = subscription_with_card(stack, "4242424242424242", "Grace")
    active = ok(stack, "POST", f"/v1/subscriptions/{subscription['id']}/activate", key, {})
    assert active["status"] == "active"
    payments = ok(stack, "GET", f"/v1/payments?subscription_id={subscription['id']}", key)
    [payment] = payments["data"]

    # localstripe's own payment_intent.succeeded for our payment: verified and processed.
    succeeded = stored_event(stack, "payment_intent.succeeded", {"payment_id": payment["id"]})
    assert succeeded["status"] == "processed", succeeded
    assert succeeded["community_id"] == subscription["community_id"]
    assert succeeded["account"] is None
    # The payment was resolved synchronously; the late event changed nothing.
    assert ok(stack, "GET", f"/v1/payments/{payment['id']}", key)["status"] == "succeeded"

    # An event type we do not handle (the Stripe customer made for Grace): stored as ignored.
    ignored = stored_event(stack, "customer.created", {"profile_id": owner_id})
    assert ignored["status"] == "ignored"


def test_localstripes_payment_failed_event_is_processed(stack: LocalStack) -> None:
    key, _, subscription = subscription_with_card(stack, "4000000000000341", "Alan")
    status, answer = api(stack, "POST", f"/v1/subscriptions/{subscription['id']}/activate", key, {})
    assert status == 402, answer
    payment_id = answer["error"]["payment"]["id"]
    failed = stored_event(stack, "payment_intent.payment_failed", {"payment_id": payment_id})
    assert failed["status"] == "processed", failed
    payment = ok(stack, "GET", f"/v1/payments/{payment_id}", key)
    assert (payment["status"], payment["failure"]["code"]) == ("failed", "card_declined")
    assert ok(stack, "GET", f"/v1/subscriptions/{subscription['id']}", key)["status"] == "inactive"
