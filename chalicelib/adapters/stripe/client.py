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

_clients: dict[tuple[str, str | None, float], Any] = {}
_lock = threading.Lock()
MAX_NETWORK_RETRIES = 1
# stripe-python's pause before a retry (HTTPClient.INITIAL_DELAY; jitter never exceeds it
# for the first retry).
RETRY_PAUSE_SECONDS = 0.5


def worst_case_call_seconds(timeout_seconds: float, retries: int = MAX_NETWORK_RETRIES) -> float:
    """The longest one Stripe call can take against a server that accepts and never answers."""
    return (retries + 1) * timeout_seconds + retries * RETRY_PAUSE_SECONDS


def stripe_client(settings: Settings, secret_key: str) -> Any:
    key = (secret_key, settings.stripe_api_base, settings.stripe_timeout_seconds)
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
                    base_addresses=base_addresses,  # type: ignore[arg-type]
                    max_network_retries=MAX_NETWORK_RETRIES,
                    http_client=stripe.RequestsClient(timeout=settings.stripe_timeout_seconds),
                )
                _clients[key] = client
    return client


def request_options(stripe_account_id: str | None, **extra: Any) -> dict[str, Any]:
    """Options for one call: the connected account header and e.g. an idempotency key."""
    options: dict[str, Any] = dict(extra)
    if stripe_account_id:
        options["stripe_account"] = stripe_account_id
    return options
