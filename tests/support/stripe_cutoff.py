"""A pass-through proxy in front of localstripe that can lose Stripe's answer.

Everything is forwarded to localstripe unchanged. When `cut_next(method, path_prefix)` is armed,
the next matching request is still forwarded (so Stripe really does the work: charges the card
and records the event) but our side gets `500` with `Stripe-Should-Retry: false` instead of the
answer: the "crash between creating the PaymentIntent and recording its outcome" of DESIGN.md
section 6, which leaves our payment pending while Stripe holds the charge.

`decline_next(method, path_prefix, error)` plays an issuer's answer localstripe cannot give
(it only ever declines with `card_declined`): the request is forwarded and, if Stripe refused it,
`error` (e.g. `{"decline_code": "stolen_card"}`) is merged into Stripe's error body; with
`forward=False` nothing reaches localstripe and the answer is a 402 `card_error` made of
`error` alone (a decline of a card that would otherwise succeed).

`down_next(method, path_prefix, times)` answers the next matching requests with `503` without
forwarding them (Stripe is down and did nothing); `hang_next(method, path_prefix, times)`
accepts them and never answers (until the proxy stops): a hung Stripe, for client timeouts.

`refunds_still_working = True` plays a refund Stripe accepted and has not finished (what Stripe
answers e.g. while a connected account's balance cannot cover it): every refund in an answer of
`/v1/refunds` reads `status: "pending"` (localstripe finishes each refund at once; the refund is
really made there). Set it back to False and Stripe "finishes" them.

`disconnected` holds connected accounts that deauthorized the platform: every request with one
of them in its `Stripe-Account` header is answered as Stripe answers it, 403 "does not have
access to account", and never forwarded (localstripe itself ignores the header).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.http_layer import LayerHandler, serving


@dataclass
class StripeCutoff:
    url: str
    target: str
    armed: list[tuple[str, str, str]] = field(default_factory=list)  # (mode, method, prefix)
    # The error fields of armed "decline" / "decline_here" requests, in arming order.
    declines: list[dict[str, Any]] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # every request, "METHOD /path"
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: threading.Event = field(default_factory=threading.Event)
    refunds_still_working: bool = False
    disconnected: set[str] = field(default_factory=set)

    def cut_next(self, method: str, path_prefix: str) -> None:
        with self.lock:
            self.armed.append(("cut", method, path_prefix))

    def down_next(self, method: str, path_prefix: str, times: int = 1) -> None:
        with self.lock:
            self.armed += [("down", method, path_prefix)] * times

    def decline_next(
        self, method: str, path_prefix: str, error: dict[str, Any], *, forward: bool = True
    ) -> None:
        with self.lock:
            self.armed.append(("decline" if forward else "decline_here", method, path_prefix))
            self.declines.append(dict(error))

    def hang_next(self, method: str, path_prefix: str, times: int = 1) -> None:
        with self.lock:
            self.armed += [("hang", method, path_prefix)] * times

    def _take(self, method: str, path: str, modes: tuple[str, ...] = ("cut",)) -> str | None:
        with self.lock:
            for armed in self.armed:
                if armed[0] in modes and armed[1] == method and path.startswith(armed[2]):
                    self.armed.remove(armed)
                    self.cut.append(f"{method} {path}")
                    return armed[0]
        return None


@contextmanager
def stripe_cutoff(target: str) -> Iterator[StripeCutoff]:
    proxy = StripeCutoff(url="", target=target)

    class Handler(LayerHandler):
        def _handle(self) -> None:
            body = self.read_body()
            with proxy.lock:
                proxy.seen.append(f"{self.command} {self.path}")
            account = self.headers.get("Stripe-Account")
            if account in proxy.disconnected:
                self.answer(403, json.dumps(no_access(account)).encode(), {})
                return
            refused = proxy._take(self.command, self.path, ("down", "hang", "decline_here"))
            if refused == "decline_here":
                with proxy.lock:
                    fields = proxy.declines.pop(0)
                error = {"type": "card_error", "message": "Your card was declined.", **fields}
                self.answer(402, json.dumps({"error": error}).encode(), {})
                return
            if refused == "hang":
                proxy.stopped.wait(120)  # never answers while the test runs
                return
            if refused == "down":
                data = b'{"error": {"type": "api_error", "message": "Stripe is down"}}'
                headers = {"Content-Type": "application/json", "Stripe-Should-Retry": "false"}
                self.answer(503, data, headers)
                return
            status, data, reply_headers = self.forward(proxy.target, body)
            if proxy._take(self.command, self.path):
                status, data = 500, b'{"error": {"type": "api_error", "message": "lost"}}'
                reply_headers = {"Content-Type": "application/json", "Stripe-Should-Retry": "false"}
            elif status >= 400 and proxy._take(self.command, self.path, ("decline",)):
                with proxy.lock:
                    fields = proxy.declines.pop(0)
                answer = json.loads(data)
                answer["error"] = {**answer.get("error", {}), "type": "card_error", **fields}
                data = json.dumps(answer).encode()
            elif proxy.refunds_still_working and self.path.startswith("/v1/refunds"):
                data = json.dumps(_refunds_pending(json.loads(data))).encode()
            self.answer(status, data, reply_headers)

    with serving(Handler) as url:
        proxy.url = url
        try:
            yield proxy
        finally:
            proxy.stopped.set()  # a hung request returns before the server shuts down


def no_access(account: str) -> dict[str, Any]:
    """Stripe's answer to a platform that a connected account has deauthorized."""
    message = (
        f"The provided key 'sk_test_***' does not have access to account '{account}' (or that "
        "account does not exist). Application access may have been revoked."
    )
    return {"error": {"type": "invalid_request_error", "message": message}}


def _refunds_pending(value: Any) -> Any:
    """`value` with every refund object in it reading status "pending"."""
    if isinstance(value, dict):
        if value.get("object") == "refund":
            return {**value, "status": "pending"}
        return {name: _refunds_pending(inner) for name, inner in value.items()}
    if isinstance(value, list):
        return [_refunds_pending(inner) for inner in value]
    return value
