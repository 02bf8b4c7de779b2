"""A tiny HTTP server that answers like Stripe and records every request it gets.

Used as STRIPE_API_BASE where localstripe falls short (it ignores the Stripe-Account header
and idempotency keys), so tests can assert the exact request our Stripe adapter sends: path,
headers, form fields. Like Stripe, it answers a POST whose Idempotency-Key it has seen with the
first answer (a 4xx is not kept), or with a 400 `idempotency_error` when the parameters
differ; `lose_answers` makes it do a request and then answer 500, as when Stripe's answer is
lost on the way.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class FakeStripe:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    # pm id -> customer id (None: not attached)
    payment_methods: dict[str, str | None] = field(default_factory=dict)
    fail_next: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    customers: int = 0
    lose_answers: int = 0
    # idempotency key -> (the form first sent with it, the answer it got)
    idempotent: dict[str, tuple[dict[str, str], tuple[int, dict[str, Any]]]] = field(
        default_factory=dict
    )

    def card(self, pm_id: str) -> dict[str, Any]:
        return {
            "id": pm_id,
            "object": "payment_method",
            "type": "card",
            "customer": self.payment_methods.get(pm_id),
            "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
        }

    def answer(self, rec: Recorded) -> tuple[int, dict[str, Any]]:
        key = rec.headers.get("idempotency-key") if rec.method == "POST" else None
        if key is not None and key in self.idempotent:
            form, first_answer = self.idempotent[key]
            if form != rec.form:
                return 400, {
                    "error": {
                        "type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with.",
                    }
                }
            return first_answer
        answer = self._answer(rec)
        if key is not None and not 400 <= answer[0] < 500:
            # Stripe keeps no result for a request refused before it ran (a 4xx).
            self.idempotent[key] = (rec.form, answer)
        if self.lose_answers:
            self.lose_answers -= 1
            return 500, {"error": {"type": "api_error", "message": "The answer was lost."}}
        return answer

    def _answer(self, rec: Recorded) -> tuple[int, dict[str, Any]]:
        if self.fail_next:
            return self.fail_next.pop(0)
        parts = rec.path.strip("/").split("/")
        if rec.method == "POST" and parts == ["v1", "customers"]:
            self.customers += 1
            return 200, {"id": f"cus_rec{self.customers}", "object": "customer"}
        if parts[:2] == ["v1", "payment_methods"]:
            if len(parts) == 2:
                customer = rec.query.get("customer")
                data = [self.card(p) for p, c in self.payment_methods.items() if c == customer]
                return 200, {"object": "list", "data": data, "has_more": False, "url": rec.path}
            pm_id = parts[2]
            if pm_id not in self.payment_methods:
                return 404, {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "resource_missing",
                        "message": f"No such PaymentMethod: '{pm_id}'",
                        "param": "payment_method",
                    }
                }
            if parts[3:] == ["attach"]:
                self.payment_methods[pm_id] = rec.form["customer"]
            elif parts[3:] == ["detach"]:
                self.payment_methods[pm_id] = None
            return 200, self.card(pm_id)
        if rec.method == "POST" and parts == ["v1", "setup_intents"]:
            return 200, {
                "id": "seti_1",
                "object": "setup_intent",
                "client_secret": "seti_1_secret_x",
            }
        return 404, {"error": {"type": "invalid_request_error", "message": "Unrecognized"}}


@contextmanager
def fake_stripe() -> Iterator[FakeStripe]:
    state = FakeStripe()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            rec = Recorded(
                method=self.command,
                path=parsed.path,
                query=dict(urllib.parse.parse_qsl(parsed.query)),
                headers={k.lower(): v for k, v in self.headers.items()},
                form=dict(urllib.parse.parse_qsl(raw)),
            )
            state.requests.append(rec)
            status, body = state.answer(rec)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Stripe-Should-Retry", "false")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
