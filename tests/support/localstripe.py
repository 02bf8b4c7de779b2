"""localstripe for integration tests: one process per test session, on a free port."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.stack import free_port

BIN_DIR = Path(sys.executable).parent


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [str(BIN_DIR / "localstripe"), "--port", str(port), "--from-scratch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(
                    f"{url}/v1/customers", headers={"Authorization": "Bearer sk_test_x"}
                )
                urllib.request.urlopen(request, timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("localstripe did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def stripe_for(url: str) -> Any:
    import stripe

    return stripe.StripeClient("sk_test_x", base_addresses={"api": url})


def card_on_customer(client: Any, number: str, email: str = "owner@example.com") -> tuple[str, str]:
    """A new Stripe customer with an attached card: (customer id, payment method id)."""
    customer = client.v1.customers.create(params={"email": email})
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
    return customer.id, method.id
