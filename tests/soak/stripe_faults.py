"""An HTTP layer in front of localstripe that behaves like Stripe and injects Stripe's faults.

Everything the app sends to Stripe goes through here (the app's `STRIPE_API_BASE`); the soak
harness's own reads go to localstripe directly. Two things on top of forwarding:

- **Idempotency as Stripe keeps it**: a POST with an `Idempotency-Key` that was already
  answered gets the stored answer again instead of being forwarded (localstripe itself ignores
  the header, so without this a network retry of stripe-python would charge twice where real
  Stripe would not).
- **Faults**, armed by `arm(kind, target)` and fired on the next matching request; a fired
  fault also covers stripe-python's retries of the same request (same `Idempotency-Key`), so
  the caller really sees the fault instead of a retry papering over it:
    timeout_before  held, then the connection closes without an answer; Stripe never saw it
    timeout_after   forwarded (Stripe acted), then the connection closes: the answer is lost
    http_500        `500 api_error` (Stripe-Should-Retry: false); not forwarded
    http_429        `429 rate_limit` (Stripe-Should-Retry: false); not forwarded
    drop            the connection is reset at once; not forwarded
- **Observers**: `on_intent_created(intent)` is called with every PaymentIntent Stripe made
  (also when its answer is lost), before the answer goes back; the soak uses it to record every
  intent and to deliver a webhook while the API is still resolving that same payment.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.support.http_layer import LayerHandler, serving

StripeFaultKind = Literal["timeout_before", "timeout_after", "http_500", "http_429", "drop"]
STRIPE_FAULT_KINDS: tuple[StripeFaultKind, ...] = (
    "timeout_before",
    "timeout_after",
    "http_500",
    "http_429",
    "drop",
)
# Which requests a fault may hit: charges, refunds, or any request of the app.
FaultTarget = Literal["charge", "refund", "any"]
TARGET_PATHS: dict[FaultTarget, tuple[str, str]] = {
    "charge": ("POST", "/v1/payment_intents"),
    "refund": ("POST", "/v1/refunds"),
    "any": ("", "/v1/"),
}
HOLD_SECONDS = 0.05  # how long a "timed out" request is held before the connection closes


@dataclass
class Armed:
    kind: StripeFaultKind
    target: FaultTarget


@dataclass
class StripeFaults:
    url: str
    target: str
    armed: list[Armed] = field(default_factory=list)
    # Idempotency-Key -> the fault that hit its first attempt (its retries get the same).
    sticky: dict[str, StripeFaultKind] = field(default_factory=dict)
    answers: dict[str, tuple[int, bytes, dict[str, str]]] = field(default_factory=dict)
    fired: Counter[str] = field(default_factory=Counter)
    intents_created: list[str] = field(default_factory=list)
    refunds_created: list[str] = field(default_factory=list)
    on_intent_created: Callable[[dict[str, Any]], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self, kind: StripeFaultKind, target: FaultTarget) -> None:
        with self.lock:
            self.armed.append(Armed(kind, target))

    def disarm(self) -> None:
        """Drop faults that did not fire (each step arms its own)."""
        with self.lock:
            self.armed.clear()

    def _fault_for(self, method: str, path: str, key: str | None) -> StripeFaultKind | None:
        with self.lock:
            if key is not None and key in self.sticky:
                return self.sticky[key]
            for armed in self.armed:
                want_method, prefix = TARGET_PATHS[armed.target]
                if (not want_method or want_method == method) and path.startswith(prefix):
                    self.armed.remove(armed)
                    self.fired[armed.kind] += 1
                    if key is not None:
                        self.sticky[key] = armed.kind
                    return armed.kind
        return None


@contextmanager
def stripe_faults(target: str) -> Iterator[StripeFaults]:
    proxy = StripeFaults(url="", target=target)

    class Handler(LayerHandler):
        protocol_version = "HTTP/1.1"

        def _reset(self) -> None:
            # SO_LINGER 0: close() sends RST, the client sees the connection dropped.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True

        def _record(self, status: int, data: bytes) -> None:
            if self.command != "POST" or status >= 500:
                return
            path = self.path.split("?")[0]
            answer: dict[str, Any] = json.loads(data)
            # A decline answers 402 with the PaymentIntent Stripe made inside the error
            # (localstripe names only its charge: the intent is read from that).
            created = answer.get("error", {}).get("payment_intent") if status >= 300 else answer
            if created is None and path == "/v1/payment_intents" and status == 402:
                created = self._intent_of_charge(answer.get("error", {}).get("charge"))
            if not isinstance(created, dict) or "id" not in created:
                return
            if path == "/v1/payment_intents":
                with proxy.lock:
                    proxy.intents_created.append(str(created["id"]))
                if proxy.on_intent_created is not None:
                    proxy.on_intent_created(created)
            elif path == "/v1/refunds":
                with proxy.lock:
                    proxy.refunds_created.append(str(created["id"]))

        def _intent_of_charge(self, charge_id: Any) -> dict[str, Any] | None:
            """The PaymentIntent of a declined charge, read from localstripe as this request's
            caller would (its key and account)."""
            if not isinstance(charge_id, str):
                return None
            wanted = ("Authorization", "Stripe-Account")
            headers = {name: self.headers[name] for name in wanted if self.headers.get(name)}

            def read(path: str) -> dict[str, Any]:
                request = urllib.request.Request(proxy.target + path, headers=headers)
                with urllib.request.urlopen(request, timeout=30) as response:
                    found: dict[str, Any] = json.loads(response.read())
                    return found

            intent_id = read(f"/v1/charges/{charge_id}").get("payment_intent")
            return read(f"/v1/payment_intents/{intent_id}") if intent_id else None

        def _handle(self) -> None:
            body = self.read_body()
            key = self.headers.get("Idempotency-Key") if self.command == "POST" else None
            account = self.headers.get("Stripe-Account") or ""
            stored_key = f"{account}|{self.path}|{key}" if key else None
            fault = proxy._fault_for(self.command, self.path.split("?")[0], stored_key)
            if fault in ("drop", "timeout_before"):
                if fault == "timeout_before":
                    time.sleep(HOLD_SECONDS)
                self._reset()
                return
            if fault == "http_500":
                data = b'{"error": {"type": "api_error", "message": "Stripe had a problem."}}'
                self.answer(
                    500, data, {"Content-Type": "application/json", "Stripe-Should-Retry": "false"}
                )
                return
            if fault == "http_429":
                data = (
                    b'{"error": {"type": "invalid_request_error", "code": "rate_limit",'
                    b' "message": "Too many requests."}}'
                )
                self.answer(
                    429, data, {"Content-Type": "application/json", "Stripe-Should-Retry": "false"}
                )
                return
            with proxy.lock:
                replay = proxy.answers.get(stored_key) if stored_key else None
            if replay is not None:
                status, data, headers = replay
                headers = {**headers, "Idempotent-Replayed": "true"}
            else:
                status, data, headers = self.forward(proxy.target, body)
                if stored_key is not None and status < 500:
                    with proxy.lock:
                        proxy.answers[stored_key] = (status, data, headers)
                self._record(status, data)
            if fault == "timeout_after":
                time.sleep(HOLD_SECONDS)
                self._reset()
                return
            self.answer(status, data, headers)

    with serving(Handler) as url:
        proxy.url = url
        yield proxy
