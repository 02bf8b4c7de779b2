"""DynamoDB requests of every state change in a lifecycle, through the HTTP API.

Run by bench_events.py twice, once with this branch's code on PYTHONPATH and once with another
tree's (main), so "requests added by the outbox" is a measured difference, not a claim. Uses
only routes both trees serve. Prints one JSON object: {step: {operation: count}}.

    PYTHONPATH=<tree> python bench/event_request_counts.py <localstripe url>
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from datetime import UTC, datetime
from typing import Any


def main(stripe_url: str) -> int:
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106
        AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_LOG_LEVEL="ERROR",
        BILLING_STAGE="test",
        BILLING_TABLE_NAME="membership-billing-bench-events",
        BILLING_PLATFORM_API_KEY="bench-platform-key",
        STRIPE_SECRET_KEY="sk_test_bench",  # noqa: S106
        STRIPE_WEBHOOK_SECRET="whsec_bench",  # noqa: S106
        STRIPE_API_BASE=stripe_url,
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    import stripe
    from chalice.test import Client
    from moto import mock_aws

    from chalicelib import bootstrap
    from chalicelib.adapters.aws import reset_clients
    from chalicelib.adapters.clock import FixedClock
    from chalicelib.adapters.dynamodb.schema import ensure_table
    from chalicelib.config import Settings

    counts: dict[str, dict[str, int]] = {}
    with mock_aws():
        reset_clients()
        settings = Settings.from_env()
        container = bootstrap.Container(
            settings, clock=FixedClock(datetime(2026, 1, 15, tzinfo=UTC))
        )
        ensure_table(container.dynamodb, settings.table_name)
        bootstrap.override_container(container)
        ops: Counter[str] = Counter()

        def count(model: Any, **_: Any) -> None:
            ops[model.name] += 1

        container.dynamodb.meta.events.register("before-call.dynamodb.*", count)
        from app import app

        with Client(app) as client:

            def call(method: str, path: str, key: str, body: Any = None) -> Any:
                response = getattr(client.http, method)(
                    path,
                    body=json.dumps(body) if body is not None else None,
                    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                )
                assert response.status_code in (200, 201), (path, response.body)
                return json.loads(response.body)

            def step(name: str, method: str, path: str, key: str, body: Any = None) -> Any:
                ops.clear()
                answer = call(method, path, key, body)
                counts[name] = dict(sorted(ops.items()))
                return answer

            created = call("post", "/v1/communities", "bench-platform-key", {"name": "Bench"})
            key = created["api_key"]["secret"]
            plan = step(
                "plan_create",
                "post",
                "/v1/plans",
                key,
                {"name": "Gold", "prices": {"month": 3000}, "activation_fee": 500},
            )
            step("plan_update", "patch", f"/v1/plans/{plan['id']}", key, {"name": "Gold+"})
            owner = call(
                "post",
                "/v1/profiles",
                key,
                {"kind": "customer", "name": "Ada", "email": "ada@example.com"},
            )
            kid = call(
                "post",
                "/v1/profiles",
                key,
                {"kind": "dependent", "name": "Kim", "account_holder_id": owner["id"]},
            )
            gateway = stripe.StripeClient("sk_test_x", base_addresses={"api": stripe_url})
            method = gateway.v1.payment_methods.create(
                params={
                    "type": "card",
                    "card": {
                        "number": "4242424242424242",
                        "exp_month": 12,
                        "exp_year": 2034,
                        "cvc": "123",
                    },
                }
            )
            call(
                "post",
                f"/v1/profiles/{owner['id']}/payment-methods",
                key,
                {"stripe_payment_method_id": method.id},
            )
            sub = step(
                "subscription_create",
                "post",
                "/v1/subscriptions",
                key,
                {
                    "plan_id": plan["id"],
                    "owner_id": owner["id"],
                    "member_ids": [owner["id"]],
                    "billing_cycle": "month",
                    "payment_method_id": method.id,
                },
            )
            base = f"/v1/subscriptions/{sub['id']}"
            step("subscription_activate", "post", f"{base}/activate", key)
            step(
                "member_add_waived",
                "post",
                f"{base}/members",
                key,
                {"members": [{"profile_id": kid["id"], "activation_fee": "waive"}]},
            )
            step(
                "member_remove_period_end",
                "delete",
                f"{base}/members/{kid['id']}?at=period_end",
                key,
            )
            step(
                "subscription_cancel_period_end",
                "post",
                f"{base}/cancel",
                key,
                {"at": "period_end"},
            )
            step("subscription_resume", "post", f"{base}/resume", key)
            step("subscription_cancel_now", "post", f"{base}/cancel", key, {"at": "now"})
        bootstrap.override_container(None)
    print(json.dumps(counts, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
