"""Stripe webhooks: what one delivery costs, through the HTTP route.

Setup: in-process moto with the real table definition, the chalice test client, localstripe
behind the pass-through proxy of tests/support/stripe_cutoff.py (it counts every Stripe request
and loses the answer to the PaymentIntent create, so each activation payment is left pending
while localstripe holds the charge and its `payment_intent.succeeded` event).

Each payment figure delivers localstripe's own event for a distinct pending payment:
- `webhook_payment_ddb_requests` / `_reads` / `_writes`: DynamoDB requests per
  `payment_intent.succeeded` that resolves a pending payment (botocore event hook on the client).
- `webhook_payment_stripe_calls`: HTTP requests that reached Stripe during those deliveries.
- `webhook_settled_ddb_requests`, `webhook_duplicate_ddb_requests`,
  `webhook_ignored_ddb_requests`, `webhook_refund_ddb_requests`, `webhook_refund_stripe_calls`:
  the same for news of a payment already resolved (a new event reporting what the payment
  records: the usual case, when the charge's own answer resolved it first), a repeated
  delivery, an unhandled event type, and a `charge.refunded`.
- `webhook_payment_handler_ms`: median wall time of one delivery through the route (all but
  the last, which runs under the profiler of `bench/code_paths.py`);
  `webhook_bare_transaction_ms`: median of one bare TransactWriteItems with as many entries as
  the handler's transaction, on the same moto table, each measured right after a delivery;
  `webhook_handler_vs_bare_transaction` their ratio.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.code_paths import FilesRun, files_run

REPO_ROOT = Path(__file__).resolve().parents[1]
PAYMENTS = 15
PLATFORM_KEY = "bench-platform-key"
SECRET = "whsec_bench"  # noqa: S105  (a local test secret)
TABLE = "membership-billing-bench-webhooks"
READS = frozenset({"GetItem", "Query", "BatchGetItem", "TransactGetItems", "Scan"})


@dataclass
class Calls:
    dynamodb: Counter[str]
    transact_sizes: list[int]
    stripe: list[str]

    @property
    def reads(self) -> int:
        return sum(n for op, n in self.dynamodb.items() if op in READS)

    @property
    def total(self) -> int:
        return sum(self.dynamodb.values())


class Meter:
    """Counts DynamoDB requests (botocore hook) and Stripe HTTP requests (the proxy)."""

    def __init__(self, client: Any, stripe_seen: list[str]) -> None:
        self._stripe_seen = stripe_seen
        self._ops: Counter[str] = Counter()
        self._sizes: list[int] = []
        client.meta.events.register("before-call.dynamodb.*", self._count)
        client.meta.events.register(
            "before-parameter-build.dynamodb.TransactWriteItems", self._transaction_size
        )

    def _count(self, model: Any, **_: Any) -> None:
        self._ops[model.name] += 1

    def _transaction_size(self, params: dict[str, Any], **_: Any) -> None:
        self._sizes.append(len(params.get("TransactItems", [])))

    @contextmanager
    def measure(self) -> Iterator[Calls]:
        self._ops.clear()
        self._sizes.clear()
        stripe_before = len(self._stripe_seen)
        calls = Calls(Counter(), [], [])
        yield calls
        calls.dynamodb.update(self._ops)
        calls.transact_sizes.extend(self._sizes)
        calls.stripe.extend(self._stripe_seen[stripe_before:])


def run() -> dict[str, float | int | str]:
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106
        AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_LOG_LEVEL="ERROR",
        POWERTOOLS_METRICS_NAMESPACE="MembershipBilling",
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from moto import mock_aws

    from infra.local.stack import standalone_localstripe
    from tests.support.stripe_cutoff import stripe_cutoff

    with standalone_localstripe() as stripe_url, stripe_cutoff(stripe_url) as cutoff, mock_aws():
        return _run(cutoff)


def _run(cutoff: Any) -> dict[str, float | int | str]:
    from datetime import UTC, datetime

    from chalice.test import Client

    from chalicelib import bootstrap
    from chalicelib.adapters.aws import reset_clients
    from chalicelib.adapters.clock import FixedClock
    from chalicelib.adapters.dynamodb.schema import ensure_table
    from chalicelib.config import Settings
    from tests.support import stripe_events as se
    from tests.support.webhook_flow import pending_activation

    reset_clients()
    os.environ.update(
        BILLING_STAGE="test",
        BILLING_TABLE_NAME=TABLE,
        BILLING_PLATFORM_API_KEY=PLATFORM_KEY,
        STRIPE_SECRET_KEY="sk_test_bench",  # noqa: S106
        STRIPE_WEBHOOK_SECRET=SECRET,
        STRIPE_API_BASE=cutoff.url,
    )
    settings = Settings.from_env()
    container = bootstrap.Container(settings, clock=FixedClock(datetime(2026, 1, 15, tzinfo=UTC)))
    ensure_table(container.dynamodb, TABLE)
    bootstrap.override_container(container)
    from app import app

    meter = Meter(container.dynamodb, cutoff.seen)
    with Client(app) as client:

        def deliver(payload: dict[str, Any]) -> str:
            body = se.body_of(payload)
            response = client.http.post(
                "/webhooks/stripe", body=body, headers=se.signed_headers(body, SECRET)
            )
            assert response.status_code == 200, response.body
            return str(json.loads(response.body)["result"])

        pendings = [pending_activation(client, PLATFORM_KEY, cutoff) for _ in range(PAYMENTS)]
        payment_calls: list[Calls] = []
        handler_ms: list[float] = []
        bare_ms: list[float] = []
        files = FilesRun()
        for n, pending in enumerate(pendings):
            # The last delivery (warm) records the files it runs through; the profiler that
            # records them slows it several times, so it is left out of the timings.
            profiled = n == len(pendings) - 1
            with meter.measure() as calls, files_run() if profiled else nullcontext() as seen:
                started = time.perf_counter()
                assert deliver(pending.succeeded_event) == "processed"
                elapsed_ms = (time.perf_counter() - started) * 1000
            payment_calls.append(calls)
            if seen is not None:
                files = seen
                continue
            handler_ms.append(elapsed_ms)
            # The floor, measured right after under the same conditions (same table size).
            bare_ms.append(_bare_transaction(container.dynamodb, max(calls.transact_sizes), n))

        with meter.measure() as settled:
            news = {**pendings[0].succeeded_event, "id": se.unique("evt")}
            assert deliver(news) == "processed"
        with meter.measure() as duplicate:
            assert deliver(pendings[0].succeeded_event) == "duplicate"
        with meter.measure() as ignored:
            assert deliver(se.event("customer.created", {"id": "cus_bench"})) == "ignored"
        paid = pendings[1]
        payment = json.loads(
            client.http.get(
                f"/v1/payments/{paid.payment_id}",
                headers={"Authorization": f"Bearer {paid.key}"},
            ).body
        )
        charge = se.charge(
            charge_id=payment["stripe"]["charge_id"],
            payment_intent_id=paid.intent_id,
            amount=payment["total"],
            amount_refunded=500,
            metadata={"community_id": paid.community_id, "payment_id": paid.payment_id},
        )
        with meter.measure() as refund:
            assert deliver(se.event("charge.refunded", charge)) == "processed"

        entries = max(max(c.transact_sizes) for c in payment_calls)

    bootstrap.override_container(None)
    handler, bare = statistics.median(handler_ms), statistics.median(bare_ms)
    return {
        "webhook_payment_ddb_requests": max(c.total for c in payment_calls),
        "webhook_payment_ddb_reads": max(c.reads for c in payment_calls),
        "webhook_payment_ddb_writes": max(c.total - c.reads for c in payment_calls),
        "webhook_payment_ddb_ops": ", ".join(
            f"{op} {n}" for op, n in sorted(payment_calls[0].dynamodb.items())
        ),
        "webhook_payment_transaction_entries": entries,
        "webhook_payment_stripe_calls": max(len(c.stripe) for c in payment_calls),
        "webhook_settled_ddb_requests": settled.total,
        "webhook_duplicate_ddb_requests": duplicate.total,
        "webhook_ignored_ddb_requests": ignored.total,
        "webhook_refund_ddb_requests": refund.total,
        "webhook_refund_stripe_calls": len(refund.stripe),
        "webhook_payment_handler_ms": round(handler, 2),
        "webhook_bare_transaction_ms": round(bare, 2),
        "webhook_handler_vs_bare_transaction": round(handler / bare, 2),
        # The last delivery (warm): the files a payment event runs through from its route.
        **files.figures("webhook_payment"),
    }


def _bare_transaction(ddb: Any, entries: int, run: int) -> float:
    """Wall time of one TransactWriteItems of `entries` conditional Puts on the same table."""
    items = [
        {
            "Put": {
                "TableName": TABLE,
                "Item": {
                    "pk": {"S": f"BENCH#{run}#{n}"},
                    "sk": {"S": "BARE"},
                    "payload": {"S": "x" * 200},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        for n in range(entries)
    ]
    started = time.perf_counter()
    ddb.transact_write_items(TransactItems=items)
    return (time.perf_counter() - started) * 1000
