"""Communities and API keys (API.md, Communities; Conventions: auth)."""

from __future__ import annotations

from chalicelib.services.api_keys import hash_key
from tests.integration.admin_helpers import call, item_count, new_community, shared_env
from tests.integration.conftest import Env

__all__ = ["shared_env"]


def test_create_returns_the_key_once_and_stores_only_its_hash(shared_env: Env) -> None:
    env = shared_env
    reply = call(
        env,
        "POST",
        "/v1/communities",
        {"name": "Rowing", "stripe_account_id": "acct_row1", "application_fee_bps": 250},
    )
    assert reply.status == 201
    body = reply.body
    assert body["id"].startswith("com_")
    assert body["currency"] == "usd"
    assert body["stripe_account_id"] == "acct_row1"
    assert body["application_fee_bps"] == 250
    assert body["created_at"] == "2026-01-15T12:00:00Z"
    key = body["api_key"]
    assert key["id"].startswith("key_") and key["secret"].startswith(f"mbk_{key['id']}_")
    again = call(env, "GET", f"/v1/communities/{body['id']}")
    assert again.status == 200 and "api_key" not in again.body
    stored = env.container.dynamodb.get_item(
        TableName=env.settings.table_name,
        Key={"pk": {"S": f"APIKEY#{key['id']}"}, "sk": {"S": "APIKEY"}},
    )["Item"]
    assert key["secret"] not in str(stored)
    assert stored["secret_hash"]["S"] == hash_key(key["secret"])
    # The key works for community routes.
    assert call(env, "GET", "/v1/plans", key=key["secret"]).status == 200


def test_keys_are_checked_by_kind_and_revoked_keys_fail_at_once(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    # Platform key on a community route and community key on a platform route: 403.
    forbidden = call(env, "GET", "/v1/plans")
    assert (forbidden.status, forbidden.body["error"]["type"]) == (403, "forbidden")
    assert call(env, "GET", "/v1/communities", key=tenant.key).status == 403
    # Unknown or malformed keys: 401 with the envelope.
    for bad in ("nope", tenant.key[:-1] + "x", tenant.key.replace("mbk_", "mbx_")):
        reply = call(env, "GET", "/v1/plans", key=bad)
        assert (reply.status, reply.body["error"]["type"]) == (401, "unauthorized")
    second = call(env, "POST", f"/v1/communities/{tenant.id}/api-keys")
    assert second.status == 201 and second.body["id"].startswith("key_")
    assert call(env, "GET", "/v1/plans", key=second.body["secret"]).status == 200
    first_key_id = tenant.key.split("_")[2]
    revoked = call(env, "DELETE", f"/v1/communities/{tenant.id}/api-keys/key_{first_key_id}")
    assert (revoked.status, revoked.body) == (204, None)
    assert call(env, "GET", "/v1/plans", key=tenant.key).status == 401
    assert call(env, "GET", "/v1/plans", key=second.body["secret"]).status == 200


def test_api_keys_of_another_or_unknown_community_are_404(shared_env: Env) -> None:
    env = shared_env
    one, other = new_community(env), new_community(env)
    key_id = "key_" + one.key.split("_")[2]
    assert call(env, "DELETE", f"/v1/communities/{other.id}/api-keys/{key_id}").status == 404
    assert call(env, "DELETE", f"/v1/communities/{one.id}/api-keys/key_nothere").status == 404
    assert call(env, "POST", "/v1/communities/com_nothere/api-keys").status == 404
    assert call(env, "GET", "/v1/communities/com_nothere").status == 404
    assert call(env, "PATCH", "/v1/communities/com_nothere", {"name": "x"}).status == 404
    assert call(env, "GET", "/v1/plans", key=one.key).status == 200


def test_patch_changes_name_fee_and_account_and_moves_the_account_index(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env, stripe_account_id="acct_patch1")
    repo = env.container.communities
    found = repo.find_by_stripe_account("acct_patch1")
    assert found is not None and found.id == tenant.id
    reply = call(
        env,
        "PATCH",
        f"/v1/communities/{tenant.id}",
        {"name": "Renamed", "application_fee_bps": 10_000, "stripe_account_id": "acct_patch2"},
    )
    assert reply.status == 200
    assert (reply.body["name"], reply.body["application_fee_bps"]) == ("Renamed", 10_000)
    assert reply.body["currency"] == "usd"
    assert repo.find_by_stripe_account("acct_patch1") is None
    moved = repo.find_by_stripe_account("acct_patch2")
    assert moved is not None and moved.application_fee_bps == 10_000
    # The old account is free again; null disconnects.
    other = new_community(env, stripe_account_id="acct_patch1")
    assert repo.find_by_stripe_account("acct_patch1").id == other.id  # type: ignore[union-attr]
    cleared = call(env, "PATCH", f"/v1/communities/{tenant.id}", {"stripe_account_id": None})
    assert cleared.status == 200 and cleared.body["stripe_account_id"] is None
    assert repo.find_by_stripe_account("acct_patch2") is None
    assert call(env, "GET", f"/v1/communities/{tenant.id}").body["name"] == "Renamed"


def test_one_connected_account_belongs_to_one_community(shared_env: Env) -> None:
    env = shared_env
    new_community(env, stripe_account_id="acct_taken")
    before = item_count()
    reply = call(env, "POST", "/v1/communities", {"name": "B", "stripe_account_id": "acct_taken"})
    assert (reply.status, reply.body["error"]["type"]) == (409, "conflict")
    assert item_count() == before
    other = new_community(env)
    before = item_count()
    reply = call(env, "PATCH", f"/v1/communities/{other.id}", {"stripe_account_id": "acct_taken"})
    assert reply.status == 409
    assert item_count() == before
    assert call(env, "GET", f"/v1/communities/{other.id}").body["stripe_account_id"] is None


def test_bad_community_input_is_400_naming_the_field_and_stores_nothing(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    before = item_count()
    cases = [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x", "currency": "USD"}, "currency"),
        ({"name": "x", "application_fee_bps": 10_001}, "application_fee_bps"),
        ({"name": "x", "application_fee_bps": -1}, "application_fee_bps"),
        ({"name": "x", "application_fee_bps": 1.5}, "application_fee_bps"),
        ({"name": "x", "application_fee_bps": "10"}, "application_fee_bps"),
        ({"name": "x", "stripe_account_id": "cus_1"}, "stripe_account_id"),
        ({"name": "x", "api_key": "mine"}, "api_key"),
        ({}, "name"),
    ]
    for body, field in cases:
        reply = call(env, "POST", "/v1/communities", body)
        assert reply.status == 400, body
        assert field in [d["field"] for d in reply.body["error"]["details"]], (body, reply.body)
    for body, field in [
        ({"name": None}, "name"),
        ({"application_fee_bps": None}, "application_fee_bps"),
        ({"currency": "eur"}, "currency"),
    ]:
        reply = call(env, "PATCH", f"/v1/communities/{tenant.id}", body)
        assert reply.status == 400, body
        assert reply.body["error"]["details"][0]["field"] == field
    assert call(env, "GET", "/v1/communities?limit=0").status == 400
    assert call(env, "GET", "/v1/communities?starting_after=abc").status == 400
    assert call(env, "POST", f"/v1/communities/{tenant.id}/api-keys", {"x": 1}).status == 400
    assert item_count() == before


def test_list_pages_with_a_signed_cursor(shared_env: Env) -> None:
    env = shared_env
    made = {new_community(env).id for _ in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        path = "/v1/communities?limit=2" + (f"&starting_after={cursor}" if cursor else "")
        reply = call(env, "GET", path)
        assert reply.status == 200
        assert len(reply.body["data"]) <= 2
        seen += [c["id"] for c in reply.body["data"]]
        cursor = reply.body["next_cursor"]
        assert reply.body["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert made <= set(seen) and len(seen) == len(set(seen))
    first = call(env, "GET", "/v1/communities?limit=1").body["next_cursor"]
    payload, _, signature = first.partition(".")
    for tampered in (payload + "." + signature[::-1], payload[:-2] + "." + signature, "x" + first):
        reply = call(env, "GET", f"/v1/communities?starting_after={tampered}")
        assert reply.status == 400
        assert reply.body["error"]["details"][0]["field"] == "starting_after"
