"""The same event delivered 5 times at once has exactly one effect.

Real concurrency needs a DynamoDB that applies each request atomically, as DynamoDB does:
in-process moto does not (a transaction backs up and restores whole tables, so two concurrent
transactions can undo each other). Here moto runs as a server handling one request at a time,
while five threads deliver the event through the HTTP route in parallel. (The chalice test
client keeps one `current_request` per app, so parallel requests may see each other's request
object; all five are byte-identical here, so that cannot change the outcome.)
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from chalice.test import Client
from werkzeug.serving import make_server

from chalicelib import bootstrap
from chalicelib.adapters.aws import reset_clients
from chalicelib.adapters.clock import FixedClock
from chalicelib.adapters.dynamodb.schema import ensure_table
from chalicelib.config import Settings
from infra.local.stack import free_port
from tests.integration.conftest import PLATFORM_KEY, Env
from tests.support import stripe_events as se
from tests.support.localstripe import localstripe_url
from tests.support.stripe_cutoff import stripe_cutoff
from tests.support.webhook_flow import Billing

__all__ = ["localstripe_url"]
DELIVERIES = 5


@pytest.fixture
def moto_serial(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server that serves one request at a time (DynamoDB's per-request atomicity)."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    app = DomainDispatcherApplication(create_backend_app)
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=False, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        reset_clients()


@pytest.fixture
def served_billing(
    moto_serial: str, localstripe_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Billing]:
    values = {
        "BILLING_STAGE": "test",
        "BILLING_TABLE_NAME": "webhook-concurrency",
        "BILLING_PLATFORM_API_KEY": PLATFORM_KEY,
        "STRIPE_SECRET_KEY": "sk_test_integration",
        "STRIPE_WEBHOOK_SECRET": "whsec_integration",
        "AWS_ENDPOINT_URL": moto_serial,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    with stripe_cutoff(localstripe_url) as cutoff:
        monkeypatch.setenv("STRIPE_API_BASE", cutoff.url)
        settings = Settings.from_env()
        clock = FixedClock(datetime(2026, 1, 15, 12, tzinfo=UTC))
        container = bootstrap.Container(settings, clock=clock)
        ensure_table(container.dynamodb, settings.table_name)
        bootstrap.override_container(container)
        from app import app

        try:
            with Client(app) as client:
                yield Billing(Env(client, container, clock, settings), cutoff)
        finally:
            bootstrap.override_container(None)


def test_five_concurrent_deliveries_of_one_event_have_one_effect(
    served_billing: Billing,
) -> None:
    billing = served_billing
    pending = billing.pending()
    before = billing.subscription(pending)
    audit_before = len(billing.audit(pending))
    event = pending.succeeded_event
    body = se.body_of(event)
    start = threading.Barrier(DELIVERIES)
    answers: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def deliver() -> None:
        start.wait()
        response = billing.env.client.http.post(
            "/webhooks/stripe", body=body, headers=se.signed_headers(body, "whsec_integration")
        )
        with lock:
            answers.append((response.status_code, json.loads(response.body)))

    threads = [threading.Thread(target=deliver) for _ in range(DELIVERIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert {status for status, _ in answers} == {200}, answers
    results = Counter(answer["result"] for _, answer in answers)
    assert results == Counter({"processed": 1, "duplicate": DELIVERIES - 1}), answers

    after = billing.subscription(pending)
    assert after["status"] == "active"
    assert after["version"] > before["version"]
    payment = billing.payment(pending)
    assert (payment["status"], payment["amount_paid"]) == ("succeeded", 2500)
    new_audit = billing.audit(pending)[: len(billing.audit(pending)) - audit_before]
    assert len(billing.audit(pending)) - audit_before == 1, new_audit
    # One stored event, processed.
    listed = json.loads(
        billing.env.client.http.get(
            "/v1/webhook-events?type=payment_intent.succeeded",
            headers=billing.env.platform_headers(),
        ).body
    )["data"]
    assert [(e["id"], e["status"]) for e in listed if e["id"] == event["id"]] == [
        (event["id"], "processed")
    ]
