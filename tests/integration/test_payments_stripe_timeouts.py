"""A hung Stripe ends as a 503 with the payment pending, well inside the Lambda timeout
(issue 11 item 15)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from chalicelib import bootstrap
from chalicelib.adapters.stripe.client import stripe_client, worst_case_call_seconds
from chalicelib.config import Settings
from tests.integration.conftest import Env
from tests.support.billing_api import Api, billing_env
from tests.support.localstripe import localstripe_url
from tests.support.stripe_cutoff import stripe_cutoff

__all__ = ["billing_env", "localstripe_url"]

CHALICE_CONFIG = Path(__file__).resolve().parents[2] / ".chalice" / "config.json"
# A test must finish even when the code under test would hang: this bounds it.
TEST_BOUND_SECONDS = 20.0
SHORT_TIMEOUT_SECONDS = 0.5


def lambda_timeouts() -> list[int]:
    config = json.loads(CHALICE_CONFIG.read_text())
    stages = config.get("stages", {}).values()
    return [int(config["lambda_timeout"])] + [
        int(stage["lambda_timeout"]) for stage in stages if "lambda_timeout" in stage
    ]


def test_the_stripe_client_as_configured_gives_up_well_inside_the_lambda_timeout() -> None:
    settings = Settings.from_env({"BILLING_STAGE": "prod"})
    client = stripe_client(settings, "sk_test_budget")
    http_timeout = client._requestor._client._timeout
    retries = client._requestor._options.max_network_retries
    per_attempt = max(http_timeout) if isinstance(http_timeout, tuple) else http_timeout
    worst = worst_case_call_seconds(per_attempt, retries)
    # One request may make two Stripe calls after the first one answered (a charge, then
    # cancelling its PaymentIntent); both must fit, with room for DynamoDB and the cold start.
    assert 2 * worst <= min(lambda_timeouts()) - 5, (per_attempt, retries, worst)


def call_bounded(action: Any) -> tuple[Any, float]:
    """Run `action` in a thread; fail (instead of hanging) if it outlives TEST_BOUND_SECONDS."""
    result: dict[str, Any] = {}

    def run() -> None:
        result["value"] = action()

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TEST_BOUND_SECONDS)
    elapsed = time.monotonic() - started
    assert not thread.is_alive(), f"still waiting for Stripe after {elapsed:.1f} s"
    return result["value"], elapsed


def test_a_hung_stripe_ends_as_503_with_the_payment_pending(
    billing_env: Env, localstripe_url: str
) -> None:
    api = Api(billing_env, localstripe_url).new()
    plan = api.plan()
    sub = api.subscription(plan, api.customer("Hal"))
    with stripe_cutoff(localstripe_url) as hung:
        settings = replace(
            billing_env.settings,
            stripe_api_base=hung.url,
            stripe_timeout_seconds=SHORT_TIMEOUT_SECONDS,
        )
        bootstrap.override_container(bootstrap.Container(settings, clock=billing_env.clock))
        try:
            hung.hang_next("POST", "/v1/payment_intents", times=5)
            reply, elapsed = call_bounded(
                lambda: api.call("POST", f"/v1/subscriptions/{sub['id']}/activate", {})
            )
        finally:
            bootstrap.override_container(billing_env.container)
    assert reply.status == 503, reply.body
    assert reply.body["error"]["type"] == "unavailable"
    assert elapsed < worst_case_call_seconds(SHORT_TIMEOUT_SECONDS) + 5
    [payment] = api.payments(sub["id"])
    assert payment["status"] == "pending"
    assert api.ok("GET", f"/v1/subscriptions/{sub['id']}")["status"] == "inactive"
