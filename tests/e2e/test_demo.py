"""`make demo` end to end, on a local stack of its own.

The tour moves the stored test clock by months, which would renew and cancel the other e2e
tests' subscriptions on the shared session stack, so it gets its own (no scheduler loop: the
test clock runs the jobs). Its clock starts at BILLING_TEST_CLOCK_START (tests/support/
clock_start.py), and the prorated amount is computed from the period the demo actually got,
so the tour passes whatever month it starts in (`make test-calendar`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from infra.local.demo import money, run_demo
from infra.local.stack import LocalStack, StackConfig, free_port
from tests.support.clock_start import clock_start, clock_start_text, parse_instant
from tests.support.proration import prorations_charged_at

FAMILY_MONTHLY = 4000  # per member, cents
ACTIVATION_FEE = 1500


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = StackConfig(
        billing_port=free_port(),
        webhook_port=free_port(),
        stripe_port=free_port(),
        moto_port=free_port(),
        platform_api_key="demo-platform-key",
        webhook_secret="whsec_demo",
        run_scheduler=False,
        test_clock_start=clock_start_text(),
        log_dir=Path(tmp_path_factory.mktemp("demo-stack-logs")),
    )
    with LocalStack(config) as running:
        yield running


def test_the_demo_tells_the_whole_lifecycle_with_amounts(own_stack: LocalStack) -> None:
    config = own_stack.config
    printed: list[str] = []

    timeline = run_demo(config.api_url, config.stripe_url, "demo-platform-key", printed.append)

    period = timeline.facts["family_first_period"]
    start, end = parse_instant(period["start"]), parse_instant(period["end"])
    assert timedelta(0) <= start - clock_start() < timedelta(minutes=5)
    joined = parse_instant(timeline.facts["ana_joins_payment"]["created_at"])
    assert timedelta(days=10) <= joined - start < timedelta(days=10, minutes=5)
    possible = prorations_charged_at(FAMILY_MONTHLY, start, end, joined)
    ana_line = timeline.facts["ana_joins_payment"]["lines"][0]
    assert ana_line["kind"] == "proration"
    assert ana_line["amount"] in possible, (ana_line, possible, period, joined)
    ana = ana_line["amount"]

    link_payment = timeline.facts["pay_link_payment"]
    assert (link_payment["kind"], link_payment["status"]) == ("reactivation", "succeeded")

    text = "\n".join(timeline.lines)
    assert printed == timeline.lines
    expected_in_order = [
        "Activated: status active",
        "2 x 40.00 USD = 80.00 USD",
        "SUCCEEDED: 110.00 USD on visa ending 4242",  # 2 members + 2 activation fees
        "Sam cancels at period end: status expiring",
        "Ana joins mid-period: 3 members now",
        f"1 x {money(ana, 'usd')} = {money(ana, 'usd')}",
        f"SUCCEEDED: {money(ana + ACTIVATION_FEE, 'usd')}",
        "the first period ends; scheduler processed {'renewed': 1, 'expired': 1}",
        "SUCCEEDED: 120.00 USD on visa ending 4242",
        "Sam's subscription: status cancelled (expired)",
        "Maria switches to a card ending 0341",
        "scheduler processed {'renewals_failed': 1}",
        "Renewal declined: status failed_payment",
        "FAILED: 120.00 USD on visa ending 0341 (card_declined)",
        "to the first retry; scheduler processed {'retried': 1}",
        "Retry declined: status failed_payment",
        "the grace period runs out; scheduler processed {'retried': 1, 'cancelled': 1}",
        "Family subscription cancelled (payment_failed)",
        "Leo has access: False",
        f"Family billing history: 6 payments, "
        f"{money(11000 + ana + ACTIVATION_FEE + 12000, 'usd')} collected",
        "Noor Haddad joins Solo climbing",
        "Noor's period ends; scheduler processed {'renewals_failed': 1}",
        "Noor's renewal declined: status failed_payment",
        "Pay-now link for Noor (expires",
        "/pay/",
        "the page shows: payable",
        "Noor pays through the link (paid): status active",
        "SUCCEEDED: 25.00 USD on visa ending 4242",
        "the link now shows: paid",
        "to where the grace period would have ended; scheduler processed nothing",
        "Noor's subscription: active",
    ]
    position = 0
    for fragment in expected_in_order:
        found = text.find(fragment, position)
        assert found >= 0, f"{fragment!r} missing after position {position}:\n{text}"
        position = found + len(fragment)
