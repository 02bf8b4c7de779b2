"""The Stripe adapter and a 429 (issue 16): classified as StripeRateLimited, and the scheduled
work's client never sleeps on it in stripe-python's retry (the API's client keeps Stripe's
`Stripe-Should-Retry` advice)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from chalicelib.adapters.secrets import SecretsProvider
from chalicelib.adapters.stripe.payments import ChargeRequest, StripePaymentGateway
from chalicelib.config import Settings
from chalicelib.domain.errors import StripeRateLimited
from tests.support.localstripe import localstripe_url
from tests.support.stripe_rate_limiter import StripeRateLimiter, stripe_rate_limiter

__all__ = ["localstripe_url"]

REQUEST = ChargeRequest(
    payment_id="pay_ratelimited1",
    amount=1500,
    currency="usd",
    customer_id="cus_none",
    payment_method_id="pm_none",
    stripe_account_id="acct_busy",
    application_fee_amount=0,
    metadata={"payment_id": "pay_ratelimited1"},
)


@pytest.fixture
def lock_timeouts(localstripe_url: str) -> Iterator[StripeRateLimiter]:
    with stripe_rate_limiter(localstripe_url, 100) as limiter:
        limiter.forced_429 = 10
        limiter.should_retry = True  # as Stripe answers a lock_timeout
        yield limiter


def gateway(limiter: StripeRateLimiter, *, retry_rate_limits: bool) -> StripePaymentGateway:
    settings = replace(
        Settings.from_env({"BILLING_STAGE": "test"}),
        stripe_api_base=limiter.url,
        stripe_timeout_seconds=2.0,
    )
    return StripePaymentGateway(
        settings, SecretsProvider(settings), retry_rate_limits=retry_rate_limits
    )


def test_the_scheduled_client_gets_the_429_at_once_as_stripe_rate_limited(
    lock_timeouts: StripeRateLimiter,
) -> None:
    with pytest.raises(StripeRateLimited) as refused:
        gateway(lock_timeouts, retry_rate_limits=False).charge(REQUEST)
    assert refused.value.code == "rate_limit"
    assert lock_timeouts.seen["acct_busy"] == 1  # no retry inside stripe-python


def test_the_api_client_still_follows_stripes_retry_advice(
    lock_timeouts: StripeRateLimiter,
) -> None:
    with pytest.raises(StripeRateLimited):
        gateway(lock_timeouts, retry_rate_limits=True).charge(REQUEST)
    assert lock_timeouts.seen["acct_busy"] == 2  # one retry (MAX_NETWORK_RETRIES)
