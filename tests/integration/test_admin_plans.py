"""Plans (API.md, Plans)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chalicelib.domain.errors import Conflict
from tests.integration.admin_helpers import call, item_count, new_community, shared_env
from tests.integration.conftest import Env

__all__ = ["shared_env"]


def _plan(env: Env, key: str, **fields: Any) -> dict[str, Any]:
    reply = call(
        env, "POST", "/v1/plans", {"name": "Gold", "prices": {"month": 1500}, **fields}, key=key
    )
    assert reply.status == 201, reply.body
    return reply.body  # type: ignore[no-any-return]


def test_create_with_defaults_and_every_field(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env, currency="eur")
    plan = _plan(env, tenant.key)
    assert plan["id"].startswith("plan_")
    assert plan == {
        "id": plan["id"],
        "name": "Gold",
        "description": None,
        "currency": "eur",
        "prices": {"month": 1500},
        "activation_fee": 0,
        "failed_payment_grace_days": 14,
        "retry_schedule_days": [],
        "max_members": None,
        "free": False,
        "status": "active",
        "created_at": "2026-01-15T12:00:00Z",
    }
    full = _plan(
        env,
        tenant.key,
        description="Family",
        currency="usd",
        prices={"month": 0, "year": 0},
        activation_fee=2500,
        failed_payment_grace_days=10,
        retry_schedule_days=[1, 3, 9],
        max_members=4,
    )
    # an activation fee is charged: not free (issue 11 item 10)
    assert full["free"] is False and full["currency"] == "usd"
    assert full["prices"] == {"month": 0, "year": 0}
    assert (full["retry_schedule_days"], full["max_members"]) == ([1, 3, 9], 4)
    assert call(env, "GET", f"/v1/plans/{full['id']}", key=tenant.key).body == full


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"prices": {}}, "prices"),
        ({"prices": {"week": 1}}, "prices.week"),
        ({"prices": {"month": -1}}, "prices.month"),
        ({"prices": {"month": 1.5}}, "prices.month"),
        ({"prices": {"month": "10"}}, "prices.month"),
        ({"prices": {"month": True}}, "prices.month"),
        ({"prices": {"month": 10**30}}, "prices.month"),
        ({"prices": None}, "prices"),
        ({"activation_fee": -5}, "activation_fee"),
        ({"failed_payment_grace_days": 366}, "failed_payment_grace_days"),
        ({"failed_payment_grace_days": -1}, "failed_payment_grace_days"),
        ({"retry_schedule_days": [3, 1]}, "retry_schedule_days"),
        ({"retry_schedule_days": [1, 14]}, "retry_schedule_days"),
        ({"retry_schedule_days": [0]}, "retry_schedule_days"),
        ({"max_members": 0}, "max_members"),
        ({"currency": "usdx"}, "currency"),
        ({"name": ""}, "name"),
        ({"status": "archived"}, "status"),
    ],
)
def test_bad_plans_are_400_naming_the_field(
    shared_env: Env, fields: dict[str, Any], field: str
) -> None:
    env = shared_env
    tenant = new_community(env)
    before = item_count()
    body = {"name": "Gold", "prices": {"month": 1500}, **fields}
    reply = call(env, "POST", "/v1/plans", body, key=tenant.key)
    assert reply.status == 400
    fields_named = [d["field"] for d in reply.body["error"]["details"]]
    assert any(f == field or f.startswith(field + ".") for f in fields_named), reply.body
    assert item_count() == before


def test_patch_changes_terms_but_never_prices_currency_or_fee(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    plan = _plan(env, tenant.key, description="d", max_members=3, activation_fee=100)
    path = f"/v1/plans/{plan['id']}"
    changed = call(
        env,
        "PATCH",
        path,
        {
            "name": "Platinum",
            "description": None,
            "failed_payment_grace_days": 20,
            "retry_schedule_days": [2, 5],
            "max_members": None,
        },
        key=tenant.key,
    )
    assert changed.status == 200
    body = changed.body
    assert (body["name"], body["description"], body["max_members"]) == ("Platinum", None, None)
    assert (body["failed_payment_grace_days"], body["retry_schedule_days"]) == (20, [2, 5])
    before = item_count()
    for immutable in ({"prices": {"month": 1}}, {"currency": "eur"}, {"activation_fee": 0}):
        reply = call(env, "PATCH", path, immutable, key=tenant.key)
        assert reply.status == 400
        detail = reply.body["error"]["details"][0]
        assert detail["field"] == next(iter(immutable)) and "immutable" in detail["message"]
    # Lowering grace below an existing retry day is refused as a whole.
    reply = call(env, "PATCH", path, {"failed_payment_grace_days": 5}, key=tenant.key)
    assert reply.status == 400
    assert reply.body["error"]["details"][0]["field"] == "retry_schedule_days"
    assert call(env, "PATCH", path, {"name": None}, key=tenant.key).status == 400
    assert item_count() == before
    assert call(env, "GET", path, key=tenant.key).body == body


def test_archive_lists_by_status_and_refuses_new_subscriptions(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    kept = _plan(env, tenant.key, name="Kept")
    gone = _plan(env, tenant.key, name="Gone")
    reply = call(env, "POST", f"/v1/plans/{gone['id']}/archive", key=tenant.key)
    assert (reply.status, reply.body["status"]) == (200, "archived")
    again = call(env, "POST", f"/v1/plans/{gone['id']}/archive", key=tenant.key)
    assert (again.status, again.body["status"]) == (200, "archived")

    def ids(query: str) -> list[str]:
        reply = call(env, "GET", f"/v1/plans{query}", key=tenant.key)
        assert reply.status == 200
        return [p["id"] for p in reply.body["data"]]

    assert ids("?status=active") == [kept["id"]]
    assert ids("?status=archived") == [gone["id"]]
    assert set(ids("")) == {kept["id"], gone["id"]}
    assert call(env, "GET", "/v1/plans?status=deleted", key=tenant.key).status == 400
    archived = env.container.plans.get(tenant.id, gone["id"])
    with pytest.raises(Conflict):
        archived.ensure_open_for_new_subscriptions()
    env.container.plans.get(tenant.id, kept["id"]).ensure_open_for_new_subscriptions()


def test_plans_page_newest_first_without_duplicates(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    made = []
    for number in range(5):
        made.append(_plan(env, tenant.key, name=f"P{number}")["id"])
        env.clock.advance(timedelta(seconds=1))
    seen: list[str] = []
    cursor = None
    while True:
        query = "?limit=2" + (f"&starting_after={cursor}" if cursor else "")
        page = call(env, "GET", f"/v1/plans{query}", key=tenant.key).body
        seen += [p["id"] for p in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == list(reversed(made))
    # A cursor from another list (status filter) is refused.
    other_cursor = call(env, "GET", "/v1/plans?limit=1", key=tenant.key).body["next_cursor"]
    reply = call(
        env, "GET", f"/v1/plans?status=active&starting_after={other_cursor}", key=tenant.key
    )
    assert reply.status == 400
