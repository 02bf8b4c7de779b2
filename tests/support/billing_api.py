"""Integration helpers for subscriptions and payments: the app on moto, Stripe = localstripe.

`billing_env` (one per test module): moto in-process, the real table and queues, the Chalice
test client, a FixedClock, and STRIPE_API_BASE pointing at the session's localstripe. Tests
stay apart by each making its own community (`Api.new`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.clock import FixedClock
from tests.integration.conftest import PLATFORM_KEY, Env, moto_app_env
from tests.support.localstripe import new_card, stripe_for

SENDER = "billing@example.com"


@pytest.fixture(scope="module")
def billing_env(localstripe_url: str) -> Iterator[Env]:
    with moto_app_env(localstripe_url, email_sender=SENDER) as env:
        yield env


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case


def reply_of(response: Any) -> Reply:
    """A Chalice test client's answer: its status, JSON body and headers."""
    text = response.body.decode() if isinstance(response.body, bytes) else response.body
    headers = {str(name).lower(): str(value) for name, value in response.headers.items()}
    return Reply(response.status_code, json.loads(text) if text else None, headers)


@dataclass
class Api:
    env: Env
    stripe_url: str
    key: str = ""
    community_id: str = ""

    def call(self, method: str, path: str, body: Any = None, key: str | None = None) -> Reply:
        response = getattr(self.env.client.http, method.lower())(
            path,
            headers={
                "Authorization": f"Bearer {key or self.key}",
                "Content-Type": "application/json",
            },
            body=json.dumps(body) if body is not None else None,
        )
        return reply_of(response)

    def ok(self, method: str, path: str, body: Any = None, status: int | None = None) -> Any:
        reply = self.call(method, path, body)
        expected = status or 200
        assert reply.status == expected, (method, path, reply.status, reply.body)
        return reply.body

    # --- fixtures of a community ---------------------------------------------------------------
    def new(self, **community: Any) -> Api:
        reply = self.call("POST", "/v1/communities", {"name": "Gym", **community}, PLATFORM_KEY)
        assert reply.status == 201, reply.body
        return Api(self.env, self.stripe_url, reply.body["api_key"]["secret"], reply.body["id"])

    def plan(self, **fields: Any) -> dict[str, Any]:
        body = {"name": "Gold", "prices": {"month": 3000}, **fields}
        return dict(self.ok("POST", "/v1/plans", body, 201))

    def customer(self, name: str = "Ada", card: str | None = "4242424242424242") -> dict[str, Any]:
        email = f"{name.lower()}@example.com"
        profile = dict(
            self.ok("POST", "/v1/profiles", {"kind": "customer", "name": name, "email": email}, 201)
        )
        if card:
            profile["card"] = self.card(profile["id"], card)
        return profile

    def dependent(self, holder_id: str, name: str = "Kid") -> dict[str, Any]:
        body = {"kind": "dependent", "name": name, "account_holder_id": holder_id}
        return dict(self.ok("POST", "/v1/profiles", body, 201))

    def card(self, profile_id: str, number: str) -> str:
        method_id = new_card(stripe_for(self.stripe_url), number)
        self.ok(
            "POST",
            f"/v1/profiles/{profile_id}/payment-methods",
            {"stripe_payment_method_id": method_id},
            201,
        )
        return method_id

    def subscription(
        self,
        plan: dict[str, Any],
        owner: dict[str, Any],
        members: list[str] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        body = {
            "plan_id": plan["id"],
            "owner_id": owner["id"],
            "member_ids": members if members is not None else [owner["id"]],
            "billing_cycle": "month",
            "payment_method_id": owner.get("card"),
            **fields,
        }
        return dict(self.ok("POST", "/v1/subscriptions", body, 201))

    def active(
        self,
        plan: dict[str, Any],
        owner: dict[str, Any],
        members: list[str] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        sub = self.subscription(plan, owner, members, **fields)
        return dict(self.ok("POST", f"/v1/subscriptions/{sub['id']}/activate", {}))

    def payments(self, subscription_id: str) -> list[dict[str, Any]]:
        answer = self.ok("GET", f"/v1/payments?subscription_id={subscription_id}&limit=100")
        return list(answer["data"])

    def events(self, subscription_id: str) -> list[str]:
        answer = self.ok("GET", f"/v1/subscriptions/{subscription_id}/events?limit=100")
        return [e["type"] for e in answer["data"]]

    def intent(self, intent_id: str) -> Any:
        return stripe_for(self.stripe_url).v1.payment_intents.retrieve(intent_id)

    def intents_for(self, payment_id: str) -> list[Any]:
        client = stripe_for(self.stripe_url)
        found, params = [], {"limit": 100}
        while True:
            page = client.v1.payment_intents.list(params=params)
            found += [i for i in page.data if i.metadata.to_dict().get("payment_id") == payment_id]
            if not page.has_more:
                return found
            params["starting_after"] = page.data[-1].id


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def api_at(billing_env: Env, localstripe_url: str) -> Iterator[Any]:
    """`api_at(when)`: a new community on its own FixedClock starting at `when` (moto shared)."""
    made: list[bootstrap.Container] = []

    def make(when: datetime) -> Api:
        clock = FixedClock(when)
        container = bootstrap.Container(billing_env.settings, clock=clock)
        bootstrap.override_container(container)
        made.append(container)
        env = Env(billing_env.client, container, clock, billing_env.settings)
        return Api(env, localstripe_url).new()

    yield make
    bootstrap.override_container(billing_env.container)
