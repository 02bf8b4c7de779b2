"""Bad input never gets a 500 (API.md, Conventions): every malformed request answers the error
envelope `{"error": {"type", "message", "details"}}` with a 4xx, and nothing half-stored."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from chalice import Blueprint, Chalice
from chalice.test import Client

from chalicelib import bootstrap
from chalicelib.adapters.clock import StoredTestClock
from chalicelib.api import auth
from chalicelib.api.blueprints import http_blueprints
from chalicelib.api.models import RequestModel
from chalicelib.api.routing import ROUTES, ApiResponse, Auth, RequestContext, RouteSpec, route
from chalicelib.domain.errors import ChargeInProgress, ConcurrentChange, Conflict
from tests.integration.admin_helpers import Reply, call, item_count, new_community, shared_env
from tests.integration.conftest import PLATFORM_KEY, START, TABLE_NAME, Env
from tests.support import stripe_events as se
from tests.support.moto_clients import moto_client

__all__ = ["shared_env"]

WEBHOOK_SECRET = "whsec_integration"
NESTED = b"[" * 3000


def _all_routes() -> list[RouteSpec]:
    http_blueprints()  # imports every route module, which fills ROUTES

    return sorted(
        (s for s in ROUTES if not s.path.startswith("/probe/")), key=lambda s: (s.path, s.method)
    )


def _assert_envelope(reply: Reply, status: int) -> None:
    assert reply.status == status, reply.body
    error = reply.body["error"]
    assert isinstance(error["type"], str) and isinstance(error["message"], str)
    assert isinstance(error["details"], list)


def _post_webhook(env: Env, body: bytes) -> Reply:
    response = env.client.http.post(
        "/webhooks/stripe", body=body, headers=se.signed_headers(body, WEBHOOK_SECRET)
    )
    text = response.body.decode() if isinstance(response.body, bytes) else response.body
    return Reply(response.status_code, json.loads(text) if text else None, {})


def test_deeply_nested_json_is_a_400_on_every_route(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    routes = _all_routes()
    assert len(routes) >= 30
    checked = 0
    for spec in routes:
        path = spec.path
        for name in spec.path_params:
            path = path.replace("{" + name + "}", tenant.id if name == "community_id" else "x_1")
        key = tenant.key if spec.auth is Auth.COMMUNITY else PLATFORM_KEY
        before = item_count()
        reply = call(env, spec.method, path, key=key, raw=NESTED)
        assert reply.status < 500, (spec.method, spec.path, reply.body)
        if spec.path == "/webhooks/stripe" or spec.body is not None or spec.auth is not Auth.NONE:
            # Every route that reads a body refuses this one as a 400 before doing anything.
            _assert_envelope(reply, 400)
            assert item_count() == before, spec.path
            checked += 1
    assert checked >= len(routes) - 3  # all but the anonymous GETs (healthz, openapi)


def test_an_unknown_query_parameter_is_a_400_naming_it_on_every_route(shared_env: Env) -> None:
    """A filter a route does not have (`?profile_id=` on a list without it, a typo) is refused
    by name, never ignored: an ignored filter answers more than was asked for."""
    env = shared_env
    tenant = new_community(env)
    checked = 0
    for spec in _all_routes():
        if spec.auth is Auth.NONE:
            continue
        path = spec.path
        for name in spec.path_params:
            path = path.replace("{" + name + "}", tenant.id if name == "community_id" else "x_1")
        key = tenant.key if spec.auth is Auth.COMMUNITY else PLATFORM_KEY
        before = item_count()
        reply = call(env, spec.method, f"{path}?profile_idd=prof_1", {}, key=key)
        _assert_envelope(reply, 400)
        assert "profile_idd" in [d["field"] for d in reply.body["error"]["details"]], spec.path
        assert item_count() == before, spec.path
        checked += 1
    assert checked >= 40


def test_a_signed_deeply_nested_webhook_is_a_400(shared_env: Env) -> None:
    reply = _post_webhook(shared_env, NESTED)
    _assert_envelope(reply, 400)
    nested_object = b'{"id": "evt_deep", "type": "x", "data": {"object": ' + NESTED + b"}}"
    _assert_envelope(_post_webhook(shared_env, nested_object), 400)


@pytest.mark.parametrize("content_type", ["image/png", "application/vnd.custom+json", "foo/bar"])
def test_an_unsupported_content_type_is_a_400_envelope(shared_env: Env, content_type: str) -> None:
    env = shared_env
    tenant = new_community(env)
    reply = call(
        env,
        "POST",
        "/v1/plans",
        key=tenant.key,
        headers={"Content-Type": content_type},
        raw=b"\x89PNG\r\n",
    )
    _assert_envelope(reply, 400)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_json_sent_as_another_content_type_is_a_400_and_changes_nothing(
    shared_env: Env, content_type: str
) -> None:
    """API.md: a wrong content type is a 400, even when the body parses as JSON (curl -d
    without a Content-Type sends form-urlencoded)."""
    env = shared_env
    tenant = new_community(env)
    body = b'{"name": "Gold", "prices": {"month": 1000}}'
    reply = call(
        env, "POST", "/v1/plans", key=tenant.key, headers={"Content-Type": content_type}, raw=body
    )
    _assert_envelope(reply, 400)
    assert content_type in reply.body["error"]["details"][0]["message"]
    assert call(env, "GET", "/v1/plans", key=tenant.key).body["data"] == []
    for accepted in ("application/json; charset=utf-8", "application/merge-patch+json"):
        reply = call(
            env, "POST", "/v1/plans", key=tenant.key, headers={"Content-Type": accepted}, raw=body
        )
        assert reply.status == 201, (accepted, reply.body)


def _incompressible(size: int) -> str:
    return base64.b64encode(os.urandom(size)).decode()


def test_a_signed_webhook_too_large_to_store_is_a_400(shared_env: Env) -> None:
    env = shared_env
    payload = se.event("customer.updated", {"id": "cus_big", "blob": _incompressible(600_000)})
    before = item_count()
    reply = _post_webhook(env, se.body_of(payload))
    _assert_envelope(reply, 400)
    assert item_count() == before
    # One that fits (compressible, far over the inline limit) is still taken.
    fits = se.event("customer.updated", {"id": "cus_fits", "blob": "a" * 600_000})
    assert _post_webhook(env, se.body_of(fits)).status == 200


@pytest.mark.parametrize("field_name", ["id", "type", "account"])
def test_a_signed_webhook_with_ids_too_long_to_store_is_a_400(
    shared_env: Env, field_name: str
) -> None:
    env = shared_env
    payload = se.event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"})
    payload[field_name] = ("evt_" if field_name == "id" else "x") + "y" * 2100
    before = item_count()
    reply = _post_webhook(env, se.body_of(payload))
    _assert_envelope(reply, 400)
    assert reply.body["error"]["details"][0]["field"] == field_name
    assert item_count() == before


@pytest.fixture
def stored_clock(shared_env: Env) -> Iterator[Env]:
    """The app with the stored test clock (as on the local stack), wall time pinned."""
    env = shared_env
    wall = {"now": START}
    clock = StoredTestClock(
        moto_client("dynamodb", region_name="us-east-1"), TABLE_NAME, wall=lambda: wall["now"]
    )
    from dataclasses import replace

    box = bootstrap.Container(replace(env.settings, test_clock_enabled=True), clock=clock)
    bootstrap.override_container(box)
    try:
        yield env
    finally:
        bootstrap.override_container(env.container)


def _advance(env: Env, body: dict[str, Any]) -> Reply:
    return call(env, "POST", "/v1/test-clock/advance", body)


def test_a_test_clock_target_beyond_the_horizon_is_a_400_and_the_clock_stays_usable(
    stored_clock: Env,
) -> None:
    env = stored_clock
    before = call(env, "GET", "/v1/test-clock").body["now"]
    for body in (
        {"to": "9999-12-31T23:59:59Z"},
        {"to": "9999-12-31T23:59:59-14:00"},  # past year 9999 once in UTC
        {"to": "0001-01-01T00:00:00+14:00"},  # before year 1 once in UTC
        {"to": "2200-01-01T00:00:00Z"},
        {"seconds": 3660 * 86400},
    ):
        reply = _advance(env, body)
        if "seconds" in body:
            assert reply.status == 200  # ten years from 2026 is inside the horizon
            continue
        _assert_envelope(reply, 400)
        assert reply.body["error"]["details"][0]["field"] == "to"
    after_ten_years = call(env, "GET", "/v1/test-clock").body["now"]
    assert after_ten_years > before
    # Right below the horizon, `days` that would cross it are refused; the clock stays usable.
    assert _advance(env, {"to": "2199-06-01T00:00:00Z"}).status == 200
    refused = _advance(env, {"days": 3660})
    _assert_envelope(refused, 400)
    assert refused.body["error"]["details"][0]["field"] == "days"
    assert call(env, "GET", "/v1/test-clock").body["now"] == "2199-06-01T00:00:00Z"
    assert _advance(env, {"days": 100}).body["now"] == "2199-09-09T00:00:00Z"
    _assert_envelope(_advance(env, {"seconds": 200 * 86400}), 400)
    assert datetime.fromisoformat(call(env, "GET", "/v1/test-clock").body["now"]) < datetime(
        2200, 1, 1, tzinfo=UTC
    )


# A probe app with the real route mechanism: a handler that loses a race a set number of times.
probe = Blueprint(__name__)
RACES = {"left": 0, "calls": 0}
RACE_LOST_WITH: list[Conflict] = [ConcurrentChange("The object was changed concurrently; retry.")]


class Ping(RequestModel):
    n: int


@route(probe, "/probe/retryable", "POST", auth=Auth.PLATFORM, body=Ping, summary="p", tag="p")
def retryable_probe(ctx: RequestContext, body: Ping) -> ApiResponse:
    RACES["calls"] += 1
    if RACES["left"] > 0:
        RACES["left"] -= 1
        raise RACE_LOST_WITH[0]
    return ApiResponse(body={"n": body.n, "calls": RACES["calls"]}, status=201)


ROUTES[:] = [spec for spec in ROUTES if not spec.path.startswith("/probe/")]
probe_app = Chalice(app_name="retryable-probe")
probe_app.register_blueprint(auth.blueprint)
probe_app.register_blueprint(probe)


@pytest.mark.parametrize(
    "refusal",
    [
        ConcurrentChange("The object was changed concurrently; retry."),
        # A charge of the subscription waits for Stripe (found by an outside probe: it was kept
        # as the key's answer and replayed for 24 h).
        ChargeInProgress("Payment pay_1 is in progress; try again shortly."),
    ],
)
def test_a_retryable_409_is_not_kept_as_the_keys_answer(shared_env: Env, refusal: Conflict) -> None:
    RACES.update(left=1, calls=0)
    RACE_LOST_WITH[0] = refusal
    headers = {
        "Authorization": f"Bearer {PLATFORM_KEY}",
        "Content-Type": "application/json",
        "Idempotency-Key": f"lost-a-race-{type(refusal).__name__}",
    }
    with Client(probe_app) as client:
        first = client.http.post("/probe/retryable", headers=headers, body='{"n": 1}')
        assert first.status_code == 409
        assert first.headers.get("Retry-After") == "1"
        second = client.http.post("/probe/retryable", headers=headers, body='{"n": 1}')
        assert second.status_code == 201, second.body
        assert json.loads(second.body) == {"n": 1, "calls": 2}
        third = client.http.post("/probe/retryable", headers=headers, body='{"n": 1}')
        assert third.status_code == 201
        assert third.headers["Idempotent-Replayed"] == "true"
    assert RACES["calls"] == 2
