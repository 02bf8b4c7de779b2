"""Verify a membership-billing webhook: copy this file into the receiving platform.

Standard library only (no dependency on the billing package). The sender signs
`"<t>.<raw body>"` with HMAC-SHA256 and the endpoint's secret (`whsec_...`) and sends
`Billing-Signature: t=<unix seconds>,v1=<hex digest>`.

    from billing_signature import verify_signature
    if not verify_signature(raw_body, request.headers["Billing-Signature"], SECRET):
        return 400
    event = json.loads(raw_body)   # then dedupe by event["id"], drop stale by "sequence"
"""

from __future__ import annotations

import hashlib
import hmac
import time

DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for `body` signed at `timestamp` (what the sender does)."""
    digest = hmac.new(
        secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    body: bytes,
    header: str,
    secret: str,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when `header` signs exactly `body` with `secret`, no older than the tolerance."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
