"""Profiles, filters, links to subscriptions and access (API.md, Profiles)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from chalicelib.adapters.dynamodb.profile_links import delete_link, put_link, update_link
from chalicelib.adapters.dynamodb.transactions import transact
from tests.integration.admin_helpers import (
    Tenant,
    call,
    item_count,
    new_community,
    shared_env,
)
from tests.integration.conftest import Env

__all__ = ["shared_env"]


def _customer(env: Env, tenant: Tenant, name: str = "Ann", **fields: Any) -> dict[str, Any]:
    body = {"kind": "customer", "name": name, "email": f"{name.lower()}@example.com", **fields}
    reply = call(env, "POST", "/v1/profiles", body, key=tenant.key)
    assert reply.status == 201, reply.body
    env.clock.advance(timedelta(seconds=1))
    return reply.body  # type: ignore[no-any-return]


def _dependent(env: Env, tenant: Tenant, holder: str, name: str = "Kid") -> dict[str, Any]:
    body = {"kind": "dependent", "name": name, "account_holder_id": holder}
    reply = call(env, "POST", "/v1/profiles", body, key=tenant.key)
    assert reply.status == 201, reply.body
    env.clock.advance(timedelta(seconds=1))
    return reply.body  # type: ignore[no-any-return]


def _link(env: Env, tenant: Tenant, profile: str, sub: str, role: str, status: str) -> None:
    table = env.settings.table_name
    transact(
        env.container.dynamodb,
        [put_link(table, tenant.id, profile, sub, role, status, env.clock.now(), "pm_1")],
    )


def test_customers_and_dependents(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env, currency="gbp")
    ann = _customer(env, tenant, free_access=True)
    assert ann["id"].startswith("prof_")
    assert ann == {
        "id": ann["id"],
        "kind": "customer",
        "name": "Ann",
        "email": "ann@example.com",
        "account_holder_id": None,
        "free_access": True,
        "credit_balance": 0,
        "currency": "gbp",
        "credit_balances": {},
        "subscriptions": [],
        "created_at": ann["created_at"],
    }
    kid = _dependent(env, tenant, ann["id"])
    assert (kid["kind"], kid["email"], kid["account_holder_id"]) == ("dependent", None, ann["id"])
    assert call(env, "GET", f"/v1/profiles/{kid['id']}", key=tenant.key).body == kid
    before = item_count()
    cases = [
        ({"kind": "customer", "name": "No mail"}, "email"),
        ({"kind": "customer", "name": "Bad", "email": "not-an-email"}, "email"),
        (
            {"kind": "customer", "name": "X", "email": "x@y.io", "account_holder_id": ann["id"]},
            "account_holder_id",
        ),
        (
            {"kind": "dependent", "name": "Kid", "email": "k@x.io", "account_holder_id": ann["id"]},
            "email",
        ),
        ({"kind": "dependent", "name": "Kid"}, "account_holder_id"),
        ({"kind": "dependent", "name": "Kid", "account_holder_id": kid["id"]}, "account_holder_id"),
        ({"kind": "dependent", "name": "Kid", "account_holder_id": "prof_x"}, "account_holder_id"),
        ({"kind": "robot", "name": "R", "email": "r@x.io"}, "kind"),
        ({"kind": "customer", "name": "R", "email": "r@x.io", "free_access": "yes"}, "free_access"),
        (
            {"kind": "customer", "name": "R", "email": "r@x.io", "credit_balance": 5},
            "credit_balance",
        ),
    ]
    for body, field in cases:
        reply = call(env, "POST", "/v1/profiles", body, key=tenant.key)
        assert reply.status == 400, body
        assert field in [d["field"] for d in reply.body["error"]["details"]], reply.body
    assert item_count() == before


def test_patch_name_email_and_free_access(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    bob = _customer(env, tenant, "Bob")
    kid = _dependent(env, tenant, bob["id"])
    path = f"/v1/profiles/{bob['id']}"
    reply = call(
        env,
        "PATCH",
        path,
        {"name": "Robert", "email": "R@Example.com", "free_access": True},
        key=tenant.key,
    )
    assert reply.status == 200
    assert (reply.body["name"], reply.body["email"], reply.body["free_access"]) == (
        "Robert",
        "R@Example.com",
        True,
    )
    found = call(env, "GET", "/v1/profiles?email=r@example.com", key=tenant.key).body["data"]
    assert [p["id"] for p in found] == [bob["id"]]
    assert call(env, "GET", "/v1/profiles?email=bob@example.com", key=tenant.key).body["data"] == []
    before = item_count()
    kid_path = f"/v1/profiles/{kid['id']}"
    for target, body, field in [
        (kid_path, {"email": "kid@x.io"}, "email"),
        (path, {"email": None}, "email"),
        (path, {"kind": "dependent"}, "kind"),
        (path, {"credit_balance": 100}, "credit_balance"),
        (path, {"free_access": 1}, "free_access"),
    ]:
        reply = call(env, "PATCH", target, body, key=tenant.key)
        assert reply.status == 400, body
        assert reply.body["error"]["details"][0]["field"] == field
    assert item_count() == before
    assert (
        call(env, "PATCH", "/v1/profiles/prof_nothere", {"name": "x"}, key=tenant.key).status == 404
    )


def test_filters_by_kind_free_access_and_email(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    ann = _customer(env, tenant, "Ann", free_access=True)
    cid = _customer(env, tenant, "Cid")
    kid = _dependent(env, tenant, cid["id"])

    def ids(query: str) -> list[str]:
        reply = call(env, "GET", f"/v1/profiles{query}", key=tenant.key)
        assert reply.status == 200, reply.body
        return [p["id"] for p in reply.body["data"]]

    assert ids("") == [kid["id"], cid["id"], ann["id"]]  # newest first
    assert ids("?kind=customer") == [cid["id"], ann["id"]]
    assert ids("?kind=dependent") == [kid["id"]]
    assert ids("?free_access=true") == [ann["id"]]
    assert ids("?free_access=false") == [kid["id"], cid["id"]]
    assert ids("?free_access=true&kind=dependent") == []
    assert ids("?email=ANN@example.com") == [ann["id"]]
    assert ids("?email=ann@example.com&free_access=false") == []
    assert ids("?kind=customer&limit=1") == [cid["id"]]
    for bad in (
        "?kind=robot",
        "?free_access=maybe",
        "?limit=101",
        "?subscription_status=x",
        "?colour=red",
        "?email=",
    ):
        assert call(env, "GET", f"/v1/profiles{bad}", key=tenant.key).status == 400, bad
    # Turning free access off drops the profile from the sparse index.
    call(env, "PATCH", f"/v1/profiles/{ann['id']}", {"free_access": False}, key=tenant.key)
    assert ids("?free_access=true") == []


def test_links_drive_subscriptions_and_the_status_filter_not_access(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    owner = _customer(env, tenant, "Olga")
    kid = _dependent(env, tenant, owner["id"])
    loner = _customer(env, tenant, "Lou")
    free = _customer(env, tenant, "Fay", free_access=True)
    table = env.settings.table_name
    # Olga owns sub_a and is a member of it; her dependent is a member too.
    _link(env, tenant, owner["id"], "sub_a", "owner", "inactive")
    _link(env, tenant, owner["id"], "sub_a", "member", "inactive")
    _link(env, tenant, kid["id"], "sub_a", "member", "inactive")
    # Lou owns sub_b without being a member (pays for others).
    _link(env, tenant, loner["id"], "sub_b", "owner", "active")

    def access(profile: dict[str, Any]) -> dict[str, Any]:
        reply = call(env, "GET", f"/v1/profiles/{profile['id']}/access", key=tenant.key)
        assert reply.status == 200
        return reply.body  # type: ignore[no-any-return]

    assert access(kid) == {
        "profile_id": kid["id"],
        "has_access": False,
        "reason": None,
        "subscription_ids": [],
    }
    assert access(loner)["has_access"] is False  # owners without membership have no access
    assert access(free) == {
        "profile_id": free["id"],
        "has_access": True,
        "reason": "free_access",
        "subscription_ids": [],
    }
    now = env.clock.now()
    transact(
        env.container.dynamodb,
        [
            update_link(table, tenant.id, p, "sub_a", role, now, status="active")
            for p, role in ((owner["id"], "owner"), (owner["id"], "member"), (kid["id"], "member"))
        ],
    )
    # The links name where access may come from; the subscription itself decides (as of now:
    # tests/integration/test_access_in_time.py). These links have none behind them.
    assert access(kid)["has_access"] is False
    profile = call(env, "GET", f"/v1/profiles/{owner['id']}", key=tenant.key).body
    assert profile["subscriptions"] == [
        {"subscription_id": "sub_a", "role": "member", "status": "active"},
        {"subscription_id": "sub_a", "role": "owner", "status": "active"},
    ]

    def with_status(status: str, extra: str = "") -> list[str]:
        reply = call(
            env, "GET", f"/v1/profiles?subscription_status={status}{extra}", key=tenant.key
        )
        assert reply.status == 200, reply.body
        return [p["id"] for p in reply.body["data"]]

    active = with_status("active")
    assert sorted(active) == active  # by profile id, each profile once
    assert set(active) == {owner["id"], kid["id"], loner["id"]}
    assert with_status("inactive") == []
    assert with_status("active", "&kind=dependent") == [kid["id"]]
    # (Which statuses grant access: tests/unit/domain/test_access.py.)
    transact(
        env.container.dynamodb,
        [update_link(table, tenant.id, kid["id"], "sub_a", "member", now, status="failed_payment")],
    )
    assert with_status("failed_payment") == [kid["id"]]
    transact(env.container.dynamodb, [delete_link(table, tenant.id, kid["id"], "sub_a", "member")])
    assert with_status("failed_payment") == []
    assert call(env, "GET", f"/v1/profiles/{kid['id']}", key=tenant.key).body["subscriptions"] == []


def test_status_filter_pages_each_profile_once(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    people = [_customer(env, tenant, f"P{n}")["id"] for n in range(5)]
    for person in people:
        for sub in ("sub_1", "sub_2", "sub_3"):
            _link(env, tenant, person, sub, "member", "active")
            _link(env, tenant, person, sub, "owner", "active")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "?subscription_status=active&limit=2"
        reply = call(
            env,
            "GET",
            f"/v1/profiles{query}" + (f"&starting_after={cursor}" if cursor else ""),
            key=tenant.key,
        )
        assert reply.status == 200
        pages += 1
        seen += [p["id"] for p in reply.body["data"]]
        for profile in reply.body["data"]:
            assert len(profile["subscriptions"]) == 6
        cursor = reply.body["next_cursor"]
        if not reply.body["has_more"]:
            break
    assert seen == sorted(people)
    assert pages == 3
    plain = call(env, "GET", "/v1/profiles?limit=1", key=tenant.key).body["next_cursor"]
    reply = call(
        env,
        "GET",
        f"/v1/profiles?subscription_status=active&starting_after={plain}",
        key=tenant.key,
    )
    assert reply.status == 400
