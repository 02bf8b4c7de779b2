"""Tenancy: every community route of the admin API, called with another community's ids, is a
404 (never 403, never the object), and nothing changes."""

from __future__ import annotations

from typing import Any

from chalicelib.api.routing import ROUTES, Auth
from tests.integration.admin_helpers import Tenant, call, item_count, new_community, shared_env
from tests.integration.conftest import Env

__all__ = ["shared_env"]

ADMIN_TAGS = {"plans", "profiles", "payment methods"}
# A valid body per route, so the call gets past validation to the lookup.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/plans/{plan_id}"): {"name": "Stolen"},
    ("POST", "/v1/plans/{plan_id}/archive"): None,
    ("PATCH", "/v1/profiles/{profile_id}"): {"name": "Stolen", "free_access": True},
    ("POST", "/v1/profiles/{profile_id}/payment-methods"): {"stripe_payment_method_id": "pm_x1"},
    ("POST", "/v1/profiles/{profile_id}/setup-intents"): None,
}


def _objects(env: Env, tenant: Tenant) -> dict[str, str]:
    plan = call(env, "POST", "/v1/plans", {"name": "P", "prices": {"year": 1}}, key=tenant.key)
    profile = call(
        env,
        "POST",
        "/v1/profiles",
        {"kind": "customer", "name": "A", "email": "a@x.io"},
        key=tenant.key,
    )
    return {
        "plan_id": plan.body["id"],
        "profile_id": profile.body["id"],
        "payment_method_id": "pm_x1",
    }


def test_every_admin_route_hides_other_communities_objects(shared_env: Env) -> None:
    env = shared_env
    owner, intruder = new_community(env), new_community(env)
    ids = _objects(env, owner)
    specs = [
        s for s in ROUTES if s.auth is Auth.COMMUNITY and s.tag in ADMIN_TAGS and s.path_params
    ]
    assert len(specs) >= 10
    before = item_count(include_idempotency=False)
    for spec in specs:
        path = spec.path
        for name in spec.path_params:
            path = path.replace("{" + name + "}", ids[name])
        reply = call(env, spec.method, path, BODIES.get((spec.method, spec.path)), key=intruder.key)
        assert reply.status == 404, (spec.method, spec.path, reply.body)
        assert reply.body["error"]["type"] == "not_found"
        # The owner still sees the object (except routes that need Stripe or change it).
        if spec.method == "GET" and "payment-methods" not in spec.path:
            assert call(env, "GET", path, key=owner.key).status == 200, path
    assert item_count(include_idempotency=False) == before
    listed = call(env, "GET", "/v1/profiles", key=intruder.key).body["data"]
    assert listed == []
    assert call(env, "GET", "/v1/plans", key=intruder.key).body["data"] == []


def test_overlong_ids_are_404_not_a_database_error(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    for path in ("/v1/plans/", "/v1/profiles/"):
        reply = call(env, "GET", path + "x" * 3000, key=tenant.key)
        assert (reply.status, reply.body["error"]["type"]) == (404, "not_found")
    assert call(env, "GET", "/v1/communities/" + "c" * 3000).status == 404
