"""An HTTP layer in front of localstripe that enforces Stripe's rate limit per account.

Each account (the `Stripe-Account` header; the platform's own calls count as "platform") has a
token bucket of `per_second` tokens a second holding at most `burst` (Stripe's limiter is a
bucket too: a short burst passes, a sustained excess does not). A request without a token is
answered like Stripe does, `429 rate_limit` (`Stripe-Should-Retry: false`), and never reaches
localstripe. Everything else is forwarded. `limited_paths` restricts the limit to some
requests (default: every request).

It records what the figures need: per account, the time of every forwarded call and of every
429, and the PaymentIntents created (from localstripe's answers). Idempotency as Stripe keeps
it: a POST whose `Idempotency-Key` was already answered gets that answer again instead of being
forwarded (localstripe ignores the header).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.http_layer import LayerHandler, serving

PLATFORM = "platform"
RATE_LIMITED_BODY = (
    b'{"error": {"type": "invalid_request_error", "code": "rate_limit",'
    b' "message": "Request rate limit exceeded."}}'
)


@dataclass
class Bucket:
    per_second: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class StripeRateLimiter:
    target: str
    per_second: float
    burst: float
    limited_paths: tuple[tuple[str, str], ...] = ()  # (method, path prefix); () = every request
    url: str = ""
    # 429s the next matching requests get whatever their bucket holds (admin traffic's burst).
    forced_429: int = 0
    forced_429_account: str = ""  # only this account's requests ("" = any)
    # The 429's `Stripe-Should-Retry` (Stripe sends "true" with `lock_timeout`).
    should_retry: bool = False
    # Requests that reached the layer (answered or not), per account.
    seen: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    buckets: dict[str, Bucket] = field(default_factory=dict)
    calls: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    refused: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    intents: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    answers: dict[str, tuple[int, bytes, dict[str, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _limited(self, method: str, path: str) -> bool:
        if not self.limited_paths:
            return True
        return any(method == m and path.startswith(p) for m, p in self.limited_paths)

    def admit(self, account: str, method: str, path: str) -> bool:
        now = time.monotonic()
        with self.lock:
            self.seen[account] += 1
            if not self._limited(method, path):
                return True
            if self.forced_429 > 0 and self.forced_429_account in ("", account):
                self.forced_429 -= 1
                self.refused[account].append(now)
                return False
            bucket = self.buckets.get(account)
            if bucket is None:
                bucket = self.buckets[account] = Bucket(
                    self.per_second, self.burst, self.burst, now
                )
            if bucket.take(now):
                self.calls[account].append(now)
                return True
            self.refused[account].append(now)
            return False


@contextmanager
def stripe_rate_limiter(
    target: str,
    per_second: float,
    *,
    burst: float | None = None,
    limited_paths: tuple[tuple[str, str], ...] = (),
) -> Iterator[StripeRateLimiter]:
    limiter = StripeRateLimiter(
        target, per_second, per_second if burst is None else burst, limited_paths
    )

    class Handler(LayerHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            body = self.read_body()
            path = self.path.split("?")[0]
            account = self.headers.get("Stripe-Account") or PLATFORM
            key = self.headers.get("Idempotency-Key") if self.command == "POST" else None
            stored = f"{account}|{path}|{key}" if key else None
            with limiter.lock:
                replay = limiter.answers.get(stored) if stored else None
            if replay is not None:
                self.answer(*replay)
                return
            if not limiter.admit(account, self.command, path):
                retry = "true" if limiter.should_retry else "false"
                self.answer(
                    429,
                    RATE_LIMITED_BODY,
                    {"Content-Type": "application/json", "Stripe-Should-Retry": retry},
                )
                return
            status, data, headers = self.forward(limiter.target, body)
            if stored is not None and status < 500:
                with limiter.lock:
                    limiter.answers[stored] = (status, data, headers)
            if self.command == "POST" and path == "/v1/payment_intents" and status == 200:
                intent: dict[str, Any] = json.loads(data)
                with limiter.lock:
                    limiter.intents[account].append(str(intent["id"]))
            self.answer(status, data, headers)

    with serving(Handler) as url:
        limiter.url = url
        yield limiter
