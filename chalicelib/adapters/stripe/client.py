"""The Stripe client, created on first use (importing stripe costs ~300 ms at cold start).

One StripeClient per (secret key, api base). Calls on a community's connected account pass
`stripe_account` in the request options (the Stripe-Account header).
"""

from __future__ import annotations

import threading
from typing import Any

from chalicelib.config import Settings

_clients: dict[tuple[str, str | None], Any] = {}
_lock = threading.Lock()
MAX_NETWORK_RETRIES = 2


def stripe_client(settings: Settings, secret_key: str) -> Any:
    key = (secret_key, settings.stripe_api_base)
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
                )
                _clients[key] = client
    return client


def request_options(stripe_account_id: str | None, **extra: Any) -> dict[str, Any]:
    """Options for one call: the connected account header and e.g. an idempotency key."""
    options: dict[str, Any] = dict(extra)
    if stripe_account_id:
        options["stripe_account"] = stripe_account_id
    return options
