"""Events to the platform on a real local stack with a real HTTP receiver (issue 13).

The whole `make demo` story runs with a receiver attached; afterwards the platform's access
list, rebuilt from the received `access.*` events alone, equals `GET /v1/profiles/{id}/access`
for every profile. Then: the local publisher delivers within 2 s; an outage is retried in
order; a wrong secret fails verification; redeliver sends one again. Own stack (the demo moves
the test clock by months), with the publisher loop and without the scheduler loop.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.demo import run_demo
from infra.local.stack import LocalStack, StackConfig, free_port
from receivers.billing_signature import verify_signature
from tests.support.receiver import Receiver, in_subject_order, rebuild_access

pytestmark = pytest.mark.e2e
PLATFORM_KEY = "events-platform-key"


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = StackConfig(
        billing_port=free_port(),
        webhook_port=free_port(),
        stripe_port=free_port(),
        moto_port=free_port(),
        platform_api_key=PLATFORM_KEY,
        webhook_secret="whsec_events",
        run_scheduler=False,
        log_dir=Path(tmp_path_factory.mktemp("events-stack-logs")),
    )
    with LocalStack(config) as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().up()
    yield running
    running.down()


def call(stack: LocalStack, method: str, path: str, key: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"{stack.config.api_url}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raise AssertionError((method, path, error.code, error.read())) from None


def every(stack: LocalStack, path: str, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        sep = "&" if "?" in path else "?"
        page = call(stack, "GET", f"{path}{sep}limit=100{cursor}", key)
        items += page["data"]
        if not page["has_more"]:
            return items
        cursor = f"&starting_after={page['next_cursor']}"


def register(stack: LocalStack, key: str, url: str) -> dict[str, Any]:
    body = {"url": url, "enabled_events": ["*"], "description": "e2e receiver"}
    endpoint: dict[str, Any] = call(stack, "POST", "/v1/webhook-endpoints", key, body)
    return endpoint


def wait_for(condition: Any, seconds: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s")
        time.sleep(0.05)
    return time.monotonic() - started


def test_the_demo_story_keeps_a_platform_access_list_in_sync_from_events_alone(
    own_stack: LocalStack, receiver: Receiver
) -> None:
    config = own_stack.config
    community: dict[str, str] = {}

    def attach(community_id: str, key: str) -> None:
        community.update(id=community_id, key=key)
        community["secret"] = register(own_stack, key, receiver.url)["secret"]

    run_demo(config.api_url, config.stripe_url, PLATFORM_KEY, lambda _: None, attach)
    key = community["key"]
    logged = every(own_stack, "/v1/events", key)
    wait_for(lambda: {e["id"] for e in receiver.events()} >= {e["id"] for e in logged}, 10)

    received = receiver.events()
    ids = [e["id"] for e in received]
    assert len(ids) == len(set(ids)), "every event arrives once"
    assert in_subject_order(received)
    for delivery in receiver.received:
        signature = delivery.headers["Billing-Signature"]
        assert verify_signature(delivery.raw, signature, community["secret"])
        assert not verify_signature(delivery.raw, signature, "whsec_not_the_secret")
    types = {e["type"] for e in received}
    assert {
        "subscription.activated",
        "subscription.renewed",
        "subscription.payment_failed",
        "subscription.cancelled",
        "subscription.expiring",
        "member.added",
        "payment.succeeded",
        "payment.failed",
        "access.granted",
        "access.revoked",
        "plan.created",
    } <= types

    rebuilt = rebuild_access(received)
    profiles = every(own_stack, "/v1/profiles", key)
    assert len(profiles) >= 4
    for profile in profiles:
        actual = call(own_stack, "GET", f"/v1/profiles/{profile['id']}/access", key)
        none = {"profile_id": profile["id"], "has_access": False, "reason": None}
        expected_default = {**none, "subscription_ids": []}
        assert rebuilt.get(profile["id"], expected_default) == actual, profile["name"]
    # the platform was told each revocation, and of the one membership paid back through a
    # pay-now link in the last chapter (the only access left when the story ends)
    assert any(not body["has_access"] for body in rebuilt.values())
    still_in = [body for body in rebuilt.values() if body["has_access"]]
    assert still_in and all(body["subscription_ids"] for body in still_in)


def test_local_delivery_is_within_2_s_survives_an_outage_in_order_and_redelivers(
    own_stack: LocalStack, receiver: Receiver
) -> None:
    created = call(own_stack, "POST", "/v1/communities", PLATFORM_KEY, {"name": "Outage Gym"})
    key = created["api_key"]["secret"]
    endpoint = register(own_stack, key, receiver.url)

    plan = call(own_stack, "POST", "/v1/plans", key, {"name": "Day pass", "prices": {"month": 900}})
    took = wait_for(lambda: plan["id"] in {e["subject_id"] for e in receiver.events()}, 2.0)
    assert took < 2.0

    receiver.down()
    call(own_stack, "PATCH", f"/v1/plans/{plan['id']}", key, {"name": "Day pass+"})
    call(own_stack, "PATCH", f"/v1/plans/{plan['id']}", key, {"name": "Day pass++"})
    call(own_stack, "POST", f"/v1/plans/{plan['id']}/archive", key)
    time.sleep(1.5)  # at least one delivery fails meanwhile
    receiver.up()
    wait_for(lambda: len(receiver.events()) >= 4, 20)
    received = receiver.events()
    assert [e["type"] for e in received] == [
        "plan.created",
        "plan.updated",
        "plan.updated",
        "plan.archived",
    ]
    assert len({e["id"] for e in received}) == 4 and in_subject_order(received)
    attempts = every(own_stack, f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", key)
    assert any(a["status"] == "failed" for a in attempts)

    archived = received[-1]
    answer = call(own_stack, "POST", f"/v1/events/{archived['id']}/redeliver", key)
    assert answer["deliveries"][0]["status"] == "succeeded"
    again = receiver.received[-1]
    assert again.event["id"] == archived["id"]
    assert verify_signature(again.raw, again.headers["Billing-Signature"], endpoint["secret"])
