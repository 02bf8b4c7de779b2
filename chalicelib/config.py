"""Settings, read from the environment when first asked for.

Chalice sets a stage's environment variables only while a request or invocation runs, so
nothing here is read at import time. Local stages (`local`, `test`) take secrets from the
environment; deployed stages read one JSON secret from Secrets Manager, cached per container.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LOCAL_STAGES = frozenset({"local", "test"})
SECRETS_CACHE_SECONDS = 300.0
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"  # `make run`'s API


@dataclass(frozen=True)
class Secrets:
    stripe_secret_key: str
    webhook_secrets: tuple[str, ...]
    platform_api_key: str

    @property
    def stripe_livemode(self) -> bool:
        """Whether our Stripe key is a live one: the mode of every object we make, and of
        every event we believe (docs/rules/money.md "What a Stripe event may claim")."""
        return self.stripe_secret_key.startswith(("sk_live_", "rk_live_"))


@dataclass(frozen=True)
class Settings:
    stage: str
    table_name: str
    work_queue_url: str
    aws_region: str
    aws_endpoint_url: str | None
    stripe_api_base: str | None
    secrets_arn: str | None
    test_clock_enabled: bool
    test_clock_start: datetime | None
    email_sender: str
    version: str
    due_index_shards: int
    # Per attempt, to connect and to read (adapters/stripe/client.py: well under the Lambda's).
    stripe_timeout_seconds: float = 5.0
    # EventBridge bus for platform events; "" = none (unit/integration tests).
    event_bus_name: str = ""
    # Where the public pay page is served (`<public_url>/pay/<token>`): the API's own base URL
    # (deployed: the custom domain or the API Gateway stage URL; unset there, no link is
    # issued rather than one pointing at localhost).
    public_url: str = DEFAULT_PUBLIC_URL
    # On-session charges (the pay page) use Stripe's manual confirmation, which
    # stripe.handleCardAction needs. localstripe refuses the parameter (its Stripe.js stand-in
    # completes the intent itself), so it is off by default where STRIPE_API_BASE is set.
    stripe_manual_confirmation: bool = True
    # Threads a test-clock step runs its due actions on. 1 by default: in-process moto (the
    # tests) is not thread-safe; the local stack's moto server serializes its requests and
    # runs 8, as the deployed worker's concurrent invocations would.
    test_clock_concurrency: int = 1
    # The local stack's moto server checks each request against the model as it parses it:
    # there, botocore's own check before sending is CPU spent twice (a fifth of the API
    # process's under a test-clock advance). Honoured only with an AWS_ENDPOINT_URL, never
    # against AWS; the tests keep the check (it names a malformed request of ours precisely).
    # (Requests stay signed: moto's server finds the service from the signature's scope.)
    lean_aws_client: bool = False

    @property
    def is_local(self) -> bool:
        return self.stage in LOCAL_STAGES

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        source = os.environ if env is None else env
        stage = source.get("BILLING_STAGE", "local")
        return cls(
            stage=stage,
            table_name=source.get("BILLING_TABLE_NAME", f"membership-billing-{stage}"),
            work_queue_url=source.get("BILLING_WORK_QUEUE_URL", ""),
            aws_region=source.get("AWS_DEFAULT_REGION", source.get("AWS_REGION", "us-east-1")),
            aws_endpoint_url=source.get("AWS_ENDPOINT_URL") or None,
            stripe_api_base=source.get("STRIPE_API_BASE") or None,
            secrets_arn=source.get("BILLING_SECRETS_ARN") or None,
            test_clock_enabled=_truthy(source.get("BILLING_TEST_CLOCK", "")),
            test_clock_start=_instant(source.get("BILLING_TEST_CLOCK_START", "")),
            email_sender=source.get("BILLING_EMAIL_SENDER", "billing@example.com"),
            version=source.get("BILLING_VERSION", "0.1.0"),
            due_index_shards=int(source.get("BILLING_DUE_INDEX_SHARDS", "16")),
            stripe_timeout_seconds=float(source.get("STRIPE_TIMEOUT_SECONDS", "5")),
            event_bus_name=source.get("BILLING_EVENT_BUS_NAME", ""),
            public_url=source.get("BILLING_PUBLIC_URL")
            or (DEFAULT_PUBLIC_URL if stage in LOCAL_STAGES else ""),
            test_clock_concurrency=max(1, int(source.get("BILLING_TEST_CLOCK_CONCURRENCY", "1"))),
            lean_aws_client=_truthy(source.get("BILLING_LEAN_AWS_CLIENT", "")),
            stripe_manual_confirmation=_truthy(
                source.get(
                    "STRIPE_MANUAL_CONFIRMATION",
                    "false" if source.get("STRIPE_API_BASE") else "true",
                )
            ),
        )


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _instant(value: str) -> datetime | None:
    """An RFC 3339 instant (`2026-01-31T12:00:00Z`) in UTC; a missing offset means UTC."""
    text = value.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"BILLING_TEST_CLOCK_START={value!r} is not an RFC 3339 time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def secrets_from_env(env: dict[str, str] | None = None) -> Secrets:
    source = os.environ if env is None else env
    webhook = source.get("STRIPE_WEBHOOK_SECRET", "whsec_local")
    previous = source.get("STRIPE_WEBHOOK_SECRET_PREVIOUS", "")
    return Secrets(
        stripe_secret_key=source.get("STRIPE_SECRET_KEY", "sk_test_local"),
        webhook_secrets=tuple(s for s in (webhook, previous) if s),
        platform_api_key=source.get("BILLING_PLATFORM_API_KEY", "local-platform-key"),
    )


def secrets_from_json(raw: str) -> Secrets:
    """The deployed secret: {"stripe_secret_key", "webhook_secrets": [..], "platform_api_key"}."""
    data: dict[str, Any] = json.loads(raw)
    webhook = data.get("webhook_secrets") or []
    if isinstance(webhook, str):
        webhook = [w for w in webhook.split(",") if w]
    return Secrets(
        stripe_secret_key=str(data["stripe_secret_key"]),
        webhook_secrets=tuple(str(w) for w in webhook),
        platform_api_key=str(data["platform_api_key"]),
    )
