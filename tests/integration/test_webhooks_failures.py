"""Transient AWS failures: 5xx so Stripe retries, the event kept as failed, the retry (or a
replay) succeeds. Failures are injected at the AWS boundary with a botocore event hook on the
DynamoDB client (raising what botocore raises once its own retries are spent)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from tests.integration.conftest import Env
from tests.support import stripe_events as se
from tests.support.webhook_flow import throttled_once

SECRET = "whsec_integration"


def deliver(env: Env, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    body = se.body_of(payload)
    response = env.client.http.post(
        "/webhooks/stripe", body=body, headers=se.signed_headers(body, SECRET)
    )
    return response.status_code, json.loads(response.body)


def event_view(env: Env, event_id: str) -> dict[str, Any]:
    response = env.client.http.get("/v1/webhook-events?limit=100", headers=env.platform_headers())
    [found] = [e for e in json.loads(response.body)["data"] if e["id"] == event_id]
    return found


def test_a_throttled_write_is_503_kept_as_failed_and_the_redelivery_succeeds(env: Env) -> None:
    payload = se.event("customer.created", {"id": "cus_t1", "object": "customer"})
    with throttled_once(env.container.dynamodb, "PutItem") as fired:
        status, body = deliver(env, payload)
    assert fired == ["PutItem"]
    assert status == 503
    assert body["error"]["type"] == "unavailable"
    failed = event_view(env, payload["id"])
    assert failed["status"] == "failed"
    assert "transient" in failed["error"]
    failed_list = env.client.http.get(
        "/v1/webhook-events?status=failed", headers=env.platform_headers()
    )
    assert [e["id"] for e in json.loads(failed_list.body)["data"]] == [payload["id"]]

    status, body = deliver(env, payload)  # Stripe's redelivery
    assert (status, body["result"]) == (200, "ignored")
    assert event_view(env, payload["id"])["status"] == "ignored"
    status, body = deliver(env, payload)
    assert (status, body["result"]) == (200, "duplicate")


def test_a_failed_event_is_replayed_through_the_platform_route(env: Env) -> None:
    payload = se.event("invoice.paid", {"id": "in_1", "object": "invoice"})
    with throttled_once(env.container.dynamodb, "PutItem"):
        assert deliver(env, payload)[0] == 503
    response = env.client.http.post(
        f"/v1/webhook-events/{payload['id']}/replay", headers=env.platform_headers()
    )
    assert response.status_code == 200, response.body
    replayed = json.loads(response.body)
    assert replayed["status"] == "ignored"
    assert replayed["error"] == "event type invoice.paid is not handled"
    assert deliver(env, payload)[1]["result"] == "duplicate"


def test_a_replay_that_fails_transiently_again_is_503_and_stays_failed(env: Env) -> None:
    payload = se.event("invoice.paid", {"id": "in_2", "object": "invoice"})
    with throttled_once(env.container.dynamodb, "PutItem"):
        assert deliver(env, payload)[0] == 503
    with throttled_once(env.container.dynamodb, "PutItem"):
        response = env.client.http.post(
            f"/v1/webhook-events/{payload['id']}/replay", headers=env.platform_headers()
        )
    assert response.status_code == 503
    assert event_view(env, payload["id"])["status"] == "failed"


def test_when_even_the_failure_cannot_be_stored_the_answer_is_still_503(env: Env) -> None:
    payload = se.event("customer.created", {"id": "cus_t2"})
    client = env.container.dynamodb

    def always(**_kwargs: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "PutItem"
        )

    client.meta.events.register("before-call.dynamodb.PutItem", always, unique_id="always")
    try:
        status, _ = deliver(env, payload)
    finally:
        client.meta.events.unregister("before-call.dynamodb.PutItem", unique_id="always")
    assert status == 503
    assert deliver(env, payload)[1]["result"] == "ignored"
