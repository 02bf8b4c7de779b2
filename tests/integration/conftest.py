"""Integration fixtures: moto in-process, the shared table definition, chalice's test client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib import bootstrap
from chalicelib.adapters.aws import reset_clients
from chalicelib.adapters.clock import FixedClock
from chalicelib.adapters.dynamodb.schema import ensure_table
from chalicelib.adapters.queues import ensure_queues
from chalicelib.config import Settings
from tests.support.clock_start import clock_start, parse_instant

PLATFORM_KEY = "test-platform-key"
TABLE_NAME = "membership-billing-test"
# Where the FixedClock starts: BILLING_TEST_CLOCK_START, else 2026-01-15T12:00:00Z (see
# tests/support/clock_start.py). A test about one date says so: @pytest.mark.clock_start("...").
START = clock_start()


@dataclass
class Env:
    client: Client
    container: bootstrap.Container
    clock: FixedClock
    settings: Settings

    def platform_headers(self, **extra: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {PLATFORM_KEY}",
            "Content-Type": "application/json",
            **extra,
        }


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        reset_clients()
        from tests.support.moto_clients import moto_client

        ensure_table(moto_client("dynamodb", region_name="us-east-1"), TABLE_NAME)
        queues = ensure_queues(moto_client("sqs", region_name="us-east-1"), "test")
        yield queues
    reset_clients()


def start_for(request: pytest.FixtureRequest) -> datetime:
    marker = request.node.get_closest_marker("clock_start")
    return parse_instant(marker.args[0]) if marker else START


@pytest.fixture
def env(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Env]:
    values: dict[str, Any] = {
        "BILLING_STAGE": "test",
        "BILLING_TABLE_NAME": TABLE_NAME,
        "BILLING_WORK_QUEUE_URL": aws["work_queue_url"],
        "BILLING_PLATFORM_API_KEY": PLATFORM_KEY,
        "STRIPE_SECRET_KEY": "sk_test_integration",
        "STRIPE_WEBHOOK_SECRET": "whsec_integration",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    clock = FixedClock(start_for(request))
    container = bootstrap.Container(settings, clock=clock)
    bootstrap.override_container(container)
    from app import app

    with Client(app) as client:
        yield Env(client=client, container=container, clock=clock, settings=settings)
    bootstrap.override_container(None)


@contextmanager
def moto_app_env(stripe_api_base: str, email_sender: str | None = None) -> Iterator[Env]:
    """The app on a fresh in-process moto (table, queues, optional SES sender) with the chalice
    test client and a FixedClock; for fixtures wider than one test (module scope)."""
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        reset_clients()
        from tests.support.moto_clients import moto_client

        ensure_table(moto_client("dynamodb", region_name="us-east-1"), TABLE_NAME)
        queues = ensure_queues(moto_client("sqs", region_name="us-east-1"), "test")
        values = {
            "BILLING_STAGE": "test",
            "BILLING_TABLE_NAME": TABLE_NAME,
            "BILLING_WORK_QUEUE_URL": queues["work_queue_url"],
            "BILLING_PLATFORM_API_KEY": PLATFORM_KEY,
            "STRIPE_SECRET_KEY": "sk_test_integration",
            "STRIPE_WEBHOOK_SECRET": "whsec_integration",
            "STRIPE_API_BASE": stripe_api_base,
        }
        if email_sender is not None:
            ses = moto_client("ses", region_name="us-east-1")
            ses.verify_email_identity(EmailAddress=email_sender)
            values["BILLING_EMAIL_SENDER"] = email_sender
        for key, value in values.items():
            patch.setenv(key, value)
        settings = Settings.from_env()
        clock = FixedClock(START)
        container = bootstrap.Container(settings, clock=clock)
        bootstrap.override_container(container)
        from app import app

        try:
            with Client(app) as client:
                yield Env(client=client, container=container, clock=clock, settings=settings)
        finally:
            bootstrap.override_container(None)
            reset_clients()


@pytest.fixture(autouse=True)
def _default_scheduled_jobs() -> Iterator[None]:
    """Tests that install other scheduled jobs (registry.override_jobs) leave the real ones."""
    from chalicelib.jobs.registry import override_jobs

    yield
    override_jobs(None)


def stored_idempotency_items() -> list[dict[str, Any]]:
    """Every idempotency record in the shared table, as DynamoDB holds it."""
    from tests.support.moto_clients import moto_client

    client = moto_client("dynamodb", region_name="us-east-1")
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": TABLE_NAME,
        "FilterExpression": "#t = :idem",
        "ExpressionAttributeNames": {"#t": "type"},
        "ExpressionAttributeValues": {":idem": {"S": "idempotency"}},
    }
    while True:
        page = client.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
