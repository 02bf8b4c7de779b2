"""Stripe events for tests, built and signed exactly as Stripe builds and signs them.

The signature is computed here independently of the stripe library (which our code uses to
verify): `Stripe-Signature: t=<unix ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<raw body>")>`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any

_ids = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}_{int(time.time() * 1000):x}{next(_ids):06d}"


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def event(
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    account: str | None = None,
    created: int | None = None,
    previous_attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Stripe event envelope as the API (2024+ versions) sends it."""
    data: dict[str, Any] = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    payload: dict[str, Any] = {
        "id": event_id or unique("evt"),
        "object": "event",
        "api_version": "2024-06-20",
        "created": created or int(time.time()),
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    if account:
        payload["account"] = account
    return payload


def body_of(payload: dict[str, Any]) -> bytes:
    """Stripe's own formatting: pretty-printed JSON (the signature covers these exact bytes)."""
    return json.dumps(payload, indent=2).encode()


def signed_headers(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": sign(body, secret, timestamp),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }


def payment_intent(
    *,
    status: str,
    metadata: dict[str, str],
    amount: int = 1000,
    currency: str = "usd",
    intent_id: str | None = None,
    charge_id: str | None = None,
    error_code: str | None = None,
    decline_code: str | None = None,
) -> dict[str, Any]:
    pi_id = intent_id or unique("pi")
    latest_charge = charge_id or unique("ch")
    obj: dict[str, Any] = {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": currency,
        "status": status,
        "metadata": metadata,
        "latest_charge": latest_charge,
        "last_payment_error": None,
        "payment_method": unique("pm"),
        "customer": unique("cus"),
    }
    if status == "requires_payment_method":
        obj["last_payment_error"] = {
            "type": "card_error",
            "code": error_code or "card_declined",
            "decline_code": decline_code or "generic_decline",
            "message": "Your card was declined.",
            "charge": latest_charge,
        }
    return obj


def charge(
    *,
    charge_id: str,
    payment_intent_id: str,
    amount: int,
    amount_refunded: int = 0,
    metadata: dict[str, str] | None = None,
    currency: str = "usd",
) -> dict[str, Any]:
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "captured": True,
        "currency": currency,
        "disputed": False,
        "metadata": metadata or {},
        "paid": True,
        "payment_intent": payment_intent_id,
        "refunded": amount_refunded == amount,
        "status": "succeeded",
    }


def dispute(
    *,
    charge_id: str,
    payment_intent_id: str,
    amount: int,
    status: str,
    currency: str = "usd",
) -> dict[str, Any]:
    return {
        "id": unique("dp"),
        "object": "dispute",
        "amount": amount,
        "charge": charge_id,
        "currency": currency,
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": payment_intent_id,
        "reason": "fraudulent",
        "status": status,
    }
