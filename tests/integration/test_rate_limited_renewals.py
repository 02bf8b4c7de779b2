"""A 429 from Stripe is never a failed payment (issue 16): the real sweep and worker on moto
SQS, localstripe behind an HTTP layer that rate limits per account and answers 429.

The renewal Stripe refuses stays pending with its claim; the worker sends its message back to
the queue with a delay; when it comes back, the same charge (same idempotency key) goes
through: one PaymentIntent, no failed payment, the renewal a little later."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.dynamodb.rate_buckets import DynamoStripeBudget, window_key
from chalicelib.domain.rate_control import StripeLimits
from chalicelib.jobs import sweeps, worker
from chalicelib.jobs.local_runner import drain_work_queue
from tests.integration.conftest import Env
from tests.support.billing_api import Api, billing_env
from tests.support.localstripe import localstripe_url
from tests.support.stripe_rate_limiter import StripeRateLimiter, stripe_rate_limiter

__all__ = ["billing_env", "localstripe_url"]

CHARGES = (("POST", "/v1/payment_intents"),)
LIMITS = StripeLimits(endpoint_per_second=10, max_wait_seconds=1.0)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def limited(billing_env: Env, localstripe_url: str) -> Iterator[StripeRateLimiter]:
    with stripe_rate_limiter(localstripe_url, 10, limited_paths=CHARGES) as limiter:
        yield limiter


def scheduler_box(env: Env, limiter: StripeRateLimiter) -> bootstrap.Container:
    """The worker's container: Stripe behind the limiter, a real DynamoDB bucket."""
    box = bootstrap.Container(replace(env.settings, stripe_api_base=limiter.url), clock=env.clock)
    box.stripe_budget = DynamoStripeBudget(box.dynamodb, box.settings.table_name, LIMITS)
    return box


def drain_until_quiet(box: bootstrap.Container, seconds: float) -> dict[str, int]:
    """Drain the queue, again and again for `seconds` (a deferred message is delayed)."""
    outcomes: dict[str, int] = {}
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for name, value in drain_work_queue(box, worker.process_batch).items():
            outcomes[name] = outcomes.get(name, 0) + value
        if outcomes.get("renewed"):
            return outcomes
        time.sleep(0.2)
    return outcomes


def renewal_payments(api: Api, sub_id: str) -> list[dict[str, Any]]:
    return [p for p in api.payments(sub_id) if p["kind"] == "renewal"]


def test_a_renewal_stripe_answers_429_runs_later_once_and_never_fails(
    billing_env: Env, localstripe_url: str, limited: StripeRateLimiter
) -> None:
    api = Api(billing_env, localstripe_url).new(stripe_account_id="acct_rateRae")
    sub = api.active(api.plan(), api.customer("Rae"))
    billing_env.clock.advance_to(at(sub["current_period"]["end"]) + timedelta(minutes=1))
    box = scheduler_box(billing_env, limited)
    limited.forced_429 = 1  # admin traffic took the account's last token

    assert sweeps.sweep(box, ("renewal",)).sent == 1
    first = drain_work_queue(box, worker.process_batch)

    assert first == {worker.RATE_DEFERRED: 1}
    assert len(limited.refused["acct_rateRae"]) == 1
    [pending] = renewal_payments(api, sub["id"])
    assert pending["status"] == "pending"  # not failed: Stripe made nothing

    later = drain_until_quiet(box, 10.0)  # the message comes back after its delay

    assert later == {"renewed": 1}
    [payment] = renewal_payments(api, sub["id"])
    assert payment["id"] == pending["id"] and payment["status"] == "succeeded"
    assert len(api.intents_for(payment["id"])) == 1
    assert api.ok("GET", f"/v1/subscriptions/{sub['id']}")["status"] == "active"
    assert "payment.failed" not in api.events(sub["id"])


def test_a_429_lowers_the_accounts_share_for_every_worker(
    billing_env: Env, localstripe_url: str, limited: StripeRateLimiter
) -> None:
    api = Api(billing_env, localstripe_url).new(stripe_account_id="acct_rateSol")
    sub = api.active(api.plan(), api.customer("Sol"))
    billing_env.clock.advance_to(at(sub["current_period"]["end"]) + timedelta(minutes=1))
    box = scheduler_box(billing_env, limited)
    budget = box.stripe_budget
    assert isinstance(budget, DynamoStripeBudget)
    # Only Sol's charge: the clock moved a month on, so the first test's community renews too.
    limited.forced_429, limited.forced_429_account = 1, "acct_rateSol"

    sweeps.sweep(box, ("renewal",))
    window = LIMITS.window_of(time.time())
    first = drain_work_queue(box, worker.process_batch)
    assert first[worker.RATE_DEFERRED] >= 1
    assert len(limited.refused["acct_rateSol"]) == 1

    # The cut is in the table, where every worker's next grant reads it (the windows from the
    # sweep on: a loaded machine may take a few to get to the charge).
    caps = []
    for later in range(window, window + 30):
        item = box.dynamodb.get_item(
            TableName=box.settings.table_name, Key=window_key("acct_rateSol", later)
        ).get("Item")
        caps.append(int(item["cap"]["N"]) if item else None)
    assert LIMITS.decreased(LIMITS.max_tokens) in caps, caps
    cut_at = caps.index(LIMITS.decreased(LIMITS.max_tokens))
    assert LIMITS.max_tokens not in caps[cut_at:]
    if first["renewed"] < 2:
        assert drain_until_quiet(box, 10.0).get("renewed", 0) >= 1
    [payment] = [p for p in api.payments(sub["id"]) if p["kind"] == "renewal"]
    assert payment["status"] == "succeeded"
