"""The Stripe client, created on first use (importing stripe costs ~300 ms at cold start).

One StripeClient per (secret key, api base, timeout). Calls on a community's connected account
pass `stripe_account` in the request options (the Stripe-Account header).

Timeouts: the Lambda has 30 s (.chalice/config.json) and API Gateway 29 s. Stripe's own default
(80 s per attempt, here with retries) would let a hung Stripe outlive the function, which is
then killed mid-request. Each attempt waits at most `Settings.stripe_timeout_seconds` (5 s) to
connect and again to read, with ONE retry (0.5 s pause): a call gives up within
`worst_case_call_seconds` (10.5 s) with a StripeError, which the gateway turns into
Unavailable: the payment stays pending and the API answers 503.
"""

from __future__ import annotations

import threading
from typing import Any

from chalicelib.config import Settings

# The Stripe API version every request names (the Stripe-Version header). stripe-python sends
# its own pinned version otherwise, so upgrading the library would silently change what Stripe
# accepts and answers (e.g. 2023-08-16 made automatic payment methods the default). Move it
# on purpose, after reading Stripe's changelog: tests/integration/test_payments_stripe_gateway.py
# checks the header.
STRIPE_API_VERSION = "2026-10-28.endive"
_clients: dict[tuple[str, str | None, float, bool], Any] = {}
_lock = threading.Lock()
MAX_NETWORK_RETRIES = 1
# stripe-python's pause before a retry (HTTPClient.INITIAL_DELAY; jitter never exceeds it
# for the first retry).
RETRY_PAUSE_SECONDS = 0.5


def worst_case_call_seconds(timeout_seconds: float, retries: int = MAX_NETWORK_RETRIES) -> float:
    """The longest one Stripe call can take against a server that accepts and never answers."""
    return (retries + 1) * timeout_seconds + retries * RETRY_PAUSE_SECONDS


def _requests_client(timeout_seconds: float, retry_rate_limits: bool) -> Any:
    """stripe-python's HTTP client; without `retry_rate_limits` it never retries a 429.

    stripe-python retries a 429 that carries `Stripe-Should-Retry: true` (Stripe sends it with
    `lock_timeout`), sleeping in the calling thread. The scheduled worker must not sleep on a
    429: it hands the message back to the queue and lowers its account's rate instead.
    """
    import stripe

    if retry_rate_limits:
        return stripe.RequestsClient(timeout=timeout_seconds)

    class NoRateLimitRetry(stripe.RequestsClient):
        def _should_retry(
            self,
            response: Any,
            api_connection_error: Any,
            num_retries: int,
            max_network_retries: int | None,
        ) -> bool:
            if response is not None and response[1] == 429:
                return False
            retry: bool = super()._should_retry(
                response, api_connection_error, num_retries, max_network_retries
            )
            return retry

    return NoRateLimitRetry(timeout=timeout_seconds)


def stripe_client(settings: Settings, secret_key: str, *, retry_rate_limits: bool = True) -> Any:
    key = (
        secret_key,
        settings.stripe_api_base,
        settings.stripe_timeout_seconds,
        retry_rate_limits,
    )
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                import stripe

                base_addresses = (
                    {"api": settings.stripe_api_base} if settings.stripe_api_base else {}
                )
                client = stripe.StripeClient(
                    secret_key,
                    stripe_version=STRIPE_API_VERSION,
                    base_addresses=base_addresses,  # type: ignore[arg-type]
                    max_network_retries=MAX_NETWORK_RETRIES,
                    http_client=_requests_client(
                        settings.stripe_timeout_seconds, retry_rate_limits
                    ),
                )
                _clients[key] = client
    return client


def request_options(stripe_account_id: str | None, **extra: Any) -> dict[str, Any]:
    """Options for one call: the connected account header and e.g. an idempotency key."""
    options: dict[str, Any] = dict(extra)
    if stripe_account_id:
        options["stripe_account"] = stripe_account_id
    return options
