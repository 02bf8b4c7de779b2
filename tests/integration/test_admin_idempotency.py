"""Idempotency-Key on every POST (API.md, Conventions), through the shared route wrapper."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from chalice import Blueprint, Chalice
from chalice.test import Client

from chalicelib.adapters.dynamodb.idempotency import IdempotencyStore, StoredResponse
from chalicelib.api import auth
from chalicelib.api.idempotency import request_fingerprint
from chalicelib.api.models import RequestModel
from chalicelib.api.routing import ROUTES, ApiResponse, Auth, RequestContext, route
from chalicelib.domain.errors import Unavailable
from tests.integration.admin_helpers import call, item_count, new_community, shared_env
from tests.integration.conftest import PLATFORM_KEY, Env
from tests.support.webhook_flow import throttled_once

__all__ = ["shared_env"]

PLAN = {"name": "Gold", "prices": {"month": 1500}}

# A probe app with the real route mechanism: a handler that fails (5xx) a set number of times.
probe = Blueprint(__name__)
FAILURES = {"left": 0, "calls": 0}


class Ping(RequestModel):
    n: int


@route(probe, "/probe/idem", "POST", auth=Auth.PLATFORM, body=Ping, summary="p", tag="p")
def idem_probe(ctx: RequestContext, body: Ping) -> ApiResponse:
    FAILURES["calls"] += 1
    if FAILURES["left"] > 0:
        FAILURES["left"] -= 1
        raise Unavailable("try again")
    return ApiResponse(body={"n": body.n, "calls": FAILURES["calls"]}, status=201)


ROUTES[:] = [spec for spec in ROUTES if not spec.path.startswith("/probe/")]
probe_app = Chalice(app_name="idempotency-probe")
probe_app.register_blueprint(auth.blueprint)
probe_app.register_blueprint(probe)


@pytest.fixture
def probe_client(shared_env: Env) -> Iterator[Client]:
    with Client(probe_app) as client:
        yield client


def test_same_key_same_body_replays_the_first_response(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    first = call(env, "POST", "/v1/plans", PLAN, key=tenant.key, headers={"Idempotency-Key": "k1"})
    assert first.status == 201 and "idempotent-replayed" not in first.headers
    count = item_count()
    # Same JSON content, other formatting: still the same request.
    replay = call(
        env,
        "POST",
        "/v1/plans",
        key=tenant.key,
        headers={"Idempotency-Key": "k1"},
        raw='{ "prices": {"month": 1500}, "name": "Gold" }',
    )
    assert replay.status == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.body == first.body
    assert item_count() == count
    plans = call(env, "GET", "/v1/plans", key=tenant.key).body["data"]
    assert [p["id"] for p in plans] == [first.body["id"]]


def test_same_key_other_body_or_path_is_409(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    headers = {"Idempotency-Key": "k2"}
    assert call(env, "POST", "/v1/plans", PLAN, key=tenant.key, headers=headers).status == 201
    count = item_count()
    other = call(
        env, "POST", "/v1/plans", {**PLAN, "name": "Silver"}, key=tenant.key, headers=headers
    )
    assert (other.status, other.body["error"]["type"]) == (409, "conflict")
    body = {"kind": "customer", "name": "A", "email": "a@x.io"}
    assert call(env, "POST", "/v1/profiles", body, key=tenant.key, headers=headers).status == 409
    assert item_count() == count


def test_keys_are_per_community_and_platform(shared_env: Env) -> None:
    env = shared_env
    one, two = new_community(env), new_community(env)
    headers = {"Idempotency-Key": "shared-key"}
    a = call(env, "POST", "/v1/plans", PLAN, key=one.key, headers=headers)
    b = call(env, "POST", "/v1/plans", PLAN, key=two.key, headers=headers)
    assert (a.status, b.status) == (201, 201)
    assert "idempotent-replayed" not in b.headers and a.body["id"] != b.body["id"]
    c = call(env, "POST", "/v1/communities", {"name": "Z"}, headers=headers)
    assert c.status == 201 and "idempotent-replayed" not in c.headers
    d = call(env, "POST", "/v1/communities", {"name": "Z"}, headers=headers)
    assert d.headers["idempotent-replayed"] == "true" and d.body["id"] == c.body["id"]


def test_keys_expire_after_24_hours(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    headers = {"Idempotency-Key": "k3"}
    first = call(env, "POST", "/v1/plans", PLAN, key=tenant.key, headers=headers)
    env.clock.advance(timedelta(hours=23, minutes=59))
    assert call(env, "POST", "/v1/plans", PLAN, key=tenant.key, headers=headers).body == first.body
    env.clock.advance(timedelta(minutes=2))
    later = call(env, "POST", "/v1/plans", {**PLAN, "name": "New"}, key=tenant.key, headers=headers)
    assert later.status == 201 and later.body["name"] == "New"
    assert "idempotent-replayed" not in later.headers


def test_bad_keys_and_bad_bodies_store_nothing(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    count = item_count()
    for header in ("", "x" * 256):
        reply = call(
            env, "POST", "/v1/plans", PLAN, key=tenant.key, headers={"Idempotency-Key": header}
        )
        assert reply.status == 400
        assert reply.body["error"]["details"][0]["field"] == "Idempotency-Key"
    headers = {"Idempotency-Key": "k4"}
    bad = call(env, "POST", "/v1/plans", {"name": "x"}, key=tenant.key, headers=headers)
    assert bad.status == 400
    # A 400 from the business rules is not kept either: the caller fixes the body and retries.
    rule = call(env, "POST", "/v1/plans", {**PLAN, "prices": {}}, key=tenant.key, headers=headers)
    assert rule.status == 400
    assert item_count() == count
    assert call(env, "POST", "/v1/plans", PLAN, key=tenant.key, headers=headers).status == 201
    # 404s are answers like any other and are replayed.
    path = "/v1/plans/plan_missing/archive"
    assert call(env, "POST", path, key=tenant.key, headers={"Idempotency-Key": "k5"}).status == 404
    again = call(env, "POST", path, key=tenant.key, headers={"Idempotency-Key": "k5"})
    assert (again.status, again.headers["idempotent-replayed"]) == (404, "true")


def test_a_throttled_idempotency_claim_is_a_503_to_retry_and_creates_nothing(
    shared_env: Env,
) -> None:
    """The claim is the request's first write (PutItem); throttling past botocore's retries was
    a 500 "internal" (an alarm, a client that gives up) where every other write answers 503."""
    env = shared_env
    tenant = new_community(env)
    with throttled_once(env.container.dynamodb, "PutItem") as fired:
        busy = call(
            env, "POST", "/v1/plans", PLAN, key=tenant.key, headers={"Idempotency-Key": "t"}
        )
    assert fired == ["PutItem"]
    assert (busy.status, busy.body["error"]["type"]) == (503, "unavailable")
    assert busy.headers["retry-after"] == "1"
    assert call(env, "GET", "/v1/plans", key=tenant.key).body["data"] == []
    again = call(env, "POST", "/v1/plans", PLAN, key=tenant.key, headers={"Idempotency-Key": "t"})
    assert again.status == 201 and "idempotent-replayed" not in again.headers


def test_server_errors_are_not_stored_and_can_be_retried(probe_client: Client) -> None:
    FAILURES.update(left=1, calls=0)
    headers = {
        "Authorization": f"Bearer {PLATFORM_KEY}",
        "Content-Type": "application/json",
        "Idempotency-Key": "retry-me",
    }
    first = probe_client.http.post("/probe/idem", body='{"n": 1}', headers=headers)
    assert first.status_code == 503
    second = probe_client.http.post("/probe/idem", body='{"n": 1}', headers=headers)
    assert second.status_code == 201 and "Idempotent-Replayed" not in second.headers
    third = probe_client.http.post("/probe/idem", body='{"n": 1}', headers=headers)
    assert third.headers["Idempotent-Replayed"] == "true" and third.body == second.body
    assert FAILURES["calls"] == 2


def test_a_request_arriving_while_the_first_runs_gets_409(shared_env: Env) -> None:
    """The claim is one conditional put, so of two concurrent first requests exactly one wins
    (DynamoDB evaluates the condition atomically). The interleaving is replayed step by step:
    moto server does not make conditional writes atomic under concurrent threads (2 winners in
    ~1% of 8-thread races), so a threaded test would test moto rather than this code."""
    env = shared_env
    tenant = new_community(env)
    store = env.container.idempotency
    now = int(env.clock.now().timestamp())
    body = json.dumps(PLAN)
    fingerprint = request_fingerprint("POST", "/v1/plans", {}, body.encode())
    assert store.claim(tenant.id, "busy", fingerprint, now, 60, 86_400).outcome == "claimed"
    count = item_count()
    headers = {"Idempotency-Key": "busy"}
    busy = call(env, "POST", "/v1/plans", key=tenant.key, headers=headers, raw=body)
    assert (busy.status, busy.body["error"]["type"]) == (409, "conflict")
    assert "in progress" in busy.body["error"]["message"]
    other = call(env, "POST", "/v1/plans", {**PLAN, "name": "X"}, key=tenant.key, headers=headers)
    assert other.status == 409 and "another request" in other.body["error"]["message"]
    assert item_count() == count
    # The first request died without finishing: once its lock runs out a retry takes over.
    env.clock.advance(timedelta(seconds=61))
    taken = call(env, "POST", "/v1/plans", key=tenant.key, headers=headers, raw=body)
    assert taken.status == 201 and "idempotent-replayed" not in taken.headers
    again = call(env, "POST", "/v1/plans", key=tenant.key, headers=headers, raw=body)
    assert again.headers["idempotent-replayed"] == "true" and again.body == taken.body


def test_store_outcomes(shared_env: Env) -> None:
    store = IdempotencyStore(shared_env.container.dynamodb, shared_env.settings.table_name)
    now = int(shared_env.clock.now().timestamp())
    assert store.claim("com_s", "key", "hash", now, 60, 86_400).outcome == "claimed"
    assert store.claim("com_s", "key", "hash", now, 60, 86_400).outcome == "in_progress"
    assert store.claim("com_s", "key", "other", now, 60, 86_400).outcome == "mismatch"
    assert store.claim("com_other", "key", "hash", now, 60, 86_400).outcome == "claimed"
    store.complete("com_s", "key", "hash", StoredResponse(201, {"A": "b"}, "{}"))
    replay = store.claim("com_s", "key", "hash", now + 100, 60, 86_400)
    assert replay.outcome == "replay" and replay.response == StoredResponse(201, {"A": "b"}, "{}")
    assert store.claim("com_s", "key", "hash", now + 86_401, 60, 86_400).outcome == "claimed"
    store.release("com_s", "key", "hash")
    assert store.claim("com_s", "key", "new", now + 86_401, 60, 86_400).outcome == "claimed"
