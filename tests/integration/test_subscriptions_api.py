"""Create / edit / delete / preview / events through the API, unhappy paths included."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import TABLE_NAME
from tests.integration.test_subscriptions_lifecycle import APRIL
from tests.support.billing_api import Api, api_at, billing_env
from tests.support.localstripe import localstripe_url

__all__ = ["api_at", "billing_env", "localstripe_url"]


def item_total() -> int:
    from tests.support.moto_clients import moto_client

    client = moto_client("dynamodb", region_name="us-east-1")
    return int(client.scan(TableName=TABLE_NAME, Select="COUNT")["Count"])  # tests only


def field_of(reply: Any) -> str:
    return str(reply.body["error"]["details"][0]["field"])


def test_bad_input_is_a_400_naming_the_field_and_stores_nothing(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    plan = api.plan(prices={"month": 3000}, max_members=2)
    owner = api.customer("Ada")
    kid = api.dependent(owner["id"])
    good = {
        "plan_id": plan["id"],
        "owner_id": owner["id"],
        "member_ids": [owner["id"]],
        "billing_cycle": "month",
    }
    cases = [
        ({**good, "plan_id": "plan_nope"}, "plan_id"),
        ({**good, "owner_id": kid["id"]}, "owner_id"),
        ({**good, "owner_id": "prof_nope"}, "owner_id"),
        ({**good, "member_ids": ["prof_nope"]}, "member_ids[0]"),
        ({**good, "member_ids": [owner["id"], owner["id"]]}, "member_ids[1]"),
        (
            {**good, "member_ids": [owner["id"], kid["id"], api.dependent(owner["id"])["id"]]},
            "member_ids",
        ),
        ({**good, "billing_cycle": "year"}, "billing_cycle"),
        ({**good, "billing_cycle": "week"}, "billing_cycle"),
        ({**good, "payment_method_id": "pm_nope"}, "payment_method_id"),
        ({**good, "colour": "red"}, "colour"),
        ({**good, "waive_activation_fee": "yes"}, "waive_activation_fee"),
    ]
    before = item_total()
    for body, field in cases:
        reply = api.call("POST", "/v1/subscriptions", body)
        assert (reply.status, field_of(reply)) == (400, field), body
    assert item_total() == before


def test_inactive_edits_delete_and_events(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    gold = api.plan(prices={"month": 3000, "year": 30000}, activation_fee=700)
    silver = api.plan(name="Silver", prices={"month": 1000})
    owner, other = api.customer("Ada"), api.customer("Bo")
    sub = api.subscription(gold, owner)
    path = f"/v1/subscriptions/{sub['id']}"

    changed = api.ok(
        "PATCH",
        path,
        {
            "plan_id": silver["id"],
            "owner_id": other["id"],
            "payment_method_id": other["card"],
            "member_ids": [owner["id"], other["id"]],
            "waive_activation_fee": True,
        },
    )
    assert (changed["plan"]["name"], changed["owner_id"]) == ("Silver", other["id"])
    assert changed["billed_to"]["email"] == "bo@example.com"
    assert changed["payment_method"]["id"] == other["card"]
    assert [m["activation_fee"]["status"] for m in changed["members"]] == ["waived", "waived"]
    assert changed["version"] == sub["version"] + 1
    # All-or-nothing: one bad field and nothing changes.
    bad = api.call("PATCH", path, {"plan_id": gold["id"], "payment_method_id": owner["card"]})
    assert (bad.status, field_of(bad)) == (400, "payment_method_id")
    assert api.ok("GET", path)["plan"]["name"] == "Silver"
    swap = api.call("PATCH", path, {"owner_id": owner["id"]})  # Bo's card is not Ada's
    assert (swap.status, field_of(swap)) == (400, "payment_method_id")
    preview = api.ok("GET", f"{path}/preview?action=activate")
    assert (preview["subtotal"], preview["total"], preview["currency"]) == (2000, 2000, "usd")
    assert preview["period"]["start"] == "2026-04-01T00:00:00Z"
    assert api.call("GET", f"{path}/preview?action=renew").status == 409
    assert api.call("GET", f"{path}/preview?action=dance").status == 400
    assert api.call("POST", f"{path}/cancel", {"at": "now"}).status == 409
    assert api.call("POST", f"{path}/cancel", {"at": "later"}).status == 400
    events = api.ok("GET", f"{path}/events")
    assert [e["type"] for e in events["data"]] == ["subscription.created", "subscription.updated"]
    assert events["data"][1]["details"]["changed"] == [
        "plan_id",
        "owner_id",
        "waive_activation_fee",
        "member_ids",
        "payment_method_id",
    ]
    assert events["data"][0]["actor"] == "api" and events["data"][0]["to_status"] == "inactive"
    assert api.ok("GET", f"/v1/profiles/{owner['id']}")["subscriptions"] == [
        {"subscription_id": sub["id"], "role": "member", "status": "inactive"}
    ]

    assert api.call("DELETE", path).status == 204
    assert api.call("GET", path).status == 404
    assert api.ok("GET", f"/v1/profiles/{other['id']}")["subscriptions"] == []
    active = api.active(gold, owner)
    assert api.call("DELETE", f"/v1/subscriptions/{active['id']}").status == 409
    assert (
        api.call("PATCH", f"/v1/subscriptions/{active['id']}", {"plan_id": silver["id"]}).status
        == 409
    )


def test_routes_are_in_the_openapi_document(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    document = api.ok("GET", "/v1/openapi.json")
    paths = document["paths"]
    for path in (
        "/v1/subscriptions",
        "/v1/subscriptions/{subscription_id}/activate",
        "/v1/subscriptions/{subscription_id}/members/{profile_id}/restore",
        "/v1/payments/{payment_id}/refunds",
        "/v1/reports/summary",
        "/v1/profiles/{profile_id}/billing-history",
    ):
        assert path in paths, path
