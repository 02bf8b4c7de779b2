"""Community API key secrets are never stored in plain text, not even in the idempotency store
(API.md, Communities): a replay answers the key id with `secret: null`."""

from __future__ import annotations

import json

from tests.integration.admin_helpers import call, new_community, shared_env
from tests.integration.conftest import Env, stored_idempotency_items

__all__ = ["shared_env"]


def _secret_parts(full_key: str) -> list[str]:
    # mbk_key_<20 hex>_<43 characters of base64url>: neither the whole key nor its secret part
    # may be stored. (The secret itself may contain "_": split at the key id, not the last "_".)
    prefix, secret = full_key[: len("mbk_key_") + 20], full_key[len("mbk_key_") + 21 :]
    assert prefix.startswith("mbk_key_") and len(secret) == 43, full_key
    return [full_key, secret]


def test_a_created_community_key_is_not_in_the_idempotency_store(shared_env: Env) -> None:
    env = shared_env
    headers = {"Idempotency-Key": "community-with-secret"}
    first = call(env, "POST", "/v1/communities", {"name": "Secret club"}, headers=headers)
    assert first.status == 201
    secret = first.body["api_key"]["secret"]
    assert secret

    stored = json.dumps(stored_idempotency_items())
    for part in _secret_parts(secret):
        assert part not in stored

    replay = call(env, "POST", "/v1/communities", {"name": "Secret club"}, headers=headers)
    assert replay.status == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.body["api_key"] == {"id": first.body["api_key"]["id"], "secret": None}
    assert {k: v for k, v in replay.body.items() if k != "api_key"} == {
        k: v for k, v in first.body.items() if k != "api_key"
    }


def test_an_issued_api_key_is_not_in_the_idempotency_store(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    path = f"/v1/communities/{tenant.id}/api-keys"
    headers = {"Idempotency-Key": "another-key"}
    first = call(env, "POST", path, headers=headers)
    assert first.status == 201
    secret = first.body["secret"]

    stored = json.dumps(stored_idempotency_items())
    for part in _secret_parts(secret):
        assert part not in stored

    replay = call(env, "POST", path, headers=headers)
    assert replay.status == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.body == {"id": first.body["id"], "secret": None}
    # The key itself still works: only the stored answer lost its secret.
    assert call(env, "GET", "/v1/plans", key=secret).status == 200
