"""localstripe for integration tests: one process per test session, on a free port."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.stack import LocalStack, standalone_localstripe

BIN_DIR = Path(sys.executable).parent


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    with standalone_localstripe() as url:
        yield url


def stripe_for(url: str) -> Any:
    import stripe

    return stripe.StripeClient("sk_test_x", base_addresses={"api": url})


def new_card(client: Any, number: str) -> str:
    """A card PaymentMethod made on localstripe through `client` (not attached): its id."""
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    return str(method.id)


def card_on_customer(client: Any, number: str, email: str = "owner@example.com") -> tuple[str, str]:
    """A new Stripe customer with an attached card: (customer id, payment method id)."""
    customer = client.v1.customers.create(params={"email": email})
    method_id = new_card(client, number)
    client.v1.payment_methods.attach(method_id, params={"customer": customer.id})
    return customer.id, method_id


def stack_card(stack: LocalStack, number: str) -> str:
    """A card (PaymentMethod, not attached yet) made on the local stack's localstripe."""
    import json
    import urllib.parse
    import urllib.request

    form = {
        "type": "card",
        "card[number]": number,
        "card[exp_month]": "12",
        "card[exp_year]": "2031",
        "card[cvc]": "123",
    }
    request = urllib.request.Request(
        f"{stack.config.stripe_url}/v1/payment_methods",
        data=urllib.parse.urlencode(form).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {stack.config.stripe_secret_key}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["id"])
