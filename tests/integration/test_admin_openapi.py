"""The OpenAPI document covers every admin route with its request and response schemas."""

from __future__ import annotations

import json

from tests.integration.admin_helpers import shared_env
from tests.integration.conftest import Env

__all__ = ["shared_env"]

EXPECTED = {
    ("post", "/v1/communities"): (True, "201"),
    ("get", "/v1/communities"): (False, "200"),
    ("get", "/v1/communities/{community_id}"): (False, "200"),
    ("patch", "/v1/communities/{community_id}"): (True, "200"),
    ("post", "/v1/communities/{community_id}/api-keys"): (False, "201"),
    ("delete", "/v1/communities/{community_id}/api-keys/{key_id}"): (False, "204"),
    ("post", "/v1/plans"): (True, "201"),
    ("get", "/v1/plans"): (False, "200"),
    ("get", "/v1/plans/{plan_id}"): (False, "200"),
    ("patch", "/v1/plans/{plan_id}"): (True, "200"),
    ("post", "/v1/plans/{plan_id}/archive"): (False, "200"),
    ("post", "/v1/profiles"): (True, "201"),
    ("get", "/v1/profiles"): (False, "200"),
    ("get", "/v1/profiles/{profile_id}"): (False, "200"),
    ("patch", "/v1/profiles/{profile_id}"): (True, "200"),
    ("get", "/v1/profiles/{profile_id}/access"): (False, "200"),
    ("post", "/v1/profiles/{profile_id}/payment-methods"): (True, "201"),
    ("get", "/v1/profiles/{profile_id}/payment-methods"): (False, "200"),
    ("delete", "/v1/profiles/{profile_id}/payment-methods/{payment_method_id}"): (False, "204"),
    ("post", "/v1/profiles/{profile_id}/setup-intents"): (False, "201"),
}


def test_every_admin_route_is_documented_with_schemas(shared_env: Env) -> None:
    # (tests/integration/test_health_and_openapi.py validates the whole document with
    # openapi-spec-validator; here: the admin routes and their schemas are all in it.)
    document = json.loads(shared_env.client.http.get("/v1/openapi.json").body)
    schemas = document["components"]["schemas"]
    for (method, path), (has_body, status) in EXPECTED.items():
        operation = document["paths"][path][method]
        assert ("requestBody" in operation) is has_body, (method, path)
        if has_body:
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[-1] in schemas
        response = operation["responses"][status]
        if status != "204":
            ref = response["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[-1] in schemas
        assert {"400", "401", "403", "404"} <= set(operation["responses"])
        if method == "post":
            names = [p["name"] for p in operation["parameters"]]
            assert "Idempotency-Key" in names
    profiles = {p["name"] for p in document["paths"]["/v1/profiles"]["get"]["parameters"]}
    assert profiles == {
        "limit",
        "starting_after",
        "subscription_status",
        "kind",
        "free_access",
        "email",
    }
    plan_patch = schemas["UpdatePlan"]["properties"]
    assert "prices" not in plan_patch and "name" in plan_patch
    assert "api_key" in schemas["CreatedCommunity"]["properties"]
