"""Subscriptions and payments as a new user meets them: HTTP against the local stack
(chalice local, moto server, localstripe), the test clock for "day 10" and period ends."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from infra.local.stack import LocalStack
from tests.support.clock_start import parse_instant
from tests.support.proration import prorations_charged_at

pytestmark = pytest.mark.e2e


@dataclass
class Client:
    stack: LocalStack
    key: str

    def call(self, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.stack.config.api_url}{path}",
            data=data,
            method=method,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {key or self.key}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else None

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        code, answer = self.call(method, path, body)
        assert code == status, (method, path, code, answer)
        return answer

    def platform(self, method: str, path: str, body: Any = None) -> Any:
        code, answer = self.call(method, path, body, key=self.stack.config.platform_api_key)
        assert code in (200, 201), (path, code, answer)
        return answer

    def stripe(self, method: str, path: str, form: dict[str, str] | None = None) -> Any:
        data = urllib.parse.urlencode(form).encode() if form else None
        request = urllib.request.Request(
            f"{self.stack.config.stripe_url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.stack.config.stripe_secret_key}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def customer(self, name: str, card: str | None = "4242424242424242") -> dict[str, Any]:
        body = {"kind": "customer", "name": name, "email": f"{name.lower()}@example.com"}
        profile: dict[str, Any] = self.ok("POST", "/v1/profiles", body, 201)
        if card:
            profile["card"] = self.card(profile["id"], card)
        return profile

    def card(self, profile_id: str, number: str) -> str:
        method = self.stripe(
            "POST",
            "/v1/payment_methods",
            {
                "type": "card",
                "card[number]": number,
                "card[exp_month]": "12",
                "card[exp_year]": "2031",
                "card[cvc]": "123",
            },
        )
        body = {"stripe_payment_method_id": method["id"]}
        self.ok("POST", f"/v1/profiles/{profile_id}/payment-methods", body, 201)
        return str(method["id"])

    def subscription(self, plan: dict[str, Any], owner: dict[str, Any], **fields: Any) -> Any:
        body = {
            "plan_id": plan["id"],
            "owner_id": owner["id"],
            "member_ids": [owner["id"]],
            "billing_cycle": "month",
            "payment_method_id": owner.get("card"),
            **fields,
        }
        return self.ok("POST", "/v1/subscriptions", body, 201)

    def active(self, plan: dict[str, Any], owner: dict[str, Any], **fields: Any) -> Any:
        sub = self.subscription(plan, owner, **fields)
        return self.ok("POST", f"/v1/subscriptions/{sub['id']}/activate", {})

    def payments(self, subscription_id: str) -> list[dict[str, Any]]:
        return list(self.ok("GET", f"/v1/payments?subscription_id={subscription_id}")["data"])

    def now(self) -> datetime:
        text = self.platform("GET", "/v1/test-clock")["now"]
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    def advance(self, **body: Any) -> Any:
        return self.platform("POST", "/v1/test-clock/advance", body)


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Client:
    anonymous = Client(stack, "")
    created = anonymous.platform("POST", "/v1/communities", {"name": "E2E Climbing"})
    return Client(stack, created["api_key"]["secret"])


@pytest.fixture(scope="module")
def plans(api: Client) -> dict[str, dict[str, Any]]:
    def plan(name: str, prices: dict[str, int], fee: int = 0) -> dict[str, Any]:
        body = {"name": name, "prices": prices, "activation_fee": fee}
        return dict(api.ok("POST", "/v1/plans", body, 201))

    return {
        "gold": plan("Gold", {"month": 3000, "year": 30000}, fee=500),
        "platinum": plan("Platinum", {"month": 6000}),
        "silver": plan("Silver", {"month": 1500}),
    }


def test_activation_with_good_declined_and_3ds_cards(
    api: Client, plans: dict[str, dict[str, Any]]
) -> None:
    gold = plans["gold"]
    ada = api.customer("Ada")
    active = api.active(gold, ada)
    assert active["status"] == "active"
    [payment] = api.payments(active["id"])
    assert payment["status"] == "succeeded"
    assert [(ln["kind"], ln["amount"]) for ln in payment["lines"]] == [
        ("plan", 3000),
        ("activation_fee", 500),
    ]
    assert (payment["subtotal"], payment["total"], payment["amount_paid"]) == (3500, 3500, 3500)
    intent = api.stripe("GET", f"/v1/payment_intents/{payment['stripe']['payment_intent_id']}")
    assert (intent["status"], intent["amount"], intent["currency"]) == ("succeeded", 3500, "usd")
    assert intent["metadata"]["payment_id"] == payment["id"]
    card = api.stripe("GET", f"/v1/payment_methods/{intent['payment_method']}")["card"]
    assert payment["payment_method"] == {
        "type": "card",
        "brand": card["brand"],
        "last4": card["last4"],
    }
    assert active["payment_method"]["last4"] == card["last4"] == "4242"

    bob = api.customer("Bob", card="4000000000000341")
    declined = api.subscription(gold, bob)
    code, answer = api.call("POST", f"/v1/subscriptions/{declined['id']}/activate", {})
    assert code == 402
    assert answer["error"]["payment"]["failure"]["code"] == "card_declined"
    assert api.ok("GET", f"/v1/subscriptions/{declined['id']}")["status"] == "inactive"
    assert [p["status"] for p in api.payments(declined["id"])] == ["failed"]

    cy = api.customer("Cy", card="4000002500003155")
    needs_auth = api.subscription(gold, cy)
    code, answer = api.call("POST", f"/v1/subscriptions/{needs_auth['id']}/activate", {})
    assert code == 402
    assert answer["error"]["payment"]["failure"]["decline_code"] == "authentication_required"
    assert api.ok("GET", f"/v1/subscriptions/{needs_auth['id']}")["status"] == "inactive"


def test_members_on_day_10_removals_cancel_resume_and_queued_changes(
    api: Client, plans: dict[str, dict[str, Any]]
) -> None:
    owner = api.customer("Dee")
    sub = api.active(plans["gold"], owner)
    start = parse_instant(sub["current_period"]["start"])
    end = parse_instant(sub["current_period"]["end"])
    friend = api.customer("Eli", card=None)
    kid = api.ok(
        "POST",
        "/v1/profiles",
        {"kind": "dependent", "name": "Kid", "account_holder_id": owner["id"]},
        201,
    )
    api.advance(days=10)
    path = f"/v1/subscriptions/{sub['id']}"

    added = api.ok(
        "POST",
        f"{path}/members",
        {
            "members": [
                {"profile_id": friend["id"], "activation_fee": "charge"},
                {"profile_id": kid["id"], "activation_fee": "waive"},
            ],
            "send_welcome_email": True,
        },
    )
    charged_at = parse_instant(added["payment"]["created_at"])
    assert timedelta(days=10) <= charged_at - start < timedelta(days=10, minutes=5)
    # 3000 x the seconds left of this period (20 of 30 days in April, 18 of 28 in February ...)
    prorated = added["payment"]["lines"][0]["amount"]
    assert prorated in prorations_charged_at(3000, start, end, charged_at)
    lines = [(ln["kind"], ln["profile_id"], ln["amount"]) for ln in added["payment"]["lines"]]
    assert lines == [
        ("proration", friend["id"], prorated),
        ("activation_fee", friend["id"], 500),
        ("proration", kid["id"], prorated),
    ]
    assert added["payment"]["total"] == 2 * prorated + 500
    assert (added["emails_sent"], added["emails_skipped"]) == ([friend["id"]], [kid["id"]])
    with urllib.request.urlopen(f"{api.stack.config.moto_url}/moto-api/data.json") as response:
        sent = json.loads(response.read())["ses"]["Message"]
    welcome = [m for m in sent if m["destinations"]["ToAddresses"] == ["eli@example.com"]]
    assert len(welcome) == 1 and "Gold" in welcome[0]["subject"]

    leaving = api.ok("DELETE", f"{path}/members/{friend['id']}?at=period_end")
    removal = {m["profile_id"]: m["removal"] for m in leaving["members"]}
    assert removal[friend["id"]] == {"effective_at": sub["current_period"]["end"]}
    restored = api.ok("POST", f"{path}/members/{friend['id']}/restore")
    assert all(m["removal"] is None for m in restored["members"])
    gone = api.ok("DELETE", f"{path}/members/{kid['id']}?at=now")
    assert kid["id"] not in [m["profile_id"] for m in gone["members"]]
    assert api.ok("GET", f"/v1/profiles/{kid['id']}/access")["has_access"] is False

    queued = api.ok("PATCH", path, {"billing_cycle": "year"})
    assert queued["pending_changes"] == {"billing_cycle": "year"}
    expiring = api.ok("POST", f"{path}/cancel", {"at": "period_end"})
    assert (expiring["status"], expiring["cancel_at"]) == ("expiring", sub["current_period"]["end"])
    assert api.ok("POST", f"{path}/resume")["status"] == "active"
    cancelled = api.ok("POST", f"{path}/cancel", {"at": "now"})
    assert (cancelled["status"], cancelled["cancellation_reason"]) == ("cancelled", "requested")
    assert api.call("POST", f"{path}/resume")[0] == 409
    # Removed for good, but the time it was a member stays in its history (docs/rules/history.md).
    [history] = api.ok("GET", f"/v1/profiles/{kid['id']}/billing-history")["data"]
    assert (history["subscription"]["id"], history["role"], history["former"]) == (
        sub["id"],
        "member",
        True,
    )
    [membership] = history["memberships"]
    assert membership["removed_at"] is not None
    owner_history = api.ok("GET", f"/v1/profiles/{owner['id']}/billing-history")["data"]
    assert [(h["subscription"]["id"], h["role"]) for h in owner_history] == [(sub["id"], "owner")]
    assert {p["kind"] for p in owner_history[0]["payments"]} == {"activation", "proration"}


def test_plan_change_up_and_down_refunds_and_billing_history(
    api: Client, plans: dict[str, dict[str, Any]]
) -> None:
    owner = api.customer("Fay")
    kid = api.ok(
        "POST",
        "/v1/profiles",
        {"kind": "dependent", "name": "Gil", "account_holder_id": owner["id"]},
        201,
    )
    sub = api.active(
        plans["gold"], owner, member_ids=[owner["id"], kid["id"]], waive_activation_fee=True
    )
    path = f"/v1/subscriptions/{sub['id']}"
    up = api.ok(
        "POST", f"{path}/change-plan", {"plan_id": plans["platinum"]["id"], "effective": "now"}
    )
    assert up["plan"]["name"] == "Platinum"
    change = api.payments(sub["id"])[0]
    assert change["kind"] == "plan_change" and change["lines"][0]["quantity"] == 2
    assert 0 < change["total"] <= 2 * 3000  # the prorated difference for the rest of the period
    down = api.ok(
        "POST", f"{path}/change-plan", {"plan_id": plans["silver"]["id"], "effective": "now"}
    )
    assert down["plan"]["name"] == "Silver"
    credit = api.ok("GET", f"/v1/profiles/{owner['id']}")["credit_balance"]
    assert credit > 0
    preview = api.ok("GET", f"{path}/preview?action=renew")
    assert preview["credit_applied"] == min(credit, 3000) and preview["subtotal"] == 3000

    activation = api.payments(sub["id"])[-1]
    refund_path = f"/v1/payments/{activation['id']}/refunds"
    partial = api.ok("POST", refund_path, {"amount": 1000}, 201)
    assert partial["amount"] == 1000
    assert api.call("POST", refund_path, {"amount": 999999})[0] == 400
    full = api.ok("POST", refund_path, {}, 201)
    assert full["amount"] == activation["total"] - 1000
    refunded = api.ok("GET", f"/v1/payments/{activation['id']}")
    assert (refunded["status"], refunded["amount_refunded"]) == ("refunded", activation["total"])
    charge = api.stripe("GET", f"/v1/charges/{activation['stripe']['charge_id']}")
    assert charge["amount_refunded"] == activation["total"]

    owner_history = api.ok("GET", f"/v1/profiles/{owner['id']}/billing-history")["data"]
    kid_history = api.ok("GET", f"/v1/profiles/{kid['id']}/billing-history")["data"]
    assert [h["role"] for h in owner_history] == ["owner"]
    assert [h["role"] for h in kid_history] == ["member"]
    assert [p["id"] for p in kid_history[0]["payments"]] == [
        p["id"] for p in owner_history[0]["payments"]
    ]
    assert [p["kind"] for p in owner_history[0]["payments"]] == ["plan_change", "activation"]
    report = api.ok("GET", "/v1/reports/summary")
    assert report["subscriptions_by_status"]["active"] >= 2
    assert report["payments_last_30_days"]["amount_refunded"] >= activation["total"]
