"""The admin API as a new user meets it, over HTTP against the local stack (chalice local,
moto server, localstripe): community -> key -> plan -> profiles -> cards -> revoked key."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from infra.local.stack import LocalStack
from tests.support.localstripe import stack_card

pytestmark = pytest.mark.e2e


def _http(
    stack: LocalStack,
    method: str,
    path: str,
    body: Any = None,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    all_headers["Authorization"] = f"Bearer {key or stack.config.platform_api_key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{stack.config.api_url}{path}", data=data, method=method, headers=all_headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None, dict(response.headers)
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None, dict(error.headers)


def test_a_new_community_sets_up_plans_profiles_and_cards(stack: LocalStack) -> None:
    status, community, _ = _http(
        stack, "POST", "/v1/communities", {"name": "Harbour gym", "currency": "eur"}
    )
    assert status == 201
    key = community["api_key"]["secret"]
    status, plan, _ = _http(
        stack,
        "POST",
        "/v1/plans",
        {
            "name": "Family",
            "prices": {"month": 2500, "year": 25000},
            "activation_fee": 1000,
            "retry_schedule_days": [1, 3],
            "max_members": 4,
        },
        key=key,
        headers={"Idempotency-Key": "plan-1"},
    )
    assert (status, plan["currency"], plan["free"]) == (201, "eur", False)
    status, replay, headers = _http(
        stack,
        "POST",
        "/v1/plans",
        {
            "name": "Family",
            "prices": {"month": 2500, "year": 25000},
            "activation_fee": 1000,
            "retry_schedule_days": [1, 3],
            "max_members": 4,
        },
        key=key,
        headers={"Idempotency-Key": "plan-1"},
    )
    assert (status, replay, headers.get("Idempotent-Replayed")) == (201, plan, "true")
    status, _, _ = _http(
        stack, "PATCH", f"/v1/plans/{plan['id']}", {"prices": {"month": 1}}, key=key
    )
    assert status == 400
    status, ann, _ = _http(
        stack,
        "POST",
        "/v1/profiles",
        {"kind": "customer", "name": "Ann", "email": "ann@x.io"},
        key=key,
    )
    assert status == 201
    status, kid, _ = _http(
        stack,
        "POST",
        "/v1/profiles",
        {"kind": "dependent", "name": "Kid", "account_holder_id": ann["id"]},
        key=key,
    )
    assert status == 201
    status, page, _ = _http(stack, "GET", "/v1/profiles?kind=dependent", key=key)
    assert [p["id"] for p in page["data"]] == [kid["id"]]
    status, access, _ = _http(stack, "GET", f"/v1/profiles/{kid['id']}/access", key=key)
    assert access == {
        "profile_id": kid["id"],
        "has_access": False,
        "reason": None,
        "subscription_ids": [],
    }

    cards = f"/v1/profiles/{ann['id']}/payment-methods"
    visa = stack_card(stack, "4242424242424242")
    status, card, _ = _http(stack, "POST", cards, {"stripe_payment_method_id": visa}, key=key)
    assert status == 201
    assert card == {
        "id": visa,
        "type": "card",
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2031,
    }
    declines_later = stack_card(stack, "4000000000000341")
    status, _, _ = _http(
        stack, "POST", cards, {"stripe_payment_method_id": declines_later}, key=key
    )
    assert status == 201
    status, listed, _ = _http(stack, "GET", cards, key=key)
    assert sorted(c["last4"] for c in listed["data"]) == ["0341", "4242"]
    refused = stack_card(stack, "4000000000000002")
    status, error, _ = _http(stack, "POST", cards, {"stripe_payment_method_id": refused}, key=key)
    assert status == 400 and error["error"]["details"][0]["field"] == "stripe_payment_method_id"
    status, setup, _ = _http(stack, "POST", f"/v1/profiles/{ann['id']}/setup-intents", key=key)
    assert status == 201 and setup["client_secret"].startswith("seti_")
    status, _, _ = _http(stack, "DELETE", f"{cards}/{declines_later}", key=key)
    assert status == 204
    status, listed, _ = _http(stack, "GET", cards, key=key)
    assert [c["id"] for c in listed["data"]] == [visa]
    status, _, _ = _http(stack, "GET", f"/v1/profiles/{kid['id']}/payment-methods", key=key)
    assert status == 400

    key_id = community["api_key"]["id"]
    status, _, _ = _http(stack, "DELETE", f"/v1/communities/{community['id']}/api-keys/{key_id}")
    assert status == 204
    status, error, _ = _http(stack, "GET", "/v1/plans", key=key)
    assert (status, error["error"]["type"]) == (401, "unauthorized")
