"""Renewal cost through the real worker: DynamoDB requests, Stripe calls, renewals per second.

Subscriptions are made and activated through the HTTP API (chalice's test client) on
in-process moto, charged on localstripe (started here, `--from-scratch`, on a free port) behind
a counting pass-through proxy. The clock then moves past their period end; one renewal sweep
fills the real work queue and one worker drains it, exactly as `run_once` does.

- `ddb_requests_per_renewal`: DynamoDB requests of the sweep and the worker, per renewal
  (botocore event hook), with the per-operation split beside it.
- `stripe_calls_per_renewal`: HTTP requests that reached Stripe during the renewals, per renewal.
- `renewals_per_second_one_worker`: renewals / wall time of the one worker draining the queue.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SUBSCRIPTIONS = 60
START = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
PLATFORM_KEY = "bench-platform-key"
GOOD_CARD = "4242424242424242"
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class CountingProxy:
    """Forwards everything to `target` and counts the requests ("METHOD /path")."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.calls: Counter[str] = Counter()
        self.seconds = 0.0  # time Stripe (localstripe) took to answer, summed
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.calls[f"{self.command} {self.path.split('?')[0]}"] += 1
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                request = urllib.request.Request(
                    proxy.target + self.path, data=body, headers=headers, method=self.command
                )
                started = time.perf_counter()
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, data = response.status, response.read()
                        reply = dict(response.headers.items())
                except urllib.error.HTTPError as error:
                    status, data, reply = error.code, error.read(), dict(error.headers.items())
                proxy.seconds += time.perf_counter() - started
                self.send_response(status)
                for key, value in reply.items():
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _handle  # noqa: N815
            do_POST = _handle  # noqa: N815
            do_DELETE = _handle  # noqa: N815

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def renewal_figures() -> dict[str, float | int | str]:
    from moto import mock_aws

    fake_credentials = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    os.environ.update({**fake_credentials, "AWS_DEFAULT_REGION": "us-east-1"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ["BILLING_PLATFORM_API_KEY"] = PLATFORM_KEY
    from infra.local.stack import standalone_localstripe

    with standalone_localstripe() as stripe_url, mock_aws():
        proxy = CountingProxy(stripe_url)
        try:
            return _measure(proxy)
        finally:
            proxy.close()


def _measure(proxy: CountingProxy) -> dict[str, float | int | str]:
    from chalice.test import Client

    from bench.code_paths import FilesRun, files_run
    from bench.request_counters import BackendTimer, DynamoCounter
    from chalicelib import bootstrap
    from chalicelib.adapters.aws import reset_clients
    from chalicelib.adapters.clock import FixedClock
    from chalicelib.adapters.dynamodb.schema import ensure_table
    from chalicelib.adapters.queues import ensure_queues
    from chalicelib.config import Settings
    from chalicelib.jobs.local_runner import JOBS, drain_work_queue
    from chalicelib.jobs.sweeps import sweep

    reset_clients()
    env = {"BILLING_STAGE": "test", "BILLING_TABLE_NAME": "bench-renewals"}
    settings = Settings.from_env({**env, "STRIPE_API_BASE": proxy.url})
    clock = FixedClock(START)
    box = bootstrap.Container(settings, clock=clock)
    ensure_table(box.dynamodb, settings.table_name)
    queues = ensure_queues(box.sqs, "bench")
    settings = replace(settings, work_queue_url=queues["work_queue_url"])
    box = bootstrap.Container(settings, clock=clock)
    bootstrap.override_container(box)
    try:
        from app import app

        with Client(app) as client:
            _activate_subscriptions(client, proxy.target, SUBSCRIPTIONS)
        clock.advance(timedelta(days=32))
        counter = DynamoCounter(box.dynamodb)
        emulator = BackendTimer(box.dynamodb, box.sqs, clock=time.perf_counter)
        proxy.calls.clear()
        sweep(box, ("renewal",))
        sweep_requests = sum(counter.requests.values())
        assert JOBS.worker is not None
        emulator.seconds, proxy.seconds = 0.0, 0.0
        started = time.perf_counter()
        with files_run() as files:
            outcomes = drain_work_queue(box, JOBS.worker)
        worker_seconds = time.perf_counter() - started
        moto_seconds, stripe_seconds = emulator.seconds, proxy.seconds
    finally:
        bootstrap.override_container(None)
        reset_clients()
    renewed = outcomes["renewed"]
    assert renewed == SUBSCRIPTIONS, outcomes
    by_operation = ", ".join(f"{op} {n / renewed:.2f}" for op, n in counter.requests.most_common())
    return {
        # The worker's requests for one renewal (DESIGN.md section 8: at most three). The sweep
        # is reported beside it: 16 shard Queries here serve only 60 renewals; a Query page
        # holds hundreds of due items, so at a million renewals its share is ~0.002.
        "ddb_requests_per_renewal": round(
            (sum(counter.requests.values()) - sweep_requests) / renewed, 2
        ),
        "ddb_requests_per_renewal_with_sweep": round(sum(counter.requests.values()) / renewed, 2),
        "ddb_requests_per_renewal_by_operation": by_operation,
        "ddb_requests_per_renewal_sweep_share": round(sweep_requests / renewed, 3),
        "stripe_calls_per_renewal": round(sum(proxy.calls.values()) / renewed, 2),
        "stripe_calls_per_renewal_detail": ", ".join(f"{k} {v}" for k, v in proxy.calls.items()),
        "renewals_per_second_one_worker": round(renewed / worker_seconds, 1),
        # Where a renewal's time went: moto in-process (a transaction deep-copies the table),
        # localstripe, and the rest (our code, the SDKs, the proxy hop).
        "renewal_seconds_in_moto": round(moto_seconds / renewed, 3),
        "renewal_seconds_in_localstripe": round(stripe_seconds / renewed, 3),
        "renewal_seconds_in_our_code": round(
            (worker_seconds - moto_seconds - stripe_seconds) / renewed, 3
        ),
        "renewals_measured": renewed,
        # The worker's files for those renewals, as a Lambda runs them: the local runner (the
        # stand-in for SQS invoking the worker) is left out, app.py's handler counted in.
        **FilesRun((files.files - {"chalicelib/jobs/local_runner.py"}) | {"app.py"}).figures(
            "renewal"
        ),
    }


def _activate_subscriptions(client: Any, stripe_url: str, count: int) -> None:
    import stripe

    stripe_client = stripe.StripeClient("sk_test_bench", base_addresses={"api": stripe_url})

    def call(method: str, path: str, key: str, body: Any = None) -> Any:
        response = getattr(client.http, method)(
            path,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            body=json.dumps(body) if body is not None else None,
        )
        assert response.status_code in (200, 201), (path, response.status_code, response.body)
        return json.loads(response.body)

    key = call("post", "/v1/communities", PLATFORM_KEY, {"name": "Bench Club"})["api_key"]["secret"]
    plan = call("post", "/v1/plans", key, {"name": "Monthly", "prices": {"month": 1500}})
    for i in range(count):
        owner = call(
            "post",
            "/v1/profiles",
            key,
            {"kind": "customer", "name": f"Member {i}", "email": f"m{i}@example.com"},
        )
        method = stripe_client.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": GOOD_CARD, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
            }
        )
        attach = {"stripe_payment_method_id": method.id}
        call("post", f"/v1/profiles/{owner['id']}/payment-methods", key, attach)
        sub = call(
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
        call("post", f"/v1/subscriptions/{sub['id']}/activate", key)
