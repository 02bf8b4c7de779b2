"""The real pieces the soak drives, wired once per run, and the public interfaces it uses.

moto in-process (the real table and queues), localstripe behind `stripe_faults` (Stripe's
idempotency plus injected faults), the chalice test client over the real app, a FixedClock
moved only through `POST /v1/test-clock/advance` (except the SQS-path rule, which moves it as
EventBridge time would and then runs the real sweep and worker Lambdas), DynamoDB faults from
a botocore hook. The harness talks to the app only through HTTP routes, signed webhooks and
the Lambda entry points, so it does not depend on the services' internals.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from chalicelib.adapters.clock import FixedClock
from infra.local.moto_server import (
    fast_item_responses,
    fast_string_comparisons,
    indexed_queries,
    journal_transactions,
)
from infra.local.stack import standalone_localstripe
from tests.integration.conftest import PLATFORM_KEY, START, Env, moto_app_env
from tests.soak.dynamo_faults import DynamoFaults
from tests.soak.stripe_faults import StripeFaults, stripe_faults
from tests.support import stripe_events as se
from tests.support.atomic_requests import AtomicRequests
from tests.support.localstripe import new_card, stripe_for

WEBHOOK_SECRET = "whsec_integration"  # moto_app_env's STRIPE_WEBHOOK_SECRET
SWEEP_LAMBDAS = ("renewals", "failed_payments", "expirations", "pending_payments")
STRIPE_RETRY_DELAY_SECONDS = 0.01
TABLE_PREFIX = "soak"


@dataclass
class Answer:
    status: int
    body: Any


class ServerError(AssertionError):
    """The API answered 500: a violation in itself ("no answer is ever a 500")."""


@dataclass
class SoakWorld:
    env: Env
    proxy: StripeFaults
    dynamo: DynamoFaults
    localstripe_url: str
    faults: Counter[str] = field(default_factory=Counter)  # harness-level faults (webhooks, SQS)
    server_errors: list[str] = field(default_factory=list)
    seen_events: set[str] = field(default_factory=set)
    last_event_id: str | None = None  # of localstripe's list (oldest first)
    tables: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def stripe(self) -> Any:
        """localstripe directly (not through the fault layer): the harness's own view."""
        return stripe_for(self.localstripe_url)

    # --- HTTP API ------------------------------------------------------------------------------
    def call(self, method: str, path: str, key: str, body: Any = None) -> Answer:
        try:
            response = getattr(self.env.client.http, method.lower())(
                path,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                body=json.dumps(body) if body is not None else None,
            )
        except Exception as error:
            # An exception out of the app (e.g. its authorizer) is API Gateway's bare 500.
            note = f"{method} {path} -> raised {type(error).__name__}: {error}"
            with self.lock:
                self.server_errors.append(note)
            return Answer(500, None)
        raw = response.body.decode() if isinstance(response.body, bytes) else response.body
        answer = Answer(response.status_code, json.loads(raw) if raw else None)
        if answer.status >= 500 and answer.status != 503:
            note = f"{method} {path} -> {answer.status} {answer.body}"
            with self.lock:
                self.server_errors.append(note)
        return answer

    def platform(self, method: str, path: str, body: Any = None) -> Answer:
        return self.call(method, path, PLATFORM_KEY, body)

    def advance(self, **delta: Any) -> Answer:
        return self.platform("POST", "/v1/test-clock/advance", delta)

    # --- Stripe's side -------------------------------------------------------------------------
    def deliver(self, payload: dict[str, Any]) -> int:
        body = se.body_of(payload)
        response = self.env.client.http.post(
            "/webhooks/stripe", body=body, headers=se.signed_headers(body, WEBHOOK_SECRET)
        )
        if response.status_code >= 500 and response.status_code != 503:
            with self.lock:
                self.server_errors.append(
                    f"webhook {payload['type']} {payload['id']} -> {response.status_code}"
                )
        return int(response.status_code)

    def new_events(self) -> list[dict[str, Any]]:
        """Events localstripe recorded since the last call, oldest first.

        localstripe lists events oldest first (Stripe: newest first), so the events after the
        last one seen are those `starting_after` it. Reading the first page and stopping at a
        seen event (as for Stripe's order) found nothing new once a run had made 100 events."""
        found: list[dict[str, Any]] = []
        while True:
            params: dict[str, Any] = {"limit": 100}
            if self.last_event_id is not None:
                params["starting_after"] = self.last_event_id
            page = self.stripe.v1.events.list(params=params)
            events = [e.to_dict() for e in page.data]
            created = [e["created"] for e in events]
            assert created == sorted(created), "localstripe listed events out of creation order"
            found += [e for e in events if e["id"] not in self.seen_events]
            if events:
                self.last_event_id = events[-1]["id"]
            if not page.has_more or not events:
                break
        self.seen_events.update(e["id"] for e in found)
        return found

    def payment_method(self, number: str) -> str:
        return new_card(self.stripe, number)

    # --- the Lambda entry points ---------------------------------------------------------------
    def run_sweeps(self) -> None:
        for name in SWEEP_LAMBDAS:
            event = self.env.client.events.generate_cw_event(
                source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
            )
            self.env.client.lambda_.invoke(name, event)

    def receive_work(self) -> list[dict[str, Any]]:
        sqs = self.env.container.sqs
        url = self.env.settings.work_queue_url
        messages: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
            ).get("Messages", [])
            fresh = [m for m in got if m["MessageId"] not in {x["MessageId"] for x in messages}]
            if not fresh:
                return messages
            messages += fresh

    def delete_work(self, messages: list[dict[str, Any]]) -> None:
        sqs = self.env.container.sqs
        for message in messages:
            # The worker may have deleted it already (it deletes its successes on a failure).
            with contextlib.suppress(sqs.exceptions.ReceiptHandleIsInvalid):
                sqs.delete_message(
                    QueueUrl=self.env.settings.work_queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                )

    def invoke_worker(self, messages: list[dict[str, Any]]) -> None:
        """The worker Lambda with these received messages, their real receipt handles included
        (the worker deletes the ones it finished when others of the batch fail)."""
        event = self.env.client.events.generate_sqs_event(
            message_bodies=[m["Body"] for m in messages], queue_name="work"
        )
        for record, message in zip(event["Records"], messages, strict=True):
            record["receiptHandle"] = message["ReceiptHandle"]
            record["messageId"] = message["MessageId"]
        self.env.client.lambda_.invoke("worker", event)

    def move_clock(self, delta: timedelta) -> None:
        """Time passes as EventBridge sees it (for the SQS path; the API route moves it too)."""
        self.env.clock.advance_to(self.env.clock.now() + delta)

    def fresh_table(self) -> None:
        """A new table for the next sequence (moto's in-process Query reads the whole table,
        so one table per sequence keeps a step's cost flat over a long soak); the old one is
        deleted. The app's DynamoDB client, and the fault hooks on it, stay the same."""
        from chalicelib import bootstrap
        from chalicelib.adapters.dynamodb.schema import ensure_table

        old = self.env.settings.table_name
        self.tables += 1
        settings = replace(self.env.settings, table_name=f"{TABLE_PREFIX}-{self.tables}")
        ensure_table(self.env.container.dynamodb, settings.table_name)
        # No stream: nothing in the soak reads it, and moto keeps every write's images in
        # memory (gigabytes in a long sequence).
        self.env.container.dynamodb.update_table(
            TableName=settings.table_name, StreamSpecification={"StreamEnabled": False}
        )
        # And a new clock at the fixed start: a long soak moves time by years per minute, and
        # the test clock stops at its horizon (2200), after which nothing could be recovered.
        clock = FixedClock(START)
        container = bootstrap.Container(settings, clock=clock)
        bootstrap.override_container(container)
        self.env = replace(self.env, container=container, settings=settings, clock=clock)
        if old.startswith(TABLE_PREFIX):
            self.env.container.dynamodb.delete_table(TableName=old)
        # Work an earlier sequence left queued names a table that is gone (PurgeQueue is
        # allowed once a minute: drain it instead).
        self.delete_work(self.receive_work())

    def fired_faults(self) -> Counter[str]:
        total: Counter[str] = Counter()
        total.update({f"stripe.{k}": v for k, v in self.proxy.fired.items()})
        total.update({f"dynamodb.{k}": v for k, v in self.dynamo.fired.items()})
        total.update(self.faults)
        return total

    def disarm(self) -> None:
        self.proxy.disarm()
        self.dynamo.disarm()


@contextmanager
def soak_world() -> Iterator[SoakWorld]:
    """Start localstripe, the fault layer and the app on moto; yield the wired world."""
    from stripe import _http_client

    saved_env = {k: os.environ.get(k) for k in ("BILLING_TEST_CLOCK", "BILLING_DUE_INDEX_SHARDS")}
    saved_delays = (_http_client.HTTPClient.INITIAL_DELAY, _http_client.HTTPClient.MAX_DELAY)
    with ExitStack() as stack:
        os.environ["BILLING_TEST_CLOCK"] = "true"
        os.environ["BILLING_DUE_INDEX_SHARDS"] = "1"  # moto reads a whole table per Query
        # stripe-python's network retries wait 0.5 s+ each; the soak injects thousands.
        _http_client.HTTPClient.INITIAL_DELAY = STRIPE_RETRY_DELAY_SECONDS
        _http_client.HTTPClient.MAX_DELAY = STRIPE_RETRY_DELAY_SECONDS  # type: ignore[assignment]
        # The local stack's moto speed-ups (tested in tests/integration/test_local_moto_server.py):
        # a transaction backs up the items it names, not whole tables, and a Query reads its
        # partition, not the whole table, so a step's cost does not grow with the table. Safe:
        # the app's requests are serialized (AtomicRequests below); item answers are written
        # as the JSON they already are.
        speedups = (
            journal_transactions(),
            fast_string_comparisons(),
            indexed_queries(),
            fast_item_responses(),
        )
        for undo in speedups:
            stack.callback(undo)
        localstripe_url = stack.enter_context(standalone_localstripe())
        proxy = stack.enter_context(stripe_faults(localstripe_url))
        env = stack.enter_context(moto_app_env(proxy.url))
        dynamo = DynamoFaults()
        dynamo.install(env.container.dynamodb)
        AtomicRequests(env.container.dynamodb, env.container.sqs)
        try:
            yield SoakWorld(env, proxy, dynamo, localstripe_url)
        finally:
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            _http_client.HTTPClient.INITIAL_DELAY, _http_client.HTTPClient.MAX_DELAY = saved_delays
