"""`make run`'s stack under load: monthly subscriptions through monthly test-clock advances
with localstripe's webhooks flowing, no 5xx anywhere, no failed event, each advance under
10 s at 500 subscriptions (issue 11 item 20).

`make test` runs it small (LOAD_SUBSCRIPTIONS=10, LOAD_ADVANCES=2); `make load` runs the
acceptance size, 500 subscriptions through 12 advances. The stack is this module's own (the
table grows to tens of thousands of items; the other e2e tests keep theirs small).

The bound on an advance is linear in the subscriptions it renews, `ADVANCE_BASE_SECONDS` plus
`ADVANCE_SECONDS_PER_SUBSCRIPTION` each: 10 s at 500, and a bound that still means something
at `make test`'s 10 (an advance that went back to one renewal after the other, or to work that
grows with the table, fails it).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from infra.local.stack import LocalStack, StackConfig, free_port
from tests.support.localstripe import stack_card

pytestmark = pytest.mark.e2e

SUBSCRIPTIONS = int(os.environ.get("LOAD_SUBSCRIPTIONS", "10"))
ADVANCES = int(os.environ.get("LOAD_ADVANCES", "2"))
ADVANCE_BASE_SECONDS = 3.0
ADVANCE_SECONDS_PER_SUBSCRIPTION = (10.0 - ADVANCE_BASE_SECONDS) / 500
MAX_ADVANCE_SECONDS = float(
    os.environ.get(
        "LOAD_MAX_ADVANCE_SECONDS",
        ADVANCE_BASE_SECONDS + ADVANCE_SECONDS_PER_SUBSCRIPTION * SUBSCRIPTIONS,
    )
)
CREATORS = 8  # concurrent clients creating subscriptions
SETTLE_SECONDS = 60.0
# An access-log line with a 5xx status: werkzeug's (moto) and http.server's (the API).
SERVER_ERROR = re.compile(rb'" 5\d\d ')


class Http:
    def __init__(self, stack: LocalStack, key: str) -> None:
        self.stack = stack
        self.key = key
        self.server_errors: list[str] = []

    def call(
        self, method: str, path: str, body: Any = None, key: str | None = None, timeout: float = 60
    ) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"{self.stack.config.api_url}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {key or self.key}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            if error.code >= 500:
                self.server_errors.append(f"{method} {path}: {error.code} {raw[:200]!r}")
            return error.code, json.loads(raw) if raw else None

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        code, answer = self.call(method, path, body)
        assert code == status, (method, path, code, answer)
        return answer

    def platform(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        code, answer = self.call(
            method, path, body, key=self.stack.config.platform_api_key, timeout=timeout
        )
        assert code in (200, 201), (path, code, answer)
        return answer

    def stripe_card(self) -> str:
        return stack_card(self.stack, "4242424242424242")


@pytest.fixture(scope="module")
def load_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = StackConfig(
        billing_port=free_port(),
        webhook_port=free_port(),
        stripe_port=free_port(),
        moto_port=free_port(),
        platform_api_key="load-platform-key",
        webhook_secret="whsec_load",
        run_scheduler=False,
        log_dir=Path(tmp_path_factory.mktemp("load-stack-logs")),
    )
    with LocalStack(config) as running:
        yield running


def _new_subscription(api: Http, plan_id: str, n: int) -> str:
    body = {"kind": "customer", "name": f"Member {n}", "email": f"member{n}@example.com"}
    owner = api.ok("POST", "/v1/profiles", body, 201)
    card = api.stripe_card()
    api.ok(
        "POST",
        f"/v1/profiles/{owner['id']}/payment-methods",
        {"stripe_payment_method_id": card},
        201,
    )
    sub = api.ok(
        "POST",
        "/v1/subscriptions",
        {
            "plan_id": plan_id,
            "owner_id": owner["id"],
            "member_ids": [owner["id"]],
            "billing_cycle": "month",
            "payment_method_id": card,
        },
        201,
    )
    active = api.ok("POST", f"/v1/subscriptions/{sub['id']}/activate", {})
    assert active["status"] == "active", active
    return str(sub["id"])


def _failed_events(api: Http) -> list[dict[str, Any]]:
    return list(api.platform("GET", "/v1/webhook-events?status=failed&limit=100")["data"])


def _server_error_lines(stack: LocalStack) -> list[str]:
    lines: list[str] = []
    for name in ("moto", "api", "webhooks"):
        log = stack.config.log_dir / f"{name}.log"
        if log.exists():
            lines += [
                f"{name}: {line[:200]!r}"
                for line in log.read_bytes().splitlines()
                if SERVER_ERROR.search(line)
            ]
    return lines


def _logged_deliveries(stack: LocalStack, process: str) -> int:
    """How many of Stripe's deliveries the process's request log shows."""
    log = (stack.config.log_dir / f"{process}.log").read_bytes()
    return log.count(b'"POST /webhooks/stripe HTTP/1.1" 200')


def _stored_events(api: Http, event_type: str) -> int:
    count = 0
    cursor = ""
    while True:
        page = api.platform("GET", f"/v1/webhook-events?type={event_type}&limit=100{cursor}")
        count += len(page["data"])
        if not page["has_more"]:
            return count
        cursor = f"&starting_after={urllib.parse.quote(page['next_cursor'])}"


def _cpu_per_advance(before: dict[str, float], after: dict[str, float]) -> str:
    """Each process's CPU seconds over the advances, per advance (webhooks of the last advance
    still arriving are not counted; those of the first's activations are), and their sum: an
    advance cannot end sooner than that sum divided by the machine's cores."""
    used = {name: (after[name] - before[name]) / ADVANCES for name in after if name in before}
    parts = [f"{name} {seconds:.1f} s" for name, seconds in used.items()]
    return ", ".join([*parts, f"all {sum(used.values()):.1f} s"]) if used else "unknown"


def _wait_for_webhooks(api: Http, expected: int) -> int:
    """Wait until localstripe's webhooks have arrived (it posts each about a second later)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        seen = _stored_events(api, "payment_intent.succeeded")
        if seen >= expected or time.monotonic() > deadline:
            return seen
        time.sleep(1)


@pytest.mark.timeout(300 + 2 * SUBSCRIPTIONS * (1 + ADVANCES))
def test_subscriptions_through_monthly_advances_with_webhooks(load_stack: LocalStack) -> None:
    anonymous = Http(load_stack, "")
    created = anonymous.platform("POST", "/v1/communities", {"name": "Load gym"})
    api = Http(load_stack, created["api_key"]["secret"])
    plan = api.ok("POST", "/v1/plans", {"name": "Monthly", "prices": {"month": 2500}}, 201)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=CREATORS) as pool:
        subscription_ids = list(
            pool.map(lambda n: _new_subscription(api, plan["id"], n), range(SUBSCRIPTIONS))
        )
    creation_seconds = time.monotonic() - started
    assert len(set(subscription_ids)) == SUBSCRIPTIONS

    durations: list[float] = []
    renewed = 0
    cpu_before = load_stack.cpu_seconds()
    # The stack's CPU during each advance: a slow advance that used no more CPU than the others
    # waited for the machine's other work, not for ours.
    stack_cpu: list[float] = []
    cpu_after = cpu_before
    for _ in range(ADVANCES):
        before = time.monotonic()
        answer = api.platform("POST", "/v1/test-clock/advance", {"days": 31}, timeout=600)
        durations.append(time.monotonic() - before)
        cpu_previous, cpu_after = cpu_after, load_stack.cpu_seconds()
        stack_cpu.append(sum(cpu_after.values()) - sum(cpu_previous.values()))
        renewed += answer["processed"]["renewed"]
        assert answer["processed"]["renewals_failed"] == 0, answer

    cpu_used = _cpu_per_advance(cpu_before, cpu_after)
    # localstripe's own event for every charge: the activation and each renewal.
    charges = SUBSCRIPTIONS * (1 + ADVANCES)
    succeeded_events = _wait_for_webhooks(api, charges)
    report = (
        f"created {SUBSCRIPTIONS} in {creation_seconds:.1f} s; "
        f"advances {[round(d, 1) for d in durations]} s (bound {MAX_ADVANCE_SECONDS:.2f} s); "
        f"CPU per advance {cpu_used}; "
        f"the stack's CPU in each advance {[round(c, 1) for c in stack_cpu]} s; "
        f"payment_intent.succeeded stored {succeeded_events}/{charges}"
    )
    print(report)
    assert renewed == SUBSCRIPTIONS * ADVANCES, report
    assert succeeded_events == charges, report
    assert api.server_errors == [], api.server_errors[:5]
    assert anonymous.server_errors == []
    assert _failed_events(api) == []
    assert _server_error_lines(load_stack) == [], _server_error_lines(load_stack)[:5]
    # Stripe's deliveries went to their own process, not the one running the advances.
    assert _logged_deliveries(load_stack, "webhooks") >= charges
    assert _logged_deliveries(load_stack, "api") == 0
    assert max(durations) < MAX_ADVANCE_SECONDS, report
